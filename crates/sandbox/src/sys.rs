//! Every privileged operation the sandbox performs, behind one trait: [`RealSyscalls`] makes the calls,
//! [`crate::RecordingSyscalls`] records them for unit tests that run without root.

use std::ffi::CString;
use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::channel;
use crate::plan::{Namespace, Resource};
use crate::seccomp::BpfInsn;

/// What `fork` returned in the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Parent(i32),
    Child,
}

/// The system calls [`crate::apply`] makes, in terms of the plan. Paths are as the calling process sees them.
pub trait Syscalls {
    fn unshare(&mut self, namespaces: &[Namespace]) -> Result<(), SandboxError>;
    fn fork(&mut self) -> Result<Fork, SandboxError>;
    /// Die (SIGKILL) when the parent dies.
    fn set_parent_death_signal(&mut self) -> Result<(), SandboxError>;
    /// Tell the spawning process the init's pid (and hand it a pidfd where the kernel has them).
    fn report_init(&mut self, pid: i32) -> Result<(), SandboxError>;
    /// Create a directory; an existing one is fine.
    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<(), SandboxError>;
    /// Write to an existing file (a cgroup control file).
    fn write_file(&mut self, path: &Path, data: &[u8]) -> Result<(), SandboxError>;
    /// Create (or truncate) a file with these contents.
    fn create_file(&mut self, path: &Path, data: &[u8], mode: u32) -> Result<(), SandboxError>;
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), SandboxError>;
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> Result<(), SandboxError>;
    fn umount2(&mut self, target: &Path, flags: i32) -> Result<(), SandboxError>;
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), SandboxError>;
    fn chdir(&mut self, path: &Path) -> Result<(), SandboxError>;
    fn sethostname(&mut self, name: &str) -> Result<(), SandboxError>;
    /// Bring the network namespace's loopback interface up.
    fn loopback_up(&mut self) -> Result<(), SandboxError>;
    /// Open a listening TCP socket on `addr` in the current network namespace and hand it (with the network
    /// namespace) to the spawning process.
    fn open_listener(&mut self, addr: SocketAddrV4) -> Result<(), SandboxError>;
    fn setrlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> Result<(), SandboxError>;
    /// Empty the capability bounding set (nothing can ever be gained back, even by a file capability).
    fn drop_capability_bounding_set(&mut self) -> Result<(), SandboxError>;
    fn setgroups(&mut self, groups: &[u32]) -> Result<(), SandboxError>;
    fn setgid(&mut self, gid: u32) -> Result<(), SandboxError>;
    fn setuid(&mut self, uid: u32) -> Result<(), SandboxError>;
    fn set_no_new_privs(&mut self) -> Result<(), SandboxError>;
    /// Install a seccomp filter (requires `no_new_privs` without privileges).
    fn install_seccomp(&mut self, program: &[BpfInsn]) -> Result<(), SandboxError>;
    /// Close every descriptor from `first` on, except the channel to the parent when `keep_channel`
    /// (it is close-on-exec).
    fn close_fds(&mut self, first: i32, keep_channel: bool) -> Result<(), SandboxError>;
    /// Keep a handle on the current network namespace (the host's, before `unshare`) and return a path other
    /// processes can open it by.
    fn keep_host_netns(&mut self) -> Result<PathBuf, SandboxError>;
    /// Let go of the handle [`Syscalls::keep_host_netns`] took (before anything of the instance runs).
    fn release_host_netns(&mut self) -> Result<(), SandboxError>;
    /// Run `ip` with `args` in the current network namespace, or in the host's when `in_host`. `Ok(false)`:
    /// the command failed because a name it creates exists already ("File exists").
    fn ip(&mut self, ip: &Path, args: &[String], in_host: bool) -> Result<bool, SandboxError>;
    /// Replace the process image; returns only on failure.
    fn execve(
        &mut self,
        program: &Path,
        args: &[String],
        env: &[String],
    ) -> Result<(), SandboxError>;
}

/// The real thing, used by the helper process. Single-threaded use only.
#[derive(Debug)]
pub struct RealSyscalls {
    channel: RawFd,
    lifeline: Option<RawFd>,
    /// The host's network namespace ([`Syscalls::keep_host_netns`]) and, once left, the instance's.
    host_netns: Option<OwnedFd>,
    own_netns: Option<OwnedFd>,
}

fn cpath(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        SandboxError::sys(
            "path",
            path.display().to_string(),
            io::Error::from(io::ErrorKind::InvalidInput),
        )
    })
}

fn cstr(s: &str) -> Result<CString, SandboxError> {
    CString::new(s)
        .map_err(|_| SandboxError::sys("string", s, io::Error::from(io::ErrorKind::InvalidInput)))
}

/// `Ok` when the libc call returned 0 or more, else the errno with context.
fn check(
    r: libc::c_long,
    op: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<libc::c_long, SandboxError> {
    if r < 0 {
        Err(SandboxError::last_os(op, detail()))
    } else {
        Ok(r)
    }
}

fn namespace_flags(namespaces: &[Namespace]) -> libc::c_int {
    namespaces.iter().fold(0, |acc, n| acc | n.flag())
}

impl RealSyscalls {
    /// `channel` is the helper's end of the channel to the spawning process.
    pub fn new(channel: RawFd) -> Self {
        RealSyscalls {
            channel,
            lifeline: None,
            host_netns: None,
            own_netns: None,
        }
    }

    /// The read end of the pipe whose write end the spawning process holds: it is spared by `close_fds`
    /// (it is close-on-exec, so the program never has it) and lets the supervisor notice the parent's end.
    pub fn with_lifeline(mut self, fd: RawFd) -> Self {
        self.lifeline = Some(fd);
        self
    }

    /// Send an error text to the spawning process (best effort).
    pub fn report_error(&mut self, text: &str) {
        let _ = channel::send(self.channel, channel::MSG_ERROR, text.as_bytes(), &[]);
    }

    fn open_netns() -> Result<OwnedFd, SandboxError> {
        std::fs::File::open("/proc/self/ns/net")
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::sys("open", "/proc/self/ns/net", e))
    }

    fn setns(fd: &OwnedFd, which: &str) -> Result<(), SandboxError> {
        // SAFETY: setns with a namespace descriptor we own; the helper is single-threaded.
        let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        check(r.into(), "setns", || which.to_string()).map(drop)
    }

    fn run_ip(ip: &Path, args: &[String]) -> Result<bool, SandboxError> {
        let what = || format!("{} {}", ip.display(), args.join(" "));
        let out = std::process::Command::new(ip)
            .args(args)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| SandboxError::sys("spawn", what(), e))?;
        if out.status.success() {
            return Ok(true);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("File exists") {
            return Ok(false);
        }
        Err(SandboxError::Setup(format!("{}: {}", what(), err.trim())))
    }

    fn close_range(first: u32, last: u32) {
        // SAFETY: close_range only closes descriptors.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if r < 0 {
            // Kernels before 5.9: close one by one up to a sane bound.
            for fd in first..=last.min(65_535) {
                // SAFETY: closing a descriptor we may not own is harmless here (the helper owns all).
                unsafe { libc::close(fd as RawFd) };
            }
        }
    }
}

impl Syscalls for RealSyscalls {
    fn unshare(&mut self, namespaces: &[Namespace]) -> Result<(), SandboxError> {
        // SAFETY: unshare takes flags only.
        let r = unsafe { libc::unshare(namespace_flags(namespaces)) };
        check(r.into(), "unshare", || format!("{namespaces:?}")).map(drop)
    }

    fn fork(&mut self) -> Result<Fork, SandboxError> {
        // SAFETY: the helper is single-threaded (checked at start), so the child may run anything.
        let pid = unsafe { libc::fork() };
        check(pid.into(), "fork", String::new)?;
        Ok(if pid == 0 {
            Fork::Child
        } else {
            Fork::Parent(pid)
        })
    }

    fn set_parent_death_signal(&mut self) -> Result<(), SandboxError> {
        // SAFETY: prctl with integer arguments.
        let r = unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        check(r.into(), "prctl", || "PR_SET_PDEATHSIG".into()).map(drop)
    }

    fn report_init(&mut self, pid: i32) -> Result<(), SandboxError> {
        // SAFETY: pidfd_open takes a pid and flags. The init cannot have been reaped yet: we are its parent.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        let fds: &[RawFd] = if pidfd >= 0 { &[pidfd] } else { &[] };
        let r = channel::send(self.channel, channel::MSG_INIT, &pid.to_le_bytes(), fds);
        if pidfd >= 0 {
            // SAFETY: we own the pidfd.
            unsafe { libc::close(pidfd) };
        }
        r.map_err(|e| SandboxError::sys("report", "init pid", e))
    }

    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<(), SandboxError> {
        let p = cpath(path)?;
        // SAFETY: p is a valid C string.
        let r = unsafe { libc::mkdir(p.as_ptr(), mode) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(SandboxError::sys("mkdir", path.display().to_string(), e));
            }
        }
        Ok(())
    }

    fn write_file(&mut self, path: &Path, data: &[u8]) -> Result<(), SandboxError> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| SandboxError::sys("open", path.display().to_string(), e))?;
        f.write_all(data)
            .map_err(|e| SandboxError::sys("write", path.display().to_string(), e))
    }

    fn create_file(&mut self, path: &Path, data: &[u8], mode: u32) -> Result<(), SandboxError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| SandboxError::sys("create", path.display().to_string(), e))?;
        f.write_all(data)
            .map_err(|e| SandboxError::sys("write", path.display().to_string(), e))
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), SandboxError> {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| SandboxError::sys("symlink", link.display().to_string(), e))
    }

    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> Result<(), SandboxError> {
        let src = source.map(cpath).transpose()?;
        let tgt = cpath(target)?;
        let fst = fstype.map(cstr).transpose()?;
        let dat = data.map(cstr).transpose()?;
        let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: every pointer is a valid C string or null, as mount(2) allows.
        let r = unsafe {
            libc::mount(
                ptr(&src),
                tgt.as_ptr(),
                ptr(&fst),
                flags as libc::c_ulong,
                ptr(&dat).cast(),
            )
        };
        check(r.into(), "mount", || {
            format!(
                "{} on {} ({}, flags {flags:#x}, {})",
                source.map_or("none".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("-"),
                data.unwrap_or("")
            )
        })
        .map(drop)
    }

    fn umount2(&mut self, target: &Path, flags: i32) -> Result<(), SandboxError> {
        let t = cpath(target)?;
        // SAFETY: t is a valid C string.
        let r = unsafe { libc::umount2(t.as_ptr(), flags) };
        check(r.into(), "umount2", || target.display().to_string()).map(drop)
    }

    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), SandboxError> {
        let n = cpath(new_root)?;
        let o = cpath(put_old)?;
        // SAFETY: both are valid C strings.
        let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
        check(r, "pivot_root", || new_root.display().to_string()).map(drop)
    }

    fn chdir(&mut self, path: &Path) -> Result<(), SandboxError> {
        let p = cpath(path)?;
        // SAFETY: p is a valid C string.
        let r = unsafe { libc::chdir(p.as_ptr()) };
        check(r.into(), "chdir", || path.display().to_string()).map(drop)
    }

    fn sethostname(&mut self, name: &str) -> Result<(), SandboxError> {
        // SAFETY: name points at name.len() bytes.
        let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
        check(r.into(), "sethostname", || name.into()).map(drop)
    }

    fn loopback_up(&mut self) -> Result<(), SandboxError> {
        // SAFETY: plain socket creation.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        check(sock.into(), "socket", || "loopback".into())?;
        // SAFETY: ifreq is plain data.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: req is a valid ifreq naming "lo"; the union's flags member is what these ioctls use.
        let result = unsafe {
            if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
                Err(SandboxError::last_os("ioctl", "SIOCGIFFLAGS lo"))
            } else {
                req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
                    Err(SandboxError::last_os("ioctl", "SIOCSIFFLAGS lo"))
                } else {
                    Ok(())
                }
            }
        };
        // SAFETY: we own sock.
        unsafe { libc::close(sock) };
        result
    }

    fn open_listener(&mut self, addr: SocketAddrV4) -> Result<(), SandboxError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| SandboxError::sys("listen", addr.to_string(), e))?;
        let netns = std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| SandboxError::sys("open", "/proc/self/ns/net", e))?;
        use std::os::fd::AsRawFd;
        channel::send(
            self.channel,
            channel::MSG_LISTENER,
            &[],
            &[listener.as_raw_fd(), netns.as_raw_fd()],
        )
        .map_err(|e| SandboxError::sys("report", "listener", e))
    }

    fn setrlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> Result<(), SandboxError> {
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: current is a valid rlimit.
        unsafe { libc::getrlimit(resource.to_libc(), &mut current) };
        // Never try to raise a hard limit (that needs CAP_SYS_RESOURCE, which hosts may withhold).
        let hard = hard.min(current.rlim_max);
        let limit = libc::rlimit {
            rlim_cur: soft.min(hard),
            rlim_max: hard,
        };
        // SAFETY: limit is a valid rlimit.
        let r = unsafe { libc::setrlimit(resource.to_libc(), &limit) };
        check(r.into(), "setrlimit", || {
            format!("{resource:?} {soft}/{hard}")
        })
        .map(drop)
    }

    fn drop_capability_bounding_set(&mut self) -> Result<(), SandboxError> {
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINVAL) {
                    break; // past the last capability this kernel knows
                }
                return Err(SandboxError::sys(
                    "prctl",
                    format!("PR_CAPBSET_DROP {cap}"),
                    e,
                ));
            }
        }
        Ok(())
    }

    fn setgroups(&mut self, groups: &[u32]) -> Result<(), SandboxError> {
        // SAFETY: groups points at groups.len() gids.
        let r = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
        check(r.into(), "setgroups", || format!("{groups:?}")).map(drop)
    }

    fn setgid(&mut self, gid: u32) -> Result<(), SandboxError> {
        // SAFETY: setresgid takes ids only.
        let r = unsafe { libc::setresgid(gid, gid, gid) };
        check(r.into(), "setgid", || gid.to_string()).map(drop)
    }

    fn setuid(&mut self, uid: u32) -> Result<(), SandboxError> {
        // SAFETY: setresuid takes ids only.
        let r = unsafe { libc::setresuid(uid, uid, uid) };
        check(r.into(), "setuid", || uid.to_string())?;
        // SAFETY: getters.
        if unsafe { libc::geteuid() } != uid || unsafe { libc::getuid() } != uid {
            return Err(SandboxError::sys(
                "setuid",
                uid.to_string(),
                io::Error::other("uid did not change"),
            ));
        }
        Ok(())
    }

    fn set_no_new_privs(&mut self) -> Result<(), SandboxError> {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        check(r.into(), "prctl", || "PR_SET_NO_NEW_PRIVS".into()).map(drop)
    }

    fn install_seccomp(&mut self, program: &[BpfInsn]) -> Result<(), SandboxError> {
        let filter: Vec<libc::sock_filter> = program
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let len = u16::try_from(filter.len())
            .map_err(|_| SandboxError::InvalidSpec("seccomp filter too long".into()))?;
        let prog = libc::sock_fprog {
            len,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: prog points at `len` valid instructions that outlive the call.
        let r = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &raw const prog as libc::c_ulong,
                0,
                0,
            )
        };
        check(r.into(), "prctl", || "PR_SET_SECCOMP".into()).map(drop)
    }

    fn close_fds(&mut self, first: i32, keep_channel: bool) -> Result<(), SandboxError> {
        let first = first.max(0) as u32;
        let mut keep: Vec<u32> = self.lifeline.iter().map(|fd| *fd as u32).collect();
        if keep_channel {
            keep.push(self.channel as u32);
        }
        keep.retain(|fd| *fd >= first);
        keep.sort_unstable();
        let mut from = first;
        for fd in keep {
            if fd > from {
                Self::close_range(from, fd - 1);
            }
            from = fd + 1;
        }
        Self::close_range(from, u32::MAX);
        Ok(())
    }

    fn keep_host_netns(&mut self) -> Result<PathBuf, SandboxError> {
        let fd = Self::open_netns()?;
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            fd.as_raw_fd()
        ));
        self.host_netns = Some(fd);
        Ok(path)
    }

    fn release_host_netns(&mut self) -> Result<(), SandboxError> {
        self.host_netns = None;
        self.own_netns = None;
        Ok(())
    }

    fn ip(&mut self, ip: &Path, args: &[String], in_host: bool) -> Result<bool, SandboxError> {
        if !in_host {
            return Self::run_ip(ip, args);
        }
        let host = self.host_netns.as_ref().ok_or_else(|| {
            SandboxError::Setup("the host's network namespace was not kept".into())
        })?;
        if self.own_netns.is_none() {
            self.own_netns = Some(Self::open_netns()?);
        }
        Self::setns(host, "the host's network namespace")?;
        let result = Self::run_ip(ip, args);
        if let Some(own) = &self.own_netns {
            // Failing to return would leave the instance in the host's namespace: never go on then.
            Self::setns(own, "the instance's network namespace")?;
        }
        result
    }

    fn execve(
        &mut self,
        program: &Path,
        args: &[String],
        env: &[String],
    ) -> Result<(), SandboxError> {
        let prog = cpath(program)?;
        let mut argv = vec![prog.clone()];
        for a in args {
            argv.push(cstr(a)?);
        }
        let envp = env.iter().map(|e| cstr(e)).collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        // SAFETY: null-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(prog.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
        Err(SandboxError::last_os(
            "execve",
            program.display().to_string(),
        ))
    }
}
