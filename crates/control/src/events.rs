//! Asynchronous invocation: `Invoke` with `InvocationType=Event` resolves and checks the qualifier exactly as a
//! synchronous call does, stores the event in one commit and returns; dispatchers (N slots per node) claim due
//! events with a lease on the database's clock, keep it alive while the function runs, run the event through the
//! engine on the same path as a synchronous call (so every attempt is an invocation record, with its retry
//! number), and end each attempt:
//!
//! - the function returned: `FINISHED`, status 200;
//! - a function error (430, 433, 434, 439, …): retried `RetryNum` times (the function's setting, else the server's) after the configured delays (SCF: 60 s,
//!   then 120 s), then `FAILED` with its last error;
//! - a throttle (432) or a platform fault: retried with exponential back-off capped at `backoff_max_ms` until the
//!   event is `msg_ttl_ms` old, then `FAILED`;
//! - a request error (the function, namespace or qualifier is gone, or the record may no longer run): `FAILED` at
//!   once, never retried.
//!
//! A dispatcher that dies mid-event loses its lease and another one (or the restarted process) runs the event
//! again: delivery is at least once, and an event runs twice only when its dispatcher died while running it. An
//! event whose dispatchers keep dying (`max_lapses` lapsed leases) ends `FAILED` rather than circulating forever.
//!
//! The local dispatcher is woken in-process when an event is accepted, and on PostgreSQL every node's through
//! LISTEN/NOTIFY (the accepting statement notifies); each also polls every `poll`, which covers notifications lost
//! while a listener reconnects and events whose retry comes due. Fairness between
//! functions comes from the store's claim order (see `store::events`); the engine's concurrency limits apply to
//! events as to synchronous calls, and an event refused by them is a throttle.

use std::sync::Arc;
use std::time::Duration;

use model::FunctionKey;
use store::events::{ABORTED, FAILED, FINISHED};
use store::{
    Abort, ClaimedEvent, EventEnd, EventQuery, EventRow, EventWrite, EventWritten, NewEvent,
    StoreError,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::{Caller, Control, ControlError, Invocation, Result};

/// SCF's limits of a function's retry settings (GetAccount's `RetryNumLimit`, `MinMsgTTL`, `MaxMsgTTL`).
pub const MAX_RETRY_NUM: i64 = 2;
pub const MIN_MSG_TTL_SECS: i64 = 60;
pub const MAX_MSG_TTL_SECS: i64 = 21_600;

/// Largest event of an asynchronous invocation (SCF: 128 KB).
pub const MAX_EVENT_BYTES: usize = 128 * 1024;

/// The default grace period after SIGTERM. SCF documents none (a function that handles the signal runs on until it
/// returns or times out); Stratus bounds it, as container platforms do (Kubernetes' 30 s).
pub const DEFAULT_GRACE_SHUTDOWN_SECS: u64 = 30;

/// The `InvokeType` of a dead letter: the event a failed event's `DeadLetterConfig` function receives. A dead
/// letter that fails is not dead-lettered again, so no configuration (a function that is its own dead-letter
/// function, two that name each other) makes them circulate.
pub const DEAD_LETTER: &str = "DeadLetter";

/// Tunables of the event queue and its dispatchers.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Events one node runs at once.
    pub slots: usize,
    /// How often an idle dispatcher looks for events accepted by other nodes or left by a dead one.
    pub poll: Duration,
    /// How long a claimed event stays leased without a heartbeat (the database's clock).
    pub lease_ms: i64,
    /// Retries of a function error (SCF's `RetryNum`, 0–2; default 2) for functions that set none.
    pub retry_num: i64,
    /// The delay before each retry of a function error; the last one repeats (SCF: 60 s, then 120 s).
    pub retry_delays_ms: Vec<i64>,
    /// How long throttles and platform faults are retried, from the event's acceptance (SCF's `MsgTTL`), for
    /// functions that set none.
    pub msg_ttl_ms: i64,
    /// The first back-off after a throttle or fault; it doubles on each, up to `backoff_max_ms`.
    pub backoff_initial_ms: i64,
    pub backoff_max_ms: i64,
    /// Lapsed leases (dispatchers that died or hung while running the event) after which it ends `FAILED`.
    pub max_lapses: i64,
    /// How long an ended event is kept (SCF: 3 days).
    pub retention_ms: i64,
    /// TerminateAsyncEvent with `GraceShutdown`: how long the function may run on after SIGTERM before its
    /// instance is killed (within its own timeout).
    pub grace_shutdown: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            slots: 16,
            poll: Duration::from_millis(500),
            lease_ms: 10_000,
            retry_num: 2,
            retry_delays_ms: vec![60_000, 120_000],
            msg_ttl_ms: 21_600_000,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 3_600_000,
            max_lapses: 5,
            retention_ms: 3 * 24 * 3600 * 1000,
            grace_shutdown: Duration::from_secs(DEFAULT_GRACE_SHUTDOWN_SECS),
        }
    }
}

/// SCF's status of an event whose function, namespace or qualifier is gone.
const GONE: i64 = 404;
/// SCF's status of an event whose record may not run (e.g. a version being deleted).
const NOT_RUNNABLE: i64 = 400;
/// The status of an event stopped by TerminateAsyncEvent (its instance is killed, as a process that exits: 439).
const ABORTED_CODE: i64 = 439;
/// A platform fault (the engine could not run the event, a store error).
const PLATFORM_FAULT: i64 = 500;

/// Which listing to read (the account is the caller's).
#[derive(Debug, Clone, Default)]
pub struct ListEvents {
    pub namespace: String,
    pub function_name: String,
    pub query: EventQuery,
}

/// Group commit of the event queue's writes: acceptances, claims and ends from every request and dispatcher slot of
/// this node go to one task that takes whatever is waiting (up to [`GROUP_MAX`]) and writes it in one transaction,
/// so a busy node makes many writes durable with one commit (one `fsync` on SQLite). Each caller is answered only
/// after the commit that holds its write, so an acknowledged event is as durable as it was with a commit of its own;
/// an idle node's single write goes at once.
#[derive(Default)]
pub(crate) struct EventWriter {
    tx: std::sync::OnceLock<mpsc::Sender<WriteJob>>,
}

/// Writes one transaction takes at most.
const GROUP_MAX: usize = 256;

struct WriteJob {
    write: EventWrite,
    reply: oneshot::Sender<std::result::Result<EventWritten, StoreError>>,
}

impl EventWriter {
    /// Queues one write and waits for the commit that holds it.
    async fn write(
        &self,
        store: &store::Store,
        write: EventWrite,
    ) -> std::result::Result<EventWritten, StoreError> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * GROUP_MAX);
            tokio::spawn(write_groups(store.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Database(sqlx_gone());
        tx.send(WriteJob { write, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The error of a write when the writer task is gone (the server is stopping).
fn sqlx_gone() -> store::SqlxError {
    store::SqlxError::Protocol("the event queue's writer stopped".into())
}

/// The writer task: until every sender is gone, takes the waiting writes and commits them together.
async fn write_groups(store: store::Store, mut rx: mpsc::Receiver<WriteJob>) {
    let mut jobs = Vec::with_capacity(GROUP_MAX);
    while rx.recv_many(&mut jobs, GROUP_MAX).await > 0 {
        let (writes, replies): (Vec<_>, Vec<_>) =
            jobs.drain(..).map(|j| (j.write, j.reply)).unzip();
        match store.write_events(writes).await {
            Ok(outcomes) => {
                for (reply, o) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(o));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = replies.len(), "a group of event writes failed");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database(store::SqlxError::Protocol(
                        message.clone(),
                    ))));
                }
            }
        }
    }
}

/// How TerminateAsyncEvent stops an event this node runs: `kill` drops the attempt (and with it the instance);
/// `grace` holds the grace period once a graceful stop was asked for, which the engine watches (SIGTERM, then the
/// kill), while the attempt runs on to its end.
pub(crate) struct Stopper {
    kill: Notify,
    grace: watch::Sender<Option<Duration>>,
    grace_period: Duration,
}

impl Stopper {
    fn new(grace_period: Duration) -> Stopper {
        Stopper {
            kill: Notify::new(),
            grace: watch::channel(None).0,
            grace_period,
        }
    }

    /// Asks for the stop: at once, or gracefully (once; a kill still follows a graceful stop).
    fn stop(&self, graceful: bool) {
        if graceful {
            let grace = self.grace_period;
            self.grace.send_if_modified(|g| {
                let first = g.is_none();
                if first {
                    *g = Some(grace);
                }
                first
            });
        } else {
            self.kill.notify_one();
        }
    }

    fn graceful(&self) -> bool {
        self.grace.borrow().is_some()
    }
}

/// Keeps `ev` leased while it runs, renewing every third of the lease; a failed renewal is retried sooner. Ends
/// (telling the dispatcher through `lost`) only when another dispatcher holds the event.
async fn keep_leased(
    store: store::Store,
    ev: ClaimedEvent,
    lease_ms: i64,
    lost: oneshot::Sender<()>,
    stop: Arc<Stopper>,
) {
    let period = Duration::from_millis((lease_ms / 3).max(1) as u64);
    let retry = Duration::from_millis((lease_ms / 20).clamp(1, 500) as u64);
    let mut wait = period;
    loop {
        tokio::time::sleep(wait).await;
        wait = match store.renew_event(&ev, lease_ms).await {
            Ok(abort) => {
                // TerminateAsyncEvent on another node.
                match abort {
                    store::events::ABORT_KILL => stop.stop(false),
                    store::events::ABORT_GRACE => stop.stop(true),
                    _ => {}
                }
                period
            }
            Err(StoreError::StaleOperation(_)) => {
                tracing::warn!(event = %ev.row.id, attempt = ev.attempt, "event lease lost: another dispatcher took it over");
                let _ = lost.send(());
                return;
            }
            Err(e) => {
                tracing::warn!(event = %ev.row.id, error = %e, "event lease renewal failed; retrying");
                retry
            }
        };
    }
}

/// The delay before retry `retry_num` + 1 of a function error: the configured delays in turn, the last repeating.
fn retry_delay(delays: &[i64], retry_num: i64) -> i64 {
    let i = usize::try_from(retry_num).unwrap_or(0);
    delays.get(i).or(delays.last()).copied().unwrap_or(0)
}

/// The back-off after the `throttles`-th throttle or fault (0 for the first): doubling from `initial`, capped.
fn backoff(initial: i64, max: i64, throttles: i64) -> i64 {
    let exp = u32::try_from(throttles.clamp(0, 40)).unwrap_or(40);
    initial.saturating_mul(1i64 << exp).min(max)
}

/// How an error that kept an attempt from running ends it.
enum Class {
    /// The request cannot succeed (not retried).
    Request(i64),
    /// Throttled or a platform fault (retried with back-off until `MsgTTL`).
    Transient(i64),
}

fn classify(e: &ControlError) -> Class {
    match e {
        ControlError::FunctionNotFound { .. }
        | ControlError::NamespaceNotFound(_)
        | ControlError::QualifierNotFound { .. }
        | ControlError::VersionNotFound { .. }
        | ControlError::LayerVersionNotFound { .. } => Class::Request(GONE),
        ControlError::Rejected(_) => Class::Request(NOT_RUNNABLE),
        ControlError::Throttled { .. } => Class::Transient(i64::from(engine::status::THROTTLED)),
        _ => Class::Transient(PLATFORM_FAULT),
    }
}

impl Control {
    /// Accepts an asynchronous invocation: the qualifier is resolved and checked as for a synchronous call, the
    /// event is stored in one commit, and the local dispatcher is woken. Returns the request id (the event's
    /// `InvokeRequestId`); the function runs later, on whichever node claims it.
    pub async fn invoke_async(&self, caller: &Caller, inv: Invocation) -> Result<String> {
        self.engine()?;
        if inv.event.len() > MAX_EVENT_BYTES {
            return Err(ControlError::EventTooLarge(inv.event.len()));
        }
        let t = self.resolve(caller, &inv).await?;
        if t.snap.config.function_type == "HTTP" {
            return Err(crate::web::not_invocable(&t.key.name));
        }
        let event = String::from_utf8(inv.event).map_err(|_| {
            model::InvalidValue::new("ClientContext", "the event must be UTF-8 JSON.")
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        self.write_event(EventWrite::Accept(NewEvent {
            id: id.clone(),
            app_id: caller.app_id,
            uin: caller.uin.clone(),
            region: inv.region.clone(),
            namespace: t.key.namespace.clone(),
            function_name: t.key.name.clone(),
            qualifier: t.qualifier.clone(),
            version: t.version.clone(),
            invoke_type: "Event".into(),
            event,
            start_ms: self.cfg.clock.now_ms(),
        }))
        .await?;
        self.events.notify_one();
        Ok(id)
    }

    /// One write of the event queue, committed with whatever other writes wait with it (see `EventWriter`).
    async fn write_event(&self, w: EventWrite) -> std::result::Result<EventWritten, StoreError> {
        self.event_writer.write(&self.store, w).await
    }

    /// `GetAsyncEventStatus`: one event of the caller's account.
    pub async fn async_event(&self, caller: &Caller, id: &str) -> Result<EventRow> {
        self.store
            .async_event(caller.app_id, id)
            .await?
            .ok_or_else(|| ControlError::AsyncEventNotFound(id.to_string()))
    }

    /// `ListAsyncEvents`: the events of one of the caller's functions.
    pub async fn async_events(
        &self,
        caller: &Caller,
        l: ListEvents,
    ) -> Result<(Vec<EventRow>, i64)> {
        let key = self.key(caller, &l.namespace, &l.function_name);
        self.latest(&key).await?;
        let q = EventQuery {
            app_id: caller.app_id,
            namespace: key.namespace,
            function_name: key.name,
            ..l.query
        };
        Ok(self.store.async_events(&q).await?)
    }

    /// Forgets events that ended longer ago than the retention.
    pub async fn prune_events(&self) -> Result<u64> {
        Ok(self
            .store
            .prune_events(self.cfg.events.retention_ms)
            .await?)
    }

    /// `GetFunctionEventInvokeConfig`: a function's `(RetryNum, MsgTTL)`, the server's defaults until it sets its
    /// own. A `qualifier` other than `$LATEST` must exist (the settings are the function's, whatever the qualifier).
    pub async fn event_invoke_config(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(i64, i64)> {
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        if let Some(q) = qualifier.filter(|q| *q != model::Qualifier::LATEST) {
            let exists = match model::Qualifier::parse(q) {
                Some(_) => self.store.function(&key, q).await?.is_some(),
                None => self.store.alias(&key, q).await?.is_some(),
            };
            if !exists {
                return Err(ControlError::QualifierNotFound {
                    name: key.name.clone(),
                    qualifier: q.to_string(),
                });
            }
        }
        self.retry_settings(&key).await
    }

    /// The retry settings in force for a function.
    async fn retry_settings(&self, key: &FunctionKey) -> Result<(i64, i64)> {
        let cfg = &self.cfg.events;
        Ok(self
            .store
            .event_config(key.app_id, &key.namespace, &key.name)
            .await?
            .unwrap_or((cfg.retry_num, cfg.msg_ttl_ms / 1000)))
    }

    /// `UpdateFunctionEventInvokeConfig`: `RetryNum` 0–2 (`LimitExceeded.RetryNum`), `MsgTTL` 60–21600 s
    /// (`LimitExceeded.MsgTTL`), the limits GetAccount shows.
    pub async fn update_event_invoke_config(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        retry_num: i64,
        msg_ttl_secs: i64,
    ) -> Result<()> {
        if !(0..=MAX_RETRY_NUM).contains(&retry_num) {
            return Err(ControlError::LimitExceeded {
                what: "RetryNum",
                message: format!(
                    "RetryNum must be between 0 and {MAX_RETRY_NUM}, not {retry_num}."
                ),
            });
        }
        if !(MIN_MSG_TTL_SECS..=MAX_MSG_TTL_SECS).contains(&msg_ttl_secs) {
            return Err(ControlError::LimitExceeded {
                what: "MsgTTL",
                message: format!(
                    "MsgTTL must be between {MIN_MSG_TTL_SECS} and {MAX_MSG_TTL_SECS} seconds, not {msg_ttl_secs}."
                ),
            });
        }
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        match self
            .store
            .put_event_config(
                key.app_id,
                &key.namespace,
                &key.name,
                retry_num,
                msg_ttl_secs,
                self.cfg.clock.now_ms(),
            )
            .await
        {
            Ok(()) => Ok(()),
            // Deleted meanwhile.
            Err(StoreError::Conflict) => Err(ControlError::FunctionNotFound {
                namespace: key.namespace,
                name: key.name,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the dispatcher's slots until `shutdown` turns true; each slot finishes the event it runs first.
    /// `node` names this process in leases.
    pub async fn run_dispatcher(&self, node: &str, shutdown: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        {
            let me = self.clone();
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(
                async move { me.listen_for_events(shutdown).await },
            ));
        }
        for i in 0..self.cfg.events.slots.max(1) {
            let me = self.clone();
            let owner = format!("{node}/event/{i}");
            let mut shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if *shutdown.borrow() {
                        break;
                    }
                    match me.dispatch_one(&owner).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "dispatcher could not claim an event"),
                    }
                    tokio::select! {
                        _ = me.events.notified() => {}
                        _ = tokio::time::sleep(me.cfg.events.poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// On PostgreSQL, wakes a slot whenever any node accepts an event (LISTEN/NOTIFY), so that a node's idle
    /// dispatchers start another node's events without waiting for their poll. Nothing to do on SQLite.
    async fn listen_for_events(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let listener = tokio::select! {
                l = self.store.event_listener() => l,
                _ = shutdown.changed() => return,
            };
            match listener {
                Ok(None) => return,
                Ok(Some(mut l)) => loop {
                    tokio::select! {
                        r = l.recv() => match r {
                            Ok(()) => self.events.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "event notifications lost; polling meanwhile");
                                break;
                            }
                        },
                        _ = shutdown.changed() => return,
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for events; polling meanwhile"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.events.poll.max(Duration::from_secs(1))) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Claims and runs one attempt of a due event. `Ok(false)` when none was due.
    pub async fn dispatch_one(&self, owner: &str) -> Result<bool> {
        let lease = self.cfg.events.lease_ms;
        let claimed = self
            .write_event(EventWrite::Claim {
                owner: owner.to_string(),
                lease_ms: lease,
            })
            .await?;
        let Some(ev) = (match claimed {
            EventWritten::Claimed(ev) => ev,
            EventWritten::Done(_) => None,
        }) else {
            return Ok(false);
        };
        // A backlog fans out: the next idle slot looks too.
        self.events.notify_one();
        if ev.failures > 0 {
            tracing::info!(event = %ev.row.id, attempt = ev.attempt, failures = ev.failures, "running an event again: its dispatcher stopped while it ran");
        }
        let (lost_tx, lost) = oneshot::channel();
        // TerminateAsyncEvent: told directly on this node, or through the heartbeat from another one.
        let stop = Arc::new(Stopper::new(self.cfg.events.grace_shutdown));
        let terminate = stop.grace.subscribe();
        self.running_events()
            .insert(ev.row.id.clone(), stop.clone());
        let heartbeat = tokio::spawn(keep_leased(
            self.store.clone(),
            ev.clone(),
            lease,
            lost_tx,
            stop.clone(),
        ));
        // Stopping at once drops the attempt, and with it the instance running the event (the engine kills an
        // instance whose invocation is dropped). A graceful stop lets the attempt run on while the engine signals
        // the instance, and the event ends ABORTED whatever the function did meanwhile.
        let end = tokio::select! {
            end = self.attempt(&ev, terminate) => Some(if stop.graceful() { self.aborted() } else { end }),
            _ = stop.kill.notified() => Some(self.aborted()),
            _ = lost => None,
        };
        heartbeat.abort();
        self.running_events().remove(&ev.row.id);
        let Some(end) = end else {
            return Ok(true);
        };
        let (end, letter) = self.dead_letter(&ev, end).await;
        let ended = self
            .write_event(EventWrite::End {
                event: ev.clone(),
                end,
                next: letter.clone(),
            })
            .await
            .and_then(|w| match w {
                EventWritten::Done(r) => r,
                EventWritten::Claimed(_) => Ok(()),
            });
        match ended {
            Ok(()) => {
                if let Some(l) = &letter {
                    tracing::info!(event = %ev.row.id, dead_letter = %l.id, function = %l.function_name, "failed event handed to its dead-letter function");
                    self.events.notify_one();
                }
            }
            Err(StoreError::StaleOperation(_)) => {
                tracing::warn!(event = %ev.row.id, "event was taken over; this attempt's end dropped");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(true)
    }

    /// The events this node runs, each with what stops it.
    fn running_events(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Stopper>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The dead letter of an event that ends `FAILED`, when the function's `DeadLetterConfig` names a function
    /// (`Type` `function`) of the same namespace: a new event for it, accepted in the transaction that ends this
    /// one. A dead letter is not dead-lettered again. A dead-letter function that does not exist is noted in the
    /// event's last error (and the log) instead; CMQ types are not delivered.
    async fn dead_letter(&self, ev: &ClaimedEvent, end: EventEnd) -> (EventEnd, Option<NewEvent>) {
        let EventEnd::Done {
            status: FAILED,
            status_code,
            error,
            end_ms,
        } = end
        else {
            return (end, None);
        };
        let r = &ev.row;
        let failed = |error: String| EventEnd::Done {
            status: FAILED,
            status_code,
            error,
            end_ms,
        };
        if r.invoke_type == DEAD_LETTER {
            return (failed(error), None);
        }
        let key = FunctionKey {
            app_id: r.app_id,
            namespace: r.namespace.clone(),
            name: r.function_name.clone(),
        };
        let target = match self.dead_letter_function(&key, &r.version).await {
            Ok(Some(t)) => t,
            Ok(None) => return (failed(error), None),
            Err(e) => {
                tracing::warn!(event = %r.id, error = %e, "cannot read the function's dead-letter setting");
                return (failed(format!("{error}; dead letter not sent: {e}")), None);
            }
        };
        let target_key = FunctionKey {
            name: target.clone(),
            ..key
        };
        match self
            .store
            .function(&target_key, model::Qualifier::LATEST)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(event = %r.id, dead_letter_function = %target, namespace = %r.namespace, "the dead-letter function does not exist; the failed event is not handed on");
                return (
                    failed(format!(
                        "{error}; dead letter not sent: the dead-letter function `{target}` does not exist in namespace `{}`",
                        r.namespace
                    )),
                    None,
                );
            }
            Err(e) => {
                tracing::warn!(event = %r.id, error = %e, "cannot look up the dead-letter function");
                return (failed(format!("{error}; dead letter not sent: {e}")), None);
            }
        }
        let letter = NewEvent {
            id: uuid::Uuid::new_v4().to_string(),
            app_id: r.app_id,
            uin: r.uin.clone(),
            region: r.region.clone(),
            namespace: r.namespace.clone(),
            function_name: target,
            qualifier: model::Qualifier::LATEST.into(),
            version: model::Qualifier::LATEST.into(),
            invoke_type: DEAD_LETTER.into(),
            event: dead_letter_payload(ev, status_code, &error),
            start_ms: self.cfg.clock.now_ms(),
        };
        (failed(error), Some(letter))
    }

    /// The function named by the `DeadLetterConfig` of the record the event ran (its version, else `$LATEST`),
    /// when its `Type` is `function`.
    async fn dead_letter_function(
        &self,
        key: &FunctionKey,
        version: &str,
    ) -> std::result::Result<Option<String>, StoreError> {
        let row = match self.store.function(key, version).await? {
            Some(row) => Some(row),
            None => self.store.function(key, model::Qualifier::LATEST).await?,
        };
        Ok(row.as_ref().and_then(|row| {
            let cfg = row.shown()?.config.stored.get("DeadLetterConfig")?;
            let text = |k: &str| cfg.get(k).and_then(|v| v.as_str()).unwrap_or("");
            (text("Type") == model::validate::DEAD_LETTER_FUNCTION && !text("Name").is_empty())
                .then(|| text("Name").to_string())
        }))
    }

    fn aborted(&self) -> EventEnd {
        EventEnd::Done {
            status: ABORTED,
            status_code: ABORTED_CODE,
            error: "terminated by TerminateAsyncEvent".into(),
            end_ms: self.cfg.clock.now_ms(),
        }
    }

    /// `TerminateAsyncEvent`: an event waiting for an attempt ends `ABORTED` at once; a running one is stopped
    /// by the dispatcher that runs it, at once on this node and at its next lease renewal (a third of the lease)
    /// on another: its instance is killed, or with `grace` (`GraceShutdown=true`) sent SIGTERM and killed if it
    /// still runs `grace_shutdown` later. Either way the event ends `ABORTED`.
    pub async fn terminate_async_event(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        id: &str,
        grace: bool,
    ) -> Result<()> {
        let key = self.key(caller, namespace, name);
        self.latest(&key).await?;
        match self
            .store
            .abort_event(
                key.app_id,
                &key.namespace,
                &key.name,
                id,
                ABORTED_CODE,
                self.cfg.clock.now_ms(),
                grace,
            )
            .await?
        {
            None => Err(ControlError::AsyncEventNotFound(id.to_string())),
            Some(Err(status)) => Err(ControlError::AsyncEventEnded {
                id: id.to_string(),
                status,
            }),
            Some(Ok(Abort::Ended)) => Ok(()),
            Some(Ok(Abort::Requested)) => {
                if let Some(stop) = self.running_events().get(id) {
                    stop.stop(grace);
                }
                Ok(())
            }
        }
    }

    /// Runs one attempt and decides how it ends; `terminate` may stop it gracefully (see `Stopper`).
    async fn attempt(
        &self,
        ev: &ClaimedEvent,
        terminate: watch::Receiver<Option<Duration>>,
    ) -> EventEnd {
        if ev.abort_requested {
            // Terminated while an earlier attempt ran, whose dispatcher then died.
            return self.aborted();
        }
        let cfg = &self.cfg.events;
        let r = &ev.row;
        let done = |status, status_code, error: String| EventEnd::Done {
            status,
            status_code,
            error,
            end_ms: self.cfg.clock.now_ms(),
        };
        if ev.failures >= cfg.max_lapses {
            return done(
                FAILED,
                PLATFORM_FAULT,
                format!(
                    "gave up after {} attempts whose dispatcher stopped while running it",
                    ev.failures
                ),
            );
        }
        let caller = Caller {
            app_id: r.app_id,
            uin: r.uin.clone(),
        };
        let key = FunctionKey {
            app_id: r.app_id,
            namespace: r.namespace.clone(),
            name: r.function_name.clone(),
        };
        // The function's own settings (UpdateFunctionEventInvokeConfig), else the server's.
        let (retry_num, msg_ttl_ms) = match self.retry_settings(&key).await {
            Ok((n, ttl)) => (n, ttl.saturating_mul(1000)),
            Err(_) => (cfg.retry_num, cfg.msg_ttl_ms),
        };
        let ran = match self
            .runnable(key, None, r.qualifier.clone(), r.version.clone())
            .await
        {
            Ok(t) => {
                self.run(
                    &caller,
                    &t,
                    &r.region,
                    ev.event.clone().into_bytes(),
                    Some(r.id.clone()),
                    r.retry_num,
                    Some(terminate),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match ran {
            Ok(o) if o.result.is_ok() => done(FINISHED, 200, String::new()),
            Ok(o) => {
                let code = i64::from(o.status_code);
                if r.retry_num < retry_num {
                    EventEnd::Retry {
                        delay_ms: retry_delay(&cfg.retry_delays_ms, r.retry_num),
                        function_error: true,
                        status_code: code,
                        error: o.err_msg(),
                    }
                } else {
                    done(FAILED, code, o.err_msg())
                }
            }
            Err(e) => match classify(&e) {
                Class::Request(code) => done(FAILED, code, e.to_string()),
                Class::Transient(code) => {
                    let delay = backoff(cfg.backoff_initial_ms, cfg.backoff_max_ms, r.throttles);
                    if ev.age_ms.saturating_add(delay) >= msg_ttl_ms {
                        done(
                            FAILED,
                            code,
                            format!(
                                "{e}; the event reached its MsgTTL ({} s)",
                                msg_ttl_ms / 1000
                            ),
                        )
                    } else {
                        EventEnd::Retry {
                            delay_ms: delay,
                            function_error: false,
                            status_code: code,
                            error: e.to_string(),
                        }
                    }
                }
            },
        }
    }
}

/// What a dead-letter function receives (JSON text): the failed event (`Event`, as JSON when it is, else as
/// text), its `RequestID`, `ErrorCode` (the last attempt's status) and `ErrorMessage` (the function's error
/// message, or the platform's reason), and where it failed.
fn dead_letter_payload(ev: &ClaimedEvent, status_code: i64, error: &str) -> String {
    let r = &ev.row;
    let event = serde_json::from_str::<serde_json::Value>(&ev.event)
        .unwrap_or_else(|_| serde_json::Value::String(ev.event.clone()));
    let message = serde_json::from_str::<engine::FunctionError>(error)
        .map(|e| e.error_message)
        .unwrap_or_else(|_| error.to_string());
    serde_json::json!({
        "RequestID": r.id,
        "ErrorCode": status_code,
        "ErrorMessage": message,
        "Event": event,
        "FunctionName": r.function_name,
        "Namespace": r.namespace,
        "Qualifier": r.qualifier,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_configured_delays_and_the_last_repeats() {
        let d = [60_000, 120_000];
        assert_eq!(retry_delay(&d, 0), 60_000);
        assert_eq!(retry_delay(&d, 1), 120_000);
        assert_eq!(retry_delay(&d, 5), 120_000);
        assert_eq!(retry_delay(&[], 0), 0);
    }

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let hour = 3_600_000;
        assert_eq!(backoff(1_000, hour, 0), 1_000);
        assert_eq!(backoff(1_000, hour, 1), 2_000);
        assert_eq!(backoff(1_000, hour, 11), 2_048_000);
        assert_eq!(backoff(1_000, hour, 12), hour);
        assert_eq!(backoff(1_000, hour, i64::MAX), hour, "no overflow");
        assert_eq!(backoff(1_000, hour, -3), 1_000);
    }

    fn claimed(event: &str) -> ClaimedEvent {
        ClaimedEvent {
            row: EventRow {
                id: "rid-1".into(),
                app_id: 1,
                uin: "u".into(),
                region: "ap-guangzhou".into(),
                namespace: "default".into(),
                function_name: "f".into(),
                qualifier: "prod".into(),
                version: "2".into(),
                invoke_type: "Event".into(),
                status: "RUNNING".into(),
                status_code: 202,
                last_error: String::new(),
                start_ms: 0,
                end_ms: None,
                retry_num: 2,
                throttles: 0,
            },
            event: event.into(),
            attempt: 3,
            failures: 0,
            abort_requested: false,
            age_ms: 0,
            owner: "n/0".into(),
        }
    }

    #[test]
    fn a_dead_letter_carries_the_event_its_request_id_and_error() {
        let err = engine::FunctionError::new(430, "nope").to_json();
        let v: serde_json::Value =
            serde_json::from_str(&dead_letter_payload(&claimed(r#"{"k":[1,2]}"#), 430, &err))
                .expect("JSON");
        assert_eq!(
            v,
            serde_json::json!({"RequestID": "rid-1", "ErrorCode": 430, "ErrorMessage": "nope",
                               "Event": {"k": [1, 2]}, "FunctionName": "f", "Namespace": "default",
                               "Qualifier": "prod"})
        );
        // A platform reason is kept as it is; an event that is not JSON is passed as text.
        let v: serde_json::Value =
            serde_json::from_str(&dead_letter_payload(&claimed("not json"), 404, "gone"))
                .expect("JSON");
        assert_eq!(
            (v["ErrorMessage"].as_str(), v["Event"].as_str()),
            (Some("gone"), Some("not json"))
        );
    }

    #[test]
    fn errors_are_classified_as_scf_does() {
        let gone = ControlError::FunctionNotFound {
            namespace: "default".into(),
            name: "f".into(),
        };
        assert!(matches!(classify(&gone), Class::Request(GONE)));
        let throttled = ControlError::Throttled {
            scope: "the function",
            limit: 1,
        };
        assert!(matches!(classify(&throttled), Class::Transient(432)));
        let fault = ControlError::Execution("launch failed".into());
        assert!(matches!(classify(&fault), Class::Transient(PLATFORM_FAULT)));
    }
}
