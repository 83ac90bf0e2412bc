//! Runtime names → how to start them: the interpreters of the built-in runtimes and the custom runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Python bootstrap, run with `python3 -I -c`.
pub const PYTHON_BOOTSTRAP: &str = include_str!("../bootstrap/python.py");
/// The Node.js bootstrap, run with `node -e`.
pub const NODE_BOOTSTRAP: &str = include_str!("../bootstrap/node.js");

/// The families of runtimes the engine knows how to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Python,
    Node,
    Custom,
}

impl Family {
    /// The family of an SCF runtime name, if the engine can run it at all.
    pub fn of(runtime: &str) -> Option<Family> {
        if runtime == "CustomRuntime" {
            Some(Family::Custom)
        } else if runtime.starts_with("Python3") {
            Some(Family::Python)
        } else if runtime.starts_with("Nodejs") {
            Some(Family::Node)
        } else {
            None
        }
    }
}

/// Which interpreter serves which runtime name.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// The interpreter for every `Python3.*` name; `None` finds the host's `python3` (resolved through shims).
    pub python3: Option<PathBuf>,
    /// The interpreter for every `Nodejs*` name; `None` finds the host's `node`.
    pub node: Option<PathBuf>,
    /// Exact runtime names mapped to an interpreter of their family, overriding the above (e.g. `Python3.6` to an
    /// older Python).
    pub overrides: HashMap<String, PathBuf>,
    /// Runtime names refused even though an interpreter exists.
    pub disabled: Vec<String>,
}

/// Resolves runtime names to interpreters, probing the host once per interpreter.
pub struct Runtimes {
    cfg: RuntimeConfig,
    python3: OnceLock<Option<PathBuf>>,
    node: OnceLock<Option<PathBuf>>,
}

impl Runtimes {
    pub fn new(cfg: RuntimeConfig) -> Runtimes {
        Runtimes {
            cfg,
            python3: OnceLock::new(),
            node: OnceLock::new(),
        }
    }

    /// The interpreter for a runtime name (`None`: not available here). For `CustomRuntime` there is no
    /// interpreter: it returns an empty path. Blocking on the first call per family (probes the host).
    pub fn interpreter(&self, runtime: &str) -> Option<PathBuf> {
        if self.cfg.disabled.iter().any(|d| d == runtime) {
            return None;
        }
        let family = Family::of(runtime)?;
        if let Some(p) = self.cfg.overrides.get(runtime) {
            return Some(p.clone());
        }
        match family {
            Family::Custom => Some(PathBuf::new()),
            Family::Python => self
                .python3
                .get_or_init(|| match &self.cfg.python3 {
                    Some(p) => Some(p.clone()),
                    None => find_python3(),
                })
                .clone(),
            Family::Node => self
                .node
                .get_or_init(|| match &self.cfg.node {
                    Some(p) => Some(p.clone()),
                    None => find_node(),
                })
                .clone(),
        }
    }
}

/// Looks a program up on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The host's python3 as a real path: a version-manager shim (pyenv) costs ~140 ms per start, so ask the
/// interpreter for its own executable once and canonicalise that.
pub fn find_python3() -> Option<PathBuf> {
    let on_path = which("python3")?;
    let asked = Command::new(&on_path)
        .args(["-I", "-c", "import sys;print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| !p.as_os_str().is_empty() && is_executable(p));
    let exe = asked.unwrap_or(on_path);
    std::fs::canonicalize(&exe).ok().or(Some(exe))
}

/// The host's node as a real path.
pub fn find_node() -> Option<PathBuf> {
    let on_path = which("node")?;
    std::fs::canonicalize(&on_path).ok().or(Some(on_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(Family::of("Python3.9"), Some(Family::Python));
        assert_eq!(Family::of("Python2.7"), None);
        assert_eq!(Family::of("Nodejs18.15"), Some(Family::Node));
        assert_eq!(Family::of("CustomRuntime"), Some(Family::Custom));
        assert_eq!(Family::of("Go1"), None);
    }

    #[test]
    fn overrides_and_disabled() {
        let rt = Runtimes::new(RuntimeConfig {
            python3: Some("/x/python3".into()),
            node: Some("/x/node".into()),
            overrides: [("Python3.6".to_string(), PathBuf::from("/y/python3.6"))].into(),
            disabled: vec!["Nodejs6.10".into()],
        });
        assert_eq!(rt.interpreter("Python3.9"), Some("/x/python3".into()));
        assert_eq!(rt.interpreter("Python3.6"), Some("/y/python3.6".into()));
        assert_eq!(rt.interpreter("Nodejs12.16"), Some("/x/node".into()));
        assert_eq!(rt.interpreter("Nodejs6.10"), None);
        assert_eq!(rt.interpreter("Php7"), None);
    }
}
