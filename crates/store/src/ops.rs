//! The durable operation queue. An operation is written in the same transaction as the status change it will
//! complete; workers claim it with a lease and an attempt number, and finish it in the same transaction as the
//! terminal status. Once another worker has claimed the operation after its lease ran out, the earlier attempt can
//! neither renew nor finish it any more.
//!
//! Every time a lease is set or compared is read from the database's clock, in the statement itself: the nodes of
//! a cluster then agree on when a lease runs out however wrong their own clocks are, and a node whose clock runs
//! fast cannot take a lease its holder is still renewing. The callers' clocks give only `created_ms` (the order in
//! which operations are claimed, written with the record change) and the records' own `mod_ms`, which are shown,
//! never compared with a lease. `updated_ms` (when a claim, renewal or finish last touched the operation, which
//! decides when a finished one is forgotten) is the database's time too.

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
    /// The fencing token: 1 for the first claim, one more on every claim after it. A renewal or finish is
    /// accepted only from the attempt that holds the operation.
    pub attempt: i64,
    /// How many earlier attempts failed: were claimed, then let their lease run out without finishing (their
    /// worker died, hung, lost the database for a whole lease, or ended in an internal error). The give-up is
    /// decided on this count, not on `attempt`.
    pub failures: i64,
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
    /// Claims the oldest operation that is pending and not leased (or whose lease ran out), leasing it for
    /// `lease_ms` of the database's clock.
    ///
    /// Every claim takes the next attempt number. A claim that takes over an attempt that never finished (the
    /// operation still has a lease owner, and its lease ran out on the database's clock) also counts that attempt
    /// as failed: its holder stopped renewing for a whole lease, so it died, hung, was cut off from the database,
    /// or gave the operation back after an internal error by letting the lease lapse. Nothing else counts: not the
    /// first claim, and not the attempts of workers that found the lease still live, which cannot claim at all.
    pub async fn claim_op(&self, owner: &str, lease_ms: i64) -> Result<Option<ClaimedOp>> {
        let now = self.db.dialect.now_ms_sql();
        let lock = match self.db.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        // The candidate comes from the partial index of pending operations in creation order (`+lease_until` keeps
        // the planner off any lease index, which would sort every pending operation). The outer conditions are
        // checked again on the row itself, so two racing claimers cannot both win.
        let sql = format!(
            "UPDATE operations SET attempt = attempt + 1, \
             failures = failures + CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END, \
             lease_owner = $1, lease_until = {now} + $2, updated_ms = {now} \
             WHERE id = (SELECT id FROM operations WHERE state = 'pending' AND +lease_until < {now} \
                         ORDER BY created_ms LIMIT 1{lock}) \
             AND state = 'pending' AND lease_until < {now} \
             RETURNING id, app_id, kind, target, payload, attempt, failures, created_ms"
        );
        let r = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_ms)
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
                failures: r.try_get("failures")?,
                owner: owner.to_string(),
                created_ms: r.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    /// Leases a held operation for `lease_ms` from now on the database's clock. `StaleOperation` if it is no
    /// longer held by this attempt (it was finished, cancelled, or claimed by another worker).
    ///
    /// A holder whose lease ran out may still renew it as long as nobody claimed the operation meanwhile: it still
    /// holds it, and its work is still good.
    pub async fn renew_op(&self, op: &ClaimedOp, lease_ms: i64) -> Result<()> {
        let now = self.db.dialect.now_ms_sql();
        let sql = format!(
            "UPDATE operations SET lease_until = {now} + $1, updated_ms = {now} \
             WHERE id = $2 AND attempt = $3 AND lease_owner = $4 AND state = 'pending'"
        );
        let r = sqlx::query(&sql)
            .bind(lease_ms)
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

    /// Forgets operations finished more than `age_ms` ago (on the database's clock). Returns how many.
    pub async fn prune_ops(&self, age_ms: i64) -> Result<u64> {
        let sql = format!(
            "DELETE FROM operations WHERE state = 'done' AND updated_ms < {} - $1",
            self.db.dialect.now_ms_sql()
        );
        let r = sqlx::query(&sql)
            .bind(age_ms)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected())
    }

    /// The database's clock (milliseconds since the Unix epoch): the one every lease is measured on.
    pub async fn clock_ms(&self) -> Result<i64> {
        let sql = format!("SELECT {} AS now", self.db.dialect.now_ms_sql());
        let r = sqlx::query(&sql).fetch_one(&self.db.read).await?;
        Ok(r.try_get("now")?)
    }

    /// Number of operations not finished yet.
    pub async fn pending_ops(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM operations WHERE state = 'pending'")
            .fetch_one(&self.db.read)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// Marks the operation done and applies its outcome, in one transaction. Refused with `StaleOperation`
    /// when this attempt no longer holds the operation: nothing is then changed. `now` (the caller's clock) becomes
    /// the changed records' modification time; the operation's own bookkeeping uses the database's clock.
    ///
    /// No time is compared here: the attempt number fences the finish, and a claim changes it in the same
    /// statement that finds the lease run out. A holder whose lease ran out with nobody claiming the operation
    /// may still finish it.
    pub async fn finish_op(&self, op: &ClaimedOp, finish: Finish, now: i64) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        let outcome = match &finish {
            Finish::Promote { .. } => "active",
            Finish::Fail { .. } => "failed",
            Finish::DeleteFunction { .. } | Finish::DeleteVersion { .. } => "deleted",
            Finish::Layer { status, .. } => status.as_str(),
            Finish::Nothing => "nothing",
        };
        let sql = format!(
            "UPDATE operations SET state = 'done', outcome = $1, updated_ms = {}, lease_owner = NULL \
             WHERE id = $2 AND attempt = $3 AND lease_owner = $4 AND state = 'pending'",
            self.db.dialect.now_ms_sql()
        );
        let r = sqlx::query(&sql)
            .bind(outcome)
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
                let cancel = format!(
                    "UPDATE operations SET state = 'done', outcome = 'cancelled', updated_ms = {} \
                     WHERE state = 'pending' AND target IN \
                     (SELECT id FROM functions WHERE app_id = $1 AND namespace = $2 AND name = $3)",
                    self.db.dialect.now_ms_sql()
                );
                sqlx::query(&cancel)
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
