//! Functions and versions.

use control::{CreateFunction, FunctionOrder, ListFunctions};
use model::{ConfigPatch, LayerRef, Qualifier};

use super::Cx;
use super::{descending, flag, namespace, paging, required, required_str, zip_bytes};
use crate::error::ApiError;
use crate::views::{self, environment_in, keep};
use crate::wire;

type R<T> = Result<T, ApiError>;

fn layers_in(l: &Option<Vec<wire::LayerVersionSimple>>) -> R<Option<Vec<LayerRef>>> {
    let Some(l) = l else { return Ok(None) };
    l.iter()
        .map(|l| {
            Ok(LayerRef {
                name: required_str(l.layer_name.clone(), "Layers.LayerName")?,
                version: required(l.layer_version, "Layers.LayerVersion")?,
            })
        })
        .collect::<R<Vec<_>>>()
        .map(Some)
}

/// Code comes inline as base64 (`Code.ZipFile`); other sources need services Stratus does not have.
fn inline_zip(code: Option<&wire::Code>, top_level: Option<&str>) -> R<Vec<u8>> {
    if let Some(z) = top_level.filter(|z| !z.is_empty()) {
        return zip_bytes(z, "ZipFile");
    }
    let Some(code) = code else {
        return Err(ApiError::new(
            "MissingParameter.Code",
            "Code is required: give the zip package as base64 in Code.ZipFile.",
        ));
    };
    if let Some(z) = code.zip_file.as_deref().filter(|z| !z.is_empty()) {
        return zip_bytes(z, "ZipFile");
    }
    let other = [
        (
            "Cos",
            code.cos_bucket_name.is_some() || code.cos_object_name.is_some(),
        ),
        ("DemoId", code.demo_id.is_some()),
        ("TempCosObjectName", code.temp_cos_object_name.is_some()),
        ("GitUrl", code.git_url.is_some()),
        ("ImageConfig", code.image_config.is_some()),
    ];
    match other.iter().find(|(_, set)| *set) {
        Some((what, _)) => Err(ApiError::new(
            "UnsupportedOperation",
            format!(
                "code from {what} is not supported by Stratus: give the zip inline in Code.ZipFile."
            ),
        )),
        None => Err(ApiError::new(
            "MissingParameter.Code",
            "Code.ZipFile is required: give the zip package as base64.",
        )),
    }
}

pub(crate) async fn create(
    cx: &Cx,
    r: wire::CreateFunctionRequest,
) -> R<wire::CreateFunctionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name.clone(), "FunctionName")?;
    let zip = inline_zip(r.code.as_ref(), None)?;
    let mut patch = ConfigPatch {
        handler: r.handler.clone(),
        runtime: r.runtime.clone(),
        memory_size: r.memory_size,
        timeout: r.timeout,
        init_timeout: r.init_timeout,
        description: r.description.clone(),
        environment: r.environment.as_ref().map(environment_in),
        layers: layers_in(&r.layers)?,
        function_type: r.r#type.clone(),
        role: r.role.clone(),
        public_net: r
            .public_net_config
            .as_ref()
            .and_then(|p| p.public_net_status.clone()),
        install_dependency: r.install_dependency.clone(),
        async_run_enable: r.async_run_enable.clone(),
        trace_enable: r.trace_enable.clone(),
        dns_cache: r.dns_cache.clone(),
        l5_enable: None,
        cls_logset_id: r.cls_logset_id.clone(),
        cls_topic_id: r.cls_topic_id.clone(),
        stored: Default::default(),
    };
    keep(&mut patch.stored, "VpcConfig", &r.vpc_config);
    keep(&mut patch.stored, "DeadLetterConfig", &r.dead_letter_config);
    keep(&mut patch.stored, "CfsConfig", &r.cfs_config);
    keep(&mut patch.stored, "Tags", &r.tags);
    keep(&mut patch.stored, "IntranetConfig", &r.intranet_config);
    keep(&mut patch.stored, "ProtocolType", &r.protocol_type);
    keep(&mut patch.stored, "ProtocolParams", &r.protocol_params);
    keep(
        &mut patch.stored,
        "InstanceConcurrencyConfig",
        &r.instance_concurrency_config,
    );
    ctl.create_function(
        caller,
        CreateFunction {
            namespace: namespace(r.namespace),
            name,
            zip,
            patch,
        },
    )
    .await?;
    Ok(wire::CreateFunctionResponse::default())
}

/// The wire view of bound layers, looked up for their details.
async fn bound_layers(cx: &Cx, row: &control::FunctionRow) -> Vec<wire::LayerVersionInfo> {
    let mut out = Vec::new();
    let Some(s) = row.shown() else { return out };
    for l in &s.config.layers {
        match cx
            .ctl
            .get_layer_version(&cx.caller, &l.name, l.version)
            .await
        {
            Ok(lv) => out.push(views::layer_info(&lv)),
            Err(_) => out.push(wire::LayerVersionInfo {
                layer_name: Some(l.name.clone()),
                layer_version: Some(l.version),
                ..Default::default()
            }),
        }
    }
    out
}

pub(crate) async fn get(cx: &Cx, r: wire::GetFunctionRequest) -> R<wire::GetFunctionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name, "FunctionName")?;
    let ns = namespace(r.namespace);
    let q = r.qualifier.filter(|q| !q.is_empty());
    let view = ctl.get_function(caller, &ns, &name, q.as_deref()).await?;
    let layers = bound_layers(cx, &view.row).await;
    let triggers = ctl
        .function_triggers(
            caller,
            &ns,
            &name,
            q.as_deref().unwrap_or(Qualifier::LATEST),
        )
        .await?;
    let mut resp = views::function_response(&view.row, view.available_status, layers);
    resp.triggers = Some(triggers.iter().map(views::trigger_out).collect());
    Ok(resp)
}

pub(crate) async fn list(cx: &Cx, r: wire::ListFunctionsRequest) -> R<wire::ListFunctionsResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let (offset, limit) = paging(r.offset, r.limit, 1000)?;
    let order_by = match r.orderby.as_deref() {
        None | Some("") | Some("AddTime") => FunctionOrder::AddTime,
        Some("ModTime") => FunctionOrder::ModTime,
        Some("FunctionName") => FunctionOrder::FunctionName,
        Some(o) => {
            return Err(ApiError::invalid_value(
                "OrderBy",
                format!("Orderby `{o}` is not one of AddTime, ModTime, FunctionName."),
            ));
        }
    };
    let descending = descending(r.order.as_deref(), true)?;
    let mut runtimes = Vec::new();
    let mut statuses = Vec::new();
    for f in r.filters.iter().flatten() {
        let values = f.values.clone().unwrap_or_default();
        match f.name.as_deref() {
            Some("Runtime") => runtimes.extend(values),
            Some("Status") => statuses.extend(values),
            other => {
                return Err(ApiError::invalid_value(
                    "Filters",
                    format!(
                        "filter `{}` is not supported by Stratus; use Runtime or Status.",
                        other.unwrap_or("")
                    ),
                ));
            }
        }
    }
    let req = ListFunctions {
        namespace: namespace(r.namespace),
        query: store_query(
            order_by,
            descending,
            offset,
            limit,
            r.search_key,
            r.description,
            runtimes,
            statuses,
        ),
    };
    let (rows, total) = ctl.list_functions(caller, &req).await?;
    let reserved = ctl.reservations(caller).await?;
    Ok(wire::ListFunctionsResponse {
        functions: Some(
            rows.iter()
                .map(|row| {
                    let mut f = views::function_item(row);
                    let key = (row.key.namespace.clone(), row.key.name.clone());
                    f.reserved_concurrency_mem =
                        Some(reserved.get(&key).copied().unwrap_or(0).max(0) as u64);
                    f
                })
                .collect(),
        ),
        total_count: Some(total),
        request_id: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn store_query(
    order_by: FunctionOrder,
    descending: bool,
    offset: i64,
    limit: i64,
    search: Option<String>,
    description: Option<String>,
    runtimes: Vec<String>,
    statuses: Vec<String>,
) -> control::ListQuery {
    control::ListQuery {
        order_by,
        descending,
        offset,
        limit,
        search: search.filter(|s| !s.is_empty()),
        description: description.filter(|s| !s.is_empty()),
        runtimes,
        statuses,
    }
}

pub(crate) async fn update_code(
    cx: &Cx,
    r: wire::UpdateFunctionCodeRequest,
) -> R<wire::UpdateFunctionCodeResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name, "FunctionName")?;
    if r.cos_bucket_name.is_some() || r.cos_object_name.is_some() {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "code from COS is not supported by Stratus: give the zip inline in ZipFile or Code.ZipFile.",
        ));
    }
    let zip = inline_zip(r.code.as_ref(), r.zip_file.as_deref())?;
    let publish = flag(r.publish.as_deref(), "Publish")?;
    ctl.update_function_code(
        caller,
        &namespace(r.namespace),
        &name,
        zip,
        r.handler.filter(|h| !h.is_empty()),
        publish,
    )
    .await?;
    Ok(wire::UpdateFunctionCodeResponse::default())
}

pub(crate) async fn update_configuration(
    cx: &Cx,
    r: wire::UpdateFunctionConfigurationRequest,
) -> R<wire::UpdateFunctionConfigurationResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name.clone(), "FunctionName")?;
    let publish = flag(r.publish.as_deref(), "Publish")?;
    let mut patch = ConfigPatch {
        handler: None,
        runtime: r.runtime.clone(),
        memory_size: r.memory_size,
        timeout: r.timeout,
        init_timeout: r.init_timeout,
        description: r.description.clone(),
        environment: r.environment.as_ref().map(environment_in),
        layers: layers_in(&r.layers)?,
        function_type: None,
        role: r.role.clone(),
        public_net: r
            .public_net_config
            .as_ref()
            .and_then(|p| p.public_net_status.clone()),
        install_dependency: r.install_dependency.clone(),
        async_run_enable: None,
        trace_enable: None,
        dns_cache: r.dns_cache.clone(),
        l5_enable: r.l5_enable.clone(),
        cls_logset_id: r.cls_logset_id.clone(),
        cls_topic_id: r.cls_topic_id.clone(),
        stored: Default::default(),
    };
    keep(&mut patch.stored, "VpcConfig", &r.vpc_config);
    keep(&mut patch.stored, "DeadLetterConfig", &r.dead_letter_config);
    keep(&mut patch.stored, "CfsConfig", &r.cfs_config);
    keep(&mut patch.stored, "IntranetConfig", &r.intranet_config);
    keep(&mut patch.stored, "ProtocolParams", &r.protocol_params);
    keep(
        &mut patch.stored,
        "InstanceConcurrencyConfig",
        &r.instance_concurrency_config,
    );
    ctl.update_function_configuration(caller, &namespace(r.namespace), &name, patch, publish)
        .await?;
    Ok(wire::UpdateFunctionConfigurationResponse::default())
}

pub(crate) async fn delete(
    cx: &Cx,
    r: wire::DeleteFunctionRequest,
) -> R<wire::DeleteFunctionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name, "FunctionName")?;
    let q = r.qualifier.filter(|q| !q.is_empty());
    ctl.delete_function(caller, &namespace(r.namespace), &name, q.as_deref())
        .await?;
    Ok(wire::DeleteFunctionResponse::default())
}

pub(crate) async fn delete_version(
    cx: &Cx,
    r: wire::DeleteFunctionVersionRequest,
) -> R<wire::DeleteFunctionVersionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name, "FunctionName")?;
    let q = required_str(r.qualifier, "Qualifier")?;
    ctl.delete_function_version(caller, &namespace(r.namespace), &name, &q)
        .await?;
    Ok(wire::DeleteFunctionVersionResponse::default())
}

pub(crate) async fn publish_version(
    cx: &Cx,
    r: wire::PublishVersionRequest,
) -> R<wire::PublishVersionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name, "FunctionName")?;
    let ns = namespace(r.namespace);
    let v = ctl
        .publish_version(caller, &ns, &name, r.description.as_deref().unwrap_or(""))
        .await?;
    let snap = v.pending.as_ref().or(v.serving.as_ref());
    Ok(wire::PublishVersionResponse {
        function_version: Some(v.qualifier.clone()),
        code_size: snap.map(|s| s.code.size as i64),
        memory_size: snap.map(|s| s.config.memory_size),
        description: Some(v.version_description.clone()),
        handler: snap.map(|s| s.config.handler.clone()),
        timeout: snap.map(|s| s.config.timeout),
        runtime: snap.map(|s| s.config.runtime.clone()),
        namespace: Some(ns),
        request_id: None,
    })
}

/// ListVersionByFunction's Offset and Limit (default 0 and 20; Limit at most 10,000) as positions. The wire
/// type is unsigned, so a negative value is refused when the body is decoded; what does not fit a `usize` is
/// refused here rather than truncated.
fn version_window(offset: Option<u64>, limit: Option<u64>) -> Result<(usize, usize), ApiError> {
    let offset = usize::try_from(offset.unwrap_or(0)).map_err(|_| {
        ApiError::invalid_value(
            "Offset",
            "Offset is larger than the number of versions can be.",
        )
    })?;
    let limit = usize::try_from(limit.unwrap_or(20).min(10_000))
        .map_err(|_| ApiError::invalid_value("Limit", "Limit is out of range."))?;
    Ok((offset, limit))
}

pub(crate) async fn list_versions(
    cx: &Cx,
    r: wire::ListVersionByFunctionRequest,
) -> R<wire::ListVersionByFunctionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.function_name, "FunctionName")?;
    let (offset, limit) = version_window(r.offset, r.limit)?;
    match r.order_by.as_deref() {
        None | Some("") | Some("AddTime") | Some("ModTime") => {}
        Some(o) => {
            return Err(ApiError::invalid_value(
                "OrderBy",
                format!("OrderBy `{o}` is not one of AddTime, ModTime."),
            ));
        }
    }
    let descending = descending(r.order.as_deref(), false)?;
    let list = ctl
        .list_versions(
            caller,
            &namespace(r.namespace),
            &name,
            offset,
            limit,
            descending,
        )
        .await?;
    Ok(wire::ListVersionByFunctionResponse {
        function_version: Some(list.versions.iter().map(|v| v.qualifier.clone()).collect()),
        versions: Some(
            list.versions
                .iter()
                .map(|v| wire::FunctionVersion {
                    version: Some(v.qualifier.clone()),
                    description: Some(if v.qualifier == Qualifier::LATEST {
                        v.shown()
                            .map(|s| s.config.description.clone())
                            .unwrap_or_default()
                    } else {
                        v.version_description.clone()
                    }),
                    add_time: Some(model::time::format_ms(v.add_ms)),
                    mod_time: Some(model::time::format_ms(v.mod_ms)),
                    status: Some(v.status.as_str().into()),
                })
                .collect(),
        ),
        total_count: Some(list.total as u64),
        request_id: None,
    })
}

pub(crate) async fn get_account(
    cx: &Cx,
    _r: wire::GetAccountRequest,
) -> R<wire::GetAccountResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let usage = ctl.get_account(caller).await?;
    let limits = &ctl.config().limits;
    let c = &usage.concurrency;
    let ns_of = |ns: &str| c.namespaces.get(ns).copied().unwrap_or_default();
    Ok(wire::GetAccountResponse {
        account_usage: Some(wire::UsageInfo {
            namespaces_count: Some(usage.namespaces.len() as i64),
            namespace: Some(
                usage
                    .namespaces
                    .iter()
                    .map(|(ns, names)| wire::NamespaceUsage {
                        functions: Some(names.clone()),
                        namespace: Some(ns.clone()),
                        functions_count: Some(names.len() as i64),
                        // The namespace's total (0: none of its own, the account quota applies).
                        total_concurrency_mem: Some(ns_of(ns).total_mb.unwrap_or(0)),
                        // SCF: the namespace's concurrency in use, the memory of its running instances.
                        total_allocated_concurrency_mem: Some(ns_of(ns).running_mb),
                        total_allocated_provisioned_mem: Some(0),
                    })
                    .collect(),
            ),
            total_concurrency_mem: Some(c.quota_mb),
            // SCF: the concurrency memory the account has configured, i.e. reserved for functions.
            total_allocated_concurrency_mem: Some(c.reserved_mb),
            user_concurrency_mem_limit: Some(c.quota_mb),
        }),
        account_limit: Some(wire::LimitsInfo {
            namespaces_count: Some(limits.namespaces),
            namespace: Some(
                usage
                    .namespaces
                    .iter()
                    .map(|(ns, _)| wire::NamespaceLimit {
                        functions_count: Some(limits.functions_per_namespace),
                        trigger: Some(trigger_limits(limits.triggers_per_type)),
                        namespace: Some(ns.clone()),
                        concurrent_executions: Some(limits.concurrent_executions),
                        timeout_limit: Some(limits.timeout_max),
                        test_model_limit: Some(0),
                        init_timeout_limit: Some(limits.init_timeout_max),
                        retry_num_limit: Some(control::events::MAX_RETRY_NUM),
                        min_msg_ttl: Some(control::events::MIN_MSG_TTL_SECS),
                        max_msg_ttl: Some(control::events::MAX_MSG_TTL_SECS),
                    })
                    .collect(),
            ),
        }),
        request_id: None,
    })
}

/// Triggers per type and per function: the same limit for every type SCF counts, and their sum.
fn trigger_limits(per_type: i64) -> wire::TriggerCount {
    wire::TriggerCount {
        cos: Some(per_type),
        timer: Some(per_type),
        cmq: Some(per_type),
        total: Some(per_type * 11),
        ckafka: Some(per_type),
        apigw: Some(per_type),
        cls: Some(per_type),
        clb: Some(per_type),
        mps: Some(per_type),
        cm: Some(per_type),
        vod: Some(per_type),
        eb: Some(per_type),
    }
}

pub(crate) async fn get_address(
    cx: &Cx,
    r: wire::GetFunctionAddressRequest,
) -> R<wire::GetFunctionAddressResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let q = r.qualifier.filter(|q| !q.is_empty());
    let code = cx
        .ctl
        .function_code(&cx.caller, &namespace(r.namespace), &name, q.as_deref())
        .await?;
    let key = cx.ctl.download_key().await?;
    let expires = crate::server::unix_now() + crate::download::LINK_TTL_SECS;
    Ok(wire::GetFunctionAddressResponse {
        url: Some(format!(
            "{}{}",
            cx.base_url,
            crate::download::link(&key, &code.sha256, expires)
        )),
        code_sha256: Some(code.sha256),
        request_id: None,
    })
}

pub(crate) async fn copy(cx: &Cx, r: wire::CopyFunctionRequest) -> R<wire::CopyFunctionResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let new_name = required_str(r.new_function_name, "NewFunctionName")?;
    if let Some(region) = r.target_region.as_deref().filter(|t| !t.is_empty())
        && region != cx.region
    {
        return Err(ApiError::new(
            "UnsupportedOperation.CopyFunction",
            format!(
                "copying to another region ({region}) is not supported: a Stratus installation serves one region."
            ),
        ));
    }
    let ns = namespace(r.namespace);
    let target_ns = r
        .target_namespace
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| ns.clone());
    cx.ctl
        .copy_function(
            &cx.caller,
            &ns,
            &name,
            &target_ns,
            &new_name,
            r.description,
            r.copy_configuration.unwrap_or(true),
            r.r#override.unwrap_or(false),
        )
        .await?;
    Ok(wire::CopyFunctionResponse::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_paging_is_checked() {
        assert_eq!(version_window(None, None).expect("defaults"), (0, 20));
        assert_eq!(
            version_window(Some(5), Some(50_000)).expect("clamped"),
            (5, 10_000)
        );
        assert_eq!(
            version_window(Some(u64::MAX), Some(0)).expect("fits a 64-bit usize"),
            (usize::try_from(u64::MAX).unwrap_or(usize::MAX), 0)
        );
        // Negative values never reach the cast: the unsigned wire field refuses them as the body is decoded.
        for body in [
            &br#"{"FunctionName":"f","Offset":-1}"#[..],
            br#"{"FunctionName":"f","Limit":-1}"#,
        ] {
            let e = super::super::parse::<wire::ListVersionByFunctionRequest>(body)
                .expect_err("negative");
            assert_eq!(e.code, "InvalidParameter", "{e:?}");
        }
    }
}
