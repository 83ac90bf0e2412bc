//! Layer versions: publishing, binding rules, deletion tombstones, numbers never reused.

use serde_json::{Value, json};
use testkit::{Backend, Client, on_both_backends, wait_layer_status, wait_status, zips};

use crate::{SETTLE, create_body, s, start};

fn publish(c: &Client, name: &str, zip: &[u8], runtimes: &[&str]) -> i64 {
    let v = c.ok(
        "PublishLayerVersion",
        json!({
            "LayerName": name,
            "CompatibleRuntimes": runtimes,
            "Content": {"ZipFile": zips::b64(zip)},
            "Description": "a layer",
        }),
    );
    v["LayerVersion"].as_i64().expect("LayerVersion")
}

fn with_layers(name: &str, runtime: &str, layers: &[(&str, i64)]) -> Value {
    let zip = if runtime.starts_with("Nodejs") {
        zips::node_hello()
    } else {
        zips::python_hello()
    };
    let mut body = create_body(name, &zip, runtime, "index.main_handler");
    body["Layers"] = layers
        .iter()
        .map(|(n, v)| json!({"LayerName": n, "LayerVersion": v}))
        .collect();
    body
}

fn listed_versions(c: &Client, name: &str) -> Vec<i64> {
    let v = c.ok("ListLayerVersions", json!({"LayerName": name}));
    v["LayerVersions"]
        .as_array()
        .expect("LayerVersions")
        .iter()
        .map(|l| l["LayerVersion"].as_i64().expect("version"))
        .collect()
}

fn layer_lifecycle_and_binding(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let content = zips::build(&[zips::file("python/lib.py", b"X = 1\n")]);
    assert_eq!(publish(&c, "lib", &content, &["Python3.9"]), 1);
    assert_eq!(publish(&c, "lib", &content, &["Python3.9"]), 2);
    let v1 = wait_layer_status(&c, "lib", 1, &["Active"], SETTLE);
    wait_layer_status(&c, "lib", 2, &["Active"], SETTLE);
    assert_eq!(
        s(&v1, "CodeSha256").len(),
        64,
        "CodeSha256 is a hex sha256: {v1}"
    );
    assert_eq!(listed_versions(&c, "lib"), [2, 1]);

    // Binding checks are synchronous and store nothing on refusal.
    c.err(
        "CreateFunction",
        with_layers("f-missing", "Python3.9", &[("lib", 9)]),
        "ResourceNotFound.LayerVersion",
    );
    c.err(
        "CreateFunction",
        with_layers("f-node", "Nodejs18.15", &[("lib", 1)]),
        "InvalidParameterValue.Layers",
    );
    let six: Vec<(&str, i64)> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|n| (*n, 1))
        .collect();
    c.err(
        "CreateFunction",
        with_layers("f-six", "Python3.9", &six),
        "InvalidParameterValue.Layers",
    );
    for n in ["f-missing", "f-node", "f-six"] {
        c.err(
            "GetFunction",
            json!({"FunctionName": n}),
            "ResourceNotFound.Function",
        );
    }

    c.ok(
        "CreateFunction",
        with_layers("bound", "Python3.9", &[("lib", 1)]),
    );
    let f = wait_status(&c, "bound", "$LATEST", &["Active"], SETTLE);
    assert_eq!(f["Layers"][0]["LayerName"], "lib");
    assert_eq!(f["Layers"][0]["LayerVersion"], 1);

    // Deleting leaves a tombstone that GetLayerVersion still returns and the lists hide.
    c.ok(
        "DeleteLayerVersion",
        json!({"LayerName": "lib", "LayerVersion": 1}),
    );
    wait_layer_status(&c, "lib", 1, &["Deleted"], SETTLE);
    assert_eq!(listed_versions(&c, "lib"), [2]);
    let e = c
        .call(
            "DeleteLayerVersion",
            json!({"LayerName": "lib", "LayerVersion": 1}),
        )
        .expect_err("a deleted version cannot be deleted again");
    assert!(!e.code.is_empty());
    // A deleted version is no longer bindable; a function bound to it keeps working.
    c.err(
        "CreateFunction",
        with_layers("late", "Python3.9", &[("lib", 1)]),
        "InvalidParameterValue.Layers",
    );
    let f = c.ok("GetFunction", json!({"FunctionName": "bound"}));
    assert_eq!(s(&f, "Status"), "Active");
    assert_eq!(f["Layers"][0]["LayerVersion"], 1);

    // Numbers are never reused, even when every version was deleted.
    c.ok(
        "DeleteLayerVersion",
        json!({"LayerName": "lib", "LayerVersion": 2}),
    );
    wait_layer_status(&c, "lib", 2, &["Deleted"], SETTLE);
    let all = c.ok("ListLayers", json!({}));
    assert!(
        all["Layers"]
            .as_array()
            .expect("Layers")
            .iter()
            .all(|l| l["LayerName"] != "lib"),
        "a layer whose versions are all deleted is not listed: {all}"
    );
    assert_eq!(publish(&c, "lib", &content, &["Python3.9"]), 3);
    wait_layer_status(&c, "lib", 3, &["Active"], SETTLE);
    let all = c.ok("ListLayers", json!({}));
    assert_eq!(all["Layers"][0]["LayerVersion"], 3, "{all}");

    // Rebinding: UpdateFunctionConfiguration moves the function to version 3.
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "bound", "Layers": [{"LayerName": "lib", "LayerVersion": 3}]}),
    );
    let f = wait_status(&c, "bound", "$LATEST", &["Active"], SETTLE);
    assert_eq!(f["Layers"][0]["LayerVersion"], 3);
}

fn bad_layer_content_fails_to_publish(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("dotdot", zips::parent_dir_entry(), "../evil.py"),
        ("symlink", zips::escaping_symlink(), "escape"),
        ("fifo", zips::fifo(), "pipe"),
        ("junk", zips::not_a_zip(), "zip"),
    ];
    for (name, zip, _) in &cases {
        assert_eq!(publish(&c, name, zip, &["Python3.9"]), 1);
    }
    for (name, _, named) in &cases {
        let v = wait_layer_status(&c, name, 1, &["PublishFailed"], SETTLE);
        let text = v.to_string();
        // The reason may not be part of GetLayerVersion's reply shape; when it is, it must name the entry.
        if let Some(r) = v.get("StatusReasons") {
            assert!(r.to_string().contains(named), "{name}: {text}");
        }
        // A failed version cannot be bound, and can be deleted.
        c.err(
            "CreateFunction",
            with_layers("uses-bad", "Python3.9", &[(name, 1)]),
            "InvalidParameterValue.Layers",
        );
        c.ok(
            "DeleteLayerVersion",
            json!({"LayerName": name, "LayerVersion": 1}),
        );
        wait_layer_status(&c, name, 1, &["Deleted"], SETTLE);
    }
}

/// A function bound to a layer version that is later deleted keeps working: its other settings and its code
/// can still be changed (only binding the deleted version anew is refused).
fn function_bound_to_a_deleted_layer_stays_updatable(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let content = zips::build(&[zips::file("python/lib.py", b"X = 1\n")]);
    assert_eq!(publish(&c, "lib", &content, &["Python3.9"]), 1);
    wait_layer_status(&c, "lib", 1, &["Active"], SETTLE);
    c.ok(
        "CreateFunction",
        with_layers("bound", "Python3.9", &[("lib", 1)]),
    );
    wait_status(&c, "bound", "$LATEST", &["Active"], SETTLE);
    c.ok(
        "DeleteLayerVersion",
        json!({"LayerName": "lib", "LayerVersion": 1}),
    );
    wait_layer_status(&c, "lib", 1, &["Deleted"], SETTLE);
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "bound", "Description": "still here"}),
    );
    let v = wait_status(&c, "bound", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&v, "Description"), "still here");
    c.ok(
        "UpdateFunctionCode",
        json!({"FunctionName": "bound", "Code": {"ZipFile": zips::b64(&zips::python_hello_v(8))}}),
    );
    wait_status(&c, "bound", "$LATEST", &["Active"], SETTLE);
    c.ok("PublishVersion", json!({"FunctionName": "bound"}));
    wait_status(&c, "bound", "1", &["Active"], SETTLE);
}

on_both_backends!(
    function_bound_to_a_deleted_layer_stays_updatable,
    layer_lifecycle_and_binding,
    bad_layer_content_fails_to_publish,
);

#[cfg(feature = "failpoints")]
mod held {
    use super::*;
    use crate::{crash_hold, start_with_failpoints};

    fn content() -> Vec<u8> {
        zips::build(&[zips::file("python/lib.py", b"X = 1\n")])
    }

    /// Publishing: DeleteLayerVersion gets `FailedOperation.OperationConflict`, binding is refused.
    fn publishing_layer_refuses_delete_and_binding(b: Backend) {
        let srv = crash_hold(
            &b,
            "publish-layer-version",
            |_| {},
            |c| {
                assert_eq!(publish(c, "held", &content(), &["Python3.9"]), 1);
            },
        );
        let c = srv.client();
        let v = c.ok(
            "GetLayerVersion",
            json!({"LayerName": "held", "LayerVersion": 1}),
        );
        assert_eq!(s(&v, "Status"), "Publishing");
        c.err(
            "DeleteLayerVersion",
            json!({"LayerName": "held", "LayerVersion": 1}),
            "FailedOperation.OperationConflict",
        );
        c.err(
            "CreateFunction",
            with_layers("early", "Python3.9", &[("held", 1)]),
            "InvalidParameterValue.Layers",
        );
        wait_layer_status(&c, "held", 1, &["Active"], SETTLE);
        assert_eq!(publish(&c, "held", &content(), &["Python3.9"]), 2);
    }

    /// Deleting: DeleteLayerVersion again gets `FailedOperation.OperationConflict`.
    fn deleting_layer_refuses_delete(b: Backend) {
        let srv = crash_hold(
            &b,
            "delete-layer-version",
            |c| {
                assert_eq!(publish(c, "held", &content(), &["Python3.9"]), 1);
                wait_layer_status(c, "held", 1, &["Active"], SETTLE);
            },
            |c| {
                c.ok(
                    "DeleteLayerVersion",
                    json!({"LayerName": "held", "LayerVersion": 1}),
                );
            },
        );
        let c = srv.client();
        let v = c.ok(
            "GetLayerVersion",
            json!({"LayerName": "held", "LayerVersion": 1}),
        );
        assert_eq!(s(&v, "Status"), "Deleting");
        c.err(
            "DeleteLayerVersion",
            json!({"LayerName": "held", "LayerVersion": 1}),
            "FailedOperation.OperationConflict",
        );
        c.err(
            "CreateFunction",
            with_layers("late", "Python3.9", &[("held", 1)]),
            "InvalidParameterValue.Layers",
        );
        wait_layer_status(&c, "held", 1, &["Deleted"], SETTLE);
    }

    /// Injected failures: PublishFailed, and DeleteFailed that a second delete retries.
    fn layer_injected_failures(b: Backend) {
        let srv = start_with_failpoints(
            &b,
            "publish-layer-version=1*return;delete-layer-version=1*return",
        );
        let c = srv.client();
        assert_eq!(publish(&c, "inj", &content(), &["Python3.9"]), 1);
        wait_layer_status(&c, "inj", 1, &["PublishFailed"], SETTLE);
        assert_eq!(publish(&c, "inj", &content(), &["Python3.9"]), 2);
        wait_layer_status(&c, "inj", 2, &["Active"], SETTLE);
        c.ok(
            "DeleteLayerVersion",
            json!({"LayerName": "inj", "LayerVersion": 2}),
        );
        wait_layer_status(&c, "inj", 2, &["DeleteFailed"], SETTLE);
        c.ok(
            "DeleteLayerVersion",
            json!({"LayerName": "inj", "LayerVersion": 2}),
        );
        wait_layer_status(&c, "inj", 2, &["Deleted"], SETTLE);
        c.ok(
            "DeleteLayerVersion",
            json!({"LayerName": "inj", "LayerVersion": 1}),
        );
        wait_layer_status(&c, "inj", 1, &["Deleted"], SETTLE);
    }

    on_both_backends!(
        publishing_layer_refuses_delete_and_binding,
        deleting_layer_refuses_delete,
        layer_injected_failures,
    );
}
