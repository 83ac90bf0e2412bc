//! `stratus fn …`: deploy a folder, list, get, delete, invoke, logs, publish, versions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use client::actions::{FunctionLog, FunctionSpec, FunctionState, LogQuery};
use client::watch::{Poller, wait_settled};
use indicatif::ProgressBar;
use serde_json::{Value, json};

use super::ui::{Cell, DIM, GREEN, RED, human_bytes, status_style};
use super::{Ctx, EXIT_FAILED, Global, json_arg, s, text};

/// Packages at least this large show an upload bar.
const UPLOAD_BAR_BYTES: usize = 1 << 20;
/// The longest pause between two polls of a status.
const STATUS_POLL: Duration = Duration::from_millis(100);
/// How far back of the newest record `logs --follow` keeps asking, for invocations that end out of order.
const FOLLOW_SLACK_MS: i64 = 5_000;
/// The runtime of a new function when `--runtime` is not given.
const DEFAULT_RUNTIME: &str = "Python3.9";

#[derive(clap::Args)]
pub struct FnArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: FnCommand,
}

#[derive(Subcommand)]
pub enum FnCommand {
    /// Zip a folder (honouring its .stratusignore) and create the function, or update its code and
    /// configuration; waits for the status to settle and fails (exit 4) with the reasons when it fails.
    Deploy(DeployArgs),
    /// List the functions of the namespace.
    List {
        /// Only names containing this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a function (or one version or alias of it).
    Get {
        name: String,
        #[arg(long, short = 'q')]
        qualifier: Option<String>,
    },
    /// Delete a function (or one version of it) and wait until it is gone.
    Delete {
        name: String,
        #[arg(long, short = 'q')]
        qualifier: Option<String>,
    },
    /// Invoke a function and print what it returned (exit 4 when its code failed).
    Invoke {
        name: String,
        /// The event: JSON text, or @FILE.
        #[arg(long, short = 'e')]
        event: Option<String>,
        #[arg(long, short = 'q')]
        qualifier: Option<String>,
        /// Queue the event and return at once with its request id.
        #[arg(long = "async")]
        asynchronous: bool,
        /// Also print the log the invocation wrote (on stderr).
        #[arg(long)]
        log: bool,
    },
    /// Print the invocation logs; `--follow` keeps printing new ones.
    Logs {
        name: String,
        #[arg(long, short = 'q')]
        qualifier: Option<String>,
        /// Keep polling for new invocations until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only invocations started since: `30s`, `10m`, `2h`, `1d`, or `YYYY-MM-DD HH:MM:SS` (UTC).
        #[arg(long)]
        since: Option<String>,
        /// How many records at first (the newest).
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Publish $LATEST as a new version and wait for it to be active.
    Publish {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the published versions.
    Versions { name: String },
}

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The code folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The function's name [default: the folder's name].
    #[arg(long)]
    pub name: Option<String>,
    /// The runtime (on create, `Python3.9` when not given).
    #[arg(long)]
    pub runtime: Option<String>,
    /// `FILE.FUNCTION`, e.g. `index.main_handler`.
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory in MB.
    #[arg(long)]
    pub memory: Option<i64>,
    /// Timeout in seconds.
    #[arg(long)]
    pub timeout: Option<i64>,
    /// An environment variable `KEY=VALUE` (repeatable; replaces all variables).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A layer `NAME:VERSION` (repeatable; replaces all layers).
    #[arg(long = "layer", value_name = "NAME:VERSION")]
    pub layers: Vec<String>,
    /// `event` or `http` (on create).
    #[arg(long = "type", value_parser = ["event", "http"])]
    pub kind: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Publish a version once $LATEST is active.
    #[arg(long)]
    pub publish: bool,
}

impl DeployArgs {
    fn spec(&self) -> anyhow::Result<FunctionSpec> {
        let env = if self.env.is_empty() {
            None
        } else {
            Some(
                self.env
                    .iter()
                    .map(|kv| {
                        kv.split_once('=')
                            .filter(|(k, _)| !k.is_empty())
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .ok_or_else(|| anyhow::anyhow!("--env `{kv}` is not KEY=VALUE"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            )
        };
        let layers = if self.layers.is_empty() {
            None
        } else {
            Some(
                self.layers
                    .iter()
                    .map(|nv| {
                        nv.rsplit_once(':')
                            .and_then(|(n, v)| Some((n.to_string(), v.parse::<i64>().ok()?)))
                            .filter(|(n, _)| !n.is_empty())
                            .ok_or_else(|| anyhow::anyhow!("--layer `{nv}` is not NAME:VERSION"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            )
        };
        Ok(FunctionSpec {
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            memory_mb: self.memory,
            timeout_secs: self.timeout,
            env,
            layers,
            kind: self.kind.as_deref().map(|k| {
                if k == "http" {
                    "HTTP".to_string()
                } else {
                    "Event".to_string()
                }
            }),
            description: self.description.clone(),
        })
    }

    fn name(&self) -> anyhow::Result<String> {
        if let Some(n) = &self.name {
            return Ok(n.clone());
        }
        let abs = std::fs::canonicalize(&self.dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.dir.display()))?;
        abs.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("give the function a --name"))
    }
}

impl FnArgs {
    pub fn run(&self, c: &Ctx) -> anyhow::Result<i32> {
        match &self.command {
            FnCommand::Deploy(a) => deploy(c, a),
            FnCommand::List { search } => list(c, search.as_deref()),
            FnCommand::Get { name, qualifier } => {
                let v = c
                    .client
                    .get_function(&c.namespace, name, qualifier.as_deref())?;
                show_function(c, &v);
                Ok(0)
            }
            FnCommand::Delete { name, qualifier } => delete(c, name, qualifier.as_deref()),
            FnCommand::Invoke {
                name,
                event,
                qualifier,
                asynchronous,
                log,
            } => invoke(
                c,
                name,
                event.as_deref(),
                qualifier.as_deref(),
                *asynchronous,
                *log,
            ),
            FnCommand::Logs {
                name,
                qualifier,
                follow,
                since,
                limit,
            } => logs(
                c,
                name,
                qualifier.as_deref(),
                *follow,
                since.as_deref(),
                *limit,
            ),
            FnCommand::Publish { name, description } => {
                let (code, v) = publish(c, name, description.as_deref(), None)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    show_function(c, &v);
                }
                Ok(code)
            }
            FnCommand::Versions { name } => versions(c, name),
        }
    }
}

/// Waits for `name` (or a version) to settle, with a spinner and a note for each status; returns the state.
fn wait(
    c: &Ctx,
    name: &str,
    qualifier: Option<&str>,
    start: Instant,
) -> anyhow::Result<FunctionState> {
    let label = match qualifier {
        Some(q) => format!("{name}:{q}"),
        None => name.to_string(),
    };
    let bar = c.ui.spinner(&label);
    let mut src = Poller::new(&c.client, &c.namespace, name, qualifier, STATUS_POLL);
    let r = wait_settled(&mut src, c.wait, &label, &mut |st| {
        bar.set_message(format!(
            "{label} {}",
            c.ui.err_paint(&st.status, status_style(&st.status))
        ));
        c.ui.note(
            Some(&bar),
            &format!(
                "  {:>7}  {label} {}",
                c.ui.err_paint(&format!("{} ms", start.elapsed().as_millis()), DIM),
                c.ui.err_paint(&st.status, status_style(&st.status))
            ),
        );
    });
    bar.finish_and_clear();
    Ok(r?)
}

/// Prints the reasons of a failed status on stderr.
fn report_failure(c: &Ctx, st: &FunctionState) {
    let mut err = std::io::stderr().lock();
    use std::io::Write;
    let _ = writeln!(
        err,
        "{} the function is {}",
        c.ui.err_paint("error:", RED.bold()),
        c.ui.err_paint(&st.status, RED)
    );
    for r in &st.reasons {
        let _ = writeln!(err, "  {}: {}", r.error_code, r.error_message);
    }
}

/// Sends a call whose body carries a package, with an upload bar when it is large.
pub(super) fn with_upload<T>(
    c: &Ctx,
    size: usize,
    what: &str,
    f: impl FnOnce(Option<client::Progress<'_>>) -> Result<T, client::Error>,
) -> Result<T, client::Error> {
    if size < UPLOAD_BAR_BYTES {
        return f(None);
    }
    let bar: ProgressBar = c.ui.bytes_bar(size as u64, what);
    let mut p = |sent: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(sent);
    };
    let r = f(Some(&mut p));
    bar.finish_and_clear();
    r
}

fn deploy(c: &Ctx, a: &DeployArgs) -> anyhow::Result<i32> {
    let start = Instant::now();
    let name = a.name()?;
    let mut spec = a.spec()?;
    let pkg = client::package::zip_dir(&a.dir)?;
    let zip = pkg.base64();
    c.ui.note(
        None,
        &format!(
            "Packaged {} ({} files, {}) into {}",
            a.dir.display(),
            pkg.files,
            human_bytes(pkg.bytes),
            human_bytes(pkg.zip.len() as u64)
        ),
    );
    let ns = &c.namespace;
    let mut existing = c.client.function_state(ns, &name, None)?;
    if existing
        .as_ref()
        .is_some_and(|st| st.status == "CreateFailed")
    {
        // It never ran and SCF refuses to update it: replace it.
        c.ui.note(
            None,
            &format!("Replacing {name}, whose creation had failed"),
        );
        c.client.delete_function(ns, &name, None)?;
        if let Some(st) = wait_gone(c, &name, None)? {
            report_failure(c, &st);
            return Ok(EXIT_FAILED);
        }
        existing = None;
    }
    let mut st = match existing {
        None => {
            if spec.runtime.is_none() {
                spec.runtime = Some(DEFAULT_RUNTIME.to_string());
            }
            with_upload(c, zip.len(), "Uploading", |p| {
                c.client.create_function(ns, &name, &spec, &zip, p)
            })?;
            c.ui.note(None, &format!("Creating {name} in namespace {ns}"));
            wait(c, &name, None, start)?
        }
        Some(st) => {
            let kind = s(&st.raw, "Type");
            if let Some(want) = spec.kind.as_deref()
                && !kind.is_empty()
                && want != kind
            {
                anyhow::bail!(
                    "{name} is of type {kind}: a function's type cannot change (delete it first to make it {want})"
                );
            }
            if !st.is_settled() {
                wait(c, &name, None, start)?;
            }
            with_upload(c, zip.len(), "Uploading", |p| {
                c.client
                    .update_function_code(ns, &name, spec.handler.as_deref(), &zip, p)
            })?;
            c.ui.note(None, &format!("Updating the code of {name}"));
            let mut st = wait(c, &name, None, start)?;
            if !st.is_failed() && spec.changes_configuration() {
                c.client.update_function_configuration(ns, &name, &spec)?;
                c.ui.note(None, &format!("Updating the configuration of {name}"));
                st = wait(c, &name, None, start)?;
            }
            st
        }
    };
    let mut version = None;
    if !st.is_failed() && a.publish {
        let (code, v) = publish(c, &name, a.description.as_deref(), Some(start))?;
        if code != 0 {
            st = FunctionState::from_reply(v.clone());
        }
        version = Some(text(&v, "FunctionVersion"));
    }
    let failed = st.is_failed();
    if c.ui.json() {
        let mut out = st.raw.clone();
        if let (Some(o), Some(v)) = (out.as_object_mut(), &version) {
            o.insert("PublishedVersion".into(), json!(v));
        }
        c.ui.print_json(&out);
    }
    if failed {
        report_failure(c, &st);
        return Ok(EXIT_FAILED);
    }
    if !c.ui.json() {
        let v = version
            .map(|v| format!(", version {v} published"))
            .unwrap_or_default();
        c.ui.line(&format!(
            "Deployed {name}: {}{v} in {} ms",
            c.ui.out_paint(&st.status, GREEN),
            start.elapsed().as_millis()
        ));
    }
    Ok(0)
}

/// Publishes a version and waits for it; returns 4 and the version's reply when it failed.
fn publish(
    c: &Ctx,
    name: &str,
    description: Option<&str>,
    start: Option<Instant>,
) -> anyhow::Result<(i32, Value)> {
    let start = start.unwrap_or_else(Instant::now);
    let v = c.client.publish_version(&c.namespace, name, description)?;
    let version = text(&v, "FunctionVersion");
    c.ui.note(None, &format!("Publishing version {version} of {name}"));
    let st = wait(c, name, Some(&version), start)?;
    if st.is_failed() {
        report_failure(c, &st);
        return Ok((EXIT_FAILED, st.raw));
    }
    Ok((0, st.raw))
}

fn show_function(c: &Ctx, v: &Value) {
    if c.ui.json() {
        c.ui.print_json(v);
        return;
    }
    let env: Vec<String> = v
        .pointer("/Environment/Variables")
        .and_then(Value::as_array)
        .map(|vars| {
            vars.iter()
                .map(|kv| format!("{}={}", s(kv, "Key"), s(kv, "Value")))
                .collect()
        })
        .unwrap_or_default();
    let layers: Vec<String> = v
        .get("Layers")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| format!("{}:{}", s(l, "LayerName"), text(l, "LayerVersion")))
                .collect()
        })
        .unwrap_or_default();
    let rows = [
        ("Name", text(v, "FunctionName")),
        ("Namespace", text(v, "Namespace")),
        ("Version", text(v, "FunctionVersion")),
        ("Status", text(v, "Status")),
        ("Runtime", text(v, "Runtime")),
        ("Handler", text(v, "Handler")),
        ("Type", text(v, "Type")),
        ("Memory", format!("{} MB", text(v, "MemorySize"))),
        ("Timeout", format!("{} s", text(v, "Timeout"))),
        ("Code size", text(v, "CodeSize")),
        ("Environment", env.join(" ")),
        ("Layers", layers.join(" ")),
        ("Modified", text(v, "ModTime")),
        ("Description", text(v, "Description")),
    ];
    for (k, val) in rows {
        let shown = if k == "Status" {
            c.ui.out_paint(&val, status_style(&val))
        } else {
            val
        };
        c.ui.line(&format!(
            "{:<12} {shown}",
            c.ui.out_paint(k, super::ui::BOLD)
        ));
    }
    if let Some(rs) = v.get("StatusReasons").and_then(Value::as_array) {
        for r in rs {
            c.ui.line(&format!(
                "{:<12} {}: {}",
                "Reason",
                s(r, "ErrorCode"),
                s(r, "ErrorMessage")
            ));
        }
    }
}

fn list(c: &Ctx, search: Option<&str>) -> anyhow::Result<i32> {
    const PAGE: i64 = 100;
    let mut all: Vec<Value> = Vec::new();
    let mut total;
    loop {
        let v = c
            .client
            .list_functions(&c.namespace, search, all.len() as i64, PAGE)?;
        total = v.get("TotalCount").and_then(Value::as_i64).unwrap_or(0);
        let page = v
            .get("Functions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let n = page.len();
        all.extend(page);
        if n == 0 || all.len() as i64 >= total {
            break;
        }
    }
    if c.ui.json() {
        c.ui.print_json(&json!({"Functions": all, "TotalCount": total}));
        return Ok(0);
    }
    let rows: Vec<Vec<Cell>> = all
        .iter()
        .map(|f| {
            vec![
                Cell::plain(text(f, "FunctionName")),
                Cell::status(s(f, "Status")),
                Cell::plain(text(f, "Runtime")),
                Cell::plain(text(f, "Type")),
                Cell::plain(text(f, "ModTime")),
            ]
        })
        .collect();
    c.ui.table(&["NAME", "STATUS", "RUNTIME", "TYPE", "MODIFIED"], &rows);
    Ok(0)
}

/// Waits until `name` (or a version) is gone; returns its state instead when the deletion failed.
fn wait_gone(
    c: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> anyhow::Result<Option<FunctionState>> {
    let bar = c.ui.spinner(&format!("Deleting {name}"));
    let deadline = Instant::now() + c.wait;
    let mut pause = Duration::from_millis(5);
    let r = loop {
        match c.client.function_state(&c.namespace, name, qualifier) {
            Ok(None) => break Ok(None),
            Ok(Some(st)) if st.is_failed() => break Ok(Some(st)),
            Ok(Some(_)) if Instant::now() >= deadline => {
                break Err(anyhow::anyhow!("{name} was not gone after {:?}", c.wait));
            }
            Ok(Some(_)) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(STATUS_POLL);
            }
            Err(e) => break Err(e.into()),
        }
    };
    bar.finish_and_clear();
    r
}

fn delete(c: &Ctx, name: &str, qualifier: Option<&str>) -> anyhow::Result<i32> {
    c.client.delete_function(&c.namespace, name, qualifier)?;
    if let Some(st) = wait_gone(c, name, qualifier)? {
        report_failure(c, &st);
        return Ok(EXIT_FAILED);
    }
    if c.ui.json() {
        c.ui.print_json(&json!({"FunctionName": name, "Deleted": true}));
    } else {
        c.ui.line(&format!("Deleted {name}"));
    }
    Ok(0)
}

fn invoke(
    c: &Ctx,
    name: &str,
    event: Option<&str>,
    qualifier: Option<&str>,
    asynchronous: bool,
    log: bool,
) -> anyhow::Result<i32> {
    let event = event.map(json_arg).transpose()?;
    let bar = c.ui.spinner(&format!("Invoking {name}"));
    let r = c.client.invoke(
        &c.namespace,
        name,
        qualifier,
        event.as_deref(),
        asynchronous,
    );
    bar.finish_and_clear();
    let r = r?;
    let failed = r.invoke_result != 0;
    if c.ui.json() {
        c.ui.print_json(&json!({
            "FunctionRequestId": r.function_request_id,
            "InvokeResult": r.invoke_result,
            "RetMsg": r.ret_msg,
            "ErrMsg": r.err_msg,
            "Log": r.log,
            "Duration": r.duration,
            "BillDuration": r.bill_duration,
            "MemUsage": r.mem_usage,
        }));
    } else if asynchronous {
        c.ui.line(&r.function_request_id);
    } else {
        if log && !r.log.is_empty() {
            c.ui.note(None, r.log.trim_end());
        }
        if failed {
            c.ui.note(
                None,
                &format!(
                    "{} {}",
                    c.ui.err_paint("error:", RED.bold()),
                    if r.err_msg.is_empty() {
                        &r.ret_msg
                    } else {
                        &r.err_msg
                    }
                ),
            );
        } else {
            c.ui.line(&r.ret_msg);
        }
        c.ui.note(
            None,
            &c.ui.err_paint(
                &format!(
                    "RequestId {}  {:.2} ms  billed {} ms  memory {}",
                    r.function_request_id,
                    r.duration,
                    r.bill_duration,
                    human_bytes(u64::try_from(r.mem_usage).unwrap_or(0))
                ),
                DIM,
            ),
        );
    }
    Ok(if failed { EXIT_FAILED } else { 0 })
}

/// `--since`: a duration back from now (`30s`, `10m`, `2h`, `1d`) or a UTC time; as milliseconds.
fn since_ms(v: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Some(ms) = model::time::parse_ms(v) {
        return Ok(ms);
    }
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(v.len()));
    let n: i64 = num.parse().map_err(|_| {
        anyhow::anyhow!("--since `{v}` is not like 30s, 10m, 2h, 1d or YYYY-MM-DD HH:MM:SS")
    })?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => anyhow::bail!("--since `{v}`: the unit must be s, m, h or d"),
    };
    Ok(now_ms - secs * 1000)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn print_log(c: &Ctx, l: &FunctionLog) {
    if c.ui.json() {
        c.ui.print_json_line(&serde_json::to_value(l).unwrap_or(Value::Null));
        return;
    }
    let code = if l.ret_code == 0 {
        c.ui.out_paint("ok", GREEN)
    } else {
        c.ui.out_paint(&format!("RetCode {}", l.ret_code), RED)
    };
    c.ui.line(&format!(
        "{}  {}  {code}  {:.2} ms",
        c.ui.out_paint(&l.start_time, DIM),
        l.request_id,
        l.duration
    ));
    for line in l.log.lines() {
        c.ui.line(&format!("    {line}"));
    }
}

/// What `logs` printed: request ids with their start (ms), so that old ones can be forgotten, and the newest.
#[derive(Default)]
struct Tail {
    seen: HashMap<String, i64>,
    newest: Option<i64>,
}

impl Tail {
    fn show(&mut self, c: &Ctx, logs: Vec<FunctionLog>) {
        for l in logs {
            if self.seen.contains_key(&l.request_id) {
                continue;
            }
            let start = model::time::parse_ms(&l.start_time).unwrap_or(0);
            self.newest = Some(self.newest.map_or(start, |f| f.max(start)));
            print_log(c, &l);
            self.seen.insert(l.request_id.clone(), start);
        }
    }
}

fn logs(
    c: &Ctx,
    name: &str,
    qualifier: Option<&str>,
    follow: bool,
    since: Option<&str>,
    limit: i64,
) -> anyhow::Result<i32> {
    const PAGE: i64 = 100;
    let limit = limit.clamp(1, 10_000);
    let ns = &c.namespace;
    let mut tail = Tail::default();
    // First: the newest `limit` records (since `--since`), oldest first.
    let first = LogQuery {
        qualifier: qualifier.map(str::to_string),
        start_time: since
            .map(|v| since_ms(v, now_ms()).map(model::time::format_ms))
            .transpose()?,
        limit,
        ..LogQuery::default()
    };
    let (mut logs, _) = c.client.function_logs(ns, name, &first)?;
    logs.reverse();
    tail.show(c, logs);
    if !follow {
        return Ok(0);
    }
    // Then every `poll`: what started at or after the newest seen second (or now), oldest first.
    let mut floor = tail.newest.unwrap_or_else(|| now_ms() - 1000);
    loop {
        std::thread::sleep(c.poll);
        let mut offset = 0;
        loop {
            let q = LogQuery {
                qualifier: qualifier.map(str::to_string),
                start_time: Some(model::time::format_ms(floor)),
                offset,
                limit: PAGE,
                ascending: true,
                ..LogQuery::default()
            };
            let (page, _) = c.client.function_logs(ns, name, &q)?;
            let n = page.len() as i64;
            tail.show(c, page);
            if n < PAGE {
                break;
            }
            offset += n;
        }
        if let Some(f) = tail.newest {
            // A record is written when its invocation ends, so one that started before the newest shown may
            // still come: look a few seconds back (second granularity), and forget what is older.
            let newest_second = f - f.rem_euclid(1000);
            floor = newest_second - FOLLOW_SLACK_MS;
            tail.seen.retain(|_, start| *start >= floor);
        }
    }
}

fn versions(c: &Ctx, name: &str) -> anyhow::Result<i32> {
    let v = c.client.list_versions(&c.namespace, name, 10_000)?;
    if c.ui.json() {
        c.ui.print_json(&v);
        return Ok(0);
    }
    let rows: Vec<Vec<Cell>> = v
        .get("Versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|x| {
                    vec![
                        Cell::plain(text(x, "Version")),
                        Cell::status(s(x, "Status")),
                        Cell::plain(text(x, "AddTime")),
                        Cell::plain(text(x, "Description")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    c.ui.table(&["VERSION", "STATUS", "CREATED", "DESCRIPTION"], &rows);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now = 1_700_000_000_000;
        assert_eq!(since_ms("30s", now).ok(), Some(now - 30_000));
        assert_eq!(since_ms("10m", now).ok(), Some(now - 600_000));
        assert_eq!(since_ms("2h", now).ok(), Some(now - 7_200_000));
        assert_eq!(since_ms("1d", now).ok(), Some(now - 86_400_000));
        assert_eq!(
            since_ms("2023-11-14 22:13:20", now).ok(),
            Some(1_700_000_000_000)
        );
        assert!(since_ms("ten", now).is_err());
        assert!(since_ms("5w", now).is_err());
    }

    fn args(env: &[&str], layers: &[&str]) -> DeployArgs {
        DeployArgs {
            dir: ".".into(),
            name: Some("f".into()),
            runtime: None,
            handler: None,
            memory: None,
            timeout: None,
            env: env.iter().map(|s| s.to_string()).collect(),
            layers: layers.iter().map(|s| s.to_string()).collect(),
            kind: Some("http".into()),
            description: None,
            publish: false,
        }
    }

    #[test]
    fn deploy_flags_become_a_spec() {
        let s = args(&["A=1", "B=x=y"], &["deps:2"]).spec().expect("valid");
        assert_eq!(
            s.env,
            Some(vec![("A".into(), "1".into()), ("B".into(), "x=y".into())])
        );
        assert_eq!(s.layers, Some(vec![("deps".into(), 2)]));
        assert_eq!(s.kind.as_deref(), Some("HTTP"));
        assert!(args(&["nokey"], &[]).spec().is_err());
        assert!(args(&["=v"], &[]).spec().is_err());
        assert!(args(&[], &["deps"]).spec().is_err());
        assert!(args(&[], &["deps:x"]).spec().is_err());
    }
}
