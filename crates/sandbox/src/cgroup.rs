//! Cgroup plans for v1 (one hierarchy per controller) and v2 (the unified hierarchy), and reading an
//! instance's memory accounting back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    /// Legacy hierarchies: `<root>/memory/…`, `<root>/pids/…`.
    V1,
    /// The unified hierarchy: `<root>/…` with `cgroup.controllers`.
    V2,
}

/// Where instance cgroups go: `<root>/<parent>/<instance id>` (v2) or `<root>/<controller>/<parent>/<id>` (v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupConfig {
    pub version: CgroupVersion,
    /// The cgroup mount point, normally `/sys/fs/cgroup`.
    pub root: PathBuf,
    /// The directory grouping all of Stratus's instances, normally `stratus`.
    pub parent: String,
}

/// The default cgroup mount point.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl CgroupConfig {
    /// Detects the version at `/sys/fs/cgroup`: v2 when `cgroup.controllers` sits at the root (a pure v2 host),
    /// else v1 (a hybrid host's `unified` mount holds no memory controller, so it counts as v1).
    pub fn detect() -> CgroupConfig {
        Self::detect_at(Path::new(DEFAULT_CGROUP_ROOT))
    }

    /// [`CgroupConfig::detect`] for another mount point.
    pub fn detect_at(root: &Path) -> CgroupConfig {
        let version = if root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        };
        CgroupConfig {
            version,
            root: root.to_path_buf(),
            parent: "stratus".to_string(),
        }
    }
}

impl CgroupConfig {
    /// The directories holding instance cgroups: one per controller in v1, one in v2.
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        match self.version {
            CgroupVersion::V1 => ["memory", "pids"]
                .iter()
                .map(|c| self.root.join(c).join(&self.parent))
                .collect(),
            CgroupVersion::V2 => vec![self.root.join(&self.parent)],
        }
    }

    /// Removes instance cgroups left behind by a server that died (their instances died with it, through
    /// the lifeline, but nobody removed the directories). Cgroups that still hold processes are left alone
    /// (they may belong to another server using the same parent); returns how many were removed and how
    /// many are still in use.
    pub fn remove_leftovers(&self) -> Result<(usize, usize), SandboxError> {
        self.remove_leftovers_where(|_| true)
    }

    /// [`CgroupConfig::remove_leftovers`] for the cgroups whose name `orphaned` accepts only (the caller knows
    /// which names belong to a server still alive, whose empty cgroup may be about to receive its instance).
    pub fn remove_leftovers_where(
        &self,
        orphaned: impl Fn(&str) -> bool,
    ) -> Result<(usize, usize), SandboxError> {
        let (mut removed, mut busy) = (0, 0);
        for parent in self.parent_dirs() {
            let entries = match fs::read_dir(&parent) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(SandboxError::Cgroup {
                        path: parent.display().to_string(),
                        source,
                    });
                }
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir())
                    || !orphaned(&entry.file_name().to_string_lossy())
                {
                    continue;
                }
                let procs =
                    fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
                if !procs.trim().is_empty() {
                    busy += 1;
                } else if fs::remove_dir(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok((removed, busy))
    }
}

/// One step of setting an instance's cgroup up, executed in order by the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupStep {
    /// Create the directory (an existing one is fine).
    Mkdir(PathBuf),
    /// Write `value` to the control file. A step that is not `required` may fail (the file is missing when,
    /// say, swap accounting is off); a required one fails the start.
    Write {
        path: PathBuf,
        value: String,
        required: bool,
    },
}

/// The instance's cgroup: how to set it up, join it, read it and remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlan {
    pub version: CgroupVersion,
    pub steps: Vec<CgroupStep>,
    /// `cgroup.procs` files the instance's init writes `0` (itself) into before anything else.
    pub join: Vec<PathBuf>,
    /// The directory holding the memory controller's files for this instance.
    pub memory_dir: PathBuf,
    /// The directory holding the pids controller's files for this instance.
    pub pids_dir: PathBuf,
    /// The instance's own directories, removed (leaf only) at cleanup.
    pub remove: Vec<PathBuf>,
}

/// Controllers enabled for instances in v2.
const V2_CONTROLLERS: &str = "+memory +pids";

impl CgroupPlan {
    /// Plans the cgroup of instance `id` with `memory_bytes` of memory (swap off) and at most `max_pids` tasks.
    pub fn build(config: &CgroupConfig, id: &str, memory_bytes: u64, max_pids: u64) -> CgroupPlan {
        let write = |path: PathBuf, value: String, required: bool| CgroupStep::Write {
            path,
            value,
            required,
        };
        match config.version {
            CgroupVersion::V1 => {
                let memory_parent = config.root.join("memory").join(&config.parent);
                let pids_parent = config.root.join("pids").join(&config.parent);
                let memory_dir = memory_parent.join(id);
                let pids_dir = pids_parent.join(id);
                let steps = vec![
                    CgroupStep::Mkdir(memory_parent),
                    CgroupStep::Mkdir(memory_dir.clone()),
                    write(
                        memory_dir.join("memory.limit_in_bytes"),
                        memory_bytes.to_string(),
                        true,
                    ),
                    // memory+swap equal to memory: no swap. Missing without swap accounting.
                    write(
                        memory_dir.join("memory.memsw.limit_in_bytes"),
                        memory_bytes.to_string(),
                        false,
                    ),
                    write(memory_dir.join("memory.swappiness"), "0".into(), false),
                    CgroupStep::Mkdir(pids_parent),
                    CgroupStep::Mkdir(pids_dir.clone()),
                    write(pids_dir.join("pids.max"), max_pids.to_string(), true),
                ];
                CgroupPlan {
                    version: CgroupVersion::V1,
                    steps,
                    join: vec![
                        memory_dir.join("cgroup.procs"),
                        pids_dir.join("cgroup.procs"),
                    ],
                    remove: vec![memory_dir.clone(), pids_dir.clone()],
                    memory_dir,
                    pids_dir,
                }
            }
            CgroupVersion::V2 => {
                let parent = config.root.join(&config.parent);
                let dir = parent.join(id);
                let steps = vec![
                    // Controllers must be enabled top-down for the instance's directory to get their files.
                    write(
                        config.root.join("cgroup.subtree_control"),
                        V2_CONTROLLERS.into(),
                        true,
                    ),
                    CgroupStep::Mkdir(parent.clone()),
                    write(
                        parent.join("cgroup.subtree_control"),
                        V2_CONTROLLERS.into(),
                        true,
                    ),
                    CgroupStep::Mkdir(dir.clone()),
                    write(dir.join("memory.max"), memory_bytes.to_string(), true),
                    // Missing without swap accounting.
                    write(dir.join("memory.swap.max"), "0".into(), false),
                    // An OOM kill takes the whole instance down, not one random process of it.
                    write(dir.join("memory.oom.group"), "1".into(), false),
                    write(dir.join("pids.max"), max_pids.to_string(), true),
                ];
                CgroupPlan {
                    version: CgroupVersion::V2,
                    steps,
                    join: vec![dir.join("cgroup.procs")],
                    memory_dir: dir.clone(),
                    pids_dir: dir.clone(),
                    remove: vec![dir],
                }
            }
        }
    }

    /// Current memory use of the instance, in bytes.
    pub fn memory_usage(&self) -> Result<u64, SandboxError> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        };
        self.read_u64(&self.memory_dir.join(file))
    }

    /// Highest memory use of the instance so far, in bytes (`None` where the kernel does not keep it).
    pub fn memory_peak(&self) -> Result<Option<u64>, SandboxError> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
            CgroupVersion::V2 => "memory.peak",
        };
        let path = self.memory_dir.join(file);
        if !path.exists() {
            return Ok(None);
        }
        self.read_u64(&path).map(Some)
    }

    /// How many times the kernel's OOM killer killed a process of the instance.
    pub fn oom_kills(&self) -> Result<u64, SandboxError> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        let path = self.memory_dir.join(file);
        let text = read(&path)?;
        if let Some(n) = keyed_value(&text, "oom_kill") {
            return Ok(n);
        }
        // v1 kernels before 4.13 have no oom_kill counter: count hitting the limit under OOM instead.
        if self.version == CgroupVersion::V1 && keyed_value(&text, "under_oom") == Some(1) {
            return Ok(1);
        }
        Ok(0)
    }

    /// Number of tasks in the instance.
    pub fn pids_current(&self) -> Result<u64, SandboxError> {
        self.read_u64(&self.pids_dir.join("pids.current"))
    }

    /// Removes the instance's cgroup directories. Fails while processes remain; missing directories are fine.
    pub fn remove(&self) -> Result<(), SandboxError> {
        for dir in &self.remove {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(SandboxError::Cgroup {
                        path: dir.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn read_u64(&self, path: &Path) -> Result<u64, SandboxError> {
        let text = read(path)?;
        text.trim().parse().map_err(|_| SandboxError::Cgroup {
            path: path.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a number: {text:?}"),
            ),
        })
    }
}

fn read(path: &Path) -> Result<String, SandboxError> {
    fs::read_to_string(path).map_err(|source| SandboxError::Cgroup {
        path: path.display().to_string(),
        source,
    })
}

/// The value of `key` in a `key value` per line file (`memory.events`, `memory.oom_control`).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: CgroupVersion) -> CgroupConfig {
        CgroupConfig {
            version,
            root: PathBuf::from("/sys/fs/cgroup"),
            parent: "stratus".into(),
        }
    }

    fn writes(plan: &CgroupPlan) -> Vec<(String, String, bool)> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                CgroupStep::Write {
                    path,
                    value,
                    required,
                } => Some((path.display().to_string(), value.clone(), *required)),
                CgroupStep::Mkdir(_) => None,
            })
            .collect()
    }

    #[test]
    fn v1_plan_uses_memory_and_pids_hierarchies() {
        let plan = CgroupPlan::build(&config(CgroupVersion::V1), "i-1", 128 << 20, 1024);
        assert_eq!(
            plan.steps[..2],
            [
                CgroupStep::Mkdir("/sys/fs/cgroup/memory/stratus".into()),
                CgroupStep::Mkdir("/sys/fs/cgroup/memory/stratus/i-1".into()),
            ]
        );
        let w = writes(&plan);
        let limit = (128u64 << 20).to_string();
        assert!(w.contains(&(
            "/sys/fs/cgroup/memory/stratus/i-1/memory.limit_in_bytes".into(),
            limit.clone(),
            true
        )));
        assert!(w.contains(&(
            "/sys/fs/cgroup/memory/stratus/i-1/memory.memsw.limit_in_bytes".into(),
            limit,
            false
        )));
        assert!(w.contains(&(
            "/sys/fs/cgroup/pids/stratus/i-1/pids.max".into(),
            "1024".into(),
            true
        )));
        // memory+swap may only be set once the memory limit is (it must not be below it).
        let pos = |name: &str| w.iter().position(|(p, _, _)| p.ends_with(name));
        assert!(pos("memory.limit_in_bytes") < pos("memory.memsw.limit_in_bytes"));
        assert_eq!(
            plan.join,
            [
                PathBuf::from("/sys/fs/cgroup/memory/stratus/i-1/cgroup.procs"),
                PathBuf::from("/sys/fs/cgroup/pids/stratus/i-1/cgroup.procs"),
            ]
        );
        assert_eq!(
            plan.remove,
            [
                PathBuf::from("/sys/fs/cgroup/memory/stratus/i-1"),
                PathBuf::from("/sys/fs/cgroup/pids/stratus/i-1"),
            ]
        );
    }

    #[test]
    fn v2_plan_enables_controllers_top_down_then_limits() {
        let plan = CgroupPlan::build(&config(CgroupVersion::V2), "i-2", 64 << 20, 100);
        let root = PathBuf::from("/sys/fs/cgroup");
        let dir = root.join("stratus/i-2");
        assert_eq!(
            plan.steps,
            [
                CgroupStep::Write {
                    path: root.join("cgroup.subtree_control"),
                    value: "+memory +pids".into(),
                    required: true
                },
                CgroupStep::Mkdir(root.join("stratus")),
                CgroupStep::Write {
                    path: root.join("stratus/cgroup.subtree_control"),
                    value: "+memory +pids".into(),
                    required: true
                },
                CgroupStep::Mkdir(dir.clone()),
                CgroupStep::Write {
                    path: dir.join("memory.max"),
                    value: (64u64 << 20).to_string(),
                    required: true
                },
                CgroupStep::Write {
                    path: dir.join("memory.swap.max"),
                    value: "0".into(),
                    required: false
                },
                CgroupStep::Write {
                    path: dir.join("memory.oom.group"),
                    value: "1".into(),
                    required: false
                },
                CgroupStep::Write {
                    path: dir.join("pids.max"),
                    value: "100".into(),
                    required: true
                },
            ]
        );
        assert_eq!(plan.join, [dir.join("cgroup.procs")]);
        assert_eq!(plan.remove, std::slice::from_ref(&dir));
        assert_eq!(plan.memory_dir, dir);
    }

    #[test]
    fn parent_dirs_per_version() {
        assert_eq!(
            config(CgroupVersion::V1).parent_dirs(),
            [
                PathBuf::from("/sys/fs/cgroup/memory/stratus"),
                PathBuf::from("/sys/fs/cgroup/pids/stratus")
            ]
        );
        assert_eq!(
            config(CgroupVersion::V2).parent_dirs(),
            [PathBuf::from("/sys/fs/cgroup/stratus")]
        );
    }

    #[test]
    fn detects_v2_by_root_controllers_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            CgroupConfig::detect_at(dir.path()).version,
            CgroupVersion::V1
        );
        fs::write(dir.path().join("cgroup.controllers"), "memory pids\n").expect("write");
        assert_eq!(
            CgroupConfig::detect_at(dir.path()).version,
            CgroupVersion::V2
        );
    }

    #[test]
    fn reads_usage_and_oom_kills_for_both_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // v2 files
        let v2 = CgroupPlan::build(
            &CgroupConfig {
                version: CgroupVersion::V2,
                root: root.to_path_buf(),
                parent: "s".into(),
            },
            "a",
            1,
            1,
        );
        fs::create_dir_all(&v2.memory_dir).expect("mkdir");
        fs::write(v2.memory_dir.join("memory.current"), "4096\n").expect("write");
        fs::write(
            v2.memory_dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .expect("write");
        assert_eq!(v2.memory_usage().expect("usage"), 4096);
        assert_eq!(v2.oom_kills().expect("oom"), 1);
        assert_eq!(v2.memory_peak().expect("peak"), None);
        // v1 files
        let v1 = CgroupPlan::build(
            &CgroupConfig {
                version: CgroupVersion::V1,
                root: root.to_path_buf(),
                parent: "s".into(),
            },
            "a",
            1,
            1,
        );
        fs::create_dir_all(&v1.memory_dir).expect("mkdir");
        fs::write(v1.memory_dir.join("memory.usage_in_bytes"), "8192\n").expect("write");
        fs::write(v1.memory_dir.join("memory.max_usage_in_bytes"), "9000\n").expect("write");
        fs::write(
            v1.memory_dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .expect("write");
        assert_eq!(v1.memory_usage().expect("usage"), 8192);
        assert_eq!(v1.memory_peak().expect("peak"), Some(9000));
        assert_eq!(v1.oom_kills().expect("oom"), 0);
        fs::write(
            v1.memory_dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .expect("write");
        assert_eq!(v1.oom_kills().expect("oom"), 2);
    }
}
