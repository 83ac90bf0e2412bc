//! Invoke: resolve the qualifier (a version, `$LATEST`, or an alias with its routing), check that the record may
//! run, make sure its code and layers are unpacked on this node, and hand the snapshot to the engine.

use std::collections::BTreeMap;
use std::path::PathBuf;

use engine::{EngineError, FunctionSpec, InvokeOutcome, InvokeRequest};
use model::status::check_invoke;
use model::{Alias, FunctionKey, Qualifier, Snapshot};
use sha2::{Digest, Sha256};
use store::FunctionRow;

use crate::{Caller, Control, ControlError, Result};

/// Largest result of a synchronous invocation.
pub const MAX_RESULT_BYTES: usize = 6 * 1024 * 1024;

/// One synchronous invocation, decoded.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub namespace: String,
    pub name: String,
    /// A version, `$LATEST` or an alias; `None` uses `default_qualifier`.
    pub qualifier: Option<String>,
    /// `$LATEST` for Invoke, `$DEFAULT` for InvokeFunction.
    pub default_qualifier: &'static str,
    /// Matched against the alias's routing rules.
    pub routing_key: BTreeMap<String, String>,
    /// The event, JSON.
    pub event: Vec<u8>,
    pub region: String,
}

/// A resolved invocation: the record that runs and its serving snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub key: FunctionKey,
    pub row: FunctionRow,
    pub snap: Snapshot,
    /// The qualifier as the caller named it (an alias, a version, `$LATEST`).
    pub qualifier: String,
    /// What it resolved to (the version an alias routed to).
    pub version: String,
}

/// Pools instances per record and snapshot: a new serving snapshot gets new instances.
pub(crate) fn snapshot_key(row_id: &str, snap: &Snapshot) -> String {
    let digest = Sha256::digest(serde_json::to_vec(snap).unwrap_or_default());
    format!("{row_id}:{}", &hex::encode(digest)[..16])
}

/// Pool keys by (record, revision). Every write of a record bumps its revision, so the serving snapshot of a
/// revision never changes and its key is hashed once, not on every invocation.
#[derive(Default)]
pub(crate) struct SnapshotKeys(std::sync::Mutex<std::collections::HashMap<(String, i64), String>>);

impl SnapshotKeys {
    /// Revisions remembered before the map starts over (each entry is a few dozen bytes).
    const MAX: usize = 4096;

    pub(crate) fn get(&self, row: &FunctionRow, snap: &Snapshot) -> String {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let k = (row.id.clone(), row.rev);
        if let Some(v) = map.get(&k) {
            return v.clone();
        }
        let v = snapshot_key(&row.id, snap);
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(k, v.clone());
        v
    }
}

/// A uniform number in [0, 1).
fn uniform() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// Where an alias sends this invocation: the first routing rule that matches the routing key, else a weighted
/// draw between the additional versions and the main one.
pub(crate) fn route(alias: &Alias, routing_key: &BTreeMap<String, String>, draw: f64) -> String {
    for m in &alias.routing.matches {
        let name = m.key.rsplit('.').next().unwrap_or(&m.key);
        let Some(value) = routing_key.get(name).or_else(|| routing_key.get(&m.key)) else {
            continue;
        };
        let hit = match m.method.as_str() {
            "exact" => *value == m.expression,
            "range" => match (
                crate::aliases::parse_range(&m.expression),
                value.parse::<i64>(),
            ) {
                (Some((lo, lo_inc, hi, hi_inc)), Ok(v)) => {
                    (if lo_inc { v >= lo } else { v > lo })
                        && (if hi_inc { v <= hi } else { v < hi })
                }
                _ => false,
            },
            _ => false,
        };
        if hit {
            return m.version.clone();
        }
    }
    let mut acc = 0.0;
    for w in &alias.routing.weights {
        acc += w.weight;
        if draw < acc {
            return w.version.clone();
        }
    }
    alias.function_version.clone()
}

impl Control {
    /// Whether this server runs functions at all.
    pub fn can_invoke(&self) -> bool {
        self.engine.is_some()
    }

    /// Runs a function synchronously.
    pub async fn invoke(&self, caller: &Caller, inv: Invocation) -> Result<InvokeOutcome> {
        self.engine()?;
        let t = self.resolve(caller, &inv).await?;
        if t.snap.config.function_type == "HTTP" {
            return Err(crate::web::not_invocable(&t.key.name));
        }
        self.run(caller, &t, &inv.region, inv.event, None, 0, None)
            .await
    }

    /// The engine, or why this server runs no functions.
    pub(crate) fn engine(&self) -> Result<&engine::Engine> {
        self.engine.as_ref().ok_or_else(|| {
            ControlError::Unsupported(
                "function execution is not enabled on this server: it needs the sandbox, or `stratus serve --unsandboxed` for development".into(),
            )
        })
    }

    /// Resolves an invocation's qualifier (a version, `$LATEST`, or an alias and its routing) to the record that
    /// runs, and checks that it may run: what a synchronous and an asynchronous call share.
    pub(crate) async fn resolve(&self, caller: &Caller, inv: &Invocation) -> Result<Target> {
        let key = self.key(caller, &inv.namespace, &inv.name);
        let latest = self.latest(&key).await?;
        let qualifier = inv
            .qualifier
            .clone()
            .unwrap_or_else(|| inv.default_qualifier.to_string());
        let version = match Qualifier::parse(&qualifier) {
            Some(q) => q.to_string(),
            None => {
                let alias = self.store.alias(&key, &qualifier).await?.ok_or_else(|| {
                    ControlError::QualifierNotFound {
                        name: key.name.clone(),
                        qualifier: qualifier.clone(),
                    }
                })?;
                route(&alias, &inv.routing_key, uniform())
            }
        };
        self.runnable(key, Some(latest), qualifier, version).await
    }

    /// The record of `version` (`$LATEST` or a version number), checked that it may run. `latest` saves reading
    /// `$LATEST` again when the caller has it.
    pub(crate) async fn runnable(
        &self,
        key: FunctionKey,
        latest: Option<FunctionRow>,
        qualifier: String,
        version: String,
    ) -> Result<Target> {
        let latest = match latest {
            Some(l) => l,
            None => self.latest(&key).await?,
        };
        let row = if version == Qualifier::LATEST {
            latest
        } else {
            self.store.function(&key, &version).await?.ok_or_else(|| {
                ControlError::QualifierNotFound {
                    name: key.name.clone(),
                    qualifier: version.clone(),
                }
            })?
        };
        check_invoke(row.status, version == Qualifier::LATEST).map_err(ControlError::Rejected)?;
        let snap = row.serving.clone().ok_or_else(|| {
            ControlError::Internal(format!("{} has no serving snapshot", key.name))
        })?;
        Ok(Target {
            key,
            row,
            snap,
            qualifier,
            version,
        })
    }

    /// Runs a resolved record through the engine and queues its invocation record: every invocation, synchronous
    /// or an attempt of an asynchronous event (`request_id` is then the event's, `retry_num` the attempt's, and
    /// `terminate` may stop it gracefully: see `engine::InvokeRequest`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run(
        &self,
        caller: &Caller,
        t: &Target,
        region: &str,
        event: Vec<u8>,
        request_id: Option<String>,
        retry_num: i64,
        terminate: Option<tokio::sync::watch::Receiver<Option<std::time::Duration>>>,
    ) -> Result<InvokeOutcome> {
        let engine = self.engine()?;
        let (key, row, snap) = (&t.key, &t.row, &t.snap);
        let spec = self.function_spec(caller, key, row, snap, region).await?;
        // Held until the invocation ends: its memory counts against the concurrency limits.
        let _permit = self.admit(key, snap.config.memory_size).await?;
        let start_ms = store::now_ms();
        let mut outcome = engine
            .invoke(
                &spec,
                InvokeRequest {
                    request_id,
                    event,
                    terminate,
                },
            )
            .await
            .map_err(|e| match e {
                EngineError::Throttled { scope, limit } => {
                    self.metrics.observe(432, 0.0, false);
                    ControlError::Throttled { scope, limit }
                }
                other => ControlError::Execution(other.to_string()),
            })?;
        // A synchronous result is capped like the event: the function's own error (430).
        if let Ok(ret) = &outcome.result
            && ret.len() > MAX_RESULT_BYTES
        {
            outcome.result = Err(engine::FunctionError::new(
                engine::status::USER_EXCEPTION,
                format!(
                    "the function returned {} bytes; a synchronous invocation returns at most 6 MB",
                    ret.len()
                ),
            ));
            outcome.status_code = engine::status::USER_EXCEPTION;
        }
        let status = if outcome.result.is_ok() {
            200
        } else {
            outcome.status_code
        };
        self.metrics
            .observe(status, outcome.duration_ms, outcome.cold_start);
        self.queue_record(store::InvocationRecord {
            request_id: outcome.request_id.clone(),
            app_id: caller.app_id,
            namespace: key.namespace.clone(),
            function_name: key.name.clone(),
            qualifier: row.qualifier.clone(),
            start_ms,
            duration_us: (outcome.duration_ms * 1000.0) as i64,
            bill_ms: outcome.bill_duration_ms,
            memory_mb: snap.config.memory_size,
            mem_bytes: outcome.mem_usage_bytes as i64,
            status_code: i64::from(status),
            ret_msg: if outcome.result.is_ok() {
                crate::records::stored_result(
                    outcome.ret_msg(),
                    crate::records::RECORD_RESULT_BYTES,
                )
            } else {
                crate::records::stored_result(
                    &outcome.err_msg(),
                    crate::records::RECORD_RESULT_BYTES,
                )
            },
            log: crate::records::stored_log(&outcome.log, crate::records::RECORD_LOG_BYTES),
            cold_start: outcome.cold_start,
            retry_num,
        });
        Ok(outcome)
    }

    /// The engine's view of a snapshot, with its code and layers unpacked on this node.
    pub(crate) async fn function_spec(
        &self,
        caller: &Caller,
        key: &FunctionKey,
        row: &FunctionRow,
        snap: &Snapshot,
        region: &str,
    ) -> Result<FunctionSpec> {
        let code_dir = self.unpacked(&snap.code.sha256).await?;
        let mut layer_dirs = Vec::new();
        for l in &snap.config.layers {
            let lv = self
                .store
                .layer_version(caller.app_id, &l.name, l.version)
                .await?
                .ok_or_else(|| ControlError::LayerVersionNotFound {
                    name: l.name.clone(),
                    version: l.version,
                })?;
            layer_dirs.push(self.unpacked(&lv.layer.content.sha256).await?);
        }
        let c = &snap.config;
        Ok(FunctionSpec {
            key: self.snapshot_keys.get(row, snap),
            app_id: caller.app_id.to_string(),
            uin: caller.uin.clone(),
            region: region.to_string(),
            namespace: key.namespace.clone(),
            function_name: key.name.clone(),
            version: row.qualifier.clone(),
            runtime: c.runtime.clone(),
            handler: c.handler.clone(),
            memory_mb: c.memory_size.clamp(0, u32::MAX as i64) as u32,
            timeout_s: c.timeout.clamp(0, u32::MAX as i64) as u32,
            init_timeout_s: c.init_timeout.clamp(0, u32::MAX as i64) as u32,
            env: c
                .environment
                .variables
                .iter()
                .map(|v| (v.key.clone(), v.value.clone()))
                .collect(),
            code_dir,
            layer_dirs,
            max_concurrency: None,
            public_net: c.public_net == "ENABLE",
        })
    }

    /// A package unpacked on this node (fetched from the shared store first on a cluster).
    async fn unpacked(&self, sha256: &str) -> Result<PathBuf> {
        // A tree is renamed into place only once complete: if it is there, it is ready (the warm path).
        let path = self.store.blobs.unpacked_path(sha256);
        if path.is_dir() {
            return Ok(path);
        }
        self.store.ensure_local_blob(sha256).await?;
        let blobs = self.store.blobs.clone();
        let limits = self.cfg.prepare.clone();
        let sha = sha256.to_string();
        let tree = tokio::task::spawn_blocking(move || {
            blobs.ensure_unpacked(
                &sha,
                &store::unzip::UnzipLimits {
                    max_entries: limits.max_entries,
                    max_unpacked_bytes: limits.max_unpacked_bytes,
                    max_ratio: limits.max_ratio,
                },
            )
        })
        .await
        .map_err(|e| ControlError::Internal(format!("unpacking panicked: {e}")))??;
        Ok(tree.path)
    }

    /// Stops the instances of snapshots that no longer serve.
    pub(crate) fn retire(&self, keys: &[String]) {
        if let Some(engine) = &self.engine {
            for k in keys {
                engine.retire(k);
            }
        }
    }

    /// Whether the runtime can run on this installation (always true when execution is off).
    pub(crate) async fn runtime_available(&self, runtime: &str) -> bool {
        let Some(engine) = self.engine.clone() else {
            return true;
        };
        let rt = runtime.to_string();
        tokio::task::spawn_blocking(move || engine.is_runtime_available(&rt))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{RoutingConfig, VersionMatch, VersionWeight};

    fn alias(weights: &[(&str, f64)], matches: &[(&str, &str, &str, &str)]) -> Alias {
        Alias {
            name: "prod".into(),
            function_version: "1".into(),
            routing: RoutingConfig {
                weights: weights
                    .iter()
                    .map(|(v, w)| VersionWeight {
                        version: v.to_string(),
                        weight: *w,
                    })
                    .collect(),
                matches: matches
                    .iter()
                    .map(|(v, k, m, e)| VersionMatch {
                        version: v.to_string(),
                        key: k.to_string(),
                        method: m.to_string(),
                        expression: e.to_string(),
                    })
                    .collect(),
            },
            description: String::new(),
            add_ms: 0,
            mod_ms: 0,
        }
    }

    #[test]
    fn weighted_routing_splits_by_the_draw() {
        let a = alias(&[("2", 0.3)], &[]);
        let none = BTreeMap::new();
        assert_eq!(route(&a, &none, 0.0), "2");
        assert_eq!(route(&a, &none, 0.29), "2");
        assert_eq!(route(&a, &none, 0.3), "1");
        assert_eq!(route(&a, &none, 0.99), "1");
    }

    #[test]
    fn rules_route_before_weights() {
        let a = alias(
            &[("2", 1.0)],
            &[
                ("3", "invoke.headers.User", "exact", "alice"),
                ("4", "invoke.headers.Id", "range", "[10,20)"),
            ],
        );
        let key = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(route(&a, &key("User", "alice"), 0.5), "3");
        assert_eq!(route(&a, &key("User", "bob"), 0.5), "2");
        assert_eq!(route(&a, &key("Id", "10"), 0.5), "4");
        assert_eq!(route(&a, &key("Id", "20"), 0.5), "2");
    }

    #[test]
    fn uniform_draws_stay_in_range() {
        for _ in 0..1000 {
            let u = uniform();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
