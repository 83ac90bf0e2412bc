//! The request as SCF's API-gateway event: every key of the integration request present, empty where there is
//! nothing to say.
//!
//! - `headers`: the request's headers by lower-case name (HTTP/1.1 names are case-insensitive; SCF's function-URL
//!   capture shows them lower-cased); a header sent several times is one entry, its values joined with `,`.
//! - `queryString`: the decoded query parameters; a key given several times has the list of its values.
//! - `body`: the body as text when it is UTF-8, else its base64 with `isBase64Encoded: true`.
//! - `path`: the request path below the URL's own prefix; `requestContext.path` is the URL's template, `/`.
//! - `pathParameters`, `queryStringParameters`, `headerParameters`: the parameters declared on an API, which a
//!   function URL has none of; `stageVariables` likewise.

use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// What the event is made of.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path the function sees (below the URL prefix), starting with `/`.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub request_id: &'a str,
    pub source_ip: &'a str,
    /// The URL's label (`<AppId>-<id>`), shown as the `serviceId`.
    pub service_id: &'a str,
    /// The SecretId that signed the request (`AuthType=CAM`).
    pub secret_id: Option<&'a str>,
}

/// The headers by lower-case name, repeated values joined with `,`.
pub fn headers(h: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in h.keys() {
        let values: Vec<String> = h
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_string(), Value::String(values.join(",")));
    }
    out
}

/// The query's parameters, decoded; a repeated key has the list of its values, in order.
pub fn query_string(q: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        let v = Value::String(v.into_owned());
        match out.get_mut(k.as_ref()) {
            None => {
                out.insert(k.into_owned(), v);
            }
            Some(Value::Array(a)) => a.push(v),
            Some(first) => {
                let f = first.take();
                *first = Value::Array(vec![f, v]);
            }
        }
    }
    out
}

/// The event as JSON bytes.
pub fn build(r: &Request<'_>) -> Vec<u8> {
    let (body, base64) = match std::str::from_utf8(r.body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(r.body),
            true,
        ),
    };
    let identity = match r.secret_id {
        Some(id) => json!({ "secretId": id }),
        None => json!({}),
    };
    let event = json!({
        "requestContext": {
            "serviceId": r.service_id,
            "path": "/",
            "httpMethod": r.method,
            "requestId": r.request_id,
            "identity": identity,
            "sourceIp": r.source_ip,
            "stage": "release",
        },
        "headers": headers(r.headers),
        "body": body,
        "isBase64Encoded": base64,
        "pathParameters": {},
        "queryString": query_string(r.query),
        "queryStringParameters": {},
        "headerParameters": {},
        "stageVariables": {},
        "path": r.path,
        "httpMethod": r.method,
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn req<'a>(h: &'a HeaderMap, body: &'a [u8], query: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            path: "/a/b",
            query,
            headers: h,
            body,
            request_id: "rid",
            source_ip: "127.0.0.1",
            service_id: "1-abc",
            secret_id: None,
        }
    }

    fn parse(v: Vec<u8>) -> Value {
        serde_json::from_slice(&v).expect("json")
    }

    #[test]
    fn every_key_is_there() {
        let h = HeaderMap::new();
        let e = parse(build(&req(&h, b"", "")));
        for k in [
            "requestContext",
            "headers",
            "body",
            "isBase64Encoded",
            "pathParameters",
            "queryString",
            "queryStringParameters",
            "headerParameters",
            "stageVariables",
            "path",
            "httpMethod",
        ] {
            assert!(e.get(k).is_some(), "{k}");
        }
        for k in [
            "serviceId",
            "path",
            "httpMethod",
            "requestId",
            "identity",
            "sourceIp",
            "stage",
        ] {
            assert!(e["requestContext"].get(k).is_some(), "{k}");
        }
        assert_eq!(e["body"], "");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["path"], "/a/b");
        assert_eq!(e["httpMethod"], "POST");
        assert_eq!(e["requestContext"]["requestId"], "rid");
        assert_eq!(e["requestContext"]["identity"], json!({}));
    }

    #[test]
    fn repeated_headers_join_and_query_keys_list() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.append("Content-Type", HeaderValue::from_static("text/plain"));
        let e = parse(build(&req(&h, b"hi", "a=1&b=x%20y&a=2&a=3&c")));
        assert_eq!(e["headers"]["x-a"], "1,2");
        assert_eq!(e["headers"]["content-type"], "text/plain");
        assert_eq!(e["queryString"]["a"], json!(["1", "2", "3"]));
        assert_eq!(e["queryString"]["b"], "x y");
        assert_eq!(e["queryString"]["c"], "");
        assert_eq!(e["body"], "hi");
    }

    #[test]
    fn binary_bodies_are_base64() {
        let h = HeaderMap::new();
        let body = [0u8, 159, 146, 150, 255];
        let e = parse(build(&req(&h, &body, "")));
        assert_eq!(e["isBase64Encoded"], true);
        let back = base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().expect("str"))
            .expect("b64");
        assert_eq!(back, body);
        // UTF-8 text, even non-ASCII, stays text.
        let e = parse(build(&req(&h, "héllo".as_bytes(), "")));
        assert_eq!(e["body"], "héllo");
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn a_signed_request_shows_its_key() {
        let h = HeaderMap::new();
        let mut r = req(&h, b"", "");
        r.secret_id = Some("AKIDx");
        assert_eq!(
            parse(build(&r))["requestContext"]["identity"],
            json!({"secretId": "AKIDx"})
        );
    }
}
