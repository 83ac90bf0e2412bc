//! B6, scale: N functions registered (an account holds at most 5 namespaces of 1,000 functions, so they are
//! spread over ⌈N / 5,000⌉ accounts made with `stratus account create`), then GetFunction and ListFunctions
//! (Limit 20) latency, the server's RSS and the database size. The floor is GetAccount of the development
//! account, which holds no function, interleaved with the measured calls on the same connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::fixture::{Rng, base64, python_zip};
use crate::http::{Client, Creds};
use crate::report::{Figure, Measure, Section, Target};
use crate::scf::{count_status, create_function, create_namespace, get_account, run_concurrent};
use crate::server::Server;
use crate::stats::Summary;

/// Functions per namespace and namespaces per account (the server's default limits).
const PER_NAMESPACE: usize = 1000;
const NAMESPACES: usize = 5;
const PER_ACCOUNT: usize = PER_NAMESPACE * NAMESPACES;
const SAMPLES: usize = 1000;
const IDLE: Duration = Duration::from_secs(5);

/// Where function `i` lives: (account index, namespace, name).
pub fn placement(i: usize) -> (usize, String, String) {
    let account = i / PER_ACCOUNT;
    let ns = (i % PER_ACCOUNT) / PER_NAMESPACE;
    (account, namespace_name(ns), format!("f{i:07}"))
}

fn namespace_name(ns: usize) -> String {
    if ns == 0 {
        "default".into()
    } else {
        format!("b6-{ns}")
    }
}

pub fn run(
    server: &Server,
    functions: usize,
    concurrency: usize,
    backlog: usize,
    db: &str,
) -> anyhow::Result<Section> {
    if server.pid.is_none() {
        bail!(
            "B6 needs a server the bench starts (it creates accounts on its database): run it without --endpoint"
        );
    }
    if functions == 0 {
        bail!("--functions must be at least 1");
    }
    let mut sec = Section {
        bench: "B6",
        title: format!(
            "scale on {db}: {functions} functions registered, then GetFunction and ListFunctions (Limit 20) latency, RSS, database size"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let ep = &server.endpoint;
    let accounts_needed = functions.div_ceil(PER_ACCOUNT);
    eprintln!("B6: creating {accounts_needed} accounts…");
    let accounts: Vec<Creds> = (0..accounts_needed)
        .map(|_| server.create_account())
        .collect::<anyhow::Result<_>>()?;
    let mut c = Client::connect(ep)?;
    for (a, creds) in accounts.iter().enumerate() {
        let holds = (functions - a * PER_ACCOUNT).min(PER_ACCOUNT);
        for ns in 1..holds.div_ceil(PER_NAMESPACE) {
            create_namespace(&mut c, creds, &namespace_name(ns))?;
        }
    }
    // One package for all: B6 is about metadata at scale, and 100,000 distinct blobs would only measure the disk.
    let zip = base64(&python_zip("b6")?);

    // The namespaces in creation order, with how many functions each gets.
    let mut namespaces: Vec<(usize, String, u64)> = Vec::new();
    for a in 0..accounts_needed {
        let holds = (functions - a * PER_ACCOUNT).min(PER_ACCOUNT);
        for ns in 0..holds.div_ceil(PER_NAMESPACE) {
            let n = (holds - ns * PER_NAMESPACE).min(PER_NAMESPACE) as u64;
            namespaces.push((a, namespace_name(ns), n));
        }
    }
    eprintln!(
        "B6: registering {functions} functions at concurrency {concurrency}, at most {} waiting for the workers…",
        if backlog == 0 {
            "all".to_string()
        } else {
            backlog.to_string()
        }
    );
    let server_cpu0 = server.cpu();
    let done = AtomicUsize::new(0);
    // Namespaces (in creation order) whose functions are all Active.
    let complete = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let started = Instant::now();
    let (reg, all_active) = std::thread::scope(|s| {
        // Operations run oldest first, so namespaces become all Active in creation order: watch the first one
        // that is not yet, every 20 ms.
        let watcher = s.spawn(|| -> anyhow::Result<Instant> {
            let fail = |e: anyhow::Error| {
                abort.store(true, Ordering::SeqCst);
                e
            };
            let mut c = Client::connect(ep).map_err(fail)?;
            let deadline = Instant::now() + Duration::from_secs(1800);
            let mut last_report = Instant::now();
            for (k, (a, ns, n)) in namespaces.iter().enumerate() {
                let mut polls = 0u64;
                loop {
                    if abort.load(Ordering::SeqCst) {
                        bail!("registration aborted");
                    }
                    if count_status(&mut c, &accounts[*a], ns, "Active").map_err(fail)? >= *n {
                        break;
                    }
                    polls += 1;
                    if polls.is_multiple_of(100)
                        && count_status(&mut c, &accounts[*a], ns, "CreateFailed").map_err(fail)?
                            > 0
                    {
                        return Err(fail(anyhow::anyhow!(
                            "functions of account {a} namespace {ns} became CreateFailed"
                        )));
                    }
                    if Instant::now() >= deadline {
                        return Err(fail(anyhow::anyhow!(
                            "namespace {k} of {} is not all Active after 30 minutes",
                            namespaces.len()
                        )));
                    }
                    if last_report.elapsed() >= Duration::from_secs(10) {
                        last_report = Instant::now();
                        eprintln!(
                            "B6:   {:.0} s: {} created, {} Active",
                            started.elapsed().as_secs_f64(),
                            done.load(Ordering::Relaxed),
                            k * PER_NAMESPACE
                        );
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                complete.store(k + 1, Ordering::SeqCst);
            }
            Ok(Instant::now())
        });
        let r = run_concurrent(ep, concurrency, functions, Some(&done), |c, i| {
            // Keep at most `backlog` functions waiting for the workers.
            while backlog > 0 && i >= complete.load(Ordering::SeqCst) * PER_NAMESPACE + backlog {
                if abort.load(Ordering::SeqCst) {
                    bail!("registration aborted");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let (a, ns, name) = placement(i);
            create_function(c, &accounts[a], &ns, &name, &zip)
        });
        if r.is_err() {
            abort.store(true, Ordering::SeqCst);
        }
        let w = watcher
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the watcher panicked")));
        match (r, w) {
            (_, Err(e)) | (Err(e), _) => Err(e),
            (Ok(r), Ok(w)) => Ok((r, w)),
        }
    })?;
    sec.push(Figure::new(
        "B6",
        format!(
            "registration: creates → all Active (backlog ≤ {})",
            if backlog == 0 {
                "all".to_string()
            } else {
                backlog.to_string()
            }
        ),
        Measure::Rate {
            count: functions,
            secs: (all_active - reg.start).as_secs_f64(),
            unit: "functions/s",
        },
    ));
    if let Some(cpu) = server
        .cpu()
        .zip(server_cpu0)
        .map(|(b, a)| b.saturating_sub(a))
    {
        sec.note(format!(
            "registration used {:.1} s of server CPU (user+system), {:.2} ms per function",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e3 / functions as f64
        ));
    }
    let mem_line = |sec: &mut Section, what: &str, target: Option<Target>| -> anyhow::Result<()> {
        if let Some(m) = server.mem() {
            let m = m?;
            let mut f = Figure::new(
                "B6",
                format!("server RSS {what}"),
                Measure::Bytes(m.rss_bytes),
            );
            if let Some(t) = target {
                f = f.target(t);
            }
            sec.push(f);
        }
        Ok(())
    };
    mem_line(&mut sec, "after registration", None)?;

    eprintln!("B6: {SAMPLES} × GetAccount, GetFunction, ListFunctions, interleaved…");
    let dev = &server.creds;
    let mut rng = Rng::new(0xB6);
    let total_ns = functions.div_ceil(PER_NAMESPACE);
    let mut floor = Vec::with_capacity(SAMPLES);
    let mut get = Vec::with_capacity(SAMPLES);
    let mut list = Vec::with_capacity(SAMPLES);
    for round in 0..SAMPLES + 50 {
        let t = Instant::now();
        get_account(&mut c, dev)?;
        let f = t.elapsed();
        let (a, ns, name) = placement(rng.below(functions as u64) as usize);
        let t = Instant::now();
        let v = c.call(
            &accounts[a],
            "GetFunction",
            &json!({ "FunctionName": name, "Namespace": ns }),
        )?;
        let g = t.elapsed();
        if v["FunctionName"].as_str() != Some(name.as_str()) {
            bail!("GetFunction {ns}/{name} returned {}", v["FunctionName"]);
        }
        // A random namespace, and a random page of it.
        let k = rng.below(total_ns as u64) as usize;
        let (a, ns, _) = placement(k * PER_NAMESPACE);
        let holds = (functions - k * PER_NAMESPACE).min(PER_NAMESPACE);
        let offset = rng.below(holds.saturating_sub(20) as u64 + 1);
        let t = Instant::now();
        let v = c.call(
            &accounts[a],
            "ListFunctions",
            &json!({ "Namespace": ns, "Limit": 20, "Offset": offset }),
        )?;
        let l = t.elapsed();
        let shown = v["Functions"].as_array().map_or(0, Vec::len);
        if shown != holds.min(20) {
            bail!("ListFunctions {ns} offset {offset} showed {shown} functions");
        }
        // The first rounds warm the connection and the caches.
        if round >= 50 {
            floor.push(f);
            get.push(g);
            list.push(l);
        }
    }
    let floor = Measure::Latency(Summary::of(&floor).ok_or_else(|| anyhow::anyhow!("no samples"))?);
    let floor_name = "GetAccount of an empty account, same connection";
    sec.push(Figure::new(
        "B6",
        "floor: GetAccount (account with no function)",
        floor.clone(),
    ));
    if let Some(s) = Summary::of(&get) {
        sec.push(
            Figure::new("B6", "GetFunction, random name", Measure::Latency(s))
                .floor(floor_name, floor.clone())
                .target(Target::Latency {
                    median_ms: None,
                    p99_ms: Some(2.0),
                }),
        );
    }
    if let Some(s) = Summary::of(&list) {
        sec.push(
            Figure::new(
                "B6",
                "ListFunctions, Limit 20, random namespace and offset",
                Measure::Latency(s),
            )
            .floor(floor_name, floor)
            .target(Target::Latency {
                median_ms: None,
                p99_ms: Some(10.0),
            }),
        );
    }
    mem_line(&mut sec, "after the load", None)?;
    eprintln!("B6: {IDLE:?} idle…");
    std::thread::sleep(IDLE);
    mem_line(
        &mut sec,
        &format!("after {} s idle", IDLE.as_secs()),
        Some(Target::BytesAtMost(150 * 1024 * 1024)),
    )?;
    if let Some(m) = server.mem() {
        sec.push(Figure::new(
            "B6",
            "server peak RSS (VmHWM)",
            Measure::Bytes(m?.hwm_bytes),
        ));
    }
    if let Some(size) = server.db_size() {
        let size = size?;
        sec.push(Figure::new(
            "B6",
            "database size",
            Measure::Bytes(size.total_bytes),
        ));
        sec.note(format!("database size: {}", size.detail));
    }
    sec.note(format!(
        "{functions} functions in {accounts_needed} accounts × up to {NAMESPACES} namespaces × {PER_NAMESPACE} (the per-account limits), all sharing one 1 KiB package; {SAMPLES} samples of each call after 50 warm-up rounds"
    ));
    Ok(sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_respect_the_limits() {
        assert_eq!(placement(0), (0, "default".into(), "f0000000".into()));
        assert_eq!(placement(999).1, "default");
        assert_eq!(placement(1000), (0, "b6-1".into(), "f0001000".into()));
        assert_eq!(placement(4999), (0, "b6-4".into(), "f0004999".into()));
        assert_eq!(placement(5000), (1, "default".into(), "f0005000".into()));
        assert_eq!(placement(99_999).0, 19);
    }
}
