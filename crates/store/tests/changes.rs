//! The status change log on SQLite and on PostgreSQL: every status change of a function, a version and an
//! asynchronous event is logged by the database in its own transaction, one account never reads another's, a
//! cursor resumes without gaps (also when PostgreSQL commits ids out of order), readers are woken at commit, and
//! pruning answers a stale cursor with a reset.

use std::time::Duration;

use model::{Alias, CodeRef, FunctionConfig, FunctionKey, FunctionStatus, RoutingConfig, Snapshot};
use store::{
    ChangeKind, ChangeRead, ClaimedOp, EventEnd, Finish, FunctionRow, NewEvent, NewOp, SqliteSync,
    Store,
};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async, zips};

const APP: i64 = 1_300_000_013;
const OTHER: i64 = 1_300_000_014;

async fn open(b: &Backend) -> (Store, TestDatabase, tempfile::TempDir) {
    let db = fresh_database_url(b);
    let dir = tempfile::tempdir().expect("data dir");
    let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
        .await
        .expect("open store");
    (store, db, dir)
}

fn event(id: &str, app_id: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        app_id,
        uin: "100000000013".into(),
        region: "ap-guangzhou".into(),
        namespace: "default".into(),
        function_name: "f".into(),
        qualifier: "$LATEST".into(),
        version: "$LATEST".into(),
        invoke_type: "Event".into(),
        event: "{}".into(),
        start_ms: store::now_ms(),
    }
}

fn function(name: &str, code: CodeRef, now: i64) -> FunctionRow {
    FunctionRow {
        id: testkit::unique_name(&format!("row-{name}-")),
        function_id: testkit::unique_name("lam-"),
        key: FunctionKey {
            app_id: APP,
            namespace: "default".into(),
            name: name.into(),
        },
        qualifier: "$LATEST".into(),
        status: FunctionStatus::Creating,
        reasons: Vec::new(),
        serving: None,
        pending: Some(Snapshot {
            code,
            config: FunctionConfig {
                runtime: "Python3.9".into(),
                ..FunctionConfig::default()
            },
        }),
        version_description: String::new(),
        next_version: 1,
        rev: 0,
        add_ms: now,
        mod_ms: now,
    }
}

fn op(target: &str, now: i64) -> NewOp {
    NewOp {
        id: testkit::unique_name("op-"),
        app_id: APP,
        kind: "CreateFunction".into(),
        target: target.into(),
        payload: "{}".into(),
        created_ms: now,
    }
}

async fn claim(store: &Store, id: &str) -> ClaimedOp {
    for _ in 0..100 {
        match store.claim_op("test", 60_000).await.expect("claim") {
            Some(o) if o.id == id => return o,
            Some(_) => continue,
            None => break,
        }
    }
    panic!("operation {id} could not be claimed");
}

/// Everything of `app` after `cursor`, reading until nothing is held back.
async fn read_all(store: &Store, app: i64, cursor: i64) -> ChangeRead {
    let mut reader = store
        .change_reader(app, Some(cursor))
        .await
        .expect("reader");
    let mut changes = Vec::new();
    for _ in 0..1000 {
        let r = reader.read(1000).await.expect("read");
        if r.reset.is_some() {
            return r;
        }
        changes.extend(r.changes);
        if !r.held_back {
            return ChangeRead {
                changes,
                cursor: reader.cursor(),
                held_back: false,
                reset: None,
            };
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("changes stayed held back");
}

fn statuses(r: &ChangeRead) -> Vec<(ChangeKind, String, String)> {
    r.changes
        .iter()
        .map(|c| (c.kind, c.qualifier.clone(), c.status.clone()))
        .collect()
}

async fn every_status_change_is_logged_for_its_account_only(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    let start = store.change_head().await.expect("head");
    let now = store::now_ms();
    let code = store.blobs.put(&zips::python_hello_v(1)).expect("blob");
    let row = function("f", code, now);
    let create = op(&row.id, now);
    let alias = Alias {
        name: "$DEFAULT".into(),
        function_version: "$LATEST".into(),
        routing: RoutingConfig::default(),
        description: String::new(),
        add_ms: now,
        mod_ms: now,
    };
    store
        .create_function(&row, &alias, &create)
        .await
        .expect("create");
    let claimed = claim(&store, &create.id).await;
    let mut version = row.clone();
    version.id = testkit::unique_name("row-f-1-");
    version.qualifier = "1".into();
    version.status = FunctionStatus::Publishing;
    let publish = op(&version.id, now);
    store
        .finish_op(
            &claimed,
            Finish::Promote {
                row_id: row.id.clone(),
                snapshot: row.pending.clone().expect("pending"),
                then_publish: Some(Box::new((version, publish))),
            },
            now,
        )
        .await
        .expect("promote");
    // A write that leaves the status as it is logs nothing (publishing bumps `$LATEST`'s counter only).
    let mut mine = event("ev-1", APP);
    mine.start_ms = 1_000;
    store.insert_event(&mine).await.expect("event");
    let mut theirs = event("ev-other", OTHER);
    theirs.start_ms = 2_000;
    store
        .insert_event(&theirs)
        .await
        .expect("other account's event");
    let ev = store
        .claim_event("test", 60_000)
        .await
        .expect("claim event")
        .expect("claimed");
    assert_eq!(ev.row.id, "ev-1", "the older event is claimed first");
    store
        .end_attempt(
            &ev,
            EventEnd::Done {
                status: "FINISHED",
                status_code: 200,
                error: String::new(),
                end_ms: store::now_ms(),
            },
        )
        .await
        .expect("end");
    // The version's publish operation is the one pending; deleting the function finishes it.
    let claimed = store
        .claim_op("test", 60_000)
        .await
        .expect("claim")
        .expect("the publish operation");
    store
        .finish_op(
            &claimed,
            Finish::DeleteFunction {
                key: row.key.clone(),
            },
            now,
        )
        .await
        .expect("delete");

    let got = read_all(&store, APP, start).await;
    let want = [
        (
            ChangeKind::Function,
            "$LATEST".to_string(),
            "Creating".to_string(),
        ),
        (ChangeKind::Function, "$LATEST".into(), "Active".into()),
        (ChangeKind::Version, "1".into(), "Publishing".into()),
        (ChangeKind::AsyncEvent, "$LATEST".into(), "RUNNING".into()),
        (ChangeKind::AsyncEvent, "$LATEST".into(), "FINISHED".into()),
    ];
    let got_statuses = statuses(&got);
    assert_eq!(&got_statuses[..want.len()], &want[..], "{got_statuses:?}");
    // Deleting the function logs both records gone, in whatever order the database removed them.
    let mut gone: Vec<_> = got_statuses[want.len()..].to_vec();
    gone.sort();
    assert_eq!(
        gone,
        [
            (
                ChangeKind::Function,
                "$LATEST".to_string(),
                "Deleted".to_string()
            ),
            (ChangeKind::Version, "1".into(), "Deleted".into()),
        ]
    );
    assert!(got.changes.windows(2).all(|w| w[0].id < w[1].id));
    assert!(got.changes.iter().all(|c| c.app_id == APP && c.name == "f"));
    let ev_change = got
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::AsyncEvent)
        .expect("event change");
    assert_eq!(ev_change.request_id, "ev-1");
    let clock = store.clock_ms().await.expect("clock");
    assert!(
        got.changes
            .iter()
            .all(|c| c.db_ms <= clock && clock - c.db_ms < 60_000)
    );
    // The other account sees its own event only.
    let other = read_all(&store, OTHER, start).await;
    assert!(other.changes.iter().all(|c| c.app_id == OTHER));
    assert_eq!(other.changes[0].request_id, "ev-other");
    // Resuming from the middle gives exactly the rest.
    let mid = got.changes[1].id;
    let rest = read_all(&store, APP, mid).await;
    assert_eq!(rest.changes, got.changes[2..].to_vec());
    // The cursor moves on to the end of what was read; nothing is after it.
    let after = read_all(&store, APP, got.cursor).await;
    assert!(after.changes.is_empty());
    assert!(got.cursor >= got.changes.last().expect("some").id);
}

async fn a_rolled_back_change_logs_nothing_and_a_cursor_starts_at_the_head(b: Backend) {
    let (store, db, _dir) = open(&b).await;
    store
        .insert_event(&event("before", APP))
        .await
        .expect("event");
    let head = loop {
        // Behind a transaction still open elsewhere on the server, the head is still before "before".
        let head = store.change_head().await.expect("head");
        if read_all(&store, APP, head).await.changes.is_empty() {
            break head;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A transaction that inserts an event and rolls back leaves no change behind.
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(db.url())
        .await
        .expect("connection");
    let mut tx = pool.begin().await.expect("begin");
    insert_raw_event(&mut tx, "rolled-back").await;
    tx.rollback().await.expect("rollback");
    pool.close().await;
    store
        .insert_event(&event("after", APP))
        .await
        .expect("event");
    let got = read_all(&store, APP, head).await;
    let ids: Vec<&str> = got.changes.iter().map(|c| c.request_id.as_str()).collect();
    assert_eq!(ids, ["after"]);
}

async fn insert_raw_event(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) {
    sqlx::query(
        "INSERT INTO async_events (id, app_id, uin, region, namespace, function_name, qualifier, version, \
         invoke_type, event, status, status_code, last_error, start_ms, end_ms, retry_num, throttles, attempt, \
         failures, lease_owner, due_ms, fair_rank, abort_requested, accepted_db_ms, updated_ms) \
         VALUES ($1, $2, 'u', 'r', 'default', 'f', '$LATEST', '$LATEST', 'Event', '{}', 'RUNNING', 202, '', 0, \
         NULL, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0)",
    )
    .bind(id)
    .bind(APP)
    .execute(&mut **tx)
    .await
    .expect("raw insert");
}

async fn readers_are_woken_at_commit(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    let mut wake = store.change_wakeups();
    let head = store.change_head().await.expect("head");
    // The PostgreSQL listener connects in the background: its first wake says it listens.
    if matches!(b, Backend::Postgres { .. }) {
        tokio::time::timeout(Duration::from_secs(10), wake.changed())
            .await
            .expect("listener up")
            .expect("hub alive");
    }
    wake.borrow_and_update();
    let t = std::time::Instant::now();
    store
        .insert_event(&event("wake", APP))
        .await
        .expect("event");
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .expect("woken")
        .expect("hub alive");
    let got = read_all(&store, APP, head).await;
    assert_eq!(got.changes.len(), 1);
    // Woken by the commit, not by a poll (there is none here); generous for a loaded machine.
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "woken after {:?}",
        t.elapsed()
    );
}

async fn pruning_resets_a_cursor_older_than_the_log(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    let start = store.change_head().await.expect("head");
    store
        .insert_event(&event("old-1", APP))
        .await
        .expect("event");
    store
        .insert_event(&event("old-2", APP))
        .await
        .expect("event");
    let first = read_all(&store, APP, start).await;
    assert_eq!(first.changes.len(), 2);
    // Nothing is old enough yet.
    assert_eq!(store.prune_changes(3_600_000).await.expect("prune"), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.prune_changes(0).await.expect("prune"), 2);
    store.insert_event(&event("new", APP)).await.expect("event");
    // A cursor before the pruned rows is reset to the start of the retained log…
    let stale = store
        .change_reader(APP, Some(start))
        .await
        .expect("reader")
        .read(100)
        .await
        .expect("read");
    let through = first.changes[1].id;
    assert_eq!(stale.reset, Some(through));
    assert!(stale.changes.is_empty());
    // …from which the rest follows; a cursor at the last pruned row was never behind.
    let rest = read_all(&store, APP, through).await;
    assert_eq!(rest.reset, None);
    let ids: Vec<&str> = rest.changes.iter().map(|c| c.request_id.as_str()).collect();
    assert_eq!(ids, ["new"]);
}

on_both_backends_async!(
    every_status_change_is_logged_for_its_account_only,
    a_rolled_back_change_logs_nothing_and_a_cursor_starts_at_the_head,
    readers_are_woken_at_commit,
    pruning_resets_a_cursor_older_than_the_log,
);

/// PostgreSQL draws ids from a sequence: a transaction holding a smaller id may commit after one holding a
/// larger id. A reader must not move past the larger one while the smaller is still open.
#[test]
fn postgres_ids_committed_out_of_order_are_not_skipped() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    testkit::block_on(async move {
        let (store, db, _dir) = open(&b).await;
        let head = store.change_head().await.expect("head");
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(db.url())
            .await
            .expect("connection");
        // The open transaction draws the smaller id…
        let mut slow = pool.begin().await.expect("begin");
        insert_raw_event(&mut slow, "slow").await;
        // …and a later one commits a larger id first.
        store
            .insert_event(&event("fast", APP))
            .await
            .expect("event");
        let mut reader = store.change_reader(APP, Some(head)).await.expect("reader");
        for _ in 0..3 {
            let early = reader.read(100).await.expect("read");
            assert!(early.changes.is_empty(), "{:?}", early.changes);
            assert!(early.held_back);
            assert_eq!(early.cursor, head, "the cursor must not pass the open id");
        }
        // A new reader from now waits for the open transaction rather than start past its id.
        let from_now = {
            let store = store.clone();
            tokio::spawn(async move { store.change_head().await.expect("head") })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!from_now.is_finished());
        slow.commit().await.expect("commit");
        pool.close().await;
        let mut got = Vec::new();
        for _ in 0..100 {
            let r = reader.read(100).await.expect("read");
            got.extend(r.changes);
            if !r.held_back && got.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ids: Vec<&str> = got.iter().map(|c| c.request_id.as_str()).collect();
        assert_eq!(ids, ["slow", "fast"]);
        assert!(from_now.await.expect("joined") >= got[1].id);
    });
}
