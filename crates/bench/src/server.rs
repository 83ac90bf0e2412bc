//! The server under test: this same binary started as `stratus serve` in a child process on `127.0.0.1:0` with a
//! fresh temporary data directory (and, for PostgreSQL, a fresh database), or a running server given by its
//! endpoint and key. The child is stopped by its PID at the end; the PostgreSQL database is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::http::{Creds, Endpoint};

/// How long the server may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Variables of the invoking environment that would override the bench's choices for the child.
const OVERRIDDEN_ENV: &[&str] = &[
    "STRATUS_CONFIG",
    "STRATUS_DATA_DIR",
    "STRATUS_DATABASE_URL",
    "STRATUS_LISTEN",
    "STRATUS_WORKERS",
    "STRATUS_LOG",
];

/// Which metadata database a spawned server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbChoice {
    /// A fresh `stratus.db` in the temporary data directory.
    Sqlite,
    /// A fresh database created through this admin URL, dropped at the end.
    Postgres { admin_url: String },
}

impl DbChoice {
    /// `sqlite` (the default), `postgres` (the admin URL in `STRATUS_TEST_DATABASE_URL`) or a `postgres://` admin URL.
    pub fn parse(arg: Option<&str>, env_admin: Option<String>) -> anyhow::Result<DbChoice> {
        match arg {
            None | Some("sqlite") => Ok(DbChoice::Sqlite),
            Some("postgres" | "postgresql" | "pg") => {
                let admin_url = env_admin.filter(|u| !u.is_empty()).ok_or_else(|| {
                    anyhow!(
                        "--database-url postgres needs STRATUS_TEST_DATABASE_URL (an admin URL such as \
                         postgres://stratus:stratus@127.0.0.1:5432/postgres) or a postgres:// URL"
                    )
                })?;
                Ok(DbChoice::Postgres { admin_url })
            }
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(DbChoice::Postgres {
                    admin_url: u.to_string(),
                })
            }
            Some(u) if u.starts_with("sqlite:") => bail!(
                "SQLite runs always use a fresh database in a temporary directory: pass --database-url sqlite, not `{u}`"
            ),
            Some(u) => bail!(
                "--database-url must be sqlite, postgres or a postgres:// admin URL, not `{u}`"
            ),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            DbChoice::Sqlite => "SQLite",
            DbChoice::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// The URL of database `db` on the server of `admin_url` (same user, host and parameters).
pub fn pg_url_with_db(admin_url: &str, db: &str) -> anyhow::Result<String> {
    let scheme_end = admin_url
        .find("://")
        .ok_or_else(|| anyhow!("not a URL: {admin_url}"))?
        + 3;
    let rest = &admin_url[scheme_end..];
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Ok(format!(
        "{}{authority}/{db}{query}",
        &admin_url[..scheme_end]
    ))
}

/// Runs SQL on PostgreSQL (simple protocol) and returns the first column of the first row, if any, as text.
pub fn pg_query(url: &str, sql: &str) -> anyhow::Result<Option<String>> {
    use sqlx::{ConnectOptions, Row};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let opts: sqlx::postgres::PgConnectOptions = url
            .parse()
            .with_context(|| format!("parsing {}", redact(url)))?;
        let mut conn = opts
            .disable_statement_logging()
            .connect()
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
        let rows = sqlx::raw_sql(sql)
            .fetch_all(&mut conn)
            .await
            .with_context(|| format!("running `{sql}`"))?;
        let first = match rows.first() {
            Some(r) if !r.is_empty() => {
                if let Ok(v) = r.try_get::<i64, _>(0) {
                    Some(v.to_string())
                } else {
                    r.try_get::<String, _>(0).ok()
                }
            }
            _ => None,
        };
        let _ = sqlx::Connection::close(conn).await;
        Ok(first)
    })
}

/// Hides a password in a database URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// Memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mem {
    /// Resident set size now.
    pub rss_bytes: u64,
    /// The peak resident set size.
    pub hwm_bytes: u64,
}

/// A `kB` value of `/proc/PID/status` (e.g. `VmRSS: 10240 kB`, a tab after the colon), in bytes.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let mut it = rest.split_whitespace();
        let n: u64 = it.next()?.parse().ok()?;
        match it.next() {
            Some("kB") => Some(n * 1024),
            _ => None,
        }
    })
}

pub fn read_mem(pid: u32) -> anyhow::Result<Mem> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(Mem {
        rss_bytes: parse_status_kib(&text, "VmRSS").ok_or_else(|| anyhow!("no VmRSS in {path}"))?,
        hwm_bytes: parse_status_kib(&text, "VmHWM").ok_or_else(|| anyhow!("no VmHWM in {path}"))?,
    })
}

/// User plus system CPU time from the text of `/proc/PID/stat`, in clock ticks.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces: count fields after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Fields 3.. of proc(5) follow; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU time a process has used (user + system).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_stat_cpu_ticks(&text).ok_or_else(|| anyhow!("malformed {path}"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    pub db: DbChoice,
    pub workers: Option<usize>,
    /// The child's `STRATUS_LOG`.
    pub log_filter: String,
}

/// A spawned server (`child` is set) or a running one reached by its endpoint.
pub struct Server {
    pub endpoint: Endpoint,
    pub creds: Creds,
    child: Option<Child>,
    pub pid: Option<u32>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// The database created for this run (dropped at the end), with its admin URL.
    pg_db: Option<(String, String)>,
    pub log_path: Option<PathBuf>,
    pub describe: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A running server.
    pub fn external(endpoint: Endpoint, creds: Creds) -> Server {
        let describe = format!("running server at http://{}", endpoint.host);
        Server {
            endpoint,
            creds,
            child: None,
            pid: None,
            data_dir: None,
            database_url: None,
            pg_db: None,
            log_path: None,
            describe,
            _tmp: None,
        }
    }

    /// Starts this binary as `stratus serve` on a free port with a fresh data directory and database.
    pub fn spawn(opts: &ServerOpts) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("finding the stratus binary")?;
        let tmp = tempfile::Builder::new()
            .prefix("stratus-bench-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("server.log");
        let (database_url, pg_db, describe) = match &opts.db {
            DbChoice::Sqlite => {
                let sync = std::env::var("STRATUS_SQLITE_SYNC").unwrap_or_else(|_| "full".into());
                (
                    format!("sqlite://{}", data_dir.join("stratus.db").display()),
                    None,
                    format!("SQLite, synchronous={}", sync.to_uppercase()),
                )
            }
            DbChoice::Postgres { admin_url } => {
                let db = format!(
                    "stratus_bench_{}_{}",
                    std::process::id(),
                    crate::report::now_ms()
                );
                let url = pg_url_with_db(admin_url, &db)?;
                let version = pg_query(admin_url, "SHOW server_version")?.unwrap_or_default();
                pg_query(admin_url, &format!("CREATE DATABASE {db}"))?;
                (
                    url,
                    Some((admin_url.clone(), db.clone())),
                    format!("PostgreSQL {version}, fresh database {db}"),
                )
            }
        };
        let mut server = Server {
            endpoint: Endpoint::parse("http://127.0.0.1:1")?,
            creds: Creds {
                secret_id: String::new(),
                secret_key: String::new(),
            },
            child: None,
            pid: None,
            data_dir: Some(data_dir.clone()),
            database_url: Some(database_url.clone()),
            pg_db,
            log_path: Some(log_path.clone()),
            describe,
            _tmp: None,
        };
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--database-url")
            .arg(&database_url);
        if let Some(w) = opts.workers {
            cmd.arg("--workers").arg(w.to_string());
        }
        for v in OVERRIDDEN_ENV {
            cmd.env_remove(v);
        }
        cmd.env("STRATUS_LOG", &opts.log_filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        server.pid = Some(child.id());
        let stdout = child.stdout.take();
        server.child = Some(child);
        server._tmp = Some(tmp);
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(out) = stdout {
            std::thread::spawn(move || {
                // Forward lines until the banner, then keep draining so the child never blocks on a full pipe.
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("stratus listening on http://") {
                        break a.trim().to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "the server printed no banner within {START_TIMEOUT:?}; its log:\n{}",
                        server.log_tail(20)
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "the server exited before it was ready; its log:\n{}",
                        server.log_tail(20)
                    )
                }
            }
        };
        server.endpoint = Endpoint::parse(&format!("http://{addr}"))?;
        server.creds = read_dev_credentials(&data_dir.join("dev-credentials.json"))?;
        server.describe = format!(
            "{} serve (pid {}) on {addr}: {}, workers {}",
            exe.display(),
            server.pid.unwrap_or(0),
            server.describe,
            opts.workers
                .map_or_else(|| "default (4)".to_string(), |w| w.to_string())
        );
        Ok(server)
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let Some(p) = &self.log_path else {
            return String::new();
        };
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_text(&self) -> Option<String> {
        std::fs::read_to_string(self.log_path.as_ref()?).ok()
    }

    pub fn mem(&self) -> Option<anyhow::Result<Mem>> {
        self.pid.map(read_mem)
    }

    /// The server's CPU time so far (a spawned server only).
    pub fn cpu(&self) -> Option<Duration> {
        self.pid.and_then(|p| cpu_time(p).ok())
    }

    /// The metadata database's size: the SQLite file plus its WAL, or `pg_database_size`.
    pub fn db_size(&self) -> Option<anyhow::Result<DbSize>> {
        let url = self.database_url.as_ref()?;
        Some(if let Some(path) = url.strip_prefix("sqlite://") {
            let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let main = size(path);
            let wal = size(&format!("{path}-wal"));
            Ok(DbSize {
                total_bytes: main + wal,
                detail: format!("stratus.db {main} B + stratus.db-wal {wal} B"),
            })
        } else {
            pg_query(url, "SELECT pg_database_size(current_database())").and_then(|v| {
                let n: u64 = v
                    .ok_or_else(|| anyhow!("pg_database_size returned nothing"))?
                    .parse()?;
                Ok(DbSize {
                    total_bytes: n,
                    detail: "pg_database_size(current_database())".into(),
                })
            })
        })
    }

    /// Creates another account with `stratus account create` on the server's database.
    pub fn create_account(&self) -> anyhow::Result<Creds> {
        let (Some(dir), Some(url)) = (&self.data_dir, &self.database_url) else {
            bail!("accounts can only be created on a server the bench started");
        };
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["account", "create", "--data-dir"])
            .arg(dir)
            .arg("--database-url")
            .arg(url);
        for v in OVERRIDDEN_ENV {
            cmd.env_remove(v);
        }
        let out = cmd
            .env("STRATUS_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .context("running stratus account create")?;
        if !out.status.success() {
            bail!(
                "stratus account create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .context("stratus account create printed no JSON")?;
        creds_from(&v)
    }

    /// Stops a spawned server: SIGTERM to its PID, then SIGKILL after 10 s. Drops the PostgreSQL database.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on the PID of a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some((admin, db)) = self.pg_db.take()
            && let Err(e) = pg_query(
                &admin,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
        {
            eprintln!("warning: could not drop PostgreSQL database {db}: {e:#}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The size of the metadata database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSize {
    pub total_bytes: u64,
    pub detail: String,
}

fn creds_from(v: &serde_json::Value) -> anyhow::Result<Creds> {
    let get = |k: &str| {
        v[k].as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no {k} in {v}"))
    };
    Ok(Creds {
        secret_id: get("SecretId")?,
        secret_key: get("SecretKey")?,
    })
}

fn read_dev_credentials(path: &Path) -> anyhow::Result<Creds> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    creds_from(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values() {
        let s = "Name:\tstratus\nVmPeak:\t  900000 kB\nVmHWM:\t   61440 kB\nVmRSS:\t   40960 kB\nRssAnon:\t 1 kB\nThreads:\t8\n";
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(40 * 1024 * 1024));
        assert_eq!(parse_status_kib(s, "VmHWM"), Some(60 * 1024 * 1024));
        assert_eq!(parse_status_kib(s, "Rss"), None, "a prefix is not a key");
        assert_eq!(parse_status_kib(s, "Threads"), None, "no kB unit");
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmRSS:\tlots kB\n", "VmRSS"), None);
    }

    #[test]
    fn stat_cpu_ticks() {
        let stat = "1234 (tokio rt) worker) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("1234 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn own_process_memory_is_readable() {
        let m = read_mem(std::process::id()).expect("mem");
        assert!(m.rss_bytes > 0 && m.hwm_bytes >= m.rss_bytes);
    }

    #[test]
    fn database_choices() {
        assert_eq!(
            DbChoice::parse(None, None).expect("default"),
            DbChoice::Sqlite
        );
        assert!(DbChoice::parse(Some("postgres"), None).is_err());
        assert_eq!(
            DbChoice::parse(Some("postgres"), Some("postgres://a@h/postgres".into())).expect("env"),
            DbChoice::Postgres {
                admin_url: "postgres://a@h/postgres".into()
            }
        );
        assert!(DbChoice::parse(Some("sqlite:///tmp/x.db"), None).is_err());
        assert!(DbChoice::parse(Some("mysql://x"), None).is_err());
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            pg_url_with_db("postgres://u:p@127.0.0.1:5432/postgres", "b").expect("url"),
            "postgres://u:p@127.0.0.1:5432/b"
        );
        assert_eq!(
            pg_url_with_db("postgres://u@h:5432/postgres?sslmode=disable", "b").expect("url"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(
            pg_url_with_db("postgresql://h", "b").expect("url"),
            "postgresql://h/b"
        );
        assert_eq!(
            pg_url_with_db("postgres://h?x=1", "b").expect("url"),
            "postgres://h/b?x=1"
        );
        assert_eq!(
            redact("postgres://stratus:secret@127.0.0.1:5432/db"),
            "postgres://stratus:***@127.0.0.1:5432/db"
        );
    }
}
