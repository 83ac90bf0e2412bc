//! The SCF Custom Runtime HTTP API, served per instance:
//!
//! - `POST /runtime/init/ready`: initialisation finished (a first `GET …/next` counts as ready too).
//! - `GET /runtime/invocation/next`: long poll; the body is the event, headers `request_id`,
//!   `memory_limit_in_mb`, `time_limit_in_ms`.
//! - `POST /runtime/invocation/response` / `POST /runtime/invocation/error`: the current invocation's result; the
//!   first post wins, later ones change nothing.
//!
//! The listener comes from the [`crate::Launcher`] (a host port when unsandboxed, `127.0.0.1:9001` inside the
//! instance's network namespace when sandboxed).
//!
//! # Limits
//!
//! The server runs inside the Stratus process, so whatever the function sends it costs the server's memory, not
//! the instance's cgroup. It is therefore bounded ([`Limits`]), whatever the function does:
//!
//! - at most [`Limits::connections`] connections are served at once; further ones wait in the listen backlog
//!   until one closes;
//! - a request head must arrive within [`Limits::header_timeout`] (at most 64 KiB of it is buffered). hyper counts
//!   the idle time of a kept-alive connection toward it, and a runtime's connection is idle while its function
//!   runs, so the engine sets it to the function's time limit (or init timeout) plus
//!   [`crate::EngineConfig::runtime_api_timeout`];
//! - the state is checked before a body is read: a post while no invocation is in flight, before the runtime
//!   fetched it, after it has its result, or while another post for it is being read is answered `200` at once,
//!   its body unread and the connection closed (`Connection: close`); only a body declared at most 16 KiB is
//!   read and dropped first, so that a runtime's kept-alive connection survives a repeated post;
//! - a posted body must arrive within [`Limits::body_timeout`] (else `408`; the invocation still waits for its
//!   result) and may hold at most [`Limits::max_body`] bytes, the 6 MB result limit plus a margin
//!   ([`crate::protocol::MAX_PAYLOAD`]): a larger one (by its `Content-Length`, unread, or as it arrives) is
//!   answered `413` and becomes the invocation's error (430, as control reports a result over 6 MB).
//!
//! So one instance's API holds at most one body being read, and a few connection buffers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::types::{FunctionError, status};

/// One invocation handed to a custom runtime.
pub(crate) struct Invocation {
    pub request_id: String,
    pub event: Vec<u8>,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub deadline_ms: u64,
}

/// What the runtime told the engine.
pub(crate) enum Event {
    Ready,
    Posted(Result<Vec<u8>, Vec<u8>>),
    /// A posted result (`error: false`) or error was over [`Limits::max_body`]; `len` when it was declared.
    TooLarge {
        error: bool,
        len: Option<usize>,
    },
    Closed,
}

/// The bounds of one instance's runtime API (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body: usize,
}

/// Connections one instance's runtime API serves at once.
pub(crate) const MAX_CONNECTIONS: usize = 4;

/// Buffered bytes per connection (the request head must fit).
const MAX_BUF: usize = 64 * 1024;

impl Limits {
    /// The limits for a function with this time limit and init timeout.
    pub(crate) fn for_function(
        timeout: Duration,
        init_timeout: Duration,
        grace: Duration,
    ) -> Limits {
        Limits {
            connections: MAX_CONNECTIONS,
            header_timeout: timeout.max(init_timeout) + grace,
            body_timeout: grace,
            max_body: crate::protocol::MAX_PAYLOAD,
        }
    }
}

#[derive(Default)]
struct ApiState {
    /// The instance is gone: pending long polls end.
    closed: bool,
    ready: bool,
    /// Offered by the engine, not yet fetched by the runtime.
    queued: Option<Invocation>,
    /// The request id of the invocation in flight (offered or fetched).
    current: Option<String>,
    /// Counts offered invocations, so that a post being read for one cannot land on the next.
    seq: u64,
    /// Whether the runtime has fetched the current invocation (posts before that belong to an earlier one).
    delivered: bool,
    /// Whether a post for the current invocation is being read.
    posting: bool,
    /// Whether the current invocation already has its result.
    posted: bool,
}

struct Shared {
    state: Mutex<ApiState>,
    wake: Notify,
    events: mpsc::UnboundedSender<Event>,
    limits: Limits,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The engine's side of one instance's runtime API.
pub(crate) struct RuntimeApi {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    /// The accept loop; it owns the connection tasks, so aborting it ends them all.
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves the runtime API on `listener` until dropped.
    pub(crate) fn serve(
        listener: std::net::TcpListener,
        limits: Limits,
    ) -> std::io::Result<RuntimeApi> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(ApiState::default()),
            wake: Notify::new(),
            events: tx,
            limits,
        });
        let app = Router::new()
            .route("/runtime/init/ready", post(ready))
            .route("/runtime/invocation/next", get(next))
            .route("/runtime/invocation/response", post(response))
            .route("/runtime/invocation/error", post(error))
            .with_state(shared.clone());
        let server = tokio::spawn(accept_loop(listener, app, limits));
        Ok(RuntimeApi {
            shared,
            events: rx,
            server,
        })
    }

    /// Offers the next invocation to the runtime's long poll.
    pub(crate) fn offer(&self, inv: Invocation) -> bool {
        let mut st = self.shared.lock();
        st.current = Some(inv.request_id.clone());
        st.queued = Some(inv);
        st.seq += 1;
        st.delivered = false;
        st.posting = false;
        st.posted = false;
        drop(st);
        self.shared.wake.notify_waiters();
        true
    }

    /// Ends the current invocation: later posts are ignored.
    pub(crate) fn finish(&self) {
        let mut st = self.shared.lock();
        st.queued = None;
        st.current = None;
        st.posted = true;
    }

    /// The next event. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Event {
        self.events.recv().await.unwrap_or(Event::Closed)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_waiters();
        self.server.abort();
    }
}

/// Accepts at most `limits.connections` connections at a time and serves each with hyper's HTTP/1 server.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF)
        .max_headers(64);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    break stream;
                }
                // Out of descriptors, say: try again a little later rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        while connections.try_join_next().is_some() {}
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        connections.spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
}

async fn ready(State(s): State<Arc<Shared>>, body: Body) -> Response {
    {
        let mut st = s.lock();
        if !st.ready {
            st.ready = true;
            let _ = s.events.send(Event::Ready);
        }
    }
    // The body means nothing here.
    ignore_body(&s, body).await
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    loop {
        let notified = s.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = s.lock();
            if st.closed {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            if !st.ready {
                st.ready = true;
                let _ = s.events.send(Event::Ready);
            }
            if let Some(inv) = st.queued.take() {
                st.delivered = true;
                drop(st);
                let mut resp = inv.event.into_response();
                let h = resp.headers_mut();
                let mut set = |name: &'static str, value: String| {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                };
                set("request_id", inv.request_id);
                set("memory_limit_in_mb", inv.memory_mb.to_string());
                set("time_limit_in_ms", inv.timeout_ms.to_string());
                set("deadline_ms", inv.deadline_ms.to_string());
                set("content-type", "application/json".into());
                return resp;
            }
        }
        notified.await;
    }
}

/// The right to post the current invocation's result, taken before its body is read. Dropped unused (the body
/// could not be read), it lets a later post try again.
struct Claim {
    shared: Arc<Shared>,
    seq: u64,
    used: bool,
}

impl Claim {
    /// `None` when a post now changes nothing: no invocation in flight, not fetched yet, already answered, or
    /// another post for it is being read.
    fn take(shared: &Arc<Shared>) -> Option<Claim> {
        let mut st = shared.lock();
        if st.current.is_none() || !st.delivered || st.posted || st.posting {
            return None;
        }
        st.posting = true;
        Some(Claim {
            shared: shared.clone(),
            seq: st.seq,
            used: false,
        })
    }

    /// Delivers the outcome, unless the invocation ended meanwhile (timed out, say).
    fn deliver(mut self, event: Event) {
        self.used = true;
        let mut st = self.shared.lock();
        if st.seq == self.seq && st.current.is_some() && !st.posted {
            st.posted = true;
            st.posting = false;
            let _ = self.shared.events.send(event);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        let mut st = self.shared.lock();
        if st.seq == self.seq {
            st.posting = false;
        }
    }
}

enum ReadError {
    TooLarge,
    Failed,
}

/// Reads a body of at most `max` bytes.
async fn read_body(
    mut body: Body,
    max: usize,
    declared: Option<usize>,
) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// The body's length when it is known up front (its `Content-Length`, or none at all).
fn declared_length(body: &Body) -> Option<usize> {
    body.size_hint()
        .exact()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A post whose body stays (partly) unread: the connection cannot carry another request, so the client is told.
fn closing(status: StatusCode, text: String) -> Response {
    let mut resp = (status, text).into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn too_large(max: usize) -> Response {
    closing(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a result or error of the runtime API holds at most {max} bytes\n"),
    )
}

/// An ignored post with a body this small is read and dropped (it is mostly in the connection's buffer
/// already), so that the connection stays usable; a larger one is not read at all.
const DISCARD_MAX: usize = 16 * 1024;

/// Reads and drops a body of at most [`DISCARD_MAX`] bytes (its declared length).
async fn discard(mut body: Body) -> bool {
    let mut seen = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                seen += f.data_ref().map_or(0, |d| d.len());
                if seen > DISCARD_MAX {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Answers `200` to a request whose body means nothing. The body is not kept: a small one is read and dropped (so
/// that the connection stays usable), a larger one is not read at all and the connection is closed.
async fn ignore_body(s: &Shared, body: Body) -> Response {
    let small = declared_length(&body).is_some_and(|n| n <= DISCARD_MAX);
    if small
        && tokio::time::timeout(s.limits.body_timeout, discard(body))
            .await
            .unwrap_or(false)
    {
        return StatusCode::OK.into_response();
    }
    closing(StatusCode::OK, String::new())
}

async fn post_result(s: &Arc<Shared>, error: bool, body: Body) -> Response {
    let declared = declared_length(&body);
    let Some(claim) = Claim::take(s) else {
        // First post wins: this one changes nothing.
        return ignore_body(s, body).await;
    };
    let max = s.limits.max_body;
    if let Some(len) = declared.filter(|len| *len > max) {
        claim.deliver(Event::TooLarge {
            error,
            len: Some(len),
        });
        return too_large(max);
    }
    match tokio::time::timeout(s.limits.body_timeout, read_body(body, max, declared)).await {
        Ok(Ok(bytes)) => {
            claim.deliver(Event::Posted(if error { Err(bytes) } else { Ok(bytes) }));
            StatusCode::OK.into_response()
        }
        Ok(Err(ReadError::TooLarge)) => {
            claim.deliver(Event::TooLarge { error, len: None });
            too_large(max)
        }
        Ok(Err(ReadError::Failed)) => closing(StatusCode::BAD_REQUEST, String::new()),
        Err(_) => closing(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s\n",
                s.limits.body_timeout.as_secs_f64()
            ),
        ),
    }
}

async fn response(State(s): State<Arc<Shared>>, body: Body) -> Response {
    post_result(&s, false, body).await
}

async fn error(State(s): State<Arc<Shared>>, body: Body) -> Response {
    post_result(&s, true, body).await
}

/// The error a custom runtime posted: its JSON `errorMessage` (and friends) when it sent SCF-shaped JSON, else the
/// body as the message. Always a user error (430).
pub(crate) fn error_from_body(body: &[u8]) -> FunctionError {
    let mut e = FunctionError::new(status::USER_EXCEPTION, "");
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => {
            let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
            e.error_message = text("errorMessage")
                .or_else(|| text("message"))
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
            e.error_type = text("errorType");
            e.stack_trace = match m.get("stackTrace") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
        }
        _ => e.error_message = String::from_utf8_lossy(body).into_owned(),
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const MAX: usize = 64 * 1024;

    fn limits() -> Limits {
        Limits {
            connections: 2,
            header_timeout: Duration::from_millis(400),
            body_timeout: Duration::from_millis(400),
            max_body: MAX,
        }
    }

    fn serve(limits: Limits) -> (RuntimeApi, SocketAddr) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        (RuntimeApi::serve(l, limits).expect("serve"), addr)
    }

    /// Reads one response: status, headers (lower-case names) and body (by `Content-Length`).
    async fn read_response(s: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[end + 4..].to_vec();
        while body.len() < len {
            let n = s.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "closed in the body");
            body.extend_from_slice(&chunk[..n]);
        }
        (status, headers, body)
    }

    async fn connect(addr: SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.expect("connect")
    }

    fn post_head(path: &str, len: usize) -> Vec<u8> {
        format!(
            "POST /runtime/invocation/{path} HTTP/1.1\r\nHost: api\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes()
    }

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            event: b"{}".to_vec(),
            memory_mb: 128,
            timeout_ms: 3000,
            deadline_ms: 0,
        }
    }

    /// Offers an invocation and fetches it as the runtime would; returns the runtime's connection.
    async fn deliver(api: &mut RuntimeApi, addr: SocketAddr, id: &str) -> TcpStream {
        api.offer(invocation(id));
        let mut c = connect(addr).await;
        c.write_all(b"GET /runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
            .await
            .expect("write");
        let (status, headers, body) = read_response(&mut c).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("request_id".into(), id.into())));
        assert_eq!(body, b"{}");
        // The first fetch counts as ready.
        if let Ok(e) = api.events.try_recv() {
            assert!(matches!(e, Event::Ready));
        }
        c
    }

    async fn within<T>(what: &str, d: Duration, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(d, f)
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within {d:?}"))
    }

    fn no_event(api: &mut RuntimeApi) {
        assert!(api.events.try_recv().is_err(), "an unexpected event");
    }

    #[tokio::test]
    async fn a_post_that_changes_nothing_is_answered_without_reading_its_body() {
        let (mut api, addr) = serve(limits());
        // Nothing in flight: a huge declared body that never comes is answered at once.
        let mut c = connect(addr).await;
        c.write_all(&post_head("response", 16 << 20))
            .await
            .expect("write");
        let (status, _, _) = within(
            "no invocation",
            Duration::from_secs(2),
            read_response(&mut c),
        )
        .await;
        assert_eq!(status, 200);
        no_event(&mut api);

        let mut rt = deliver(&mut api, addr, "r1").await;
        rt.write_all(&post_head("response", 4))
            .await
            .expect("write");
        rt.write_all(b"\"ok\"").await.expect("write");
        assert_eq!(read_response(&mut rt).await.0, 200);
        match api.recv().await {
            Event::Posted(Ok(body)) => assert_eq!(body, b"\"ok\""),
            _ => panic!("expected the result"),
        }
        // Already answered: the second post is not read either, and its connection is closed.
        let mut c = connect(addr).await;
        c.write_all(&post_head("error", 16 << 20))
            .await
            .expect("write");
        let (status, headers, _) =
            within("second post", Duration::from_secs(2), read_response(&mut c)).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("connection".into(), "close".into())));
        no_event(&mut api);

        // A small repeated post on the runtime's own connection is dropped and the connection kept.
        rt.write_all(&post_head("response", 7))
            .await
            .expect("write");
        rt.write_all(b"\"again\"").await.expect("write");
        let (status, headers, _) = read_response(&mut rt).await;

        assert_eq!(status, 200);
        assert!(!headers.iter().any(|(k, _)| k == "connection"));
        no_event(&mut api);
        api.finish();
        api.offer(invocation("r2"));
        rt.write_all(b"GET /runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
            .await
            .expect("write");
        let (status, headers, _) = read_response(&mut rt).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("request_id".into(), "r2".into())));
    }

    #[tokio::test]
    async fn an_oversized_post_fails_the_invocation_declared_or_streamed() {
        let (mut api, addr) = serve(limits());
        let mut rt = deliver(&mut api, addr, "big").await;
        rt.write_all(&post_head("response", MAX + 1))
            .await
            .expect("write");
        let (status, _, _) =
            within("declared", Duration::from_secs(2), read_response(&mut rt)).await;
        assert_eq!(status, 413);
        match api.recv().await {
            Event::TooLarge { error, len } => {
                assert!(!error);
                assert_eq!(len, Some(MAX + 1));
            }
            _ => panic!("expected TooLarge"),
        }
        api.finish();

        // Chunked: no length up front; cut once the bound is passed.
        let mut rt = deliver(&mut api, addr, "chunked").await;
        rt.write_all(
            b"POST /runtime/invocation/error HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("write");
        let chunk = vec![b'x'; 16 * 1024];
        let writer = async {
            for _ in 0..(MAX / chunk.len() + 2) {
                let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
                frame.extend_from_slice(&chunk);
                frame.extend_from_slice(b"\r\n");
                if rt.write_all(&frame).await.is_err() {
                    break;
                }
            }
            rt
        };
        let mut rt = writer.await;
        let (status, _, _) =
            within("streamed", Duration::from_secs(2), read_response(&mut rt)).await;
        assert_eq!(status, 413);
        match api.recv().await {
            Event::TooLarge { error, len } => {
                assert!(error);
                assert_eq!(len, None);
            }
            _ => panic!("expected TooLarge"),
        }
        // The bound itself is fine.
        api.finish();
        let mut rt = deliver(&mut api, addr, "at-the-bound").await;
        rt.write_all(&post_head("response", MAX))
            .await
            .expect("write");
        rt.write_all(&vec![b'y'; MAX]).await.expect("write");
        assert_eq!(read_response(&mut rt).await.0, 200);
        match api.recv().await {
            Event::Posted(Ok(body)) => assert_eq!(body.len(), MAX),
            _ => panic!("expected the result"),
        }
    }

    #[tokio::test]
    async fn a_slow_header_client_is_cut_and_others_are_served() {
        let (mut api, addr) = serve(limits());
        let t0 = Instant::now();
        let mut slow = connect(addr).await;
        let head = b"POST /runtime/init/ready HTTP/1.1\r\nHost: api\r\nX-Padding: 0123456789\r\n";
        let dripping = async {
            // One byte of a request head every 100 ms: never complete within the header timeout.
            let mut sent = 0;
            for b in head.iter() {
                if slow.write_all(&[*b]).await.is_err() {
                    break;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sent
        };
        let watch = async {
            // Meanwhile a normal call is answered.
            let mut c = connect(addr).await;
            c.write_all(
                b"POST /runtime/init/ready HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n",
            )
            .await
            .expect("write");
            assert_eq!(read_response(&mut c).await.0, 200);
        };
        let (sent, ()) = tokio::join!(
            within("dripping", Duration::from_secs(10), dripping),
            within("normal", Duration::from_secs(2), watch)
        );
        assert!(matches!(api.recv().await, Event::Ready));
        // The server closed the slow connection long before its head was complete: the writes failed.
        assert!(sent < head.len(), "all {sent} bytes were taken");
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(3), "cut after {took:?}");
        let mut rest = Vec::new();
        let _ = within(
            "closed",
            Duration::from_secs(2),
            slow.read_to_end(&mut rest),
        )
        .await;
        assert!(!String::from_utf8_lossy(&rest).contains(" 200 "));
    }

    #[tokio::test]
    async fn a_stalled_body_is_cut_and_the_invocation_can_still_be_answered() {
        let (mut api, addr) = serve(limits());
        let mut rt = deliver(&mut api, addr, "stall").await;
        rt.write_all(&post_head("response", 100))
            .await
            .expect("write");
        rt.write_all(&[b'z'; 10]).await.expect("write");
        let t0 = Instant::now();
        let (status, _, _) =
            within("stalled", Duration::from_secs(3), read_response(&mut rt)).await;
        assert_eq!(status, 408);
        assert!(t0.elapsed() >= Duration::from_millis(300));
        no_event(&mut api);
        let mut c = connect(addr).await;
        c.write_all(&post_head("response", 2)).await.expect("write");
        c.write_all(b"42").await.expect("write");
        assert_eq!(read_response(&mut c).await.0, 200);
        match api.recv().await {
            Event::Posted(Ok(body)) => assert_eq!(body, b"42"),
            _ => panic!("expected the result"),
        }
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_one() {
        let (mut api, addr) = serve(Limits {
            header_timeout: Duration::from_secs(30),
            ..limits()
        });
        let idle = [connect(addr).await, connect(addr).await];
        let mut third = connect(addr).await;
        third
            .write_all(
                b"POST /runtime/init/ready HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n",
            )
            .await
            .expect("write");
        let waited =
            tokio::time::timeout(Duration::from_millis(300), read_response(&mut third)).await;
        assert!(waited.is_err(), "served beyond the connection limit");
        no_event(&mut api);
        drop(idle);
        let (status, _, _) =
            within("freed", Duration::from_secs(2), read_response(&mut third)).await;
        assert_eq!(status, 200);
        assert!(matches!(api.recv().await, Event::Ready));
    }

    #[tokio::test]
    async fn a_post_for_an_ended_invocation_changes_nothing() {
        let (mut api, addr) = serve(limits());
        let mut rt = deliver(&mut api, addr, "late").await;
        rt.write_all(&post_head("response", 4))
            .await
            .expect("write");
        // The invocation ends (its timeout, say) while the body is on its way.
        tokio::time::sleep(Duration::from_millis(50)).await;
        api.finish();
        api.offer(invocation("next-one"));
        rt.write_all(b"late").await.expect("write");
        assert_eq!(read_response(&mut rt).await.0, 200);
        no_event(&mut api);
    }

    #[tokio::test]
    async fn ready_with_no_body_keeps_its_connection_and_a_large_one_closes_it() {
        let (mut api, addr) = serve(limits());
        let mut c = connect(addr).await;
        c.write_all(b"POST /runtime/init/ready HTTP/1.1\r\nHost: api\r\n\r\n")
            .await
            .expect("write");
        let (status, headers, _) = read_response(&mut c).await;
        assert_eq!(status, 200);
        assert!(!headers.iter().any(|(k, _)| k == "connection"));
        assert!(matches!(api.recv().await, Event::Ready));
        api.offer(invocation("same-connection"));
        c.write_all(b"GET /runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
            .await
            .expect("write");
        let (status, headers, _) = read_response(&mut c).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("request_id".into(), "same-connection".into())));

        let mut c = connect(addr).await;
        c.write_all(
            b"POST /runtime/init/ready HTTP/1.1\r\nHost: api\r\nContent-Length: 99999999\r\n\r\n",
        )
        .await
        .expect("write");
        let (status, headers, _) =
            within("unread body", Duration::from_secs(2), read_response(&mut c)).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("connection".into(), "close".into())));
    }

    #[test]
    fn limits_follow_the_function() {
        let l = Limits::for_function(
            Duration::from_secs(3),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert_eq!(l.header_timeout, Duration::from_secs(15));
        assert_eq!(l.body_timeout, Duration::from_secs(5));
        assert_eq!(l.max_body, crate::protocol::MAX_PAYLOAD);
        assert_eq!(l.connections, MAX_CONNECTIONS);
    }
}
