//! Timer ticks, each decided once. A scheduler (on every node) reads the open timers and, per trigger, the last
//! tick considered (`timer_states`), decides what is due, and records its decision with [`Store::apply_ticks`]:
//! in one transaction it advances each trigger's state by compare-and-set from the value it read (and only while
//! the trigger is still open at the revision it decided from), records the ticks under the unique key
//! `(trigger, tick)` with `ON CONFLICT DO NOTHING`, and accepts the event of each fired tick that was recorded.
//! A tick therefore fires at most once however many nodes see it, whatever their clocks say, and across restarts;
//! a node whose view was stale records nothing and decides again from a fresh read.
//!
//! On PostgreSQL the batches of all nodes are serialised by an advisory lock (7403; 7402 is the status change log's), so two nodes never wait on
//! each other's rows in different orders; on SQLite the write lock does the same.

use std::collections::HashMap;

use sqlx::Row;

use crate::Store;
use crate::db::Dialect;
use crate::error::Result;
use crate::events::{NewEvent, insert_events_in};

/// A tick that fired: its event was accepted with it.
pub const FIRED: &str = "FIRED";
/// A run of ticks recorded as skipped (missed for longer than the late window, or older than the one late tick
/// that fired).
pub const SKIPPED: &str = "SKIPPED";

/// Plans per statement (each binds a handful of values).
const PER_STATEMENT: usize = 200;

/// A run of skipped ticks: the first, the time up to which the run counts, and how many ticks it held (counted
/// up to the scheduler's cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTicks {
    pub first_ms: i64,
    pub until_ms: i64,
    pub count: i64,
}

/// What a scheduler decided for one trigger from the state it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickPlan {
    pub trigger_id: String,
    /// The revision of the trigger the decision was made from: nothing is recorded once it changed, closed or went
    /// away.
    pub trigger_rev: i64,
    /// The last tick considered, as read (`None`: the trigger never had one).
    pub read_last_ms: Option<i64>,
    /// The last tick considered after this decision.
    pub last_ms: i64,
    pub skipped: Option<SkippedTicks>,
    /// The tick that fires, with its event.
    pub fire: Option<(i64, NewEvent)>,
}

/// What [`Store::apply_ticks`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Triggers whose state advanced as planned.
    pub applied: Vec<String>,
    /// Ticks fired: trigger, tick, event id.
    pub fired: Vec<(String, i64, String)>,
    /// Runs of skipped ticks recorded, by trigger.
    pub skipped: Vec<(String, SkippedTicks)>,
}

/// A recorded tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRow {
    pub trigger_id: String,
    /// The tick (for a run of skipped ticks, its first).
    pub tick_ms: i64,
    /// [`FIRED`] or [`SKIPPED`].
    pub status: String,
    /// The event of a fired tick.
    pub event_id: Option<String>,
    /// A fired tick: the tick itself; a skipped run: the time up to which it counts.
    pub until_ms: i64,
    /// Ticks the row stands for (1 for a fired tick).
    pub ticks: i64,
    /// The node that recorded it.
    pub node: String,
    /// When it was recorded, by the database's clock.
    pub recorded_ms: i64,
}

fn placeholders(rows: usize, per_row: usize, tail: &str) -> String {
    (0..rows)
        .map(|i| {
            let p: Vec<String> = (1..=per_row)
                .map(|n| format!("${}", i * per_row + n))
                .collect();
            if tail.is_empty() {
                format!("({})", p.join(", "))
            } else {
                format!("({}, {tail})", p.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// The last tick considered of every open timer that has one.
    pub async fn timer_states(&self) -> Result<HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT s.trigger_id, s.last_tick_ms FROM timer_states s JOIN triggers t ON t.id = s.trigger_id \
             WHERE t.trigger_type = 'timer' AND t.enabled = 1",
        )
        .fetch_all(&self.db.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("trigger_id")?, r.try_get("last_tick_ms")?)))
            .collect()
    }

    /// Records a batch of decisions in one transaction (see the module's documentation); `node` names the
    /// recording node in the tick rows. A plan whose trigger moved on (its state is no longer what was read, or
    /// the trigger changed, closed or went away) records nothing.
    pub async fn apply_ticks(&self, node: &str, plans: &[TickPlan]) -> Result<TickOutcome> {
        let mut out = TickOutcome::default();
        if plans.is_empty() {
            return Ok(out);
        }
        let mut plans: Vec<&TickPlan> = plans.iter().collect();
        plans.sort_by(|a, b| a.trigger_id.cmp(&b.trigger_id));
        let now = self.db.dialect.now_ms_sql();
        let mut tx = self.db.begin_checked().await?;
        if self.db.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7403)")
                .execute(&mut *tx)
                .await?;
        }
        let mut applied: std::collections::HashSet<String> = std::collections::HashSet::new();
        let (new, known): (Vec<&TickPlan>, Vec<&TickPlan>) =
            plans.iter().partition(|p| p.read_last_ms.is_none());
        for chunk in new.chunks(PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO timer_states (trigger_id, last_tick_ms, updated_ms) \
                 SELECT v.column1, v.column2, {now} FROM (VALUES {}) AS v \
                 JOIN triggers t ON t.id = v.column1 AND t.rev = v.column3 AND t.enabled = 1 \
                 WHERE 1 = 1 ON CONFLICT (trigger_id) DO NOTHING RETURNING trigger_id",
                placeholders(chunk.len(), 3, "")
            );
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q.bind(&p.trigger_id).bind(p.last_ms).bind(p.trigger_rev);
            }
            for r in q.fetch_all(&mut *tx).await? {
                applied.insert(r.try_get("trigger_id")?);
            }
        }
        for chunk in known.chunks(PER_STATEMENT) {
            let sql = format!(
                "UPDATE timer_states SET last_tick_ms = v.column3, updated_ms = {now} \
                 FROM (VALUES {}) AS v, triggers AS t \
                 WHERE timer_states.trigger_id = v.column1 AND timer_states.last_tick_ms = v.column2 \
                 AND t.id = v.column1 AND t.rev = v.column4 AND t.enabled = 1 \
                 RETURNING trigger_id",
                placeholders(chunk.len(), 4, "")
            );
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q
                    .bind(&p.trigger_id)
                    .bind(p.read_last_ms.unwrap_or(i64::MIN))
                    .bind(p.last_ms)
                    .bind(p.trigger_rev);
            }
            for r in q.fetch_all(&mut *tx).await? {
                applied.insert(r.try_get("trigger_id")?);
            }
        }
        // The tick rows of the plans that won, then the events of the fired ticks that were recorded.
        struct Tick<'a> {
            plan: &'a TickPlan,
            tick_ms: i64,
            status: &'static str,
            event_id: Option<&'a str>,
            until_ms: i64,
            ticks: i64,
        }
        let mut ticks: Vec<Tick<'_>> = Vec::new();
        for p in plans.iter().filter(|p| applied.contains(&p.trigger_id)) {
            out.applied.push(p.trigger_id.clone());
            if let Some(s) = &p.skipped {
                ticks.push(Tick {
                    plan: p,
                    tick_ms: s.first_ms,
                    status: SKIPPED,
                    event_id: None,
                    until_ms: s.until_ms,
                    ticks: s.count,
                });
            }
            if let Some((t, e)) = &p.fire {
                ticks.push(Tick {
                    plan: p,
                    tick_ms: *t,
                    status: FIRED,
                    event_id: Some(&e.id),
                    until_ms: *t,
                    ticks: 1,
                });
            }
        }
        let mut recorded: std::collections::HashSet<(String, i64)> =
            std::collections::HashSet::new();
        for chunk in ticks.chunks(PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO timer_ticks (trigger_id, tick_ms, status, event_id, until_ms, ticks, node, recorded_ms) \
                 VALUES {} ON CONFLICT (trigger_id, tick_ms) DO NOTHING RETURNING trigger_id, tick_ms",
                placeholders(chunk.len(), 7, now)
            );
            let mut q = sqlx::query(&sql);
            for t in chunk {
                q = q
                    .bind(&t.plan.trigger_id)
                    .bind(t.tick_ms)
                    .bind(t.status)
                    .bind(t.event_id)
                    .bind(t.until_ms)
                    .bind(t.ticks)
                    .bind(node);
            }
            for r in q.fetch_all(&mut *tx).await? {
                recorded.insert((r.try_get("trigger_id")?, r.try_get("tick_ms")?));
            }
        }
        let mut events = Vec::new();
        for t in &ticks {
            if !recorded.contains(&(t.plan.trigger_id.clone(), t.tick_ms)) {
                continue;
            }
            match (&t.plan.fire, &t.plan.skipped) {
                (Some((tick, e)), _) if t.status == FIRED => {
                    out.fired
                        .push((t.plan.trigger_id.clone(), *tick, e.id.clone()));
                    events.push(e.clone());
                }
                (_, Some(s)) if t.status == SKIPPED => {
                    out.skipped.push((t.plan.trigger_id.clone(), s.clone()));
                }
                _ => {}
            }
        }
        insert_events_in(&mut tx, self.db.dialect, &events).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The recorded ticks of a trigger, oldest first.
    pub async fn timer_ticks(&self, trigger_id: &str) -> Result<Vec<TickRow>> {
        let rows = sqlx::query(
            "SELECT trigger_id, tick_ms, status, event_id, until_ms, ticks, node, recorded_ms FROM timer_ticks \
             WHERE trigger_id = $1 ORDER BY tick_ms",
        )
        .bind(trigger_id)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TickRow {
                    trigger_id: r.try_get("trigger_id")?,
                    tick_ms: r.try_get("tick_ms")?,
                    status: r.try_get("status")?,
                    event_id: r.try_get("event_id")?,
                    until_ms: r.try_get("until_ms")?,
                    ticks: r.try_get("ticks")?,
                    node: r.try_get("node")?,
                    recorded_ms: r.try_get("recorded_ms")?,
                })
            })
            .collect()
    }

    /// Forgets tick rows recorded more than `age_ms` ago (the database's clock), and the state of triggers that
    /// are gone. The state of a live trigger is kept: it is what stops an old tick from firing again. Returns
    /// how many rows went.
    pub async fn prune_ticks(&self, age_ms: i64) -> Result<u64> {
        let now = self.db.dialect.now_ms_sql();
        let ticks = sqlx::query(&format!(
            "DELETE FROM timer_ticks WHERE recorded_ms < {now} - $1"
        ))
        .bind(age_ms)
        .execute(&self.db.write)
        .await?
        .rows_affected();
        let states = sqlx::query(
            "DELETE FROM timer_states WHERE NOT EXISTS (SELECT 1 FROM triggers t WHERE t.id = timer_states.trigger_id)",
        )
        .execute(&self.db.write)
        .await?
        .rows_affected();
        Ok(ticks + states)
    }
}
