//! The status change log behind the live status stream.
//!
//! Database triggers (migration 13) add one row to `status_changes` in the transaction of every status change of
//! a function record, a layer version or an asynchronous event, so the log is exactly as durable and as ordered as
//! the changes themselves, and no writer in the store has to remember it. A reader follows one account's rows by
//! a cursor, the id of the last row it was given.
//!
//! **The cursor never skips a row.** On SQLite there is one writer, so ids are drawn and committed in the same
//! order. On PostgreSQL ids come from a sequence and two transactions may commit theirs out of order: a reader
//! that moved its cursor past id 7 while the transaction holding id 6 was still open would never see 6. Each row
//! therefore records a `horizon`: the `xmax` of a snapshot taken just after its id was drawn. Every transaction
//! that had drawn a smaller id at that moment had an xid below the horizon (a change is logged after its row was
//! written, so the transaction already has an xid when it draws). Once the oldest transaction still running (the
//! reader's `pg_snapshot_xmin`) is at or past a row's horizon, no row with a smaller id can ever commit. A read
//! hands out rows in id order only up to the first row whose horizon is not yet passed; the rest wait for the
//! next read (the stream re-reads shortly). That stall lasts as long as the oldest writing transaction anywhere
//! on the server, which for Stratus's short transactions is milliseconds.
//!
//! **Wake-ups.** On SQLite, every connection returned to the single writer pool (every commit of the process)
//! bumps a `watch` channel (see `Db::connect`); on PostgreSQL the trigger also runs `pg_notify`, delivered at
//! commit to one `LISTEN` connection per process, which bumps the same channel, so a change committed through any
//! node wakes the streams of every node. Readers also re-read on a timer of their own, which covers a
//! notification lost while the listener reconnects.
//!
//! **Retention.** [`Store::prune_changes`] deletes the oldest rows as one prefix of ids and records the last id
//! it deleted (`settings`: `status_changes.pruned_through`) in the same transaction. A read whose cursor is below
//! it may have lost rows and answers [`ChangeRead::reset`] instead of rows.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use model::StatusReason;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::watch;

use crate::Store;
use crate::db::Dialect;
use crate::error::Result;
use crate::functions::from_json;

/// The PostgreSQL channel on which the log's trigger announces a change (its payload is the account).
const CHANNEL: &str = "stratus_changes";
/// The settings row holding the last id pruned.
const PRUNED: &str = "status_changes.pruned_through";

/// What changed status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// A function's `$LATEST` record.
    Function,
    /// A published version.
    Version,
    LayerVersion,
    AsyncEvent,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Function => "function",
            ChangeKind::Version => "version",
            ChangeKind::LayerVersion => "layer_version",
            ChangeKind::AsyncEvent => "async_event",
        }
    }

    fn parse(s: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Function,
            ChangeKind::Version,
            ChangeKind::LayerVersion,
            ChangeKind::AsyncEvent,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One status change as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The position in the log (the stream's event id).
    pub id: i64,
    pub app_id: i64,
    pub kind: ChangeKind,
    /// The function's namespace (empty for a layer version).
    pub namespace: String,
    /// The function's or the layer's name.
    pub name: String,
    /// `$LATEST` or the version number; the layer version; the qualifier an event was invoked with.
    pub qualifier: String,
    /// The event's `InvokeRequestId` (empty for other kinds).
    pub request_id: String,
    /// The new status (SCF's names; `Deleted` when a function record is gone).
    pub status: String,
    pub reasons: Vec<StatusReason>,
    /// When it committed, on the database's clock (milliseconds since the Unix epoch).
    pub db_ms: i64,
}

/// What one read of the log gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRead {
    /// The account's changes after the cursor, in log order.
    pub changes: Vec<Change>,
    /// Where the next read starts: the last change given, or further when the log is known to hold nothing more
    /// for the account up to there (the id of a later change of another account).
    pub cursor: i64,
    /// Changes of the account wait behind a transaction that is still open (PostgreSQL): read again shortly.
    pub held_back: bool,
    /// The cursor is older than the retained log: changes after it may have been pruned. Nothing else is set;
    /// the log is complete after this id.
    pub reset: Option<i64>,
}

/// Wakes the readers of the log of this process; one per database handle.
pub(crate) struct ChangeHub {
    tx: watch::Sender<u64>,
    /// Whether the PostgreSQL listener task runs.
    listening: Mutex<bool>,
}

impl ChangeHub {
    pub(crate) fn new() -> Arc<ChangeHub> {
        Arc::new(ChangeHub {
            tx: watch::channel(0).0,
            listening: Mutex::new(false),
        })
    }

    /// Something may have committed.
    pub(crate) fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn change_row(r: &AnyRow) -> Result<Option<Change>> {
    let Some(id) = r.try_get::<Option<i64>, _>("id")? else {
        return Ok(None);
    };
    let kind: String = r.try_get("kind")?;
    let kind = ChangeKind::parse(&kind)
        .ok_or_else(|| crate::StoreError::corrupt("status_changes.kind", kind.clone()))?;
    Ok(Some(Change {
        id,
        app_id: r.try_get("app_id")?,
        kind,
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        qualifier: r.try_get("qualifier")?,
        request_id: r.try_get("request_id")?,
        status: r.try_get("status")?,
        reasons: from_json(
            "status_changes.reasons",
            &r.try_get::<String, _>("reasons")?,
        )?,
        db_ms: r.try_get("db_ms")?,
    }))
}

impl Dialect {
    /// The oldest transaction id still running, as a number (0 on SQLite, where every row's horizon is 0).
    fn xmin_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST(0 AS BIGINT)",
            Dialect::Postgres => {
                "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
            }
        }
    }
}

/// The largest id below which no change can commit any more: the last row before the first one whose horizon
/// the oldest running transaction has not passed (0 for an empty log). `{xmin}` is substituted.
const SAFE_HEAD: &str = "(SELECT COALESCE(MAX(id), 0) FROM status_changes WHERE id < \
     COALESCE((SELECT MIN(id) FROM status_changes WHERE horizon > {xmin}), 9223372036854775807))";

impl Store {
    /// A receiver that changes whenever a status change may have committed, through this process or (on
    /// PostgreSQL) any node. On PostgreSQL the first call starts the process's listener.
    pub fn change_wakeups(&self) -> watch::Receiver<u64> {
        let hub = &self.db.changes;
        if let Some(url) = &self.pg_url {
            let mut listening = hub.listening.lock().unwrap_or_else(|e| e.into_inner());
            if !*listening {
                *listening = true;
                tokio::spawn(listen(url.clone(), Arc::downgrade(hub)));
            }
        }
        hub.tx.subscribe()
    }

    /// The cursor a new reader starts from to see only what commits from now on.
    pub async fn change_head(&self) -> Result<i64> {
        let sql = format!(
            "SELECT {} AS head",
            SAFE_HEAD.replace("{xmin}", self.db.dialect.xmin_sql())
        );
        let r = sqlx::query(&sql).fetch_one(&self.db.read).await?;
        Ok(r.try_get("head")?)
    }

    /// Up to `limit` changes of account `app_id` after `cursor`, in log order (see the module's documentation for
    /// why none is ever skipped). One statement, so that the rows, the retention mark and the safe head come from
    /// one snapshot.
    pub async fn changes_after(&self, app_id: i64, cursor: i64, limit: i64) -> Result<ChangeRead> {
        let xmin = self.db.dialect.xmin_sql();
        let limit = limit.clamp(1, 10_000);
        let sql = format!(
            "SELECT p.pruned, x.xmin, h.head, c.id, c.app_id, c.kind, c.namespace, c.name, c.qualifier, \
             c.request_id, c.status, c.reasons, c.db_ms, c.horizon \
             FROM (SELECT COALESCE(MAX(CAST(value AS BIGINT)), 0) AS pruned FROM settings WHERE name = '{PRUNED}') p \
             CROSS JOIN (SELECT {xmin} AS xmin) x \
             CROSS JOIN (SELECT {} AS head) h \
             LEFT JOIN (SELECT id, app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms, \
                        horizon FROM status_changes WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT $3) c ON 1 = 1 \
             ORDER BY c.id",
            SAFE_HEAD.replace("{xmin}", xmin)
        );
        let rows = sqlx::query(&sql)
            .bind(app_id)
            .bind(cursor)
            .bind(limit)
            .fetch_all(&self.db.read)
            .await?;
        let Some(first) = rows.first() else {
            // The cross join of single rows always yields one; an empty answer only means an empty log.
            return Ok(ChangeRead {
                changes: Vec::new(),
                cursor,
                held_back: false,
                reset: None,
            });
        };
        let pruned: i64 = first.try_get("pruned")?;
        if pruned > cursor {
            return Ok(ChangeRead {
                changes: Vec::new(),
                cursor: pruned,
                held_back: false,
                reset: Some(pruned),
            });
        }
        let xmin: i64 = first.try_get("xmin")?;
        let head: i64 = first.try_get("head")?;
        let mut changes = Vec::new();
        let mut held_back = false;
        let mut seen = 0;
        for r in &rows {
            let Some(change) = change_row(r)? else {
                continue;
            };
            seen += 1;
            let horizon: i64 = r.try_get("horizon")?;
            if horizon > xmin {
                held_back = true;
                break;
            }
            changes.push(change);
        }
        let last = changes.last().map_or(cursor, |c| c.id);
        // Past the account's last change up to the safe head only when this read saw everything up to it.
        let complete = !held_back && seen < limit;
        let next = if complete {
            last.max(head).max(cursor)
        } else {
            last
        };
        Ok(ChangeRead {
            changes,
            cursor: next,
            held_back,
            reset: None,
        })
    }

    /// Forgets the changes committed more than `age_ms` ago (the database's clock), as one prefix of ids, and
    /// records the last id forgotten in the same transaction. Returns how many rows went.
    pub async fn prune_changes(&self, age_ms: i64) -> Result<u64> {
        let mut tx = self.begin_checked().await?;
        let cutoff_sql = format!(
            "SELECT MAX(id) AS m FROM status_changes WHERE db_ms < {} - $1",
            self.db.dialect.now_ms_sql()
        );
        let through: Option<i64> = sqlx::query(&cutoff_sql)
            .bind(age_ms)
            .fetch_one(&mut *tx)
            .await?
            .try_get("m")?;
        let Some(through) = through else {
            return Ok(0);
        };
        let gone = sqlx::query("DELETE FROM status_changes WHERE id <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Two nodes pruning together: the mark only grows.
        sqlx::query(&format!(
            "INSERT INTO settings (name, value) VALUES ('{PRUNED}', $1) ON CONFLICT (name) DO UPDATE SET value = \
             CASE WHEN CAST(settings.value AS BIGINT) > CAST(EXCLUDED.value AS BIGINT) THEN settings.value \
             ELSE EXCLUDED.value END"
        ))
        .bind(through.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }
}

/// The process's PostgreSQL listener: every notification (and every reconnection, after which notifications
/// may have been missed) wakes the readers. Ends when the database handle is gone.
async fn listen(url: Arc<str>, hub: Weak<ChangeHub>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "status change listener cannot connect");
                if hub.upgrade().is_none() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::debug!(error = %e, "status change listener cannot LISTEN");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        match hub.upgrade() {
            Some(h) => h.bump(),
            None => return,
        }
        loop {
            let got = listener.try_recv().await;
            let Some(h) = hub.upgrade() else {
                return;
            };
            match got {
                // A notification, or the connection was lost and is re-established (notifications meanwhile
                // are lost: wake everyone to re-read).
                Ok(_) => h.bump(),
                Err(e) => {
                    tracing::debug!(error = %e, "status change listener failed");
                    h.bump();
                    break;
                }
            }
        }
    }
}
