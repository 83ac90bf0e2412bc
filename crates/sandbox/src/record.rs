//! A [`Syscalls`] double that records every call, for unit tests of [`crate::apply`] without privileges.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::plan::{Namespace, Resource};
use crate::seccomp::BpfInsn;
use crate::sys::{Fork, Syscalls};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Unshare(Vec<Namespace>),
    Fork,
    ParentDeathSignal,
    ReportInit(i32),
    Mkdir(PathBuf, u32),
    WriteFile(PathBuf, String),
    CreateFile(PathBuf, String, u32),
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    Umount2(PathBuf, i32),
    PivotRoot(PathBuf, PathBuf),
    Chdir(PathBuf),
    Sethostname(String),
    LoopbackUp,
    OpenListener(SocketAddrV4),
    Setrlimit(Resource, u64, u64),
    DropCapabilityBoundingSet,
    Setgroups(Vec<u32>),
    Setgid(u32),
    Setuid(u32),
    NoNewPrivs,
    /// A seccomp filter of this many instructions.
    Seccomp(usize),
    CloseFds {
        first: i32,
        keep_channel: bool,
    },
    KeepHostNetns,
    ReleaseHostNetns,
    Ip {
        args: Vec<String>,
        in_host: bool,
    },
    Execve {
        program: PathBuf,
        args: Vec<String>,
        env: Vec<String>,
    },
}

/// Records calls; `fork` answers from `forks` (then [`Fork::Child`]); a call `fail` matches is recorded
/// and fails with `EPERM`.
#[derive(Default)]
pub struct RecordingSyscalls {
    pub calls: Vec<Call>,
    pub forks: VecDeque<Fork>,
    #[allow(clippy::type_complexity)]
    pub fail: Option<Box<dyn Fn(&Call) -> bool>>,
    /// `ip` commands that create one of these names answer "File exists".
    pub taken: Vec<String>,
}

impl std::fmt::Debug for RecordingSyscalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSyscalls")
            .field("calls", &self.calls)
            .field("forks", &self.forks)
            .finish_non_exhaustive()
    }
}

impl RecordingSyscalls {
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&mut self, call: Call) -> Result<(), SandboxError> {
        let fails = self.fail.as_ref().is_some_and(|f| f(&call));
        self.calls.push(call);
        if fails {
            Err(SandboxError::sys(
                "recorded",
                format!("{:?}", self.calls.last()),
                io::Error::from_raw_os_error(libc::EPERM),
            ))
        } else {
            Ok(())
        }
    }

    /// The index of the first call matching `pred`.
    pub fn position(&self, pred: impl Fn(&Call) -> bool) -> Option<usize> {
        self.calls.iter().position(pred)
    }
}

impl Syscalls for RecordingSyscalls {
    fn unshare(&mut self, namespaces: &[Namespace]) -> Result<(), SandboxError> {
        self.record(Call::Unshare(namespaces.to_vec()))
    }
    fn fork(&mut self) -> Result<Fork, SandboxError> {
        self.record(Call::Fork)?;
        Ok(self.forks.pop_front().unwrap_or(Fork::Child))
    }
    fn set_parent_death_signal(&mut self) -> Result<(), SandboxError> {
        self.record(Call::ParentDeathSignal)
    }
    fn report_init(&mut self, pid: i32) -> Result<(), SandboxError> {
        self.record(Call::ReportInit(pid))
    }
    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<(), SandboxError> {
        self.record(Call::Mkdir(path.into(), mode))
    }
    fn write_file(&mut self, path: &Path, data: &[u8]) -> Result<(), SandboxError> {
        self.record(Call::WriteFile(
            path.into(),
            String::from_utf8_lossy(data).into(),
        ))
    }
    fn create_file(&mut self, path: &Path, data: &[u8], mode: u32) -> Result<(), SandboxError> {
        self.record(Call::CreateFile(
            path.into(),
            String::from_utf8_lossy(data).into(),
            mode,
        ))
    }
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), SandboxError> {
        self.record(Call::Symlink {
            target: target.into(),
            link: link.into(),
        })
    }
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> Result<(), SandboxError> {
        self.record(Call::Mount {
            source: source.map(Into::into),
            target: target.into(),
            fstype: fstype.map(Into::into),
            flags,
            data: data.map(Into::into),
        })
    }
    fn umount2(&mut self, target: &Path, flags: i32) -> Result<(), SandboxError> {
        self.record(Call::Umount2(target.into(), flags))
    }
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), SandboxError> {
        self.record(Call::PivotRoot(new_root.into(), put_old.into()))
    }
    fn chdir(&mut self, path: &Path) -> Result<(), SandboxError> {
        self.record(Call::Chdir(path.into()))
    }
    fn sethostname(&mut self, name: &str) -> Result<(), SandboxError> {
        self.record(Call::Sethostname(name.into()))
    }
    fn loopback_up(&mut self) -> Result<(), SandboxError> {
        self.record(Call::LoopbackUp)
    }
    fn open_listener(&mut self, addr: SocketAddrV4) -> Result<(), SandboxError> {
        self.record(Call::OpenListener(addr))
    }
    fn setrlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> Result<(), SandboxError> {
        self.record(Call::Setrlimit(resource, soft, hard))
    }
    fn drop_capability_bounding_set(&mut self) -> Result<(), SandboxError> {
        self.record(Call::DropCapabilityBoundingSet)
    }
    fn setgroups(&mut self, groups: &[u32]) -> Result<(), SandboxError> {
        self.record(Call::Setgroups(groups.to_vec()))
    }
    fn setgid(&mut self, gid: u32) -> Result<(), SandboxError> {
        self.record(Call::Setgid(gid))
    }
    fn setuid(&mut self, uid: u32) -> Result<(), SandboxError> {
        self.record(Call::Setuid(uid))
    }
    fn set_no_new_privs(&mut self) -> Result<(), SandboxError> {
        self.record(Call::NoNewPrivs)
    }
    fn install_seccomp(&mut self, program: &[BpfInsn]) -> Result<(), SandboxError> {
        self.record(Call::Seccomp(program.len()))
    }
    fn close_fds(&mut self, first: i32, keep_channel: bool) -> Result<(), SandboxError> {
        self.record(Call::CloseFds {
            first,
            keep_channel,
        })
    }
    fn keep_host_netns(&mut self) -> Result<PathBuf, SandboxError> {
        self.record(Call::KeepHostNetns)?;
        Ok(PathBuf::from("/proc/7/fd/9"))
    }
    fn release_host_netns(&mut self) -> Result<(), SandboxError> {
        self.record(Call::ReleaseHostNetns)
    }
    fn ip(&mut self, _ip: &Path, args: &[String], in_host: bool) -> Result<bool, SandboxError> {
        let creates_taken = args.first().map(String::as_str) == Some("link")
            && args.iter().any(|a| self.taken.contains(a));
        self.record(Call::Ip {
            args: args.to_vec(),
            in_host,
        })?;
        Ok(!creates_taken)
    }
    fn execve(
        &mut self,
        program: &Path,
        args: &[String],
        env: &[String],
    ) -> Result<(), SandboxError> {
        self.record(Call::Execve {
            program: program.into(),
            args: args.to_vec(),
            env: env.to_vec(),
        })
    }
}
