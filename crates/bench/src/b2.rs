//! B2, lifecycle throughput: N functions created by C concurrent clients, until all are `Active`; functions/s
//! from the first send to the last observed `Active`. The floor is the same number of signed GetAccount calls at
//! the same concurrency (calls/s).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::fixture::{base64, python_zip};
use crate::http::Client;
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::scf::{
    POLL_SLEEP, count_status, create_function, create_namespace, get_account, run_concurrent,
    wait_active,
};
use crate::server::Server;
use crate::stats::Summary;

const WAIT: Duration = Duration::from_secs(600);

pub fn run(
    server: &Server,
    creates: usize,
    concurrency: usize,
    db: &str,
) -> anyhow::Result<Section> {
    let mut sec = Section {
        bench: "B2",
        title: format!(
            "lifecycle throughput on {db}: {creates} CreateFunction (1 KiB Python zip, a new one each) at concurrency {concurrency}, until all are Active"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let creds = &server.creds;
    let ep = &server.endpoint;
    let mut c = Client::connect(ep)?;
    let ns = format!("b2-{}", now_ms() % 1_000_000_000);
    create_namespace(&mut c, creds, &ns)?;
    let zips: Vec<String> = (0..creates)
        .map(|i| Ok(base64(&python_zip(&format!("b2-{i}"))?)))
        .collect::<anyhow::Result<_>>()?;

    eprintln!("B2: floor, {creates} GetAccount at concurrency {concurrency}…");
    run_concurrent(ep, concurrency, 200, None, |c, _| get_account(c, creds))?;
    let floor = run_concurrent(ep, concurrency, creates, None, |c, _| get_account(c, creds))?;
    let floor_rate = Measure::Rate {
        count: creates,
        secs: (floor.end - floor.start).as_secs_f64(),
        unit: "calls/s",
    };
    let floor_lat = Summary::of(&floor.latencies).map(Measure::Latency);

    eprintln!("B2: {creates} CreateFunction at concurrency {concurrency}…");
    let server_cpu0 = server.cpu();
    let client_cpu0 = crate::server::cpu_time(std::process::id()).ok();
    let run = run_concurrent(ep, concurrency, creates, None, |c, i| {
        create_function(c, creds, &ns, &format!("b2-fn-{i}"), &zips[i])
    })?;
    // Every create has answered; now wait for the last one to become Active. Operations run oldest first, so
    // poll the cheap GetFunction of the last-numbered function (1 ms sleeps), then confirm with a count of all
    // (a COUNT over the namespace, too heavy to repeat every millisecond beside the workers).
    let deadline = Instant::now() + WAIT;
    let last = format!("b2-fn-{}", creates - 1);
    let (_, mut polls) = wait_active(&mut c, creds, &ns, &last, None, WAIT)?;
    let all_active = loop {
        let n = count_status(&mut c, creds, &ns, "Active")?;
        polls += 1;
        let seen = Instant::now();
        if n as usize >= creates {
            break seen;
        }
        if polls.is_multiple_of(200) {
            let failed = count_status(&mut c, creds, &ns, "CreateFailed")?;
            if failed > 0 {
                bail!("{failed} functions became CreateFailed");
            }
        }
        if seen >= deadline {
            bail!("only {n} of {creates} functions are Active after {WAIT:?}");
        }
        std::thread::sleep(POLL_SLEEP * 5);
    };
    let server_cpu = server
        .cpu()
        .zip(server_cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let client_cpu = crate::server::cpu_time(std::process::id())
        .ok()
        .zip(client_cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let secs = (all_active - run.start).as_secs_f64();
    let mut fig = Figure::new(
        "B2",
        format!("{creates} creates → all Active ({db})"),
        Measure::Rate {
            count: creates,
            secs,
            unit: "functions/s",
        },
    )
    .floor(
        format!("{creates} GetAccount at concurrency {concurrency}"),
        floor_rate.clone(),
    );
    if db == "SQLite" {
        fig = fig.target(Target::RateAtLeast(500.0));
    }
    sec.push(fig);
    sec.push(
        Figure::new(
            "B2",
            "  CreateFunction calls answered",
            Measure::Rate {
                count: creates,
                secs: (run.end - run.start).as_secs_f64(),
                unit: "calls/s",
            },
        )
        .floor("GetAccount", floor_rate),
    );
    if let Some(s) = Summary::of(&run.latencies) {
        let mut f = Figure::new(
            "B2",
            format!("  CreateFunction call latency at concurrency {concurrency}"),
            Measure::Latency(s),
        );
        if let Some(fl) = floor_lat.clone() {
            f = f.floor(format!("GetAccount at concurrency {concurrency}"), fl);
        }
        sec.push(f);
    }
    sec.note(format!(
        "the last Active was observed {:.1} ms after the last create answered ({polls} polls: GetFunction of the last-numbered function with 1 ms sleeps until Active, then ListFunctions counts of Active)",
        (all_active - run.end).as_secs_f64() * 1e3
    ));
    if let Some(cpu) = server_cpu {
        sec.note(format!(
            "server CPU (user+system) from the first create to all Active: {:.2} s = {:.2} ms per function over {secs:.2} s ({:.0}% of one core); the bench client used {:.2} s",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e3 / creates as f64,
            cpu.as_secs_f64() / secs * 100.0,
            client_cpu.map_or(0.0, |c| c.as_secs_f64()),
        ));
    }
    if db == "PostgreSQL" {
        sec.note(
            "the ≥ 500 functions/s target is set for SQLite; PostgreSQL is reported without one",
        );
    }
    Ok(sec)
}
