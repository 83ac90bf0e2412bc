//! Function use cases: create, read, list, update code and configuration, publish versions, delete.

use model::status::{DeleteOutcome, check, check_delete};
use model::{
    Alias, ConfigPatch, FunctionAction, FunctionConfig, FunctionKey, FunctionStatus, LayerRef,
    LayerStatus, Qualifier, RoutingConfig, Snapshot, validate,
};
use serde::{Deserialize, Serialize};
use store::{FunctionRow, ListQuery, NewOp, StoreError};

use crate::{Caller, Control, ControlError, Result, new_id, random_token};

/// The payload of each operation kind, stored with the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub(crate) enum OpPayload {
    CreateFunction {
        row: String,
    },
    UpdateFunction {
        row: String,
        /// Publish a version with this description once the update is applied.
        publish: Option<String>,
    },
    PublishVersion {
        row: String,
    },
    DeleteFunction {
        row: String,
    },
    DeleteVersion {
        row: String,
    },
    PublishLayer {
        name: String,
        version: i64,
    },
    DeleteLayer {
        name: String,
        version: i64,
    },
}

impl OpPayload {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            OpPayload::CreateFunction { .. } => "CreateFunction",
            OpPayload::UpdateFunction { .. } => "UpdateFunction",
            OpPayload::PublishVersion { .. } => "PublishVersion",
            OpPayload::DeleteFunction { .. } => "DeleteFunction",
            OpPayload::DeleteVersion { .. } => "DeleteVersion",
            OpPayload::PublishLayer { .. } => "PublishLayer",
            OpPayload::DeleteLayer { .. } => "DeleteLayer",
        }
    }

    pub(crate) fn into_op(self, app_id: i64, target: String, now: i64) -> NewOp {
        NewOp {
            id: new_id(),
            app_id,
            kind: self.kind().to_string(),
            target,
            payload: serde_json::to_string(&self).unwrap_or_default(),
            created_ms: now,
        }
    }
}

/// A CreateFunction request, decoded.
#[derive(Debug, Clone)]
pub struct CreateFunction {
    pub namespace: String,
    pub name: String,
    pub zip: Vec<u8>,
    pub patch: ConfigPatch,
}

/// A ListFunctions request, decoded.
#[derive(Debug, Clone)]
pub struct ListFunctions {
    pub namespace: String,
    pub query: ListQuery,
}

/// A function record with what GetFunction shows beside it.
#[derive(Debug, Clone)]
pub struct FunctionView {
    pub row: FunctionRow,
    /// `Available` or `InsufficientBalance` (the account's billing status).
    pub available_status: &'static str,
}

/// ListVersionByFunction's answer.
#[derive(Debug, Clone)]
pub struct VersionList {
    pub versions: Vec<FunctionRow>,
    pub total: usize,
}

/// How many times a change is retried when its record moved on between read and write for a reason that does
/// not change the decision (a concurrent publish bumping the revision, say).
pub(crate) const RETRIES: usize = 5;

impl Control {
    pub(crate) fn key(&self, caller: &Caller, namespace: &str, name: &str) -> FunctionKey {
        FunctionKey {
            app_id: caller.app_id,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The `$LATEST` record, or `FunctionNotFound` (`NamespaceNotFound` when the caller has no such namespace).
    pub(crate) async fn latest(&self, key: &FunctionKey) -> Result<FunctionRow> {
        match self.store.function(key, Qualifier::LATEST).await? {
            Some(row) => Ok(row),
            None => {
                if self
                    .store
                    .namespace(key.app_id, &key.namespace)
                    .await?
                    .is_none()
                {
                    return Err(ControlError::NamespaceNotFound(key.namespace.clone()));
                }
                Err(ControlError::FunctionNotFound {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                })
            }
        }
    }

    /// Checks that every bound layer version exists, is Active and lists the runtime. Bindings in `kept` (the
    /// serving snapshot's) may stay bound after their layer version was deleted: its content is kept for them.
    pub(crate) async fn check_layers(
        &self,
        caller: &Caller,
        runtime: &str,
        layers: &[LayerRef],
        kept: &[LayerRef],
    ) -> Result<()> {
        for l in layers {
            let row = self
                .store
                .layer_version(caller.app_id, &l.name, l.version)
                .await?
                .ok_or_else(|| ControlError::LayerVersionNotFound {
                    name: l.name.clone(),
                    version: l.version,
                })?;
            let still_bound = kept.contains(l) && row.layer.status == LayerStatus::Deleted;
            if row.layer.status != LayerStatus::Active && !still_bound {
                return Err(model::InvalidValue::new(
                    "Layers",
                    format!(
                        "layer {} version {} is {}, not Active.",
                        l.name, l.version, row.layer.status
                    ),
                )
                .into());
            }
            if !row.layer.compatible_runtimes.iter().any(|r| r == runtime) {
                return Err(model::InvalidValue::new(
                    "Layers",
                    format!(
                        "layer {} version {} is not compatible with runtime {runtime} (it supports {}).",
                        l.name,
                        l.version,
                        row.layer.compatible_runtimes.join(", ")
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Stores a zip durably before any record refers to it.
    pub(crate) async fn put_blob(&self, zip: Vec<u8>) -> Result<model::CodeRef> {
        let max = self.cfg.limits.zip_bytes_max;
        if zip.len() as u64 > max {
            return Err(model::InvalidValue::new(
                "ZipFile",
                format!(
                    "the zip file is {} bytes; the limit is {max} bytes.",
                    zip.len()
                ),
            )
            .into());
        }
        if zip.is_empty() {
            return Err(model::InvalidValue::new("ZipFile", "the zip file is empty.").into());
        }
        Ok(self.store.put_blob(zip).await?)
    }

    pub async fn create_function(&self, caller: &Caller, req: CreateFunction) -> Result<()> {
        validate::function_name(&req.name)?;
        validate::namespace_name(&req.namespace)?;
        let config = req.patch.apply(&FunctionConfig::default());
        validate::config(&config, &self.cfg.limits)?;
        self.require_namespace(caller, &req.namespace).await?;
        let key = self.key(caller, &req.namespace, &req.name);
        if self
            .store
            .function(&key, Qualifier::LATEST)
            .await?
            .is_some()
        {
            return Err(ControlError::FunctionExists(req.name));
        }
        self.check_function_quota(caller, &req.namespace).await?;
        self.check_layers(caller, &config.runtime, &config.layers, &[])
            .await?;
        let code = self.put_blob(req.zip).await?;
        self.insert_function(caller, key, Snapshot { code, config })
            .await
    }

    /// Records a new function whose snapshot is ready to prepare (names and settings already checked).
    async fn insert_function(
        &self,
        caller: &Caller,
        key: FunctionKey,
        pending: Snapshot,
    ) -> Result<()> {
        let now = store::now_ms();
        let name = key.name.clone();
        let row = FunctionRow {
            id: new_id(),
            function_id: format!("lam-{}", random_token(8, false)),
            key,
            qualifier: Qualifier::LATEST.to_string(),
            status: FunctionStatus::Creating,
            reasons: Vec::new(),
            serving: None,
            pending: Some(pending),
            version_description: String::new(),
            next_version: 1,
            rev: 0,
            add_ms: now,
            mod_ms: now,
        };
        let alias = Alias {
            name: Alias::DEFAULT.to_string(),
            function_version: Qualifier::LATEST.to_string(),
            routing: RoutingConfig::default(),
            description: String::new(),
            add_ms: now,
            mod_ms: now,
        };
        let op = OpPayload::CreateFunction {
            row: row.id.clone(),
        }
        .into_op(caller.app_id, row.id.clone(), now);
        let max = self.cfg.limits.functions_per_namespace;
        // The quota is counted again inside the transaction that inserts (under the namespace's lock): the early
        // check in the callers only spares a blob write when the namespace is already full.
        match self
            .store
            .create_function_within(&row, &alias, &op, max)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(function_quota_full(&row.key.namespace, max)),
            Err(StoreError::AlreadyExists(_)) => return Err(ControlError::FunctionExists(name)),
            Err(StoreError::Conflict) => {
                // The namespace went meanwhile.
                return Err(ControlError::NamespaceNotFound(row.key.namespace.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        self.wake_workers();
        Ok(())
    }

    /// Checks the per-namespace function quota before any work (authoritative again at the insert).
    async fn check_function_quota(&self, caller: &Caller, namespace: &str) -> Result<()> {
        let count = self
            .store
            .count_functions(caller.app_id, Some(namespace))
            .await?;
        if count >= self.cfg.limits.functions_per_namespace {
            return Err(function_quota_full(namespace, count));
        }
        Ok(())
    }

    /// CopyFunction: a new function (or, with `overwrite`, an update of an existing one) from the source's
    /// serving code and, with `copy_configuration`, its configuration.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_function(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        target_namespace: &str,
        new_name: &str,
        description: Option<String>,
        copy_configuration: bool,
        overwrite: bool,
    ) -> Result<()> {
        validate::function_name(new_name)?;
        validate::namespace_name(target_namespace)?;
        let src = self.latest(&self.key(caller, namespace, name)).await?;
        let serving = src.serving.clone().ok_or_else(|| {
            ControlError::Unsupported(format!(
                "function {name} has no successfully prepared code to copy (status {})",
                src.status
            ))
        })?;
        let mut config = if copy_configuration {
            serving.config.clone()
        } else {
            FunctionConfig {
                handler: serving.config.handler.clone(),
                runtime: serving.config.runtime.clone(),
                function_type: serving.config.function_type.clone(),
                ..FunctionConfig::default()
            }
        };
        if let Some(d) = description {
            validate::description(&d, &self.cfg.limits)?;
            config.description = d;
        }
        self.require_namespace(caller, target_namespace).await?;
        let key = self.key(caller, target_namespace, new_name);
        if key == src.key {
            return Err(model::InvalidValue::new(
                "FunctionName",
                "a function cannot be copied onto itself.",
            )
            .into());
        }
        let snapshot = Snapshot {
            code: serving.code.clone(),
            config,
        };
        if self
            .store
            .function(&key, Qualifier::LATEST)
            .await?
            .is_some()
        {
            if !overwrite {
                return Err(ControlError::FunctionExists(new_name.to_string()));
            }
            return self
                .begin_update(
                    caller,
                    &key,
                    FunctionAction::UpdateFunctionCode,
                    None,
                    |_| Ok(snapshot.clone()),
                )
                .await;
        }
        self.check_function_quota(caller, target_namespace).await?;
        self.insert_function(caller, key, snapshot).await
    }

    /// The code a record serves (GetFunctionAddress).
    pub async fn function_code(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<model::CodeRef> {
        let view = self
            .get_function(caller, namespace, name, qualifier)
            .await?;
        view.row
            .shown()
            .map(|s| s.code.clone())
            .ok_or_else(|| ControlError::Internal(format!("function {name} has no code")))
    }

    /// GetFunction: `$LATEST` by default, a version number, or an alias (resolved to its main version).
    pub async fn get_function(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionView> {
        let key = self.key(caller, namespace, name);
        let latest = self.latest(&key).await?;
        let row = match qualifier.unwrap_or(Qualifier::LATEST) {
            Qualifier::LATEST => latest,
            q => self.record(&key, q).await?,
        };
        Ok(FunctionView {
            row,
            available_status: "Available",
        })
    }

    /// A version record by number or alias name.
    pub(crate) async fn record(&self, key: &FunctionKey, q: &str) -> Result<FunctionRow> {
        let version = match Qualifier::parse(q) {
            Some(q) => q.to_string(),
            None => match self.store.alias(key, q).await? {
                Some(a) => a.function_version,
                None => {
                    return Err(ControlError::QualifierNotFound {
                        name: key.name.clone(),
                        qualifier: q.to_string(),
                    });
                }
            },
        };
        self.store
            .function(key, &version)
            .await?
            .ok_or_else(|| ControlError::VersionNotFound {
                name: key.name.clone(),
                version,
            })
    }

    pub async fn list_functions(
        &self,
        caller: &Caller,
        req: &ListFunctions,
    ) -> Result<(Vec<FunctionRow>, i64)> {
        self.require_namespace(caller, &req.namespace).await?;
        Ok(self
            .store
            .list_functions(caller.app_id, &req.namespace, &req.query)
            .await?)
    }

    /// Moves a record to `status` (with `pending`) and records the operation `payload` that will finish it,
    /// provided the record is still as read. `Ok(false)`: it moved on meanwhile; read it again and decide again.
    async fn try_begin(
        &self,
        caller: &Caller,
        row: &FunctionRow,
        status: FunctionStatus,
        pending: Option<&Snapshot>,
        payload: OpPayload,
    ) -> Result<bool> {
        let now = store::now_ms();
        let op = payload.into_op(caller.app_id, row.id.clone(), now);
        match self
            .store
            .begin_change(&row.id, row.rev, status, pending, &op, now)
            .await
        {
            Ok(()) => {
                self.wake_workers();
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a change of `$LATEST`: checks the status table, computes the pending snapshot from the serving
    /// one, and records status `Updating` with the operation, retrying if the record moved on meanwhile.
    async fn begin_update(
        &self,
        caller: &Caller,
        key: &FunctionKey,
        action: FunctionAction,
        publish: Option<String>,
        make: impl Fn(&Snapshot) -> Result<Snapshot>,
    ) -> Result<()> {
        for _ in 0..RETRIES {
            let row = self.latest(key).await?;
            check(row.status, action).map_err(ControlError::Rejected)?;
            let serving = row.serving.as_ref().ok_or_else(|| {
                ControlError::Internal(format!("function {} has no serving snapshot", key.name))
            })?;
            let pending = make(serving)?;
            let payload = OpPayload::UpdateFunction {
                row: row.id.clone(),
                publish: publish.clone(),
            };
            if self
                .try_begin(
                    caller,
                    &row,
                    FunctionStatus::Updating,
                    Some(&pending),
                    payload,
                )
                .await?
            {
                return Ok(());
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    pub async fn update_function_code(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        zip: Vec<u8>,
        handler: Option<String>,
        publish: bool,
    ) -> Result<()> {
        if let Some(h) = &handler {
            validate::handler(h)?;
        }
        let key = self.key(caller, namespace, name);
        // Refuse early, before writing the blob, when the status does not allow the update.
        let row = self.latest(&key).await?;
        check(row.status, FunctionAction::UpdateFunctionCode).map_err(ControlError::Rejected)?;
        let code = self.put_blob(zip).await?;
        self.begin_update(
            caller,
            &key,
            FunctionAction::UpdateFunctionCode,
            publish.then(String::new),
            |serving| {
                let mut config = serving.config.clone();
                if let Some(h) = &handler {
                    config.handler = h.clone();
                }
                Ok(Snapshot {
                    code: code.clone(),
                    config,
                })
            },
        )
        .await
    }

    pub async fn update_function_configuration(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        patch: ConfigPatch,
        publish: bool,
    ) -> Result<()> {
        let key = self.key(caller, namespace, name);
        let row = self.latest(&key).await?;
        check(row.status, FunctionAction::UpdateFunctionConfiguration)
            .map_err(ControlError::Rejected)?;
        let base = row
            .serving
            .as_ref()
            .ok_or_else(|| ControlError::Internal("no serving snapshot".into()))?;
        let config = patch.apply(&base.config);
        validate::config(&config, &self.cfg.limits)?;
        self.check_layers(caller, &config.runtime, &config.layers, &base.config.layers)
            .await?;
        let limits = self.cfg.limits.clone();
        self.begin_update(
            caller,
            &key,
            FunctionAction::UpdateFunctionConfiguration,
            publish.then(String::new),
            |serving| {
                let config = patch.apply(&serving.config);
                validate::config(&config, &limits)?;
                Ok(Snapshot {
                    code: serving.code.clone(),
                    config,
                })
            },
        )
        .await
    }

    /// PublishVersion: the new version copies `$LATEST`'s serving snapshot now, and is prepared asynchronously.
    pub async fn publish_version(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        description: &str,
    ) -> Result<FunctionRow> {
        validate::description(description, &self.cfg.limits)?;
        let key = self.key(caller, namespace, name);
        for _ in 0..RETRIES {
            let latest = self.latest(&key).await?;
            check(latest.status, FunctionAction::PublishVersion).map_err(ControlError::Rejected)?;
            let serving = latest
                .serving
                .clone()
                .ok_or_else(|| ControlError::Internal("no serving snapshot".into()))?;
            let existing = self.store.function_records(&key).await?.len() as i64 - 1;
            if existing >= self.cfg.limits.versions_per_function {
                return Err(ControlError::LimitExceeded {
                    what: "FunctionVersions",
                    message: format!(
                        "function {name} already has {existing} versions, the most it may have"
                    ),
                });
            }
            let now = store::now_ms();
            let version = new_version_row(&latest, serving, description, now);
            let op = OpPayload::PublishVersion {
                row: version.id.clone(),
            }
            .into_op(caller.app_id, version.id.clone(), now);
            match self
                .store
                .begin_publish(&latest.id, latest.rev, &version, &op)
                .await
            {
                Ok(()) => {
                    self.wake_workers();
                    return Ok(version);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    pub async fn list_versions(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        offset: usize,
        limit: usize,
        descending: bool,
    ) -> Result<VersionList> {
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        let mut all = self.store.function_records(&key).await?;
        if descending {
            all.reverse();
        }
        let total = all.len();
        let versions = all.into_iter().skip(offset).take(limit).collect();
        Ok(VersionList { versions, total })
    }

    /// DeleteFunction: the whole function, or (with a qualifier other than `$LATEST`) one version.
    pub async fn delete_function(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let key = self.key(caller, namespace, name);
        match qualifier {
            Some(q) if q != Qualifier::LATEST => {
                return self
                    .delete_version(caller, &key, q, FunctionAction::DeleteFunction)
                    .await;
            }
            _ => {}
        }
        for _ in 0..RETRIES {
            let row = self.latest(&key).await?;
            match check_delete(row.status, FunctionAction::DeleteFunction) {
                Ok(DeleteOutcome::AlreadyDeleting) => return Ok(()),
                Ok(DeleteOutcome::Start) => {}
                Err(r) => return Err(ControlError::Rejected(r)),
            }
            let payload = OpPayload::DeleteFunction {
                row: row.id.clone(),
            };
            if self
                .try_begin(caller, &row, FunctionStatus::Deleting, None, payload)
                .await?
            {
                return Ok(());
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    /// DeleteFunctionVersion.
    pub async fn delete_function_version(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        qualifier: &str,
    ) -> Result<()> {
        let key = self.key(caller, namespace, name);
        self.delete_version(
            caller,
            &key,
            qualifier,
            FunctionAction::DeleteFunctionVersion,
        )
        .await
    }

    async fn delete_version(
        &self,
        caller: &Caller,
        key: &FunctionKey,
        qualifier: &str,
        action: FunctionAction,
    ) -> Result<()> {
        let Some(Qualifier::Version(_)) = Qualifier::parse(qualifier) else {
            return Err(model::InvalidValue::new(
                "Qualifier",
                format!(
                    "`{qualifier}` is not a published version number; delete the whole function to remove $LATEST."
                ),
            )
            .into());
        };
        self.latest(key).await?;
        for _ in 0..RETRIES {
            let row = self.store.function(key, qualifier).await?.ok_or_else(|| {
                ControlError::VersionNotFound {
                    name: key.name.clone(),
                    version: qualifier.to_string(),
                }
            })?;
            match check_delete(row.status, action) {
                Ok(DeleteOutcome::AlreadyDeleting) => return Ok(()),
                Ok(DeleteOutcome::Start) => {}
                Err(r) => return Err(ControlError::Rejected(r)),
            }
            if let Some(alias) = self
                .store
                .aliases(key)
                .await?
                .into_iter()
                .find(|a| a.versions().any(|v| v == qualifier))
            {
                return Err(ControlError::AliasBound {
                    version: qualifier.to_string(),
                    alias: alias.name,
                });
            }
            // The store checks the aliases again under the function's lock, in the transaction that starts the
            // delete: an alias created since the read above makes it a conflict, and the next round reports it.
            let now = store::now_ms();
            let op = OpPayload::DeleteVersion {
                row: row.id.clone(),
            }
            .into_op(caller.app_id, row.id.clone(), now);
            match self.store.begin_delete_version(&row, &op, now).await {
                Ok(()) => {
                    self.wake_workers();
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the version kept changing; try again".into(),
        ))
    }
}

fn function_quota_full(namespace: &str, count: i64) -> ControlError {
    ControlError::LimitExceeded {
        what: "Function",
        message: format!(
            "namespace {namespace} already holds {count} functions, the most it may hold"
        ),
    }
}

/// A new version record copying `$LATEST`'s serving snapshot; it takes `$LATEST`'s next number.
pub(crate) fn new_version_row(
    latest: &FunctionRow,
    serving: Snapshot,
    description: &str,
    now: i64,
) -> FunctionRow {
    FunctionRow {
        id: new_id(),
        function_id: latest.function_id.clone(),
        key: latest.key.clone(),
        qualifier: latest.next_version.to_string(),
        status: FunctionStatus::Publishing,
        reasons: Vec::new(),
        serving: None,
        pending: Some(serving),
        version_description: description.to_string(),
        next_version: 0,
        rev: 0,
        add_ms: now,
        mod_ms: now,
    }
}
