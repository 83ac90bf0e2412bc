//! Namespaces.

use model::time::format_ms;

use super::Cx;
use super::{descending, paging, required_str};
use crate::error::ApiError;
use crate::wire;

type R<T> = Result<T, ApiError>;

pub(crate) async fn create(
    cx: &Cx,
    r: wire::CreateNamespaceRequest,
) -> R<wire::CreateNamespaceResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let ns = required_str(r.namespace, "Namespace")?;
    if r.resource_env.is_some() {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "ResourceEnv (a namespace on a Kubernetes cluster) is not supported by Stratus.",
        ));
    }
    ctl.create_namespace(caller, &ns, r.description.as_deref().unwrap_or(""))
        .await?;
    Ok(wire::CreateNamespaceResponse::default())
}

pub(crate) async fn update(
    cx: &Cx,
    r: wire::UpdateNamespaceRequest,
) -> R<wire::UpdateNamespaceResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let ns = required_str(r.namespace, "Namespace")?;
    let d = r
        .description
        .ok_or_else(|| ApiError::missing("Description"))?;
    ctl.update_namespace(caller, &ns, &d).await?;
    Ok(wire::UpdateNamespaceResponse::default())
}

pub(crate) async fn delete(
    cx: &Cx,
    r: wire::DeleteNamespaceRequest,
) -> R<wire::DeleteNamespaceResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let ns = required_str(r.namespace, "Namespace")?;
    ctl.delete_namespace(caller, &ns).await?;
    Ok(wire::DeleteNamespaceResponse::default())
}

pub(crate) async fn list(
    cx: &Cx,
    r: wire::ListNamespacesRequest,
) -> R<wire::ListNamespacesResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let (offset, limit) = paging(r.offset, r.limit, 1000)?;
    let mut all = ctl.list_namespaces(caller).await?;
    for k in r.search_key.iter().flatten() {
        let value = k.value.clone().unwrap_or_default();
        match k.key.as_deref() {
            Some("Namespace") => all.retain(|n| n.name.contains(&value)),
            Some("Description") => all.retain(|n| n.description.contains(&value)),
            other => {
                return Err(ApiError::invalid_value(
                    "SearchKey",
                    format!(
                        "search key `{}` is not Namespace or Description.",
                        other.unwrap_or("")
                    ),
                ));
            }
        }
    }
    match r.orderby.as_deref() {
        None | Some("") | Some("AddTime") => all.sort_by_key(|n| (n.add_ms, n.name.clone())),
        Some("ModTime") => all.sort_by_key(|n| (n.mod_ms, n.name.clone())),
        Some("Name") => all.sort_by(|a, b| a.name.cmp(&b.name)),
        Some(o) => {
            return Err(ApiError::invalid_value(
                "OrderBy",
                format!("Orderby `{o}` is not one of AddTime, ModTime, Name."),
            ));
        }
    }
    if descending(r.order.as_deref(), false)? {
        all.reverse();
    }
    let total = all.len() as i64;
    Ok(wire::ListNamespacesResponse {
        namespaces: Some(
            all.iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|n| wire::Namespace {
                    mod_time: Some(format_ms(n.mod_ms)),
                    add_time: Some(format_ms(n.add_ms)),
                    description: Some(n.description.clone()),
                    name: Some(n.name.clone()),
                    r#type: Some("default".into()),
                })
                .collect(),
        ),
        total_count: Some(total),
        request_id: None,
    })
}
