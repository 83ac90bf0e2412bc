//! TC3-HMAC-SHA256, as the official clients apply it (see the protocol notes in ARCHITECTURE.md): the signed
//! headers are always `content-type;host`; the `host` line is the `Host` header as received or (Node SDK) the
//! host without its port; the credential scope's service is whatever the client put there (the Node SDK takes
//! the first label of the endpoint), so the key is derived with the scope's own date and service.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The hash of the literal `UNSIGNED-PAYLOAD`, used when `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` is sent.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: String,
    pub signature: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Authorization header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the credential scope date {scope} does not match the timestamp's UTC date {expected}")]
    ScopeDate { scope: String, expected: String },
    #[error("the signature does not match")]
    Mismatch,
}

/// Parses `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=..., Signature=HEX`.
pub fn parse_authorization(h: &str) -> Result<Authorization, SignatureError> {
    let rest = h
        .strip_prefix("TC3-HMAC-SHA256 ")
        .ok_or(SignatureError::Malformed(
            "it must start with `TC3-HMAC-SHA256 `",
        ))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (k, v) = part
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value parts"))?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => return Err(SignatureError::Malformed("unknown part")),
        }
    }
    let cred = cred.ok_or(SignatureError::Malformed("Credential is missing"))?;
    let signed = signed.ok_or(SignatureError::Malformed("SignedHeaders is missing"))?;
    let sig = sig.ok_or(SignatureError::Malformed("Signature is missing"))?;
    let mut it = cred.split('/');
    let (Some(id), Some(date), Some(service), Some("tc3_request"), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(SignatureError::Malformed(
            "Credential must be SecretId/Date/Service/tc3_request",
        ));
    };
    let date_ok = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if id.is_empty() || !date_ok || service.is_empty() {
        return Err(SignatureError::Malformed(
            "Credential has an empty or malformed part",
        ));
    }
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignatureError::Malformed("Signature must be 64 hex digits"));
    }
    if signed.is_empty()
        || !signed
            .split(';')
            .all(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
    {
        return Err(SignatureError::Malformed("SignedHeaders is malformed"));
    }
    Ok(Authorization {
        secret_id: id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers: signed.to_string(),
        signature: sig.to_ascii_lowercase(),
    })
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// What a request contributes to its signature.
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The raw query string (empty for POST).
    pub query: &'a str,
    /// The value of each signed header, by lowercase name.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lowercase hex sha256 of the body, or of `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
    pub timestamp: i64,
}

/// Computes the signature for `req` under `secret_key`, with the given scope date and service (API 3.0: the
/// canonical URI is `/`).
pub fn signature(
    secret_key: &str,
    date: &str,
    service: &str,
    signed_headers: &str,
    req: &SignedRequest<'_>,
) -> String {
    signature_at("/", secret_key, date, service, signed_headers, req)
}

/// [`signature`] over a request to `uri` (a function URL signs its own path).
pub fn signature_at(
    uri: &str,
    secret_key: &str,
    date: &str,
    service: &str,
    signed_headers: &str,
    req: &SignedRequest<'_>,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = req
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or("");
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value.trim());
        canonical_headers.push('\n');
    }
    let canonical = format!(
        "{}\n{uri}\n{}\n{}\n{}\n{}",
        req.method, req.query, canonical_headers, signed_headers, req.payload_hash
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{date}/{service}/tc3_request\n{}",
        req.timestamp,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies a parsed authorization against a request. The `host` header is tried as received and, failing
/// that, without its `:port` (the Node SDK signs the bare hostname).
pub fn verify(
    auth: &Authorization,
    secret_key: &str,
    method: &str,
    query: &str,
    header: &dyn Fn(&str) -> Option<String>,
    payload_hash: &str,
    timestamp: i64,
) -> Result<(), SignatureError> {
    verify_at(
        "/",
        auth,
        secret_key,
        method,
        query,
        header,
        payload_hash,
        timestamp,
    )
}

/// [`verify`] for a request to `uri` (a function URL with `AuthType=CAM` signs its own path).
#[allow(clippy::too_many_arguments)]
pub fn verify_at(
    uri: &str,
    auth: &Authorization,
    secret_key: &str,
    method: &str,
    query: &str,
    header: &dyn Fn(&str) -> Option<String>,
    payload_hash: &str,
    timestamp: i64,
) -> Result<(), SignatureError> {
    let expected_date = model::time::utc_date(timestamp);
    if auth.date != expected_date {
        return Err(SignatureError::ScopeDate {
            scope: auth.date.clone(),
            expected: expected_date,
        });
    }
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    let values: Vec<String> = names
        .iter()
        .map(|n| header(n).unwrap_or_default())
        .collect();
    let mut variants = vec![values.clone()];
    if let Some(i) = names.iter().position(|n| *n == "host")
        && let Some((bare, port)) = values[i].rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && !bare.ends_with(':')
    {
        let mut v = values.clone();
        v[i] = bare.to_string();
        variants.push(v);
    }
    for v in &variants {
        let headers: Vec<(&str, &str)> = names
            .iter()
            .copied()
            .zip(v.iter().map(String::as_str))
            .collect();
        let req = SignedRequest {
            method,
            query,
            headers: &headers,
            payload_hash,
            timestamp,
        };
        let sig = signature_at(
            uri,
            secret_key,
            &auth.date,
            &auth.service,
            &auth.signed_headers,
            &req,
        );
        if constant_time_eq(sig.as_bytes(), auth.signature.as_bytes()) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// Builds the `Authorization` header a client sends (used by the test kit and the benchmarks).
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    content_type: &str,
    body: &[u8],
    timestamp: i64,
) -> String {
    let date = model::time::utc_date(timestamp);
    let hash = hex::encode(Sha256::digest(body));
    let headers = [("content-type", content_type), ("host", host)];
    let req = SignedRequest {
        method: "POST",
        query: "",
        headers: &headers,
        payload_hash: &hash,
        timestamp,
    };
    let sig = signature(secret_key, &date, service, "content-type;host", &req);
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders=content-type;host, Signature={sig}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIDcaptureTestId000000000000000000";
    const KEY: &str = "testSecretKeyForCaptureOnly0000";
    const BODY: &[u8] = br#"{"FunctionName": "demo", "Namespace": "default"}"#;

    fn header<'a>(host: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
        move |n: &str| match n {
            "content-type" => Some("application/json".into()),
            "host" => Some(host.into()),
            _ => None,
        }
    }

    /// The worked example of the protocol notes.
    #[test]
    fn worked_example() {
        let a = authorization(
            ID,
            KEY,
            "scf",
            "127.0.0.1:18080",
            "application/json",
            BODY,
            1_700_000_000,
        );
        assert!(
            a.ends_with(
                "Signature=e4cf10a259966c4ebe05c3c77f625afe9f9c3db9a78ba645d1f806b3348e5ccc"
            ),
            "{a}"
        );
        let auth = parse_authorization(&a).expect("parses");
        let hash = hex::encode(Sha256::digest(BODY));
        assert_eq!(
            verify(
                &auth,
                KEY,
                "POST",
                "",
                &header("127.0.0.1:18080"),
                &hash,
                1_700_000_000
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &auth,
                "wrong",
                "POST",
                "",
                &header("127.0.0.1:18080"),
                &hash,
                1_700_000_000
            ),
            Err(SignatureError::Mismatch)
        );
        let other = hex::encode(Sha256::digest(b"{}"));
        assert_eq!(
            verify(
                &auth,
                KEY,
                "POST",
                "",
                &header("127.0.0.1:18080"),
                &other,
                1_700_000_000
            ),
            Err(SignatureError::Mismatch)
        );
    }

    /// The Node SDK signs the host without its port, and a service taken from the endpoint.
    #[test]
    fn node_style_host_and_service() {
        let hash = hex::encode(Sha256::digest(BODY));
        let node = "TC3-HMAC-SHA256 Credential=AKIDcaptureTestId000000000000000000/2023-11-14/scf/tc3_request, SignedHeaders=content-type;host, Signature=fc1e10fc819908001be3a41851f71c75a2c61ff20aa1c08d00a249388b5eaa1d";
        let auth = parse_authorization(node).expect("parses");
        assert_eq!(
            verify(
                &auth,
                KEY,
                "POST",
                "",
                &header("127.0.0.1:18080"),
                &hash,
                1_700_000_000
            ),
            Ok(())
        );
        let a = authorization(
            ID,
            KEY,
            "127",
            "127.0.0.1",
            "application/json",
            BODY,
            1_700_000_000,
        );
        let auth = parse_authorization(&a).expect("parses");
        assert_eq!(auth.service, "127");
        assert_eq!(
            verify(
                &auth,
                KEY,
                "POST",
                "",
                &header("127.0.0.1:9000"),
                &hash,
                1_700_000_000
            ),
            Ok(())
        );
    }

    #[test]
    fn scheme_in_host_is_signed_verbatim() {
        let host = "http://127.0.0.1:9000";
        let a = authorization(
            ID,
            KEY,
            "scf",
            host,
            "application/json",
            BODY,
            1_700_000_000,
        );
        let auth = parse_authorization(&a).expect("parses");
        let hash = hex::encode(Sha256::digest(BODY));
        assert_eq!(
            verify(&auth, KEY, "POST", "", &header(host), &hash, 1_700_000_000),
            Ok(())
        );
    }

    #[test]
    fn scope_date_must_match_timestamp() {
        let a = authorization(ID, KEY, "scf", "h", "application/json", BODY, 1_700_000_000);
        let auth = parse_authorization(&a).expect("parses");
        let hash = hex::encode(Sha256::digest(BODY));
        assert!(matches!(
            verify(
                &auth,
                KEY,
                "POST",
                "",
                &header("h"),
                &hash,
                1_700_000_000 + 86_400
            ),
            Err(SignatureError::ScopeDate { .. })
        ));
    }

    #[test]
    fn malformed_authorizations() {
        for bad in [
            "",
            "Basic abc",
            "TC3-HMAC-SHA256 Credential=a/b/c, SignedHeaders=content-type;host, Signature=00",
            "TC3-HMAC-SHA256 Credential=a/2023-11-14/scf/tc3_request, SignedHeaders=content-type;host",
            "TC3-HMAC-SHA256 Credential=a/2023-11-14/scf/tc3_request, SignedHeaders=content-type;host, Signature=zz",
            "TC3-HMAC-SHA256 Credential=/2023-11-14/scf/tc3_request, SignedHeaders=content-type;host, Signature=e4cf10a259966c4ebe05c3c77f625afe9f9c3db9a78ba645d1f806b3348e5ccc",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }
}
