//! Linux isolation for Stratus instances: namespaces, mounts, cgroups v1/v2, rlimits, privilege drop, kill
//! and reap. This crate knows nothing of functions, databases or HTTP.
//!
//! # Pieces
//!
//! - [`Plan::build`] turns an [`InstanceSpec`] into a [`Plan`]: pure data that unit tests inspect, checked
//!   on the way (no uid 0, canonical absolute paths, no mount source that is or contains a `forbidden` path,
//!   loopback-only runtime address).
//! - [`apply`] carries a plan out through the [`Syscalls`] trait: [`RealSyscalls`] in the helper process,
//!   [`RecordingSyscalls`] in unit tests, which assert the order of the calls (see `apply.rs` for it).
//! - [`spawn`] starts an instance from a multi-threaded program by re-executing a helper binary (the
//!   `stratus` binary, which must call [`helper_main`] first thing when its first argument is
//!   [`HELPER_ARG`]); [`Child`] kills, waits, reads the cgroup's memory and OOM counters and cleans up.
//!   Dropping a [`Child`] kills the instance at once and leaves reaping and cgroup removal to one background
//!   thread, so a drop never blocks an async runtime; [`flush_teardown`] waits for it at shutdown.
//! - [`check_privileges`] tells whether this host can sandbox at all.
//! - [`seccomp`] is the system call allow-list installed right before `execve`.
//!
//! # Decisions
//!
//! - **Root filesystem.** A 1 MiB tmpfs mounted over [`DEFAULT_STAGING_DIR`] inside the instance's own
//!   mount namespace (after making every mount private), filled with read-only, nosuid, nodev binds of the
//!   host's system paths ([`host_system_paths`]: `/usr`, the merged-usr links, the few `/etc` entries TLS and
//!   the dynamic linker need), a generated `/etc` (`passwd`, `group`, `hosts`, `hostname`, `resolv.conf`,
//!   `nsswitch.conf`), the code at `/var/user`, layers at `/opt`, a 512 MiB tmpfs `/tmp`, the instance's
//!   own `/proc`, a `/dev` with `null zero full random urandom tty`, `fd`/`std*` links and a 64 MiB
//!   `/dev/shm`; then `pivot_root`, the old root detached, and the root tmpfs made read-only. Nothing else
//!   of the host exists inside: no `/sys`, `/home`, `/root`, `/run`, `/var` (but `/var/user`).
//! - **Layers.** One layer: a plain read-only bind. Several: a read-only overlayfs with only lower
//!   directories, given to the kernel in reverse binding order so that the last bound layer is on top
//!   (overlayfs is in every kernel since 3.18; [`check_privileges`] insists on it). The alternative, copying
//!   the layers into one directory once per snapshot, is for the caller to do if it ever must: pass the
//!   merged directory as the single layer.
//! - **Identity.** The program runs as the spec's uid/gid (never 0), no supplementary groups, an empty
//!   capability bounding set, `no_new_privs`, and the seccomp filter. `RLIMIT_NPROC` counts per uid across
//!   the host, so the per-instance process limit is really enforced by the cgroup's `pids.max`; give
//!   instances distinct uids (a range) if their `RLIMIT_NPROC` budgets must not be shared.
//! - **Processes.** The helper (in the host PID namespace) unshares the namespaces and forks the init (PID 1
//!   of the new PID namespace, a small reaper that dies with the helper); the init forks the program.
//!   Killing the init (through a pidfd, so never a recycled pid) ends every process of the instance. The
//!   program's exit status comes back through the helper; a program killed by a signal shows as 128 +
//!   signal. A lifeline pipe makes the helper kill the instance when the [`Child`] is dropped or the whole
//!   server dies.
//! - **Network.** A new network namespace with loopback, brought up inside; without egress the instance can reach
//!   nothing outside itself, the host's loopback (Stratus's API, the database) included. The runtime API
//!   listener (`127.0.0.1:9001` in the instance) is opened by the init before the program starts and
//!   handed to the parent over `SCM_RIGHTS` ([`Child::take_runtime_listener`]), together with the network
//!   namespace, which [`Child::connect`] enters from a short-lived thread (for web functions' port 9000).
//!   Outbound network (`PublicNetStatus=ENABLE`, [`InstanceSpec::egress`]): a veth pair per instance, `eth0`
//!   inside and `stn<slot>` on the host, a /30 of the egress pool, NAT and a filter table on the host that
//!   keeps instances away from the host itself, each other, link-local and private ranges (see [`net`]).
//! - **Cgroups.** v2 when `/sys/fs/cgroup/cgroup.controllers` exists (`memory.max`, `memory.swap.max=0`,
//!   `memory.oom.group=1`, `pids.max` under `<root>/stratus/<id>`, controllers enabled top-down), else v1
//!   (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`, `swappiness=0` under `memory/stratus/<id>`,
//!   `pids.max` under `pids/stratus/<id>`). The init joins before anything else, so every process of the
//!   instance, and its `/tmp`, is accounted. OOM kills are read from `memory.events` / `memory.oom_control`.
//!   Instance ids must be unique among running instances (they name the cgroup).

mod apply;
mod cgroup;
mod channel;
mod error;
pub mod net;
mod plan;
mod privileges;
mod record;
pub mod seccomp;
mod spawn;
mod sys;
mod teardown;

pub use apply::{FIRST_EXTRA_FD, Role, apply};
pub use cgroup::{CgroupConfig, CgroupPlan, CgroupStep, CgroupVersion, DEFAULT_CGROUP_ROOT};
pub use error::SandboxError;
pub use net::{EgressPlan, EgressRules, EgressSpec, Ipv4Pool};
pub use plan::{
    CODE_PATH, DEFAULT_GID, DEFAULT_MAX_OPEN_FILES, DEFAULT_MAX_PROCESSES, DEFAULT_STAGING_DIR,
    DEFAULT_TMP_SIZE, DEFAULT_UID, InstanceSpec, LAYERS_PATH, MountOp, Namespace, NodeKind, Plan,
    Resource, Rlimit, SYSTEM_CANDIDATES, SystemPath, host_system_paths, overlay_options,
};
pub use privileges::{check_privileges, check_privileges_with};
pub use record::{Call, RecordingSyscalls};
pub use spawn::{Child, HELPER_ARG, Helper, SpawnIo, describe, helper_main, spawn};
pub use sys::{Fork, RealSyscalls, Syscalls};
pub use teardown::{flush as flush_teardown, pending as pending_teardowns};
