//! The engine's public request, result and configuration types.

use std::path::PathBuf;
use std::time::Duration;

use crate::runtimes::RuntimeConfig;

/// One function qualifier snapshot, as the engine needs it to start and invoke instances. Everything here is
/// immutable for a given `key`: a changed configuration or code is a new snapshot with a new key.
#[derive(Debug, Clone, Default)]
pub struct FunctionSpec {
    /// Identifies the snapshot; instances are pooled per key.
    pub key: String,
    pub app_id: String,
    pub uin: String,
    pub region: String,
    pub namespace: String,
    pub function_name: String,
    /// `$LATEST` or a version number.
    pub version: String,
    /// The SCF runtime name (`Python3.9`, `Nodejs18.15`, `CustomRuntime`).
    pub runtime: String,
    /// `file.function` for the built-in runtimes.
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub init_timeout_s: u32,
    /// The user's environment variables.
    pub env: Vec<(String, String)>,
    /// The unpacked code (read-only).
    pub code_dir: PathBuf,
    /// The unpacked layers in binding order.
    pub layer_dirs: Vec<PathBuf>,
    /// The function's own concurrency limit (reserved concurrency); `None`: the engine's default.
    pub max_concurrency: Option<u32>,
    /// `PublicNetStatus=ENABLE`: instances get outbound network where the launcher offers it.
    pub public_net: bool,
}

/// One synchronous invocation.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    /// `None`: the engine makes one (a UUID).
    pub request_id: Option<String>,
    /// The event, JSON (empty means `{}`).
    pub event: Vec<u8>,
    /// Stops the invocation gracefully once it holds `Some(grace)`: SIGTERM to the instance (with SCF's
    /// `[PLATFORM] Signal …` line in the log), then the kill if it has not ended `grace` later.
    pub terminate: Option<tokio::sync::watch::Receiver<Option<Duration>>>,
}

/// An invocation's error, as SCF reports it in `ErrMsg`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    pub error_code: i64,
    pub error_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub stack_trace: String,
    pub status_code: u16,
}

impl FunctionError {
    pub fn new(status_code: u16, message: impl Into<String>) -> FunctionError {
        FunctionError {
            error_code: if status_code == status::USER_EXCEPTION {
                1
            } else {
                -1
            },
            error_message: message.into(),
            error_type: None,
            stack_trace: String::new(),
            status_code,
        }
    }

    /// The `ErrMsg` JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// SCF's runtime status codes.
pub mod status {
    pub const OK: u16 = 200;
    pub const USER_EXCEPTION: u16 = 430;
    pub const THROTTLED: u16 = 432;
    pub const TIMEOUT: u16 = 433;
    pub const MEMORY_LIMIT: u16 = 434;
    pub const HANDLER_NOT_FOUND: u16 = 437;
    pub const PROCESS_EXITED: u16 = 439;
}

/// What an invocation produced (also when the function failed: only engine trouble is an [`crate::EngineError`]).
#[derive(Debug, Clone)]
pub struct InvokeOutcome {
    pub request_id: String,
    /// `Ok(RetMsg)` (the JSON result) or the function's error.
    pub result: Result<String, FunctionError>,
    /// 200, or the error's status code.
    pub status_code: u16,
    /// The invocation's log in SCF's shape (see [`crate::log`]); use [`crate::log::tail`] for `LogType=Tail`.
    pub log: String,
    /// Handler run time in ms (not including a cold start).
    pub duration_ms: f64,
    /// `duration_ms` rounded up to the ms.
    pub bill_duration_ms: i64,
    /// The instance's memory use after the invocation.
    pub mem_usage_bytes: u64,
    /// Whether this invocation started its instance.
    pub cold_start: bool,
    /// Cold start time in ms (0 when warm).
    pub init_ms: f64,
}

impl InvokeOutcome {
    /// The `ErrMsg` JSON, empty on success.
    pub fn err_msg(&self) -> String {
        match &self.result {
            Ok(_) => String::new(),
            Err(e) => e.to_json(),
        }
    }

    /// The log as `LogType=Tail` returns it: the last 4 KB.
    pub fn log_tail(&self) -> &str {
        crate::log::tail(&self.log, crate::log::TAIL_BYTES)
    }

    /// The `RetMsg`, empty on error.
    pub fn ret_msg(&self) -> &str {
        match &self.result {
            Ok(r) => r,
            Err(_) => "",
        }
    }
}

/// Engine trouble: the invocation did not run (the function's own failures are an [`InvokeOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Too many concurrent invocations (SCF 432, `ResourceLimit`-style); never queued.
    #[error("concurrency limit reached: {scope} allows {limit} concurrent invocations")]
    Throttled { scope: &'static str, limit: u32 },
    #[error("runtime `{0}` is not available on this installation")]
    RuntimeUnavailable(String),
    #[error("cannot start an instance of {key}: {source}")]
    Launch {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent invocations of one function (all its snapshots) when the function sets no limit.
    pub max_per_function: u32,
    /// Concurrent invocations of one account (`app_id`).
    pub max_per_account: u32,
    /// Live instances (busy and idle) before idle ones of other functions are evicted to make room.
    pub max_instances: u32,
    /// An idle instance is stopped after this long.
    pub idle_ttl: Duration,
    /// How often the reaper looks for idle instances.
    pub reap_interval: Duration,
    /// How often a running invocation checks the instance's memory and liveness.
    pub watch_interval: Duration,
    /// User output kept per invocation (the rest is read and dropped).
    pub max_log_bytes: usize,
    /// RetMsg bytes copied into the `Response` log line.
    pub max_log_retmsg_bytes: usize,
    /// Interpreter flags for Python (before `-c`). `-S` skips `site` (the host's `.pth` hooks can cost tens of ms);
    /// the bootstrap then puts the interpreter's own site-packages on `sys.path` itself.
    pub python_flags: Vec<String>,
    /// Interpreter flags for Node.js (before `-e`).
    pub node_flags: Vec<String>,
    /// A custom runtime's HTTP API: how long a posted body may take to arrive, and the slack beyond the
    /// function's time limit (or init timeout) that a connection may stay without a complete request head.
    pub runtime_api_timeout: Duration,
    pub runtimes: RuntimeConfig,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2);
        EngineConfig {
            max_per_function: (cores * 8).clamp(8, 128),
            max_per_account: (cores * 16).clamp(16, 256),
            max_instances: (cores * 16).clamp(16, 512),
            idle_ttl: Duration::from_secs(600),
            reap_interval: Duration::from_secs(5),
            watch_interval: Duration::from_millis(25),
            max_log_bytes: 1024 * 1024,
            max_log_retmsg_bytes: 1024,
            python_flags: vec!["-I".into(), "-S".into()],
            node_flags: vec![],
            runtime_api_timeout: Duration::from_secs(10),
            runtimes: RuntimeConfig::default(),
        }
    }
}
