//! Triggers in the store, each checked on SQLite and on PostgreSQL: uniqueness per function and type, the limit
//! per type counted in the inserting transaction (also under concurrency), writes conditional on the function's
//! revision that write nothing when refused, listing, the scheduler's read, and removal with the function, the
//! version or the alias a trigger is bound to.

use std::collections::BTreeSet;
use std::sync::Arc;

use model::{Alias, CodeRef, FunctionConfig, FunctionKey, FunctionStatus, RoutingConfig, Snapshot};
use store::{
    ClaimedOp, Finish, FunctionRow, NewOp, SqliteSync, Store, StoreError, TriggerOrder,
    TriggerQuery, TriggerRow,
};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async, zips};

const APP: i64 = 1_300_000_002;

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

    fn code(&self, n: u32) -> CodeRef {
        self.store
            .blobs
            .put(&zips::python_hello_v(n))
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

fn op(kind: &str, target: &str, now: i64) -> NewOp {
    NewOp {
        id: testkit::unique_name("op-"),
        app_id: APP,
        kind: kind.into(),
        target: target.into(),
        payload: "{}".into(),
        created_ms: now,
    }
}

fn alias(name: &str, version: &str, now: i64) -> Alias {
    Alias {
        name: name.into(),
        function_version: version.into(),
        routing: RoutingConfig::default(),
        description: String::new(),
        add_ms: now,
        mod_ms: now,
    }
}

async fn claim_id(store: &Store, _now: i64, id: &str) -> ClaimedOp {
    for _ in 0..100 {
        match store.claim_op("test", 1).await.expect("claim") {
            Some(op) if op.id == id => return op,
            Some(_) => continue,
            None => break,
        }
    }
    panic!("operation {id} could not be claimed");
}

/// An Active `$LATEST` record with its `$DEFAULT` alias.
async fn function(env: &Env, name: &str, now: i64) -> FunctionRow {
    let row = FunctionRow {
        id: testkit::unique_name("row-"),
        function_id: testkit::unique_name("lam-"),
        key: key(name),
        qualifier: "$LATEST".into(),
        status: FunctionStatus::Creating,
        reasons: Vec::new(),
        serving: None,
        pending: Some(Snapshot {
            code: env.code(1),
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
    };
    let create = op("CreateFunction", &row.id, now);
    env.store
        .create_function(&row, &alias("$DEFAULT", "$LATEST", now), &create)
        .await
        .expect("create");
    let claimed = claim_id(&env.store, now, &create.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::Promote {
                row_id: row.id.clone(),
                snapshot: row.pending.clone().expect("pending"),
                then_publish: None,
            },
            now,
        )
        .await
        .expect("promote");
    latest(env, name).await
}

async fn latest(env: &Env, name: &str) -> FunctionRow {
    env.store
        .function(&key(name), "$LATEST")
        .await
        .expect("read")
        .expect("$LATEST")
}

/// Publishes version 1 of `f` (left Publishing: enough to bind a trigger to it).
async fn version(env: &Env, f: &FunctionRow, now: i64) -> FunctionRow {
    let v = FunctionRow {
        id: testkit::unique_name("ver-"),
        qualifier: f.next_version.to_string(),
        status: FunctionStatus::Publishing,
        pending: f.serving.clone(),
        serving: None,
        next_version: 0,
        rev: 0,
        add_ms: now,
        mod_ms: now,
        ..f.clone()
    };
    env.store
        .begin_publish(&f.id, f.rev, &v, &op("PublishVersion", &v.id, now))
        .await
        .expect("publish");
    v
}

fn timer(f: &FunctionRow, name: &str, qualifier: &str, bound_row: &str, now: i64) -> TriggerRow {
    let alias = (qualifier != "$LATEST" && qualifier.parse::<u64>().is_err())
        .then(|| qualifier.to_string());
    TriggerRow {
        id: testkit::unique_name("trg-"),
        key: f.key.clone(),
        trigger_type: "timer".into(),
        name: name.into(),
        qualifier: qualifier.into(),
        function_row: bound_row.into(),
        alias,
        desc: r#"{"cron":"0 */5 * * * * *"}"#.into(),
        enabled: true,
        custom_argument: format!("arg of {name}"),
        description: format!("about {name}"),
        resource_id: format!("qcs::scf:test:uin/1:function/{}/{name}", f.key.name),
        rev: 0,
        add_ms: now,
        mod_ms: now,
    }
}

async fn names(store: &Store, f: &FunctionKey, q: &TriggerQuery) -> (Vec<String>, i64) {
    let (rows, total) = store.list_triggers(f, q).await.expect("list");
    (rows.into_iter().map(|t| t.name).collect(), total)
}

fn all() -> TriggerQuery {
    TriggerQuery {
        limit: 100,
        ..TriggerQuery::default()
    }
}

async fn create_read_update_delete(b: Backend) {
    let env = Env::new(&b).await;
    let f = function(&env, "clock", 1_000).await;
    let t = timer(&f, "tick", "$LATEST", &f.id, 2_000);
    assert!(
        env.store
            .create_trigger(&f.id, f.rev, &t, 10)
            .await
            .expect("create")
    );
    let read = env
        .store
        .trigger(&f.key, "timer", "tick")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(read, t, "stored as given");
    assert!(
        env.store
            .trigger(&f.key, "cos", "tick")
            .await
            .expect("read")
            .is_none(),
        "the type is part of the key"
    );

    // Same type and name: refused, the first one untouched.
    let dup = TriggerRow {
        id: testkit::unique_name("trg-"),
        description: "duplicate".into(),
        ..t.clone()
    };
    assert!(matches!(
        env.store.create_trigger(&f.id, f.rev, &dup, 10).await,
        Err(StoreError::AlreadyExists("trigger"))
    ));
    // The same name under another type is another trigger.
    let other_type = TriggerRow {
        id: testkit::unique_name("trg-"),
        trigger_type: "http".into(),
        ..t.clone()
    };
    assert!(
        env.store
            .create_trigger(&f.id, f.rev, &other_type, 10)
            .await
            .expect("other type")
    );

    // Update, conditional on the trigger's revision.
    let changed = TriggerRow {
        desc: r#"{"cron":"0 0 * * * * *"}"#.into(),
        enabled: false,
        custom_argument: String::new(),
        description: "hourly".into(),
        mod_ms: 3_000,
        ..read.clone()
    };
    env.store
        .update_trigger(&f.id, f.rev, &changed)
        .await
        .expect("update");
    let after = env
        .store
        .trigger(&f.key, "timer", "tick")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (
            after.desc.as_str(),
            after.enabled,
            after.custom_argument.as_str(),
            after.description.as_str()
        ),
        (r#"{"cron":"0 0 * * * * *"}"#, false, "", "hourly")
    );
    assert_eq!((after.rev, after.add_ms, after.mod_ms), (1, 2_000, 3_000));
    // A writer that read revision 0 is refused and writes nothing.
    let stale = TriggerRow {
        description: "stale".into(),
        ..changed.clone()
    };
    assert!(matches!(
        env.store.update_trigger(&f.id, f.rev, &stale).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        env.store
            .trigger(&f.key, "timer", "tick")
            .await
            .expect("read")
            .expect("kept")
            .description,
        "hourly"
    );

    assert!(
        env.store
            .delete_trigger(&f.id, f.rev, &t.id)
            .await
            .expect("delete")
    );
    assert!(
        !env.store
            .delete_trigger(&f.id, f.rev, &t.id)
            .await
            .expect("delete again"),
        "already gone"
    );
    assert_eq!(names(&env.store, &f.key, &all()).await.1, 1);
}

async fn writes_are_conditional_on_the_function_revision(b: Backend) {
    let env = Env::new(&b).await;
    let f = function(&env, "moving", 1_000).await;
    let t = timer(&f, "kept", "$LATEST", &f.id, 2_000);
    assert!(
        env.store
            .create_trigger(&f.id, f.rev, &t, 10)
            .await
            .expect("create")
    );
    // The function changes (here: a version is published, which bumps `$LATEST`'s revision).
    version(&env, &f, 2_500).await;
    let now = latest(&env, "moving").await;
    assert!(now.rev > f.rev);

    let late = timer(&f, "late", "$LATEST", &f.id, 3_000);
    assert!(matches!(
        env.store.create_trigger(&f.id, f.rev, &late, 10).await,
        Err(StoreError::Conflict)
    ));
    let changed = TriggerRow {
        enabled: false,
        ..t.clone()
    };
    assert!(matches!(
        env.store.update_trigger(&f.id, f.rev, &changed).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        env.store.delete_trigger(&f.id, f.rev, &t.id).await,
        Err(StoreError::Conflict)
    ));
    let (listed, total) = names(&env.store, &f.key, &all()).await;
    assert_eq!(
        (listed, total),
        (vec!["kept".to_string()], 1),
        "nothing written"
    );
    assert!(
        env.store
            .trigger(&f.key, "timer", "kept")
            .await
            .expect("read")
            .expect("kept")
            .enabled
    );
    // With the current revision the same writes go through.
    assert!(
        env.store
            .create_trigger(&now.id, now.rev, &late, 10)
            .await
            .expect("create")
    );
    env.store
        .update_trigger(&now.id, now.rev, &changed)
        .await
        .expect("update");
    assert!(
        env.store
            .delete_trigger(&now.id, now.rev, &t.id)
            .await
            .expect("delete")
    );
}

async fn at_most_the_limit_per_type(b: Backend) {
    let env = Env::new(&b).await;
    let f = function(&env, "busy", 1_000).await;
    for i in 0..3 {
        let t = timer(&f, &format!("t{i}"), "$LATEST", &f.id, 2_000 + i);
        assert!(
            env.store
                .create_trigger(&f.id, f.rev, &t, 3)
                .await
                .expect("create")
        );
    }
    let fourth = timer(&f, "t3", "$LATEST", &f.id, 3_000);
    assert!(
        !env.store
            .create_trigger(&f.id, f.rev, &fourth, 3)
            .await
            .expect("refused"),
        "the limit is reached"
    );
    assert!(
        env.store
            .trigger(&f.key, "timer", "t3")
            .await
            .expect("read")
            .is_none()
    );
    // Another type has its own count; another function too.
    let http = TriggerRow {
        trigger_type: "http".into(),
        ..fourth.clone()
    };
    assert!(
        env.store
            .create_trigger(&f.id, f.rev, &http, 3)
            .await
            .expect("other type")
    );
    let g = function(&env, "idle", 1_000).await;
    assert!(
        env.store
            .create_trigger(&g.id, g.rev, &timer(&g, "t0", "$LATEST", &g.id, 3_000), 3)
            .await
            .expect("other function")
    );
}

/// Concurrent creations of one function never exceed the limit: the count and the insert are one transaction
/// (PostgreSQL serialises them on the function's row).
async fn the_limit_holds_under_concurrency(b: Backend) {
    const TRIES: usize = 32;
    const MAX: i64 = 10;
    let env = Env::new(&b).await;
    let f = function(&env, "raced", 1_000).await;
    let store = Arc::new(env.store.clone());
    // Open the pool's connections first, so that the creations below really run side by side.
    let warm = (0..TRIES)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.pending_ops().await })
        })
        .collect::<Vec<_>>();
    for w in warm {
        w.await.expect("task").expect("warm up");
    }
    let tasks = (0..TRIES)
        .map(|i| {
            let store = store.clone();
            let t = timer(&f, &format!("r{i}"), "$LATEST", &f.id, 2_000 + i as i64);
            let (id, rev) = (f.id.clone(), f.rev);
            tokio::spawn(async move { store.create_trigger(&id, rev, &t, MAX).await })
        })
        .collect::<Vec<_>>();
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(true) => created += 1,
            Ok(false) => {}
            Err(e) => panic!("create failed: {e}"),
        }
    }
    assert_eq!(created, MAX, "exactly the limit is created");
    assert_eq!(names(&env.store, &f.key, &all()).await.1, MAX);
}

async fn list_filters_orders_and_pages(b: Backend) {
    let env = Env::new(&b).await;
    let f = function(&env, "listed", 1_000).await;
    let v1 = version(&env, &f, 1_500).await;
    let f = latest(&env, "listed").await;
    let specs = [
        ("alpha", "$LATEST", "first one", 2_000, 9_000),
        ("bravo", "1", "the version's", 3_000, 8_000),
        ("charlie", "$DEFAULT", "first 50% off", 4_000, 7_000),
        ("delta", "$LATEST", "another", 5_000, 6_000),
    ];
    for (name, q, desc, add, m) in specs {
        let row = if q == "1" { &v1.id } else { &f.id };
        let t = TriggerRow {
            description: desc.into(),
            mod_ms: m,
            ..timer(&f, name, q, row, add)
        };
        assert!(
            env.store
                .create_trigger(&f.id, f.rev, &t, 10)
                .await
                .expect("create")
        );
    }
    let q = |f: fn(&mut TriggerQuery)| {
        let mut q = all();
        f(&mut q);
        q
    };
    // Default: by modification time, here ascending.
    assert_eq!(
        names(&env.store, &f.key, &all()).await.0,
        ["delta", "charlie", "bravo", "alpha"]
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| {
                q.order_by = TriggerOrder::AddTime;
                q.descending = true;
            })
        )
        .await
        .0,
        ["delta", "charlie", "bravo", "alpha"]
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.order_by = TriggerOrder::AddTime)
        )
        .await
        .0,
        ["alpha", "bravo", "charlie", "delta"]
    );
    // Filters: qualifier and name exact (any of), description a substring (any of; `%` and `_` literal).
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.qualifiers = vec!["$LATEST".into()])
        )
        .await,
        (vec!["delta".to_string(), "alpha".to_string()], 2)
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.qualifiers = vec!["1".into(), "$DEFAULT".into()])
        )
        .await
        .1,
        2
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.names = vec!["bravo".into(), "nobody".into()])
        )
        .await,
        (vec!["bravo".to_string()], 1)
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.descriptions = vec!["first".into()])
        )
        .await
        .1,
        2
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.descriptions = vec!["50%".into()])
        )
        .await,
        (vec!["charlie".to_string()], 1)
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| q.descriptions = vec!["t_e".into()])
        )
        .await
        .1,
        0,
        "`_` is not a wildcard"
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| {
                q.qualifiers = vec!["$LATEST".into()];
                q.descriptions = vec!["first".into()];
            })
        )
        .await,
        (vec!["alpha".to_string()], 1),
        "filters combine"
    );
    // Paging keeps the total.
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| {
                q.order_by = TriggerOrder::AddTime;
                q.offset = 1;
                q.limit = 2;
            })
        )
        .await,
        (vec!["bravo".to_string(), "charlie".to_string()], 4)
    );
    assert_eq!(
        names(
            &env.store,
            &f.key,
            &q(|q| {
                q.offset = 10;
            })
        )
        .await,
        (vec![], 4)
    );
    // GetFunction's view: the triggers bound to one qualifier.
    let bound: Vec<String> = env
        .store
        .triggers_bound_to(&f.key, "$LATEST")
        .await
        .expect("bound")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(bound, ["alpha", "delta"]);
    // Another account sees none of them.
    let stranger = FunctionKey {
        app_id: APP + 1,
        ..f.key.clone()
    };
    assert_eq!(names(&env.store, &stranger, &all()).await.1, 0);
}

async fn open_triggers_are_the_enabled_ones_of_a_type(b: Backend) {
    let env = Env::new(&b).await;
    let f = function(&env, "one", 1_000).await;
    let g = function(&env, "two", 1_000).await;
    let open_f = timer(&f, "open", "$LATEST", &f.id, 2_000);
    let closed_f = TriggerRow {
        enabled: false,
        ..timer(&f, "closed", "$LATEST", &f.id, 2_000)
    };
    let open_g = timer(&g, "open", "$DEFAULT", &g.id, 2_000);
    let http_g = TriggerRow {
        trigger_type: "http".into(),
        ..timer(&g, "web", "$LATEST", &g.id, 2_000)
    };
    for (row, t) in [(&f, &open_f), (&f, &closed_f), (&g, &open_g), (&g, &http_g)] {
        assert!(
            env.store
                .create_trigger(&row.id, row.rev, t, 10)
                .await
                .expect("create")
        );
    }
    let open: BTreeSet<(String, String, String)> = env
        .store
        .open_triggers("timer")
        .await
        .expect("open")
        .into_iter()
        .map(|t| (t.key.name, t.name, t.qualifier))
        .collect();
    assert_eq!(
        open,
        BTreeSet::from([
            ("one".into(), "open".into(), "$LATEST".into()),
            ("two".into(), "open".into(), "$DEFAULT".into()),
        ])
    );
    // Closing one takes it out; reopening brings it back.
    let closing = TriggerRow {
        enabled: false,
        ..open_f.clone()
    };
    env.store
        .update_trigger(&f.id, f.rev, &closing)
        .await
        .expect("close");
    assert_eq!(
        env.store.open_triggers("timer").await.expect("open").len(),
        1
    );
    let reopening = TriggerRow {
        enabled: true,
        rev: 1,
        ..open_f.clone()
    };
    env.store
        .update_trigger(&f.id, f.rev, &reopening)
        .await
        .expect("reopen");
    assert_eq!(
        env.store.open_triggers("timer").await.expect("open").len(),
        2
    );
    assert_eq!(
        env.store.open_triggers("http").await.expect("open").len(),
        1
    );
}

async fn removal_of_what_a_trigger_is_bound_to_removes_it(b: Backend) {
    let env = Env::new(&b).await;
    let f = function(&env, "bound", 1_000).await;
    let v1 = version(&env, &f, 1_500).await;
    let f = latest(&env, "bound").await;
    assert!(
        env.store
            .create_alias(&f.key, &alias("prod", "1", 1_600), 10)
            .await
            .expect("alias")
    );
    let g = function(&env, "bystander", 1_000).await;
    for (row, t) in [
        (&f, timer(&f, "on-latest", "$LATEST", &f.id, 2_000)),
        (&f, timer(&f, "on-default", "$DEFAULT", &f.id, 2_000)),
        (&f, timer(&f, "on-prod", "prod", &f.id, 2_000)),
        (&f, timer(&f, "on-v1", "1", &v1.id, 2_000)),
        (&g, timer(&g, "other", "$LATEST", &g.id, 2_000)),
    ] {
        assert!(
            env.store
                .create_trigger(&row.id, row.rev, &t, 10)
                .await
                .expect("create")
        );
    }
    let bound_names = |store: Store| async move {
        names(&store, &key("bound"), &all())
            .await
            .0
            .into_iter()
            .collect::<BTreeSet<_>>()
    };

    // Deleting the alias takes its triggers.
    assert!(
        env.store
            .delete_alias(&f.key, "prod")
            .await
            .expect("delete alias")
    );
    assert_eq!(
        bound_names(env.store.clone()).await,
        BTreeSet::from(["on-default".into(), "on-latest".into(), "on-v1".into()])
    );

    // Deleting the version takes the triggers bound to it, and only those.
    let del = op("DeleteVersion", &v1.id, 3_000);
    let v1_now = env
        .store
        .function_by_id(&v1.id)
        .await
        .expect("read")
        .expect("v1");
    env.store
        .begin_change(
            &v1.id,
            v1_now.rev,
            FunctionStatus::Deleting,
            None,
            &del,
            3_000,
        )
        .await
        .expect("deleting v1");
    let claimed = claim_id(&env.store, 3_000, &del.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::DeleteVersion {
                row_id: v1.id.clone(),
            },
            3_100,
        )
        .await
        .expect("delete v1");
    assert_eq!(
        bound_names(env.store.clone()).await,
        BTreeSet::from(["on-default".into(), "on-latest".into()])
    );
    // A trigger bound to the version now gone cannot be inserted: the write is refused as a conflict.
    let f = latest(&env, "bound").await;
    assert!(matches!(
        env.store
            .create_trigger(&f.id, f.rev, &timer(&f, "orphan", "1", &v1.id, 3_200), 10)
            .await,
        Err(StoreError::Conflict)
    ));
    // Nor one bound to an alias that does not exist.
    assert!(matches!(
        env.store
            .create_trigger(&f.id, f.rev, &timer(&f, "orphan", "gone", &f.id, 3_200), 10)
            .await,
        Err(StoreError::Conflict)
    ));

    // Deleting the function takes every trigger of it, in the transaction that removes its records.
    let del = op("DeleteFunction", &f.id, 4_000);
    env.store
        .begin_change(&f.id, f.rev, FunctionStatus::Deleting, None, &del, 4_000)
        .await
        .expect("deleting");
    let claimed = claim_id(&env.store, 4_000, &del.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::DeleteFunction { key: f.key.clone() },
            4_100,
        )
        .await
        .expect("delete function");
    assert!(bound_names(env.store.clone()).await.is_empty());
    assert!(
        env.store
            .open_triggers("timer")
            .await
            .expect("open")
            .iter()
            .all(|t| t.key.name == "bystander"),
        "the scheduler sees none of the deleted function's triggers"
    );
    assert_eq!(names(&env.store, &g.key, &all()).await.1, 1);
    // A creation on the deleted function (its record is gone) writes nothing.
    assert!(matches!(
        env.store
            .create_trigger(
                &f.id,
                f.rev,
                &timer(&f, "late", "$LATEST", &f.id, 5_000),
                10
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(bound_names(env.store.clone()).await.is_empty());
}

on_both_backends_async!(
    create_read_update_delete,
    writes_are_conditional_on_the_function_revision,
    at_most_the_limit_per_type,
    the_limit_holds_under_concurrency,
    list_filters_orders_and_pages,
    open_triggers_are_the_enabled_ones_of_a_type,
    removal_of_what_a_trigger_is_bound_to_removes_it,
);
