//! Starting instance processes: the [`Launcher`] seam between the engine and the sandbox.
//!
//! The engine decides *what* runs (program, arguments, environment, descriptors); a launcher decides *how*: the
//! sandbox crate will create namespaces, mounts and cgroups, while [`UnsandboxedLauncher`] runs a plain child process
//! (for development and tests, without root).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Where an instance sees its code and layers. The engine builds `USER_CODE_ROOT`, `PYTHONPATH`, `NODE_PATH` and
/// the working directory from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLayout {
    /// The code root as the instance sees it (SCF: `/var/user`).
    pub code_root: PathBuf,
    /// Layer roots as the instance sees them, highest precedence first (SCF: just `/opt`, where later layers
    /// overwrote earlier ones).
    pub layer_roots: Vec<PathBuf>,
}

/// Everything needed to start one instance process.
#[derive(Debug)]
pub struct LaunchSpec {
    /// The program, as a path valid inside the instance.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment (the launcher starts from an empty one). When `runtime_api` is set the launcher
    /// adds `SCF_RUNTIME_API` and `SCF_RUNTIME_API_PORT`.
    pub env: Vec<(String, String)>,
    /// Working directory as seen inside the instance (the code root).
    pub cwd: PathBuf,
    /// Becomes both stdout and stderr.
    pub output: OwnedFd,
    /// Extra descriptors: `(fd number in the instance, descriptor)`.
    pub fds: Vec<(RawFd, OwnedFd)>,
    /// The unpacked code on the host (read-only).
    pub code_dir: PathBuf,
    /// The unpacked layers on the host, in binding order (a later layer overrides an earlier one).
    pub layer_dirs: Vec<PathBuf>,
    /// The function's memory limit.
    pub memory_limit_bytes: u64,
    /// Whether the instance needs an HTTP runtime API listener (custom runtimes).
    pub runtime_api: bool,
    /// Outbound network (`PublicNetStatus=ENABLE`); without it, loopback only.
    pub public_net: bool,
}

/// A started instance.
pub struct Launched {
    pub process: Box<dyn InstanceProcess>,
    /// The runtime API listener, when [`LaunchSpec::runtime_api`] was set. The engine serves it.
    pub runtime_api: Option<std::net::TcpListener>,
}

/// One running instance process tree.
pub trait InstanceProcess: Send + Sync {
    /// The main process id as the host sees it.
    fn pid(&self) -> u32;
    /// Kills the whole instance (idempotent, never blocks). Dropping the process kills it too, also without
    /// blocking: what remains to be torn down (reaping, the cgroup) happens in the background.
    fn kill(&mut self);
    /// Sends SIGTERM to the instance's main process (TerminateAsyncEvent with `GraceShutdown`): the function may
    /// handle it; [`InstanceProcess::kill`] follows after a grace period. Whether the signal was delivered.
    fn terminate(&mut self) -> bool;
    /// `Some(description)` once the main process has exited.
    fn exit_status(&mut self) -> Option<String>;
    /// Current memory use of the instance in bytes (resident set, or the cgroup's usage).
    fn memory_usage(&self) -> Option<u64>;
    /// Whether the instance has gone over its memory limit (or was killed for it). The engine asks while an
    /// invocation runs and when the instance dies, and answers 434.
    fn over_memory_limit(&mut self) -> bool;
    /// Whether the instance has its own network namespace (`/proc/<pid>/ns/net`), where a web function's server
    /// listens; without one it shares the host's network.
    fn network_namespace(&self) -> bool {
        false
    }
}

/// Starts instance processes.
pub trait Launcher: Send + Sync {
    /// How instances started by this launcher see code and layers.
    fn layout(&self, code_dir: &Path, layer_dirs: &[PathBuf]) -> InstanceLayout;
    /// Starts an instance. Called from within a tokio runtime; should return quickly (no waiting on the instance).
    fn launch(&self, spec: LaunchSpec) -> io::Result<Launched>;
    /// Waits, at most `timeout`, until every instance stopped so far is completely torn down (a launcher may
    /// finish that in the background after [`InstanceProcess::kill`] and the drop). Blocking: for shutdown.
    /// Returns whether nothing is left.
    fn flush_teardown(&self, _timeout: std::time::Duration) -> bool {
        true
    }
}

/// Runs instances as plain child processes of the server: a cleared environment, the code directory as working
/// directory, code and layers at their real host paths, its own process group (killed as a whole). No isolation;
/// the memory limit is enforced by the engine polling the resident set.
#[derive(Debug, Default, Clone)]
pub struct UnsandboxedLauncher;

impl Launcher for UnsandboxedLauncher {
    fn layout(&self, code_dir: &Path, layer_dirs: &[PathBuf]) -> InstanceLayout {
        InstanceLayout {
            code_root: code_dir.to_path_buf(),
            layer_roots: layer_dirs.iter().rev().cloned().collect(),
        }
    }

    fn launch(&self, spec: LaunchSpec) -> io::Result<Launched> {
        let mut env = spec.env;
        let listener = if spec.runtime_api {
            let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            let port = l.local_addr()?.port();
            env.retain(|(k, _)| k != "SCF_RUNTIME_API" && k != "SCF_RUNTIME_API_PORT");
            env.push(("SCF_RUNTIME_API".into(), "127.0.0.1".into()));
            env.push(("SCF_RUNTIME_API_PORT".into(), port.to_string()));
            Some(l)
        } else {
            None
        };
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(env)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(spec.output.try_clone()?))
            .stderr(Stdio::from(spec.output))
            .process_group(0)
            .kill_on_drop(true);
        let moves: Vec<(RawFd, RawFd)> = spec
            .fds
            .iter()
            .map(|(target, fd)| (*target, fd.as_raw_fd()))
            .collect();
        // SAFETY: the closure only calls async-signal-safe functions (fcntl, dup2) on descriptors that stay open
        // until after spawn returns (`spec.fds` lives across the call).
        unsafe {
            cmd.pre_exec(move || {
                // First move every source above the targets, so that no dup2 clobbers a source still needed.
                let mut high = [0 as RawFd; 16];
                for (i, (_, src)) in moves.iter().enumerate().take(high.len()) {
                    let fd = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 64);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    high[i] = fd;
                }
                for (i, (target, _)) in moves.iter().enumerate().take(high.len()) {
                    // dup2 clears close-on-exec on the target.
                    if libc::dup2(high[i], *target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(spec.fds);
        let pid = child.id().unwrap_or(0);
        let statm = File::open(format!("/proc/{pid}/statm")).ok();
        Ok(Launched {
            process: Box::new(UnsandboxedProcess {
                child,
                pid,
                statm,
                limit: spec.memory_limit_bytes,
                over_limit: false,
                killed: false,
            }),
            runtime_api: listener,
        })
    }
}

struct UnsandboxedProcess {
    child: tokio::process::Child,
    pid: u32,
    statm: Option<File>,
    limit: u64,
    over_limit: bool,
    killed: bool,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

impl InstanceProcess for UnsandboxedProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        if self.pid > 0 {
            // SAFETY: signalling the process group this launcher created for the instance.
            unsafe {
                libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }

    fn terminate(&mut self) -> bool {
        if self.killed || self.pid == 0 || self.exit_status().is_some() {
            return false;
        }
        // SAFETY: signalling the process group this launcher created for the instance (the child is not reaped
        // yet, so its pid and group are still its own).
        unsafe { libc::kill(-(self.pid as libc::pid_t), libc::SIGTERM) == 0 }
    }

    fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    fn memory_usage(&self) -> Option<u64> {
        let f = self.statm.as_ref()?;
        let mut buf = [0u8; 128];
        let n = f.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let resident: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some(resident * page_size())
    }

    fn over_memory_limit(&mut self) -> bool {
        if !self.over_limit
            && self.limit > 0
            && let Some(used) = self.memory_usage()
        {
            self.over_limit = used > self.limit;
        }
        self.over_limit
    }
}

impl Drop for UnsandboxedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
