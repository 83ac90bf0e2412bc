//! Aliases.

use model::Alias;

use super::Cx;
use super::{namespace, required_str};
use crate::error::ApiError;
use crate::views::{alias_out, routing_in};
use crate::wire;

type R<T> = Result<T, ApiError>;

fn alias(
    name: String,
    version: String,
    routing: Option<&wire::RoutingConfig>,
    description: Option<String>,
) -> Alias {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Alias {
        name,
        function_version: version,
        routing: routing_in(routing),
        description: description.unwrap_or_default(),
        add_ms: now,
        mod_ms: now,
    }
}

pub(crate) async fn create(cx: &Cx, r: wire::CreateAliasRequest) -> R<wire::CreateAliasResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let f = required_str(r.function_name, "FunctionName")?;
    let a = alias(
        required_str(r.name, "Name")?,
        required_str(r.function_version, "FunctionVersion")?,
        r.routing_config.as_ref(),
        r.description,
    );
    ctl.create_alias(caller, &namespace(r.namespace), &f, a)
        .await?;
    Ok(wire::CreateAliasResponse::default())
}

pub(crate) async fn update(cx: &Cx, r: wire::UpdateAliasRequest) -> R<wire::UpdateAliasResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let f = required_str(r.function_name, "FunctionName")?;
    let ns = namespace(r.namespace);
    let name = required_str(r.name, "Name")?;
    let current = ctl.get_alias(caller, &ns, &f, &name).await?;
    let mut a = alias(
        name,
        required_str(r.function_version, "FunctionVersion")?,
        r.routing_config.as_ref(),
        r.description,
    );
    if r.routing_config.is_none() {
        a.routing = Default::default();
    }
    if a.description.is_empty() {
        a.description = current.description;
    }
    a.add_ms = current.add_ms;
    ctl.update_alias(caller, &ns, &f, a).await?;
    Ok(wire::UpdateAliasResponse::default())
}

pub(crate) async fn get(cx: &Cx, r: wire::GetAliasRequest) -> R<wire::GetAliasResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let f = required_str(r.function_name, "FunctionName")?;
    let name = required_str(r.name, "Name")?;
    let a = alias_out(
        &ctl.get_alias(caller, &namespace(r.namespace), &f, &name)
            .await?,
    );
    Ok(wire::GetAliasResponse {
        function_version: a.function_version,
        name: a.name,
        routing_config: a.routing_config,
        description: a.description,
        add_time: a.add_time,
        mod_time: a.mod_time,
        request_id: None,
    })
}

fn string_number(v: Option<&str>, field: &str, default: usize) -> R<usize> {
    match v {
        None | Some("") => Ok(default),
        Some(s) => s.parse().map_err(|_| {
            ApiError::invalid_value(field, format!("{field} must be a non-negative number."))
        }),
    }
}

pub(crate) async fn list(cx: &Cx, r: wire::ListAliasesRequest) -> R<wire::ListAliasesResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let f = required_str(r.function_name, "FunctionName")?;
    let offset = string_number(r.offset.as_deref(), "Offset", 0)?;
    let limit = string_number(r.limit.as_deref(), "Limit", 20)?;
    let all = ctl
        .list_aliases(
            caller,
            &namespace(r.namespace),
            &f,
            r.function_version.as_deref().filter(|v| !v.is_empty()),
        )
        .await?;
    Ok(wire::ListAliasesResponse {
        total_count: Some(all.len() as u64),
        aliases: Some(all.iter().skip(offset).take(limit).map(alias_out).collect()),
        request_id: None,
    })
}

pub(crate) async fn delete(cx: &Cx, r: wire::DeleteAliasRequest) -> R<wire::DeleteAliasResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let f = required_str(r.function_name, "FunctionName")?;
    let name = required_str(r.name, "Name")?;
    ctl.delete_alias(caller, &namespace(r.namespace), &f, &name)
        .await?;
    Ok(wire::DeleteAliasResponse::default())
}
