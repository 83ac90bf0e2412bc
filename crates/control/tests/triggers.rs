//! The trigger use cases in process, with no lifecycle worker running unless a test drains the queue: the
//! function's transitional statuses then last as long as a test needs, so the status rules of trigger writes are
//! checked deterministically. Each test runs on SQLite and on PostgreSQL.

use control::triggers::TIMER;
use control::{
    Caller, Control, ControlConfig, ControlError, CreateFunction, NewTrigger, TriggerAddress,
    TriggerChange, TriggerQuery,
};
use model::{ConfigPatch, FunctionStatus};
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

    async fn create(&self, name: &str) {
        self.ctl
            .create_function(
                &self.caller,
                CreateFunction {
                    namespace: "default".into(),
                    name: name.into(),
                    zip: zips::python_hello(),
                    patch: ConfigPatch {
                        runtime: Some("Python3.9".into()),
                        handler: Some("index.main_handler".into()),
                        ..ConfigPatch::default()
                    },
                },
            )
            .await
            .expect("create function");
    }

    async fn drain(&self) {
        for _ in 0..100 {
            if !self.ctl.run_one("test-worker").await.expect("run_one") {
                return;
            }
        }
        panic!("operations kept coming");
    }

    async fn status(&self, name: &str) -> FunctionStatus {
        self.ctl
            .get_function(&self.caller, "default", name, None)
            .await
            .expect("get")
            .row
            .status
    }

    async fn add(&self, f: &str, name: &str, qualifier: Option<&str>) -> control::Result<()> {
        self.ctl
            .create_trigger(
                &self.caller,
                "default",
                f,
                NewTrigger {
                    name: name.into(),
                    trigger_type: TIMER.into(),
                    desc: Some("0 */5 * * * * *".into()),
                    qualifier: qualifier.map(str::to_string),
                    custom_argument: Some(format!("for {name}")),
                    region: "ap-guangzhou".into(),
                    ..NewTrigger::default()
                },
            )
            .await
            .map(|_| ())
    }

    fn at(name: &str) -> TriggerAddress {
        TriggerAddress {
            name: name.into(),
            trigger_type: TIMER.into(),
            qualifier: None,
        }
    }

    async fn names(&self, f: &str) -> Vec<String> {
        let (rows, total) = self
            .ctl
            .list_triggers(
                &self.caller,
                "default",
                f,
                &TriggerQuery {
                    limit: 100,
                    ..TriggerQuery::default()
                },
            )
            .await
            .expect("list");
        assert_eq!(total as usize, rows.len());
        let mut n: Vec<String> = rows.into_iter().map(|t| t.name).collect();
        n.sort();
        n
    }
}

/// Every trigger write on `f` is refused in `status` with the function's status in the message, and nothing
/// changes; `delete_refused` says whether DeleteTrigger is refused too.
async fn writes_refused(env: &Env, f: &str, status: FunctionStatus, delete_refused: bool) {
    assert_eq!(env.status(f).await, status);
    let before = env.names(f).await;
    let refused = |r: control::Result<()>, action: &str| match r {
        Err(ControlError::TriggerRejected {
            status: s,
            action: a,
        }) => {
            assert_eq!((s, a), (status, action));
        }
        other => panic!("{action} in {status}: {other:?}"),
    };
    refused(env.add(f, "fresh", None).await, "CreateTrigger");
    refused(
        env.ctl
            .update_trigger(
                &env.caller,
                "default",
                f,
                Env::at("kept"),
                TriggerChange {
                    description: Some("changed".into()),
                    ..TriggerChange::default()
                },
            )
            .await,
        "UpdateTrigger",
    );
    refused(
        env.ctl
            .update_trigger_status(&env.caller, "default", f, Env::at("kept"), "CLOSE")
            .await,
        "UpdateTriggerStatus",
    );
    let deleted = env
        .ctl
        .delete_trigger(&env.caller, "default", f, Env::at("kept"))
        .await;
    if delete_refused {
        refused(deleted, "DeleteTrigger");
        assert_eq!(env.names(f).await, before, "refused writes change nothing");
    } else {
        deleted.expect("delete allowed");
    }
}

async fn status_rules(b: Backend) {
    let env = Env::new(&b).await;
    // Creating: nothing yet, every write refused.
    env.create("fa").await;
    assert!(matches!(
        env.add("fa", "kept", None).await,
        Err(ControlError::TriggerRejected {
            status: FunctionStatus::Creating,
            action: "CreateTrigger"
        })
    ));
    env.drain().await;
    env.add("fa", "kept", None)
        .await
        .expect("create when Active");

    // Updating: refused, DeleteTrigger too (an operation is changing the function).
    env.ctl
        .update_function_configuration(
            &env.caller,
            "default",
            "fa",
            ConfigPatch {
                description: Some("next".into()),
                ..ConfigPatch::default()
            },
            false,
        )
        .await
        .expect("update");
    writes_refused(&env, "fa", FunctionStatus::Updating, true).await;
    env.drain().await;

    // Deleting: refused; the finished delete then takes the trigger with the function.
    env.ctl
        .delete_function(&env.caller, "default", "fa", None)
        .await
        .expect("delete");
    writes_refused(&env, "fa", FunctionStatus::Deleting, true).await;
    env.drain().await;
    assert!(matches!(
        env.add("fa", "again", None).await,
        Err(ControlError::FunctionNotFound { .. })
    ));
    assert!(
        env.ctl.open_timers().await.expect("open").is_empty(),
        "the deleted function's timer is gone"
    );
}

async fn qualifiers_must_exist_and_bindings_follow_their_target(b: Backend) {
    let env = Env::new(&b).await;
    env.create("fq").await;
    env.drain().await;
    env.ctl
        .publish_version(&env.caller, "default", "fq", "v1")
        .await
        .expect("publish");
    env.drain().await;
    env.ctl
        .create_alias(
            &env.caller,
            "default",
            "fq",
            control::AliasSpec {
                name: "prod".into(),
                function_version: "1".into(),
                routing: Default::default(),
                description: None,
            },
        )
        .await
        .expect("alias");
    env.add("fq", "on-latest", None)
        .await
        .expect("default $LATEST");
    env.add("fq", "on-default", Some("$DEFAULT"))
        .await
        .expect("$DEFAULT");
    env.add("fq", "on-prod", Some("prod")).await.expect("alias");
    env.add("fq", "on-v1", Some("1")).await.expect("version");
    assert!(matches!(
        env.add("fq", "on-v9", Some("9")).await,
        Err(ControlError::VersionNotFound { .. })
    ));
    assert!(matches!(
        env.add("fq", "on-ghost", Some("ghost")).await,
        Err(ControlError::QualifierNotFound { .. })
    ));

    // What a scheduler reads: every open timer with its schedule and qualifier.
    let mut open: Vec<(String, String)> = env
        .ctl
        .open_timers()
        .await
        .expect("open")
        .into_iter()
        .map(|t| {
            assert!(
                t.schedule
                    .next_after(0, schedule::SCF_OFFSET_SECS)
                    .is_some()
            );
            (t.trigger.name, t.trigger.qualifier)
        })
        .collect();
    open.sort();
    assert_eq!(
        open,
        [
            ("on-default".to_string(), "$DEFAULT".to_string()),
            ("on-latest".to_string(), "$LATEST".to_string()),
            ("on-prod".to_string(), "prod".to_string()),
            ("on-v1".to_string(), "1".to_string()),
        ]
    );
    // A closed timer is not open; reopened, it is again.
    env.ctl
        .update_trigger_status(&env.caller, "default", "fq", Env::at("on-v1"), "CLOSE")
        .await
        .expect("close");
    assert!(matches!(
        env.ctl
            .update_trigger_status(&env.caller, "default", "fq", Env::at("on-v1"), "CLOSE")
            .await,
        Err(ControlError::TriggerUnchanged(_))
    ));
    assert_eq!(env.ctl.open_timers().await.expect("open").len(), 3);
    env.ctl
        .update_trigger_status(&env.caller, "default", "fq", Env::at("on-v1"), "OPEN")
        .await
        .expect("open");
    assert_eq!(env.ctl.open_timers().await.expect("open").len(), 4);

    // A qualifier in the address must be the binding's.
    let wrong = TriggerAddress {
        qualifier: Some("$LATEST".into()),
        ..Env::at("on-prod")
    };
    assert!(matches!(
        env.ctl
            .delete_trigger(&env.caller, "default", "fq", wrong)
            .await,
        Err(ControlError::TriggerNotFound(_))
    ));

    // Removing the alias takes its trigger; the version cannot go while the alias routes to it.
    env.ctl
        .delete_alias(&env.caller, "default", "fq", "prod")
        .await
        .expect("delete alias");
    assert_eq!(env.names("fq").await, ["on-default", "on-latest", "on-v1"]);
    // Removing the version (through its lifecycle operation) takes the trigger bound to it.
    env.ctl
        .delete_function_version(&env.caller, "default", "fq", "1")
        .await
        .expect("delete version");
    env.drain().await;
    assert_eq!(env.names("fq").await, ["on-default", "on-latest"]);
}

async fn update_keeps_what_is_not_given(b: Backend) {
    let env = Env::new(&b).await;
    env.create("fu").await;
    env.drain().await;
    env.add("fu", "t", None).await.expect("create");
    let before = env
        .ctl
        .store()
        .trigger(
            &model::FunctionKey {
                app_id: env.caller.app_id,
                namespace: "default".into(),
                name: "fu".into(),
            },
            TIMER,
            "t",
        )
        .await
        .expect("read")
        .expect("stored");
    // The legacy five fields are accepted on update; the description changes; the rest is kept.
    env.ctl
        .update_trigger(
            &env.caller,
            "default",
            "fu",
            Env::at("t"),
            TriggerChange {
                desc: Some("*/10 * * * *".into()),
                description: Some("ten minutes".into()),
                ..TriggerChange::default()
            },
        )
        .await
        .expect("update");
    let after = env
        .ctl
        .store()
        .trigger(&before.key, TIMER, "t")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(after.desc, r#"{"cron":"*/10 * * * *"}"#);
    assert_eq!(after.description, "ten minutes");
    assert_eq!(
        (after.enabled, after.custom_argument.as_str(), after.add_ms),
        (
            before.enabled,
            before.custom_argument.as_str(),
            before.add_ms
        )
    );
    assert!(after.mod_ms >= before.mod_ms && after.rev == before.rev + 1);
    // An empty custom argument or description clears it; an empty Enable is refused.
    env.ctl
        .update_trigger(
            &env.caller,
            "default",
            "fu",
            Env::at("t"),
            TriggerChange {
                custom_argument: Some(String::new()),
                ..TriggerChange::default()
            },
        )
        .await
        .expect("clear");
    assert!(matches!(
        env.ctl
            .update_trigger(
                &env.caller,
                "default",
                "fu",
                Env::at("t"),
                TriggerChange {
                    enable: Some(String::new()),
                    ..TriggerChange::default()
                },
            )
            .await,
        Err(ControlError::Invalid(v)) if v.field == "Enable"
    ));
    let last = env
        .ctl
        .store()
        .trigger(&before.key, TIMER, "t")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(last.custom_argument, "");
    assert_eq!(last.description, "ten minutes");
    // The schedule a scheduler gets is the legacy one, parsed.
    let open = env.ctl.open_timers().await.expect("open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].schedule.expression(), "*/10 * * * *");
}

on_both_backends_async!(
    status_rules,
    qualifiers_must_exist_and_bindings_follow_their_target,
    update_keeps_what_is_not_given,
);
