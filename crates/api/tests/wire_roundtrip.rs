//! Round-trip the generated wire models against bodies recorded from the
//! official Python SDK (tencentcloud-sdk-python-scf 3.1.100): the request it
//! sent and the reply it accepted. The Node.js SDK and tccli send the same
//! request content (only key order differs), so one set of fixtures covers
//! all three clients.
//!
//! Request fixtures are the bodies byte for byte; reply fixtures are the
//! whole reply body (`{"Response": {...}}`) re-indented.

use api::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is valid JSON")
}

/// Drops every `null` object member, recursively.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Deserializes `original` into `T`, serializes it back and checks that
/// nothing was lost or invented.
///
/// Every member is `Option` with `skip_serializing_if = "Option::is_none"`,
/// so a member that was `null` in the original comes back absent rather than
/// `null`. The comparison therefore runs against the original with its nulls
/// removed. Object key order is not significant to `Value` equality.
fn roundtrip<T: DeserializeOwned + Serialize>(original: &Value) -> T {
    let parsed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{} rejected {original}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&parsed).expect("wire models serialize");
    assert_eq!(
        back,
        without_nulls(original),
        "{} did not round-trip",
        std::any::type_name::<T>()
    );
    parsed
}

/// The object inside the `{"Response": {...}}` envelope of a reply body.
fn response_of(body: &Value) -> &Value {
    let envelope = body.as_object().expect("reply body is an object");
    assert_eq!(envelope.len(), 1, "reply body has only the Response key");
    &envelope["Response"]
}

#[test]
fn create_function() {
    let req: wire::CreateFunctionRequest =
        roundtrip(&parse(fixture!("CreateFunction.request.json")));
    assert_eq!(req.function_name.as_deref(), Some("cap-fn"));
    assert_eq!(req.memory_size, Some(128));
    let zip = req.code.and_then(|c| c.zip_file).expect("Code.ZipFile");
    assert!(zip.starts_with("UEsDB"), "base64 of a zip archive");
    let vars = req
        .environment
        .and_then(|e| e.variables)
        .expect("Environment.Variables");
    assert_eq!(vars[0].key.as_deref(), Some("K"));

    let body = parse(fixture!("CreateFunction.response.json"));
    let resp: wire::CreateFunctionResponse = roundtrip(response_of(&body));
    assert!(resp.request_id.is_some());
}

#[test]
fn get_function() {
    let req: wire::GetFunctionRequest = roundtrip(&parse(fixture!("GetFunction.request.json")));
    assert_eq!(req.namespace.as_deref(), Some("default"));

    let body = parse(fixture!("GetFunction.response.json"));
    let resp: wire::GetFunctionResponse = roundtrip(response_of(&body));
    assert_eq!(resp.r#type.as_deref(), Some("Event"));
    assert_eq!(resp.l5_enable.as_deref(), Some("FALSE"));
    assert_eq!(resp.cls_topic_id.as_deref(), Some(""));
    assert_eq!(resp.init_timeout, Some(65));
    assert_eq!(resp.triggers, Some(vec![]));
    let public_net = resp.public_net_config.expect("PublicNetConfig");
    assert_eq!(
        public_net.eip_config.and_then(|e| e.eip_address),
        Some(vec![])
    );
}

#[test]
fn list_functions() {
    let req: wire::ListFunctionsRequest = roundtrip(&parse(fixture!("ListFunctions.request.json")));
    assert_eq!((req.offset, req.limit), (Some(0), Some(20)));

    let body = parse(fixture!("ListFunctions.response.json"));
    let resp: wire::ListFunctionsResponse = roundtrip(response_of(&body));
    assert_eq!(resp.total_count, Some(1));
    let functions = resp.functions.expect("Functions");
    assert_eq!(functions[0].function_name.as_deref(), Some("captured-fn"));
}

#[test]
fn publish_layer_version() {
    let req: wire::PublishLayerVersionRequest =
        roundtrip(&parse(fixture!("PublishLayerVersion.request.json")));
    assert_eq!(req.compatible_runtimes, Some(vec!["Python3.9".to_owned()]));
    assert!(req.content.and_then(|c| c.zip_file).is_some());

    let body = parse(fixture!("PublishLayerVersion.response.json"));
    let resp: wire::PublishLayerVersionResponse = roundtrip(response_of(&body));
    assert_eq!(resp.layer_version, Some(1));
}

#[test]
fn invoke() {
    let req: wire::InvokeRequest = roundtrip(&parse(fixture!("Invoke.request.json")));
    assert_eq!(req.client_context.as_deref(), Some(r#"{"k":"v"}"#));

    let body = parse(fixture!("Invoke.response.json"));
    let resp: wire::InvokeResponse = roundtrip(response_of(&body));
    let result = resp.result.expect("Result");
    assert_eq!(result.duration, Some(1.5));
    assert_eq!(result.bill_duration, Some(2));
    assert_eq!(result.ret_msg.as_deref(), Some(r#""hello""#));
}

/// Error replies carry `{"Error": {"Code", "Message"}, "RequestId"}` instead
/// of the action's members. The definition has no object for that envelope,
/// so it is not a wire model; what matters here is that the requests parse
/// and that an error reply can never be mistaken for a `GetFunctionResponse`.
#[test]
fn error_captures() {
    let cases = [
        (
            fixture!("GetFunction.error-ResourceNotFound.request.json"),
            fixture!("GetFunction.error-ResourceNotFound.response.json"),
            "ResourceNotFound.Function",
        ),
        (
            fixture!("GetFunction.error-http500.request.json"),
            fixture!("GetFunction.error-http500.response.json"),
            "ResourceNotFound.Function",
        ),
        (
            fixture!("GetFunction.error-with-charset-content-type.request.json"),
            fixture!("GetFunction.error-with-charset-content-type.response.json"),
            "ResourceNotFound.Function",
        ),
        (
            fixture!("GetFunction.retry-RequestLimitExceeded.request.json"),
            fixture!("GetFunction.retry-RequestLimitExceeded.response.json"),
            "RequestLimitExceeded",
        ),
    ];
    for (request, reply, code) in cases {
        let req: wire::GetFunctionRequest = roundtrip(&parse(request));
        assert!(req.function_name.is_some());

        let body = parse(reply);
        let response = response_of(&body);
        let mut keys: Vec<&str> = response
            .as_object()
            .expect("Response is an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["Error", "RequestId"]);
        assert_eq!(response["Error"]["Code"], code);
        assert!(response["Error"]["Message"].is_string());

        let err = serde_json::from_value::<wire::GetFunctionResponse>(response.clone())
            .expect_err("an error reply is not a GetFunctionResponse");
        assert!(err.to_string().contains("unknown field `Error`"), "{err}");
    }
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let body = r#"{"FunctionName": "cap-fn", "Namespace": "default", "Bogus": 1}"#;
    let err = serde_json::from_str::<wire::GetFunctionRequest>(body)
        .expect_err("unknown member must be rejected");
    assert!(err.to_string().contains("unknown field `Bogus`"), "{err}");
}

#[test]
fn unknown_nested_key_is_rejected() {
    let body = r#"{"FunctionName": "cap-fn", "Code": {"ZipFile": "", "Bogus": 1}}"#;
    let err = serde_json::from_str::<wire::CreateFunctionRequest>(body)
        .expect_err("unknown member of a nested object must be rejected");
    assert!(err.to_string().contains("unknown field `Bogus`"), "{err}");
}

#[test]
fn wrong_member_type_is_rejected() {
    let body = r#"{"FunctionName": "cap-fn", "MemorySize": "128"}"#;
    let err = serde_json::from_str::<wire::CreateFunctionRequest>(body)
        .expect_err("a string MemorySize must be rejected");
    assert!(err.to_string().contains("invalid type: string"), "{err}");
}

#[test]
fn null_members_read_as_absent() {
    let body = r#"{"FunctionName": "cap-fn", "Namespace": null}"#;
    let req: wire::GetFunctionRequest = serde_json::from_str(body).expect("null is accepted");
    assert_eq!(req.namespace, None);
    assert_eq!(
        serde_json::to_string(&req).expect("serializes"),
        r#"{"FunctionName":"cap-fn"}"#
    );
}

#[test]
fn actions_are_sorted_and_complete() {
    assert_eq!(wire::ACTIONS.len(), 52);
    assert!(wire::ACTIONS.windows(2).all(|w| w[0] < w[1]));
    for action in [
        "CreateFunction",
        "GetFunction",
        "ListFunctions",
        "PublishLayerVersion",
        "Invoke",
    ] {
        assert!(wire::ACTIONS.contains(&action), "{action}");
    }
}
