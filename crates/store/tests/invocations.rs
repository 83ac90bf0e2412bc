//! Invocation records on SQLite and on PostgreSQL: filters, order and paging, and a reply's byte budget.

use store::{InvocationOrder, InvocationQuery, InvocationRecord, SqliteSync, Store, record_weight};
use testkit::{Backend, fresh_database_url, on_both_backends_async};

const APP: i64 = 1_300_000_002;

fn rec(i: i64, status: i64, ret: usize, log: usize) -> InvocationRecord {
    InvocationRecord {
        request_id: format!("req-{i:04}"),
        app_id: APP,
        namespace: "default".into(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        start_ms: 1_000 + i,
        duration_us: 10 * i,
        bill_ms: 1,
        memory_mb: 128,
        mem_bytes: 1 << 20,
        status_code: status,
        ret_msg: "r".repeat(ret),
        log: "l".repeat(log),
        cold_start: i == 0,
        retry_num: 0,
    }
}

fn query() -> InvocationQuery {
    InvocationQuery {
        app_id: APP,
        namespace: "default".into(),
        function_name: "f".into(),
        order_by: InvocationOrder::StartTime,
        limit: 100,
        with_log: true,
        max_bytes: usize::MAX,
        ..InvocationQuery::default()
    }
}

async fn open(b: &Backend) -> (Store, testkit::TestDatabase, tempfile::TempDir) {
    let db = fresh_database_url(b);
    let dir = tempfile::tempdir().expect("data dir");
    let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
        .await
        .expect("open store");
    (store, db, dir)
}

async fn filters_order_and_paging(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    let records: Vec<_> = (0..50)
        .map(|i| rec(i, if i % 5 == 0 { 430 } else { 200 }, 3, 10))
        .collect();
    store.insert_invocations(&records).await.expect("insert");
    // A duplicate request id is ignored.
    store
        .insert_invocations(&records[..1])
        .await
        .expect("insert again");

    let (all, total) = store.invocations(&query()).await.expect("all");
    assert_eq!(total, 50);
    assert_eq!(all.len(), 50, "more than one chunk of rows is read");
    assert_eq!(all, records);

    let page = InvocationQuery {
        descending: true,
        offset: 5,
        limit: 40,
        ..query()
    };
    let (got, total) = store.invocations(&page).await.expect("page");
    assert_eq!(total, 50);
    let want: Vec<_> = records.iter().rev().skip(5).take(40).cloned().collect();
    assert_eq!(got, want);

    let failed = InvocationQuery {
        succeeded: Some(false),
        ..query()
    };
    let (got, total) = store.invocations(&failed).await.expect("failures");
    assert_eq!(total, 10);
    assert!(got.iter().all(|r| r.status_code == 430));

    let by_duration = InvocationQuery {
        order_by: InvocationOrder::Duration,
        descending: true,
        limit: 3,
        ..query()
    };
    let (got, _) = store.invocations(&by_duration).await.expect("by duration");
    let ids: Vec<_> = got.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req-0049", "req-0048", "req-0047"]);

    let no_log = InvocationQuery {
        request_id: Some("req-0007".into()),
        with_log: false,
        ..query()
    };
    let (got, total) = store.invocations(&no_log).await.expect("one");
    assert_eq!(total, 1);
    assert_eq!(got[0].log, "", "the log is not read when not asked for");
    assert_eq!(got[0].ret_msg, "rrr");
}

async fn a_page_ends_at_its_byte_budget(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    let records: Vec<_> = (0..40).map(|i| rec(i, 200, 1000, 9000)).collect();
    store.insert_invocations(&records).await.expect("insert");
    let w = record_weight(&records[0]);
    let budget = InvocationQuery {
        max_bytes: 10 * w + w / 2,
        ..query()
    };
    let (got, total) = store.invocations(&budget).await.expect("budget");
    assert_eq!(total, 40, "the total counts every match");
    assert_eq!(got.len(), 10, "as many whole records as fit");
    assert_eq!(got, records[..10]);
    // Paging on from where the page ended reaches the rest.
    let next = InvocationQuery {
        offset: 10,
        ..budget.clone()
    };
    let (got, _) = store.invocations(&next).await.expect("next page");
    assert_eq!(got, records[10..20]);
    // A record larger than the budget still comes alone, so paging always advances.
    let tiny = InvocationQuery {
        max_bytes: 1,
        ..query()
    };
    let (got, _) = store.invocations(&tiny).await.expect("tiny");
    assert_eq!(got.len(), 1);
}

on_both_backends_async!(filters_order_and_paging, a_page_ends_at_its_byte_budget);
