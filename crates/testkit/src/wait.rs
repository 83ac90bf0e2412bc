//! Bounded polling for asynchronous outcomes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::Client;

/// Statuses no operation is driving any more (for functions and versions).
pub const TERMINAL: &[&str] = &[
    "Active",
    "CreateFailed",
    "UpdateFailed",
    "PublishFailed",
    "DeleteFailed",
];

const POLL: Duration = Duration::from_millis(10);

/// Calls `probe` every 10 ms until it returns `Some`, for at most `timeout`; panics naming `what` then.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

fn status_of(v: &Value) -> &str {
    v.get("Status").and_then(Value::as_str).unwrap_or("")
}

/// Polls `GetFunction` (namespace `default`) until the record `qualifier` of `name` has one of the statuses
/// `want`, and returns that reply. Panics at the deadline, on an error reply, or as soon as the record reaches
/// a terminal status that is not wanted (showing its `StatusReasons`).
pub fn wait_status(
    client: &Client,
    name: &str,
    qualifier: &str,
    want: &[&str],
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = client
            .call(
                "GetFunction",
                json!({"FunctionName": name, "Qualifier": qualifier}),
            )
            .unwrap_or_else(|e| {
                panic!("GetFunction {name}:{qualifier} while waiting for {want:?}: {e}")
            });
        let status = status_of(&v);
        if want.contains(&status) {
            return v;
        }
        if TERMINAL.contains(&status) {
            panic!(
                "{name}:{qualifier} reached {status}, not one of {want:?}; StatusReasons: {}",
                v.get("StatusReasons").unwrap_or(&Value::Null)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{name}:{qualifier} still {status} after {timeout:?}, waiting for {want:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// [`wait_status`] for a published version, which is looked up by number.
pub fn wait_version_status(
    client: &Client,
    name: &str,
    version: &str,
    want: &[&str],
    timeout: Duration,
) -> Value {
    wait_status(client, name, version, want, timeout)
}

/// Polls until `GetFunction` answers `ResourceNotFound.Function` for `name`. Panics at the deadline or if the
/// function settles in a terminal status (a delete that failed).
pub fn wait_function_gone(client: &Client, name: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match client.call("GetFunction", json!({"FunctionName": name})) {
            Err(e) if e.code == "ResourceNotFound.Function" => return,
            Err(e) => panic!("GetFunction {name} while waiting for it to go: {e}"),
            Ok(v) => {
                let status = status_of(&v);
                if TERMINAL.contains(&status) {
                    panic!(
                        "{name} settled in {status} instead of going away; StatusReasons: {}",
                        v.get("StatusReasons").unwrap_or(&Value::Null)
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} still {status} after {timeout:?}, waiting for it to go"
                );
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `GetLayerVersion` until the version has one of the statuses `want`; panics at the deadline or when it
/// settles (Active, PublishFailed, DeleteFailed, Deleted) elsewhere.
pub fn wait_layer_status(
    client: &Client,
    layer: &str,
    version: i64,
    want: &[&str],
    timeout: Duration,
) -> Value {
    const SETTLED: &[&str] = &["Active", "PublishFailed", "DeleteFailed", "Deleted"];
    let deadline = Instant::now() + timeout;
    loop {
        let v = client
            .call(
                "GetLayerVersion",
                json!({"LayerName": layer, "LayerVersion": version}),
            )
            .unwrap_or_else(|e| panic!("GetLayerVersion {layer}/{version}: {e}"));
        let status = status_of(&v);
        if want.contains(&status) {
            return v;
        }
        assert!(
            !SETTLED.contains(&status),
            "layer {layer}/{version} settled in {status}, not one of {want:?}: {v}"
        );
        assert!(
            Instant::now() < deadline,
            "layer {layer}/{version} still {status} after {timeout:?}, waiting for {want:?}"
        );
        std::thread::sleep(POLL);
    }
}
