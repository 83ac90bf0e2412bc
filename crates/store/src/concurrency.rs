//! Concurrency settings and the nodes' leased shares of each concurrency limit.
//!
//! - `concurrency_reservations`: a function's reserved concurrency memory (PutReservedConcurrencyConfig). It
//!   references the function's `$LATEST` record, so deleting the function deletes the reservation.
//! - `namespace_concurrency`: a namespace's total concurrency memory (PutTotalConcurrencyConfig), removed with
//!   the namespace.
//! - `concurrency_shares`: on a cluster, the part of one limit (a scope: the account's unreserved pool, a
//!   namespace's unreserved pool, a function's reservation) that one node may admit without asking again, with
//!   its lease on the database's clock, and the memory that node runs in that scope (for GetAccount).
//!
//! The checks that span rows (the sum of reservations, the namespace total against its reservations, the sum of
//! live shares against a limit) run inside the transaction that writes, under the account's row lock
//! (PostgreSQL) or SQLite's write lock.

use sqlx::Row;

use crate::Store;
use crate::db::Dialect;
use crate::error::{Result, StoreError};
use crate::functions::for_update;

/// An account's concurrency settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConcurrencySettings {
    /// `(namespace, function, reserved MB)`.
    pub reservations: Vec<(String, String, i64)>,
    /// `(namespace, total MB)`.
    pub namespace_totals: Vec<(String, i64)>,
}

/// What PutReservedConcurrencyConfig found when it checked the reservation against the other settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationOutcome {
    Stored,
    /// The account's reservations together would pass `max` (MB); `others` are the other functions'.
    AccountExceeded {
        others: i64,
        max: i64,
    },
    /// The namespace's reservations plus the headroom would pass its total.
    NamespaceExceeded {
        others: i64,
        total: i64,
    },
    /// The function does not exist (any more).
    NoFunction,
}

/// How far reservations may go: the account's together at most `max_reserved_mb`, a namespace's together at
/// most its total less `headroom_mb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationBounds {
    pub max_reserved_mb: i64,
    pub headroom_mb: i64,
}

/// Which limit a share is part of, so the granting transaction reads the limit as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareLimit {
    /// The account's quota less every reservation of the account.
    AccountPool { quota_mb: i64 },
    /// The namespace's total less its reservations (no total: no limit of its own).
    NamespacePool { namespace: String },
    /// The function's reservation.
    Reservation { namespace: String, function: String },
}

/// A node's renewal of one share: the share it keeps and the memory it runs in the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRenewal {
    pub app_id: i64,
    pub scope: String,
    pub share_mb: i64,
    pub used_mb: i64,
}

impl Store {
    async fn lock_account(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        app_id: i64,
    ) -> Result<()> {
        sqlx::query(&format!(
            "SELECT app_id FROM accounts WHERE app_id = $1{}",
            for_update(self.db.dialect)
        ))
        .bind(app_id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(())
    }

    /// Every reservation and namespace total of an account.
    pub async fn concurrency_settings(&self, app_id: i64) -> Result<ConcurrencySettings> {
        let rows = sqlx::query(
            "SELECT namespace, function_name, mem_mb FROM concurrency_reservations WHERE app_id = $1 \
             ORDER BY namespace, function_name",
        )
        .bind(app_id)
        .fetch_all(&self.db.read)
        .await?;
        let mut out = ConcurrencySettings::default();
        for r in rows {
            out.reservations.push((
                r.try_get("namespace")?,
                r.try_get("function_name")?,
                r.try_get("mem_mb")?,
            ));
        }
        let rows = sqlx::query(
            "SELECT namespace, total_mb FROM namespace_concurrency WHERE app_id = $1 ORDER BY namespace",
        )
        .bind(app_id)
        .fetch_all(&self.db.read)
        .await?;
        for r in rows {
            out.namespace_totals
                .push((r.try_get("namespace")?, r.try_get("total_mb")?));
        }
        Ok(out)
    }

    /// A function's reservation in MB, if it has one.
    pub async fn reservation(
        &self,
        app_id: i64,
        namespace: &str,
        function: &str,
    ) -> Result<Option<i64>> {
        let r = sqlx::query(
            "SELECT mem_mb FROM concurrency_reservations \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(function)
        .fetch_optional(&self.db.read)
        .await?;
        r.map(|r| Ok(r.try_get("mem_mb")?)).transpose()
    }

    /// Sets a function's reservation if the account's reservations stay within `bounds.max_reserved_mb` and, when
    /// the namespace has a total, the namespace's reservations plus `bounds.headroom_mb` within it.
    pub async fn put_reservation(
        &self,
        app_id: i64,
        namespace: &str,
        function: &str,
        mem_mb: i64,
        bounds: ReservationBounds,
        now: i64,
    ) -> Result<ReservationOutcome> {
        let ReservationBounds {
            max_reserved_mb,
            headroom_mb,
        } = bounds;
        let mut tx = self.begin_checked().await?;
        self.lock_account(&mut tx, app_id).await?;
        let others: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(mem_mb), 0) AS BIGINT) AS n FROM concurrency_reservations \
             WHERE app_id = $1 AND NOT (namespace = $2 AND function_name = $3)",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(function)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if others + mem_mb > max_reserved_mb {
            return Ok(ReservationOutcome::AccountExceeded {
                others,
                max: max_reserved_mb,
            });
        }
        let total: Option<i64> = sqlx::query(
            "SELECT total_mb FROM namespace_concurrency WHERE app_id = $1 AND namespace = $2",
        )
        .bind(app_id)
        .bind(namespace)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("total_mb"))
        .transpose()?;
        if let Some(total) = total {
            let ns_others: i64 = sqlx::query(
                "SELECT CAST(COALESCE(SUM(mem_mb), 0) AS BIGINT) AS n FROM concurrency_reservations \
                 WHERE app_id = $1 AND namespace = $2 AND function_name <> $3",
            )
            .bind(app_id)
            .bind(namespace)
            .bind(function)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if ns_others + mem_mb + headroom_mb > total {
                return Ok(ReservationOutcome::NamespaceExceeded {
                    others: ns_others,
                    total,
                });
            }
        }
        let r = sqlx::query(
            "INSERT INTO concurrency_reservations (app_id, namespace, function_name, qualifier, mem_mb, mod_ms) \
             VALUES ($1, $2, $3, '$LATEST', $4, $5) \
             ON CONFLICT (app_id, namespace, function_name) \
             DO UPDATE SET mem_mb = EXCLUDED.mem_mb, mod_ms = EXCLUDED.mod_ms",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(function)
        .bind(mem_mb)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Ok(ReservationOutcome::NoFunction);
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(ReservationOutcome::Stored)
    }

    /// Removes a function's reservation. Returns whether it had one.
    pub async fn delete_reservation(
        &self,
        app_id: i64,
        namespace: &str,
        function: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM concurrency_reservations WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(function)
        .execute(&self.db.write)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sets a namespace's total unless it would be under the namespace's reservations plus `headroom_mb`; then
    /// returns `Some(reserved)`. A namespace removed meanwhile is `Conflict`.
    pub async fn put_namespace_total(
        &self,
        app_id: i64,
        namespace: &str,
        total_mb: i64,
        headroom_mb: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_checked().await?;
        self.lock_account(&mut tx, app_id).await?;
        let reserved: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(mem_mb), 0) AS BIGINT) AS n FROM concurrency_reservations \
             WHERE app_id = $1 AND namespace = $2",
        )
        .bind(app_id)
        .bind(namespace)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if total_mb < reserved + headroom_mb {
            return Ok(Some(reserved));
        }
        let r = sqlx::query(
            "INSERT INTO namespace_concurrency (app_id, namespace, total_mb, mod_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id, namespace) DO UPDATE SET total_mb = EXCLUDED.total_mb, mod_ms = EXCLUDED.mod_ms",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(total_mb)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::Conflict);
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Grows this node's share of a scope to `want_mb` if the live shares of the other nodes leave room under
    /// the limit as it is now, and extends its lease by `lease_ms` (the database's clock). Returns the share the
    /// node holds afterwards: at least `want_mb` when granted, what it held before otherwise (0 when its lease had
    /// lapsed).
    pub async fn grow_share(
        &self,
        node: &str,
        app_id: i64,
        scope: &str,
        limit: &ShareLimit,
        want_mb: i64,
        lease_ms: i64,
    ) -> Result<(bool, i64)> {
        let now = self.db.dialect.now_ms_sql();
        let mut tx = self.begin_checked().await?;
        self.lock_account(&mut tx, app_id).await?;
        let limit_mb = match limit {
            ShareLimit::AccountPool { quota_mb } => {
                let reserved: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(mem_mb), 0) AS BIGINT) AS n FROM concurrency_reservations \
                     WHERE app_id = $1",
                )
                .bind(app_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                Some(quota_mb - reserved)
            }
            ShareLimit::NamespacePool { namespace } => {
                let total: Option<i64> = sqlx::query(
                    "SELECT total_mb FROM namespace_concurrency WHERE app_id = $1 AND namespace = $2",
                )
                .bind(app_id)
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("total_mb"))
                .transpose()?;
                match total {
                    None => None,
                    Some(t) => {
                        let reserved: i64 = sqlx::query(
                            "SELECT CAST(COALESCE(SUM(mem_mb), 0) AS BIGINT) AS n \
                             FROM concurrency_reservations WHERE app_id = $1 AND namespace = $2",
                        )
                        .bind(app_id)
                        .bind(namespace)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("n")?;
                        Some(t - reserved)
                    }
                }
            }
            ShareLimit::Reservation {
                namespace,
                function,
            } => Some(
                sqlx::query(
                    "SELECT mem_mb FROM concurrency_reservations \
                     WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
                )
                .bind(app_id)
                .bind(namespace)
                .bind(function)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<i64, _>("mem_mb"))
                .transpose()?
                .unwrap_or(0),
            ),
        };
        let held: i64 = sqlx::query(&format!(
            "SELECT CASE WHEN expires_ms > {now} THEN share_mb ELSE 0 END AS s FROM concurrency_shares \
             WHERE app_id = $1 AND scope = $2 AND node = $3"
        ))
        .bind(app_id)
        .bind(scope)
        .bind(node)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("s"))
        .transpose()?
        .unwrap_or(0);
        let others: i64 = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(share_mb), 0) AS BIGINT) AS n FROM concurrency_shares \
             WHERE app_id = $1 AND scope = $2 AND node <> $3 AND expires_ms > {now}"
        ))
        .bind(app_id)
        .bind(scope)
        .bind(node)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        let target = want_mb.max(held);
        let granted = limit_mb.is_none_or(|l| others + target <= l);
        let share = if granted { target } else { held };
        sqlx::query(&format!(
            "INSERT INTO concurrency_shares (node, app_id, scope, share_mb, used_mb, expires_ms) \
             VALUES ($1, $2, $3, $4, 0, {now} + $5) \
             ON CONFLICT (app_id, scope, node) DO UPDATE SET share_mb = EXCLUDED.share_mb, \
             expires_ms = EXCLUDED.expires_ms"
        ))
        .bind(node)
        .bind(app_id)
        .bind(scope)
        .bind(share)
        .bind(lease_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((granted, share))
    }

    /// Renews this node's shares: each keeps at most what it held (a share whose lease lapsed is 0: capacity
    /// another node may have taken is never taken back), records the memory the node runs in the scope, and is
    /// leased `lease_ms` more. A share of 0 with nothing running is removed. Returns the share kept for each.
    pub async fn renew_shares(
        &self,
        node: &str,
        renewals: &[ShareRenewal],
        lease_ms: i64,
    ) -> Result<Vec<i64>> {
        let now = self.db.dialect.now_ms_sql();
        let upsert = format!(
            "INSERT INTO concurrency_shares (node, app_id, scope, share_mb, used_mb, expires_ms) \
             VALUES ($1, $2, $3, 0, $5, {now} + $6) \
             ON CONFLICT (app_id, scope, node) DO UPDATE SET \
             share_mb = CASE WHEN concurrency_shares.expires_ms <= {now} THEN 0 \
                             WHEN concurrency_shares.share_mb < $4 THEN concurrency_shares.share_mb ELSE $4 END, \
             used_mb = EXCLUDED.used_mb, expires_ms = EXCLUDED.expires_ms \
             RETURNING share_mb"
        );
        let mut kept = Vec::with_capacity(renewals.len());
        for r in renewals {
            if r.share_mb == 0 && r.used_mb == 0 {
                sqlx::query(
                    "DELETE FROM concurrency_shares WHERE app_id = $1 AND scope = $2 AND node = $3",
                )
                .bind(r.app_id)
                .bind(&r.scope)
                .bind(node)
                .execute(&self.db.write)
                .await?;
                kept.push(0);
                continue;
            }
            let row = sqlx::query(&upsert)
                .bind(node)
                .bind(r.app_id)
                .bind(&r.scope)
                .bind(r.share_mb)
                .bind(r.used_mb)
                .bind(lease_ms)
                .fetch_one(&self.db.write)
                .await?;
            kept.push(row.try_get("share_mb")?);
        }
        Ok(kept)
    }

    /// Gives up every share of this node (a clean shutdown), so other nodes need not wait for the leases.
    pub async fn release_shares(&self, node: &str) -> Result<()> {
        sqlx::query("DELETE FROM concurrency_shares WHERE node = $1")
            .bind(node)
            .execute(&self.db.write)
            .await?;
        Ok(())
    }

    /// Forgets shares whose lease lapsed more than `age_ms` ago (nodes that died).
    pub async fn prune_shares(&self, age_ms: i64) -> Result<u64> {
        let sql = format!(
            "DELETE FROM concurrency_shares WHERE expires_ms < {} - $1",
            self.db.dialect.now_ms_sql()
        );
        let r = sqlx::query(&sql)
            .bind(age_ms)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected())
    }

    /// The memory that nodes other than `node` run in each scope of an account, from their live shares' last
    /// renewal: `(scope, MB)`.
    pub async fn others_usage(&self, app_id: i64, node: &str) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT scope, CAST(COALESCE(SUM(used_mb), 0) AS BIGINT) AS n FROM concurrency_shares \
             WHERE app_id = $1 AND node <> $2 AND expires_ms > {} GROUP BY scope",
            self.db.dialect.now_ms_sql()
        );
        let rows = sqlx::query(&sql)
            .bind(app_id)
            .bind(node)
            .fetch_all(&self.db.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("scope")?, r.try_get("n")?)))
            .collect()
    }

    /// Whether this store is shared by several nodes (PostgreSQL): then concurrency limits are leased in shares.
    pub fn is_shared(&self) -> bool {
        self.db.dialect == Dialect::Postgres
    }
}
