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
    /// How long the status stream's change log is kept (`STRATUS_STATUS_RETENTION_SECS`, default 86400).
    pub status_retention_secs: Option<u64>,
    #[serde(default)]
    pub execution: ExecutionConfig,
    #[serde(default)]
    pub api: ApiFileConfig,
    #[serde(default)]
    pub events: EventsFileConfig,
    #[serde(default)]
    pub http: HttpFileConfig,
    #[serde(default)]
    pub concurrency: ConcurrencyFileConfig,
    #[serde(default)]
    pub sandbox: SandboxFileConfig,
}

/// The `[http]` table: the function listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFileConfig {
    /// The function listener's address (`STRATUS_HTTP_LISTEN`, `--http-listen`).
    pub listen: Option<String>,
    /// The base URL function URLs are shown under (`STRATUS_PUBLIC_URL`, `--public-url`).
    pub public_url: Option<String>,
    /// The HTTPS listener's address for custom domains (`STRATUS_HTTPS_LISTEN`, `--https-listen`); none by default.
    pub tls_listen: Option<String>,
    /// The certificates an HTTPS custom domain's `CertConfig.CertificateId` may name, by id:
    /// `[http.certificates] <id> = { cert = "chain.pem", key = "key.pem" }` (PEM files, read at start).
    #[serde(default)]
    pub certificates: std::collections::BTreeMap<String, CertificateFiles>,
}

/// One configured certificate: its PEM chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Flags and variables of the function listener (`serve` only).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpArgs {
    /// The function listener's address [default: 127.0.0.1:9080; port 0 when the API's port is 0].
    #[arg(long = "http-listen", env = "STRATUS_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// The base URL function URLs are shown under, e.g. `https://fn.example.com`, or `http://*.fn.example.com` for
    /// one host per URL [default: http://<the listener's address>].
    #[arg(long = "public-url", env = "STRATUS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The HTTPS listener's address for custom domains (certificates by SNI) [default: none].
    #[arg(long = "https-listen", env = "STRATUS_HTTPS_LISTEN")]
    pub https_listen: Option<String>,
}

/// The function listener's settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub listen: String,
    /// `None`: `http://` and the address the listener is bound to.
    pub public_url: Option<String>,
    /// The HTTPS listener's address, if there is one.
    pub tls_listen: Option<String>,
    pub certificates: std::collections::BTreeMap<String, CertificateFiles>,
}

pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9080";

impl HttpArgs {
    /// These flags and variables over the file's `[http]` table over the defaults. Without a configured address,
    /// a server whose API asks for any free port (`:0`, as tests and benchmarks start it) takes any free port for
    /// its function listener too, on the API's host, so that such servers never collide on 9080.
    pub fn resolve(&self, file: &HttpFileConfig, api_listen: &str) -> anyhow::Result<HttpSettings> {
        let listen = match self.http_listen.clone().or(file.listen.clone()) {
            Some(l) => l,
            None => match api_listen.rsplit_once(':') {
                Some((host, "0")) => format!("{host}:0"),
                _ => DEFAULT_HTTP_LISTEN.to_string(),
            },
        };
        let public_url = self
            .public_url
            .clone()
            .or(file.public_url.clone())
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty());
        if let Some(u) = &public_url {
            anyhow::ensure!(
                (u.starts_with("http://") || u.starts_with("https://"))
                    && u.len() > "https://".len(),
                "public_url `{u}` must be an http:// or https:// URL"
            );
        }
        let tls_listen = self
            .https_listen
            .clone()
            .or(file.tls_listen.clone())
            .filter(|l| !l.is_empty());
        Ok(HttpSettings {
            listen,
            public_url,
            tls_listen,
            certificates: file.certificates.clone(),
        })
    }
}

/// The `[concurrency]` table: every account's concurrency quota and the lease of a node's shares of the limits.
/// Each key is overridden by its `STRATUS_CONCURRENCY_*` variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyFileConfig {
    /// Every account's quota in MB (`STRATUS_CONCURRENCY_QUOTA_MB`, default 128000, SCF's).
    pub quota_mb: Option<i64>,
    /// What reservations leave unreserved, in MB (`STRATUS_CONCURRENCY_MIN_UNRESERVED_MB`, default 12800, or a
    /// tenth of a smaller quota).
    pub min_unreserved_mb: Option<i64>,
    /// How long a node's share of a limit is leased (`STRATUS_CONCURRENCY_LEASE_SECS`, default 10).
    pub lease_secs: Option<u64>,
}

impl ConcurrencyFileConfig {
    /// The settings in force: each variable over the file's key over the default.
    pub fn resolve(&self) -> anyhow::Result<control::ConcurrencyConfig> {
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
        let d = control::ConcurrencyConfig::default();
        let quota = var("STRATUS_CONCURRENCY_QUOTA_MB")?
            .or(self.quota_mb)
            .unwrap_or(d.account_quota_mb);
        // SCF keeps 12,800 MB of its 128,000 unreserved: a smaller quota keeps a tenth by default.
        let min = var("STRATUS_CONCURRENCY_MIN_UNRESERVED_MB")?
            .or(self.min_unreserved_mb)
            .unwrap_or(d.min_unreserved_mb.min(quota / 10));
        anyhow::ensure!(quota >= 0, "concurrency quota_mb must not be negative");
        anyhow::ensure!(
            (0..=quota).contains(&min),
            "concurrency min_unreserved_mb must be between 0 and quota_mb"
        );
        let lease: Option<u64> = var("STRATUS_CONCURRENCY_LEASE_SECS")?.or(self.lease_secs);
        anyhow::ensure!(
            lease != Some(0),
            "concurrency lease_secs must be at least 1"
        );
        Ok(control::ConcurrencyConfig {
            account_quota_mb: quota,
            min_unreserved_mb: min,
            lease_ms: lease
                .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
                .unwrap_or(d.lease_ms),
        })
    }
}

/// The `[sandbox]` table: instances' outbound network (`PublicNetStatus=ENABLE`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFileConfig {
    /// Give `ENABLE` functions outbound network (`STRATUS_EGRESS`, default true). Needs `ip` and `nft`; when
    /// the firewall table cannot be installed, every instance stays loopback-only (a warning says why).
    pub egress: Option<bool>,
    /// The IPv4 pool instance links (/30 each) are carved from (`STRATUS_EGRESS_POOL`, `198.18.0.0/16`).
    pub egress_pool: Option<String>,
    /// The instances' resolvers (default: the host's that are not on loopback, see ARCHITECTURE.md).
    pub egress_nameservers: Option<Vec<std::net::Ipv4Addr>>,
}

impl SandboxFileConfig {
    /// The outbound-network settings in force (`None`: disabled): each variable over the file's key.
    pub fn resolve(&self) -> anyhow::Result<Option<engine::EgressSettings>> {
        let enabled = match std::env::var("STRATUS_EGRESS") {
            Ok(v) if !v.trim().is_empty() => match v.trim() {
                "1" | "true" => true,
                "0" | "false" => false,
                other => anyhow::bail!("STRATUS_EGRESS must be true or false, not `{other}`"),
            },
            _ => self.egress.unwrap_or(true),
        };
        if !enabled {
            return Ok(None);
        }
        let pool = std::env::var("STRATUS_EGRESS_POOL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| self.egress_pool.clone())
            .unwrap_or_else(|| sandbox::net::DEFAULT_EGRESS_POOL.to_string());
        let pool = sandbox::Ipv4Pool::parse(&pool).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(engine::EgressSettings {
            pool,
            nameservers: self.egress_nameservers.clone(),
        }))
    }
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
    /// The zone timers are evaluated in: `UTC` or a fixed offset `±HH:MM` (`STRATUS_EVENT_TIMER_TIMEZONE`,
    /// default `+08:00`, SCF's).
    pub timer_timezone: Option<String>,
    /// How old a missed timer tick may be and still fire, once (`STRATUS_EVENT_TIMER_LATE_SECS`, default 60,
    /// at most 3600); older ones are recorded as skipped.
    pub timer_late_secs: Option<u64>,
    /// TerminateAsyncEvent with `GraceShutdown`: seconds from SIGTERM to the kill
    /// (`STRATUS_EVENT_GRACE_SHUTDOWN_SECS`, default 30; the function's own timeout still applies).
    pub grace_shutdown_secs: Option<u64>,
}

impl EventsFileConfig {
    /// The timer scheduler's settings: each variable over the file's key over the default.
    pub fn resolve_timers(&self) -> anyhow::Result<control::TimersConfig> {
        let d = control::TimersConfig::default();
        let zone = match std::env::var("STRATUS_EVENT_TIMER_TIMEZONE") {
            Ok(v) if !v.trim().is_empty() => Some(v),
            _ => self.timer_timezone.clone(),
        };
        let offset_secs = match zone {
            Some(z) => control::timers::parse_timezone(&z).map_err(|e| anyhow::anyhow!(e))?,
            None => d.offset_secs,
        };
        let late_secs: Option<u64> = match std::env::var("STRATUS_EVENT_TIMER_LATE_SECS") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(|_| {
                anyhow::anyhow!("STRATUS_EVENT_TIMER_LATE_SECS `{v}` is not a number of seconds")
            })?),
            _ => self.timer_late_secs,
        };
        if let Some(l) = late_secs {
            anyhow::ensure!(
                l <= 3600,
                "events timer_late_secs must be at most 3600, not {l}"
            );
        }
        Ok(control::TimersConfig {
            offset_secs,
            late_ms: late_secs.map_or(d.late_ms, |s| s as i64 * 1000),
            ..d
        })
    }
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
            grace_shutdown: var("STRATUS_EVENT_GRACE_SHUTDOWN_SECS")?
                .or(self.grace_shutdown_secs)
                .map(Duration::from_secs)
                .unwrap_or(d.grace_shutdown),
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
    /// How long the status change log is kept; a stream resuming from before it gets a reset.
    pub status_retention_secs: u64,
    pub execution: ExecutionConfig,
    /// The `[api]` table as the file gives it (see [`ApiArgs::resolve`]).
    pub api: ApiFileConfig,
    /// The `[events]` table and its variables, resolved.
    pub events: control::EventsConfig,
    /// The `[http]` table as the file gives it (see [`HttpArgs::resolve`]).
    pub http: HttpFileConfig,
    /// The timer scheduler's settings (`[events] timer_*`), resolved.
    pub timers: control::TimersConfig,
    /// The `[concurrency]` table and its variables, resolved.
    pub concurrency: control::ConcurrencyConfig,
    /// The `[sandbox]` table's outbound network, resolved (`None`: disabled).
    pub egress: Option<engine::EgressSettings>,
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
            status_retention_secs: match std::env::var("STRATUS_STATUS_RETENTION_SECS") {
                Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "STRATUS_STATUS_RETENTION_SECS `{v}` is not a number of seconds"
                    )
                })?,
                _ => file.status_retention_secs.unwrap_or(86_400),
            },
            events: file.events.resolve()?,
            timers: file.events.resolve_timers()?,
            concurrency: file.concurrency.resolve()?,
            egress: file.sandbox.resolve()?,
            execution: file.execution,
            api: file.api,
            http: file.http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_settings() {
        let none = HttpFileConfig::default();
        let r = |a: &HttpArgs, f: &HttpFileConfig, l: &str| a.resolve(f, l).expect("resolves");
        assert_eq!(
            r(&HttpArgs::default(), &none, "127.0.0.1:9000").listen,
            "127.0.0.1:9080"
        );
        assert_eq!(
            r(&HttpArgs::default(), &none, "127.0.0.1:0").listen,
            "127.0.0.1:0"
        );
        let file: FileConfig = toml::from_str(
            "[http]\nlisten = \"0.0.0.0:8080\"\npublic_url = \"https://fn.example.com/\"\n",
        )
        .expect("parses");
        let s = r(&HttpArgs::default(), &file.http, "127.0.0.1:0");
        assert_eq!(s.listen, "0.0.0.0:8080");
        assert_eq!(s.public_url.as_deref(), Some("https://fn.example.com"));
        let flags = HttpArgs {
            http_listen: Some("127.0.0.1:7000".into()),
            public_url: Some("http://*.fn.test".into()),
            https_listen: None,
        };
        let s = r(&flags, &file.http, "127.0.0.1:9000");
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.public_url.as_deref(), Some("http://*.fn.test"));
        let bad = HttpArgs {
            http_listen: None,
            public_url: Some("fn.example.com".into()),
            https_listen: None,
        };
        assert!(bad.resolve(&none, "127.0.0.1:9000").is_err());
    }

    #[test]
    fn sandbox_table_sets_the_egress_pool_and_nameservers() {
        let f: FileConfig = toml::from_str(
            r#"
            [sandbox]
            egress_pool = "10.99.0.0/16"
            egress_nameservers = ["9.9.9.9"]
            "#,
        )
        .expect("parse");
        let e = f.sandbox.resolve().expect("resolve").expect("enabled");
        assert_eq!(e.pool.to_string(), "10.99.0.0/16");
        assert_eq!(
            e.nameservers,
            Some(vec![std::net::Ipv4Addr::new(9, 9, 9, 9)])
        );
        let default = SandboxFileConfig::default().resolve().expect("resolve");
        assert_eq!(
            default.map(|e| e.pool.to_string()),
            Some(sandbox::net::DEFAULT_EGRESS_POOL.to_string())
        );
        let off: FileConfig = toml::from_str("[sandbox]\negress = false\n").expect("parse");
        assert!(off.sandbox.resolve().expect("resolve").is_none());
        let bad: FileConfig =
            toml::from_str("[sandbox]\negress_pool = \"198.18.0.1/16\"\n").expect("parse");
        assert!(bad.sandbox.resolve().is_err());
        assert!(toml::from_str::<FileConfig>("[sandbox]\negres = true\n").is_err());
    }

    #[test]
    fn https_listener_and_certificates() {
        let file: FileConfig = toml::from_str(
            "[http]\ntls_listen = \"127.0.0.1:9443\"\n[http.certificates]\n\
             site = { cert = \"/etc/s/chain.pem\", key = \"/etc/s/key.pem\" }\n",
        )
        .expect("parses");
        let s = HttpArgs::default()
            .resolve(&file.http, "127.0.0.1:0")
            .expect("resolves");
        assert_eq!(s.tls_listen.as_deref(), Some("127.0.0.1:9443"));
        assert_eq!(
            s.certificates.get("site"),
            Some(&CertificateFiles {
                cert: "/etc/s/chain.pem".into(),
                key: "/etc/s/key.pem".into()
            })
        );
        let flag = HttpArgs {
            https_listen: Some("127.0.0.1:0".into()),
            ..HttpArgs::default()
        };
        let s = flag.resolve(&file.http, "127.0.0.1:0").expect("resolves");
        assert_eq!(s.tls_listen.as_deref(), Some("127.0.0.1:0"));
        let none = HttpArgs::default()
            .resolve(&HttpFileConfig::default(), "127.0.0.1:0")
            .expect("resolves");
        assert_eq!(none.tls_listen, None);
        assert!(
            toml::from_str::<FileConfig>("[http.certificates]\nx = { cert = \"a\" }\n").is_err()
        );
    }

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
    fn concurrency_table_resolves_over_the_defaults() {
        let f: FileConfig = toml::from_str(
            r#"
            [concurrency]
            quota_mb = 2048
            lease_secs = 3
            "#,
        )
        .expect("parses");
        let c = f.concurrency.resolve().expect("valid");
        assert_eq!(c.account_quota_mb, 2048);
        assert_eq!(c.lease_ms, 3_000);
        assert_eq!(
            c.min_unreserved_mb, 204,
            "a tenth of a quota under 128,000 MB"
        );
        let d = ConcurrencyFileConfig::default()
            .resolve()
            .expect("defaults");
        assert_eq!(d, control::ConcurrencyConfig::default());
        let over = ConcurrencyFileConfig {
            quota_mb: Some(1024),
            min_unreserved_mb: Some(2048),
            ..ConcurrencyFileConfig::default()
        };
        assert!(over.resolve().is_err(), "more unreserved than the quota");
        let zero = ConcurrencyFileConfig {
            lease_secs: Some(0),
            ..ConcurrencyFileConfig::default()
        };
        assert!(zero.resolve().is_err());
        assert!(toml::from_str::<FileConfig>("[concurrency]\nbogus = 1").is_err());
    }

    #[test]
    fn events_table_resolves_over_the_defaults() {
        let f: FileConfig = toml::from_str(
            r#"
            [events]
            slots = 3
            retry_delays_secs = [1, 2]
            msg_ttl_secs = 60
            grace_shutdown_secs = 5
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
        assert_eq!(e.grace_shutdown, Duration::from_secs(5));
        assert_eq!(
            EventsFileConfig::default()
                .resolve()
                .expect("defaults")
                .grace_shutdown,
            Duration::from_secs(control::events::DEFAULT_GRACE_SHUTDOWN_SECS)
        );
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

    #[test]
    fn timer_settings_resolve_over_the_defaults() {
        if std::env::vars().any(|(k, _)| k.starts_with("STRATUS_EVENT_TIMER_")) {
            return;
        }
        let f: FileConfig = toml::from_str(
            r#"
            [events]
            timer_timezone = "UTC"
            timer_late_secs = 5
            "#,
        )
        .expect("parses");
        let t = f.events.resolve_timers().expect("valid");
        assert_eq!((t.offset_secs, t.late_ms), (0, 5_000));
        let d = EventsFileConfig::default()
            .resolve_timers()
            .expect("defaults");
        assert_eq!((d.offset_secs, d.late_ms), (8 * 3600, 60_000));
        for bad in [
            EventsFileConfig {
                timer_timezone: Some("Asia/Shanghai".into()),
                ..EventsFileConfig::default()
            },
            EventsFileConfig {
                timer_late_secs: Some(3601),
                ..EventsFileConfig::default()
            },
        ] {
            assert!(bad.resolve_timers().is_err(), "{bad:?}");
        }
    }
}
