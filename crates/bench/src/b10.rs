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

/// `(tick, skew ms)` of each timer run.
fn skews(runs: &HashMap<String, Value>) -> Vec<(i64, f64)> {
    runs.values()
        .filter_map(|v| {
            let tick = tick_ms(v["event"]["Time"].as_str()?)?;
            let started = v["started"].as_f64()? * 1000.0;
            Some((tick, started - tick as f64))
        })
        .collect()
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

/// B10 with `secs` seconds of the single timer and `rounds` measured rounds of 1,000 timers.
pub fn run(server: &Server, secs: u64, rounds: usize) -> anyhow::Result<Section> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let tag = now_ms() % 1_000_000_000;
    let mut section = Section {
        bench: "B10",
        title: "timer skew: a tick's time to the start of the function its event runs".into(),
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
    // The first two ticks may start the instance again.
    sleep_until(from + (secs as i64 + 2) * 1000);
    delete_timer(&mut c, creds, &one, "every-second")?;
    std::thread::sleep(Duration::from_secs(2));
    let mut all = runs(&mut c, creds, &one)?;
    for k in &before {
        all.remove(k);
    }
    let mut single = skews(&all);
    single.sort_by_key(|(t, _)| *t);
    let single: Vec<f64> = single.iter().skip(2).map(|(_, s)| *s).collect();
    let single = Summary::of_ms(&single).context("the single timer never fired")?;
    section.push(
        Figure::new(
            "B10",
            "one timer: tick → function start",
            Measure::Latency(single),
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
        "B10: 1,000 timers ({functions} functions × {PER_FUNCTION}) firing together every 10 s…"
    );
    let names: Vec<String> = (0..functions).map(|i| format!("b10-m{i}-{tag}")).collect();
    for n in &names {
        create(&mut c, creds, n)?;
    }
    for n in &names {
        wait_active(&mut c, creds, n)?;
    }
    for n in &names {
        for j in 0..PER_FUNCTION {
            timer(&mut c, creds, n, &format!("t{j}"), "*/10 * * * * * *")?;
        }
    }
    // The first whole round after every timer exists starts the instances; the next `rounds` are measured.
    let armed = now_ms();
    let first = (armed / 10_000 + 1) * 10_000;
    let end = first + (rounds as i64) * 10_000;
    sleep_until(end + 4_000);
    for n in &names {
        for j in 0..PER_FUNCTION {
            delete_timer(&mut c, creds, n, &format!("t{j}"))?;
        }
    }
    // Every event of the last round has ended by now unless the server fell far behind: wait for the count.
    let want = rounds * 1000;
    let deadline = Instant::now() + Duration::from_secs(120);
    let herd = loop {
        let mut samples = Vec::new();
        for n in &names {
            samples.extend(
                skews(&runs(&mut c, creds, n)?)
                    .into_iter()
                    .filter(|(t, _)| *t > first && *t <= end),
            );
        }
        if samples.len() >= want || Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let got = herd.len();
    let herd: Vec<f64> = herd.into_iter().map(|(_, s)| s).collect();
    let herd = Summary::of_ms(&herd).context("the 1,000 timers never fired")?;
    section.push(
        Figure::new(
            "B10",
            "1,000 timers due in the same second: tick → function start",
            Measure::Latency(herd),
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
    section.note(format!(
        "one timer: {secs} s of `* * * * * * *` (the first two ticks left out); 1,000 timers: {rounds} rounds of \
         `*/10 * * * * * *` after a first round that starts the instances, {got} of {want} runs found"
    ));
    section.note(
        "the skew includes the event's dispatch (the server's event slots, 16 by default) and the instance's \
         hand-off; the function's start is read from its own clock, the same host's",
    );
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_skews_are_read_from_the_runs() {
        assert_eq!(tick_ms("2026-12-06T10:00:01Z"), Some(1_796_551_201_000));
        assert_eq!(tick_ms("2026-12-06 10:00:01"), None);
        let mut r = HashMap::new();
        r.insert(
            "a".to_string(),
            json!({"started": 1_796_551_201.025, "event": {"Time": "2026-12-06T10:00:01Z"}}),
        );
        r.insert("b".to_string(), json!({"started": 1.0, "event": {}}));
        let s = skews(&r);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, 1_796_551_201_000);
        assert!((s[0].1 - 25.0).abs() < 0.01, "{s:?}");
    }
}
