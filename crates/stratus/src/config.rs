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
        })
    }
}
