//! Pools: warm reuse, concurrency over several instances, throttling, retirement, idle reaping.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use engine::{Engine, EngineConfig, EngineError, FunctionSpec, InvokeOutcome, InvokeRequest};

const PID_SLEEP: &str = "import os, time\ndef main(event, context):\n    time.sleep(event.get('sleep', 0))\n    return os.getpid()\n";

fn pid_alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_invokes_use_several_instances() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(EngineConfig {
        max_per_function: 32,
        max_per_account: 64,
        ..config()
    });
    let s = spec("conc", "Python3.9", "index.main", dir.path());
    let run_wave = |sleep: f64| {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (e, s) = (e.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                invoke(&e, &s, &format!(r#"{{"sleep": {sleep}}}"#)).await
            }));
        }
        tasks
    };
    let mut pids = HashSet::new();
    for t in run_wave(0.3) {
        let out = t.await.expect("join");
        assert_eq!(out.status_code, 200, "{:?}\n{}", out.result, out.log);
        pids.insert(out.ret_msg().to_string());
    }
    assert!(
        pids.len() > 1,
        "20 concurrent invokes on {} instance(s)",
        pids.len()
    );
    let stats = e.stats();
    assert_eq!(stats.busy, 0);
    assert_eq!(stats.idle as usize, pids.len());
    // A second wave finds warm instances.
    let mut warm = 0;
    for t in run_wave(0.05) {
        let out = t.await.expect("join");
        assert_eq!(out.status_code, 200);
        warm += usize::from(!out.cold_start);
    }
    assert!(warm >= pids.len().min(20) / 2, "only {warm} warm invokes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_limits_invokes_are_throttled_not_queued() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(EngineConfig {
        max_per_function: 2,
        max_per_account: 3,
        ..config()
    });
    let a = spec("lim-a", "Python3.9", "index.main", dir.path());
    let b = spec("lim-b", "Python3.9", "index.main", dir.path());
    let slow = |s: &engine::FunctionSpec| {
        let (e, s) = (e.clone(), s.clone());
        tokio::spawn(async move { invoke(&e, &s, r#"{"sleep": 1.5}"#).await })
    };
    let running = vec![slow(&a), slow(&a)];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    let err = e
        .invoke(&a, InvokeRequest::default())
        .await
        .expect_err("third concurrent invoke of the function");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "throttling must not wait"
    );
    assert!(
        matches!(
            err,
            EngineError::Throttled {
                scope: "the function",
                limit: 2
            }
        ),
        "{err}"
    );
    // Another function of the same account fits once, then the account is full.
    let third = slow(&b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = e
        .invoke(&b, InvokeRequest::default())
        .await
        .expect_err("fourth concurrent invoke of the account");
    assert!(
        matches!(
            err,
            EngineError::Throttled {
                scope: "the account",
                limit: 3
            }
        ),
        "{err}"
    );
    // Another account is not affected.
    let mut other = b.clone();
    other.app_id = "1250000001".into();
    other.key = "lim-other".into();
    let out = invoke(&e, &other, "{}").await;
    assert_eq!(out.status_code, 200);
    for t in running.into_iter().chain([third]) {
        assert_eq!(t.await.expect("join").status_code, 200);
    }
    // Capacity is back.
    assert_eq!(invoke(&e, &a, "{}").await.status_code, 200);
    // A function's own limit wins over the default.
    let mut one = a.clone();
    one.key = "lim-one".into();
    one.function_name = "one".into();
    one.max_concurrency = Some(1);
    let first = slow(&one);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = e
        .invoke(&one, InvokeRequest::default())
        .await
        .expect_err("limit 1");
    assert!(
        matches!(err, EngineError::Throttled { limit: 1, .. }),
        "{err}"
    );
    assert_eq!(first.await.expect("join").status_code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_drains_idle_and_busy_instances() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(config());
    let s = spec("ret", "Python3.9", "index.main", dir.path());
    let out = invoke(&e, &s, "{}").await;
    let idle_pid: i64 = out.ret_msg().parse().expect("pid");
    assert_eq!(e.idle_instances("ret"), 1);
    // One more instance busy while retiring.
    let busy = {
        let (e, s) = (e.clone(), s.clone());
        tokio::spawn(async move {
            let first = invoke(&e, &s, r#"{"sleep": 0.5}"#).await;
            // Takes the idle one; the second concurrent call starts another.
            first
        })
    };
    let busy2 = {
        let (e, s) = (e.clone(), s.clone());
        tokio::spawn(async move { invoke(&e, &s, r#"{"sleep": 0.5}"#).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(e.retire("ret"), 0, "both instances are busy");
    let pids: Vec<i64> = [busy.await, busy2.await]
        .into_iter()
        .map(|r| r.expect("join").ret_msg().parse().expect("pid"))
        .collect();
    assert!(pids.contains(&idle_pid));
    assert_eq!(
        e.idle_instances("ret"),
        0,
        "retired instances must not go back to the pool"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    for p in &pids {
        assert!(!pid_alive(*p), "instance {p} still runs");
    }
    // Idle ones are stopped at once.
    let out = invoke(&e, &s, "{}").await;
    assert!(out.cold_start);
    let pid: i64 = out.ret_msg().parse().expect("pid");
    assert_eq!(e.retire("ret"), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pid_alive(pid));
    assert_eq!(e.stats().pools, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_instances_are_reaped() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(EngineConfig {
        idle_ttl: Duration::from_millis(200),
        reap_interval: Duration::from_millis(50),
        ..config()
    });
    let s = spec("reap", "Python3.9", "index.main", dir.path());
    let pid: i64 = invoke(&e, &s, "{}").await.ret_msg().parse().expect("pid");
    assert_eq!(e.idle_instances("reap"), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(e.idle_instances("reap"), 0);
    assert!(!pid_alive(pid));
    assert_eq!(e.stats(), engine::EngineStats::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_invocation_stops_its_instance() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(config());
    let s = spec("cancel", "Python3.9", "index.main", dir.path());
    let pid: i64 = invoke(&e, &s, "{}").await.ret_msg().parse().expect("pid");
    let call = e.invoke(
        &s,
        InvokeRequest {
            request_id: None,
            event: br#"{"sleep": 5}"#.to_vec(),
            terminate: None,
        },
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pid_alive(pid));
    assert_eq!(e.stats().busy, 0);
    assert_eq!(e.idle_instances("cancel"), 0);
}

#[tokio::test]
async fn unknown_runtime_is_refused() {
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(config());
    assert!(!e.is_runtime_available("Go1"));
    assert!(e.is_runtime_available("CustomRuntime"));
    let err = e
        .invoke(
            &spec("go", "Go1", "main", dir.path()),
            InvokeRequest::default(),
        )
        .await
        .expect_err("Go");
    assert!(matches!(err, EngineError::RuntimeUnavailable(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_idle_instance_makes_room() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(EngineConfig {
        max_instances: 2,
        ..config()
    });
    let specs: Vec<_> = (0..3)
        .map(|i| spec(&format!("lru-{i}"), "Python3.9", "index.main", dir.path()))
        .collect();
    let first: i64 = invoke(&e, &specs[0], "{}")
        .await
        .ret_msg()
        .parse()
        .expect("pid");
    invoke(&e, &specs[1], "{}").await;
    invoke(&e, &specs[2], "{}").await;
    assert_eq!(e.stats().idle, 2);
    assert_eq!(
        e.idle_instances("lru-0"),
        0,
        "the oldest idle instance was stopped"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pid_alive(first));
    assert!(!invoke(&e, &specs[2], "{}").await.cold_start);
    let tail = invoke(&e, &specs[1], "{}").await;
    assert!(tail.log_tail().len() <= engine::log::TAIL_BYTES);
}

const IGNORES_SIGTERM: &str = "import signal, time\n\
def main(event, context):\n    \
signal.signal(signal.SIGTERM, lambda s, f: print('got SIGTERM', flush=True))\n    \
time.sleep(event.get('sleep', 0))\n    return 'slept'\n";

async fn terminated(e: &Engine, s: &FunctionSpec, sleep: u32, grace: Duration) -> InvokeOutcome {
    let (tx, rx) = tokio::sync::watch::channel(None);
    let call = e.invoke(
        s,
        InvokeRequest {
            request_id: None,
            event: format!("{{\"sleep\": {sleep}}}").into_bytes(),
            terminate: Some(rx),
        },
    );
    tokio::pin!(call);
    // Let the handler install its signal handler first.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut call).await;
    assert!(early.is_err(), "still running before the stop");
    tx.send(Some(grace)).expect("the invocation watches");
    call.await.expect("invoke")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_signals_the_instance_then_kills_it_after_the_grace_period() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", IGNORES_SIGTERM)]);
    let e = engine(config());
    let mut s = spec("grace", "Python3.9", "index.main", dir.path());
    s.timeout_s = 20;
    // A warm instance: the handler installs its own before the stop (a stop asked during a cold start is signalled
    // as the invocation begins).
    invoke(&e, &s, "{}").await;
    let t = std::time::Instant::now();
    let o = terminated(&e, &s, 10, Duration::from_millis(700)).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_secs(5),
        "killed after the grace period: {took:?}"
    );
    assert_eq!(o.status_code, 439, "{:?}", o.result);
    assert!(
        o.log.contains("[PLATFORM] Signal received successfully."),
        "{}",
        o.log
    );
    assert!(o.log.contains("got SIGTERM"), "the handler ran: {}", o.log);
    assert_eq!(
        e.idle_instances("grace"),
        0,
        "a killed instance does not serve again"
    );
    // A function that ends within the grace period returns its result, and its instance serves on.
    let o = terminated(&e, &s, 1, Duration::from_secs(5)).await;
    assert_eq!(o.ret_msg(), "\"slept\"", "{:?}", o.result);
    assert!(
        o.log.contains("[PLATFORM] Signal received successfully."),
        "{}",
        o.log
    );
    assert_eq!(e.idle_instances("grace"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_of_a_function_without_a_handler_ends_it_at_once() {
    require!(has_python(), "python3");
    let dir = code(&[("index.py", PID_SLEEP)]);
    let e = engine(config());
    let mut s = spec("grace-default", "Python3.9", "index.main", dir.path());
    s.timeout_s = 20;
    let t = std::time::Instant::now();
    let o = terminated(&e, &s, 10, Duration::from_secs(10)).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(o.status_code, 439, "{:?}", o.result);
    assert!(
        o.log.contains("[PLATFORM] Signal received successfully."),
        "{}",
        o.log
    );
}
