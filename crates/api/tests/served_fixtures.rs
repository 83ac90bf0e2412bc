//! Every action Stratus serves has a request and a reply recorded from the official Python SDK talking to Stratus
//! (`tools/record_fixtures.py`); the generated wire models must read and write both unchanged.

use std::collections::BTreeSet;

use api::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

fn roundtrip<T: DeserializeOwned + Serialize>(what: &str, original: &Value) {
    let parsed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{what}: {} rejected it: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&parsed).expect("wire models serialize");
    assert_eq!(back, without_nulls(original), "{what} did not round-trip");
}

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/served/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

macro_rules! served {
    ($($action:ident => ($req:ident, $resp:ident),)*) => {
        fn check_all() -> BTreeSet<&'static str> {
            let mut seen = BTreeSet::new();
            $(
                let name = stringify!($action);
                roundtrip::<wire::$req>(&format!("{name} request"), &load(&format!("{name}.request.json")));
                let reply = load(&format!("{name}.response.json"));
                let inner = reply.get("Response").unwrap_or_else(|| panic!("{name}: no Response"));
                assert!(inner.get("Error").is_none(), "{name}: the recorded reply is an error");
                assert!(inner.get("RequestId").and_then(Value::as_str).is_some(), "{name}: no RequestId");
                roundtrip::<wire::$resp>(&format!("{name} reply"), inner);
                seen.insert(name);
            )*
            seen
        }
    };
}

served! {
        CopyFunction => (CopyFunctionRequest, CopyFunctionResponse),
        CreateAlias => (CreateAliasRequest, CreateAliasResponse),
        CreateCustomDomain => (CreateCustomDomainRequest, CreateCustomDomainResponse),
        CreateFunction => (CreateFunctionRequest, CreateFunctionResponse),
        CreateNamespace => (CreateNamespaceRequest, CreateNamespaceResponse),
        CreateTrigger => (CreateTriggerRequest, CreateTriggerResponse),
        DeleteAlias => (DeleteAliasRequest, DeleteAliasResponse),
        DeleteCustomDomain => (DeleteCustomDomainRequest, DeleteCustomDomainResponse),
        DeleteFunction => (DeleteFunctionRequest, DeleteFunctionResponse),
        DeleteFunctionVersion => (DeleteFunctionVersionRequest, DeleteFunctionVersionResponse),
        DeleteLayerVersion => (DeleteLayerVersionRequest, DeleteLayerVersionResponse),
        DeleteNamespace => (DeleteNamespaceRequest, DeleteNamespaceResponse),
        DeleteReservedConcurrencyConfig => (DeleteReservedConcurrencyConfigRequest, DeleteReservedConcurrencyConfigResponse),
        DeleteTrigger => (DeleteTriggerRequest, DeleteTriggerResponse),
        GetAccount => (GetAccountRequest, GetAccountResponse),
        GetAlias => (GetAliasRequest, GetAliasResponse),
        GetAsyncEventStatus => (GetAsyncEventStatusRequest, GetAsyncEventStatusResponse),
        GetCustomDomain => (GetCustomDomainRequest, GetCustomDomainResponse),
        GetFunction => (GetFunctionRequest, GetFunctionResponse),
        GetFunctionAddress => (GetFunctionAddressRequest, GetFunctionAddressResponse),
        GetFunctionEventInvokeConfig => (GetFunctionEventInvokeConfigRequest, GetFunctionEventInvokeConfigResponse),
        GetFunctionLogs => (GetFunctionLogsRequest, GetFunctionLogsResponse),
        GetLayerVersion => (GetLayerVersionRequest, GetLayerVersionResponse),
        GetRequestStatus => (GetRequestStatusRequest, GetRequestStatusResponse),
        GetReservedConcurrencyConfig => (GetReservedConcurrencyConfigRequest, GetReservedConcurrencyConfigResponse),
        Invoke => (InvokeRequest, InvokeResponse),
        InvokeFunction => (InvokeFunctionRequest, InvokeFunctionResponse),
        ListAliases => (ListAliasesRequest, ListAliasesResponse),
        ListAsyncEvents => (ListAsyncEventsRequest, ListAsyncEventsResponse),
        ListCustomDomains => (ListCustomDomainsRequest, ListCustomDomainsResponse),
        ListFunctions => (ListFunctionsRequest, ListFunctionsResponse),
        ListLayerVersions => (ListLayerVersionsRequest, ListLayerVersionsResponse),
        ListLayers => (ListLayersRequest, ListLayersResponse),
        ListNamespaces => (ListNamespacesRequest, ListNamespacesResponse),
        ListTriggers => (ListTriggersRequest, ListTriggersResponse),
        ListVersionByFunction => (ListVersionByFunctionRequest, ListVersionByFunctionResponse),
        PublishLayerVersion => (PublishLayerVersionRequest, PublishLayerVersionResponse),
        PublishVersion => (PublishVersionRequest, PublishVersionResponse),
        PutReservedConcurrencyConfig => (PutReservedConcurrencyConfigRequest, PutReservedConcurrencyConfigResponse),
        PutTotalConcurrencyConfig => (PutTotalConcurrencyConfigRequest, PutTotalConcurrencyConfigResponse),
        TerminateAsyncEvent => (TerminateAsyncEventRequest, TerminateAsyncEventResponse),
        UpdateAlias => (UpdateAliasRequest, UpdateAliasResponse),
        UpdateCustomDomain => (UpdateCustomDomainRequest, UpdateCustomDomainResponse),
        UpdateFunctionCode => (UpdateFunctionCodeRequest, UpdateFunctionCodeResponse),
        UpdateFunctionConfiguration => (UpdateFunctionConfigurationRequest, UpdateFunctionConfigurationResponse),
        UpdateFunctionEventInvokeConfig => (UpdateFunctionEventInvokeConfigRequest, UpdateFunctionEventInvokeConfigResponse),
        UpdateNamespace => (UpdateNamespaceRequest, UpdateNamespaceResponse),
        UpdateTrigger => (UpdateTriggerRequest, UpdateTriggerResponse),
        UpdateTriggerStatus => (UpdateTriggerStatusRequest, UpdateTriggerStatusResponse),
}

#[test]
fn every_served_action_round_trips_its_recorded_bodies() {
    let seen = check_all();
    let served: BTreeSet<&str> = api::SERVED.iter().copied().collect();
    assert_eq!(seen, served, "fixtures and served actions differ");
}
