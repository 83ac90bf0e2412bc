//! `stratus alias …`: the aliases of a function.

use clap::Subcommand;
use client::actions::AliasSpec;
use serde_json::Value;

use super::ui::Cell;
use super::{Ctx, Global, text};

#[derive(clap::Args)]
pub struct AliasArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: AliasCommand,
}

#[derive(clap::Args)]
pub struct AliasTarget {
    /// The function.
    pub function: String,
    /// The alias.
    pub alias: String,
    /// The version the alias points at.
    #[arg(long)]
    pub version: String,
    /// Another version's share of the calls, `VERSION=WEIGHT` with WEIGHT in (0, 1) (repeatable).
    #[arg(long = "weight", value_name = "VERSION=WEIGHT")]
    pub weights: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
}

impl AliasTarget {
    fn spec(&self) -> anyhow::Result<AliasSpec> {
        let weights = self
            .weights
            .iter()
            .map(|vw| {
                vw.split_once('=')
                    .and_then(|(v, w)| Some((v.to_string(), w.parse::<f64>().ok()?)))
                    .filter(|(v, _)| !v.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("--weight `{vw}` is not VERSION=WEIGHT"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(AliasSpec {
            function: self.function.clone(),
            alias: self.alias.clone(),
            version: self.version.clone(),
            weights,
            description: self.description.clone(),
        })
    }
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// List the aliases of a function.
    List { function: String },
    /// Show one alias.
    Get { function: String, alias: String },
    /// Create an alias.
    Create(AliasTarget),
    /// Point an alias elsewhere (or change its weights).
    Update(AliasTarget),
    /// Delete an alias.
    Delete { function: String, alias: String },
}

fn weights(a: &Value) -> String {
    a.pointer("/RoutingConfig/AdditionalVersionWeights")
        .and_then(Value::as_array)
        .map(|ws| {
            ws.iter()
                .map(|w| format!("{}={}", text(w, "Version"), text(w, "Weight")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

impl AliasArgs {
    pub fn run(&self, c: &Ctx) -> anyhow::Result<i32> {
        let ns = &c.namespace;
        match &self.command {
            AliasCommand::List { function } => {
                let v = c.client.list_aliases(ns, function)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                    return Ok(0);
                }
                let rows: Vec<Vec<Cell>> = v
                    .get("Aliases")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|a| {
                                vec![
                                    Cell::plain(text(a, "Name")),
                                    Cell::plain(text(a, "FunctionVersion")),
                                    Cell::plain(weights(a)),
                                    Cell::plain(text(a, "Description")),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                c.ui.table(&["NAME", "VERSION", "WEIGHTS", "DESCRIPTION"], &rows);
            }
            AliasCommand::Get { function, alias } => {
                let v = c.client.get_alias(ns, function, alias)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    c.ui.table(
                        &["NAME", "VERSION", "WEIGHTS", "DESCRIPTION"],
                        &[vec![
                            Cell::plain(text(&v, "Name")),
                            Cell::plain(text(&v, "FunctionVersion")),
                            Cell::plain(weights(&v)),
                            Cell::plain(text(&v, "Description")),
                        ]],
                    );
                }
            }
            AliasCommand::Create(t) | AliasCommand::Update(t) => {
                let update = matches!(self.command, AliasCommand::Update(_));
                let v = c.client.put_alias(ns, &t.spec()?, update)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    c.ui.line(&format!(
                        "{} alias {} of {} -> version {}",
                        if update { "Updated" } else { "Created" },
                        t.alias,
                        t.function,
                        t.version
                    ));
                }
            }
            AliasCommand::Delete { function, alias } => {
                let v = c.client.delete_alias(ns, function, alias)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    c.ui.line(&format!("Deleted alias {alias} of {function}"));
                }
            }
        }
        Ok(0)
    }
}
