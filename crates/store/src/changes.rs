//! The status change log behind the live status stream.
//!
//! Database triggers (migration 13) add one row to `status_changes` in the transaction of every status change of
//! a function record, a layer version or an asynchronous event, so the log is exactly as durable and as ordered as
//! the changes themselves, and no writer in the store has to remember it. A reader follows one account's rows by
//! a cursor, the id of the last row it was given.
//!
//! **The cursor never skips a row.** On SQLite there is one writer, so ids are drawn and committed in the same
//! order. On PostgreSQL ids come from a sequence and two transactions may commit theirs out of order: a reader
//! that moved its cursor past id 7 while the transaction holding id 6 was still open would never see 6. So every
//! transaction that logs a change first takes the shared advisory lock 7402 and keeps it to its end (writers never
//! wait for each other: the lock is shared, and readers never take it). A [`ChangeReader`] then works with fences:
//! it reads the sequence's last value `M`, then the transactions holding the lock (`pg_locks`, this database
//! only). Every transaction that had drawn an id up to `M` and is not finished yet is among them. Once none of
//! them holds the lock any more, every id up to `M` is committed or will never be, and a read that starts after
//! that check sees all of them: rows up to `M` are given out, and the next fence is taken. The wait is the length
//! of the status-changing transactions in flight (milliseconds), and depends on no other database of the server.
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
    /// Changes may wait behind a transaction that is still open (PostgreSQL): read again shortly.
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
    /// Whether it is listening now (notifications reach this process).
    ready: watch::Sender<bool>,
}

impl ChangeHub {
    pub(crate) fn new() -> Arc<ChangeHub> {
        Arc::new(ChangeHub {
            tx: watch::channel(0).0,
            listening: Mutex::new(false),
            ready: watch::channel(false).0,
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

/// The advisory lock key every change-logging transaction holds (shared) on PostgreSQL.
const LOCK_HOLDERS: &str = "SELECT virtualtransaction AS v FROM pg_locks WHERE locktype = 'advisory' \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND classid = 0 AND objid = 7402 AND objsubid = 1";

/// Ids up to `upto` are final once none of `holders` (virtual transaction ids) holds the lock any more.
#[derive(Debug, Clone)]
struct Fence {
    upto: i64,
    holders: Vec<String>,
}

/// One reader's position in one account's log.
pub struct ChangeReader {
    store: Store,
    app_id: i64,
    cursor: i64,
    /// Every id up to this is final (PostgreSQL).
    safe: i64,
    fence: Option<Fence>,
}

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

    /// The cursor a new reader starts from to see exactly what commits from now on. On PostgreSQL it waits for
    /// the status-changing transactions in flight (whose ids it cannot know) to end: they count as before.
    pub async fn change_head(&self) -> Result<i64> {
        match self.db.dialect {
            Dialect::Sqlite => {
                let r = sqlx::query("SELECT COALESCE(MAX(id), 0) AS head FROM status_changes")
                    .fetch_one(&self.db.read)
                    .await?;
                Ok(r.try_get("head")?)
            }
            Dialect::Postgres => {
                let fence = self.take_fence().await?;
                // Status transactions are short; a minute is far past any of them.
                for _ in 0..12_000 {
                    if self.fence_passed(&fence).await? {
                        return Ok(fence.upto);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(crate::StoreError::corrupt(
                    "status_changes",
                    "a status-changing transaction stayed open for a minute",
                ))
            }
        }
    }

    /// A reader of account `app_id`'s changes after `after` (`None`: from now on, see [`Store::change_head`]).
    /// On PostgreSQL it first waits (up to 5 s) for the process's listener, so that every change committed after
    /// it is made wakes its readers.
    pub async fn change_reader(&self, app_id: i64, after: Option<i64>) -> Result<ChangeReader> {
        if self.pg_url.is_some() {
            drop(self.change_wakeups());
            let mut ready = self.db.changes.ready.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r)).await;
        }
        let cursor = match after {
            Some(c) => c,
            None => self.change_head().await?,
        };
        Ok(ChangeReader {
            store: self.clone(),
            app_id,
            cursor,
            safe: cursor,
            fence: None,
        })
    }

    /// The sequence's last value, then the transactions that may still commit an id up to it. In this order: a
    /// transaction that draws after the first read draws a larger id.
    async fn take_fence(&self) -> Result<Fence> {
        let r = sqlx::query(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS m FROM status_changes_id",
        )
        .fetch_one(&self.db.read)
        .await?;
        let upto: i64 = r.try_get("m")?;
        let holders = sqlx::query(LOCK_HOLDERS)
            .fetch_all(&self.db.read)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("v"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Fence { upto, holders })
    }

    /// Whether none of the fence's transactions holds the lock any more.
    async fn fence_passed(&self, fence: &Fence) -> Result<bool> {
        if fence.holders.is_empty() {
            return Ok(true);
        }
        let sql = format!(
            "SELECT COUNT(*) AS n FROM ({LOCK_HOLDERS}) h WHERE h.v = ANY(string_to_array($1, ','))"
        );
        let n: i64 = sqlx::query(&sql)
            .bind(fence.holders.join(","))
            .fetch_one(&self.db.read)
            .await?
            .try_get("n")?;
        Ok(n == 0)
    }
}

impl ChangeReader {
    /// Where the next read starts.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Up to `limit` of the account's changes after the cursor, in log order (see the module's documentation for
    /// why none is ever skipped). The rows, the retention mark and the log's end come from one statement.
    pub async fn read(&mut self, limit: i64) -> Result<ChangeRead> {
        let limit = limit.clamp(1, 10_000);
        let postgres = self.store.db.dialect == Dialect::Postgres;
        if postgres {
            if let Some(f) = &self.fence
                && self.store.fence_passed(f).await?
            {
                self.safe = self.safe.max(f.upto);
                self.fence = None;
            }
            if self.fence.is_none() {
                let f = self.store.take_fence().await?;
                if f.upto > self.safe {
                    if f.holders.is_empty() {
                        self.safe = f.upto;
                    } else {
                        self.fence = Some(f);
                    }
                }
            }
        }
        // On SQLite everything committed is final: the bound is the end of the log, read in the same statement.
        let bound = if postgres { self.safe } else { i64::MAX };
        let sql = format!(
            "SELECT p.pruned, h.head, c.id, c.app_id, c.kind, c.namespace, c.name, c.qualifier, c.request_id, \
             c.status, c.reasons, c.db_ms \
             FROM (SELECT COALESCE(MAX(CAST(value AS BIGINT)), 0) AS pruned FROM settings WHERE name = '{PRUNED}') p \
             CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS head FROM status_changes) h \
             LEFT JOIN (SELECT id, app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms \
                        FROM status_changes WHERE app_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4) c \
             ON 1 = 1 ORDER BY c.id"
        );
        let rows = sqlx::query(&sql)
            .bind(self.app_id)
            .bind(self.cursor)
            .bind(bound)
            .bind(limit)
            .fetch_all(&self.store.db.read)
            .await?;
        let held_back = self.fence.is_some();
        let Some(first) = rows.first() else {
            return Ok(ChangeRead {
                changes: Vec::new(),
                cursor: self.cursor,
                held_back,
                reset: None,
            });
        };
        let pruned: i64 = first.try_get("pruned")?;
        if pruned > self.cursor {
            self.cursor = pruned;
            self.safe = self.safe.max(pruned);
            return Ok(ChangeRead {
                changes: Vec::new(),
                cursor: pruned,
                held_back,
                reset: Some(pruned),
            });
        }
        let head: i64 = first.try_get("head")?;
        let mut changes = Vec::new();
        for r in &rows {
            if let Some(c) = change_row(r)? {
                changes.push(c);
            }
        }
        let last = changes.last().map_or(self.cursor, |c| c.id);
        // Past the account's last change, up to the final end of the log, only when the read was not cut short.
        self.cursor = if (changes.len() as i64) < limit {
            last.max(head.min(bound)).max(self.cursor)
        } else {
            last
        };
        Ok(ChangeRead {
            changes,
            cursor: self.cursor,
            held_back,
            reset: None,
        })
    }
}

impl Store {
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
            Some(h) => {
                h.ready.send_replace(true);
                h.bump();
            }
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
                    h.ready.send_replace(false);
                    h.bump();
                    break;
                }
            }
        }
    }
}
