//! B13: an event function behind a function URL, one keep-alive client, warm. Two floors measured in the same run:
//! the same function invoked directly through the API (`Invoke`, the path a URL adds its routing, event building and
//! response mapping to), and a bare hyper HTTP/1.1 server on loopback answering the same client with a fixed reply
//! (what any HTTP hop costs here).

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
