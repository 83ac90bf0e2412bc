//! CustomRuntime: an `scf_bootstrap` speaking SCF's HTTP runtime API.

mod common;

use common::*;
use engine::status;

fn python_bootstrap(body: &str) -> String {
    let py = engine::runtimes::find_python3().expect("python3");
    format!(
        "#!{} -I\nimport http.client, json, os, sys\napi = (os.environ['SCF_RUNTIME_API'], int(os.environ['SCF_RUNTIME_API_PORT']))\nconn = http.client.HTTPConnection(*api)\ndef call(method, path, body=None):\n    conn.request(method, path, body=body)\n    r = conn.getresponse()\n    return r, r.read()\n{body}",
        py.display()
    )
}

#[tokio::test]
async fn python_bootstrap_speaks_the_runtime_api() {
    require!(has_python(), "python3");
    let bootstrap = python_bootstrap(
        r#"
print('bootstrap starting', flush=True)
call('POST', '/runtime/init/ready', b'')
while True:
    r, event = call('GET', '/runtime/invocation/next')
    rid = r.getheader('request_id')
    ev = json.loads(event)
    print('handling', rid, flush=True)
    if ev.get('fail'):
        call('POST', '/runtime/invocation/error', json.dumps({'errorMessage': 'asked to fail', 'errorType': 'Custom'}).encode())
    elif ev.get('exit'):
        sys.exit(4)
    else:
        out = {'rid': rid, 'mem': r.getheader('memory_limit_in_mb'), 'time': r.getheader('time_limit_in_ms'), 'event': ev}
        call('POST', '/runtime/invocation/response', json.dumps(out).encode())
        call('POST', '/runtime/invocation/response', b'"second post is ignored"')
"#,
    );
    let dir = code(&[("scf_bootstrap", &bootstrap)]);
    let e = engine(config());
    let s = spec("custom", "CustomRuntime", "", dir.path());
    let out = invoke(&e, &s, r#"{"k":"v"}"#).await;
    assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
    let v = json(out.ret_msg());
    assert_eq!(v["rid"], out.request_id.as_str());
    assert_eq!(v["mem"], "128");
    assert_eq!(v["time"], "3000");
    assert_eq!(v["event"]["k"], "v");
    assert!(out.cold_start);
    assert!(out.log.contains("bootstrap starting\n"), "{}", out.log);
    assert!(
        out.log.contains(&format!("handling {}\n", out.request_id)),
        "{}",
        out.log
    );

    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, 200, "{:?}", out.result);
    assert!(!out.cold_start);
    assert_eq!(json(out.ret_msg())["rid"], out.request_id.as_str());

    let out = invoke(&e, &s, r#"{"fail":true}"#).await;
    assert_eq!(out.status_code, status::USER_EXCEPTION);
    let err = out.result.as_ref().expect_err("error");
    assert_eq!(err.error_message, "asked to fail");
    assert_eq!(err.error_type.as_deref(), Some("Custom"));

    let out = invoke(&e, &s, r#"{"exit":true}"#).await;
    assert_eq!(out.status_code, status::PROCESS_EXITED, "{:?}", out.result);
    assert_eq!(e.idle_instances("custom"), 0);
}

#[tokio::test]
async fn shell_bootstrap_with_curl() {
    require!(prereq::has_command("curl"), "curl");
    let bootstrap = r#"#!/bin/sh
set -e
api="http://$SCF_RUNTIME_API:$SCF_RUNTIME_API_PORT/runtime"
curl -sf -X POST "$api/init/ready" -d '' >/dev/null
while true; do
  hdrs=$(mktemp)
  body=$(curl -sf -D "$hdrs" "$api/invocation/next")
  rid=$(grep -i '^request_id:' "$hdrs" | tr -d '\r' | cut -d' ' -f2)
  rm -f "$hdrs"
  echo "shell got $body"
  curl -sf -X POST "$api/invocation/response" -d "{\"echo\":$body,\"rid\":\"$rid\"}" >/dev/null
done
"#;
    let dir = code(&[("bootstrap", bootstrap)]);
    let e = engine(config());
    let s = spec("shell", "CustomRuntime", "", dir.path());
    let out = invoke(&e, &s, r#"{"n":1}"#).await;
    assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
    let v = json(out.ret_msg());
    assert_eq!(v["echo"]["n"], 1);
    assert_eq!(v["rid"], out.request_id.as_str());
    assert!(out.log.contains("shell got {\"n\":1}"), "{}", out.log);
}

#[tokio::test]
async fn init_timeout_and_early_exit() {
    let dir = code(&[("scf_bootstrap", "#!/bin/sh\necho never ready\nsleep 30\n")]);
    let e = engine(config());
    let mut s = spec("slowinit", "CustomRuntime", "", dir.path());
    s.init_timeout_s = 1;
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, status::TIMEOUT, "{:?}", out.result);
    assert!(out.log.contains("never ready"), "{}", out.log);

    let dir = code(&[("scf_bootstrap", "#!/bin/sh\necho bye\nexit 2\n")]);
    let out = invoke(&e, &spec("quits", "CustomRuntime", "", dir.path()), "{}").await;
    assert_eq!(out.status_code, status::PROCESS_EXITED, "{:?}", out.result);
    assert!(out.log.contains("bye"), "{}", out.log);
}
