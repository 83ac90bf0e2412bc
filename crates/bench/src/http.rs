//! A small keep-alive HTTP/1.1 client for the SCF API: one `TcpStream` with `TCP_NODELAY`, each request written
//! in one piece, `Content-Length` bodies read back, every call signed with TC3-HMAC-SHA256.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// How long one call may take before the client gives up.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// An API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub secret_id: String,
    pub secret_key: String,
}

/// Where the server is: the socket address and the `Host` header value that is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/]` (plain HTTP only).
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("endpoint `{url}` must start with http://"))?;
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            bail!("endpoint `{url}` must be http://HOST:PORT");
        }
        let with_port = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{with_port} resolves to no address"))?;
        Ok(Endpoint {
            addr,
            host: host.to_string(),
        })
    }
}

/// The head of a response, once all of it has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Where the body starts in the buffer.
    pub body_start: usize,
    pub content_length: usize,
    /// The server said `Connection: close`.
    pub close: bool,
}

/// Parses a response head from the bytes received so far. `Ok(None)` while the head is incomplete; an error
/// for anything this client does not speak (no `Content-Length`, chunked bodies, a malformed head).
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<ResponseHead>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            bail!("response head larger than 64 KiB");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x status line: `{status_line}`");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status code in `{status_line}`"))?;
    let mut content_length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("malformed header line `{line}`"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| anyhow!("bad Content-Length `{value}`"))?;
            if content_length.is_some_and(|m| m != n) {
                bail!("conflicting Content-Length headers");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("Transfer-Encoding `{value}` is not supported by the bench client");
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                close = true;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        }
    }
    let content_length = content_length.ok_or_else(|| anyhow!("response has no Content-Length"))?;
    Ok(Some(ResponseHead {
        status,
        body_start: end + 4,
        content_length,
        close,
    }))
}

/// The current Unix time in seconds.
pub fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Builds one signed `POST /` request: the head and the body in one buffer.
pub fn build_request(
    out: &mut Vec<u8>,
    host: &str,
    creds: &Creds,
    action: &str,
    body: &[u8],
    timestamp: i64,
) {
    let auth = api::tc3::authorization(
        &creds.secret_id,
        &creds.secret_key,
        "scf",
        host,
        "application/json",
        body,
        timestamp,
    );
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-TC-Action: {action}\r\n\
         X-TC-Version: 2018-04-16\r\nX-TC-Timestamp: {timestamp}\r\nAuthorization: {auth}\r\n\
         Connection: keep-alive\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// One keep-alive connection.
pub struct Client {
    ep: Endpoint,
    stream: Option<TcpStream>,
    req: Vec<u8>,
    buf: Vec<u8>,
}

/// A call that was answered with `Response.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub action: String,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}: {}", self.action, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl Client {
    pub fn connect(ep: &Endpoint) -> anyhow::Result<Client> {
        let mut c = Client {
            ep: ep.clone(),
            stream: None,
            req: Vec::with_capacity(4096),
            buf: Vec::with_capacity(64 * 1024),
        };
        c.reconnect()?;
        Ok(c)
    }

    fn reconnect(&mut self) -> anyhow::Result<()> {
        self.stream = None;
        let s = TcpStream::connect_timeout(&self.ep.addr, Duration::from_secs(10))
            .with_context(|| format!("connecting to {}", self.ep.addr))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        self.stream = Some(s);
        Ok(())
    }

    /// Sends one call and returns the `Response` object (which may hold an `Error`). Reads (`Get…`, `List…`) are
    /// retried once on a fresh connection when the server closed an idle one before answering.
    pub fn call_raw(&mut self, creds: &Creds, action: &str, body: &[u8]) -> anyhow::Result<Value> {
        let idempotent = action.starts_with("Get") || action.starts_with("List");
        match self.round_trip(creds, action, body) {
            Ok(v) => Ok(v),
            Err(Exchange::Early(e)) if idempotent => {
                self.reconnect()
                    .with_context(|| format!("{action}: reconnecting after: {e:#}"))?;
                self.round_trip(creds, action, body)
                    .map_err(|e| e.into_inner().context(action.to_string()))
            }
            Err(e) => Err(e.into_inner().context(action.to_string())),
        }
    }

    /// Sends one call; an `Error` in the reply becomes an [`ApiError`].
    pub fn call(&mut self, creds: &Creds, action: &str, body: &Value) -> anyhow::Result<Value> {
        let bytes = serde_json::to_vec(body)?;
        let v = self.call_raw(creds, action, &bytes)?;
        if let Some(e) = v.get("Error") {
            return Err(ApiError {
                action: action.to_string(),
                code: e["Code"].as_str().unwrap_or("?").to_string(),
                message: e["Message"].as_str().unwrap_or("").to_string(),
            }
            .into());
        }
        Ok(v)
    }

    fn round_trip(&mut self, creds: &Creds, action: &str, body: &[u8]) -> Result<Value, Exchange> {
        if self.stream.is_none() {
            self.reconnect().map_err(Exchange::Late)?;
        }
        let mut req = std::mem::take(&mut self.req);
        build_request(&mut req, &self.ep.host, creds, action, body, unix_secs());
        let result = self.exchange(&req);
        self.req = req;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self, req: &[u8]) -> Result<Value, Exchange> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Exchange::Late(anyhow!("not connected")));
        };
        stream
            .write_all(req)
            .map_err(|e| Exchange::Early(anyhow!("writing the request: {e}")))?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let head = loop {
            if let Some(h) = parse_head(&self.buf).map_err(Exchange::Late)? {
                break h;
            }
            match stream.read(&mut chunk) {
                Ok(0) if self.buf.is_empty() => {
                    return Err(Exchange::Early(anyhow!(
                        "the server closed the connection before answering"
                    )));
                }
                Ok(0) => return Err(Exchange::Late(anyhow!("connection closed mid-response"))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if self.buf.is_empty() => {
                    return Err(Exchange::Early(anyhow!("reading the response: {e}")));
                }
                Err(e) => return Err(Exchange::Late(anyhow!("reading the response: {e}"))),
            }
        };
        let end = head.body_start + head.content_length;
        while self.buf.len() < end {
            match stream.read(&mut chunk) {
                Ok(0) => return Err(Exchange::Late(anyhow!("connection closed mid-body"))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(Exchange::Late(anyhow!("reading the body: {e}"))),
            }
        }
        if self.buf.len() > end {
            return Err(Exchange::Late(anyhow!(
                "{} unexpected bytes after the response",
                self.buf.len() - end
            )));
        }
        let body = &self.buf[head.body_start..end];
        if head.close {
            self.stream = None;
        }
        if head.status != 200 {
            return Err(Exchange::Late(anyhow!(
                "HTTP {}: {}",
                head.status,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        let mut v: Value = serde_json::from_slice(body)
            .map_err(|e| Exchange::Late(anyhow!("reply is not JSON: {e}")))?;
        match v.get_mut("Response").map(Value::take) {
            Some(r @ Value::Object(_)) => Ok(r),
            _ => Err(Exchange::Late(anyhow!("reply has no Response object"))),
        }
    }
}

/// How an exchange failed: `Early` when nothing of a reply arrived (the server may never have seen the request).
enum Exchange {
    Early(anyhow::Error),
    Late(anyhow::Error),
}

impl Exchange {
    fn into_inner(self) -> anyhow::Error {
        match self {
            Exchange::Early(e) | Exchange::Late(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_head() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\ndate: x\r\n\r\n{\"a\":1}";
        let h = parse_head(r).expect("parse").expect("complete");
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, 12);
        assert_eq!(&r[h.body_start..], b"{\"a\":1}");
        assert!(!h.close);
    }

    #[test]
    fn incomplete_head_waits() {
        assert_eq!(parse_head(b"").expect("parse"), None);
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n").expect("parse"),
            None
        );
        // The head ends exactly at the buffer's end: complete, with an empty body so far.
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
            .expect("parse")
            .expect("complete");
        assert_eq!(h.body_start, 38);
    }

    #[test]
    fn header_names_are_case_insensitive_and_close_is_seen() {
        let h =
            parse_head(b"HTTP/1.1 503 Busy\r\nCONTENT-LENGTH:  0 \r\nConnection: Close\r\n\r\n")
                .expect("parse")
                .expect("complete");
        assert_eq!(h.status, 503);
        assert_eq!(h.content_length, 0);
        assert!(h.close);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .expect("parse")
            .expect("complete");
        assert!(h.close, "HTTP/1.0 closes by default");
    }

    #[test]
    fn unsupported_or_malformed_heads_are_errors() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'x'; 70 * 1024]).is_err());
    }

    #[test]
    fn request_is_signed_and_framed() {
        let creds = Creds {
            secret_id: "AKIDcaptureTestId000000000000000000".into(),
            secret_key: "testSecretKeyForCaptureOnly0000".into(),
        };
        let body = br#"{"FunctionName": "demo", "Namespace": "default"}"#;
        let mut out = Vec::new();
        build_request(
            &mut out,
            "127.0.0.1:18080",
            &creds,
            "GetFunction",
            body,
            1_700_000_000,
        );
        let text = String::from_utf8(out).expect("utf8");
        let (head, got_body) = text.split_once("\r\n\r\n").expect("head");
        assert_eq!(got_body.as_bytes(), body);
        assert!(head.starts_with("POST / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n"));
        assert!(head.contains("\r\nContent-Length: 48"));
        assert!(head.contains("\r\nX-TC-Action: GetFunction\r\n"));
        // The worked example of the protocol notes (§3).
        assert!(head.contains(
            "Signature=e4cf10a259966c4ebe05c3c77f625afe9f9c3db9a78ba645d1f806b3348e5ccc"
        ));
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:9000/").expect("parse");
        assert_eq!(e.host, "127.0.0.1:9000");
        assert_eq!(e.addr.port(), 9000);
        assert!(Endpoint::parse("https://127.0.0.1:9000").is_err());
        assert!(Endpoint::parse("http://127.0.0.1:9000/x").is_err());
    }
}
