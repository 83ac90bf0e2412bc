//! End-to-end tests through the real `stratus` binary, each on SQLite and on PostgreSQL.
//!
//! Every reply is checked for the envelope rules by the test kit's client (HTTP 200, `Content-Type:
//! application/json` exactly, a `RequestId`). Tests that hold or fail an asynchronous step on purpose need the
//! `failpoints` feature (`cargo test --all-features`).

mod cli_beside_server;
mod durability;
mod layers;
mod lifecycle;
mod limits;
mod protocol;
mod status_rules;
mod status_stream;
mod tenancy;

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Backend, Client, Server, wait_status, zips};

/// How long an asynchronous step may take before a test fails (they take milliseconds).
pub const SETTLE: Duration = Duration::from_secs(15);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stratus")
}

/// A server with no fault injection.
pub fn start(b: &Backend) -> Server {
    Server::start(bin(), b, &[])
}

/// A server with `FAILPOINTS` set (fail crate syntax, `;`-separated).
#[allow(dead_code)]
pub fn start_with_failpoints(b: &Backend, failpoints: &str) -> Server {
    Server::start(bin(), b, &[("FAILPOINTS", failpoints)])
}

/// Operations a worker holds (claimed, not finished).
pub const CLAIMED_OPS: &str =
    "SELECT COUNT(*) AS n FROM operations WHERE state = 'pending' AND lease_owner IS NOT NULL";

/// Holds a record in a transitional status while the server keeps answering normally: starts a server whose
/// fail point `failpoint` sleeps, runs `setup` and then `act` (which starts the operation to hold), waits until
/// a worker has claimed that operation, kills the server with SIGKILL and restarts it without fail points. The
/// dead worker's lease keeps the operation (and its record's status) untouched for a few seconds (the lease is
/// 5 s, renewed every third of it), after which the restarted server resumes and finishes it.
///
/// Every use is therefore also a crash test: an operation of that kind killed mid-flight is resumed and
/// finished by the next process without any client action.
#[cfg(feature = "failpoints")]
pub fn crash_hold(
    b: &Backend,
    failpoint: &str,
    setup: impl FnOnce(&Client),
    act: impl FnOnce(&Client),
) -> Server {
    let mut srv = start_with_failpoints(b, &format!("{failpoint}=sleep(60000)"));
    let c = srv.client();
    setup(&c);
    assert_eq!(
        srv.db_count(CLAIMED_OPS),
        0,
        "setup left an operation running"
    );
    act(&c);
    testkit::wait_for("a worker to claim the operation", SETTLE, || {
        (srv.db_count(CLAIMED_OPS) >= 1).then_some(())
    });
    srv.kill9();
    srv.set_env(&[]);
    srv.restart();
    srv
}

/// A CreateFunction body for `zip` with a runtime and handler.
pub fn create_body(name: &str, zip: &[u8], runtime: &str, handler: &str) -> Value {
    json!({
        "FunctionName": name,
        "Code": {"ZipFile": zips::b64(zip)},
        "Runtime": runtime,
        "Handler": handler,
    })
}

/// Creates a Python hello function (accepted, not waited for).
pub fn create_python(c: &Client, name: &str) {
    c.ok(
        "CreateFunction",
        create_body(
            name,
            &zips::python_hello(),
            "Python3.9",
            "index.main_handler",
        ),
    );
}

/// Creates a Python hello function and waits until it is Active; returns GetFunction's reply.
pub fn create_active(c: &Client, name: &str) -> Value {
    create_python(c, name);
    wait_status(c, name, "$LATEST", &["Active"], SETTLE)
}

/// A string field of a reply.
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {field} in {v}"))
}

/// `StatusReasons[*].ErrorMessage`, joined.
pub fn reasons(v: &Value) -> String {
    v.get("StatusReasons")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| {
                    format!(
                        "{}: {}",
                        r.get("ErrorCode").and_then(Value::as_str).unwrap_or(""),
                        r.get("ErrorMessage").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// The names ListFunctions returns (first 1000).
pub fn function_names(c: &Client) -> Vec<String> {
    let v = c.ok("ListFunctions", json!({"Limit": 1000}));
    v["Functions"]
        .as_array()
        .expect("Functions")
        .iter()
        .map(|f| s(f, "FunctionName").to_string())
        .collect()
}
