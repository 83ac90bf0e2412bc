//! The asynchronous event queue on SQLite and on PostgreSQL: acceptance, claims that never hand one event to two
//! dispatchers, a lapsed lease re-dispatched (and counted), retries scheduled on the database's clock, the
//! fencing of late ends, fairness between functions, listing filters and paging, and pruning.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use store::events::{FAILED, FINISHED, RUNNING};
use store::{ClaimedEvent, EventEnd, EventQuery, NewEvent, SqliteSync, Store, StoreError};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async};

const APP: i64 = 1_300_000_002;

async fn open(b: &Backend) -> (Store, TestDatabase, tempfile::TempDir) {
    let db = fresh_database_url(b);
    let dir = tempfile::tempdir().expect("data dir");
    let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
        .await
        .expect("open store");
    (store, db, dir)
}

fn event(id: &str, function: &str, start_ms: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        app_id: APP,
        uin: "100000000001".into(),
        region: "ap-guangzhou".into(),
        namespace: "default".into(),
        function_name: function.into(),
        qualifier: "prod".into(),
        version: "1".into(),
        invoke_type: "Event".into(),
        event: format!("{{\"n\":\"{id}\"}}"),
        start_ms,
    }
}

fn query(function: &str) -> EventQuery {
    EventQuery {
        app_id: APP,
        namespace: "default".into(),
        function_name: function.into(),
        descending: true,
        limit: 100,
        ..EventQuery::default()
    }
}

fn done(status: &'static str, code: i64) -> EventEnd {
    EventEnd::Done {
        status,
        status_code: code,
        error: String::new(),
        end_ms: store::now_ms(),
    }
}

async fn accepted_events_are_claimed_with_their_content(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    store
        .insert_event(&event("e1", "f", 1_000))
        .await
        .expect("accept");
    let row = store
        .async_event(APP, "e1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(row.status, RUNNING);
    assert_eq!(row.status_code, 202);
    assert_eq!(
        (row.qualifier.as_str(), row.version.as_str()),
        ("prod", "1")
    );
    assert_eq!(row.end_ms, None);
    // Another account never sees it.
    assert!(
        store
            .async_event(APP + 1, "e1")
            .await
            .expect("read")
            .is_none()
    );
    let c = store
        .claim_event("n/0", 10_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(c.row.id, "e1");
    assert_eq!(c.event, "{\"n\":\"e1\"}");
    assert_eq!((c.attempt, c.failures, c.row.retry_num), (1, 0, 0));
    assert!(c.age_ms >= 0 && c.age_ms < 60_000, "{}", c.age_ms);
    // Held: nobody else gets it.
    assert!(
        store
            .claim_event("n/1", 10_000)
            .await
            .expect("claim")
            .is_none()
    );
    store.renew_event(&c, 10_000).await.expect("renew");
    store
        .end_attempt(&c, done(FINISHED, 200))
        .await
        .expect("end");
    let row = store
        .async_event(APP, "e1")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!((row.status.as_str(), row.status_code), (FINISHED, 200));
    assert!(row.end_ms.is_some());
    // Ended: it is never claimed again, and its holder can no longer renew or end it.
    assert!(
        store
            .claim_event("n/1", 10_000)
            .await
            .expect("claim")
            .is_none()
    );
    assert!(matches!(
        store.renew_event(&c, 10_000).await,
        Err(StoreError::StaleOperation(_))
    ));
    assert!(matches!(
        store.end_attempt(&c, done(FAILED, 430)).await,
        Err(StoreError::StaleOperation(_))
    ));
    assert_eq!(store.running_events().await.expect("count"), 0);
}

async fn claims_are_exclusive_under_concurrency(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    for i in 0..40 {
        store
            .insert_event(&event(&format!("e{i:02}"), &format!("f{}", i % 3), i))
            .await
            .expect("accept");
    }
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = store
                .claim_event(&format!("n/{w}"), 60_000)
                .await
                .expect("claim")
            {
                got.push(c.row.id);
                tokio::task::yield_now().await;
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer"));
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 40, "every event claimed exactly once: {all:?}");
    assert_eq!(unique.len(), 40);
}

async fn a_lapsed_lease_is_dispatched_again_and_fenced(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    store
        .insert_event(&event("e1", "f", 1))
        .await
        .expect("accept");
    let first = store
        .claim_event("dead/0", 200)
        .await
        .expect("claim")
        .expect("due");
    assert!(
        store
            .claim_event("n/0", 200)
            .await
            .expect("claim")
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = store
        .claim_event("n/0", 10_000)
        .await
        .expect("claim")
        .expect("lease ran out");
    assert_eq!(second.row.id, "e1");
    assert_eq!(
        (second.attempt, second.failures),
        (2, 1),
        "the lapsed attempt counts"
    );
    // The dead holder's late writes are refused.
    assert!(matches!(
        store.renew_event(&first, 10_000).await,
        Err(StoreError::StaleOperation(_))
    ));
    assert!(matches!(
        store.end_attempt(&first, done(FINISHED, 200)).await,
        Err(StoreError::StaleOperation(_))
    ));
    store
        .end_attempt(&second, done(FINISHED, 200))
        .await
        .expect("the holder ends it");
}

async fn retries_are_scheduled_on_the_database_clock(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    store
        .insert_event(&event("e1", "f", 1))
        .await
        .expect("accept");
    let c = store
        .claim_event("n/0", 10_000)
        .await
        .expect("claim")
        .expect("due");
    store
        .end_attempt(
            &c,
            EventEnd::Retry {
                delay_ms: 400,
                function_error: true,
                status_code: 430,
                error: "boom".into(),
            },
        )
        .await
        .expect("retry");
    let row = store
        .async_event(APP, "e1")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(row.status, RUNNING);
    assert_eq!((row.status_code, row.retry_num, row.throttles), (430, 1, 0));
    assert_eq!(row.last_error, "boom");
    // Not before its delay.
    assert!(
        store
            .claim_event("n/0", 10_000)
            .await
            .expect("claim")
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = store
        .claim_event("n/0", 10_000)
        .await
        .expect("claim")
        .expect("due again");
    // A retry is not a failed attempt: it gave its lease back.
    assert_eq!((c.attempt, c.failures, c.row.retry_num), (2, 0, 1));
    store
        .end_attempt(
            &c,
            EventEnd::Retry {
                delay_ms: 0,
                function_error: false,
                status_code: 432,
                error: "throttled".into(),
            },
        )
        .await
        .expect("throttled");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = store
        .claim_event("n/0", 10_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!((c.row.retry_num, c.row.throttles), (1, 1));
    store
        .end_attempt(
            &c,
            EventEnd::Done {
                status: FAILED,
                status_code: 430,
                error: "boom".into(),
                end_ms: 5_000,
            },
        )
        .await
        .expect("fail");
    let row = store
        .async_event(APP, "e1")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!((row.status.as_str(), row.end_ms), (FAILED, Some(5_000)));
}

async fn one_backlog_does_not_starve_other_functions(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    for i in 0..50 {
        store
            .insert_event(&event(&format!("big{i:02}"), "big", i))
            .await
            .expect("accept");
    }
    // Accepted after the whole backlog, yet claimed among the first.
    store
        .insert_event(&event("small0", "small", 100))
        .await
        .expect("accept");
    store
        .insert_event(&event("small1", "small", 101))
        .await
        .expect("accept");
    let mut order = Vec::new();
    for _ in 0..6 {
        let c = store
            .claim_event("n/0", 60_000)
            .await
            .expect("claim")
            .expect("due");
        order.push(c.row.function_name.clone());
    }
    assert_eq!(
        order.iter().filter(|f| *f == "small").count(),
        2,
        "both events of the small function run within the first six claims: {order:?}"
    );
}

async fn listing_filters_order_and_paging(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    for i in 0..10 {
        let mut e = event(&format!("e{i}"), "f", 1_000 * (i + 1));
        if i % 2 == 0 {
            e.qualifier = "$LATEST".into();
        }
        store.insert_event(&e).await.expect("accept");
    }
    // End e0..e3: FINISHED at 20_000 + i.
    for i in 0..4 {
        let c = store
            .claim_event("n/0", 60_000)
            .await
            .expect("claim")
            .expect("due");
        store
            .end_attempt(
                &c,
                EventEnd::Done {
                    status: if c.row.id == "e1" { FAILED } else { FINISHED },
                    status_code: 200,
                    error: String::new(),
                    end_ms: 20_000 + i,
                },
            )
            .await
            .expect("end");
    }
    store
        .insert_event(&event("other", "g", 500))
        .await
        .expect("accept");
    let ids = |(rows, _): &(Vec<store::EventRow>, i64)| -> Vec<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    };
    let all = store.async_events(&query("f")).await.expect("list");
    assert_eq!(all.1, 10, "only function f");
    assert_eq!(ids(&all)[0], "e9", "newest first by default");
    let asc = store
        .async_events(&EventQuery {
            descending: false,
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(ids(&asc)[0], "e0");
    let latest = store
        .async_events(&EventQuery {
            qualifier: Some("$LATEST".into()),
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(latest.1, 5);
    let running = store
        .async_events(&EventQuery {
            statuses: vec![RUNNING.into()],
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(running.1, 6);
    let ended = store
        .async_events(&EventQuery {
            statuses: vec![FINISHED.into(), FAILED.into()],
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(ended.1, 4);
    // [2000, 4000): e1 and e2, left-closed and right-open.
    let window = store
        .async_events(&EventQuery {
            start_interval: Some((2_000, 4_000)),
            descending: false,
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(ids(&window), ["e1", "e2"]);
    let by_end = store
        .async_events(&EventQuery {
            end_interval: Some((20_001, 20_003)),
            by_end: true,
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(by_end.0.len(), 2);
    assert!(by_end.0[0].end_ms > by_end.0[1].end_ms, "descending by end");
    let one = store
        .async_events(&EventQuery {
            request_id: Some("e7".into()),
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(ids(&one), ["e7"]);
    let types = store
        .async_events(&EventQuery {
            invoke_types: vec!["Timer".into()],
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(types.1, 0);
    let page = store
        .async_events(&EventQuery {
            offset: 3,
            limit: 4,
            descending: false,
            ..query("f")
        })
        .await
        .expect("list");
    assert_eq!(ids(&page), ["e3", "e4", "e5", "e6"]);
    assert_eq!(page.1, 10, "the total is before paging");
    // Pruning forgets ended events only.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.prune_events(0).await.expect("prune"), 4);
    assert_eq!(store.async_events(&query("f")).await.expect("list").1, 6);
}

async fn retry_settings_need_their_function(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    assert_eq!(
        store.event_config(APP, "default", "f").await.expect("read"),
        None
    );
    assert!(matches!(
        store.put_event_config(APP, "default", "f", 1, 600, 1).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.event_config(APP, "default", "f").await.expect("read"),
        None,
        "nothing written for a function that does not exist"
    );
}

async fn terminating_ends_a_waiting_event_and_flags_a_running_one(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    store
        .insert_event(&event("waiting", "f", 1))
        .await
        .expect("accept");
    store
        .insert_event(&event("running", "f", 2))
        .await
        .expect("accept");
    let abort = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .abort_event(APP, "default", "f", id, 439, 9_000, false)
                .await
                .expect("abort")
        }
    };
    assert_eq!(abort("nope").await, None);
    assert_eq!(
        store
            .abort_event(APP, "default", "g", "waiting", 439, 9_000, false)
            .await
            .expect("abort"),
        None,
        "another function's id is not found"
    );
    let held = loop {
        let c = store
            .claim_event("n/0", 60_000)
            .await
            .expect("claim")
            .expect("due");
        if c.row.id == "running" {
            break c;
        }
        // Give the other one back for later.
        store
            .end_attempt(
                &c,
                EventEnd::Retry {
                    delay_ms: 60_000,
                    function_error: true,
                    status_code: 430,
                    error: String::new(),
                },
            )
            .await
            .expect("retry later");
    };
    assert_eq!(abort("waiting").await, Some(Ok(store::Abort::Ended)));
    let row = store
        .async_event(APP, "waiting")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (row.status.as_str(), row.status_code, row.end_ms),
        ("ABORTED", 439, Some(9_000))
    );
    assert_eq!(abort("waiting").await, Some(Err("ABORTED".to_string())));
    assert_eq!(store.renew_event(&held, 60_000).await.expect("renew"), 0);
    let graceful = store
        .abort_event(APP, "default", "f", "running", 439, 9_000, true)
        .await
        .expect("abort");
    assert_eq!(graceful, Some(Ok(store::Abort::Requested)));
    assert_eq!(
        store.renew_event(&held, 60_000).await.expect("renew"),
        store::events::ABORT_GRACE,
        "the holder is told to stop gracefully"
    );
    assert_eq!(abort("running").await, Some(Ok(store::Abort::Requested)));
    assert_eq!(
        store.renew_event(&held, 60_000).await.expect("renew"),
        store::events::ABORT_KILL,
        "the holder is told to kill it"
    );
    let graceful = store
        .abort_event(APP, "default", "f", "running", 439, 9_000, true)
        .await
        .expect("abort");
    assert_eq!(graceful, Some(Ok(store::Abort::Requested)));
    assert_eq!(
        store.renew_event(&held, 60_000).await.expect("renew"),
        store::events::ABORT_KILL,
        "a kill already asked for wins over a later graceful stop"
    );
    store
        .end_attempt(&held, done(store::events::ABORTED, 439))
        .await
        .expect("end");
    assert_eq!(
        store
            .async_event(APP, "running")
            .await
            .expect("read")
            .expect("kept")
            .status,
        "ABORTED"
    );
}

async fn an_accepted_event_notifies_the_listeners(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    let Some(mut listener) = store.event_listener().await.expect("listen") else {
        assert_eq!(b, Backend::Sqlite, "only SQLite has no listener");
        return;
    };
    let waiting = tokio::spawn(async move { listener.recv().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .insert_event(&event("e1", "f", 1))
        .await
        .expect("accept");
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("notified at once")
        .expect("listener")
        .expect("notification");
    assert!(store.async_event(APP, "e1").await.expect("read").is_some());
}

async fn a_failed_end_and_its_dead_letter_commit_together(b: Backend) {
    let (store, _db, _dir) = open(&b).await;
    store
        .insert_event(&event("e1", "f", 1))
        .await
        .expect("accept");
    let c = store
        .claim_event("n/0", 60_000)
        .await
        .expect("claim")
        .expect("due");
    let letter = NewEvent {
        id: "dl1".into(),
        function_name: "dlq".into(),
        invoke_type: "DeadLetter".into(),
        event: r#"{"RequestID":"e1"}"#.into(),
        ..event("dl1", "dlq", 2)
    };
    // A stale attempt's end is refused, and its dead letter is not queued.
    let stale = ClaimedEvent {
        attempt: c.attempt + 1,
        ..c.clone()
    };
    assert!(matches!(
        store
            .end_attempt_then(&stale, done(FAILED, 430), Some(&letter))
            .await,
        Err(StoreError::StaleOperation(_))
    ));
    assert!(store.async_event(APP, "dl1").await.expect("read").is_none());
    store
        .end_attempt_then(&c, done(FAILED, 430), Some(&letter))
        .await
        .expect("end");
    assert_eq!(
        store
            .async_event(APP, "e1")
            .await
            .expect("read")
            .expect("kept")
            .status,
        "FAILED"
    );
    let queued = store
        .claim_event("n/0", 60_000)
        .await
        .expect("claim")
        .expect("the dead letter is due");
    assert_eq!(
        (
            queued.row.id.as_str(),
            queued.row.function_name.as_str(),
            queued.row.invoke_type.as_str(),
            queued.event.as_str()
        ),
        ("dl1", "dlq", "DeadLetter", r#"{"RequestID":"e1"}"#)
    );
}

async fn writes_grouped_in_one_transaction_keep_their_own_outcomes(b: Backend) {
    use store::{EventWrite, EventWritten};
    let (store, _db, _dir) = open(&b).await;
    let out = store
        .write_events(vec![
            EventWrite::Accept(event("e1", "f", 1)),
            EventWrite::Claim {
                owner: "n/0".into(),
                lease_ms: 60_000,
            },
            EventWrite::Claim {
                owner: "n/1".into(),
                lease_ms: 60_000,
            },
        ])
        .await
        .expect("group");
    let claimed = match &out[..] {
        [
            EventWritten::Done(Ok(())),
            EventWritten::Claimed(Some(c)),
            EventWritten::Claimed(None),
        ] => c.clone(),
        other => panic!("unexpected outcomes: {other:?}"),
    };
    assert_eq!(
        claimed.row.id, "e1",
        "a claim sees the acceptance before it"
    );
    let stale = ClaimedEvent {
        attempt: claimed.attempt + 1,
        ..claimed.clone()
    };
    let letter = event("dl", "dlq", 2);
    let out = store
        .write_events(vec![
            EventWrite::End {
                event: stale,
                end: done(FAILED, 430),
                next: Some(letter.clone()),
            },
            EventWrite::End {
                event: claimed,
                end: done(FINISHED, 200),
                next: None,
            },
        ])
        .await
        .expect("group");
    assert!(matches!(
        &out[..],
        [
            EventWritten::Done(Err(StoreError::StaleOperation(_))),
            EventWritten::Done(Ok(()))
        ]
    ));
    assert!(
        store.async_event(APP, "dl").await.expect("read").is_none(),
        "a refused end queues nothing"
    );
    assert_eq!(
        store
            .async_event(APP, "e1")
            .await
            .expect("read")
            .expect("kept")
            .status,
        "FINISHED"
    );
}

on_both_backends_async!(
    writes_grouped_in_one_transaction_keep_their_own_outcomes,
    a_failed_end_and_its_dead_letter_commit_together,
    an_accepted_event_notifies_the_listeners,
    terminating_ends_a_waiting_event_and_flags_a_running_one,
    retry_settings_need_their_function,
    accepted_events_are_claimed_with_their_content,
    claims_are_exclusive_under_concurrency,
    a_lapsed_lease_is_dispatched_again_and_fenced,
    retries_are_scheduled_on_the_database_clock,
    one_backlog_does_not_starve_other_functions,
    listing_filters_order_and_paging,
);
