//! B13: an event function behind a function URL, one keep-alive client, warm. Two floors measured in the same run:
//! the same function invoked directly through the API (`Invoke`, the path a URL adds its routing, event building and
//! response mapping to), and a bare hyper HTTP/1.1 server on loopback answering the same client with a fixed reply
//! (what any HTTP hop costs here).
//!
//! B11, B12, B14: a Python web function (`http.server`) behind its URL. The direct hop is an identical server the
//! bench starts itself outside the sandbox, on a free port of the host's loopback, with the same interpreter and
//! script (the instance's own port 9000 is inside its network namespace). B11: latency of one keep-alive client,
//! URL against direct; B12: throughput of 8 keep-alive clients, URL against direct (the function has
//! `MaxConcurrency` 8, so one instance serves all eight as the direct server does); B14: the first request to a new
//! web function (its cold start) against the bare interpreter starting the same server until it accepts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use crate::http::{Client, Endpoint, parse_head};
use crate::invoke::{create, invoke_body, sequential};
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::server::Server;
use crate::stats::Summary;

/// The function: a small integration response (the same handler serves both paths).
const PY_URL: &str = "def main_handler(event, context):\n    return {\"statusCode\": 200, \"headers\": {\"Content-Type\": \"text/plain\"}, \"body\": \"ok\"}\n";

/// A keep-alive client of plain `GET`s.
struct Getter {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Getter {
    fn connect(ep: &Endpoint, path: &str) -> anyhow::Result<Getter> {
        let stream = TcpStream::connect_timeout(&ep.addr, Duration::from_secs(10))
            .with_context(|| format!("connecting to {}", ep.addr))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
            ep.host
        )
        .into_bytes();
        Ok(Getter {
            stream,
            request,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// One request; the reply's status and body.
    fn get(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.write_all(&self.request)?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(h) = parse_head(&self.buf)? {
                let end = h.body_start + h.content_length;
                while self.buf.len() < end {
                    let n = self.stream.read(&mut chunk)?;
                    if n == 0 {
                        bail!("the connection closed inside a body");
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                if h.close {
                    bail!("the server closed the keep-alive connection");
                }
                return Ok((h.status, self.buf[h.body_start..end].to_vec()));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("the connection closed before a reply");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn measure(ep: &Endpoint, path: &str, n: usize, want: &[u8]) -> anyhow::Result<Summary> {
    let mut g = Getter::connect(ep, path)?;
    for _ in 0..n.min(200) {
        g.get()?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = g.get()?;
        samples.push(t.elapsed());
        if status != 200 || body != want {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    Summary::of(&samples).ok_or_else(|| anyhow!("no samples"))
}

/// A bare hyper HTTP/1.1 server on loopback answering `ok` to every request, on its own runtime thread.
fn hyper_echo() -> anyhow::Result<(Endpoint, tokio::sync::oneshot::Sender<()>)> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let _ = tcp.set_nodelay(true);
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(|_req| async {
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(hyper::body::Bytes::from_static(b"ok")),
                                ))
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                .await;
                        });
                    }
                }
            }
        });
    });
    Ok((Endpoint::parse(&format!("http://{addr}"))?, stop_tx))
}

/// The path of a function URL on the listener, and the listener's endpoint.
fn split_url(url: &str) -> anyhow::Result<(Endpoint, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("function URL `{url}` is not http://"))?;
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("function URL `{url}` has no path"))?;
    Ok((
        Endpoint::parse(&format!("http://{host}"))?,
        format!("/{path}"),
    ))
}

pub fn run(server: &Server, calls: usize) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let name = format!("b13-url-{}", now_ms() % 1_000_000_000);
    create(&mut c, creds, &name, "Python3.9", "index.py", PY_URL)?;
    let t = c.call(
        creds,
        "CreateTrigger",
        &json!({"FunctionName": name, "TriggerName": "url", "Type": "http",
                "TriggerDesc": "{\"AuthType\":\"NONE\"}"}),
    )?;
    let desc: serde_json::Value = serde_json::from_str(
        t["TriggerInfo"]["TriggerDesc"]
            .as_str()
            .ok_or_else(|| anyhow!("CreateTrigger returned no TriggerDesc: {t}"))?,
    )?;
    let url = desc["NetConfig"]["ExtranetUrl"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| anyhow!("the trigger has no URL: {desc}"))?;
    let (url_ep, path) = split_url(url)?;
    let body = invoke_body(&name)?;
    let (echo_ep, stop) = hyper_echo()?;

    eprintln!("B13: {calls} sequential requests to a function URL, Invoke and a bare hyper echo…");
    let echo = measure(&echo_ep, "/", calls, b"ok")?;
    let invoke = sequential(&server.endpoint, creds, &body, calls)?;
    let via_url = measure(&url_ep, &path, calls, b"ok")?;
    let _ = stop.send(());
    let mut s = Section {
        bench: "B13",
        title: format!(
            "function URL: GET of a Python event function returning an integration response, one keep-alive client, {calls} calls"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let added_ms = via_url.median - invoke.median;
    s.push(
        Figure::new(
            "B13",
            "function URL, warm Python",
            Measure::Latency(via_url),
        )
        .floor(
            "Invoke through the API, same function",
            Measure::Latency(invoke),
        )
        .target(Target::Latency {
            median_ms: Some(invoke.median + 0.1),
            p99_ms: None,
        }),
    );
    s.push(
        Figure::new(
            "B13",
            "function URL, warm Python",
            Measure::Latency(via_url),
        )
        .floor(
            "a bare hyper HTTP/1.1 server on loopback",
            Measure::Latency(echo),
        ),
    );
    s.note(format!(
        "the URL adds {:+.3} ms to the median of a direct Invoke (target: at most +0.1 ms, spec H3)",
        added_ms
    ));
    Ok(s)
}

/// The web function's server: `ok` to every request, HTTP/1.1 keep-alive, a thread per connection, TCP_NODELAY
/// (http.server writes the head and the body apart, which Nagle's algorithm would hold for a delayed ACK).
const WEB_SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "9000"))), H).serve_forever()
"#;

const WEB_PYTHON: &str = "/usr/bin/python3";

fn web_zip() -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("scf_bootstrap", opts.unix_permissions(0o755))?;
    w.write_all(format!("#!/bin/sh\nexec {WEB_PYTHON} -I -S server.py\n").as_bytes())?;
    w.start_file("server.py", opts.unix_permissions(0o644))?;
    w.write_all(WEB_SERVER.as_bytes())?;
    Ok(w.finish()?.into_inner())
}

/// Creates a web function with a URL and returns the URL's endpoint and path.
fn create_web(
    c: &mut Client,
    creds: &crate::http::Creds,
    name: &str,
    max_concurrency: u32,
) -> anyhow::Result<(Endpoint, String)> {
    let zip = web_zip()?;
    c.call(
        creds,
        "CreateFunction",
        &json!({"FunctionName": name, "Runtime": "CustomRuntime", "Type": "HTTP",
                "InstanceConcurrencyConfig": {"MaxConcurrency": max_concurrency},
                "Code": {"ZipFile": crate::fixture::base64(&zip)}}),
    )?;
    let mut active = false;
    for _ in 0..10_000 {
        let g = c.call(creds, "GetFunction", &json!({"FunctionName": name}))?;
        match g["Status"].as_str() {
            Some("Active") => {
                active = true;
                break;
            }
            Some("Creating") => std::thread::sleep(Duration::from_millis(2)),
            other => bail!("{name} ended {other:?}: {}", g["StatusReasons"]),
        }
    }
    if !active {
        bail!("{name} did not become Active");
    }
    let t = c.call(
        creds,
        "CreateTrigger",
        &json!({"FunctionName": name, "TriggerName": "url", "Type": "http",
                "TriggerDesc": "{\"AuthType\":\"NONE\"}"}),
    )?;
    let desc: serde_json::Value = serde_json::from_str(
        t["TriggerInfo"]["TriggerDesc"]
            .as_str()
            .ok_or_else(|| anyhow!("CreateTrigger returned no TriggerDesc: {t}"))?,
    )?;
    let url = desc["NetConfig"]["ExtranetUrl"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| anyhow!("the trigger has no URL: {desc}"))?;
    split_url(url)
}

/// The same server started directly on a free loopback port; killed on drop.
struct Direct {
    child: std::process::Child,
    ep: Endpoint,
    /// From the spawn until it accepted a connection.
    started_in: Duration,
    _dir: tempfile::TempDir,
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn direct_server() -> anyhow::Result<Direct> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("server.py");
    std::fs::write(&script, WEB_SERVER)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let t0 = Instant::now();
    let child = std::process::Command::new(WEB_PYTHON)
        .args(["-I", "-S"])
        .arg(&script)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {WEB_PYTHON}"))?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut direct = Direct {
        child,
        ep: Endpoint::parse(&format!("http://{addr}"))?,
        started_in: Duration::ZERO,
        _dir: dir,
    };
    for _ in 0..10_000 {
        if TcpStream::connect(addr).is_ok() {
            direct.started_in = t0.elapsed();
            return Ok(direct);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    bail!("the direct server did not listen on {addr}")
}

/// Requests answered by `clients` keep-alive clients in `secs` seconds.
fn throughput(ep: &Endpoint, path: &str, clients: usize, secs: f64) -> anyhow::Result<usize> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (ep, path) = (ep.clone(), path.to_string());
            std::thread::spawn(move || -> anyhow::Result<usize> {
                let mut g = Getter::connect(&ep, &path)?;
                let mut n = 0;
                while Instant::now() < until {
                    let (status, _) = g.get()?;
                    if status != 200 {
                        bail!("{path} answered {status}");
                    }
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| anyhow!("a client panicked"))??;
    }
    Ok(total)
}

/// B11, B12 and B14.
pub fn run_web(server: &Server, calls: usize) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let stamp = now_ms() % 1_000_000_000;
    let (url_ep, path) = create_web(&mut c, creds, &format!("b11-web-{stamp}"), 8)?;
    let direct = direct_server()?;
    eprintln!(
        "B11/B12: {calls} sequential requests and 8 clients, a web function's URL and the same server directly…"
    );
    let via_direct = measure(&direct.ep, "/", calls, b"ok")?;
    let via_url = measure(&url_ep, &path, calls, b"ok")?;
    let secs = 3.0;
    let clients = 8;
    // Warm the instance for every client first.
    throughput(&url_ep, &path, clients, 0.5)?;
    let direct_n = throughput(&direct.ep, "/", clients, secs)?;
    let url_n = throughput(&url_ep, &path, clients, secs)?;
    let mut s = Section {
        bench: "B11",
        title: format!(
            "web function (Python http.server) behind its URL: one keep-alive client ({calls} calls), 8 clients ({secs} s), cold starts"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    s.push(
        Figure::new("B11", "web function URL, warm", Measure::Latency(via_url))
            .floor(
                "the same server directly on loopback",
                Measure::Latency(via_direct),
            )
            .target(Target::Latency {
                median_ms: Some(via_direct.median + 0.06),
                p99_ms: Some(via_direct.p99 + 0.2),
            }),
    );
    let rate = |n: usize| Measure::Rate {
        count: n,
        secs,
        unit: "requests",
    };
    s.push(
        Figure::new("B12", "web function URL, 8 clients", rate(url_n))
            .floor("the same server directly, 8 clients", rate(direct_n))
            .target(Target::RateAtLeast(0.95 * direct_n as f64 / secs)),
    );
    eprintln!("B14: cold starts of a Python web function behind its URL…");
    let colds = 5;
    let mut cold = Vec::with_capacity(colds);
    let mut bare = Vec::with_capacity(colds);
    for k in 0..colds {
        // The API connection was idle through B12: the server may have closed it.
        let mut c = Client::connect(&server.endpoint)?;
        let (ep, p) = create_web(&mut c, creds, &format!("b14-web-{stamp}-{k}"), 1)?;
        let t = Instant::now();
        let mut g = Getter::connect(&ep, &p)?;
        let (status, body) = g.get()?;
        cold.push(t.elapsed());
        if status != 200 || body != b"ok" {
            bail!("{p} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        bare.push(direct_server()?.started_in);
    }
    let cold = Summary::of(&cold).ok_or_else(|| anyhow!("no samples"))?;
    let bare = Summary::of(&bare).ok_or_else(|| anyhow!("no samples"))?;
    s.push(
        Figure::new(
            "B14",
            "first request to a new Python web function",
            Measure::Latency(cold),
        )
        .floor(
            "the bare interpreter starting the same server until it accepts",
            Measure::Latency(bare),
        )
        .target(Target::Latency {
            median_ms: Some(bare.median + 10.0),
            p99_ms: None,
        }),
    );
    s.note(format!(
        "the URL adds {:+.3} ms to the median and {:+.3} ms to the p99 of a direct hop (targets +0.06 / +0.2 ms); \
         8 clients through the URL reach {:.1} % of direct",
        via_url.median - via_direct.median,
        via_url.p99 - via_direct.p99,
        100.0 * url_n as f64 / direct_n.max(1) as f64
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_endpoint_and_path() {
        let (ep, path) = split_url("http://127.0.0.1:9080/1253-abc").expect("split");
        assert_eq!(
            (ep.host.as_str(), path.as_str()),
            ("127.0.0.1:9080", "/1253-abc")
        );
        assert!(split_url("https://x/y").is_err());
        assert!(split_url("http://127.0.0.1:9080").is_err());
    }

    #[test]
    fn the_hyper_echo_answers_on_keep_alive() {
        let (ep, stop) = hyper_echo().expect("echo");
        let s = measure(&ep, "/", 20, b"ok").expect("measure");
        assert_eq!(s.n, 20);
        let _ = stop.send(());
    }
}
