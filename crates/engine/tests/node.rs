//! The built-in Node.js runtime on the unsandboxed launcher.

mod common;

use common::*;
use engine::status;

#[tokio::test]
async fn sync_async_and_callback_handlers() {
    require!(has_node(), "node");
    let dir = code(&[(
        "index.js",
        r#"
exports.sync = (event, context) => { console.log('sync log'); return { got: event, rid: context.request_id }; };
exports.asyncFn = async (event, context) => {
  await new Promise((r) => setTimeout(r, 5));
  console.log('async log');
  return { left: context.getRemainingTimeInMillis(), fn: context.function_name };
};
exports.promise = (event) => new Promise((r) => setTimeout(() => r('resolved'), 5));
exports.callback = (event, context, callback) => {
  setTimeout(() => { process.stdout.write('callback log\n'); callback(null, { n: event.n + 1 }); }, 5);
};
exports.cbSync = (event, context, callback) => { callback(null, 'immediate'); };
exports.cbError = (event, context, callback) => { setTimeout(() => callback(new TypeError('cb failed')), 1); };
exports.throws = () => { throw new RangeError('out of range'); };
exports.rejects = async () => { throw new Error('rejected'); };
exports.env = (event, context) => ({ env: process.env, environment: context.environment, mem: context.memory_limit_in_mb });
"#,
    )]);
    let e = engine(config());
    let s = |h: &str| {
        spec(
            &format!("node-{h}"),
            "Nodejs18.15",
            &format!("index.{h}"),
            dir.path(),
        )
    };

    let out = invoke(&e, &s("sync"), r#"{"x":1}"#).await;
    assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
    let v = json(out.ret_msg());
    assert_eq!(v["got"]["x"], 1);
    assert_eq!(v["rid"], out.request_id.as_str());
    assert!(out.log.contains("sync log\n"), "{}", out.log);
    assert!(out.cold_start);

    let out = invoke(&e, &s("asyncFn"), "{}").await;
    assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
    let v = json(out.ret_msg());
    assert!(v["left"].as_i64().expect("left") > 0);
    assert_eq!(v["fn"], "node-asyncFn");
    assert!(out.log.contains("async log\n"), "{}", out.log);

    let out = invoke(&e, &s("promise"), "{}").await;
    assert_eq!(out.ret_msg(), "\"resolved\"");

    let cb = s("callback");
    for n in 0..3 {
        let out = invoke(&e, &cb, &format!(r#"{{"n":{n}}}"#)).await;
        assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
        assert_eq!(json(out.ret_msg())["n"], n + 1);
        assert!(out.log.contains("callback log\n"), "{}", out.log);
        assert_eq!(out.cold_start, n == 0);
    }

    let out = invoke(&e, &s("cbSync"), "{}").await;
    assert_eq!(out.ret_msg(), "\"immediate\"");

    for (h, ty, msg) in [
        ("cbError", "TypeError", "cb failed"),
        ("throws", "RangeError", "out of range"),
        ("rejects", "Error", "rejected"),
    ] {
        let out = invoke(&e, &s(h), "{}").await;
        assert_eq!(
            out.status_code,
            status::USER_EXCEPTION,
            "{h}: {:?}",
            out.result
        );
        let err = out.result.as_ref().expect_err("error");
        assert_eq!(err.error_type.as_deref(), Some(ty));
        assert_eq!(err.error_message, msg);
        assert!(err.stack_trace.contains(msg), "{}", err.stack_trace);
        // And the instance still serves.
        let again = invoke(&e, &s(h), "{}").await;
        assert!(!again.cold_start, "{h}");
    }

    let mut env_spec = s("env");
    env_spec.env = vec![("COLOR".into(), "blue".into())];
    let out = invoke(&e, &env_spec, "{}").await;
    let v = json(out.ret_msg());
    assert_eq!(v["env"]["COLOR"], "blue");
    assert_eq!(v["env"]["SCF_RUNTIME"], "Nodejs18.15");
    assert!(
        v["env"]["NODE_PATH"]
            .as_str()
            .expect("NODE_PATH")
            .contains("node_modules")
    );
    assert_eq!(
        json(v["environment"].as_str().expect("string"))["COLOR"],
        "blue"
    );
    assert_eq!(v["mem"], 128);
}

#[tokio::test]
async fn missing_handler_timeout_and_exit() {
    require!(has_node(), "node");
    let dir = code(&[(
        "index.js",
        "exports.hang = async () => new Promise(() => {});\nexports.exit = () => process.exit(5);\n",
    )]);
    let e = engine(config());
    let out = invoke(
        &e,
        &spec("n1", "Nodejs16.13", "index.nothere", dir.path()),
        "{}",
    )
    .await;
    assert_eq!(
        out.status_code,
        status::HANDLER_NOT_FOUND,
        "{:?}",
        out.result
    );
    let out = invoke(
        &e,
        &spec("n2", "Nodejs16.13", "nofile.main", dir.path()),
        "{}",
    )
    .await;
    assert_eq!(
        out.status_code,
        status::HANDLER_NOT_FOUND,
        "{:?}",
        out.result
    );

    let mut hang = spec("n3", "Nodejs16.13", "index.hang", dir.path());
    hang.timeout_s = 1;
    let out = invoke(&e, &hang, "{}").await;
    assert_eq!(out.status_code, status::TIMEOUT);
    assert_eq!(e.idle_instances("n3"), 0);

    let out = invoke(
        &e,
        &spec("n4", "Nodejs16.13", "index.exit", dir.path()),
        "{}",
    )
    .await;
    assert_eq!(out.status_code, status::PROCESS_EXITED, "{:?}", out.result);
}

#[tokio::test]
async fn esm_module_and_layer_node_modules() {
    require!(has_node(), "node");
    let dir = code(&[(
        "index.mjs",
        "import { createRequire } from 'module';\nconst require = createRequire(process.env.USER_CODE_ROOT);\nexport const main = async (event) => ({ esm: true, lib: require('greet').hi() });\n",
    )]);
    let layer = code(&[(
        "node_modules/greet/index.js",
        "exports.hi = () => 'from layer';\n",
    )]);
    let e = engine(config());
    let mut s = spec("esm", "Nodejs18.15", "index.main", dir.path());
    s.layer_dirs = vec![layer.path().to_path_buf()];
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
    assert_eq!(
        json(out.ret_msg()),
        json(r#"{"esm":true,"lib":"from layer"}"#)
    );
}

#[tokio::test]
async fn large_event_round_trip() {
    require!(has_node(), "node");
    let dir = code(&[(
        "index.js",
        "exports.main = (event) => ({ n: event.blob.length, blob: event.blob });\n",
    )]);
    let e = engine(config());
    let s = spec("node-big", "Nodejs18.15", "index.main", dir.path());
    let blob = "z".repeat(5 * 1024 * 1024);
    for _ in 0..2 {
        let out = invoke(&e, &s, &format!(r#"{{"blob":"{blob}"}}"#)).await;
        assert_eq!(out.status_code, 200, "{:?}", out.result);
        let v = json(out.ret_msg());
        assert_eq!(v["n"], blob.len());
        assert_eq!(v["blob"].as_str().map(str::len), Some(blob.len()));
    }
}
