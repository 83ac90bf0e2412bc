//! Timer triggers fire: a scheduler on every node turns each tick of an open timer into one asynchronous event.
//!
//! A pass reads the open timers and their last tick considered (`store::ticks`), and per trigger takes the ticks
//! after its baseline (the last tick considered, or the trigger's last change when that is later: a trigger
//! created, reopened or changed starts from the next tick) up to now:
//!
//! - the latest of them fires when it is at most `late_ms` old, as the event
//!   `{"Type":"Timer","TriggerName":…,"Time":"<tick, UTC, RFC 3339>","Message":<CustomArgument>}` of invoke type
//!   `TRIGGER_TIMER`, bound to the trigger's qualifier (an alias routes at firing time, as an asynchronous Invoke
//!   does);
//! - the ones before it, or all of them when even the latest is older than `late_ms`, are recorded as one run of
//!   skipped ticks, logged and counted (`stratus_timer_ticks_total{outcome="skipped"}`). So a tick missed while no
//!   node ran fires once, late, if it is at most `late_ms` old, and a long outage is never replayed in a burst.
//!
//! The decisions of a pass are recorded in one transaction per batch: the trigger's state advances by
//! compare-and-set, the tick row is unique per (trigger, tick), and the event is inserted only with its tick row,
//! so restarts, clock steps and several nodes never fire a tick twice; a node that lost the race reads again.
//! Ticks come from each node's wall clock (the clock the cron is evaluated against); the shared state decides
//! which node records a tick, so a node whose clock is behind finds it recorded, and one whose clock steps back
//! finds its old ticks already considered. A closed trigger is not read, and a trigger closed, changed or deleted
//! after a node read it records nothing (the write checks its revision).
//!
//! Between passes the scheduler sleeps until the earliest next tick, at most `max_sleep`, so that triggers
//! created or changed meanwhile (on any node) are seen within that time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use model::{FunctionKey, Qualifier};
use schedule::Schedule;
use store::{NewEvent, SkippedTicks, TickPlan, TriggerRow};
use tokio::sync::watch;

use crate::triggers::{TIMER, timer_schedule};
use crate::{Control, Result};

/// SCF's invoke type of a timer's events (ListAsyncEvents' `InvokeType`).
pub const TIMER_INVOKE_TYPE: &str = "TRIGGER_TIMER";

/// Skipped ticks counted in one run at most (a longer outage is recorded with this count).
const COUNT_CAP: usize = 10_000;

/// Plans recorded per transaction.
const BATCH: usize = 1000;

/// Tunables of the timer scheduler.
#[derive(Debug, Clone)]
pub struct TimersConfig {
    /// The UTC offset the cron is evaluated in, in seconds (SCF: UTC+8).
    pub offset_secs: i32,
    /// How old a missed tick may be and still fire (once, late).
    pub late_ms: i64,
    /// The longest sleep between passes: how soon a new or changed trigger is seen.
    pub max_sleep: Duration,
}

impl Default for TimersConfig {
    fn default() -> Self {
        TimersConfig {
            offset_secs: schedule::SCF_OFFSET_SECS,
            late_ms: 60_000,
            max_sleep: Duration::from_secs(1),
        }
    }
}

/// A zone as configured: `UTC` (or `Z`), or a fixed offset `±HH:MM`. Returns the offset in seconds.
pub fn parse_timezone(s: &str) -> std::result::Result<i32, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Ok(0);
    }
    let bad = || format!("timer timezone `{s}` must be `UTC` or a fixed offset such as `+08:00`");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 || (h == 14 && m > 0) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// SCF's timer event for a tick (Unix milliseconds).
pub fn timer_event(trigger_name: &str, tick_ms: i64, message: &str) -> String {
    let time = format!("{}Z", model::time::format_ms(tick_ms).replace(' ', "T"));
    serde_json::json!({
        "Type": "Timer",
        "TriggerName": trigger_name,
        "Time": time,
        "Message": message,
    })
    .to_string()
}

/// What is due for one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The last tick considered afterwards.
    pub last_ms: i64,
    pub skipped: Option<SkippedTicks>,
    /// The tick that fires.
    pub fire: Option<i64>,
}

/// Decides for ticks after `baseline_ms` up to `now_ms` (see the module's documentation); `None` when none is due.
pub(crate) fn decide(
    schedule: &Schedule,
    baseline_ms: i64,
    now_ms: i64,
    late_ms: i64,
    offset_secs: i32,
) -> Option<Decision> {
    let first = schedule.next_after(baseline_ms, offset_secs)?;
    if first > now_ms {
        return None;
    }
    // The latest due tick young enough to fire: the ticks after `lo` are at most `late_ms` old.
    let lo = baseline_ms.max(now_ms.saturating_sub(late_ms).saturating_sub(1));
    let mut latest = None;
    let mut t = lo;
    while let Some(n) = schedule.next_after(t, offset_secs) {
        if n > now_ms {
            break;
        }
        latest = Some(n);
        t = n;
    }
    let count = |until: i64| {
        schedule
            .ticks_between(baseline_ms, until, offset_secs, COUNT_CAP)
            .len() as i64
    };
    Some(match latest {
        Some(m) => Decision {
            last_ms: m,
            skipped: (first < m).then(|| SkippedTicks {
                first_ms: first,
                until_ms: m - 1,
                count: count(m - 1),
            }),
            fire: Some(m),
        },
        None => Decision {
            last_ms: now_ms,
            skipped: Some(SkippedTicks {
                first_ms: first,
                until_ms: now_ms,
                count: count(now_ms),
            }),
            fire: None,
        },
    })
}

/// An open timer as a pass read it.
struct Armed {
    trigger: TriggerRow,
    schedule: Arc<Schedule>,
    /// The last tick considered, as read.
    last: Option<i64>,
}

impl Armed {
    fn baseline(&self) -> i64 {
        self.last.unwrap_or(i64::MIN).max(self.trigger.mod_ms)
    }
}

/// `(region, uin)` from a trigger's `ResourceId` (`qcs::scf:REGION:uin/UIN:namespace/…`).
fn region_and_uin(resource_id: &str) -> Option<(String, String)> {
    let mut parts = resource_id.split(':');
    let (_, _, _) = (parts.next()?, parts.next()?, parts.next()?);
    let region = parts.next()?;
    let uin = parts.next()?.strip_prefix("uin/")?;
    Some((region.to_string(), uin.to_string()))
}

/// A uniform number in [0, 1), for an alias's weighted routing.
fn uniform() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

impl Control {
    /// Runs the timer scheduler until `shutdown` turns true; `node` names this process in the tick rows.
    pub async fn run_timers(
        &self,
        node: &str,
        cfg: TimersConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut schedules: HashMap<(String, i64), Arc<Schedule>> = HashMap::new();
        let mut armed: Vec<Armed> = Vec::new();
        let mut read_at: Option<Instant> = None;
        // Woken for a tick: decide from the snapshot read before the sleep rather than read first (a write that
        // raced it records nothing, and the pass after the firing reads again).
        let mut woke_for_tick = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let stale = read_at.is_none()
                || (!woke_for_tick && read_at.is_some_and(|at| at.elapsed() >= cfg.max_sleep));
            woke_for_tick = false;
            if stale {
                match self.arm_timers(&mut schedules).await {
                    Ok(a) => {
                        armed = a;
                        read_at = Some(Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "timer scheduler could not read the open timers");
                        tokio::select! {
                            _ = tokio::time::sleep(cfg.max_sleep) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            }
            match self.fire_due(node, &cfg, &armed).await {
                Ok(0) => {}
                Ok(_) => {
                    // The states moved on: read them again before deciding anything else.
                    read_at = None;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "timer scheduler could not record due ticks; trying again");
                    read_at = None;
                }
            }
            let now = self.cfg.clock.now_ms();
            let next = armed
                .iter()
                .filter_map(|a| {
                    a.schedule
                        .next_after(a.baseline().max(now), cfg.offset_secs)
                })
                .min();
            let cap = i64::try_from(cfg.max_sleep.as_millis()).unwrap_or(i64::MAX);
            let wait = next.map_or(cap, |n| (n - now).clamp(0, cap));
            if read_at.is_some_and(|at| {
                at.elapsed() + Duration::from_millis(wait as u64) >= cfg.max_sleep * 2
            }) {
                // The snapshot would be too old to fire from: read again before sleeping.
                read_at = None;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)) => {
                    woke_for_tick = next.is_some_and(|n| n - now <= cap);
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The open timers with their schedules (parsed once per revision) and last ticks considered.
    async fn arm_timers(
        &self,
        schedules: &mut HashMap<(String, i64), Arc<Schedule>>,
    ) -> Result<Vec<Armed>> {
        let triggers = self.store.open_triggers(TIMER).await?;
        let states = self.store.timer_states().await?;
        let mut keep = HashMap::with_capacity(triggers.len());
        let mut out = Vec::with_capacity(triggers.len());
        for trigger in triggers {
            let k = (trigger.id.clone(), trigger.rev);
            let schedule = match schedules.remove(&k) {
                Some(s) => s,
                None => match timer_schedule(&trigger.desc) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        tracing::error!(trigger = %trigger.id, error = %e, "open timer left out");
                        continue;
                    }
                },
            };
            keep.insert(k, schedule.clone());
            let last = states.get(&trigger.id).copied();
            out.push(Armed {
                trigger,
                schedule,
                last,
            });
        }
        *schedules = keep;
        Ok(out)
    }

    /// Decides and records the ticks due now; returns how many triggers had one.
    async fn fire_due(&self, node: &str, cfg: &TimersConfig, armed: &[Armed]) -> Result<usize> {
        let now = self.cfg.clock.now_ms();
        let mut plans = Vec::new();
        for a in armed {
            let Some(d) = decide(&a.schedule, a.baseline(), now, cfg.late_ms, cfg.offset_secs)
            else {
                continue;
            };
            let fire = match d.fire {
                Some(tick) => match self.timer_firing(&a.trigger, tick).await {
                    Ok(Some(e)) => Some((tick, e)),
                    // Its alias went away: the trigger goes with it.
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(trigger = %a.trigger.id, error = %e, "timer tick could not be resolved");
                        continue;
                    }
                },
                None => None,
            };
            plans.push(TickPlan {
                trigger_id: a.trigger.id.clone(),
                trigger_rev: a.trigger.rev,
                read_last_ms: a.last,
                last_ms: d.last_ms,
                skipped: d.skipped,
                fire,
            });
        }
        let due = plans.len();
        let names: HashMap<&str, &TriggerRow> = armed
            .iter()
            .map(|a| (a.trigger.id.as_str(), &a.trigger))
            .collect();
        for batch in plans.chunks_mut(BATCH) {
            // An event's StartTime is when its firing is recorded.
            let stamp = self.cfg.clock.now_ms();
            for p in batch.iter_mut() {
                if let Some((_, e)) = &mut p.fire {
                    e.start_ms = stamp;
                }
            }
            let out = self.store.apply_ticks(node, batch).await?;
            if !out.fired.is_empty() {
                self.metrics
                    .timer_ticks_fired
                    .fetch_add(out.fired.len() as u64, Ordering::Relaxed);
                self.events.notify_one();
            }
            for (id, tick, event) in &out.fired {
                let late = now - tick;
                if late > 1000
                    && let Some(t) = names.get(id.as_str())
                {
                    tracing::info!(trigger = %t.name, function = %t.key.name, tick = %model::time::format_ms(*tick), late_ms = late, event = %event, "timer tick fired late");
                }
            }
            for (id, s) in &out.skipped {
                self.metrics
                    .timer_ticks_skipped
                    .fetch_add(s.count.max(0) as u64, Ordering::Relaxed);
                let (name, function) = names
                    .get(id.as_str())
                    .map(|t| (t.name.as_str(), t.key.name.as_str()))
                    .unwrap_or(("", ""));
                tracing::warn!(trigger = %name, function = %function, skipped = s.count, first = %model::time::format_ms(s.first_ms), until = %model::time::format_ms(s.until_ms), late_secs = cfg.late_ms / 1000, "timer ticks skipped: missed for longer than the late window");
            }
        }
        Ok(due)
    }

    /// The event of a trigger's tick, its qualifier resolved now as an asynchronous Invoke resolves it (an
    /// alias routes); `None` when its alias is gone.
    async fn timer_firing(&self, t: &TriggerRow, tick_ms: i64) -> Result<Option<NewEvent>> {
        let version = match Qualifier::parse(&t.qualifier) {
            Some(q) => q.to_string(),
            None => {
                let key: &FunctionKey = &t.key;
                match self.store.alias(key, &t.qualifier).await? {
                    Some(alias) => crate::invoke::route(&alias, &BTreeMap::new(), uniform()),
                    None => return Ok(None),
                }
            }
        };
        let (region, uin) = match region_and_uin(&t.resource_id) {
            Some(r) => r,
            None => {
                let uin = self
                    .store
                    .account(t.key.app_id)
                    .await?
                    .map(|a| a.uin)
                    .unwrap_or_default();
                (String::new(), uin)
            }
        };
        Ok(Some(NewEvent {
            id: uuid::Uuid::new_v4().to_string(),
            app_id: t.key.app_id,
            uin,
            region,
            namespace: t.key.namespace.clone(),
            function_name: t.key.name.clone(),
            qualifier: t.qualifier.clone(),
            version,
            invoke_type: TIMER_INVOKE_TYPE.into(),
            event: timer_event(&t.name, tick_ms, &t.custom_argument),
            start_ms: self.cfg.clock.now_ms(),
        }))
    }

    /// Forgets tick rows older than the event retention, and the state of deleted triggers.
    pub async fn prune_timer_ticks(&self) -> Result<u64> {
        Ok(self.store.prune_ticks(self.cfg.events.retention_ms).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schedule::Forms;

    fn every(expr: &str) -> Schedule {
        Schedule::parse(expr, Forms::Seven).expect("valid")
    }

    const T0: i64 = 1_796_000_000_000; // a whole second

    #[test]
    fn zones() {
        assert_eq!(parse_timezone("+08:00"), Ok(8 * 3600));
        assert_eq!(parse_timezone("-05:30"), Ok(-(5 * 3600 + 1800)));
        assert_eq!(parse_timezone("UTC"), Ok(0));
        assert_eq!(parse_timezone("utc"), Ok(0));
        assert_eq!(parse_timezone("+00:00"), Ok(0));
        for bad in [
            "8",
            "+8:00",
            "+08",
            "08:00",
            "+15:00",
            "+08:60",
            "Asia/Shanghai",
            "",
        ] {
            assert!(parse_timezone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_event_is_scfs() {
        let e: serde_json::Value =
            serde_json::from_str(&timer_event("t1", T0, "hello")).expect("json");
        assert_eq!(
            e,
            serde_json::json!({"Type": "Timer", "TriggerName": "t1", "Time": "2026-11-30T00:53:20Z", "Message": "hello"})
        );
    }

    #[test]
    fn region_and_uin_come_from_the_resource_id() {
        assert_eq!(
            region_and_uin(
                "qcs::scf:ap-guangzhou:uin/100000000001:namespace/default/function/f/trigger/timer/t"
            ),
            Some(("ap-guangzhou".into(), "100000000001".into()))
        );
        assert_eq!(region_and_uin("nonsense"), None);
    }

    #[test]
    fn nothing_is_due_before_the_next_tick() {
        let s = every("*/5 * * * * * *");
        assert_eq!(decide(&s, T0, T0 + 4_999, 60_000, 0), None);
        assert_eq!(
            decide(&s, T0, T0 + 5_000, 60_000, 0),
            Some(Decision {
                last_ms: T0 + 5_000,
                skipped: None,
                fire: Some(T0 + 5_000)
            })
        );
    }

    #[test]
    fn a_missed_tick_fires_once_late_and_older_ones_are_skipped() {
        let s = every("* * * * * * *");
        // Down for 30 s with a 60 s window: the latest tick fires, the 29 before it are one skipped run.
        let d = decide(&s, T0, T0 + 30_400, 60_000, 0).expect("due");
        assert_eq!(d.fire, Some(T0 + 30_000));
        assert_eq!(d.last_ms, T0 + 30_000);
        assert_eq!(
            d.skipped,
            Some(SkippedTicks {
                first_ms: T0 + 1_000,
                until_ms: T0 + 29_999,
                count: 29
            })
        );
        // A minute cron missed by 40 s fires once, late.
        let m = every("0 * * * * * *");
        let tick = m.next_after(T0, 0).expect("tick");
        let d = decide(&m, tick - 1, tick + 40_000, 60_000, 0).expect("due");
        assert_eq!((d.fire, d.skipped), (Some(tick), None));
    }

    #[test]
    fn ticks_older_than_the_window_are_only_skipped() {
        let m = every("0 * * * * * *");
        let tick = m.next_after(T0, 0).expect("tick");
        let d = decide(&m, tick - 1, tick + 60_000, 30_000, 0).expect("due");
        // now = tick + 60 s: the next tick (tick + 60 s) is due and young: it fires; `tick` is skipped.
        assert_eq!(d.fire, Some(tick + 60_000));
        assert_eq!(d.skipped.map(|s| (s.first_ms, s.count)), Some((tick, 1)));
        // now = tick + 45 s with a 30 s window: nothing young enough, so all is skipped up to now.
        let d = decide(&m, tick - 1, tick + 45_000, 30_000, 0).expect("due");
        assert_eq!(d.fire, None);
        assert_eq!(d.last_ms, tick + 45_000);
        assert_eq!(
            d.skipped,
            Some(SkippedTicks {
                first_ms: tick,
                until_ms: tick + 45_000,
                count: 1
            })
        );
        // Considered up to now: the next decision starts after it.
        assert_eq!(decide(&m, d.last_ms, tick + 59_999, 30_000, 0), None);
    }

    #[test]
    fn a_long_outage_is_counted_up_to_the_cap_and_not_replayed() {
        let s = every("* * * * * * *");
        let d = decide(&s, T0, T0 + 86_400_000, 60_000, 0).expect("due");
        assert_eq!(d.fire, Some(T0 + 86_400_000));
        assert_eq!(d.skipped.map(|s| s.count), Some(COUNT_CAP as i64));
    }

    #[test]
    fn the_zone_moves_the_ticks() {
        let daily = every("0 0 2 * * * *");
        // 02:00 in UTC+8 is 18:00 UTC.
        let day = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        let d = decide(&daily, day, day + 86_400_000, 60_000, 8 * 3600).expect("due");
        assert_eq!(d.fire, None, "18:00 UTC was long ago at the next midnight");
        let d = decide(&daily, day, day + 18 * 3_600_000 + 10, 60_000, 8 * 3600).expect("due");
        assert_eq!(d.fire, Some(day + 18 * 3_600_000));
        // In UTC the same expression's tick (02:00 UTC) is 16 h old then: far outside the window.
        let d = decide(&daily, day, day + 18 * 3_600_000 + 10, 60_000, 0).expect("due");
        assert_eq!(d.fire, None);
    }
}
