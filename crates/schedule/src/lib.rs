//! SCF's timer schedules.
//!
//! A timer trigger's `TriggerDesc` is a cron expression of seven fields, `sec min hour day month weekday year`:
//! `, - * /` everywhere, `? L W` in the day, `? L #` in the weekday, month and weekday names, `0` (or `7`) for
//! Sunday, years 1970 to 2099. When both the day and the weekday are restricted a time matches either (as Vixie
//! cron, and SCF, combine them); a `?` or `*` in one leaves the other alone. `UpdateTrigger` also takes the legacy
//! five fields `min hour day month weekday` (second 0, any year). Ticks are computed in a fixed UTC offset: SCF
//! evaluates timers in UTC+8, without daylight saving.
//!
//! Matching is croner's (a maintained parser with `L`, `W`, `#` and year support); this crate adds SCF's field
//! layout, its year range, and errors that name the field at fault.

use std::fmt;

use chrono::{DateTime, FixedOffset, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The fields of the seven-field form, in order.
pub const FIELDS: [&str; 7] = [
    "second", "minute", "hour", "day", "month", "weekday", "year",
];

/// SCF's range of years.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=2099;

/// SCF's zone for timers: UTC+8.
pub const SCF_OFFSET_SECS: i32 = 8 * 3600;

/// An expression SCF would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// The field at fault (`second` … `year`), or `expression` for the whole.
    pub field: &'static str,
    pub message: String,
}

impl CronError {
    fn new(field: &'static str, message: impl Into<String>) -> CronError {
        CronError {
            field,
            message: message.into(),
        }
    }
}

/// Which forms an expression may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forms {
    /// Seven fields only (CreateTrigger).
    Seven,
    /// Seven fields, or the legacy five (UpdateTrigger).
    SevenOrLegacyFive,
}

/// A parsed schedule.
#[derive(Clone)]
pub struct Schedule {
    /// The expression as given (trimmed).
    source: String,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("source", &self.source)
            .finish()
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .build()
}

/// A neutral expression with `value` in field `i`: what parses only if that field is valid on its own.
fn probe(i: usize, value: &str) -> String {
    let mut f = ["0", "0", "0", "*", "*", "*", "*"];
    f[i] = value;
    f.join(" ")
}

/// The numbers of a year field (`2026`, `2026-2030`, `2026,2028`, `2026/2`, `*/2`): each must be in SCF's range.
fn check_years(field: &str) -> Result<(), CronError> {
    for part in field.split(',') {
        let base = part.split('/').next().unwrap_or("");
        for n in base.split('-') {
            if n == "*" || n.is_empty() {
                continue;
            }
            let y: i32 = n.parse().map_err(|_| {
                CronError::new(
                    "year",
                    format!("the year field `{field}` has `{n}`, which is not a year"),
                )
            })?;
            if !YEARS.contains(&y) {
                return Err(CronError::new(
                    "year",
                    format!("the year field `{field}` has {y}; years run from 1970 to 2099"),
                ));
            }
        }
    }
    Ok(())
}

impl Schedule {
    /// Parses an expression of SCF's dialect, naming the first field at fault.
    pub fn parse(expr: &str, forms: Forms) -> Result<Schedule, CronError> {
        let source = expr.trim().to_string();
        if source.starts_with('@') {
            return Err(CronError::new(
                "expression",
                format!("`{source}`: nicknames are not part of SCF's cron; write the seven fields"),
            ));
        }
        let fields: Vec<&str> = source.split_whitespace().collect();
        let seven: Vec<String> = match (fields.len(), forms) {
            (7, _) => fields.iter().map(|f| f.to_string()).collect(),
            (5, Forms::SevenOrLegacyFive) => std::iter::once("0")
                .chain(fields.iter().copied())
                .chain(std::iter::once("*"))
                .map(str::to_string)
                .collect(),
            (n, Forms::Seven) => {
                return Err(CronError::new(
                    "expression",
                    format!(
                        "`{source}` has {n} fields; SCF's cron has seven: second minute hour day month weekday year"
                    ),
                ));
            }
            (n, Forms::SevenOrLegacyFive) => {
                return Err(CronError::new(
                    "expression",
                    format!(
                        "`{source}` has {n} fields; write seven (second minute hour day month weekday year) or the \
                         legacy five (minute hour day month weekday)"
                    ),
                ));
            }
        };
        let p = parser();
        for (i, value) in seven.iter().enumerate() {
            if value.contains('+') {
                return Err(CronError::new(
                    FIELDS[i],
                    format!(
                        "the {} field `{value}` has `+`, which SCF's cron does not know",
                        FIELDS[i]
                    ),
                ));
            }
            if let Err(e) = p.parse(&probe(i, value)) {
                return Err(CronError::new(
                    FIELDS[i],
                    format!("the {} field `{value}` is invalid: {e}", FIELDS[i]),
                ));
            }
        }
        check_years(&seven[6])?;
        let cron = p
            .parse(&seven.join(" "))
            .map_err(|e| CronError::new("expression", format!("`{source}` is invalid: {e}")))?;
        Ok(Schedule { source, cron })
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.source
    }

    /// The first tick strictly after `after_ms` (Unix milliseconds), evaluated at UTC offset `offset_secs`, as Unix
    /// milliseconds; `None` when no tick is left (a past year, a date that never exists).
    pub fn next_after(&self, after_ms: i64, offset_secs: i32) -> Option<i64> {
        let zone = FixedOffset::east_opt(offset_secs)?;
        let after = zone.timestamp_millis_opt(after_ms).single()?;
        let next: DateTime<FixedOffset> = self.cron.find_next_occurrence(&after, false).ok()?;
        use chrono::Datelike;
        YEARS
            .contains(&next.year())
            .then(|| next.timestamp_millis())
    }

    /// Every tick in `(after_ms, until_ms]`, at most `max` of them.
    pub fn ticks_between(
        &self,
        after_ms: i64,
        until_ms: i64,
        offset_secs: i32,
        max: usize,
    ) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = after_ms;
        while out.len() < max {
            match self.next_after(t, offset_secs) {
                Some(n) if n <= until_ms => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a wall time in UTC+8.
    fn cst(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        FixedOffset::east_opt(SCF_OFFSET_SECS)
            .and_then(|z| z.with_ymd_and_hms(y, mo, d, h, mi, s).single())
            .map(|t| t.timestamp_millis())
            .expect("a valid time")
    }

    fn next(expr: &str, after: i64) -> Option<i64> {
        Schedule::parse(expr, Forms::Seven)
            .expect("valid")
            .next_after(after, SCF_OFFSET_SECS)
    }

    #[test]
    fn every_second_and_every_minute() {
        let t = cst(2026, 12, 4, 10, 0, 0);
        assert_eq!(next("* * * * * * *", t), Some(t + 1000));
        assert_eq!(next("0 */1 * * * * *", t), Some(t + 60_000));
        assert_eq!(next("*/5 * * * * * *", t + 1), Some(t + 5000));
    }

    #[test]
    fn hours_are_in_utc_plus_eight() {
        // 02:00 in UTC+8 is 18:00 UTC the day before.
        let after = cst(2026, 12, 4, 3, 0, 0);
        let want = cst(2026, 12, 5, 2, 0, 0);
        assert_eq!(next("0 0 2 * * * *", after), Some(want));
        let s = Schedule::parse("0 0 2 * * * *", Forms::Seven).expect("valid");
        // In UTC the same expression fires at 02:00 UTC, i.e. 10:00 in UTC+8 on the 4th.
        assert_eq!(s.next_after(after, 0), Some(cst(2026, 12, 4, 10, 0, 0)));
    }

    #[test]
    fn names_last_day_and_nearest_weekday() {
        // 2026-12: the 1st is a Tuesday, the 31st a Thursday.
        let after = cst(2026, 12, 1, 0, 0, 1);
        assert_eq!(
            next("0 0 0 L * ? *", after),
            Some(cst(2026, 12, 31, 0, 0, 0))
        );
        assert_eq!(
            next("0 0 9 ? * MON *", after),
            Some(cst(2026, 12, 7, 9, 0, 0))
        );
        assert_eq!(
            next("0 0 9 * DEC 1 *", after),
            Some(cst(2026, 12, 7, 9, 0, 0))
        );
        // 2027-05-15 is a Saturday: 15W is Friday the 14th.
        assert_eq!(
            next("0 0 0 15W 5 ? 2027", after),
            Some(cst(2027, 5, 14, 0, 0, 0))
        );
        // The second Friday of December 2026 is the 11th; the last Friday the 25th.
        assert_eq!(
            next("0 0 0 ? * 5#2 *", after),
            Some(cst(2026, 12, 11, 0, 0, 0))
        );
        assert_eq!(
            next("0 0 0 ? * 5#L *", after),
            Some(cst(2026, 12, 25, 0, 0, 0))
        );
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        let after = cst(2026, 12, 1, 0, 0, 0);
        let sunday = Some(cst(2026, 12, 6, 0, 0, 0));
        assert_eq!(next("0 0 0 ? * 0 *", after), sunday);
        assert_eq!(next("0 0 0 ? * 7 *", after), sunday);
        assert_eq!(next("0 0 0 ? * SUN *", after), sunday);
    }

    #[test]
    fn day_and_weekday_are_ored_when_both_are_restricted() {
        // The 10th, or any Monday: after Tue 1 Dec 2026 comes Mon 7 Dec, then Thu 10 Dec.
        let after = cst(2026, 12, 1, 0, 0, 0);
        let s = Schedule::parse("0 0 0 10 * MON *", Forms::Seven).expect("valid");
        let ticks = s.ticks_between(after, cst(2026, 12, 31, 0, 0, 0), SCF_OFFSET_SECS, 10);
        assert_eq!(
            ticks,
            vec![
                cst(2026, 12, 7, 0, 0, 0),
                cst(2026, 12, 10, 0, 0, 0),
                cst(2026, 12, 14, 0, 0, 0),
                cst(2026, 12, 21, 0, 0, 0),
                cst(2026, 12, 28, 0, 0, 0),
            ]
        );
        // A `?` or `*` in one of them leaves only the other.
        assert_eq!(
            next("0 0 0 10 * ? *", after),
            Some(cst(2026, 12, 10, 0, 0, 0))
        );
        assert_eq!(
            next("0 0 0 10 * * *", after),
            Some(cst(2026, 12, 10, 0, 0, 0))
        );
    }

    #[test]
    fn years_bound_the_schedule() {
        let after = cst(2026, 12, 4, 0, 0, 0);
        assert_eq!(
            next("0 0 0 1 1 * 2028", after),
            Some(cst(2028, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            next("0 0 0 1 1 * 2027-2030/2", after),
            Some(cst(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            next("0 0 0 1 1 * 2020", after),
            None,
            "a past year has no tick left"
        );
        assert_eq!(
            next("0 0 0 30 2 * *", after),
            None,
            "30 February never comes"
        );
    }

    #[test]
    fn the_legacy_five_fields_are_taken_by_update_only() {
        let after = cst(2026, 12, 4, 10, 0, 30);
        let s = Schedule::parse("*/15 * * * *", Forms::SevenOrLegacyFive).expect("legacy");
        assert_eq!(
            s.next_after(after, SCF_OFFSET_SECS),
            Some(cst(2026, 12, 4, 10, 15, 0))
        );
        let e = Schedule::parse("*/15 * * * *", Forms::Seven).expect_err("seven only");
        assert_eq!(e.field, "expression");
    }

    #[test]
    fn errors_name_the_field() {
        let field = |expr: &str| {
            Schedule::parse(expr, Forms::Seven)
                .map(|_| ())
                .map_err(|e| e.field)
        };
        assert_eq!(field("60 * * * * * *"), Err("second"));
        assert_eq!(field("0 61 * * * * *"), Err("minute"));
        assert_eq!(field("0 0 24 * * * *"), Err("hour"));
        assert_eq!(field("0 0 0 32 * * *"), Err("day"));
        assert_eq!(field("0 0 0 * 13 * *"), Err("month"));
        assert_eq!(field("0 0 0 * * 8 *"), Err("weekday"));
        assert_eq!(field("0 0 0 * * MON#6 *"), Err("weekday"));
        assert_eq!(field("0 0 0 * * * 1969"), Err("year"));
        assert_eq!(field("0 0 0 * * * 2100"), Err("year"));
        assert_eq!(field("0 0 0 * * * abc"), Err("year"));
        assert_eq!(field("0 0 0 * * +MON *"), Err("weekday"));
        assert_eq!(field("0 0 0 * *"), Err("expression"));
        assert_eq!(field("@daily"), Err("expression"));
        assert_eq!(field(""), Err("expression"));
        assert_eq!(field("0 0 0 * * * *"), Ok(()));
        let e = Schedule::parse("0 0 25 * * * *", Forms::Seven).expect_err("bad hour");
        assert!(e.message.contains("hour field `25`"), "{}", e.message);
    }

    #[test]
    fn ticks_between_is_bounded() {
        let s = Schedule::parse("* * * * * * *", Forms::Seven).expect("valid");
        let t = cst(2026, 12, 4, 0, 0, 0);
        assert_eq!(s.ticks_between(t, t + 10_000, 0, 3).len(), 3);
        assert_eq!(
            s.ticks_between(t, t + 2_000, 0, 100),
            vec![t + 1000, t + 2000]
        );
        assert!(s.ticks_between(t, t, 0, 100).is_empty());
    }
}
