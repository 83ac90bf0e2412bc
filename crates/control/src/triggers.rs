//! Triggers: CreateTrigger, UpdateTrigger, UpdateTriggerStatus, DeleteTrigger, ListTriggers, GetFunction's list,
//! and what a scheduler reads (the open timers with their parsed schedule).
//!
//! Stratus serves `timer` and `http` triggers. A timer's `TriggerDesc` is SCF's cron (seven fields on create; the legacy five
//! also on update), given as the bare expression or as `{"cron":"…"}`, and stored and shown as SCF shows it,
//! `{"cron":"…"}`. A trigger is bound to a qualifier of its function (`$LATEST` by default, a version or an alias,
//! `$DEFAULT` included) that must exist; it goes away with its function, its version or its alias.
//!
//! An `http` trigger is a function URL. Its `TriggerDesc` is `{"AuthType":"NONE"|"CAM","NetConfig":
//! {"EnableIntranet","EnableExtranet"},"CorsConfig":{…}}`, stored without URLs; every read shows it with the URL
//! fields of SCF's shape filled from the listener's advertised base (so a changed `--public-url` shows at once). A
//! function has at most one URL per qualifier (SCF binds a URL 1:1 to a version or alias); the URL names the
//! trigger by its id: `<base>/<AppId>-<id>` (or `<AppId>-<id>.<domain>` when the base is `*.<domain>`).

use model::{FunctionKey, FunctionStatus, InvalidValue, Qualifier, validate};
use schedule::{Forms, Schedule};
use store::{StoreError, TriggerQuery, TriggerRow};

use crate::{Caller, Control, ControlError, Result, new_id};

/// The timer trigger type.
pub const TIMER: &str = "timer";

/// The function URL trigger type.
pub const HTTP: &str = "http";

/// The function listener's base URL when none is configured (its default address).
pub const DEFAULT_URL_BASE: &str = "http://127.0.0.1:9080";

/// Longest `CustomArgument`, in bytes (SCF: 4 KB).
pub const CUSTOM_ARGUMENT_BYTES_MAX: usize = 4096;

/// Longest trigger name (the API definition's CreateTrigger: 100 characters).
pub const TRIGGER_NAME_CHARS_MAX: usize = 100;

/// How many times a write is retried when the function's record moved on between read and write.
const RETRIES: usize = 5;

/// A CreateTrigger request, decoded.
#[derive(Debug, Clone, Default)]
pub struct NewTrigger {
    pub name: String,
    pub trigger_type: String,
    pub desc: Option<String>,
    /// `$LATEST` when absent.
    pub qualifier: Option<String>,
    /// `OPEN` (the default) or `CLOSE`.
    pub enable: Option<String>,
    pub custom_argument: Option<String>,
    pub description: Option<String>,
    /// The region the request was addressed to, for the trigger's `ResourceId`.
    pub region: String,
}

/// Which trigger an UpdateTrigger, UpdateTriggerStatus or DeleteTrigger addresses. A qualifier, when given, must be
/// the one the trigger is bound to; when absent any binding matches (names are unique per function and type).
#[derive(Debug, Clone, Default)]
pub struct TriggerAddress {
    pub name: String,
    pub trigger_type: String,
    pub qualifier: Option<String>,
}

/// An UpdateTrigger request, decoded: each field absent keeps its value.
#[derive(Debug, Clone, Default)]
pub struct TriggerChange {
    pub enable: Option<String>,
    pub desc: Option<String>,
    pub custom_argument: Option<String>,
    pub description: Option<String>,
}

/// An open timer and its schedule, as a scheduler needs it.
#[derive(Debug, Clone)]
pub struct OpenTimer {
    pub trigger: TriggerRow,
    pub schedule: Schedule,
}

/// The trigger actions, as far as the function's status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerAction {
    Create,
    Update,
    UpdateStatus,
    Delete,
}

impl TriggerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerAction::Create => "CreateTrigger",
            TriggerAction::Update => "UpdateTrigger",
            TriggerAction::UpdateStatus => "UpdateTriggerStatus",
            TriggerAction::Delete => "DeleteTrigger",
        }
    }
}

/// May a trigger action run while the function's `$LATEST` is in `status`? Creating, changing and switching a
/// trigger need a function that runs (Active, or UpdateFailed, which still serves its previous code); removing one
/// is refused only while an operation is changing the function. SCF answers `FailedOperation.CreateTrigger` for
/// every refusal.
pub fn check_trigger_action(status: FunctionStatus, action: TriggerAction) -> Result<()> {
    use FunctionStatus as S;
    let allowed = match action {
        TriggerAction::Create | TriggerAction::Update | TriggerAction::UpdateStatus => {
            matches!(status, S::Active | S::UpdateFailed)
        }
        TriggerAction::Delete => !status.is_transitional(),
    };
    if allowed {
        Ok(())
    } else {
        Err(ControlError::TriggerRejected {
            status,
            action: action.as_str(),
        })
    }
}

/// Trigger types of SCF that need a Tencent Cloud service Stratus does not have, with the service.
fn unserved_type(t: &str) -> Option<String> {
    let service = match t {
        "cos" => "Cloud Object Storage (COS)",
        "cls" => "Cloud Log Service (CLS)",
        "ckafka" => "Cloud Kafka (CKafka)",
        "cmq" => "Cloud Message Queue (CMQ)",
        "apigw" => "API Gateway",
        "clb" => "Cloud Load Balancer (CLB)",
        "mps" => "Media Processing Service (MPS)",
        "cm" => "Cloud Monitor",
        "vod" => "Video on Demand (VOD)",
        "eb" => "EventBridge",
        _ => return None,
    };
    Some(format!(
        "{t} triggers need Tencent Cloud's {service}, which Stratus does not have; only timer and http triggers are served."
    ))
}

/// Checks a trigger type: `timer` or `http`; a type of SCF Stratus does not serve is `UnsupportedOperation.Trigger`; anything
/// else `InvalidParameterValue.Type`.
fn served_type(t: &str) -> Result<()> {
    if t == TIMER || t == HTTP {
        return Ok(());
    }
    if let Some(why) = unserved_type(t) {
        return Err(ControlError::UnsupportedTrigger(why));
    }
    Err(unknown_type(t))
}

fn unknown_type(t: &str) -> ControlError {
    InvalidValue::new(
        "Type",
        format!(
            "Type `{t}` is not a trigger type: SCF's are timer, http, cos, cls, ckafka, cmq, apigw, clb, mps, cm, vod \
             and eb (Stratus serves timer and http)."
        ),
    )
    .into()
}

/// A type that names an existing trigger may be any of SCF's (there are only timers and URLs, so others are not
/// found).
fn known_type(t: &str) -> Result<()> {
    if t == TIMER || t == HTTP || unserved_type(t).is_some() {
        Ok(())
    } else {
        Err(unknown_type(t))
    }
}

/// 1–100 characters: letters, digits, `-` and `_`, starting with a letter.
pub fn trigger_name(name: &str) -> Result<()> {
    let ok = (1..=TRIGGER_NAME_CHARS_MAX).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "TriggerName",
            format!(
                "TriggerName `{name}` is invalid: 1-{TRIGGER_NAME_CHARS_MAX} letters, digits, `-` or `_`, starting \
                 with a letter."
            ),
        )
        .into())
    }
}

/// `OPEN` → true, `CLOSE` → false.
pub fn enable(v: &str) -> Result<bool> {
    match v {
        "OPEN" => Ok(true),
        "CLOSE" => Ok(false),
        other => Err(InvalidValue::new(
            "Enable",
            format!("Enable must be OPEN or CLOSE, not `{other}`."),
        )
        .into()),
    }
}

fn custom_argument(a: &str) -> Result<()> {
    if a.len() <= CUSTOM_ARGUMENT_BYTES_MAX {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "CustomArgument",
            format!(
                "CustomArgument is {} bytes; the limit is {CUSTOM_ARGUMENT_BYTES_MAX} bytes.",
                a.len()
            ),
        )
        .into())
    }
}

/// The cron expression of a timer's `TriggerDesc`: the bare expression, or `{"cron":"…"}`.
fn cron_of(desc: &str) -> std::result::Result<String, String> {
    let d = desc.trim();
    if !d.starts_with('{') {
        return Ok(d.to_string());
    }
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(d).map_err(|e| format!("TriggerDesc is not valid JSON: {e}."))?;
    if let Some(k) = v.keys().find(|k| k.as_str() != "cron") {
        return Err(format!(
            "TriggerDesc of a timer has only `cron`, not `{k}`."
        ));
    }
    match v.get("cron") {
        Some(serde_json::Value::String(c)) => Ok(c.trim().to_string()),
        Some(_) => Err("TriggerDesc's `cron` must be a string.".into()),
        None => Err("TriggerDesc of a timer needs `cron`.".into()),
    }
}

/// Checks a timer's `TriggerDesc` against the cron `forms` allowed and returns it as stored and shown,
/// `{"cron":"<expression>"}`. A bad expression is `InvalidParameterValue.TriggerDesc` naming the field at fault.
pub fn timer_desc(desc: &str, forms: Forms) -> Result<String> {
    let invalid = |m: String| ControlError::from(InvalidValue::new("TriggerDesc", m));
    let cron = cron_of(desc).map_err(invalid)?;
    if cron.is_empty() {
        return Err(invalid(
            "TriggerDesc of a timer is its cron expression (second minute hour day month weekday year), e.g. \
             `0 */5 * * * * *`."
                .into(),
        ));
    }
    let schedule = Schedule::parse(&cron, forms).map_err(|e| {
        // The message names the field at fault (`the minute field `61` is invalid: …`).
        invalid(format!("TriggerDesc `{cron}` is not a valid timer: {e}."))
    })?;
    Ok(serde_json::json!({ "cron": schedule.expression() }).to_string())
}

/// The schedule of a stored timer `TriggerDesc` (either form: what was stored passed one of them).
pub fn timer_schedule(stored: &str) -> Result<Schedule> {
    let cron = cron_of(stored).map_err(ControlError::Internal)?;
    Schedule::parse(&cron, Forms::SevenOrLegacyFive)
        .map_err(|e| ControlError::Internal(format!("stored timer `{stored}`: {e}")))
}

impl Control {
    /// The record a new trigger binds to: `$LATEST`'s for `$LATEST` and for an alias, the version's for a version
    /// (which must exist and not be going away); and the alias, when it is one.
    async fn binding(
        &self,
        key: &FunctionKey,
        latest: &store::FunctionRow,
        qualifier: &str,
    ) -> Result<(String, Option<String>)> {
        match Qualifier::parse(qualifier) {
            Some(Qualifier::Latest) => Ok((latest.id.clone(), None)),
            Some(Qualifier::Version(_)) => match self.store.function(key, qualifier).await? {
                Some(v) if v.status != FunctionStatus::Deleting => Ok((v.id, None)),
                _ => Err(ControlError::VersionNotFound {
                    name: key.name.clone(),
                    version: qualifier.to_string(),
                }),
            },
            None => match self.store.alias(key, qualifier).await? {
                Some(_) => Ok((latest.id.clone(), Some(qualifier.to_string()))),
                None => Err(ControlError::QualifierNotFound {
                    name: key.name.clone(),
                    qualifier: qualifier.to_string(),
                }),
            },
        }
    }

    fn trigger_not_found(key: &FunctionKey, a: &TriggerAddress) -> ControlError {
        ControlError::TriggerNotFound(format!(
            "function {} has no {} trigger named {}",
            key.name, a.trigger_type, a.name
        ))
    }

    /// The trigger an address names.
    async fn addressed(&self, key: &FunctionKey, a: &TriggerAddress) -> Result<TriggerRow> {
        let t = self
            .store
            .trigger(key, &a.trigger_type, &a.name)
            .await?
            .ok_or_else(|| Self::trigger_not_found(key, a))?;
        match a.qualifier.as_deref() {
            Some(q) if q != t.qualifier => Err(ControlError::TriggerNotFound(format!(
                "the {} trigger {} of function {} is bound to {}, not to {q}",
                a.trigger_type, a.name, key.name, t.qualifier
            ))),
            _ => Ok(t),
        }
    }

    /// CreateTrigger: the trigger as recorded.
    pub async fn create_trigger(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        spec: NewTrigger,
    ) -> Result<TriggerRow> {
        served_type(&spec.trigger_type)?;
        trigger_name(&spec.name)?;
        let enabled = match spec.enable.as_deref() {
            None | Some("") => true,
            Some(v) => enable(v)?,
        };
        let custom = spec.custom_argument.unwrap_or_default();
        custom_argument(&custom)?;
        let description = spec.description.unwrap_or_default();
        validate::description(&description, &self.cfg.limits)?;
        let is_url = spec.trigger_type == HTTP;
        let desc = if is_url {
            UrlDesc::parse(spec.desc.as_deref().unwrap_or(""))?.stored()
        } else {
            timer_desc(spec.desc.as_deref().unwrap_or(""), Forms::Seven)?
        };
        let qualifier = spec
            .qualifier
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| Qualifier::LATEST.to_string());
        let key = self.key(caller, namespace, function);
        let max = self.cfg.limits.triggers_per_type;
        for _ in 0..RETRIES {
            let latest = self.latest(&key).await?;
            check_trigger_action(latest.status, TriggerAction::Create)?;
            let exists = ControlError::TriggerExists {
                function: function.to_string(),
                trigger_type: spec.trigger_type.clone(),
                name: spec.name.clone(),
            };
            if self
                .store
                .trigger(&key, &spec.trigger_type, &spec.name)
                .await?
                .is_some()
            {
                return Err(exists);
            }
            let (function_row, alias) = self.binding(&key, &latest, &qualifier).await?;
            if is_url
                && let Some(other) = self
                    .store
                    .triggers_bound_to(&key, &qualifier)
                    .await?
                    .into_iter()
                    .find(|t| t.trigger_type == HTTP)
            {
                return Err(InvalidValue::new(
                    "Qualifier",
                    format!(
                        "{qualifier} of function {function} already has a function URL (the http trigger {}): a \
                         version or alias has one URL",
                        other.name
                    ),
                )
                .into());
            }
            let now = store::now_ms();
            let row = TriggerRow {
                id: new_id(),
                key: key.clone(),
                trigger_type: spec.trigger_type.clone(),
                name: spec.name.clone(),
                qualifier: qualifier.clone(),
                function_row,
                alias,
                desc: desc.clone(),
                enabled,
                custom_argument: custom.clone(),
                description: description.clone(),
                resource_id: format!(
                    "qcs::scf:{}:uin/{}:namespace/{namespace}/function/{function}/trigger/{}/{}",
                    spec.region, caller.uin, spec.trigger_type, spec.name
                ),
                rev: 0,
                add_ms: now,
                mod_ms: now,
            };
            match self
                .store
                .create_trigger(&latest.id, latest.rev, &row, max)
                .await
            {
                Ok(true) => {
                    self.url_cache.forget(&row.id);
                    return Ok(self.shown(row));
                }
                Ok(false) => {
                    return Err(ControlError::LimitExceeded {
                        what: "Trigger",
                        message: format!(
                            "function {function} already has {max} {} triggers, the most it may have",
                            spec.trigger_type
                        ),
                    });
                }
                // A URL created meanwhile on the same qualifier: the next round names it.
                Err(StoreError::AlreadyExists(_))
                    if is_url
                        && self
                            .store
                            .trigger(&key, &spec.trigger_type, &spec.name)
                            .await?
                            .is_none() =>
                {
                    continue;
                }
                Err(StoreError::AlreadyExists(_)) => return Err(exists),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    /// Applies `change` to the addressed trigger under the status rule of `action`, retrying when the function or
    /// the trigger moved on meanwhile.
    async fn change_trigger(
        &self,
        key: &FunctionKey,
        address: &TriggerAddress,
        action: TriggerAction,
        change: impl Fn(&TriggerRow) -> Result<TriggerRow>,
    ) -> Result<()> {
        for _ in 0..RETRIES {
            let latest = self.latest(key).await?;
            check_trigger_action(latest.status, action)?;
            let current = self.addressed(key, address).await?;
            let mut next = change(&current)?;
            next.mod_ms = store::now_ms().max(current.mod_ms);
            match self
                .store
                .update_trigger(&latest.id, latest.rev, &next)
                .await
            {
                Ok(()) => {
                    self.url_cache.forget(&next.id);
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the trigger kept changing; try again".into(),
        ))
    }

    /// UpdateTrigger: `Enable`, `TriggerDesc` (seven fields or the legacy five), `CustomArgument` and
    /// `Description`; each one absent keeps its value.
    pub async fn update_trigger(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        address: TriggerAddress,
        change: TriggerChange,
    ) -> Result<()> {
        match address.trigger_type.as_str() {
            TIMER | HTTP => {}
            // SCF updates timer, ckafka and http triggers; Stratus has no ckafka trigger to update.
            "ckafka" => {}
            other if known_type(other).is_ok() => {
                return Err(InvalidValue::new(
                    "Type",
                    format!("UpdateTrigger changes timer, ckafka and http triggers, not {other} triggers."),
                )
                .into());
            }
            other => return Err(unknown_type(other)),
        }
        let enabled = change.enable.as_deref().map(enable).transpose()?;
        let desc = change
            .desc
            .as_deref()
            .map(|d| {
                if address.trigger_type == HTTP {
                    UrlDesc::parse(d).map(|u| u.stored())
                } else {
                    timer_desc(d, Forms::SevenOrLegacyFive)
                }
            })
            .transpose()?;
        if let Some(c) = &change.custom_argument {
            custom_argument(c)?;
        }
        if let Some(d) = &change.description {
            validate::description(d, &self.cfg.limits)?;
        }
        let key = self.key(caller, namespace, function);
        self.change_trigger(&key, &address, TriggerAction::Update, |t| {
            let mut next = t.clone();
            if let Some(e) = enabled {
                next.enabled = e;
            }
            if let Some(d) = &desc {
                next.desc = d.clone();
            }
            if let Some(c) = &change.custom_argument {
                next.custom_argument = c.clone();
            }
            if let Some(d) = &change.description {
                next.description = d.clone();
            }
            Ok(next)
        })
        .await
    }

    /// UpdateTriggerStatus: opens or closes a trigger. Asking for the state it is in is refused, as SCF does
    /// (`FailedOperation.UpdateTriggerStatus`).
    pub async fn update_trigger_status(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        address: TriggerAddress,
        enable_value: &str,
    ) -> Result<()> {
        known_type(&address.trigger_type)?;
        let want = enable(enable_value)?;
        let key = self.key(caller, namespace, function);
        self.change_trigger(&key, &address, TriggerAction::UpdateStatus, |t| {
            if t.enabled == want {
                return Err(ControlError::TriggerUnchanged(format!(
                    "the {} trigger {} is already {}",
                    t.trigger_type,
                    t.name,
                    if want { "OPEN" } else { "CLOSE" }
                )));
            }
            Ok(TriggerRow {
                enabled: want,
                ..t.clone()
            })
        })
        .await
    }

    pub async fn delete_trigger(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        address: TriggerAddress,
    ) -> Result<()> {
        known_type(&address.trigger_type)?;
        let key = self.key(caller, namespace, function);
        for _ in 0..RETRIES {
            let latest = self.latest(&key).await?;
            check_trigger_action(latest.status, TriggerAction::Delete)?;
            let t = self.addressed(&key, &address).await?;
            let deleted = self
                .store
                .delete_trigger(&latest.id, latest.rev, &t.id)
                .await;
            self.url_cache.forget(&t.id);
            match deleted {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(Self::trigger_not_found(&key, &address)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    /// ListTriggers: the triggers of a function, filtered, sorted and paged, with the total before paging.
    pub async fn list_triggers(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        query: &TriggerQuery,
    ) -> Result<(Vec<TriggerRow>, i64)> {
        let key = self.key(caller, namespace, function);
        self.latest(&key).await?;
        let (rows, total) = self.store.list_triggers(&key, query).await?;
        Ok((rows.into_iter().map(|t| self.shown(t)).collect(), total))
    }

    /// The triggers bound to one qualifier of a function (GetFunction's `Triggers`).
    pub async fn function_triggers(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<Vec<TriggerRow>> {
        let key = self.key(caller, namespace, function);
        Ok(self
            .store
            .triggers_bound_to(&key, qualifier)
            .await?
            .into_iter()
            .map(|t| self.shown(t))
            .collect())
    }

    /// Every open timer of the installation with its schedule: what a scheduler works from. A stored expression
    /// that no longer parses (it cannot be written so) is logged and left out.
    pub async fn open_timers(&self) -> Result<Vec<OpenTimer>> {
        let mut out = Vec::new();
        for trigger in self.store.open_triggers(TIMER).await? {
            match timer_schedule(&trigger.desc) {
                Ok(schedule) => out.push(OpenTimer { trigger, schedule }),
                Err(e) => tracing::error!(trigger = %trigger.id, error = %e, "open timer left out"),
            }
        }
        Ok(out)
    }
}

// ---- Function URLs (`http` triggers) ----

/// Longest list in a `CorsConfig` (origins, methods, headers, exposed headers), as AWS's function URLs allow.
pub const CORS_LIST_MAX: usize = 100;

/// Longest `CorsConfig.MaxAge`, in seconds.
pub const CORS_MAX_AGE_MAX: u32 = 86_400;

/// A function URL's CORS settings (`CorsConfig`): answered by the listener without invoking the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `Enable` (true when absent).
    pub enable: bool,
    /// `Origins`: exact origins, or `*`.
    pub origins: Vec<String>,
    /// `Methods`: upper-case methods, or `*`.
    pub methods: Vec<String>,
    /// `Headers`: request headers allowed, or `*`.
    pub headers: Vec<String>,
    /// `ExposeHeaders`: response headers a browser may read.
    pub expose_headers: Vec<String>,
    /// `Credentials`: whether cookies and authorization may be sent.
    pub credentials: bool,
    /// `MaxAge`: how long a preflight may be cached, in seconds.
    pub max_age: Option<u32>,
}

/// A function URL's `TriggerDesc`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlDesc {
    /// `AuthType=CAM`: requests must be TC3-signed by a key of the owning account; `NONE`: anonymous.
    pub cam: bool,
    /// `NetConfig.EnableIntranet`: the URL is shown in the `Intranet…` fields.
    pub intranet: bool,
    /// `NetConfig.EnableExtranet`: the URL is shown in the `Extranet…` fields.
    pub extranet: bool,
    pub cors: Option<Cors>,
}

/// The URL fields of `NetConfig` that SCF shows (accepted back on input and ignored: they are made, not set).
const URL_FIELDS: [&str; 8] = [
    "IntranetUrl",
    "IntranetHTTPUrl",
    "ExtranetUrl",
    "ExtranetHTTPUrl",
    "WssIntranetUrl",
    "WsIntranetUrl",
    "WssExtranetUrl",
    "WsExtranetUrl",
];

fn desc_error(m: impl Into<String>) -> ControlError {
    InvalidValue::new("TriggerDesc", m).into()
}

type JsonMap = serde_json::Map<String, serde_json::Value>;

fn json_bool(m: &JsonMap, k: &str, what: &str) -> Result<Option<bool>> {
    match m.get(k) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(desc_error(format!("{what}.{k} must be true or false."))),
    }
}

fn json_strings(m: &JsonMap, k: &str, check: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let Some(v) = m.get(k).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| desc_error(format!("CorsConfig.{k} must be a list of strings.")))?;
    if items.len() > CORS_LIST_MAX {
        return Err(desc_error(format!(
            "CorsConfig.{k} has {} items; at most {CORS_LIST_MAX}.",
            items.len()
        )));
    }
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 1024 && check(s) => Ok(s.to_string()),
            _ => Err(desc_error(format!(
                "CorsConfig.{k} has an invalid item {i}: each must be a non-empty string of at most 1024 \
                 characters{}.",
                if k == "Methods" {
                    " naming an HTTP method in upper case, or *"
                } else {
                    ""
                }
            ))),
        })
        .collect()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Cors {
    fn parse(m: &JsonMap) -> Result<Cors> {
        const KEYS: [&str; 7] = [
            "Enable",
            "Origins",
            "Methods",
            "Headers",
            "ExposeHeaders",
            "Credentials",
            "MaxAge",
        ];
        if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(desc_error(format!(
                "CorsConfig has no `{k}`: its keys are {}.",
                KEYS.join(", ")
            )));
        }
        let max_age = match m.get("MaxAge") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n <= u64::from(CORS_MAX_AGE_MAX) => Some(n as u32),
                _ => {
                    return Err(desc_error(format!(
                        "CorsConfig.MaxAge must be 0-{CORS_MAX_AGE_MAX} seconds, not {v}."
                    )));
                }
            },
        };
        Ok(Cors {
            enable: json_bool(m, "Enable", "CorsConfig")?.unwrap_or(true),
            origins: json_strings(m, "Origins", |s| !s.contains(char::is_whitespace))?,
            methods: json_strings(m, "Methods", |s| {
                s == "*" || (is_token(s) && !s.bytes().any(|b| b.is_ascii_lowercase()))
            })?,
            headers: json_strings(m, "Headers", is_token)?,
            expose_headers: json_strings(m, "ExposeHeaders", is_token)?,
            credentials: json_bool(m, "Credentials", "CorsConfig")?.unwrap_or(false),
            max_age,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        let mut m = JsonMap::new();
        m.insert("Enable".into(), self.enable.into());
        m.insert("Origins".into(), self.origins.clone().into());
        m.insert("Methods".into(), self.methods.clone().into());
        m.insert("Headers".into(), self.headers.clone().into());
        m.insert("ExposeHeaders".into(), self.expose_headers.clone().into());
        m.insert("Credentials".into(), self.credentials.into());
        if let Some(a) = self.max_age {
            m.insert("MaxAge".into(), a.into());
        }
        serde_json::Value::Object(m)
    }

    /// Whether a request from `origin` may read the reply.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }

    /// Whether a preflight may announce `method`.
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == "*" || m == method)
    }
}

impl UrlDesc {
    /// Checks a function URL's `TriggerDesc` (empty: anonymous, shown on the extranet fields, no CORS). A bad one is
    /// `InvalidParameterValue.TriggerDesc` naming the key at fault.
    pub fn parse(desc: &str) -> Result<UrlDesc> {
        let d = desc.trim();
        let m: JsonMap = if d.is_empty() {
            JsonMap::new()
        } else {
            serde_json::from_str(d).map_err(|e| {
                desc_error(format!(
                    "TriggerDesc of an http trigger is a JSON object \
                     ({{\"AuthType\":\"NONE\"|\"CAM\",\"NetConfig\":{{…}},\"CorsConfig\":{{…}}}}): {e}."
                ))
            })?
        };
        if let Some(k) = m
            .keys()
            .find(|k| !["AuthType", "NetConfig", "CorsConfig"].contains(&k.as_str()))
        {
            return Err(desc_error(format!(
                "TriggerDesc of an http trigger has AuthType, NetConfig and CorsConfig, not `{k}`."
            )));
        }
        let cam = match m.get("AuthType") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::String(s)) if s == "NONE" => false,
            Some(serde_json::Value::String(s)) if s == "CAM" => true,
            Some(other) => {
                return Err(desc_error(format!(
                    "TriggerDesc.AuthType must be NONE or CAM, not {other}."
                )));
            }
        };
        let (intranet, extranet) = match m.get("NetConfig") {
            None | Some(serde_json::Value::Null) => (false, true),
            Some(serde_json::Value::Object(n)) => {
                if let Some(k) = n.keys().find(|k| {
                    !["EnableIntranet", "EnableExtranet"].contains(&k.as_str())
                        && !URL_FIELDS.contains(&k.as_str())
                }) {
                    return Err(desc_error(format!(
                        "NetConfig has EnableIntranet and EnableExtranet, not `{k}`."
                    )));
                }
                let i = json_bool(n, "EnableIntranet", "NetConfig")?.unwrap_or(false);
                let e = json_bool(n, "EnableExtranet", "NetConfig")?.unwrap_or(!i);
                if !i && !e {
                    return Err(desc_error(
                        "NetConfig must enable the intranet or the extranet URL (or both).",
                    ));
                }
                (i, e)
            }
            Some(_) => return Err(desc_error("NetConfig must be an object.")),
        };
        let cors = match m.get("CorsConfig") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(c)) => Some(Cors::parse(c)?),
            Some(_) => return Err(desc_error("CorsConfig must be an object.")),
        };
        Ok(UrlDesc {
            cam,
            intranet,
            extranet,
            cors,
        })
    }

    fn json(&self, url: Option<&str>) -> serde_json::Value {
        let mut net = JsonMap::new();
        net.insert("EnableIntranet".into(), self.intranet.into());
        net.insert("EnableExtranet".into(), self.extranet.into());
        if let Some(url) = url {
            // One listener speaks the scheme of its base URL: both the HTTPS and the HTTP fields show it.
            let on = |enabled: bool| if enabled { url } else { "" };
            for (k, v) in [
                ("IntranetUrl", on(self.intranet)),
                ("IntranetHTTPUrl", on(self.intranet)),
                ("ExtranetUrl", on(self.extranet)),
                ("ExtranetHTTPUrl", on(self.extranet)),
                ("WssIntranetUrl", ""),
                ("WsIntranetUrl", ""),
                ("WssExtranetUrl", ""),
                ("WsExtranetUrl", ""),
            ] {
                net.insert(k.into(), v.into());
            }
        }
        let mut m = JsonMap::new();
        m.insert(
            "AuthType".into(),
            if self.cam { "CAM" } else { "NONE" }.into(),
        );
        m.insert("NetConfig".into(), serde_json::Value::Object(net));
        if let Some(c) = &self.cors {
            m.insert("CorsConfig".into(), c.to_json());
        }
        serde_json::Value::Object(m)
    }

    /// The form stored: no URL (they depend on the listener's base, which may change).
    pub fn stored(&self) -> String {
        self.json(None).to_string()
    }

    /// The form shown by CreateTrigger, ListTriggers and GetFunction: with the URL fields of SCF's shape.
    pub fn shown(&self, url: &str) -> String {
        self.json(Some(url)).to_string()
    }
}

/// The URL of function URL `id` of account `app_id` under the listener's base: `<base>/<AppId>-<id>`, or
/// `<scheme>://<AppId>-<id>.<domain>` when the base is `<scheme>://*.<domain>` (host-based routing).
pub fn function_url(base: &str, app_id: i64, id: &str) -> String {
    let base = base.trim_end_matches('/');
    let label = format!("{app_id}-{id}");
    if let Some((scheme, rest)) = base.split_once("://")
        && let Some(domain) = rest.strip_prefix("*.")
    {
        return format!("{scheme}://{label}.{domain}");
    }
    format!("{base}/{label}")
}

/// The account and trigger id a URL label (`<AppId>-<id>`) names, when it has that form.
pub fn parse_url_label(label: &str) -> Option<(i64, &str)> {
    let (app, id) = label.split_once('-')?;
    let ok = !app.is_empty()
        && app.len() <= 19
        && app.bytes().all(|b| b.is_ascii_digit())
        && id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return None;
    }
    Some((app.parse().ok()?, id))
}

/// How long a node keeps a resolved function URL (or its absence). A change made through this node is seen at once
/// (it forgets the URL); one made through another node of a cluster within this time.
pub const URL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Function URLs recently resolved, by trigger id, so that a busy URL does not read its trigger and account from
/// the database on every request.
#[derive(Debug, Default)]
pub(crate) struct UrlCache(
    std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<FunctionUrl>)>>,
);

impl UrlCache {
    /// Entries kept before the map starts over.
    const MAX: usize = 10_000;

    fn get(&self, id: &str) -> Option<Option<FunctionUrl>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(at, _)| at.elapsed() < URL_CACHE_TTL)
            .map(|(_, u)| u.clone())
    }

    fn put(&self, id: &str, url: Option<FunctionUrl>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(id.to_string(), (std::time::Instant::now(), url));
    }

    pub(crate) fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// A function URL resolved for a request: its trigger, its settings and the account that owns it.
#[derive(Debug, Clone)]
pub struct FunctionUrl {
    pub trigger: TriggerRow,
    pub desc: UrlDesc,
    pub owner: Caller,
    /// The region of the trigger's `ResourceId` (what the function sees as its region).
    pub region: String,
}

impl Control {
    /// Sets the function listener's advertised base URL (before the control plane is shared).
    pub fn with_function_url_base(mut self, base: impl Into<String>) -> Self {
        std::sync::Arc::make_mut(&mut self.cfg).function_url_base = base.into();
        self
    }

    /// A trigger as shown: a function URL with its URL fields filled.
    fn shown(&self, mut t: TriggerRow) -> TriggerRow {
        if t.trigger_type == HTTP {
            match UrlDesc::parse(&t.desc) {
                Ok(d) => {
                    t.desc = d.shown(&function_url(
                        &self.cfg.function_url_base,
                        t.key.app_id,
                        &t.id,
                    ))
                }
                Err(e) => {
                    tracing::error!(trigger = %t.id, error = %e, "stored function URL unreadable")
                }
            }
        }
        t
    }

    /// The function URL `id` of account `app_id`, if there is one (remembered for [`URL_CACHE_TTL`]).
    pub async fn function_url(&self, app_id: i64, id: &str) -> Result<Option<FunctionUrl>> {
        let found = match self.url_cache.get(id) {
            Some(found) => found,
            None => {
                let found = self.read_function_url(id).await?;
                self.url_cache.put(id, found.clone());
                found
            }
        };
        Ok(found.filter(|u| u.owner.app_id == app_id))
    }

    async fn read_function_url(&self, id: &str) -> Result<Option<FunctionUrl>> {
        let Some(trigger) = self.store.trigger_by_id(id, HTTP).await? else {
            return Ok(None);
        };
        let app_id = trigger.key.app_id;
        let desc = UrlDesc::parse(&trigger.desc)
            .map_err(|e| ControlError::Internal(format!("stored function URL {id}: {e}")))?;
        let Some(account) = self.store.account(app_id).await? else {
            return Ok(None);
        };
        let region = trigger
            .resource_id
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .unwrap_or("ap-guangzhou")
            .to_string();
        Ok(Some(FunctionUrl {
            trigger,
            desc,
            owner: Caller {
                app_id: account.app_id,
                uin: account.uin,
            },
            region,
        }))
    }

    /// Runs the function behind a URL with `event` (the API-gateway event the listener built) under `request_id`:
    /// the qualifier it is bound to is resolved as Invoke resolves it (an alias follows its weights). A web function
    /// (`Type=HTTP`) is not run: it answers `UnsupportedOperation` until web functions are served.
    pub async fn invoke_function_url(
        &self,
        url: &FunctionUrl,
        event: Vec<u8>,
        request_id: String,
    ) -> Result<engine::InvokeOutcome> {
        self.engine()?;
        let inv = crate::Invocation {
            namespace: url.trigger.key.namespace.clone(),
            name: url.trigger.key.name.clone(),
            qualifier: Some(url.trigger.qualifier.clone()),
            default_qualifier: Qualifier::LATEST,
            routing_key: Default::default(),
            event: Vec::new(),
            region: url.region.clone(),
        };
        let t = self.resolve(&url.owner, &inv).await?;
        if t.snap.config.function_type == "HTTP" {
            return Err(ControlError::Unsupported(format!(
                "function {} is a web function (Type=HTTP): web functions behind a function URL are not served \
                 yet; only event functions are",
                url.trigger.key.name
            )));
        }
        self.run(
            &url.owner,
            &t,
            &url.region,
            event,
            Some(request_id),
            0,
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: ControlError) -> (&'static str, String) {
        match e {
            ControlError::Invalid(v) => (v.field, v.message),
            other => panic!("not an invalid value: {other:?}"),
        }
    }

    #[test]
    fn timer_desc_takes_the_expression_or_its_json_and_stores_the_json() {
        let want = r#"{"cron":"0 */2 * * * * *"}"#;
        assert_eq!(
            timer_desc("0 */2 * * * * *", Forms::Seven).ok(),
            Some(want.into())
        );
        assert_eq!(
            timer_desc("  0 */2 * * * * *\n", Forms::Seven).ok(),
            Some(want.into())
        );
        assert_eq!(timer_desc(want, Forms::Seven).ok(), Some(want.into()));
        assert_eq!(
            timer_desc(r#"{ "cron" : " 0 */2 * * * * * " }"#, Forms::Seven).ok(),
            Some(want.into())
        );
        // The legacy five fields only where allowed (UpdateTrigger), stored as given.
        let (f, m) = field(timer_desc("*/5 * * * *", Forms::Seven).expect_err("five on create"));
        assert_eq!(f, "TriggerDesc");
        assert!(m.contains("seven"), "{m}");
        assert_eq!(
            timer_desc("*/5 * * * *", Forms::SevenOrLegacyFive).ok(),
            Some(r#"{"cron":"*/5 * * * *"}"#.into())
        );
    }

    #[test]
    fn a_bad_timer_desc_names_what_is_wrong() {
        for (desc, needle) in [
            ("0 61 * * * * *", "minute"),
            ("0 0 25 * * * *", "hour"),
            ("0 0 0 * * * 2200", "year"),
            ("0 0 0 * 13 * *", "month"),
            ("", "cron expression"),
            ("{}", "needs `cron`"),
            (r#"{"cron": 5}"#, "string"),
            (r#"{"cron":"0 * * * * * *","tz":"UTC"}"#, "`tz`"),
            ("{not json", "JSON"),
        ] {
            let (f, m) = field(timer_desc(desc, Forms::SevenOrLegacyFive).expect_err(desc));
            assert_eq!(f, "TriggerDesc", "{desc}");
            assert!(m.contains(needle), "{desc}: {m}");
        }
    }

    #[test]
    fn stored_descs_give_their_schedule() {
        for stored in [r#"{"cron":"0 */2 * * * * *"}"#, r#"{"cron":"*/5 * * * *"}"#] {
            assert!(timer_schedule(stored).is_ok(), "{stored}");
        }
        assert!(timer_schedule(r#"{"cron":"nonsense"}"#).is_err());
    }

    #[test]
    fn names_enable_and_custom_arguments() {
        for ok in ["t", "timer-1", "A_b-9", &"x".repeat(100)] {
            assert!(trigger_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-x", "a b", "a.b", "ä", &"x".repeat(101)] {
            assert_eq!(
                field(trigger_name(bad).expect_err(bad)).0,
                "TriggerName",
                "{bad}"
            );
        }
        assert!(enable("OPEN").expect("open"));
        assert!(!enable("CLOSE").expect("close"));
        for bad in ["open", "", "TRUE", "1"] {
            assert_eq!(field(enable(bad).expect_err(bad)).0, "Enable");
        }
        assert!(custom_argument(&"a".repeat(4096)).is_ok());
        assert_eq!(
            field(custom_argument(&"a".repeat(4097)).expect_err("too long")).0,
            "CustomArgument"
        );
        // Bytes, not characters.
        assert!(custom_argument(&"中".repeat(1366)).is_err());
    }

    #[test]
    fn types() {
        assert!(served_type("timer").is_ok());
        assert!(served_type("http").is_ok());
        assert!(known_type("http").is_ok());
        for t in ["cos", "cls", "ckafka", "cmq", "apigw"] {
            match served_type(t) {
                Err(ControlError::UnsupportedTrigger(m)) => assert!(m.contains(t), "{m}"),
                other => panic!("{t}: {other:?}"),
            }
        }
        let Err(ControlError::UnsupportedTrigger(m)) = served_type("cos") else {
            panic!("cos")
        };
        assert!(m.contains("Cloud Object Storage"), "{m}");
        for t in ["Timer", "cron", ""] {
            assert_eq!(field(served_type(t).expect_err(t)).0, "Type");
            assert!(known_type(t).is_err());
        }
        assert!(known_type("cos").is_ok());
    }

    #[test]
    fn url_descs_are_checked_and_shown_with_their_url() {
        let d = UrlDesc::parse("").expect("empty");
        assert_eq!(
            (d.cam, d.intranet, d.extranet, d.cors.is_none()),
            (false, false, true, true)
        );
        let d = UrlDesc::parse(
            r#"{"AuthType":"CAM","NetConfig":{"EnableIntranet":true,"EnableExtranet":false},
                "CorsConfig":{"Origins":["https://a.example"],"Methods":["GET","POST"],"Headers":["X-T"],
                "ExposeHeaders":["X-E"],"Credentials":true,"MaxAge":600}}"#,
        )
        .expect("full");
        assert!(d.cam && d.intranet && !d.extranet);
        let c = d.cors.clone().expect("cors");
        assert!(c.enable && c.credentials && c.max_age == Some(600));
        assert!(c.allows_origin("https://a.example") && !c.allows_origin("https://b.example"));
        assert!(c.allows_method("POST") && !c.allows_method("DELETE"));
        // Stored without URLs; read back (with the URLs SCF shows) it parses to the same settings.
        assert_eq!(UrlDesc::parse(&d.stored()).expect("stored"), d);
        let url = function_url("http://127.0.0.1:9080/", 1253, "abc");
        assert_eq!(url, "http://127.0.0.1:9080/1253-abc");
        let shown: serde_json::Value = serde_json::from_str(&d.shown(&url)).expect("json");
        assert_eq!(shown["NetConfig"]["IntranetUrl"], url.as_str());
        assert_eq!(shown["NetConfig"]["IntranetHTTPUrl"], url.as_str());
        assert_eq!(shown["NetConfig"]["ExtranetUrl"], "");
        assert_eq!(shown["AuthType"], "CAM");
        assert_eq!(UrlDesc::parse(&d.shown(&url)).expect("shown"), d);
        assert_eq!(
            function_url("https://*.fn.example.com", 7, "x"),
            "https://7-x.fn.example.com"
        );
        for (bad, needle) in [
            ("nope", "JSON"),
            (r#"{"AuthType":"KEY"}"#, "AuthType"),
            (r#"{"Other":1}"#, "`Other`"),
            (
                r#"{"NetConfig":{"EnableIntranet":false,"EnableExtranet":false}}"#,
                "enable",
            ),
            (
                r#"{"NetConfig":{"EnableIntranet":"yes"}}"#,
                "EnableIntranet",
            ),
            (r#"{"CorsConfig":{"Origins":"*"}}"#, "Origins"),
            (r#"{"CorsConfig":{"Methods":["get"]}}"#, "Methods"),
            (r#"{"CorsConfig":{"MaxAge":90000}}"#, "MaxAge"),
            (r#"{"CorsConfig":{"AllowAll":true}}"#, "`AllowAll`"),
        ] {
            let (f, m) = field(UrlDesc::parse(bad).expect_err(bad));
            assert_eq!(f, "TriggerDesc", "{bad}");
            assert!(m.contains(needle), "{bad}: {m}");
        }
    }

    #[test]
    fn url_labels() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_url_label(&format!("1253-{id}")), Some((1253, id)));
        for bad in [
            format!("x-{id}"),
            format!("-{id}"),
            "1253-abc".to_string(),
            format!("1253-{}", id.to_uppercase()),
            format!("99999999999999999999-{id}"),
        ] {
            assert_eq!(parse_url_label(&bad), None, "{bad}");
        }
    }

    /// The CreateTrigger / UpdateTrigger row of the acceptance table, and deletion.
    #[test]
    fn status_rules() {
        use FunctionStatus as S;
        use TriggerAction as A;
        for a in [A::Create, A::Update, A::UpdateStatus] {
            for s in [S::Active, S::UpdateFailed] {
                assert!(check_trigger_action(s, a).is_ok(), "{s} {a:?}");
            }
            for s in [
                S::Creating,
                S::CreateFailed,
                S::Updating,
                S::Deleting,
                S::DeleteFailed,
            ] {
                match check_trigger_action(s, a) {
                    Err(ControlError::TriggerRejected { status, action }) => {
                        assert_eq!((status, action), (s, a.as_str()));
                    }
                    other => panic!("{s} {a:?}: {other:?}"),
                }
            }
        }
        for s in [S::Active, S::UpdateFailed, S::CreateFailed, S::DeleteFailed] {
            assert!(check_trigger_action(s, A::Delete).is_ok(), "{s}");
        }
        for s in [S::Creating, S::Updating, S::Deleting] {
            assert!(check_trigger_action(s, A::Delete).is_err(), "{s}");
        }
        let e = check_trigger_action(S::Updating, A::Create).expect_err("updating");
        assert_eq!(
            e.to_string(),
            "Function status Updating is not allowed to do CreateTrigger."
        );
    }
}
