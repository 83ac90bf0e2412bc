//! The lifecycle engine: workers claim operations with a lease, keep it alive with heartbeats while they work,
//! and finish each in the same transaction as the record's terminal status. A worker that dies loses its lease
//! and another worker (or the restarted process) resumes the operation; every step is idempotent.
//!
//! Leases are measured on the database's clock (see `store::Store::claim_op`); this node's clock
//! ([`crate::Clock`]) only dates what the workers write into records.

use std::time::Duration;

use model::{FunctionStatus, LayerRef, LayerStatus, Qualifier, StatusReason};
use store::{ClaimedOp, Finish, FunctionRow, Store, StoreError};
use tokio::sync::{oneshot, watch};

use crate::functions::{OpPayload, new_version_row};
use crate::prepare::prepare_blocking;
use crate::{Control, ControlError, Result};

/// How often an idle worker looks for operations left by another node or a crashed process.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Evaluates a fault-injection point (the `failpoints` feature); `Some(message)` when it is set to fire.
#[cfg(feature = "failpoints")]
fn injected(name: &str) -> Option<String> {
    // A `sleep` or `pause` action blocks the calling thread: keep it off the async workers' threads.
    tokio::task::block_in_place(|| {
        fail::fail_point!(name, |_| Some(format!("injected fault at `{name}`")));
        None
    })
}

/// Without the `failpoints` feature no fault is ever injected (and no thread is handed off to check).
#[cfg(not(feature = "failpoints"))]
fn injected(_name: &str) -> Option<String> {
    None
}

/// Keeps `op` leased while its worker runs, renewing every third of the lease. A renewal that fails for any other
/// reason than losing the operation (a database error, a connection dropped) is retried after a short, growing
/// delay that stays well inside the lease, so a passing fault does not cost the lease. Only `StaleOperation` ends
/// the heartbeat: another worker claimed the operation after the lease ran out (or it was cancelled), and `lost`
/// then tells the worker to stop.
async fn keep_leased(store: Store, op: ClaimedOp, lease_ms: i64, lost: oneshot::Sender<()>) {
    let ms = |n: i64| Duration::from_millis(n.max(1) as u64);
    let period = ms(lease_ms / 3);
    let first_retry = ms((lease_ms / 50).min(100));
    let longest_retry = ms(lease_ms / 6);
    let mut wait = period;
    loop {
        tokio::time::sleep(wait).await;
        let renewed = match injected("renew-lease") {
            Some(fault) => Err(fault),
            None => match store.renew_op(&op, lease_ms).await {
                Ok(()) => Ok(()),
                Err(StoreError::StaleOperation(_)) => {
                    tracing::warn!(op = %op.id, kind = %op.kind, attempt = op.attempt, "lease lost: another worker took the operation over");
                    let _ = lost.send(());
                    return;
                }
                Err(e) => Err(e.to_string()),
            },
        };
        wait = match renewed {
            Ok(()) => period,
            Err(error) => {
                let next = if wait == period {
                    first_retry
                } else {
                    (wait * 2).min(longest_retry)
                };
                tracing::warn!(op = %op.id, kind = %op.kind, %error, retry_ms = next.as_millis() as u64, "lease renewal failed; retrying");
                next
            }
        };
    }
}

fn internal(msg: impl Into<String>) -> Vec<StatusReason> {
    vec![StatusReason::new("InternalError", msg)]
}

impl Control {
    /// Runs `n` workers until `shutdown` turns true. `node` names this process in leases.
    pub async fn run_workers(&self, n: usize, node: &str, shutdown: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        for i in 0..n {
            let me = self.clone();
            let owner = format!("{node}/{i}");
            let mut shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if *shutdown.borrow() {
                        break;
                    }
                    match me.run_one(&owner).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "worker could not claim an operation"),
                    }
                    tokio::select! {
                        _ = me.work.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Claims and runs one operation. `Ok(false)` when there was none.
    pub async fn run_one(&self, owner: &str) -> Result<bool> {
        let lease = self.cfg.lease_ms;
        let Some(op) = self.store.claim_op(owner, lease).await? else {
            return Ok(false);
        };
        if op.failures > 0 {
            tracing::info!(op = %op.id, kind = %op.kind, attempt = op.attempt, failures = op.failures, "resuming an operation whose earlier attempts failed");
        }
        // Keep the lease alive while the operation runs.
        let (lost_tx, lost) = oneshot::channel();
        let heartbeat = tokio::spawn(keep_leased(self.store.clone(), op.clone(), lease, lost_tx));
        let started = std::time::Instant::now();
        let work = async {
            let retiring = self.serving_keys_of(&op).await;
            (retiring, self.execute(&op).await)
        };
        // Once another worker holds the operation this one stops: whatever it would write is refused anyway. (The
        // heartbeat only ends on that; a heartbeat that panicked cannot keep the lease either.)
        let done = tokio::select! {
            done = work => Some(done),
            _ = lost => None,
        };
        heartbeat.abort();
        let Some((retiring, outcome)) = done else {
            tracing::warn!(op = %op.id, kind = %op.kind, attempt = op.attempt, "operation abandoned: its lease was lost");
            return Ok(true);
        };
        match outcome {
            Ok(finish) => {
                let follow_up = matches!(
                    finish,
                    Finish::Promote {
                        then_publish: Some(_),
                        ..
                    }
                );
                // A successful update or delete stops the instances of what served before.
                let replaced = matches!(
                    finish,
                    Finish::Promote { .. }
                        | Finish::DeleteFunction { .. }
                        | Finish::DeleteVersion { .. }
                );
                match self
                    .store
                    .finish_op(&op, finish, self.cfg.clock.now_ms())
                    .await
                {
                    Ok(()) => {
                        if follow_up {
                            self.wake_workers();
                        }
                        if replaced {
                            self.retire(&retiring);
                        }
                        tracing::debug!(op = %op.id, kind = %op.kind, attempt = op.attempt, ms = started.elapsed().as_millis() as u64, "operation finished");
                    }
                    Err(StoreError::StaleOperation(_)) => {
                        tracing::warn!(op = %op.id, kind = %op.kind, "operation was taken over; result dropped");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => {
                // Left pending: the lease runs out (the back-off before a retry), and the next claim counts this
                // attempt as failed.
                tracing::warn!(op = %op.id, kind = %op.kind, attempt = op.attempt, error = %e, "operation failed; will retry");
            }
        }
        Ok(true)
    }

    /// Works out how an operation ends. Internal errors leave it for a retry, until `max_attempts` failed
    /// attempts.
    async fn execute(&self, op: &ClaimedOp) -> Result<Finish> {
        let payload: OpPayload = match serde_json::from_str(&op.payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(op = %op.id, kind = %op.kind, target = %op.target, error = %e, "operation record is unreadable; its record fails");
                return self.end_unreadable(op, &e).await;
            }
        };
        if op.failures >= self.cfg.max_attempts {
            return self
                .give_up(
                    op,
                    &payload,
                    format!("gave up after {} failed attempts", op.failures),
                )
                .await;
        }
        match payload {
            OpPayload::CreateFunction { row } => {
                self.apply_snapshot(&row, FunctionStatus::Creating, "create-function", None)
                    .await
            }
            OpPayload::UpdateFunction { row, publish } => {
                self.apply_snapshot(&row, FunctionStatus::Updating, "update-function", publish)
                    .await
            }
            OpPayload::PublishVersion { row } => {
                self.apply_snapshot(&row, FunctionStatus::Publishing, "publish-version", None)
                    .await
            }
            OpPayload::DeleteFunction { row } => {
                let Some(r) = self.store.function_by_id(&row).await? else {
                    return Ok(Finish::Nothing);
                };
                if let Some(msg) = injected("delete-function") {
                    return Ok(fail_row(&r, FunctionStatus::DeleteFailed, internal(msg)));
                }
                Ok(Finish::DeleteFunction { key: r.key })
            }
            OpPayload::DeleteVersion { row } => {
                let Some(r) = self.store.function_by_id(&row).await? else {
                    return Ok(Finish::Nothing);
                };
                if let Some(msg) = injected("delete-function-version") {
                    return Ok(fail_row(&r, FunctionStatus::DeleteFailed, internal(msg)));
                }
                Ok(Finish::DeleteVersion { row_id: r.id })
            }
            OpPayload::PublishLayer { name, version } => {
                let Some(l) = self.store.layer_version(op.app_id, &name, version).await? else {
                    return Ok(Finish::Nothing);
                };
                let layer_finish = |status, reasons| Finish::Layer {
                    app_id: op.app_id,
                    name: name.clone(),
                    version,
                    status,
                    reasons,
                };
                if let Some(msg) = injected("publish-layer-version") {
                    return Ok(layer_finish(LayerStatus::PublishFailed, internal(msg)));
                }
                self.store
                    .ensure_local_blob(&l.layer.content.sha256)
                    .await?;
                let blobs = self.store.blobs.clone();
                let limits = self.cfg.prepare.clone();
                let content = l.layer.content.clone();
                let reasons = tokio::task::spawn_blocking(move || {
                    let unzip = store::unzip::UnzipLimits {
                        max_entries: limits.max_entries,
                        max_unpacked_bytes: limits.max_unpacked_bytes,
                        max_ratio: limits.max_ratio,
                    };
                    match blobs.ensure_unpacked(&content.sha256, &unzip) {
                        Ok(_) => Vec::new(),
                        Err(e) => vec![crate::prepare::reason_for_unpack("layer content", e)],
                    }
                })
                .await
                .map_err(|e| ControlError::Internal(format!("preparation panicked: {e}")))?;
                Ok(if reasons.is_empty() {
                    layer_finish(LayerStatus::Active, Vec::new())
                } else {
                    layer_finish(LayerStatus::PublishFailed, reasons)
                })
            }
            OpPayload::DeleteLayer { name, version } => {
                if self
                    .store
                    .layer_version(op.app_id, &name, version)
                    .await?
                    .is_none()
                {
                    return Ok(Finish::Nothing);
                }
                let (status, reasons) = match injected("delete-layer-version") {
                    Some(msg) => (LayerStatus::DeleteFailed, internal(msg)),
                    None => (LayerStatus::Deleted, Vec::new()),
                };
                Ok(Finish::Layer {
                    app_id: op.app_id,
                    name,
                    version,
                    status,
                    reasons,
                })
            }
        }
    }

    /// The instance pools an operation makes obsolete once it succeeds: the serving snapshot of the record it
    /// replaces or removes (every record, for a whole-function delete).
    async fn serving_keys_of(&self, op: &ClaimedOp) -> Vec<String> {
        if self.engine.is_none() {
            return Vec::new();
        }
        let Ok(payload) = serde_json::from_str::<OpPayload>(&op.payload) else {
            return Vec::new();
        };
        let rows = match payload {
            OpPayload::UpdateFunction { row, .. } | OpPayload::DeleteVersion { row } => {
                match self.store.function_by_id(&row).await {
                    Ok(Some(r)) => vec![r],
                    _ => Vec::new(),
                }
            }
            OpPayload::DeleteFunction { row } => match self.store.function_by_id(&row).await {
                Ok(Some(r)) => self
                    .store
                    .function_records(&r.key)
                    .await
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        rows.iter()
            .filter_map(|r| {
                r.serving
                    .as_ref()
                    .map(|s| crate::invoke::snapshot_key(&r.id, s))
            })
            .collect()
    }

    /// Ends an operation whose payload cannot be read (a bug, or a tampered database) in its kind's failed
    /// status, so that its record does not stay transitional. What it works on is rebuilt from the columns kept
    /// beside the payload; for a kind this version does not know, the record's own transitional status says
    /// which failed status it takes.
    async fn end_unreadable(&self, op: &ClaimedOp, error: &serde_json::Error) -> Result<Finish> {
        let why = format!("the operation record is unreadable ({error})");
        if let Some(payload) = payload_from_columns(&op.kind, &op.target) {
            return self.give_up(op, &payload, why).await;
        }
        let Some(row) = self.store.function_by_id(&op.target).await? else {
            return Ok(Finish::Nothing);
        };
        let failed = match row.status {
            FunctionStatus::Creating => FunctionStatus::CreateFailed,
            FunctionStatus::Updating => FunctionStatus::UpdateFailed,
            FunctionStatus::Publishing => FunctionStatus::PublishFailed,
            FunctionStatus::Deleting => FunctionStatus::DeleteFailed,
            _ => return Ok(Finish::Nothing),
        };
        Ok(fail_row(&row, failed, internal(why)))
    }

    /// Ends an operation that kept failing (or cannot be read) in its kind's failed status.
    async fn give_up(&self, op: &ClaimedOp, payload: &OpPayload, why: String) -> Result<Finish> {
        let (row, status) = match payload {
            OpPayload::CreateFunction { row } => (row, FunctionStatus::CreateFailed),
            OpPayload::UpdateFunction { row, .. } => (row, FunctionStatus::UpdateFailed),
            OpPayload::PublishVersion { row } => (row, FunctionStatus::PublishFailed),
            OpPayload::DeleteFunction { row } | OpPayload::DeleteVersion { row } => {
                (row, FunctionStatus::DeleteFailed)
            }
            OpPayload::PublishLayer { name, version }
            | OpPayload::DeleteLayer { name, version } => {
                let status = if matches!(payload, OpPayload::PublishLayer { .. }) {
                    LayerStatus::PublishFailed
                } else {
                    LayerStatus::DeleteFailed
                };
                return Ok(Finish::Layer {
                    app_id: op.app_id,
                    name: name.clone(),
                    version: *version,
                    status,
                    reasons: internal(why),
                });
            }
        };
        Ok(match self.store.function_by_id(row).await? {
            Some(r) => fail_row(&r, status, internal(why)),
            None => Finish::Nothing,
        })
    }

    /// Prepares a record's pending snapshot and makes it serving, or fails the record with reasons.
    async fn apply_snapshot(
        &self,
        row_id: &str,
        expect: FunctionStatus,
        failpoint: &str,
        publish: Option<String>,
    ) -> Result<Finish> {
        let Some(row) = self.store.function_by_id(row_id).await? else {
            return Ok(Finish::Nothing);
        };
        let failed = match expect {
            FunctionStatus::Creating => FunctionStatus::CreateFailed,
            FunctionStatus::Updating => FunctionStatus::UpdateFailed,
            _ => FunctionStatus::PublishFailed,
        };
        let Some(snapshot) = row.pending.clone().filter(|_| row.status == expect) else {
            // Already finished by an earlier attempt.
            return Ok(Finish::Nothing);
        };
        if let Some(msg) = injected(failpoint) {
            return Ok(fail_row(&row, failed, internal(msg)));
        }
        // Layers must exist; a new binding also needs its layer version Active. A binding the serving snapshot
        // already has may outlive the deletion of its layer version (the content is kept for it), and a version
        // copies a snapshot that was already prepared.
        let already_bound: &[LayerRef] = row
            .serving
            .as_ref()
            .map(|s| s.config.layers.as_slice())
            .unwrap_or(&[]);
        let mut layers = Vec::new();
        let mut reasons = Vec::new();
        if expect != FunctionStatus::Publishing
            && !self.runtime_available(&snapshot.config.runtime).await
        {
            reasons.push(StatusReason::new(
                "InvalidParameterValue.Runtime",
                format!(
                    "runtime {} is not installed on this Stratus installation",
                    snapshot.config.runtime
                ),
            ));
        }
        for l in &snapshot.config.layers {
            match self
                .store
                .layer_version(row.key.app_id, &l.name, l.version)
                .await?
            {
                None => reasons.push(StatusReason::new(
                    "ResourceNotFound.LayerVersion",
                    format!("layer {} version {} does not exist", l.name, l.version),
                )),
                Some(lv)
                    if expect != FunctionStatus::Publishing
                        && lv.layer.status != LayerStatus::Active
                        && !(lv.layer.status == LayerStatus::Deleted
                            && already_bound.contains(l)) =>
                {
                    reasons.push(StatusReason::new(
                        "InvalidParameterValue.Layers",
                        format!(
                            "layer {} version {} is {}, not Active",
                            l.name, l.version, lv.layer.status
                        ),
                    ))
                }
                Some(lv) => layers.push((
                    LayerRef {
                        name: l.name.clone(),
                        version: l.version,
                    },
                    lv.layer.content,
                )),
            }
        }
        if reasons.is_empty() {
            // The code is checked from its bytes (from the database for a small package, or uploaded through
            // another node on a cluster); layers are unpacked here, once per content.
            let zip = self.store.read_blob(&snapshot.code.sha256).await?;
            for (_, content) in &layers {
                self.store.ensure_local_blob(&content.sha256).await?;
            }
            let blobs = self.store.blobs.clone();
            let limits = self.cfg.prepare.clone();
            let snap = snapshot.clone();
            reasons = tokio::task::spawn_blocking(move || {
                prepare_blocking(&blobs, &snap, &zip, &layers, &limits)
            })
            .await
            .map_err(|e| ControlError::Internal(format!("preparation panicked: {e}")))?;
        }
        if !reasons.is_empty() {
            return Ok(fail_row(&row, failed, reasons));
        }
        let then_publish = match publish {
            Some(description) if row.qualifier == Qualifier::LATEST => {
                let now = self.cfg.clock.now_ms();
                let version = new_version_row(&row, snapshot.clone(), &description, now);
                let op = OpPayload::PublishVersion {
                    row: version.id.clone(),
                }
                .into_op(row.key.app_id, version.id.clone(), now);
                Some(Box::new((version, op)))
            }
            _ => None,
        };
        Ok(Finish::Promote {
            row_id: row.id.clone(),
            snapshot,
            then_publish,
        })
    }

    /// Removes blobs no record needs any more (after `grace`, which covers uploads not committed yet), and
    /// finished operations older than a day. Returns how many blobs went.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<usize> {
        self.store.prune_ops(24 * 3600 * 1000).await?;
        Ok(self.store.collect_blobs(grace).await?)
    }
}

fn fail_row(row: &FunctionRow, status: FunctionStatus, reasons: Vec<StatusReason>) -> Finish {
    Finish::Fail {
        row_id: row.id.clone(),
        status,
        reasons,
    }
}

/// The payload of an operation of `kind` on `target`, rebuilt from those two columns (an update's follow-up
/// publish is lost, which does not matter for failing it). `None` for a kind this version does not know, or a
/// layer target that does not parse.
fn payload_from_columns(kind: &str, target: &str) -> Option<OpPayload> {
    let row = target.to_string();
    // `layer:<app id>:<name>:<version>` (`store::layer_target`); layer names hold no `:`.
    let layer = || {
        let (_app, rest) = target.strip_prefix("layer:")?.split_once(':')?;
        let (name, version) = rest.rsplit_once(':')?;
        Some((name.to_string(), version.parse::<i64>().ok()?))
    };
    Some(match kind {
        "CreateFunction" => OpPayload::CreateFunction { row },
        "UpdateFunction" => OpPayload::UpdateFunction { row, publish: None },
        "PublishVersion" => OpPayload::PublishVersion { row },
        "DeleteFunction" => OpPayload::DeleteFunction { row },
        "DeleteVersion" => OpPayload::DeleteVersion { row },
        "PublishLayer" => {
            let (name, version) = layer()?;
            OpPayload::PublishLayer { name, version }
        }
        "DeleteLayer" => {
            let (name, version) = layer()?;
            OpPayload::DeleteLayer { name, version }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_rebuilt_from_its_columns() {
        let app = 1_300_000_001;
        let payloads = [
            OpPayload::CreateFunction { row: "r1".into() },
            OpPayload::UpdateFunction {
                row: "r2".into(),
                publish: None,
            },
            OpPayload::PublishVersion { row: "r3".into() },
            OpPayload::DeleteFunction { row: "r4".into() },
            OpPayload::DeleteVersion { row: "r5".into() },
            OpPayload::PublishLayer {
                name: "lib-a_1".into(),
                version: 7,
            },
            OpPayload::DeleteLayer {
                name: "L".into(),
                version: 12,
            },
        ];
        for p in payloads {
            let target = match &p {
                OpPayload::PublishLayer { name, version }
                | OpPayload::DeleteLayer { name, version } => {
                    store::layer_target(app, name, *version)
                }
                OpPayload::CreateFunction { row }
                | OpPayload::UpdateFunction { row, .. }
                | OpPayload::PublishVersion { row }
                | OpPayload::DeleteFunction { row }
                | OpPayload::DeleteVersion { row } => row.clone(),
            };
            let op = p.clone().into_op(app, target.clone(), 0);
            assert_eq!(payload_from_columns(&op.kind, &op.target), Some(p));
        }
        assert_eq!(payload_from_columns("Frobnicate", "r1"), None);
        assert_eq!(payload_from_columns("PublishLayer", "layer:1:lib"), None);
        assert_eq!(payload_from_columns("DeleteLayer", "r1"), None);
    }
}
