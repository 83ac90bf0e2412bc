//! Engine micro-benchmark: warm invoke latency (engine only, no HTTP) and cold start, with floors measured in the
//! same run. Not a test: it prints numbers.
//!
//! `cargo run --release -p engine --example engine_bench -- [warm invokes, default 1000] [cold starts, default 20]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Engine, EngineConfig, FunctionSpec, InvokeRequest, UnsandboxedLauncher};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn show(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "{name:<34} n={:<5} median {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  mean {:>9.1?}",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v[v.len() - 1],
        mean
    );
}

fn spec(key: &str, runtime: &str, dir: &std::path::Path) -> FunctionSpec {
    FunctionSpec {
        key: key.into(),
        app_id: "1250000000".into(),
        uin: "1".into(),
        region: "ap-guangzhou".into(),
        namespace: "default".into(),
        function_name: key.into(),
        version: "$LATEST".into(),
        runtime: runtime.into(),
        handler: "index.main".into(),
        memory_mb: 128,
        timeout_s: 3,
        init_timeout_s: 10,
        env: vec![],
        code_dir: dir.to_path_buf(),
        layer_dirs: vec![],
        max_concurrency: None,
        public_net: false,
    }
}

fn time_cmd(program: &std::path::Path, args: &[&str], cwd: &std::path::Path) -> Duration {
    let t = Instant::now();
    let st = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .current_dir(cwd)
        .status()
        .expect("run floor");
    assert!(st.success());
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let warm_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let cold_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("index.py"),
        "def main(event, context):\n    return event\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("index.js"),
        "exports.main = (event, context) => event;\n",
    )
    .expect("write");
    let mut cfg = EngineConfig::default();
    if let Ok(flags) = std::env::var("BENCH_NODE_FLAGS") {
        cfg.node_flags = flags.split_whitespace().map(str::to_string).collect();
    }
    if let Ok(flags) = std::env::var("BENCH_PYTHON_FLAGS") {
        cfg.python_flags = flags.split_whitespace().map(str::to_string).collect();
    }
    println!(
        "python flags {:?}, node flags {:?}",
        cfg.python_flags, cfg.node_flags
    );
    let engine = Engine::new(cfg, Arc::new(UnsandboxedLauncher));
    let event = br#"{"hello":"world","n":1}"#.to_vec();
    let python = engine::runtimes::find_python3();
    let node = engine::runtimes::find_node();
    println!(
        "engine_bench: {warm_n} warm invokes, {cold_n} cold starts; python3={python:?} node={node:?}"
    );
    println!(
        "cores: {:?}",
        std::thread::available_parallelism().map(|n| n.get())
    );

    for (runtime, interp, floor_args) in [
        (
            "Python3.9",
            python.clone(),
            // -I drops the working directory from sys.path: put it back, as the bootstrap does.
            vec![
                "-I",
                "-S",
                "-c",
                "import sys; sys.path.insert(0, ''); import index",
            ],
        ),
        (
            "Nodejs18.15",
            node.clone(),
            vec!["-e", "require('./index')"],
        ),
    ] {
        let Some(interp) = interp else {
            println!("{runtime}: interpreter not found, skipped");
            continue;
        };
        let s = spec(&format!("bench-{runtime}"), runtime, dir.path());
        let first = engine
            .invoke(
                &s,
                InvokeRequest {
                    request_id: None,
                    event: event.clone(),
                    terminate: None,
                },
            )
            .await
            .expect("invoke");
        assert_eq!(first.status_code, 200, "{:?}", first.result);
        for _ in 0..50 {
            engine
                .invoke(
                    &s,
                    InvokeRequest {
                        request_id: None,
                        event: event.clone(),
                        terminate: None,
                    },
                )
                .await
                .expect("warm-up");
        }
        let mut warm = Vec::with_capacity(warm_n);
        let mut mem = 0;
        for _ in 0..warm_n {
            let t = Instant::now();
            let out = engine
                .invoke(
                    &s,
                    InvokeRequest {
                        request_id: None,
                        event: event.clone(),
                        terminate: None,
                    },
                )
                .await
                .expect("invoke");
            warm.push(t.elapsed());
            assert!(!out.cold_start);
            mem = out.mem_usage_bytes;
        }
        show(&format!("{runtime} warm invoke"), warm);
        println!(
            "{:<34} {:.1} MiB RSS",
            format!("{runtime} warm instance"),
            mem as f64 / 1048576.0
        );

        let mut cold = Vec::new();
        let mut reported = Vec::new();
        for i in 0..cold_n {
            let s = spec(&format!("bench-cold-{runtime}-{i}"), runtime, dir.path());
            let t = Instant::now();
            let out = engine
                .invoke(
                    &s,
                    InvokeRequest {
                        request_id: None,
                        event: event.clone(),
                        terminate: None,
                    },
                )
                .await
                .expect("invoke");
            cold.push(t.elapsed());
            assert!(out.cold_start && out.status_code == 200);
            reported.push(Duration::from_secs_f64(out.init_ms / 1000.0));
            engine.retire(&s.key);
        }
        show(&format!("{runtime} cold invoke (total)"), cold);
        show(&format!("{runtime} cold start (Coldstart)"), reported);
        let floor: Vec<Duration> = (0..cold_n)
            .map(|_| time_cmd(&interp, &floor_args, dir.path()))
            .collect();
        show(
            &format!(
                "floor: {} {}",
                interp.file_name().unwrap_or_default().to_string_lossy(),
                floor_args.join(" ")
            ),
            floor,
        );
    }
    engine.shutdown();
}
