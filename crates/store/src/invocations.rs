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
    /// `start_ms`, `duration_us`, `mem_bytes` or `function_name`.
    pub order_by: &'static str,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
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
        log: r.try_get("log")?,
        cold_start: r.try_get::<i64, _>("cold_start")? != 0,
    })
}

impl Store {
    /// Stores a batch of records in one transaction (a duplicate request id is ignored).
    pub async fn insert_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        for r in records {
            sqlx::query(
                "INSERT INTO invocations (request_id, app_id, namespace, function_name, qualifier, start_ms, duration_us, \
                 bill_ms, memory_mb, mem_bytes, status_code, ret_msg, log, cold_start) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (request_id) DO NOTHING",
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records matching a query, sorted and paged, with the total before paging.
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
        let order = match q.order_by {
            "duration_us" | "mem_bytes" | "function_name" | "start_ms" => q.order_by,
            _ => "start_ms",
        };
        let dir = if q.descending { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM invocations WHERE {filter}");
        let list_sql = format!(
            "SELECT * FROM invocations WHERE {filter} ORDER BY {order} {dir}, request_id LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let mut count = sqlx::query(&count_sql)
            .bind(q.app_id)
            .bind(&q.namespace)
            .bind(&q.function_name);
        let mut list = sqlx::query(&list_sql)
            .bind(q.app_id)
            .bind(&q.namespace)
            .bind(&q.function_name);
        for t in &texts {
            count = count.bind(t.clone());
            list = list.bind(t.clone());
        }
        for i in &ints {
            count = count.bind(*i);
            list = list.bind(*i);
        }
        let total: i64 = count.fetch_one(&self.db.read).await?.try_get("n")?;
        let rows = list
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.db.read)
            .await?;
        Ok((rows.iter().map(record).collect::<Result<Vec<_>>>()?, total))
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
