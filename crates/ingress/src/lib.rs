//! The function listener: HTTP requests to function URLs (`http` triggers) become invocations of the function
//! behind them. It routes a request by its path (`/<AppId>-<id>/…`) or its host (`<AppId>-<id>.<domain>`) to the
//! trigger, answers CORS preflights from the URL's `CorsConfig`, checks a TC3 signature when the URL says
//! `AuthType=CAM`, builds SCF's API-gateway event, and maps the function's integration response (or its error) to
//! the reply. It resolves and invokes through `control` only, and serves on api's hardened HTTP/1.1 loop.
//!
//! Every reply carries `X-Scf-Request-Id`, the invocation's request id (also the event's `requestId`). Errors are
//! SCF's error JSON with a status: function error 502, timeout 504, throttled 429, request body over 6 MB 413,
//! unknown URL 404. A web function (`Type=HTTP`) gets the request itself ([`web`]): its server's response streams
//! back as it is written; its failures (405, 446, 433, 434, 439) are SCF's error JSON with 502 (504 for 433).

pub mod auth;
pub mod cors;
pub mod domains;
pub mod event;
pub mod metrics;
pub mod response;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use control::{Control, ControlError};
use http_body_util::BodyExt;

pub use metrics::Metrics;
use response::Reply;

/// The largest request body (SCF's 6 MB for a synchronous invocation).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// The listener's request settings (its connection limits and timeouts are api's `ApiConfig`).
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub max_body_bytes: usize,
    /// Time for a request body to arrive, from the end of its head.
    pub body_timeout: Duration,
    /// Allowed clock skew of a CAM signature's `X-TC-Timestamp`.
    pub max_skew_secs: u64,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            max_body_bytes: MAX_BODY_BYTES,
            body_timeout: Duration::from_secs(60),
            max_skew_secs: 300,
        }
    }
}

struct St {
    control: Control,
    cfg: IngressConfig,
    metrics: Arc<Metrics>,
}

/// The function listener's router: every path is a function URL.
pub fn router(control: Control, cfg: IngressConfig, metrics: Arc<Metrics>) -> Router {
    Router::new().fallback(handle).with_state(Arc::new(St {
        control,
        cfg,
        metrics,
    }))
}

/// `GET /metrics/http`: the listener's metrics, for the operators' (API) listener.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics/http",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                let mut r = Response::new(Body::from(m.render()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
        }),
    )
}

/// Where a request goes: the URL's label, its account and trigger id, and the path the function sees.
#[derive(Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub label: &'a str,
    pub app_id: i64,
    pub id: &'a str,
    pub path: String,
}

/// Routes by host (`<AppId>-<id>.<domain>`) first, then by the path's first segment (`/<AppId>-<id>/…`).
pub fn route<'a>(host: Option<&'a str>, path: &'a str) -> Option<Route<'a>> {
    if let Some(h) = host
        && let Some((label, _)) = h.split_once('.')
        && let Some((app_id, id)) = control::triggers::parse_url_label(label)
    {
        return Some(Route {
            label,
            app_id,
            id,
            path: path.to_string(),
        });
    }
    let rest = path.strip_prefix('/')?;
    let (label, below) = match rest.split_once('/') {
        Some((l, b)) => (l, b),
        None => (rest, ""),
    };
    let (app_id, id) = control::triggers::parse_url_label(label)?;
    Some(Route {
        label,
        app_id,
        id,
        path: format!("/{below}"),
    })
}

async fn handle(State(st): State<Arc<St>>, req: Request<Body>) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut function = String::from("-");
    let mut resp = match serve(&st, req, &request_id, &mut function).await {
        Served::Reply(reply) => {
            let mut resp = Response::new(Body::from(reply.body));
            *resp.status_mut() = reply.status;
            let h = resp.headers_mut();
            for (n, v) in reply.headers {
                h.append(n, v);
            }
            resp
        }
        Served::Stream(resp) => resp,
    };
    let status = resp.status();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-scf-request-id", v);
    }
    let elapsed = started.elapsed();
    st.metrics.observe(&function, status.as_u16(), elapsed);
    tracing::debug!(
        target: "stratus::http",
        %method,
        %path,
        status = status.as_u16(),
        %function,
        %request_id,
        micros = elapsed.as_micros() as u64,
        "function URL request"
    );
    resp
}

fn not_found() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        404,
        "no function URL here: a function URL is /<AppId>-<id> on this listener, as ListTriggers shows it",
    )
}

/// The reply for a refusal of the control plane.
fn control_error(e: &ControlError) -> Reply {
    use ControlError as E;
    let (status, scf) = match e {
        E::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, 432),
        E::FunctionNotFound { .. }
        | E::NamespaceNotFound(_)
        | E::VersionNotFound { .. }
        | E::QualifierNotFound { .. }
        | E::AliasNotFound { .. } => (StatusCode::NOT_FOUND, 404),
        E::Unsupported(_) => (StatusCode::NOT_IMPLEMENTED, 501),
        E::Rejected(_) | E::Execution(_) => (StatusCode::SERVICE_UNAVAILABLE, 503),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 500),
    };
    Reply::error(status, scf, &e.to_string())
}

fn too_large(max: usize) -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        406,
        &format!("the request body is larger than {max} bytes, the most a function URL takes"),
    )
}

/// Reads the rest of a refused body in the background until `deadline`, so that the client gets the reply rather
/// than a reset.
fn drain(mut body: Body, deadline: Duration) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(deadline, async {
            while let Some(f) = body.frame().await {
                if f.is_err() {
                    break;
                }
            }
        })
        .await;
    });
}

/// The request body, at most `max` bytes, within the body timeout.
async fn read_body(
    mut body: Body,
    announced: Option<u64>,
    cfg: &IngressConfig,
) -> Result<Vec<u8>, Reply> {
    let max = cfg.max_body_bytes;
    if announced.is_some_and(|n| n > max as u64) {
        drain(body, cfg.body_timeout);
        return Err(too_large(max));
    }
    let mut buf = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    let deadline = tokio::time::Instant::now() + cfg.body_timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(Reply::error(
                    StatusCode::REQUEST_TIMEOUT,
                    408,
                    "the request body did not arrive in time",
                ));
            }
            Ok(None) => return Ok(buf),
            Ok(Some(Err(e))) => {
                return Err(Reply::error(
                    StatusCode::BAD_REQUEST,
                    400,
                    &format!("the request body could not be read: {e}"),
                ));
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                drain(body, cfg.body_timeout);
                return Err(too_large(max));
            }
            buf.extend_from_slice(&data);
        }
    }
}

/// A reply made here, or a web function's response streaming from its instance.
enum Served {
    Reply(Reply),
    Stream(Response),
}

impl From<Reply> for Served {
    fn from(r: Reply) -> Served {
        Served::Reply(r)
    }
}

async fn serve(st: &St, req: Request<Body>, request_id: &str, function: &mut String) -> Served {
    match serve_inner(st, req, request_id, function).await {
        Ok(s) => s,
        Err(r) => Served::Reply(r),
    }
}

async fn serve_inner(
    st: &St,
    req: Request<Body>,
    request_id: &str,
    function: &mut String,
) -> Result<Served, Reply> {
    let (parts, body) = req.into_parts();
    let header = |n: header::HeaderName| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let tls = parts.extensions.get::<domains::OverTls>().is_some();
    match domains::lookup(st, header(header::HOST), parts.uri.path(), tls).await {
        Some(domains::Found::Route(t)) => {
            return Ok(domains::serve(st, &t, parts, body, request_id, function)
                .await
                .into());
        }
        Some(domains::Found::Refuse(reply)) => return Err(reply),
        None => {}
    }
    let Some(r) = route(header(header::HOST), parts.uri.path()) else {
        return Err(not_found());
    };
    let url = match st.control.function_url(r.app_id, r.id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(control_error(&e)),
    };
    *function = format!("{}/{}", url.trigger.key.namespace, url.trigger.key.name);
    if !url.trigger.enabled {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            403,
            "this function URL is closed (its trigger's Enable is CLOSE)",
        ));
    }
    let origin = header(header::ORIGIN);
    let cors = url.desc.cors.as_ref().filter(|c| c.enable);
    let method = parts.method.as_str();
    if let Some(c) = cors
        && let Some(o) = origin
        && let Some(m) = header(header::ACCESS_CONTROL_REQUEST_METHOD)
        && cors::is_preflight(method, Some(o), Some(m))
    {
        return Ok(
            match cors::preflight(c, o, m, header(header::ACCESS_CONTROL_REQUEST_HEADERS)) {
                Ok(headers) => Reply {
                    status: StatusCode::NO_CONTENT,
                    headers,
                    body: Vec::new(),
                },
                Err(why) => Reply::error(StatusCode::FORBIDDEN, 403, &why),
            }
            .into(),
        );
    }
    let announced = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let target = st
        .control
        .resolve_function_url(&url)
        .await
        .map_err(|e| control_error(&e))?;
    let body = read_body(body, announced, &st.cfg).await?;
    let secret_id = if url.desc.cam {
        match auth::verify(&st.control, &url.owner, &parts, &body, st.cfg.max_skew_secs).await {
            Ok(id) => Some(id),
            Err(reply) => return Err(reply),
        }
    } else {
        None
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let cors_headers = match (cors, origin) {
        (Some(c), Some(o)) => cors::actual(c, o),
        _ => Vec::new(),
    };
    if target.is_web() {
        let fwd = web::Forward {
            request_id,
            source_ip: &source_ip,
            memory_mb: target.memory_mb(),
            timeout_s: target.timeout_s(),
            version: target.version(),
            name: &url.trigger.key.name,
            namespace: &url.trigger.key.namespace,
            region: &url.region,
            app_id: url.owner.app_id,
            uin: &url.owner.uin,
        };
        let forwarded = web::request(
            &parts.method,
            &r.path,
            parts.uri.query(),
            &parts.headers,
            body,
            &fwd,
        )
        .map_err(|why| Reply::error(StatusCode::BAD_REQUEST, 400, &why))?;
        let reply = st
            .control
            .serve_web(
                &url,
                &target,
                control::WebRequest {
                    request_id: request_id.to_string(),
                    max_concurrency: target.max_concurrency(),
                    request: forwarded,
                },
            )
            .await
            .map_err(|e| control_error(&e))?;
        return match reply.result {
            Ok(resp) => {
                let mut resp = web::response(resp);
                for (n, v) in cors_headers {
                    resp.headers_mut().append(n, v);
                }
                Ok(Served::Stream(resp))
            }
            Err(e) => {
                let mut reply = response::from_error(&e);
                reply.headers.extend(cors_headers);
                Ok(reply.into())
            }
        };
    }
    let event = event::build(&event::Request {
        method,
        path: &r.path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        request_id,
        source_ip: &source_ip,
        service_id: r.label,
        secret_id: secret_id.as_deref(),
    });
    drop(body);
    let mut reply = match st
        .control
        .run_function_url(&url, &target, event, request_id.to_string())
        .await
    {
        Ok(outcome) => match &outcome.result {
            Ok(ret) => response::from_result(ret),
            Err(e) => response::from_error(e),
        },
        Err(e) => control_error(&e),
    };
    reply.headers.extend(cors_headers);
    Ok(reply.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn routes_by_path_and_by_host() {
        let p = format!("/1253-{ID}/a/b");
        let r = route(Some("127.0.0.1:9080"), &p).expect("path");
        assert_eq!((r.app_id, r.id, r.path.as_str()), (1253, ID, "/a/b"));
        assert_eq!(r.label, format!("1253-{ID}"));
        let p = format!("/1253-{ID}");
        assert_eq!(route(None, &p).expect("bare").path, "/");
        let p = format!("/1253-{ID}/");
        assert_eq!(route(None, &p).expect("slash").path, "/");
        let host = format!("1253-{ID}.fn.example.com");
        let r = route(Some(&host), "/x").expect("host");
        assert_eq!((r.app_id, r.path.as_str()), (1253, "/x"));
        for bad in [
            "/",
            "/metrics",
            "/1253-xyz/a",
            &format!("/x-{ID}"),
            &format!("/-{ID}"),
        ] {
            assert_eq!(route(Some("127.0.0.1"), bad), None, "{bad}");
        }
    }
}
