//! The throttle path: a synchronous Invoke refused with SCF's 432 because the function's reserved concurrency is
//! taken, beside B3's warm invoke measured in the same run. A refusal does less than a call (no instance, no
//! record), so it must cost no more than a successful call's overhead.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::http::{Client, Creds, Endpoint};
use crate::invoke::{create, echo_server, invoke, invoke_body, sequential};
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::server::Server;
use crate::stats::Summary;

/// Sleeps for the event's `sleep` seconds: one such call holds the function's only reserved instance.
const PY_SLEEP: &str = "import time\ndef main_handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return event\n";

/// The runtime status in a synchronous reply (200 when the function returned).
fn status_code(r: &Value) -> Option<i64> {
    let res = &r["Result"];
    if res["InvokeResult"].as_i64() == Some(0) {
        return Some(200);
    }
    let err: Value = serde_json::from_str(res["ErrMsg"].as_str()?).ok()?;
    err["statusCode"].as_i64()
}

/// `n` sequential calls that must each be refused with 432.
fn throttled(ep: &Endpoint, creds: &Creds, body: &[u8], n: usize) -> anyhow::Result<Summary> {
    let mut c = Client::connect(ep)?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n.min(200) + n {
        let t = Instant::now();
        let r = c.call_raw(creds, "Invoke", body)?;
        let took = t.elapsed();
        if status_code(&r) != Some(432) {
            bail!("call {i} was not throttled: {r}");
        }
        if i >= n.min(200) {
            samples.push(took);
        }
    }
    Summary::of(&samples).ok_or_else(|| anyhow!("no samples"))
}

pub fn run(server: &Server, calls: usize) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let tag = now_ms() % 1_000_000_000;
    let echo = format!("b3-echo-{tag}");
    create(
        &mut c,
        creds,
        &echo,
        "Python3.9",
        "index.py",
        crate::invoke::PY_ECHO,
    )?;
    let body = invoke_body(&echo)?;
    invoke(&mut c, creds, &body)?;
    let busy = format!("throttle-{tag}");
    create(&mut c, creds, &busy, "Python3.9", "index.py", PY_SLEEP)?;
    c.call(
        creds,
        "UpdateFunctionConfiguration",
        &json!({"FunctionName": busy, "Timeout": 900, "MemorySize": 128}),
    )?;
    for _ in 0..10_000 {
        let g = c.call(creds, "GetFunction", &json!({"FunctionName": busy}))?;
        if g["Status"].as_str() == Some("Active") {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // One instance's worth, taken by one long call for the whole measurement.
    c.call(
        creds,
        "PutReservedConcurrencyConfig",
        &json!({"FunctionName": busy, "ReservedConcurrencyMem": 128}),
    )?;
    let hold_secs = 600;
    let hold = {
        let (ep, creds, name) = (server.endpoint.clone(), creds.clone(), busy.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut c = Client::connect(&ep)?;
            let body = serde_json::to_vec(&json!({
                "FunctionName": name,
                "ClientContext": json!({"sleep": hold_secs}).to_string(),
            }))?;
            // A probe of the main thread may hold the instance for a moment: try again until this call runs.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = c.call_raw(&creds, "Invoke", &body)?;
                if status_code(&r) != Some(432) || Instant::now() > deadline {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let refused_body =
        serde_json::to_vec(&json!({"FunctionName": busy, "ClientContext": "{\"k\":\"v\"}"}))?;
    // Wait until the long call holds the instance (a probe is refused).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.call_raw(creds, "Invoke", &refused_body)?;
        if status_code(&r) == Some(432) {
            break;
        }
        if Instant::now() > deadline || hold.is_finished() {
            bail!("the holding call never took the reserved instance: {r}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (floor_ep, stop) = echo_server()?;
    eprintln!("throttle: {calls} sequential warm invokes, then {calls} refused ones…");
    let floor = sequential(&floor_ep, creds, &body, calls)?;
    let warm = sequential(&server.endpoint, creds, &body, calls)?;
    let refused = throttled(&server.endpoint, creds, &refused_body, calls)?;
    stop.store(true, Ordering::Relaxed);
    let mut s = Section {
        bench: "throttle",
        title: format!(
            "the 432 path: Invoke of a function whose reserved concurrency (one 128 MB instance) is taken, one keep-alive client, {calls} calls, beside B3"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    s.push(
        Figure::new("B3", "Invoke, warm Python echo", Measure::Latency(warm))
            .floor(
                "the same client against a minimal echo server",
                Measure::Latency(floor),
            )
            .target(Target::Latency {
                median_ms: Some(0.2),
                p99_ms: Some(1.0),
            }),
    );
    s.push(
        Figure::new(
            "throttle",
            "Invoke refused with 432",
            Measure::Latency(refused),
        )
        .floor("B3's warm invoke in this run", Measure::Latency(warm))
        .target(Target::Latency {
            median_ms: Some(0.2),
            p99_ms: Some(1.0),
        }),
    );
    s.note(format!(
        "the holding call sleeps {hold_secs} s; it ends with the server"
    ));
    Ok(s)
}
