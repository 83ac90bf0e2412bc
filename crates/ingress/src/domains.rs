//! Requests for custom domains: a request whose `Host` is a domain created with CreateCustomDomain goes to the
//! route with the most specific `PathMatch`, its path rewritten by the route's `PathRewrite` rules, and runs the
//! function as a function URL does (the same API-gateway event, with the domain as its `serviceId`, and the same
//! reply mapping). A domain whose `Protocol` is `HTTPS` is not served over plain HTTP, nor an `HTTP` one over TLS.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{StatusCode, header, request::Parts};
use control::domains::DomainTarget;

use crate::response::{self, Reply};
use crate::{St, control_error, event, read_body};

/// Marks a request that arrived over the TLS listener (an extension the listener inserts).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// What the listener does with a request for a custom domain.
pub(crate) enum Found {
    Route(Box<DomainTarget>),
    Refuse(Reply),
}

/// Whether `host` may name a custom domain at all: not an IP address, not `localhost`, not a function URL's host.
fn may_be_domain(host: &str) -> bool {
    let name = control::domains::host_name(host);
    name.contains('.')
        && name.parse::<std::net::IpAddr>().is_err()
        && !name.starts_with('[')
        && name
            .split_once('.')
            .is_none_or(|(l, _)| control::triggers::parse_url_label(l).is_none())
}

/// The route of the custom domain `host` names for `path`; `None` when `host` is no custom domain.
pub(crate) async fn lookup(st: &St, host: Option<&str>, path: &str, tls: bool) -> Option<Found> {
    let host = host.filter(|h| may_be_domain(h))?;
    match st.control.resolve_domain(host, path).await {
        Ok(None) => None,
        Err(e) => Some(Found::Refuse(control_error(&e))),
        Ok(Some(Err(_))) => Some(Found::Refuse(Reply::error(
            StatusCode::NOT_FOUND,
            404,
            &format!("no route of custom domain {host} matches {path}"),
        ))),
        Ok(Some(Ok(t))) => {
            if tls && !t.domain.serves_https() {
                return Some(Found::Refuse(Reply::error(
                    StatusCode::FORBIDDEN,
                    403,
                    &format!("custom domain {} is served over HTTP only", t.domain.domain),
                )));
            }
            if !tls && !t.domain.serves_http() {
                return Some(Found::Refuse(Reply::error(
                    StatusCode::FORBIDDEN,
                    403,
                    &format!(
                        "custom domain {} is served over HTTPS only",
                        t.domain.domain
                    ),
                )));
            }
            Some(Found::Route(Box::new(t)))
        }
    }
}

/// Runs the function of a custom domain's route for one request.
pub(crate) async fn serve(
    st: &St,
    t: &DomainTarget,
    parts: Parts,
    body: Body,
    request_id: &str,
    function: &mut String,
) -> Reply {
    *function = format!("{}/{}", t.endpoint.namespace, t.endpoint.function);
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match read_body(body, announced, &st.cfg).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let event = event::build(&event::Request {
        method: parts.method.as_str(),
        path: &t.path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        request_id,
        source_ip: &source_ip,
        service_id: &t.domain.domain,
        secret_id: None,
    });
    drop(body);
    match st
        .control
        .invoke_domain(t, event, request_id.to_string())
        .await
    {
        Ok(outcome) => match &outcome.result {
            Ok(ret) => response::from_result(ret),
            Err(e) => response::from_error(e),
        },
        Err(e) => control_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_can_be_domains() {
        assert!(may_be_domain("api.example.com"));
        assert!(may_be_domain("API.example.com:9080"));
        for no in [
            "127.0.0.1",
            "127.0.0.1:9080",
            "localhost",
            "localhost:80",
            "[::1]:80",
            "1253-0123456789abcdef0123456789abcdef.fn.example.com",
        ] {
            assert!(!may_be_domain(no), "{no}");
        }
    }
}
