//! Invoke and InvokeFunction (synchronous), and Invoke with `InvocationType=Event` (asynchronous: the event is
//! queued and the reply carries only its request id).

use std::collections::BTreeMap;

use control::{ControlError, Invocation, InvokeOutcome};

use super::{Cx, namespace, required_str};
use crate::error::ApiError;
use crate::wire;

type R<T> = Result<T, ApiError>;

/// SCF's runtime status for a call refused over the concurrency limit.
const THROTTLED: u16 = 432;

/// Largest synchronous event (and result).
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

fn event_bytes(event: Option<String>, field: &str) -> R<Vec<u8>> {
    let event = event
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "{}".into());
    if event.len() > MAX_EVENT_BYTES {
        return Err(ApiError::new(
            "InvalidParameter.RequestTooLarge",
            format!(
                "the event is {} bytes; a synchronous invocation takes at most 6 MB.",
                event.len()
            ),
        ));
    }
    if serde_json::from_str::<serde_json::Value>(&event).is_err() {
        return Err(ApiError::invalid_value(
            field,
            format!("{field} must be a JSON document."),
        ));
    }
    Ok(event.into_bytes())
}

fn routing_key(key: Option<String>) -> R<BTreeMap<String, String>> {
    let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    if key.len() > 1024 {
        return Err(ApiError::invalid_value(
            "RoutingKey",
            "RoutingKey is longer than 1024 bytes.",
        ));
    }
    serde_json::from_str(&key).map_err(|_| {
        ApiError::invalid_value(
            "RoutingKey",
            "RoutingKey must be a JSON object of strings, e.g. {\"k\":\"v\"}.",
        )
    })
}

fn log_tail(log_type: Option<&str>) -> R<bool> {
    match log_type {
        None | Some("") | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ApiError::invalid_value(
            "LogType",
            format!("LogType must be None or Tail, not `{other}`."),
        )),
    }
}

/// SCF reports a function's own failure inside `Result`; a throttled call is the runtime status 432.
fn result(outcome: Result<InvokeOutcome, ControlError>, tail: bool) -> R<wire::Result> {
    match outcome {
        Ok(o) => Ok(wire::Result {
            log: Some(if tail {
                o.log_tail().to_string()
            } else {
                String::new()
            }),
            ret_msg: Some(o.ret_msg().to_string()),
            err_msg: Some(o.err_msg()),
            mem_usage: Some(o.mem_usage_bytes as i64),
            duration: Some(o.duration_ms),
            bill_duration: Some(o.bill_duration_ms),
            invoke_result: Some(if o.result.is_ok() { 0 } else { -1 }),
            function_request_id: Some(o.request_id),
        }),
        Err(ControlError::Throttled { scope, limit }) => {
            let err = control::FunctionError::new(
                THROTTLED,
                format!("ResourceLimitReached: {scope} allows {limit} concurrent invocations"),
            );
            Ok(wire::Result {
                log: Some(String::new()),
                ret_msg: Some(String::new()),
                err_msg: Some(err.to_json()),
                mem_usage: Some(0),
                duration: Some(0.0),
                bill_duration: Some(0),
                invoke_result: Some(-1),
                function_request_id: Some(uuid::Uuid::new_v4().to_string()),
            })
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn invoke(cx: &Cx, r: wire::InvokeRequest) -> R<wire::InvokeResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let asynchronous = match r.invocation_type.as_deref() {
        None | Some("") | Some("RequestResponse") => false,
        Some("Event") => true,
        Some(other) => {
            return Err(ApiError::invalid_value(
                "InvokeType",
                format!("InvocationType must be RequestResponse or Event, not `{other}`."),
            ));
        }
    };
    let tail = log_tail(r.log_type.as_deref())?;
    let inv = Invocation {
        namespace: namespace(r.namespace),
        name,
        qualifier: r.qualifier.filter(|q| !q.is_empty()),
        default_qualifier: model::Qualifier::LATEST,
        routing_key: routing_key(r.routing_key)?,
        event: event_bytes(r.client_context, "ClientContext")?,
        region: cx.region.clone(),
    };
    if asynchronous {
        // Nothing ran yet: only the request id, which is the event's InvokeRequestId.
        let id = cx.ctl.invoke_async(&cx.caller, inv).await?;
        return Ok(wire::InvokeResponse {
            result: Some(wire::Result {
                log: Some(String::new()),
                ret_msg: Some(String::new()),
                err_msg: Some(String::new()),
                mem_usage: Some(0),
                duration: Some(0.0),
                bill_duration: Some(0),
                invoke_result: Some(0),
                function_request_id: Some(id),
            }),
            request_id: None,
        });
    }
    Ok(wire::InvokeResponse {
        result: Some(result(cx.ctl.invoke(&cx.caller, inv).await, tail)?),
        request_id: None,
    })
}

pub(crate) async fn invoke_function(
    cx: &Cx,
    r: wire::InvokeFunctionRequest,
) -> R<wire::InvokeFunctionResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let tail = log_tail(r.log_type.as_deref())?;
    let inv = Invocation {
        namespace: namespace(r.namespace),
        name,
        qualifier: r.qualifier.filter(|q| !q.is_empty()),
        default_qualifier: model::Alias::DEFAULT,
        routing_key: routing_key(r.routing_key)?,
        event: event_bytes(r.event, "Event")?,
        region: cx.region.clone(),
    };
    Ok(wire::InvokeFunctionResponse {
        result: Some(result(cx.ctl.invoke(&cx.caller, inv).await, tail)?),
        request_id: None,
    })
}
