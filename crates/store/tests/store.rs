//! The store's guarantees, each checked on SQLite and on PostgreSQL: migrations, the leased operation queue,
//! conditional writes that write nothing when refused, whole-function deletion, layer numbering, blobs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use model::{
    Alias, CodeRef, FunctionConfig, FunctionKey, FunctionStatus, LayerStatus, LayerVersion,
    RoutingConfig, Snapshot, StatusReason,
};
use store::{ClaimedOp, Finish, FunctionRow, NewOp, SqliteSync, Store, StoreError, layer_target};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async, zips};

const APP: i64 = 1_300_000_001;

/// A store on a fresh database and data directory.
struct Env {
    store: Store,
    db: TestDatabase,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new(b: &Backend) -> Env {
        let db = fresh_database_url(b);
        let dir = tempfile::tempdir().expect("data dir");
        let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
            .await
            .expect("open store");
        Env { store, db, dir }
    }

    /// Another handle on the same database and blobs (as a second process would have).
    async fn reopen(&self) -> Store {
        Store::open(self.db.url(), self.dir.path(), SqliteSync::Normal)
            .await
            .expect("reopen store")
    }

    /// Runs `sql` (one row, one integer column `n`) on a connection of its own.
    async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(self.db.url())
            .await
            .expect("inspection connection");
        let n = sqlx::query(sql)
            .fetch_one(&pool)
            .await
            .and_then(|r| r.try_get::<i64, _>("n"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        n
    }

    async fn op_state(&self, id: &str) -> Option<String> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(self.db.url())
            .await
            .expect("inspection connection");
        let r = sqlx::query("SELECT state, outcome FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await
            .expect("op state");
        pool.close().await;
        r.map(|r| {
            let state: String = r.try_get("state").expect("state");
            let outcome: Option<String> = r.try_get("outcome").expect("outcome");
            format!("{state}/{}", outcome.unwrap_or_default())
        })
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

fn snapshot(code: CodeRef) -> Snapshot {
    Snapshot {
        code,
        config: FunctionConfig {
            runtime: "Python3.9".into(),
            ..FunctionConfig::default()
        },
    }
}

fn unique_id(prefix: &str) -> String {
    testkit::unique_name(prefix)
}

/// A `$LATEST` record being created, with `pending` to prepare.
fn new_function(name: &str, code: CodeRef, now: i64) -> FunctionRow {
    FunctionRow {
        id: unique_id(&format!("row-{name}-")),
        function_id: unique_id("lam-"),
        key: key(name),
        qualifier: "$LATEST".into(),
        status: FunctionStatus::Creating,
        reasons: Vec::new(),
        serving: None,
        pending: Some(snapshot(code)),
        version_description: String::new(),
        next_version: 1,
        rev: 0,
        add_ms: now,
        mod_ms: now,
    }
}

fn default_alias(now: i64) -> Alias {
    Alias {
        name: "$DEFAULT".into(),
        function_version: "$LATEST".into(),
        routing: RoutingConfig::default(),
        description: String::new(),
        add_ms: now,
        mod_ms: now,
    }
}

fn new_op(kind: &str, target: &str, created_ms: i64) -> NewOp {
    NewOp {
        id: unique_id("op-"),
        app_id: APP,
        kind: kind.into(),
        target: target.into(),
        payload: "{}".into(),
        created_ms,
    }
}

/// Records a function being created with its operation; returns the row and the operation.
async fn create(env: &Env, name: &str, n: u32, now: i64) -> (FunctionRow, NewOp) {
    let row = new_function(name, env.code(n), now);
    let op = new_op("CreateFunction", &row.id, now);
    env.store
        .create_function(&row, &default_alias(now), &op)
        .await
        .expect("create function");
    (row, op)
}

/// Claims operations at `now` until `id` comes up, panicking if it never does. Every claim is leased for 1 ms, so
/// the operations passed over are claimable again at any later `now`.
async fn claim_id(store: &Store, owner: &str, now: i64, id: &str) -> ClaimedOp {
    for _ in 0..100 {
        match store.claim_op(owner, now, 1).await.expect("claim") {
            Some(op) if op.id == id => return op,
            Some(_) => continue,
            None => break,
        }
    }
    panic!("operation {id} could not be claimed");
}

/// Creates `name` and finishes its creation: an Active `$LATEST` at revision 1.
async fn create_active(env: &Env, name: &str, n: u32, now: i64) -> FunctionRow {
    let (row, op) = create(env, name, n, now).await;
    let claimed = claim_id(&env.store, "setup", now, &op.id).await;
    let snap = row.pending.clone().expect("pending");
    env.store
        .finish_op(
            &claimed,
            Finish::Promote {
                row_id: row.id.clone(),
                snapshot: snap,
                then_publish: None,
            },
            now,
        )
        .await
        .expect("promote");
    env.store
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row")
}

async fn migrations_apply_twice_idempotently(b: Backend) {
    let env = Env::new(&b).await;
    let version = env.store.schema_version().await.expect("version");
    assert!(version >= 1);
    let applied = env
        .count("SELECT COUNT(*) AS n FROM schema_migrations")
        .await;
    assert_eq!(
        applied,
        store::migration_versions().count() as i64,
        "one row per migration"
    );
    assert_eq!(Some(version), store::migration_versions().max());
    let (row, _) = create(&env, "survivor", 1, 1_000).await;
    env.store.close().await;

    // Opening again applies nothing and loses nothing.
    let again = env.reopen().await;
    assert_eq!(again.schema_version().await.expect("version"), version);
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM schema_migrations")
            .await,
        applied
    );
    let kept = again
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row kept");
    assert_eq!(kept, row);
    assert_eq!(again.pending_ops().await.expect("ops"), 1);
    again.close().await;

    // Several processes starting together on a fresh database: each gets a migrated schema, once.
    let fresh = fresh_database_url(&b);
    let dir = tempfile::tempdir().expect("data dir");
    let opens = (0..4).map(|_| {
        let url = fresh.url().to_string();
        let path = dir.path().to_path_buf();
        tokio::spawn(async move { Store::open(&url, &path, SqliteSync::Normal).await })
    });
    for s in futures_join(opens).await {
        let s = s.unwrap_or_else(|e| panic!("concurrent open failed: {e}"));
        assert_eq!(s.schema_version().await.expect("version"), version);
        s.close().await;
    }
}

/// Awaits spawned tasks in order.
async fn futures_join<T>(handles: impl IntoIterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

async fn claim_is_exclusive_under_concurrency(b: Backend) {
    const OPS: usize = 40;
    const WORKERS: usize = 8;
    let env = Env::new(&b).await;
    let mut ids = HashSet::new();
    for i in 0..OPS {
        let (_, op) = create(&env, &format!("f{i}"), i as u32, 1_000 + i as i64).await;
        ids.insert(op.id);
    }
    let store = Arc::new(env.store.clone());
    let workers = (0..WORKERS).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(op) = store
                .claim_op(&format!("worker-{w}"), 10_000, 600_000)
                .await
                .expect("claim")
            {
                assert_eq!(op.attempt, 1, "first claim of {}", op.id);
                mine.push(op.id);
                tokio::task::yield_now().await;
            }
            mine
        })
    });
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for mine in futures_join(workers).await {
        for id in mine {
            *seen.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "claimed more than once: {twice:?}");
    assert_eq!(
        seen.keys().cloned().collect::<HashSet<_>>(),
        ids,
        "every operation claimed"
    );
    // All leased: nothing more to claim until the leases run out.
    assert!(
        env.store
            .claim_op("late", 10_001, 1_000)
            .await
            .expect("claim")
            .is_none()
    );
    assert_eq!(env.store.pending_ops().await.expect("ops"), OPS as i64);
}

async fn expired_lease_is_reclaimed_and_the_stale_worker_refused(b: Backend) {
    let env = Env::new(&b).await;
    let t0 = 1_000_000;
    let (row, op) = create(&env, "leased", 1, t0).await;
    let a = env
        .store
        .claim_op("A", t0, 1_000)
        .await
        .expect("claim")
        .expect("op for A");
    assert_eq!((a.id.as_str(), a.attempt), (op.id.as_str(), 1));
    assert!(
        env.store
            .claim_op("B", t0 + 999, 1_000)
            .await
            .expect("claim")
            .is_none(),
        "a live lease is not claimed"
    );
    // A renews while alive...
    env.store
        .renew_op(&a, t0 + 500, 1_000)
        .await
        .expect("renew");
    assert!(
        env.store
            .claim_op("B", t0 + 1_200, 1_000)
            .await
            .expect("claim")
            .is_none(),
        "the renewed lease runs until t0 + 1500"
    );
    // ...then stalls; its lease runs out and B takes over with a higher attempt.
    let b_op = env
        .store
        .claim_op("B", t0 + 1_501, 1_000)
        .await
        .expect("claim")
        .expect("expired lease is claimable");
    assert_eq!(b_op.id, op.id);
    assert_eq!(b_op.attempt, 2);

    let promote = || Finish::Promote {
        row_id: row.id.clone(),
        snapshot: row.pending.clone().expect("pending"),
        then_publish: None,
    };
    assert!(matches!(
        env.store.renew_op(&a, t0 + 1_600, 1_000).await,
        Err(StoreError::StaleOperation(id)) if id == op.id
    ));
    assert!(matches!(
        env.store.finish_op(&a, promote(), t0 + 1_600).await,
        Err(StoreError::StaleOperation(_))
    ));
    let unchanged = env
        .store
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(unchanged, row, "a refused finish changes nothing");
    assert_eq!(env.op_state(&op.id).await.as_deref(), Some("pending/"));

    // The current holder renews and finishes.
    env.store
        .renew_op(&b_op, t0 + 1_700, 1_000)
        .await
        .expect("B renews");
    env.store
        .finish_op(
            &b_op,
            Finish::Fail {
                row_id: row.id.clone(),
                status: FunctionStatus::CreateFailed,
                reasons: vec![StatusReason::new(
                    "InvalidParameterValue.Handler",
                    "no file",
                )],
            },
            t0 + 1_800,
        )
        .await
        .expect("B finishes");
    let failed = env
        .store
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(failed.status, FunctionStatus::CreateFailed);
    assert_eq!(failed.rev, row.rev + 1);
    // A failed create keeps showing what was asked for.
    assert_eq!(failed.pending, row.pending);
    // Finished is final: neither worker can finish or renew again, and nothing is left to claim.
    for w in [&a, &b_op] {
        assert!(matches!(
            env.store.finish_op(w, promote(), t0 + 1_900).await,
            Err(StoreError::StaleOperation(_))
        ));
        assert!(matches!(
            env.store.renew_op(w, t0 + 1_900, 1_000).await,
            Err(StoreError::StaleOperation(_))
        ));
    }
    let after = env
        .store
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(after, failed);
    assert_eq!(env.store.pending_ops().await.expect("ops"), 0);
    assert!(
        env.store
            .claim_op("C", t0 + 100_000, 1_000)
            .await
            .expect("claim")
            .is_none()
    );
}

async fn stale_revision_is_a_conflict_and_writes_no_operation(b: Backend) {
    let env = Env::new(&b).await;
    let row = create_active(&env, "rev", 1, 1_000).await;
    assert_eq!(row.status, FunctionStatus::Active);
    let stale = row.rev - 1;
    let pending = snapshot(env.code(2));
    let op = new_op("UpdateFunction", &row.id, 2_000);
    assert!(matches!(
        env.store
            .begin_change(
                &row.id,
                stale,
                FunctionStatus::Updating,
                Some(&pending),
                &op,
                2_000
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(env.op_state(&op.id).await, None, "no operation written");
    assert_eq!(env.store.pending_ops().await.expect("ops"), 0);
    let same = env
        .store
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(same, row);

    // Publishing from a stale revision: no version record, no operation, no number taken.
    let version = FunctionRow {
        id: unique_id("ver-"),
        qualifier: "1".into(),
        status: FunctionStatus::Publishing,
        pending: row.serving.clone(),
        serving: None,
        next_version: 0,
        rev: 0,
        ..row.clone()
    };
    let vop = new_op("PublishVersion", &version.id, 2_000);
    assert!(matches!(
        env.store
            .begin_publish(&row.id, stale, &version, &vop)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(env.op_state(&vop.id).await, None);
    assert!(
        env.store
            .function_by_id(&version.id)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        env.store
            .function_by_id(&row.id)
            .await
            .expect("read")
            .expect("row")
            .next_version,
        1
    );

    // With the current revision the change is recorded with its operation.
    env.store
        .begin_change(
            &row.id,
            row.rev,
            FunctionStatus::Updating,
            Some(&pending),
            &op,
            2_000,
        )
        .await
        .expect("current revision");
    assert_eq!(env.op_state(&op.id).await.as_deref(), Some("pending/"));
    let changed = env
        .store
        .function_by_id(&row.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(changed.status, FunctionStatus::Updating);
    assert_eq!(changed.pending.as_ref(), Some(&pending));
    assert_eq!(changed.serving, row.serving, "serving untouched");
    assert_eq!(changed.rev, row.rev + 1);
    // The revision it was decided from is now stale too.
    let op2 = new_op("DeleteFunction", &row.id, 3_000);
    assert!(matches!(
        env.store
            .begin_change(
                &row.id,
                row.rev,
                FunctionStatus::Deleting,
                None,
                &op2,
                3_000
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(env.op_state(&op2.id).await, None);
}

async fn create_with_a_taken_name_writes_nothing(b: Backend) {
    let env = Env::new(&b).await;
    let (first, _) = create(&env, "taken", 1, 1_000).await;
    let second = new_function("taken", env.code(2), 2_000);
    let op = new_op("CreateFunction", &second.id, 2_000);
    assert!(matches!(
        env.store
            .create_function(&second, &default_alias(2_000), &op)
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(env.op_state(&op.id).await, None, "no operation written");
    assert_eq!(env.store.pending_ops().await.expect("ops"), 1);
    assert!(
        env.store
            .function_by_id(&second.id)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        env.store
            .function_records(&key("taken"))
            .await
            .expect("records"),
        vec![first]
    );
    assert_eq!(
        env.store
            .aliases(&key("taken"))
            .await
            .expect("aliases")
            .len(),
        1
    );
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM functions").await, 1);

    // The same name elsewhere (another namespace, another account) is another function.
    let mut other_ns = new_function("taken", env.code(3), 3_000);
    other_ns.key.namespace = "team".into();
    let mut other_app = new_function("taken", env.code(4), 3_000);
    other_app.key.app_id = APP + 1;
    for row in [other_ns, other_app] {
        let op = new_op("CreateFunction", &row.id, 3_000);
        env.store
            .create_function(&row, &default_alias(3_000), &op)
            .await
            .expect("same name elsewhere");
    }
    assert_eq!(env.store.pending_ops().await.expect("ops"), 3);
}

async fn delete_function_removes_everything_and_cancels_its_operations(b: Backend) {
    let env = Env::new(&b).await;
    let f = create_active(&env, "doomed", 1, 1_000).await;
    let g = create_active(&env, "bystander", 2, 1_000).await;

    // f: a version being published (its operation pending and held by a worker), an alias, an update.
    let version = FunctionRow {
        id: unique_id("ver-"),
        qualifier: "1".into(),
        status: FunctionStatus::Publishing,
        pending: f.serving.clone(),
        serving: None,
        next_version: 0,
        rev: 0,
        ..f.clone()
    };
    let vop = new_op("PublishVersion", &version.id, 2_000);
    env.store
        .begin_publish(&f.id, f.rev, &version, &vop)
        .await
        .expect("publish");
    let held = claim_id(&env.store, "publisher", 2_000, &vop.id).await;
    let prod = Alias {
        name: "prod".into(),
        function_version: "1".into(),
        ..default_alias(2_000)
    };
    assert!(
        env.store
            .create_alias(&f.key, &prod, 10)
            .await
            .expect("alias")
    );
    // g: an update still pending; and a layer version being published.
    let gop = new_op("UpdateFunction", &g.id, 2_500);
    let gpending = snapshot(env.code(3));
    env.store
        .begin_change(
            &g.id,
            g.rev,
            FunctionStatus::Updating,
            Some(&gpending),
            &gop,
            2_500,
        )
        .await
        .expect("update g");
    let layer_op_id = publish_layer(&env, "lib", 2_600).await.1;

    let f_now = env
        .store
        .function_by_id(&f.id)
        .await
        .expect("read")
        .expect("f");
    let dop = new_op("DeleteFunction", &f.id, 3_000);
    env.store
        .begin_change(
            &f.id,
            f_now.rev,
            FunctionStatus::Deleting,
            None,
            &dop,
            3_000,
        )
        .await
        .expect("delete f");
    let deleter = claim_id(&env.store, "deleter", 3_000, &dop.id).await;
    env.store
        .finish_op(
            &deleter,
            Finish::DeleteFunction { key: f.key.clone() },
            3_100,
        )
        .await
        .expect("finish delete");

    assert!(
        env.store
            .function_records(&f.key)
            .await
            .expect("records")
            .is_empty(),
        "every record of the function goes"
    );
    assert!(env.store.aliases(&f.key).await.expect("aliases").is_empty());
    assert_eq!(
        env.op_state(&vop.id).await.as_deref(),
        Some("done/cancelled"),
        "the function's pending operations are cancelled"
    );
    assert!(matches!(
        env.store.finish_op(&held, Finish::Nothing, 3_200).await,
        Err(StoreError::StaleOperation(_))
    ));
    assert_eq!(env.op_state(&dop.id).await.as_deref(), Some("done/deleted"));
    // Other functions and layers keep theirs.
    assert_eq!(env.op_state(&gop.id).await.as_deref(), Some("pending/"));
    assert_eq!(
        env.op_state(&layer_op_id).await.as_deref(),
        Some("pending/")
    );
    assert_eq!(
        env.store.function_records(&g.key).await.expect("g").len(),
        1
    );
    assert_eq!(env.store.aliases(&g.key).await.expect("g aliases").len(), 1);
    assert_eq!(env.store.pending_ops().await.expect("ops"), 2);
}

fn layer(name: &str, content: CodeRef, now: i64) -> LayerVersion {
    LayerVersion {
        app_id: APP,
        name: name.into(),
        version: 0,
        status: LayerStatus::Publishing,
        reasons: Vec::new(),
        description: String::new(),
        license: String::new(),
        compatible_runtimes: vec!["Python3.9".into()],
        content,
        add_ms: now,
    }
}

/// Records a new layer version being published; returns its number and its operation's id.
async fn publish_layer(env: &Env, name: &str, now: i64) -> (i64, String) {
    publish_layer_on(&env.store, name, env.code(900), now).await
}

async fn publish_layer_on(store: &Store, name: &str, content: CodeRef, now: i64) -> (i64, String) {
    let mut op_id = String::new();
    let v = store
        .begin_publish_layer(&layer(name, content, now), 200, |v| {
            let op = new_op("PublishLayer", &layer_target(APP, name, v), now);
            op_id = op.id.clone();
            op
        })
        .await
        .expect("publish layer")
        .expect("under the version limit");
    (v, op_id)
}

/// Finishes a layer operation with `status`.
async fn finish_layer(env: &Env, op_id: &str, name: &str, v: i64, status: LayerStatus) {
    let op = claim_id(&env.store, "layers", 5_000, op_id).await;
    env.store
        .finish_op(
            &op,
            Finish::Layer {
                app_id: APP,
                name: name.into(),
                version: v,
                status,
                reasons: Vec::new(),
            },
            5_000,
        )
        .await
        .expect("finish layer op");
}

/// Deletes a layer version through the recorded path (Deleting, then Deleted).
async fn delete_layer(env: &Env, name: &str, v: i64) {
    let row = env
        .store
        .layer_version(APP, name, v)
        .await
        .expect("read")
        .expect("layer version");
    let op = new_op("DeleteLayer", &layer_target(APP, name, v), 6_000);
    env.store
        .begin_layer_change(&row, LayerStatus::Deleting, &op, 6_000)
        .await
        .expect("begin delete");
    finish_layer(env, &op.id, name, v, LayerStatus::Deleted).await;
}

async fn layer_version_numbers_are_never_reused(b: Backend) {
    let env = Env::new(&b).await;
    let mut ops = Vec::new();
    for want in 1..=3 {
        let (v, op) = publish_layer(&env, "lib", 1_000).await;
        assert_eq!(v, want);
        ops.push(op);
    }
    for (i, op) in ops.iter().enumerate() {
        finish_layer(&env, op, "lib", i as i64 + 1, LayerStatus::Active).await;
    }
    // Deleting the newest does not give its number back.
    delete_layer(&env, "lib", 3).await;
    let deleted = env
        .store
        .layer_version(APP, "lib", 3)
        .await
        .expect("read")
        .expect("tombstone kept");
    assert_eq!(deleted.layer.status, LayerStatus::Deleted);
    assert_eq!(publish_layer(&env, "lib", 7_000).await.0, 4);
    // Nor does deleting every version.
    for v in [1, 2] {
        delete_layer(&env, "lib", v).await;
    }
    let live: Vec<i64> = env
        .store
        .layer_versions(APP, "lib")
        .await
        .expect("versions")
        .iter()
        .map(|l| l.layer.version)
        .collect();
    assert_eq!(live, [4], "tombstones are not listed");
    assert_eq!(publish_layer(&env, "lib", 8_000).await.0, 5);

    // Concurrent publishes of a new layer get distinct numbers 1..=N.
    const N: i64 = 12;
    let content = env.code(901);
    let tasks = (0..N).map(|_| {
        let store = env.store.clone();
        let content = content.clone();
        tokio::spawn(async move { publish_layer_on(&store, "busy", content, 9_000).await.0 })
    });
    let mut got = futures_join(tasks).await;
    got.sort();
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
}

async fn blob_put_is_durable_and_idempotent(b: Backend) {
    let env = Env::new(&b).await;
    let bytes = zips::python_hello_v(77);
    let code = env.store.blobs.put(&bytes).expect("put");
    assert_eq!(code.sha256, store::sha256_hex(&bytes));
    assert_eq!(code.size, bytes.len() as u64);
    let path = env.store.blobs.path(&code.sha256);
    assert_eq!(std::fs::read(&path).expect("blob file"), bytes);
    assert_eq!(env.store.blobs.put(&bytes).expect("put again"), code);
    let tmp = env.dir.path().join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).expect("tmp dir").count(),
        0,
        "no temporary file is left behind"
    );
    // Another process opening the directory sees it, and clears what a crash mid-write left.
    std::fs::write(tmp.join("half-written"), b"partial").expect("leftover");
    let other = env.reopen().await;
    assert_eq!(other.blobs.read(&code.sha256).expect("read"), bytes);
    assert!(other.blobs.exists(&code.sha256));
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp dir").count(), 0);
    assert!(matches!(
        other.blobs.read(&"0".repeat(64)),
        Err(StoreError::BlobMissing { .. })
    ));
    // Concurrent puts of the same bytes all succeed and leave one intact blob.
    let big = zips::python_hello_v(78);
    let puts = (0..8).map(|_| {
        let blobs = env.store.blobs.clone();
        let big = big.clone();
        std::thread::spawn(move || blobs.put(&big))
    });
    let refs: Vec<CodeRef> = puts
        .map(|h| h.join().expect("thread").expect("concurrent put"))
        .collect();
    assert!(refs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(other.blobs.read(&refs[0].sha256).expect("read"), big);
}

async fn collect_keeps_referenced_blobs(b: Backend) {
    let env = Env::new(&b).await;
    let blobs = env.store.blobs.clone();
    let unzip = store::unzip::UnzipLimits::default();
    // pending code of a function being created
    let (creating, create_op) = create(&env, "creating", 1, 1_000).await;
    let pending_code = creating.pending.clone().expect("pending").code;
    // serving code of an Active function
    let active = create_active(&env, "active", 2, 1_000).await;
    let serving_code = active.serving.clone().expect("serving").code;
    // content of a live layer version
    let layer_content = env.code(3);
    let (lv, lop) = publish_layer_on(&env.store, "lib", layer_content.clone(), 1_000).await;
    // nobody's
    let orphan = env.code(4);
    for sha in [&pending_code.sha256, &orphan.sha256] {
        blobs.ensure_unpacked(sha, &unzip).expect("unpack");
    }

    let refs = env.store.referenced_blobs().await.expect("referenced");
    for (what, sha) in [
        ("pending code", &pending_code.sha256),
        ("serving code", &serving_code.sha256),
        ("layer content", &layer_content.sha256),
    ] {
        assert!(refs.contains(sha), "{what} is referenced");
    }
    assert!(!refs.contains(&orphan.sha256));
    // Within the grace period even an unreferenced blob stays (its record may not be committed yet).
    assert_eq!(
        blobs
            .collect(&refs, Duration::from_secs(3600))
            .expect("collect"),
        0
    );
    assert_eq!(blobs.collect(&refs, Duration::ZERO).expect("collect"), 1);
    assert!(!blobs.exists(&orphan.sha256));
    assert!(!blobs.unpacked_path(&orphan.sha256).exists());
    for sha in [
        &pending_code.sha256,
        &serving_code.sha256,
        &layer_content.sha256,
    ] {
        assert!(blobs.exists(sha), "referenced blob {sha} kept");
    }
    assert!(blobs.unpacked_path(&pending_code.sha256).exists());

    // Once the function is deleted its code is no longer referenced and goes.
    let op = claim_id(&env.store, "gc", 2_000, &create_op.id).await;
    env.store
        .finish_op(
            &op,
            Finish::DeleteFunction {
                key: creating.key.clone(),
            },
            2_000,
        )
        .await
        .expect("delete");
    let refs = env.store.referenced_blobs().await.expect("referenced");
    assert!(!refs.contains(&pending_code.sha256));
    assert_eq!(blobs.collect(&refs, Duration::ZERO).expect("collect"), 1);
    assert!(!blobs.exists(&pending_code.sha256));
    assert!(blobs.exists(&serving_code.sha256));

    // A deleted layer version's content stays while a function snapshot binds it, and goes after.
    finish_layer(&env, &lop, "lib", lv, LayerStatus::Active).await;
    let mut bound = snapshot(env.code(5));
    bound.config.layers = vec![model::LayerRef {
        name: "lib".into(),
        version: lv,
    }];
    let binder = FunctionRow {
        pending: Some(bound),
        ..new_function("binder", env.code(5), 3_000)
    };
    let bop = new_op("CreateFunction", &binder.id, 3_000);
    env.store
        .create_function(&binder, &default_alias(3_000), &bop)
        .await
        .expect("binder");
    delete_layer(&env, "lib", lv).await;
    let refs = env.store.referenced_blobs().await.expect("referenced");
    assert!(
        refs.contains(&layer_content.sha256),
        "bound deleted layer kept"
    );
    let claimed = claim_id(&env.store, "gc", 7_000, &bop.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::DeleteFunction {
                key: binder.key.clone(),
            },
            7_000,
        )
        .await
        .expect("delete binder");
    let refs = env.store.referenced_blobs().await.expect("referenced");
    assert!(!refs.contains(&layer_content.sha256));
    blobs.collect(&refs, Duration::ZERO).expect("collect");
    assert!(!blobs.exists(&layer_content.sha256));
    assert!(blobs.exists(&serving_code.sha256));
}

on_both_backends_async!(
    migrations_apply_twice_idempotently,
    claim_is_exclusive_under_concurrency,
    expired_lease_is_reclaimed_and_the_stale_worker_refused,
    stale_revision_is_a_conflict_and_writes_no_operation,
    create_with_a_taken_name_writes_nothing,
    delete_function_removes_everything_and_cancels_its_operations,
    layer_version_numbers_are_never_reused,
    blob_put_is_durable_and_idempotent,
    collect_keeps_referenced_blobs,
);
