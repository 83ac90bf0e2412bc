//! `AuthType=CAM`: a request to the URL must carry a TC3-HMAC-SHA256 signature (api's verifier) by a key of the
//! account that owns the function. The canonical request is the request as sent: its method, its path (the URL
//! prefix included), its raw query, the headers it names in `SignedHeaders`, and the SHA-256 of its body (or of
//! `UNSIGNED-PAYLOAD` with `X-TC-Content-SHA256: UNSIGNED-PAYLOAD`); `X-TC-Timestamp` must be within the allowed
//! skew. Missing or malformed credentials answer 401; a signature that does not match, an expired timestamp, an
//! unknown key or another account's key answer 403.

use api::tc3;
use axum::http::StatusCode;
use axum::http::request::Parts;
use control::{Caller, Control};
use sha2::{Digest, Sha256};

use crate::response::Reply;

fn unauthorized(m: &str) -> Reply {
    Reply::error(StatusCode::UNAUTHORIZED, 401, m)
}

fn forbidden(m: &str) -> Reply {
    Reply::error(StatusCode::FORBIDDEN, 403, m)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks the request's signature; the SecretId that signed it.
pub async fn verify(
    control: &Control,
    owner: &Caller,
    parts: &Parts,
    body: &[u8],
    max_skew_secs: u64,
) -> Result<String, Reply> {
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(authorization) = header("authorization") else {
        return Err(unauthorized(
            "this function URL has AuthType CAM: sign the request with TC3-HMAC-SHA256 (Authorization and X-TC-Timestamp)",
        ));
    };
    let auth = tc3::parse_authorization(&authorization)
        .map_err(|e| unauthorized(&format!("the Authorization header is invalid: {e}")))?;
    let Some(timestamp) = header("x-tc-timestamp").and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return Err(unauthorized(
            "X-TC-Timestamp (the signing time, Unix seconds) is missing or not a number",
        ));
    };
    let skew = unix_now().abs_diff(timestamp);
    if skew > max_skew_secs {
        return Err(forbidden(&format!(
            "the signature has expired: X-TC-Timestamp is {skew} s away from the server's clock (at most {max_skew_secs} s)"
        )));
    }
    let (secret, caller) = match control.api_key(&auth.secret_id).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(forbidden("the SecretId of the signature does not exist")),
        Err(e) => {
            return Err(Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500,
                &e.to_string(),
            ));
        }
    };
    if caller.app_id != owner.app_id {
        return Err(forbidden(
            "the signing key does not belong to the account that owns this function URL",
        ));
    }
    let payload_hash = if header("x-tc-content-sha256").as_deref() == Some(tc3::UNSIGNED_PAYLOAD) {
        hex::encode(Sha256::digest(tc3::UNSIGNED_PAYLOAD.as_bytes()))
    } else {
        hex::encode(Sha256::digest(body))
    };
    tc3::verify_at(
        parts.uri.path(),
        &auth,
        &secret,
        parts.method.as_str(),
        parts.uri.query().unwrap_or(""),
        &header,
        &payload_hash,
        timestamp,
    )
    .map_err(|e| forbidden(&format!("the signature was refused: {e}")))?;
    Ok(auth.secret_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical request of a function URL is the request's own path and query: a signature over one path does
    /// not verify another.
    #[test]
    fn the_signature_covers_the_path_and_query() {
        let key = "secret";
        let ts = 1_700_000_000;
        let date = "2023-11-14";
        let hash = hex::encode(Sha256::digest(b"body"));
        let headers = [("content-type", "text/plain"), ("host", "127.0.0.1:9080")];
        let req = tc3::SignedRequest {
            method: "PUT",
            query: "a=1",
            headers: &headers,
            payload_hash: &hash,
            timestamp: ts,
        };
        let sig = tc3::signature_at("/1-abc/x", key, date, "scf", "content-type;host", &req);
        let auth = tc3::parse_authorization(&format!(
            "TC3-HMAC-SHA256 Credential=AKID/{date}/scf/tc3_request, SignedHeaders=content-type;host, Signature={sig}"
        ))
        .expect("parses");
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        };
        let check = |path: &str, method: &str, query: &str| {
            tc3::verify_at(path, &auth, key, method, query, &header, &hash, ts).is_ok()
        };
        assert!(check("/1-abc/x", "PUT", "a=1"));
        assert!(!check("/1-abc/y", "PUT", "a=1"));
        assert!(!check("/", "PUT", "a=1"));
        assert!(!check("/1-abc/x", "POST", "a=1"));
        assert!(!check("/1-abc/x", "PUT", "a=2"));
    }
}
