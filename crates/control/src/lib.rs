//! The SCF use cases: each accepts a typed request from an account, decides by the rules in `model`, and records
//! the outcome through `store`, together with the durable operation that will finish it. The lifecycle workers
//! ([`worker`]) claim those operations and drive every record to a terminal status; the dispatchers ([`events`])
//! run the asynchronous events.

mod accounts;
mod aliases;
mod concurrency;
pub mod domains;
mod error;
pub mod events;
mod functions;
mod invoke;
mod layers;
mod prepare;
mod records;
pub mod timers;
pub mod triggers;
pub mod web;
pub mod worker;

use std::sync::Arc;

use model::Limits;
use store::Store;
use tokio::sync::Notify;

pub use accounts::{AccountUsage, NewAccount};
pub use aliases::AliasSpec;
pub use concurrency::{ConcurrencyConfig, ConcurrencyUsage, NamespaceConcurrency};
pub use engine::{FunctionError, InvokeOutcome, WebDone, WebReply, WebRequest};
pub use error::{ControlError, Result};
pub use events::{EventsConfig, ListEvents};
pub use functions::{CreateFunction, FunctionView, ListFunctions, VersionList};
pub use invoke::Invocation;
pub use layers::PublishLayer;
pub use prepare::PrepareLimits;
pub use records::{DURATION_BUCKETS_MS, Metrics};
pub use store::{EventQuery, EventRow, InvocationOrder, InvocationQuery, InvocationRecord};
pub use store::{FunctionOrder, FunctionRow, LayerRow, ListQuery, Namespace};
pub use store::{TriggerOrder, TriggerQuery, TriggerRow};
pub use timers::TimersConfig;
pub use triggers::{
    Cors, FunctionUrl, NewTrigger, OpenTimer, TriggerAddress, TriggerChange, UrlDesc,
};

type KeyCache =
    std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String, Caller)>>;

/// Who is calling: every use case is scoped to this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub app_id: i64,
    pub uin: String,
}

/// Tunables of the control plane.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub limits: Limits,
    pub prepare: PrepareLimits,
    /// How long a claimed operation stays leased without a heartbeat, on the database's clock.
    pub lease_ms: i64,
    /// After this many failed attempts (claimed, then the lease ran out without a finish: the worker died, hung,
    /// or ended in an internal error) an operation ends in its failed status.
    pub max_attempts: i64,
    /// This node's clock, for the times the lifecycle workers write into records. Leases never use it.
    pub clock: Clock,
    /// The asynchronous event queue and its dispatchers.
    pub events: EventsConfig,
    /// The function listener's advertised base URL, from which function URLs are made (see
    /// [`triggers::function_url`]).
    pub function_url_base: String,
    /// Concurrency quotas and the lease of a node's shares of them.
    pub concurrency: ConcurrencyConfig,
    /// The certificate ids the operator configured (`[http.certificates]`): what an HTTPS custom domain's
    /// `CertConfig.CertificateId` may name.
    pub certificate_ids: Vec<String>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            limits: Limits::default(),
            prepare: PrepareLimits::default(),
            lease_ms: 5_000,
            max_attempts: 5,
            clock: Clock::system(),
            events: EventsConfig::default(),
            function_url_base: triggers::DEFAULT_URL_BASE.to_string(),
            concurrency: ConcurrencyConfig::default(),
            certificate_ids: Vec::new(),
        }
    }
}

/// A node's wall clock in milliseconds since the Unix epoch, possibly set off from the system's (a test gives a
/// node a clock that runs fast or slow, as a cluster's nodes may have).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock set `offset_ms` ahead (behind, when negative).
    pub fn skewed(offset_ms: i64) -> Clock {
        Clock { offset_ms }
    }

    pub fn now_ms(&self) -> i64 {
        store::now_ms().saturating_add(self.offset_ms)
    }
}

/// The control plane: the store plus the rules.
#[derive(Clone)]
pub struct Control {
    pub(crate) store: Store,
    pub(crate) cfg: Arc<ControlConfig>,
    /// Wakes the workers when an operation was recorded.
    pub(crate) work: Arc<Notify>,
    /// Wakes a dispatcher slot when an event was accepted.
    pub(crate) events: Arc<Notify>,
    /// The events this node runs, each with the signal that stops it (TerminateAsyncEvent).
    pub(crate) running:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<events::Stopper>>>>,
    /// Commits the event queue's writes in groups (see `events::EventWriter`).
    pub(crate) event_writer: Arc<events::EventWriter>,
    download_key: Arc<tokio::sync::OnceCell<String>>,
    /// Runs functions; `None` when execution is off on this server.
    pub(crate) engine: Option<engine::Engine>,
    pub(crate) recorder: Arc<records::Recorder>,
    /// SecretId → (when read, secret, account): see `api_key`.
    keys: Arc<KeyCache>,
    pub(crate) metrics: Arc<records::Metrics>,
    /// Pool keys of serving snapshots, hashed once per record revision.
    pub(crate) snapshot_keys: Arc<invoke::SnapshotKeys>,
    /// Function URLs recently resolved (see `triggers::UrlCache`).
    pub(crate) url_cache: Arc<triggers::UrlCache>,
    /// Admits invocations under the concurrency limits.
    pub(crate) admission: concurrency::Admission,
    /// Custom domains recently resolved (see `domains::DomainCache`).
    pub(crate) domain_cache: Arc<domains::DomainCache>,
}

impl Control {
    pub fn new(store: Store, cfg: ControlConfig) -> Self {
        Control {
            admission: concurrency::Admission::new(cfg.concurrency.clone(), &store),
            store,
            cfg: Arc::new(cfg),
            work: Arc::new(Notify::new()),
            events: Arc::new(Notify::new()),
            running: Arc::default(),
            event_writer: Arc::default(),
            download_key: Arc::new(tokio::sync::OnceCell::new()),
            engine: None,
            recorder: Arc::new(records::Recorder::new(records::RECORD_QUEUE_BYTES)),
            keys: Arc::new(KeyCache::default()),
            metrics: Arc::new(records::Metrics::default()),
            snapshot_keys: Arc::new(invoke::SnapshotKeys::default()),
            url_cache: Arc::new(triggers::UrlCache::default()),
            domain_cache: Arc::new(domains::DomainCache::default()),
        }
    }

    /// Runs functions with `engine` (Invoke, and the runtime check of preparation).
    pub fn with_engine(mut self, engine: engine::Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &ControlConfig {
        &self.cfg
    }

    /// Resolves a SecretId to its secret and the calling account (the API layer checks the signature).
    /// Known keys are remembered for a short while, so that a busy client's calls do not each read the database.
    pub async fn api_key(&self, secret_id: &str) -> Result<Option<(String, Caller)>> {
        const KEEP: std::time::Duration = std::time::Duration::from_secs(30);
        if let Ok(cache) = self.keys.lock()
            && let Some((at, key, caller)) = cache.get(secret_id)
            && at.elapsed() < KEEP
        {
            return Ok(Some((key.clone(), caller.clone())));
        }
        let found = self.store.api_key(secret_id).await?.map(|k| {
            (
                k.secret_key,
                Caller {
                    app_id: k.app_id,
                    uin: k.uin,
                },
            )
        });
        if let Some((key, caller)) = &found
            && let Ok(mut cache) = self.keys.lock()
        {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(
                secret_id.to_string(),
                (std::time::Instant::now(), key.clone(), caller.clone()),
            );
        }
        Ok(found)
    }

    /// The installation's secret for signing code download links (shared by every node through the database).
    pub async fn download_key(&self) -> Result<String> {
        let key = self
            .download_key
            .get_or_try_init(|| async {
                self.store
                    .setting_or_insert("download_key", &random_token(48, true))
                    .await
            })
            .await?;
        Ok(key.clone())
    }

    /// The bytes of a stored code or layer package.
    pub async fn code_blob(&self, sha256: &str) -> Result<Vec<u8>> {
        Ok(self.store.read_blob(sha256).await?)
    }

    pub(crate) fn wake_workers(&self) {
        self.work.notify_one();
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A random string of `n` characters from `[a-z0-9]` (or `[A-Za-z0-9]` when `mixed`).
pub(crate) fn random_token(n: usize, mixed: bool) -> String {
    let alphabet: &[u8] = if mixed {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    } else {
        b"abcdefghijklmnopqrstuvwxyz0123456789"
    };
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().into_bytes() {
            if out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}
