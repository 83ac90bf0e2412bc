//! Turning control-plane records into wire shapes, and wire settings into control-plane values.

use std::collections::BTreeMap;

use control::{FunctionRow, LayerRow, TriggerRow};
use model::time::format_ms;
use model::{
    Alias, EnvVar, Environment, FunctionConfig, RoutingConfig, StatusReason, VersionMatch,
    VersionWeight,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire;

pub(crate) fn reasons(r: &[StatusReason]) -> Vec<wire::StatusReason> {
    r.iter()
        .map(|r| wire::StatusReason {
            error_code: Some(r.code.clone()),
            error_message: Some(r.message.clone()),
        })
        .collect()
}

pub(crate) fn environment_out(e: &Environment) -> wire::Environment {
    wire::Environment {
        variables: Some(
            e.variables
                .iter()
                .map(|v| wire::Variable {
                    key: Some(v.key.clone()),
                    value: Some(v.value.clone()),
                })
                .collect(),
        ),
    }
}

pub(crate) fn environment_in(e: &wire::Environment) -> Environment {
    Environment {
        variables: e
            .variables
            .iter()
            .flatten()
            .map(|v| EnvVar {
                key: v.key.clone().unwrap_or_default(),
                value: v.value.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Keeps an integration setting Stratus stores but does not act on.
pub(crate) fn keep<T: Serialize>(
    stored: &mut BTreeMap<String, serde_json::Value>,
    key: &str,
    v: &Option<T>,
) {
    if let Some(v) = v
        && let Ok(j) = serde_json::to_value(v)
    {
        stored.insert(key.to_string(), j);
    }
}

fn kept<T: DeserializeOwned>(c: &FunctionConfig, key: &str) -> Option<T> {
    c.stored
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

pub(crate) fn layer_info(l: &LayerRow) -> wire::LayerVersionInfo {
    wire::LayerVersionInfo {
        compatible_runtimes: Some(l.layer.compatible_runtimes.clone()),
        add_time: Some(format_ms(l.layer.add_ms)),
        description: Some(l.layer.description.clone()),
        license_info: Some(l.layer.license.clone()),
        layer_version: Some(l.layer.version),
        layer_name: Some(l.layer.name.clone()),
        status: Some(l.layer.status.as_str().to_string()),
        stamp: Some(String::new()),
        tags: Some(Vec::new()),
    }
}

/// The GetFunction view of a record. `layers` are the bound layer versions as found (missing ones are shown by
/// name and version only).
pub(crate) fn function_response(
    row: &FunctionRow,
    available_status: &str,
    layers: Vec<wire::LayerVersionInfo>,
) -> wire::GetFunctionResponse {
    let default_config = FunctionConfig::default();
    let shown = row.shown();
    let c = shown.map(|s| &s.config).unwrap_or(&default_config);
    let intranet: Option<wire::IntranetConfigIn> = kept(c, "IntranetConfig");
    wire::GetFunctionResponse {
        mod_time: Some(format_ms(row.mod_ms)),
        code_info: Some(String::new()),
        description: Some(if row.qualifier == model::Qualifier::LATEST {
            c.description.clone()
        } else {
            row.version_description.clone()
        }),
        triggers: Some(Vec::new()),
        handler: Some(c.handler.clone()),
        code_size: Some(shown.map(|s| s.code.size as i64).unwrap_or(0)),
        timeout: Some(c.timeout),
        function_version: Some(row.qualifier.clone()),
        memory_size: Some(c.memory_size),
        runtime: Some(c.runtime.clone()),
        function_name: Some(row.key.name.clone()),
        vpc_config: Some(kept(c, "VpcConfig").unwrap_or(wire::VpcConfig {
            vpc_id: Some(String::new()),
            subnet_id: Some(String::new()),
        })),
        use_gpu: Some("FALSE".into()),
        environment: Some(environment_out(&c.environment)),
        code_result: Some(
            if row.serving.is_some() {
                "success"
            } else {
                "failed"
            }
            .into(),
        ),
        code_error: Some(String::new()),
        err_no: Some(0),
        namespace: Some(row.key.namespace.clone()),
        role: Some(c.role.clone()),
        install_dependency: Some(c.install_dependency.clone()),
        status: Some(row.status.as_str().into()),
        status_desc: Some(row.status.description().into()),
        cls_logset_id: Some(c.cls_logset_id.clone()),
        cls_topic_id: Some(c.cls_topic_id.clone()),
        function_id: Some(row.function_id.clone()),
        tags: Some(kept(c, "Tags").unwrap_or_default()),
        eip_config: Some(wire::EipOutConfig {
            eip_fixed: Some("FALSE".into()),
            eips: Some(Vec::new()),
        }),
        access_info: Some(wire::AccessInfo {
            host: Some(String::new()),
            vip: Some(String::new()),
        }),
        r#type: Some(c.function_type.clone()),
        l5_enable: Some(c.l5_enable.clone()),
        layers: Some(layers),
        dead_letter_config: Some(
            kept(c, "DeadLetterConfig").unwrap_or(wire::DeadLetterConfig {
                r#type: Some(String::new()),
                name: Some(String::new()),
                filter_type: Some(String::new()),
            }),
        ),
        add_time: Some(format_ms(row.add_ms)),
        public_net_config: Some(wire::PublicNetConfigOut {
            public_net_status: Some(c.public_net.clone()),
            eip_config: Some(wire::EipConfigOut {
                eip_status: Some("DISABLE".into()),
                eip_address: Some(Vec::new()),
            }),
        }),
        ons_enable: Some("FALSE".into()),
        cfs_config: Some(kept(c, "CfsConfig").unwrap_or(wire::CfsConfig {
            cfs_ins_list: Some(Vec::new()),
        })),
        available_status: Some(available_status.into()),
        qualifier: Some(row.qualifier.clone()),
        init_timeout: Some(c.init_timeout),
        status_reasons: Some(reasons(&row.reasons)),
        async_run_enable: Some(c.async_run_enable.clone()),
        trace_enable: Some(c.trace_enable.clone()),
        image_config: None,
        protocol_type: Some(kept(c, "ProtocolType").unwrap_or_default()),
        protocol_params: kept(c, "ProtocolParams"),
        instance_concurrency_config: kept(c, "InstanceConcurrencyConfig"),
        dns_cache: Some(c.dns_cache.clone()),
        intranet_config: Some(wire::IntranetConfigOut {
            ip_fixed: Some(
                intranet
                    .and_then(|i| i.ip_fixed)
                    .unwrap_or_else(|| "DISABLE".into()),
            ),
            ip_address: Some(Vec::new()),
        }),
        request_id: None,
    }
}

/// The ListFunctions view of a `$LATEST` record.
pub(crate) fn function_item(row: &FunctionRow) -> wire::Function {
    let default_config = FunctionConfig::default();
    let c = row.shown().map(|s| &s.config).unwrap_or(&default_config);
    wire::Function {
        mod_time: Some(format_ms(row.mod_ms)),
        add_time: Some(format_ms(row.add_ms)),
        runtime: Some(c.runtime.clone()),
        function_name: Some(row.key.name.clone()),
        function_id: Some(row.function_id.clone()),
        namespace: Some(row.key.namespace.clone()),
        status: Some(row.status.as_str().into()),
        status_desc: Some(row.status.description().into()),
        description: Some(c.description.clone()),
        tags: Some(kept(c, "Tags").unwrap_or_default()),
        r#type: Some(c.function_type.clone()),
        status_reasons: Some(reasons(&row.reasons)),
        total_provisioned_concurrency_mem: Some(0),
        reserved_concurrency_mem: Some(0),
        async_run_enable: Some(c.async_run_enable.clone()),
        trace_enable: Some(c.trace_enable.clone()),
    }
}

pub(crate) fn routing_in(r: Option<&wire::RoutingConfig>) -> RoutingConfig {
    let Some(r) = r else {
        return RoutingConfig::default();
    };
    RoutingConfig {
        weights: r
            .additional_version_weights
            .iter()
            .flatten()
            .map(|w| VersionWeight {
                version: w.version.clone().unwrap_or_default(),
                weight: w.weight.unwrap_or(0.0),
            })
            .collect(),
        matches: r
            .addtion_version_matchs
            .iter()
            .flatten()
            .map(|m| VersionMatch {
                version: m.version.clone().unwrap_or_default(),
                key: m.key.clone().unwrap_or_default(),
                method: m.method.clone().unwrap_or_default(),
                expression: m.expression.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

pub(crate) fn routing_out(r: &RoutingConfig) -> wire::RoutingConfig {
    wire::RoutingConfig {
        additional_version_weights: Some(
            r.weights
                .iter()
                .map(|w| wire::VersionWeight {
                    version: Some(w.version.clone()),
                    weight: Some(w.weight),
                })
                .collect(),
        ),
        addtion_version_matchs: Some(
            r.matches
                .iter()
                .map(|m| wire::VersionMatch {
                    version: Some(m.version.clone()),
                    key: Some(m.key.clone()),
                    method: Some(m.method.clone()),
                    expression: Some(m.expression.clone()),
                })
                .collect(),
        ),
    }
}

pub(crate) fn alias_out(a: &Alias) -> wire::Alias {
    wire::Alias {
        function_version: Some(a.function_version.clone()),
        name: Some(a.name.clone()),
        routing_config: Some(routing_out(&a.routing)),
        description: Some(a.description.clone()),
        add_time: Some(format_ms(a.add_ms)),
        mod_time: Some(format_ms(a.mod_ms)),
    }
}

/// A trigger as CreateTrigger and GetFunction show it (`Enable` 1 or 0, SCF's times).
pub(crate) fn trigger_out(t: &TriggerRow) -> wire::Trigger {
    wire::Trigger {
        mod_time: Some(format_ms(t.mod_ms)),
        r#type: Some(t.trigger_type.clone()),
        trigger_desc: Some(t.desc.clone()),
        trigger_name: Some(t.name.clone()),
        add_time: Some(format_ms(t.add_ms)),
        enable: Some(i64::from(t.enabled)),
        custom_argument: Some(t.custom_argument.clone()),
        available_status: Some("Available".into()),
        resource_id: Some(t.resource_id.clone()),
        bind_status: Some("on".into()),
        trigger_attribute: Some("single".into()),
        qualifier: Some(t.qualifier.clone()),
        description: Some(t.description.clone()),
    }
}

/// A trigger as ListTriggers shows it.
pub(crate) fn trigger_info(t: &TriggerRow) -> wire::TriggerInfo {
    wire::TriggerInfo {
        enable: Some(u64::from(t.enabled)),
        qualifier: Some(t.qualifier.clone()),
        trigger_name: Some(t.name.clone()),
        r#type: Some(t.trigger_type.clone()),
        trigger_desc: Some(t.desc.clone()),
        available_status: Some("Available".into()),
        custom_argument: Some(t.custom_argument.clone()),
        add_time: Some(format_ms(t.add_ms)),
        mod_time: Some(format_ms(t.mod_ms)),
        resource_id: Some(t.resource_id.clone()),
        bind_status: Some("on".into()),
        trigger_attribute: Some("single".into()),
        description: Some(t.description.clone()),
        bound_resources: None,
    }
}
