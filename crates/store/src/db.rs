//! Opening the database, its pools and its migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

use crate::error::{Result, StoreError};
use crate::schema::MIGRATIONS;

/// Which SQL dialect is behind the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database's own clock in milliseconds since the Unix epoch, as an SQL expression. Leases are measured
    /// on it, so that every node of a cluster agrees on when one runs out whatever its own clock says.
    pub(crate) fn now_ms_sql(self) -> &'static str {
        match self {
            // `subsec` needs SQLite 3.42; the bundled library is newer.
            Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            // `clock_timestamp()`, not `now()`: the latter stands still for a whole transaction.
            Dialect::Postgres => "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

/// How durable a SQLite commit is. `Full` survives power loss; `Normal` (WAL) survives a process crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
}

/// The metadata database. SQLite gets one writer connection (SQLite has one writer anyway, and a single
/// connection avoids lock upgrades failing under contention) and a few readers; PostgreSQL shares one pool.
#[derive(Clone)]
pub struct Db {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    pub(crate) dialect: Dialect,
}

impl Db {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://…` and applies pending migrations.
    pub async fn connect(url: &str, sync: SqliteSync) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let db = match dialect {
            Dialect::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                let sync = match sync {
                    SqliteSync::Full => "FULL",
                    SqliteSync::Normal => "NORMAL",
                };
                let pragmas: &'static str = if sync == "FULL" {
                    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                } else {
                    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                };
                let make = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(pragmas).await?;
                                Ok(())
                            })
                        })
                };
                let write = make(1).connect_with(opts.clone()).await?;
                write.execute("PRAGMA journal_mode = WAL").await?;
                let read = make(4).connect_with(opts).await?;
                Db {
                    read,
                    write,
                    dialect,
                }
            }
            Dialect::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?;
                Db {
                    read: pool.clone(),
                    write: pool,
                    dialect,
                }
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A transaction that holds the migrations' lock: the advisory lock on PostgreSQL, SQLite's write lock taken at
    /// `BEGIN IMMEDIATE` (a deferred transaction that reads first cannot take it later while another process
    /// migrates: it fails at once with "database is locked" instead of waiting). Two processes starting together
    /// on one fresh database thus migrate one after the other.
    async fn begin_migration(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => {
                let mut tx = self.write.begin().await?;
                tx.execute("SELECT pg_advisory_xact_lock(7401)").await?;
                tx
            }
        })
    }

    async fn migrate(&self) -> Result<()> {
        {
            // Under the migrations' lock on PostgreSQL too: two nodes creating the table together would otherwise
            // collide in the catalog (`CREATE TABLE IF NOT EXISTS` is not safe against a concurrent create).
            let mut tx = self.begin_migration().await?;
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
            )
            .await?;
            tx.commit().await?;
        }
        for m in MIGRATIONS {
            let mut tx = self.begin_migration().await?;
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if done {
                continue;
            }
            let sql = match self.dialect {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(stmt)
                    .await
                    .map_err(|source| StoreError::Migration {
                        version: m.version,
                        source,
                    })?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        Ok(())
    }

    /// The schema version in force.
    pub async fn schema_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<i64, _>("v")?)
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}
