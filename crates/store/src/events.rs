//! The asynchronous event queue. An event is stored in one commit when it is accepted and stays one row until it
//! ends (and then until it is pruned). Dispatchers claim due events with a lease and an attempt number exactly as
//! lifecycle workers claim operations (`ops.rs`): every time that is set or compared with a lease is the
//! database's clock, read in the statement; the attempt number fences renewals and ends; a claim that takes over
//! a lapsed lease counts that attempt as failed.
//!
//! While an event is `RUNNING`, `due_ms` says when it may next be claimed: while a dispatcher holds it
//! (`lease_owner` set) it is the end of the lease, and between attempts (`lease_owner` NULL) the time of the next
//! attempt. A retry is therefore nothing but a finish that gives the lease back with a later `due_ms`.
//!
//! Fairness: each event takes a rank when it is accepted, one more than the highest rank among its function's
//! running events, and at least the lowest rank still running anywhere; claims take the lowest rank first (then
//! the oldest). One function's backlog of a thousand events holds ranks r..r+999, and an event of another function
//! accepted meanwhile takes rank r, so dispatchers alternate between the functions instead of draining the
//! backlog first (start-time fair queueing, one "virtual time" unit per event).

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::Dialect;
use crate::error::{Result, StoreError};

/// The statuses of an event (SCF's names).
pub const RUNNING: &str = "RUNNING";
pub const FINISHED: &str = "FINISHED";
pub const FAILED: &str = "FAILED";
pub const ABORTED: &str = "ABORTED";

/// What `abort_requested` holds: TerminateAsyncEvent asked for the event to stop, by killing its instance, or
/// gracefully (`GraceShutdown`: SIGTERM, then the kill after a grace period). 0: nothing asked.
pub const ABORT_KILL: i64 = 1;
pub const ABORT_GRACE: i64 = 2;

/// The PostgreSQL channel on which an accepted event wakes the dispatchers of every node.
const CHANNEL: &str = "stratus_events";

/// Wakes a node's dispatchers when any node accepts an event (PostgreSQL's LISTEN/NOTIFY). It reconnects by
/// itself when its connection drops; notifications sent meanwhile are lost, which the dispatchers' poll covers.
pub struct EventListener(sqlx::postgres::PgListener);

impl EventListener {
    /// Waits for the next accepted event.
    pub async fn recv(&mut self) -> Result<()> {
        self.0.recv().await?;
        Ok(())
    }
}

/// An event to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The request id, which is the event's `InvokeRequestId` and the function's request id.
    pub id: String,
    pub app_id: i64,
    pub uin: String,
    pub region: String,
    pub namespace: String,
    pub function_name: String,
    /// The qualifier as the caller named it (a version, `$LATEST`, or an alias).
    pub qualifier: String,
    /// What it resolved to: the version the alias routed to (or the qualifier itself).
    pub version: String,
    /// `Event` for Invoke; timers later.
    pub invoke_type: String,
    /// The event, JSON text.
    pub event: String,
    /// When it was accepted, by the accepting node's clock (what `StartTime` shows and filters).
    pub start_ms: i64,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub app_id: i64,
    pub uin: String,
    pub region: String,
    pub namespace: String,
    pub function_name: String,
    pub qualifier: String,
    pub version: String,
    pub invoke_type: String,
    pub status: String,
    /// 202 while no attempt ended yet, then the last attempt's status (200 for success).
    pub status_code: i64,
    pub last_error: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// Retries of function errors made so far (the next attempt's `RetryNum`).
    pub retry_num: i64,
    /// Throttled or faulted attempts so far (the exponent of their back-off).
    pub throttles: i64,
}

/// An event this dispatcher holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    pub row: EventRow,
    pub event: String,
    /// The fencing token: one more on every claim.
    pub attempt: i64,
    /// Earlier claims that let their lease run out without ending the attempt.
    pub failures: i64,
    /// TerminateAsyncEvent asked for it to stop while an earlier attempt held it.
    pub abort_requested: bool,
    /// How old the event is, on the database's clock (for `MsgTTL`).
    pub age_ms: i64,
    pub owner: String,
}

/// What TerminateAsyncEvent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// Nobody ran it: it is `ABORTED` now.
    Ended,
    /// A dispatcher runs it: it was asked to stop.
    Requested,
}

/// How an attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventEnd {
    /// The event ends with this status (`FINISHED`, `FAILED` or `ABORTED`).
    Done {
        status: &'static str,
        status_code: i64,
        error: String,
        end_ms: i64,
    },
    /// Another attempt is due `delay_ms` from now (the database's clock). `function_error` counts it as a retry of
    /// a function error (`retry_num` + 1); otherwise it is a throttle or fault (`throttles` + 1).
    Retry {
        delay_ms: i64,
        function_error: bool,
        status_code: i64,
        error: String,
    },
}

/// One write of [`Store::write_events`]. (Moved once through a channel and consumed: boxing would only add an
/// allocation per write.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventWrite {
    /// [`Store::insert_event`].
    Accept(NewEvent),
    /// [`Store::claim_event`].
    Claim { owner: String, lease_ms: i64 },
    /// [`Store::end_attempt_then`].
    End {
        event: ClaimedEvent,
        end: EventEnd,
        next: Option<NewEvent>,
    },
}

/// The outcome of one write of [`Store::write_events`].
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum EventWritten {
    /// An acceptance, or an end (`StaleOperation` when the attempt no longer held the event).
    Done(Result<()>),
    Claimed(Option<ClaimedEvent>),
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub app_id: i64,
    pub namespace: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    /// Any of these (empty: all).
    pub invoke_types: Vec<String>,
    /// Any of these (empty: all).
    pub statuses: Vec<String>,
    /// `[start, end)` of `start_ms`.
    pub start_interval: Option<(i64, i64)>,
    /// `[start, end)` of `end_ms` (an event still running has none and does not match).
    pub end_interval: Option<(i64, i64)>,
    pub request_id: Option<String>,
    /// By `end_ms` instead of `start_ms`.
    pub by_end: bool,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// A filter value, bound in the order the filter numbered it.
enum Arg {
    Text(String),
    Int(i64),
}

fn bind_args<'q>(
    sql: &'q str,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for a in args {
        query = match a {
            Arg::Text(t) => query.bind(t.clone()),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}

/// Binds an event to accept to the parameters of `Store::insert_event_sql`.
fn bind_new_event<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    e: &NewEvent,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(e.id.clone())
        .bind(e.app_id)
        .bind(e.uin.clone())
        .bind(e.region.clone())
        .bind(e.namespace.clone())
        .bind(e.function_name.clone())
        .bind(e.qualifier.clone())
        .bind(e.version.clone())
        .bind(e.invoke_type.clone())
        .bind(e.event.clone())
        .bind(e.start_ms)
}

const COLUMNS: &str = "id, app_id, uin, region, namespace, function_name, qualifier, version, invoke_type, status, \
     status_code, last_error, start_ms, end_ms, retry_num, throttles";

fn event_row(r: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        uin: r.try_get("uin")?,
        region: r.try_get("region")?,
        namespace: r.try_get("namespace")?,
        function_name: r.try_get("function_name")?,
        qualifier: r.try_get("qualifier")?,
        version: r.try_get("version")?,
        invoke_type: r.try_get("invoke_type")?,
        status: r.try_get("status")?,
        status_code: r.try_get("status_code")?,
        last_error: r.try_get("last_error")?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        retry_num: r.try_get("retry_num")?,
        throttles: r.try_get("throttles")?,
    })
}

impl Store {
    /// Accepts an event: one statement, one commit. Its fair rank is computed in the same statement (see the
    /// module's documentation); two events accepted together may share a rank, which only makes them tie.
    pub async fn insert_event(&self, e: &NewEvent) -> Result<()> {
        bind_new_event(sqlx::query(&self.insert_event_sql()), e)
            .execute(&self.db.write)
            .await?;
        Ok(())
    }

    /// The accepting statement, binding a [`NewEvent`] as `$1`…`$11` (see [`bind_new_event`]).
    fn insert_event_sql(&self) -> String {
        let now = self.db.dialect.now_ms_sql();
        let greatest = match self.db.dialect {
            Dialect::Sqlite => "MAX",
            Dialect::Postgres => "GREATEST",
        };
        let sql = format!(
            "INSERT INTO async_events (id, app_id, uin, region, namespace, function_name, qualifier, version, \
             invoke_type, event, status, status_code, last_error, start_ms, end_ms, retry_num, throttles, attempt, \
             failures, lease_owner, due_ms, fair_rank, abort_requested, accepted_db_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'RUNNING', 202, '', $11, NULL, 0, 0, 0, 0, NULL, \
             {now}, {greatest}( \
               (SELECT COALESCE(MIN(fair_rank), 0) FROM async_events WHERE status = 'RUNNING'), \
               (SELECT COALESCE(MAX(fair_rank) + 1, 0) FROM async_events \
                WHERE app_id = $2 AND namespace = $5 AND function_name = $6 AND status = 'RUNNING')), \
             0, {now}, {now})"
        );
        // On PostgreSQL the same statement tells every node's dispatchers (NOTIFY is delivered at commit).
        match self.db.dialect {
            Dialect::Sqlite => sql,
            Dialect::Postgres => format!(
                "WITH accepted AS ({sql} RETURNING id) SELECT CAST(pg_notify('{CHANNEL}', '') AS TEXT) AS notified FROM accepted"
            ),
        }
    }

    /// A listener for events accepted by any node, on PostgreSQL; `None` on SQLite (one node: the in-process wake
    /// is enough).
    pub async fn event_listener(&self) -> Result<Option<EventListener>> {
        let Some(url) = &self.pg_url else {
            return Ok(None);
        };
        let mut l = sqlx::postgres::PgListener::connect(url).await?;
        l.listen(CHANNEL).await?;
        Ok(Some(EventListener(l)))
    }

    /// Claims the due event of lowest rank (then the oldest) that nobody holds, or whose lease ran out, leasing it
    /// for `lease_ms` of the database's clock. A claim that takes over a lapsed lease counts that attempt in
    /// `failures`, as `claim_op` does.
    pub async fn claim_event(&self, owner: &str, lease_ms: i64) -> Result<Option<ClaimedEvent>> {
        let mut conn = self.db.write.acquire().await?;
        self.claim_in(&mut conn, owner, lease_ms).await
    }

    async fn claim_in(
        &self,
        conn: &mut AnyConnection,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedEvent>> {
        let now = self.db.dialect.now_ms_sql();
        let lock = match self.db.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE async_events SET attempt = attempt + 1, \
             failures = failures + CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END, \
             lease_owner = $1, due_ms = {now} + $2, updated_ms = {now} \
             WHERE id = (SELECT id FROM async_events WHERE status = 'RUNNING' AND due_ms <= {now} \
                         ORDER BY fair_rank, start_ms LIMIT 1{lock}) \
             AND status = 'RUNNING' AND due_ms <= {now} \
             RETURNING {COLUMNS}, event, attempt, failures, abort_requested, {now} - accepted_db_ms AS age_ms"
        );
        let r = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_ms)
            .fetch_optional(&mut *conn)
            .await?;
        r.map(|r| {
            Ok(ClaimedEvent {
                row: event_row(&r)?,
                event: r.try_get("event")?,
                attempt: r.try_get("attempt")?,
                failures: r.try_get("failures")?,
                abort_requested: r.try_get::<i64, _>("abort_requested")? != 0,
                age_ms: r.try_get("age_ms")?,
                owner: owner.to_string(),
            })
        })
        .transpose()
    }

    /// Several writes of the event queue in one transaction, one commit for all (a group commit: the callers of
    /// a busy node share the cost of making them durable). Each write has its own outcome, as if it had been made
    /// alone; an error of the database fails them all (nothing of the batch is committed).
    pub async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<EventWritten>> {
        let mut tx = self.db.write.begin().await?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(match w {
                EventWrite::Accept(e) => {
                    bind_new_event(sqlx::query(&self.insert_event_sql()), &e)
                        .execute(&mut *tx)
                        .await?;
                    EventWritten::Done(Ok(()))
                }
                EventWrite::Claim { owner, lease_ms } => {
                    EventWritten::Claimed(self.claim_in(&mut tx, &owner, lease_ms).await?)
                }
                EventWrite::End { event, end, next } => {
                    EventWritten::Done(self.end_in(&mut tx, &event, end, next.as_ref()).await?)
                }
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Renews a held event's lease for `lease_ms` from now (the database's clock), and says whether
    /// TerminateAsyncEvent asked for the event to stop (0, [`ABORT_KILL`] or [`ABORT_GRACE`]). `StaleOperation`
    /// when this attempt no longer holds it (it ended, or another dispatcher claimed it after the lease ran out).
    pub async fn renew_event(&self, e: &ClaimedEvent, lease_ms: i64) -> Result<i64> {
        let now = self.db.dialect.now_ms_sql();
        let sql = format!(
            "UPDATE async_events SET due_ms = {now} + $1, updated_ms = {now} \
             WHERE id = $2 AND attempt = $3 AND lease_owner = $4 AND status = 'RUNNING' \
             RETURNING abort_requested"
        );
        let r = sqlx::query(&sql)
            .bind(lease_ms)
            .bind(&e.row.id)
            .bind(e.attempt)
            .bind(&e.owner)
            .fetch_optional(&self.db.write)
            .await?;
        match r {
            Some(r) => Ok(r.try_get::<i64, _>("abort_requested")?),
            None => Err(StoreError::StaleOperation(e.row.id.clone())),
        }
    }

    /// TerminateAsyncEvent: an event that no dispatcher holds (waiting for its first attempt or a retry, or whose
    /// holder's lease ran out) ends `ABORTED` here; one that is running is flagged, and its holder stops it at its
    /// next renewal (or at once when it runs on this node and is told directly); `graceful` asks for SIGTERM and
    /// a grace period (an earlier request to kill it wins). `None` when the account's function has no such event;
    /// `Some(Err(status))` when it already ended.
    #[allow(clippy::too_many_arguments)]
    pub async fn abort_event(
        &self,
        app_id: i64,
        namespace: &str,
        function_name: &str,
        id: &str,
        status_code: i64,
        end_ms: i64,
        graceful: bool,
    ) -> Result<Option<std::result::Result<Abort, String>>> {
        let Some(row) = self.async_event(app_id, id).await? else {
            return Ok(None);
        };
        if row.namespace != namespace || row.function_name != function_name {
            return Ok(None);
        }
        if row.status != RUNNING {
            return Ok(Some(Err(row.status)));
        }
        let now = self.db.dialect.now_ms_sql();
        let ended = sqlx::query(&format!(
            "UPDATE async_events SET status = 'ABORTED', status_code = $1, end_ms = $2, lease_owner = NULL, \
             event = '', updated_ms = {now} \
             WHERE id = $3 AND status = 'RUNNING' AND (lease_owner IS NULL OR due_ms <= {now})"
        ))
        .bind(status_code)
        .bind(end_ms)
        .bind(id)
        .execute(&self.db.write)
        .await?;
        if ended.rows_affected() == 1 {
            return Ok(Some(Ok(Abort::Ended)));
        }
        let flagged = sqlx::query(&format!(
            "UPDATE async_events SET abort_requested = CASE WHEN abort_requested = {ABORT_KILL} THEN {ABORT_KILL} \
             ELSE $2 END, updated_ms = {now} WHERE id = $1 AND status = 'RUNNING'"
        ))
        .bind(id)
        .bind(if graceful { ABORT_GRACE } else { ABORT_KILL })
        .execute(&self.db.write)
        .await?;
        if flagged.rows_affected() == 1 {
            Ok(Some(Ok(Abort::Requested)))
        } else {
            // It ended meanwhile.
            let status = self
                .async_event(app_id, id)
                .await?
                .map(|r| r.status)
                .unwrap_or_else(|| FINISHED.to_string());
            Ok(Some(Err(status)))
        }
    }

    /// Ends a held attempt: the event ends, or gives its lease back with the time of its next attempt. Refused
    /// with `StaleOperation` (and nothing changed) when this attempt no longer holds the event.
    pub async fn end_attempt(&self, e: &ClaimedEvent, end: EventEnd) -> Result<()> {
        self.end_attempt_then(e, end, None).await
    }

    /// Like [`Store::end_attempt`], and accepts `next` (a dead letter: the failed event handed to another
    /// function) in the same transaction: either the attempt ends and the new event is queued, or neither
    /// happens (a crash between the two loses nothing; a refused end queues nothing).
    pub async fn end_attempt_then(
        &self,
        e: &ClaimedEvent,
        end: EventEnd,
        next: Option<&NewEvent>,
    ) -> Result<()> {
        match next {
            None => {
                let mut conn = self.db.write.acquire().await?;
                self.end_in(&mut conn, e, end, None).await?
            }
            Some(_) => {
                let mut tx = self.db.write.begin().await?;
                let ended = self.end_in(&mut tx, e, end, next).await?;
                tx.commit().await?;
                ended
            }
        }
    }

    /// The fenced end of an attempt, then `next` when it ended: `Ok(Err(StaleOperation))` (nothing changed) when
    /// this attempt no longer holds the event.
    async fn end_in(
        &self,
        conn: &mut AnyConnection,
        e: &ClaimedEvent,
        end: EventEnd,
        next: Option<&NewEvent>,
    ) -> Result<Result<()>> {
        let now = self.db.dialect.now_ms_sql();
        let fence = "WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'RUNNING'";
        let mut args = vec![
            Arg::Text(e.row.id.clone()),
            Arg::Int(e.attempt),
            Arg::Text(e.owner.clone()),
        ];
        let sql = match end {
            EventEnd::Done {
                status,
                status_code,
                error,
                end_ms,
            } => {
                args.extend([
                    Arg::Text(status.to_string()),
                    Arg::Int(status_code),
                    Arg::Text(error),
                    Arg::Int(end_ms),
                ]);
                format!(
                    "UPDATE async_events SET status = $4, status_code = $5, last_error = $6, end_ms = $7, \
                     lease_owner = NULL, event = '', updated_ms = {now} {fence}"
                )
            }
            EventEnd::Retry {
                delay_ms,
                function_error,
                status_code,
                error,
            } => {
                let (retries, throttles) = if function_error { (1, 0) } else { (0, 1) };
                args.extend([
                    Arg::Int(status_code),
                    Arg::Text(error),
                    Arg::Int(retries),
                    Arg::Int(throttles),
                    Arg::Int(delay_ms.max(0)),
                ]);
                format!(
                    "UPDATE async_events SET status_code = $4, last_error = $5, retry_num = retry_num + $6, \
                     throttles = throttles + $7, lease_owner = NULL, due_ms = {now} + $8, updated_ms = {now} {fence}"
                )
            }
        };
        let ended = bind_args(&sql, &args).execute(&mut *conn).await?;
        if ended.rows_affected() != 1 {
            return Ok(Err(StoreError::StaleOperation(e.row.id.clone())));
        }
        if let Some(n) = next {
            bind_new_event(sqlx::query(&self.insert_event_sql()), n)
                .execute(&mut *conn)
                .await?;
        }
        Ok(Ok(()))
    }

    /// One event of an account.
    pub async fn async_event(&self, app_id: i64, id: &str) -> Result<Option<EventRow>> {
        let sql = format!("SELECT {COLUMNS} FROM async_events WHERE app_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(app_id)
            .bind(id)
            .fetch_optional(&self.db.read)
            .await?;
        r.as_ref().map(event_row).transpose()
    }

    /// The events of a function matching a query, sorted and paged, with the total before paging.
    pub async fn async_events(&self, q: &EventQuery) -> Result<(Vec<EventRow>, i64)> {
        let mut filter = String::from("app_id = $1 AND namespace = $2 AND function_name = $3");
        let mut args = vec![
            Arg::Int(q.app_id),
            Arg::Text(q.namespace.clone()),
            Arg::Text(q.function_name.clone()),
        ];
        let next = |args: &mut Vec<Arg>, a: Arg| {
            args.push(a);
            format!("${}", args.len())
        };
        if let Some(v) = &q.qualifier {
            let p = next(&mut args, Arg::Text(v.clone()));
            filter.push_str(&format!(" AND qualifier = {p}"));
        }
        if let Some(v) = &q.request_id {
            let p = next(&mut args, Arg::Text(v.clone()));
            filter.push_str(&format!(" AND id = {p}"));
        }
        for (col, values) in [("invoke_type", &q.invoke_types), ("status", &q.statuses)] {
            if values.is_empty() {
                continue;
            }
            let ps: Vec<String> = values
                .iter()
                .map(|v| next(&mut args, Arg::Text(v.clone())))
                .collect();
            filter.push_str(&format!(" AND {col} IN ({})", ps.join(", ")));
        }
        for (col, interval) in [("start_ms", q.start_interval), ("end_ms", q.end_interval)] {
            if let Some((from, to)) = interval {
                let a = next(&mut args, Arg::Int(from));
                let b = next(&mut args, Arg::Int(to));
                filter.push_str(&format!(" AND {col} >= {a} AND {col} < {b}"));
            }
        }
        let order = if q.by_end { "end_ms" } else { "start_ms" };
        let dir = if q.descending { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM async_events WHERE {filter}");
        let total: i64 = bind_args(&count_sql, &args)
            .fetch_one(&self.db.read)
            .await?
            .try_get("n")?;
        let n = args.len();
        // Events still running have no end: they sort after the ended ones either way (NULLS LAST, which SQLite's
        // default puts first in ascending order).
        let list_sql = format!(
            "SELECT {COLUMNS} FROM async_events WHERE {filter} \
             ORDER BY CASE WHEN {order} IS NULL THEN 1 ELSE 0 END, {order} {dir}, id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = bind_args(&list_sql, &args)
            .bind(q.limit.max(0))
            .bind(q.offset.max(0))
            .fetch_all(&self.db.read)
            .await?;
        let events = rows.iter().map(event_row).collect::<Result<Vec<_>>>()?;
        Ok((events, total))
    }

    /// Forgets events that ended more than `age_ms` ago (the database's clock). Returns how many.
    pub async fn prune_events(&self, age_ms: i64) -> Result<u64> {
        let sql = format!(
            "DELETE FROM async_events WHERE status <> 'RUNNING' AND updated_ms < {} - $1",
            self.db.dialect.now_ms_sql()
        );
        let r = sqlx::query(&sql)
            .bind(age_ms)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected())
    }

    /// Events not ended yet.
    pub async fn running_events(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM async_events WHERE status = 'RUNNING'")
            .fetch_one(&self.db.read)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// A function's retry settings `(retry_num, msg_ttl_secs)`, if it ever set them.
    pub async fn event_config(
        &self,
        app_id: i64,
        namespace: &str,
        function_name: &str,
    ) -> Result<Option<(i64, i64)>> {
        let r = sqlx::query(
            "SELECT retry_num, msg_ttl_secs FROM event_configs \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(function_name)
        .fetch_optional(&self.db.read)
        .await?;
        r.map(|r| Ok((r.try_get("retry_num")?, r.try_get("msg_ttl_secs")?)))
            .transpose()
    }

    /// Sets a function's retry settings. The row references the function's `$LATEST` record: a function deleted
    /// meanwhile makes the write fail (`Conflict`), and deleting the function later deletes the settings.
    pub async fn put_event_config(
        &self,
        app_id: i64,
        namespace: &str,
        function_name: &str,
        retry_num: i64,
        msg_ttl_secs: i64,
        now: i64,
    ) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO event_configs (app_id, namespace, function_name, qualifier, retry_num, msg_ttl_secs, mod_ms) \
             VALUES ($1, $2, $3, '$LATEST', $4, $5, $6) \
             ON CONFLICT (app_id, namespace, function_name) \
             DO UPDATE SET retry_num = EXCLUDED.retry_num, msg_ttl_secs = EXCLUDED.msg_ttl_secs, mod_ms = EXCLUDED.mod_ms",
        )
        .bind(app_id)
        .bind(namespace)
        .bind(function_name)
        .bind(retry_num)
        .bind(msg_ttl_secs)
        .bind(now)
        .execute(&self.db.write)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Accepts events inside the caller's transaction, many rows per statement (a scheduler's batch of timer
/// firings), each ranked as `insert_event` ranks one (rows of one statement may share a rank); on PostgreSQL every
/// node's dispatchers are told when the transaction commits.
pub(crate) async fn insert_events_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    dialect: Dialect,
    events: &[NewEvent],
) -> Result<()> {
    const PER_STATEMENT: usize = 200;
    const PARAMS: usize = 11;
    let now = dialect.now_ms_sql();
    let greatest = match dialect {
        Dialect::Sqlite => "MAX",
        Dialect::Postgres => "GREATEST",
    };
    for chunk in events.chunks(PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=PARAMS).map(|n| format!("${}", i * PARAMS + n)).collect();
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 'RUNNING', 202, '', {}, NULL, 0, 0, 0, 0, NULL, {now}, \
                     {greatest}((SELECT COALESCE(MIN(fair_rank), 0) FROM async_events WHERE status = 'RUNNING'), \
                     (SELECT COALESCE(MAX(fair_rank) + 1, 0) FROM async_events WHERE app_id = {} AND namespace = {} \
                     AND function_name = {} AND status = 'RUNNING')), 0, {now}, {now})",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[1], p[4], p[5]
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO async_events (id, app_id, uin, region, namespace, function_name, qualifier, version, \
             invoke_type, event, status, status_code, last_error, start_ms, end_ms, retry_num, throttles, attempt, \
             failures, lease_owner, due_ms, fair_rank, abort_requested, accepted_db_ms, updated_ms) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(&e.id)
                .bind(e.app_id)
                .bind(&e.uin)
                .bind(&e.region)
                .bind(&e.namespace)
                .bind(&e.function_name)
                .bind(&e.qualifier)
                .bind(&e.version)
                .bind(&e.invoke_type)
                .bind(&e.event)
                .bind(e.start_ms);
        }
        q.execute(&mut **tx).await?;
    }
    if dialect == Dialect::Postgres && !events.is_empty() {
        sqlx::query(&format!(
            "SELECT CAST(pg_notify('{CHANNEL}', '') AS TEXT) AS notified"
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
