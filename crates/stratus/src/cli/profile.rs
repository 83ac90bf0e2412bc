//! Profiles: `$XDG_CONFIG_HOME/stratus/config.toml` (else `~/.config/stratus/config.toml`), mode 0600, holding
//! `[profiles.NAME]` tables. Each setting is taken from its flag, else its `STRATUS_*` variable, else the
//! profile; with no key at all, the development account `stratus serve` wrote into a local data directory.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Global;

pub const DEFAULT_PROFILE: &str = "default";
const DEV_CREDENTIALS: &str = "dev-credentials.json";

/// One profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// Where the config file is.
pub fn config_path() -> anyhow::Result<PathBuf> {
    let base =
        match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x),
            None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty()).context(
                "neither XDG_CONFIG_HOME nor HOME is set: no place for the config file",
            )?)
            .join(".config"),
        };
    Ok(base.join("stratus").join("config.toml"))
}

fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the file (and its directory) readable by this user only.
fn save(path: &Path, cfg: &ConfigFile) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().context("the config path has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(cfg).context("serialising the profiles")?;
    let tmp = dir.join(".config.toml.tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        // A file left by an older run may have other bits: make sure.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The development account a local `stratus serve` created, if its data directory has one.
fn dev_account(data_dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(data_dir.join(DEV_CREDENTIALS)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v.get("SecretId")?.as_str()?.to_string(),
        v.get("SecretKey")?.as_str()?.to_string(),
    ))
}

/// The server, key and namespace to use.
pub fn resolve(g: &Global) -> anyhow::Result<(client::Target, String)> {
    let path = config_path()?;
    let file = load(&path)?;
    let name = g.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    let p = match file.profiles.get(name) {
        Some(p) => p.clone(),
        None if g.profile.is_some() => {
            anyhow::bail!(
                "no profile `{name}` in {} (create it with `stratus configure --profile {name}`)",
                path.display()
            )
        }
        None => Profile::default(),
    };
    let mut secret_id = g.secret_id.clone().or(p.secret_id);
    let mut secret_key = g.secret_key.clone().or(p.secret_key);
    if secret_id.is_none() && secret_key.is_none() {
        let data_dir = g
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
        if let Some((id, key)) = dev_account(&data_dir) {
            secret_id = Some(id);
            secret_key = Some(key);
        } else {
            anyhow::bail!(
                "no key to sign with: run `stratus configure`, set STRATUS_SECRET_ID and STRATUS_SECRET_KEY, or point --data-dir at the data directory of a local `stratus serve` (none found in {})",
                data_dir.display()
            );
        }
    }
    let (Some(secret_id), Some(secret_key)) = (secret_id, secret_key) else {
        anyhow::bail!("a SecretId needs its SecretKey and a SecretKey its SecretId");
    };
    let endpoint = g
        .endpoint
        .clone()
        .or(p.endpoint)
        .unwrap_or_else(|| format!("http://{}", crate::config::DEFAULT_LISTEN));
    let region = g
        .region
        .clone()
        .or(p.region)
        .unwrap_or_else(|| client::DEFAULT_REGION.to_string());
    let namespace = g
        .namespace
        .clone()
        .or(p.namespace)
        .unwrap_or_else(|| "default".to_string());
    Ok((
        client::Target {
            endpoint,
            secret_id,
            secret_key,
            region,
        },
        namespace,
    ))
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigureArgs {
    /// The profile to write.
    #[arg(long, default_value = DEFAULT_PROFILE)]
    pub profile: String,
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub secret_id: Option<String>,
    #[arg(long)]
    pub secret_key: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
}

/// Asks for a value on a terminal, showing the current one; empty keeps it.
fn ask(label: &str, current: Option<&str>, secret: bool) -> anyhow::Result<Option<String>> {
    let shown = match current {
        Some(c) if secret => {
            let n = c.chars().count();
            let tail: String = c.chars().skip(n.saturating_sub(4)).collect();
            format!("****{}", if n > 4 { tail } else { String::new() })
        }
        Some(c) => c.to_string(),
        None => "none".to_string(),
    };
    let prompt = format!("{label} [{shown}]: ");
    let line = if secret {
        // Not echoed.
        rpassword::prompt_password(prompt)?
    } else {
        let mut err = std::io::stderr().lock();
        write!(err, "{prompt}")?;
        err.flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    let v = line.trim();
    Ok(if v.is_empty() {
        current.map(str::to_string)
    } else {
        Some(v.to_string())
    })
}

/// `stratus configure`: sets the given fields of a profile; on a terminal, asks for the ones not given.
pub fn configure(a: &ConfigureArgs) -> anyhow::Result<i32> {
    let path = config_path()?;
    let mut file = load(&path)?;
    let mut p = file.profiles.get(&a.profile).cloned().unwrap_or_default();
    let given = [
        &a.endpoint,
        &a.secret_id,
        &a.secret_key,
        &a.region,
        &a.namespace,
    ]
    .iter()
    .any(|v| v.is_some());
    let interactive = !given && std::io::stdin().is_terminal();
    let fields: [(&str, &Option<String>, &mut Option<String>, bool); 5] = [
        ("Endpoint", &a.endpoint, &mut p.endpoint, false),
        ("SecretId", &a.secret_id, &mut p.secret_id, false),
        ("SecretKey", &a.secret_key, &mut p.secret_key, true),
        ("Region", &a.region, &mut p.region, false),
        ("Namespace", &a.namespace, &mut p.namespace, false),
    ];
    for (label, flag, slot, secret) in fields {
        if let Some(v) = flag {
            *slot = Some(v.clone()).filter(|v| !v.is_empty());
        } else if interactive {
            *slot = ask(label, slot.as_deref(), secret)?;
        }
    }
    if let Some(e) = &p.endpoint {
        // Refuse what the client could not use, now rather than at the first call.
        client::Client::new(client::Target {
            endpoint: e.clone(),
            secret_id: String::new(),
            secret_key: String::new(),
            region: String::new(),
        })?;
    }
    file.profiles.insert(a.profile.clone(), p);
    save(&path, &file)?;
    let mut err = std::io::stderr().lock();
    writeln!(err, "Saved profile `{}` in {}", a.profile, path.display())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_with_mode_0600() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("stratus").join("config.toml");
        let mut cfg = ConfigFile::default();
        cfg.profiles.insert(
            "prod".into(),
            Profile {
                endpoint: Some("http://127.0.0.1:9000".into()),
                secret_id: Some("AKIDx".into()),
                secret_key: Some("k".into()),
                region: None,
                namespace: Some("team".into()),
            },
        );
        save(&path, &cfg).expect("saves");
        assert_eq!(load(&path).expect("loads"), cfg);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            load(&d.path().join("none.toml"))
                .expect("absent is empty")
                .profiles
                .is_empty()
        );
        std::fs::write(&path, "[profiles.x]\nbogus = 1\n").expect("write");
        assert!(load(&path).is_err());
    }

    #[test]
    fn dev_account_is_read_from_the_data_dir() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(dev_account(d.path()), None);
        std::fs::write(
            d.path().join(DEV_CREDENTIALS),
            r#"{"AppId": 1, "Uin": "1", "SecretId": "AKIDdev", "SecretKey": "devkey"}"#,
        )
        .expect("write");
        assert_eq!(
            dev_account(d.path()),
            Some(("AKIDdev".into(), "devkey".into()))
        );
    }
}
