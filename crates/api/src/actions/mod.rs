//! Action dispatch: decode the wire request, call the control plane, encode the wire response.

mod aliases;
mod concurrency;
mod domains;
mod events;
mod functions;
mod invoke;
mod layers;
mod logs;
mod namespaces;
mod triggers;

use base64::Engine;
use control::{Caller, Control};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::wire;

/// Decodes a request body into its wire type: malformed JSON and wrong types are `InvalidParameter`, a key the
/// action does not have is `UnknownParameter`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => &b"{}"[..],
        Some(b'{') => body,
        Some(_) => {
            return Err(ApiError::new(
                "InvalidParameter",
                "The request body must be a JSON object.",
            ));
        }
    };
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("unknown field") {
            let name = msg.split('`').nth(1).unwrap_or("?");
            ApiError::new(
                "UnknownParameter",
                format!("The parameter `{name}` is not recognized."),
            )
        } else if e.is_syntax() || e.is_eof() {
            ApiError::new(
                "InvalidParameter",
                format!("The request body is not valid JSON: {msg}."),
            )
        } else {
            ApiError::new(
                "InvalidParameter",
                format!("A parameter has the wrong type or value: {msg}."),
            )
        }
    })
}

pub(crate) fn required<T>(v: Option<T>, field: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::missing(field))
}

/// A required string that must not be empty.
pub(crate) fn required_str(v: Option<String>, field: &str) -> Result<String, ApiError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::missing(field)),
    }
}

pub(crate) fn namespace(ns: Option<String>) -> String {
    ns.filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// `TRUE`/`FALSE` flags; anything else is refused.
pub(crate) fn flag(v: Option<&str>, field: &str) -> Result<bool, ApiError> {
    match v {
        None | Some("") | Some("FALSE") => Ok(false),
        Some("TRUE") => Ok(true),
        Some(other) => Err(ApiError::invalid_value(
            field,
            format!("{field} must be TRUE or FALSE, not `{other}`."),
        )),
    }
}

/// Decodes base64 zip content.
pub(crate) fn zip_bytes(b64: &str, field: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| ApiError::invalid_value(field, format!("{field} is not valid base64: {e}.")))
}

/// An `Order` parameter (`ASC`/`DESC`, any case): whether the listing runs descending, `default_desc` when absent.
pub(crate) fn descending(order: Option<&str>, default_desc: bool) -> Result<bool, ApiError> {
    match order.map(str::to_ascii_uppercase).as_deref() {
        None | Some("") => Ok(default_desc),
        Some("DESC") => Ok(true),
        Some("ASC") => Ok(false),
        Some(_) => Err(ApiError::invalid_value(
            "Order",
            "Order must be ASC or DESC.",
        )),
    }
}

/// Offset/Limit paging with SCF's defaults.
pub(crate) fn paging(
    offset: Option<i64>,
    limit: Option<i64>,
    max: i64,
) -> Result<(i64, i64), ApiError> {
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(20);
    if offset < 0 {
        return Err(ApiError::invalid_value(
            "Offset",
            "Offset must not be negative.",
        ));
    }
    if !(0..=max).contains(&limit) {
        return Err(ApiError::invalid_value(
            "Limit",
            format!("Limit must be between 0 and {max}."),
        ));
    }
    Ok((offset, limit))
}

pub(crate) fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v)
        .map_err(|e| ApiError::new("InternalError", format!("could not encode the reply: {e}")))
}

/// The actions Stratus serves today.
pub const SERVED: &[&str] = &[
    "CopyFunction",
    "CreateAlias",
    "CreateCustomDomain",
    "CreateFunction",
    "CreateNamespace",
    "CreateTrigger",
    "DeleteAlias",
    "DeleteCustomDomain",
    "DeleteFunction",
    "DeleteFunctionVersion",
    "DeleteLayerVersion",
    "DeleteNamespace",
    "DeleteReservedConcurrencyConfig",
    "DeleteTrigger",
    "GetAccount",
    "GetAlias",
    "GetAsyncEventStatus",
    "GetCustomDomain",
    "GetFunction",
    "GetFunctionAddress",
    "GetFunctionEventInvokeConfig",
    "GetFunctionLogs",
    "GetLayerVersion",
    "GetRequestStatus",
    "GetReservedConcurrencyConfig",
    "Invoke",
    "InvokeFunction",
    "ListAliases",
    "ListAsyncEvents",
    "ListCustomDomains",
    "ListFunctions",
    "ListLayerVersions",
    "ListLayers",
    "ListNamespaces",
    "ListTriggers",
    "ListVersionByFunction",
    "PublishLayerVersion",
    "PublishVersion",
    "PutReservedConcurrencyConfig",
    "PutTotalConcurrencyConfig",
    "TerminateAsyncEvent",
    "UpdateAlias",
    "UpdateCustomDomain",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "UpdateFunctionEventInvokeConfig",
    "UpdateNamespace",
    "UpdateTrigger",
    "UpdateTriggerStatus",
];

/// What a handler knows about its request besides the body.
pub(crate) struct Cx {
    pub ctl: Control,
    pub caller: Caller,
    /// `X-TC-Region` (may be empty).
    pub region: String,
    /// The base URL the client reached us at, for links we hand out.
    pub base_url: String,
}

macro_rules! actions {
    ($cx:ident, $action:ident, $body:ident; $($name:ident => $handler:path),* $(,)?) => {
        match $action {
            $(stringify!($name) => {
                let req = parse($body)?;
                let resp = $handler($cx, req).await?;
                to_value(&resp)
            })*
            other => Err(unsupported(other)),
        }
    };
}

fn unsupported(action: &str) -> ApiError {
    if wire::ACTIONS.contains(&action) {
        ApiError::new(
            "UnsupportedOperation",
            format!("{action} is part of the SCF API but Stratus does not support it yet."),
        )
    } else {
        ApiError::new(
            "InvalidAction",
            format!("The action `{action}` does not exist in scf 2018-04-16."),
        )
    }
}

pub(crate) async fn dispatch(
    cx: &Cx,
    action: &str,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    actions!(cx, action, body;
        CreateFunction => functions::create,
        GetFunction => functions::get,
        ListFunctions => functions::list,
        UpdateFunctionCode => functions::update_code,
        UpdateFunctionConfiguration => functions::update_configuration,
        DeleteFunction => functions::delete,
        PublishVersion => functions::publish_version,
        ListVersionByFunction => functions::list_versions,
        DeleteFunctionVersion => functions::delete_version,
        GetAccount => functions::get_account,
        GetFunctionAddress => functions::get_address,
        CopyFunction => functions::copy,
        Invoke => invoke::invoke,
        InvokeFunction => invoke::invoke_function,
        GetFunctionLogs => logs::get_logs,
        GetRequestStatus => logs::get_request_status,
        GetAsyncEventStatus => events::get_status,
        ListAsyncEvents => events::list,
        TerminateAsyncEvent => events::terminate,
        GetFunctionEventInvokeConfig => events::get_config,
        UpdateFunctionEventInvokeConfig => events::update_config,
        CreateAlias => aliases::create,
        GetAlias => aliases::get,
        UpdateAlias => aliases::update,
        ListAliases => aliases::list,
        DeleteAlias => aliases::delete,
        CreateNamespace => namespaces::create,
        UpdateNamespace => namespaces::update,
        DeleteNamespace => namespaces::delete,
        ListNamespaces => namespaces::list,
        PublishLayerVersion => layers::publish,
        GetLayerVersion => layers::get,
        ListLayers => layers::list,
        ListLayerVersions => layers::list_versions,
        DeleteLayerVersion => layers::delete,
        CreateTrigger => triggers::create,
        UpdateTrigger => triggers::update,
        UpdateTriggerStatus => triggers::update_status,
        DeleteTrigger => triggers::delete,
        ListTriggers => triggers::list,
        PutReservedConcurrencyConfig => concurrency::put_reserved,
        GetReservedConcurrencyConfig => concurrency::get_reserved,
        DeleteReservedConcurrencyConfig => concurrency::delete_reserved,
        PutTotalConcurrencyConfig => concurrency::put_total,
        CreateCustomDomain => domains::create,
        GetCustomDomain => domains::get,
        ListCustomDomains => domains::list,
        UpdateCustomDomain => domains::update,
        DeleteCustomDomain => domains::delete,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_actions_exist_in_the_api() {
        for a in SERVED {
            assert!(wire::ACTIONS.contains(a), "{a}");
        }
    }

    #[test]
    fn parse_errors_are_classified() {
        let e = parse::<wire::GetFunctionRequest>(b"{").expect_err("syntax");
        assert_eq!(e.code, "InvalidParameter");
        let e = parse::<wire::GetFunctionRequest>(br#"{"Nope": 1}"#).expect_err("unknown");
        assert_eq!(e.code, "UnknownParameter");
        assert!(e.message.contains("Nope"));
        let e = parse::<wire::GetFunctionRequest>(br#"{"FunctionName": 1}"#).expect_err("type");
        assert_eq!(e.code, "InvalidParameter");
        let ok = parse::<wire::GetFunctionRequest>(b"").expect("empty is {}");
        assert_eq!(ok.function_name, None);
    }

    #[test]
    fn unknown_and_unsupported_actions() {
        assert_eq!(unsupported("Frobnicate").code, "InvalidAction");
        assert_eq!(
            unsupported("GetProvisionedConcurrencyConfig").code,
            "UnsupportedOperation"
        );
    }
}
