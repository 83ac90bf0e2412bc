//! Layer use cases.

use model::{LayerStatus, LayerVersion, validate};
use store::{LayerRow, StoreError, layer_target};

use crate::functions::OpPayload;
use crate::{Caller, Control, ControlError, Result};

/// A PublishLayerVersion request, decoded.
#[derive(Debug, Clone)]
pub struct PublishLayer {
    pub name: String,
    pub compatible_runtimes: Vec<String>,
    pub zip: Vec<u8>,
    pub description: String,
    pub license: String,
}

impl Control {
    pub async fn publish_layer_version(&self, caller: &Caller, req: PublishLayer) -> Result<i64> {
        validate::layer_name(&req.name)?;
        validate::description(&req.description, &self.cfg.limits)?;
        if req.compatible_runtimes.is_empty() || req.compatible_runtimes.len() > 20 {
            return Err(model::InvalidValue::new(
                "CompatibleRuntimes",
                "CompatibleRuntimes must list 1 to 20 runtimes.",
            )
            .into());
        }
        for rt in &req.compatible_runtimes {
            validate::runtime(rt)
                .map_err(|e| model::InvalidValue::new("CompatibleRuntimes", e.message))?;
        }
        let content = self.put_blob(req.zip).await?;
        let now = store::now_ms();
        let layer = LayerVersion {
            app_id: caller.app_id,
            name: req.name.clone(),
            version: 0,
            status: LayerStatus::Publishing,
            reasons: Vec::new(),
            description: req.description,
            license: req.license,
            compatible_runtimes: req.compatible_runtimes,
            content,
            add_ms: now,
        };
        let name = req.name.clone();
        let app_id = caller.app_id;
        let version = self
            .store
            .begin_publish_layer(&layer, self.cfg.limits.layer_versions_per_layer, |v| {
                OpPayload::PublishLayer {
                    name: name.clone(),
                    version: v,
                }
                .into_op(app_id, layer_target(app_id, &name, v), now)
            })
            .await?
            .ok_or_else(|| ControlError::LimitExceeded {
                what: "LayerVersions",
                message: format!(
                    "layer {} already has {} versions, the most it may have",
                    req.name, self.cfg.limits.layer_versions_per_layer
                ),
            })?;
        self.wake_workers();
        Ok(version)
    }

    /// GetLayerVersion: also returns `Deleted` tombstones.
    pub async fn get_layer_version(
        &self,
        caller: &Caller,
        name: &str,
        version: i64,
    ) -> Result<LayerRow> {
        self.store
            .layer_version(caller.app_id, name, version)
            .await?
            .ok_or_else(|| ControlError::LayerVersionNotFound {
                name: name.to_string(),
                version,
            })
    }

    /// ListLayers: each layer's newest version that is not deleted, optionally only those supporting a runtime
    /// or whose name contains `search`.
    pub async fn list_layers(
        &self,
        caller: &Caller,
        runtime: Option<&str>,
        search: Option<&str>,
    ) -> Result<Vec<LayerRow>> {
        let all = self.store.latest_layers(caller.app_id).await?;
        Ok(all
            .into_iter()
            .filter(|l| {
                runtime.is_none_or(|rt| l.layer.compatible_runtimes.iter().any(|r| r == rt))
            })
            .filter(|l| search.is_none_or(|s| l.layer.name.contains(s)))
            .collect())
    }

    /// ListLayerVersions: newest first, without deleted ones; `ResourceNotFound.Layer` for an unknown layer.
    pub async fn list_layer_versions(
        &self,
        caller: &Caller,
        name: &str,
        runtimes: &[String],
    ) -> Result<Vec<LayerRow>> {
        let all = self.store.layer_versions(caller.app_id, name).await?;
        if all.is_empty() {
            return Err(ControlError::LayerNotFound(name.to_string()));
        }
        Ok(all
            .into_iter()
            .filter(|l| {
                runtimes.is_empty()
                    || l.layer
                        .compatible_runtimes
                        .iter()
                        .any(|r| runtimes.contains(r))
            })
            .collect())
    }

    pub async fn delete_layer_version(
        &self,
        caller: &Caller,
        name: &str,
        version: i64,
    ) -> Result<()> {
        for _ in 0..5 {
            let row = self.get_layer_version(caller, name, version).await?;
            let status = row.layer.status;
            if status == LayerStatus::Deleted {
                return Err(ControlError::LayerVersionNotFound {
                    name: name.to_string(),
                    version,
                });
            }
            if !status.accepts_delete() {
                return Err(ControlError::LayerBusy {
                    name: name.to_string(),
                    version,
                    status,
                });
            }
            let now = store::now_ms();
            let op = OpPayload::DeleteLayer {
                name: name.to_string(),
                version,
            }
            .into_op(
                caller.app_id,
                layer_target(caller.app_id, name, version),
                now,
            );
            match self
                .store
                .begin_layer_change(&row, LayerStatus::Deleting, &op, now)
                .await
            {
                Ok(()) => {
                    self.wake_workers();
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the layer version kept changing; try again".into(),
        ))
    }
}
