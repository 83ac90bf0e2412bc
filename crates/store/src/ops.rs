//! The durable operation queue. An operation is written in the same transaction as the status change it will
//! complete; workers claim it with a lease and an attempt number, and finish it in the same transaction as the
//! terminal status. A worker whose lease expired (or whose attempt was superseded) cannot finish it any more.

use model::{FunctionKey, FunctionStatus, LayerStatus, Snapshot, StatusReason};
use sqlx::Row;

use crate::Store;
use crate::db::Dialect;
use crate::error::{Result, StoreError};
use crate::functions::{FunctionRow, insert_function_row, to_json};

/// An operation to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOp {
    pub id: String,
    pub app_id: i64,
    /// What to do; the control plane gives it meaning.
    pub kind: String,
    /// The row it works on (a function record id or a layer version key).
    pub target: String,
    /// Parameters as JSON, opaque to the store.
    pub payload: String,
    pub created_ms: i64,
}

/// An operation this worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedOp {
    pub id: String,
    pub app_id: i64,
    pub kind: String,
    pub target: String,
    pub payload: String,
    /// 1 for the first claim; a resumed operation has a higher number.
    pub attempt: i64,
    pub owner: String,
    pub created_ms: i64,
}

/// How an operation ends; applied in the same transaction that marks it done.
#[derive(Debug, Clone)]
// One value per finished operation: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Finish {
    /// The pending snapshot becomes serving and the record `Active`; optionally a version is then published.
    Promote {
        row_id: String,
        snapshot: Snapshot,
        then_publish: Option<Box<(FunctionRow, NewOp)>>,
    },
    /// The record takes a failed status with reasons; serving stays and the pending snapshot is dropped (unless
    /// nothing ever served: a failed create keeps showing what was asked for).
    Fail {
        row_id: String,
        status: FunctionStatus,
        reasons: Vec<StatusReason>,
    },
    /// Every record, alias and pending operation of the function goes.
    DeleteFunction { key: FunctionKey },
    /// One version record goes.
    DeleteVersion { row_id: String },
    /// A layer version takes a status (Active, PublishFailed, Deleted, DeleteFailed).
    Layer {
        app_id: i64,
        name: String,
        version: i64,
        status: LayerStatus,
        reasons: Vec<StatusReason>,
    },
    /// Nothing to change (the target is already gone).
    Nothing,
}

pub(crate) async fn insert_op(tx: &mut sqlx::Transaction<'_, sqlx::Any>, op: &NewOp) -> Result<()> {
    sqlx::query(
        "INSERT INTO operations (id, app_id, kind, target, payload, state, attempt, lease_owner, lease_until, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, NULL, 0, $6, $6)",
    )
    .bind(&op.id)
    .bind(op.app_id)
    .bind(&op.kind)
    .bind(&op.target)
    .bind(&op.payload)
    .bind(op.created_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Claims the oldest operation that is pending and not leased (or whose lease expired).
    pub async fn claim_op(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimedOp>> {
        let pick = match self.db.dialect {
            Dialect::Sqlite => {
                "SELECT id FROM operations WHERE state = 'pending' AND +lease_until < $3 ORDER BY created_ms LIMIT 1"
            }
            Dialect::Postgres => {
                "SELECT id FROM operations WHERE state = 'pending' AND +lease_until < $3 ORDER BY created_ms LIMIT 1 FOR UPDATE SKIP LOCKED"
            }
        };
        // The candidate comes from the partial index of pending operations in creation order (`+lease_until` keeps
        // the planner off the lease index, which would sort every pending operation). The outer conditions are
        // checked again on the row itself, so two racing claimers cannot both win.
        let sql = format!(
            "UPDATE operations SET attempt = attempt + 1, lease_owner = $1, lease_until = $2, updated_ms = $3 \
             WHERE id = ({pick}) AND state = 'pending' AND lease_until < $3 \
             RETURNING id, app_id, kind, target, payload, attempt, created_ms"
        );
        let r = sqlx::query(&sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.db.write)
            .await?;
        r.map(|r| {
            Ok(ClaimedOp {
                id: r.try_get("id")?,
                app_id: r.try_get("app_id")?,
                kind: r.try_get("kind")?,
                target: r.try_get("target")?,
                payload: r.try_get("payload")?,
                attempt: r.try_get("attempt")?,
                owner: owner.to_string(),
                created_ms: r.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    /// Extends the lease of a held operation. `StaleOperation` if it is no longer held by this attempt.
    pub async fn renew_op(&self, op: &ClaimedOp, now: i64, lease_ms: i64) -> Result<()> {
        let r = sqlx::query(
            "UPDATE operations SET lease_until = $1, updated_ms = $2 \
             WHERE id = $3 AND attempt = $4 AND lease_owner = $5 AND state = 'pending'",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(&op.id)
        .bind(op.attempt)
        .bind(&op.owner)
        .execute(&self.db.write)
        .await?;
        if r.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::StaleOperation(op.id.clone()))
        }
    }

    /// Forgets finished operations last touched before `before_ms`. Returns how many.
    pub async fn prune_ops(&self, before_ms: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM operations WHERE state = 'done' AND updated_ms < $1")
            .bind(before_ms)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected())
    }

    /// Number of operations not finished yet.
    pub async fn pending_ops(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM operations WHERE state = 'pending'")
            .fetch_one(&self.db.read)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// Marks the operation done and applies its outcome, in one transaction. Refused with `StaleOperation`
    /// when this attempt no longer holds the operation: nothing is then changed.
    pub async fn finish_op(&self, op: &ClaimedOp, finish: Finish, now: i64) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        let outcome = match &finish {
            Finish::Promote { .. } => "active",
            Finish::Fail { .. } => "failed",
            Finish::DeleteFunction { .. } | Finish::DeleteVersion { .. } => "deleted",
            Finish::Layer { status, .. } => status.as_str(),
            Finish::Nothing => "nothing",
        };
        let r = sqlx::query(
            "UPDATE operations SET state = 'done', outcome = $1, updated_ms = $2, lease_owner = NULL \
             WHERE id = $3 AND attempt = $4 AND lease_owner = $5 AND state = 'pending'",
        )
        .bind(outcome)
        .bind(now)
        .bind(&op.id)
        .bind(op.attempt)
        .bind(&op.owner)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::StaleOperation(op.id.clone()));
        }
        match finish {
            Finish::Promote {
                row_id,
                snapshot,
                then_publish,
            } => {
                sqlx::query(
                    "UPDATE functions SET status = 'Active', reasons = '[]', serving = $1, serving_code = $2, \
                     pending = NULL, pending_code = NULL, runtime = $3, description = $4, rev = rev + 1, mod_ms = $5 \
                     WHERE id = $6",
                )
                .bind(to_json(&snapshot))
                .bind(&snapshot.code.sha256)
                .bind(&snapshot.config.runtime)
                .bind(&snapshot.config.description)
                .bind(now)
                .bind(&row_id)
                .execute(&mut *tx)
                .await?;
                if let Some(publish) = then_publish {
                    let (version, vop) = *publish;
                    sqlx::query(
                        "UPDATE functions SET next_version = next_version + 1, rev = rev + 1 WHERE id = $1",
                    )
                    .bind(&row_id)
                    .execute(&mut *tx)
                    .await?;
                    insert_function_row(&mut tx, &version).await?;
                    insert_op(&mut tx, &vop).await?;
                }
            }
            Finish::Fail {
                row_id,
                status,
                reasons,
            } => {
                sqlx::query(
                    "UPDATE functions SET status = $1, reasons = $2, \
                     pending = CASE WHEN serving IS NULL THEN pending ELSE NULL END, \
                     pending_code = CASE WHEN serving IS NULL THEN pending_code ELSE NULL END, \
                     rev = rev + 1, mod_ms = $3 WHERE id = $4",
                )
                .bind(status.as_str())
                .bind(to_json(&reasons))
                .bind(now)
                .bind(&row_id)
                .execute(&mut *tx)
                .await?;
            }
            Finish::DeleteFunction { key } => {
                sqlx::query(
                    "UPDATE operations SET state = 'done', outcome = 'cancelled', updated_ms = $1 \
                     WHERE state = 'pending' AND target IN \
                     (SELECT id FROM functions WHERE app_id = $2 AND namespace = $3 AND name = $4)",
                )
                .bind(now)
                .bind(key.app_id)
                .bind(&key.namespace)
                .bind(&key.name)
                .execute(&mut *tx)
                .await?;
                for table in [
                    "DELETE FROM functions WHERE app_id = $1 AND namespace = $2 AND name = $3",
                    "DELETE FROM aliases WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
                ] {
                    sqlx::query(table)
                        .bind(key.app_id)
                        .bind(&key.namespace)
                        .bind(&key.name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            Finish::DeleteVersion { row_id } => {
                sqlx::query("DELETE FROM functions WHERE id = $1")
                    .bind(&row_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Finish::Layer {
                app_id,
                name,
                version,
                status,
                reasons,
            } => {
                sqlx::query(
                    "UPDATE layers SET status = $1, reasons = $2, rev = rev + 1, mod_ms = $3 \
                     WHERE app_id = $4 AND name = $5 AND version = $6",
                )
                .bind(status.as_str())
                .bind(to_json(&reasons))
                .bind(now)
                .bind(app_id)
                .bind(&name)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            Finish::Nothing => {}
        }
        tx.commit().await?;
        Ok(())
    }
}
