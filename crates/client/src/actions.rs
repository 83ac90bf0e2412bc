//! Typed helpers for the actions the command line uses. Listings come back as the reply's JSON (the command
//! line shows some columns of them, or all of it with `--output json`); what a caller decides on is typed.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Client, Error, Progress};

/// What a function (or one of its versions) is doing, from GetFunction.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionState {
    pub status: String,
    pub reasons: Vec<StatusReason>,
    /// The whole GetFunction reply.
    pub raw: Value,
}

/// One of `StatusReasons`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusReason {
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub error_message: String,
}

impl FunctionState {
    /// Reads the status and its reasons out of a GetFunction reply.
    pub fn from_reply(raw: Value) -> FunctionState {
        let status = raw
            .get("Status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let reasons = raw
            .get("StatusReasons")
            .cloned()
            .and_then(|r| serde_json::from_value(r).ok())
            .unwrap_or_default();
        FunctionState {
            status,
            reasons,
            raw,
        }
    }

    /// No operation drives this status any more.
    pub fn is_settled(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "Creating" | "Updating" | "Publishing" | "Deleting" | ""
        )
    }

    /// The status is one of the failures (`CreateFailed`, `UpdateFailed`, …).
    pub fn is_failed(&self) -> bool {
        self.status.ends_with("Failed")
    }
}

/// What a deploy asks of a function; `None` leaves a setting as it is (or at the server's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSpec {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mb: Option<i64>,
    pub timeout_secs: Option<i64>,
    pub env: Option<Vec<(String, String)>>,
    pub layers: Option<Vec<(String, i64)>>,
    /// `Event` or `HTTP` (create only: SCF does not change a function's type).
    pub kind: Option<String>,
    pub description: Option<String>,
}

impl FunctionSpec {
    /// The configuration fields UpdateFunctionConfiguration takes, of those given.
    fn configuration(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if let Some(r) = &self.runtime {
            m.insert("Runtime".into(), json!(r));
        }
        if let Some(v) = self.memory_mb {
            m.insert("MemorySize".into(), json!(v));
        }
        if let Some(v) = self.timeout_secs {
            m.insert("Timeout".into(), json!(v));
        }
        if let Some(d) = &self.description {
            m.insert("Description".into(), json!(d));
        }
        if let Some(env) = &self.env {
            let vars: Vec<Value> = env
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
            m.insert("Environment".into(), json!({ "Variables": vars }));
        }
        if let Some(layers) = &self.layers {
            let l: Vec<Value> = layers
                .iter()
                .map(|(n, v)| json!({"LayerName": n, "LayerVersion": v}))
                .collect();
            m.insert("Layers".into(), Value::Array(l));
        }
        m
    }

    /// Whether any configuration field is given.
    pub fn changes_configuration(&self) -> bool {
        !self.configuration().is_empty()
    }
}

/// An alias: the version it points at and other versions' shares of the traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasSpec {
    pub function: String,
    pub alias: String,
    pub version: String,
    pub weights: Vec<(String, f64)>,
    pub description: Option<String>,
}

/// The `Result` of an Invoke.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InvokeResult {
    pub ret_msg: String,
    pub err_msg: String,
    pub log: String,
    pub mem_usage: i64,
    pub duration: f64,
    pub bill_duration: i64,
    pub function_request_id: String,
    /// 0 when the function succeeded.
    pub invoke_result: i64,
}

/// One record of GetFunctionLogs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FunctionLog {
    pub function_name: String,
    pub request_id: String,
    pub start_time: String,
    pub ret_code: i64,
    pub ret_msg: String,
    pub duration: f64,
    pub bill_duration: i64,
    pub mem_usage: i64,
    pub log: String,
    pub retry_num: u64,
}

/// A GetFunctionLogs query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub qualifier: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` (UTC).
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub offset: i64,
    pub limit: i64,
    /// Oldest first.
    pub ascending: bool,
}

fn is_not_found(e: &Error) -> bool {
    e.code().is_some_and(|c| c.starts_with("ResourceNotFound"))
}

fn insert_opt(body: &mut Value, key: &str, v: Option<&str>) {
    if let (Some(v), Some(m)) = (v, body.as_object_mut()) {
        m.insert(key.into(), json!(v));
    }
}

impl Client {
    /// GetFunction of `$LATEST` or a qualifier.
    pub fn get_function(
        &self,
        ns: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Value, Error> {
        let mut body = json!({"FunctionName": name, "Namespace": ns});
        insert_opt(&mut body, "Qualifier", qualifier);
        self.call("GetFunction", &body)
    }

    /// The function's status, or `None` when it (or the qualifier) does not exist.
    pub fn function_state(
        &self,
        ns: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<FunctionState>, Error> {
        match self.get_function(ns, name, qualifier) {
            Ok(v) => Ok(Some(FunctionState::from_reply(v))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// CreateFunction with a zip (base64) and `spec`.
    pub fn create_function(
        &self,
        ns: &str,
        name: &str,
        spec: &FunctionSpec,
        zip_b64: &str,
        progress: Option<Progress<'_>>,
    ) -> Result<Value, Error> {
        let mut m = spec.configuration();
        m.insert("FunctionName".into(), json!(name));
        m.insert("Namespace".into(), json!(ns));
        m.insert("Code".into(), json!({ "ZipFile": zip_b64 }));
        if let Some(h) = &spec.handler {
            m.insert("Handler".into(), json!(h));
        }
        if let Some(k) = &spec.kind {
            m.insert("Type".into(), json!(k));
        }
        self.call_with_progress("CreateFunction", &Value::Object(m), progress)
    }

    /// UpdateFunctionCode with a zip (base64), and the handler when given.
    pub fn update_function_code(
        &self,
        ns: &str,
        name: &str,
        handler: Option<&str>,
        zip_b64: &str,
        progress: Option<Progress<'_>>,
    ) -> Result<Value, Error> {
        let mut body = json!({"FunctionName": name, "Namespace": ns, "ZipFile": zip_b64});
        insert_opt(&mut body, "Handler", handler);
        self.call_with_progress("UpdateFunctionCode", &body, progress)
    }

    /// UpdateFunctionConfiguration with the configuration fields `spec` gives.
    pub fn update_function_configuration(
        &self,
        ns: &str,
        name: &str,
        spec: &FunctionSpec,
    ) -> Result<Value, Error> {
        let mut m = spec.configuration();
        m.insert("FunctionName".into(), json!(name));
        m.insert("Namespace".into(), json!(ns));
        self.call("UpdateFunctionConfiguration", &Value::Object(m))
    }

    /// One page of ListFunctions.
    pub fn list_functions(
        &self,
        ns: &str,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Value, Error> {
        let mut body = json!({"Namespace": ns, "Offset": offset, "Limit": limit});
        insert_opt(&mut body, "SearchKey", search);
        self.call("ListFunctions", &body)
    }

    /// DeleteFunction (of one version when `qualifier` is given).
    pub fn delete_function(
        &self,
        ns: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Value, Error> {
        let mut body = json!({"FunctionName": name, "Namespace": ns});
        insert_opt(&mut body, "Qualifier", qualifier);
        self.call("DeleteFunction", &body)
    }

    /// Invoke: synchronously (with the log's tail), or queued as an event when `asynchronous`.
    pub fn invoke(
        &self,
        ns: &str,
        name: &str,
        qualifier: Option<&str>,
        event: Option<&str>,
        asynchronous: bool,
    ) -> Result<InvokeResult, Error> {
        let mut body = json!({
            "FunctionName": name,
            "Namespace": ns,
            "InvocationType": if asynchronous { "Event" } else { "RequestResponse" },
            "LogType": "Tail",
        });
        insert_opt(&mut body, "Qualifier", qualifier);
        insert_opt(&mut body, "ClientContext", event);
        let v = self.call("Invoke", &body)?;
        serde_json::from_value(v.get("Result").cloned().unwrap_or(Value::Null)).map_err(|e| {
            Error::BadReply {
                action: "Invoke".into(),
                why: format!("Result: {e}"),
            }
        })
    }

    /// One page of GetFunctionLogs; returns the records and the total that match.
    pub fn function_logs(
        &self,
        ns: &str,
        name: &str,
        q: &LogQuery,
    ) -> Result<(Vec<FunctionLog>, i64), Error> {
        let mut body = json!({
            "FunctionName": name,
            "Namespace": ns,
            "Offset": q.offset,
            "Limit": q.limit,
            "Order": if q.ascending { "ASC" } else { "DESC" },
            "OrderBy": "start_time",
        });
        insert_opt(&mut body, "Qualifier", q.qualifier.as_deref());
        insert_opt(&mut body, "StartTime", q.start_time.as_deref());
        insert_opt(&mut body, "EndTime", q.end_time.as_deref());
        let v = self.call("GetFunctionLogs", &body)?;
        let logs =
            serde_json::from_value(v.get("Data").cloned().unwrap_or(json!([]))).map_err(|e| {
                Error::BadReply {
                    action: "GetFunctionLogs".into(),
                    why: format!("Data: {e}"),
                }
            })?;
        Ok((
            logs,
            v.get("TotalCount").and_then(Value::as_i64).unwrap_or(0),
        ))
    }

    /// PublishVersion of `$LATEST`.
    pub fn publish_version(
        &self,
        ns: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Value, Error> {
        let mut body = json!({"FunctionName": name, "Namespace": ns});
        insert_opt(&mut body, "Description", description);
        self.call("PublishVersion", &body)
    }

    /// ListVersionByFunction (up to `limit` versions, newest last).
    pub fn list_versions(&self, ns: &str, name: &str, limit: i64) -> Result<Value, Error> {
        self.call(
            "ListVersionByFunction",
            &json!({"FunctionName": name, "Namespace": ns, "Limit": limit, "Order": "ASC"}),
        )
    }

    /// CreateAlias (or, with `update`, UpdateAlias).
    pub fn put_alias(&self, ns: &str, a: &AliasSpec, update: bool) -> Result<Value, Error> {
        let mut body = json!({
            "FunctionName": a.function,
            "Namespace": ns,
            "Name": a.alias,
            "FunctionVersion": a.version,
        });
        if !a.weights.is_empty() {
            let w: Vec<Value> = a
                .weights
                .iter()
                .map(|(v, w)| json!({"Version": v, "Weight": w}))
                .collect();
            body["RoutingConfig"] = json!({ "AdditionalVersionWeights": w });
        }
        insert_opt(&mut body, "Description", a.description.as_deref());
        self.call(if update { "UpdateAlias" } else { "CreateAlias" }, &body)
    }

    pub fn get_alias(&self, ns: &str, function: &str, alias: &str) -> Result<Value, Error> {
        self.call(
            "GetAlias",
            &json!({"FunctionName": function, "Namespace": ns, "Name": alias}),
        )
    }

    pub fn list_aliases(&self, ns: &str, function: &str) -> Result<Value, Error> {
        self.call(
            "ListAliases",
            &json!({"FunctionName": function, "Namespace": ns, "Limit": "100"}),
        )
    }

    pub fn delete_alias(&self, ns: &str, function: &str, alias: &str) -> Result<Value, Error> {
        self.call(
            "DeleteAlias",
            &json!({"FunctionName": function, "Namespace": ns, "Name": alias}),
        )
    }

    /// PublishLayerVersion with a zip (base64).
    pub fn publish_layer_version(
        &self,
        name: &str,
        runtimes: &[String],
        zip_b64: &str,
        description: Option<&str>,
        progress: Option<Progress<'_>>,
    ) -> Result<Value, Error> {
        let mut body = json!({
            "LayerName": name,
            "CompatibleRuntimes": runtimes,
            "Content": { "ZipFile": zip_b64 },
        });
        insert_opt(&mut body, "Description", description);
        self.call_with_progress("PublishLayerVersion", &body, progress)
    }

    pub fn get_layer_version(&self, name: &str, version: i64) -> Result<Value, Error> {
        self.call(
            "GetLayerVersion",
            &json!({"LayerName": name, "LayerVersion": version}),
        )
    }

    pub fn list_layers(&self) -> Result<Value, Error> {
        self.call("ListLayers", &json!({"Limit": 200}))
    }

    pub fn list_layer_versions(&self, name: &str) -> Result<Value, Error> {
        self.call("ListLayerVersions", &json!({"LayerName": name}))
    }

    pub fn delete_layer_version(&self, name: &str, version: i64) -> Result<Value, Error> {
        self.call(
            "DeleteLayerVersion",
            &json!({"LayerName": name, "LayerVersion": version}),
        )
    }

    /// CreateTrigger of `kind` (`timer`, `http`, …) with its description (a cron expression for a timer).
    #[allow(clippy::too_many_arguments)]
    pub fn create_trigger(
        &self,
        ns: &str,
        function: &str,
        trigger: &str,
        kind: &str,
        desc: Option<&str>,
        qualifier: Option<&str>,
        enable: bool,
    ) -> Result<Value, Error> {
        let mut body = json!({
            "FunctionName": function,
            "Namespace": ns,
            "TriggerName": trigger,
            "Type": kind,
            "Enable": if enable { "OPEN" } else { "CLOSE" },
        });
        insert_opt(&mut body, "TriggerDesc", desc);
        insert_opt(&mut body, "Qualifier", qualifier);
        self.call("CreateTrigger", &body)
    }

    pub fn list_triggers(&self, ns: &str, function: &str) -> Result<Value, Error> {
        self.call(
            "ListTriggers",
            &json!({"FunctionName": function, "Namespace": ns, "Limit": 100}),
        )
    }

    pub fn delete_trigger(
        &self,
        ns: &str,
        function: &str,
        trigger: &str,
        kind: &str,
        qualifier: Option<&str>,
    ) -> Result<Value, Error> {
        let mut body = json!({
            "FunctionName": function,
            "Namespace": ns,
            "TriggerName": trigger,
            "Type": kind,
        });
        insert_opt(&mut body, "Qualifier", qualifier);
        self.call("DeleteTrigger", &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_has_only_what_is_given() {
        assert!(!FunctionSpec::default().changes_configuration());
        let s = FunctionSpec {
            handler: Some("index.main".into()),
            kind: Some("HTTP".into()),
            ..FunctionSpec::default()
        };
        assert!(
            !s.changes_configuration(),
            "handler and type are not configuration"
        );
        let s = FunctionSpec {
            memory_mb: Some(256),
            env: Some(vec![("A".into(), "1".into())]),
            layers: Some(vec![("deps".into(), 2)]),
            ..FunctionSpec::default()
        };
        let c = Value::Object(s.configuration());
        assert_eq!(
            c,
            json!({
                "MemorySize": 256,
                "Environment": {"Variables": [{"Key": "A", "Value": "1"}]},
                "Layers": [{"LayerName": "deps", "LayerVersion": 2}],
            })
        );
    }

    #[test]
    fn states() {
        let s = FunctionState::from_reply(json!({
            "Status": "CreateFailed",
            "StatusReasons": [{"ErrorCode": "HandlerNotFound", "ErrorMessage": "no index.py"}],
        }));
        assert!(s.is_settled() && s.is_failed());
        assert_eq!(s.reasons[0].error_code, "HandlerNotFound");
        let s = FunctionState::from_reply(json!({"Status": "Updating"}));
        assert!(!s.is_settled() && !s.is_failed());
        assert!(s.reasons.is_empty());
    }
}
