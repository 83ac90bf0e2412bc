//! Functions and versions going through their statuses: create, fail to create, update, fail to update,
//! publish, delete.

use serde_json::{Value, json};
use testkit::{Backend, on_both_backends, wait_function_gone, wait_status, zips};

use crate::{SETTLE, create_active, create_body, function_names, reasons, s, start};

fn create_becomes_active(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let zip = zips::python_hello();
    c.ok(
        "CreateFunction",
        json!({
            "FunctionName": "hello-py",
            "Code": {"ZipFile": zips::b64(&zip)},
            "Runtime": "Python3.9",
            "Handler": "index.main_handler",
            "Description": "says hello",
            "MemorySize": 256,
            "Timeout": 7,
            "Environment": {"Variables": [{"Key": "GREETING", "Value": "hi"}]},
        }),
    );
    // Accepted at once: the record exists, being created or already created.
    let first = c.ok("GetFunction", json!({"FunctionName": "hello-py"}));
    assert!(
        ["Creating", "Active"].contains(&s(&first, "Status")),
        "{first}"
    );
    let v = wait_status(&c, "hello-py", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&v, "FunctionName"), "hello-py");
    assert_eq!(s(&v, "Runtime"), "Python3.9");
    assert_eq!(s(&v, "Handler"), "index.main_handler");
    assert_eq!(s(&v, "Description"), "says hello");
    assert_eq!(s(&v, "FunctionVersion"), "$LATEST");
    assert_eq!(s(&v, "Qualifier"), "$LATEST");
    assert_eq!(s(&v, "Namespace"), "default");
    assert_eq!(v["MemorySize"], 256);
    assert_eq!(v["Timeout"], 7);
    assert_eq!(v["CodeSize"], zip.len());
    assert_eq!(v["Environment"]["Variables"][0]["Key"], "GREETING");
    assert_eq!(v["StatusReasons"], json!([]));
    assert!(s(&v, "FunctionId").starts_with("lam-"), "{v}");
    // A small package is a database row: Active, and still no file or tree of it (the first instance unpacks).
    let sha = store::sha256_hex(&zip);
    assert!(!srv.data_dir().join("blobs").join(&sha).exists());
    assert!(!srv.data_dir().join("unpacked").join(&sha).exists());

    c.ok(
        "CreateFunction",
        create_body(
            "hello-node",
            &zips::node_hello(),
            "Nodejs18.15",
            "index.main_handler",
        ),
    );
    c.ok(
        "CreateFunction",
        json!({
            "FunctionName": "hello-custom",
            "Code": {"ZipFile": zips::b64(&zips::custom_runtime())},
            "Runtime": "CustomRuntime",
        }),
    );
    wait_status(&c, "hello-node", "$LATEST", &["Active"], SETTLE);
    wait_status(&c, "hello-custom", "$LATEST", &["Active"], SETTLE);

    let mut names = function_names(&c);
    names.sort();
    assert_eq!(names, ["hello-custom", "hello-node", "hello-py"]);
    let listed = c.ok("ListFunctions", json!({"SearchKey": "node"}));
    assert_eq!(listed["TotalCount"], 1, "{listed}");
    assert_eq!(listed["Functions"][0]["Status"], "Active");
}

/// A package whose central directory is sound but whose `index.py` data is damaged (a flipped byte): only
/// reading the data finds it, and preparation does, so `Active` never names a package that cannot unpack.
fn damaged_data() -> Vec<u8> {
    let mut zip = zips::python_hello();
    let le16 = |at: usize| usize::from(u16::from_le_bytes([zip[at], zip[at + 1]]));
    let data = 30 + le16(26) + le16(28);
    zip[data + 1] ^= 0xff;
    zip
}

/// Each bad package: (name, zip, runtime, handler, what the reason must name).
fn bad_packages() -> Vec<(
    &'static str,
    Vec<u8>,
    &'static str,
    &'static str,
    &'static str,
)> {
    vec![
        (
            "no-handler",
            zips::missing_handler(),
            "Python3.9",
            "index.main_handler",
            "index.py",
        ),
        (
            "dotdot",
            zips::parent_dir_entry(),
            "Python3.9",
            "index.main_handler",
            "../evil.py",
        ),
        (
            "absolute",
            zips::absolute_entry(),
            "Python3.9",
            "index.main_handler",
            "/tmp/evil.py",
        ),
        (
            "symlink",
            zips::escaping_symlink(),
            "Python3.9",
            "index.main_handler",
            "escape",
        ),
        (
            "fifo",
            zips::fifo(),
            "Python3.9",
            "index.main_handler",
            "pipe",
        ),
        (
            "bomb",
            zips::zip_bomb(),
            "Python3.9",
            "index.main_handler",
            "bomb.bin",
        ),
        (
            "not-a-zip",
            zips::not_a_zip(),
            "Python3.9",
            "index.main_handler",
            "zip",
        ),
        (
            "damaged",
            damaged_data(),
            "Python3.9",
            "index.main_handler",
            "index.py",
        ),
        (
            "not-exec",
            zips::custom_runtime_not_executable(),
            "CustomRuntime",
            "index.main_handler",
            "scf_bootstrap",
        ),
    ]
}

fn bad_packages_fail_to_create_naming_the_entry(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let cases = bad_packages();
    for (name, zip, runtime, handler, _) in &cases {
        c.ok("CreateFunction", create_body(name, zip, runtime, handler));
    }
    for (name, _, _, _, named) in &cases {
        let v = wait_status(&c, name, "$LATEST", &["CreateFailed"], SETTLE);
        let r = reasons(&v);
        assert!(
            r.contains(named),
            "{name}: StatusReasons should name `{named}`: {r}"
        );
        let first = &v["StatusReasons"][0];
        assert!(
            !s(first, "ErrorCode").is_empty(),
            "{name}: reason without a code: {v}"
        );
    }
    // Nothing escaped the package: no file named by the bad entries appeared outside the data directory.
    assert!(!std::path::Path::new("/tmp/evil.py").exists());
    assert!(
        !srv.data_dir()
            .parent()
            .expect("data dir parent")
            .join("evil.py")
            .exists()
    );
}

fn update_configuration_and_code(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let before = create_active(&c, "upd");
    let old_size = before["CodeSize"].clone();

    c.ok(
        "UpdateFunctionConfiguration",
        json!({
            "FunctionName": "upd",
            "Description": "second",
            "MemorySize": 512,
            "Timeout": 30,
            "Environment": {"Variables": [{"Key": "A", "Value": "1"}]},
        }),
    );
    let v = wait_status(&c, "upd", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&v, "Description"), "second");
    assert_eq!(v["MemorySize"], 512);
    assert_eq!(v["Timeout"], 30);
    assert_eq!(v["Environment"]["Variables"][0]["Value"], "1");
    assert_eq!(
        v["CodeSize"], old_size,
        "a configuration update keeps the code"
    );

    let new_zip = zips::python_hello_v(2);
    c.ok(
        "UpdateFunctionCode",
        json!({"FunctionName": "upd", "Code": {"ZipFile": zips::b64(&new_zip)}}),
    );
    let v = wait_status(&c, "upd", "$LATEST", &["Active"], SETTLE);
    assert_eq!(v["CodeSize"], new_zip.len());
    assert_eq!(
        s(&v, "Description"),
        "second",
        "a code update keeps the configuration"
    );
    assert_eq!(v["MemorySize"], 512);
    assert_eq!(v["StatusReasons"], json!([]));
}

/// A failed update leaves the serving snapshot exactly as it was.
fn failed_updates_leave_serving_untouched(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "keep");
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "keep", "Description": "serving", "MemorySize": 256}),
    );
    let serving = wait_status(&c, "keep", "$LATEST", &["Active"], SETTLE);
    let same = |v: &Value| {
        for f in [
            "Handler",
            "CodeSize",
            "Description",
            "MemorySize",
            "Runtime",
            "Timeout",
        ] {
            assert_eq!(v[f], serving[f], "{f} changed after a failed update: {v}");
        }
    };

    // New handler that the code does not have.
    c.ok(
        "UpdateFunctionCode",
        json!({
            "FunctionName": "keep",
            "Handler": "main.main_handler",
            "Code": {"ZipFile": zips::b64(&zips::python_hello_v(3))},
        }),
    );
    let v = wait_status(&c, "keep", "$LATEST", &["UpdateFailed"], SETTLE);
    assert!(reasons(&v).contains("main.py"), "{}", reasons(&v));
    same(&v);

    // Unsafe code: the reason names the entry.
    c.ok(
        "UpdateFunctionCode",
        json!({"FunctionName": "keep", "Code": {"ZipFile": zips::b64(&zips::escaping_symlink())}}),
    );
    let v = wait_status(&c, "keep", "$LATEST", &["UpdateFailed"], SETTLE);
    assert!(reasons(&v).contains("escape"), "{}", reasons(&v));
    same(&v);

    // A configuration that no longer fits the code: handler file of another runtime.
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "keep", "Runtime": "Nodejs18.15", "Description": "never served"}),
    );
    let v = wait_status(&c, "keep", "$LATEST", &["UpdateFailed"], SETTLE);
    assert!(reasons(&v).contains("index.js"), "{}", reasons(&v));
    same(&v);

    // UpdateFailed accepts a retry, which clears the reasons.
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "keep", "Description": "retried"}),
    );
    let v = wait_status(&c, "keep", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&v, "Description"), "retried");
    assert_eq!(v["CodeSize"], serving["CodeSize"]);
    assert_eq!(v["StatusReasons"], json!([]));
}

fn versions(c: &testkit::Client, name: &str) -> Vec<(String, String)> {
    let v = c.ok("ListVersionByFunction", json!({"FunctionName": name}));
    v["Versions"]
        .as_array()
        .expect("Versions")
        .iter()
        .map(|v| (s(v, "Version").to_string(), s(v, "Status").to_string()))
        .collect()
}

fn publish_versions(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "pub");
    let v = c.ok(
        "PublishVersion",
        json!({"FunctionName": "pub", "Description": "first"}),
    );
    assert_eq!(s(&v, "FunctionVersion"), "1");
    let v1 = wait_status(&c, "pub", "1", &["Active"], SETTLE);
    assert_eq!(s(&v1, "Description"), "first");
    assert_eq!(v1["MemorySize"], 128);
    // $LATEST is not disturbed by publishing.
    let latest = c.ok("GetFunction", json!({"FunctionName": "pub"}));
    assert_eq!(s(&latest, "Status"), "Active");

    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "pub", "MemorySize": 256}),
    );
    wait_status(&c, "pub", "$LATEST", &["Active"], SETTLE);
    let v = c.ok("PublishVersion", json!({"FunctionName": "pub"}));
    assert_eq!(s(&v, "FunctionVersion"), "2");
    let v2 = wait_status(&c, "pub", "2", &["Active"], SETTLE);
    assert_eq!(v2["MemorySize"], 256);
    // Versions are immutable: version 1 still has its own configuration.
    let v1 = c.ok(
        "GetFunction",
        json!({"FunctionName": "pub", "Qualifier": "1"}),
    );
    assert_eq!(v1["MemorySize"], 128);
    assert_eq!(
        versions(&c, "pub"),
        [
            ("$LATEST".to_string(), "Active".to_string()),
            ("1".to_string(), "Active".to_string()),
            ("2".to_string(), "Active".to_string()),
        ]
    );

    // Deleting version 2 and publishing again gives 3: numbers are never reused.
    c.ok(
        "DeleteFunctionVersion",
        json!({"FunctionName": "pub", "Qualifier": "2"}),
    );
    testkit::wait_for("version 2 to go", SETTLE, || {
        match c.call(
            "GetFunction",
            json!({"FunctionName": "pub", "Qualifier": "2"}),
        ) {
            Err(e) if e.code.starts_with("ResourceNotFound") => Some(()),
            Err(e) => panic!("GetFunction version 2: {e}"),
            Ok(_) => None,
        }
    });
    let v = c.ok("PublishVersion", json!({"FunctionName": "pub"}));
    assert_eq!(s(&v, "FunctionVersion"), "3");
    wait_status(&c, "pub", "3", &["Active"], SETTLE);

    // UpdateFunctionCode with Publish=TRUE publishes the new code as the next version once it is applied.
    let zip = zips::python_hello_v(4);
    c.ok(
        "UpdateFunctionCode",
        json!({"FunctionName": "pub", "Publish": "TRUE", "Code": {"ZipFile": zips::b64(&zip)}}),
    );
    wait_status(&c, "pub", "$LATEST", &["Active"], SETTLE);
    let v4 = testkit::wait_for("version 4 to appear", SETTLE, || {
        c.call(
            "GetFunction",
            json!({"FunctionName": "pub", "Qualifier": "4"}),
        )
        .ok()
    });
    assert_eq!(v4["CodeSize"], zip.len(), "{v4}");
    wait_status(&c, "pub", "4", &["Active"], SETTLE);

    // Unknown qualifiers.
    let e = c
        .call(
            "GetFunction",
            json!({"FunctionName": "pub", "Qualifier": "99"}),
        )
        .expect_err("no version 99");
    assert!(e.code.starts_with("ResourceNotFound"), "{e}");
}

fn delete_function(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    create_active(&c, "gone");
    c.ok(
        "PublishVersion",
        json!({"FunctionName": "gone", "Description": "v"}),
    );
    wait_status(&c, "gone", "1", &["Active"], SETTLE);
    c.ok(
        "CreateAlias",
        json!({"FunctionName": "gone", "Name": "prod", "FunctionVersion": "1"}),
    );
    c.ok("DeleteFunction", json!({"FunctionName": "gone"}));
    wait_function_gone(&c, "gone", SETTLE);
    c.err(
        "GetFunction",
        json!({"FunctionName": "gone", "Qualifier": "1"}),
        "ResourceNotFound.Function",
    );
    c.err(
        "DeleteFunction",
        json!({"FunctionName": "gone"}),
        "ResourceNotFound.Function",
    );
    assert!(!function_names(&c).contains(&"gone".to_string()));
    let aliases = c.call("ListAliases", json!({"FunctionName": "gone"}));
    assert!(
        aliases.is_err(),
        "aliases of a deleted function: {aliases:?}"
    );

    // The name is free again, and the new function starts from scratch.
    let v = create_active(&c, "gone");
    assert_eq!(
        versions(&c, "gone"),
        [("$LATEST".to_string(), "Active".to_string())]
    );
    assert_eq!(v["StatusReasons"], json!([]));
    let v = c.ok("PublishVersion", json!({"FunctionName": "gone"}));
    assert_eq!(s(&v, "FunctionVersion"), "1");
}

/// Many functions with byte-identical code (one blob, one unpacked tree) prepared at the same time by several
/// workers: every one becomes Active.
fn identical_code_prepared_concurrently(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    // Hundreds of files, so that unpacking takes a while and the workers overlap.
    let names: Vec<String> = (0..400).map(|i| format!("pkg/mod{i}.py")).collect();
    let mut entries = vec![zips::file("index.py", zips::PYTHON_HANDLER)];
    entries.extend(names.iter().map(|n| zips::file(n, b"X = 1\n")));
    let zip = zips::build(&entries);
    const N: usize = 16;
    std::thread::scope(|sc| {
        for t in 0..4 {
            let c = c.clone();
            let zip = &zip;
            sc.spawn(move || {
                for i in (t..N).step_by(4) {
                    c.ok(
                        "CreateFunction",
                        create_body(&format!("same{i}"), zip, "Python3.9", "index.main_handler"),
                    );
                }
            });
        }
    });
    for i in 0..N {
        wait_status(&c, &format!("same{i}"), "$LATEST", &["Active"], SETTLE);
    }
}

on_both_backends!(
    identical_code_prepared_concurrently,
    create_becomes_active,
    bad_packages_fail_to_create_naming_the_entry,
    update_configuration_and_code,
    failed_updates_leave_serving_untouched,
    publish_versions,
    delete_function,
);
