//! Linux isolation for Stratus instances: namespaces, mounts, cgroups v1/v2, rlimits, privilege drop, kill
//! and reap. This crate knows nothing of functions, databases or HTTP.
//!
//! - [`Plan::build`] turns an [`InstanceSpec`] into a [`Plan`], pure data that unit tests inspect.
//! - [`apply`] carries a plan out through the [`Syscalls`] trait: [`RealSyscalls`] in the helper process,
//!   [`RecordingSyscalls`] in unit tests, which assert the order of the calls.

mod apply;
mod cgroup;
mod channel;
mod error;
mod plan;
mod privileges;
mod record;
pub mod seccomp;
mod spawn;
mod sys;

pub use apply::{FIRST_EXTRA_FD, Role, apply};
pub use cgroup::{CgroupConfig, CgroupPlan, CgroupStep, CgroupVersion, DEFAULT_CGROUP_ROOT};
pub use error::SandboxError;
pub use plan::{
    CODE_PATH, DEFAULT_GID, DEFAULT_MAX_OPEN_FILES, DEFAULT_MAX_PROCESSES, DEFAULT_STAGING_DIR,
    DEFAULT_TMP_SIZE, DEFAULT_UID, InstanceSpec, LAYERS_PATH, MountOp, Namespace, NodeKind, Plan,
    Resource, Rlimit, SYSTEM_CANDIDATES, SystemPath, host_system_paths, overlay_options,
};
pub use privileges::{check_privileges, check_privileges_with};
pub use record::{Call, RecordingSyscalls};
pub use spawn::{Child, HELPER_ARG, Helper, SpawnIo, describe, helper_main, spawn};
pub use sys::{Fork, RealSyscalls, Syscalls};
