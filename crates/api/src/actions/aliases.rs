//! Aliases.

use control::AliasSpec;

use super::Cx;
use super::{namespace, required_str};
use crate::error::ApiError;
use crate::views::{alias_out, routing_in};
use crate::wire;

type R<T> = Result<T, ApiError>;

fn spec(
    name: Option<String>,
    version: Option<String>,
    routing: Option<&wire::RoutingConfig>,
    description: Option<String>,
) -> R<AliasSpec> {
    Ok(AliasSpec {
        name: required_str(name, "Name")?,
        function_version: required_str(version, "FunctionVersion")?,
        routing: routing_in(routing),
        description,
    })
}

pub(crate) async fn create(cx: &Cx, r: wire::CreateAliasRequest) -> R<wire::CreateAliasResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let a = spec(
        r.name,
        r.function_version,
        r.routing_config.as_ref(),
        r.description,
    )?;
    cx.ctl
        .create_alias(&cx.caller, &namespace(r.namespace), &f, a)
        .await?;
    Ok(wire::CreateAliasResponse::default())
}

pub(crate) async fn update(cx: &Cx, r: wire::UpdateAliasRequest) -> R<wire::UpdateAliasResponse> {
    let f = required_str(r.function_name, "FunctionName")?;
    let a = spec(
        r.name,
        r.function_version,
        r.routing_config.as_ref(),
        r.description,
    )?;
    cx.ctl
        .update_alias(&cx.caller, &namespace(r.namespace), &f, a)
        .await?;
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
