//! The event benchmarks: B8, acknowledgements of `Invoke` with `InvocationType=Event` (each after its commit) from
//! concurrent keep-alive clients, beside the same clients against the echo server; B9, draining a backlog of
//! queued events of a Python function, beside B4's synchronous throughput of the same function measured in the same
//! run, and the idle latency from sending an event to its handler's first line, beside the acknowledgement alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::http::{Client, Creds, Endpoint};
use crate::invoke::{concurrent, create, echo_server, invoke, invoke_body, timed_clients};
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::server::Server;
use crate::stats::Summary;

/// A no-op handler that says when it started (the host's clock, which the sandbox shares).
const PY_STAMP: &str =
    "import time\ndef main_handler(event, context):\n    return {'t': time.time()}\n";

/// How long the whole benchmark may wait for a backlog to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

fn unix_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn event_body(name: &str) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&json!({
        "FunctionName": name, "InvocationType": "Event", "ClientContext": "{\"k\":\"v\"}"
    }))?)
}

/// Sends one event; its request id.
fn send(c: &mut Client, creds: &Creds, body: &[u8]) -> anyhow::Result<String> {
    let r = c.call_raw(creds, "Invoke", body)?;
    if let Some(e) = r.get("Error") {
        bail!("Invoke (Event): {e}");
    }
    r["Result"]["FunctionRequestId"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("Invoke (Event) returned no FunctionRequestId: {r}"))
}

/// `clients` threads sending events for `secs` seconds: how many were acknowledged, in how long, and their latency.
/// `check`: each reply must carry a request id (the echo server of the floor answers without one).
fn acknowledgements(
    ep: &Endpoint,
    creds: &Creds,
    body: &[u8],
    clients: usize,
    secs: f64,
    check: bool,
) -> anyhow::Result<(usize, f64, Summary)> {
    let call = if check {
        |c: &mut Client, creds: &Creds, body: &[u8]| send(c, creds, body).map(drop)
    } else {
        |c: &mut Client, creds: &Creds, body: &[u8]| c.call_raw(creds, "Invoke", body).map(drop)
    };
    timed_clients(
        ep,
        creds,
        body,
        clients,
        Duration::from_secs_f64(secs),
        call,
    )
}

/// How many of a function's events have the status.
fn count(c: &mut Client, creds: &Creds, name: &str, status: &str) -> anyhow::Result<u64> {
    let r = c.call(
        creds,
        "ListAsyncEvents",
        &json!({"FunctionName": name, "Status": [status], "Limit": 1}),
    )?;
    r["TotalCount"]
        .as_u64()
        .ok_or_else(|| anyhow!("ListAsyncEvents returned no TotalCount: {r}"))
}

/// Waits until none of a function's events is `RUNNING`.
fn wait_drained(c: &mut Client, creds: &Creds, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let running = count(c, creds, name, "RUNNING")?;
        if running == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{running} events of {name} still RUNNING after {DRAIN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `n` events from `clients` threads as fast as they are acknowledged.
fn enqueue(
    ep: &Endpoint,
    creds: &Creds,
    body: &[u8],
    clients: usize,
    n: usize,
) -> anyhow::Result<()> {
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(n));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (ep, creds, body, left) = (ep.clone(), creds.clone(), body.to_vec(), left.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut c = Client::connect(&ep)?;
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                    .is_ok()
                {
                    send(&mut c, &creds, &body)?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow!("a client thread panicked"))??;
    }
    Ok(())
}

/// The drain: `backlog` events queued at `from`, all ended at `to`.
struct Drain {
    queued: usize,
    backlog: u64,
    secs: f64,
    whole_secs: f64,
}

/// Queues `n` events of `name` and measures how fast the dispatchers end them, from the moment the last one was
/// acknowledged (the backlog then left) to the moment none is left.
fn drain(server: &Server, name: &str, clients: usize, n: usize) -> anyhow::Result<Drain> {
    let creds = &server.creds;
    let body = event_body(name)?;
    let mut c = Client::connect(&server.endpoint)?;
    let t0 = Instant::now();
    enqueue(&server.endpoint, creds, &body, clients, n)?;
    let enqueued = Instant::now();
    let finished_then = count(&mut c, creds, name, "FINISHED")?;
    let deadline = enqueued + DRAIN_TIMEOUT;
    loop {
        let finished = count(&mut c, creds, name, "FINISHED")?;
        if finished >= n as u64 {
            break;
        }
        if count(&mut c, creds, name, "RUNNING")? == 0 {
            let failed = count(&mut c, creds, name, "FAILED")?;
            bail!(
                "the backlog of {name} ended with {finished} FINISHED and {failed} FAILED of {n}"
            );
        }
        if Instant::now() > deadline {
            bail!("{finished} of {n} events of {name} FINISHED after {DRAIN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = Instant::now();
    Ok(Drain {
        queued: n,
        backlog: (n as u64).saturating_sub(finished_then),
        secs: (done - enqueued).as_secs_f64(),
        whole_secs: (done - t0).as_secs_f64(),
    })
}

/// Idle latency, `n` times one event at a time: from sending it to its handler's first line, and to its
/// acknowledgement.
fn idle_latency(server: &Server, name: &str, n: usize) -> anyhow::Result<(Summary, Summary)> {
    let creds = &server.creds;
    let body = event_body(name)?;
    let mut c = Client::connect(&server.endpoint)?;
    let mut started = Vec::with_capacity(n);
    let mut acked = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let sent = unix_secs_f64();
        let rid = send(&mut c, creds, &body)?;
        let ack = unix_secs_f64();
        let t = handler_start(&mut c, creds, name, &rid)?;
        // The first few warm the path (and start the instance).
        if i >= 5 {
            started.push((t - sent) * 1000.0);
            acked.push((ack - sent) * 1000.0);
        }
    }
    Ok((
        Summary::of_ms(&started).ok_or_else(|| anyhow!("no samples"))?,
        Summary::of_ms(&acked).ok_or_else(|| anyhow!("no samples"))?,
    ))
}

/// Waits for an event to finish and reads when its handler started (its result, from the invocation record).
fn handler_start(c: &mut Client, creds: &Creds, name: &str, rid: &str) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.call(
            creds,
            "GetAsyncEventStatus",
            &json!({"InvokeRequestId": rid}),
        )?;
        match s["Result"]["Status"].as_str() {
            Some("FINISHED") => break,
            Some("RUNNING") => {}
            other => bail!("event {rid} ended {other:?}: {s}"),
        }
        if Instant::now() > deadline {
            bail!("event {rid} still RUNNING after 30 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    loop {
        let r = c.call(
            creds,
            "GetFunctionLogs",
            &json!({"FunctionName": name, "FunctionRequestId": rid, "Limit": 1}),
        )?;
        if let Some(ret) = r["Data"][0]["RetMsg"].as_str() {
            let v: Value = serde_json::from_str(ret)?;
            return v["t"]
                .as_f64()
                .ok_or_else(|| anyhow!("the handler's result has no time: {ret}"));
        }
        if Instant::now() > deadline {
            bail!("no invocation record of event {rid} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// B8 on `server`: acknowledgements for `secs` seconds from `clients` clients.
pub fn b8(server: &Server, clients: usize, secs: f64) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let name = format!("b8-ack-{}", now_ms() % 1_000_000_000);
    create(&mut c, creds, &name, "Python3.9", "index.py", PY_STAMP)?;
    let body = event_body(&name)?;
    send(&mut c, creds, &body)?;
    let (floor_ep, stop) = echo_server()?;
    eprintln!("B8: {clients} clients sending events for {secs} s…");
    let (fn_count, fsecs, fsum) = acknowledgements(&floor_ep, creds, &body, clients, secs, false)?;
    stop.store(true, Ordering::Relaxed);
    let (n, s, sum) = acknowledgements(&server.endpoint, creds, &body, clients, secs, true)?;
    let mut b8 = Section {
        bench: "B8",
        title: format!(
            "event acknowledgements: Invoke with InvocationType=Event (each answered after the commit that holds it) \
             from {clients} concurrent keep-alive clients for {secs} s, the dispatchers draining meanwhile"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    b8.push(
        Figure::new(
            "B8",
            "Invoke Event acknowledgements",
            Measure::Rate {
                count: n,
                secs: s,
                unit: "req/s",
            },
        )
        .floor(
            "the same clients against the echo server",
            Measure::Rate {
                count: fn_count,
                secs: fsecs,
                unit: "req/s",
            },
        )
        .target(Target::RateAtLeast(5000.0)),
    );
    b8.push(
        Figure::new(
            "B8",
            "Invoke Event latency under load",
            Measure::Latency(sum),
        )
        .floor("echo server under the same load", Measure::Latency(fsum))
        .target(Target::Latency {
            median_ms: None,
            p99_ms: Some(5.0),
        }),
    );
    eprintln!("B8: waiting for its {n} events to drain…");
    wait_drained(&mut c, creds, &name)?;
    Ok(b8)
}

/// B9 on `server`: B4's synchronous throughput of the function (the floor), then `events` queued events drained,
/// then `samples` idle enqueue-to-start latencies.
pub fn b9(
    server: &Server,
    clients: usize,
    secs: u64,
    events: usize,
    samples: usize,
) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let name = format!("b9-drain-{}", now_ms() % 1_000_000_000);
    create(&mut c, creds, &name, "Python3.9", "index.py", PY_STAMP)?;
    let sync_body = invoke_body(&name)?;
    invoke(&mut c, creds, &sync_body)?;
    eprintln!(
        "B9: B4's synchronous throughput of the same function, {clients} clients for {secs} s…"
    );
    let (sync_n, sync_secs, _) = concurrent(&server.endpoint, creds, &sync_body, clients, secs)?;
    let sync = Measure::Rate {
        count: sync_n,
        secs: sync_secs,
        unit: "invocations/s",
    };
    let sync_rate = sync.per_sec().unwrap_or(0.0);
    eprintln!("B9: draining {events} queued events…");
    let d = drain(server, &name, clients, events)?;
    eprintln!("B9: {samples} idle enqueue-to-start latencies…");
    let (start, ack) = idle_latency(server, &name, samples)?;
    let mut b9 = Section {
        bench: "B9",
        title: format!(
            "event dispatch: {events} events of a Python no-op queued by {clients} clients and drained by the \
             server's dispatchers, beside B4's synchronous throughput of the same function; then {samples} events \
             one at a time on an idle server"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let (count, secs, what) = if d.backlog >= (d.queued as u64) / 10 {
        (
            d.backlog as usize,
            d.secs,
            "events drained after the last acknowledgement",
        )
    } else {
        (
            d.queued,
            d.whole_secs,
            "events acknowledged and drained, from the first send",
        )
    };
    b9.push(
        Figure::new(
            "B9",
            format!("drain: {what}"),
            Measure::Rate {
                count,
                secs,
                unit: "events/s",
            },
        )
        .floor(
            "B4: synchronous Invoke of the same function, same clients",
            sync,
        )
        .target(Target::RateAtLeast((sync_rate * 0.9 * 10.0).round() / 10.0)),
    );
    b9.note(format!(
        "{} of {} events were still queued when the last was acknowledged; all {} ended FINISHED {:.3} s after the \
         first send. The drain target is 90 % of the floor.",
        d.backlog, d.queued, d.queued, d.whole_secs
    ));
    b9.push(
        Figure::new(
            "B9",
            "idle: Invoke Event sent → handler starts",
            Measure::Latency(start),
        )
        .floor(
            "Invoke Event sent → acknowledged (the commit)",
            Measure::Latency(ack),
        )
        .target(Target::Latency {
            median_ms: Some(1.0),
            p99_ms: Some(5.0),
        }),
    );
    Ok(b9)
}
