//! A small signed client: HTTP/1.1 with keep-alive over a plain `TcpStream`, TC3-signed like the official SDKs.
//! [`Client::call`] checks the envelope every reply must have (HTTP 200, `Content-Type: application/json`
//! exactly, a `RequestId`); [`Client::request`] builds requests that break the protocol on purpose.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::server::Credentials;

/// An error reply: `{"Response":{"Error":{"Code","Message"},"RequestId"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A reply as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks what every API reply must be and returns the `Response` object (without its `Error`), or the
    /// error it carries. Panics, showing the reply, when the envelope is wrong: HTTP status other than 200,
    /// `Content-Type` other than exactly `application/json`, a body that is not `{"Response":{…}}`, or a missing
    /// or empty `RequestId`.
    pub fn envelope(&self) -> Result<Value, ApiError> {
        let shown = || {
            format!(
                "HTTP {} {:?}\n{}",
                self.status,
                self.headers,
                String::from_utf8_lossy(&self.body)
            )
        };
        assert_eq!(
            self.status,
            200,
            "every reply must be HTTP 200:\n{}",
            shown()
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "Content-Type must be exactly application/json:\n{}",
            shown()
        );
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}):\n{}", shown()));
        let Some(resp) = v.get("Response").and_then(Value::as_object) else {
            panic!("reply has no Response object:\n{}", shown());
        };
        let rid = resp.get("RequestId").and_then(Value::as_str);
        assert!(
            rid.is_some_and(|r| !r.is_empty()),
            "reply has no RequestId:\n{}",
            shown()
        );
        match resp.get("Error") {
            None => Ok(Value::Object(resp.clone())),
            Some(e) => {
                let code = e.get("Code").and_then(Value::as_str);
                let message = e.get("Message").and_then(Value::as_str);
                match (code, message) {
                    (Some(c), Some(m)) if !c.is_empty() => Err(ApiError {
                        code: c.to_string(),
                        message: m.to_string(),
                    }),
                    _ => panic!("Error needs a Code and a Message:\n{}", shown()),
                }
            }
        }
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    /// Has carried a request already (so a failure may just mean the server closed an idle connection).
    used: bool,
}

/// A signed client of one server, with one keep-alive connection. Cheap to make; give each thread its own.
pub struct Client {
    addr: SocketAddr,
    creds: Credentials,
    timeout: Duration,
    conn: Mutex<Option<Conn>>,
}

impl Clone for Client {
    fn clone(&self) -> Self {
        Client::new(self.addr, self.creds.clone())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("secret_id", &self.creds.secret_id)
            .finish()
    }
}

/// How a request is authorized.
#[derive(Debug, Clone)]
enum Auth {
    /// TC3 with these credentials, scope service, and the host line to sign (`None`: the `Host` sent).
    Signed {
        secret_id: String,
        secret_key: String,
        service: String,
        sign_host: Option<String>,
        unsigned_payload: bool,
    },
    /// This exact `Authorization` header.
    Raw(String),
    /// No `Authorization` header.
    Missing,
}

/// A request under construction; by default exactly what an SDK sends.
#[derive(Debug, Clone)]
pub struct Request<'c> {
    client: &'c Client,
    method: String,
    action: Option<String>,
    version: Option<String>,
    content_type: Option<String>,
    host: Option<String>,
    timestamp: i64,
    timestamp_header: Option<String>,
    body: Vec<u8>,
    auth: Auth,
    extra: Vec<(String, String)>,
}

impl<'c> Request<'c> {
    pub fn method(mut self, m: &str) -> Self {
        self.method = m.to_string();
        self
    }
    pub fn action(mut self, a: Option<&str>) -> Self {
        self.action = a.map(str::to_string);
        self
    }
    pub fn version(mut self, v: Option<&str>) -> Self {
        self.version = v.map(str::to_string);
        self
    }
    pub fn content_type(mut self, ct: Option<&str>) -> Self {
        self.content_type = ct.map(str::to_string);
        self
    }
    /// The `Host` header sent (and, unless [`Request::sign_host`] says otherwise, signed).
    pub fn host(mut self, h: &str) -> Self {
        self.host = Some(h.to_string());
        self
    }
    /// The host line signed, when it differs from the `Host` sent (the Node SDK signs the bare hostname).
    pub fn sign_host(mut self, h: &str) -> Self {
        if let Auth::Signed { sign_host, .. } = &mut self.auth {
            *sign_host = Some(h.to_string());
        }
        self
    }
    /// The timestamp signed and sent.
    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = ts;
        self
    }
    /// Sends this `X-TC-Timestamp` text instead of the signed timestamp.
    pub fn timestamp_header(mut self, text: &str) -> Self {
        self.timestamp_header = Some(text.to_string());
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    /// Signs with other credentials.
    pub fn credentials(mut self, secret_id: &str, secret_key: &str) -> Self {
        if let Auth::Signed {
            secret_id: id,
            secret_key: key,
            ..
        } = &mut self.auth
        {
            *id = secret_id.to_string();
            *key = secret_key.to_string();
        }
        self
    }
    /// The service of the credential scope (`scf` by default; the Node SDK may put `127` there).
    pub fn service(mut self, s: &str) -> Self {
        if let Auth::Signed { service, .. } = &mut self.auth {
            *service = s.to_string();
        }
        self
    }
    /// Sends `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` and signs the hash of that literal instead of the body.
    pub fn unsigned_payload(mut self) -> Self {
        if let Auth::Signed {
            unsigned_payload, ..
        } = &mut self.auth
        {
            *unsigned_payload = true;
        }
        self.extra.push((
            "X-TC-Content-SHA256".into(),
            api::tc3::UNSIGNED_PAYLOAD.into(),
        ));
        self
    }
    /// Sends this `Authorization` header verbatim.
    pub fn authorization(mut self, raw: &str) -> Self {
        self.auth = Auth::Raw(raw.to_string());
        self
    }
    pub fn no_authorization(mut self) -> Self {
        self.auth = Auth::Missing;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    fn authorization_value(&self, host: &str) -> Option<String> {
        match &self.auth {
            Auth::Missing => None,
            Auth::Raw(s) => Some(s.clone()),
            Auth::Signed {
                secret_id,
                secret_key,
                service,
                sign_host,
                unsigned_payload,
            } => {
                let ct = self.content_type.as_deref().unwrap_or("");
                let signed_host = sign_host.as_deref().unwrap_or(host);
                if !*unsigned_payload {
                    return Some(api::tc3::authorization(
                        secret_id,
                        secret_key,
                        service,
                        signed_host,
                        ct,
                        &self.body,
                        self.timestamp,
                    ));
                }
                use sha2::Digest;
                let hash = hex::encode(sha2::Sha256::digest(api::tc3::UNSIGNED_PAYLOAD.as_bytes()));
                let headers = [("content-type", ct), ("host", signed_host)];
                let date = model::time::utc_date(self.timestamp);
                let req = api::tc3::SignedRequest {
                    method: &self.method,
                    query: "",
                    headers: &headers,
                    payload_hash: &hash,
                    timestamp: self.timestamp,
                };
                let sig =
                    api::tc3::signature(secret_key, &date, service, "content-type;host", &req);
                Some(format!(
                    "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders=content-type;host, Signature={sig}"
                ))
            }
        }
    }

    /// Sends the request and reads the reply.
    pub fn send(self) -> io::Result<RawResponse> {
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| self.client.addr.to_string());
        let mut head = format!("{} / HTTP/1.1\r\nHost: {host}\r\n", self.method);
        let mut push = |name: &str, value: &str| {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        };
        if let Some(a) = &self.action {
            push("X-TC-Action", a);
        }
        if let Some(v) = &self.version {
            push("X-TC-Version", v);
        }
        let ts = self
            .timestamp_header
            .clone()
            .unwrap_or_else(|| self.timestamp.to_string());
        push("X-TC-Timestamp", &ts);
        push("X-TC-Region", "ap-guangzhou");
        if let Some(ct) = &self.content_type {
            push("Content-Type", ct);
        }
        for (k, v) in &self.extra {
            push(k, v);
        }
        if let Some(a) = self.authorization_value(&host) {
            push("Authorization", &a);
        }
        push("Content-Length", &self.body.len().to_string());
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        self.client.exchange(&bytes)
    }

    /// Sends the request and checks the envelope (see [`RawResponse::envelope`]). Panics on a transport error.
    pub fn call(self) -> Result<Value, ApiError> {
        let action = self.action.clone().unwrap_or_default();
        match self.send() {
            Ok(r) => r.envelope(),
            Err(e) => panic!("{action}: transport error: {e}"),
        }
    }
}

impl Client {
    pub fn new(addr: SocketAddr, creds: Credentials) -> Client {
        Client {
            addr,
            creds,
            timeout: Duration::from_secs(60),
            conn: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The same server, another account.
    pub fn with_credentials(&self, creds: Credentials) -> Client {
        Client::new(self.addr, creds)
    }

    /// A request for `action` with a JSON body, signed now with this client's key.
    pub fn request(&self, action: &str, body: &Value) -> Request<'_> {
        Request {
            client: self,
            method: "POST".into(),
            action: Some(action.to_string()),
            version: Some("2018-04-16".into()),
            content_type: Some("application/json".into()),
            host: None,
            timestamp: crate::unix_now(),
            timestamp_header: None,
            body: serde_json::to_vec(body).unwrap_or_default(),
            auth: Auth::Signed {
                secret_id: self.creds.secret_id.clone(),
                secret_key: self.creds.secret_key.clone(),
                service: "scf".into(),
                sign_host: None,
                unsigned_payload: false,
            },
            extra: Vec::new(),
        }
    }

    /// Calls `action` and returns its `Response` object or its error; panics on a transport error or a reply
    /// that breaks the envelope rules.
    pub fn call(&self, action: &str, body: Value) -> Result<Value, ApiError> {
        self.request(action, &body).call()
    }

    /// Like [`Client::call`], but a transport error (server gone, say) is returned instead of panicking.
    pub fn try_call(&self, action: &str, body: Value) -> io::Result<Result<Value, ApiError>> {
        self.request(action, &body).send().map(|r| r.envelope())
    }

    /// Calls and expects success.
    pub fn ok(&self, action: &str, body: Value) -> Value {
        match self.call(action, body) {
            Ok(v) => v,
            Err(e) => panic!("{action} failed: {e}"),
        }
    }

    /// Calls and expects the error `code`; returns its message.
    pub fn err(&self, action: &str, body: Value, code: &str) -> String {
        match self.call(action, body) {
            Ok(v) => panic!("{action} succeeded, expected {code}: {v}"),
            Err(e) => {
                assert_eq!(e.code, code, "{action}: unexpected error {e}");
                e.message
            }
        }
    }

    /// GETs a link this server handed out (`http://HOST:PORT/path?query`, GetFunctionAddress's `Url`, say).
    pub fn fetch(&self, url: &str) -> io::Result<RawResponse> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| io::Error::other(format!("not an http:// URL: {url}")))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n");
        self.exchange(request.as_bytes())
    }

    fn connect(&self) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        Ok(Conn {
            reader: BufReader::new(s),
            used: false,
        })
    }

    /// Writes a request and reads one reply, on the kept connection or a new one. A reused connection that
    /// fails before any reply byte arrives (the server closed it while idle) is replaced once.
    fn exchange(&self, request: &[u8]) -> io::Result<RawResponse> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..2 {
            let mut conn = match slot.take() {
                Some(c) => c,
                None => self.connect()?,
            };
            let reused = conn.used;
            conn.used = true;
            let result = match conn.reader.get_mut().write_all(request) {
                Ok(()) => read_response(&mut conn.reader),
                Err(e) => Err(ReadError::BeforeReply(e)),
            };
            match result {
                Ok((resp, keep)) => {
                    if keep {
                        *slot = Some(conn);
                    }
                    return Ok(resp);
                }
                Err(ReadError::BeforeReply(_)) if reused => continue,
                Err(ReadError::BeforeReply(e) | ReadError::Io(e)) => return Err(e),
            }
        }
        Err(io::Error::other("connection closed twice before a reply"))
    }
}

enum ReadError {
    /// Nothing of a reply was read.
    BeforeReply(io::Error),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::BeforeReply(e)
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    let n = r.read_line(&mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one HTTP/1.1 reply; says whether the connection may be kept.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(RawResponse, bool), ReadError> {
    let status_line = read_line(r)?;
    let io = ReadError::Io;
    let bad =
        |what: &str| ReadError::Io(io::Error::new(io::ErrorKind::InvalidData, what.to_string()));
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r).map_err(io)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(&format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let mut keep = version == "HTTP/1.1" && get("connection").as_deref() != Some("close");
    let body = if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let size_line = read_line(r).map_err(io)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(&format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(r).map_err(io)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).map_err(io)?;
            read_line(r).map_err(io)?;
        }
        body
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(&format!("bad Content-Length {len:?}")))?;
        let mut body = vec![0; len];
        r.read_exact(&mut body).map_err(io)?;
        body
    } else {
        keep = false;
        let mut body = Vec::new();
        r.read_to_end(&mut body).map_err(io)?;
        body
    };
    Ok((
        RawResponse {
            status,
            headers,
            body,
        },
        keep,
    ))
}
