//! `stratus trigger …`: the triggers of a function.

use clap::Subcommand;
use serde_json::Value;

use super::ui::Cell;
use super::{Ctx, Global, text};

#[derive(clap::Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: TriggerCommand,
}

#[derive(Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger, e.g. `--type timer --desc "0 */5 * * * * *"`.
    Create {
        function: String,
        /// The trigger's name.
        #[arg(long)]
        name: String,
        /// `timer`, `http`, … (SCF's trigger types).
        #[arg(long = "type")]
        kind: String,
        /// The trigger's description: a cron expression for a timer, JSON for others.
        #[arg(long)]
        desc: Option<String>,
        /// The version or alias it calls.
        #[arg(long, short = 'q')]
        qualifier: Option<String>,
        /// Create it switched off.
        #[arg(long)]
        disabled: bool,
    },
    /// List the triggers of a function.
    List { function: String },
    /// Delete a trigger.
    Delete {
        function: String,
        #[arg(long)]
        name: String,
        #[arg(long = "type")]
        kind: String,
        #[arg(long, short = 'q')]
        qualifier: Option<String>,
    },
}

impl TriggerArgs {
    pub fn run(&self, c: &Ctx) -> anyhow::Result<i32> {
        let ns = &c.namespace;
        match &self.command {
            TriggerCommand::Create {
                function,
                name,
                kind,
                desc,
                qualifier,
                disabled,
            } => {
                let v = c.client.create_trigger(
                    ns,
                    function,
                    name,
                    kind,
                    desc.as_deref(),
                    qualifier.as_deref(),
                    !disabled,
                )?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    c.ui.line(&format!("Created {kind} trigger {name} of {function}"));
                }
            }
            TriggerCommand::List { function } => {
                let v = c.client.list_triggers(ns, function)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                    return Ok(0);
                }
                let rows: Vec<Vec<Cell>> = v
                    .get("Triggers")
                    .and_then(Value::as_array)
                    .map(|ts| {
                        ts.iter()
                            .map(|t| {
                                let on = t.get("Enable").and_then(Value::as_i64) == Some(1);
                                vec![
                                    Cell::plain(text(t, "TriggerName")),
                                    Cell::plain(text(t, "Type")),
                                    Cell::status(if on { "Enabled" } else { "Disabled" }),
                                    Cell::plain(text(t, "Qualifier")),
                                    Cell::plain(text(t, "TriggerDesc")),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                c.ui.table(
                    &["NAME", "TYPE", "STATE", "QUALIFIER", "DESCRIPTION"],
                    &rows,
                );
            }
            TriggerCommand::Delete {
                function,
                name,
                kind,
                qualifier,
            } => {
                let v = c
                    .client
                    .delete_trigger(ns, function, name, kind, qualifier.as_deref())?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    c.ui.line(&format!("Deleted {kind} trigger {name} of {function}"));
                }
            }
        }
        Ok(0)
    }
}
