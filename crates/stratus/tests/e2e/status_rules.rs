//! The acceptance table of lifecycle.md ("Which calls are accepted in which status"), row by row, through the
//! server. Transitional statuses are held open with fail points (`sleep`) and failed statuses are reached
//! deterministically (`return`, or a bad package).

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use testkit::{Backend, Client, on_both_backends, wait_function_gone, wait_status, zips};

#[cfg(feature = "failpoints")]
use crate::reasons;
use crate::{SETTLE, create_active, create_body, s, start};

/// The mutating calls of the table, with a body for function `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    UpdateCode,
    UpdateConfig,
    Publish,
    Delete,
}

impl Call {
    fn action(self) -> &'static str {
        match self {
            Call::UpdateCode => "UpdateFunctionCode",
            Call::UpdateConfig => "UpdateFunctionConfiguration",
            Call::Publish => "PublishVersion",
            Call::Delete => "DeleteFunction",
        }
    }

    /// The code refused in a terminal status that does not accept the call.
    fn own_code(self) -> &'static str {
        match self {
            Call::UpdateCode => "FailedOperation.UpdateFunctionCode",
            Call::UpdateConfig => "FailedOperation.UpdateFunctionConfiguration",
            Call::Publish => "FailedOperation.PublishVersion",
            Call::Delete => "FailedOperation.DeleteFunction",
        }
    }

    fn body(self, name: &str) -> Value {
        match self {
            Call::UpdateCode => json!({
                "FunctionName": name,
                "Code": {"ZipFile": zips::b64(&zips::python_hello_v(7))},
            }),
            Call::UpdateConfig => json!({"FunctionName": name, "Description": "changed"}),
            Call::Publish | Call::Delete => json!({"FunctionName": name}),
        }
    }
}

const TRANSITIONAL: &[&str] = &["Creating", "Updating", "Publishing", "Deleting"];

/// Expects each of `calls` to be refused on `name`, which is in `status`, with the code and message the
/// table prescribes.
fn refused(c: &Client, name: &str, status: &str, calls: &[Call]) {
    for &call in calls {
        let code = if TRANSITIONAL.contains(&status) {
            "FailedOperation.FunctionStatusError"
        } else {
            call.own_code()
        };
        let msg = c.err(call.action(), call.body(name), code);
        assert_eq!(
            msg,
            format!(
                "Function status {status} is not allowed to do {}.",
                call.action()
            ),
            "{} on a {status} function",
            call.action()
        );
    }
    // CreateFunction with the same name: ResourceInUse.Function in every status.
    c.err(
        "CreateFunction",
        create_body(
            name,
            &zips::python_hello(),
            "Python3.9",
            "index.main_handler",
        ),
        "ResourceInUse.Function",
    );
    // Reads always work and show the status.
    let v = c.ok("GetFunction", json!({"FunctionName": name}));
    assert_eq!(s(&v, "Status"), status, "{v}");
    let listed = c.ok("ListFunctions", json!({"SearchKey": name}));
    let f = listed["Functions"]
        .as_array()
        .expect("Functions")
        .iter()
        .find(|f| f["FunctionName"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"));
    assert_eq!(f["Status"], status);
}

/// CreateFailed: only DeleteFunction (and reads) are accepted.
fn create_failed_accepts_only_delete(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    c.ok(
        "CreateFunction",
        create_body(
            "cf",
            &zips::missing_handler(),
            "Python3.9",
            "index.main_handler",
        ),
    );
    wait_status(&c, "cf", "$LATEST", &["CreateFailed"], SETTLE);
    refused(
        &c,
        "cf",
        "CreateFailed",
        &[Call::UpdateCode, Call::UpdateConfig, Call::Publish],
    );
    c.ok("DeleteFunction", json!({"FunctionName": "cf"}));
    wait_function_gone(&c, "cf", SETTLE);
}

/// UpdateFailed: updates (retries) and DeleteFunction are accepted, PublishVersion is not.
fn update_failed_accepts_retries_and_delete(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "uf");
    let fail_update = || {
        c.ok(
            "UpdateFunctionCode",
            json!({"FunctionName": "uf", "Code": {"ZipFile": zips::b64(&zips::missing_handler())}}),
        );
        wait_status(&c, "uf", "$LATEST", &["UpdateFailed"], SETTLE);
    };
    fail_update();
    refused(&c, "uf", "UpdateFailed", &[Call::Publish]);
    c.ok(Call::UpdateCode.action(), Call::UpdateCode.body("uf"));
    wait_status(&c, "uf", "$LATEST", &["Active"], SETTLE);
    fail_update();
    c.ok(Call::UpdateConfig.action(), Call::UpdateConfig.body("uf"));
    let v = wait_status(&c, "uf", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&v, "Description"), "changed");
    fail_update();
    c.ok("DeleteFunction", json!({"FunctionName": "uf"}));
    wait_function_gone(&c, "uf", SETTLE);
}

/// Active accepts everything; a version needs `$LATEST` Active.
fn active_accepts_every_call(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "act");
    for call in [
        Call::UpdateCode,
        Call::UpdateConfig,
        Call::Publish,
        Call::Delete,
    ] {
        c.ok(call.action(), call.body("act"));
        if call == Call::Delete {
            wait_function_gone(&c, "act", SETTLE);
        } else {
            wait_status(&c, "act", "$LATEST", &["Active"], SETTLE);
        }
    }
    // Versions are deleted by number only; `$LATEST` is not a version.
    create_active(&c, "act2");
    let e = c
        .call(
            "DeleteFunctionVersion",
            json!({"FunctionName": "act2", "Qualifier": "$LATEST"}),
        )
        .expect_err("$LATEST is not a version");
    assert!(e.code.starts_with("InvalidParameterValue"), "{e}");
    c.err(
        "DeleteFunctionVersion",
        json!({"FunctionName": "act2", "Qualifier": "5"}),
        "ResourceNotFound.Version",
    );
}

/// A version an alias routes to cannot be deleted, by either call, until the alias lets go of it.
fn alias_keeps_its_versions(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "al");
    for n in ["1", "2"] {
        let v = c.ok("PublishVersion", json!({"FunctionName": "al"}));
        assert_eq!(s(&v, "FunctionVersion"), n);
        wait_status(&c, "al", n, &["Active"], SETTLE);
    }
    c.ok(
        "CreateAlias",
        json!({
            "FunctionName": "al",
            "Name": "prod",
            "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": [{"Version": "2", "Weight": 0.2}]},
        }),
    );
    for q in ["1", "2"] {
        c.err(
            "DeleteFunctionVersion",
            json!({"FunctionName": "al", "Qualifier": q}),
            "UnsupportedOperation.AliasBind",
        );
        c.err(
            "DeleteFunction",
            json!({"FunctionName": "al", "Qualifier": q}),
            "UnsupportedOperation.AliasBind",
        );
        wait_status(&c, "al", q, &["Active"], SETTLE);
    }
    c.ok("DeleteAlias", json!({"FunctionName": "al", "Name": "prod"}));
    c.ok(
        "DeleteFunctionVersion",
        json!({"FunctionName": "al", "Qualifier": "1"}),
    );
    c.ok(
        "DeleteFunction",
        json!({"FunctionName": "al", "Qualifier": "2"}),
    );
    testkit::wait_for("versions 1 and 2 to go", SETTLE, || {
        let v = c.ok("ListVersionByFunction", json!({"FunctionName": "al"}));
        (v["TotalCount"] == 1).then_some(())
    });
    // Deleting versions leaves `$LATEST` alone.
    let v = c.ok("GetFunction", json!({"FunctionName": "al"}));
    assert_eq!(s(&v, "Status"), "Active");
}

on_both_backends!(
    create_failed_accepts_only_delete,
    update_failed_accepts_retries_and_delete,
    active_accepts_every_call,
    alias_keeps_its_versions,
);

/// Racing updates: every accepted one is applied on its own, one after the other, never two at once. Each racer
/// asks for another memory size and `Publish=TRUE`, so each accepted update leaves a version with its size:
/// as many versions as accepted updates, each with a different accepted size.
fn racing_updates_never_apply_together(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "race");
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let results: Vec<(i64, Result<Value, testkit::ApiError>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let c = c.clone();
                let barrier = barrier.clone();
                sc.spawn(move || {
                    // Connect before the barrier so that the calls leave together.
                    c.ok("GetFunction", json!({"FunctionName": "race"}));
                    let mem = 128 * (i as i64 + 2);
                    barrier.wait();
                    let r = c.call(
                        "UpdateFunctionConfiguration",
                        json!({"FunctionName": "race", "MemorySize": mem, "Publish": "TRUE"}),
                    );
                    (mem, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer thread"))
            .collect()
    });
    let mut accepted: Vec<i64> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(m, _)| *m)
        .collect();
    assert!(!accepted.is_empty(), "one update must win: {results:?}");
    for (_, r) in &results {
        if let Err(e) = r {
            assert_eq!(e.code, "FailedOperation.FunctionStatusError", "{e}");
            assert_eq!(
                e.message,
                "Function status Updating is not allowed to do UpdateFunctionConfiguration."
            );
        }
    }
    wait_status(&c, "race", "$LATEST", &["Active"], SETTLE);
    let want_versions = accepted.len();
    let mut published: Vec<i64> = testkit::wait_for("the published versions", SETTLE, || {
        let v = c.ok("ListVersionByFunction", json!({"FunctionName": "race"}));
        let versions = v["Versions"].as_array().expect("Versions").clone();
        let done =
            versions.len() == want_versions + 1 && versions.iter().all(|v| v["Status"] == "Active");
        done.then(|| {
            versions
                .iter()
                .filter(|v| v["Version"] != "$LATEST")
                .map(|v| {
                    let q = s(v, "Version");
                    let f = c.ok(
                        "GetFunction",
                        json!({"FunctionName": "race", "Qualifier": q}),
                    );
                    f["MemorySize"].as_i64().expect("MemorySize")
                })
                .collect()
        })
    });
    accepted.sort();
    published.sort();
    assert_eq!(
        published, accepted,
        "each accepted update published exactly its own size"
    );
}

on_both_backends!(racing_updates_never_apply_together);

#[cfg(feature = "failpoints")]
mod held {
    //! Transitional statuses held open (see `crash_hold`), and failures injected with `return` fail points.

    use super::*;
    use crate::{crash_hold, start_with_failpoints};

    fn creating_refuses_every_mutation(b: Backend) {
        let srv = crash_hold(
            &b,
            "create-function",
            |_| {},
            |c| {
                c.ok(
                    "CreateFunction",
                    create_body(
                        "held",
                        &zips::python_hello(),
                        "Python3.9",
                        "index.main_handler",
                    ),
                );
            },
        );
        let c = srv.client();
        refused(
            &c,
            "held",
            "Creating",
            &[
                Call::UpdateCode,
                Call::UpdateConfig,
                Call::Publish,
                Call::Delete,
            ],
        );
        // The restarted server resumes the operation once the dead worker's lease runs out.
        wait_status(&c, "held", "$LATEST", &["Active"], SETTLE);
        assert_eq!(
            srv.db_count("SELECT COUNT(*) AS n FROM operations WHERE state = 'pending'"),
            0
        );
        assert!(
            srv.db_count("SELECT MAX(attempt) AS n FROM operations") >= 2,
            "the operation was resumed by a second attempt"
        );
    }

    /// Updating: refuses every mutation and keeps showing the serving configuration.
    fn updating_refuses_every_mutation(b: Backend) {
        let srv = crash_hold(
            &b,
            "update-function",
            |c| {
                create_active(c, "upd");
            },
            |c| {
                c.ok(
                    "UpdateFunctionConfiguration",
                    json!({"FunctionName": "upd", "Description": "pending", "MemorySize": 1024}),
                );
            },
        );
        let c = srv.client();
        refused(
            &c,
            "upd",
            "Updating",
            &[
                Call::UpdateCode,
                Call::UpdateConfig,
                Call::Publish,
                Call::Delete,
            ],
        );
        let v = c.ok("GetFunction", json!({"FunctionName": "upd"}));
        assert_eq!(s(&v, "Description"), "", "serving shown while updating");
        assert_eq!(v["MemorySize"], 128);
        let v = wait_status(&c, "upd", "$LATEST", &["Active"], SETTLE);
        assert_eq!(s(&v, "Description"), "pending");
        assert_eq!(v["MemorySize"], 1024);
    }

    /// Deleting: DeleteFunction again is an idempotent no-op, everything else is refused.
    fn deleting_refuses_all_but_delete(b: Backend) {
        let srv = crash_hold(
            &b,
            "delete-function",
            |c| {
                create_active(c, "del");
            },
            |c| {
                c.ok("DeleteFunction", json!({"FunctionName": "del"}));
            },
        );
        let c = srv.client();
        c.ok("DeleteFunction", json!({"FunctionName": "del"}));
        refused(
            &c,
            "del",
            "Deleting",
            &[Call::UpdateCode, Call::UpdateConfig, Call::Publish],
        );
        c.ok("DeleteFunction", json!({"FunctionName": "del"}));
        wait_function_gone(&c, "del", SETTLE);
    }

    /// A version being published cannot be deleted; `$LATEST` stays Active meanwhile.
    fn publishing_version_refuses_delete(b: Backend) {
        let srv = crash_hold(
            &b,
            "publish-version",
            |c| {
                create_active(c, "ver");
            },
            |c| {
                let v = c.ok("PublishVersion", json!({"FunctionName": "ver"}));
                assert_eq!(s(&v, "FunctionVersion"), "1");
            },
        );
        let c = srv.client();
        let v1 = c.ok(
            "GetFunction",
            json!({"FunctionName": "ver", "Qualifier": "1"}),
        );
        assert_eq!(s(&v1, "Status"), "Publishing");
        let latest = c.ok("GetFunction", json!({"FunctionName": "ver"}));
        assert_eq!(s(&latest, "Status"), "Active", "$LATEST stays Active");
        for action in ["DeleteFunctionVersion", "DeleteFunction"] {
            let msg = c.err(
                action,
                json!({"FunctionName": "ver", "Qualifier": "1"}),
                "FailedOperation.FunctionStatusError",
            );
            assert!(msg.contains("Publishing"), "{msg}");
        }
        wait_status(&c, "ver", "1", &["Active"], SETTLE);
    }

    /// Injected failures end in the failed statuses, with reasons, and leave what served untouched.
    fn injected_failures(b: Backend) {
        let srv = start_with_failpoints(
            &b,
            "create-function=1*return;update-function=1*return;publish-version=1*return;delete-function=1*return",
        );
        let c = srv.client();
        c.ok(
            "CreateFunction",
            create_body(
                "cf",
                &zips::python_hello(),
                "Python3.9",
                "index.main_handler",
            ),
        );
        let v = wait_status(&c, "cf", "$LATEST", &["CreateFailed"], SETTLE);
        assert!(reasons(&v).contains("injected"), "{}", reasons(&v));
        refused(
            &c,
            "cf",
            "CreateFailed",
            &[Call::UpdateCode, Call::UpdateConfig, Call::Publish],
        );

        create_active(&c, "fn1");
        c.ok(
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "fn1", "Description": "never", "MemorySize": 2048}),
        );
        let v = wait_status(&c, "fn1", "$LATEST", &["UpdateFailed"], SETTLE);
        assert!(reasons(&v).contains("injected"), "{}", reasons(&v));
        assert_eq!(s(&v, "Description"), "");
        assert_eq!(v["MemorySize"], 128);
        refused(&c, "fn1", "UpdateFailed", &[Call::Publish]);
        c.ok(Call::UpdateConfig.action(), Call::UpdateConfig.body("fn1"));
        wait_status(&c, "fn1", "$LATEST", &["Active"], SETTLE);

        let v = c.ok("PublishVersion", json!({"FunctionName": "fn1"}));
        assert_eq!(s(&v, "FunctionVersion"), "1");
        let v1 = wait_status(&c, "fn1", "1", &["PublishFailed"], SETTLE);
        assert!(reasons(&v1).contains("injected"), "{}", reasons(&v1));
        let latest = c.ok("GetFunction", json!({"FunctionName": "fn1"}));
        assert_eq!(
            s(&latest, "Status"),
            "Active",
            "a failed version leaves $LATEST alone"
        );
        let v = c.ok("PublishVersion", json!({"FunctionName": "fn1"}));
        assert_eq!(s(&v, "FunctionVersion"), "2");
        wait_status(&c, "fn1", "2", &["Active"], SETTLE);
        c.ok(
            "DeleteFunctionVersion",
            json!({"FunctionName": "fn1", "Qualifier": "1"}),
        );
        testkit::wait_for("version 1 to go", SETTLE, || {
            c.call(
                "GetFunction",
                json!({"FunctionName": "fn1", "Qualifier": "1"}),
            )
            .err()
        });
        let v2 = c.ok(
            "GetFunction",
            json!({"FunctionName": "fn1", "Qualifier": "2"}),
        );
        assert_eq!(s(&v2, "Status"), "Active", "other versions are unaffected");

        c.ok("DeleteFunction", json!({"FunctionName": "fn1"}));
        let v = wait_status(&c, "fn1", "$LATEST", &["DeleteFailed"], SETTLE);
        assert!(reasons(&v).contains("injected"), "{}", reasons(&v));
        refused(
            &c,
            "fn1",
            "DeleteFailed",
            &[Call::UpdateCode, Call::UpdateConfig, Call::Publish],
        );
        c.ok("DeleteFunction", json!({"FunctionName": "fn1"}));
        wait_function_gone(&c, "fn1", SETTLE);
    }

    on_both_backends!(
        creating_refuses_every_mutation,
        updating_refuses_every_mutation,
        deleting_refuses_all_but_delete,
        publishing_version_refuses_delete,
        injected_failures,
    );
}
