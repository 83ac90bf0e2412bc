//! Which metadata database a test runs on, and a fresh database per test.

use std::future::Future;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The variable that holds the admin URL of a PostgreSQL role with `CREATEDB`.
pub const PG_ENV: &str = "STRATUS_TEST_DATABASE_URL";

/// Prefix of the databases this kit creates (and may clean up after a crashed run).
const DB_PREFIX: &str = "stratus_rt_";

/// The metadata database a test runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database created through `admin_url` (a role with `CREATEDB`).
    Postgres { admin_url: String },
}

impl Backend {
    /// PostgreSQL, when `STRATUS_TEST_DATABASE_URL` is set. Otherwise prints a loud notice and returns `None`
    /// (the caller skips its test), or panics when `CI` is set: CI must not skip silently.
    pub fn postgres() -> Option<Backend> {
        match std::env::var(PG_ENV) {
            Ok(url) if !url.trim().is_empty() => Some(Backend::Postgres {
                admin_url: url.trim().to_string(),
            }),
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "PostgreSQL tests cannot run: {PG_ENV} is not set (and CI is set, so they may not be skipped)"
                    );
                }
                // Written to the real stderr, past the test harness's capture, so that a skip is seen.
                use std::io::Write;
                let test = std::thread::current()
                    .name()
                    .unwrap_or("a test")
                    .to_string();
                let _ = writeln!(
                    std::io::stderr(),
                    "!!! PostgreSQL tests SKIPPED: {PG_ENV} not set ({test}); set it to the admin URL of a role \
                     with CREATEDB, e.g. postgres://stratus:stratus@127.0.0.1:5432/postgres"
                );
                None
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }
}

/// A database that belongs to one test. PostgreSQL databases are dropped (with `FORCE`) when this goes; a
/// SQLite file lives in a temporary directory removed with it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// The URL to give `--database-url` or `Store::open`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL database name (`None` for SQLite).
    pub fn pg_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Postgres { name, .. } => Some(name),
            Kind::Sqlite(_) => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = on_own_runtime(admin_exec(admin_url.clone(), sql)) {
                eprintln!("testkit: could not drop test database {name}: {e}");
            }
        }
    }
}

/// A database of its own for one test: a new PostgreSQL database (`stratus_rt_<pid>_<n>`) or a SQLite file in
/// a new temporary directory. Panics when the database cannot be made.
pub fn fresh_database_url(backend: &Backend) -> TestDatabase {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::Builder::new()
                .prefix("stratus-db-")
                .tempdir()
                .expect("temporary directory for SQLite");
            let url = format!("sqlite://{}", dir.path().join("stratus.db").display());
            TestDatabase {
                url,
                kind: Kind::Sqlite(dir),
            }
        }
        Backend::Postgres { admin_url } => {
            static CLEANUP: Once = Once::new();
            CLEANUP.call_once(|| drop_leftovers(admin_url));
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let name = format!(
                "{DB_PREFIX}{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let sql = format!("CREATE DATABASE \"{name}\"");
            // Concurrent CREATE DATABASE from the same template can collide; retry a few times.
            let mut last = None;
            for attempt in 0..10 {
                match on_own_runtime(admin_exec(admin_url.clone(), sql.clone())) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
                    }
                }
            }
            if let Some(e) = last {
                panic!("cannot create test database {name} through {PG_ENV}: {e}");
            }
            TestDatabase {
                url: with_database(admin_url, &name),
                kind: Kind::Postgres {
                    admin_url: admin_url.clone(),
                    name,
                },
            }
        }
    }
}

/// Drops databases left by earlier runs of this kit whose process is gone.
fn drop_leftovers(admin_url: &str) {
    let listed = on_own_runtime({
        let url = admin_url.to_string();
        async move {
            use sqlx::{Connection, Row};
            let mut c = sqlx::postgres::PgConnection::connect(&url).await?;
            let rows = sqlx::query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'stratus\\_rt\\_%'",
            )
            .fetch_all(&mut c)
            .await?;
            let _ = c.close().await;
            rows.iter()
                .map(|r| r.try_get::<String, _>("datname"))
                .collect::<Result<Vec<_>, _>>()
        }
    });
    let Ok(names) = listed else { return };
    for name in names {
        let pid = name
            .strip_prefix(DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = on_own_runtime(admin_exec(
                admin_url.to_string(),
                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            ));
        }
    }
}

async fn admin_exec(url: String, sql: String) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut c = sqlx::postgres::PgConnection::connect(&url).await?;
    c.execute(sql.as_str()).await?;
    c.close().await?;
    Ok(())
}

/// The admin URL with its database replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url
        .split_once("://")
        .unwrap_or(("postgres", admin_url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The authority may hold a password with `/` only if percent-encoded, so the first `/` after `@` (or from
    // the start) begins the path.
    let auth_end = before_query.rfind('@').map(|i| i + 1).unwrap_or(0);
    let authority = match before_query[auth_end..].find('/') {
        Some(i) => &before_query[..auth_end + i],
        None => before_query,
    };
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// Runs a future to completion on a runtime of its own, on a thread of its own: callable from synchronous
/// tests and from inside another runtime alike.
pub(crate) fn on_own_runtime<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(fut)
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Runs an async test body on a fresh multi-threaded runtime (two workers, like the test machine).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}

/// Runs each named `fn name(backend: Backend)` as two tests, `name::sqlite` and `name::postgres`. Attributes
/// before a name go on both tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            $(#[$meta])*
            #[test]
            fn sqlite() {
                super::$name($crate::Backend::Sqlite)
            }
            $(#[$meta])*
            #[test]
            fn postgres() {
                if let Some(b) = $crate::Backend::postgres() {
                    super::$name(b)
                }
            }
        }
    )*};
}

/// Like [`on_both_backends!`] for `async fn name(backend: Backend)`, each run on a fresh runtime.
#[macro_export]
macro_rules! on_both_backends_async {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            $(#[$meta])*
            #[test]
            fn sqlite() {
                $crate::block_on(super::$name($crate::Backend::Sqlite))
            }
            $(#[$meta])*
            #[test]
            fn postgres() {
                if let Some(b) = $crate::Backend::postgres() {
                    $crate::block_on(super::$name(b))
                }
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_the_url() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
    }
}
