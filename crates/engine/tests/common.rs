#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use prereq::require;

use engine::{
    Engine, EngineConfig, FunctionSpec, InvokeOutcome, InvokeRequest, UnsandboxedLauncher,
};

/// A code directory with the given files (`name`, `content`); `#!` files are made executable.
pub fn code(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), files);
    dir
}

pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    for (name, content) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        if content.starts_with("#!") {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
}

pub fn spec(key: &str, runtime: &str, handler: &str, code_dir: &Path) -> FunctionSpec {
    FunctionSpec {
        key: key.into(),
        app_id: "1250000000".into(),
        uin: "100000000001".into(),
        region: "ap-guangzhou".into(),
        namespace: "default".into(),
        function_name: key.replace(['/', ':'], "-"),
        version: "$LATEST".into(),
        runtime: runtime.into(),
        handler: handler.into(),
        memory_mb: 128,
        timeout_s: 3,
        init_timeout_s: 10,
        env: vec![],
        code_dir: code_dir.to_path_buf(),
        layer_dirs: vec![],
        max_concurrency: None,
        public_net: false,
    }
}

pub fn engine(cfg: EngineConfig) -> Engine {
    Engine::new(cfg, Arc::new(UnsandboxedLauncher))
}

pub fn config() -> EngineConfig {
    EngineConfig {
        watch_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    }
}

pub async fn invoke(e: &Engine, s: &FunctionSpec, event: &str) -> InvokeOutcome {
    e.invoke(
        s,
        InvokeRequest {
            request_id: None,
            event: event.as_bytes().to_vec(),
            terminate: None,
        },
    )
    .await
    .expect("invoke")
}

pub fn has_python() -> bool {
    engine::runtimes::find_python3().is_some()
}

pub fn has_node() -> bool {
    engine::runtimes::find_node().is_some()
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

pub fn tmp_path(d: &tempfile::TempDir) -> PathBuf {
    d.path().to_path_buf()
}
