//! Figures, their floors, targets and ratios, printed one per line or as JSON.

use std::io::Write;

use serde_json::{Value as Json, json};

use crate::stats::Summary;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a figure measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Latency samples, in milliseconds.
    Latency(Summary),
    /// `count` things in `secs` seconds.
    Rate {
        count: usize,
        secs: f64,
        unit: &'static str,
    },
    Bytes(u64),
    /// A number of things (open files, threads).
    Count(u64, &'static str),
}

impl Measure {
    pub fn per_sec(&self) -> Option<f64> {
        match self {
            Measure::Rate { count, secs, .. } if *secs > 0.0 => Some(*count as f64 / secs),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Measure::Latency(s) => format!(
                "n={:<5} median {:>8.3} ms  p99 {:>8.3} ms",
                s.n, s.median, s.p99
            ),
            Measure::Rate { count, secs, unit } => format!(
                "{:>9.1} {unit} ({count} in {secs:.3} s)",
                self.per_sec().unwrap_or(0.0)
            ),
            Measure::Bytes(b) => format!("{:>9.1} MiB ({b} B)", mib(*b)),
            Measure::Count(n, unit) => format!("{n:>9} {unit}"),
        }
    }

    /// The value compared by a growth target.
    fn amount(&self) -> Option<f64> {
        match self {
            Measure::Bytes(b) => Some(*b as f64),
            Measure::Count(n, _) => Some(*n as f64),
            _ => None,
        }
    }

    fn json(&self) -> Json {
        match self {
            Measure::Latency(s) => json!({
                "unit": "ms", "n": s.n, "median": round3(s.median), "p99": round3(s.p99),
                "min": round3(s.min), "max": round3(s.max), "mean": round3(s.mean),
            }),
            Measure::Rate { count, secs, unit } => json!({
                "unit": unit, "per_sec": round3(self.per_sec().unwrap_or(0.0)), "count": count, "secs": round3(*secs),
            }),
            Measure::Bytes(b) => json!({ "unit": "bytes", "bytes": b, "mib": round3(mib(*b)) }),
            Measure::Count(n, unit) => json!({ "unit": unit, "count": n }),
        }
    }
}

pub fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The physical limit a figure is compared with, measured in the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    pub name: String,
    pub measure: Measure,
}

/// A number to beat.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Latency {
        median_ms: Option<f64>,
        p99_ms: Option<f64>,
    },
    RateAtLeast(f64),
    BytesAtMost(u64),
    /// At most this many times the floor (a quantity that must stay flat).
    GrowthAtMost(f64),
}

impl Target {
    fn text(&self) -> String {
        match self {
            Target::Latency { median_ms, p99_ms } => {
                let mut parts = Vec::new();
                if let Some(m) = median_ms {
                    parts.push(format!("median ≤ {m} ms"));
                }
                if let Some(p) = p99_ms {
                    parts.push(format!("p99 ≤ {p} ms"));
                }
                parts.join(", ")
            }
            Target::RateAtLeast(r) => format!("≥ {r}/s"),
            Target::BytesAtMost(b) => format!("≤ {} MiB", mib(*b)),
            Target::GrowthAtMost(g) => format!("≤ {g}× the floor"),
        }
    }

    /// Whether `m` meets the target (`None` when they do not compare).
    pub fn met(&self, m: &Measure) -> Option<bool> {
        self.met_beside(m, None)
    }

    /// Whether `m` meets the target, for targets relative to the figure's floor.
    pub fn met_beside(&self, m: &Measure, floor: Option<&Measure>) -> Option<bool> {
        match (self, m) {
            (Target::GrowthAtMost(g), m) => {
                let (a, f) = (m.amount()?, floor?.amount()?);
                Some(a <= f * g)
            }
            (Target::Latency { median_ms, p99_ms }, Measure::Latency(s)) => {
                Some(median_ms.is_none_or(|t| s.median <= t) && p99_ms.is_none_or(|t| s.p99 <= t))
            }
            (Target::RateAtLeast(t), m @ Measure::Rate { .. }) => Some(m.per_sec()? >= *t),
            (Target::BytesAtMost(t), Measure::Bytes(b)) => Some(b <= t),
            _ => None,
        }
    }
}

/// `figure / floor`: for latencies (median, p99), for rates how many times slower than the floor's rate.
pub fn ratio(m: &Measure, floor: &Measure) -> Option<(f64, Option<f64>)> {
    match (m, floor) {
        (Measure::Latency(a), Measure::Latency(f)) if f.median > 0.0 && f.p99 > 0.0 => {
            Some((a.median / f.median, Some(a.p99 / f.p99)))
        }
        (Measure::Rate { .. }, Measure::Rate { .. }) => {
            let (a, f) = (m.per_sec()?, floor.per_sec()?);
            (a > 0.0).then(|| (f / a, None))
        }
        (a, f) => match (a.amount(), f.amount()) {
            (Some(a), Some(f)) if f > 0.0 => Some((a / f, None)),
            _ => None,
        },
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub bench: &'static str,
    pub name: String,
    pub measure: Measure,
    pub floor: Option<Floor>,
    pub target: Option<Target>,
}

impl Figure {
    pub fn new(bench: &'static str, name: impl Into<String>, measure: Measure) -> Figure {
        Figure {
            bench,
            name: name.into(),
            measure,
            floor: None,
            target: None,
        }
    }

    pub fn floor(mut self, name: impl Into<String>, measure: Measure) -> Figure {
        self.floor = Some(Floor {
            name: name.into(),
            measure,
        });
        self
    }

    pub fn target(mut self, t: Target) -> Figure {
        self.target = Some(t);
        self
    }

    pub fn line(&self) -> String {
        let mut s = format!("{} {:<64} {}", self.bench, self.name, self.measure.text());
        if let Some(f) = &self.floor {
            let ft = match &f.measure {
                Measure::Latency(l) => format!("median {:.3} ms p99 {:.3} ms", l.median, l.p99),
                m => m.text().trim().to_string(),
            };
            s.push_str(&format!(" | floor {}: {ft}", f.name));
            match ratio(&self.measure, &f.measure) {
                Some((a, Some(b))) => s.push_str(&format!(" | ratio {a:.1}× / {b:.1}×")),
                Some((a, None)) if self.measure.amount().is_some() => {
                    s.push_str(&format!(" | ratio {a:.3}×"))
                }
                Some((a, None)) => s.push_str(&format!(" | ratio {a:.1}× slower")),
                None => {}
            }
        }
        if let Some(t) = &self.target {
            let verdict = match t.met_beside(&self.measure, self.floor.as_ref().map(|f| &f.measure))
            {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "?",
            };
            s.push_str(&format!(" | target {}: {verdict}", t.text()));
        }
        s
    }

    pub fn json(&self) -> Json {
        let mut v = json!({ "bench": self.bench, "name": self.name, "value": self.measure.json() });
        if let Some(f) = &self.floor {
            v["floor"] = json!({ "name": f.name, "value": f.measure.json() });
            if let Some((a, b)) = ratio(&self.measure, &f.measure) {
                v["ratio"] = match b {
                    Some(b) => json!({ "median": round3(a), "p99": round3(b) }),
                    None if self.measure.amount().is_some() => json!({ "times": round3(a) }),
                    None => json!({ "slower": round3(a) }),
                };
            }
        }
        if let Some(t) = &self.target {
            v["target"] = json!({ "text": t.text(), "met": t.met_beside(&self.measure, self.floor.as_ref().map(|f| &f.measure)) });
        }
        v
    }
}

/// The results of one benchmark run on one server.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub bench: &'static str,
    pub title: String,
    pub server: String,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

impl Section {
    pub fn push(&mut self, f: Figure) {
        self.figures.push(f);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "== {}: {}", self.bench, self.title)?;
        writeln!(out, "   server: {}", self.server)?;
        for f in &self.figures {
            writeln!(out, "{}", f.line())?;
        }
        for n in &self.notes {
            writeln!(out, "   note: {n}")?;
        }
        out.flush()
    }

    pub fn json(&self) -> Json {
        json!({
            "bench": self.bench,
            "title": self.title,
            "server": self.server,
            "figures": self.figures.iter().map(Figure::json).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

/// The machine, in one line.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| crate::server::parse_status_kib(&t, "MemTotal"))
        .map_or_else(
            || "?".into(),
            |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} RAM, Linux {kernel}, load average at start {load}")
}

/// The command line as typed (arguments with spaces or quotes are quoted).
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(median: f64, p99: f64) -> Measure {
        Measure::Latency(Summary {
            n: 10,
            min: median,
            median,
            p99,
            max: p99,
            mean: median,
        })
    }

    #[test]
    fn targets() {
        let t = Target::Latency {
            median_ms: Some(5.0),
            p99_ms: Some(20.0),
        };
        assert_eq!(t.met(&lat(4.0, 19.0)), Some(true));
        assert_eq!(t.met(&lat(4.0, 21.0)), Some(false));
        assert_eq!(t.met(&lat(6.0, 10.0)), Some(false));
        let r = Target::RateAtLeast(500.0);
        let m = Measure::Rate {
            count: 1000,
            secs: 2.5,
            unit: "functions/s",
        };
        assert_eq!(m.per_sec(), Some(400.0));
        assert_eq!(r.met(&m), Some(false));
        assert_eq!(Target::BytesAtMost(10).met(&Measure::Bytes(10)), Some(true));
        assert_eq!(r.met(&Measure::Bytes(1)), None);
    }

    #[test]
    fn ratios() {
        assert_eq!(
            ratio(&lat(4.0, 10.0), &lat(0.5, 2.0)),
            Some((8.0, Some(5.0)))
        );
        let slow = Measure::Rate {
            count: 100,
            secs: 1.0,
            unit: "/s",
        };
        let fast = Measure::Rate {
            count: 1000,
            secs: 1.0,
            unit: "/s",
        };
        assert_eq!(ratio(&slow, &fast), Some((10.0, None)));
        assert_eq!(ratio(&slow, &lat(1.0, 1.0)), None);
    }

    #[test]
    fn line_has_floor_ratio_and_verdict() {
        let f = Figure::new("B1", "CreateFunction → Active", lat(4.0, 30.0))
            .floor("GetAccount", lat(0.5, 1.0))
            .target(Target::Latency {
                median_ms: Some(5.0),
                p99_ms: Some(20.0),
            });
        let l = f.line();
        assert!(l.contains("median    4.000 ms"), "{l}");
        assert!(l.contains("ratio 8.0× / 30.0×"), "{l}");
        assert!(
            l.ends_with("target median ≤ 5 ms, p99 ≤ 20 ms: MISSED"),
            "{l}"
        );
        let j = f.json();
        assert_eq!(j["target"]["met"], json!(false));
        assert_eq!(j["ratio"]["median"], json!(8.0));
    }
}
