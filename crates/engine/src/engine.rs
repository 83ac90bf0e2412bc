//! The engine: per-snapshot pools of warm instances, concurrency limits, idle reaping and retirement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::instance::{Instance, Ran, StartError};
use crate::launcher::Launcher;
use crate::log::{LogParts, render};
use crate::runtimes::{Family, Runtimes};
use crate::types::{EngineConfig, EngineError, FunctionSpec, InvokeOutcome, InvokeRequest, status};

/// How long [`Engine::shutdown`] waits for the teardown of stopped instances.
const SHUTDOWN_TEARDOWN: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs invocations on pooled instances. Cheap to share (`Arc` inside); the reaper task stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: EngineConfig,
    pub(crate) launcher: Arc<dyn Launcher>,
    runtimes: Runtimes,
    /// Web functions' instances (`crate::web`).
    pub(crate) web: crate::web::WebPools,
    state: Mutex<State>,
    generations: AtomicU64,
}

#[derive(Default)]
struct State {
    pools: HashMap<String, Pool>,
    /// Busy invocations per function (`app_id/namespace/name`).
    functions: HashMap<String, u32>,
    /// Busy invocations per account (`app_id`).
    accounts: HashMap<String, u32>,
    busy: u32,
    idle: u32,
    closed: bool,
}

struct Pool {
    /// Instances of a newer generation only: bumped by `retire`.
    generation: u64,
    /// Idle instances, most recently used last.
    idle: Vec<Instance>,
    busy: u32,
}

/// Counts of what the engine runs, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub busy: u32,
    pub idle: u32,
    pub pools: u32,
}

impl State {
    fn live(&self) -> u32 {
        self.busy + self.idle
    }
}

fn function_key(spec: &FunctionSpec) -> String {
    format!("{}/{}/{}", spec.app_id, spec.namespace, spec.function_name)
}

/// A reserved concurrency slot; gives it back when dropped (also when the invocation future is cancelled).
pub(crate) struct Slot {
    inner: Arc<Inner>,
    key: String,
    function: String,
    account: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        let dec = |m: &mut HashMap<String, u32>, k: &str| {
            if let Some(n) = m.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(k);
                }
            }
        };
        dec(&mut st.functions, &self.function);
        dec(&mut st.accounts, &self.account);
        st.busy = st.busy.saturating_sub(1);
        let remove = match st.pools.get_mut(&self.key) {
            Some(p) => {
                p.busy = p.busy.saturating_sub(1);
                p.busy == 0 && p.idle.is_empty()
            }
            None => false,
        };
        if remove {
            st.pools.remove(&self.key);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Engine {
    /// Creates the engine and, inside a tokio runtime, starts its idle reaper.
    pub fn new(cfg: EngineConfig, launcher: Arc<dyn Launcher>) -> Engine {
        let inner = Arc::new(Inner {
            runtimes: Runtimes::new(cfg.runtimes.clone()),
            cfg,
            launcher,
            state: Mutex::new(State::default()),
            web: Default::default(),
            generations: AtomicU64::new(0),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(reaper(Arc::downgrade(&inner)));
        }
        Engine { inner }
    }

    /// Whether this installation can run the runtime (probes the host's interpreter on first use: blocking).
    pub fn is_runtime_available(&self, runtime: &str) -> bool {
        self.inner.runtimes.interpreter(runtime).is_some()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Runs one invocation on a warm instance of the snapshot, or on a new one.
    pub async fn invoke(
        &self,
        spec: &FunctionSpec,
        req: InvokeRequest,
    ) -> Result<InvokeOutcome, EngineError> {
        let inner = &self.inner;
        let family = Family::of(&spec.runtime)
            .ok_or_else(|| EngineError::RuntimeUnavailable(spec.runtime.clone()))?;
        let request_id = req
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (slot, warm, generation, evicted) = self.admit(spec)?;
        drop(evicted);
        let mut instance = match warm {
            Some(i) => i,
            None => {
                let interpreter = match family {
                    Family::Custom => Default::default(),
                    _ => {
                        let probe_inner = inner.clone();
                        let name = spec.runtime.clone();
                        // The first probe of an interpreter runs it once: keep that off the async threads.
                        let probe = tokio::task::spawn_blocking(move || {
                            probe_inner.runtimes.interpreter(&name)
                        })
                        .await
                        .ok()
                        .flatten();
                        probe
                            .ok_or_else(|| EngineError::RuntimeUnavailable(spec.runtime.clone()))?
                    }
                };
                match Instance::start(
                    spec,
                    family,
                    &interpreter,
                    &inner.cfg,
                    inner.launcher.as_ref(),
                    generation,
                )
                .await
                {
                    Ok(i) => {
                        tracing::debug!(
                            key = %spec.key,
                            coldstart_ms = i.init.map(|r| r.coldstart_ms).unwrap_or(0.0),
                            "instance started"
                        );
                        i
                    }
                    Err(StartError::Engine(e)) => {
                        tracing::warn!(key = %spec.key, error = %e, "instance launch failed");
                        return Err(e);
                    }
                    Err(StartError::Function {
                        error,
                        output,
                        init,
                    }) => {
                        tracing::debug!(
                            key = %spec.key,
                            status = error.status_code,
                            "instance failed to initialise"
                        );
                        return Ok(self.failed_start(spec, request_id, error, output, init));
                    }
                }
            }
        };
        let init = instance.init.take();
        let Ran {
            result,
            output,
            duration,
            mem_usage_bytes,
        } = instance
            .invoke(&request_id, &req.event, req.terminate)
            .await;
        let duration_ms = duration.as_secs_f64() * 1000.0;
        let log = render(&LogParts {
            request_id: &request_id,
            init,
            output: &output.bytes,
            output_dropped: output.dropped,
            result: &result,
            max_retmsg: inner.cfg.max_log_retmsg_bytes,
            duration_ms,
            memory_mb: spec.memory_mb,
            mem_usage_bytes,
        });
        self.release(&slot, instance);
        drop(slot);
        let status_code = match &result {
            Ok(_) => status::OK,
            Err(e) => e.status_code,
        };
        Ok(InvokeOutcome {
            request_id,
            result,
            status_code,
            log,
            duration_ms,
            bill_duration_ms: duration_ms.ceil().max(1.0) as i64,
            mem_usage_bytes,
            cold_start: init.is_some(),
            init_ms: init.map(|i| i.coldstart_ms).unwrap_or(0.0),
        })
    }

    fn failed_start(
        &self,
        spec: &FunctionSpec,
        request_id: String,
        error: crate::FunctionError,
        output: crate::instance::Output,
        init: crate::log::InitReport,
    ) -> InvokeOutcome {
        let status_code = error.status_code;
        let result = Err(error);
        let log = render(&LogParts {
            request_id: &request_id,
            init: Some(init),
            output: &output.bytes,
            output_dropped: output.dropped,
            result: &result,
            max_retmsg: self.inner.cfg.max_log_retmsg_bytes,
            duration_ms: 0.0,
            memory_mb: spec.memory_mb,
            mem_usage_bytes: init.mem_usage_bytes,
        });
        InvokeOutcome {
            request_id,
            result,
            status_code,
            log,
            duration_ms: 0.0,
            bill_duration_ms: 0,
            mem_usage_bytes: init.mem_usage_bytes,
            cold_start: true,
            init_ms: init.coldstart_ms,
        }
    }

    /// Reserves a slot under the limits and takes a warm instance if there is one. Returns idle instances evicted to
    /// make room (dropped, i.e. killed, by the caller outside the lock).
    #[allow(clippy::type_complexity)]
    pub(crate) fn admit(
        &self,
        spec: &FunctionSpec,
    ) -> Result<(Slot, Option<Instance>, u64, Vec<Instance>), EngineError> {
        let inner = &self.inner;
        let function = function_key(spec);
        let fn_limit = spec
            .max_concurrency
            .unwrap_or(inner.cfg.max_per_function)
            .max(1);
        let mut dead = Vec::new();
        let mut st = inner.lock();
        if st.closed {
            return Err(EngineError::ShuttingDown);
        }
        if st.functions.get(&function).copied().unwrap_or(0) >= fn_limit {
            return Err(EngineError::Throttled {
                scope: "the function",
                limit: fn_limit,
            });
        }
        let acct_limit = inner.cfg.max_per_account.max(1);
        if st.accounts.get(&spec.app_id).copied().unwrap_or(0) >= acct_limit {
            return Err(EngineError::Throttled {
                scope: "the account",
                limit: acct_limit,
            });
        }
        *st.functions.entry(function.clone()).or_default() += 1;
        *st.accounts.entry(spec.app_id.clone()).or_default() += 1;
        st.busy += 1;
        let next_gen = inner.next_generation();
        let pool = st.pools.entry(spec.key.clone()).or_insert_with(|| Pool {
            generation: next_gen,
            idle: Vec::new(),
            busy: 0,
        });
        pool.busy += 1;
        let generation = pool.generation;
        let mut warm = None;
        while let Some(mut i) = pool.idle.pop() {
            if i.alive() {
                warm = Some(i);
                break;
            }
            dead.push(i);
        }
        let taken = dead.len() as u32 + u32::from(warm.is_some());
        st.idle = st.idle.saturating_sub(taken);
        if warm.is_none() && st.live() > inner.cfg.max_instances {
            // Make room: stop the least recently used idle instance anywhere.
            let oldest = st
                .pools
                .iter()
                .filter_map(|(k, p)| p.idle.first().map(|i| (k.clone(), i.last_used)))
                .min_by_key(|(_, t)| *t)
                .map(|(k, _)| k);
            if let Some(k) = oldest {
                if let Some(p) = st.pools.get_mut(&k) {
                    dead.push(p.idle.remove(0));
                }
                st.idle = st.idle.saturating_sub(1);
            }
        }
        drop(st);
        let slot = Slot {
            inner: inner.clone(),
            key: spec.key.clone(),
            function,
            account: spec.app_id.clone(),
        };
        Ok((slot, warm, generation, dead))
    }

    /// Gives an instance back to its pool, or stops it.
    fn release(&self, slot: &Slot, mut instance: Instance) {
        let mut st = self.inner.lock();
        let keep = !st.closed
            && instance.healthy
            && st
                .pools
                .get(&slot.key)
                .is_some_and(|p| p.generation == instance.generation);
        if keep {
            instance.last_used = Instant::now();
            if let Some(p) = st.pools.get_mut(&slot.key) {
                p.idle.push(instance);
            }
            st.idle += 1;
            return;
        }
        drop(st);
        instance.kill();
    }

    /// Stops the idle instances of a snapshot that no longer serves, and makes its busy ones stop when their
    /// invocation ends. Returns how many idle instances were stopped.
    pub fn retire(&self, key: &str) -> usize {
        let next_gen = self.inner.next_generation();
        let drained = {
            let mut st = self.inner.lock();
            let Some(p) = st.pools.get_mut(key) else {
                return 0;
            };
            p.generation = next_gen;
            let drained = std::mem::take(&mut p.idle);
            if p.busy == 0 {
                st.pools.remove(key);
            }
            st.idle = st.idle.saturating_sub(drained.len() as u32);
            drained
        };
        let n = drained.len() + self.inner.web.retire(key);
        drop(drained);
        n
    }

    /// Stops idle instances unused for longer than the idle TTL. Returns how many were stopped.
    pub fn reap_idle(&self) -> usize {
        reap(&self.inner)
    }

    /// Stops every idle instance, refuses new invocations (busy ones stop when they end), and waits (at most
    /// 10 s, blocking) until the instances stopped so far are torn down, so that none is left behind when the
    /// process exits.
    pub fn shutdown(&self) {
        let drained: Vec<Instance> = {
            let mut st = self.inner.lock();
            st.closed = true;
            st.idle = 0;
            let mut all = Vec::new();
            for p in st.pools.values_mut() {
                all.append(&mut p.idle);
            }
            st.pools.retain(|_, p| p.busy > 0);
            all
        };
        drop(drained);
        self.inner.web.shutdown();
        let launcher = &self.inner.launcher;
        let flush = || launcher.flush_teardown(SHUTDOWN_TEARDOWN);
        let done = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(flush),
            _ => flush(),
        };
        if !done {
            tracing::warn!("some instances were still being torn down at shutdown");
        }
    }

    /// Current counts.
    pub fn stats(&self) -> EngineStats {
        let st = self.inner.lock();
        EngineStats {
            busy: st.busy,
            idle: st.idle,
            pools: st.pools.len() as u32,
        }
    }

    /// Idle instances of one snapshot.
    pub fn idle_instances(&self, key: &str) -> usize {
        self.inner
            .lock()
            .pools
            .get(key)
            .map(|p| p.idle.len())
            .unwrap_or(0)
    }
}

fn reap(inner: &Inner) -> usize {
    let ttl = inner.cfg.idle_ttl;
    let web = inner.web.reap(ttl);
    let now = Instant::now();
    let stale: Vec<Instance> = {
        let mut st = inner.lock();
        let mut stale = Vec::new();
        for p in st.pools.values_mut() {
            let keep_from = p
                .idle
                .iter()
                .position(|i| now.duration_since(i.last_used) < ttl)
                .unwrap_or(p.idle.len());
            stale.extend(p.idle.drain(..keep_from));
        }
        st.pools.retain(|_, p| p.busy > 0 || !p.idle.is_empty());
        st.idle = st.idle.saturating_sub(stale.len() as u32);
        stale
    };
    let n = stale.len() + web;
    drop(stale);
    n
}

async fn reaper(inner: Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(i) => i.cfg.reap_interval,
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        reap(&inner);
    }
}
