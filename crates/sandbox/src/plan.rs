//! The sandbox plan: everything an instance's isolation consists of, as pure data built from an
//! [`InstanceSpec`]. Building a plan touches nothing; [`crate::apply`] carries it out.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SandboxError;
use crate::cgroup::{CgroupConfig, CgroupPlan};
use crate::net::{EgressPlan, EgressSpec};
use crate::seccomp::{BpfInsn, instance_filters};

/// Where the function's code appears inside an instance (read-only, the working directory).
pub const CODE_PATH: &str = "/var/user";
/// Where bound layers appear inside an instance (read-only, merged in binding order).
pub const LAYERS_PATH: &str = "/opt";
/// The size of an instance's private `/tmp`.
pub const DEFAULT_TMP_SIZE: u64 = 512 << 20;
/// Processes (tasks) and open files an instance may have.
pub const DEFAULT_MAX_PROCESSES: u64 = 1024;
pub const DEFAULT_MAX_OPEN_FILES: u64 = 1024;
/// The unprivileged identity instances run as unless the spec says otherwise (`nobody`).
pub const DEFAULT_UID: u32 = 65534;
pub const DEFAULT_GID: u32 = 65534;
/// An empty host directory the instance's root tmpfs is mounted over (inside the instance's own mount
/// namespace, so the host never sees it). Created by [`crate::spawn`] when missing.
pub const DEFAULT_STAGING_DIR: &str = "/run/stratus-sandbox";
/// The size of the instance's root tmpfs (directories, mount points and generated `/etc` files only).
const ROOT_SIZE: u64 = 1 << 20;
/// The size of `/dev/shm`.
const SHM_SIZE: u64 = 64 << 20;

/// A Linux namespace an instance gets its own copy of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Namespace {
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
    Cgroup,
}

impl Namespace {
    /// The `CLONE_NEW*` flag.
    pub fn flag(self) -> libc::c_int {
        match self {
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }
}

/// Whether a mount source (and so its mount point) is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    Dir,
    File,
}

/// A piece of the host's system an instance needs to run interpreters (bound read-only at the same path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemPath {
    Bind { path: PathBuf, kind: NodeKind },
    Symlink { path: PathBuf, target: PathBuf },
}

/// Host paths offered to instances by default, when they exist: the system directories interpreters need
/// (`/usr` and the merged-usr links or directories beside it) and the few `/etc` entries TLS, the dynamic
/// linker and Debian's alternatives need. Nothing writable, nothing of Stratus's.
pub const SYSTEM_CANDIDATES: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/mime.types",
];

/// Looks at the host and turns [`SYSTEM_CANDIDATES`] into [`SystemPath`]s: symlinks stay symlinks (with the
/// same target), directories and files become read-only binds, missing ones are skipped.
pub fn host_system_paths() -> Vec<SystemPath> {
    let mut out = Vec::new();
    for candidate in SYSTEM_CANDIDATES {
        let path = PathBuf::from(candidate);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&path) {
                out.push(SystemPath::Symlink { path, target });
            }
        } else if meta.is_dir() {
            out.push(SystemPath::Bind {
                path,
                kind: NodeKind::Dir,
            });
        } else if meta.is_file() {
            out.push(SystemPath::Bind {
                path,
                kind: NodeKind::File,
            });
        }
    }
    out
}

/// What the caller wants of one instance. Paths are host paths and must be absolute and canonical
/// (no `..`, symlinks resolved): the plan compares them textually with `forbidden`
/// ([`InstanceSpec::canonicalized`] resolves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Names the instance's cgroup; `[A-Za-z0-9_.-]`, at most 64 characters.
    pub id: String,
    /// Mounted read-only at [`CODE_PATH`].
    pub code_dir: PathBuf,
    /// Mounted read-only and merged at [`LAYERS_PATH`], in binding order: a later layer's file wins.
    pub layers: Vec<PathBuf>,
    /// Host system paths bound read-only (see [`host_system_paths`]).
    pub system: Vec<SystemPath>,
    /// Host paths that must stay invisible: no mount source may be one of them or contain one.
    pub forbidden: Vec<PathBuf>,
    /// The program to execute (a path inside the instance) and its arguments (without argv\[0\]).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment of the program; nothing of Stratus's is inherited.
    pub env: Vec<(String, String)>,
    pub memory_limit_bytes: u64,
    pub tmp_size_bytes: u64,
    pub max_processes: u64,
    pub max_open_files: u64,
    /// The unprivileged identity the program runs as; 0 is refused. RLIMIT_NPROC counts per uid across the
    /// host, so instances that must not share the process budget need distinct uids.
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub cgroup: CgroupConfig,
    /// See [`DEFAULT_STAGING_DIR`].
    pub staging_dir: PathBuf,
    /// How many extra descriptors the caller passes to [`crate::spawn`]; they appear as 3, 4, ….
    pub extra_fds: u32,
    /// A loopback address inside the instance's network namespace to open a listening TCP socket on before
    /// the program starts (for the runtime API); the socket is handed to the caller.
    pub runtime_listen: Option<SocketAddrV4>,
    /// Contents of the instance's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// Install the seccomp allow-list of [`crate::seccomp`] (no namespaces, mounts, keyrings, BPF, …).
    pub seccomp: bool,
    /// Outbound network through a link of its own (`PublicNetStatus=ENABLE`); `None`: loopback only.
    pub egress: Option<EgressSpec>,
}

impl InstanceSpec {
    /// A spec with the contract's defaults: the host's system paths, 128 MB, 512 MB `/tmp`, 1024 processes
    /// and files, `nobody`, the detected cgroup version, no layers, no extra descriptors.
    pub fn new(
        id: impl Into<String>,
        code_dir: impl Into<PathBuf>,
        program: impl Into<PathBuf>,
    ) -> Self {
        InstanceSpec {
            id: id.into(),
            code_dir: code_dir.into(),
            layers: Vec::new(),
            system: host_system_paths(),
            forbidden: Vec::new(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            memory_limit_bytes: 128 << 20,
            tmp_size_bytes: DEFAULT_TMP_SIZE,
            max_processes: DEFAULT_MAX_PROCESSES,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            uid: DEFAULT_UID,
            gid: DEFAULT_GID,
            hostname: "scf".into(),
            cgroup: CgroupConfig::detect(),
            staging_dir: PathBuf::from(DEFAULT_STAGING_DIR),
            extra_fds: 0,
            runtime_listen: None,
            resolv_conf: String::new(),
            seccomp: true,
            egress: None,
        }
    }
}

impl InstanceSpec {
    /// Resolves symlinks and `..` in the host paths the plan compares (code, layers, forbidden paths), so
    /// that a symlink cannot smuggle a forbidden path past [`Plan::build`]. Every path must exist.
    pub fn canonicalized(mut self) -> Result<Self, SandboxError> {
        let canon = |p: &Path| {
            std::fs::canonicalize(p).map_err(|e| {
                SandboxError::InvalidSpec(format!("cannot resolve {}: {e}", p.display()))
            })
        };
        self.code_dir = canon(&self.code_dir)?;
        self.layers = self
            .layers
            .iter()
            .map(|p| canon(p))
            .collect::<Result<_, _>>()?;
        self.forbidden = self
            .forbidden
            .iter()
            .map(|p| canon(p))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// One filesystem step of building the instance's root, in order. Paths are inside the instance
/// (applied under the staging directory before `pivot_root`); sources are host paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOp {
    /// Create a directory (an existing one is fine).
    Dir {
        path: PathBuf,
        mode: u32,
    },
    /// Create a file with these contents.
    File {
        path: PathBuf,
        contents: String,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    /// Bind a host path: always nosuid; read-only and nodev unless it is a device node.
    Bind {
        source: PathBuf,
        path: PathBuf,
        device: bool,
    },
    /// A fresh tmpfs (nosuid, nodev).
    Tmpfs {
        path: PathBuf,
        size_bytes: u64,
        mode: u32,
    },
    /// A read-only overlay of `lowers` given in binding order (the first is the bottom; later ones win).
    Overlay {
        path: PathBuf,
        lowers: Vec<PathBuf>,
    },
    /// procfs of the instance's PID namespace (nosuid, nodev, noexec).
    Proc {
        path: PathBuf,
    },
    /// Make the (non-bind) mount at `path` read-only once its contents are in place.
    Readonly {
        path: PathBuf,
    },
}

impl MountOp {
    /// The path inside the instance this step creates or covers.
    pub fn path(&self) -> &Path {
        match self {
            MountOp::Dir { path, .. }
            | MountOp::File { path, .. }
            | MountOp::Symlink { path, .. }
            | MountOp::Bind { path, .. }
            | MountOp::Tmpfs { path, .. }
            | MountOp::Overlay { path, .. }
            | MountOp::Proc { path }
            | MountOp::Readonly { path } => path,
        }
    }
}

/// A resource limit set before the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    Nproc,
    Nofile,
    Core,
}

impl Resource {
    pub fn to_libc(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Core => libc::RLIMIT_CORE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// Everything the helper does to start one instance; see the crate docs for the order it is applied in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    /// Namespaces the instance gets (the cgroup namespace is entered after joining the cgroup).
    pub namespaces: Vec<Namespace>,
    pub hostname: String,
    pub staging: PathBuf,
    pub root_size_bytes: u64,
    pub mounts: Vec<MountOp>,
    /// Remount the root read-only after `pivot_root` (only `/tmp` and `/dev/shm` stay writable).
    pub readonly_root: bool,
    pub cgroup: CgroupPlan,
    pub loopback_up: bool,
    /// The instance's link to the host and the outside (see [`crate::net`]); `None`: loopback only.
    pub egress: Option<EgressPlan>,
    pub runtime_listen: Option<SocketAddrV4>,
    pub rlimits: Vec<Rlimit>,
    pub uid: u32,
    pub gid: u32,
    pub no_new_privs: bool,
    /// The seccomp filters installed, in this order, right before `execve` (empty: none).
    pub seccomp: Vec<Vec<BpfInsn>>,
    pub cwd: PathBuf,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// `KEY=value` strings, the program's whole environment.
    pub env: Vec<String>,
    pub extra_fds: u32,
}

/// Device nodes bound from the host into the instance's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

struct Builder {
    ops: Vec<MountOp>,
    dirs: BTreeSet<PathBuf>,
    covered: BTreeSet<PathBuf>,
}

impl Builder {
    /// Emits `Dir` steps for `path` and its missing ancestors.
    fn dir(&mut self, path: &Path, mode: u32) {
        if path == Path::new("/") || self.dirs.contains(path) {
            return;
        }
        if let Some(parent) = path.parent() {
            self.dir(parent, 0o755);
        }
        self.dirs.insert(path.to_path_buf());
        self.ops.push(MountOp::Dir {
            path: path.to_path_buf(),
            mode,
        });
    }

    fn parent_of(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.dir(parent, 0o755);
        }
    }

    /// Claims `path` for one step; two steps may not cover the same path.
    fn claim(&mut self, path: &Path) -> Result<(), SandboxError> {
        if !self.covered.insert(path.to_path_buf()) {
            return Err(SandboxError::InvalidSpec(format!(
                "{} is mounted twice",
                path.display()
            )));
        }
        Ok(())
    }

    fn bind(
        &mut self,
        source: &Path,
        path: &Path,
        kind: NodeKind,
        device: bool,
    ) -> Result<(), SandboxError> {
        self.claim(path)?;
        match kind {
            NodeKind::Dir => self.dir(path, 0o755),
            NodeKind::File => {
                self.parent_of(path);
                self.ops.push(MountOp::File {
                    path: path.to_path_buf(),
                    contents: String::new(),
                    mode: 0o644,
                });
            }
        }
        self.ops.push(MountOp::Bind {
            source: source.to_path_buf(),
            path: path.to_path_buf(),
            device,
        });
        Ok(())
    }

    fn file(&mut self, path: &str, contents: String) -> Result<(), SandboxError> {
        let path = Path::new(path);
        self.claim(path)?;
        self.parent_of(path);
        self.ops.push(MountOp::File {
            path: path.to_path_buf(),
            contents,
            mode: 0o644,
        });
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), SandboxError> {
        self.claim(path)?;
        self.parent_of(path);
        self.ops.push(MountOp::Symlink {
            path: path.to_path_buf(),
            target: target.to_path_buf(),
        });
        Ok(())
    }

    fn tmpfs(&mut self, path: &str, size_bytes: u64, mode: u32) -> Result<(), SandboxError> {
        let path = Path::new(path);
        self.claim(path)?;
        self.dir(path, 0o755);
        self.ops.push(MountOp::Tmpfs {
            path: path.to_path_buf(),
            size_bytes,
            mode,
        });
        Ok(())
    }
}

/// Rejects relative paths and `.`/`..` components (forbidden-path checks are textual).
fn check_absolute(what: &str, path: &Path) -> Result<(), SandboxError> {
    let mut components = path.components();
    let ok = components.next() == Some(Component::RootDir)
        && components.all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidSpec(format!(
            "{what} must be an absolute canonical path: {}",
            path.display()
        )))
    }
}

/// A source exposes a forbidden path when it is that path or one of its ancestors.
fn check_not_forbidden(
    what: &str,
    source: &Path,
    forbidden: &[PathBuf],
) -> Result<(), SandboxError> {
    for f in forbidden {
        if f.starts_with(source) {
            return Err(SandboxError::InvalidSpec(format!(
                "{what} {} would expose the forbidden path {}",
                source.display(),
                f.display()
            )));
        }
    }
    Ok(())
}

fn no_nul(what: &str, s: &str) -> Result<(), SandboxError> {
    if s.contains('\0') {
        return Err(SandboxError::InvalidSpec(format!(
            "{what} contains a NUL byte"
        )));
    }
    Ok(())
}

impl Plan {
    /// Plans an instance, checking the spec: an unprivileged uid, absolute canonical paths, no source that
    /// exposes a forbidden path, usable names and environment, loopback-only runtime address.
    pub fn build(spec: &InstanceSpec) -> Result<Plan, SandboxError> {
        let invalid = |m: String| Err(SandboxError::InvalidSpec(m));
        if spec.id.is_empty()
            || spec.id.len() > 64
            || !spec
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            || spec.id.starts_with('.')
        {
            return invalid(format!(
                "instance id {:?} is not [A-Za-z0-9_.-]{{1,64}}",
                spec.id
            ));
        }
        if spec.uid == 0 || spec.gid == 0 {
            return invalid("instances may not run as root (uid or gid 0)".into());
        }
        if spec.hostname.is_empty()
            || spec.hostname.len() > 64
            || !spec
                .hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return invalid(format!("hostname {:?} is not valid", spec.hostname));
        }
        if spec.memory_limit_bytes < (4 << 20) {
            return invalid(format!(
                "memory limit {} bytes is below 4 MiB",
                spec.memory_limit_bytes
            ));
        }
        if spec.max_processes == 0 || spec.max_open_files < 16 || spec.tmp_size_bytes == 0 {
            return invalid(
                "process, file and /tmp limits must be positive (files at least 16)".into(),
            );
        }
        for f in &spec.forbidden {
            check_absolute("forbidden path", f)?;
        }
        check_absolute("staging dir", &spec.staging_dir)?;
        check_absolute("code dir", &spec.code_dir)?;
        check_not_forbidden("code dir", &spec.code_dir, &spec.forbidden)?;
        check_absolute("program", &spec.program)?;
        for layer in &spec.layers {
            check_absolute("layer", layer)?;
            check_not_forbidden("layer", layer, &spec.forbidden)?;
            // overlayfs separates lower directories with ':' and options with ','.
            let s = layer.to_string_lossy();
            if s.contains([':', ',', '\\']) {
                return invalid(format!(
                    "layer path {} contains ':', ',' or '\\'",
                    layer.display()
                ));
            }
        }
        for arg in &spec.args {
            no_nul("argument", arg)?;
        }
        let mut env = Vec::with_capacity(spec.env.len());
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains('=') {
                return invalid(format!("environment variable name {k:?} is not valid"));
            }
            no_nul("environment variable", k)?;
            no_nul("environment value", v)?;
            env.push(format!("{k}={v}"));
        }
        if let Some(addr) = spec.runtime_listen
            && !addr.ip().is_loopback()
        {
            return invalid(format!(
                "runtime API address {addr} is not a loopback address"
            ));
        }
        no_nul("resolv.conf", &spec.resolv_conf)?;

        let mut b = Builder {
            ops: Vec::new(),
            dirs: BTreeSet::new(),
            covered: BTreeSet::new(),
        };

        // Host system paths, read-only.
        for sys in &spec.system {
            match sys {
                SystemPath::Bind { path, kind } => {
                    check_absolute("system path", path)?;
                    check_not_forbidden("system path", path, &spec.forbidden)?;
                    b.bind(path, path, *kind, false)?;
                }
                SystemPath::Symlink { path, target } => {
                    check_absolute("system path", path)?;
                    b.symlink(path, target)?;
                }
            }
        }

        // A minimal generated /etc.
        let (uid, gid) = (spec.uid, spec.gid);
        let mut passwd = String::from("root:x:0:0:root:/root:/usr/sbin/nologin\n");
        let mut group = String::from("root:x:0:\n");
        if uid != DEFAULT_UID {
            passwd.push_str(&format!("user:x:{uid}:{gid}:user:/tmp:/usr/sbin/nologin\n"));
        }
        if gid != DEFAULT_GID {
            group.push_str(&format!("user:x:{gid}:\n"));
        }
        passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
        group.push_str("nogroup:x:65534:\n");
        b.file("/etc/passwd", passwd)?;
        b.file("/etc/group", group)?;
        b.file(
            "/etc/hosts",
            format!(
                "127.0.0.1\tlocalhost {}\n::1\tlocalhost ip6-localhost\n",
                spec.hostname
            ),
        )?;
        b.file("/etc/hostname", format!("{}\n", spec.hostname))?;
        b.file("/etc/resolv.conf", spec.resolv_conf.clone())?;
        b.file(
            "/etc/nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files dns\n".into(),
        )?;

        // The function's code and its layers.
        b.bind(&spec.code_dir, Path::new(CODE_PATH), NodeKind::Dir, false)?;
        let opt = Path::new(LAYERS_PATH);
        match spec.layers.as_slice() {
            [] => {
                b.claim(opt)?;
                b.dir(opt, 0o755);
            }
            [one] => b.bind(one, opt, NodeKind::Dir, false)?,
            many => {
                b.claim(opt)?;
                b.dir(opt, 0o755);
                b.ops.push(MountOp::Overlay {
                    path: opt.to_path_buf(),
                    lowers: many.to_vec(),
                });
            }
        }

        // Private scratch space, procfs, a minimal /dev.
        b.tmpfs("/tmp", spec.tmp_size_bytes, 0o1777)?;
        b.claim(Path::new("/proc"))?;
        b.dir(Path::new("/proc"), 0o555);
        b.ops.push(MountOp::Proc {
            path: PathBuf::from("/proc"),
        });
        b.tmpfs("/dev", 1 << 20, 0o755)?;
        for dev in DEVICES {
            let path = PathBuf::from("/dev").join(dev);
            b.bind(&path, &path, NodeKind::File, true)?;
        }
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            b.symlink(Path::new(link), Path::new(target))?;
        }
        b.tmpfs("/dev/shm", SHM_SIZE, 0o1777)?;
        b.ops.push(MountOp::Readonly {
            path: PathBuf::from("/dev"),
        });

        let cgroup = CgroupPlan::build(
            &spec.cgroup,
            &spec.id,
            spec.memory_limit_bytes,
            spec.max_processes,
        );

        Ok(Plan {
            id: spec.id.clone(),
            namespaces: vec![
                Namespace::Mount,
                Namespace::Uts,
                Namespace::Ipc,
                Namespace::Net,
                Namespace::Pid,
                Namespace::Cgroup,
            ],
            hostname: spec.hostname.clone(),
            staging: spec.staging_dir.clone(),
            root_size_bytes: ROOT_SIZE,
            mounts: b.ops,
            readonly_root: true,
            cgroup,
            loopback_up: true,
            egress: spec
                .egress
                .as_ref()
                .map(|e| EgressPlan::build(&spec.id, e))
                .transpose()?,
            runtime_listen: spec.runtime_listen,
            rlimits: vec![
                Rlimit {
                    resource: Resource::Nproc,
                    soft: spec.max_processes,
                    hard: spec.max_processes,
                },
                Rlimit {
                    resource: Resource::Nofile,
                    soft: spec.max_open_files,
                    hard: spec.max_open_files,
                },
                Rlimit {
                    resource: Resource::Core,
                    soft: 0,
                    hard: 0,
                },
            ],
            uid,
            gid,
            no_new_privs: true,
            seccomp: if spec.seccomp {
                instance_filters()?
            } else {
                Vec::new()
            },
            cwd: PathBuf::from(CODE_PATH),
            program: spec.program.clone(),
            args: spec.args.clone(),
            env,
            extra_fds: spec.extra_fds,
        })
    }

    /// Every host path the instance can see through a mount (bind sources and overlay lowers).
    pub fn mount_sources(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        for op in &self.mounts {
            match op {
                MountOp::Bind { source, .. } => out.push(source.as_path()),
                MountOp::Overlay { lowers, .. } => out.extend(lowers.iter().map(PathBuf::as_path)),
                _ => {}
            }
        }
        out
    }

    /// Encodes the plan for the helper.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SandboxError> {
        serde_json::to_vec(self)
            .map_err(|e| SandboxError::Protocol(format!("encoding the plan: {e}")))
    }

    /// Decodes a plan encoded by [`Plan::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Plan, SandboxError> {
        serde_json::from_slice(bytes)
            .map_err(|e| SandboxError::Protocol(format!("decoding the plan: {e}")))
    }
}

/// The overlayfs options for `lowers` given in binding order. overlayfs puts the *first* lower directory on
/// top, so the list is reversed: the last bound layer wins.
pub fn overlay_options(lowers: &[PathBuf]) -> String {
    let dirs: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    format!("lowerdir={}", dirs.join(":"))
}

#[cfg(test)]
mod tests;
