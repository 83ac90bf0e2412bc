//! Invocation records: what GetFunctionLogs and GetRequestStatus read, and the metering that billing will use.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::Result;

/// One finished invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRecord {
    pub request_id: String,
    pub app_id: i64,
    pub namespace: String,
    pub function_name: String,
    pub qualifier: String,
    pub start_ms: i64,
    pub duration_us: i64,
    pub bill_ms: i64,
    /// The function's configured memory (for GB-seconds).
    pub memory_mb: i64,
    pub mem_bytes: i64,
    /// 200 for success, else SCF's runtime status (430, 433, …).
    pub status_code: i64,
    pub ret_msg: String,
    pub log: String,
    pub cold_start: bool,
    /// Which attempt of an asynchronous event this was (0: the first; a synchronous call is always 0). The
    /// attempts of one event share its request id.
    pub retry_num: i64,
}

/// How records are sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvocationOrder {
    #[default]
    StartTime,
    Duration,
    MemUsage,
    FunctionName,
}

impl InvocationOrder {
    fn column(self) -> &'static str {
        match self {
            InvocationOrder::StartTime => "start_ms",
            InvocationOrder::Duration => "duration_us",
            InvocationOrder::MemUsage => "mem_bytes",
            InvocationOrder::FunctionName => "function_name",
        }
    }
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub struct InvocationQuery {
    pub app_id: i64,
    pub namespace: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    pub request_id: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// `Some(true)`: successes only; `Some(false)`: failures only.
    pub succeeded: Option<bool>,
    /// Only this status code.
    pub status_code: Option<i64>,
    pub order_by: InvocationOrder,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
    /// Whether to read the log too (GetRequestStatus shows none); without it `log` is empty.
    pub with_log: bool,
    /// Stop adding records once their results and logs reach this many bytes (the first record always comes):
    /// a page then holds fewer than `limit` records and the caller pages on from where it ended.
    pub max_bytes: usize,
}

/// Records are read in chunks of this many rows, so that no more than one chunk is held beyond the byte budget.
const CHUNK_ROWS: i64 = 32;

/// What a record weighs against a byte budget: its texts plus a fixed allowance for the other fields.
pub fn record_weight(r: &InvocationRecord) -> usize {
    r.ret_msg.len() + r.log.len() + r.request_id.len() + r.function_name.len() + 256
}

fn record(r: &AnyRow) -> Result<InvocationRecord> {
    Ok(InvocationRecord {
        request_id: r.try_get("request_id")?,
        app_id: r.try_get("app_id")?,
        namespace: r.try_get("namespace")?,
        function_name: r.try_get("function_name")?,
        qualifier: r.try_get("qualifier")?,
        start_ms: r.try_get("start_ms")?,
        duration_us: r.try_get("duration_us")?,
        bill_ms: r.try_get("bill_ms")?,
        memory_mb: r.try_get("memory_mb")?,
        mem_bytes: r.try_get("mem_bytes")?,
        status_code: r.try_get("status_code")?,
        ret_msg: r.try_get("ret_msg")?,
        log: r.try_get("log").unwrap_or_default(),
        cold_start: r.try_get::<i64, _>("cold_start")? != 0,
        retry_num: r.try_get("retry_num")?,
    })
}

/// `sql` with the query's filter values bound in the order `invocations` numbered them.
fn bind_query<'q>(
    sql: &'q str,
    q: &InvocationQuery,
    texts: &[String],
    ints: &[i64],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql)
        .bind(q.app_id)
        .bind(q.namespace.clone())
        .bind(q.function_name.clone());
    for t in texts {
        query = query.bind(t.clone());
    }
    for i in ints {
        query = query.bind(*i);
    }
    query
}

impl Store {
    /// Stores a batch of records in one transaction (a duplicate request id and retry number is ignored).
    pub async fn insert_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        for r in records {
            sqlx::query(
                "INSERT INTO invocations (request_id, app_id, namespace, function_name, qualifier, start_ms, duration_us, \
                 bill_ms, memory_mb, mem_bytes, status_code, ret_msg, log, cold_start, retry_num) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (request_id, retry_num) DO NOTHING",
            )
            .bind(&r.request_id)
            .bind(r.app_id)
            .bind(&r.namespace)
            .bind(&r.function_name)
            .bind(&r.qualifier)
            .bind(r.start_ms)
            .bind(r.duration_us)
            .bind(r.bill_ms)
            .bind(r.memory_mb)
            .bind(r.mem_bytes)
            .bind(r.status_code)
            .bind(&r.ret_msg)
            .bind(&r.log)
            .bind(i64::from(r.cold_start))
            .bind(r.retry_num)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records matching a query, sorted and paged within the query's byte budget, with the total before paging.
    pub async fn invocations(&self, q: &InvocationQuery) -> Result<(Vec<InvocationRecord>, i64)> {
        let mut filter = String::from("app_id = $1 AND namespace = $2 AND function_name = $3");
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        let mut n = 4;
        if let Some(v) = &q.qualifier {
            filter.push_str(&format!(" AND qualifier = ${n}"));
            texts.push(v.clone());
            n += 1;
        }
        if let Some(v) = &q.request_id {
            filter.push_str(&format!(" AND request_id = ${n}"));
            texts.push(v.clone());
            n += 1;
        }
        for (col, op, v) in [
            ("start_ms", ">=", q.start_ms),
            ("start_ms", "<=", q.end_ms),
            ("status_code", "=", q.status_code),
        ] {
            if let Some(v) = v {
                filter.push_str(&format!(" AND {col} {op} ${n}"));
                ints.push(v);
                n += 1;
            }
        }
        match q.succeeded {
            Some(true) => filter.push_str(" AND status_code = 200"),
            Some(false) => filter.push_str(" AND status_code <> 200"),
            None => {}
        }
        let order = q.order_by.column();
        let dir = if q.descending { "DESC" } else { "ASC" };
        let columns = if q.with_log {
            "request_id, app_id, namespace, function_name, qualifier, start_ms, duration_us, \
             bill_ms, memory_mb, mem_bytes, status_code, ret_msg, log, cold_start, retry_num"
        } else {
            "request_id, app_id, namespace, function_name, qualifier, start_ms, duration_us, \
             bill_ms, memory_mb, mem_bytes, status_code, ret_msg, cold_start, retry_num"
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM invocations WHERE {filter}");
        let list_sql = format!(
            "SELECT {columns} FROM invocations WHERE {filter} ORDER BY {order} {dir}, request_id, retry_num LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let bind_filter = |sql| bind_query(sql, q, &texts, &ints);
        let total: i64 = bind_filter(&count_sql)
            .fetch_one(&self.db.read)
            .await?
            .try_get("n")?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut offset = q.offset;
        let end = q.offset.saturating_add(q.limit.max(0));
        'chunks: while offset < end {
            let take = (end - offset).min(CHUNK_ROWS);
            let rows = bind_filter(&list_sql)
                .bind(take)
                .bind(offset)
                .fetch_all(&self.db.read)
                .await?;
            let got = rows.len() as i64;
            for row in &rows {
                let rec = record(row)?;
                let w = record_weight(&rec);
                if !out.is_empty() && bytes.saturating_add(w) > q.max_bytes {
                    break 'chunks;
                }
                bytes = bytes.saturating_add(w);
                out.push(rec);
            }
            if got < take {
                break;
            }
            offset += got;
        }
        Ok((out, total))
    }

    /// Forgets records that started before `before_ms` (retention). Returns how many.
    pub async fn prune_invocations(&self, before_ms: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM invocations WHERE start_ms < $1")
            .bind(before_ms)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected())
    }
}
