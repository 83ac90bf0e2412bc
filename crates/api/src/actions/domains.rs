//! Custom domains.

use control::domains::{Domain, DomainOrder, DomainSpec, Endpoint, RewriteRule};

use super::Cx;
use super::{descending, paging, required_str};
use crate::error::ApiError;
use crate::wire;

type R<T> = Result<T, ApiError>;

/// Most domains one ListCustomDomains page returns.
const LIST_LIMIT_MAX: i64 = 100;

fn endpoints(eps: Vec<wire::EndpointsConf>) -> R<Vec<Endpoint>> {
    eps.into_iter()
        .map(|e| {
            Ok(Endpoint {
                namespace: e
                    .namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".into()),
                function: required_str(e.function_name, "FunctionName")?,
                qualifier: e
                    .qualifier
                    .filter(|q| !q.is_empty())
                    .unwrap_or_else(|| "$LATEST".into()),
                path_match: required_str(e.path_match, "PathMatch")?,
                rewrites: e
                    .path_rewrite
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        Ok(RewriteRule {
                            path: required_str(r.path, "Path")?,
                            kind: required_str(r.r#type, "Type")?,
                            rewrite: required_str(r.rewrite, "Rewrite")?,
                        })
                    })
                    .collect::<R<_>>()?,
            })
        })
        .collect()
}

fn endpoints_out(eps: &[Endpoint]) -> Vec<wire::EndpointsConf> {
    eps.iter()
        .map(|e| wire::EndpointsConf {
            namespace: Some(e.namespace.clone()),
            function_name: Some(e.function.clone()),
            qualifier: Some(e.qualifier.clone()),
            path_match: Some(e.path_match.clone()),
            path_rewrite: Some(
                e.rewrites
                    .iter()
                    .map(|r| wire::PathRewriteRule {
                        path: Some(r.path.clone()),
                        r#type: Some(r.kind.clone()),
                        rewrite: Some(r.rewrite.clone()),
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn tags(t: Option<Vec<wire::Tag>>) -> R<Option<Vec<(String, String)>>> {
    t.map(|v| {
        v.into_iter()
            .map(|t| Ok((required_str(t.key, "Key")?, t.value.unwrap_or_default())))
            .collect()
    })
    .transpose()
}

fn info(d: &Domain) -> wire::DomainInfo {
    wire::DomainInfo {
        domain: Some(d.domain.clone()),
        protocol: Some(d.protocol.clone()),
        endpoints_config: Some(endpoints_out(&d.endpoints)),
        cert_config: Some(wire::CertConf {
            certificate_id: Some(d.cert_id.clone()),
        }),
        waf_config: Some(wire::WafConf {
            waf_open: Some(if d.waf_open.is_empty() {
                "CLOSE".into()
            } else {
                d.waf_open.clone()
            }),
            waf_instance_id: Some(d.waf_instance_id.clone()),
        }),
        tags: Some(
            d.tags
                .iter()
                .map(|(k, v)| wire::Tag {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
                .collect(),
        ),
    }
}

pub(crate) async fn create(
    cx: &Cx,
    r: wire::CreateCustomDomainRequest,
) -> R<wire::CreateCustomDomainResponse> {
    let spec = DomainSpec {
        domain: required_str(r.domain, "Domain")?,
        protocol: Some(required_str(r.protocol, "Protocol")?),
        endpoints: Some(endpoints(
            r.endpoints_config
                .ok_or_else(|| ApiError::missing("EndpointsConfig"))?,
        )?),
        cert_id: r.cert_config.and_then(|c| c.certificate_id),
        waf_open: r.waf_config.as_ref().and_then(|w| w.waf_open.clone()),
        waf_instance_id: r.waf_config.and_then(|w| w.waf_instance_id),
        tags: tags(r.tags)?,
    };
    cx.ctl.create_domain(&cx.caller, spec).await?;
    Ok(wire::CreateCustomDomainResponse::default())
}

pub(crate) async fn get(
    cx: &Cx,
    r: wire::GetCustomDomainRequest,
) -> R<wire::GetCustomDomainResponse> {
    let d = cx
        .ctl
        .get_domain(&cx.caller, &required_str(r.domain, "Domain")?)
        .await?;
    let i = info(&d);
    Ok(wire::GetCustomDomainResponse {
        domain: i.domain,
        protocol: i.protocol,
        endpoints_config: i.endpoints_config,
        cert_config: i.cert_config,
        waf_config: i.waf_config,
        tags: i.tags,
        request_id: None,
    })
}

/// ListCustomDomains: `OrderBy` `AddTime` (default) or `ModTime`, `Order` `DESC` (default) or `ASC`, `Offset`,
/// `Limit` (default 20, at most 100). `Filters` are refused: SCF documents no filter names for domains.
pub(crate) async fn list(
    cx: &Cx,
    r: wire::ListCustomDomainsRequest,
) -> R<wire::ListCustomDomainsResponse> {
    let as_i64 = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let (offset, limit) = paging(as_i64(r.offset), as_i64(r.limit), LIST_LIMIT_MAX)?;
    let order = match r.order_by.as_deref() {
        None | Some("") | Some("AddTime") => DomainOrder::AddTime,
        Some("ModTime") => DomainOrder::ModTime,
        Some(o) => {
            return Err(ApiError::invalid_value(
                "OrderBy",
                format!("OrderBy `{o}` is not AddTime or ModTime."),
            ));
        }
    };
    if r.filters.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::invalid_value(
            "Filters",
            "ListCustomDomains takes no filters.",
        ));
    }
    let desc = descending(r.order.as_deref(), true)?;
    let (rows, total) = cx
        .ctl
        .list_domains(&cx.caller, order, desc, offset, limit)
        .await?;
    Ok(wire::ListCustomDomainsResponse {
        total: Some(total.max(0) as u64),
        domains: Some(rows.iter().map(info).collect()),
        request_id: None,
    })
}

pub(crate) async fn update(
    cx: &Cx,
    r: wire::UpdateCustomDomainRequest,
) -> R<wire::UpdateCustomDomainResponse> {
    let spec = DomainSpec {
        domain: required_str(r.domain, "Domain")?,
        protocol: r.protocol.filter(|p| !p.is_empty()),
        endpoints: r.endpoints_config.map(endpoints).transpose()?,
        cert_id: r.cert_config.and_then(|c| c.certificate_id),
        waf_open: r.waf_config.as_ref().and_then(|w| w.waf_open.clone()),
        waf_instance_id: r.waf_config.and_then(|w| w.waf_instance_id),
        tags: None,
    };
    cx.ctl.update_domain(&cx.caller, spec).await?;
    Ok(wire::UpdateCustomDomainResponse::default())
}

pub(crate) async fn delete(
    cx: &Cx,
    r: wire::DeleteCustomDomainRequest,
) -> R<wire::DeleteCustomDomainResponse> {
    cx.ctl
        .delete_domain(&cx.caller, &required_str(r.domain, "Domain")?)
        .await?;
    Ok(wire::DeleteCustomDomainResponse::default())
}
