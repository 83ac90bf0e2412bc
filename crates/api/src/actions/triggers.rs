//! Triggers.

use control::{NewTrigger, TriggerAddress, TriggerChange, TriggerOrder, TriggerQuery};

use super::Cx;
use super::{descending, namespace, paging, required_str};
use crate::error::ApiError;
use crate::views::{trigger_info, trigger_out};
use crate::wire;

type R<T> = Result<T, ApiError>;

/// Most triggers one ListTriggers page returns.
const LIST_LIMIT_MAX: i64 = 100;

fn address(
    name: Option<String>,
    ty: Option<String>,
    qualifier: Option<String>,
) -> R<TriggerAddress> {
    Ok(TriggerAddress {
        name: required_str(name, "TriggerName")?,
        trigger_type: required_str(ty, "Type")?,
        qualifier: qualifier.filter(|q| !q.is_empty()),
    })
}

pub(crate) async fn create(
    cx: &Cx,
    r: wire::CreateTriggerRequest,
) -> R<wire::CreateTriggerResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let spec = NewTrigger {
        name: required_str(r.trigger_name, "TriggerName")?,
        trigger_type: required_str(r.r#type, "Type")?,
        desc: r.trigger_desc,
        qualifier: r.qualifier,
        enable: r.enable,
        custom_argument: r.custom_argument,
        description: r.description,
        region: cx.region.clone(),
    };
    let t = cx
        .ctl
        .create_trigger(&cx.caller, &namespace(r.namespace), &f, spec)
        .await?;
    Ok(wire::CreateTriggerResponse {
        trigger_info: Some(trigger_out(&t)),
        request_id: None,
    })
}

pub(crate) async fn update(
    cx: &Cx,
    r: wire::UpdateTriggerRequest,
) -> R<wire::UpdateTriggerResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let a = address(r.trigger_name, r.r#type, r.qualifier)?;
    let change = TriggerChange {
        enable: r.enable,
        desc: r.trigger_desc,
        custom_argument: r.custom_argument,
        description: r.description,
    };
    cx.ctl
        .update_trigger(&cx.caller, &namespace(r.namespace), &f, a, change)
        .await?;
    Ok(wire::UpdateTriggerResponse::default())
}

pub(crate) async fn update_status(
    cx: &Cx,
    r: wire::UpdateTriggerStatusRequest,
) -> R<wire::UpdateTriggerStatusResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let enable = required_str(r.enable, "Enable")?;
    let a = address(r.trigger_name, r.r#type, r.qualifier)?;
    cx.ctl
        .update_trigger_status(&cx.caller, &namespace(r.namespace), &f, a, &enable)
        .await?;
    Ok(wire::UpdateTriggerStatusResponse::default())
}

pub(crate) async fn delete(
    cx: &Cx,
    r: wire::DeleteTriggerRequest,
) -> R<wire::DeleteTriggerResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let a = address(r.trigger_name, r.r#type, r.qualifier)?;
    cx.ctl
        .delete_trigger(&cx.caller, &namespace(r.namespace), &f, a)
        .await?;
    Ok(wire::DeleteTriggerResponse::default())
}

/// ListTriggers: `Filters` on `Qualifier` and `TriggerName` (exact) and `Description` (a substring), each keeping
/// the triggers that match any of its values; `OrderBy` `add_time` or `mod_time` (default), `Order` `DESC`
/// (default) or `ASC`; `Offset`, `Limit` (default 20, at most 100).
pub(crate) async fn list(cx: &Cx, r: wire::ListTriggersRequest) -> R<wire::ListTriggersResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let as_i64 = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let (offset, limit) = paging(as_i64(r.offset), as_i64(r.limit), LIST_LIMIT_MAX)?;
    let order_by = match r.order_by.as_deref() {
        None | Some("") | Some("mod_time") | Some("ModTime") => TriggerOrder::ModTime,
        Some("add_time") | Some("AddTime") => TriggerOrder::AddTime,
        Some(o) => {
            return Err(ApiError::invalid_value(
                "OrderBy",
                format!("OrderBy `{o}` is not add_time or mod_time."),
            ));
        }
    };
    let descending = descending(r.order.as_deref(), true)?;
    let mut query = TriggerQuery {
        order_by,
        descending,
        offset,
        limit,
        ..TriggerQuery::default()
    };
    for filter in r.filters.iter().flatten() {
        let name = filter.name.as_deref().unwrap_or("");
        let values = filter.values.clone().unwrap_or_default();
        if values.is_empty() {
            return Err(ApiError::invalid_value(
                "Filters",
                format!("filter `{name}` needs at least one value in Values."),
            ));
        }
        match name {
            "Qualifier" => query.qualifiers.extend(values),
            "TriggerName" => query.names.extend(values),
            "Description" => query.descriptions.extend(values),
            other => {
                return Err(ApiError::invalid_value(
                    "Filters",
                    format!(
                        "filter `{other}` is not one of ListTriggers' filters: Qualifier, TriggerName, Description."
                    ),
                ));
            }
        }
    }
    let (rows, total) = cx
        .ctl
        .list_triggers(&cx.caller, &namespace(r.namespace), &f, &query)
        .await?;
    Ok(wire::ListTriggersResponse {
        total_count: Some(total.max(0) as u64),
        triggers: Some(rows.iter().map(trigger_info).collect()),
        request_id: None,
    })
}
