//! The production [`Launcher`]: every instance in its own namespaces, cgroup and root filesystem (the `sandbox`
//! crate). Code is at `/var/user` (read-only), layers merged at `/opt`, a private `/tmp`, the runtime API on
//! `127.0.0.1:9001` inside the instance's own network namespace, an unprivileged uid per instance.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use sandbox::{Child, Helper, InstanceSpec, NodeKind, Plan, SpawnIo, SystemPath};

use crate::launcher::{InstanceLayout, InstanceProcess, LaunchSpec, Launched, Launcher};

/// The runtime API address inside every instance (SCF's usual one).
pub const RUNTIME_API_PORT: u16 = 9001;

/// Starts instances in the sandbox.
pub struct SandboxLauncher {
    /// Host paths no instance may see (Stratus's data directory).
    forbidden: Vec<PathBuf>,
    helper: Helper,
    /// Each instance runs as its own uid from this range, so per-uid limits (processes) are per instance.
    uid_base: u32,
    uid_count: u32,
    next: AtomicU32,
}

impl SandboxLauncher {
    /// `forbidden`: host paths instances must never see (the data directory, configuration with secrets).
    pub fn new(forbidden: Vec<PathBuf>) -> SandboxLauncher {
        SandboxLauncher {
            forbidden,
            helper: Helper::default(),
            uid_base: 200_000,
            uid_count: 50_000,
            next: AtomicU32::new(0),
        }
    }

    /// Whether this host can sandbox (root or enough capabilities, namespaces, writable cgroups).
    pub fn check() -> Result<(), String> {
        sandbox::check_privileges()
    }

    fn spec(&self, spec: &LaunchSpec) -> io::Result<InstanceSpec> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("i{}-{n}", std::process::id());
        let mut s = InstanceSpec::new(id, &spec.code_dir, &spec.program);
        s.layers = spec.layer_dirs.clone();
        s.forbidden = self.forbidden.clone();
        s.args = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        s.env = spec.env.clone();
        s.memory_limit_bytes = spec.memory_limit_bytes;
        s.uid = self.uid_base + n % self.uid_count;
        s.gid = s.uid;
        s.extra_fds = spec.fds.len() as u32;
        if spec.runtime_api {
            s.runtime_listen = Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, RUNTIME_API_PORT));
            s.env
                .retain(|(k, _)| k != "SCF_RUNTIME_API" && k != "SCF_RUNTIME_API_PORT");
            s.env.push(("SCF_RUNTIME_API".into(), "127.0.0.1".into()));
            s.env
                .push(("SCF_RUNTIME_API_PORT".into(), RUNTIME_API_PORT.to_string()));
        }
        // An interpreter installed outside the system directories (a version manager's prefix, say) is offered
        // read-only at the same path.
        let inside_instance =
            spec.program.starts_with("/var/user") || spec.program.starts_with("/opt");
        if !inside_instance
            && let Some(prefix) = install_prefix(&spec.program)
            && !s.system.iter().any(|p| covers(p, &prefix))
        {
            s.system.push(SystemPath::Bind {
                path: prefix,
                kind: NodeKind::Dir,
            });
        }
        s.canonicalized()
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// `/x/y/bin/python3.11` → `/x/y`.
fn install_prefix(program: &Path) -> Option<PathBuf> {
    let bin = program.parent()?;
    if bin.file_name()? != "bin" {
        return Some(bin.to_path_buf());
    }
    bin.parent().map(Path::to_path_buf)
}

fn covers(p: &SystemPath, path: &Path) -> bool {
    match p {
        SystemPath::Bind { path: root, .. } | SystemPath::Symlink { path: root, .. } => {
            path.starts_with(root)
        }
    }
}

impl Launcher for SandboxLauncher {
    fn layout(&self, _code_dir: &Path, layer_dirs: &[PathBuf]) -> InstanceLayout {
        InstanceLayout {
            code_root: PathBuf::from("/var/user"),
            layer_roots: if layer_dirs.is_empty() {
                Vec::new()
            } else {
                vec![PathBuf::from("/opt")]
            },
        }
    }

    fn launch(&self, spec: LaunchSpec) -> io::Result<Launched> {
        let instance = self.spec(&spec)?;
        let plan = Plan::build(&instance).map_err(|e| io::Error::other(e.to_string()))?;
        let mut fds = spec.fds;
        fds.sort_by_key(|(target, _)| *target);
        for (i, (target, _)) in fds.iter().enumerate() {
            if *target != 3 + i as i32 {
                return Err(io::Error::other(format!(
                    "instance descriptors must be 3, 4, …; got {target}"
                )));
            }
        }
        let io = SpawnIo {
            stdin: None,
            stdout: Some(spec.output.try_clone()?),
            stderr: Some(spec.output),
            fds: fds.into_iter().map(|(_, fd)| fd).collect::<Vec<OwnedFd>>(),
        };
        // Spawning waits for the helper to set the instance up (milliseconds): keep it off the async threads.
        let mut child = tokio::task::block_in_place(|| sandbox::spawn(&plan, io, &self.helper))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let runtime_api = child.take_runtime_listener();
        Ok(Launched {
            process: Box::new(Sandboxed {
                child: Mutex::new(child),
                exited: None,
            }),
            runtime_api,
        })
    }
}

struct Sandboxed {
    child: Mutex<Child>,
    exited: Option<String>,
}

impl InstanceProcess for Sandboxed {
    fn pid(&self) -> u32 {
        self.child.lock().map(|c| c.pid()).unwrap_or(0)
    }

    fn kill(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }

    fn exit_status(&mut self) -> Option<String> {
        if self.exited.is_none()
            && let Ok(mut c) = self.child.lock()
            && let Ok(Some(status)) = c.try_wait()
        {
            self.exited = Some(sandbox::describe(status));
        }
        self.exited.clone()
    }

    fn memory_usage(&self) -> Option<u64> {
        self.child.lock().ok()?.memory_usage().ok()
    }

    fn over_memory_limit(&mut self) -> bool {
        self.child
            .lock()
            .ok()
            .and_then(|c| c.oom_killed().ok())
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_prefixes() {
        assert_eq!(
            install_prefix(Path::new("/root/.pyenv/versions/3.11.7/bin/python3.11")),
            Some(PathBuf::from("/root/.pyenv/versions/3.11.7"))
        );
        assert_eq!(
            install_prefix(Path::new("/opt/node/node")),
            Some(PathBuf::from("/opt/node"))
        );
    }

    #[test]
    fn layers_are_merged_at_opt() {
        let l = SandboxLauncher::new(Vec::new());
        let layout = l.layout(
            Path::new("/data/unpacked/x"),
            &[PathBuf::from("/a"), PathBuf::from("/b")],
        );
        assert_eq!(layout.code_root, PathBuf::from("/var/user"));
        assert_eq!(layout.layer_roots, vec![PathBuf::from("/opt")]);
    }
}
