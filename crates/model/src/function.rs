//! Functions, their snapshots (code + configuration + bound layers) and aliases.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a function lives: its account, namespace and name. Every lookup is scoped by all three.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionKey {
    pub app_id: i64,
    pub namespace: String,
    pub name: String,
}

/// `$LATEST` or a published version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Qualifier {
    Latest,
    Version(u64),
}

impl Qualifier {
    pub const LATEST: &'static str = "$LATEST";

    /// Parses `$LATEST` or a positive version number; anything else (an alias name, say) is `None`.
    pub fn parse(s: &str) -> Option<Qualifier> {
        if s == Self::LATEST {
            return Some(Qualifier::Latest);
        }
        if s.is_empty()
            || s.len() > 10
            || !s.bytes().all(|b| b.is_ascii_digit())
            || s.starts_with('0')
        {
            return None;
        }
        s.parse().ok().map(Qualifier::Version)
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Latest => f.write_str(Self::LATEST),
            Qualifier::Version(n) => write!(f, "{n}"),
        }
    }
}

/// A content-addressed code package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRef {
    pub sha256: String,
    pub size: u64,
}

/// One bound layer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub name: String,
    pub version: i64,
}

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

/// A function's environment variables, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub variables: Vec<EnvVar>,
}

/// Everything about a function that is not its code. Stored as part of an immutable [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub handler: String,
    pub runtime: String,
    pub memory_size: i64,
    pub timeout: i64,
    pub init_timeout: i64,
    pub description: String,
    pub environment: Environment,
    pub layers: Vec<LayerRef>,
    /// `Event` or `HTTP`.
    pub function_type: String,
    pub role: String,
    /// `ENABLE` / `DISABLE`.
    pub public_net: String,
    /// `TRUE` / `FALSE` flags as SCF spells them.
    pub install_dependency: String,
    pub async_run_enable: String,
    pub trace_enable: String,
    pub dns_cache: String,
    pub l5_enable: String,
    pub cls_logset_id: String,
    pub cls_topic_id: String,
    /// Settings for integrations Stratus does not run (VPC, CFS, dead-letter queues, …): accepted, stored and
    /// shown back verbatim, keyed by their API field name.
    #[serde(default)]
    pub stored: BTreeMap<String, serde_json::Value>,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        FunctionConfig {
            handler: "index.main_handler".into(),
            runtime: "Python2.7".into(),
            memory_size: 128,
            timeout: 3,
            init_timeout: 65,
            description: String::new(),
            environment: Environment::default(),
            layers: Vec::new(),
            function_type: "Event".into(),
            role: String::new(),
            public_net: "ENABLE".into(),
            install_dependency: "FALSE".into(),
            async_run_enable: "FALSE".into(),
            trace_enable: "FALSE".into(),
            dns_cache: "FALSE".into(),
            l5_enable: "FALSE".into(),
            cls_logset_id: String::new(),
            cls_topic_id: String::new(),
            stored: BTreeMap::new(),
        }
    }
}

/// What invocations run: code, configuration and bound layers. Immutable once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub code: CodeRef,
    pub config: FunctionConfig,
}

/// One entry of `StatusReasons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReason {
    pub code: String,
    pub message: String,
}

impl StatusReason {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        StatusReason {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Extra versions an alias sends a share of traffic to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionWeight {
    pub version: String,
    pub weight: f64,
}

/// A rule that routes matching invocations to a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMatch {
    pub version: String,
    pub key: String,
    pub method: String,
    pub expression: String,
}

/// How an alias spreads invocations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingConfig {
    pub weights: Vec<VersionWeight>,
    pub matches: Vec<VersionMatch>,
}

/// A named pointer to a version, with optional routing to others.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub name: String,
    pub function_version: String,
    pub routing: RoutingConfig,
    pub description: String,
    pub add_ms: i64,
    pub mod_ms: i64,
}

impl Alias {
    /// The alias every function has, routing to `$LATEST`; it cannot be deleted.
    pub const DEFAULT: &'static str = "$DEFAULT";

    /// Every version this alias may send traffic to.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.function_version.as_str())
            .chain(self.routing.weights.iter().map(|w| w.version.as_str()))
            .chain(self.routing.matches.iter().map(|m| m.version.as_str()))
    }
}

/// The settings a CreateFunction or UpdateFunctionConfiguration call gives; `None` keeps what is there (or the
/// default, on create).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigPatch {
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub memory_size: Option<i64>,
    pub timeout: Option<i64>,
    pub init_timeout: Option<i64>,
    pub description: Option<String>,
    pub environment: Option<Environment>,
    pub layers: Option<Vec<LayerRef>>,
    pub function_type: Option<String>,
    pub role: Option<String>,
    pub public_net: Option<String>,
    pub install_dependency: Option<String>,
    pub async_run_enable: Option<String>,
    pub trace_enable: Option<String>,
    pub dns_cache: Option<String>,
    pub l5_enable: Option<String>,
    pub cls_logset_id: Option<String>,
    pub cls_topic_id: Option<String>,
    pub stored: BTreeMap<String, serde_json::Value>,
}

impl ConfigPatch {
    /// The configuration that results from applying this patch to `base`.
    pub fn apply(&self, base: &FunctionConfig) -> FunctionConfig {
        let mut c = base.clone();
        fn set<T: Clone>(dst: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *dst = v.clone();
            }
        }
        set(&mut c.handler, &self.handler);
        set(&mut c.runtime, &self.runtime);
        set(&mut c.memory_size, &self.memory_size);
        set(&mut c.timeout, &self.timeout);
        set(&mut c.init_timeout, &self.init_timeout);
        set(&mut c.description, &self.description);
        set(&mut c.environment, &self.environment);
        set(&mut c.layers, &self.layers);
        set(&mut c.function_type, &self.function_type);
        set(&mut c.role, &self.role);
        set(&mut c.public_net, &self.public_net);
        set(&mut c.install_dependency, &self.install_dependency);
        set(&mut c.async_run_enable, &self.async_run_enable);
        set(&mut c.trace_enable, &self.trace_enable);
        set(&mut c.dns_cache, &self.dns_cache);
        set(&mut c.l5_enable, &self.l5_enable);
        set(&mut c.cls_logset_id, &self.cls_logset_id);
        set(&mut c.cls_topic_id, &self.cls_topic_id);
        for (k, v) in &self.stored {
            c.stored.insert(k.clone(), v.clone());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers() {
        assert_eq!(Qualifier::parse("$LATEST"), Some(Qualifier::Latest));
        assert_eq!(Qualifier::parse("7"), Some(Qualifier::Version(7)));
        assert_eq!(Qualifier::parse("07"), None);
        assert_eq!(Qualifier::parse("0"), None);
        assert_eq!(Qualifier::parse("prod"), None);
        assert_eq!(Qualifier::parse("99999999999"), None);
        assert_eq!(Qualifier::Version(3).to_string(), "3");
    }

    #[test]
    fn alias_versions_cover_routing() {
        let a = Alias {
            name: "prod".into(),
            function_version: "1".into(),
            routing: RoutingConfig {
                weights: vec![VersionWeight {
                    version: "2".into(),
                    weight: 0.3,
                }],
                matches: vec![],
            },
            description: String::new(),
            add_ms: 0,
            mod_ms: 0,
        };
        assert_eq!(a.versions().collect::<Vec<_>>(), ["1", "2"]);
    }
}
