//! Accounts are isolated: another account sees nothing of the first one's functions and layers and cannot
//! change them.

use serde_json::json;
use testkit::{
    Backend, on_both_backends, wait_function_gone, wait_layer_status, wait_status, zips,
};

use crate::{SETTLE, create_active, function_names, s, start};

fn accounts_are_isolated(b: Backend) {
    let srv = start(&b);
    let a = srv.client();
    let first = create_active(&a, "mine");
    let content = zips::build(&[zips::file("python/lib.py", b"X = 1\n")]);
    a.ok(
        "PublishLayerVersion",
        json!({
            "LayerName": "mylib",
            "CompatibleRuntimes": ["Python3.9"],
            "Content": {"ZipFile": zips::b64(&content)},
        }),
    );
    wait_layer_status(&a, "mylib", 1, &["Active"], SETTLE);

    // A second account, made with the CLI while the server runs.
    let other = srv.create_account();
    assert_ne!(other.app_id, a.credentials().app_id);
    assert_ne!(other.secret_id, a.credentials().secret_id);
    let b2 = srv.client_for(&other);

    let name = json!({"FunctionName": "mine"});
    for (action, body) in [
        ("GetFunction", name.clone()),
        ("ListVersionByFunction", name.clone()),
        ("PublishVersion", name.clone()),
        ("DeleteFunction", name.clone()),
        (
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "mine", "Description": "hijacked"}),
        ),
        (
            "UpdateFunctionCode",
            json!({"FunctionName": "mine", "Code": {"ZipFile": zips::b64(&zips::python_hello_v(66))}}),
        ),
    ] {
        b2.err(action, body, "ResourceNotFound.Function");
    }
    assert!(function_names(&b2).is_empty());
    b2.err(
        "GetLayerVersion",
        json!({"LayerName": "mylib", "LayerVersion": 1}),
        "ResourceNotFound.LayerVersion",
    );
    b2.err(
        "DeleteLayerVersion",
        json!({"LayerName": "mylib", "LayerVersion": 1}),
        "ResourceNotFound.LayerVersion",
    );
    let layers = b2.ok("ListLayers", json!({}));
    assert_eq!(layers["TotalCount"], 0, "{layers}");
    let mut bind = crate::create_body(
        "binder",
        &zips::python_hello(),
        "Python3.9",
        "index.main_handler",
    );
    bind["Layers"] = json!([{"LayerName": "mylib", "LayerVersion": 1}]);
    b2.err("CreateFunction", bind, "ResourceNotFound.LayerVersion");

    // The other account's key with the first one's id does not sign.
    let r = a
        .request("ListFunctions", &json!({}))
        .credentials(&a.credentials().secret_id, &other.secret_key)
        .call();
    assert_eq!(
        r.expect_err("mixed key").code,
        "AuthFailure.SignatureFailure"
    );

    // The same name in the other account is another function.
    let theirs = create_active(&b2, "mine");
    assert_ne!(s(&theirs, "FunctionId"), s(&first, "FunctionId"));
    b2.ok("DeleteFunction", json!({"FunctionName": "mine"}));
    wait_function_gone(&b2, "mine", SETTLE);

    // Nothing of the first account changed.
    let after = wait_status(&a, "mine", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&after, "FunctionId"), s(&first, "FunctionId"));
    assert_eq!(after["Description"], first["Description"]);
    assert_eq!(after["CodeSize"], first["CodeSize"]);
    assert_eq!(after["ModTime"], first["ModTime"]);
    let v = a.ok("ListVersionByFunction", json!({"FunctionName": "mine"}));
    assert_eq!(v["TotalCount"], 1, "{v}");
    wait_layer_status(&a, "mylib", 1, &["Active"], SETTLE);
}

on_both_backends!(accounts_are_isolated);
