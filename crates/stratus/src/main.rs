//! The `stratus` binary: reads configuration, builds the store, the control plane and the API, and runs them.

mod cli;
mod config;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{ApiArgs, CommonArgs, HttpArgs, Settings};
use control::{Control, ControlConfig};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "stratus",
    version,
    about = "A self-hosted serverless platform that speaks the Tencent Cloud SCF API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        common: CommonArgs,
        /// Address to listen on (`127.0.0.1:0` picks a free port).
        #[arg(long, env = "STRATUS_LISTEN")]
        listen: Option<String>,
        /// Lifecycle workers.
        #[arg(long, env = "STRATUS_WORKERS")]
        workers: Option<usize>,
        /// Run functions WITHOUT a sandbox (development only: function code runs as plain processes of this user).
        #[arg(long, env = "STRATUS_UNSANDBOXED", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
        unsandboxed: bool,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Run the lifecycle and scale benchmarks (B1, B2, B6) against a server it starts.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Client(Box<cli::ClientCommand>),
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account with its first key; prints it as one JSON line.
    Create {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create another key for an account; prints it as one JSON line.
    Create {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        app_id: i64,
    },
}

fn main() -> anyhow::Result<()> {
    // The sandbox re-executes this binary as its single-threaded helper: that must happen before anything else.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == sandbox::HELPER_ARG) {
        sandbox::helper_main(&args[2..]);
    }
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Command::Client(cmd) = cli.command {
        // Blocking calls to a server: no runtime.
        std::process::exit(cli::run(*cmd));
    }
    if let Command::Bench(args) = &cli.command {
        // Blocking and threaded: it runs outside the async runtime.
        return bench::run(args);
    }
    limit_malloc_arenas();
    // Blocking threads (unpacking, file I/O) stay ten minutes when idle instead of ten seconds, so a steady load
    // keeps one set of them rather than starting new threads all the time.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_keep_alive(Duration::from_secs(600))
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(cli))
}

/// glibc gives every thread that allocates its own malloc arena (up to eight per core) and keeps each arena's high
/// water mark: under a varying load the server's memory then ratchets up with the threads that ever allocated
/// large replies. Two arenas keep the tokio workers from contending while bounding that.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn open(settings: &Settings) -> anyhow::Result<Control> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let store = store::Store::open(
        &settings.database_url,
        &settings.data_dir,
        settings.sqlite_sync,
    )
    .await
    .with_context(|| format!("opening the store at {}", redact(&settings.database_url)))?
    .with_inline_blob_bytes(settings.inline_blob_bytes);
    Ok(Control::new(
        store,
        ControlConfig {
            events: settings.events.clone(),
            concurrency: settings.concurrency.clone(),
            ..ControlConfig::default()
        },
    ))
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

fn account_json(a: &control::NewAccount) -> serde_json::Value {
    serde_json::json!({
        "AppId": a.app_id,
        "Uin": a.uin,
        "SecretId": a.secret_id,
        "SecretKey": a.secret_key,
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            common,
            listen,
            workers,
            unsandboxed,
            api,
            http,
        } => {
            let settings = Settings::resolve(&common, listen, workers)?;
            let limits = api.resolve(&settings.api)?;
            let http = http.resolve(&settings.http, &settings.listen)?;
            serve(settings, limits, http, unsandboxed).await
        }
        Command::Account { command } => match command {
            AccountCommand::Create { common } => {
                let ctl = open(&Settings::resolve(&common, None, None)?).await?;
                let a = ctl.create_account().await?;
                print_json(&account_json(&a))
            }
            AccountCommand::List { common } => {
                let ctl = open(&Settings::resolve(&common, None, None)?).await?;
                for a in ctl.accounts().await? {
                    print_json(&serde_json::json!({"AppId": a.app_id, "Uin": a.uin}))?;
                }
                Ok(())
            }
        },
        Command::Bench(_) | Command::Client(_) => {
            unreachable!("bench and the client commands run before the runtime starts")
        }
        Command::Key { command } => match command {
            KeyCommand::Create { common, app_id } => {
                let ctl = open(&Settings::resolve(&common, None, None)?).await?;
                let a = ctl.create_key(app_id).await?;
                print_json(&account_json(&a))
            }
        },
    }
}

/// On a fresh installation, creates the development account and writes its keys beside the data (mode 0600).
async fn ensure_dev_account(ctl: &Control, data_dir: &Path) -> anyhow::Result<()> {
    if ctl.account_count().await? > 0 {
        return Ok(());
    }
    let a = ctl.create_account().await?;
    let path = data_dir.join("dev-credentials.json");
    let text = serde_json::to_string_pretty(&account_json(&a))?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Created the development account: AppId={} Uin={}\n  SecretId={}\n  SecretKey={}\n  (saved in {})",
        a.app_id,
        a.uin,
        a.secret_id,
        a.secret_key,
        path.display()
    )?;
    out.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// The execution plane: sandboxed instances, or (only when the operator asks) plain processes for development.
/// Without the privileges the sandbox needs, the server refuses to start.
fn execution(
    unsandboxed: bool,
    data_dir: &Path,
    exec: &config::ExecutionConfig,
    egress: Option<engine::EgressSettings>,
) -> anyhow::Result<engine::Engine> {
    let launcher: std::sync::Arc<dyn engine::Launcher> = if unsandboxed {
        tracing::warn!(
            "UNSANDBOXED DEVELOPMENT MODE: function code runs as ordinary processes of this user, with no isolation; never use this with untrusted code"
        );
        std::sync::Arc::new(engine::UnsandboxedLauncher)
    } else {
        engine::SandboxLauncher::check().map_err(|why| {
            anyhow::anyhow!(
                "this host cannot sandbox function instances ({why}); run Stratus as root (or with the needed capabilities), or start it with --unsandboxed for development only"
            )
        })?;
        let data_dir = std::fs::canonicalize(data_dir)
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        match engine::SandboxLauncher::remove_leftover_cgroups() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "removed instance cgroups a previous server left behind"
            ),
            Err(e) => tracing::warn!(error = %e, "could not look for leftover instance cgroups"),
        }
        let mut launcher = engine::SandboxLauncher::new(vec![data_dir]);
        if let Some(settings) = egress {
            let pool = settings.pool;
            match launcher.enable_egress(settings) {
                Ok(removed) => {
                    if removed > 0 {
                        tracing::info!(
                            removed,
                            "removed firewall tables previous servers left behind"
                        );
                    }
                    tracing::info!(%pool, "outbound network for PublicNetStatus=ENABLE functions");
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "no outbound network for instances: every function runs loopback-only"
                ),
            }
        }
        std::sync::Arc::new(launcher)
    };
    // Concurrency: calls beyond these limits are refused at once (432), never queued. Sleeping or waiting calls
    // cost memory, not cores, so the limits follow the account's concurrency quota rather than the core count.
    let limits = model::Limits::default();
    let defaults = engine::EngineConfig::default();
    let quota = limits.concurrent_executions as u32;
    let cfg = engine::EngineConfig {
        max_per_function: exec.max_per_function.unwrap_or(quota),
        max_per_account: exec.max_per_account.unwrap_or(quota),
        max_instances: exec.max_instances.unwrap_or(defaults.max_instances),
        idle_ttl: exec
            .idle_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.idle_ttl),
        runtimes: engine::RuntimeConfig {
            python3: exec.python3.clone(),
            node: exec.node.clone(),
            overrides: exec.runtimes.clone(),
            disabled: exec.disabled_runtimes.clone(),
        },
        ..defaults
    };
    Ok(engine::Engine::new(cfg, launcher))
}

async fn serve(
    settings: Settings,
    api_cfg: api::ApiConfig,
    http: config::HttpSettings,
    unsandboxed: bool,
) -> anyhow::Result<()> {
    let ctl = open(&settings).await?;
    // Only the server clears what dead processes left in DATA_DIR/tmp: `stratus account …` and `stratus key …`
    // may run beside a live server and touch nothing of its temporary files.
    match ctl.store().blobs.clean_stale_temp() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            removed = n,
            "cleared temporary files of processes that are gone"
        ),
        Err(e) => tracing::warn!(error = %e, "could not clear stale temporary files"),
    }
    let engine = execution(
        unsandboxed,
        &settings.data_dir,
        &settings.execution,
        settings.egress.clone(),
    )?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // The function listener, and the base its URLs are shown under.
    let http_listener = tokio::net::TcpListener::bind(&http.listen)
        .await
        .with_context(|| format!("binding the function listener {}", http.listen))?;
    let http_addr = http_listener.local_addr()?;
    let url_base = http
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    // Custom domains' certificates, and the HTTPS listener that serves them by SNI.
    let certs = ingress::tls::Certificates::load(
        http.certificates
            .iter()
            .map(|(id, f)| (id.as_str(), f.cert.as_path(), f.key.as_path())),
    )?;
    let tls_listener = match &http.tls_listen {
        Some(l) => Some(
            tokio::net::TcpListener::bind(l)
                .await
                .with_context(|| format!("binding the HTTPS listener {l}"))?,
        ),
        None => None,
    };
    let ctl = ctl
        .with_engine(engine.clone())
        .with_function_url_base(url_base.clone())
        .with_certificate_ids(certs.ids().cloned());
    ensure_dev_account(&ctl, &settings.data_dir).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let node = format!("{}-{}", hostname(), std::process::id());
    let workers = {
        let ctl = ctl.clone();
        let rx = stop_rx.clone();
        let n = settings.workers;
        let node = node.clone();
        tokio::spawn(async move { ctl.run_workers(n, &node, rx).await })
    };
    // The asynchronous events: N slots beside the lifecycle workers.
    let dispatcher = {
        let ctl = ctl.clone();
        let rx = stop_rx.clone();
        let node = node.clone();
        tokio::spawn(async move { ctl.run_dispatcher(&node, rx).await })
    };
    // Timer triggers: every node schedules, and the shared tick state lets each tick fire once.
    let timers = {
        let ctl = ctl.clone();
        let rx = stop_rx.clone();
        let node = node.clone();
        let cfg = settings.timers.clone();
        tokio::spawn(async move { ctl.run_timers(&node, cfg, rx).await })
    };
    let gc = {
        let ctl = ctl.clone();
        let mut rx = stop_rx.clone();
        let every = Duration::from_secs(settings.gc_interval_secs.max(1));
        let grace = Duration::from_secs(settings.gc_grace_secs);
        let retention_ms = settings.log_retention_days as i64 * 24 * 3600 * 1000;
        let status_retention_ms =
            i64::try_from(settings.status_retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = rx.changed() => break,
                }
                if let Err(e) = ctl.prune_records(retention_ms).await {
                    tracing::warn!(error = %e, "invocation record pruning failed");
                }
                if let Err(e) = ctl.prune_events().await {
                    tracing::warn!(error = %e, "asynchronous event pruning failed");
                }
                if let Err(e) = ctl.store().prune_changes(status_retention_ms).await {
                    tracing::warn!(error = %e, "status change log pruning failed");
                }
                if let Err(e) = ctl.prune_timer_ticks().await {
                    tracing::warn!(error = %e, "timer tick pruning failed");
                }
                match ctl.collect_garbage(grace).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "collected unreferenced blobs"),
                    Err(e) => tracing::warn!(error = %e, "blob collection failed"),
                }
            }
        })
    };
    let recorder = {
        let ctl = ctl.clone();
        let rx = stop_rx.clone();
        tokio::spawn(async move { ctl.run_recorder(rx).await })
    };
    // Renews this node's shares of the concurrency limits.
    let concurrency = {
        let ctl = ctl.clone();
        let rx = stop_rx.clone();
        tokio::spawn(async move { ctl.run_concurrency(rx).await })
    };
    let http_metrics = std::sync::Arc::new(ingress::Metrics::default());
    // The web console's static files share the API listener (it calls the API from the browser).
    let app = api::router(ctl.clone(), api_cfg.clone())
        .merge(ingress::metrics_router(http_metrics.clone()))
        .merge(console::router());
    let functions = ingress::router(
        ctl.clone(),
        ingress::IngressConfig {
            body_timeout: api_cfg.body_timeout,
            max_skew_secs: api_cfg.max_skew_secs,
            ..ingress::IngressConfig::default()
        },
        http_metrics,
    );
    let functions_tls = functions.clone();
    tracing::info!(%addr, %http_addr, %url_base, database = %redact(&settings.database_url), data_dir = %settings.data_dir.display(), "serving");
    {
        // The function listener's line comes first: a client waiting for the API's line then has both.
        let mut out = std::io::stdout().lock();
        writeln!(out, "stratus function URLs on http://{http_addr}")?;
        if let Some(l) = &tls_listener {
            writeln!(
                out,
                "stratus custom domains over HTTPS on {}",
                l.local_addr()?
            )?;
        }
        writeln!(out, "stratus listening on http://{addr}")?;
        out.flush()?;
    }
    // Until SIGTERM; then requests in flight finish on both listeners.
    let (signal_tx, signal_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let function_listener = {
        let cfg = api_cfg.clone();
        let stop = stopped(signal_rx.clone());
        tokio::spawn(async move { api::serve(http_listener, functions, &cfg, stop).await })
    };
    let tls_task = tls_listener.map(|l| {
        let stop = stopped(signal_rx.clone());
        let router = functions_tls;
        let ctl = ctl.clone();
        tokio::spawn(async move { ingress::tls::serve(l, router, ctl, certs, stop).await })
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signal_tx.send(true);
    });
    api::serve(listener, app, &api_cfg, stopped(signal_rx)).await;
    let _ = function_listener.await;
    if let Some(t) = tls_task {
        let _ = t.await;
    }
    let _ = stop_tx.send(true);
    let _ = workers.await;
    let _ = timers.await;
    // Slots finish the event they run; one still running after the grace is left to its lease (another node, or
    // the next start, runs it again).
    if tokio::time::timeout(Duration::from_secs(10), dispatcher)
        .await
        .is_err()
    {
        tracing::warn!("events still running at shutdown are left to their leases");
    }
    let _ = gc.await;
    let _ = recorder.await;
    let _ = concurrency.await;
    // Nothing runs any more: the shares go back to the other nodes at once rather than when their leases lapse.
    ctl.release_concurrency().await;
    engine.shutdown();
    ctl.store().close().await;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://stratus:secret@127.0.0.1:5432/db"),
            "postgres://stratus:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact("sqlite://data/stratus.db"),
            "sqlite://data/stratus.db"
        );
    }
}
