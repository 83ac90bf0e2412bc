//! Carrying a [`Plan`] out through a [`Syscalls`] implementation.
//!
//! The helper process runs [`apply`] once; it forks twice on the way, so one call ends in three processes,
//! each told by the returned [`Role`] what it is:
//!
//! 1. the **supervisor** (the helper itself, in the host PID namespace): unshares the mount, UTS, IPC, network
//!    and PID namespaces, creates the instance's link when the plan has one (see [`crate::net`]: a handle on
//!    the host's network namespace is taken before `unshare` and dropped right after; the PID namespace is
//!    then unshared after the link is made), forks the init, reports the init's pid to the parent and waits for it;
//! 2. the **init** (PID 1 of the new namespace): dies with the supervisor, joins the cgroup, enters a new
//!    cgroup namespace, sets the hostname, brings loopback up and opens the runtime listener, builds the root
//!    (private propagation, a tmpfs root, the plan's mounts, `pivot_root`, old root detached, root
//!    read-only), forks the program and reaps until it exits;
//! 3. the **program**: sets rlimits, drops the capability bounding set, drops to the unprivileged uid/gid
//!    (after `pivot_root`, so nothing of the host is reachable with privileges), sets `no_new_privs`, enters
//!    the working directory, installs the seccomp filter, keeps only its descriptors and `execve`s.

use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::cgroup::CgroupStep;
use crate::net::EgressPlan;
use crate::plan::{MountOp, Namespace, Plan, overlay_options};
use crate::sys::{Fork, Syscalls};

/// What the calling process is after [`apply`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The helper: wait for `init_pid` and exit with its status.
    Supervisor { init_pid: i32 },
    /// PID 1 of the instance: reap children until `program_pid` exits, then exit with its status.
    Init { program_pid: i32 },
    /// Only seen with a test double: the real `execve` does not return on success.
    Program,
}

/// The first descriptor after the caller's extra ones (which sit at 3, 4, …).
pub const FIRST_EXTRA_FD: i32 = 3;

fn inside(staging: &Path, path: &Path) -> PathBuf {
    staging.join(path.strip_prefix("/").unwrap_or(path))
}

/// Executes `plan` (see the module docs for the order).
pub fn apply(plan: &Plan, sys: &mut dyn Syscalls) -> Result<Role, SandboxError> {
    // 1. The helper: every namespace but the cgroup one, which is entered after joining the cgroup.
    let early: Vec<Namespace> = plan
        .namespaces
        .iter()
        .copied()
        .filter(|n| *n != Namespace::Cgroup)
        .collect();
    let host_netns = match &plan.egress {
        Some(_) => Some(sys.keep_host_netns()?),
        None => None,
    };
    if let (Some(egress), Some(host_netns)) = (&plan.egress, &host_netns) {
        // The link is made with `ip` processes, forked before the PID namespace: the first process forked
        // after it would become the namespace's init, and the namespace would end with it.
        let (pid, others): (Vec<Namespace>, Vec<Namespace>) =
            early.iter().partition(|n| **n == Namespace::Pid);
        sys.unshare(&others)?;
        set_up_link(egress, host_netns, sys)?;
        if !pid.is_empty() {
            sys.unshare(&pid)?;
        }
    } else {
        sys.unshare(&early)?;
    }
    if let Fork::Parent(init_pid) = sys.fork()? {
        sys.report_init(init_pid)?;
        sys.close_fds(FIRST_EXTRA_FD, false)?;
        return Ok(Role::Supervisor { init_pid });
    }

    // 2. The init, PID 1 of the new PID namespace.
    sys.set_parent_death_signal()?;
    for step in &plan.cgroup.steps {
        match step {
            CgroupStep::Mkdir(dir) => sys.mkdir(dir, 0o755)?,
            CgroupStep::Write {
                path,
                value,
                required,
            } => match sys.write_file(path, value.as_bytes()) {
                Err(_) if !required => {}
                r => r?,
            },
        }
    }
    for procs in &plan.cgroup.join {
        sys.write_file(procs, b"0")?;
    }
    if plan.namespaces.contains(&Namespace::Cgroup) {
        sys.unshare(&[Namespace::Cgroup])?;
    }
    sys.sethostname(&plan.hostname)?;
    if plan.loopback_up {
        sys.loopback_up()?;
    }
    if let Some(addr) = plan.runtime_listen {
        sys.open_listener(addr)?;
    }

    // The root filesystem. Nothing may propagate back to the host.
    sys.mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let staging = plan.staging.as_path();
    sys.mount(
        Some(Path::new("tmpfs")),
        staging,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&format!("size={},mode=755", plan.root_size_bytes)),
    )?;
    for op in &plan.mounts {
        apply_mount(staging, op, sys)?;
    }
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the new root.
    sys.chdir(staging)?;
    sys.pivot_root(Path::new("."), Path::new("."))?;
    sys.umount2(Path::new("."), libc::MNT_DETACH)?;
    sys.chdir(Path::new("/"))?;
    if plan.readonly_root {
        sys.mount(
            None,
            Path::new("/"),
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            None,
        )?;
    }
    if let Fork::Parent(program_pid) = sys.fork()? {
        // Only the program keeps the caller's descriptors and the channel to the parent.
        sys.close_fds(FIRST_EXTRA_FD, false)?;
        return Ok(Role::Init { program_pid });
    }

    // 3. The program.
    for limit in &plan.rlimits {
        sys.setrlimit(limit.resource, limit.soft, limit.hard)?;
    }
    sys.drop_capability_bounding_set()?;
    sys.setgroups(&[])?;
    sys.setgid(plan.gid)?;
    sys.setuid(plan.uid)?;
    if plan.no_new_privs {
        sys.set_no_new_privs()?;
    }
    sys.chdir(&plan.cwd)?;
    // Last: the filter forbids mounts and namespaces, and nothing after it needs them.
    for filter in &plan.seccomp {
        sys.install_seccomp(filter)?;
    }
    // The channel to the parent stays open (close-on-exec) to report an execve failure.
    let extra = i32::try_from(plan.extra_fds)
        .map_err(|_| SandboxError::InvalidSpec("too many extra descriptors".into()))?;
    sys.close_fds(FIRST_EXTRA_FD + extra, true)?;
    sys.execve(&plan.program, &plan.args, &plan.env)?;
    Ok(Role::Program)
}

/// Creates the instance's link (the first free slot), addresses both ends and routes through the host side;
/// then lets go of the host's namespace, before the init is forked.
fn set_up_link(
    egress: &EgressPlan,
    host_netns: &Path,
    sys: &mut dyn Syscalls,
) -> Result<(), SandboxError> {
    let mut link = None;
    for slot in egress.candidates() {
        let candidate = egress.pool.link(slot);
        if sys.ip(
            &egress.ip,
            &egress.create_args(&candidate, host_netns),
            false,
        )? {
            link = Some(candidate);
            break;
        }
    }
    let link = link.ok_or_else(|| {
        SandboxError::Setup(format!(
            "no free instance link in the egress pool {} after {} attempts",
            egress.pool, egress.attempts
        ))
    })?;
    for args in egress.host_args(&link) {
        if !sys.ip(&egress.ip, &args, true)? {
            return Err(SandboxError::Setup(format!(
                "{} is configured already",
                link.host_if
            )));
        }
    }
    sys.release_host_netns()?;
    for args in egress.instance_args(&link) {
        if !sys.ip(&egress.ip, &args, false)? {
            return Err(SandboxError::Setup(format!(
                "{} is configured already",
                crate::net::INSTANCE_LINK
            )));
        }
    }
    Ok(())
}

fn apply_mount(staging: &Path, op: &MountOp, sys: &mut dyn Syscalls) -> Result<(), SandboxError> {
    match op {
        MountOp::Dir { path, mode } => sys.mkdir(&inside(staging, path), *mode),
        MountOp::File {
            path,
            contents,
            mode,
        } => sys.create_file(&inside(staging, path), contents.as_bytes(), *mode),
        MountOp::Symlink { path, target } => sys.symlink(target, &inside(staging, path)),
        MountOp::Bind {
            source,
            path,
            device,
        } => {
            let target = inside(staging, path);
            sys.mount(Some(source), &target, None, libc::MS_BIND, None)?;
            // A bind inherits the source's flags; restrict it in a second step.
            let flags = if *device {
                libc::MS_NOSUID | libc::MS_NOEXEC
            } else {
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV
            };
            sys.mount(
                None,
                &target,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | flags,
                None,
            )
        }
        MountOp::Tmpfs {
            path,
            size_bytes,
            mode,
        } => sys.mount(
            Some(Path::new("tmpfs")),
            &inside(staging, path),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&format!("size={size_bytes},mode={mode:o}")),
        ),
        MountOp::Overlay { path, lowers } => sys.mount(
            Some(Path::new("overlay")),
            &inside(staging, path),
            Some("overlay"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            Some(&overlay_options(lowers)),
        ),
        MountOp::Proc { path } => sys.mount(
            Some(Path::new("proc")),
            &inside(staging, path),
            Some("proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ),
        MountOp::Readonly { path } => sys.mount(
            None,
            &inside(staging, path),
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ),
    }
}

#[cfg(test)]
mod tests;
