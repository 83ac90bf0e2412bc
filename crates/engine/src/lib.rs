//! The execution plane: instances and pools, the runtime API, the built-in runtimes, invoke with limits, log
//! capture and metering. It writes no metadata and no statuses: callers hand it a [`FunctionSpec`] (an immutable
//! snapshot) and get an [`InvokeOutcome`] back.
//!
//! - [`Engine`]: per-snapshot pools of warm instances, per-function and per-account concurrency limits (beyond them
//!   an immediate [`EngineError::Throttled`], never a queue), idle reaping, [`Engine::retire`].
//! - [`Launcher`]: how instance processes are started; [`UnsandboxedLauncher`] runs plain child processes, the
//!   sandbox crate will provide the isolated one.
//! - Built-in runtimes (Python, Node.js) are bootstraps compiled into the binary that talk to the engine over the
//!   private frame protocol of [`protocol`]; `CustomRuntime` functions get SCF's HTTP runtime API
//!   ([`custom`](crate::custom)).
//! - [`log`]: SCF's log shape and the `LogType=Tail` cut.

mod custom;
mod engine;
mod instance;
pub mod launcher;
pub mod log;
mod pipe;
pub mod protocol;
pub mod runtimes;
mod types;

pub use engine::{Engine, EngineStats};
pub use launcher::{
    InstanceLayout, InstanceProcess, LaunchSpec, Launched, Launcher, UnsandboxedLauncher,
};
pub use runtimes::{Family, RuntimeConfig};
pub use types::{
    EngineConfig, EngineError, FunctionError, FunctionSpec, InvokeOutcome, InvokeRequest, status,
};
