//! Starting an instance from a multi-threaded program, and supervising it.
//!
//! [`spawn`] re-executes a helper binary (normally the `stratus` binary itself, via `/proc/self/exe`, with
//! the hidden [`HELPER_ARG`]); the only code that runs between `fork` and `exec` in the caller is `dup2`
//! (async-signal-safe). The helper is a fresh single-threaded process: it reads the [`Plan`] from a pipe and
//! runs [`crate::apply`] with [`RealSyscalls`], which is where every namespace, mount and privilege change
//! happens. It reports back over a `SOCK_SEQPACKET` channel (see `channel.rs`); end of file on that channel
//! means the program was `exec`uted.
//!
//! Descriptors in the helper: the caller's extra descriptors at 3…3+n-1 (where the program finds them),
//! the plan pipe at 3+n, the channel at 4+n, the lifeline at 5+n. The lifeline is a pipe whose write end
//! only the [`Child`] holds: when it closes (the `Child` is dropped, or the whole server dies, even by
//! SIGKILL) the helper kills the instance. (A parent-death signal cannot do this: it fires when the *thread*
//! that forked exits, and runtime threads come and go.)

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::SandboxError;
use crate::apply::{Role, apply};
use crate::cgroup::CgroupPlan;
use crate::channel;
use crate::plan::Plan;
use crate::sys::RealSyscalls;
use crate::teardown::{self, Hook, Remains};

/// The hidden first argument that turns the `stratus` binary into the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox-exec";

/// How to start the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// The executable; `/proc/self/exe` (the running binary) by default.
    pub exe: PathBuf,
    /// The hidden argument it recognises; [`HELPER_ARG`] by default.
    pub arg: String,
    /// How long setting the instance up may take before the start fails.
    pub setup_timeout: Duration,
}

impl Default for Helper {
    fn default() -> Self {
        Helper {
            exe: PathBuf::from("/proc/self/exe"),
            arg: HELPER_ARG.to_string(),
            setup_timeout: Duration::from_secs(30),
        }
    }
}

/// The instance's standard streams (`None`: `/dev/null`) and the extra descriptors it gets at 3, 4, ….
#[derive(Debug, Default)]
pub struct SpawnIo {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub fds: Vec<OwnedFd>,
}

fn stdio(fd: Option<OwnedFd>) -> Stdio {
    fd.map_or_else(Stdio::null, Stdio::from)
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> SandboxError + '_ {
    move |e| SandboxError::sys("spawn", what, e)
}

/// A close-on-exec copy of `fd` numbered at least `min`.
fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a fresh descriptor we own.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: r is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_recv_timeout(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: tv is a valid timeval of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Starts the instance `plan` describes. Blocks until the program is `exec`uted (or setting it up failed):
/// call it from a blocking context (`spawn_blocking`) in async code. The staging directory is created when
/// missing.
pub fn spawn(plan: &Plan, io: SpawnIo, helper: &Helper) -> Result<Child, SandboxError> {
    if io.fds.len() != plan.extra_fds as usize {
        return Err(SandboxError::InvalidSpec(format!(
            "the plan expects {} extra descriptors, {} were given",
            plan.extra_fds,
            io.fds.len()
        )));
    }
    std::fs::create_dir_all(&plan.staging).map_err(io_err("creating the staging directory"))?;
    let bytes = plan.to_bytes()?;
    let (plan_read, plan_write) = pipe().map_err(io_err("plan pipe"))?;
    let (parent_end, helper_end) = channel::pair().map_err(io_err("channel"))?;

    // Move every descriptor the helper inherits above the numbers it will have there, then dup2 them into
    // place between fork and exec (dup2 is async-signal-safe and clears close-on-exec).
    let n = io.fds.len() as RawFd;
    let plan_fd = 3 + n;
    let channel_fd = 4 + n;
    let lifeline_fd = 5 + n;
    let (lifeline_read, lifeline_write) = pipe().map_err(io_err("lifeline pipe"))?;
    let mut sources = Vec::with_capacity(io.fds.len() + 2);
    for fd in io.fds.iter().map(AsFd::as_fd).chain([
        plan_read.as_fd(),
        helper_end.as_fd(),
        lifeline_read.as_fd(),
    ]) {
        sources.push(dup_above(fd, lifeline_fd + 1).map_err(io_err("descriptors"))?);
    }
    let moves: Vec<(RawFd, RawFd)> = sources
        .iter()
        .enumerate()
        .map(|(i, fd)| (fd.as_raw_fd(), 3 + i as RawFd))
        .collect();

    let mut command = Command::new(&helper.exe);
    command
        .arg(&helper.arg)
        .arg(plan_fd.to_string())
        .arg(channel_fd.to_string())
        .arg(lifeline_fd.to_string())
        .env_clear()
        .stdin(stdio(io.stdin))
        .stdout(stdio(io.stdout))
        .stderr(stdio(io.stderr));
    // SAFETY: the closure only calls dup2, which is async-signal-safe, on descriptors that stay open
    // until spawn returns (`sources`).
    unsafe {
        command.pre_exec(move || {
            for &(from, to) in &moves {
                if libc::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let helper_child = command.spawn().map_err(|source| SandboxError::Spawn {
        helper: helper.exe.display().to_string(),
        source,
    })?;
    drop(sources);
    drop(plan_read);
    drop(helper_end);
    drop(lifeline_read);
    drop(io.fds);

    let mut plan_write = std::fs::File::from(plan_write);
    let written = plan_write.write_all(&bytes);
    drop(plan_write);

    let reports = read_reports(&parent_end, helper.setup_timeout);
    // SAFETY: pidfd_open takes a pid and flags; the helper is our unreaped child, so the pid is its own.
    let helper_pidfd =
        unsafe { libc::syscall(libc::SYS_pidfd_open, helper_child.id(), 0) } as RawFd;
    let mut child = Child {
        // SAFETY: a fresh descriptor from pidfd_open.
        helper_pidfd: (helper_pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(helper_pidfd) }),
        helper: helper_child,
        init_pid: 0,
        init_pidfd: None,
        listener: None,
        netns: None,
        cgroup: plan.cgroup.clone(),
        status: None,
        cleaned: false,
        hooks: Hooks::default(),
        _lifeline: lifeline_write,
    };
    match reports {
        Ok(r) if r.init_pid > 0 => {
            child.init_pid = r.init_pid;
            child.init_pidfd = r.init_pidfd;
            child.listener = r.listener;
            child.netns = r.netns;
            Ok(child)
        }
        Ok(_) => {
            let status = child.wait().ok();
            let _ = child.cleanup();
            Err(SandboxError::Protocol(format!(
                "the helper ended before starting the instance ({}{})",
                status.map_or("unknown status".into(), |s| s.to_string()),
                written
                    .err()
                    .map_or(String::new(), |e| format!(", writing the plan: {e}"))
            )))
        }
        Err((e, r)) => {
            child.init_pid = r.init_pid;
            child.init_pidfd = r.init_pidfd;
            let _ = child.cleanup();
            Err(e)
        }
    }
}

#[derive(Debug, Default)]
struct Reports {
    init_pid: i32,
    init_pidfd: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    netns: Option<OwnedFd>,
}

/// Reads the helper's reports until end of file. On failure, also what was learnt so far (the init's pid,
/// so that the caller can kill it).
fn read_reports(channel: &OwnedFd, timeout: Duration) -> Result<Reports, (SandboxError, Reports)> {
    let mut reports = Reports::default();
    let deadline = Instant::now() + timeout;
    let mut error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let e = SandboxError::Setup(format!(
                "setting the instance up took longer than {timeout:?}"
            ));
            return Err((e, reports));
        }
        if let Err(e) = set_recv_timeout(channel.as_raw_fd(), left) {
            return Err((io_err("channel timeout")(e), reports));
        }
        let message = match channel::recv(channel.as_raw_fd()) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                let e = SandboxError::sys("spawn", "reading the helper's reports", e);
                return Err((e, reports));
            }
        };
        let mut fds = message.fds.into_iter();
        match message.kind {
            channel::MSG_INIT => {
                let Ok(bytes) = <[u8; 4]>::try_from(message.payload.as_slice()) else {
                    return Err((SandboxError::Protocol("bad init report".into()), reports));
                };
                reports.init_pid = i32::from_le_bytes(bytes);
                reports.init_pidfd = fds.next();
            }
            channel::MSG_LISTENER => {
                reports.listener = fds.next();
                reports.netns = fds.next();
            }
            channel::MSG_ERROR => {
                error = Some(String::from_utf8_lossy(&message.payload).into_owned());
            }
            other => {
                let e = SandboxError::Protocol(format!("unknown report {other:#x}"));
                return Err((e, reports));
            }
        }
    }
    match error {
        Some(e) => Err((SandboxError::Setup(e), reports)),
        None => Ok(reports),
    }
}

/// A running instance. Dropping it kills the instance at once and leaves the rest (reaping the helper,
/// removing the cgroup, the teardown hooks) to a background thread, so that a drop never blocks (see
/// `teardown.rs` and [`crate::flush_teardown`]); call [`Child::cleanup`] to do it all here and see errors.
#[derive(Debug)]
pub struct Child {
    helper: std::process::Child,
    helper_pidfd: Option<OwnedFd>,
    init_pid: i32,
    init_pidfd: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    netns: Option<OwnedFd>,
    cgroup: CgroupPlan,
    status: Option<ExitStatus>,
    cleaned: bool,
    hooks: Hooks,
    /// Closing it tells the helper to kill the instance.
    _lifeline: OwnedFd,
}

/// Code to run once the instance is completely gone ([`Child::on_teardown`]).
#[derive(Default)]
struct Hooks(Mutex<Vec<Hook>>);

impl Hooks {
    fn take(&self) -> Vec<Hook> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|h| h.len()).unwrap_or(0);
        write!(f, "Hooks({n})")
    }
}

impl Child {
    /// The helper's pid: the process [`Child::wait`] waits for, which exits with the program's status.
    pub fn pid(&self) -> u32 {
        self.helper.id()
    }

    /// A pidfd of the helper: it becomes readable when the instance has ended (then [`Child::try_wait`]
    /// returns the status without blocking). Async callers can wait on it (e.g. `tokio::io::unix::AsyncFd`).
    /// `None` on kernels without pidfds.
    pub fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.helper_pidfd.as_ref().map(AsFd::as_fd)
    }

    /// The instance's init (PID 1 inside) as the host sees it; killing it ends the whole instance.
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// The listening socket opened inside the instance's network namespace for `runtime_listen`.
    pub fn take_runtime_listener(&mut self) -> Option<TcpListener> {
        self.listener.take().map(TcpListener::from)
    }

    /// The instance's network namespace (only when the plan opened a runtime listener).
    pub fn netns(&self) -> Option<BorrowedFd<'_>> {
        self.netns.as_ref().map(AsFd::as_fd)
    }

    /// Connects to `127.0.0.1:port` inside the instance's network namespace (for a web function's server),
    /// from a short-lived thread that enters the namespace; the caller's threads stay where they are.
    pub fn connect(&self, port: u16) -> io::Result<TcpStream> {
        let netns = self
            .netns
            .as_ref()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the instance has no network namespace handle",
                )
            })?
            .as_raw_fd();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns on this thread only; the thread ends right after connecting.
                    if unsafe { libc::setns(netns, libc::CLONE_NEWNET) } < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the connecting thread panicked")))
        })
    }

    /// Kills the whole instance: SIGKILL to its init, which takes every process of the PID namespace with
    /// it; the helper then reaps the init and exits. Without a pidfd (kernels before 5.3) the helper is
    /// killed instead, and the init follows it (parent-death signal). Killing an instance that already
    /// ended is fine.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        if let Some(pidfd) = &self.init_pidfd {
            // SAFETY: pidfd_send_signal on a pidfd we own; a pidfd never refers to a recycled pid.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            // ESRCH: the init is gone already; the helper is about to exit.
            if r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
        }
        match self.helper.kill() {
            Err(e) if e.kind() != io::ErrorKind::InvalidInput => Err(e),
            _ => Ok(()),
        }
    }

    /// Sends SIGTERM to the instance's init, which forwards it to the program (which may handle it). Through the
    /// init's pidfd where the kernel has them, so a recycled pid is never signalled; `ESRCH` when it is gone.
    pub fn terminate(&mut self) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        // SAFETY: pidfd_send_signal on a pidfd we own, or kill(2) on the init, which stays unreaped (its pid its
        // own) until the helper reaps it and exits, which try_wait above saw had not happened.
        let r = unsafe {
            match &self.init_pidfd {
                Some(pidfd) => libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGTERM,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                ) as libc::c_int,
                None => libc::kill(self.init_pid, libc::SIGTERM),
            }
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits for the instance to end. A program killed by a signal shows as exit code 128 + signal (it is
    /// reported through the namespace's init); the helper itself killed shows as that signal.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.helper.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// [`Child::wait`] without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.helper.try_wait()?;
        }
        Ok(self.status)
    }

    /// The instance's cgroup (for its files and counters).
    pub fn cgroup(&self) -> &CgroupPlan {
        &self.cgroup
    }

    /// Current memory use of the instance (every process in it, page cache and tmpfs included), in bytes.
    pub fn memory_usage(&self) -> Result<u64, SandboxError> {
        self.cgroup.memory_usage()
    }

    /// Highest memory use so far, where the kernel keeps it.
    pub fn memory_peak(&self) -> Result<Option<u64>, SandboxError> {
        self.cgroup.memory_peak()
    }

    /// Whether the kernel OOM-killed a process of the instance (it went over its memory limit). Read it
    /// before [`Child::cleanup`], which removes the counters.
    pub fn oom_killed(&self) -> Result<bool, SandboxError> {
        Ok(self.cgroup.oom_kills()? > 0)
    }

    /// Runs `hook` once the instance is completely gone: its helper reaped and its cgroup removed, by
    /// [`Child::cleanup`] or by the background teardown after a drop. A resource the instance must hold while
    /// any of its processes may live (its uid, say) is released here. Never runs if the cgroup cannot be
    /// removed (something of the instance may still live).
    pub fn on_teardown(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.hooks
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// Kills the instance if it still runs, reaps it and removes its cgroup. Blocks (the wait, and up to 2 s
    /// of retries while the last tasks leave the cgroup); dropping the child does the same in the background.
    pub fn cleanup(&mut self) -> Result<(), SandboxError> {
        if self.cleaned {
            return Ok(());
        }
        self.kill()
            .map_err(|e| SandboxError::sys("kill", format!("instance {}", self.init_pid), e))?;
        self.wait()
            .map_err(|e| SandboxError::sys("wait", format!("instance {}", self.init_pid), e))?;
        // The last tasks may take a moment to leave the cgroup after the init is reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.cgroup.remove() {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        }
        self.cleaned = true;
        for hook in self.hooks.take() {
            hook();
        }
        Ok(())
    }
}

impl Drop for Child {
    /// Kills the instance (a signal: no waiting) and hands the rest of the teardown to the background thread.
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let _ = self.kill();
        teardown::hand_over(Remains {
            helper_pid: self.helper.id() as i32,
            helper_pidfd: self.helper_pidfd.take(),
            reaped: self.status.is_some(),
            cgroup: self.cgroup.clone(),
            hooks: self.hooks.take(),
        });
    }
}

/// The helper's entry point: the binary calls it, before anything else (in particular before starting any
/// thread or async runtime), when its first argument is [`HELPER_ARG`], with the arguments after it.
///
/// ```no_run
/// let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
/// if args.get(1).is_some_and(|a| a == sandbox::HELPER_ARG) {
///     sandbox::helper_main(&args[2..]);
/// }
/// ```
pub fn helper_main(args: &[OsString]) -> ! {
    let code = run_helper(args);
    std::process::exit(code)
}

fn run_helper(args: &[OsString]) -> i32 {
    let fd = |i: usize| {
        args.get(i)
            .and_then(|a| a.to_str())
            .and_then(|s| s.parse::<RawFd>().ok())
            .filter(|fd| *fd > 2)
    };
    let (Some(plan_fd), Some(channel_fd), Some(lifeline_fd)) = (fd(0), fd(1), fd(2)) else {
        eprintln!(
            "sandbox helper: expected `{HELPER_ARG} <plan fd> <channel fd> <lifeline fd>`; this mode is internal"
        );
        return 127;
    };
    // SAFETY: fcntl on descriptors the spawning process placed for us.
    unsafe {
        libc::fcntl(plan_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(channel_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(lifeline_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::umask(0o022);
    }
    let mut sys = RealSyscalls::new(channel_fd).with_lifeline(lifeline_fd);
    match std::fs::read_dir("/proc/self/task").map(Iterator::count) {
        Ok(1) => {}
        Ok(n) => {
            sys.report_error(&format!(
                "the sandbox helper must be single-threaded but has {n} threads: call helper_main first thing in main"
            ));
            return 127;
        }
        Err(e) => {
            sys.report_error(&format!("reading /proc/self/task: {e}"));
            return 127;
        }
    }
    let mut bytes = Vec::new();
    // SAFETY: the spawning process put the plan pipe's read end at plan_fd; we take it over.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(plan_fd) };
    if let Err(e) = pipe.read_to_end(&mut bytes) {
        sys.report_error(&format!("reading the plan: {e}"));
        return 127;
    }
    drop(pipe);
    let plan = match Plan::from_bytes(&bytes) {
        Ok(plan) => plan,
        Err(e) => {
            sys.report_error(&e.to_string());
            return 127;
        }
    };
    match apply(&plan, &mut sys) {
        Ok(Role::Supervisor { init_pid }) => supervise(init_pid, lifeline_fd),
        Ok(Role::Init { program_pid }) => reap_until(program_pid),
        Ok(Role::Program) => 127,
        Err(e) => {
            sys.report_error(&e.to_string());
            127
        }
    }
}

fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        127
    }
}

/// The helper: wait for the init and end the same way; kill it first if the lifeline closes.
fn supervise(init_pid: i32, lifeline: RawFd) -> i32 {
    // SAFETY: pidfd_open takes a pid and flags; the init is our unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init_pid, 0) } as RawFd;
    if pidfd >= 0 {
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: lifeline,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if fds[0].revents != 0 {
                break; // the init exited
            }
            if fds[1].revents != 0 {
                // The parent let go of the instance (or died): end it. The init is unreaped, so its pid is
                // still its own.
                // SAFETY: kill with a pid and a signal.
                unsafe { libc::kill(init_pid, libc::SIGKILL) };
                break;
            }
        }
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(init_pid, &mut status, 0) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return 127;
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            // SAFETY: restore the default action and re-raise, so our parent sees the same signal.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
            }
        }
        return exit_code(status);
    }
}

/// The program's pid (in the instance's namespace), for the init's SIGTERM handler.
static PROGRAM_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The init's SIGTERM handler: hands the signal to the program ([`Child::terminate`]).
extern "C" fn forward_sigterm(_: libc::c_int) {
    let pid = PROGRAM_PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; the program is the init's unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// PID 1 of the instance: reap every orphan until the program exits, then exit with its status (the kernel
/// then kills whatever is left in the namespace). SIGTERM, which the kernel would not deliver to a namespace's
/// init without a handler, is forwarded to the program.
fn reap_until(program_pid: i32) -> i32 {
    PROGRAM_PID.store(program_pid, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: installing a handler that only calls async-signal-safe functions; this process is single-threaded.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = forward_sigterm as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid for any child.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == program_pid {
            return exit_code(status);
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 127;
        }
    }
}

/// Signal/exit helpers for callers that want to tell an exit code from a signal.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}
