//! Preparation: everything that must hold before the first invocation of a snapshot can start. The code zip
//! unpacks safely within limits, the handler file (or an executable `scf_bootstrap`/`bootstrap`) exists, and
//! every bound layer version is there and unpacks too. Each problem becomes a `StatusReason` naming the file,
//! entry or layer.

use std::path::Path;

use model::{CodeRef, LayerRef, Snapshot, StatusReason};
use store::{BlobStore, StoreError};

/// Caps on what one snapshot may unpack to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareLimits {
    pub max_entries: u64,
    /// For the code and all its layers together.
    pub max_unpacked_bytes: u64,
    pub max_ratio: u64,
}

impl Default for PrepareLimits {
    fn default() -> Self {
        PrepareLimits {
            max_entries: 65_536,
            max_unpacked_bytes: 500 * 1024 * 1024,
            max_ratio: 1000,
        }
    }
}

impl PrepareLimits {
    fn unzip(&self, budget: u64) -> store::unzip::UnzipLimits {
        store::unzip::UnzipLimits {
            max_entries: self.max_entries,
            max_unpacked_bytes: budget,
            max_ratio: self.max_ratio,
        }
    }
}

pub(crate) fn reason_for_unpack(what: &str, e: StoreError) -> StatusReason {
    match e {
        StoreError::Unzip(u) => {
            StatusReason::new("InvalidParameterValue.ZipFile", format!("{what}: {u}"))
        }
        StoreError::BlobMissing { sha256 } => StatusReason::new(
            "InternalError",
            format!("{what}: stored content {sha256} is missing"),
        ),
        other => StatusReason::new("InternalError", format!("{what}: {other}")),
    }
}

/// The file a handler names, for runtimes whose handler is a file in the package.
fn handler_candidates(runtime: &str, handler: &str) -> Option<Vec<String>> {
    let (file, _func) = handler.rsplit_once('.')?;
    let exts: &[&str] = if runtime.starts_with("Python") {
        &[".py", "/__init__.py"]
    } else if runtime.starts_with("Nodejs") {
        &[".js", ".mjs", ".cjs"]
    } else if runtime.starts_with("Php") {
        &[".php"]
    } else if runtime.starts_with("Go") {
        &[""]
    } else {
        return None;
    };
    Some(exts.iter().map(|e| format!("{file}{e}")).collect())
}

/// Checks the unpacked code tree against the configuration's entry point.
pub(crate) fn check_entry_point(tree: &Path, snap: &Snapshot) -> Option<StatusReason> {
    let cfg = &snap.config;
    if cfg.runtime == "CustomRuntime" || cfg.function_type == "HTTP" {
        let found = ["scf_bootstrap", "bootstrap"]
            .iter()
            .any(|f| store::unzip::is_executable_file(&tree.join(f)));
        if found {
            return None;
        }
        let present = ["scf_bootstrap", "bootstrap"]
            .iter()
            .find(|f| tree.join(f).symlink_metadata().is_ok());
        return Some(StatusReason::new(
            "InvalidParameterValue.Handler",
            match present {
                Some(f) => format!(
                    "`{f}` in the package is not an executable file: set its executable bit (chmod +x) before zipping"
                ),
                None => format!(
                    "a {} function needs an executable `scf_bootstrap` (or `bootstrap`) at the root of the package; none found",
                    if cfg.function_type == "HTTP" {
                        "web (HTTP)"
                    } else {
                        "CustomRuntime"
                    }
                ),
            },
        ));
    }
    let candidates = handler_candidates(&cfg.runtime, &cfg.handler)?;
    let found = candidates.iter().any(|c| {
        tree.join(c)
            .symlink_metadata()
            .map(|m| m.is_file())
            .unwrap_or(false)
    });
    if found {
        None
    } else {
        Some(StatusReason::new(
            "InvalidParameterValue.Handler",
            format!(
                "handler file `{}` (from Handler `{}`) was not found in the code package",
                candidates[0], cfg.handler
            ),
        ))
    }
}

/// Unpacks the code and the given layers' contents and checks the entry point. Blocking: run it on a blocking
/// thread. Returns the reasons it cannot serve (empty: ready).
pub(crate) fn prepare_blocking(
    blobs: &BlobStore,
    snap: &Snapshot,
    layers: &[(LayerRef, CodeRef)],
    limits: &PrepareLimits,
) -> Vec<StatusReason> {
    let mut budget = limits.max_unpacked_bytes;
    let code = match blobs.ensure_unpacked(&snap.code.sha256, &limits.unzip(budget)) {
        Ok(t) => t,
        Err(e) => return vec![reason_for_unpack("code package", e)],
    };
    budget = budget.saturating_sub(code.bytes);
    let mut reasons = Vec::new();
    if let Some(r) = check_entry_point(&code.path, snap) {
        reasons.push(r);
    }
    for (l, content) in layers {
        match blobs.ensure_unpacked(&content.sha256, &limits.unzip(budget)) {
            Ok(t) if t.bytes <= budget => budget -= t.bytes,
            Ok(t) => reasons.push(StatusReason::new(
                "InvalidParameterValue.Layers",
                format!(
                    "layer {} version {} unpacks to {} bytes, more than the {} bytes left of the {}-byte limit for a function with its layers",
                    l.name, l.version, t.bytes, budget, limits.max_unpacked_bytes
                ),
            )),
            Err(e) => reasons.push(reason_for_unpack(
                &format!("layer {} version {}", l.name, l.version),
                e,
            )),
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::FunctionConfig;

    fn snap(runtime: &str, handler: &str) -> Snapshot {
        Snapshot {
            code: CodeRef {
                sha256: String::new(),
                size: 0,
            },
            config: FunctionConfig {
                runtime: runtime.into(),
                handler: handler.into(),
                ..FunctionConfig::default()
            },
        }
    }

    #[test]
    fn entry_points() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path();
        std::fs::write(t.join("index.py"), "def main_handler(e, c): return e").expect("write");
        std::fs::write(t.join("app.js"), "exports.h = async () => 1").expect("write");
        assert!(check_entry_point(t, &snap("Python3.9", "index.main_handler")).is_none());
        assert!(check_entry_point(t, &snap("Nodejs18.15", "app.h")).is_none());
        let missing =
            check_entry_point(t, &snap("Python3.9", "main.main_handler")).expect("reason");
        assert!(missing.message.contains("main.py"), "{}", missing.message);
        let no_boot = check_entry_point(t, &snap("CustomRuntime", "x.y")).expect("reason");
        assert!(no_boot.message.contains("scf_bootstrap"));
        std::fs::write(t.join("scf_bootstrap"), "#!/bin/sh\n").expect("write");
        let not_exec = check_entry_point(t, &snap("CustomRuntime", "x.y")).expect("reason");
        assert!(
            not_exec.message.contains("not an executable"),
            "{}",
            not_exec.message
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            t.join("scf_bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        assert!(check_entry_point(t, &snap("CustomRuntime", "x.y")).is_none());
        // Java handlers live in a jar: not checked here.
        assert!(check_entry_point(t, &snap("Java8", "a.B::c")).is_none());
    }
}
