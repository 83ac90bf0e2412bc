//! Synchronous validation of names and settings, as SCF does it. A failure names the parameter it is about;
//! the API layer turns `field` into `InvalidParameterValue.<field>`.

use crate::function::{EnvVar, Environment};
use crate::limits::Limits;

/// A parameter value that SCF would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    /// The suffix of the error code: `FunctionName`, `MemorySize`, `EnvironmentSystemProtect`, …
    pub field: &'static str,
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        InvalidValue {
            field,
            message: message.into(),
        }
    }
}

type Result<T = ()> = std::result::Result<T, InvalidValue>;

/// Runtimes SCF knows. Which of them this installation can run is the execution plane's business.
pub const RUNTIMES: &[&str] = &[
    "Python2.7",
    "Python3.6",
    "Python3.7",
    "Python3.9",
    "Python3.10",
    "Python3.11",
    "Python3.12",
    "Nodejs6.10",
    "Nodejs8.9",
    "Nodejs10.15",
    "Nodejs12.16",
    "Nodejs14.18",
    "Nodejs16.13",
    "Nodejs18.15",
    "Php5.6",
    "Php7",
    "Php7.4",
    "Php8.0",
    "Go1",
    "Java8",
    "Java11",
    "CustomRuntime",
];

/// Environment keys the platform sets itself.
pub const RESERVED_ENV_PREFIXES: &[&str] = &["SCF_", "QCLOUD_", "TENCENTCLOUD_"];

fn word_chars(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// 2–60 characters: letters, digits, `-` and `_`; starts with a letter; does not end with `-` or `_`.
pub fn function_name(name: &str) -> Result {
    let ok = (2..=60).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphabetic()
        && word_chars(name, b"-_")
        && !name.ends_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "FunctionName",
            format!(
                "FunctionName `{name}` is invalid: 2-60 letters, digits, `-` or `_`, starting with a letter and not ending with `-` or `_`."
            ),
        ))
    }
}

/// 1–30 characters: letters, digits, `-` and `_`, starting with a letter or digit.
pub fn namespace_name(name: &str) -> Result {
    let ok = (1..=30).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && word_chars(name, b"-_");
    if ok {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "Namespace",
            format!("Namespace `{name}` is invalid: 1-30 letters, digits, `-` or `_`."),
        ))
    }
}

/// 1–63 characters: letters, digits, `-` and `_`, starting with a letter; a version number or `$LATEST` is not
/// an alias name.
pub fn alias_name(name: &str) -> Result {
    let ok = (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphabetic()
        && word_chars(name, b"-_");
    if ok {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "Name",
            format!(
                "alias name `{name}` is invalid: 1-63 letters, digits, `-` or `_`, starting with a letter."
            ),
        ))
    }
}

/// 1–64 characters: letters, digits, `-` and `_`, starting with a letter and ending with a letter or digit.
pub fn layer_name(name: &str) -> Result {
    let ok = (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphabetic()
        && word_chars(name, b"-_")
        && !name.ends_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "LayerName",
            format!(
                "LayerName `{name}` is invalid: 1-64 letters, digits, `-` or `_`, starting with a letter and ending with a letter or digit."
            ),
        ))
    }
}

pub fn runtime(rt: &str) -> Result {
    if RUNTIMES.contains(&rt) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "Runtime",
            format!(
                "Runtime `{rt}` is not supported; use one of {}.",
                RUNTIMES.join(", ")
            ),
        ))
    }
}

/// `file.function`, where the file part may sit in a sub-directory (`src/index.main_handler`) and Java's
/// `package.Class::method` is accepted.
pub fn handler(h: &str) -> Result {
    let bad = || {
        InvalidValue::new(
            "Handler",
            format!(
                "Handler `{h}` is invalid: expected `file.function`, e.g. `index.main_handler`."
            ),
        )
    };
    if !(3..=128).contains(&h.len()) {
        return Err(bad());
    }
    let (file, func) = h.rsplit_once('.').ok_or_else(bad)?;
    let file_ok = !file.is_empty()
        && !file.starts_with('/')
        && !file
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && word_chars(file, b"-_/.");
    let func_ok = !func.is_empty() && word_chars(func, b"-_:$");
    if file_ok && func_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// 64 MB, or 128 MB to 3072 MB in steps of 128 MB.
pub fn memory_size(mb: i64) -> Result {
    if mb == 64 || ((128..=3072).contains(&mb) && mb % 128 == 0) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "MemorySize",
            format!("MemorySize {mb} is invalid: 64, or 128 to 3072 in steps of 128 (MB)."),
        ))
    }
}

pub fn timeout(secs: i64, limits: &Limits) -> Result {
    if (1..=limits.timeout_max).contains(&secs) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "Timeout",
            format!(
                "Timeout {secs} is invalid: 1 to {} seconds.",
                limits.timeout_max
            ),
        ))
    }
}

pub fn init_timeout(secs: i64, limits: &Limits) -> Result {
    if (1..=limits.init_timeout_max).contains(&secs) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "InitTimeout",
            format!(
                "InitTimeout {secs} is invalid: 1 to {} seconds.",
                limits.init_timeout_max
            ),
        ))
    }
}

pub fn description(d: &str, limits: &Limits) -> Result {
    if d.chars().count() <= limits.description_chars_max {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "Description",
            format!(
                "Description is too long: at most {} characters.",
                limits.description_chars_max
            ),
        ))
    }
}

/// Keys are identifiers, unique, not reserved by the platform; all keys and values together fit in 4 KB.
pub fn environment(env: &Environment, limits: &Limits) -> Result {
    let mut total = 0usize;
    for (i, EnvVar { key, value }) in env.variables.iter().enumerate() {
        let ident = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && word_chars(key, b"_");
        if !ident {
            return Err(InvalidValue::new(
                "Environment",
                format!(
                    "environment variable name `{key}` is invalid: letters, digits and `_`, not starting with a digit."
                ),
            ));
        }
        if let Some(p) = RESERVED_ENV_PREFIXES.iter().find(|p| key.starts_with(**p)) {
            return Err(InvalidValue::new(
                "EnvironmentSystemProtect",
                format!(
                    "environment variable `{key}` is reserved: names starting with `{p}` are set by the platform."
                ),
            ));
        }
        if env.variables[..i].iter().any(|v| v.key == *key) {
            return Err(InvalidValue::new(
                "Environment",
                format!("environment variable `{key}` is given twice."),
            ));
        }
        total += key.len() + value.len();
    }
    if total > limits.environment_bytes_max {
        return Err(InvalidValue::new(
            "EnvironmentExceededLimit",
            format!(
                "environment variables take {total} bytes; the limit is {} bytes.",
                limits.environment_bytes_max
            ),
        ));
    }
    Ok(())
}

/// `TRUE` or `FALSE`, as SCF spells its flags.
pub fn flag(field: &'static str, v: &str) -> Result {
    if v == "TRUE" || v == "FALSE" {
        Ok(())
    } else {
        Err(InvalidValue::new(
            field,
            format!("{field} must be TRUE or FALSE, not `{v}`."),
        ))
    }
}

/// `Event` or `HTTP`.
pub fn function_type(t: &str) -> Result {
    if t == "Event" || t == "HTTP" {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "Type",
            format!("Type must be Event or HTTP, not `{t}`."),
        ))
    }
}

/// Every rule that applies to a whole configuration (what CreateFunction and UpdateFunctionConfiguration check
/// before accepting). Layer existence is checked by the control plane, which can look layers up.
pub fn config(c: &crate::FunctionConfig, limits: &Limits) -> Result {
    runtime(&c.runtime)?;
    if c.runtime != "CustomRuntime" {
        handler(&c.handler)?;
    }
    memory_size(c.memory_size)?;
    timeout(c.timeout, limits)?;
    init_timeout(c.init_timeout, limits)?;
    description(&c.description, limits)?;
    environment(&c.environment, limits)?;
    function_type(&c.function_type)?;
    if c.layers.len() > limits.layers_per_function {
        return Err(InvalidValue::new(
            "Layers",
            format!(
                "{} layers given; a function binds at most {}.",
                c.layers.len(),
                limits.layers_per_function
            ),
        ));
    }
    for (i, l) in c.layers.iter().enumerate() {
        layer_name(&l.name).map_err(|e| InvalidValue::new("Layers", e.message))?;
        if l.version < 1 {
            return Err(InvalidValue::new(
                "Layers",
                format!("layer `{}` version {} is invalid.", l.name, l.version),
            ));
        }
        if c.layers[..i].iter().any(|o| o.name == l.name) {
            return Err(InvalidValue::new(
                "Layers",
                format!("layer `{}` is bound twice.", l.name),
            ));
        }
    }
    for (field, v) in [
        ("InstallDependency", &c.install_dependency),
        ("AsyncRunEnable", &c.async_run_enable),
        ("TraceEnable", &c.trace_enable),
        ("DnsCache", &c.dns_cache),
        ("L5Enable", &c.l5_enable),
    ] {
        flag(field, v)?;
    }
    if c.public_net != "ENABLE" && c.public_net != "DISABLE" {
        return Err(InvalidValue::new(
            "PublicNetConfig",
            format!(
                "PublicNetStatus must be ENABLE or DISABLE, not `{}`.",
                c.public_net
            ),
        ));
    }
    stored_settings(&c.stored, limits)
}

/// The integration settings Stratus keeps without acting on them (`VpcConfig`, `Tags`, `ProtocolParams`, …): each
/// at most `stored_setting_bytes_max` of JSON and all together at most `stored_settings_bytes_max`, so that what
/// lives in every snapshot stays small; `Tags` as SCF's tag service bounds them (at most 50, keys of 1 to 127
/// characters, values of at most 255).
pub fn stored_settings(
    stored: &std::collections::BTreeMap<String, serde_json::Value>,
    limits: &Limits,
) -> Result {
    let mut total = 0usize;
    for (name, v) in stored {
        let bytes = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
        if bytes > limits.stored_setting_bytes_max {
            return Err(InvalidValue::new(
                "LimitExceeded",
                format!(
                    "{name} is {bytes} bytes of JSON; a setting may be at most {} bytes.",
                    limits.stored_setting_bytes_max
                ),
            ));
        }
        total = total.saturating_add(bytes);
    }
    if total > limits.stored_settings_bytes_max {
        return Err(InvalidValue::new(
            "LimitExceeded",
            format!(
                "the integration settings are {total} bytes of JSON together; at most {} bytes are kept.",
                limits.stored_settings_bytes_max
            ),
        ));
    }
    if let Some(tags) = stored.get("Tags") {
        tags_within_limits(tags, limits)?;
    }
    if let Some(d) = stored.get("DeadLetterConfig") {
        dead_letter_config(d)?;
    }
    Ok(())
}

/// SCF's dead-letter types: CMQ queues and topics (stored and shown back; Stratus has no CMQ to deliver to).
pub const DEAD_LETTER_CMQ_TYPES: &[&str] = &["CMQ-QUEUE", "CMQ-TOPIC", "QUEUE", "TOPIC"];
/// Stratus's dead-letter type: a function of the same namespace receives the failed event.
pub const DEAD_LETTER_FUNCTION: &str = "function";

/// A `DeadLetterConfig`: no `Type` (none), one of SCF's CMQ types (any case), or `function` with the `Name` of a
/// function of the same namespace (a valid function name; whether it exists is seen when an event fails).
pub fn dead_letter_config(v: &serde_json::Value) -> Result {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    let (kind, name) = (text("Type"), text("Name"));
    if kind.is_empty()
        || DEAD_LETTER_CMQ_TYPES
            .iter()
            .any(|t| t.eq_ignore_ascii_case(kind))
    {
        return Ok(());
    }
    if kind == DEAD_LETTER_FUNCTION {
        return function_name(name).map_err(|e| {
            InvalidValue::new(
                "DeadLetterConfig",
                format!("the dead-letter function's Name: {}", e.message),
            )
        });
    }
    Err(InvalidValue::new(
        "DeadLetterConfig",
        format!(
            "DeadLetterConfig.Type `{kind}` is not one of CMQ-QUEUE, CMQ-TOPIC, queue, topic or `function` (a function of the same namespace)."
        ),
    ))
}

fn tags_within_limits(tags: &serde_json::Value, limits: &Limits) -> Result {
    let list = tags.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.len() > limits.tags_max {
        return Err(InvalidValue::new(
            "LimitExceeded",
            format!(
                "{} tags given; a function has at most {}.",
                list.len(),
                limits.tags_max
            ),
        ));
    }
    for t in list {
        let text = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let (key, value) = (text("Key"), text("Value"));
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > 127 {
            return Err(InvalidValue::new(
                "LimitExceeded",
                format!("tag key `{key}` must have 1 to 127 characters."),
            ));
        }
        if value.chars().count() > 255 {
            return Err(InvalidValue::new(
                "LimitExceeded",
                format!("the value of tag `{key}` has more than 255 characters."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment {
            variables: pairs
                .iter()
                .map(|(k, v)| EnvVar {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn function_names() {
        for ok in ["ab", "hello-world_1", &"a".repeat(60)] {
            assert!(function_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "1abc",
            "abc-",
            "abc_",
            "ab c",
            "ab.c",
            "",
            &"a".repeat(61),
            "héllo",
        ] {
            assert_eq!(
                function_name(bad).map_err(|e| e.field),
                Err("FunctionName"),
                "{bad}"
            );
        }
    }

    #[test]
    fn memory_sizes() {
        for ok in [64, 128, 256, 384, 3072] {
            assert!(memory_size(ok).is_ok());
        }
        for bad in [0, 63, 100, 129, 3200, -128] {
            assert!(memory_size(bad).is_err());
        }
    }

    #[test]
    fn handlers() {
        for ok in [
            "index.main_handler",
            "src/app.handler",
            "example.Hello::mainHandler",
        ] {
            assert!(handler(ok).is_ok(), "{ok}");
        }
        for bad in [
            "index",
            ".main",
            "index.",
            "../x.main",
            "/abs.main",
            "a b.c",
            "a//b.c",
        ] {
            assert!(handler(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environments() {
        let l = Limits::default();
        assert!(environment(&env(&[("A", "1"), ("_B2", "x")]), &l).is_ok());
        assert_eq!(
            environment(&env(&[("SCF_X", "1")]), &l).map_err(|e| e.field),
            Err("EnvironmentSystemProtect")
        );
        assert_eq!(
            environment(&env(&[("TENCENTCLOUD_REGION", "1")]), &l).map_err(|e| e.field),
            Err("EnvironmentSystemProtect")
        );
        assert_eq!(
            environment(&env(&[("1A", "1")]), &l).map_err(|e| e.field),
            Err("Environment")
        );
        assert_eq!(
            environment(&env(&[("A", "1"), ("A", "2")]), &l).map_err(|e| e.field),
            Err("Environment")
        );
        let big = "v".repeat(4096);
        assert_eq!(
            environment(&env(&[("A", &big)]), &l).map_err(|e| e.field),
            Err("EnvironmentExceededLimit")
        );
    }

    #[test]
    fn other_names() {
        assert!(namespace_name("default").is_ok());
        assert!(namespace_name("").is_err());
        assert!(namespace_name(&"n".repeat(31)).is_err());
        assert!(alias_name("prod").is_ok());
        assert!(alias_name("1").is_err());
        assert!(alias_name("$DEFAULT").is_err());
        assert!(layer_name("deps").is_ok());
        assert!(layer_name("deps-").is_err());
        assert!(runtime("Python3.9").is_ok());
        assert!(runtime("Python9").is_err());
        assert!(flag("DnsCache", "TRUE").is_ok());
        assert!(flag("DnsCache", "true").is_err());
        assert!(function_type("HTTP").is_ok());
        assert!(function_type("http").is_err());
    }

    #[test]
    fn kept_settings_are_bounded() {
        use serde_json::json;
        let l = Limits::default();
        let kept = |pairs: Vec<(&str, serde_json::Value)>| {
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let small = kept(vec![(
            "VpcConfig",
            json!({"VpcId": "vpc-1", "SubnetId": "subnet-1"}),
        )]);
        assert!(stored_settings(&small, &l).is_ok());
        let one_big = kept(vec![(
            "ProtocolParams",
            json!({"x": "p".repeat(16 * 1024)}),
        )]);
        assert_eq!(
            stored_settings(&one_big, &l).map_err(|e| e.field),
            Err("LimitExceeded")
        );
        let many: Vec<_> = ["A", "B", "C", "D", "E"]
            .iter()
            .map(|k| (*k, json!("s".repeat(15 * 1024))))
            .collect();
        let err = stored_settings(&kept(many), &l).expect_err("over the total");
        assert!(err.message.contains("together"), "{}", err.message);
        let tags = |n: usize, key: &str, value: &str| {
            kept(vec![(
                "Tags",
                json!(
                    (0..n)
                        .map(|_| json!({"Key": key, "Value": value}))
                        .collect::<Vec<_>>()
                ),
            )])
        };
        assert!(stored_settings(&tags(50, "team", "core"), &l).is_ok());
        assert!(stored_settings(&tags(51, "team", "core"), &l).is_err());
        assert!(stored_settings(&tags(1, "", "core"), &l).is_err());
        assert!(stored_settings(&tags(1, &"k".repeat(128), "v"), &l).is_err());
        assert!(stored_settings(&tags(1, "k", &"v".repeat(256)), &l).is_err());
        assert!(stored_settings(&tags(1, "k", &"v".repeat(255)), &l).is_ok());
    }

    #[test]
    fn dead_letter_configs_are_cmq_or_a_function_name() {
        let dl = |v: serde_json::Value| dead_letter_config(&v);
        assert!(dl(serde_json::json!({"Type": "", "Name": "", "FilterType": ""})).is_ok());
        assert!(dl(serde_json::json!({})).is_ok());
        assert!(dl(serde_json::json!({"Type": "CMQ-QUEUE", "Name": "q"})).is_ok());
        assert!(dl(serde_json::json!({"Type": "topic", "Name": "t", "FilterType": "TAG"})).is_ok());
        assert!(dl(serde_json::json!({"Type": "function", "Name": "dlq-handler"})).is_ok());
        let e = dl(serde_json::json!({"Type": "function", "Name": "-bad"})).expect_err("refused");
        assert_eq!(e.field, "DeadLetterConfig");
        assert!(dl(serde_json::json!({"Type": "function"})).is_err());
        assert!(dl(serde_json::json!({"Type": "sqs", "Name": "q"})).is_err());
        let mut stored = std::collections::BTreeMap::new();
        stored.insert(
            "DeadLetterConfig".to_string(),
            serde_json::json!({"Type": "kafka"}),
        );
        assert!(stored_settings(&stored, &Limits::default()).is_err());
    }
}
