//! The production [`Launcher`]: every instance in its own namespaces, cgroup and root filesystem (the `sandbox`
//! crate). Code is at `/var/user` (read-only), layers merged at `/opt`, a private `/tmp`, the runtime API on
//! `127.0.0.1:9001` inside the instance's own network namespace, an unprivileged uid per instance.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox::{
    CODE_PATH, Child, Helper, InstanceSpec, LAYERS_PATH, NodeKind, Plan, SpawnIo, SystemPath,
};

use crate::launcher::{InstanceLayout, InstanceProcess, LaunchSpec, Launched, Launcher};

/// The runtime API address inside every instance (SCF's usual one).
pub const RUNTIME_API_PORT: u16 = 9001;

/// Starts instances in the sandbox.
pub struct SandboxLauncher {
    /// Host paths no instance may see (Stratus's data directory).
    forbidden: Vec<PathBuf>,
    helper: Helper,
    /// Each instance runs as its own uid from this range, so per-uid limits (processes) are per instance.
    uids: UidPool,
    next: AtomicU32,
    /// Outbound network for `PublicNetStatus=ENABLE` functions, when the host's firewall table is in place.
    egress: Option<Egress>,
}

/// How instances with outbound network are set up (see [`SandboxLauncher::with_egress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressSettings {
    /// The pool instance links are carved from (`[sandbox] egress_pool`, `198.18.0.0/16`).
    pub pool: sandbox::Ipv4Pool,
    /// The instances' resolvers; `None`: the host's that are not on loopback ([`sandbox::net::host_nameservers`]).
    pub nameservers: Option<Vec<Ipv4Addr>>,
}

struct Egress {
    spec: sandbox::EgressSpec,
    resolv_conf: String,
    /// This server's firewall table; removed when the launcher goes.
    _rules: Option<sandbox::EgressRules>,
}

/// The first instance uid and how many there are.
const UID_BASE: u32 = 200_000;
const UID_COUNT: u32 = 50_000;

/// Instance uids: a uid is never handed out again while an instance that had it may still have a process (it
/// returns to the pool only once the instance is completely gone, see [`sandbox::Child::on_teardown`]). Fresh
/// uids first, then the longest-free ones.
#[derive(Clone)]
struct UidPool {
    inner: Arc<Mutex<UidState>>,
}

struct UidState {
    base: u32,
    count: u32,
    /// Uids below `base + fresh` have been handed out at least once.
    fresh: u32,
    free: VecDeque<u32>,
}

/// A uid in use; dropping it gives it back.
struct UidLease {
    pool: UidPool,
    uid: u32,
}

impl UidPool {
    fn new(base: u32, count: u32) -> UidPool {
        UidPool {
            inner: Arc::new(Mutex::new(UidState {
                base,
                count,
                fresh: 0,
                free: VecDeque::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UidState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> io::Result<UidLease> {
        let mut st = self.lock();
        let uid = if st.fresh < st.count {
            st.fresh += 1;
            st.base + st.fresh - 1
        } else if let Some(uid) = st.free.pop_front() {
            uid
        } else {
            return Err(io::Error::other(format!(
                "all {} instance uids are in use",
                st.count
            )));
        };
        Ok(UidLease {
            pool: self.clone(),
            uid,
        })
    }

    #[cfg(test)]
    fn free(&self) -> usize {
        let st = self.lock();
        (st.count - st.fresh) as usize + st.free.len()
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        self.pool.lock().free.push_back(self.uid);
    }
}

/// Where the program of an instance lives, from the path the engine gave.
#[derive(Debug, PartialEq, Eq)]
enum ProgramPlace {
    /// In the function's code (`/var/user`): mounted anyway.
    Code,
    /// A host interpreter: its installation prefix is bound read-only at the same path.
    Host(PathBuf),
    /// A host interpreter already visible through the system paths.
    System,
}

/// Decides how the program becomes visible inside the instance. `/opt` is the layers' mount point: a host
/// interpreter installed under it is bound like any other, unless the function has layers, which would hide it.
fn program_place(
    program: &Path,
    system: &[SystemPath],
    has_layers: bool,
) -> io::Result<ProgramPlace> {
    if program.starts_with(CODE_PATH) {
        return Ok(ProgramPlace::Code);
    }
    let Some(prefix) = install_prefix(program) else {
        return Ok(ProgramPlace::System);
    };
    if system.iter().any(|p| covers(p, &prefix)) {
        return Ok(ProgramPlace::System);
    }
    if has_layers && prefix.starts_with(LAYERS_PATH) {
        return Err(io::Error::other(format!(
            "the interpreter {} is installed under {LAYERS_PATH}, where the function's layers are mounted; \
             install it elsewhere or configure another interpreter path",
            program.display()
        )));
    }
    Ok(ProgramPlace::Host(prefix))
}

impl SandboxLauncher {
    /// `forbidden`: host paths instances must never see (the data directory, configuration with secrets).
    pub fn new(forbidden: Vec<PathBuf>) -> SandboxLauncher {
        SandboxLauncher {
            forbidden,
            helper: Helper::default(),
            uids: UidPool::new(UID_BASE, UID_COUNT),
            next: AtomicU32::new(0),
            egress: None,
        }
    }

    /// Gives instances of functions with `PublicNetStatus=ENABLE` outbound network: removes the firewall tables
    /// of servers that are gone, then installs this server's (`inet stratus_<pid>`, see [`sandbox::net`]).
    /// Returns how many leftover tables were removed; on an error nothing is enabled (the caller decides
    /// whether to go on with loopback-only instances).
    pub fn enable_egress(&mut self, settings: EgressSettings) -> Result<usize, String> {
        let ip = sandbox::net::find_ip().ok_or("`ip` (iproute2) is not installed")?;
        let nft = sandbox::net::find_nft().ok_or("`nft` (nftables) is not installed")?;
        let removed = sandbox::net::remove_leftover_tables(&nft).map_err(|e| e.to_string())?;
        let nameservers = settings
            .nameservers
            .unwrap_or_else(sandbox::net::host_nameservers);
        let table = sandbox::net::table_name(std::process::id());
        let rules = sandbox::EgressRules::install(&nft, &table, &settings.pool, &nameservers)
            .map_err(|e| e.to_string())?;
        self.egress = Some(Egress {
            spec: sandbox::EgressSpec {
                pool: settings.pool,
                ip,
            },
            resolv_conf: sandbox::net::resolv_conf(&nameservers),
            _rules: Some(rules),
        });
        Ok(removed)
    }

    /// Removes the empty instance cgroups a server that died left behind (`serve` calls it before it starts
    /// instances; cgroups still holding processes are left alone). Returns how many were removed.
    pub fn remove_leftover_cgroups() -> Result<usize, String> {
        sandbox::CgroupConfig::detect()
            .remove_leftovers_where(orphaned_instance)
            .map(|(removed, _)| removed)
            .map_err(|e| e.to_string())
    }

    /// Whether this host can sandbox (root or enough capabilities, namespaces, writable cgroups).
    pub fn check() -> Result<(), String> {
        sandbox::check_privileges()
    }

    fn spec(&self, spec: &LaunchSpec, uid: u32) -> io::Result<InstanceSpec> {
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
        s.uid = uid;
        s.gid = uid;
        s.extra_fds = spec.fds.len() as u32;
        if spec.public_net
            && let Some(egress) = &self.egress
        {
            s.egress = Some(egress.spec.clone());
            s.resolv_conf = egress.resolv_conf.clone();
        }
        if spec.runtime_api {
            s.runtime_listen = Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, RUNTIME_API_PORT));
            s.env
                .retain(|(k, _)| k != "SCF_RUNTIME_API" && k != "SCF_RUNTIME_API_PORT");
            s.env.push(("SCF_RUNTIME_API".into(), "127.0.0.1".into()));
            s.env
                .push(("SCF_RUNTIME_API_PORT".into(), RUNTIME_API_PORT.to_string()));
        }
        // An interpreter installed outside the system directories (a version manager's prefix, `/opt/…`) is
        // offered read-only at the same path.
        if let ProgramPlace::Host(prefix) =
            program_place(&spec.program, &s.system, !spec.layer_dirs.is_empty())?
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

/// Whether an instance cgroup's name (`i<server pid>-<n>`, see `SandboxLauncher::spec`) belongs to a server that
/// is gone; names of another form are not ours to remove.
fn orphaned_instance(name: &str) -> bool {
    name.strip_prefix('i')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
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
        let uid = self.uids.take()?;
        let instance = self.spec(&spec, uid.uid)?;
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
        // The uid goes back to the pool only once every process of the instance is gone.
        child.on_teardown(move || drop(uid));
        Ok(Launched {
            process: Box::new(Sandboxed {
                child: Mutex::new(child),
                exited: None,
            }),
            runtime_api,
        })
    }

    fn flush_teardown(&self, timeout: Duration) -> bool {
        sandbox::flush_teardown(timeout)
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

    fn terminate(&mut self) -> bool {
        self.exit_status().is_none()
            && self
                .child
                .lock()
                .map(|mut c| c.terminate().is_ok())
                .unwrap_or(false)
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

    fn network_namespace(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_cgroups_of_dead_servers_are_orphaned() {
        let me = std::process::id();
        assert!(
            !orphaned_instance(&format!("i{me}-3")),
            "this server is alive"
        );
        // A pid above the kernel's limit (pid_max is at most 2^22) was never a live process.
        assert!(orphaned_instance("i4999999-0"));
        assert!(!orphaned_instance("other"));
        assert!(!orphaned_instance("i-1"));
        assert!(!orphaned_instance("ix-1"));
    }

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

    fn launch_spec(code: &Path, program: &str, layers: Vec<PathBuf>) -> LaunchSpec {
        let (_r, w) = crate::pipe::pipe().expect("pipe");
        LaunchSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/var/user".into(),
            output: w,
            fds: Vec::new(),
            code_dir: code.to_path_buf(),
            layer_dirs: layers,
            memory_limit_bytes: 128 << 20,
            runtime_api: false,
            public_net: false,
        }
    }

    #[test]
    fn only_enable_functions_get_a_link_and_only_when_the_launcher_offers_egress() {
        let code = tempfile::tempdir().expect("tempdir");
        let mut l = SandboxLauncher::new(Vec::new());
        let mut on = launch_spec(code.path(), "/var/user/bootstrap", Vec::new());
        on.public_net = true;
        let off = launch_spec(code.path(), "/var/user/bootstrap", Vec::new());
        let s = l.spec(&on, 300_000).expect("spec");
        assert_eq!(s.egress, None, "the launcher offers no egress");
        assert_eq!(s.resolv_conf, "");
        let pool = sandbox::Ipv4Pool::parse("198.18.0.0/16").expect("pool");
        l.egress = Some(Egress {
            spec: sandbox::EgressSpec {
                pool,
                ip: "/usr/sbin/ip".into(),
            },
            resolv_conf: "nameserver 9.9.9.9\n".into(),
            _rules: None,
        });
        let s = l.spec(&on, 300_000).expect("spec");
        assert_eq!(s.egress.as_ref().map(|e| e.pool), Some(pool));
        assert_eq!(s.resolv_conf, "nameserver 9.9.9.9\n");
        let plan = Plan::build(&s).expect("plan");
        assert!(plan.egress.is_some());
        let s = l.spec(&off, 300_000).expect("spec");
        assert_eq!(s.egress, None, "DISABLE stays loopback-only");
        assert_eq!(s.resolv_conf, "");
    }

    fn binds(s: &InstanceSpec) -> Vec<PathBuf> {
        s.system
            .iter()
            .filter_map(|p| match p {
                SystemPath::Bind { path, .. } => Some(path.clone()),
                SystemPath::Symlink { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_host_interpreter_under_opt_is_bound_and_opt_stays_the_layers_mount() {
        let code = tempfile::tempdir().expect("code");
        let layer = tempfile::tempdir().expect("layer");
        let l = SandboxLauncher::new(Vec::new());

        let s = l
            .spec(
                &launch_spec(code.path(), "/opt/python3.11/bin/python3", Vec::new()),
                UID_BASE,
            )
            .expect("spec");
        assert!(
            binds(&s).contains(&PathBuf::from("/opt/python3.11")),
            "{:?}",
            s.system
        );

        // The function's own program needs no bind; one from the system paths neither.
        for program in ["/var/user/scf_bootstrap", "/usr/bin/python3"] {
            let s = l
                .spec(&launch_spec(code.path(), program, Vec::new()), UID_BASE)
                .expect("spec");
            assert_eq!(binds(&s), binds(&InstanceSpec::new("x", "/", "/bin/sh")));
        }

        // With layers, /opt is theirs: an interpreter there would be hidden, so the start is refused clearly.
        let err = l
            .spec(
                &launch_spec(
                    code.path(),
                    "/opt/python3.11/bin/python3",
                    vec![layer.path().to_path_buf()],
                ),
                UID_BASE,
            )
            .expect_err("hidden by the layers");
        assert!(err.to_string().contains("layers are mounted"), "{err}");
        let s = l
            .spec(
                &launch_spec(
                    code.path(),
                    "/root/.pyenv/versions/3.11.7/bin/python3.11",
                    vec![layer.path().to_path_buf()],
                ),
                UID_BASE,
            )
            .expect("spec");
        assert!(binds(&s).contains(&PathBuf::from("/root/.pyenv/versions/3.11.7")));
        let plan = Plan::build(&s).expect("plan");
        assert!(
            plan.mounts.iter().any(|op| matches!(
                op,
                sandbox::MountOp::Bind { source, path, .. }
                    if path == Path::new(LAYERS_PATH) && source == &s.layers[0]
            )),
            "the layer is mounted at /opt"
        );
    }

    #[test]
    fn program_places() {
        let system = vec![SystemPath::Bind {
            path: "/usr".into(),
            kind: NodeKind::Dir,
        }];
        let place = |p: &str, layers| program_place(Path::new(p), &system, layers).ok();
        assert_eq!(place("/var/user/bootstrap", true), Some(ProgramPlace::Code));
        assert_eq!(place("/usr/bin/node", true), Some(ProgramPlace::System));
        assert_eq!(
            place("/opt/node/bin/node", false),
            Some(ProgramPlace::Host("/opt/node".into()))
        );
        assert_eq!(place("/opt/node/bin/node", true), None);
        assert_eq!(
            place("/usr/local/lib/nodejs/node", true),
            Some(ProgramPlace::System)
        );
    }

    #[test]
    fn a_uid_is_never_reused_while_its_instance_lives() {
        let pool = UidPool::new(1000, 3);
        let a = pool.take().expect("a");
        let b = pool.take().expect("b");
        let c = pool.take().expect("c");
        let mut held = [a.uid, b.uid, c.uid];
        held.sort_unstable();
        assert_eq!(held, [1000, 1001, 1002]);
        assert!(pool.take().is_err(), "all in use: refused, not shared");
        let b_uid = b.uid;
        drop(b);
        let d = pool.take().expect("d");
        assert_eq!(d.uid, b_uid, "a freed uid comes back");

        // Far more launches than the range holds, while two instances stay alive all along.
        let pool = UidPool::new(200_000, 100);
        let long_lived = [pool.take().expect("x"), pool.take().expect("y")];
        for _ in 0..250_000 {
            let l = pool.take().expect("a uid");
            assert!(
                long_lived.iter().all(|h| h.uid != l.uid),
                "uid {} reused",
                l.uid
            );
            assert!((200_000..200_100).contains(&l.uid));
        }
        assert_eq!(pool.free(), 98);
        drop(long_lived);
        assert_eq!(pool.free(), 100);
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
