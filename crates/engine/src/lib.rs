//! The execution plane: instances and pools, the runtime API, the built-in runtimes, invoke with limits, log
//! capture and metering. It writes no metadata and no statuses: callers hand it a [`FunctionSpec`] (an immutable
//! snapshot) and get an [`InvokeOutcome`] back.
//!
//! - [`Engine`]: per-snapshot pools of warm instances; per-function and per-account limits on concurrent
//!   invocations (beyond them an immediate [`EngineError::Throttled`], SCF 432, never a queue); a cap on live
//!   instances (the least recently used idle one makes room); idle reaping; [`Engine::retire`] for a snapshot that
//!   stops serving.
//! - [`Launcher`]: how instance processes are started (program, arguments, a complete environment, the working
//!   directory, descriptors at fixed numbers, the memory limit, an optional runtime API listener), killed and
//!   measured. [`UnsandboxedLauncher`] runs plain child processes in their own process group; the sandbox crate
//!   will provide the isolated one (code at `/var/user`, layers at `/opt`, see [`InstanceLayout`]).
//! - Built-in runtimes (`Python3.*`, `Nodejs*`): bootstraps compiled into the binary (`include_str!`) and passed to
//!   the interpreter with `-c` / `-e`, so nothing has to be written or mounted for them. They talk to the engine
//!   over the private frame protocol of [`protocol`] (two pipes at fds 3 and 4; stdout/stderr are the log).
//!   Interpreters come from [`RuntimeConfig`]: by default the host's `python3`, resolved through version-manager
//!   shims to its real path, started with `-I -S`, and the host's `node`.
//! - `CustomRuntime`: `scf_bootstrap` (or `bootstrap`) from the code root, served SCF's HTTP runtime API
//!   (`POST /runtime/init/ready`, `GET /runtime/invocation/next`, `POST /runtime/invocation/response|error`) on the
//!   listener the launcher provides, announced as `SCF_RUNTIME_API` / `SCF_RUNTIME_API_PORT`.
//! - [`log`]: SCF's log shape (`START`, `Init Report`, output, `Response`/`ERROR`, `END`, `Report`) and the
//!   `LogType=Tail` cut.
//!
//! Status codes of a failed invocation (in [`FunctionError::status_code`]): 430 the handler raised (or the module
//! raised while loading), 433 timeout (`Invoking task timed out after N seconds`; also an init that exceeds
//! `InitTimeout`), 434 memory limit, 437 handler not found, 439 the process exited. After 433, 434 and 439 the
//! instance is stopped; after 430 it keeps serving.

mod custom;
mod engine;
mod instance;
pub mod launcher;
pub mod log;
mod pipe;
pub mod protocol;
pub mod runtimes;
pub mod sandboxed;
mod types;
pub mod web;

pub use engine::{Engine, EngineStats};
pub use launcher::{
    InstanceLayout, InstanceProcess, LaunchSpec, Launched, Launcher, UnsandboxedLauncher,
};
pub use runtimes::{Family, RuntimeConfig};
pub use sandboxed::{EgressSettings, SandboxLauncher};
pub use types::{
    EngineConfig, EngineError, FunctionError, FunctionSpec, InvokeOutcome, InvokeRequest, status,
};
pub use web::{WebDone, WebReply, WebRequest};
