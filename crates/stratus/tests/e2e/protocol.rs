//! The Tencent Cloud API 3.0 surface: TC3 signatures as the official clients make them (and break them), and
//! protocol errors. Every reply, refusals included, must be HTTP 200 with `Content-Type: application/json`
//! exactly and a `RequestId`: the client's `envelope()` asserts that on each of them.

use serde_json::{Value, json};
use testkit::{Backend, on_both_backends, unix_now, zips};

use crate::{create_body, start};

fn code_of(r: Result<Value, testkit::ApiError>) -> String {
    match r {
        Ok(v) => panic!("accepted, expected a refusal: {v}"),
        Err(e) => e.code,
    }
}

fn signatures(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let creds = c.credentials().clone();
    let body = json!({"Limit": 1});
    let host = c.addr().to_string();
    let now = unix_now();

    c.request("ListFunctions", &body)
        .call()
        .expect("a correctly signed call is accepted");

    // The same signed bytes twice in one second: SDK retries do this, and it is not refused.
    let bytes = serde_json::to_vec(&body).expect("json");
    let auth = api::tc3::authorization(
        &creds.secret_id,
        &creds.secret_key,
        "scf",
        &host,
        "application/json",
        &bytes,
        now,
    );
    for _ in 0..2 {
        c.request("ListFunctions", &body)
            .timestamp(now)
            .authorization(&auth)
            .call()
            .expect("a repeated signature is accepted");
    }

    // Wrong key, altered signature, altered body, signed for another host.
    let r = c
        .request("ListFunctions", &body)
        .credentials(&creds.secret_id, "not-the-key")
        .call();
    assert_eq!(code_of(r), "AuthFailure.SignatureFailure");
    let last = auth.chars().last().expect("signature");
    let flipped = format!(
        "{}{}",
        &auth[..auth.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let r = c
        .request("ListFunctions", &body)
        .timestamp(now)
        .authorization(&flipped)
        .call();
    assert_eq!(code_of(r), "AuthFailure.SignatureFailure");
    let r = c
        .request("ListFunctions", &json!({"Limit": 2}))
        .timestamp(now)
        .authorization(&auth)
        .call();
    assert_eq!(code_of(r), "AuthFailure.SignatureFailure");
    let r = c
        .request("ListFunctions", &body)
        .sign_host("elsewhere.example:9000")
        .call();
    assert_eq!(code_of(r), "AuthFailure.SignatureFailure");

    // The clock: ±300 s of skew are allowed.
    for skew in [-310, 310, -3600] {
        let r = c
            .request("ListFunctions", &body)
            .timestamp(now + skew)
            .call();
        assert_eq!(code_of(r), "AuthFailure.SignatureExpire", "skew {skew}");
    }
    for skew in [-290, 290] {
        c.request("ListFunctions", &body)
            .timestamp(now + skew)
            .call()
            .unwrap_or_else(|e| panic!("skew {skew} must be accepted: {e}"));
    }
    // The scope date must be the timestamp's UTC date.
    let r = c
        .request("ListFunctions", &body)
        .timestamp(now - 86_400)
        .timestamp_header(&now.to_string())
        .call();
    assert_eq!(code_of(r), "AuthFailure.SignatureFailure");
    for ts in ["", "soon", "1.5"] {
        let r = c
            .request("ListFunctions", &body)
            .timestamp_header(ts)
            .call();
        let code = code_of(r);
        assert!(code.starts_with("AuthFailure."), "timestamp {ts:?}: {code}");
    }

    // Unknown key id.
    let r = c
        .request("ListFunctions", &body)
        .credentials("AKIDdoesNotExist0000000000000000000", &creds.secret_key)
        .call();
    assert_eq!(code_of(r), "AuthFailure.SecretIdNotFound");

    // Malformed or missing Authorization.
    let date = model::time::utc_date(now);
    let sig = "0".repeat(64);
    for bad in [
        "Basic dXNlcjpwYXNz".to_string(),
        "TC3-HMAC-SHA256".to_string(),
        format!(
            "TC3-HMAC-SHA256 Credential={}/{date}/scf/tc3_request, SignedHeaders=content-type;host",
            creds.secret_id
        ),
        format!(
            "TC3-HMAC-SHA256 Credential={}, SignedHeaders=content-type;host, Signature={sig}",
            creds.secret_id
        ),
        format!(
            "TC3-HMAC-SHA256 Credential={}/{date}/scf/tc3_request, SignedHeaders=content-type;host, Signature=xyz",
            creds.secret_id
        ),
        format!(
            "TC3-HMAC-SHA256 Credential={}/yesterday/scf/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
            creds.secret_id
        ),
    ] {
        let r = c.request("ListFunctions", &body).authorization(&bad).call();
        assert_eq!(code_of(r), "AuthFailure.InvalidAuthorization", "{bad}");
    }
    let r = c.request("ListFunctions", &body).no_authorization().call();
    let code = code_of(r);
    assert!(code.starts_with("AuthFailure."), "{code}");

    // What the official clients do, accepted: Node signs the host without its port and may put the first
    // label of the endpoint in the scope; tccli sends (and signs) `Host: http://…`; Python may send
    // UNSIGNED-PAYLOAD.
    c.request("ListFunctions", &body)
        .sign_host("127.0.0.1")
        .service("127")
        .call()
        .expect("Node-style signature");
    c.request("ListFunctions", &body)
        .host(&format!("http://{host}"))
        .call()
        .expect("Host with a scheme, signed verbatim");
    c.request("ListFunctions", &body)
        .unsigned_payload()
        .call()
        .expect("UNSIGNED-PAYLOAD");
    // UNSIGNED-PAYLOAD announced but the body hash signed: refused.
    let r = c
        .request("ListFunctions", &body)
        .header("X-TC-Content-SHA256", "UNSIGNED-PAYLOAD")
        .call();
    assert_eq!(code_of(r), "AuthFailure.SignatureFailure");

    // The trace id is echoed; request ids are fresh.
    let r = c
        .request("ListFunctions", &body)
        .header("X-TC-TraceId", "trace-me-123")
        .send()
        .expect("send");
    assert_eq!(r.header("x-tc-traceid"), Some("trace-me-123"));
    let id1 = r.envelope().expect("ok")["RequestId"].clone();
    let id2 = c.ok("ListFunctions", body.clone())["RequestId"].clone();
    assert_ne!(id1, id2);
}

fn protocol_errors(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let get = json!({"FunctionName": "nope"});

    let r = c.request("GetFunction", &get).action(None).call();
    assert_eq!(code_of(r), "MissingParameter");
    let r = c.request("Frobnicate", &get).call();
    assert_eq!(code_of(r), "InvalidAction");
    let r = c.request("GetProvisionedConcurrencyConfig", &get).call();
    assert_eq!(code_of(r), "UnsupportedOperation");
    let r = c
        .request("GetFunction", &get)
        .version(Some("2017-03-12"))
        .call();
    assert_eq!(code_of(r), "NoSuchVersion");
    let r = c.request("GetFunction", &get).version(None).call();
    assert_eq!(code_of(r), "MissingParameter");

    for (body, code) in [
        (&b"{\"FunctionName\": "[..], "InvalidParameter"),
        (b"not json", "InvalidParameter"),
        (b"{\"FunctionName\": 5}", "InvalidParameter"),
        (
            b"{\"FunctionName\": \"x\", \"Bogus\": 1}",
            "UnknownParameter",
        ),
        (b"{}", "MissingParameter"),
    ] {
        let r = c.request("GetFunction", &get).body(body.to_vec()).call();
        assert_eq!(code_of(r), code, "body {:?}", String::from_utf8_lossy(body));
    }
    let e = c
        .request("GetFunction", &get)
        .body(&b"{\"FunctionName\": \"x\", \"Bogus\": 1}"[..])
        .call()
        .expect_err("unknown key");
    assert!(e.message.contains("Bogus"), "{e}");

    // Refused before anything is stored.
    let mut bad_b64 = create_body("b64", b"", "Python3.9", "index.main_handler");
    bad_b64["Code"]["ZipFile"] = json!("this is %%% not base64");
    c.err("CreateFunction", bad_b64, "InvalidParameterValue.ZipFile");
    let good = |name: &str| {
        create_body(
            name,
            &zips::python_hello(),
            "Python3.9",
            "index.main_handler",
        )
    };
    let mut cases = Vec::new();
    cases.push((
        good("9starts-with-digit"),
        "InvalidParameterValue.FunctionName",
    ));
    let mut v = good("mem");
    v["MemorySize"] = json!(100);
    cases.push((v, "InvalidParameterValue.MemorySize"));
    let mut v = good("rt");
    v["Runtime"] = json!("Cobol85");
    cases.push((v, "InvalidParameterValue.Runtime"));
    let mut v = good("hd");
    v["Handler"] = json!("nodot");
    cases.push((v, "InvalidParameterValue.Handler"));
    let mut v = good("env");
    v["Environment"] = json!({"Variables": [{"Key": "SCF_SECRET", "Value": "x"}]});
    cases.push((v, "InvalidParameterValue.EnvironmentSystemProtect"));
    let mut v = good("nocode");
    v.as_object_mut().expect("object").remove("Code");
    cases.push((v, "MissingParameter.Code"));
    let mut v = good("to");
    v["Timeout"] = json!(0);
    cases.push((v, "InvalidParameterValue.Timeout"));
    for (body, code) in cases {
        c.err("CreateFunction", body, code);
    }
    let listed = c.ok("ListFunctions", json!({}));
    assert_eq!(
        listed["TotalCount"], 0,
        "refused creates stored nothing: {listed}"
    );

    // GET is not the API, but still gets an envelope.
    let r = c
        .request("ListFunctions", &json!({}))
        .method("GET")
        .body(Vec::new())
        .send()
        .expect("send");
    let e = r.envelope().expect_err("GET is refused");
    assert_eq!(e.code, "UnsupportedOperation");

    // An empty body is `{}`.
    c.request("ListFunctions", &json!({}))
        .body(Vec::new())
        .call()
        .expect("empty body lists");
}

/// A body over the server's limit (80 MiB) still gets the API envelope (HTTP 200, the common error code
/// `RequestSizeLimitExceeded`), not a bare HTTP 413 that the SDKs cannot parse.
fn oversized_body_gets_an_envelope(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    let mut body = Vec::with_capacity(81 * 1024 * 1024 + 64);
    body.extend_from_slice(b"{\"FunctionName\": \"big\", \"Code\": {\"ZipFile\": \"");
    body.resize(81 * 1024 * 1024, b'A');
    body.extend_from_slice(b"\"}}");
    let r = c
        .request("CreateFunction", &json!({}))
        .body(body)
        .send()
        .expect("send");
    let e = r.envelope().expect_err("too large");
    assert_eq!(e.code, "RequestSizeLimitExceeded", "oversized body: {e}");
}

/// A request body is a JSON object. A JSON array must be refused, not read field by field in declaration order
/// (serde's derived `Deserialize` accepts a sequence for a struct: `["nope"]` is read as GetFunction with
/// `FunctionName` "nope").
fn json_array_body_is_refused(b: Backend) {
    let srv = start(&b);
    let c = srv.client();
    for body in [
        &b"[\"nope\"]"[..],
        b"[]",
        b"[\"nope\", \"default\", \"$LATEST\"]",
    ] {
        let r = c
            .request("GetFunction", &json!({}))
            .body(body.to_vec())
            .call();
        assert_eq!(
            code_of(r),
            "InvalidParameter",
            "body {}",
            String::from_utf8_lossy(body)
        );
    }
}

on_both_backends!(
    signatures,
    protocol_errors,
    oversized_body_gets_an_envelope,
    json_array_body_is_refused,
);
