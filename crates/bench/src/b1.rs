//! B1, lifecycle latency: sequentially, N × CreateFunction → `Active`, N × UpdateFunctionCode → `Active`,
//! N × PublishVersion → the version `Active`. Each is timed from sending the call to the terminal status twice:
//! by the server's own log timestamp of the commit (when the server is ours), and by a client polling GetFunction
//! with 1 ms sleeps. The floor is a trivial signed call (GetAccount) on the same connection, interleaved.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::fixture::{base64, python_zip};
use crate::http::Client;
use crate::logs::{Event, parse_log};
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::scf::{create_namespace, get_account, wait_active};
use crate::server::Server;
use crate::stats::Summary;

/// The log filter a B1 server runs with: the worker's and the API's debug lines carry the server's timestamps.
pub const LOG_FILTER: &str = "info,control::worker=debug,api::server=debug,store::unzip=debug";

const WAIT: Duration = Duration::from_secs(30);

const TARGET: Target = Target::Latency {
    median_ms: Some(5.0),
    p99_ms: Some(20.0),
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    Update,
    Publish,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::Create, Phase::Update, Phase::Publish];

    fn action(self) -> &'static str {
        match self {
            Phase::Create => "CreateFunction",
            Phase::Update => "UpdateFunctionCode",
            Phase::Publish => "PublishVersion",
        }
    }

    /// The kind of the lifecycle operation that finishes it.
    fn op_kind(self) -> &'static str {
        match self {
            Phase::Create => "CreateFunction",
            Phase::Update => "UpdateFunction",
            Phase::Publish => "PublishVersion",
        }
    }
}

/// One timed lifecycle call.
struct Sample {
    /// Wall clock at sending, µs since the epoch (the clock the server logs with).
    sent_wall_us: i64,
    round_trip: Duration,
    to_active: Duration,
    polls: u32,
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub fn run(server: &Server, rounds: usize) -> anyhow::Result<Section> {
    let mut sec = Section {
        bench: "B1",
        title: format!(
            "lifecycle latency, sequential, {rounds} × each of CreateFunction, UpdateFunctionCode, PublishVersion (1 KiB Python zip, a new one per call)"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let ns = format!("b1-{}", now_ms() % 1_000_000_000);
    create_namespace(&mut c, creds, &ns)?;
    for _ in 0..50 {
        get_account(&mut c, creds)?;
    }
    let names: Vec<String> = (0..rounds).map(|i| format!("b1-fn-{i}")).collect();
    let mut floor = Vec::with_capacity(rounds * 3);
    let mut samples: Vec<Vec<Sample>> = Vec::new();
    for phase in Phase::ALL {
        eprintln!("B1: {} × {rounds}…", phase.action());
        let mut got = Vec::with_capacity(rounds);
        for (i, name) in names.iter().enumerate() {
            // The floor, interleaved so that it sees the same conditions.
            let t = Instant::now();
            get_account(&mut c, creds)?;
            floor.push(t.elapsed());
            let body = match phase {
                Phase::Create => json!({
                    "FunctionName": name, "Namespace": ns, "Runtime": "Python3.9",
                    "Handler": "index.main_handler",
                    "Code": { "ZipFile": base64(&python_zip(&format!("b1-create-{i}"))?) },
                }),
                Phase::Update => json!({
                    "FunctionName": name, "Namespace": ns,
                    "ZipFile": base64(&python_zip(&format!("b1-update-{i}"))?),
                }),
                Phase::Publish => json!({ "FunctionName": name, "Namespace": ns }),
            };
            let bytes = serde_json::to_vec(&body)?;
            let sent_wall_us = wall_us();
            let t0 = Instant::now();
            let reply = c.call_raw(creds, phase.action(), &bytes)?;
            let round_trip = t0.elapsed();
            if let Some(e) = reply.get("Error") {
                anyhow::bail!("{} {name}: {e}", phase.action());
            }
            let qualifier = match phase {
                Phase::Publish => Some(
                    reply["FunctionVersion"]
                        .as_str()
                        .ok_or_else(|| anyhow::anyhow!("PublishVersion gave no FunctionVersion"))?
                        .to_string(),
                ),
                _ => None,
            };
            let (seen, polls) = wait_active(&mut c, creds, &ns, name, qualifier.as_deref(), WAIT)?;
            got.push(Sample {
                sent_wall_us,
                round_trip,
                to_active: seen - t0,
                polls,
            });
        }
        samples.push(got);
    }
    let floor = Summary::of(&floor).ok_or_else(|| anyhow::anyhow!("no floor samples"))?;
    let floor_name = "GetAccount, same connection";
    sec.push(Figure::new(
        "B1",
        "floor: GetAccount, same connection",
        Measure::Latency(floor),
    ));

    // The server's own timestamps, when its log is ours to read.
    let events = server.log_text().map(|t| parse_log(&t));
    let mut server_side_ok = true;
    for (phase, got) in Phase::ALL.iter().zip(&samples) {
        let a = phase.action();
        let commits: Option<Vec<i64>> = events.as_ref().map(|ev| {
            ev.iter()
                .filter_map(|e| match &e.event {
                    Event::OpFinished { kind } if kind == phase.op_kind() => Some(e.at_us),
                    _ => None,
                })
                .collect()
        });
        let handled: Option<Vec<(i64, u64)>> = events.as_ref().map(|ev| {
            ev.iter()
                .filter_map(|e| match &e.event {
                    Event::ApiOk { action, us } if action == a => Some((e.at_us, *us)),
                    _ => None,
                })
                .collect()
        });
        match commits {
            Some(cm)
                if cm.len() == got.len()
                    && cm.iter().zip(got).all(|(c, s)| *c >= s.sent_wall_us) =>
            {
                let ms: Vec<f64> = cm
                    .iter()
                    .zip(got)
                    .map(|(c, s)| (c - s.sent_wall_us) as f64 / 1e3)
                    .collect();
                if let Some(s) = Summary::of_ms(&ms) {
                    sec.push(
                        Figure::new(
                            "B1",
                            format!("{a} → Active, sent→commit (server log)"),
                            Measure::Latency(s),
                        )
                        .floor(floor_name, Measure::Latency(floor))
                        .target(TARGET),
                    );
                }
                if let Some(h) = handled.filter(|h| h.len() == got.len()) {
                    let handling: Vec<f64> = h.iter().map(|(_, us)| *us as f64 / 1e3).collect();
                    let after: Vec<f64> = cm
                        .iter()
                        .zip(&h)
                        .map(|(c, (ok, _))| (c - ok) as f64 / 1e3)
                        .collect();
                    if let Some(s) = Summary::of_ms(&handling) {
                        sec.push(Figure::new(
                            "B1",
                            format!("  {a}: server handling (log)"),
                            Measure::Latency(s),
                        ));
                    }
                    if let Some(s) = Summary::of_ms(&after) {
                        sec.push(Figure::new(
                            "B1",
                            format!("  {a}: reply→commit (wake, work, commit)"),
                            Measure::Latency(s),
                        ));
                    }
                    // Where the worker's part goes, for the operations that unpack a new package.
                    let unpacked: Vec<i64> = events
                        .iter()
                        .flatten()
                        .filter(|e| e.event == Event::Unpacked)
                        .map(|e| e.at_us)
                        .collect();
                    let split: Vec<(f64, f64)> = cm
                        .iter()
                        .zip(&h)
                        .filter_map(|(c, (ok, _))| {
                            let u = unpacked.iter().find(|u| *u >= ok && *u <= c)?;
                            Some(((u - ok) as f64 / 1e3, (c - u) as f64 / 1e3))
                        })
                        .collect();
                    if split.len() == got.len() {
                        let (to_unpacked, to_commit): (Vec<f64>, Vec<f64>) =
                            split.into_iter().unzip();
                        for (what, v) in [
                            ("reply→unpacked (wake, claim, read, unzip)", to_unpacked),
                            ("unpacked→commit (check, finish commit)", to_commit),
                        ] {
                            if let Some(s) = Summary::of_ms(&v) {
                                sec.push(Figure::new(
                                    "B1",
                                    format!("    {a}: {what}"),
                                    Measure::Latency(s),
                                ));
                            }
                        }
                    }
                }
            }
            Some(cm) => {
                server_side_ok = false;
                sec.note(format!(
                    "{a}: the server log has {} `operation finished` lines of kind {} for {} calls (or they precede the sends): server timestamps not used",
                    cm.len(),
                    phase.op_kind(),
                    got.len()
                ));
            }
            None => server_side_ok = false,
        }
        let to_active: Vec<Duration> = got.iter().map(|s| s.to_active).collect();
        let rt: Vec<Duration> = got.iter().map(|s| s.round_trip).collect();
        if let Some(s) = Summary::of(&to_active) {
            sec.push(
                Figure::new(
                    "B1",
                    format!("{a} → Active, client poll (1 ms sleeps)"),
                    Measure::Latency(s),
                )
                .floor(floor_name, Measure::Latency(floor))
                .target(TARGET),
            );
        }
        if let Some(s) = Summary::of(&rt) {
            sec.push(
                Figure::new(
                    "B1",
                    format!("  {a}: call round trip (client)"),
                    Measure::Latency(s),
                )
                .floor(floor_name, Measure::Latency(floor)),
            );
        }
        let polls: u32 = got.iter().map(|s| s.polls).sum();
        sec.note(format!(
            "{a}: {:.1} GetFunction polls per call on average",
            f64::from(polls) / got.len().max(1) as f64
        ));
    }
    if server_side_ok {
        sec.note(
            "`sent → commit` is the primary figure: from the client's wall clock at sending to the server's log \
             timestamp of the `operation finished` line, written right after the transaction that sets the \
             terminal status commits (same host, same clock; GetFunction's ModTime has only second resolution). \
             The polling figure is the cross-check and includes up to one poll interval (≈1 ms + a round trip).",
        );
    } else {
        sec.note(
            "server timestamps unavailable (a running server, or its log lines changed): the client's polling \
             is the measurement; it includes up to one poll interval (≈1 ms + a round trip).",
        );
    }
    Ok(sec)
}
