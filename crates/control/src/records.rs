//! Invocation records and metrics: every invocation is metered and recorded (written in batches off the request
//! path), and counted for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use store::{InvocationQuery, InvocationRecord};
use tokio::sync::{mpsc, watch};

use crate::{Caller, Control, ControlError, Result};

/// Upper bounds (ms) of the invocation duration histogram.
pub const DURATION_BUCKETS_MS: [f64; 10] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 500.0, 1000.0, 5000.0,
];

/// In-process counters behind `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Invocations by status code (200 for success).
    pub by_status: Mutex<BTreeMap<u16, u64>>,
    pub cold_starts: AtomicU64,
    /// Cumulative counts per bucket of `DURATION_BUCKETS_MS`, then +Inf.
    pub duration_buckets: [AtomicU64; 11],
    /// Sum of durations in microseconds.
    pub duration_sum_us: AtomicU64,
    /// Records dropped because the writer fell behind.
    pub records_dropped: AtomicU64,
}

impl Metrics {
    pub(crate) fn observe(&self, status: u16, duration_ms: f64, cold: bool) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        if cold {
            self.cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        let idx = DURATION_BUCKETS_MS
            .iter()
            .position(|b| duration_ms <= *b)
            .unwrap_or(DURATION_BUCKETS_MS.len());
        for b in &self.duration_buckets[idx..] {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.duration_sum_us
            .fetch_add((duration_ms * 1000.0) as u64, Ordering::Relaxed);
    }
}

/// Where records go before the writer stores them.
pub(crate) struct Recorder {
    pub(crate) tx: mpsc::Sender<InvocationRecord>,
    pub(crate) rx: Mutex<Option<mpsc::Receiver<InvocationRecord>>>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        let (tx, rx) = mpsc::channel(10_000);
        Recorder {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Control {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Instances (busy, idle) of the execution plane, if it runs here.
    pub fn instance_counts(&self) -> Option<(u32, u32)> {
        self.engine.as_ref().map(|e| {
            let s = e.stats();
            (s.busy, s.idle)
        })
    }

    /// Queues a record for the writer; never blocks an invocation (a full queue drops and counts it).
    pub(crate) fn queue_record(&self, r: InvocationRecord) {
        if self.recorder.tx.try_send(r).is_err() {
            self.metrics.records_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes queued records in batches until `shutdown`, then flushes what is left.
    pub async fn run_recorder(&self, mut shutdown: watch::Receiver<bool>) {
        let Some(mut rx) = self.recorder.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut batch = Vec::with_capacity(512);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, 512) => {
                    if n == 0 {
                        break;
                    }
                }
                _ = shutdown.changed() => {
                    while let Ok(r) = rx.try_recv() {
                        batch.push(r);
                    }
                    self.write_batch(&mut batch).await;
                    break;
                }
            }
            self.write_batch(&mut batch).await;
        }
    }

    async fn write_batch(&self, batch: &mut Vec<InvocationRecord>) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.insert_invocations(batch).await {
            tracing::warn!(error = %e, records = batch.len(), "could not store invocation records");
            self.metrics
                .records_dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        batch.clear();
    }

    /// The stored invocations of a function (GetFunctionLogs, GetRequestStatus), always of the caller's account.
    pub async fn invocation_records(
        &self,
        caller: &Caller,
        mut q: InvocationQuery,
    ) -> Result<(Vec<InvocationRecord>, i64)> {
        q.app_id = caller.app_id;
        self.latest(&self.key(caller, &q.namespace, &q.function_name))
            .await?;
        if q.limit < 0 || q.offset < 0 || q.offset + q.limit > 10_000 {
            return Err(model::InvalidValue::new(
                "Limit",
                "Offset and Limit must not be negative and Offset + Limit may be at most 10000.",
            )
            .into());
        }
        self.store.invocations(&q).await.map_err(ControlError::from)
    }

    /// Forgets invocation records older than `retention_ms`.
    pub async fn prune_records(&self, retention_ms: i64) -> Result<u64> {
        Ok(self
            .store
            .prune_invocations(store::now_ms() - retention_ms)
            .await?)
    }
}
