//! The client commands: `stratus configure`, `stratus fn …`, `stratus alias …`, `stratus layer …`,
//! `stratus trigger …`. Each group has its file; they call a server through the signed [`client::Client`].
//!
//! Output: tables (coloured on a terminal, unless `NO_COLOR` is set) or, with `--output json`, JSON on stdout for
//! scripts. Progress bars and spinners are drawn on stderr only when it is a terminal and the output is not JSON.
//! Exit codes: 0 success, 1 a local or network error, 2 a usage error, 3 the server refused the request, 4 the
//! function failed (a deploy that ended in a `…Failed` status, an invocation whose code failed), 141 when the
//! reader of stdout went away.

mod alias;
mod function;
mod layer;
mod profile;
mod trigger;
mod ui;

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

pub use ui::Ui;

/// Exit code: a local or network error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: the server refused the request (an SCF error code).
pub const EXIT_REFUSED: i32 = 3;
/// Exit code: the function failed (deploy ended in a failed status, or the invoked code failed).
pub const EXIT_FAILED: i32 = 4;

/// The client commands, flattened into the binary's command list.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Save an endpoint, key, region and namespace as a profile (in the user's config directory, mode 0600).
    Configure(profile::ConfigureArgs),
    /// Functions: deploy a folder, list, get, delete, invoke, logs, publish, versions.
    #[command(name = "fn")]
    Fn(function::FnArgs),
    /// Aliases of a function: list, get, create, update, delete.
    Alias(alias::AliasArgs),
    /// Layers: publish a folder, list, versions, delete.
    Layer(layer::LayerArgs),
    /// Triggers of a function: create, list, delete.
    Trigger(trigger::TriggerArgs),
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts (one document, or one line per record for logs).
    Json,
}

/// Where the server is, whose key signs, and how to print: flags over variables over the profile over the
/// development account of a local data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// A profile of the config file [default: `default`].
    #[arg(long, global = true, env = "STRATUS_PROFILE")]
    pub profile: Option<String>,
    /// The server: `http://HOST:PORT`.
    #[arg(long, global = true, env = "STRATUS_ENDPOINT")]
    pub endpoint: Option<String>,
    #[arg(long, global = true, env = "STRATUS_SECRET_ID")]
    pub secret_id: Option<String>,
    #[arg(
        long,
        global = true,
        env = "STRATUS_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    #[arg(long, global = true, env = "STRATUS_REGION")]
    pub region: Option<String>,
    /// The namespace [default: the profile's, else `default`].
    #[arg(long, short = 'n', global = true, env = "STRATUS_NAMESPACE")]
    pub namespace: Option<String>,
    /// With no profile and no key: the local data directory whose development account to use.
    #[arg(long, global = true, env = "STRATUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `table` or `json`.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// How long to wait for a status to settle, in seconds.
    #[arg(long, global = true, env = "STRATUS_WAIT_SECS", default_value_t = 600)]
    pub wait_secs: u64,
    /// How often `logs --follow` asks for new records, in milliseconds.
    #[arg(long, global = true, env = "STRATUS_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
}

/// What a command needs: the client, the namespace and the printer.
pub struct Ctx {
    pub client: client::Client,
    pub namespace: String,
    pub ui: Ui,
    pub wait: Duration,
    pub poll: Duration,
}

impl Ctx {
    fn new(g: &Global) -> anyhow::Result<Ctx> {
        let (target, namespace) = profile::resolve(g)?;
        Ok(Ctx {
            client: client::Client::new(target)?,
            namespace,
            ui: Ui::new(g.output),
            wait: Duration::from_secs(g.wait_secs.max(1)),
            poll: Duration::from_millis(g.poll_ms.max(10)),
        })
    }
}

/// Runs a client command; returns the process's exit code.
pub fn run(cmd: ClientCommand) -> i32 {
    let (output, result) = match cmd {
        ClientCommand::Configure(a) => (Output::Table, profile::configure(&a)),
        ClientCommand::Fn(a) => (a.global.output, with_ctx(&a.global, |c| a.run(c))),
        ClientCommand::Alias(a) => (a.global.output, with_ctx(&a.global, |c| a.run(c))),
        ClientCommand::Layer(a) => (a.global.output, with_ctx(&a.global, |c| a.run(c))),
        ClientCommand::Trigger(a) => (a.global.output, with_ctx(&a.global, |c| a.run(c))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let ui = Ui::new(output);
            ui.error(&e);
            match e.downcast_ref::<client::Error>() {
                Some(client::Error::Api { .. }) => EXIT_REFUSED,
                _ => EXIT_ERROR,
            }
        }
    }
}

fn with_ctx(g: &Global, f: impl FnOnce(&Ctx) -> anyhow::Result<i32>) -> anyhow::Result<i32> {
    let ctx = Ctx::new(g)?;
    f(&ctx)
}

/// Reads `--event`: JSON text, or `@FILE` holding it; checked to be JSON.
fn json_arg(v: &str) -> anyhow::Result<String> {
    let text = match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the event file {path}: {e}"))?,
        None => v.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| anyhow::anyhow!("the event is not JSON: {e}"))?;
    Ok(text)
}

/// A string field of a JSON object, or "".
fn s<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(serde_json::Value::as_str).unwrap_or("")
}

/// A field shown as text (numbers too).
fn text(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_or_files_of_json() {
        assert_eq!(json_arg(r#"{"a":1}"#).ok().as_deref(), Some(r#"{"a":1}"#));
        assert!(json_arg("{nope").is_err());
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("e.json");
        std::fs::write(&f, "[1, 2]").expect("write");
        assert_eq!(
            json_arg(&format!("@{}", f.display())).ok().as_deref(),
            Some("[1, 2]")
        );
        assert!(json_arg("@/nonexistent/e.json").is_err());
    }
}
