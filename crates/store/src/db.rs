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
    /// Wakes the readers of the status change log (`changes.rs`).
    pub(crate) changes: std::sync::Arc<crate::changes::ChangeHub>,
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
        let changes = crate::changes::ChangeHub::new();
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
                // Fixed pools: every SQLite connection is a thread of its own with its own page cache, so a pool
                // that grows under load and recycles idle connections makes the process's threads and memory
                // move with the load; these are opened once and kept.
                let make = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(max)
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(pragmas).await?;
                                Ok(())
                            })
                        })
                };
                // Every commit of this process goes through the one writer connection, and returns it to the
                // pool after the commit (a transaction's when it is committed or dropped, a single statement's
                // when it is done): the one place that sees every change of the status log commit, so readers
                // of the log are woken there. A wake with nothing new (a read-only use, a rollback) costs one
                // empty read.
                let hub = changes.clone();
                let write = make(1)
                    .after_release(move |_conn, _meta| {
                        hub.bump();
                        Box::pin(async { Ok(true) })
                    })
                    .connect_with(opts.clone())
                    .await?;
                write.execute("PRAGMA journal_mode = WAL").await?;
                let read = make(4).connect_with(opts).await?;
                Db {
                    read,
                    write,
                    dialect,
                    changes,
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
                    changes,
                }
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Begins a write transaction that reads before it writes. On SQLite it starts `IMMEDIATE`, taking the write
    /// lock at once (waiting up to the busy timeout): a deferred transaction that has read cannot wait for the
    /// lock when it comes to write, and fails at once with "database is locked" whenever another process (a CLI
    /// command beside the server, another node starting on the same file) wrote meanwhile.
    pub(crate) async fn begin_checked(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.write.begin().await?,
        })
    }

    /// A transaction holding the migration lock: SQLite's write lock, PostgreSQL's advisory lock 7401.
    async fn begin_migration(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.begin_checked().await?;
        if self.dialect == Dialect::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(7401)").await?;
        }
        Ok(tx)
    }

    async fn migrate(&self) -> Result<()> {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)";
        {
            // Under the same lock as the migrations: two `CREATE TABLE IF NOT EXISTS` racing on a fresh
            // PostgreSQL database both pass the check and one fails on the catalog's unique index.
            let mut tx = self.begin_migration().await?;
            tx.execute(CREATE).await?;
            tx.commit().await?;
        }
        for m in MIGRATIONS {
            // Two nodes starting together must not both apply a migration.
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
            for stmt in statements(sql) {
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

/// The statements of a migration: split at `;`, except inside quotes, a `$$`-quoted body (PostgreSQL functions)
/// and the `BEGIN … END` body of a SQLite trigger.
fn statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut dollar) = (0, false, false);
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' if !dollar => quoted = !quoted,
            b'$' if !quoted && bytes.get(i + 1) == Some(&b'$') => {
                dollar = !dollar;
                i += 1;
            }
            b';' if !quoted && !dollar => {
                let stmt = sql[start..i].trim();
                let words: Vec<String> = stmt
                    .split_whitespace()
                    .map(str::to_ascii_uppercase)
                    .collect();
                let trigger_body_open = words.len() > 1
                    && words[0] == "CREATE"
                    && words[1] == "TRIGGER"
                    && words.iter().any(|w| w == "BEGIN")
                    && words.last().map(String::as_str) != Some("END");
                if !trigger_body_open {
                    if !stmt.is_empty() {
                        out.push(stmt);
                    }
                    start = i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let rest = sql[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn migrations_split_at_semicolons_outside_bodies() {
        assert_eq!(
            statements("CREATE TABLE a (x TEXT DEFAULT ';');\nDROP TABLE b;"),
            ["CREATE TABLE a (x TEXT DEFAULT ';')", "DROP TABLE b"]
        );
        let sqlite = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n INSERT INTO b VALUES (1);\n INSERT INTO b VALUES (2);\nEND;\nCREATE INDEX i ON a (x);";
        assert_eq!(
            statements(sqlite),
            [
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n INSERT INTO b VALUES (1);\n INSERT INTO b VALUES (2);\nEND",
                "CREATE INDEX i ON a (x)"
            ]
        );
        let pg = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n PERFORM 1;\n RETURN NULL;\nEND\n$$;\nCREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();";
        assert_eq!(
            statements(pg),
            [
                "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n PERFORM 1;\n RETURN NULL;\nEND\n$$",
                "CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f()"
            ]
        );
    }
}
