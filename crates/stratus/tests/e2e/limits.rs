//! What an unauthenticated or hostile client can hold: connections are capped, idle ones and slow heads and
//! bodies are cut by the timeouts (set to seconds here through `STRATUS_API_*`), a request is judged on its
//! headers before its body is read, and bodies over the limit are refused, while normal calls keep answering.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{Backend, Credentials, Server, on_both_backends, unix_now};

use crate::bin;

/// A signed request head for `action` (signed over `signed_body`), ending with `framing` (`Content-Length: N`
/// or `Transfer-Encoding: chunked`) and the blank line; the body is the caller's to send, or not.
fn head(
    addr: SocketAddr,
    creds: &Credentials,
    action: &str,
    ts: i64,
    signed_body: &[u8],
    framing: &str,
) -> String {
    let host = addr.to_string();
    let auth = api::tc3::authorization(
        &creds.secret_id,
        &creds.secret_key,
        "scf",
        &host,
        "application/json",
        signed_body,
        ts,
    );
    format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-TC-Action: {action}\r\nX-TC-Version: 2018-04-16\r\n\
         X-TC-Timestamp: {ts}\r\nContent-Type: application/json\r\nAuthorization: {auth}\r\n{framing}\r\n\r\n"
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads one reply (head and `Content-Length` body) within `wait`; the error says why there is none.
fn read_reply(s: &mut TcpStream, wait: Duration) -> std::io::Result<(String, Vec<u8>)> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Ok((head, got[end + 4..end + 4 + len].to_vec()));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(ErrorKind::TimedOut, "no reply in time"));
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed")),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(std::io::Error::new(ErrorKind::TimedOut, "no reply in time"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error code of an API reply body (`None`: it succeeded).
fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).expect("reply is JSON");
    v["Response"]["Error"]["Code"].as_str().map(str::to_string)
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
fn is_closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 64];
    let closed = match (&*s).read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

/// The server's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM")
}

/// 200 idle connections, a client sending its request head a byte a second and one sending its body a byte a
/// second are all cut by the (2 s) timeouts, while a normal client's calls keep answering throughout.
fn idle_and_slow_clients_are_cut(b: Backend) {
    let srv = Server::start(
        bin(),
        &b,
        &[
            ("STRATUS_API_IDLE_TIMEOUT_SECS", "2"),
            ("STRATUS_API_HEADER_TIMEOUT_SECS", "2"),
            ("STRATUS_API_BODY_TIMEOUT_SECS", "2"),
        ],
    );
    let addr = srv.addr();
    let c = srv.client();
    c.ok("ListFunctions", json!({}));
    let started = Instant::now();
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();

    // A head, one byte a second: when is the connection cut?
    let slow_head = std::thread::spawn(move || -> Option<Duration> {
        let mut s = connect(addr);
        let t = Instant::now();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(40)
        );
        for byte in head.bytes() {
            if s.write_all(&[byte]).is_err() {
                return Some(t.elapsed());
            }
            s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => return Some(t.elapsed()),
                Ok(_) => return Some(t.elapsed()), // A 408-style refusal, then the close: also cut.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Some(t.elapsed()),
            }
        }
        None
    });

    // A correctly signed request whose 64-byte body comes one byte a second.
    let creds = srv.credentials().clone();
    let slow_body = std::thread::spawn(move || -> Option<(Duration, Option<String>)> {
        let mut body = br#"{"Limit": 1}"#.to_vec();
        body.resize(64, b' ');
        let mut s = connect(addr);
        let t = Instant::now();
        s.write_all(
            head(
                addr,
                &creds,
                "ListFunctions",
                unix_now(),
                &body,
                "Content-Length: 64",
            )
            .as_bytes(),
        )
        .ok()?;
        for byte in body {
            if s.write_all(&[byte]).is_err() {
                return Some((t.elapsed(), None));
            }
            match read_reply(&mut s, Duration::from_secs(1)) {
                Ok((_, reply)) => return Some((t.elapsed(), error_code(&reply))),
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(_) => return Some((t.elapsed(), None)),
            }
        }
        None
    });

    // Meanwhile a normal client is answered promptly.
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let t = Instant::now();
        c.ok("ListFunctions", json!({"Limit": 1}));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a normal call took {:?}",
            t.elapsed()
        );
        calls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(calls >= 10, "{calls} calls");

    let open = idle.iter().filter(|s| !is_closed(s)).count();
    assert_eq!(
        open, 0,
        "{open} of 200 idle connections are still open after 6 s"
    );
    let cut = slow_head.join().expect("slow head thread");
    let cut = cut.expect("a head sent a byte a second was never cut");
    assert!(
        cut < Duration::from_secs(5),
        "the slow head was cut after {cut:?}"
    );
    let (after, code) = slow_body
        .join()
        .expect("slow body thread")
        .expect("a body sent a byte a second was never cut");
    assert!(
        after < Duration::from_secs(5),
        "the slow body was cut after {after:?}"
    );
    assert_eq!(
        code.as_deref(),
        Some("InvalidParameter"),
        "the slow body's reply"
    );
    c.ok("ListFunctions", json!({}));
}

/// With room for 8 connections, a 9th waits (unanswered) until one of them closes, and is then served.
fn the_connection_limit_holds(b: Backend) {
    let srv = Server::start(bin(), &b, &[("STRATUS_API_MAX_CONNECTIONS", "8")]);
    let addr = srv.addr();
    let get = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(get.as_bytes()).expect("write");
            let (_, body) =
                read_reply(&mut s, Duration::from_secs(5)).expect("one of the 8 is served");
            assert_eq!(body, b"ok");
            s
        })
        .collect();
    let mut ninth = connect(addr);
    ninth.write_all(get.as_bytes()).expect("write");
    let waited = read_reply(&mut ninth, Duration::from_millis(1500));
    assert!(
        waited
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::TimedOut),
        "a 9th connection was served beyond the limit of 8: {waited:?}"
    );
    drop(held.pop());
    let (_, body) =
        read_reply(&mut ninth, Duration::from_secs(5)).expect("served once a slot frees");
    assert_eq!(body, b"ok");
    drop(ninth);
    drop(held);
    srv.client().ok("ListFunctions", json!({}));
}

/// A request announcing an 80 MiB body is answered from its headers alone when they do not pass (unknown
/// SecretId, wrong version, stale timestamp, no action, a length over the limit): the reply comes before a byte
/// of the body is sent. Clients that send such bodies in full get the reply too, and the server's memory does
/// not grow with them.
fn headers_are_judged_before_the_body(b: Backend) {
    let srv = Server::start(bin(), &b, &[]);
    let addr = srv.addr();
    let creds = srv.credentials().clone();
    let nobody = Credentials {
        secret_id: "AKIDthisKeyDoesNotExist0000000000000".into(),
        secret_key: "not-a-key".into(),
        ..creds.clone()
    };
    const MIB_80: usize = 80 * 1024 * 1024;
    let announce = format!("Content-Length: {MIB_80}");
    let now = unix_now();
    let cases = [
        (
            head(addr, &nobody, "ListFunctions", now, b"", &announce),
            "AuthFailure.SecretIdNotFound",
        ),
        (
            head(addr, &creds, "ListFunctions", now, b"", &announce)
                .replace("2018-04-16", "2017-03-12"),
            "NoSuchVersion",
        ),
        (
            head(addr, &creds, "ListFunctions", now - 3600, b"", &announce),
            "AuthFailure.SignatureExpire",
        ),
        (
            head(addr, &creds, "ListFunctions", now, b"", &announce)
                .replace("X-TC-Action: ListFunctions\r\n", ""),
            "MissingParameter",
        ),
        (
            head(
                addr,
                &creds,
                "CreateFunction",
                now,
                b"",
                &format!("Content-Length: {}", MIB_80 + 1),
            ),
            "RequestSizeLimitExceeded",
        ),
    ];
    for (request_head, code) in &cases {
        let mut s = connect(addr);
        s.write_all(request_head.as_bytes()).expect("write head");
        let (_, reply) = read_reply(&mut s, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("no reply to the headers alone (expected {code}): {e}"));
        assert_eq!(error_code(&reply).as_deref(), Some(*code));
    }

    // Four clients send 80 MiB bodies in full under an unknown SecretId: each gets its reply, and the server
    // never holds the bodies.
    let pid = srv.pid().expect("server pid");
    let before = peak_rss(pid);
    let body = Arc::new(vec![b' '; MIB_80]);
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let body = body.clone();
            let request_head = head(addr, &nobody, "ListFunctions", unix_now(), b"", &announce);
            std::thread::spawn(move || {
                let mut s = connect(addr);
                s.write_all(request_head.as_bytes()).expect("write head");
                s.write_all(&body)
                    .expect("the server reads (and drops) the body after its reply");
                let (_, reply) = read_reply(&mut s, Duration::from_secs(30)).expect("reply");
                error_code(&reply)
            })
        })
        .collect();
    for t in senders {
        assert_eq!(
            t.join().expect("sender").as_deref(),
            Some("AuthFailure.SecretIdNotFound")
        );
    }
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(
        grown < 32 * 1024 * 1024,
        "the server's peak RSS grew by {} MiB for 4 refused 80 MiB bodies",
        grown / (1024 * 1024)
    );
    srv.client().ok("ListFunctions", json!({}));
}

/// With a 1 MiB limit: a body announced over it is refused (and the connection stays usable), one of exactly
/// the limit is accepted, and a chunked one (no length announced) is refused as soon as it passes the limit.
fn bodies_over_the_limit_are_refused(b: Backend) {
    const LIMIT: usize = 1024 * 1024;
    let srv = Server::start(bin(), &b, &[("STRATUS_API_MAX_BODY_BYTES", "1048576")]);
    let addr = srv.addr();
    let c = srv.client();
    let padded = |len: usize| {
        let mut v = br#"{"Limit": 1}"#.to_vec();
        v.resize(len, b' ');
        v
    };
    let e = c
        .request("ListFunctions", &json!({}))
        .body(padded(2 * LIMIT))
        .call()
        .expect_err("over the limit");
    assert_eq!(e.code, "RequestSizeLimitExceeded", "{e}");
    c.ok("ListFunctions", json!({}));
    c.request("ListFunctions", &json!({}))
        .body(padded(LIMIT))
        .call()
        .expect("exactly the limit is accepted, its signature checked over all of it");

    let body = padded(2 * LIMIT);
    let mut s = connect(addr);
    s.write_all(
        head(
            addr,
            srv.credentials(),
            "ListFunctions",
            unix_now(),
            &body,
            "Transfer-Encoding: chunked",
        )
        .as_bytes(),
    )
    .expect("write head");
    for chunk in body.chunks(64 * 1024) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .expect("chunk size");
        s.write_all(chunk).expect("chunk");
        s.write_all(b"\r\n").expect("chunk end");
    }
    s.write_all(b"0\r\n\r\n").expect("last chunk");
    let (_, reply) = read_reply(&mut s, Duration::from_secs(10)).expect("reply");
    assert_eq!(
        error_code(&reply).as_deref(),
        Some("RequestSizeLimitExceeded")
    );
}

on_both_backends!(
    idle_and_slow_clients_are_cut,
    the_connection_limit_holds,
    headers_are_judged_before_the_body,
    bodies_over_the_limit_are_refused,
);
