//! Preparation: everything that must hold before the first invocation of a snapshot can start. The code zip
//! unpacks safely within limits, the handler file (or an executable `scf_bootstrap`/`bootstrap`) exists, and
//! every bound layer version is there and unpacks too. Each problem becomes a `StatusReason` naming the file,
//! entry or layer.
//!
//! The code is checked, not unpacked: every entry is decompressed and its checksum verified in memory
//! (`store::unzip::check`), and the entry point is looked up in the resulting listing. The tree is written on
//! this node's disk when an instance first needs it, so creating a function makes no file; a snapshot that is
//! `Active` unpacks.

use model::{CodeRef, LayerRef, Snapshot, StatusReason};
use store::unzip::{ListedKind, Listing};
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

/// Checks the code package's listing against the configuration's entry point.
pub(crate) fn check_entry_point(tree: &Listing, snap: &Snapshot) -> Option<StatusReason> {
    let cfg = &snap.config;
    if cfg.runtime == "CustomRuntime" || cfg.function_type == "HTTP" {
        let found = ["scf_bootstrap", "bootstrap"]
            .iter()
            .any(|f| tree.kind(f, true) == Some(ListedKind::File { executable: true }));
        if found {
            return None;
        }
        let present = ["scf_bootstrap", "bootstrap"]
            .iter()
            .find(|f| tree.kind(f, false).is_some());
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
    let found = candidates
        .iter()
        .any(|c| matches!(tree.kind(c, false), Some(ListedKind::File { .. })));
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

/// Checks the code package (its bytes, `zip`) and the entry point, and unpacks the given layers' contents.
/// Blocking: run it on a blocking thread. Returns the reasons it cannot serve (empty: ready).
pub(crate) fn prepare_blocking(
    blobs: &BlobStore,
    snap: &Snapshot,
    zip: &[u8],
    layers: &[(LayerRef, CodeRef)],
    limits: &PrepareLimits,
) -> Vec<StatusReason> {
    let mut budget = limits.max_unpacked_bytes;
    let code = match store::unzip::check(zip, &limits.unzip(budget)) {
        Ok(t) => t,
        Err(e) => return vec![reason_for_unpack("code package", e.into())],
    };
    budget = budget.saturating_sub(code.unpacked.bytes);
    let mut reasons = Vec::new();
    if let Some(r) = check_entry_point(&code, snap) {
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

    fn listing(entries: &[testkit::zips::Entry<'_>]) -> Listing {
        store::unzip::check(
            &testkit::zips::build(entries),
            &store::unzip::UnzipLimits::default(),
        )
        .expect("check")
    }

    #[test]
    fn entry_points() {
        use testkit::zips::{Entry, file};
        let t = listing(&[
            file("index.py", b"def main_handler(e, c): return e"),
            file("app.js", b"exports.h = async () => 1"),
            Entry::Symlink {
                name: "linked.py",
                target: "index.py",
            },
        ]);
        assert!(check_entry_point(&t, &snap("Python3.9", "index.main_handler")).is_none());
        assert!(check_entry_point(&t, &snap("Nodejs18.15", "app.h")).is_none());
        let missing =
            check_entry_point(&t, &snap("Python3.9", "main.main_handler")).expect("reason");
        assert!(missing.message.contains("main.py"), "{}", missing.message);
        // A handler file must be a regular file, as before an instance imports it.
        assert!(check_entry_point(&t, &snap("Python3.9", "linked.main_handler")).is_some());
        let no_boot = check_entry_point(&t, &snap("CustomRuntime", "x.y")).expect("reason");
        assert!(no_boot.message.contains("scf_bootstrap"));
        let t = listing(&[file("scf_bootstrap", b"#!/bin/sh\n")]);
        let not_exec = check_entry_point(&t, &snap("CustomRuntime", "x.y")).expect("reason");
        assert!(
            not_exec.message.contains("not an executable"),
            "{}",
            not_exec.message
        );
        let exec = |name| Entry::File {
            name,
            mode: 0o755,
            data: b"#!/bin/sh\n",
        };
        let t = listing(&[exec("scf_bootstrap")]);
        assert!(check_entry_point(&t, &snap("CustomRuntime", "x.y")).is_none());
        // A symlink to an executable inside the package does; one to a directory does not.
        let t = listing(&[
            exec("bin/start"),
            Entry::Symlink {
                name: "bootstrap",
                target: "bin/start",
            },
        ]);
        assert!(check_entry_point(&t, &snap("CustomRuntime", "x.y")).is_none());
        let t = listing(&[
            exec("bin/start"),
            Entry::Symlink {
                name: "bootstrap",
                target: "bin",
            },
        ]);
        assert!(check_entry_point(&t, &snap("CustomRuntime", "x.y")).is_some());
        // Java handlers live in a jar: not checked here.
        assert!(check_entry_point(&t, &snap("Java8", "a.B::c")).is_none());
    }
}
