//! What a function's result becomes: an integration response (`{"statusCode","headers","body",
//! "isBase64Encoded"}`) is the reply; any other result is a 200 `application/json` body; and the errors get an
//! HTTP status and SCF's error JSON.
//!
//! An integration response is a JSON object with a `statusCode` (an integer 100–599). `headers` maps a name to a
//! string (a number or a boolean is written as text) or to a list of them (one header line each: `Set-Cookie`
//! several times); `body` is a string, base64 when `isBase64Encoded` is true. Anything else in such an object — a
//! status out of range, a body that is not a string, bad base64, a header name or value HTTP cannot carry — is
//! malformed and answers SCF's `{"errno":403,"error":"Invalid scf response format. …"}` with HTTP 502 (the
//! function's fault, not the caller's). Hop-by-hop and framing headers a function sets (`Connection`,
//! `Transfer-Encoding`, `Content-Length`, `Keep-Alive`, `Upgrade`) are the listener's to set and are dropped.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use base64::Engine as _;
use serde_json::Value;

/// SCF's answer to a malformed integration response.
pub const MALFORMED: &str = r#"{"errno":403,"error":"Invalid scf response format. please check your scf response format."}"#;

/// A reply, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: StatusCode, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: body.into(),
        }
    }

    /// A platform error: an HTTP status and SCF's error JSON with SCF's status code.
    pub fn error(status: StatusCode, scf_status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({
                "errorCode": -1,
                "errorMessage": message,
                "statusCode": scf_status,
            })
            .to_string(),
        )
    }
}

const DROPPED: [&str; 5] = [
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "upgrade",
];

fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integration response, or `None` when `m` is malformed.
fn integration(m: &serde_json::Map<String, Value>) -> Option<Reply> {
    let code = m.get("statusCode")?.as_u64()?;
    let status = StatusCode::from_u16(u16::try_from(code).ok()?)
        .ok()
        .filter(|_| (100..=599).contains(&code))?;
    let base64 = match m.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return None,
    };
    let body = match m.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if base64 => {
            base64::engine::general_purpose::STANDARD.decode(s).ok()?
        }
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(_) => return None,
    };
    let mut headers = Vec::new();
    match m.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, v) in h {
                let n = HeaderName::from_bytes(name.as_bytes()).ok()?;
                let values: Vec<String> = match v {
                    Value::Array(items) => items.iter().map(header_text).collect::<Option<_>>()?,
                    one => vec![header_text(one)?],
                };
                if DROPPED.contains(&n.as_str()) {
                    continue;
                }
                for value in values {
                    headers.push((n.clone(), HeaderValue::from_str(&value).ok()?));
                }
            }
        }
        Some(_) => return None,
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// The reply for a function's successful result (its `RetMsg`).
pub fn from_result(ret: &str) -> Reply {
    match serde_json::from_str::<Value>(ret) {
        Ok(Value::Object(m)) if m.contains_key("statusCode") => {
            integration(&m).unwrap_or_else(|| Reply::json(StatusCode::BAD_GATEWAY, MALFORMED))
        }
        Ok(_) => Reply::json(StatusCode::OK, ret),
        // A custom runtime may answer with text that is not JSON: it is the body as it is.
        Err(_) => Reply {
            status: StatusCode::OK,
            headers: vec![(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: ret.as_bytes().to_vec(),
        },
    }
}

/// The HTTP status for a function's error of SCF status `scf`: a timeout is 504, a throttle 429, anything else the
/// function did (an exception, memory, an exit, a result too large) 502.
pub fn error_status(scf: u16) -> StatusCode {
    match scf {
        433 => StatusCode::GATEWAY_TIMEOUT,
        432 => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The reply for a function's error: its status and SCF's error JSON (`errorCode`, `errorMessage`, `statusCode`,
/// and `errorType`/`stackTrace` when the runtime gave them).
pub fn from_error(e: &control::FunctionError) -> Reply {
    Reply::json(error_status(e.status_code), e.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Reply, name: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap_or(""))
            .collect()
    }

    #[test]
    fn an_integration_response_is_the_reply() {
        let r = from_result(
            r#"{"isBase64Encoded":false,"statusCode":201,"headers":{"Content-Type":"text/html","X-N":5,"Set-Cookie":["a=1","b=2"],"Content-Length":"9","Connection":"close"},"body":"<b>hi</b>"}"#,
        );
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(header(&r, "content-type"), ["text/html"]);
        assert_eq!(header(&r, "x-n"), ["5"]);
        assert_eq!(header(&r, "set-cookie"), ["a=1", "b=2"]);
        assert!(header(&r, "content-length").is_empty());
        assert!(header(&r, "connection").is_empty());
        assert_eq!(r.body, b"<b>hi</b>");
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let r = from_result(r#"{"statusCode":200,"isBase64Encoded":true,"body":"AP+A"}"#);
        assert_eq!(r.body, [0, 255, 128]);
        // No body, no headers: an empty reply with that status.
        let r = from_result(r#"{"statusCode":204}"#);
        assert_eq!(
            (r.status, r.body.len(), r.headers.len()),
            (StatusCode::NO_CONTENT, 0, 0)
        );
    }

    #[test]
    fn other_results_are_json_bodies() {
        for ret in [r#"{"a":1}"#, "[1,2]", r#""text""#, "42", "null"] {
            let r = from_result(ret);
            assert_eq!(r.status, StatusCode::OK, "{ret}");
            assert_eq!(header(&r, "content-type"), ["application/json"]);
            assert_eq!(r.body, ret.as_bytes());
        }
        let r = from_result("plain words");
        assert_eq!(header(&r, "content-type"), ["text/plain; charset=utf-8"]);
        assert_eq!(r.body, b"plain words");
    }

    #[test]
    fn malformed_integration_responses_answer_scf_s_error() {
        for ret in [
            r#"{"statusCode":"200"}"#,
            r#"{"statusCode":99}"#,
            r#"{"statusCode":600}"#,
            r#"{"statusCode":-1}"#,
            r#"{"statusCode":200,"body":{"a":1}}"#,
            r#"{"statusCode":200,"isBase64Encoded":true,"body":"***"}"#,
            r#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
            r#"{"statusCode":200,"headers":["a"]}"#,
            r#"{"statusCode":200,"headers":{"bad name":"x"}}"#,
            r#"{"statusCode":200,"headers":{"x":"a\nb"}}"#,
            r#"{"statusCode":200,"headers":{"x":{"y":1}}}"#,
        ] {
            let r = from_result(ret);
            assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{ret}");
            assert_eq!(r.body, MALFORMED.as_bytes(), "{ret}");
        }
    }

    #[test]
    fn function_errors_map_to_statuses() {
        assert_eq!(error_status(433), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(error_status(432), StatusCode::TOO_MANY_REQUESTS);
        for s in [430, 434, 437, 439] {
            assert_eq!(error_status(s), StatusCode::BAD_GATEWAY);
        }
        let e = control::FunctionError::new(433, "timed out");
        let r = from_error(&e);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["statusCode"], 433);
        assert_eq!(v["errorMessage"], "timed out");
        let r = Reply::error(StatusCode::NOT_FOUND, 404, "no such URL");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            (v["errorCode"].as_i64(), v["statusCode"].as_i64()),
            (Some(-1), Some(404))
        );
    }
}
