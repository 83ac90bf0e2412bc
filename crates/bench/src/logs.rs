//! The server's own timestamps, read from its log: the lifecycle worker logs `operation finished` (at debug level,
//! target `control::worker`) right after the transaction that sets the terminal status commits, and the API logs
//! `ok` (debug, target `api::server`) with the handling time when it answers a call. Both lines start with the
//! wall-clock time in microseconds, the same clock the bench client reads, so "client sent → server committed"
//! can be measured without changing the server.

/// One line of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lifecycle operation committed its outcome.
    OpFinished { kind: String },
    /// The API answered a call successfully after `us` microseconds of handling.
    ApiOk { action: String, us: u64 },
    /// A code package was unpacked (debug, target `store::unzip`).
    Unpacked,
}

/// A timestamped event (microseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub at_us: i64,
    pub event: Event,
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 UTC time such as `2024-05-01T12:00:00.123456Z` into microseconds since the epoch.
pub fn parse_rfc3339_us(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':');
    let (h, mi, se): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Keep microseconds: pad or cut the fraction to six digits.
    let mut micros = 0i64;
    for i in 0..6 {
        micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se;
    Some(secs * 1_000_000 + micros)
}

/// Removes ANSI colour sequences (`ESC [ … letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field<'a>(rest: &'a str, name: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// Parses one log line of the default `tracing` format: `TIME LEVEL target: message field=value …`.
pub fn parse_line(line: &str) -> Option<Stamped> {
    let line = strip_ansi(line);
    let mut parts = line.split_whitespace();
    let at_us = parse_rfc3339_us(parts.next()?)?;
    let _level = parts.next()?;
    let target = parts.next()?;
    let rest = line.split_once(target)?.1;
    let event = match target {
        "control::worker:" if rest.trim_start().starts_with("operation finished") => {
            Event::OpFinished {
                kind: field(rest, "kind")?.to_string(),
            }
        }
        "api::server:" if rest.trim_start().starts_with("ok ") => Event::ApiOk {
            action: field(rest, "action")?.to_string(),
            us: field(rest, "us")?.parse().ok()?,
        },
        "store::unzip:" if rest.trim_start().starts_with("unpacked archive") => Event::Unpacked,
        _ => return None,
    };
    Some(Stamped { at_us, event })
}

/// Every event of interest in a log, in order.
pub fn parse_log(text: &str) -> Vec<Stamped> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_us("2023-11-14T22:13:20.000001Z"),
            Some(1_700_000_000_000_001)
        );
        assert_eq!(
            parse_rfc3339_us("2000-02-29T00:00:00.5Z"),
            Some(951_782_400_500_000)
        );
        // Nanoseconds are cut to microseconds.
        assert_eq!(
            parse_rfc3339_us("2000-03-01T00:00:00.123456789Z"),
            Some(951_868_800_123_456)
        );
        assert_eq!(parse_rfc3339_us("2000-03-01T00:00:00"), None);
        assert_eq!(parse_rfc3339_us("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_us("2000-03-01T00:00:00.1x3Z"), None);
        assert_eq!(parse_rfc3339_us("garbage"), None);
    }

    #[test]
    fn round_trips_with_the_model_formatter() {
        for ms in [0i64, 951_782_400_000, 1_700_000_000_123, 4_102_444_799_999] {
            let shown = model::time::format_ms(ms).replace(' ', "T");
            let frac = format!("{shown}.{:03}Z", ms % 1000);
            assert_eq!(parse_rfc3339_us(&frac), Some(ms * 1000), "{frac}");
        }
    }

    #[test]
    fn worker_and_api_lines() {
        let w = "2025-01-02T03:04:05.678901Z DEBUG control::worker: operation finished op=0f3a kind=CreateFunction attempt=1 ms=2";
        assert_eq!(
            parse_line(w),
            Some(Stamped {
                at_us: parse_rfc3339_us("2025-01-02T03:04:05.678901Z").expect("time"),
                event: Event::OpFinished {
                    kind: "CreateFunction".into()
                }
            })
        );
        let a = "2025-01-02T03:04:05.000010Z DEBUG api::server: ok action=PublishVersion request_id=5c1e us=812";
        assert_eq!(
            parse_line(a).map(|s| s.event),
            Some(Event::ApiOk {
                action: "PublishVersion".into(),
                us: 812
            })
        );
        let coloured = "\u{1b}[2m2025-01-02T03:04:05.000010Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m \u{1b}[2mapi::server\u{1b}[0m\u{1b}[2m:\u{1b}[0m ok \u{1b}[3maction\u{1b}[0m\u{1b}[2m=\u{1b}[0mGetFunction \u{1b}[3mrequest_id\u{1b}[0m\u{1b}[2m=\u{1b}[0mx \u{1b}[3mus\u{1b}[0m\u{1b}[2m=\u{1b}[0m90";
        assert_eq!(
            parse_line(coloured).map(|s| s.event),
            Some(Event::ApiOk {
                action: "GetFunction".into(),
                us: 90
            })
        );
        assert_eq!(
            parse_line("2025-01-02T03:04:05Z INFO api::server: refused action=X code=Y message=z"),
            None
        );
        assert_eq!(parse_line("stratus listening on http://127.0.0.1:1"), None);
        let u = "2025-01-02T03:04:05.100000Z DEBUG store::unzip: unpacked archive files=1 dirs=0 symlinks=0 bytes=910 dest=/tmp/x";
        assert_eq!(parse_line(u).map(|s| s.event), Some(Event::Unpacked));
        let log = format!("{w}\nnoise\n{a}\n{u}\n");
        assert_eq!(parse_log(&log).len(), 3);
    }
}
