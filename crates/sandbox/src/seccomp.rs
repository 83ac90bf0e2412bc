//! The instances' seccomp filter: an allow-list, compiled to classic BPF by `seccompiler`.
//!
//! # Rationale
//!
//! Instances run untrusted code of many tenants on one kernel, so the filter names what the code may call
//! and refuses the rest: a system call the kernel adds tomorrow is refused until someone decides to allow
//! it. The list follows the spirit of Docker's default profile, narrowed to what Python 3.11, Node 20 (V8:
//! `mmap`/`mprotect`/`pkey_*`/`membarrier`; libuv: threads, epoll, eventfd, futex, `statx`, inotify), a
//! custom runtime's shell and curl, and ordinary user code need:
//!
//! - files, directories, extended attributes, memory mappings, threads and processes, signals, clocks and
//!   timers, epoll/poll/select, eventfd/timerfd/signalfd/inotify, futexes, pidfds, System V and POSIX IPC
//!   (the instance has its own IPC namespace), resource limits (the kernel keeps the hard limits), scheduling
//!   (no capability, so no real-time), `landlock`/`seccomp`/`mseal` (they only restrict the caller);
//! - sockets of the families a function uses: `AF_UNIX`, `AF_INET`, `AF_INET6`, and `AF_NETLINK` with
//!   `NETLINK_ROUTE` only (glibc's `getifaddrs` and `getaddrinfo`); the many other families (`AF_ALG`,
//!   `AF_VSOCK`, `AF_TIPC`, `AF_BLUETOOTH`, …) are kernel code no function needs;
//! - `clone` without any `CLONE_NEW*` flag (threads and forks, never a namespace), `personality` with the
//!   values Docker allows (none disables address-space randomisation), `socketpair` for `AF_UNIX`.
//!
//! Everything else answers `EPERM`, among it what an instance must never reach: namespaces (`unshare`,
//! `setns`), mounts (old and new API), `pivot_root`/`chroot`, keyrings, `bpf`, `perf_event_open`,
//! `userfaultfd`, `ptrace` and the calls that read or change another process (`process_vm_*`, `kcmp`,
//! `pidfd_getfd`, `process_madvise`), kernel modules and `kexec`, `open_by_handle_at`, NUMA policies, clock
//! and host settings (`settimeofday`, `sethostname`, `swapon`, `reboot`, `acct`, `syslog`, quotas), `iopl`,
//! `ioperm`, `modify_ldt`, and the x32 ABI (its system call numbers have bit 30 set and are in no list).
//!
//! `clone3` and io_uring answer `ENOSYS` instead: glibc falls back to `clone` and libuv to plain system calls
//! only on `ENOSYS` (`clone3` passes its flags in memory, which a filter cannot inspect, so it cannot be
//! allowed without allowing namespaces). A filter has one action for what it matches, so these come as a
//! second, small filter installed after the allow-list: the kernel runs every filter and, among equally
//! strong answers (`EPERM` from the first, `ENOSYS` from the second), keeps the one of the filter installed
//! last. A foreign architecture kills the process (`seccompiler`'s architecture check).
//!
//! The filters cost little: since Linux 5.11 the kernel remembers, per system call number, that every filter
//! allows it whatever the arguments, and then skips them; only `clone`, `socket`, `socketpair` and
//! `personality` (the calls with argument rules) and refused calls run the programs.
//!
//! `ioctl` is not restricted (terminals, `FIONBIO`, `FIONREAD`; the instance has no devices but `/dev/null`
//! and friends and no controlling terminal), nor is `prctl` (what it changes is the caller's own state or
//! needs a capability the instance lacks).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// One classic BPF instruction (`struct sock_filter`); serialised as `[code, jt, jf, k]` to keep plans small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u16, u8, u8, u32)", into = "(u16, u8, u8, u32)")]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl From<(u16, u8, u8, u32)> for BpfInsn {
    fn from((code, jt, jf, k): (u16, u8, u8, u32)) -> Self {
        BpfInsn { code, jt, jf, k }
    }
}

impl From<BpfInsn> for (u16, u8, u8, u32) {
    fn from(i: BpfInsn) -> Self {
        (i.code, i.jt, i.jf, i.k)
    }
}

/// The `SECCOMP_RET_*` answers the filters give.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

/// `libc`'s system call numbers and those it does not know (yet). From 424 on every architecture shares
/// one numbering; the aarch64 ones below 424 are from the kernel's generic table.
#[allow(non_upper_case_globals)]
mod nr {
    pub use libc::*;
    #[cfg(target_arch = "aarch64")]
    pub const SYS_renameat: c_long = 38;
    #[cfg(target_arch = "aarch64")]
    pub const SYS_sync_file_range: c_long = 84;
    #[cfg(target_arch = "aarch64")]
    pub const SYS_getrlimit: c_long = 163;
    #[cfg(target_arch = "aarch64")]
    pub const SYS_setrlimit: c_long = 164;
    pub const SYS_fchmodat2: c_long = 452;
    pub const SYS_cachestat: c_long = 451;
    pub const SYS_map_shadow_stack: c_long = 453;
    pub const SYS_futex_wake: c_long = 454;
    pub const SYS_futex_wait: c_long = 455;
    pub const SYS_futex_requeue: c_long = 456;
    pub const SYS_setxattrat: c_long = 463;
    pub const SYS_getxattrat: c_long = 464;
    pub const SYS_listxattrat: c_long = 465;
    pub const SYS_removexattrat: c_long = 466;
}

/// `(name, number)` pairs.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => { &[$((stringify!($name), nr::$name)),*] };
}

/// A system call, by name for messages and tests.
pub type Syscall = (&'static str, libc::c_long);

/// Allowed with any arguments, on every architecture.
pub const ALLOWED: &[Syscall] = syscalls![
    // Files and descriptors.
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_lseek,
    SYS_close,
    SYS_close_range,
    SYS_dup,
    SYS_dup3,
    SYS_fcntl,
    SYS_flock,
    SYS_ioctl,
    SYS_fsync,
    SYS_fdatasync,
    SYS_sync,
    SYS_syncfs,
    SYS_sync_file_range,
    SYS_fallocate,
    SYS_ftruncate,
    SYS_truncate,
    SYS_fadvise64,
    SYS_readahead,
    SYS_sendfile,
    SYS_splice,
    SYS_tee,
    SYS_vmsplice,
    SYS_copy_file_range,
    SYS_cachestat,
    SYS_pipe2,
    SYS_memfd_create,
    // Paths.
    SYS_openat,
    SYS_openat2,
    SYS_newfstatat,
    SYS_fstat,
    SYS_statx,
    SYS_statfs,
    SYS_fstatfs,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_getdents64,
    SYS_getcwd,
    SYS_chdir,
    SYS_fchdir,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    SYS_linkat,
    SYS_symlinkat,
    SYS_readlinkat,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchmodat2,
    SYS_fchown,
    SYS_fchownat,
    SYS_umask,
    SYS_utimensat,
    SYS_getxattr,
    SYS_lgetxattr,
    SYS_fgetxattr,
    SYS_getxattrat,
    SYS_setxattr,
    SYS_lsetxattr,
    SYS_fsetxattr,
    SYS_setxattrat,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_flistxattr,
    SYS_listxattrat,
    SYS_removexattr,
    SYS_lremovexattr,
    SYS_fremovexattr,
    SYS_removexattrat,
    SYS_inotify_init1,
    SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    // Memory.
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    SYS_msync,
    SYS_mincore,
    SYS_mlock,
    SYS_mlock2,
    SYS_munlock,
    SYS_mlockall,
    SYS_munlockall,
    SYS_remap_file_pages,
    SYS_membarrier,
    SYS_pkey_alloc,
    SYS_pkey_free,
    SYS_pkey_mprotect,
    SYS_mseal,
    SYS_map_shadow_stack,
    // Processes and threads (clone: see the rules).
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_wait4,
    SYS_waitid,
    SYS_kill,
    SYS_tkill,
    SYS_tgkill,
    SYS_rt_sigqueueinfo,
    SYS_rt_tgsigqueueinfo,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_getpid,
    SYS_getppid,
    SYS_gettid,
    SYS_getpgid,
    SYS_setpgid,
    SYS_getsid,
    SYS_setsid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_getresuid,
    SYS_getresgid,
    SYS_getgroups,
    SYS_setuid,
    SYS_setgid,
    SYS_setreuid,
    SYS_setregid,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setgroups,
    SYS_setfsuid,
    SYS_setfsgid,
    SYS_capget,
    SYS_capset,
    SYS_prctl,
    SYS_set_tid_address,
    SYS_set_robust_list,
    SYS_get_robust_list,
    SYS_rseq,
    SYS_getrlimit,
    SYS_setrlimit,
    SYS_prlimit64,
    SYS_getrusage,
    SYS_getpriority,
    SYS_setpriority,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_sched_setaffinity,
    SYS_sched_getparam,
    SYS_sched_setparam,
    SYS_sched_getscheduler,
    SYS_sched_setscheduler,
    SYS_sched_getattr,
    SYS_sched_setattr,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_rr_get_interval,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_getcpu,
    SYS_uname,
    SYS_sysinfo,
    SYS_times,
    SYS_getrandom,
    SYS_seccomp,
    SYS_landlock_create_ruleset,
    SYS_landlock_add_rule,
    SYS_landlock_restrict_self,
    // Signals.
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_rt_sigpending,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_sigaltstack,
    SYS_signalfd4,
    SYS_restart_syscall,
    // Time.
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_gettimeofday,
    SYS_getitimer,
    SYS_setitimer,
    SYS_timer_create,
    SYS_timer_settime,
    SYS_timer_gettime,
    SYS_timer_getoverrun,
    SYS_timer_delete,
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
    // Waiting.
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_ppoll,
    SYS_pselect6,
    SYS_futex,
    SYS_futex_waitv,
    SYS_futex_wake,
    SYS_futex_wait,
    SYS_futex_requeue,
    SYS_io_setup,
    SYS_io_destroy,
    SYS_io_submit,
    SYS_io_cancel,
    SYS_io_getevents,
    // Sockets (socket, socketpair: see the rules).
    SYS_bind,
    SYS_listen,
    SYS_accept,
    SYS_accept4,
    SYS_connect,
    SYS_getsockname,
    SYS_getpeername,
    SYS_getsockopt,
    SYS_setsockopt,
    SYS_shutdown,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_sendmmsg,
    SYS_recvmmsg,
    // System V and POSIX IPC.
    SYS_shmget,
    SYS_shmat,
    SYS_shmdt,
    SYS_shmctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_semctl,
    SYS_msgget,
    SYS_msgsnd,
    SYS_msgrcv,
    SYS_msgctl,
    SYS_mq_open,
    SYS_mq_unlink,
    SYS_mq_timedsend,
    SYS_mq_timedreceive,
    SYS_mq_notify,
    SYS_mq_getsetattr,
];

/// Allowed with any arguments: x86_64's older calls, which the generic table of newer architectures has
/// replaced by the `*at`, `dup3`, `pipe2`, `ppoll`, `epoll_pwait` forms.
#[cfg(target_arch = "x86_64")]
pub const ALLOWED_ARCH: &[Syscall] = syscalls![
    SYS_open,
    SYS_creat,
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_getdents,
    SYS_mkdir,
    SYS_rmdir,
    SYS_mknod,
    SYS_unlink,
    SYS_rename,
    SYS_link,
    SYS_symlink,
    SYS_readlink,
    SYS_chmod,
    SYS_chown,
    SYS_lchown,
    SYS_utime,
    SYS_utimes,
    SYS_futimesat,
    SYS_dup2,
    SYS_pipe,
    SYS_poll,
    SYS_select,
    SYS_epoll_create,
    SYS_epoll_wait,
    SYS_eventfd,
    SYS_signalfd,
    SYS_inotify_init,
    SYS_pause,
    SYS_alarm,
    SYS_time,
    SYS_fork,
    SYS_vfork,
    SYS_getpgrp,
    SYS_arch_prctl,
    SYS_set_thread_area,
    SYS_get_thread_area,
];

#[cfg(not(target_arch = "x86_64"))]
pub const ALLOWED_ARCH: &[Syscall] = &[];

/// Answered with `ENOSYS` so that callers fall back to older interfaces.
pub const UNAVAILABLE: &[Syscall] = syscalls![
    SYS_clone3,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
];

/// Refused with `EPERM` (by not being allowed; listed for the tests and for readers).
pub const REFUSED: &[Syscall] = syscalls![
    SYS_unshare,
    SYS_setns,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_move_mount,
    SYS_open_tree,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_mount_setattr,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_kcmp,
    SYS_pidfd_getfd,
    SYS_process_madvise,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_fanotify_init,
    SYS_fanotify_mark,
    SYS_mbind,
    SYS_set_mempolicy,
    SYS_get_mempolicy,
    SYS_migrate_pages,
    SYS_move_pages,
    SYS_memfd_secret,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_clock_adjtime,
    SYS_adjtimex,
    SYS_sethostname,
    SYS_setdomainname,
    SYS_swapon,
    SYS_swapoff,
    SYS_reboot,
    SYS_acct,
    SYS_syslog,
    SYS_quotactl,
    SYS_quotactl_fd,
    SYS_vhangup,
];

/// Refused on x86_64 only (the calls do not exist elsewhere).
#[cfg(target_arch = "x86_64")]
pub const REFUSED_ARCH: &[Syscall] = syscalls![
    SYS_iopl,
    SYS_ioperm,
    SYS_modify_ldt,
    SYS_uselib,
    SYS_ustat,
    SYS_sysfs,
];

#[cfg(not(target_arch = "x86_64"))]
pub const REFUSED_ARCH: &[Syscall] = &[];

/// Every namespace a `clone` could create.
pub const CLONE_NEW_MASK: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// The socket families `socket` may create (`AF_NETLINK` has its own rule).
pub const SOCKET_FAMILIES: &[libc::c_int] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// The `personality` values allowed (Docker's): `PER_LINUX`, `PER_LINUX32`, `UNAME26`, both, and the query.
pub const PERSONALITIES: &[u64] = &[0, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff];

#[cfg(target_arch = "x86_64")]
const TARGET: Option<TargetArch> = Some(TargetArch::x86_64);
#[cfg(target_arch = "aarch64")]
const TARGET: Option<TargetArch> = Some(TargetArch::aarch64);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TARGET: Option<TargetArch> = None;

/// The filters to install, in order; empty (no filter) on architectures other than x86_64 and aarch64,
/// whose system call numbers this module does not know. Compiled once per process.
pub fn instance_filters() -> Result<Vec<Vec<BpfInsn>>, SandboxError> {
    static FILTERS: OnceLock<Result<Vec<Vec<BpfInsn>>, String>> = OnceLock::new();
    FILTERS
        .get_or_init(|| compile().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| SandboxError::InvalidSpec(format!("the seccomp filter does not compile: {e}")))
}

fn compile() -> Result<Vec<Vec<BpfInsn>>, seccompiler::BackendError> {
    let Some(arch) = TARGET else {
        return Ok(Vec::new());
    };
    let allow_list = SeccompFilter::new(
        allowed_rules()?,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )?;
    let fallbacks = SeccompFilter::new(
        UNAVAILABLE.iter().map(|(_, n)| (*n, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    [allow_list, fallbacks]
        .into_iter()
        .map(|f| {
            let program = BpfProgram::try_from(f)?;
            Ok(program
                .iter()
                .map(|i| BpfInsn {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect())
        })
        .collect()
}

/// `args[index]` (its low 32 bits) compared with `value`.
fn arg(
    index: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
}

/// One rule per value of `args[0]`.
fn arg0_in(values: &[u64]) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    values
        .iter()
        .map(|v| SeccompRule::new(vec![arg(0, SeccompCmpOp::Eq, *v)?]))
        .collect()
}

fn allowed_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .map(|(_, n)| (*n, Vec::new()))
        .collect();
    // Threads and forks, never a namespace.
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![arg(
            0,
            SeccompCmpOp::MaskedEq(CLONE_NEW_MASK),
            0,
        )?])?],
    );
    let mut socket = arg0_in(
        &SOCKET_FAMILIES
            .iter()
            .map(|f| *f as u64)
            .collect::<Vec<_>>(),
    )?;
    socket.push(SeccompRule::new(vec![
        arg(0, SeccompCmpOp::Eq, libc::AF_NETLINK as u64)?,
        arg(2, SeccompCmpOp::Eq, libc::NETLINK_ROUTE as u64)?,
    ])?);
    rules.insert(libc::SYS_socket, socket);
    rules.insert(libc::SYS_socketpair, arg0_in(&[libc::AF_UNIX as u64])?);
    rules.insert(libc::SYS_personality, arg0_in(PERSONALITIES)?);
    Ok(rules)
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests;
