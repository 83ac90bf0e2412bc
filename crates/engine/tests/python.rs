//! The built-in Python runtime on the unsandboxed launcher.

mod common;

use common::*;
use engine::status;

const ECHO: &str = "def main(event, context):\n    return event\n";

#[tokio::test]
async fn returns_its_event_and_reuses_the_instance() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", ECHO)]);
    let e = engine(config());
    let s = spec("echo", "Python3.9", "index.main", dir.path());
    let first = invoke(&e, &s, r#"{"a": [1, "x"], "b": null}"#).await;
    assert_eq!(first.status_code, 200, "{:?}\n{}", first.result, first.log);
    assert_eq!(json(first.ret_msg()), json(r#"{"a": [1, "x"], "b": null}"#));
    assert!(first.cold_start);
    assert!(first.init_ms > 0.0);
    assert!(
        first
            .log
            .starts_with(&format!("START RequestId:{}\n", first.request_id)),
        "{}",
        first.log
    );
    assert!(
        first.log.contains("Init Report RequestId:"),
        "{}",
        first.log
    );
    assert!(
        first
            .log
            .contains(&format!("Response RequestId:{} RetMsg:", first.request_id))
    );
    assert!(
        first
            .log
            .contains(&format!("END RequestId:{}\n", first.request_id))
    );
    assert!(first.log.contains("Report RequestId:"));
    assert!(first.mem_usage_bytes > 1024 * 1024);
    assert!(first.bill_duration_ms >= 1);

    let second = invoke(&e, &s, "").await;
    assert_eq!(second.status_code, 200);
    assert_eq!(json(second.ret_msg()), json("{}"));
    assert!(!second.cold_start, "the second call should be warm");
    assert!(!second.log.contains("Init Report"));
    assert_eq!(e.idle_instances("echo"), 1);
}

#[tokio::test]
async fn exception_is_430_with_type_message_and_stack() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "def helper():\n    raise ValueError('bad input')\n\ndef main(event, context):\n    print('before')\n    helper()\n",
    )]);
    let e = engine(config());
    let s = spec("exc", "Python3.9", "index.main", dir.path());
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, status::USER_EXCEPTION);
    let err = out.result.as_ref().expect_err("error");
    assert_eq!(err.error_type.as_deref(), Some("ValueError"));
    assert_eq!(err.error_message, "bad input");
    assert!(err.stack_trace.contains("in helper"), "{}", err.stack_trace);
    assert!(err.stack_trace.contains("ValueError: bad input"));
    assert!(
        !err.stack_trace.contains("<string>"),
        "bootstrap frames leak: {}",
        err.stack_trace
    );
    let msg = json(&out.err_msg());
    assert_eq!(msg["statusCode"], 430);
    assert!(out.log.contains("before\n"), "{}", out.log);
    assert!(
        out.log
            .contains(&format!("ERROR RequestId:{} Result:", out.request_id))
    );
    // The instance survives a user exception.
    let again = invoke(&e, &s, "{}").await;
    assert!(!again.cold_start);
}

#[tokio::test]
async fn missing_handler_is_437() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", ECHO)]);
    let e = engine(config());
    for (key, handler) in [("nofile", "missing.main"), ("nofunc", "index.nope")] {
        let s = spec(key, "Python3.9", handler, dir.path());
        let out = invoke(&e, &s, "{}").await;
        assert_eq!(
            out.status_code,
            status::HANDLER_NOT_FOUND,
            "{handler}: {:?}",
            out.result
        );
        assert!(out.cold_start);
        assert_eq!(e.idle_instances(key), 0);
    }
}

#[tokio::test]
async fn import_error_is_430() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", "import not_a_module_anywhere\n")]);
    let e = engine(config());
    let out = invoke(
        &e,
        &spec("imp", "Python3.9", "index.main", dir.path()),
        "{}",
    )
    .await;
    assert_eq!(out.status_code, status::USER_EXCEPTION, "{:?}", out.result);
}

#[tokio::test]
async fn timeout_is_433_and_the_instance_is_recycled() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "import time\ndef main(event, context):\n    if event.get('sleep'):\n        print('sleeping')\n        time.sleep(30)\n    return 'ok'\n",
    )]);
    let e = engine(config());
    let mut s = spec("slow", "Python3.9", "index.main", dir.path());
    s.timeout_s = 1;
    let t = std::time::Instant::now();
    let out = invoke(&e, &s, r#"{"sleep": true}"#).await;
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(out.status_code, status::TIMEOUT);
    assert_eq!(
        out.result.as_ref().expect_err("timeout").error_message,
        "Invoking task timed out after 1 seconds"
    );
    assert!(out.log.contains("sleeping"), "{}", out.log);
    assert_eq!(e.idle_instances("slow"), 0);
    let next = invoke(&e, &s, "{}").await;
    assert_eq!(next.status_code, 200);
    assert!(next.cold_start, "a timed-out instance must not be reused");
}

#[tokio::test]
async fn process_exit_is_439() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "import os, sys\ndef main(event, context):\n    os._exit(3)\ndef sysexit(event, context):\n    sys.exit(0)\ndef builtin_exit(event, context):\n    exit()\n",
    )]);
    let e = engine(config());
    for handler in ["index.main", "index.sysexit", "index.builtin_exit"] {
        let s = spec(handler, "Python3.9", handler, dir.path());
        let out = invoke(&e, &s, "{}").await;
        assert_eq!(
            out.status_code,
            status::PROCESS_EXITED,
            "{handler}: {:?}",
            out.result
        );
        assert_eq!(e.idle_instances(handler), 0);
    }
}

#[tokio::test]
async fn memory_limit_is_434() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "import time\ndef main(event, context):\n    x = bytearray(200 * 1024 * 1024)\n    for i in range(0, len(x), 4096):\n        x[i] = 1\n    time.sleep(1)\n    return len(x)\n",
    )]);
    let e = engine(config());
    let mut s = spec("mem", "Python3.9", "index.main", dir.path());
    s.memory_mb = 64;
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, status::MEMORY_LIMIT, "{:?}", out.result);
}

#[tokio::test]
async fn environment_and_context() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "import os, json\ndef main(event, context):\n    return {'env': dict(os.environ), 'ctx': {k: v for k, v in context.items() if not callable(v)}, 'rid': context.request_id, 'left': context['getRemainingTimeInMillis']()}\n",
    )]);
    let e = engine(config());
    let mut s = spec("env", "Python3.9", "index.main", dir.path());
    s.env = vec![("GREETING".into(), "hello".into())];
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, 200, "{:?}", out.result);
    let v = json(out.ret_msg());
    let env = &v["env"];
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["SCF_FUNCTIONNAME"], "env");
    assert_eq!(env["SCF_FUNCTIONVERSION"], "$LATEST");
    assert_eq!(env["SCF_NAMESPACE"], "default");
    assert_eq!(env["SCF_RUNTIME"], "Python3.9");
    assert_eq!(env["TENCENTCLOUD_REGION"], "ap-guangzhou");
    assert_eq!(env["TENCENTCLOUD_APPID"], "1250000000");
    assert_eq!(env["TENCENTCLOUD_UIN"], "100000000001");
    assert_eq!(env["TENCENTCLOUD_RUNENV"], "SCF");
    assert_eq!(env["_HANDLER"], "index.main");
    assert_eq!(env["TZ"], "UTC");
    assert!(env["USER_CODE_ROOT"].as_str().expect("root").ends_with('/'));
    assert!(env.get("HOME").is_none() || env["HOME"] != std::env::var("HOME").unwrap_or_default());
    assert!(
        env.get("CARGO").is_none(),
        "the server's environment leaked"
    );
    let ctx = &v["ctx"];
    assert_eq!(ctx["request_id"], out.request_id.as_str());
    assert_eq!(v["rid"], out.request_id.as_str());
    assert_eq!(ctx["function_name"], "env");
    assert_eq!(ctx["namespace"], "default");
    assert_eq!(ctx["memory_limit_in_mb"], 128);
    assert_eq!(ctx["time_limit_in_ms"], 3000);
    assert_eq!(ctx["tencentcloud_appid"], "1250000000");
    let environment = json(
        ctx["environment"]
            .as_str()
            .expect("environment is a string"),
    );
    assert_eq!(environment["GREETING"], "hello");
    let left = v["left"].as_i64().expect("ms");
    assert!(left > 0 && left <= 3000, "{left}");
}

#[tokio::test]
async fn layer_module_is_importable() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "import shared, nested\ndef main(event, context):\n    return [shared.WHO, nested.WHO]\n",
    )]);
    let old = code(&[("shared.py", "WHO = 'old layer'\n")]);
    let new = code(&[
        ("shared.py", "WHO = 'new layer'\n"),
        ("python/nested.py", "WHO = 'nested'\n"),
    ]);
    let e = engine(config());
    let mut s = spec("layer", "Python3.9", "index.main", dir.path());
    s.layer_dirs = vec![old.path().to_path_buf(), new.path().to_path_buf()];
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, 200, "{:?}", out.result);
    assert_eq!(json(out.ret_msg()), json(r#"["new layer", "nested"]"#));
}

#[tokio::test]
async fn handler_in_a_subdirectory_and_unicode_output() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "src/app.py",
        "def main(event, context):\n    print('héllo wörld')\n    return {'msg': 'ünïcode'}\n",
    )]);
    let e = engine(config());
    let out = invoke(
        &e,
        &spec("sub", "Python3.9", "src/app.main", dir.path()),
        "{}",
    )
    .await;
    assert_eq!(out.status_code, 200, "{:?}", out.result);
    assert_eq!(json(out.ret_msg())["msg"], "ünïcode");
    assert!(out.log.contains("héllo wörld\n"), "{}", out.log);
}

#[tokio::test]
async fn large_payloads_and_bounded_logs() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "import sys\ndef main(event, context):\n    if event.get('spam'):\n        for i in range(event['spam']):\n            print('x' * 99)\n        sys.stdout.write('no newline at the end')\n        return 'spammed'\n    return event\n",
    )]);
    let e = engine(engine::EngineConfig {
        max_log_bytes: 64 * 1024,
        ..config()
    });
    let s = spec("big", "Python3.9", "index.main", dir.path());
    let blob = "y".repeat(5 * 1024 * 1024);
    let event = format!(r#"{{"blob": "{blob}"}}"#);
    let out = invoke(&e, &s, &event).await;
    assert_eq!(out.status_code, 200, "{:?}", out.result);
    assert_eq!(
        json(out.ret_msg())["blob"].as_str().map(str::len),
        Some(blob.len())
    );
    assert!(out.log.len() < 8 * 1024, "the RetMsg in the log is cut");

    let out = invoke(&e, &s, r#"{"spam": 10000}"#).await;
    assert_eq!(out.ret_msg(), "\"spammed\"");
    assert!(out.log.len() < 70 * 1024, "{}", out.log.len());
    assert!(
        out.log.contains("bytes of output dropped"),
        "{}",
        engine::log::tail(&out.log, 500)
    );
    let tail = engine::log::tail(&out.log, 4096);
    assert!(tail.len() <= 4096);
    assert!(tail.ends_with("MB"), "{tail}");
    // Output stays attributed to its own invocation.
    let out = invoke(&e, &s, r#"{"spam": 1}"#).await;
    assert!(
        out.log
            .contains("no newline at the end\nResponse RequestId:"),
        "{}",
        out.log
    );
    assert_eq!(out.log.matches(&"x".repeat(99)).count(), 1, "{}", out.log);
}

#[tokio::test]
async fn a_result_over_the_frame_bound_is_a_430_and_stops_the_instance() {
    require!(has_python(), "python3");
    let dir = code(&[(
        "index.py",
        "def main(event, context):\n    return 'r' * event['n']\n",
    )]);
    let e = engine(config());
    let mut s = spec("huge", "Python3.9", "index.main", dir.path());
    s.memory_mb = 256;
    // Just under the engine's bound: passed on (control turns anything over 6 MB into its own 430).
    let n = engine::protocol::MAX_PAYLOAD - 2;
    let out = invoke(&e, &s, &format!(r#"{{"n": {n}}}"#)).await;
    assert_eq!(out.status_code, 200, "{:?}", out.result.as_ref().err());
    assert_eq!(out.ret_msg().len(), n + 2);

    // Over it: refused from the frame's header, before the payload is buffered; the stream is out of step, so the
    // instance is stopped.
    let n = 16 * 1024 * 1024;
    let out = invoke(&e, &s, &format!(r#"{{"n": {n}}}"#)).await;
    assert_eq!(out.status_code, status::USER_EXCEPTION);
    let err = out.result.as_ref().expect_err("too large");
    assert_eq!(
        err.error_message,
        format!(
            "the function returned {} bytes; a synchronous invocation returns at most 6 MB",
            n + 2
        )
    );
    assert_eq!(e.idle_instances("huge"), 0);
    let out = invoke(&e, &s, r#"{"n": 3}"#).await;
    assert_eq!(out.status_code, 200);
    assert!(out.cold_start, "a new instance");
}
