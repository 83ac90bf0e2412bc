//! B10: timer skew, from a tick to the start of the function its event runs, with one timer and with 1,000
//! timers due in the same second. The function notes the time it starts (the host's clock, which the server's
//! scheduler also reads) and returns it with the event; the skew is that time minus the event's `Time`. The floor,
//! measured on the same server while idle, is an asynchronous Invoke's: the client's send to the function's start.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::fixture::{base64, zip_file};
use crate::http::{Client, Creds};
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::server::Server;
use crate::stats::Summary;

const HANDLER: &str = "import time\n\ndef main_handler(event, context):\n    return {\"started\": time.time(), \"event\": event}\n";

/// Timers per function (SCF's limit of one type per function).
const PER_FUNCTION: usize = 10;

fn create(c: &mut Client, creds: &Creds, name: &str) -> anyhow::Result<()> {
    let zip = zip_file("index.py", HANDLER.as_bytes())?;
    c.call(
        creds,
        "CreateFunction",
        &json!({"FunctionName": name, "Runtime": "Python3.9", "Handler": "index.main_handler",
                "Code": {"ZipFile": base64(&zip)}}),
    )?;
    Ok(())
}

fn wait_active(c: &mut Client, creds: &Creds, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let g = c.call(creds, "GetFunction", &json!({"FunctionName": name}))?;
        match g["Status"].as_str() {
            Some("Active") => return Ok(()),
            Some("Creating") if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => bail!("{name} ended {other:?}: {}", g["StatusReasons"]),
        }
    }
}

fn timer(c: &mut Client, creds: &Creds, f: &str, name: &str, cron: &str) -> anyhow::Result<()> {
    c.call(
        creds,
        "CreateTrigger",
        &json!({"FunctionName": f, "TriggerName": name, "Type": "timer", "TriggerDesc": cron}),
    )?;
    Ok(())
}

fn delete_timer(c: &mut Client, creds: &Creds, f: &str, name: &str) -> anyhow::Result<()> {
    c.call(
        creds,
        "DeleteTrigger",
        &json!({"FunctionName": f, "TriggerName": name, "Type": "timer"}),
    )?;
    Ok(())
}

/// Milliseconds of an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`.
fn tick_ms(time: &str) -> Option<i64> {
    let t = time.strip_suffix('Z')?.replacen('T', " ", 1);
    model::time::parse_ms(&t)
}

/// What the function's successful runs returned, by request id.
fn runs(c: &mut Client, creds: &Creds, f: &str) -> anyhow::Result<HashMap<String, Value>> {
    let mut out = HashMap::new();
    let mut offset = 0u64;
    loop {
        let page = c.call(
            creds,
            "GetFunctionLogs",
            &json!({"FunctionName": f, "Limit": 100, "Offset": offset, "Order": "asc"}),
        )?;
        let data = page["Data"].as_array().cloned().unwrap_or_default();
        for d in &data {
            if d["RetCode"].as_i64() == Some(0)
                && let (Some(rid), Some(ret)) = (d["RequestId"].as_str(), d["RetMsg"].as_str())
                && let Ok(v) = serde_json::from_str::<Value>(ret)
            {
                out.insert(rid.to_string(), v);
            }
        }
        offset += data.len() as u64;
        if data.is_empty() || offset >= page["TotalCount"].as_u64().unwrap_or(0) {
            return Ok(out);
        }
    }
}

/// Sleeps until `ms` (Unix milliseconds) on this host's clock.
fn sleep_until(ms: i64) {
    let left = ms - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
}

/// Idle asynchronous Invokes, one at a time: the client's send to the function's start.
fn async_floor(c: &mut Client, creds: &Creds, f: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..n + 2 {
        let sent = now_ms() as f64;
        let r = c.call(
            creds,
            "Invoke",
            &json!({"FunctionName": f, "InvocationType": "Event", "ClientContext": json!({"n": i}).to_string()}),
        )?;
        let rid = r["Result"]["FunctionRequestId"]
            .as_str()
            .context("Invoke returned no FunctionRequestId")?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = loop {
            if let Some(v) = runs(c, creds, f)?.get(&rid)
                && let Some(s) = v["started"].as_f64()
            {
                break s * 1000.0;
            }
            if Instant::now() > deadline {
                bail!("the async Invoke {rid} did not run within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The first two start the instance.
        if i >= 2 {
            out.push(started - sent);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(out)
}

/// `StartTime` of ListAsyncEvents (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC) in milliseconds.
fn start_time_ms(s: &str) -> Option<f64> {
    let (secs, frac) = s.split_once('.')?;
    let ms = model::time::parse_ms(secs)? as f64;
    let us: f64 = frac.parse().ok()?;
    Some(ms + us / 1000.0)
}

/// The timer events of a function: request id → when each was accepted (`StartTime`), in milliseconds.
fn accepted(c: &mut Client, creds: &Creds, f: &str) -> anyhow::Result<HashMap<String, f64>> {
    let mut out = HashMap::new();
    let mut offset = 0u64;
    loop {
        let page = c.call(
            creds,
            "ListAsyncEvents",
            &json!({"FunctionName": f, "InvokeType": ["TRIGGER_TIMER"], "Limit": 100, "Offset": offset}),
        )?;
        let list = page["EventList"].as_array().cloned().unwrap_or_default();
        for e in &list {
            if let (Some(id), Some(t)) = (
                e["InvokeRequestId"].as_str(),
                e["StartTime"].as_str().and_then(start_time_ms),
            ) {
                out.insert(id.to_string(), t);
            }
        }
        offset += list.len() as u64;
        if list.is_empty() || offset >= page["TotalCount"].as_u64().unwrap_or(0) {
            return Ok(out);
        }
    }
}

/// A cron of SCF's (seven fields, evaluated in UTC+8, the server's default zone) that ticks exactly at the two
/// given times, which must fall in the same minute.
fn two_ticks(a_ms: i64, b_ms: i64) -> String {
    let cst = |ms: i64| model::time::format_ms(ms + 8 * 3_600_000);
    let (a, b) = (cst(a_ms), cst(b_ms));
    // `YYYY-MM-DD HH:MM:SS`
    let f = |s: &str, r: std::ops::Range<usize>| s[r].trim_start_matches('0').to_string();
    let num = |s: String| if s.is_empty() { "0".to_string() } else { s };
    format!(
        "{},{} {} {} {} {} ? {}",
        num(f(&a, 17..19)),
        num(f(&b, 17..19)),
        num(f(&a, 14..16)),
        num(f(&a, 11..13)),
        num(f(&a, 8..10)),
        num(f(&a, 5..7)),
        &a[0..4]
    )
}

/// B10 with `secs` seconds of the single timer.
pub fn run(server: &Server, secs: u64) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let tag = now_ms() % 1_000_000_000;
    let mut section = Section {
        bench: "B10",
        title: "timer skew: a tick's time to its event's acceptance and to the start of the function it runs"
            .into(),
        server: server.describe.clone(),
        ..Section::default()
    };

    let one = format!("b10-one-{tag}");
    create(&mut c, creds, &one)?;
    wait_active(&mut c, creds, &one)?;
    eprintln!("B10: the floor, 20 idle async Invokes…");
    let floor =
        Summary::of_ms(&async_floor(&mut c, creds, &one, 20)?).context("no floor samples")?;

    eprintln!("B10: one timer firing every second for {secs} s…");
    let before: Vec<String> = runs(&mut c, creds, &one)?.into_keys().collect();
    let from = now_ms();
    timer(&mut c, creds, &one, "every-second", "* * * * * * *")?;
    sleep_until(from + (secs as i64 + 2) * 1000);
    delete_timer(&mut c, creds, &one, "every-second")?;
    std::thread::sleep(Duration::from_secs(2));
    let mut all = runs(&mut c, creds, &one)?;
    for k in &before {
        all.remove(k);
    }
    let starts = accepted(&mut c, creds, &one)?;
    let mut single: Vec<(i64, f64, Option<f64>)> = all
        .iter()
        .filter_map(|(rid, v)| {
            let tick = tick_ms(v["event"]["Time"].as_str()?)?;
            let started = v["started"].as_f64()? * 1000.0;
            Some((
                tick,
                started - tick as f64,
                starts.get(rid).map(|a| a - tick as f64),
            ))
        })
        .collect();
    single.sort_by_key(|(t, _, _)| *t);
    // The first two ticks may start the instance again.
    let single: Vec<_> = single.into_iter().skip(2).collect();
    let enq: Vec<f64> = single.iter().filter_map(|(_, _, a)| *a).collect();
    let run_start: Vec<f64> = single.iter().map(|(_, s, _)| *s).collect();
    section.push(
        Figure::new(
            "B10",
            "one timer: tick → event accepted (StartTime)",
            Measure::Latency(Summary::of_ms(&enq).context("no accepted times")?),
        )
        .target(Target::Latency {
            median_ms: None,
            p99_ms: Some(50.0),
        }),
    );
    section.push(
        Figure::new(
            "B10",
            "one timer: tick → function start",
            Measure::Latency(Summary::of_ms(&run_start).context("the single timer never fired")?),
        )
        .floor(
            "idle async Invoke: send → function start",
            Measure::Latency(floor),
        )
        .target(Target::Latency {
            median_ms: None,
            p99_ms: Some(50.0),
        }),
    );

    let functions = 1000 / PER_FUNCTION;
    eprintln!(
        "B10: 1,000 timers ({functions} functions × {PER_FUNCTION}) due in the same second, twice 15 s apart…"
    );
    let names: Vec<String> = (0..functions).map(|i| format!("b10-m{i}-{tag}")).collect();
    let creating = Instant::now();
    for n in &names {
        create(&mut c, creds, n)?;
    }
    // A CreateTrigger costs about what a CreateFunction does: ten times as many of them, with room to spare.
    let lead_ms = (creating.elapsed().as_millis() as i64 * PER_FUNCTION as i64 * 2).max(30_000);
    for n in &names {
        wait_active(&mut c, creds, n)?;
    }
    // Two ticks in one minute, far enough ahead for the 1,000 CreateTrigger calls: the first starts the
    // instances, the second is measured.
    let mut t1 = (now_ms() + lead_ms) / 1000 * 1000;
    while (t1 / 1000) % 60 > 40 {
        t1 += 1000;
    }
    let t2 = t1 + 15_000;
    let cron = two_ticks(t1, t2);
    for n in &names {
        for j in 0..PER_FUNCTION {
            timer(&mut c, creds, n, &format!("t{j}"), &cron)?;
        }
    }
    if now_ms() >= t1 - 2000 {
        bail!(
            "creating the 1,000 timers took too long: their first tick came before they all existed"
        );
    }
    sleep_until(t2 + 3000);
    let want = 1000;
    // Runs of the measured tick, until all 1,000 ran (or three minutes passed: events wait for a slot).
    let deadline = Instant::now() + Duration::from_secs(180);
    let run_start = loop {
        let mut run_start = Vec::new();
        for n in &names {
            for v in runs(&mut c, creds, n)?.values() {
                if v["event"]["Time"].as_str().and_then(tick_ms) == Some(t2)
                    && let Some(s) = v["started"].as_f64()
                {
                    run_start.push(s * 1000.0 - t2 as f64);
                }
            }
        }
        if run_start.len() >= want || Instant::now() > deadline {
            break run_start;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    // Every event of the measured tick, run or not, is listed with the time it was accepted.
    let mut enq = Vec::new();
    for n in &names {
        enq.extend(
            accepted(&mut c, creds, n)?
                .values()
                .map(|a| a - t2 as f64)
                .filter(|d| (0.0..15_000.0).contains(d)),
        );
    }
    let (n_enq, n_run) = (enq.len(), run_start.len());
    section.push(
        Figure::new(
            "B10",
            "1,000 timers due in the same second: tick → event accepted",
            Measure::Latency(Summary::of_ms(&enq).context("the 1,000 timers never fired")?),
        )
        .target(Target::Latency {
            median_ms: None,
            p99_ms: Some(250.0),
        }),
    );
    if let Some(s) = Summary::of_ms(&run_start) {
        section.push(
            Figure::new(
                "B10",
                "1,000 timers due in the same second: tick → function start",
                Measure::Latency(s),
            )
            .floor(
                "idle async Invoke: send → function start",
                Measure::Latency(floor),
            )
            .target(Target::Latency {
                median_ms: None,
                p99_ms: Some(250.0),
            }),
        );
    }
    section.note(format!(
        "one timer: {secs} s of `* * * * * * *` (the first two ticks left out); 1,000 timers: {functions} \
         functions with {PER_FUNCTION} timers each, due together twice 15 s apart (`{cron}`), the second time \
         measured: {n_enq} of {want} events accepted within 15 s, {n_run} of {want} runs found"
    ));
    section.note(
        "accepted is the event's StartTime (the node's clock when the firing was recorded); the function's start \
         is its own clock's, the same host's, and includes the dispatch (16 event slots per node by default) and \
         the instance pool (16 per core by default, fewer than the 100 functions)",
    );
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_start_times_are_read() {
        assert_eq!(tick_ms("2026-12-06T10:00:01Z"), Some(1_796_551_201_000));
        assert_eq!(tick_ms("2026-12-06 10:00:01"), None);
        assert_eq!(
            start_time_ms("2026-12-06 10:00:01.025500"),
            Some(1_796_551_201_025.5)
        );
    }

    #[test]
    fn two_ticks_in_one_minute_in_utc_plus_eight() {
        // 10:00:01 and 10:00:16 UTC are 18:00:01 and 18:00:16 in UTC+8.
        assert_eq!(
            two_ticks(1_796_551_201_000, 1_796_551_216_000),
            "1,16 0 18 6 12 ? 2026"
        );
    }
}
