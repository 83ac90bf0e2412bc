//! The custom runtime API is served inside the engine's own process: whatever a function sends it must not cost
//! the server more than a bounded amount of memory. Its own test binary, so that the process's peak memory
//! (VmHWM) is this test's alone.

mod common;

use common::*;
use engine::status;

/// Peak resident memory of this process (where the engine and its runtime API servers run), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// A bootstrap that, when the event asks, floods its runtime API with 32 parallel 16 MiB posts (half with a
/// `Content-Length`, half chunked; half results, half errors) and otherwise answers `{"ok": true}`.
fn flooding_bootstrap() -> String {
    let py = engine::runtimes::find_python3().expect("python3");
    format!(
        r#"#!{py} -I
import http.client, json, os, socket, threading
host, port = os.environ['SCF_RUNTIME_API'], int(os.environ['SCF_RUNTIME_API_PORT'])
conn = http.client.HTTPConnection(host, port)
def call(method, path, body=None):
    conn.request(method, path, body=body)
    r = conn.getresponse()
    return r, r.read()
SIZE = 16 * 1024 * 1024
BODY = b'y' * SIZE
CHUNK = b'%x\r\n' % (1 << 20) + BODY[:1 << 20] + b'\r\n'
answers = []
def flood(i):
    path = '/runtime/invocation/' + ('response' if i % 2 == 0 else 'error')
    s = None
    try:
        s = socket.create_connection((host, port), timeout=60)
        if i % 4 < 2:
            s.sendall(('POST %s HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n' % (path, SIZE)).encode())
            s.sendall(BODY)
        else:
            s.sendall(('POST %s HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n' % path).encode())
            for _ in range(16):
                s.sendall(CHUNK)
            s.sendall(b'0\r\n\r\n')
        answers.append(s.recv(12))
    except OSError as e:
        answers.append(type(e).__name__)
    finally:
        if s is not None:
            s.close()
call('POST', '/runtime/init/ready', b'')
while True:
    r, event = call('GET', '/runtime/invocation/next')
    if json.loads(event).get('flood'):
        threads = [threading.Thread(target=flood, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print('flood answers:', answers, flush=True)
        call('POST', '/runtime/invocation/response', b'"too late"')
    else:
        call('POST', '/runtime/invocation/response', json.dumps({{'ok': True}}).encode())
"#,
        py = py.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_flooding_its_runtime_api_gets_an_error_and_the_server_stays_flat() {
    require!(has_python(), "python3");
    let bootstrap = flooding_bootstrap();
    let dir = code(&[("scf_bootstrap", &bootstrap)]);
    let e = engine(config());
    let mut s = spec("flood", "CustomRuntime", "", dir.path());
    s.timeout_s = 60;
    s.memory_mb = 512;

    let out = invoke(&e, &s, "{}").await;
    assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
    let before = peak_rss();

    let out = invoke(&e, &s, r#"{"flood": true}"#).await;
    let grown = peak_rss().saturating_sub(before);
    eprintln!("peak memory growth during the flood: {} KiB", grown >> 10);
    assert!(
        grown < 64 * 1024 * 1024,
        "the server's peak memory grew by {} MiB",
        grown >> 20
    );
    let brief = |s: &str| s.chars().take(300).collect::<String>();
    assert_eq!(
        out.status_code,
        status::USER_EXCEPTION,
        "{}",
        brief(&format!("{:?}", out.result))
    );
    let err = out
        .result
        .as_ref()
        .expect_err("an oversized result is an error");
    assert!(
        err.error_message
            .contains("a synchronous invocation returns at most 6 MB")
            || err.error_message.contains("the function's error is"),
        "{}",
        brief(&err.error_message)
    );

    // The instance still serves once its flood is over (the bootstrap answers the next event after joining
    // every flooding thread), and the late post did not replace the error.
    let out = invoke(&e, &s, "{}").await;
    assert_eq!(
        out.status_code,
        200,
        "{:?}\n{}",
        out.result,
        engine::log::tail(&out.log, 3000)
    );
    assert_eq!(json(out.ret_msg())["ok"], true);
    assert!(out.log.contains("flood answers:"), "{}", brief(&out.log));
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "the server's peak memory grew by {} MiB",
        grown >> 20
    );
}
