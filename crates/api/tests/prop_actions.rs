//! Property tests of action decoding, through the public router: correctly signed requests of every served
//! action with arbitrary bodies (random bytes, random JSON, the requests recorded from the official SDK with
//! values replaced by random JSON or removed) never panic and always get the `{"Response": {...}}` envelope,
//! HTTP 200, and — when refused — a well-formed SCF error code that blames the request (never `InternalError`).
//!
//! Each property runs 2048 cases by default (a few seconds in all, in debug); set `PROPTEST_CASES` for longer runs.

use std::sync::OnceLock;

use api::{ApiConfig, router, tc3};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use control::{Control, ControlConfig};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use store::{SqliteSync, Store};
use tower::ServiceExt;

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 2048;
    }
    c
}

/// One server (router, store, account) shared by every case.
struct Server {
    rt: tokio::runtime::Runtime,
    router: Router,
    secret_id: String,
    secret_key: String,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("data dir");
        let (router, account) = rt.block_on(async {
            let url = format!("sqlite://{}", dir.path().join("stratus.db").display());
            let store = Store::open(&url, dir.path(), SqliteSync::Normal)
                .await
                .expect("open store");
            let control = Control::new(store, ControlConfig::default());
            let account = control.create_account().await.expect("account");
            (router(control, ApiConfig::default()), account)
        });
        Server {
            rt,
            router,
            secret_id: account.secret_id,
            secret_key: account.secret_key,
            _dir: dir,
        }
    })
}

const HOST: &str = "127.0.0.1:9000";
const CONTENT_TYPE: &str = "application/json";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Sends a correctly signed `action` with `body`; returns the reply's `Response` object.
fn call(action: &str, body: &[u8]) -> Result<Map<String, Value>, TestCaseError> {
    call_stamped(action, body, &now().to_string())
}

/// Like [`call`], signed now but sent with `X-TC-Timestamp: timestamp`.
fn call_stamped(
    action: &str,
    body: &[u8],
    timestamp: &str,
) -> Result<Map<String, Value>, TestCaseError> {
    let s = server();
    let now = now();
    let auth = tc3::authorization(
        &s.secret_id,
        &s.secret_key,
        "scf",
        HOST,
        CONTENT_TYPE,
        body,
        now,
    );
    let req = Request::post("/")
        .header("host", HOST)
        .header("content-type", CONTENT_TYPE)
        .header("x-tc-action", action)
        .header("x-tc-version", "2018-04-16")
        .header("x-tc-timestamp", timestamp)
        .header("x-tc-region", "ap-guangzhou")
        .header("authorization", auth)
        .body(Body::from(body.to_vec()))
        .expect("request");
    let (status, content_type, bytes) = s.rt.block_on(async {
        let resp = s.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (status, ct, bytes)
    });
    prop_assert_eq!(status.as_u16(), 200);
    prop_assert_eq!(content_type.as_deref(), Some("application/json"));
    let reply: Value = serde_json::from_slice(&bytes)
        .map_err(|e| TestCaseError::fail(format!("reply is not JSON: {e}")))?;
    let Some(Value::Object(response)) = reply.get("Response") else {
        return Err(TestCaseError::fail(format!("no Response object: {reply}")));
    };
    prop_assert!(
        response.get("RequestId").is_some_and(Value::is_string),
        "{}",
        reply
    );
    Ok(response.clone())
}

/// `Some(code)` when the reply is an error; checks that it is a well-formed SCF code and not an internal one.
fn error_code(
    action: &str,
    response: &Map<String, Value>,
) -> Result<Option<String>, TestCaseError> {
    let Some(err) = response.get("Error") else {
        return Ok(None);
    };
    let code = err.get("Code").and_then(Value::as_str).unwrap_or("");
    let message = err.get("Message").and_then(Value::as_str).unwrap_or("");
    let well_formed = !code.is_empty()
        && code.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_uppercase())
                && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    prop_assert!(well_formed, "{}: malformed code `{}`", action, code);
    prop_assert!(
        !message.is_empty(),
        "{}: {} without a message",
        action,
        code
    );
    prop_assert_ne!(code, "InternalError", "{}: {}", action, message);
    Ok(Some(code.to_string()))
}

/// Parameter names of the API (so that objects reach past "unknown parameter" into the values).
const NAMES: &[&str] = &[
    "FunctionName",
    "Namespace",
    "Qualifier",
    "Description",
    "Code",
    "ZipFile",
    "Handler",
    "Runtime",
    "MemorySize",
    "Timeout",
    "Environment",
    "Variables",
    "Key",
    "Value",
    "Layers",
    "LayerName",
    "LayerVersion",
    "CompatibleRuntimes",
    "Content",
    "Offset",
    "Limit",
    "Order",
    "OrderBy",
    "Name",
    "FunctionVersion",
    "RoutingConfig",
    "AdditionalVersionWeights",
    "Version",
    "Weight",
    "InvocationType",
    "Event",
    "ClientContext",
    "LogType",
    "StartTime",
    "EndTime",
    "FunctionRequestId",
    "Tags",
    "VpcConfig",
    "Type",
    "NewFunctionName",
    "TargetNamespace",
    "Override",
    "InstallDependency",
    "Publish",
    "SearchKey",
    "Filters",
    "Values",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(128),
            Just(3),
            Just(20),
            Just(1 << 40)
        ]
        .prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "[A-Za-z0-9_.$-]{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("Python3.9"),
            Just("Nodejs18.15"),
            Just("CustomRuntime"),
            Just("index.main_handler"),
            Just("default"),
            Just("$LATEST"),
            Just("TRUE"),
            Just("UEsDBAoAAAAA"),
            Just("2026-01-01 00:00:00"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Objects built from the API's parameter names with random values.
fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

fn action() -> impl Strategy<Value = &'static str> {
    prop::sample::select(api::SERVED)
}

/// The request recorded from the official SDK for `action`.
fn recorded(action: &str) -> Value {
    static ALL: OnceLock<std::collections::HashMap<&'static str, Value>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        api::SERVED
            .iter()
            .map(|a| {
                let path = format!(
                    "{}/tests/fixtures/served/{a}.request.json",
                    env!("CARGO_MANIFEST_DIR")
                );
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                (
                    *a,
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")),
                )
            })
            .collect()
    });
    all[action].clone()
}

/// JSON pointers of every member and element of `v`, depth first.
fn pointers(v: &Value, prefix: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| (k.replace('~', "~0").replace('/', "~1"), c))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), c))
            .collect(),
        _ => Vec::new(),
    };
    for (segment, child) in children {
        let p = format!("{prefix}/{segment}");
        out.push(p.clone());
        pointers(child, &p, out);
    }
}

/// One change to a recorded request.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(prop::sample::Index, Value),
    Remove(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
    ]
}

fn mutate(body: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(body, "", &mut all);
    if all.is_empty() {
        return;
    }
    match m {
        Mutation::Replace(i, new) => {
            if let Some(slot) = body.pointer_mut(&all[i.index(all.len())]) {
                *slot = new.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = &all[i.index(all.len())];
            let (parent, last) = p.rsplit_once('/').unwrap_or(("", p));
            let last = last.replace("~1", "/").replace("~0", "~");
            match body.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes: answered; anything that is not a JSON object is `InvalidParameter`.
    #[test]
    fn random_bytes_are_refused_clearly(action in action(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let response = call(action, &body)?;
        let code = error_code(action, &response)?;
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            prop_assert_eq!(code.as_deref(), Some("InvalidParameter"), "{}", action);
        }
    }

    /// Random JSON documents of any shape: answered, and refused clearly when they are not objects.
    #[test]
    fn random_json_is_answered(action in action(), body in json()) {
        let bytes = serde_json::to_vec(&body).expect("encode");
        let response = call(action, &bytes)?;
        let code = error_code(action, &response)?;
        if !body.is_object() {
            prop_assert_eq!(code.as_deref(), Some("InvalidParameter"), "{}: {}", action, body);
        }
    }

    /// The SDK's recorded requests with values replaced by random JSON or removed: answered, never with an
    /// internal error.
    #[test]
    fn recorded_requests_with_random_changes_are_answered(
        action in action(),
        changes in prop::collection::vec(mutation(), 0..4),
    ) {
        let mut body = recorded(action);
        for m in &changes {
            mutate(&mut body, m);
        }
        let response = call(action, &serde_json::to_vec(&body).expect("encode"))?;
        error_code(action, &response)?;
    }

    /// Objects of the API's parameter names with random values: answered, never with an internal error.
    #[test]
    fn parameters_with_random_values_are_answered(action in action(), body in object()) {
        let bytes = serde_json::to_vec(&body).expect("encode");
        let response = call(action, &bytes)?;
        error_code(action, &response)?;
    }

    /// A parameter the action does not have is named in `UnknownParameter`.
    #[test]
    fn an_unknown_parameter_is_named(action in action(), name in "Zz[A-Za-z]{1,10}", value in json()) {
        let body = json!({ name.clone(): value });
        let response = call(action, &serde_json::to_vec(&body).expect("encode"))?;
        let code = error_code(action, &response)?;
        prop_assert_eq!(code.as_deref(), Some("UnknownParameter"));
        let message = response["Error"]["Message"].as_str().unwrap_or("");
        prop_assert!(message.contains(&name), "{}", message);
    }

    /// Truncated JSON objects are refused: a syntax error (`InvalidParameter`), unless the decoder met a
    /// parameter the action does not have before the end (`UnknownParameter`).
    #[test]
    fn truncated_objects_are_refused(action in action(), body in object(), cut in any::<prop::sample::Index>()) {
        let bytes = serde_json::to_vec(&body).expect("encode");
        let at = 1 + cut.index(bytes.len() - 1);
        prop_assume!(at < bytes.len());
        let response = call(action, &bytes[..at])?;
        let code = error_code(action, &response)?;
        prop_assert!(
            matches!(code.as_deref(), Some("InvalidParameter" | "UnknownParameter")),
            "{}: {:?}", action, code
        );
    }

    /// Any `X-TC-Timestamp`, over the whole `i64` range, is answered: an `AuthFailure` unless it is close to now.
    #[test]
    fn any_timestamp_is_answered(ts in prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()]) {
        let response = call_stamped("ListFunctions", b"{}", &ts.to_string())?;
        let code = error_code("ListFunctions", &response)?;
        if (now() - 300..=now() + 300).contains(&ts) {
            return Ok(());
        }
        prop_assert!(code.is_some_and(|c| c.starts_with("AuthFailure.")), "{}", ts);
    }
}
