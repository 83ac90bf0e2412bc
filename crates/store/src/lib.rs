//! All durable state of Stratus: the metadata database (SQLite or PostgreSQL behind one interface, with one set
//! of migrations), the operation queue and the asynchronous event queue with leases that live in it, and the
//! content-addressed blob directory.
//!
//! The store records; it does not decide. Which transition is allowed is the control plane's business; the store
//! makes each recorded change atomic and conditional on the revision the caller decided from.

mod accounts;
mod blobs;
pub mod changes;
mod concurrency;
mod db;
mod domains;
mod error;
pub mod events;
mod functions;
mod invocations;
mod layers;
mod ops;
mod schema;
pub mod ticks;
mod triggers;
pub mod unzip;

pub use accounts::{Account, ApiKey, Namespace};
pub use blobs::{BlobStore, UnpackedTree, sha256_hex};
pub use changes::{Change, ChangeKind, ChangeRead, ChangeReader};
pub use concurrency::{
    ConcurrencySettings, ReservationBounds, ReservationOutcome, ShareLimit, ShareRenewal,
};
pub use db::{Db, Dialect, SqliteSync};
pub use domains::{DomainOrder, DomainRow};
pub use error::{Result, StoreError};
pub use events::{
    Abort, ClaimedEvent, EventEnd, EventListener, EventQuery, EventRow, EventWrite, EventWritten,
    NewEvent,
};
pub use functions::{FunctionOrder, FunctionRow, ListQuery};
pub use invocations::{InvocationOrder, InvocationQuery, InvocationRecord, record_weight};
pub use layers::{LayerRow, layer_target};
pub use ops::{ClaimedOp, Finish, NewOp};
pub use schema::migration_versions;
/// The database driver's error, for callers that report a store failure of their own making.
pub use sqlx::Error as SqlxError;
pub use ticks::{SkippedTicks, TickOutcome, TickPlan, TickRow};
pub use triggers::{TriggerOrder, TriggerQuery, TriggerRow};

/// Holds a blob collection between two of its steps when a test configures the fail point (`failpoints`
/// feature); nothing otherwise. Evaluated off the async threads, since a paused fail point blocks its thread.
#[cfg(feature = "failpoints")]
async fn pause_point(name: &'static str) {
    let _ = tokio::task::spawn_blocking(move || fail::fail_point!(name)).await;
}

#[cfg(not(feature = "failpoints"))]
async fn pause_point(_name: &'static str) {}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Packages up to this many bytes live in the database's `blobs` table only (see [`Store::put_blob`]).
pub const DEFAULT_INLINE_BLOB_BYTES: u64 = 64 * 1024;

/// The metadata database and the blob directory.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    pub blobs: BlobStore,
    /// Packages up to this size are kept in the `blobs` table instead of a file of their own.
    inline_max: u64,
    /// The database URL on PostgreSQL, for the event queue's LISTEN connection.
    pub(crate) pg_url: Option<std::sync::Arc<str>>,
}

impl Store {
    /// Opens the database at `url` (migrating it) and the blob directory under `data_dir`.
    pub async fn open(url: &str, data_dir: &std::path::Path, sync: SqliteSync) -> Result<Store> {
        let db = Db::connect(url, sync).await?;
        let blobs = BlobStore::open(data_dir)?;
        let pg_url = (db.dialect == Dialect::Postgres).then(|| std::sync::Arc::from(url));
        Ok(Store {
            db,
            blobs,
            pg_url,
            inline_max: DEFAULT_INLINE_BLOB_BYTES,
        })
    }

    /// Packages up to `bytes` long are stored in the database only (0: every package gets a file).
    pub fn with_inline_blob_bytes(mut self, bytes: u64) -> Store {
        self.inline_max = bytes;
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    pub async fn schema_version(&self) -> Result<i64> {
        self.db.schema_version().await
    }

    /// Whether every package is also kept in the database (several nodes share PostgreSQL), not only small ones.
    fn shared_blobs(&self) -> bool {
        self.db.dialect == Dialect::Postgres
    }

    /// Stores a package durably before any record refers to it. Where its bytes live is the store's choice:
    ///
    /// - A small package (up to the inline size, 64 KiB unless configured) is one row of the `blobs` table, on
    ///   either database: no file, no inode, no fsync of its own (the row commits like any other). Lifecycle
    ///   throughput is bound by file creation on a busy disk, and most packages are small.
    /// - A larger one is a file in the local blob directory (fsynced) and, on PostgreSQL, also a row of the
    ///   shared table so that every node can fetch it.
    ///
    /// A local file is a cache of a row whenever both exist ([`Store::ensure_local_blob`] writes one when a
    /// package is unpacked for an instance). Storing bytes that are already there restarts their grace period in
    /// every place (a function deleted and created again with the same zip must not lose it to a collection that
    /// saw it unreferenced), by the database's clock on the table.
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<model::CodeRef> {
        let now = self.db.dialect.now_ms_sql();
        if bytes.len() as u64 <= self.inline_max {
            let code = model::CodeRef {
                sha256: sha256_hex(&bytes),
                size: bytes.len() as u64,
            };
            sqlx::query(&format!(
                "INSERT INTO blobs (sha256, content, created_ms) VALUES ($1, $2, {now}) \
                 ON CONFLICT (sha256) DO UPDATE SET created_ms = EXCLUDED.created_ms"
            ))
            .bind(&code.sha256)
            .bind(bytes)
            .execute(&self.db.write)
            .await?;
            // A local copy, if any, is a cache of the row: a collection may take it, the row stays.
            return Ok(code);
        }
        let blobs = self.blobs.clone();
        let (code, bytes) =
            tokio::task::spawn_blocking(move || blobs.put(&bytes).map(|c| (c, bytes)))
                .await
                .map_err(|e| StoreError::Io {
                    path: "blobs".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
        if self.shared_blobs() {
            // Most re-uploads find the row: refresh it without sending the content again.
            let refreshed = sqlx::query(&format!(
                "UPDATE blobs SET created_ms = {now} WHERE sha256 = $1"
            ))
            .bind(&code.sha256)
            .execute(&self.db.write)
            .await?
            .rows_affected();
            if refreshed == 0 {
                sqlx::query(&format!(
                    "INSERT INTO blobs (sha256, content, created_ms) VALUES ($1, $2, {now}) \
                     ON CONFLICT (sha256) DO UPDATE SET created_ms = EXCLUDED.created_ms"
                ))
                .bind(&code.sha256)
                .bind(bytes)
                .execute(&self.db.write)
                .await?;
            }
        }
        Ok(code)
    }

    /// A package's bytes from the `blobs` table, checked against their address.
    async fn table_blob(&self, sha256: &str) -> Result<Vec<u8>> {
        use sqlx::Row;
        let row = sqlx::query("SELECT content FROM blobs WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.db.read)
            .await?
            .ok_or_else(|| StoreError::BlobMissing {
                sha256: sha256.to_string(),
            })?;
        let bytes: Vec<u8> = row.try_get("content")?;
        let got = sha256_hex(&bytes);
        if got != sha256 {
            return Err(StoreError::corrupt(
                "blobs.content",
                format!("content of {sha256} hashes to {got}"),
            ));
        }
        Ok(bytes)
    }

    /// Makes sure a blob is in the local directory (to be unpacked there), writing it from the `blobs` table
    /// when it is a small package or another node stored it.
    pub async fn ensure_local_blob(&self, sha256: &str) -> Result<()> {
        if self.blobs.exists(sha256) {
            return Ok(());
        }
        let bytes = self.table_blob(sha256).await?;
        self.blocking(move |b| b.put(&bytes).map(|_| ())).await
    }

    /// The bytes of a blob, from the local directory or the `blobs` table. Writes no file.
    pub async fn read_blob(&self, sha256: &str) -> Result<Vec<u8>> {
        if self.blobs.exists(sha256) {
            let sha = sha256.to_string();
            match self.blocking(move |b| b.read(&sha)).await {
                Err(StoreError::BlobMissing { .. }) => {}
                other => return other,
            }
        }
        self.table_blob(sha256).await
    }

    /// Collects blobs no record references and nobody uploaded in the last `grace` (which covers an upload whose
    /// record has not committed yet), locally and in the `blobs` table (small packages on either database, every
    /// package on PostgreSQL). Returns how many blobs went (each counted once, wherever it lived).
    ///
    /// A record that commits while this runs never loses its blob, on one node or on a cluster (each node with
    /// its own blob directory, all sharing the `blobs` table):
    ///
    /// 1. The cutoffs (now minus `grace`, by this node's clock for its files and by the database's clock for the
    ///    table) are taken before the references are read. An upload older than the cutoff committed its record
    ///    before that read, so its blob is referenced; any later upload (or re-upload) carries a newer time.
    /// 2. Local candidates are moved aside, then the references are read again, and a moved blob is deleted only
    ///    if it is still unreferenced and still older than the cutoff (`BlobStore::move_aside` says why the
    ///    move closes the race with an upload's refresh); the others are put back.
    /// 3. A table row goes only through `DELETE … WHERE sha256 = $1 AND created_ms < $cutoff`, one atomic
    ///    statement, after the second read: a re-upload on any node either refreshed `created_ms` before it (the
    ///    row stays) or inserts the row again after it.
    pub async fn collect_blobs(&self, grace: std::time::Duration) -> Result<usize> {
        use sqlx::Row;
        let local_cutoff = std::time::SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        // Small packages live in the table on either database, so it is collected on both.
        let shared_cutoff = {
            let now: i64 = sqlx::query(&format!("SELECT {} AS now", self.db.dialect.now_ms_sql()))
                .fetch_one(&self.db.read)
                .await?
                .try_get("now")?;
            Some(now - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX))
        };
        let referenced = self.referenced_blobs().await?;
        let mut shared = Vec::new();
        if let Some(cutoff) = shared_cutoff {
            for r in sqlx::query("SELECT sha256 FROM blobs WHERE created_ms < $1")
                .bind(cutoff)
                .fetch_all(&self.db.read)
                .await?
            {
                let sha: String = r.try_get("sha256")?;
                if !referenced.contains(&sha) {
                    shared.push(sha);
                }
            }
        }
        let candidates = self
            .blocking(move |b| b.unreferenced_before(&referenced, local_cutoff))
            .await?;
        pause_point("collect-blobs-chosen").await;
        let moved = self.blocking(move |b| b.move_aside(&candidates)).await?;
        let moved_here: std::collections::HashSet<String> = moved.iter().cloned().collect();
        pause_point("collect-blobs-moved").await;
        let referenced = match self.referenced_blobs().await {
            Ok(r) => r,
            Err(e) => {
                // Put everything back: nothing was decided.
                let all: std::collections::HashSet<String> = moved.iter().cloned().collect();
                self.blocking(move |b| b.settle(&moved, &all, local_cutoff))
                    .await?;
                return Err(e);
            }
        };
        let mut removed = {
            let referenced = referenced.clone();
            self.blocking(move |b| b.settle(&moved, &referenced, local_cutoff))
                .await?
        };
        if let Some(cutoff) = shared_cutoff {
            for sha in shared.iter().filter(|s| !referenced.contains(*s)) {
                let gone = sqlx::query("DELETE FROM blobs WHERE sha256 = $1 AND created_ms < $2")
                    .bind(sha)
                    .bind(cutoff)
                    .execute(&self.db.write)
                    .await?
                    .rows_affected();
                if gone > 0 && !moved_here.contains(sha) {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Runs blocking blob work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BlobStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || f(&blobs))
            .await
            .map_err(|e| StoreError::Io {
                path: "blobs".into(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// Every blob address a record may still need: the serving and pending code of every function record, the
    /// content of every layer version that is not deleted, and the content of deleted layer versions that a
    /// function snapshot still binds.
    pub async fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>> {
        use sqlx::Row;
        let mut set = std::collections::HashSet::new();
        for sql in [
            "SELECT serving_code AS s FROM functions WHERE serving_code IS NOT NULL",
            "SELECT pending_code AS s FROM functions WHERE pending_code IS NOT NULL",
            "SELECT content_sha AS s FROM layers WHERE status <> 'Deleted'",
        ] {
            for r in sqlx::query(sql).fetch_all(&self.db.read).await? {
                set.insert(r.try_get::<String, _>("s")?);
            }
        }
        let deleted = sqlx::query(
            "SELECT app_id, name, version, content_sha FROM layers WHERE status = 'Deleted'",
        )
        .fetch_all(&self.db.read)
        .await?;
        if deleted.is_empty() {
            return Ok(set);
        }
        let mut bound = std::collections::HashSet::new();
        for r in sqlx::query("SELECT app_id, serving, pending FROM functions")
            .fetch_all(&self.db.read)
            .await?
        {
            let app_id: i64 = r.try_get("app_id")?;
            for col in ["serving", "pending"] {
                if let Some(json) = r.try_get::<Option<String>, _>(col)? {
                    let snap: model::Snapshot = functions::from_json("functions.snapshot", &json)?;
                    for l in snap.config.layers {
                        bound.insert((app_id, l.name, l.version));
                    }
                }
            }
        }
        for r in deleted {
            let key = (
                r.try_get::<i64, _>("app_id")?,
                r.try_get::<String, _>("name")?,
                r.try_get::<i64, _>("version")?,
            );
            if bound.contains(&key) {
                set.insert(r.try_get::<String, _>("content_sha")?);
            }
        }
        Ok(set)
    }

    pub async fn close(&self) {
        self.db.close().await;
    }
}
