//! A client of the SCF API (`scf`, `2018-04-16`) as Stratus serves it: requests signed with TC3-HMAC-SHA256
//! (the signer of [`api::tc3`], the same code that verifies them), sent over `ureq` (blocking HTTP/1.1 with
//! keep-alive, no TLS: Stratus serves plain HTTP), and replies checked for the API 3.0 envelope.
//!
//! - [`Client::call`] sends one action and returns its `Response` object, or the SCF error it carries.
//! - [`actions`] has typed helpers for the actions the `stratus` command line uses.
//! - [`package`] zips a code folder, honouring a `.stratusignore` file.
//! - [`watch`] waits for a function's status to settle, reporting each change.

pub mod actions;
pub mod package;
pub mod watch;

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

/// The API version every request names.
pub const VERSION: &str = "2018-04-16";
/// The service of the credential scope.
pub const SERVICE: &str = "scf";
/// The region sent when a profile names none.
pub const DEFAULT_REGION: &str = "ap-guangzhou";
/// The largest reply read (GetFunctionLogs with many logs is the largest).
const MAX_REPLY_BYTES: u64 = 256 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request: its SCF error code and message.
    #[error("{code}: {message} (RequestId {request_id})")]
    Api {
        code: String,
        message: String,
        request_id: String,
    },
    #[error("endpoint `{0}` is not usable: {1}")]
    Endpoint(String, &'static str),
    #[error("request to {endpoint} failed: {source}")]
    Http {
        endpoint: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("the reply to {action} is not an API 3.0 envelope: {why}")]
    BadReply { action: String, why: String },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("packaging {path}: {why}")]
    Package { path: String, why: String },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

impl Error {
    /// The SCF error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where a server is and the key to sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://HOST:PORT` (a bare `HOST:PORT` is taken as http).
    pub endpoint: String,
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
}

/// Bytes of a request body sent so far, and its size.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// A signed client of one server. Keeps its connection alive between calls.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    host: String,
    target: Target,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("secret_id", &self.target.secret_id)
            .finish()
    }
}

/// Splits an endpoint into the URL posted to and the `Host` signed.
fn parse_endpoint(endpoint: &str) -> Result<(String, String), Error> {
    let e = endpoint.trim();
    let rest = if let Some(r) = e.strip_prefix("http://") {
        r
    } else if e.starts_with("https://") {
        return Err(Error::Endpoint(
            e.to_string(),
            "this client speaks plain HTTP only (put a TLS proxy's plain side, or the server itself, here)",
        ));
    } else if e.contains("://") {
        return Err(Error::Endpoint(e.to_string(), "the scheme must be http"));
    } else {
        e
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains('@') || host.contains(' ') {
        return Err(Error::Endpoint(
            e.to_string(),
            "expected http://HOST:PORT with no path",
        ));
    }
    Ok((format!("http://{host}/"), host.to_string()))
}

/// Counts the bytes a body reader hands out.
struct Counting<'a, 'p> {
    data: &'a [u8],
    sent: u64,
    progress: Option<Progress<'p>>,
}

impl Read for Counting<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // 64 KiB at a time, so that progress moves smoothly.
        let n = self.data.len().min(buf.len()).min(64 << 10);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.sent += n as u64;
        if let Some(p) = self.progress.as_mut() {
            p(self.sent, self.sent + self.data.len() as u64);
        }
        Ok(n)
    }
}

impl Client {
    pub fn new(target: Target) -> Result<Client, Error> {
        let (url, host) = parse_endpoint(&target.endpoint)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .user_agent(concat!("stratus-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            agent,
            url,
            host,
            target,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends `action` with `body` and returns the reply's `Response` object (with its `RequestId`).
    pub fn call(&self, action: &str, body: &Value) -> Result<Value, Error> {
        self.call_with_progress(action, body, None)
    }

    /// Like [`Client::call`], telling `progress` how much of the request body has gone out.
    pub fn call_with_progress(
        &self,
        action: &str,
        body: &Value,
        progress: Option<Progress<'_>>,
    ) -> Result<Value, Error> {
        let payload = serde_json::to_vec(body).map_err(|e| Error::BadReply {
            action: action.into(),
            why: format!("the request does not serialise: {e}"),
        })?;
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let auth = api::tc3::authorization(
            &self.target.secret_id,
            &self.target.secret_key,
            SERVICE,
            &self.host,
            "application/json",
            &payload,
            ts,
        );
        let mut reader = Counting {
            data: &payload,
            sent: 0,
            progress,
        };
        let http = |e: ureq::Error| Error::Http {
            endpoint: self.target.endpoint.clone(),
            source: Box::new(e),
        };
        let mut reply = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Content-Length", payload.len().to_string())
            .header("Host", &self.host)
            .header("Authorization", auth)
            .header("X-TC-Action", action)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Region", &self.target.region)
            .header("X-TC-Timestamp", ts.to_string())
            .send(ureq::SendBody::from_reader(&mut reader))
            .map_err(http)?;
        let status = reply.status().as_u16();
        let bytes = reply
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .map_err(http)?;
        envelope(action, status, &bytes)
    }
}

/// The `Response` object of a reply, or the error it carries.
fn envelope(action: &str, status: u16, bytes: &[u8]) -> Result<Value, Error> {
    let bad = |why: String| Error::BadReply {
        action: action.into(),
        why,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "HTTP {status}, not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ))
    })?;
    let Some(Value::Object(resp)) = v.get("Response") else {
        return Err(bad(format!("HTTP {status}, no Response object")));
    };
    let request_id = resp
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(e) = resp.get("Error") {
        return Err(Error::Api {
            code: e
                .get("Code")
                .and_then(Value::as_str)
                .unwrap_or("InternalError")
                .to_string(),
            message: e
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            request_id,
        });
    }
    if status != 200 {
        return Err(bad(format!("HTTP {status}")));
    }
    Ok(Value::Object(resp.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9000/").ok(),
            Some(("http://127.0.0.1:9000/".into(), "127.0.0.1:9000".into()))
        );
        assert_eq!(
            parse_endpoint("127.0.0.1:9000").ok(),
            Some(("http://127.0.0.1:9000/".into(), "127.0.0.1:9000".into()))
        );
        assert!(parse_endpoint("https://scf.example").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
        assert!(parse_endpoint("http://h/path").is_err());
        assert!(parse_endpoint("").is_err());
    }

    #[test]
    fn envelopes() {
        let ok = br#"{"Response":{"Functions":[],"RequestId":"r1"}}"#;
        let v = envelope("ListFunctions", 200, ok).expect("ok");
        assert_eq!(v["RequestId"], "r1");
        let err = br#"{"Response":{"Error":{"Code":"ResourceNotFound.Function","Message":"no"},"RequestId":"r2"}}"#;
        match envelope("GetFunction", 200, err) {
            Err(Error::Api {
                code,
                message,
                request_id,
            }) => {
                assert_eq!(code, "ResourceNotFound.Function");
                assert_eq!(message, "no");
                assert_eq!(request_id, "r2");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            envelope("X", 200, b"<html>"),
            Err(Error::BadReply { .. })
        ));
        assert!(matches!(
            envelope("X", 502, br#"{"Response":{"RequestId":"r"}}"#),
            Err(Error::BadReply { .. })
        ));
    }

    #[test]
    fn counting_reader_reports_progress() {
        let data = vec![7u8; 200 << 10];
        let mut seen = Vec::new();
        let mut p = |sent: u64, total: u64| seen.push((sent, total));
        let mut out = Vec::new();
        Counting {
            data: &data,
            sent: 0,
            progress: Some(&mut p),
        }
        .read_to_end(&mut out)
        .expect("reads");
        assert_eq!(out, data);
        assert!(seen.len() >= 4, "{seen:?}");
        assert_eq!(seen.last(), Some(&(200 << 10, 200 << 10)));
    }
}
