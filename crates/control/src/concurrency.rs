//! Concurrency limits, counted as SCF counts them: the memory of the instances running at once (instances ×
//! MemorySize; one invocation runs on one instance).
//!
//! Three limits apply to an invocation:
//! - a function with a reservation (PutReservedConcurrencyConfig) runs within its reservation only: the
//!   reservation is both its cap and capacity no other function can take;
//! - any other function runs in its account's unreserved pool (the account quota less every reservation of the
//!   account) and, when its namespace has a total (PutTotalConcurrencyConfig), in the namespace's unreserved pool
//!   (the total less the namespace's reservations).
//!
//! Reservations are bounded as SCF bounds them: together at most the quota less `min_unreserved_mb` (12,800 MB),
//! and within a namespace's total less that same headroom; a namespace total is at most the quota.
//!
//! [`Admission::admit`] takes a [`Permit`] for the duration of an invocation; dropping it gives the memory back.
//! A call that does not fit is refused at once ([`ControlError::Throttled`], SCF's 432), never queued.
//!
//! On a cluster (a shared PostgreSQL database) each limit is split into per-node shares leased through the
//! database (`concurrency_shares`): a node admits within its own share without a round trip, grows it in one
//! transaction that checks the other nodes' live shares against the limit when a call does not fit, and a
//! background task renews the leases every third of `lease_ms`, shrinking each share to the peak use since the
//! previous renewal so that idle capacity flows back to the nodes that need it. A node counts its share valid
//! only until `lease_ms` after it *sent* the write that leased it, which is never later than the database's
//! expiry, so two nodes never both hold the same capacity. The bound on overshoot: with every node in contact
//! with the database, none; a node cut off keeps running what it admitted while its lease was valid, so the
//! cluster may run at most that node's shares beyond a limit after its lease lapsed, for at most the longest
//! timeout of those invocations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::{ShareLimit, ShareRenewal, Store};
use tokio::sync::watch;

use crate::{Caller, Control, ControlError, Result};

/// Concurrency settings of an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// Every account's concurrency quota in MB (SCF's `UserConcurrencyMemLimit`, 128,000 MB).
    pub account_quota_mb: i64,
    /// What reservations must leave unreserved, of the account quota and of a namespace's total (12,800 MB).
    pub min_unreserved_mb: i64,
    /// A node's share of a limit is leased this long without a renewal (cluster only).
    pub lease_ms: i64,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            account_quota_mb: 128_000,
            min_unreserved_mb: 12_800,
            lease_ms: 10_000,
        }
    }
}

/// One limit an invocation counts against, or (`Usage`) a namespace's running memory, counted for GetAccount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Account,
    Namespace(String),
    Function(String, String),
    Usage(String),
}

impl Scope {
    fn key(&self) -> String {
        match self {
            Scope::Account => "account".into(),
            Scope::Namespace(ns) => format!("ns:{ns}"),
            Scope::Function(ns, f) => format!("fn:{ns}/{f}"),
            Scope::Usage(ns) => format!("use:{ns}"),
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Scope::Account => "the account's unreserved concurrency quota",
            Scope::Namespace(_) => "the namespace's total concurrency",
            Scope::Function(..) => "the function's reserved concurrency",
            Scope::Usage(_) => "the namespace",
        }
    }

    fn share_limit(&self, quota_mb: i64) -> Option<ShareLimit> {
        match self {
            Scope::Account => Some(ShareLimit::AccountPool { quota_mb }),
            Scope::Namespace(ns) => Some(ShareLimit::NamespacePool {
                namespace: ns.clone(),
            }),
            Scope::Function(ns, f) => Some(ShareLimit::Reservation {
                namespace: ns.clone(),
                function: f.clone(),
            }),
            Scope::Usage(_) => None,
        }
    }
}

/// An account's settings, as the admission math needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    reserved: HashMap<(String, String), i64>,
    reserved_total: i64,
    reserved_by_ns: HashMap<String, i64>,
    totals: HashMap<String, i64>,
}

impl Settings {
    fn from_store(s: &store::ConcurrencySettings) -> Settings {
        let mut out = Settings::default();
        for (ns, f, mb) in &s.reservations {
            out.reserved.insert((ns.clone(), f.clone()), *mb);
            out.reserved_total += mb;
            *out.reserved_by_ns.entry(ns.clone()).or_default() += mb;
        }
        out.totals = s.namespace_totals.iter().cloned().collect();
        out
    }

    /// The limits one invocation of `function` counts against, with each one's size in MB (`None`: no limit).
    fn plan(&self, quota_mb: i64, ns: &str, function: &str) -> Vec<(Scope, Option<i64>)> {
        let mut out = Vec::with_capacity(3);
        match self.reserved.get(&(ns.to_string(), function.to_string())) {
            Some(r) => out.push((Scope::Function(ns.into(), function.into()), Some(*r))),
            None => {
                out.push((Scope::Account, Some(quota_mb - self.reserved_total)));
                if let Some(t) = self.totals.get(ns) {
                    let reserved = self.reserved_by_ns.get(ns).copied().unwrap_or(0);
                    out.push((Scope::Namespace(ns.into()), Some(t - reserved)));
                }
            }
        }
        out.push((Scope::Usage(ns.into()), None));
        out
    }
}

#[derive(Debug, Default)]
struct Count {
    /// Memory of the invocations admitted (or being admitted) in this scope on this node.
    used: i64,
    /// The peak of `used` since the last renewal (cluster).
    peak: i64,
    /// This node's share of the limit (cluster).
    share: i64,
    /// Until when the share may be used (cluster): `lease_ms` after the write that leased it was sent.
    valid_until: Option<Instant>,
    /// After a refused grow, calls that would need one are refused without asking again until then (cluster),
    /// so a flood of calls over a limit costs no database round trip each.
    denied_until: Option<Instant>,
}

impl Count {
    fn share_now(&self, now: Instant) -> i64 {
        match self.valid_until {
            Some(t) if t > now => self.share,
            _ => 0,
        }
    }
}

#[derive(Default)]
struct State {
    settings: HashMap<i64, Arc<Settings>>,
    counts: HashMap<(i64, Scope), Count>,
}

struct Inner {
    cfg: ConcurrencyConfig,
    /// Leases shares through the store (a cluster); `None` on a single node, where the limits are whole.
    shared: Option<Store>,
    node: String,
    state: Mutex<State>,
    /// Serialises this node's writes of its shares (grows and renewals), so a renewal never shrinks a share below
    /// what a grow that overlapped it granted.
    writes: tokio::sync::Mutex<()>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.cfg.lease_ms.max(1) as u64)
    }

    /// How long a refused grow is not asked again: a twentieth of the lease, at most 100 ms (the other nodes'
    /// shares change at their renewals, every third of the lease).
    fn retry_grow(&self) -> Duration {
        Duration::from_millis((self.cfg.lease_ms / 20).clamp(1, 100) as u64)
    }
}

/// The admission controller of one node.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

/// Memory admitted for one invocation; given back when dropped (also when the invocation is cancelled).
pub struct Permit {
    inner: Arc<Inner>,
    app_id: i64,
    scopes: Vec<Scope>,
    mem_mb: i64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        let cluster = self.inner.shared.is_some();
        for s in self.scopes.drain(..) {
            let k = (self.app_id, s);
            if let Some(c) = st.counts.get_mut(&k) {
                c.used = (c.used - self.mem_mb).max(0);
                // On a single node nothing else is kept per scope; on a cluster the renewal forgets it.
                if !cluster && c.used == 0 {
                    st.counts.remove(&k);
                }
            }
        }
    }
}

/// What the admission math decided for one call, before any share was grown.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Over a limit: the scope, the limit and the used memory.
    Refuse(Scope, i64),
    /// Counted; the scopes whose share must grow first (cluster), with each one's limit.
    Admit(Vec<(Scope, i64)>),
}

/// Counts one call of `mem_mb` in every scope of `plan` if each fits its limit (and, on a cluster, notes the
/// scopes whose share does not cover it yet).
fn decide(
    counts: &mut HashMap<(i64, Scope), Count>,
    app_id: i64,
    plan: &[(Scope, Option<i64>)],
    mem_mb: i64,
    cluster: bool,
    now: Instant,
) -> Decision {
    for (s, limit) in plan {
        let used = counts
            .get(&(app_id, s.clone()))
            .map(|c| c.used)
            .unwrap_or(0);
        if let Some(l) = limit
            && used + mem_mb > *l
        {
            return Decision::Refuse(s.clone(), *l);
        }
    }
    let mut grow = Vec::new();
    for (s, limit) in plan {
        let c = counts.entry((app_id, s.clone())).or_default();
        c.used += mem_mb;
        c.peak = c.peak.max(c.used);
        if let Some(l) = limit
            && cluster
            && c.used > c.share_now(now)
        {
            grow.push((s.clone(), *l));
        }
    }
    Decision::Admit(grow)
}

fn throttled(scope: &Scope, limit_mb: i64, mem_mb: i64) -> ControlError {
    let instances = if mem_mb > 0 { limit_mb / mem_mb } else { 0 };
    ControlError::Throttled {
        scope: scope.what(),
        limit: instances.clamp(0, u32::MAX as i64) as u32,
    }
}

impl Admission {
    /// `shared` when the store is shared by a cluster.
    pub(crate) fn new(cfg: ConcurrencyConfig, store: &Store) -> Admission {
        Admission {
            inner: Arc::new(Inner {
                cfg,
                shared: store.is_shared().then(|| store.clone()),
                node: format!("{}-{}", std::process::id(), crate::new_id()),
                state: Mutex::new(State::default()),
                writes: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub(crate) fn config(&self) -> &ConcurrencyConfig {
        &self.inner.cfg
    }

    fn settings_cached(&self, app_id: i64) -> Option<Arc<Settings>> {
        self.inner.lock().settings.get(&app_id).cloned()
    }

    /// Reads an account's settings again (after a change, and in the background).
    pub(crate) async fn reload(&self, store: &Store, app_id: i64) -> Result<Arc<Settings>> {
        let s = Arc::new(Settings::from_store(
            &store.concurrency_settings(app_id).await?,
        ));
        self.inner.lock().settings.insert(app_id, s.clone());
        Ok(s)
    }

    /// Admits one invocation of `mem_mb` of a function, or refuses it over a limit.
    pub(crate) async fn admit(
        &self,
        store: &Store,
        app_id: i64,
        namespace: &str,
        function: &str,
        mem_mb: i64,
    ) -> Result<Permit> {
        let settings = match self.settings_cached(app_id) {
            Some(s) => s,
            None => self.reload(store, app_id).await?,
        };
        let plan = settings.plan(self.inner.cfg.account_quota_mb, namespace, function);
        let cluster = self.inner.shared.is_some();
        let decision = {
            let mut st = self.inner.lock();
            decide(
                &mut st.counts,
                app_id,
                &plan,
                mem_mb,
                cluster,
                Instant::now(),
            )
        };
        let grow = match decision {
            Decision::Refuse(s, limit) => return Err(throttled(&s, limit, mem_mb)),
            Decision::Admit(grow) => grow,
        };
        let permit = Permit {
            inner: self.inner.clone(),
            app_id,
            scopes: plan.into_iter().map(|(s, _)| s).collect(),
            mem_mb,
        };
        for (scope, limit_mb) in grow {
            // Dropping the permit on a refusal gives back what was counted.
            self.grow(app_id, &scope, limit_mb, mem_mb).await?;
        }
        Ok(permit)
    }

    /// Grows this node's share of `scope` to cover what it counts there now, or refuses the call.
    async fn grow(&self, app_id: i64, scope: &Scope, limit_mb: i64, mem_mb: i64) -> Result<()> {
        let Some(store) = &self.inner.shared else {
            return Ok(());
        };
        let quota = self.inner.cfg.account_quota_mb;
        let Some(limit) = scope.share_limit(quota) else {
            return Ok(());
        };
        let key = (app_id, scope.clone());
        let denied = |c: &Count| c.denied_until.is_some_and(|t| t > Instant::now());
        if self.inner.lock().counts.get(&key).is_some_and(denied) {
            return Err(throttled(scope, limit_mb, mem_mb));
        }
        let _writes = self.inner.writes.lock().await;
        let want = {
            let st = self.inner.lock();
            match st.counts.get(&key) {
                Some(c) if c.used <= c.share_now(Instant::now()) => return Ok(()),
                Some(c) if denied(c) => return Err(throttled(scope, limit_mb, mem_mb)),
                Some(c) => c.used,
                None => return Ok(()),
            }
        };
        let sent = Instant::now();
        let granted = store
            .grow_share(
                &self.inner.node,
                app_id,
                &scope.key(),
                &limit,
                want,
                self.inner.cfg.lease_ms,
            )
            .await;
        let mut st = self.inner.lock();
        let c = st.counts.entry(key).or_default();
        match granted {
            Ok((ok, share)) => {
                c.share = share;
                c.valid_until = Some(sent + self.inner.lease());
                if ok {
                    c.denied_until = None;
                    Ok(())
                } else {
                    c.denied_until = Some(Instant::now() + self.inner.retry_grow());
                    Err(throttled(scope, limit_mb, mem_mb))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not lease a concurrency share: refusing the call");
                Err(throttled(scope, limit_mb, mem_mb))
            }
        }
    }

    /// Renews this node's shares (cluster) and reads the cached accounts' settings again. Runs every third of
    /// `lease_ms`.
    pub(crate) async fn tick(&self, store: &Store) {
        let accounts: Vec<i64> = self.inner.lock().settings.keys().copied().collect();
        for a in accounts {
            if let Err(e) = self.reload(store, a).await {
                tracing::warn!(error = %e, "could not read concurrency settings");
            }
        }
        let Some(store) = &self.inner.shared else {
            return;
        };
        let _writes = self.inner.writes.lock().await;
        let now = Instant::now();
        let (keys, renewals): (Vec<(i64, Scope)>, Vec<ShareRenewal>) = {
            let mut st = self.inner.lock();
            st.counts
                .iter_mut()
                .map(|(k, c)| {
                    // Shrink first, here: calls admitted while the renewal is on its way fit the smaller share.
                    c.share = c.share_now(now).min(c.peak.max(c.used));
                    c.peak = c.used;
                    (
                        k.clone(),
                        ShareRenewal {
                            app_id: k.0,
                            scope: k.1.key(),
                            share_mb: c.share,
                            used_mb: c.used,
                        },
                    )
                })
                .unzip()
        };
        if keys.is_empty() {
            return;
        }
        let sent = Instant::now();
        match store
            .renew_shares(&self.inner.node, &renewals, self.inner.cfg.lease_ms)
            .await
        {
            Ok(kept) => {
                let mut st = self.inner.lock();
                for (k, share) in keys.into_iter().zip(kept) {
                    let remove = match st.counts.get_mut(&k) {
                        Some(c) => {
                            c.share = c.share.min(share);
                            c.valid_until = Some(sent + self.inner.lease());
                            c.share == 0 && c.used == 0 && c.peak == 0
                        }
                        None => false,
                    };
                    if remove {
                        st.counts.remove(&k);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew concurrency shares"),
        }
    }

    /// Memory this node runs now in each namespace of an account.
    fn local_usage(&self, app_id: i64) -> HashMap<String, i64> {
        self.inner
            .lock()
            .counts
            .iter()
            .filter_map(|((a, s), c)| match s {
                Scope::Usage(ns) if *a == app_id => Some((ns.clone(), c.used)),
                _ => None,
            })
            .collect()
    }
}

/// An account's concurrency as GetAccount shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConcurrencyUsage {
    /// The account quota (MB).
    pub quota_mb: i64,
    /// Every reservation of the account together (MB).
    pub reserved_mb: i64,
    /// Per namespace: (total if set, reservations, memory running now), MB.
    pub namespaces: HashMap<String, NamespaceConcurrency>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceConcurrency {
    pub total_mb: Option<i64>,
    pub reserved_mb: i64,
    pub running_mb: i64,
}

impl Control {
    /// Admits one invocation under the concurrency limits (SCF's 432 when over one).
    pub(crate) async fn admit(&self, key: &model::FunctionKey, mem_mb: i64) -> Result<Permit> {
        let r = self
            .admission
            .admit(&self.store, key.app_id, &key.namespace, &key.name, mem_mb)
            .await;
        if r.is_err() {
            self.metrics.observe(432, 0.0, false);
        }
        r
    }

    /// Renews this node's concurrency shares and refreshes the settings it caches, every third of the lease,
    /// until `shutdown`.
    pub async fn run_concurrency(&self, mut shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis((self.admission.config().lease_ms / 3).max(100) as u64);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
            self.admission.tick(&self.store).await;
            ticks += 1;
            if self.store.is_shared() && ticks.is_multiple_of(30) {
                let age = self.admission.config().lease_ms.saturating_mul(10);
                if let Err(e) = self.store.prune_shares(age).await {
                    tracing::warn!(error = %e, "could not prune lapsed concurrency shares");
                }
            }
        }
    }

    /// Gives up this node's concurrency shares (at shutdown, once nothing runs any more).
    pub async fn release_concurrency(&self) {
        if self.store.is_shared()
            && let Err(e) = self.store.release_shares(&self.admission.inner.node).await
        {
            tracing::warn!(error = %e, "could not give up concurrency shares");
        }
    }

    /// PutReservedConcurrencyConfig.
    pub async fn put_reserved_concurrency(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        mem_mb: i64,
    ) -> Result<()> {
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        let cfg = self.admission.config();
        let max = cfg.account_quota_mb - cfg.min_unreserved_mb;
        if mem_mb < 0 {
            return Err(model::InvalidValue::new(
                "ReservedConcurrencyMem",
                "ReservedConcurrencyMem must not be negative.",
            )
            .into());
        }
        let outcome = self
            .store
            .put_reservation(
                caller.app_id,
                namespace,
                name,
                mem_mb,
                store::ReservationBounds {
                    max_reserved_mb: max,
                    headroom_mb: cfg.min_unreserved_mb,
                },
                store::now_ms(),
            )
            .await?;
        self.admission.reload(&self.store, caller.app_id).await?;
        match outcome {
            store::ReservationOutcome::Stored => Ok(()),
            store::ReservationOutcome::AccountExceeded { others, max } => {
                Err(ControlError::LimitExceeded {
                    what: "FunctionReservedConcurrencyMemory",
                    message: format!(
                        "the account's reservations may total at most {max} MB (its quota less {} MB); the other functions reserve {others} MB, so this one may reserve at most {} MB",
                        cfg.min_unreserved_mb,
                        (max - others).max(0)
                    ),
                })
            }
            store::ReservationOutcome::NamespaceExceeded { others, total } => {
                Err(ControlError::ReservedExceedTotal(format!(
                    "namespace {namespace}'s total concurrency is {total} MB and must keep {} MB unreserved; its other functions reserve {others} MB, so this one may reserve at most {} MB",
                    cfg.min_unreserved_mb,
                    (total - cfg.min_unreserved_mb - others).max(0)
                )))
            }
            store::ReservationOutcome::NoFunction => Err(ControlError::FunctionNotFound {
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// GetReservedConcurrencyConfig: the function's reservation in MB, if it has one.
    pub async fn reserved_concurrency(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
    ) -> Result<Option<i64>> {
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        Ok(self
            .store
            .reservation(caller.app_id, namespace, name)
            .await?)
    }

    /// Every reservation of the account in MB, by (namespace, function) (ListFunctions shows them).
    pub async fn reservations(&self, caller: &Caller) -> Result<HashMap<(String, String), i64>> {
        let s = self.store.concurrency_settings(caller.app_id).await?;
        Ok(s.reservations
            .into_iter()
            .map(|(ns, f, mb)| ((ns, f), mb))
            .collect())
    }

    /// DeleteReservedConcurrencyConfig (a function without a reservation is left as it is).
    pub async fn delete_reserved_concurrency(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
    ) -> Result<()> {
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        self.store
            .delete_reservation(caller.app_id, namespace, name)
            .await?;
        self.admission.reload(&self.store, caller.app_id).await?;
        Ok(())
    }

    /// PutTotalConcurrencyConfig: a namespace's total concurrency memory.
    pub async fn put_total_concurrency(
        &self,
        caller: &Caller,
        namespace: &str,
        total_mb: i64,
    ) -> Result<()> {
        self.require_namespace(caller, namespace).await?;
        let cfg = self.admission.config();
        if total_mb > cfg.account_quota_mb {
            return Err(ControlError::LimitExceeded {
                what: "TotalConcurrencyMemory",
                message: format!(
                    "TotalConcurrencyMem {total_mb} MB is over the account's concurrency quota of {} MB",
                    cfg.account_quota_mb
                ),
            });
        }
        match self
            .store
            .put_namespace_total(
                caller.app_id,
                namespace,
                total_mb,
                cfg.min_unreserved_mb,
                store::now_ms(),
            )
            .await
        {
            Ok(None) => {}
            Ok(Some(reserved)) => {
                return Err(model::InvalidValue::new(
                    "TotalConcurrencyMem",
                    format!(
                        "TotalConcurrencyMem must be at least the namespace's reservations ({reserved} MB) plus {} MB",
                        cfg.min_unreserved_mb
                    ),
                )
                .into());
            }
            Err(store::StoreError::Conflict) => {
                return Err(ControlError::NamespaceNotFound(namespace.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        self.admission.reload(&self.store, caller.app_id).await?;
        Ok(())
    }

    /// The account's quota, allocation and running memory, over every node of a cluster.
    pub(crate) async fn concurrency_usage(&self, caller: &Caller) -> Result<ConcurrencyUsage> {
        let settings = self.store.concurrency_settings(caller.app_id).await?;
        let mut out = ConcurrencyUsage {
            quota_mb: self.admission.config().account_quota_mb,
            ..Default::default()
        };
        for (ns, _, mb) in &settings.reservations {
            out.reserved_mb += mb;
            out.namespaces.entry(ns.clone()).or_default().reserved_mb += mb;
        }
        for (ns, t) in &settings.namespace_totals {
            out.namespaces.entry(ns.clone()).or_default().total_mb = Some(*t);
        }
        for (ns, mb) in self.admission.local_usage(caller.app_id) {
            out.namespaces.entry(ns).or_default().running_mb += mb;
        }
        if self.store.is_shared() {
            for (scope, mb) in self
                .store
                .others_usage(caller.app_id, &self.admission.inner.node)
                .await?
            {
                if let Some(ns) = scope.strip_prefix("use:") {
                    out.namespaces.entry(ns.to_string()).or_default().running_mb += mb;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(reserved: &[(&str, &str, i64)], totals: &[(&str, i64)]) -> Settings {
        Settings::from_store(&store::ConcurrencySettings {
            reservations: reserved
                .iter()
                .map(|(n, f, m)| (n.to_string(), f.to_string(), *m))
                .collect(),
            namespace_totals: totals.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        })
    }

    fn admit_n(
        counts: &mut HashMap<(i64, Scope), Count>,
        s: &Settings,
        ns: &str,
        f: &str,
        mem: i64,
        n: usize,
    ) -> usize {
        let plan = s.plan(1024, ns, f);
        (0..n)
            .filter(|_| {
                matches!(
                    decide(counts, 1, &plan, mem, false, Instant::now()),
                    Decision::Admit(_)
                )
            })
            .count()
    }

    #[test]
    fn a_reservation_caps_its_function_exactly() {
        let s = settings(&[("default", "r", 256)], &[]);
        let mut c = HashMap::new();
        assert_eq!(admit_n(&mut c, &s, "default", "r", 128, 20), 2);
        // A 64 MB function fits four times in the same reservation.
        let s = settings(&[("default", "r", 256)], &[]);
        let mut c = HashMap::new();
        assert_eq!(admit_n(&mut c, &s, "default", "r", 64, 20), 4);
    }

    #[test]
    fn reserved_capacity_is_not_available_to_other_functions() {
        // Quota 1024, 256 reserved for r: the others share 768.
        let s = settings(&[("default", "r", 256)], &[]);
        let mut c = HashMap::new();
        assert_eq!(admit_n(&mut c, &s, "default", "flood", 128, 20), 6);
        // The flood does not touch r's reservation.
        assert_eq!(admit_n(&mut c, &s, "default", "r", 128, 5), 2);
        // Nor the unreserved pool r's calls.
        assert_eq!(admit_n(&mut c, &s, "other", "g", 128, 1), 0);
    }

    #[test]
    fn a_namespace_total_bounds_its_unreserved_functions() {
        let s = settings(&[("ns", "r", 128)], &[("ns", 512)]);
        let mut c = HashMap::new();
        // 512 less 128 reserved: three 128 MB instances, whatever the function.
        assert_eq!(admit_n(&mut c, &s, "ns", "a", 128, 2), 2);
        assert_eq!(admit_n(&mut c, &s, "ns", "b", 128, 5), 1);
        assert_eq!(admit_n(&mut c, &s, "ns", "r", 128, 5), 1);
        // The account's pool still has 1024 - 128 - 384 left for other namespaces.
        assert_eq!(admit_n(&mut c, &s, "default", "d", 128, 10), 4);
    }

    #[test]
    fn the_refusal_names_the_limit_in_instances() {
        let s = settings(&[("default", "r", 256)], &[]);
        let mut c = HashMap::new();
        let plan = s.plan(1024, "default", "r");
        for _ in 0..2 {
            assert!(matches!(
                decide(&mut c, 1, &plan, 128, false, Instant::now()),
                Decision::Admit(_)
            ));
        }
        match decide(&mut c, 1, &plan, 128, false, Instant::now()) {
            Decision::Refuse(s, l) => {
                let ControlError::Throttled { scope, limit } = throttled(&s, l, 128) else {
                    panic!("not a throttle");
                };
                assert_eq!(limit, 2);
                assert!(scope.contains("reserved"), "{scope}");
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn a_cluster_node_grows_its_share_only_beyond_it() {
        let s = settings(&[("default", "r", 256)], &[]);
        let plan = s.plan(1024, "default", "r");
        let mut c = HashMap::new();
        let now = Instant::now();
        // No share yet: the first call must lease 128 MB.
        match decide(&mut c, 1, &plan, 128, true, now) {
            Decision::Admit(g) => assert_eq!(
                g,
                vec![(Scope::Function("default".into(), "r".into()), 256)]
            ),
            d => panic!("{d:?}"),
        }
        // With a live share of 256 the second call needs no round trip.
        let k = (1, Scope::Function("default".into(), "r".into()));
        if let Some(e) = c.get_mut(&k) {
            e.share = 256;
            e.valid_until = Some(now + Duration::from_secs(5));
        }
        assert_eq!(
            decide(&mut c, 1, &plan, 128, true, now),
            Decision::Admit(vec![])
        );
        // A lapsed share counts as none.
        if let Some(e) = c.get_mut(&k) {
            e.valid_until = Some(now);
            e.used = 0;
        }
        assert!(
            matches!(decide(&mut c, 1, &plan, 128, true, now), Decision::Admit(g) if g.len() == 1)
        );
    }

    #[test]
    fn usage_is_counted_per_namespace_without_a_limit() {
        let s = settings(&[], &[]);
        let plan = s.plan(1024, "ns", "f");
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1], (Scope::Usage("ns".into()), None));
    }
}
