//! Timer ticks in the store, each checked on SQLite and on PostgreSQL: a fired tick and its event are recorded
//! together and once, however many schedulers race on it; a decision made from a stale state, or for a trigger
//! that changed, closed or went away since it was read, records nothing; a skipped run is recorded without an
//! event; a thousand triggers due together go in one batch; pruning keeps the state of live triggers.

use std::sync::Arc;

use model::{Alias, CodeRef, FunctionConfig, FunctionKey, FunctionStatus, RoutingConfig, Snapshot};
use store::ticks::{FIRED, SKIPPED};
use store::{
    ClaimedOp, EventQuery, Finish, FunctionRow, NewEvent, NewOp, SkippedTicks, SqliteSync, Store,
    TickPlan, TriggerRow,
};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async, zips};

const APP: i64 = 1_300_000_002;
const TICK: i64 = 1_796_000_000_000;

struct Env {
    store: Store,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn new(b: &Backend) -> Env {
        let db = fresh_database_url(b);
        let dir = tempfile::tempdir().expect("data dir");
        let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
            .await
            .expect("open store");
        Env {
            store,
            _db: db,
            _dir: dir,
        }
    }

    fn code(&self) -> CodeRef {
        self.store
            .blobs
            .put(&zips::python_hello_v(1))
            .expect("put blob")
    }
}

fn key(name: &str) -> FunctionKey {
    FunctionKey {
        app_id: APP,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn op(kind: &str, target: &str) -> NewOp {
    NewOp {
        id: testkit::unique_name("op-"),
        app_id: APP,
        kind: kind.into(),
        target: target.into(),
        payload: "{}".into(),
        created_ms: 1,
    }
}

async fn claim_id(store: &Store, id: &str) -> ClaimedOp {
    for _ in 0..100 {
        match store.claim_op("test", 1).await.expect("claim") {
            Some(op) if op.id == id => return op,
            Some(_) => continue,
            None => break,
        }
    }
    panic!("operation {id} could not be claimed");
}

async fn latest(env: &Env, name: &str) -> FunctionRow {
    env.store
        .function(&key(name), "$LATEST")
        .await
        .expect("read")
        .expect("$LATEST")
}

/// An Active `$LATEST` record.
async fn function(env: &Env, name: &str) -> FunctionRow {
    let row = FunctionRow {
        id: testkit::unique_name("row-"),
        function_id: testkit::unique_name("lam-"),
        key: key(name),
        qualifier: "$LATEST".into(),
        status: FunctionStatus::Creating,
        reasons: Vec::new(),
        serving: None,
        pending: Some(Snapshot {
            code: env.code(),
            config: FunctionConfig {
                runtime: "Python3.9".into(),
                ..FunctionConfig::default()
            },
        }),
        version_description: String::new(),
        next_version: 1,
        rev: 0,
        add_ms: 1,
        mod_ms: 1,
    };
    let default = Alias {
        name: "$DEFAULT".into(),
        function_version: "$LATEST".into(),
        routing: RoutingConfig::default(),
        description: String::new(),
        add_ms: 1,
        mod_ms: 1,
    };
    let create = op("CreateFunction", &row.id);
    env.store
        .create_function(&row, &default, &create)
        .await
        .expect("create");
    let claimed = claim_id(&env.store, &create.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::Promote {
                row_id: row.id.clone(),
                snapshot: row.pending.clone().expect("pending"),
                then_publish: None,
            },
            1,
        )
        .await
        .expect("promote");
    latest(env, name).await
}

/// A per-second timer on `$LATEST` of `f`.
async fn timer(env: &Env, f: &str, name: &str) -> TriggerRow {
    let l = latest(env, f).await;
    let t = TriggerRow {
        id: testkit::unique_name("trg-"),
        key: l.key.clone(),
        trigger_type: "timer".into(),
        name: name.into(),
        qualifier: "$LATEST".into(),
        function_row: l.id.clone(),
        alias: None,
        desc: r#"{"cron":"* * * * * * *"}"#.into(),
        enabled: true,
        custom_argument: String::new(),
        description: String::new(),
        resource_id: format!("qcs::scf:test:uin/1:function/{f}/{name}"),
        rev: 0,
        add_ms: 1,
        mod_ms: 1,
    };
    assert!(
        env.store
            .create_trigger(&l.id, l.rev, &t, 100_000)
            .await
            .expect("create trigger")
    );
    t
}

fn event(f: &str, trigger: &str, tick: i64) -> NewEvent {
    NewEvent {
        id: testkit::unique_name("ev-"),
        app_id: APP,
        uin: "1".into(),
        region: "test".into(),
        namespace: "default".into(),
        function_name: f.into(),
        qualifier: "$LATEST".into(),
        version: "$LATEST".into(),
        invoke_type: "TRIGGER_TIMER".into(),
        event: format!(
            r#"{{"Type":"Timer","TriggerName":"{trigger}","Time":"{tick}","Message":""}}"#
        ),
        start_ms: tick,
    }
}

fn fire(t: &TriggerRow, read_last: Option<i64>, tick: i64) -> TickPlan {
    TickPlan {
        trigger_id: t.id.clone(),
        trigger_rev: t.rev,
        read_last_ms: read_last,
        last_ms: tick,
        skipped: None,
        fire: Some((tick, event(&t.key.name, &t.name, tick))),
    }
}

async fn timer_events(store: &Store, f: &str) -> Vec<store::EventRow> {
    let (rows, total) = store
        .async_events(&EventQuery {
            app_id: APP,
            namespace: "default".into(),
            function_name: f.into(),
            invoke_types: vec!["TRIGGER_TIMER".into()],
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(rows.len() as i64, total);
    rows
}

async fn a_tick_fires_once_with_its_event(b: Backend) {
    let env = Env::new(&b).await;
    function(&env, "f").await;
    let t = timer(&env, "f", "t").await;
    assert!(env.store.timer_states().await.expect("states").is_empty());
    let plan = fire(&t, None, TICK);
    let out = env
        .store
        .apply_ticks("n1", std::slice::from_ref(&plan))
        .await
        .expect("apply");
    assert_eq!(out.applied, vec![t.id.clone()]);
    let event_id = plan
        .fire
        .as_ref()
        .map(|(_, e)| e.id.clone())
        .expect("event");
    assert_eq!(out.fired, vec![(t.id.clone(), TICK, event_id.clone())]);
    assert_eq!(
        env.store.timer_states().await.expect("states").get(&t.id),
        Some(&TICK)
    );
    let ticks = env.store.timer_ticks(&t.id).await.expect("ticks");
    assert_eq!(ticks.len(), 1);
    assert_eq!(
        (
            ticks[0].tick_ms,
            ticks[0].status.as_str(),
            ticks[0].event_id.as_deref(),
            ticks[0].ticks
        ),
        (TICK, FIRED, Some(event_id.as_str()), 1)
    );
    assert_eq!(ticks[0].node, "n1");
    let events = timer_events(&env.store, "f").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].id.as_str(), events[0].status.as_str()),
        (event_id.as_str(), "RUNNING")
    );
    // The same decision again (a restarted node that read nothing yet), and one from the state before the tick:
    // nothing more is recorded.
    let again = env
        .store
        .apply_ticks("n2", &[fire(&t, None, TICK)])
        .await
        .expect("again");
    assert!(
        again.applied.is_empty() && again.fired.is_empty(),
        "{again:?}"
    );
    let stale = env
        .store
        .apply_ticks("n2", &[fire(&t, Some(TICK - 1000), TICK)])
        .await
        .expect("stale");
    assert!(stale.applied.is_empty(), "{stale:?}");
    assert_eq!(timer_events(&env.store, "f").await.len(), 1);
    // The next tick, decided from the state as it is, fires.
    let next = env
        .store
        .apply_ticks("n2", &[fire(&t, Some(TICK), TICK + 1000)])
        .await
        .expect("next");
    assert_eq!(next.fired.len(), 1);
    assert_eq!(timer_events(&env.store, "f").await.len(), 2);
}

async fn racing_schedulers_fire_a_tick_once(b: Backend) {
    let env = Env::new(&b).await;
    function(&env, "f").await;
    let t = timer(&env, "f", "t").await;
    let store = Arc::new(env.store.clone());
    for round in 0..5 {
        let tick = TICK + round * 1000;
        let read = (round > 0).then(|| tick - 1000);
        let tasks: Vec<_> = (0..6)
            .map(|n| {
                let store = store.clone();
                let plan = fire(&t, read, tick);
                tokio::spawn(async move { store.apply_ticks(&format!("n{n}"), &[plan]).await })
            })
            .collect();
        let mut fired = 0;
        for task in tasks {
            let out = task.await.expect("task").expect("apply");
            fired += out.fired.len();
        }
        assert_eq!(fired, 1, "tick {round} fired once");
    }
    assert_eq!(timer_events(&env.store, "f").await.len(), 5);
    assert_eq!(env.store.timer_ticks(&t.id).await.expect("ticks").len(), 5);
}

async fn a_trigger_that_moved_on_records_nothing(b: Backend) {
    let env = Env::new(&b).await;
    function(&env, "f").await;
    let t = timer(&env, "f", "t").await;
    let gone = timer(&env, "f", "gone").await;
    // Closed after the scheduler read it (the revision moves on).
    let l = latest(&env, "f").await;
    env.store
        .update_trigger(
            &l.id,
            l.rev,
            &TriggerRow {
                enabled: false,
                ..t.clone()
            },
        )
        .await
        .expect("close");
    let out = env
        .store
        .apply_ticks("n1", &[fire(&t, None, TICK)])
        .await
        .expect("apply");
    assert!(out.applied.is_empty(), "{out:?}");
    // Reopened: a decision from the old revision still records nothing; one from the new revision fires.
    let closed = env
        .store
        .trigger(&t.key, "timer", "t")
        .await
        .expect("read")
        .expect("trigger");
    let l = latest(&env, "f").await;
    env.store
        .update_trigger(
            &l.id,
            l.rev,
            &TriggerRow {
                enabled: true,
                ..closed.clone()
            },
        )
        .await
        .expect("open");
    let open = env
        .store
        .trigger(&t.key, "timer", "t")
        .await
        .expect("read")
        .expect("trigger");
    assert!(
        env.store
            .apply_ticks("n1", &[fire(&closed, None, TICK)])
            .await
            .expect("old")
            .applied
            .is_empty()
    );
    assert_eq!(
        env.store
            .apply_ticks("n1", &[fire(&open, None, TICK)])
            .await
            .expect("new")
            .fired
            .len(),
        1
    );
    // Deleted after it was read.
    let l = latest(&env, "f").await;
    assert!(
        env.store
            .delete_trigger(&l.id, l.rev, &gone.id)
            .await
            .expect("delete")
    );
    assert!(
        env.store
            .apply_ticks("n1", &[fire(&gone, None, TICK)])
            .await
            .expect("gone")
            .applied
            .is_empty()
    );
    assert_eq!(timer_events(&env.store, "f").await.len(), 1);
}

async fn skipped_ticks_are_recorded_without_an_event(b: Backend) {
    let env = Env::new(&b).await;
    function(&env, "f").await;
    let t = timer(&env, "f", "t").await;
    let skipped = SkippedTicks {
        first_ms: TICK,
        until_ms: TICK + 9_999,
        count: 10,
    };
    // Ten ticks skipped, the eleventh fires late.
    let plan = TickPlan {
        skipped: Some(skipped.clone()),
        ..fire(&t, None, TICK + 10_000)
    };
    let out = env.store.apply_ticks("n1", &[plan]).await.expect("apply");
    assert_eq!(out.skipped, vec![(t.id.clone(), skipped)]);
    assert_eq!(out.fired.len(), 1);
    // All skipped, nothing fires.
    let only = TickPlan {
        trigger_id: t.id.clone(),
        trigger_rev: t.rev,
        read_last_ms: Some(TICK + 10_000),
        last_ms: TICK + 100_000,
        skipped: Some(SkippedTicks {
            first_ms: TICK + 11_000,
            until_ms: TICK + 100_000,
            count: 90,
        }),
        fire: None,
    };
    let out = env.store.apply_ticks("n1", &[only]).await.expect("skip");
    assert_eq!(
        (out.applied.len(), out.fired.len(), out.skipped.len()),
        (1, 0, 1)
    );
    let rows = env.store.timer_ticks(&t.id).await.expect("ticks");
    let shape: Vec<(i64, &str, i64, i64)> = rows
        .iter()
        .map(|r| (r.tick_ms, r.status.as_str(), r.until_ms, r.ticks))
        .collect();
    assert_eq!(
        shape,
        vec![
            (TICK, SKIPPED, TICK + 9_999, 10),
            (TICK + 10_000, FIRED, TICK + 10_000, 1),
            (TICK + 11_000, SKIPPED, TICK + 100_000, 90),
        ]
    );
    assert_eq!(timer_events(&env.store, "f").await.len(), 1);
    assert_eq!(
        env.store.timer_states().await.expect("states").get(&t.id),
        Some(&(TICK + 100_000))
    );
}

async fn a_thousand_triggers_due_together_fire_in_one_batch(b: Backend) {
    let env = Env::new(&b).await;
    function(&env, "f").await;
    let mut triggers = Vec::new();
    for i in 0..1000 {
        triggers.push(timer(&env, "f", &format!("t{i}")).await);
    }
    let plans: Vec<TickPlan> = triggers.iter().map(|t| fire(t, None, TICK)).collect();
    let started = std::time::Instant::now();
    let out = env.store.apply_ticks("n1", &plans).await.expect("apply");
    let took = started.elapsed();
    assert_eq!(out.fired.len(), 1000);
    assert_eq!(timer_events(&env.store, "f").await.len(), 1000);
    assert_eq!(env.store.timer_states().await.expect("states").len(), 1000);
    eprintln!(
        "{}: 1000 ticks and their events recorded in {took:?}",
        b.name()
    );
    // The next second, from the states as they are.
    let plans: Vec<TickPlan> = triggers
        .iter()
        .map(|t| fire(t, Some(TICK), TICK + 1000))
        .collect();
    assert_eq!(
        env.store
            .apply_ticks("n1", &plans)
            .await
            .expect("next")
            .fired
            .len(),
        1000
    );
    assert_eq!(timer_events(&env.store, "f").await.len(), 2000);
}

async fn pruning_keeps_the_state_of_live_triggers(b: Backend) {
    let env = Env::new(&b).await;
    function(&env, "f").await;
    let t = timer(&env, "f", "t").await;
    let gone = timer(&env, "f", "gone").await;
    env.store
        .apply_ticks("n1", &[fire(&t, None, TICK), fire(&gone, None, TICK)])
        .await
        .expect("apply");
    let l = latest(&env, "f").await;
    assert!(
        env.store
            .delete_trigger(&l.id, l.rev, &gone.id)
            .await
            .expect("delete")
    );
    // Young rows stay; the deleted trigger's state goes.
    assert_eq!(env.store.prune_ticks(3_600_000).await.expect("prune"), 1);
    assert_eq!(env.store.timer_ticks(&t.id).await.expect("ticks").len(), 1);
    // Everything recorded before now goes, but the live trigger's state stays: its tick cannot fire again.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(env.store.prune_ticks(0).await.expect("prune"), 2);
    assert!(
        env.store
            .timer_ticks(&t.id)
            .await
            .expect("ticks")
            .is_empty()
    );
    assert_eq!(
        env.store.timer_states().await.expect("states").get(&t.id),
        Some(&TICK)
    );
    assert!(
        env.store
            .apply_ticks("n1", &[fire(&t, None, TICK)])
            .await
            .expect("again")
            .fired
            .is_empty()
    );
}

on_both_backends_async!(
    a_tick_fires_once_with_its_event,
    racing_schedulers_fire_a_tick_once,
    a_trigger_that_moved_on_records_nothing,
    skipped_ticks_are_recorded_without_an_event,
    a_thousand_triggers_due_together_fire_in_one_batch,
    pruning_keeps_the_state_of_live_triggers,
);
