//! Can this host sandbox instances?

use std::fs;
use std::path::Path;

use crate::cgroup::{CgroupConfig, CgroupVersion};

/// Capabilities the helper needs (bit numbers from `linux/capability.h`).
const CAPABILITIES: &[(u32, &str)] = &[
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (12, "CAP_NET_ADMIN"),
    (21, "CAP_SYS_ADMIN"),
];

const NAMESPACES: &[(&str, &str)] = &[
    ("mnt", "max_mnt_namespaces"),
    ("pid", "max_pid_namespaces"),
    ("net", "max_net_namespaces"),
    ("ipc", "max_ipc_namespaces"),
    ("uts", "max_uts_namespaces"),
    ("cgroup", "max_cgroup_namespaces"),
];

/// Whether this host can sandbox instances with the detected cgroup version; `Err` lists every reason not.
pub fn check_privileges() -> Result<(), String> {
    check_privileges_with(&CgroupConfig::detect())
}

/// [`check_privileges`] for a given cgroup configuration. Creates the cgroup parent directories (empty) if
/// they are missing, since that is the real test of being allowed to.
pub fn check_privileges_with(cgroup: &CgroupConfig) -> Result<(), String> {
    let mut problems = Vec::new();

    match effective_capabilities() {
        Some(caps) => {
            let missing: Vec<&str> = CAPABILITIES
                .iter()
                .filter(|(bit, _)| caps & (1u64 << bit) == 0)
                .map(|(_, name)| *name)
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "missing capabilities {} (run as root)",
                    missing.join(", ")
                ));
            }
        }
        None => {
            problems.push("cannot read the process's capabilities from /proc/self/status".into())
        }
    }

    for (ns, limit) in NAMESPACES {
        if !Path::new("/proc/self/ns").join(ns).exists() {
            problems.push(format!("the kernel has no {ns} namespaces"));
        } else if let Ok(text) = fs::read_to_string(Path::new("/proc/sys/user").join(limit))
            && text.trim() == "0"
        {
            problems.push(format!(
                "{ns} namespaces are disabled (/proc/sys/user/{limit} is 0)"
            ));
        }
    }

    match cgroup.version {
        CgroupVersion::V1 => {
            for (controller, file) in [("memory", "memory.limit_in_bytes"), ("pids", "pids.max")] {
                let dir = cgroup.root.join(controller).join(&cgroup.parent);
                if let Err(e) = fs::create_dir_all(&dir) {
                    problems.push(format!("cannot create the cgroup {}: {e}", dir.display()));
                } else if !dir.join(file).exists() {
                    problems.push(format!(
                        "{} has no {file}: is the {controller} controller mounted?",
                        dir.display()
                    ));
                }
            }
        }
        CgroupVersion::V2 => {
            let available =
                fs::read_to_string(cgroup.root.join("cgroup.controllers")).unwrap_or_default();
            for controller in ["memory", "pids"] {
                if !available.split_whitespace().any(|c| c == controller) {
                    problems.push(format!(
                        "the cgroup v2 {controller} controller is not available"
                    ));
                }
            }
            let dir = cgroup.root.join(&cgroup.parent);
            if let Err(e) = fs::create_dir_all(&dir) {
                problems.push(format!("cannot create the cgroup {}: {e}", dir.display()));
            }
        }
    }

    if !fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.ends_with("\toverlay")))
    {
        problems.push("overlayfs is not available (needed to merge layers)".into());
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn effective_capabilities() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}
