//! The control plane in process, with no lifecycle worker running unless a test runs one step
//! (`run_one`): transitional statuses then last as long as a test needs, so the acceptance table and racing
//! calls are checked deterministically. Each test runs on SQLite and on PostgreSQL.

use std::sync::Arc;

use control::{Caller, Control, ControlConfig, ControlError, CreateFunction, FunctionRow};
use model::{ConfigPatch, FunctionAction, FunctionStatus, Rejection};
use store::{SqliteSync, Store};
use testkit::{Backend, TestDatabase, fresh_database_url, on_both_backends_async, zips};

struct Env {
    ctl: Control,
    caller: Caller,
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
        let ctl = Control::new(store, ControlConfig::default());
        let a = ctl.create_account().await.expect("account");
        Env {
            ctl,
            caller: Caller {
                app_id: a.app_id,
                uin: a.uin,
            },
            _db: db,
            _dir: dir,
        }
    }

    async fn create(&self, name: &str, zip: Vec<u8>) -> control::Result<()> {
        self.ctl
            .create_function(
                &self.caller,
                CreateFunction {
                    namespace: "default".into(),
                    name: name.into(),
                    zip,
                    patch: ConfigPatch {
                        runtime: Some("Python3.9".into()),
                        handler: Some("index.main_handler".into()),
                        ..ConfigPatch::default()
                    },
                },
            )
            .await
    }

    async fn row(&self, name: &str, qualifier: Option<&str>) -> FunctionRow {
        self.ctl
            .get_function(&self.caller, "default", name, qualifier)
            .await
            .unwrap_or_else(|e| panic!("GetFunction {name}: {e}"))
            .row
    }

    async fn status(&self, name: &str) -> FunctionStatus {
        self.row(name, None).await.status
    }

    /// Runs queued operations until none is left (bounded).
    async fn drain(&self) {
        for _ in 0..100 {
            if !self.ctl.run_one("test-worker").await.expect("run_one") {
                return;
            }
        }
        panic!("operations kept coming");
    }

    async fn update_config(&self, name: &str, description: &str) -> control::Result<()> {
        self.ctl
            .update_function_configuration(
                &self.caller,
                "default",
                name,
                ConfigPatch {
                    description: Some(description.into()),
                    ..ConfigPatch::default()
                },
                false,
            )
            .await
    }

    async fn update_code(&self, name: &str, zip: Vec<u8>) -> control::Result<()> {
        self.ctl
            .update_function_code(&self.caller, "default", name, zip, None, false)
            .await
    }

    async fn publish(&self, name: &str) -> control::Result<FunctionRow> {
        self.ctl
            .publish_version(&self.caller, "default", name, "")
            .await
    }

    async fn delete(&self, name: &str) -> control::Result<()> {
        self.ctl
            .delete_function(&self.caller, "default", name, None)
            .await
    }

    async fn pending_ops(&self) -> i64 {
        self.ctl.store().pending_ops().await.expect("pending ops")
    }
}

/// Expects `r` to be refused for `action` in `status`: transitional statuses refuse with `Transitional`, the
/// others with `NotAllowed`.
fn assert_refused<T: std::fmt::Debug>(
    r: control::Result<T>,
    status: FunctionStatus,
    action: FunctionAction,
) {
    let want = if status.is_transitional() {
        Rejection::Transitional { status, action }
    } else {
        Rejection::NotAllowed { status, action }
    };
    match r {
        Err(ControlError::Rejected(got)) => assert_eq!(got, want),
        other => panic!("{action:?} in {status}: expected {want:?}, got {other:?}"),
    }
}

/// Every mutating call on `name` in `status` is refused, and nothing is queued by the attempts.
async fn all_refused(env: &Env, name: &str, status: FunctionStatus, delete_too: bool) {
    let ops = env.pending_ops().await;
    assert_eq!(env.status(name).await, status);
    assert_refused(
        env.update_code(name, zips::python_hello_v(9)).await,
        status,
        FunctionAction::UpdateFunctionCode,
    );
    assert_refused(
        env.update_config(name, "x").await,
        status,
        FunctionAction::UpdateFunctionConfiguration,
    );
    assert_refused(
        env.publish(name).await,
        status,
        FunctionAction::PublishVersion,
    );
    if delete_too {
        assert_refused(
            env.delete(name).await,
            status,
            FunctionAction::DeleteFunction,
        );
    }
    assert!(matches!(
        env.create(name, zips::python_hello()).await,
        Err(ControlError::FunctionExists(_))
    ));
    assert_eq!(env.pending_ops().await, ops, "refused calls queue nothing");
    assert_eq!(
        env.status(name).await,
        status,
        "refused calls change nothing"
    );
}

async fn acceptance_table(b: Backend) {
    let env = Env::new(&b).await;
    // Creating: everything refused; then Active.
    env.create("fa", zips::python_hello())
        .await
        .expect("create");
    all_refused(&env, "fa", FunctionStatus::Creating, true).await;
    env.drain().await;
    assert_eq!(env.status("fa").await, FunctionStatus::Active);

    // Updating: everything refused, serving shown.
    env.update_config("fa", "next").await.expect("update");
    all_refused(&env, "fa", FunctionStatus::Updating, true).await;
    let row = env.row("fa", None).await;
    assert_eq!(
        row.serving.as_ref().map(|s| s.config.description.as_str()),
        Some("")
    );
    assert_eq!(
        row.pending.as_ref().map(|s| s.config.description.as_str()),
        Some("next")
    );
    env.drain().await;
    let row = env.row("fa", None).await;
    assert_eq!(row.status, FunctionStatus::Active);
    assert_eq!(
        row.serving.as_ref().map(|s| s.config.description.as_str()),
        Some("next")
    );
    assert!(row.pending.is_none());

    // UpdateFailed: publish refused, update and delete accepted.
    env.update_code("fa", zips::missing_handler())
        .await
        .expect("update");
    env.drain().await;
    assert_eq!(env.status("fa").await, FunctionStatus::UpdateFailed);
    assert_refused(
        env.publish("fa").await,
        FunctionStatus::UpdateFailed,
        FunctionAction::PublishVersion,
    );
    env.update_config("fa", "retry").await.expect("retry");
    env.drain().await;
    assert_eq!(env.status("fa").await, FunctionStatus::Active);

    // A version: Publishing refuses deletion while `$LATEST` stays Active and accepts updates.
    let v = env.publish("fa").await.expect("publish");
    assert_eq!(v.qualifier, "1");
    assert_eq!(env.status("fa").await, FunctionStatus::Active);
    assert_refused(
        env.ctl
            .delete_function_version(&env.caller, "default", "fa", "1")
            .await,
        FunctionStatus::Publishing,
        FunctionAction::DeleteFunctionVersion,
    );
    env.drain().await;
    assert_eq!(
        env.row("fa", Some("1")).await.status,
        FunctionStatus::Active
    );

    // Deleting: a second delete is a no-op that queues nothing; everything else refused.
    env.delete("fa").await.expect("delete");
    let ops = env.pending_ops().await;
    env.delete("fa").await.expect("delete again is idempotent");
    assert_eq!(env.pending_ops().await, ops);
    all_refused(&env, "fa", FunctionStatus::Deleting, false).await;
    env.drain().await;
    assert!(matches!(
        env.ctl
            .get_function(&env.caller, "default", "fa", None)
            .await,
        Err(ControlError::FunctionNotFound { .. })
    ));

    // CreateFailed: only delete.
    env.create("bad", zips::fifo()).await.expect("create");
    env.drain().await;
    all_refused(&env, "bad", FunctionStatus::CreateFailed, false).await;
    let row = env.row("bad", None).await;
    assert!(
        row.reasons.iter().any(|r| r.message.contains("pipe")),
        "{:?}",
        row.reasons
    );
    env.delete("bad").await.expect("delete CreateFailed");
    env.drain().await;
    assert_eq!(env.pending_ops().await, 0);
}

/// Racing mutations of one function: exactly one is accepted; the others are refused because of it.
async fn racing_calls_one_wins(b: Backend) {
    let env = Arc::new(Env::new(&b).await);
    env.create("race", zips::python_hello())
        .await
        .expect("create");
    env.drain().await;

    const N: usize = 12;
    let tasks = (0..N).map(|i| {
        let env = env.clone();
        tokio::spawn(async move { env.update_config("race", &format!("racer-{i}")).await })
    });
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for r in results.into_iter().filter_map(Result::err) {
        assert!(
            matches!(
                r,
                ControlError::Rejected(Rejection::Transitional {
                    status: FunctionStatus::Updating,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert_eq!(env.pending_ops().await, 1);
    env.drain().await;

    // Update, code update and delete racing: one wins.
    let e1 = env.clone();
    let e2 = env.clone();
    let e3 = env.clone();
    let (u, c, d) = tokio::join!(
        tokio::spawn(async move { e1.update_config("race", "u").await }),
        tokio::spawn(async move { e2.update_code("race", zips::python_hello_v(3)).await }),
        tokio::spawn(async move { e3.delete("race").await }),
    );
    let oks = [
        u.expect("task").is_ok(),
        c.expect("task").is_ok(),
        d.expect("task").is_ok(),
    ];
    assert_eq!(oks.iter().filter(|ok| **ok).count(), 1, "{oks:?}");
    assert_eq!(env.pending_ops().await, 1);

    // Creating the same name concurrently: one function.
    let tasks = (0..8).map(|_| {
        let env = env.clone();
        tokio::spawn(async move { env.create("twin", zips::python_hello()).await })
    });
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => created += 1,
            Err(ControlError::FunctionExists(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(created, 1);
}

/// A worker that dies holding an operation loses it when its lease runs out; another worker resumes it and
/// the dead one's result is refused.
async fn dead_workers_operation_is_resumed(b: Backend) {
    let env = Env::new(&b).await;
    env.create("orphan", zips::python_hello())
        .await
        .expect("create");
    let store = env.ctl.store();
    let dead = store
        .claim_op("dead-node/0", 500)
        .await
        .expect("claim")
        .expect("the create operation");
    // While the lease lasts nobody else takes it.
    assert!(!env.ctl.run_one("alive/0").await.expect("run_one"));
    assert_eq!(env.status("orphan").await, FunctionStatus::Creating);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(env.ctl.run_one("alive/0").await.expect("run_one"));
    assert_eq!(env.status("orphan").await, FunctionStatus::Active);
    assert!(matches!(
        store
            .finish_op(&dead, store::Finish::Nothing, store::now_ms())
            .await,
        Err(store::StoreError::StaleOperation(_))
    ));
    assert!(matches!(
        store.renew_op(&dead, 1_000).await,
        Err(store::StoreError::StaleOperation(_))
    ));
    assert_eq!(env.pending_ops().await, 0);
}

/// UpdateFunctionCode with Publish: the version is published from the applied update, and takes the next
/// number.
async fn update_with_publish_publishes_the_applied_snapshot(b: Backend) {
    let env = Env::new(&b).await;
    env.create("pb", zips::python_hello())
        .await
        .expect("create");
    env.drain().await;
    env.publish("pb").await.expect("publish 1");
    env.drain().await;
    let zip = zips::python_hello_v(5);
    env.ctl
        .update_function_code(&env.caller, "default", "pb", zip.clone(), None, true)
        .await
        .expect("update with publish");
    // Nothing is published before the update is applied.
    assert!(matches!(
        env.ctl
            .get_function(&env.caller, "default", "pb", Some("2"))
            .await,
        Err(ControlError::VersionNotFound { .. })
    ));
    env.drain().await;
    let latest = env.row("pb", None).await;
    let v2 = env.row("pb", Some("2")).await;
    assert_eq!(v2.status, FunctionStatus::Active);
    assert_eq!(v2.serving, latest.serving);
    assert_eq!(
        v2.serving.as_ref().map(|s| s.code.sha256.clone()),
        Some(store::sha256_hex(&zip))
    );
    let v1 = env.row("pb", Some("1")).await;
    assert_ne!(v1.serving, v2.serving, "version 1 is immutable");

    // A failed update publishes nothing.
    env.ctl
        .update_function_code(
            &env.caller,
            "default",
            "pb",
            zips::missing_handler(),
            None,
            true,
        )
        .await
        .expect("update");
    env.drain().await;
    assert_eq!(env.status("pb").await, FunctionStatus::UpdateFailed);
    let versions = env
        .ctl
        .list_versions(&env.caller, "default", "pb", 0, 100, false)
        .await
        .expect("versions");
    assert_eq!(versions.total, 3, "$LATEST, 1 and 2");
}

/// An operation whose workers keep dying is not retried forever: past `max_attempts` it ends in its failed
/// status with a reason, so nothing stays in a transitional status.
async fn an_operation_that_keeps_dying_gives_up(b: Backend) {
    let env = Env::new(&b).await;
    env.create("cursed", zips::python_hello())
        .await
        .expect("create");
    let store = env.ctl.store();
    let max = env.ctl.config().max_attempts;
    for i in 0..max {
        // Each claim's lease is already over when it returns: as if its worker died at once.
        let op = store
            .claim_op(&format!("doomed/{i}"), -1)
            .await
            .expect("claim")
            .expect("the create operation");
        assert_eq!(op.attempt, i + 1);
        assert_eq!(op.failures, i, "every earlier attempt ran out unfinished");
    }
    assert_eq!(env.status("cursed").await, FunctionStatus::Creating);
    assert!(env.ctl.run_one("last/0").await.expect("run_one"));
    let row = env.row("cursed", None).await;
    assert_eq!(row.status, FunctionStatus::CreateFailed);
    assert_eq!(row.reasons.len(), 1);
    assert_eq!(row.reasons[0].code, "InternalError");
    assert!(
        row.reasons[0].message.contains("gave up"),
        "{:?}",
        row.reasons
    );
    assert_eq!(env.pending_ops().await, 0);
}

on_both_backends_async!(
    an_operation_that_keeps_dying_gives_up,
    acceptance_table,
    racing_calls_one_wins,
    dead_workers_operation_is_resumed,
    update_with_publish_publishes_the_applied_snapshot,
);

// ---------------------------------------------------------------------------------------------------------------
// Quotas and alias/version-delete checks inside the writing transaction (hardening)
// ---------------------------------------------------------------------------------------------------------------

impl Env {
    /// An environment whose control plane has `limits`.
    async fn with_limits(b: &Backend, limits: model::Limits) -> Env {
        let db = fresh_database_url(b);
        let dir = tempfile::tempdir().expect("data dir");
        let store = Store::open(db.url(), dir.path(), SqliteSync::Normal)
            .await
            .expect("open store");
        let ctl = Control::new(
            store,
            ControlConfig {
                limits,
                ..ControlConfig::default()
            },
        );
        let a = ctl.create_account().await.expect("account");
        Env {
            ctl,
            caller: Caller {
                app_id: a.app_id,
                uin: a.uin,
            },
            _db: db,
            _dir: dir,
        }
    }
}

/// Runs `n` calls of `f` at once (each on a task of its own); returns their results in order.
async fn all_at_once<T, F, Fut>(n: usize, f: F) -> Vec<control::Result<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = control::Result<T>> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let call = f(i);
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Counts the successes and checks that every failure is `LimitExceeded.<what>`.
fn successes<T: std::fmt::Debug>(results: &[control::Result<T>], what: &str) -> usize {
    for r in results {
        match r {
            Ok(_) => {}
            Err(ControlError::LimitExceeded { what: w, .. }) if *w == what => {}
            Err(e) => panic!("expected success or LimitExceeded.{what}, got {e:?}"),
        }
    }
    results.iter().filter(|r| r.is_ok()).count()
}

/// Concurrent creates at the quota boundary end with exactly the quota: functions per namespace, namespaces
/// per account, aliases per function and versions per layer are counted under a lock in the transaction that
/// inserts (on PostgreSQL's READ COMMITTED, counts outside it let several creates pass together).
async fn quotas_hold_under_concurrent_creates(b: Backend) {
    const AT_ONCE: usize = 12;
    const QUOTA: i64 = 3;
    let env = Env::with_limits(
        &b,
        model::Limits {
            functions_per_namespace: QUOTA,
            namespaces: QUOTA,
            aliases_per_function: QUOTA,
            layer_versions_per_layer: QUOTA,
            ..model::Limits::default()
        },
    )
    .await;
    let env = Arc::new(env);

    let created = all_at_once(AT_ONCE, |i| {
        let env = env.clone();
        async move {
            env.create(&format!("q{i}"), zips::python_hello_v(i as u32))
                .await
        }
    })
    .await;
    assert_eq!(successes(&created, "Function"), QUOTA as usize);
    assert_eq!(
        env.ctl
            .store()
            .count_functions(env.caller.app_id, Some("default"))
            .await
            .expect("count"),
        QUOTA
    );

    let namespaces = all_at_once(AT_ONCE, |i| {
        let env = env.clone();
        async move {
            env.ctl
                .create_namespace(&env.caller, &format!("ns{i}"), "")
                .await
        }
    })
    .await;
    // `default` counts.
    assert_eq!(successes(&namespaces, "Namespace"), QUOTA as usize - 1);
    assert_eq!(
        env.ctl
            .list_namespaces(&env.caller)
            .await
            .expect("namespaces")
            .len(),
        QUOTA as usize
    );

    let aliased = created
        .iter()
        .position(|r| r.is_ok())
        .map(|i| format!("q{i}"))
        .expect("a created function");
    let aliases = all_at_once(AT_ONCE, |i| {
        let env = env.clone();
        let function = aliased.clone();
        async move {
            env.ctl
                .create_alias(
                    &env.caller,
                    "default",
                    &function,
                    control::AliasSpec {
                        name: format!("a{i}"),
                        function_version: "$LATEST".into(),
                        routing: model::RoutingConfig::default(),
                        description: None,
                    },
                )
                .await
        }
    })
    .await;
    // `$DEFAULT` counts.
    assert_eq!(successes(&aliases, "Alias"), QUOTA as usize - 1);
    assert_eq!(
        env.ctl
            .list_aliases(&env.caller, "default", &aliased, None)
            .await
            .expect("aliases")
            .len(),
        QUOTA as usize
    );

    let layers = all_at_once(AT_ONCE, |i| {
        let env = env.clone();
        async move {
            env.ctl
                .publish_layer_version(
                    &env.caller,
                    control::PublishLayer {
                        name: "shared".into(),
                        compatible_runtimes: vec!["Python3.9".into()],
                        zip: zips::python_hello_v(100 + i as u32),
                        description: String::new(),
                        license: String::new(),
                    },
                )
                .await
        }
    })
    .await;
    assert_eq!(successes(&layers, "LayerVersions"), QUOTA as usize);
    let mut versions: Vec<i64> = layers
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    versions.sort();
    assert_eq!(versions, vec![1, 2, 3], "refused publishes take no number");
}

/// Whether every alias of `name` routes only to `$LATEST` or to versions that exist and are not being deleted.
async fn no_dangling_alias(env: &Env, name: &str) {
    let records = env
        .ctl
        .list_versions(&env.caller, "default", name, 0, 1000, false)
        .await
        .expect("versions")
        .versions;
    let aliases = env
        .ctl
        .list_aliases(&env.caller, "default", name, None)
        .await
        .expect("aliases");
    for a in &aliases {
        for v in a.versions() {
            let live = v == "$LATEST"
                || records
                    .iter()
                    .any(|r| r.qualifier == v && r.status != FunctionStatus::Deleting);
            assert!(
                live,
                "alias {} routes to version {v}, which is gone",
                a.name
            );
        }
    }
}

/// An alias create (or update) racing the delete of the version it routes to: exactly one of the two wins,
/// the loser gets the error it gets when they do not overlap (`VersionNotFound` / `AliasBound`), and no alias is
/// ever left pointing at a deleted version.
async fn alias_writes_and_version_deletes_interleaved_leave_no_dangling_alias(b: Backend) {
    const ROUNDS: usize = 8;
    let env = Arc::new(Env::new(&b).await);
    env.create("target", zips::python_hello())
        .await
        .expect("create");
    env.drain().await;
    env.ctl
        .create_alias(
            &env.caller,
            "default",
            "target",
            control::AliasSpec {
                name: "moving".into(),
                function_version: "$LATEST".into(),
                routing: model::RoutingConfig::default(),
                description: None,
            },
        )
        .await
        .expect("alias to move around");
    let mut alias_wins = 0;
    for round in 0..ROUNDS {
        let v = env.publish("target").await.expect("publish").qualifier;
        env.drain().await;
        let update = round % 2 == 1;
        let alias = {
            let env = env.clone();
            let v = v.clone();
            tokio::spawn(async move {
                let spec = control::AliasSpec {
                    name: if update {
                        "moving".into()
                    } else {
                        format!("r{round}")
                    },
                    function_version: v,
                    routing: model::RoutingConfig::default(),
                    description: None,
                };
                if update {
                    env.ctl
                        .update_alias(&env.caller, "default", "target", spec)
                        .await
                } else {
                    env.ctl
                        .create_alias(&env.caller, "default", "target", spec)
                        .await
                }
            })
        };
        let delete = {
            let env = env.clone();
            let v = v.clone();
            tokio::spawn(async move {
                env.ctl
                    .delete_function_version(&env.caller, "default", "target", &v)
                    .await
            })
        };
        let (alias, delete) = (
            alias.await.expect("alias task"),
            delete.await.expect("delete task"),
        );
        match (&alias, &delete) {
            (Ok(()), Err(ControlError::AliasBound { version, .. })) => {
                assert_eq!(version, &v);
                alias_wins += 1;
            }
            (Err(ControlError::VersionNotFound { version, .. }), Ok(())) => assert_eq!(version, &v),
            other => {
                panic!("round {round}: exactly one of alias and delete must win, got {other:?}")
            }
        }
        no_dangling_alias(&env, "target").await;
        env.drain().await;
        no_dangling_alias(&env, "target").await;
        // Free the version again for the next rounds' quota of aliases.
        if alias.is_ok() {
            if update {
                env.ctl
                    .update_alias(
                        &env.caller,
                        "default",
                        "target",
                        control::AliasSpec {
                            name: "moving".into(),
                            function_version: "$LATEST".into(),
                            routing: model::RoutingConfig::default(),
                            description: None,
                        },
                    )
                    .await
                    .expect("move back");
            } else {
                env.ctl
                    .delete_alias(&env.caller, "default", "target", &format!("r{round}"))
                    .await
                    .expect("unbind");
            }
        }
    }
    eprintln!("alias won {alias_wins} of {ROUNDS} races");
}

on_both_backends_async!(
    quotas_hold_under_concurrent_creates,
    alias_writes_and_version_deletes_interleaved_leave_no_dangling_alias,
);

// ---- Leases across nodes: one clock, heartbeats that ride out faults, unreadable operations ----

mod leases {
    use std::time::Duration;

    use control::Clock;
    use model::{LayerStatus, LayerVersion};
    use store::{NewOp, StoreError};

    use super::*;

    /// Another node on the same database and data directory.
    async fn node(env: &Env, cfg: ControlConfig) -> Control {
        let store = Store::open(env._db.url(), env._dir.path(), SqliteSync::Normal)
            .await
            .expect("open store");
        Control::new(store, cfg)
    }

    /// Node B's clock runs 10 s fast: by its reckoning node A's lease ran out long ago. Leases are measured on
    /// the database's clock, so B never takes the operation while A renews it, however often it tries; once A
    /// stops renewing, B takes over and finishes (dating the record by its own clock).
    pub(super) async fn a_fast_node_never_takes_a_live_lease(b: Backend) {
        let env = Env::new(&b).await;
        env.create("skew", zips::python_hello())
            .await
            .expect("create");
        let store = env.ctl.store();
        let lease = 3_000;
        let a = store
            .claim_op("node-a/0", lease)
            .await
            .expect("claim")
            .expect("the create operation");
        let fast = node(
            &env,
            ControlConfig {
                clock: Clock::skewed(10_000),
                ..ControlConfig::default()
            },
        )
        .await;
        for _ in 0..2 * fast.config().max_attempts {
            assert!(
                !fast.run_one("node-b/0").await.expect("run_one"),
                "node B took a live lease"
            );
            // A's heartbeat.
            store
                .renew_op(&a, lease)
                .await
                .expect("A still holds its operation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(env.status("skew").await, FunctionStatus::Creating);

        // A dies: its last renewal runs out soon after. B takes over and finishes.
        store.renew_op(&a, 200).await.expect("renew");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(fast.run_one("node-b/0").await.expect("run_one"));
        let row = env.row("skew", None).await;
        assert_eq!(row.status, FunctionStatus::Active, "{:?}", row.reasons);
        assert!(
            row.mod_ms > store::now_ms() + 5_000,
            "B's clock dates what B writes: {}",
            row.mod_ms
        );
        assert!(matches!(
            store.renew_op(&a, lease).await,
            Err(StoreError::StaleOperation(_))
        ));
        assert_eq!(env.pending_ops().await, 0);
    }

    /// The status reason an unreadable operation leaves.
    fn assert_unreadable(reasons: &[model::StatusReason]) {
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert_eq!(reasons[0].code, "InternalError");
        assert!(
            reasons[0]
                .message
                .contains("operation record is unreadable"),
            "{reasons:?}"
        );
    }

    /// An operation whose payload cannot be decoded ends its record in the kind's failed status (rather than
    /// leaving it transitional): for a function update, a layer publication, and a kind this version does not
    /// know (the record's transitional status then decides).
    pub(super) async fn an_unreadable_operation_fails_its_record(b: Backend) {
        let env = Env::new(&b).await;
        let store = env.ctl.store();
        let now = store::now_ms();
        let mangled = |kind: &str, target: &str| NewOp {
            id: format!("op-mangled-{kind}"),
            app_id: env.caller.app_id,
            kind: kind.into(),
            target: target.into(),
            payload: r#"{"op":"UpdateFunction","ro"#.into(),
            created_ms: now,
        };

        // An update of an Active function: UpdateFailed, and the serving snapshot stays.
        env.create("mangled", zips::python_hello())
            .await
            .expect("create");
        env.drain().await;
        let row = env.row("mangled", None).await;
        let mut pending = row.serving.clone().expect("serving");
        pending.config.description = "never applied".into();
        store
            .begin_change(
                &row.id,
                row.rev,
                FunctionStatus::Updating,
                Some(&pending),
                &mangled("UpdateFunction", &row.id),
                now,
            )
            .await
            .expect("begin update");
        assert!(env.ctl.run_one("w/0").await.expect("run_one"));
        let after = env.row("mangled", None).await;
        assert_eq!(after.status, FunctionStatus::UpdateFailed);
        assert_unreadable(&after.reasons);
        assert_eq!(after.serving, row.serving);
        assert!(after.pending.is_none());

        // A layer version being published: PublishFailed.
        let content = store
            .put_blob(zips::python_hello())
            .await
            .expect("layer content");
        let layer = LayerVersion {
            app_id: env.caller.app_id,
            name: "mangled".into(),
            version: 0,
            status: LayerStatus::Publishing,
            reasons: Vec::new(),
            description: String::new(),
            license: String::new(),
            compatible_runtimes: vec!["Python3.9".into()],
            content,
            add_ms: now,
        };
        let app = env.caller.app_id;
        let v = store
            .begin_publish_layer(&layer, 10, |v| {
                mangled("PublishLayer", &store::layer_target(app, "mangled", v))
            })
            .await
            .expect("begin publish")
            .expect("under the limit");
        assert!(env.ctl.run_one("w/0").await.expect("run_one"));
        let lv = env
            .ctl
            .get_layer_version(&env.caller, "mangled", v)
            .await
            .expect("layer version");
        assert_eq!(lv.layer.status, LayerStatus::PublishFailed);
        assert_unreadable(&lv.layer.reasons);

        // A kind nobody knows on a function being deleted: DeleteFailed.
        let row = env.row("mangled", None).await;
        store
            .begin_change(
                &row.id,
                row.rev,
                FunctionStatus::Deleting,
                None,
                &mangled("Frobnicate", &row.id),
                now,
            )
            .await
            .expect("begin delete");
        assert!(env.ctl.run_one("w/0").await.expect("run_one"));
        let after = env.row("mangled", None).await;
        assert_eq!(after.status, FunctionStatus::DeleteFailed);
        assert_unreadable(&after.reasons);
        assert_eq!(env.pending_ops().await, 0);
    }

    /// Node A's heartbeat meets three failed renewals in a row (injected) while A works on an operation held
    /// for three leases; it retries, so its lease never runs out and node B never takes the operation over. A
    /// then finishes it.
    #[cfg(feature = "failpoints")]
    pub(super) async fn the_heartbeat_rides_out_transient_errors(b: Backend) {
        use std::sync::{Mutex, mpsc};
        let scenario = fail::FailScenario::setup();
        let env = Env::new(&b).await;
        let lease = 1_200;
        let a = Control::new(
            env.ctl.store().clone(),
            ControlConfig {
                lease_ms: lease,
                ..ControlConfig::default()
            },
        );
        // Node B only tries to claim: were it to win, it must not run into the held failpoint itself.
        let b_node = node(&env, ControlConfig::default()).await;
        // The publication waits at its failpoint until released, saying when it got there.
        let (reached_tx, reached) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        fail::cfg_callback("publish-layer-version", move || {
            let _ = reached_tx.send(());
            if let Ok(rx) = release_rx.lock() {
                let _ = rx.recv();
            }
        })
        .expect("failpoint");
        fail::cfg("renew-lease", "3*return").expect("failpoint");
        let v = a
            .publish_layer_version(
                &env.caller,
                control::PublishLayer {
                    name: "held".into(),
                    compatible_runtimes: vec!["Python3.9".into()],
                    zip: zips::python_hello(),
                    description: String::new(),
                    license: String::new(),
                },
            )
            .await
            .expect("publish");
        let worker = {
            let a = a.clone();
            tokio::spawn(async move { a.run_one("node-a/0").await })
        };
        let mut waited = 0;
        while reached.try_recv().is_err() {
            waited += 1;
            assert!(waited < 500, "node A never reached the publication");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let until = std::time::Instant::now() + Duration::from_millis(3 * lease as u64);
        while std::time::Instant::now() < until {
            assert!(
                b_node
                    .store()
                    .claim_op("node-b/0", lease)
                    .await
                    .expect("claim")
                    .is_none(),
                "node B took the operation over: A's lease ran out"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fail::remove("publish-layer-version");
        let _ = release.send(());
        assert!(worker.await.expect("task").expect("run_one"));
        let lv = env
            .ctl
            .get_layer_version(&env.caller, "held", v)
            .await
            .expect("layer version");
        assert_eq!(
            lv.layer.status,
            LayerStatus::Active,
            "{:?}",
            lv.layer.reasons
        );
        assert_eq!(env.pending_ops().await, 0);
        scenario.teardown();
    }
}

use leases::{a_fast_node_never_takes_a_live_lease, an_unreadable_operation_fails_its_record};

on_both_backends_async!(
    a_fast_node_never_takes_a_live_lease,
    an_unreadable_operation_fails_its_record,
);

#[cfg(feature = "failpoints")]
use leases::the_heartbeat_rides_out_transient_errors;

#[cfg(feature = "failpoints")]
on_both_backends_async!(the_heartbeat_rides_out_transient_errors);
