//! `stratus bench`: the lifecycle and scale benchmarks of `spec/performance.md` (B1, B2, B6), run against a real
//! server that this binary starts as a child process (or a running one), each figure printed with its median,
//! p99, the floor measured in the same run, the ratio and the target.

pub mod b1;
pub mod b10;
pub mod b2;
pub mod b6;
pub mod events;
pub mod fixture;
pub mod http;
pub mod http_bench;
pub mod invoke;
pub mod logs;
pub mod report;
pub mod scf;
pub mod server;
pub mod soak;
pub mod stats;
pub mod throttle;

use std::io::Write;

use anyhow::bail;

use crate::http::{Creds, Endpoint};
use crate::report::Section;
use crate::server::{DbChoice, Server, ServerOpts};

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    B1,
    B2,
    B6,
    /// B3, B4, B5 and B7: invocation latency, throughput, cold start and instance footprint.
    Invoke,
    /// The 432 path (a call refused over a function's reserved concurrency) beside B3's warm invoke.
    Throttle,
    /// B8 and B9: event acknowledgements, the drain of a backlog beside B4's synchronous throughput, and the idle
    /// enqueue-to-start latency (B9 also on PostgreSQL when STRATUS_TEST_DATABASE_URL is set and the database is
    /// SQLite), then B10 (timer skew) on a server of its own.
    Events,
    /// A mixed load for `--minutes`, with the server's memory, open files and threads each minute.
    Soak,
    /// B13: an event function behind a function URL (floors: a direct Invoke, a bare hyper server); B11, B12, B14: a web function behind its URL (floors: the same server started directly).
    Http,
    /// B10 alone: timer skew, with one timer and with 1,000 due in the same second.
    Timers,
    All,
}

/// `stratus bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The benchmark to run (`all`: B1, B2 and B6, each on a fresh server).
    #[arg(value_enum)]
    pub which: Which,
    /// `sqlite` (default: a fresh database in a temporary directory), `postgres` (a fresh database made through
    /// the admin URL in STRATUS_TEST_DATABASE_URL, dropped at the end) or a `postgres://` admin URL.
    #[arg(long, value_name = "sqlite|postgres|URL")]
    pub database_url: Option<String>,
    /// B6: how many functions to register.
    #[arg(long, default_value_t = 100_000)]
    pub functions: usize,
    /// B6: how many created functions may wait for the workers at a time (0: no limit). The server's claim
    /// query slows down with the backlog, so an unbounded registration takes far longer.
    #[arg(long, default_value_t = 2000)]
    pub backlog: usize,
    /// B1: calls of each kind.
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    /// B2: functions to create.
    #[arg(long, default_value_t = 1000)]
    pub creates: usize,
    /// Concurrent clients for B2 and B6's registration.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The spawned server's lifecycle workers (default: the server's own default).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Use a running server at http://HOST:PORT instead of starting one (B1 and B2 only).
    #[arg(long, requires_all = ["secret_id", "secret_key"])]
    pub endpoint: Option<String>,
    /// The running server's API key (with --endpoint).
    #[arg(long, requires = "endpoint")]
    pub secret_id: Option<String>,
    /// The secret of that key (with --endpoint).
    #[arg(long, requires = "endpoint")]
    pub secret_key: Option<String>,
    /// B3: sequential warm calls.
    #[arg(long, default_value_t = 5000)]
    pub calls: usize,
    /// B4: concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// B4: seconds of load.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// B5: cold starts per runtime.
    #[arg(long, default_value_t = 20)]
    pub colds: usize,
    /// B8: seconds of acknowledgements (each one queues an event that the dispatchers then drain).
    #[arg(long, default_value_t = 3.0)]
    pub ack_seconds: f64,
    /// B9: events to queue and drain.
    #[arg(long, default_value_t = 10_000)]
    pub events: usize,
    /// B9: idle enqueue-to-start samples.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Soak: minutes of load (the first third, at least one, is warm-up).
    #[arg(long, default_value_t = 30)]
    pub minutes: usize,
    /// B10: seconds of the single per-second timer.
    #[arg(long, default_value_t = 20)]
    pub timer_secs: u64,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    pub json: bool,
}

fn server_for(args: &BenchArgs, db: &DbChoice, log_filter: &str) -> anyhow::Result<Server> {
    if let Some(url) = &args.endpoint {
        return Ok(Server::external(
            Endpoint::parse(url)?,
            Creds {
                secret_id: args.secret_id.clone().unwrap_or_default(),
                secret_key: args.secret_key.clone().unwrap_or_default(),
            },
        ));
    }
    Server::spawn(&ServerOpts {
        db: db.clone(),
        workers: args.workers,
        log_filter: log_filter.to_string(),
    })
}

/// Runs the chosen benchmarks and prints their figures.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let db = DbChoice::parse(
        args.database_url.as_deref(),
        std::env::var("STRATUS_TEST_DATABASE_URL").ok(),
    )?;
    if args.endpoint.is_some() && args.database_url.is_some() {
        bail!(
            "--database-url chooses the database of a server the bench starts; it does not apply with --endpoint"
        );
    }
    if args.endpoint.is_some() && matches!(args.which, Which::B6 | Which::All) {
        bail!("B6 creates accounts on the server's database: run it without --endpoint");
    }
    let db_name = if args.endpoint.is_some() {
        "the running server's database"
    } else {
        db.name()
    };
    let command = report::command_line();
    let date = format!("{} UTC", model::time::format_ms(report::now_ms()));
    let machine = report::machine();
    if !args.json {
        println!("stratus bench — {date}\ncommand: {command}\nmachine: {machine}");
    }
    let want = |w: Which| args.which == w || args.which == Which::All;
    let mut sections: Vec<Section> = Vec::new();
    let mut emit = |s: Section| -> anyhow::Result<()> {
        if !args.json {
            let mut out = std::io::stdout().lock();
            s.print(&mut out)?;
            out.flush()?;
        }
        sections.push(s);
        Ok(())
    };
    if want(Which::B1) {
        let server = server_for(args, &db, b1::LOG_FILTER)?;
        emit(b1::run(&server, args.rounds)?)?;
    }
    if want(Which::B2) {
        let server = server_for(args, &db, "info")?;
        emit(b2::run(&server, args.creates, args.concurrency, db_name)?)?;
    }
    if want(Which::B6) {
        let server = server_for(args, &db, "info")?;
        emit(b6::run(
            &server,
            args.functions,
            args.concurrency,
            args.backlog,
            db_name,
        )?)?;
    }
    if want(Which::Invoke) {
        let server = server_for(args, &db, "info")?;
        for s in invoke::run(&server, args.calls, args.clients, args.seconds, args.colds)? {
            emit(s)?;
        }
    }
    if args.which == Which::Http {
        let server = server_for(args, &db, "info")?;
        emit(http_bench::run(&server, args.calls)?)?;
        emit(http_bench::run_web(&server, args.calls)?)?;
    }
    if args.which == Which::Timers {
        let server = server_for(args, &db, "info")?;
        emit(b10::run(&server, args.timer_secs)?)?;
    }
    if args.which == Which::Throttle {
        let server = server_for(args, &db, "info")?;
        emit(throttle::run(&server, args.calls)?)?;
    }
    if args.which == Which::Events {
        let server = server_for(args, &db, "info")?;
        emit(events::b8(&server, args.clients, args.ack_seconds)?)?;
        emit(events::b9(
            &server,
            args.clients,
            args.seconds,
            args.events,
            args.samples,
        )?)?;
        drop(server);
        if args.endpoint.is_none()
            && db == DbChoice::Sqlite
            && let Ok(admin_url) = std::env::var("STRATUS_TEST_DATABASE_URL")
            && !admin_url.is_empty()
        {
            let pg = DbChoice::Postgres { admin_url };
            let server = server_for(args, &pg, "info")?;
            emit(events::b9(
                &server,
                args.clients,
                args.seconds,
                args.events,
                args.samples,
            )?)?;
        }
        // B10 on a server of its own, so the drain above leaves it no backlog.
        let server = server_for(args, &db, "info")?;
        emit(b10::run(&server, args.timer_secs)?)?;
    }
    if args.which == Which::Soak {
        let server = server_for(args, &db, "info")?;
        emit(soak::run(&server, args.minutes, args.clients)?)?;
    }
    if args.json {
        let doc = serde_json::json!({
            "command": command,
            "date": date,
            "machine": machine,
            "sqlite_sync": std::env::var("STRATUS_SQLITE_SYNC").unwrap_or_else(|_| "full".into()),
            "sections": sections.iter().map(Section::json).collect::<Vec<_>>(),
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        out.flush()?;
    }
    Ok(())
}
