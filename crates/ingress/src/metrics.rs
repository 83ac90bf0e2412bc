//! The listener's metrics, in Prometheus's text format: requests by function and HTTP status, and a latency
//! histogram of every request (from its head to its reply).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The histogram's upper bounds, in seconds.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters of the function listener.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (`namespace/function`, or `-` for no function, HTTP status) → requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, function: &str, status: u16, latency: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((function.to_string(), status)).or_default() += 1;
        }
        let s = latency.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(LATENCY_BUCKETS_S) {
            if s <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP stratus_http_requests_total Requests to function URLs by function (namespace/name; - when no URL matched) and HTTP status."
        );
        let _ = writeln!(out, "# TYPE stratus_http_requests_total counter");
        let by = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((f, status), n) in &by {
            let f = f.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "stratus_http_requests_total{{function=\"{f}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stratus_http_request_duration_seconds Time from a request's head to its reply."
        );
        let _ = writeln!(
            out,
            "# TYPE stratus_http_request_duration_seconds histogram"
        );
        for (b, le) in self.buckets.iter().zip(LATENCY_BUCKETS_S) {
            let _ = writeln!(
                out,
                "stratus_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "stratus_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "stratus_http_request_duration_seconds_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "stratus_http_request_duration_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let m = Metrics::default();
        m.observe("default/f", 200, Duration::from_micros(800));
        m.observe("default/f", 200, Duration::from_millis(30));
        m.observe("-", 404, Duration::from_micros(100));
        let t = m.render();
        assert!(
            t.contains("stratus_http_requests_total{function=\"default/f\",status=\"200\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("stratus_http_requests_total{function=\"-\",status=\"404\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("stratus_http_request_duration_seconds_bucket{le=\"0.0005\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("stratus_http_request_duration_seconds_bucket{le=\"0.001\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("stratus_http_request_duration_seconds_bucket{le=\"0.05\"} 3"),
            "{t}"
        );
        assert!(
            t.contains("stratus_http_request_duration_seconds_count 3"),
            "{t}"
        );
    }
}
