//! The HTTP surface: `POST /` for the API, `/healthz` and `/readyz` for operators.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use control::{Caller, Control};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::tc3;

/// Protocol settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted (the SDKs send a 50 MiB zip as ~67 MiB of JSON).
    pub max_body_bytes: usize,
    /// Allowed clock skew of `X-TC-Timestamp`, in seconds.
    pub max_skew_secs: i64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 80 * 1024 * 1024,
            max_skew_secs: 300,
        }
    }
}

struct AppState {
    control: Control,
    cfg: ApiConfig,
}

/// The API router.
pub fn router(control: Control, cfg: ApiConfig) -> Router {
    let limit = cfg.max_body_bytes;
    let state = Arc::new(AppState { control, cfg });
    Router::new()
        .route("/", post(api).get(api_get))
        .route("/code/{sha256}", get(code_download))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
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

async fn api(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    let action = header_str(&headers, "x-tc-action")
        .unwrap_or("")
        .to_string();
    let result = match body {
        Ok(body) => handle(&st, &headers, &action, &body).await,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
            "RequestSizeLimitExceeded",
            format!(
                "The request body is larger than the {} bytes Stratus accepts.",
                st.cfg.max_body_bytes
            ),
        )),
        Err(e) => Err(ApiError::new(
            "InvalidParameter",
            format!("The request body could not be read: {e}."),
        )),
    };
    match &result {
        Ok(_) => {
            tracing::debug!(%action, request_id = %id, us = started.elapsed().as_micros() as u64, "ok")
        }
        Err(e) => {
            tracing::info!(%action, request_id = %id, code = %e.code, message = %e.message, "refused")
        }
    }
    reply(&headers, &id, result)
}

async fn handle(
    st: &AppState,
    headers: &HeaderMap,
    action: &str,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    if action.is_empty()
        && header_str(headers, "content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        && body.windows(10).any(|w| w == b"Signature=")
    {
        return Err(ApiError::new(
            "AuthFailure.InvalidAuthorization",
            "The legacy HmacSHA1/HmacSHA256 signature is not supported by Stratus: sign with TC3-HMAC-SHA256 (the SDKs' default).",
        ));
    }
    if action.is_empty() {
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
    let caller = authenticate(st, headers, body).await?;
    let cx = crate::actions::Cx {
        ctl: st.control.clone(),
        caller,
        region: header_str(headers, "x-tc-region").unwrap_or("").to_string(),
        base_url: base_url(headers),
    };
    crate::actions::dispatch(&cx, action, body).await
}

async fn authenticate(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Caller, ApiError> {
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
    if (now - ts).abs() > st.cfg.max_skew_secs {
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
    let payload_hash = if header_str(headers, "x-tc-content-sha256") == Some(tc3::UNSIGNED_PAYLOAD)
    {
        hex::encode(Sha256::digest(tc3::UNSIGNED_PAYLOAD.as_bytes()))
    } else {
        hex::encode(Sha256::digest(body))
    };
    let lookup = |name: &str| header_str(headers, name).map(str::to_string);
    tc3::verify(&auth, &secret_key, "POST", "", &lookup, &payload_hash, ts).map_err(|e| {
        ApiError::new(
            "AuthFailure.SignatureFailure",
            format!("The request signature does not match: {e}."),
        )
    })?;
    Ok(caller)
}
