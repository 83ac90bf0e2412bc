//! `stratus layer …`: publish a folder as a layer version, list, versions, delete.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::Value;

use super::ui::{Cell, GREEN, RED, human_bytes};
use super::{Ctx, EXIT_FAILED, Global, s, text};

#[derive(clap::Args)]
pub struct LayerArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: LayerCommand,
}

#[derive(Subcommand)]
pub enum LayerCommand {
    /// Zip a folder (honouring its .stratusignore) as a new version of a layer; waits for it to be active.
    Publish {
        /// The folder.
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// A runtime the layer serves (repeatable, at least one).
        #[arg(long = "runtime", required = true)]
        runtimes: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the layers.
    List,
    /// List the versions of a layer.
    Versions { name: String },
    /// Delete one version of a layer.
    Delete { name: String, version: i64 },
}

fn versions_table(c: &Ctx, list: &[Value]) {
    let rows: Vec<Vec<Cell>> = list
        .iter()
        .map(|l| {
            vec![
                Cell::plain(text(l, "LayerName")),
                Cell::plain(text(l, "LayerVersion")),
                Cell::status(s(l, "Status")),
                Cell::plain(
                    l.get("CompatibleRuntimes")
                        .and_then(Value::as_array)
                        .map(|r| {
                            r.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default(),
                ),
                Cell::plain(text(l, "AddTime")),
            ]
        })
        .collect();
    c.ui.table(&["NAME", "VERSION", "STATUS", "RUNTIMES", "CREATED"], &rows);
}

impl LayerArgs {
    pub fn run(&self, c: &Ctx) -> anyhow::Result<i32> {
        match &self.command {
            LayerCommand::Publish {
                dir,
                name,
                runtimes,
                description,
            } => publish(c, dir, name, runtimes, description.as_deref()),
            LayerCommand::List => {
                let v = c.client.list_layers()?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    versions_table(
                        c,
                        v.get("Layers").and_then(Value::as_array).map_or(&[], |a| a),
                    );
                }
                Ok(0)
            }
            LayerCommand::Versions { name } => {
                let v = c.client.list_layer_versions(name)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    versions_table(
                        c,
                        v.get("LayerVersions")
                            .and_then(Value::as_array)
                            .map_or(&[], |a| a),
                    );
                }
                Ok(0)
            }
            LayerCommand::Delete { name, version } => {
                let v = c.client.delete_layer_version(name, *version)?;
                if c.ui.json() {
                    c.ui.print_json(&v);
                } else {
                    c.ui.line(&format!("Deleted version {version} of layer {name}"));
                }
                Ok(0)
            }
        }
    }
}

fn publish(
    c: &Ctx,
    dir: &std::path::Path,
    name: &str,
    runtimes: &[String],
    description: Option<&str>,
) -> anyhow::Result<i32> {
    let start = Instant::now();
    let pkg = client::package::zip_dir(dir)?;
    let zip = pkg.base64();
    c.ui.note(
        None,
        &format!(
            "Packaged {} ({} files, {}) into {}",
            dir.display(),
            pkg.files,
            human_bytes(pkg.bytes),
            human_bytes(pkg.zip.len() as u64)
        ),
    );
    let v = super::function::with_upload(c, zip.len(), "Uploading", |p| {
        c.client
            .publish_layer_version(name, runtimes, &zip, description, p)
    });
    let version = v?
        .get("LayerVersion")
        .and_then(Value::as_i64)
        .ok_or_else(|| anyhow::anyhow!("PublishLayerVersion returned no LayerVersion"))?;
    let spin = c.ui.spinner(&format!("Publishing {name}:{version}"));
    let deadline = Instant::now() + c.wait;
    let mut pause = Duration::from_millis(5);
    let v = loop {
        let v = c.client.get_layer_version(name, version)?;
        let status = s(&v, "Status");
        if status != "Publishing" && !status.is_empty() {
            break v;
        }
        if Instant::now() >= deadline {
            spin.finish_and_clear();
            anyhow::bail!("layer {name}:{version} still {status} after {:?}", c.wait);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    };
    spin.finish_and_clear();
    let status = s(&v, "Status").to_string();
    if c.ui.json() {
        c.ui.print_json(&v);
    }
    if status != "Active" {
        c.ui.note(
            None,
            &format!(
                "{} layer {name}:{version} is {}",
                c.ui.err_paint("error:", RED.bold()),
                c.ui.err_paint(&status, RED)
            ),
        );
        return Ok(EXIT_FAILED);
    }
    if !c.ui.json() {
        c.ui.line(&format!(
            "Published layer {name} version {version}: {} in {} ms",
            c.ui.out_paint(&status, GREEN),
            start.elapsed().as_millis()
        ));
    }
    Ok(0)
}
