//! The HTTP surface: `POST /` for the API, `/healthz` and `/readyz` for operators.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use control::{Caller, Control};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::tc3;

/// Protocol and connection settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted (the SDKs send a 50 MiB zip as ~67 MiB of JSON).
    pub max_body_bytes: usize,
    /// Allowed clock skew of `X-TC-Timestamp`, in seconds.
    pub max_skew_secs: u64,
    /// Connections served at once; beyond it, new connections wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time from the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Time for a request body to arrive, counted from the end of its head.
    pub body_timeout: Duration,
    /// Time a connection may stay open with no request in flight and no bytes moving (keep-alive).
    pub idle_timeout: Duration,
    /// Bytes of request bodies held in memory at once, over every connection. A body that would pass it waits
    /// (its client is slowed by TCP) until others are done, or until its deadline (`RequestLimitExceeded`, which
    /// the SDKs retry). At least `max_body_bytes`.
    pub max_body_memory_bytes: usize,
    /// The status stream (`GET /stratus/v1/stream`).
    pub stream: crate::stream::StreamConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 80 * 1024 * 1024,
            max_skew_secs: 300,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_body_memory_bytes: 1024 * 1024 * 1024,
            stream: crate::stream::StreamConfig::default(),
        }
    }
}

struct AppState {
    control: Control,
    cfg: ApiConfig,
    /// The memory budget of request bodies, in KiB permits (`max_body_memory_bytes`).
    bodies: Arc<Semaphore>,
}

/// A permit of the body budget is one KiB.
const BUDGET_UNIT: usize = 1024;

fn budget_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX)
}

/// The API router.
pub fn router(control: Control, cfg: ApiConfig) -> Router {
    let units = budget_units(cfg.max_body_memory_bytes.max(cfg.max_body_bytes)) as usize;
    let bodies = Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS)));
    let stream = crate::stream::routes(control.clone(), cfg.stream.clone(), cfg.max_skew_secs);
    let state = Arc::new(AppState {
        control,
        cfg,
        bodies,
    });
    Router::new()
        .route("/", post(api).get(api_get))
        .route("/code/{sha256}", get(code_download))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .with_state(state)
        .merge(stream)
}

/// Serves a code package behind a link handed out by GetFunctionAddress.
async fn code_download(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(sha256): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let param = |name: &str| {
        query.as_deref().unwrap_or("").split('&').find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    };
    let (Some(expires), Some(signature)) = (
        param("expires").and_then(|e| e.parse().ok()),
        param("signature"),
    ) else {
        return (StatusCode::FORBIDDEN, "missing link signature").into_response();
    };
    let key = match st.control.download_key().await {
        Ok(k) => k,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    if !crate::download::check(&key, &sha256, expires, &signature, unix_now()) {
        return (StatusCode::FORBIDDEN, "the link is invalid or has expired").into_response();
    }
    match st.control.code_blob(&sha256).await {
        Ok(bytes) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            r
        }
        Err(_) => (StatusCode::NOT_FOUND, "no such package").into_response(),
    }
}

/// Prometheus text exposition of the invocation counters.
async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let m = st.control.metrics();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP stratus_invocations_total Invocations by SCF status code (200: success)."
    );
    let _ = writeln!(out, "# TYPE stratus_invocations_total counter");
    let by_status = m.by_status.lock().map(|g| g.clone()).unwrap_or_default();
    for (code, n) in &by_status {
        let _ = writeln!(out, "stratus_invocations_total{{status=\"{code}\"}} {n}");
    }
    let errors: u64 = by_status
        .iter()
        .filter(|(c, _)| **c != 200)
        .map(|(_, n)| n)
        .sum();
    let _ = writeln!(
        out,
        "# HELP stratus_invocation_errors_total Invocations that did not succeed."
    );
    let _ = writeln!(out, "# TYPE stratus_invocation_errors_total counter");
    let _ = writeln!(out, "stratus_invocation_errors_total {errors}");
    let _ = writeln!(
        out,
        "# HELP stratus_cold_starts_total Invocations that started a new instance."
    );
    let _ = writeln!(out, "# TYPE stratus_cold_starts_total counter");
    let _ = writeln!(
        out,
        "stratus_cold_starts_total {}",
        m.cold_starts.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP stratus_invocation_duration_seconds Invocation duration."
    );
    let _ = writeln!(out, "# TYPE stratus_invocation_duration_seconds histogram");
    for (i, b) in control::DURATION_BUCKETS_MS.iter().enumerate() {
        let _ = writeln!(
            out,
            "stratus_invocation_duration_seconds_bucket{{le=\"{}\"}} {}",
            b / 1000.0,
            m.duration_buckets[i].load(Ordering::Relaxed)
        );
    }
    let count = m.duration_buckets[control::DURATION_BUCKETS_MS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "stratus_invocation_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        out,
        "stratus_invocation_duration_seconds_sum {}",
        m.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "stratus_invocation_duration_seconds_count {count}");
    if let Some((busy, idle)) = st.control.instance_counts() {
        let _ = writeln!(out, "# HELP stratus_instances Function instances by state.");
        let _ = writeln!(out, "# TYPE stratus_instances gauge");
        let _ = writeln!(out, "stratus_instances{{state=\"busy\"}} {busy}");
        let _ = writeln!(out, "stratus_instances{{state=\"idle\"}} {idle}");
    }
    let _ = writeln!(
        out,
        "# HELP stratus_invocation_records_dropped_total Records the writer could not keep up with."
    );
    let _ = writeln!(
        out,
        "# TYPE stratus_invocation_records_dropped_total counter"
    );
    let _ = writeln!(
        out,
        "stratus_invocation_records_dropped_total {}",
        m.records_dropped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP stratus_timer_ticks_total Timer ticks this node fired or recorded as skipped."
    );
    let _ = writeln!(out, "# TYPE stratus_timer_ticks_total counter");
    for (outcome, n) in [
        ("fired", &m.timer_ticks_fired),
        ("skipped", &m.timer_ticks_skipped),
    ] {
        let _ = writeln!(
            out,
            "stratus_timer_ticks_total{{outcome=\"{outcome}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    match st.control.store().schema_version().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")).into_response(),
    }
}

/// `http://HOST[:PORT]` as the client reached us (tccli sends the scheme inside `Host`).
fn base_url(headers: &HeaderMap) -> String {
    let host = header_str(headers, "host").unwrap_or("127.0.0.1");
    if host.starts_with("http://") || host.starts_with("https://") {
        host.trim_end_matches('/').to_string()
    } else {
        format!("http://{host}")
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Every reply: HTTP 200, `Content-Type: application/json` exactly, a RequestId, the trace id echoed.
fn reply(
    headers: &HeaderMap,
    request_id: &str,
    body: Result<serde_json::Value, ApiError>,
) -> Response {
    let mut inner = match body {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => serde_json::Map::new(),
        Err(e) => {
            let mut m = serde_json::Map::new();
            m.insert(
                "Error".into(),
                serde_json::json!({ "Code": e.code, "Message": e.message }),
            );
            m
        }
    };
    inner.insert("RequestId".into(), request_id.into());
    let bytes = serde_json::to_vec(&serde_json::json!({ "Response": inner })).unwrap_or_default();
    let mut resp = (StatusCode::OK, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(trace) = headers.get("x-tc-traceid") {
        h.insert("x-tc-traceid", trace.clone());
    }
    resp
}

async fn api_get(headers: HeaderMap) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    reply(
        &headers,
        &id,
        Err(ApiError::new(
            "UnsupportedOperation",
            "GET requests are not supported by Stratus: send POST / with a JSON body (the SDKs' default).",
        )),
    )
}

/// A form body of at most this size is read to recognise a legacy (HmacSHA1/HmacSHA256) signature.
const LEGACY_PEEK_BYTES: usize = 64 * 1024;
/// The first allocation for a body; it then grows with what arrives, never past the announced length.
const FIRST_CHUNK: usize = 64 * 1024;

async fn api(State(st): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let action = header_str(headers, "x-tc-action").unwrap_or("");
    let mut body = RequestBody {
        body,
        done: false,
        deadline: tokio::time::Instant::now() + st.cfg.body_timeout,
        budget: st.bodies.clone(),
    };
    let result = handle(&st, headers, action, &mut body).await;
    match &result {
        Ok(_) => {
            tracing::debug!(%action, request_id = %id, us = started.elapsed().as_micros() as u64, "ok")
        }
        Err(e) => {
            tracing::info!(%action, request_id = %id, code = %e.code, message = %e.message, "refused")
        }
    }
    let mut resp = reply(headers, &id, result);
    let expects_continue =
        header_str(headers, "expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    if !body.discard_rest(expects_continue, parts.extensions) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request body, read only once the headers have passed their checks.
struct RequestBody {
    body: Body,
    /// Read to its end.
    done: bool,
    deadline: tokio::time::Instant,
    /// The server-wide memory budget of bodies.
    budget: Arc<Semaphore>,
}

/// A body read whole, and the share of the memory budget it holds until dropped.
struct Collected {
    bytes: Vec<u8>,
    digest: Option<[u8; 32]>,
    _held: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    TooLarge,
    TimedOut,
    /// The server holds too many bodies already and none finished before this one's deadline.
    Busy,
    Read(String),
}

impl BodyError {
    fn into_api(self, cfg: &ApiConfig) -> ApiError {
        match self {
            BodyError::TooLarge => ApiError::new(
                "RequestSizeLimitExceeded",
                format!(
                    "The request body is larger than the {} bytes Stratus accepts.",
                    cfg.max_body_bytes
                ),
            ),
            BodyError::TimedOut => ApiError::new(
                "InvalidParameter",
                format!(
                    "The request body did not arrive within {} seconds.",
                    cfg.body_timeout.as_secs_f64()
                ),
            ),
            BodyError::Busy => ApiError::new(
                "RequestLimitExceeded",
                format!(
                    "The server is holding {} bytes of request bodies and none was done within {} seconds; retry shortly.",
                    cfg.max_body_memory_bytes,
                    cfg.body_timeout.as_secs_f64()
                ),
            ),
            BodyError::Read(e) => ApiError::new(
                "InvalidParameter",
                format!("The request body could not be read: {e}."),
            ),
        }
    }
}

impl RequestBody {
    /// The length the client announced (`Content-Length`), if it did.
    fn announced(&self) -> Option<u64> {
        HttpBody::size_hint(&self.body).exact()
    }

    /// Reads the whole body, refusing it past `limit` bytes (at once when the announced length is over), and
    /// computes its SHA-256 as it arrives when `hash` is set.
    async fn collect(&mut self, limit: usize, hash: bool) -> Result<Collected, BodyError> {
        use http_body_util::BodyExt;
        let announced = match self.announced() {
            Some(n) if n > limit as u64 => return Err(BodyError::TooLarge),
            Some(n) => Some(n as usize),
            None => None,
        };
        let mut hasher = hash.then(Sha256::new);
        let mut buf = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        let (budget, deadline) = (self.budget.clone(), self.deadline);
        grow(
            &budget,
            deadline,
            &mut buf,
            &mut held,
            announced.unwrap_or(0).min(FIRST_CHUNK),
        )
        .await?;
        let timer = tokio::time::sleep_until(self.deadline);
        tokio::pin!(timer);
        loop {
            let frame = tokio::select! {
                biased;
                frame = self.body.frame() => frame,
                () = &mut timer => return Err(BodyError::TimedOut),
            };
            let frame = match frame {
                None => break,
                Some(Err(e)) => return Err(BodyError::Read(e.to_string())),
                Some(Ok(frame)) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let needed = buf.len() + data.len();
            if needed > limit {
                return Err(BodyError::TooLarge);
            }
            if needed > buf.capacity() {
                // Doubling, but never past the announced length: memory follows what actually arrived.
                let grown = needed.max(buf.capacity() * 2).min(limit);
                let target = announced
                    .filter(|&a| a >= needed)
                    .map_or(grown, |a| grown.min(a));
                grow(&budget, deadline, &mut buf, &mut held, target).await?;
            }
            if let Some(h) = &mut hasher {
                h.update(&data);
            }
            buf.extend_from_slice(&data);
        }
        self.done = true;
        Ok(Collected {
            bytes: buf,
            digest: hasher.map(|h| h.finalize().into()),
            _held: held,
        })
    }

    /// After the reply: a body left unread (the request was refused on its headers, or was too large) is read
    /// and dropped in the background until its deadline, so that a client still sending it gets the reply
    /// rather than a reset connection; `keep` (the request's extensions) keeps the connection marked busy
    /// meanwhile. A client that waits for `100 Continue` is not invited to send it. Returns whether the
    /// connection can stay open.
    fn discard_rest(self, expects_continue: bool, keep: axum::http::Extensions) -> bool {
        use http_body_util::BodyExt;
        if self.done || self.body.is_end_stream() {
            return true;
        }
        let deadline = self.deadline;
        if expects_continue || tokio::time::Instant::now() >= deadline {
            return false;
        }
        let mut body = self.body;
        tokio::spawn(async move {
            let _keep = keep;
            let _ = tokio::time::timeout_at(deadline, async {
                while let Some(Ok(_)) = body.frame().await {}
            })
            .await;
        });
        true
    }
}

/// Grows `buf` to hold `capacity` bytes, first taking their share of the server's body budget (waiting for
/// it until the body's deadline).
async fn grow(
    budget: &Arc<Semaphore>,
    deadline: tokio::time::Instant,
    buf: &mut Vec<u8>,
    held: &mut Option<OwnedSemaphorePermit>,
    capacity: usize,
) -> Result<(), BodyError> {
    let have = held.as_ref().map_or(0, |p| p.num_permits());
    let want = budget_units(capacity) as usize;
    if want > have {
        let more = u32::try_from(want - have).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout_at(deadline, budget.clone().acquire_many_owned(more))
            .await
            .map_err(|_| BodyError::Busy)?
            .map_err(|_| BodyError::Busy)?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
    }
    if capacity > buf.capacity() {
        buf.reserve_exact(capacity - buf.len());
    }
    Ok(())
}

fn is_form(headers: &HeaderMap) -> bool {
    header_str(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

/// Everything but the body is checked first: the action, the version, the signature's form, the timestamp and
/// the SecretId come from the headers; only then is the body read (hashed as it arrives) and the signature
/// verified.
async fn handle(
    st: &AppState,
    headers: &HeaderMap,
    action: &str,
    body: &mut RequestBody,
) -> Result<serde_json::Value, ApiError> {
    if action.is_empty() {
        if is_form(headers)
            && body
                .announced()
                .is_none_or(|n| n <= LEGACY_PEEK_BYTES as u64)
            && let Ok(form) = body.collect(LEGACY_PEEK_BYTES, false).await
            && form.bytes.windows(10).any(|w| w == b"Signature=")
        {
            return Err(ApiError::new(
                "AuthFailure.InvalidAuthorization",
                "The legacy HmacSHA1/HmacSHA256 signature is not supported by Stratus: sign with TC3-HMAC-SHA256 (the SDKs' default).",
            ));
        }
        return Err(ApiError::new(
            "MissingParameter",
            "The X-TC-Action header is required.",
        ));
    }
    match header_str(headers, "x-tc-version") {
        Some("2018-04-16") => {}
        Some(v) => {
            return Err(ApiError::new(
                "NoSuchVersion",
                format!("API version `{v}` does not exist for scf; use 2018-04-16."),
            ));
        }
        None => {
            return Err(ApiError::new(
                "MissingParameter",
                "The X-TC-Version header is required.",
            ));
        }
    }
    let signer = signer(st, headers).await?;
    let unsigned = header_str(headers, "x-tc-content-sha256") == Some(tc3::UNSIGNED_PAYLOAD);
    let body = body
        .collect(st.cfg.max_body_bytes, !unsigned)
        .await
        .map_err(|e| e.into_api(&st.cfg))?;
    let payload_hash = match body.digest {
        Some(d) => hex::encode(d),
        None => hex::encode(Sha256::digest(tc3::UNSIGNED_PAYLOAD.as_bytes())),
    };
    let caller = signer.verify(headers, &payload_hash)?;
    let cx = crate::actions::Cx {
        ctl: st.control.clone(),
        caller,
        region: header_str(headers, "x-tc-region").unwrap_or("").to_string(),
        base_url: base_url(headers),
    };
    // The body's share of the budget is held until the action is done with it.
    crate::actions::dispatch(&cx, action, &body.bytes).await
}

/// A request whose signature's form, timestamp and key passed; the signature itself waits for the body.
struct Signer {
    auth: tc3::Authorization,
    secret_key: String,
    caller: Caller,
    timestamp: i64,
}

/// `ts` is within `max_skew` seconds of `now` (either way; no overflow at the extremes of `i64`).
fn within_skew(now: i64, ts: i64, max_skew: u64) -> bool {
    now.abs_diff(ts) <= max_skew
}

async fn signer(st: &AppState, headers: &HeaderMap) -> Result<Signer, ApiError> {
    let auth = header_str(headers, "authorization").ok_or_else(|| {
        ApiError::new(
            "AuthFailure.SignatureFailure",
            "The Authorization header is missing.",
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
    let now = unix_now();
    if !within_skew(now, ts, st.cfg.max_skew_secs) {
        return Err(ApiError::new(
            "AuthFailure.SignatureExpire",
            format!(
                "The request timestamp {ts} is more than {} seconds from the server's time {now}.",
                st.cfg.max_skew_secs
            ),
        ));
    }
    let (secret_key, caller) = st.control.api_key(&auth.secret_id).await?.ok_or_else(|| {
        ApiError::new(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found; check that it is correct and enabled.",
        )
    })?;
    Ok(Signer {
        auth,
        secret_key,
        caller,
        timestamp: ts,
    })
}

impl Signer {
    fn verify(self, headers: &HeaderMap, payload_hash: &str) -> Result<Caller, ApiError> {
        let lookup = |name: &str| header_str(headers, name).map(str::to_string);
        tc3::verify(
            &self.auth,
            &self.secret_key,
            "POST",
            "",
            &lookup,
            payload_hash,
            self.timestamp,
        )
        .map_err(|e| {
            ApiError::new(
                "AuthFailure.SignatureFailure",
                format!("The request signature does not match: {e}."),
            )
        })?;
        Ok(self.caller)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::body::Bytes;
    use hyper::body::{Frame, SizeHint};

    use super::*;

    /// A body that yields its chunks and then, unless `ends`, never finishes; it may announce a length.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        announced: Option<u64>,
        ends: bool,
    }

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.chunks.pop_front() {
                Some(c) => Poll::Ready(Some(Ok(Frame::data(c)))),
                None if self.ends => Poll::Ready(None),
                None => Poll::Pending,
            }
        }

        fn size_hint(&self) -> SizeHint {
            self.announced.map(SizeHint::with_exact).unwrap_or_default()
        }
    }

    fn body(chunks: &[&[u8]], announced: Option<u64>, ends: bool) -> RequestBody {
        body_within(chunks, announced, ends, Arc::new(Semaphore::new(1 << 20)))
    }

    fn body_within(
        chunks: &[&[u8]],
        announced: Option<u64>,
        ends: bool,
        budget: Arc<Semaphore>,
    ) -> RequestBody {
        RequestBody {
            body: Body::new(Chunks {
                chunks: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
                announced,
                ends,
            }),
            done: false,
            deadline: tokio::time::Instant::now() + Duration::from_millis(200),
            budget,
        }
    }

    #[tokio::test]
    async fn a_body_is_hashed_as_it_arrives_and_kept_within_its_announced_length() {
        let parts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 50_000]).collect();
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let whole = parts.concat();
        let mut b = body(&slices, Some(whole.len() as u64), true);
        let Collected { bytes, digest, .. } = b.collect(1 << 20, true).await.expect("read");
        assert_eq!(bytes, whole);
        assert_eq!(
            bytes.capacity(),
            whole.len(),
            "grown past the announced length"
        );
        assert_eq!(digest, Some(Sha256::digest(&whole).into()));
        assert!(b.done);

        let mut b = body(&slices, None, true);
        let Collected { bytes, digest, .. } = b.collect(1 << 20, false).await.expect("read");
        assert_eq!(bytes, whole);
        assert_eq!(digest, None, "no hash asked for");
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_at_once_or_as_soon_as_it_passes_the_limit() {
        // Announced over the limit: refused without waiting for a byte (the body would never end).
        let mut b = body(&[], Some(1_001), false);
        assert_eq!(
            b.collect(1_000, true).await.err(),
            Some(BodyError::TooLarge)
        );
        assert!(!b.done);
        // Not announced: refused when the bytes pass the limit, before the body ends.
        let mut b = body(&[&[b'a'; 600], &[b'b'; 600]], None, false);
        assert_eq!(
            b.collect(1_000, true).await.err(),
            Some(BodyError::TooLarge)
        );
        // Exactly the limit is accepted.
        let mut b = body(&[&[b'a'; 600], &[b'b'; 400]], None, true);
        assert_eq!(
            b.collect(1_000, true).await.expect("fits").bytes.len(),
            1_000
        );
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_times_out() {
        let mut b = body(&[b"{\"Limit\":"], Some(100), false);
        let t = Instant::now();
        assert_eq!(
            b.collect(1_000, true).await.err(),
            Some(BodyError::TimedOut)
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn bodies_share_one_memory_budget() {
        // 100 KiB for every body at once: one of 80 KB is held while the action runs…
        let budget = Arc::new(Semaphore::new(100));
        let big = vec![b'a'; 80_000];
        let mut first = body_within(&[&big], Some(80_000), true, budget.clone());
        let held = first.collect(1 << 20, true).await.expect("fits");
        assert_eq!(budget.available_permits(), 100 - 79);
        // …so a second one of 50 KB waits, and is refused as busy at its deadline.
        let half = vec![b'b'; 50_000];
        let mut second = body_within(&[&half], Some(50_000), true, budget.clone());
        assert_eq!(
            second.collect(1 << 20, true).await.err(),
            Some(BodyError::Busy)
        );
        // Once the first is done with, the budget is whole again and the next one is read.
        drop(held);
        assert_eq!(budget.available_permits(), 100);
        let mut third = body_within(&[&half], Some(50_000), true, budget.clone());
        assert_eq!(
            third.collect(1 << 20, true).await.expect("fits").bytes,
            half
        );
        assert_eq!(
            budget.available_permits(),
            100,
            "a dropped body gives its share back"
        );
        // A body of unannounced length takes its share as it grows.
        let mut fourth = body_within(&[&half, &half], None, true, budget.clone());
        let got = fourth.collect(1 << 20, true).await.expect("fits");
        assert_eq!(got.bytes.len(), 100_000);
        assert!(
            budget.available_permits() <= 3,
            "{}",
            budget.available_permits()
        );
    }

    #[test]
    fn skew_is_checked_without_overflow() {
        let now = 1_764_000_000;
        assert!(within_skew(now, now, 300));
        assert!(within_skew(now, now - 300, 300));
        assert!(within_skew(now, now + 300, 300));
        assert!(!within_skew(now, now + 301, 300));
        assert!(!within_skew(now, now - 301, 300));
        // `(now - ts).abs()` overflows on these (a panic in debug builds; in release `abs(i64::MIN)` stays
        // negative, so that one timestamp passed the check).
        assert!(!within_skew(now, i64::MIN, 300));
        assert!(!within_skew(now, i64::MAX, 300));
        assert!(!within_skew(-now, i64::MAX, 300));
        assert!(!within_skew(i64::MAX, i64::MIN, u64::MAX - 1));
    }
}
