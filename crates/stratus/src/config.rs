//! Configuration: defaults, overridden by a TOML file, overridden by `STRATUS_*` variables and flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// The file format (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub workers: Option<usize>,
    pub sqlite_sync: Option<String>,
    pub inline_blob_bytes: Option<u64>,
    pub gc_interval_secs: Option<u64>,
    pub gc_grace_secs: Option<u64>,
    pub log_retention_days: Option<u64>,
    #[serde(default)]
    pub execution: ExecutionConfig,
    #[serde(default)]
    pub api: ApiFileConfig,
    #[serde(default)]
    pub events: EventsFileConfig,
}

/// The `[events]` table: the asynchronous event queue and its dispatchers. Each key is overridden by its
/// `STRATUS_EVENT_*` variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFileConfig {
    /// Events one node runs at once (`STRATUS_EVENT_SLOTS`, default 16).
    pub slots: Option<usize>,
    /// How often an idle dispatcher polls for events of other nodes (`STRATUS_EVENT_POLL_MS`, default 500).
    pub poll_ms: Option<u64>,
    /// An event's lease without a heartbeat (`STRATUS_EVENT_LEASE_SECS`, default 10).
    pub lease_secs: Option<u64>,
    /// Retries of a function error, 0–2 (`STRATUS_EVENT_RETRY_NUM`, default 2).
    pub retry_num: Option<i64>,
    /// The delay before each retry of a function error (`STRATUS_EVENT_RETRY_DELAYS=60,120`, the default).
    pub retry_delays_secs: Option<Vec<u64>>,
    /// How long throttles and faults are retried (`STRATUS_EVENT_MSG_TTL_SECS`, default 21600).
    pub msg_ttl_secs: Option<u64>,
    /// The first back-off after a throttle or fault, doubling up to an hour (`STRATUS_EVENT_BACKOFF_MS`, 1000).
    pub backoff_ms: Option<u64>,
    /// How long an ended event is kept (`STRATUS_EVENT_RETENTION_SECS`, default 259200: 3 days).
    pub retention_secs: Option<u64>,
}

impl EventsFileConfig {
    /// The settings in force: each variable over the file's key over the default.
    pub fn resolve(&self) -> anyhow::Result<control::EventsConfig> {
        fn var<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("{name} `{v}` is not a valid value")),
                _ => Ok(None),
            }
        }
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let d = control::EventsConfig::default();
        let slots = var("STRATUS_EVENT_SLOTS")?
            .or(self.slots)
            .unwrap_or(d.slots);
        anyhow::ensure!(
            (1..=10_000).contains(&slots),
            "events slots must be between 1 and 10000"
        );
        let retry_num = var("STRATUS_EVENT_RETRY_NUM")?
            .or(self.retry_num)
            .unwrap_or(d.retry_num);
        anyhow::ensure!(
            (0..=2).contains(&retry_num),
            "events retry_num must be 0, 1 or 2 (SCF's RetryNum)"
        );
        let delays: Option<Vec<u64>> = match std::env::var("STRATUS_EVENT_RETRY_DELAYS") {
            Ok(v) if !v.trim().is_empty() => Some(
                v.split(',')
                    .map(|p| p.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "STRATUS_EVENT_RETRY_DELAYS `{v}` must be seconds separated by commas, e.g. 60,120"
                        )
                    })?,
            ),
            _ => self.retry_delays_secs.clone(),
        };
        let retry_delays_ms = match delays {
            Some(d) => {
                anyhow::ensure!(!d.is_empty(), "events retry_delays_secs must not be empty");
                d.into_iter().map(ms).collect()
            }
            None => d.retry_delays_ms,
        };
        let lease_secs = var("STRATUS_EVENT_LEASE_SECS")?.or(self.lease_secs);
        anyhow::ensure!(
            lease_secs != Some(0),
            "events lease_secs must be at least 1"
        );
        let msg_ttl_secs = var("STRATUS_EVENT_MSG_TTL_SECS")?.or(self.msg_ttl_secs);
        anyhow::ensure!(
            msg_ttl_secs != Some(0),
            "events msg_ttl_secs must be at least 1"
        );
        Ok(control::EventsConfig {
            slots,
            poll: var("STRATUS_EVENT_POLL_MS")?
                .or(self.poll_ms)
                .map(|v: u64| Duration::from_millis(v.max(1)))
                .unwrap_or(d.poll),
            lease_ms: lease_secs.map(ms).unwrap_or(d.lease_ms),
            retry_num,
            retry_delays_ms,
            msg_ttl_ms: msg_ttl_secs.map(ms).unwrap_or(d.msg_ttl_ms),
            backoff_initial_ms: var("STRATUS_EVENT_BACKOFF_MS")?
                .or(self.backoff_ms)
                .map(|v: u64| i64::try_from(v.max(1)).unwrap_or(i64::MAX))
                .unwrap_or(d.backoff_initial_ms),
            retention_ms: var("STRATUS_EVENT_RETENTION_SECS")?
                .or(self.retention_secs)
                .map(ms)
                .unwrap_or(d.retention_ms),
            ..d
        })
    }
}

/// The `[api]` table: limits of the API's HTTP server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFileConfig {
    pub max_connections: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub max_body_memory_bytes: Option<usize>,
}

/// Flags and variables for the `[api]` settings (`serve` only).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ApiArgs {
    /// Connections served at once (beyond it, new ones wait in the listen backlog) [default: 1024].
    #[arg(long = "api-max-connections", env = "STRATUS_API_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds from a request head's first byte to its end [default: 10].
    #[arg(
        long = "api-header-timeout-secs",
        env = "STRATUS_API_HEADER_TIMEOUT_SECS"
    )]
    pub header_timeout_secs: Option<u64>,
    /// Seconds for a request body to arrive after its head [default: 60].
    #[arg(long = "api-body-timeout-secs", env = "STRATUS_API_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Seconds a connection may stay idle (no request, no traffic) [default: 60].
    #[arg(long = "api-idle-timeout-secs", env = "STRATUS_API_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Largest request body in bytes [default: 83886080, 80 MiB].
    #[arg(long = "api-max-body-bytes", env = "STRATUS_API_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bytes of request bodies held at once over all connections; at least the largest body [default: 1073741824, 1 GiB].
    #[arg(
        long = "api-max-body-memory-bytes",
        env = "STRATUS_API_MAX_BODY_MEMORY_BYTES"
    )]
    pub max_body_memory_bytes: Option<usize>,
}

impl ApiArgs {
    /// The API settings: these flags and variables over the file's `[api]` table over the defaults.
    pub fn resolve(&self, file: &ApiFileConfig) -> anyhow::Result<api::ApiConfig> {
        let d = api::ApiConfig::default();
        let secs = |name: &str, flag: Option<u64>, file: Option<u64>, default: Duration| match flag
            .or(file)
        {
            None => Ok(default),
            Some(0) => anyhow::bail!("api {name} must be at least 1 second"),
            Some(n) => Ok(Duration::from_secs(n)),
        };
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections);
        anyhow::ensure!(
            (1..=1_000_000).contains(&max_connections),
            "api max_connections must be between 1 and 1000000, not {max_connections}"
        );
        let max_body_bytes = self
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(d.max_body_bytes);
        anyhow::ensure!(max_body_bytes > 0, "api max_body_bytes must not be 0");
        let max_body_memory_bytes = self
            .max_body_memory_bytes
            .or(file.max_body_memory_bytes)
            .unwrap_or(d.max_body_memory_bytes.max(max_body_bytes));
        anyhow::ensure!(
            max_body_memory_bytes >= max_body_bytes,
            "api max_body_memory_bytes ({max_body_memory_bytes}) must be at least max_body_bytes ({max_body_bytes}), or the largest body could never be read"
        );
        Ok(api::ApiConfig {
            max_connections,
            max_body_bytes,
            max_body_memory_bytes,
            header_timeout: secs(
                "header_timeout_secs",
                self.header_timeout_secs,
                file.header_timeout_secs,
                d.header_timeout,
            )?,
            body_timeout: secs(
                "body_timeout_secs",
                self.body_timeout_secs,
                file.body_timeout_secs,
                d.body_timeout,
            )?,
            idle_timeout: secs(
                "idle_timeout_secs",
                self.idle_timeout_secs,
                file.idle_timeout_secs,
                d.idle_timeout,
            )?,
            ..d
        })
    }
}

/// The `[execution]` table: interpreters and instance limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionConfig {
    /// The interpreter for every `Python3.*` runtime (default: the host's `python3`, resolved to its real path).
    pub python3: Option<PathBuf>,
    /// The interpreter for every `Nodejs*` runtime (default: the host's `node`).
    pub node: Option<PathBuf>,
    /// Exact runtime names mapped to interpreters (e.g. `"Python3.6" = "/opt/python3.6/bin/python3"`).
    #[serde(default)]
    pub runtimes: std::collections::HashMap<String, PathBuf>,
    /// Runtime names this installation refuses.
    #[serde(default)]
    pub disabled_runtimes: Vec<String>,
    /// Concurrent invocations of one function (default: the account quota, 128).
    pub max_per_function: Option<u32>,
    /// Concurrent invocations of one account (default: 128).
    pub max_per_account: Option<u32>,
    /// Instances kept in all (idle ones beyond it are evicted, least recently used first).
    pub max_instances: Option<u32>,
    /// Seconds an idle instance is kept (default 600).
    pub idle_secs: Option<u64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    pub database_url: String,
    pub workers: usize,
    pub sqlite_sync: store::SqliteSync,
    /// Packages up to this size are kept in the database only.
    pub inline_blob_bytes: u64,
    pub gc_interval_secs: u64,
    pub gc_grace_secs: u64,
    pub log_retention_days: u64,
    pub execution: ExecutionConfig,
    /// The `[api]` table as the file gives it (see [`ApiArgs::resolve`]).
    pub api: ApiFileConfig,
    /// The `[events]` table and its variables, resolved.
    pub events: control::EventsConfig,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Flags and variables that override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// A TOML configuration file.
    #[arg(long, env = "STRATUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the SQLite database, blobs and unpacked code live.
    #[arg(long, env = "STRATUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` (default: DATA_DIR/stratus.db) or `postgres://USER:PASS@HOST:PORT/DB`.
    #[arg(long, env = "STRATUS_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl Settings {
    pub fn resolve(
        common: &CommonArgs,
        listen: Option<String>,
        workers: Option<usize>,
    ) -> anyhow::Result<Settings> {
        let file = FileConfig::load(common.config.as_deref())?;
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = common
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("stratus.db").display()));
        let sqlite_sync = match std::env::var("STRATUS_SQLITE_SYNC")
            .ok()
            .or(file.sqlite_sync)
            .as_deref()
        {
            None | Some("full") => store::SqliteSync::Full,
            Some("normal") => store::SqliteSync::Normal,
            Some(other) => anyhow::bail!("sqlite_sync must be `full` or `normal`, not `{other}`"),
        };
        Ok(Settings {
            data_dir,
            listen: listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            database_url,
            workers: workers.or(file.workers).unwrap_or(4),
            sqlite_sync,
            inline_blob_bytes: file
                .inline_blob_bytes
                .unwrap_or(store::DEFAULT_INLINE_BLOB_BYTES),
            gc_interval_secs: file.gc_interval_secs.unwrap_or(60),
            gc_grace_secs: file.gc_grace_secs.unwrap_or(600),
            log_retention_days: file.log_retention_days.unwrap_or(7),
            events: file.events.resolve()?,
            execution: file.execution,
            api: file.api,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_table_parses() {
        let f: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9100"
            [execution]
            node = "/usr/bin/node"
            max_per_function = 4
            disabled_runtimes = ["Python3.6"]
            [execution.runtimes]
            "Python3.10" = "/usr/bin/python3"
            "#,
        )
        .expect("parses");
        assert_eq!(f.listen.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!(f.execution.max_per_function, Some(4));
        assert_eq!(f.execution.disabled_runtimes, ["Python3.6"]);
        assert_eq!(
            f.execution.runtimes.get("Python3.10"),
            Some(&PathBuf::from("/usr/bin/python3"))
        );
        assert!(toml::from_str::<FileConfig>("[execution]\nbogus = 1").is_err());
        assert!(toml::from_str::<FileConfig>("[api]\nbogus = 1").is_err());
        assert!(toml::from_str::<FileConfig>("nope = 1").is_err());
        assert!(toml::from_str::<FileConfig>("[events]\nbogus = 1").is_err());
    }

    #[test]
    fn api_limits_come_from_flags_over_the_file_over_the_defaults() {
        let f: FileConfig = toml::from_str(
            r#"
            [api]
            max_connections = 64
            header_timeout_secs = 3
            idle_timeout_secs = 7
            "#,
        )
        .expect("parses");
        let flags = ApiArgs {
            idle_timeout_secs: Some(2),
            max_body_bytes: Some(1 << 20),
            ..ApiArgs::default()
        };
        let a = flags.resolve(&f.api).expect("valid");
        let d = api::ApiConfig::default();
        assert_eq!(a.max_connections, 64);
        assert_eq!(a.header_timeout, Duration::from_secs(3));
        assert_eq!(a.idle_timeout, Duration::from_secs(2), "the flag wins");
        assert_eq!(a.body_timeout, d.body_timeout, "the default");
        assert_eq!(a.max_body_bytes, 1 << 20);
        assert_eq!(a.max_skew_secs, d.max_skew_secs);
        let zero = ApiArgs {
            body_timeout_secs: Some(0),
            ..ApiArgs::default()
        };
        assert!(zero.resolve(&ApiFileConfig::default()).is_err());
        let none = ApiArgs {
            max_connections: Some(0),
            ..ApiArgs::default()
        };
        assert!(none.resolve(&ApiFileConfig::default()).is_err());
    }

    #[test]
    fn events_table_resolves_over_the_defaults() {
        let f: FileConfig = toml::from_str(
            r#"
            [events]
            slots = 3
            retry_delays_secs = [1, 2]
            msg_ttl_secs = 60
            "#,
        )
        .expect("parses");
        // The variables are not set in this test process (they would override the file).
        if std::env::vars().any(|(k, _)| k.starts_with("STRATUS_EVENT_")) {
            return;
        }
        let e = f.events.resolve().expect("valid");
        let d = control::EventsConfig::default();
        assert_eq!(e.slots, 3);
        assert_eq!(e.retry_delays_ms, [1_000, 2_000]);
        assert_eq!(e.msg_ttl_ms, 60_000);
        assert_eq!(e.retry_num, d.retry_num);
        assert_eq!(e.lease_ms, d.lease_ms);
        let bad = EventsFileConfig {
            retry_num: Some(3),
            ..EventsFileConfig::default()
        };
        assert!(bad.resolve().is_err());
        let empty = EventsFileConfig {
            retry_delays_secs: Some(vec![]),
            ..EventsFileConfig::default()
        };
        assert!(empty.resolve().is_err());
    }
}
