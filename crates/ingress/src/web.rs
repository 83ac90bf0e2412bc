//! A web function behind its URL: the request is forwarded as HTTP/1.1 (method, path below the URL, query,
//! headers with `Host` kept, body) with SCF's `X-Scf-*` and `X-Forwarded-*` headers set by the platform (any sent
//! by the client are replaced), and the server's response streams back as it is written.

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, Uri};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn hop_by_hop(name: &HeaderName, listed: &[String]) -> bool {
    let n = name.as_str();
    HOP_BY_HOP.contains(&n) || n == "upgrade" || listed.iter().any(|l| l == n)
}

/// Header names listed in `Connection` (also hop-by-hop).
fn connection_listed(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the platform tells the function about a request.
pub struct Forward<'a> {
    pub request_id: &'a str,
    pub source_ip: &'a str,
    pub memory_mb: i64,
    pub timeout_s: i64,
    pub version: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub region: &'a str,
    pub app_id: i64,
    pub uin: &'a str,
}

/// The request the instance gets.
pub fn request(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Vec<u8>,
    f: &Forward<'_>,
) -> Result<Request<Body>, String> {
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let uri: Uri = target
        .parse()
        .map_err(|e| format!("the request target cannot be forwarded: {e}"))?;
    let mut req = Request::new(Body::from(body));
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    let listed = connection_listed(headers);
    let out = req.headers_mut();
    let mut forwarded_for = Vec::new();
    for (n, v) in headers {
        if hop_by_hop(n, &listed)
            || n == header::CONTENT_LENGTH
            || n.as_str().starts_with("x-scf-")
            || n.as_str() == "x-forwarded-proto"
        {
            continue;
        }
        if n.as_str() == "x-forwarded-for" {
            if let Ok(s) = v.to_str() {
                forwarded_for.push(s.to_string());
            }
            continue;
        }
        out.append(n.clone(), v.clone());
    }
    forwarded_for.push(f.source_ip.to_string());
    let set = |out: &mut HeaderMap, n: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            out.insert(HeaderName::from_static(n), v);
        }
    };
    set(out, "x-forwarded-for", forwarded_for.join(", "));
    set(out, "x-forwarded-proto", "http".into());
    set(out, "x-scf-request-id", f.request_id.into());
    set(out, "x-scf-memory", f.memory_mb.to_string());
    set(out, "x-scf-timeout", (f.timeout_s * 1000).to_string());
    set(out, "x-scf-version", f.version.into());
    set(out, "x-scf-name", f.name.into());
    set(out, "x-scf-namespace", f.namespace.into());
    set(out, "x-scf-region", f.region.into());
    set(out, "x-scf-appid", f.app_id.to_string());
    set(out, "x-scf-uin", f.uin.into());
    Ok(req)
}

/// The server's response with its hop-by-hop headers removed (the listener frames the body itself).
pub fn response(mut resp: Response<Body>) -> Response<Body> {
    let listed = connection_listed(resp.headers());
    let drop: Vec<HeaderName> = resp
        .headers()
        .keys()
        .filter(|n| hop_by_hop(n, &listed))
        .cloned()
        .collect();
    for n in drop {
        resp.headers_mut().remove(n);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd() -> Forward<'static> {
        Forward {
            request_id: "rid",
            source_ip: "127.0.0.1",
            memory_mb: 128,
            timeout_s: 3,
            version: "$LATEST",
            name: "fn",
            namespace: "default",
            region: "ap-guangzhou",
            app_id: 1253,
            uin: "100",
        }
    }

    #[test]
    fn the_platform_sets_its_headers_and_keeps_the_clients_others() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("fn.example.com"));
        h.insert("x-scf-request-id", HeaderValue::from_static("forged"));
        h.insert("x-scf-uin", HeaderValue::from_static("forged"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        let r = request(
            &Method::PATCH,
            "/a/b",
            Some("x=1&x=2"),
            &h,
            b"hi".to_vec(),
            &fwd(),
        )
        .expect("request");
        assert_eq!(r.method(), Method::PATCH);
        assert_eq!(r.uri(), "/a/b?x=1&x=2");
        let g = |n: &str| {
            r.headers()
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap_or(""))
                .collect::<Vec<_>>()
        };
        assert_eq!(g("host"), ["fn.example.com"]);
        assert_eq!(g("x-scf-request-id"), ["rid"]);
        assert_eq!(g("x-scf-uin"), ["100"]);
        assert_eq!(g("x-scf-timeout"), ["3000"]);
        assert_eq!(g("x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
        assert_eq!(g("x-forwarded-proto"), ["http"]);
        assert_eq!(g("x-multi"), ["a", "b"]);
        assert!(g("connection").is_empty() && g("x-hop").is_empty());
    }

    #[test]
    fn hop_by_hop_headers_of_the_response_are_dropped() {
        let mut resp = Response::new(Body::empty());
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        let resp = response(resp);
        assert!(resp.headers().get(header::CONNECTION).is_none());
        assert!(resp.headers().get(header::TRANSFER_ENCODING).is_none());
        assert!(resp.headers().get(header::CONTENT_TYPE).is_some());
    }
}
