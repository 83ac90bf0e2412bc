//! `stratus bench soak --minutes N`: a mixed load for N minutes (warm invokes in Python and Node.js, function
//! errors, timeouts, configuration updates that retire instances, creates and deletes with their cold starts,
//! refused calls and log reads), printing the server's resident memory, open files and threads each minute, and
//! a verdict on whether they stay flat: every sample after the warm-up within 10 % of the sample that ends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;

use crate::fixture::{base64, zip_file};
use crate::http::{Client, Creds, Endpoint};
use crate::report::{Figure, Measure, Section, Target};
use crate::server::{Server, read_mem};

const ECHO: &str = "def main_handler(event, context):\n    return event\n";
const FAIL: &str = "def main_handler(event, context):\n    raise ValueError('soak')\n";
const SLOW: &str = "import time\ndef main_handler(event, context):\n    time.sleep(3)\n";
const NODE: &str = "exports.main_handler = async (event) => ({ hello: 'world' });\n";
const LOUD: &str =
    "def main_handler(event, context):\n    print('x' * 200_000)\n    return 'y' * 100_000\n";

/// Growth allowed after the warm-up.
const FLAT: f64 = 1.10;

/// Samples of the server taken each minute.
const SAMPLES_PER_MINUTE: usize = 12;

/// The median of each quantity over a minute's samples.
pub fn median(samples: &[Sample]) -> Option<Sample> {
    let mid = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    };
    Some(Sample {
        rss: mid(samples.iter().map(|s| s.rss).collect())?,
        fds: mid(samples.iter().map(|s| s.fds).collect())?,
        threads: mid(samples.iter().map(|s| s.threads).collect())?,
    })
}

/// One sample of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub rss: u64,
    pub fds: u64,
    pub threads: u64,
}

fn sample(pid: u32) -> anyhow::Result<Sample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no Threads in /proc/{pid}/status"))?;
    Ok(Sample {
        rss: read_mem(pid)?.rss_bytes,
        fds,
        threads,
    })
}

/// How many of the first samples are warm-up: a third of the run, at least one minute. Until then the server's
/// bounded caches are still filling: the instance pool to its limit, and the page caches of its five SQLite
/// connections (2 MB each) as the records table grows past them; a run on this machine rose for six minutes and
/// then stayed within 4 % (BENCHMARKS.md).
pub fn warmup(minutes: usize) -> usize {
    (minutes / 3).max(1)
}

/// The largest of each quantity after the warm-up, beside the sample that ends it (each sample a minute's median).
pub fn after_warmup(samples: &[Sample], warm: usize) -> Option<(Sample, Sample)> {
    let base = *samples.get(warm.checked_sub(1)?)?;
    let rest = &samples[warm..];
    if rest.is_empty() {
        return None;
    }
    let max = Sample {
        rss: rest.iter().map(|s| s.rss).max()?,
        fds: rest.iter().map(|s| s.fds).max()?,
        threads: rest.iter().map(|s| s.threads).max()?,
    };
    Some((base, max))
}

/// One call; the reply's `Response`, which may hold an `Error` (the mix looks at its code).
fn raw(
    c: &mut Client,
    creds: &Creds,
    action: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    c.call_raw(creds, action, &serde_json::to_vec(body)?)
}

fn create(
    c: &mut Client,
    creds: &Creds,
    name: &str,
    runtime: &str,
    src: &str,
    timeout: u32,
) -> anyhow::Result<()> {
    let file = if runtime.starts_with("Nodejs") {
        "index.js"
    } else {
        "index.py"
    };
    let zip = zip_file(file, src.as_bytes())?;
    let r = raw(
        c,
        creds,
        "CreateFunction",
        &json!({"FunctionName": name, "Runtime": runtime, "Handler": "index.main_handler", "Timeout": timeout,
                "MemorySize": 128, "Code": {"ZipFile": base64(&zip)}}),
    )?;
    if let Some(e) = r.get("Error") {
        bail!("CreateFunction {name}: {e}");
    }
    wait_active(c, creds, name)
}

fn wait_active(c: &mut Client, creds: &Creds, name: &str) -> anyhow::Result<()> {
    for _ in 0..5_000 {
        let g = raw(c, creds, "GetFunction", &json!({"FunctionName": name}))?;
        match g["Status"].as_str() {
            Some("Active") => return Ok(()),
            Some("Creating" | "Updating") => std::thread::sleep(Duration::from_millis(2)),
            other => bail!("{name} ended {other:?}: {}", g["StatusReasons"]),
        }
    }
    bail!("{name} did not become Active")
}

/// What one call came to.
enum Outcome {
    Ok,
    /// An error the mix asks for (a function error, a timeout, a refused call).
    Expected,
}

fn invoke(c: &mut Client, creds: &Creds, name: &str, want_error: bool) -> anyhow::Result<Outcome> {
    let r = raw(
        c,
        creds,
        "Invoke",
        &json!({"FunctionName": name, "ClientContext": "{\"k\":\"v\"}"}),
    )?;
    if let Some(e) = r.get("Error") {
        bail!("Invoke {name}: {e}");
    }
    let failed = r["Result"]["InvokeResult"].as_i64() != Some(0);
    match (failed, want_error) {
        (false, false) => Ok(Outcome::Ok),
        (true, true) => Ok(Outcome::Expected),
        (true, false) => bail!("{name} failed: {}", r["Result"]["ErrMsg"]),
        (false, true) => bail!("{name} succeeded where it must fail"),
    }
}

struct Names {
    echo: String,
    fail: String,
    slow: String,
    node: String,
    loud: String,
    churn: String,
    tag: u64,
}

/// One step of the mix, chosen by the step's number.
fn step(
    c: &mut Client,
    creds: &Creds,
    n: &Names,
    client: usize,
    i: u64,
) -> anyhow::Result<Outcome> {
    match i % 50 {
        0 => {
            let name = format!("soak-tmp-{}-{client}-{i}", n.tag);
            create(c, creds, &name, "Python3.9", ECHO, 3)?;
            invoke(c, creds, &name, false)?;
            let r = raw(c, creds, "DeleteFunction", &json!({"FunctionName": name}))?;
            if let Some(e) = r.get("Error") {
                bail!("DeleteFunction {name}: {e}");
            }
            Ok(Outcome::Ok)
        }
        1 => {
            // A new snapshot retires the old instances; an update while one is under way is refused.
            let r = raw(
                c,
                creds,
                "UpdateFunctionConfiguration",
                &json!({"FunctionName": n.churn, "Environment": {"Variables": [{"Key": "STEP", "Value": i.to_string()}]}}),
            )?;
            match r.get("Error").and_then(|e| e["Code"].as_str()) {
                None => Ok(Outcome::Ok),
                Some(
                    "FailedOperation.FunctionStatusError"
                    | "FailedOperation.UpdateFunctionConfiguration",
                ) => Ok(Outcome::Expected),
                Some(other) => bail!("UpdateFunctionConfiguration: {other}"),
            }
        }
        2 => invoke(c, creds, &n.slow, true),
        3..=6 => invoke(c, creds, &n.fail, true),
        7 => {
            let r = raw(
                c,
                creds,
                "GetFunctionLogs",
                &json!({"FunctionName": n.loud, "Limit": 100}),
            )?;
            match r.get("Error") {
                None => Ok(Outcome::Ok),
                Some(e) => bail!("GetFunctionLogs: {e}"),
            }
        }
        8 => invoke(c, creds, &n.loud, false),
        9..=13 => invoke(c, creds, &n.node, false),
        14 => {
            let r = raw(
                c,
                creds,
                "GetFunction",
                &json!({"FunctionName": format!("soak-missing-{i}")}),
            )?;
            match r.get("Error").and_then(|e| e["Code"].as_str()) {
                Some("ResourceNotFound.Function") => Ok(Outcome::Expected),
                other => bail!("GetFunction of a missing function: {other:?}"),
            }
        }
        15 => {
            let r = raw(c, creds, "Invoke", &json!({"FunctionName": n.churn}))?;
            match r.get("Error").and_then(|e| e["Code"].as_str()) {
                None => Ok(Outcome::Ok),
                Some(other) => bail!("Invoke {}: {other}", n.churn),
            }
        }
        _ => invoke(c, creds, &n.echo, false),
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    expected: AtomicU64,
    unexpected: AtomicU64,
}

fn client_loop(
    ep: Endpoint,
    creds: Creds,
    names: Arc<Names>,
    client: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    let mut c = None;
    let mut i = client as u64 * 7;
    let mut first_error = true;
    while !stop.load(Ordering::Relaxed) {
        if c.is_none() {
            c = Client::connect(&ep).ok();
            if c.is_none() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let Some(conn) = c.as_mut() else { continue };
        match step(conn, &creds, &names, client, i) {
            Ok(Outcome::Ok) => counts.ok.fetch_add(1, Ordering::Relaxed),
            Ok(Outcome::Expected) => counts.expected.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                if first_error {
                    eprintln!("soak: client {client}: {e:#}");
                    first_error = false;
                }
                c = None;
                counts.unexpected.fetch_add(1, Ordering::Relaxed)
            }
        };
        i += 1;
    }
}

pub fn run(server: &Server, minutes: usize, clients: usize) -> anyhow::Result<Section> {
    if minutes < 2 {
        bail!("a soak needs at least 2 minutes: one of warm-up and one to compare");
    }
    let pid = server.pid.ok_or_else(|| {
        anyhow!("the soak samples the server's /proc entry: run it without --endpoint")
    })?;
    let creds = server.creds.clone();
    let mut c = Client::connect(&server.endpoint)?;
    let tag = crate::report::now_ms() as u64 % 1_000_000_000;
    let names = Arc::new(Names {
        echo: format!("soak-echo-{tag}"),
        fail: format!("soak-fail-{tag}"),
        slow: format!("soak-slow-{tag}"),
        node: format!("soak-node-{tag}"),
        loud: format!("soak-loud-{tag}"),
        churn: format!("soak-churn-{tag}"),
        tag,
    });
    create(&mut c, &creds, &names.echo, "Python3.9", ECHO, 3)?;
    create(&mut c, &creds, &names.fail, "Python3.9", FAIL, 3)?;
    create(&mut c, &creds, &names.slow, "Python3.9", SLOW, 1)?;
    create(&mut c, &creds, &names.node, "Nodejs18.15", NODE, 3)?;
    create(&mut c, &creds, &names.loud, "Python3.9", LOUD, 3)?;
    create(&mut c, &creds, &names.churn, "Python3.9", ECHO, 3)?;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let threads: Vec<_> = (0..clients.max(1))
        .map(|k| {
            let (ep, creds, names, stop, counts) = (
                server.endpoint.clone(),
                creds.clone(),
                names.clone(),
                stop.clone(),
                counts.clone(),
            );
            std::thread::spawn(move || client_loop(ep, creds, names, k, stop, counts))
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(minutes);
    let mut result = Ok(());
    'minutes: for m in 1..=minutes {
        // Twelve samples a minute: a single one mostly measures the requests in flight at that instant (one
        // GetFunctionLogs reply holds megabytes for a moment), so each minute is summarised by its median.
        let mut minute = Vec::with_capacity(SAMPLES_PER_MINUTE);
        for k in 1..=SAMPLES_PER_MINUTE {
            let due = Duration::from_secs(60 * (m as u64 - 1))
                + Duration::from_secs(60) * k as u32 / SAMPLES_PER_MINUTE as u32;
            while started.elapsed() < due {
                std::thread::sleep(
                    Duration::from_millis(200).min(due.saturating_sub(started.elapsed())),
                );
            }
            match sample(pid) {
                Ok(s) => minute.push(s),
                Err(e) => {
                    result = Err(e.context("sampling the server (did it die?)"));
                    break 'minutes;
                }
            }
        }
        let Some(med) = median(&minute) else {
            continue;
        };
        let (lo, hi) = (
            minute.iter().map(|s| s.rss).min().unwrap_or(0),
            minute.iter().map(|s| s.rss).max().unwrap_or(0),
        );
        let calls = counts.ok.load(Ordering::Relaxed) + counts.expected.load(Ordering::Relaxed);
        println!(
            "soak minute {m:>3}: rss median {:>6.1} MiB ({:>6.1}-{:>6.1})  open files {:>4}  threads {:>3}  calls {calls} (unexpected errors {})",
            crate::report::mib(med.rss),
            crate::report::mib(lo),
            crate::report::mib(hi),
            med.fds,
            med.threads,
            counts.unexpected.load(Ordering::Relaxed)
        );
        samples.push(med);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    result?;
    let secs = started.elapsed().as_secs_f64();
    let warm = warmup(minutes);
    let (base, max) = after_warmup(&samples, warm).ok_or_else(|| anyhow!("too few samples"))?;
    let mut s = Section {
        bench: "SOAK",
        title: format!(
            "{minutes} minutes of mixed load from {clients} clients (warm invokes, errors, timeouts, updates, creates and \
             deletes, refused calls, log reads): the largest per-minute median of the server's figures after a \
             {warm}-minute warm-up, against the median of the minute that ends it"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let done = counts.ok.load(Ordering::Relaxed) + counts.expected.load(Ordering::Relaxed);
    s.push(Figure::new(
        "SOAK",
        "calls",
        Measure::Rate {
            count: done as usize,
            secs,
            unit: "calls/s",
        },
    ));
    let growth = Target::GrowthAtMost(FLAT);
    s.push(
        Figure::new(
            "SOAK",
            "server RSS, largest after warm-up",
            Measure::Bytes(max.rss),
        )
        .floor(format!("at minute {warm}"), Measure::Bytes(base.rss))
        .target(growth.clone()),
    );
    s.push(
        Figure::new(
            "SOAK",
            "server open files, most after warm-up",
            Measure::Count(max.fds, "fds"),
        )
        .floor(format!("at minute {warm}"), Measure::Count(base.fds, "fds"))
        .target(growth.clone()),
    );
    s.push(
        Figure::new(
            "SOAK",
            "server threads, most after warm-up",
            Measure::Count(max.threads, "threads"),
        )
        .floor(
            format!("at minute {warm}"),
            Measure::Count(base.threads, "threads"),
        )
        .target(growth),
    );
    let unexpected = counts.unexpected.load(Ordering::Relaxed);
    s.note(format!(
        "{} calls answered as asked ({} of them errors the mix asks for), {unexpected} unexpected errors",
        done,
        counts.expected.load(Ordering::Relaxed)
    ));
    if unexpected > 0 {
        s.note("unexpected errors: see the first one per client above".to_string());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(rss: u64, fds: u64, threads: u64) -> Sample {
        Sample { rss, fds, threads }
    }

    #[test]
    fn warmup_is_a_third_and_at_least_a_minute() {
        assert_eq!(warmup(2), 1);
        assert_eq!(warmup(30), 10);
    }

    #[test]
    fn the_largest_sample_after_warmup_is_compared_with_the_one_ending_it() {
        let samples = [s(100, 10, 5), s(120, 12, 6), s(118, 13, 6), s(125, 12, 7)];
        assert_eq!(
            after_warmup(&samples, 2),
            Some((s(120, 12, 6), s(125, 13, 7)))
        );
        assert_eq!(after_warmup(&samples, 4), None);
        assert_eq!(after_warmup(&samples, 0), None);
    }

    #[test]
    fn a_minute_is_summarised_by_its_medians() {
        let minute = [s(150, 3, 9), s(100, 5, 9), s(110, 4, 10)];
        assert_eq!(median(&minute), Some(s(110, 4, 9)));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample(std::process::id()).expect("sample");
        assert!(me.rss > 0 && me.fds >= 3 && me.threads >= 1, "{me:?}");
    }
}
