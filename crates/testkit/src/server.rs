//! The real `stratus` binary, started on `127.0.0.1:0` with a temporary data directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{Backend, TestDatabase, fresh_database_url};
use crate::client::Client;

/// How long a start may take before the test fails (a start normally takes about 50 ms).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A private hard link (or copy) of `bin`, made once per process and binary.
///
/// Several worktrees may share one cargo target directory, so `target/debug/stratus` can be replaced by another
/// build while this process runs its tests; the link keeps the binary this process was built with. Links of
/// processes that are gone are removed.
fn stable_copy(bin: &Path) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static COPIES: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut copies = COPIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = copies.get(bin) {
        return p.clone();
    }
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bin".into());
    // `target/debug/stratus` -> `target/tmp/testkit-bin/`: the same file system, so a hard link works.
    let dir = bin
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("tmp").join("testkit-bin"))
        .unwrap_or_else(|| std::env::temp_dir().join("testkit-bin"));
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let pid = file.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let dest = dir.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&dest);
    let made = std::fs::hard_link(bin, &dest).or_else(|_| std::fs::copy(bin, &dest).map(|_| ()));
    let path = match made {
        Ok(()) => dest,
        Err(_) => bin.to_path_buf(),
    };
    copies.insert(bin.to_path_buf(), path.clone());
    path
}

/// An account's key, as `dev-credentials.json` and `stratus account create` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub app_id: i64,
    pub uin: String,
    pub secret_id: String,
    pub secret_key: String,
}

impl Credentials {
    /// Parses `{"AppId","Uin","SecretId","SecretKey"}`.
    pub fn from_json(v: &Value) -> Option<Credentials> {
        Some(Credentials {
            app_id: v.get("AppId")?.as_i64()?,
            uin: match v.get("Uin")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            },
            secret_id: v.get("SecretId")?.as_str()?.to_string(),
            secret_key: v.get("SecretKey")?.as_str()?.to_string(),
        })
    }
}

/// A running (or stopped) `stratus serve`. Dropping it kills the process (by its PID) and removes its data.
pub struct Server {
    bin: PathBuf,
    backend: Backend,
    env: Vec<(String, String)>,
    /// Holds `data/` and the logs `server-N.log`.
    root: tempfile::TempDir,
    db: Option<TestDatabase>,
    child: Option<Child>,
    addr: SocketAddr,
    creds: Credentials,
    starts: u32,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("backend", &self.backend.name())
            .field("addr", &self.addr)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Server {
    /// Starts `bin serve` on `backend` with extra environment `env` (`FAILPOINTS`, say), waits (bounded) for
    /// its banner and reads the development credentials. Panics, with the server's log, when it does not come
    /// up.
    pub fn start(bin: impl AsRef<Path>, backend: &Backend, env: &[(&str, &str)]) -> Server {
        let root = tempfile::Builder::new()
            .prefix("stratus-test-")
            .tempdir()
            .expect("temporary directory");
        let db = backend.is_postgres().then(|| fresh_database_url(backend));
        let mut s = Server {
            bin: stable_copy(bin.as_ref()),
            backend: backend.clone(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            root,
            db,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            creds: Credentials {
                app_id: 0,
                uin: String::new(),
                secret_id: String::new(),
                secret_key: String::new(),
            },
            starts: 0,
        };
        s.spawn();
        s
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The `--database-url` given, if any (SQLite uses the default file in the data directory).
    pub fn database_url(&self) -> Option<&str> {
        self.db.as_ref().map(TestDatabase::url)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The development account's key.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// A client signed with the development account.
    pub fn client(&self) -> Client {
        Client::new(self.addr, self.creds.clone())
    }

    /// A client of this server for another account.
    pub fn client_for(&self, creds: &Credentials) -> Client {
        Client::new(self.addr, creds.clone())
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.root.path().join(format!("server-{n}.log"))
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `bin` with the data directory, database and environment of this server, nothing inherited that could
    /// change its behaviour.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).arg("--data-dir").arg(self.data_dir());
        if let Some(db) = &self.db {
            cmd.arg("--database-url").arg(db.url());
        }
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("STRATUS_")
                || k == "FAILPOINTS"
                || k.eq_ignore_ascii_case("http_proxy")
                || k.eq_ignore_ascii_case("https_proxy")
            {
                cmd.env_remove(&*k);
            }
        }
        // The log filter of the servers under test (their logs are shown when a test fails).
        if let Ok(filter) = std::env::var("TESTKIT_STRATUS_LOG") {
            cmd.env("STRATUS_LOG", filter);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("server log file");
        let mut cmd = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.stdout(Stdio::piped()).stderr(log);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the banner, then keeps draining stdout until the process goes.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("stratus listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let banner = rx.recv_timeout(START_TIMEOUT);
        self.child = Some(child);
        let addr = match banner {
            Ok(a) => a,
            Err(e) => {
                self.kill9();
                panic!(
                    "stratus did not print its banner ({e:?}); log:\n{}",
                    self.log_tail(80)
                );
            }
        };
        self.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("banner address {addr:?}: {e}"));
        let path = self.data_dir().join("dev-credentials.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).expect("dev-credentials.json is JSON");
        self.creds = Credentials::from_json(&v).unwrap_or_else(|| {
            panic!("dev-credentials.json lacks AppId/Uin/SecretId/SecretKey: {v}")
        });
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its exit status. Panics if it does
    /// not exit in time (after killing it).
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server is not running");
        let pid = libc::pid_t::try_from(c.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet, so it cannot be reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "stratus did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                        self.log_tail(40)
                    );
                }
            }
        }
    }

    /// Starts the server again on the same data directory and database (stopping it first, gracefully, if it
    /// runs). The address changes: take a new [`Server::client`].
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.stop();
            assert!(status.success(), "stratus exited with {status} on SIGTERM");
        }
        self.spawn();
    }

    /// Replaces the extra environment for the next start (a restart without fault injection, say).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// The URL of the metadata database, also for SQLite (the file in the data directory).
    pub fn effective_database_url(&self) -> String {
        match &self.db {
            Some(db) => db.url().to_string(),
            None => format!("sqlite://{}", self.data_dir().join("stratus.db").display()),
        }
    }

    /// Runs `sql`, which must return one integer column `n` in one row, directly on the metadata database (to
    /// check what the API cannot show, such as operations left pending).
    pub fn db_count(&self, sql: &str) -> i64 {
        let url = self.effective_database_url();
        let sql = sql.to_string();
        crate::backend::on_own_runtime(async move {
            use sqlx::Row;
            sqlx::any::install_default_drivers();
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            let n: i64 = sqlx::query(&sql)
                .fetch_one(&pool)
                .await
                .and_then(|r| r.try_get("n"))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
            n
        })
    }

    /// Runs `stratus account create` against this server's data and returns the new account's key.
    pub fn create_account(&self) -> Credentials {
        let out = self.run_cli(&["account", "create"]);
        let line = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
        let v: Value = line
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("`stratus account create` printed no JSON line: {out:?}"));
        Credentials::from_json(&v).unwrap_or_else(|| panic!("account JSON lacks fields: {v}"))
    }

    /// Runs a CLI subcommand with this server's data directory and database; returns its stdout. Bounded.
    pub fn run_cli(&self, args: &[&str]) -> String {
        let dir = tempfile::tempdir().expect("temporary directory");
        let out_path = dir.path().join("out");
        let err_path = dir.path().join("err");
        let mut cmd = self.command(args);
        cmd.stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file"));
        let mut child = cmd.spawn().expect("start stratus");
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("`stratus {}` did not finish in time", args.join(" "));
                }
            }
        };
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        assert!(
            status.success(),
            "`stratus {}` failed with {status}:\n{err}",
            args.join(" ")
        );
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- stratus log ({}, run {}) ----\n{}\n---- end of log ----",
                self.backend.name(),
                self.starts,
                self.log_tail(60)
            );
        }
    }
}
