//! Custom domains (`Create/Get/List/Update/DeleteCustomDomain`): a host name of one account that routes its
//! requests by path to functions, with SCF's `PathMatch` and `PathRewrite` rules, and the resolver the function
//! listener asks for every request whose `Host` is not a function URL.
//!
//! Path forms (`PathMatch` and a rewrite rule's `Path`): `/` (the root only), `/*` (everything), `/a/b` (that path
//! exactly), `/a/b/*` (`/a/b` and everything below it). A request goes to the endpoint whose `PathMatch` matches it
//! most specifically: an exact match first, then the longest wildcard prefix. The endpoint's rewrite rules are
//! tried in order and the first that matches gives the path the function sees: a `WildcardRules` rule's `Rewrite`
//! has its `$` replaced by what the `*` matched (`/aa/bb/*` → `/$` turns `/aa/bb/c/d` into `/c/d`); an
//! `ExactRules` rule replaces the path with its `Rewrite` (a `$1` or `$` in it, which has nothing to stand for,
//! is dropped). No rule matching leaves the path as it came.
//!
//! Resolved domains are remembered for [`DOMAIN_CACHE_TTL`]: a change made through this node is seen at once (it
//! forgets the domain), one made through another node of a cluster within that time.

use serde::{Deserialize, Serialize};
pub use store::DomainOrder;
use store::{DomainRow, StoreError};

use crate::{Caller, Control, ControlError, Result};
use model::{FunctionKey, InvalidValue, Qualifier};

/// How long a node keeps a resolved domain (or its absence).
pub const DOMAIN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The protocols SCF names.
pub const PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "HTTP&HTTPS"];

/// One `PathRewriteRule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRule {
    #[serde(rename = "Path")]
    pub path: String,
    /// `WildcardRules` or `ExactRules`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Rewrite")]
    pub rewrite: String,
}

/// One `EndpointsConf`: a path of the domain and the function behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "FunctionName")]
    pub function: String,
    #[serde(rename = "Qualifier")]
    pub qualifier: String,
    #[serde(rename = "PathMatch")]
    pub path_match: String,
    #[serde(rename = "PathRewrite", default)]
    pub rewrites: Vec<RewriteRule>,
}

/// A domain as CreateCustomDomain and UpdateCustomDomain give it; on update an absent field keeps its value.
#[derive(Debug, Clone, Default)]
pub struct DomainSpec {
    pub domain: String,
    pub protocol: Option<String>,
    pub endpoints: Option<Vec<Endpoint>>,
    pub cert_id: Option<String>,
    pub waf_open: Option<String>,
    pub waf_instance_id: Option<String>,
    pub tags: Option<Vec<(String, String)>>,
}

/// A domain as shown and as the resolver uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub domain: String,
    pub app_id: i64,
    pub protocol: String,
    pub endpoints: Vec<Endpoint>,
    pub cert_id: String,
    pub waf_open: String,
    pub waf_instance_id: String,
    pub tags: Vec<(String, String)>,
    pub add_ms: i64,
    pub mod_ms: i64,
}

impl Domain {
    /// Whether plain HTTP requests are served (`HTTP`, `HTTP&HTTPS`).
    pub fn serves_http(&self) -> bool {
        self.protocol != "HTTPS"
    }

    /// Whether HTTPS requests are served (`HTTPS`, `HTTP&HTTPS`).
    pub fn serves_https(&self) -> bool {
        self.protocol != "HTTP"
    }
}

#[derive(Serialize, Deserialize)]
struct Tag {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value")]
    value: String,
}

fn from_row(r: DomainRow) -> Result<Domain> {
    let bad = |e: serde_json::Error| {
        ControlError::Internal(format!("stored custom domain {} unreadable: {e}", r.domain))
    };
    let endpoints: Vec<Endpoint> = serde_json::from_str(&r.endpoints).map_err(bad)?;
    let tags: Vec<Tag> = serde_json::from_str(&r.tags).map_err(bad)?;
    Ok(Domain {
        endpoints,
        tags: tags.into_iter().map(|t| (t.key, t.value)).collect(),
        domain: r.domain,
        app_id: r.app_id,
        protocol: r.protocol,
        cert_id: r.cert_id,
        waf_open: r.waf_open,
        waf_instance_id: r.waf_instance_id,
        add_ms: r.add_ms,
        mod_ms: r.mod_ms,
    })
}

fn invalid(field: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::Invalid(InvalidValue::new(field, message.into()))
}

/// The domain lower-cased, or why it is not a domain SCF takes (no wildcards, no port, DNS labels).
pub fn normalize_domain(d: &str) -> Result<String> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.contains('*') {
        return Err(invalid(
            "Domain",
            format!("`{d}`: wildcard domains are not supported."),
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
        return Err(invalid(
            "Domain",
            format!(
                "`{d}` is not a domain name: labels of letters, digits and `-` separated by dots, at most 253 characters."
            ),
        ));
    }
    Ok(d)
}

/// Whether `domain` is the function listener's own host (the host of the advertised base of function URLs, or a
/// name under its `*.` wildcard): such a domain would take every function URL's requests, so none may claim it.
pub fn is_listener_host(function_url_base: &str, domain: &str) -> bool {
    let Some((_, rest)) = function_url_base.split_once("://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = host_name(host);
    match host.strip_prefix("*.") {
        Some(parent) => domain == parent || domain.ends_with(&format!(".{parent}")),
        None => domain == host,
    }
}

/// A parsed path form: exact `path`, or everything at and below `prefix` (`wild`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form<'a> {
    Exact(&'a str),
    /// The prefix without its trailing `/*` (empty for `/*`).
    Wild(&'a str),
}

fn form(p: &str) -> Option<Form<'_>> {
    if p == "/" {
        return Some(Form::Exact("/"));
    }
    if p == "/*" {
        return Some(Form::Wild(""));
    }
    let (base, wild) = match p.strip_suffix("/*") {
        Some(b) => (b, true),
        None => (p, false),
    };
    let segs = base.strip_prefix('/')?;
    let seg_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !segs.split('/').all(seg_ok) {
        return None;
    }
    Some(if wild {
        Form::Wild(base)
    } else {
        Form::Exact(base)
    })
}

/// How specifically `pattern` matches `path`, or `None`; an exact match outranks any wildcard, a longer wildcard
/// prefix a shorter one. For a wildcard, also what the `*` matched.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<(usize, &'p str)> {
    match form(pattern)? {
        Form::Exact(e) => (e == path).then_some((usize::MAX, "")),
        Form::Wild(prefix) => {
            if path == prefix {
                return Some((prefix.len(), ""));
            }
            let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
            Some((prefix.len(), rest))
        }
    }
}

/// The path the function sees after the first matching rule of `rules`.
pub fn rewrite(rules: &[RewriteRule], path: &str) -> String {
    for r in rules {
        if r.kind == "ExactRules" {
            if matches!(form(&r.path), Some(Form::Exact(e)) if e == path) {
                return r.rewrite.replace("$1", "").replace('$', "");
            }
        } else if let Some((_, rest)) = matches(&r.path, path)
            && matches!(form(&r.path), Some(Form::Wild(_)))
        {
            let out = r.rewrite.replace("$1", rest).replace('$', rest);
            return squash(&out);
        }
    }
    path.to_string()
}

/// Collapses repeated slashes a substitution may leave (`/$` with an empty capture is `/`).
fn squash(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

/// The endpoint of `endpoints` that serves `path` (the most specific `PathMatch`).
pub fn pick<'e>(endpoints: &'e [Endpoint], path: &str) -> Option<&'e Endpoint> {
    endpoints
        .iter()
        .filter_map(|e| matches(&e.path_match, path).map(|(rank, _)| (rank, e)))
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, e)| e)
}

fn check_endpoints(eps: &[Endpoint]) -> Result<()> {
    if eps.is_empty() {
        return Err(invalid(
            "EndpointsConfig",
            "EndpointsConfig needs at least one route.",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in eps {
        if form(&e.path_match).is_none() {
            return Err(invalid(
                "PathMatch",
                format!(
                    "PathMatch `{}` is not one of the forms /, /*, /xxx, /xxx/a, /xxx/*.",
                    e.path_match
                ),
            ));
        }
        if !seen.insert(e.path_match.as_str()) {
            return Err(invalid(
                "PathMatch",
                format!("PathMatch `{}` is given twice.", e.path_match),
            ));
        }
        if e.function.is_empty() {
            return Err(invalid("FunctionName", "every route needs a FunctionName."));
        }
        for r in &e.rewrites {
            if form(&r.path).is_none() {
                return Err(invalid(
                    "PathRewrite",
                    format!(
                        "PathRewrite Path `{}` is not one of the forms /, /*, /xxx, /xxx/a, /xxx/*.",
                        r.path
                    ),
                ));
            }
            if r.kind != "WildcardRules" && r.kind != "ExactRules" {
                return Err(invalid(
                    "PathRewrite",
                    format!(
                        "PathRewrite Type `{}` is not WildcardRules or ExactRules.",
                        r.kind
                    ),
                ));
            }
            if !r.rewrite.starts_with('/') {
                return Err(invalid(
                    "PathRewrite",
                    format!("PathRewrite Rewrite `{}` must start with `/`.", r.rewrite),
                ));
            }
        }
    }
    Ok(())
}

/// Domains recently resolved, by domain.
#[derive(Debug, Default)]
pub(crate) struct DomainCache(std::sync::Mutex<std::collections::HashMap<String, Cached>>);

/// When a domain was read, and what was read.
type Cached = (std::time::Instant, Option<std::sync::Arc<Domain>>);

/// A domain's route for a request, or the domain itself when none of its routes matches.
pub type Resolved = std::result::Result<DomainTarget, std::sync::Arc<Domain>>;

impl DomainCache {
    const MAX: usize = 10_000;

    fn get(&self, d: &str) -> Option<Option<std::sync::Arc<Domain>>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(d)
            .filter(|(at, _)| at.elapsed() < DOMAIN_CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, d: &str, v: Option<std::sync::Arc<Domain>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(d.to_string(), (std::time::Instant::now(), v));
    }

    fn forget(&self, d: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(d);
    }
}

/// Where a request for a custom domain goes.
#[derive(Debug, Clone)]
pub struct DomainTarget {
    pub domain: std::sync::Arc<Domain>,
    pub owner: Caller,
    pub endpoint: Endpoint,
    /// The path the function sees.
    pub path: String,
}

impl Control {
    /// Sets the certificate ids the operator configured (before the control plane is shared).
    pub fn with_certificate_ids(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        std::sync::Arc::make_mut(&mut self.cfg).certificate_ids = ids.into_iter().collect();
        self
    }

    fn not_found(domain: &str) -> ControlError {
        ControlError::DomainNotFound(format!("custom domain {domain} does not exist"))
    }

    /// Checks every route names a function and qualifier of the caller.
    async fn check_targets(&self, caller: &Caller, eps: &[Endpoint]) -> Result<()> {
        for e in eps {
            let key = self.key(caller, &e.namespace, &e.function);
            self.latest(&key).await?;
            let q = &e.qualifier;
            let found = match Qualifier::parse(q) {
                Some(Qualifier::Latest) => true,
                Some(v) => self.store.function(&key, &v.to_string()).await?.is_some(),
                None => self.store.alias(&key, q).await?.is_some(),
            };
            if !found {
                return Err(ControlError::QualifierNotFound {
                    name: key.name,
                    qualifier: q.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_protocol(&self, protocol: &str, cert_id: &str) -> Result<()> {
        if !PROTOCOLS.contains(&protocol) {
            return Err(invalid(
                "Protocol",
                format!("Protocol `{protocol}` is not HTTP, HTTPS or HTTP&HTTPS."),
            ));
        }
        if protocol != "HTTP" {
            if cert_id.is_empty() {
                return Err(invalid(
                    "CertificateId",
                    format!("Protocol {protocol} needs CertConfig.CertificateId."),
                ));
            }
            if !self.cfg.certificate_ids.iter().any(|c| c == cert_id) {
                return Err(invalid(
                    "CertificateId",
                    format!(
                        "certificate `{cert_id}` is not configured on this installation (the operator lists certificates under [http.certificates])."
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_waf(open: &str) -> Result<()> {
        if !open.is_empty() && open != "OPEN" && open != "CLOSE" {
            return Err(invalid(
                "WafOpen",
                format!("WafOpen `{open}` is not OPEN or CLOSE."),
            ));
        }
        Ok(())
    }

    /// CreateCustomDomain.
    pub async fn create_domain(&self, caller: &Caller, spec: DomainSpec) -> Result<()> {
        let domain = normalize_domain(&spec.domain)?;
        if is_listener_host(&self.cfg.function_url_base, &domain) {
            return Err(invalid(
                "Domain",
                format!("`{domain}` is the host of this installation's function URLs."),
            ));
        }
        let protocol = spec.protocol.unwrap_or_default();
        let cert_id = spec.cert_id.unwrap_or_default();
        self.check_protocol(&protocol, &cert_id)?;
        let endpoints = spec.endpoints.unwrap_or_default();
        check_endpoints(&endpoints)?;
        let waf_open = spec.waf_open.unwrap_or_default();
        Self::check_waf(&waf_open)?;
        self.check_targets(caller, &endpoints).await?;
        let now = self.cfg.clock.now_ms();
        let row = DomainRow {
            domain: domain.clone(),
            app_id: caller.app_id,
            protocol,
            endpoints: json(&endpoints)?,
            cert_id,
            waf_open,
            waf_instance_id: spec.waf_instance_id.unwrap_or_default(),
            tags: tags_json(spec.tags.unwrap_or_default())?,
            rev: 1,
            add_ms: now,
            mod_ms: now,
        };
        let done = self.store.create_domain(&row).await;
        self.domain_cache.forget(&domain);
        match done {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists(_)) => Err(ControlError::DomainExists(format!(
                "custom domain {domain} is already in use"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn own_domain(&self, caller: &Caller, domain: &str) -> Result<DomainRow> {
        let d = normalize_domain(domain).map_err(|_| Self::not_found(domain))?;
        match self.store.domain(&d).await? {
            Some(r) if r.app_id == caller.app_id => Ok(r),
            _ => Err(Self::not_found(&d)),
        }
    }

    /// GetCustomDomain.
    pub async fn get_domain(&self, caller: &Caller, domain: &str) -> Result<Domain> {
        from_row(self.own_domain(caller, domain).await?)
    }

    /// ListCustomDomains: a page of the caller's domains and how many it has.
    pub async fn list_domains(
        &self,
        caller: &Caller,
        order: DomainOrder,
        descending: bool,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Domain>, i64)> {
        let (rows, total) = self
            .store
            .list_domains(caller.app_id, order, descending, offset, limit)
            .await?;
        Ok((
            rows.into_iter().map(from_row).collect::<Result<_>>()?,
            total,
        ))
    }

    /// UpdateCustomDomain: each field absent keeps its value.
    pub async fn update_domain(&self, caller: &Caller, spec: DomainSpec) -> Result<()> {
        for _ in 0..5 {
            let old = self.own_domain(caller, &spec.domain).await?;
            let mut row = old.clone();
            if let Some(p) = &spec.protocol {
                row.protocol = p.clone();
            }
            if let Some(c) = &spec.cert_id {
                row.cert_id = c.clone();
            }
            self.check_protocol(&row.protocol, &row.cert_id)?;
            if let Some(eps) = &spec.endpoints {
                check_endpoints(eps)?;
                self.check_targets(caller, eps).await?;
                row.endpoints = json(eps)?;
            }
            if let Some(w) = &spec.waf_open {
                Self::check_waf(w)?;
                row.waf_open = w.clone();
            }
            if let Some(w) = &spec.waf_instance_id {
                row.waf_instance_id = w.clone();
            }
            if let Some(t) = &spec.tags {
                row.tags = tags_json(t.clone())?;
            }
            row.rev = old.rev + 1;
            row.mod_ms = self.cfg.clock.now_ms();
            let done = self.store.update_domain(old.rev, &row).await;
            self.domain_cache.forget(&row.domain);
            match done {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the domain kept changing; try again".into(),
        ))
    }

    /// DeleteCustomDomain.
    pub async fn delete_domain(&self, caller: &Caller, domain: &str) -> Result<()> {
        let d = normalize_domain(domain).map_err(|_| Self::not_found(domain))?;
        let done = self.store.delete_domain(caller.app_id, &d).await?;
        self.domain_cache.forget(&d);
        if done {
            Ok(())
        } else {
            Err(Self::not_found(&d))
        }
    }

    /// The custom domain `host` names (a port, if any, ignored), remembered for [`DOMAIN_CACHE_TTL`].
    pub async fn custom_domain(&self, host: &str) -> Result<Option<std::sync::Arc<Domain>>> {
        let name = host_name(host);
        if let Some(found) = self.domain_cache.get(&name) {
            return Ok(found);
        }
        let found = match self.store.domain(&name).await? {
            Some(r) => Some(std::sync::Arc::new(from_row(r)?)),
            None => None,
        };
        self.domain_cache.put(&name, found.clone());
        Ok(found)
    }

    /// Where a request for `host` and `path` goes: `None` when `host` is no custom domain, `Some(Err)` when it is
    /// one but no route matches the path.
    pub async fn resolve_domain(&self, host: &str, path: &str) -> Result<Option<Resolved>> {
        let Some(domain) = self.custom_domain(host).await? else {
            return Ok(None);
        };
        let Some(ep) = pick(&domain.endpoints, path) else {
            return Ok(Some(Err(domain)));
        };
        let Some(account) = self.store.account(domain.app_id).await? else {
            return Ok(Some(Err(domain)));
        };
        Ok(Some(Ok(DomainTarget {
            path: rewrite(&ep.rewrites, path),
            endpoint: ep.clone(),
            owner: Caller {
                app_id: account.app_id,
                uin: account.uin,
            },
            domain,
        })))
    }

    /// Runs the function behind a domain's route with `event` under `request_id`, as a function URL runs its
    /// function (an alias follows its weights; a web function answers `UnsupportedOperation`).
    pub async fn invoke_domain(
        &self,
        t: &DomainTarget,
        event: Vec<u8>,
        request_id: String,
    ) -> Result<engine::InvokeOutcome> {
        self.engine()?;
        let inv = crate::Invocation {
            namespace: t.endpoint.namespace.clone(),
            name: t.endpoint.function.clone(),
            qualifier: Some(t.endpoint.qualifier.clone()),
            default_qualifier: Qualifier::LATEST,
            routing_key: Default::default(),
            event: Vec::new(),
            region: DEFAULT_REGION.into(),
        };
        let target = self.resolve(&t.owner, &inv).await?;
        if target.snap.config.function_type == "HTTP" {
            return Err(ControlError::Unsupported(format!(
                "function {} is a web function (Type=HTTP): web functions behind a custom domain are not served \
                 yet; only event functions are",
                t.endpoint.function
            )));
        }
        self.run(
            &t.owner,
            &target,
            DEFAULT_REGION,
            event,
            Some(request_id),
            0,
            None,
        )
        .await
    }

    /// The function a route names, for the listener's metrics.
    pub fn domain_function_key(&self, t: &DomainTarget) -> FunctionKey {
        self.key(&t.owner, &t.endpoint.namespace, &t.endpoint.function)
    }
}

/// The region a domain's functions see (a domain is not bound to a region).
const DEFAULT_REGION: &str = "ap-guangzhou";

/// The host name of a `Host` header: lower case, without a port or trailing dot.
pub fn host_name(host: &str) -> String {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| ControlError::Internal(format!("encoding a domain: {e}")))
}

fn tags_json(tags: Vec<(String, String)>) -> Result<String> {
    json(
        &tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(pm: &str, f: &str, rw: &[(&str, &str, &str)]) -> Endpoint {
        Endpoint {
            namespace: "default".into(),
            function: f.into(),
            qualifier: "$LATEST".into(),
            path_match: pm.into(),
            rewrites: rw
                .iter()
                .map(|(p, k, r)| RewriteRule {
                    path: (*p).into(),
                    kind: (*k).into(),
                    rewrite: (*r).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn path_forms() {
        for ok in ["/", "/*", "/a", "/a/b", "/a/*", "/a-b/c.d_e/*"] {
            assert!(form(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "a", "/a/", "//", "/a*", "/*/a", "/a/**", "/a b", "/a/*/b",
        ] {
            assert!(form(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_most_specific_path_match_wins() {
        let eps = [
            ep("/*", "all", &[]),
            ep("/api/*", "api", &[]),
            ep("/api/v2/*", "v2", &[]),
            ep("/api/exact", "exact", &[]),
            ep("/", "root", &[]),
        ];
        let f = |p: &str| pick(&eps, p).map(|e| e.function.as_str());
        assert_eq!(f("/"), Some("root"));
        assert_eq!(f("/x"), Some("all"));
        assert_eq!(f("/api"), Some("api"));
        assert_eq!(f("/api/x/y"), Some("api"));
        assert_eq!(f("/apix"), Some("all"));
        assert_eq!(f("/api/v2/z"), Some("v2"));
        assert_eq!(f("/api/exact"), Some("exact"));
        let only = [ep("/a/*", "a", &[])];
        assert_eq!(pick(&only, "/b").map(|e| e.function.as_str()), None);
        assert_eq!(pick(&only, "/ab").map(|e| e.function.as_str()), None);
    }

    #[test]
    fn rewrites_follow_the_first_matching_rule() {
        let rules = ep(
            "/*",
            "f",
            &[
                ("/aa/bb/*", "WildcardRules", "/$"),
                ("/cc", "ExactRules", "/dd"),
                ("/v1/*", "WildcardRules", "/v2/$"),
                ("/*", "WildcardRules", "/all/$"),
            ],
        )
        .rewrites;
        assert_eq!(rewrite(&rules, "/aa/bb/c/d"), "/c/d");
        assert_eq!(rewrite(&rules, "/aa/bb"), "/");
        assert_eq!(rewrite(&rules, "/cc"), "/dd");
        assert_eq!(rewrite(&rules, "/v1/x"), "/v2/x");
        assert_eq!(rewrite(&rules, "/zz"), "/all/zz");
        assert_eq!(rewrite(&[], "/zz"), "/zz");
        let exact = ep("/*", "f", &[("/cc", "ExactRules", "/$1")]).rewrites;
        assert_eq!(rewrite(&exact, "/cc"), "/");
        assert_eq!(rewrite(&exact, "/cc/d"), "/cc/d");
    }

    #[test]
    fn endpoint_checks() {
        let field = |r: Result<()>| match r {
            Err(ControlError::Invalid(v)) => v.field,
            other => panic!("{other:?}"),
        };
        assert!(check_endpoints(&[ep("/a/*", "f", &[("/a/*", "WildcardRules", "/$")])]).is_ok());
        assert_eq!(field(check_endpoints(&[])), "EndpointsConfig");
        assert_eq!(field(check_endpoints(&[ep("/a/", "f", &[])])), "PathMatch");
        assert_eq!(
            field(check_endpoints(&[ep("/a", "f", &[]), ep("/a", "g", &[])])),
            "PathMatch"
        );
        assert_eq!(
            field(check_endpoints(&[ep("/a", "f", &[("/a", "Regex", "/")])])),
            "PathRewrite"
        );
        assert_eq!(
            field(check_endpoints(&[ep(
                "/a",
                "f",
                &[("/a", "ExactRules", "x")]
            )])),
            "PathRewrite"
        );
    }

    #[test]
    fn domains_and_hosts() {
        assert_eq!(
            normalize_domain("Api.Example.COM.").ok().as_deref(),
            Some("api.example.com")
        );
        for bad in [
            "*.example.com",
            "example",
            "a..b",
            "-a.b",
            "a_b.c",
            "a.b:80",
            "",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(host_name("API.example.com:8443"), "api.example.com");
        assert_eq!(host_name("api.example.com"), "api.example.com");
        assert!(is_listener_host("https://fn.example.com", "fn.example.com"));
        assert!(is_listener_host(
            "http://fn.example.com:8080/base",
            "fn.example.com"
        ));
        assert!(!is_listener_host(
            "https://fn.example.com",
            "api.example.com"
        ));
        assert!(is_listener_host(
            "http://*.fn.example.com",
            "fn.example.com"
        ));
        assert!(is_listener_host(
            "http://*.fn.example.com",
            "x.fn.example.com"
        ));
        assert!(!is_listener_host(
            "http://*.fn.example.com",
            "xfn.example.com"
        ));
        assert!(!is_listener_host(
            "http://127.0.0.1:9080",
            "api.example.com"
        ));
    }
}
