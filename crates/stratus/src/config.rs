//! Configuration: defaults, overridden by a TOML file, overridden by `STRATUS_*` variables and flags.

use std::path::{Path, PathBuf};

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
    pub gc_interval_secs: Option<u64>,
    pub gc_grace_secs: Option<u64>,
    pub log_retention_days: Option<u64>,
    #[serde(default)]
    pub execution: ExecutionConfig,
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
    pub gc_interval_secs: u64,
    pub gc_grace_secs: u64,
    pub log_retention_days: u64,
    pub execution: ExecutionConfig,
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
            gc_interval_secs: file.gc_interval_secs.unwrap_or(60),
            gc_grace_secs: file.gc_grace_secs.unwrap_or(600),
            log_retention_days: file.log_retention_days.unwrap_or(7),
            execution: file.execution,
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
        assert!(toml::from_str::<FileConfig>("nope = 1").is_err());
    }
}
