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
        Env::with_inline(b, store::DEFAULT_INLINE_BLOB_BYTES).await
    }

    /// With packages up to `inline` bytes kept in the database only (0: every package in a file).
    async fn with_inline(b: &Backend, inline: u64) -> Env {
        let db = fresh_database_url(b);
        let dir = tempfile::tempdir().expect("data dir");
        let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
            .await
            .expect("open store")
            .with_inline_blob_bytes(inline);
        Env { store, db, dir }
    }

    /// Makes a package look uploaded an hour ago, wherever it is kept.
    async fn age_blob(&self, sha256: &str) {
        let path = self.store.blobs.path(sha256);
        if path.is_file() {
            std::fs::File::options()
                .append(true)
                .open(&path)
                .and_then(|f| {
                    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
                })
                .expect("age the local blob");
        }
        exec(
            self,
            &format!(
                "UPDATE blobs SET created_ms = created_ms - 3600000 WHERE sha256 = '{sha256}'"
            ),
        )
        .await;
    }

    /// How many rows of the `blobs` table hold this package.
    async fn blob_rows(&self, sha256: &str) -> i64 {
        self.count(&format!(
            "SELECT COUNT(*) AS n FROM blobs WHERE sha256 = '{sha256}'"
        ))
        .await
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

/// Claims operations until `id` comes up, panicking if it never does. The operations passed over are given back
/// (their lease renewed to run out at once), so they are claimable again; their next claim counts a failure.
async fn claim_id(store: &Store, owner: &str, id: &str) -> ClaimedOp {
    let mut passed = Vec::new();
    for _ in 0..100 {
        match store.claim_op(owner, 60_000).await.expect("claim") {
            Some(op) if op.id == id => {
                for other in &passed {
                    store.renew_op(other, -1).await.expect("give back");
                }
                return op;
            }
            Some(other) => passed.push(other),
            None => break,
        }
    }
    panic!("operation {id} could not be claimed");
}

/// Creates `name` and finishes its creation: an Active `$LATEST` at revision 1.
async fn create_active(env: &Env, name: &str, n: u32, now: i64) -> FunctionRow {
    let (row, op) = create(env, name, n, now).await;
    let claimed = claim_id(&env.store, "setup", &op.id).await;
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
/// Awaits every task. The tasks are spawned (the iterator drained) before the first is awaited, so that a lazy
/// `map(tokio::spawn)` still runs them all at once rather than one after another.
async fn futures_join<T>(handles: impl IntoIterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let handles: Vec<_> = handles.into_iter().collect();
    let mut out = Vec::with_capacity(handles.len());
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
                .claim_op(&format!("worker-{w}"), 600_000)
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
            .claim_op("late", 1_000)
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
        .claim_op("A", 60_000)
        .await
        .expect("claim")
        .expect("op for A");
    assert_eq!(
        (a.id.as_str(), a.attempt, a.failures),
        (op.id.as_str(), 1, 0)
    );
    assert!(
        env.store
            .claim_op("B", 60_000)
            .await
            .expect("claim")
            .is_none(),
        "a live lease is not claimed"
    );
    // A renews while alive...
    env.store.renew_op(&a, 60_000).await.expect("renew");
    assert!(
        env.store
            .claim_op("B", 60_000)
            .await
            .expect("claim")
            .is_none(),
        "the renewed lease is live"
    );
    // ...then renews for a short while and stalls; its lease runs out and B takes over with a higher attempt,
    // counting A's attempt as failed.
    env.store.renew_op(&a, 200).await.expect("renew");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_op = env
        .store
        .claim_op("B", 60_000)
        .await
        .expect("claim")
        .expect("expired lease is claimable");
    assert_eq!(b_op.id, op.id);
    assert_eq!((b_op.attempt, b_op.failures), (2, 1));

    let promote = || Finish::Promote {
        row_id: row.id.clone(),
        snapshot: row.pending.clone().expect("pending"),
        then_publish: None,
    };
    assert!(matches!(
        env.store.renew_op(&a, 60_000).await,
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
    env.store.renew_op(&b_op, 60_000).await.expect("B renews");
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
            env.store.renew_op(w, 60_000).await,
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
            .claim_op("C", 1_000)
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
    let held = claim_id(&env.store, "publisher", &vop.id).await;
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
    let deleter = claim_id(&env.store, "deleter", &dop.id).await;
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
    let op = claim_id(&env.store, "layers", op_id).await;
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
    let own_tmp = env.store.blobs.temp_dir().to_path_buf();
    assert!(own_tmp.starts_with(env.dir.path().join("tmp")));
    assert_eq!(
        std::fs::read_dir(&own_tmp)
            .expect("tmp dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != "lock"))
            .count(),
        0,
        "no temporary file is left behind"
    );
    // Another handle on the directory sees it, and leaves the first one's temporary files alone.
    std::fs::write(own_tmp.join("in-progress"), b"partial").expect("work in progress");
    let other = env.reopen().await;
    assert_eq!(other.blobs.read(&code.sha256).expect("read"), bytes);
    assert!(other.blobs.exists(&code.sha256));
    assert_ne!(other.blobs.temp_dir(), own_tmp);
    assert_eq!(other.blobs.clean_stale_temp().expect("clean"), 0);
    assert!(own_tmp.join("in-progress").exists());
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
    let op = claim_id(&env.store, "gc", &create_op.id).await;
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
    let claimed = claim_id(&env.store, "gc", &bop.id).await;
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

// ---------------------------------------------------------------------------------------------------------------
// Races of blob collection, aliases against version deletes (hardening)
// ---------------------------------------------------------------------------------------------------------------

/// Runs one statement on a connection of its own.
async fn exec(env: &Env, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(env.db.url())
        .await
        .expect("inspection connection");
    sqlx::query(sql)
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

/// Records a function whose pending code is `code`; returns the row and its operation.
async fn create_with(env: &Env, name: &str, code: CodeRef, now: i64) -> (FunctionRow, NewOp) {
    let row = new_function(name, code, now);
    let op = new_op("CreateFunction", &row.id, now);
    env.store
        .create_function(&row, &default_alias(now), &op)
        .await
        .expect("create function");
    (row, op)
}

/// A collection held at a fail point: `reached` fires when it gets there, and it goes on when this is dropped.
#[cfg(feature = "failpoints")]
struct Held {
    name: &'static str,
    reached: std::sync::mpsc::Receiver<()>,
    _release: std::sync::mpsc::Sender<()>,
}

#[cfg(feature = "failpoints")]
impl Held {
    fn at(name: &'static str) -> Held {
        let (reached_tx, reached) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let reached_tx = std::sync::Mutex::new(reached_tx);
        let release_rx = std::sync::Mutex::new(release_rx);
        fail::cfg_callback(name, move || {
            if let Ok(tx) = reached_tx.lock() {
                let _ = tx.send(());
            }
            // Bounded: a test that forgets to release fails on its own deadline, not here.
            if let Ok(rx) = release_rx.lock() {
                let _ = rx.recv_timeout(Duration::from_secs(30));
            }
        })
        .expect("configure fail point");
        Held {
            name,
            reached,
            _release: release,
        }
    }

    async fn wait_reached(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.reached.try_recv() {
                Ok(()) => return,
                Err(std::sync::mpsc::TryRecvError::Empty)
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("the collection never reached {}: {e}", self.name),
            }
        }
    }
}

#[cfg(feature = "failpoints")]
impl Drop for Held {
    fn drop(&mut self) {
        fail::remove(self.name);
    }
}

/// Fail points are process-wide: the tests that hold a collection run one at a time.
#[cfg(feature = "failpoints")]
static FAILPOINT_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A create of a zip whose earlier function was deleted (so its blob is old and unreferenced: a collection's
/// candidate) races the collector, held between reading the references and deleting (before and after it moves
/// the candidates aside): the blob is never lost, on this node nor (PostgreSQL) for another node that fetches it
/// from the shared table. Before the fix, the local unlink took the refreshed blob and the shared row kept its
/// first upload's time, so both went.
#[cfg(feature = "failpoints")]
async fn collection_racing_a_create_of_the_same_zip_keeps_its_blob(b: Backend) {
    let _serial = FAILPOINT_TESTS.lock().await;
    // Packages in files, and small packages kept in the database only.
    for inline in [0, store::DEFAULT_INLINE_BLOB_BYTES] {
        collection_racing_a_create(&b, inline).await;
    }
}

#[cfg(feature = "failpoints")]
async fn collection_racing_a_create(b: &Backend, inline: u64) {
    let env = Env::with_inline(b, inline).await;
    // Another node: its own blob directory, the same database.
    let node_b_dir = tempfile::tempdir().expect("node b dir");
    let node_b = Store::open(env.db.url(), node_b_dir.path(), SqliteSync::Normal)
        .await
        .expect("node b")
        .with_inline_blob_bytes(inline);
    let shared = b.is_postgres() || inline > 0;
    let grace = Duration::from_secs(60);
    let mut round = 0u32;
    for point in ["collect-blobs-chosen", "collect-blobs-moved"] {
        for _ in 0..3 {
            round += 1;
            let now = 10_000 + i64::from(round) * 100;
            let zip = zips::python_hello_v(5_000 + round);
            // The zip's first function, deleted: its blob is unreferenced and (aged) past the grace period.
            let code = env.store.put_blob(zip.clone()).await.expect("first upload");
            let (first, op) = create_with(&env, &format!("first{round}"), code.clone(), now).await;
            let claimed = claim_id(&env.store, "deleter", &op.id).await;
            env.store
                .finish_op(
                    &claimed,
                    Finish::DeleteFunction {
                        key: first.key.clone(),
                    },
                    now,
                )
                .await
                .expect("delete the first function");
            assert_eq!(
                env.store.blobs.path(&code.sha256).is_file(),
                inline == 0,
                "a small package makes no file"
            );
            env.age_blob(&code.sha256).await;

            let held = Held::at(point);
            let collector = {
                let store = env.store.clone();
                tokio::spawn(async move { store.collect_blobs(grace).await })
            };
            held.wait_reached().await;
            if point == "collect-blobs-moved" {
                // Moved aside, the blob is still found by readers (a worker preparing a record that committed
                // during the collection).
                assert_eq!(
                    env.store.blobs.exists(&code.sha256),
                    inline == 0,
                    "round {round}: found while aside"
                );
                assert_eq!(
                    env.store.read_blob(&code.sha256).await.expect("read aside"),
                    zip
                );
            }
            // The racing create: upload the same zip again, then commit a record that references it.
            let again = env.store.put_blob(zip.clone()).await.expect("re-upload");
            assert_eq!(again, code);
            let (second, _) = create_with(&env, &format!("second{round}"), again, now + 1).await;
            drop(held);
            collector
                .await
                .expect("collector task")
                .expect("collection");

            if inline == 0 {
                assert!(
                    env.store.blobs.path(&code.sha256).is_file(),
                    "round {round} ({point}): the committed record's blob is in place"
                );
            } else {
                assert_eq!(
                    env.blob_rows(&code.sha256).await,
                    1,
                    "round {round} ({point})"
                );
            }
            assert_eq!(env.store.read_blob(&code.sha256).await.expect("read"), zip);
            if shared {
                assert_eq!(
                    node_b
                        .read_blob(&code.sha256)
                        .await
                        .unwrap_or_else(|e| panic!(
                            "round {round} ({point}): another node cannot fetch the blob: {e}"
                        )),
                    zip
                );
            }
            // And later collections keep it while the record refers to it.
            env.store
                .collect_blobs(Duration::ZERO)
                .await
                .expect("collect");
            assert_eq!(env.store.read_blob(&code.sha256).await.expect("kept"), zip);
            let row = env
                .store
                .function_by_id(&second.id)
                .await
                .expect("read")
                .expect("the second function");
            assert_eq!(row.pending.expect("pending").code, code);
            assert_eq!(
                std::fs::read_dir(env.store.blobs.temp_dir().join("trash"))
                    .map(|d| d.count())
                    .unwrap_or(0),
                0,
                "nothing left aside"
            );
        }
    }
    // Unreferenced and old, a blob does go (the collection still collects).
    let orphan = env
        .store
        .put_blob(zips::python_hello_v(4_999))
        .await
        .expect("orphan");
    env.age_blob(&orphan.sha256).await;
    assert_eq!(env.store.collect_blobs(grace).await.expect("collect"), 1);
    assert!(!env.store.blobs.exists(&orphan.sha256));
    assert_eq!(env.blob_rows(&orphan.sha256).await, 0);
    assert!(matches!(
        env.store.read_blob(&orphan.sha256).await,
        Err(StoreError::BlobMissing { .. })
    ));
    node_b.close().await;
}

/// A re-upload of bytes already in the shared table restarts their grace period there too.
async fn re_upload_restarts_the_grace_period(b: Backend) {
    for inline in [0, store::DEFAULT_INLINE_BLOB_BYTES] {
        let env = Env::with_inline(&b, inline).await;
        let zip = zips::python_hello_v(4_998);
        let code = env.store.put_blob(zip.clone()).await.expect("upload");
        env.age_blob(&code.sha256).await;
        env.store.put_blob(zip.clone()).await.expect("upload again");
        // Unreferenced, but uploaded just now: a collection with a minute's grace keeps it everywhere.
        assert_eq!(
            env.store
                .collect_blobs(Duration::from_secs(60))
                .await
                .expect("collect"),
            0
        );
        assert_eq!(env.store.read_blob(&code.sha256).await.expect("kept"), zip);
        assert_eq!(env.store.blobs.exists(&code.sha256), inline == 0);
        if b.is_postgres() || inline > 0 {
            assert_eq!(
                env.count(&format!(
                    "SELECT COUNT(*) AS n FROM blobs WHERE sha256 = '{}' AND created_ms > 0",
                    code.sha256
                ))
                .await,
                1
            );
        }
    }
}

/// Small packages live in the `blobs` table only: no file until an instance needs the tree; then the local copy
/// and its tree are a cache that a collection may take while the row stays, and an unreferenced old row goes.
async fn small_packages_live_in_the_database(b: Backend) {
    let env = Env::new(&b).await;
    let small = zips::python_hello_v(4_997);
    let code = env.store.put_blob(small.clone()).await.expect("upload");
    assert!(
        !env.store.blobs.exists(&code.sha256),
        "no file for a small package"
    );
    assert_eq!(env.blob_rows(&code.sha256).await, 1);
    assert_eq!(
        env.store.read_blob(&code.sha256).await.expect("read"),
        small
    );
    assert!(
        !env.store.blobs.exists(&code.sha256),
        "reading writes no file"
    );
    // A large package is a file (and, on PostgreSQL only, a row too).
    let large_env = Env::with_inline(&b, 16).await;
    let large = large_env
        .store
        .put_blob(small.clone())
        .await
        .expect("upload large");
    assert!(large_env.store.blobs.path(&large.sha256).is_file());
    assert_eq!(
        large_env.blob_rows(&large.sha256).await,
        i64::from(b.is_postgres())
    );

    // Referenced by a function being created: kept by collections, whatever its age.
    let (f, op) = create_with(&env, "small", code.clone(), 1_000).await;
    env.age_blob(&code.sha256).await;
    assert_eq!(
        env.store
            .collect_blobs(Duration::ZERO)
            .await
            .expect("collect"),
        0
    );
    assert_eq!(env.blob_rows(&code.sha256).await, 1);
    // The first instance start writes the local copy and unpacks it, once.
    env.store
        .ensure_local_blob(&code.sha256)
        .await
        .expect("local copy");
    let tree = env
        .store
        .blobs
        .ensure_unpacked(&code.sha256, &store::unzip::UnzipLimits::default())
        .expect("unpack");
    assert!(tree.unpacked_now && tree.path.join("index.py").is_file());
    // Deleted, its row, local copy and tree all go once old.
    let claimed = claim_id(&env.store, "deleter", &op.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::DeleteFunction { key: f.key.clone() },
            2_000,
        )
        .await
        .expect("delete");
    env.age_blob(&code.sha256).await;
    assert_eq!(
        env.store
            .collect_blobs(Duration::from_secs(60))
            .await
            .expect("collect"),
        1
    );
    assert_eq!(env.blob_rows(&code.sha256).await, 0);
    assert!(!env.store.blobs.exists(&code.sha256));
    assert!(!tree.path.exists());
    large_env.store.close().await;
}

/// Concurrent first unpacks of one package in a process: one unpacks, the others find its tree.
async fn concurrent_first_unpacks_unpack_once(b: Backend) {
    let env = Env::new(&b).await;
    let code = env.code(4_996);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let blobs = env.store.blobs.clone();
            let sha = code.sha256.clone();
            std::thread::spawn(move || {
                blobs
                    .ensure_unpacked(&sha, &store::unzip::UnzipLimits::default())
                    .expect("unpack")
            })
        })
        .collect();
    let trees: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(trees.iter().filter(|t| t.unpacked_now).count(), 1);
    assert!(
        trees
            .windows(2)
            .all(|w| w[0].path == w[1].path && w[0].bytes == w[1].bytes)
    );
}

/// An Active version `v` of `f` (published through the recorded path).
async fn active_version(env: &Env, f: &FunctionRow, now: i64) -> FunctionRow {
    let latest = env
        .store
        .function_by_id(&f.id)
        .await
        .expect("read")
        .expect("latest");
    let version = FunctionRow {
        id: unique_id("ver-"),
        qualifier: latest.next_version.to_string(),
        status: FunctionStatus::Publishing,
        pending: latest.serving.clone(),
        serving: None,
        next_version: 0,
        rev: 0,
        ..latest.clone()
    };
    let op = new_op("PublishVersion", &version.id, now);
    env.store
        .begin_publish(&latest.id, latest.rev, &version, &op)
        .await
        .expect("publish");
    let claimed = claim_id(&env.store, "publisher", &op.id).await;
    env.store
        .finish_op(
            &claimed,
            Finish::Promote {
                row_id: version.id.clone(),
                snapshot: version.pending.clone().expect("pending"),
                then_publish: None,
            },
            now,
        )
        .await
        .expect("promote version");
    env.store
        .function_by_id(&version.id)
        .await
        .expect("read")
        .expect("version")
}

fn alias_to(name: &str, version: &str, now: i64) -> Alias {
    Alias {
        name: name.into(),
        function_version: version.into(),
        ..default_alias(now)
    }
}

/// The interleavings the control plane's early checks cannot see, decided inside the store's transactions: an
/// alias written after its version started deleting, and a version delete started after an alias came to route
/// to it, are both refused (`Conflict`: decide again), and write nothing.
async fn aliases_and_version_deletes_refuse_each_other(b: Backend) {
    let env = Env::new(&b).await;
    let f = create_active(&env, "aliased", 1, 1_000).await;
    let v1 = active_version(&env, &f, 2_000).await;
    let v2 = active_version(&env, &f, 2_100).await;
    let v3 = active_version(&env, &f, 2_200).await;

    // The alias's checks passed (v1 Active), then the delete of v1 committed: the alias write is refused.
    let dop = new_op("DeleteVersion", &v1.id, 3_000);
    env.store
        .begin_delete_version(&v1, &dop, 3_000)
        .await
        .expect("delete v1");
    assert!(matches!(
        env.store
            .create_alias(&f.key, &alias_to("a1", "1", 3_100), 10)
            .await,
        Err(StoreError::Conflict)
    ));
    let mut weighted = alias_to("a2", "2", 3_100);
    weighted.routing.weights = vec![model::VersionWeight {
        version: "1".into(),
        weight: 0.5,
    }];
    assert!(matches!(
        env.store.create_alias(&f.key, &weighted, 10).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        env.store
            .update_alias(&f.key, &alias_to("$DEFAULT", "1", 3_200))
            .await,
        Err(StoreError::Conflict)
    ));
    let names: Vec<String> = env
        .store
        .aliases(&f.key)
        .await
        .expect("aliases")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, vec!["$DEFAULT".to_string()]);
    assert_eq!(
        env.store
            .alias(&f.key, "$DEFAULT")
            .await
            .expect("read")
            .expect("$DEFAULT")
            .function_version,
        "$LATEST"
    );

    // The delete's checks passed (no alias), then an alias to v2 committed: the delete is refused.
    assert!(
        env.store
            .create_alias(&f.key, &alias_to("prod", "2", 4_000), 10)
            .await
            .expect("alias to v2")
    );
    let ops_before = env.store.pending_ops().await.expect("ops");
    assert!(matches!(
        env.store
            .begin_delete_version(&v2, &new_op("DeleteVersion", &v2.id, 4_100), 4_100)
            .await,
        Err(StoreError::Conflict)
    ));
    // Also when the alias only routes part of the traffic there.
    let mut canary = alias_to("canary", "2", 4_200);
    canary.routing.weights = vec![model::VersionWeight {
        version: "3".into(),
        weight: 0.1,
    }];
    assert!(
        env.store
            .create_alias(&f.key, &canary, 10)
            .await
            .expect("canary alias")
    );
    assert!(matches!(
        env.store
            .begin_delete_version(&v3, &new_op("DeleteVersion", &v3.id, 4_300), 4_300)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(env.store.pending_ops().await.expect("ops"), ops_before);
    for v in [&v2, &v3] {
        let now = env
            .store
            .function_by_id(&v.id)
            .await
            .expect("read")
            .expect("version kept");
        assert_eq!(now.status, FunctionStatus::Active);
        assert_eq!(now.rev, v.rev, "nothing written");
    }
    // Unbound, it can go.
    assert!(
        env.store
            .delete_alias(&f.key, "canary")
            .await
            .expect("unbind")
    );
    env.store
        .begin_delete_version(&v3, &new_op("DeleteVersion", &v3.id, 4_400), 4_400)
        .await
        .expect("delete v3");

    // A function that is gone takes no alias.
    assert!(matches!(
        env.store
            .create_alias(&key("nobody"), &alias_to("x", "$LATEST", 5_000), 10)
            .await,
        Err(StoreError::Conflict)
    ));
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
    small_packages_live_in_the_database,
    concurrent_first_unpacks_unpack_once,
);

on_both_backends_async!(
    re_upload_restarts_the_grace_period,
    aliases_and_version_deletes_refuse_each_other,
);

#[cfg(feature = "failpoints")]
on_both_backends_async!(collection_racing_a_create_of_the_same_zip_keeps_its_blob);

// ---- Leases on the database's clock, and failed attempts counted apart from claims ----

mod leases {
    use super::*;

    /// `lease_until` and `updated_ms` of an operation, read on a connection of its own.
    async fn lease_of(env: &Env, id: &str) -> (i64, i64) {
        let until = env
            .count(&format!(
                "SELECT lease_until AS n FROM operations WHERE id = '{id}'"
            ))
            .await;
        let updated = env
            .count(&format!(
                "SELECT updated_ms AS n FROM operations WHERE id = '{id}'"
            ))
            .await;
        (until, updated)
    }

    /// Whatever the callers' clocks say (this operation is dated 1970), a lease runs from the database's clock.
    pub(super) async fn leases_run_on_the_database_clock(b: Backend) {
        let env = Env::new(&b).await;
        let (_, op) = create(&env, "clocked", 1, 1_000).await;
        let before = env.store.clock_ms().await.expect("clock");
        assert!(
            (before - store::now_ms()).abs() < 5_000,
            "the database's clock is in milliseconds since the epoch: {before}"
        );
        let a = env
            .store
            .claim_op("A", 30_000)
            .await
            .expect("claim")
            .expect("the operation");
        let after = env.store.clock_ms().await.expect("clock");
        let (until, updated) = lease_of(&env, &op.id).await;
        assert!(
            (before + 30_000..=after + 30_000).contains(&until),
            "lease_until {until} not 30 s after the claim ({before}..{after})"
        );
        assert!((before..=after).contains(&updated), "updated_ms {updated}");

        let before = env.store.clock_ms().await.expect("clock");
        env.store.renew_op(&a, 45_000).await.expect("renew");
        let after = env.store.clock_ms().await.expect("clock");
        let (until, _) = lease_of(&env, &op.id).await;
        assert!(
            (before + 45_000..=after + 45_000).contains(&until),
            "renewed lease_until {until} not 45 s after the renewal ({before}..{after})"
        );
    }

    /// `attempt` changes on every claim; `failures` only when a claim takes over an attempt whose lease ran out
    /// unfinished. Claims that find the lease live change nothing, and a holder that renews a lapsed lease before
    /// anyone claimed it has not failed.
    pub(super) async fn failures_count_attempts_that_ran_out_unfinished(b: Backend) {
        let env = Env::new(&b).await;
        let (row, op) = create(&env, "counted", 1, 1_000).await;
        let claim = |owner: &'static str| {
            let store = env.store.clone();
            async move { store.claim_op(owner, 60_000).await.expect("claim") }
        };
        let a = claim("A").await.expect("the operation");
        assert_eq!((a.attempt, a.failures), (1, 0));
        for _ in 0..10 {
            assert!(claim("B").await.is_none(), "the lease is live");
        }
        // A stalls past its lease, then renews before anyone claimed: it still holds the operation.
        env.store.renew_op(&a, -1).await.expect("renew");
        env.store
            .renew_op(&a, 60_000)
            .await
            .expect("a lapsed lease nobody claimed is renewed");
        assert!(claim("B").await.is_none());
        // A's lease runs out for good: B's claim counts A's attempt as failed, once.
        env.store.renew_op(&a, -1).await.expect("renew");
        let b_op = claim("B").await.expect("the operation");
        assert_eq!(
            (b_op.id.as_str(), b_op.attempt, b_op.failures),
            (op.id.as_str(), 2, 1)
        );
        assert!(matches!(
            env.store.renew_op(&a, 60_000).await,
            Err(StoreError::StaleOperation(_))
        ));
        env.store.renew_op(&b_op, -1).await.expect("renew");
        let c = claim("C").await.expect("the operation");
        assert_eq!((c.attempt, c.failures), (3, 2));
        env.store
            .finish_op(
                &c,
                Finish::Promote {
                    row_id: row.id.clone(),
                    snapshot: row.pending.clone().expect("pending"),
                    then_publish: None,
                },
                2_000,
            )
            .await
            .expect("C finishes");
        assert!(claim("D").await.is_none());
        assert_eq!(env.op_state(&op.id).await.as_deref(), Some("done/active"));
    }

    /// A finished operation is forgotten by its age on the database's clock, not by the time its finisher's
    /// clock gave the record.
    pub(super) async fn finished_operations_are_pruned_by_the_database_clock(b: Backend) {
        let env = Env::new(&b).await;
        let (row, op) = create(&env, "pruned", 1, 1_000).await;
        let held = claim_id(&env.store, "A", &op.id).await;
        env.store
            .finish_op(
                &held,
                Finish::Fail {
                    row_id: row.id.clone(),
                    status: FunctionStatus::CreateFailed,
                    reasons: Vec::new(),
                },
                // A node whose clock says 1970.
                1_000,
            )
            .await
            .expect("finish");
        assert_eq!(env.store.prune_ops(60_000).await.expect("prune"), 0);
        assert_eq!(env.op_state(&op.id).await.as_deref(), Some("done/failed"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(env.store.prune_ops(10).await.expect("prune"), 1);
        assert_eq!(env.op_state(&op.id).await, None);
    }
}

use leases::{
    failures_count_attempts_that_ran_out_unfinished,
    finished_operations_are_pruned_by_the_database_clock, leases_run_on_the_database_clock,
};

on_both_backends_async!(
    leases_run_on_the_database_clock,
    failures_count_attempts_that_ran_out_unfinished,
    finished_operations_are_pruned_by_the_database_clock,
);
