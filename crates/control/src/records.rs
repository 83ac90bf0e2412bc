//! Invocation records and metrics: every invocation is metered and recorded (written in batches off the request
//! path), and counted for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use store::{InvocationQuery, InvocationRecord, record_weight};
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
    /// Timer ticks this node fired, and ticks it recorded as skipped (missed for longer than the late window).
    pub timer_ticks_fired: AtomicU64,
    pub timer_ticks_skipped: AtomicU64,
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

/// The largest result a stored record keeps (GetFunctionLogs' `RetMsg`); a synchronous caller gets it whole.
pub const RECORD_RESULT_BYTES: usize = 16 * 1024;
/// The largest log a stored record keeps: its head and its tail, with a line saying how much was cut between.
pub const RECORD_LOG_BYTES: usize = 64 * 1024;
/// Records waiting for the writer may weigh this much (`store::record_weight`) before new ones are dropped.
pub const RECORD_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// The results and logs one GetFunctionLogs reply carries at most; a fuller page ends early.
pub const LOGS_REPLY_BYTES: usize = 4 * 1024 * 1024;
/// SCF's ceiling on `Offset + Limit` of GetFunctionLogs.
const MAX_RECORD_WINDOW: i64 = 10_000;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn head(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest suffix of `s` of at most `max` bytes that starts on a character boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A result as a stored record keeps it: whole up to `max` bytes, else its head and a note of the full size.
pub(crate) fn stored_result(ret: &str, max: usize) -> String {
    if ret.len() <= max {
        return ret.to_string();
    }
    format!(
        "{}... [truncated: {} bytes in all]",
        head(ret, max),
        ret.len()
    )
}

/// A log as a stored record keeps it: whole up to `max` bytes, else its first and last halves (the `START` and
/// `Report` lines survive) around a line saying how many bytes were cut.
pub(crate) fn stored_log(log: &str, max: usize) -> String {
    if log.len() <= max {
        return log.to_string();
    }
    let (h, t) = (head(log, max / 2), tail(log, max / 2));
    let cut = log.len() - h.len() - t.len();
    format!("{h}\n[... {cut} bytes of log cut ...]\n{t}")
}

/// Where records go before the writer stores them: a queue bounded in count and in bytes.
pub(crate) struct Recorder {
    pub(crate) tx: mpsc::Sender<InvocationRecord>,
    pub(crate) rx: Mutex<Option<mpsc::Receiver<InvocationRecord>>>,
    /// What the queued (and being written) records weigh.
    pub(crate) queued_bytes: AtomicUsize,
    pub(crate) max_bytes: usize,
}

impl Recorder {
    pub(crate) fn new(max_bytes: usize) -> Recorder {
        let (tx, rx) = mpsc::channel(10_000);
        Recorder {
            tx,
            rx: Mutex::new(Some(rx)),
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
        }
    }

    /// Takes `w` bytes of the budget; false when they do not fit.
    fn reserve(&self, w: usize) -> bool {
        let before = self.queued_bytes.fetch_add(w, Ordering::AcqRel);
        if before.saturating_add(w) > self.max_bytes {
            self.queued_bytes.fetch_sub(w, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn release(&self, w: usize) {
        self.queued_bytes.fetch_sub(w, Ordering::AcqRel);
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

    /// Queues a record for the writer, its result and log cut to what a record keeps; never blocks an invocation
    /// (a queue full in count or in bytes drops the record and counts it).
    pub(crate) fn queue_record(&self, mut r: InvocationRecord) {
        if r.ret_msg.len() > RECORD_RESULT_BYTES {
            r.ret_msg = stored_result(&r.ret_msg, RECORD_RESULT_BYTES);
        }
        if r.log.len() > RECORD_LOG_BYTES {
            r.log = stored_log(&r.log, RECORD_LOG_BYTES);
        }
        let w = record_weight(&r);
        if !self.recorder.reserve(w) {
            self.metrics.records_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.recorder.tx.try_send(r).is_err() {
            self.recorder.release(w);
            self.metrics.records_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What the records waiting for the writer weigh, in bytes.
    pub fn queued_record_bytes(&self) -> usize {
        self.recorder.queued_bytes.load(Ordering::Acquire)
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
        self.recorder
            .release(batch.iter().map(record_weight).sum::<usize>());
        batch.clear();
    }

    /// The stored invocations of a function (GetFunctionLogs, GetRequestStatus), always of the caller's account,
    /// within the reply's byte budget (`LOGS_REPLY_BYTES`: a page may end before `Limit`).
    pub async fn invocation_records(
        &self,
        caller: &Caller,
        mut q: InvocationQuery,
    ) -> Result<(Vec<InvocationRecord>, i64)> {
        q.app_id = caller.app_id;
        q.max_bytes = LOGS_REPLY_BYTES;
        self.latest(&self.key(caller, &q.namespace, &q.function_name))
            .await?;
        let within = q
            .offset
            .checked_add(q.limit)
            .is_some_and(|end| end <= MAX_RECORD_WINDOW);
        if q.limit < 0 || q.offset < 0 || !within {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_kept_whole() {
        assert_eq!(stored_result("ok", 10), "ok");
        assert_eq!(stored_log("START\nEND\n", 64), "START\nEND\n");
    }

    #[test]
    fn a_long_result_keeps_its_head_and_its_size() {
        let r = stored_result(&"x".repeat(100), 10);
        assert_eq!(r, "xxxxxxxxxx... [truncated: 100 bytes in all]");
    }

    #[test]
    fn a_long_log_keeps_its_head_and_tail() {
        let log = format!(
            "START RequestId:1\n{}\nReport RequestId:1",
            "y".repeat(10_000)
        );
        let kept = stored_log(&log, 1000);
        assert!(kept.starts_with("START RequestId:1"), "{kept}");
        assert!(kept.ends_with("Report RequestId:1"), "{kept}");
        assert!(kept.len() < 1100, "{}", kept.len());
        assert!(kept.contains("bytes of log cut"), "{kept}");
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let s = "é".repeat(100); // two bytes each
        for max in 0..20 {
            let r = stored_result(&s, max);
            assert!(r.len() <= max + 40);
            let l = stored_log(&s, max);
            assert!(l.contains("cut"), "{l}");
        }
        assert_eq!(head("aé", 2), "a");
        assert_eq!(tail("éa", 2), "a");
    }

    #[test]
    fn the_queue_budget_refuses_what_does_not_fit() {
        let r = Recorder::new(100);
        assert!(r.reserve(60));
        assert!(!r.reserve(60));
        assert_eq!(r.queued_bytes.load(Ordering::Acquire), 60);
        r.release(60);
        assert!(r.reserve(100));
    }
}
