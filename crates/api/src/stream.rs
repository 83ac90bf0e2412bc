//! The live status stream, a Stratus extension beside the API: `GET /stratus/v1/stream` answers
//! `text/event-stream` (server-sent events) carrying every status change of the caller's functions, versions,
//! layer versions and asynchronous events as it commits, read from the store's status change log.
//!
//! - **Authentication** is checked from the headers before anything is streamed: a TC3-HMAC-SHA256 signature
//!   exactly as the SDKs make it for a `GET` (service `scf`, canonical URI `/`, the raw query string, the hash of
//!   the empty body), within the same ±300 s, through the same key lookup as the actions. A console session will
//!   be a second way in ([`authenticate`] is the one place to add it).
//! - **Resuming**: `Last-Event-ID` (what `EventSource` sends on reconnecting) or `?since=ID` gives the last id
//!   seen; the stream continues right after it, without gaps. Without either, it starts with what commits from
//!   now on. A cursor older than the retained log gets one `reset` event (re-read the state, then follow on).
//! - **Framing**: each change is `id: N`, `event: status`, `data: {JSON}`; a comment line every `heartbeat`
//!   (15 s) keeps proxies and the connection's idle timer satisfied and carries the cursor (`id:` without data,
//!   which moves a client's last event id without dispatching anything).
//! - **Bounded**: the body is produced only as fast as the client reads it, one read of at most `batch` changes
//!   at a time, so a slow reader holds one batch, never a backlog; the rows come from SQL filtered by the
//!   caller's account.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use control::{Caller, Control};
use sha2::{Digest, Sha256};
use store::{Change, ChangeKind, ChangeReader};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::tc3;

/// The path of the stream.
pub const PATH: &str = "/stratus/v1/stream";

/// Settings of the stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// How often a comment is sent when nothing else is.
    pub heartbeat: Duration,
    /// How often the log is read when no wake-up came (covers a lost notification).
    pub poll: Duration,
    /// How soon the log is read again when changes wait behind a transaction still open.
    pub held_back_retry: Duration,
    /// Changes read (and so buffered) at once per connection.
    pub batch: i64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            held_back_retry: Duration::from_millis(10),
            batch: 100,
        }
    }
}

struct StreamState {
    control: Control,
    cfg: StreamConfig,
    max_skew_secs: u64,
}

/// The stream's route, to merge into the API router.
pub(crate) fn routes(control: Control, cfg: StreamConfig, max_skew_secs: u64) -> Router {
    // On PostgreSQL the process's LISTEN connection starts now, not with the first stream, so that a stream
    // opened right after the start is woken by the first change another node commits.
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(control.store().change_wakeups());
    }
    Router::new()
        .route(PATH, get(stream))
        .with_state(Arc::new(StreamState {
            control,
            cfg,
            max_skew_secs,
        }))
}

/// Why a stream was refused, with its HTTP status and the API's error envelope.
fn refuse(status: StatusCode, e: ApiError) -> Response {
    let body = serde_json::json!({
        "Response": {
            "Error": { "Code": e.code, "Message": e.message },
            "RequestId": uuid::Uuid::new_v4().to_string(),
        }
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Who is asking. TC3 today; a console session will be checked here too, when the request carries one instead
/// of an `Authorization` header.
async fn authenticate(
    st: &StreamState,
    headers: &HeaderMap,
    query: &str,
) -> Result<Caller, ApiError> {
    let auth = header_str(headers, "authorization").ok_or_else(|| {
        ApiError::new(
            "AuthFailure.SignatureFailure",
            "The Authorization header is missing: sign the GET with TC3-HMAC-SHA256 (service scf).",
        )
    })?;
    let auth = tc3::parse_authorization(auth)
        .map_err(|e| ApiError::new("AuthFailure.InvalidAuthorization", e.to_string()))?;
    let ts: i64 = header_str(headers, "x-tc-timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                "AuthFailure.SignatureFailure",
                "The X-TC-Timestamp header is missing or not a number.",
            )
        })?;
    let now = crate::server::unix_now();
    if now.abs_diff(ts) > st.max_skew_secs {
        return Err(ApiError::new(
            "AuthFailure.SignatureExpire",
            format!(
                "The request timestamp {ts} is more than {} seconds from the server's time {now}.",
                st.max_skew_secs
            ),
        ));
    }
    let (secret_key, caller) = st.control.api_key(&auth.secret_id).await?.ok_or_else(|| {
        ApiError::new(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found; check that it is correct and enabled.",
        )
    })?;
    let empty = hex::encode(Sha256::digest(b""));
    let lookup = |name: &str| header_str(headers, name).map(str::to_string);
    tc3::verify(&auth, &secret_key, "GET", query, &lookup, &empty, ts).map_err(|e| {
        ApiError::new(
            "AuthFailure.SignatureFailure",
            format!("The request signature does not match: {e}."),
        )
    })?;
    Ok(caller)
}

/// The id to resume after: `Last-Event-ID`, else `?since=`. `Ok(None)`: start from now.
fn resume_point(headers: &HeaderMap, query: &str) -> Result<Option<i64>, ApiError> {
    let given = header_str(headers, "last-event-id")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| {
            query.split('&').find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| *k == "since")
                    .map(|(_, v)| v.to_string())
            })
        });
    match given {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::new(
                "InvalidParameterValue",
                format!("The stream position `{v}` is not an event id of this stream."),
            )),
        },
    }
}

async fn stream(State(st): State<Arc<StreamState>>, req: axum::extract::Request) -> Response {
    let (parts, _body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").to_string();
    let caller = match authenticate(&st, &parts.headers, &query).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(code = %e.code, message = %e.message, "status stream refused");
            return refuse(StatusCode::UNAUTHORIZED, e);
        }
    };
    let resume = match resume_point(&parts.headers, &query) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let store = st.control.store().clone();
    // Subscribed before the start is read: a change committing in between wakes the first wait.
    let wake = store.change_wakeups();
    let reader = match store.change_reader(caller.app_id, resume).await {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new("InternalError", e.to_string()),
            );
        }
    };
    let cursor = reader.cursor();
    let stop = parts
        .extensions
        .get::<crate::serve::Stopping>()
        .map(|s| s.0.clone());
    let follow = Follow {
        reader,
        cursor,
        sent: cursor,
        wake,
        stop,
        cfg: st.cfg.clone(),
        next_beat: tokio::time::Instant::now() + st.cfg.heartbeat,
        opened: false,
        done: false,
        // Keeps the request's extensions, and so its connection marked busy (not idle) while streaming.
        _request: parts.extensions,
    };
    let body = Body::from_stream(futures_util::stream::unfold(follow, |mut f| async move {
        f.next_chunk()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), f))
    }));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// One connection's position in the log.
struct Follow {
    reader: ChangeReader,
    /// Where the next read starts.
    cursor: i64,
    /// The last id the client was told.
    sent: i64,
    wake: watch::Receiver<u64>,
    stop: Option<watch::Receiver<()>>,
    cfg: StreamConfig,
    next_beat: tokio::time::Instant,
    /// The opening comment went out (so the client sees the stream is live at once).
    opened: bool,
    done: bool,
    _request: axum::http::Extensions,
}

impl Follow {
    /// The next bytes to send, or `None` to end the stream (shutdown, or the log cannot be read).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from(format!(
                ": stratus status stream from {}\n\n",
                self.cursor
            )));
        }
        loop {
            self.wake.borrow_and_update();
            let read = match self.reader.read(self.cfg.batch).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "status stream cannot read the log");
                    self.done = true;
                    let data =
                        serde_json::json!({ "Code": "InternalError", "Message": e.to_string() });
                    return Some(Bytes::from(format!("event: error\ndata: {data}\n\n")));
                }
            };
            if let Some(from) = read.reset {
                self.cursor = from;
                self.sent = from;
                let data = serde_json::json!({
                    "Reason": "The position is older than the retained status log: read the current state again, then follow on.",
                    "From": from,
                });
                return Some(Bytes::from(format!(
                    "id: {from}\nevent: reset\ndata: {data}\n\n"
                )));
            }
            self.cursor = read.cursor;
            if !read.changes.is_empty() {
                let mut out = String::new();
                for c in &read.changes {
                    out.push_str(&frame(c));
                    self.sent = c.id;
                }
                return Some(Bytes::from(out));
            }
            let wait = if read.held_back {
                self.cfg.held_back_retry
            } else {
                self.cfg.poll
            };
            let wake = &mut self.wake;
            let woken = async {
                if wake.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let stop = async {
                match self.stop.as_mut() {
                    Some(s) => {
                        let _ = s.changed().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(wait) => {}
                () = tokio::time::sleep_until(self.next_beat) => {
                    self.next_beat = tokio::time::Instant::now() + self.cfg.heartbeat;
                    let beat = if self.sent == self.cursor {
                        ": heartbeat\n\n".to_string()
                    } else {
                        self.sent = self.cursor;
                        format!(": heartbeat\nid: {}\n\n", self.cursor)
                    };
                    return Some(Bytes::from(beat));
                }
                () = stop => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

/// One change as an SSE event.
fn frame(c: &Change) -> String {
    let reasons: Vec<serde_json::Value> = c
        .reasons
        .iter()
        .map(|r| serde_json::json!({ "ErrorCode": r.code, "ErrorMessage": r.message }))
        .collect();
    let mut data = serde_json::Map::new();
    data.insert("Id".into(), c.id.into());
    data.insert("Kind".into(), c.kind.as_str().into());
    match c.kind {
        ChangeKind::LayerVersion => {
            data.insert("LayerName".into(), c.name.clone().into());
            data.insert(
                "LayerVersion".into(),
                c.qualifier
                    .parse::<i64>()
                    .map_or_else(|_| c.qualifier.clone().into(), Into::into),
            );
        }
        ChangeKind::Function | ChangeKind::Version | ChangeKind::AsyncEvent => {
            data.insert("Namespace".into(), c.namespace.clone().into());
            data.insert("FunctionName".into(), c.name.clone().into());
            data.insert("Qualifier".into(), c.qualifier.clone().into());
        }
    }
    if c.kind == ChangeKind::AsyncEvent {
        data.insert("InvokeRequestId".into(), c.request_id.clone().into());
    }
    data.insert("Status".into(), c.status.clone().into());
    data.insert("StatusReasons".into(), reasons.into());
    data.insert("CommitTimeMs".into(), c.db_ms.into());
    data.insert("CommitTime".into(), model::time::format_ms(c.db_ms).into());
    format!(
        "id: {}\nevent: status\ndata: {}\n\n",
        c.id,
        serde_json::Value::Object(data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_comes_from_the_header_then_the_query() {
        let mut h = HeaderMap::new();
        assert_eq!(resume_point(&h, "").expect("none"), None);
        assert_eq!(resume_point(&h, "a=1&since=42").expect("query"), Some(42));
        h.insert("last-event-id", HeaderValue::from_static("7"));
        assert_eq!(resume_point(&h, "since=42").expect("header wins"), Some(7));
        h.insert("last-event-id", HeaderValue::from_static("-1"));
        assert!(resume_point(&h, "").is_err());
        h.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(resume_point(&h, "").is_err());
    }

    #[test]
    fn a_change_is_one_event_with_its_id() {
        let c = Change {
            id: 9,
            app_id: 1,
            kind: ChangeKind::Function,
            namespace: "default".into(),
            name: "f".into(),
            qualifier: "$LATEST".into(),
            request_id: String::new(),
            status: "CreateFailed".into(),
            reasons: vec![model::StatusReason::new(
                "InvalidParameterValue.Handler",
                "no index.py",
            )],
            db_ms: 1_764_000_000_000,
        };
        let f = frame(&c);
        let mut lines = f.lines();
        assert_eq!(lines.next(), Some("id: 9"));
        assert_eq!(lines.next(), Some("event: status"));
        let data: serde_json::Value = serde_json::from_str(
            lines
                .next()
                .and_then(|l| l.strip_prefix("data: "))
                .expect("data line"),
        )
        .expect("json");
        assert_eq!(data["FunctionName"], "f");
        assert_eq!(data["Status"], "CreateFailed");
        assert_eq!(
            data["StatusReasons"][0]["ErrorCode"],
            "InvalidParameterValue.Handler"
        );
        assert!(f.ends_with("\n\n"));
    }
}
