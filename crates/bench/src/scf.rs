//! The SCF calls the benchmarks make, waiting for statuses, and running calls at a given concurrency.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::http::{Client, Creds, Endpoint};

/// The sleep between two polls of a status.
pub const POLL_SLEEP: Duration = Duration::from_millis(1);

pub fn create_function(
    c: &mut Client,
    creds: &Creds,
    ns: &str,
    name: &str,
    zip_b64: &str,
) -> anyhow::Result<()> {
    c.call(
        creds,
        "CreateFunction",
        &json!({
            "FunctionName": name,
            "Namespace": ns,
            "Runtime": "Python3.9",
            "Handler": "index.main_handler",
            "Code": { "ZipFile": zip_b64 },
        }),
    )?;
    Ok(())
}

pub fn create_namespace(c: &mut Client, creds: &Creds, ns: &str) -> anyhow::Result<()> {
    c.call(
        creds,
        "CreateNamespace",
        &json!({ "Namespace": ns, "Description": "stratus bench" }),
    )?;
    Ok(())
}

pub fn get_account(c: &mut Client, creds: &Creds) -> anyhow::Result<()> {
    c.call(creds, "GetAccount", &json!({}))?;
    Ok(())
}

/// GetFunction's `Status` of `$LATEST` or a qualifier.
pub fn status(
    c: &mut Client,
    creds: &Creds,
    ns: &str,
    name: &str,
    qualifier: Option<&str>,
) -> anyhow::Result<String> {
    let mut body = json!({ "FunctionName": name, "Namespace": ns });
    if let Some(q) = qualifier {
        body["Qualifier"] = json!(q);
    }
    let v = c.call(creds, "GetFunction", &body)?;
    v["Status"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("GetFunction reply has no Status"))
}

/// Polls GetFunction with [`POLL_SLEEP`] between polls until the status is `Active`; returns when that was seen
/// and how many polls it took. A failed status or the deadline is an error.
pub fn wait_active(
    c: &mut Client,
    creds: &Creds,
    ns: &str,
    name: &str,
    qualifier: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(Instant, u32)> {
    let deadline = Instant::now() + timeout;
    let mut polls = 0u32;
    loop {
        let s = status(c, creds, ns, name, qualifier)?;
        polls += 1;
        let seen = Instant::now();
        match s.as_str() {
            "Active" => return Ok((seen, polls)),
            s if s.ends_with("Failed") => {
                bail!("{ns}/{name} {} became {s}", qualifier.unwrap_or("$LATEST"))
            }
            _ => {}
        }
        if seen >= deadline {
            bail!(
                "{ns}/{name} {} is still {s} after {timeout:?}",
                qualifier.unwrap_or("$LATEST")
            );
        }
        std::thread::sleep(POLL_SLEEP);
    }
}

/// How many functions of a namespace have a status (ListFunctions with a Status filter, `TotalCount`).
pub fn count_status(c: &mut Client, creds: &Creds, ns: &str, status: &str) -> anyhow::Result<u64> {
    let v = c.call(
        creds,
        "ListFunctions",
        &json!({
            "Namespace": ns,
            "Limit": 1,
            "Filters": [{ "Name": "Status", "Values": [status] }],
        }),
    )?;
    v["TotalCount"]
        .as_u64()
        .ok_or_else(|| anyhow!("ListFunctions reply has no TotalCount"))
}

/// What [`run_concurrent`] measured.
#[derive(Debug)]
pub struct Concurrent {
    /// Each call's latency, in the order calls finished.
    pub latencies: Vec<Duration>,
    /// When the threads were released (all connected).
    pub start: Instant,
    /// When the last call returned.
    pub end: Instant,
}

/// Makes `n` calls with `concurrency` threads, each on its own keep-alive connection: `call(client, i)` for every
/// `i` in `0..n`, each index exactly once. Connections are opened before the clock starts. The first error stops
/// every thread and is returned.
pub fn run_concurrent<F>(
    ep: &Endpoint,
    concurrency: usize,
    n: usize,
    progress: Option<&AtomicUsize>,
    call: F,
) -> anyhow::Result<Concurrent>
where
    F: Fn(&mut Client, usize) -> anyhow::Result<()> + Sync,
{
    let threads = concurrency.clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let fail = |e: anyhow::Error| {
        stop.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = first_error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
    };
    let (start, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let client = Client::connect(ep);
                    barrier.wait();
                    let mut client = match client {
                        Ok(c) => c,
                        Err(e) => {
                            fail(e);
                            return (Vec::new(), None);
                        }
                    };
                    let mut lat = Vec::new();
                    let mut last = None;
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let t = Instant::now();
                        if let Err(e) = call(&mut client, i) {
                            fail(e.context(format!("call {i}")));
                            break;
                        }
                        let done = Instant::now();
                        lat.push(done - t);
                        last = Some(done);
                        if let Some(p) = progress {
                            p.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    (lat, last)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (start, results)
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut latencies = Vec::with_capacity(n);
    let mut end = start;
    for (lat, last) in results {
        latencies.extend(lat);
        if let Some(l) = last {
            end = end.max(l);
        }
    }
    if latencies.len() != n {
        bail!("only {} of {n} calls completed", latencies.len());
    }
    Ok(Concurrent {
        latencies,
        start,
        end,
    })
}

/// A JSON value's string field, for error messages.
pub fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}
