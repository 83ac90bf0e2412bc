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

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, mpsc};

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
    Closed,
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
    /// Whether the runtime has fetched the current invocation (posts before that belong to an earlier one).
    delivered: bool,
    /// Whether the current invocation already has its result.
    posted: bool,
}

struct Shared {
    state: Mutex<ApiState>,
    wake: Notify,
    events: mpsc::UnboundedSender<Event>,
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
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves the runtime API on `listener` until dropped.
    pub(crate) fn serve(listener: std::net::TcpListener) -> std::io::Result<RuntimeApi> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(ApiState::default()),
            wake: Notify::new(),
            events: tx,
        });
        let app = Router::new()
            .route("/runtime/init/ready", post(ready))
            .route("/runtime/invocation/next", get(next))
            .route("/runtime/invocation/response", post(response))
            .route("/runtime/invocation/error", post(error))
            .layer(DefaultBodyLimit::max(crate::protocol::MAX_PAYLOAD))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
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
        st.delivered = false;
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
        // Connection tasks outlive the accept loop: end their long polls too.
        self.shared.lock().closed = true;
        self.shared.wake.notify_waiters();
        self.server.abort();
    }
}

async fn ready(State(s): State<Arc<Shared>>) -> StatusCode {
    let mut st = s.lock();
    if !st.ready {
        st.ready = true;
        let _ = s.events.send(Event::Ready);
    }
    StatusCode::OK
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

fn post_result(s: &Shared, result: Result<Vec<u8>, Vec<u8>>) -> StatusCode {
    let mut st = s.lock();
    if st.current.is_none() || !st.delivered || st.posted {
        // No invocation in flight, a late post for an earlier one, or it already has its result: first post wins.
        return StatusCode::OK;
    }
    st.posted = true;
    let _ = s.events.send(Event::Posted(result));
    StatusCode::OK
}

async fn response(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    post_result(&s, Ok(body.to_vec()))
}

async fn error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    post_result(&s, Err(body.to_vec()))
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
