//! Function records: one row per qualifier (`$LATEST` and each published version), and their aliases.

use model::{Alias, FunctionKey, FunctionStatus, RoutingConfig, Snapshot, StatusReason};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::Dialect;
use crate::error::{Result, StoreError, is_unique_violation};
use crate::ops::{NewOp, insert_op};

/// One function record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRow {
    /// The row's own id (what operations target).
    pub id: String,
    /// The function's id, shared by all its qualifiers (`FunctionId`).
    pub function_id: String,
    pub key: FunctionKey,
    pub qualifier: String,
    pub status: FunctionStatus,
    pub reasons: Vec<StatusReason>,
    /// What invocations run. `None` until a create succeeds.
    pub serving: Option<Snapshot>,
    /// What an operation is applying.
    pub pending: Option<Snapshot>,
    /// PublishVersion's description (versions only).
    pub version_description: String,
    /// The number the next published version gets (`$LATEST` only).
    pub next_version: i64,
    /// Bumped by every change: writers condition on it.
    pub rev: i64,
    pub add_ms: i64,
    pub mod_ms: i64,
}

impl FunctionRow {
    /// The snapshot to show: the serving one, or the pending one before the first success.
    pub fn shown(&self) -> Option<&Snapshot> {
        self.serving.as_ref().or(self.pending.as_ref())
    }
}

/// How ListFunctions sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionOrder {
    AddTime,
    ModTime,
    FunctionName,
}

/// A ListFunctions query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub order_by: FunctionOrder,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
    /// Substring of the name.
    pub search: Option<String>,
    /// Substring of the description.
    pub description: Option<String>,
    /// Exact runtimes (any of).
    pub runtimes: Vec<String>,
    /// Exact statuses (any of).
    pub statuses: Vec<String>,
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising our own plain types cannot fail: they hold no maps with non-string keys.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &'static str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt(what, e))
}

const COLUMNS: &str = "id, function_id, app_id, namespace, name, qualifier, status, reasons, serving, pending, \
     version_description, next_version, rev, add_ms, mod_ms";

fn function_row(r: &AnyRow) -> Result<FunctionRow> {
    let status: String = r.try_get("status")?;
    let serving: Option<String> = r.try_get("serving")?;
    let pending: Option<String> = r.try_get("pending")?;
    Ok(FunctionRow {
        id: r.try_get("id")?,
        function_id: r.try_get("function_id")?,
        key: FunctionKey {
            app_id: r.try_get("app_id")?,
            namespace: r.try_get("namespace")?,
            name: r.try_get("name")?,
        },
        qualifier: r.try_get("qualifier")?,
        status: status
            .parse()
            .map_err(|e| StoreError::corrupt("functions.status", e))?,
        reasons: from_json("functions.reasons", &r.try_get::<String, _>("reasons")?)?,
        serving: serving
            .map(|s| from_json("functions.serving", &s))
            .transpose()?,
        pending: pending
            .map(|s| from_json("functions.pending", &s))
            .transpose()?,
        version_description: r.try_get("version_description")?,
        next_version: r.try_get("next_version")?,
        rev: r.try_get("rev")?,
        add_ms: r.try_get("add_ms")?,
        mod_ms: r.try_get("mod_ms")?,
    })
}

fn alias_row(r: &AnyRow) -> Result<Alias> {
    let routing: String = r.try_get("routing")?;
    Ok(Alias {
        name: r.try_get("name")?,
        function_version: r.try_get("function_version")?,
        routing: from_json::<RoutingConfig>("aliases.routing", &routing)?,
        description: r.try_get("description")?,
        add_ms: r.try_get("add_ms")?,
        mod_ms: r.try_get("mod_ms")?,
    })
}

/// ` FOR UPDATE` on PostgreSQL, nothing on SQLite: there a checked transaction holds the database's write lock
/// from its first statement ([`Store::begin_checked`]), so what it reads cannot change before it writes.
pub(crate) fn for_update(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    }
}

impl Store {
    /// Begins a write transaction that reads before it writes (see `Db::begin_checked`).
    pub(crate) async fn begin_checked(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.db.begin_checked().await
    }
}

/// Locks a function's `$LATEST` row for the rest of the transaction; false when the function is gone.
///
/// Every write that must agree with other rows of the function (an alias and the versions it routes to, a
/// version's deletion and the aliases that route to it, the alias quota) takes this lock first and then checks
/// with fresh statements. A conditional statement alone is not enough on PostgreSQL's READ COMMITTED: two
/// transactions that each check the other's table before either commits both pass (write skew), and a
/// statement's sub-select keeps the snapshot it started with even after waiting for a row lock.
async fn lock_function(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    key: &FunctionKey,
) -> Result<bool> {
    let sql = format!(
        "SELECT id FROM functions WHERE app_id = $1 AND namespace = $2 AND name = $3 AND qualifier = '$LATEST'{}",
        for_update(dialect)
    );
    Ok(sqlx::query(&sql)
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

/// Whether every version an alias routes to is `$LATEST` or a version record that is not being deleted (what
/// the control plane checked before writing), read inside the transaction that writes the alias.
async fn alias_targets_live(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &FunctionKey,
    alias: &Alias,
) -> Result<bool> {
    for v in alias.versions() {
        if v == "$LATEST" {
            continue;
        }
        let live = sqlx::query(
            "SELECT 1 AS one FROM functions WHERE app_id = $1 AND namespace = $2 AND name = $3 AND qualifier = $4              AND status <> 'Deleting'",
        )
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(v)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
        if !live {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) async fn insert_function_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    row: &FunctionRow,
) -> Result<()> {
    let shown = row.shown();
    sqlx::query(
        "INSERT INTO functions (id, function_id, app_id, namespace, name, qualifier, status, reasons, serving, pending, \
         serving_code, pending_code, runtime, description, version_description, next_version, rev, add_ms, mod_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(&row.id)
    .bind(&row.function_id)
    .bind(row.key.app_id)
    .bind(&row.key.namespace)
    .bind(&row.key.name)
    .bind(&row.qualifier)
    .bind(row.status.as_str())
    .bind(to_json(&row.reasons))
    .bind(row.serving.as_ref().map(to_json))
    .bind(row.pending.as_ref().map(to_json))
    .bind(row.serving.as_ref().map(|s| s.code.sha256.clone()))
    .bind(row.pending.as_ref().map(|s| s.code.sha256.clone()))
    .bind(shown.map(|s| s.config.runtime.clone()).unwrap_or_default())
    .bind(shown.map(|s| s.config.description.clone()).unwrap_or_default())
    .bind(&row.version_description)
    .bind(row.next_version)
    .bind(row.rev)
    .bind(row.add_ms)
    .bind(row.mod_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists("function")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub(crate) async fn insert_alias(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &FunctionKey,
    alias: &Alias,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO aliases (app_id, namespace, function_name, name, function_version, routing, description, add_ms, mod_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key.app_id)
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(&alias.name)
    .bind(&alias.function_version)
    .bind(to_json(&alias.routing))
    .bind(&alias.description)
    .bind(alias.add_ms)
    .bind(alias.mod_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists("alias")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

impl Store {
    /// One record of a function, by qualifier.
    pub async fn function(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<FunctionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM functions WHERE app_id = $1 AND namespace = $2 AND name = $3 AND qualifier = $4"
        );
        let r = sqlx::query(&sql)
            .bind(key.app_id)
            .bind(&key.namespace)
            .bind(&key.name)
            .bind(qualifier)
            .fetch_optional(&self.db.read)
            .await?;
        r.as_ref().map(function_row).transpose()
    }

    /// One record by its row id.
    pub async fn function_by_id(&self, id: &str) -> Result<Option<FunctionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM functions WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.db.read)
            .await?;
        r.as_ref().map(function_row).transpose()
    }

    /// Every record of a function: `$LATEST` first, then versions in ascending number.
    pub async fn function_records(&self, key: &FunctionKey) -> Result<Vec<FunctionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM functions WHERE app_id = $1 AND namespace = $2 AND name = $3"
        );
        let rows = sqlx::query(&sql)
            .bind(key.app_id)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_all(&self.db.read)
            .await?;
        let mut out = rows.iter().map(function_row).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| {
            (
                r.qualifier != "$LATEST",
                r.qualifier.parse::<u64>().unwrap_or(0),
            )
        });
        Ok(out)
    }

    /// The `$LATEST` records of a namespace, filtered, sorted and paged, with the total count before paging.
    pub async fn list_functions(
        &self,
        app_id: i64,
        namespace: &str,
        q: &ListQuery,
    ) -> Result<(Vec<FunctionRow>, i64)> {
        let mut filter = String::from("app_id = $1 AND namespace = $2 AND qualifier = '$LATEST'");
        let mut binds: Vec<String> = Vec::new();
        let mut next = 3;
        let like = |s: &str| {
            format!(
                "%{}%",
                s.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        };
        if let Some(s) = &q.search {
            filter.push_str(&format!(" AND name LIKE ${next} ESCAPE '\\'"));
            binds.push(like(s));
            next += 1;
        }
        if let Some(d) = &q.description {
            filter.push_str(&format!(" AND description LIKE ${next} ESCAPE '\\'"));
            binds.push(like(d));
            next += 1;
        }
        for (col, vals) in [("runtime", &q.runtimes), ("status", &q.statuses)] {
            if vals.is_empty() {
                continue;
            }
            let ph: Vec<String> = (0..vals.len()).map(|i| format!("${}", next + i)).collect();
            filter.push_str(&format!(" AND {col} IN ({})", ph.join(", ")));
            binds.extend(vals.iter().cloned());
            next += vals.len();
        }
        let order_col = match q.order_by {
            FunctionOrder::AddTime => "add_ms",
            FunctionOrder::ModTime => "mod_ms",
            FunctionOrder::FunctionName => "name",
        };
        let dir = if q.descending { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM functions WHERE {filter}");
        let list_sql = format!(
            "SELECT {COLUMNS} FROM functions WHERE {filter} ORDER BY {order_col} {dir}, name {dir} LIMIT ${} OFFSET ${}",
            next,
            next + 1
        );
        let mut count = sqlx::query(&count_sql).bind(app_id).bind(namespace);
        let mut list = sqlx::query(&list_sql).bind(app_id).bind(namespace);
        for b in &binds {
            count = count.bind(b.clone());
            list = list.bind(b.clone());
        }
        let total: i64 = count.fetch_one(&self.db.read).await?.try_get("n")?;
        let rows = list
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.db.read)
            .await?;
        Ok((
            rows.iter().map(function_row).collect::<Result<Vec<_>>>()?,
            total,
        ))
    }

    /// The names of the functions in a namespace, sorted.
    pub async fn function_names(&self, app_id: i64, namespace: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT name FROM functions WHERE app_id = $1 AND namespace = $2 AND qualifier = '$LATEST' ORDER BY name",
        )
        .bind(app_id)
        .bind(namespace)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("name")?))
            .collect()
    }

    /// Number of functions in a namespace.
    pub async fn count_functions(&self, app_id: i64, namespace: Option<&str>) -> Result<i64> {
        let r = match namespace {
            Some(ns) => sqlx::query(
                "SELECT COUNT(*) AS n FROM functions WHERE app_id = $1 AND namespace = $2 AND qualifier = '$LATEST'",
            )
            .bind(app_id)
            .bind(ns),
            None => sqlx::query(
                "SELECT COUNT(*) AS n FROM functions WHERE app_id = $1 AND qualifier = '$LATEST'",
            )
            .bind(app_id),
        }
        .fetch_one(&self.db.read)
        .await?;
        Ok(r.try_get("n")?)
    }

    /// Records a new function (`$LATEST` row and its `$DEFAULT` alias) and the operation that will prepare it,
    /// in one transaction, with no quota and no check of the namespace (the control plane uses
    /// [`Store::create_function_within`]). `AlreadyExists` when the name is taken in that namespace.
    pub async fn create_function(
        &self,
        row: &FunctionRow,
        default_alias: &Alias,
        op: &NewOp,
    ) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        insert_function_row(&mut tx, row).await?;
        insert_alias(&mut tx, &row.key, default_alias).await?;
        insert_op(&mut tx, op).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Like [`Store::create_function`], within the namespace's quota: the namespace row is locked and its
    /// functions counted in the transaction that inserts, so concurrent creates cannot pass the quota together.
    /// `Ok(false)` when the namespace already holds `max` functions; `Conflict` when the namespace is gone.
    pub async fn create_function_within(
        &self,
        row: &FunctionRow,
        default_alias: &Alias,
        op: &NewOp,
        max: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_checked().await?;
        let ns = sqlx::query(&format!(
            "SELECT name FROM namespaces WHERE app_id = $1 AND name = $2{}",
            for_update(self.db.dialect)
        ))
        .bind(row.key.app_id)
        .bind(&row.key.namespace)
        .fetch_optional(&mut *tx)
        .await?;
        if ns.is_none() {
            return Err(StoreError::Conflict);
        }
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM functions WHERE app_id = $1 AND namespace = $2 AND qualifier = '$LATEST'",
        )
        .bind(row.key.app_id)
        .bind(&row.key.namespace)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n >= max {
            return Ok(false);
        }
        insert_function_row(&mut tx, row).await?;
        insert_alias(&mut tx, &row.key, default_alias).await?;
        insert_op(&mut tx, op).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves a version record to `Deleting` (still at revision `rev`) and records the operation that will delete
    /// it, unless an alias routes to it: the function is locked and its aliases read in the same transaction, so
    /// an alias created meanwhile either is seen here or sees the version `Deleting`. `Conflict` when the record
    /// moved on or an alias routes to it (re-read and decide again).
    pub async fn begin_delete_version(
        &self,
        version: &FunctionRow,
        op: &NewOp,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin_checked().await?;
        if !lock_function(&mut tx, self.db.dialect, &version.key).await? {
            return Err(StoreError::Conflict);
        }
        let rows = sqlx::query(
            "SELECT name, function_version, routing, description, add_ms, mod_ms FROM aliases \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
        )
        .bind(version.key.app_id)
        .bind(&version.key.namespace)
        .bind(&version.key.name)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            if alias_row(r)?
                .versions()
                .any(|v| v == version.qualifier.as_str())
            {
                return Err(StoreError::Conflict);
            }
        }
        let r = sqlx::query(
            "UPDATE functions SET status = 'Deleting', pending = NULL, pending_code = NULL, rev = rev + 1, \
             mod_ms = $1 WHERE id = $2 AND rev = $3",
        )
        .bind(now)
        .bind(&version.id)
        .bind(version.rev)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        insert_op(&mut tx, op).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a record to `status` with `pending` (or none), provided it is still at revision `rev`, and records
    /// the operation that will finish the change, in one transaction. `Conflict` when the record moved on.
    pub async fn begin_change(
        &self,
        row_id: &str,
        rev: i64,
        status: FunctionStatus,
        pending: Option<&Snapshot>,
        op: &NewOp,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        let r = match pending {
            Some(p) => sqlx::query(
                "UPDATE functions SET status = $1, pending = $2, pending_code = $3, rev = rev + 1, mod_ms = $4 \
                 WHERE id = $5 AND rev = $6",
            )
            .bind(status.as_str())
            .bind(to_json(p))
            .bind(p.code.sha256.clone()),
            None => sqlx::query(
                "UPDATE functions SET status = $1, pending = NULL, pending_code = NULL, rev = rev + 1, mod_ms = $2 \
                 WHERE id = $3 AND rev = $4",
            )
            .bind(status.as_str()),
        }
        .bind(now)
        .bind(row_id)
        .bind(rev)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        insert_op(&mut tx, op).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the next version number of `$LATEST` (still at revision `rev`), inserts the version record and the
    /// operation that will publish it, in one transaction.
    pub async fn begin_publish(
        &self,
        latest_id: &str,
        rev: i64,
        version: &FunctionRow,
        op: &NewOp,
    ) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        let r = sqlx::query(
            "UPDATE functions SET next_version = next_version + 1, rev = rev + 1 WHERE id = $1 AND rev = $2",
        )
        .bind(latest_id)
        .bind(rev)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        insert_function_row(&mut tx, version).await?;
        insert_op(&mut tx, op).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn aliases(&self, key: &FunctionKey) -> Result<Vec<Alias>> {
        let rows = sqlx::query(
            "SELECT name, function_version, routing, description, add_ms, mod_ms FROM aliases \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3 ORDER BY add_ms, name",
        )
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(alias_row).collect()
    }

    pub async fn alias(&self, key: &FunctionKey, name: &str) -> Result<Option<Alias>> {
        let r = sqlx::query(
            "SELECT name, function_version, routing, description, add_ms, mod_ms FROM aliases \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3 AND name = $4",
        )
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(name)
        .fetch_optional(&self.db.read)
        .await?;
        r.as_ref().map(alias_row).transpose()
    }

    /// Inserts an alias unless the function already has `max` of them (`Ok(false)`). The function is locked, and
    /// its aliases counted and the versions the alias routes to checked, in the transaction that inserts:
    /// `Conflict` when the function is gone or a version is missing or being deleted (re-read and decide again).
    pub async fn create_alias(&self, key: &FunctionKey, alias: &Alias, max: i64) -> Result<bool> {
        let mut tx = self.begin_checked().await?;
        if !lock_function(&mut tx, self.db.dialect, key).await? {
            return Err(StoreError::Conflict);
        }
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM aliases WHERE app_id = $1 AND namespace = $2 AND function_name = $3",
        )
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n >= max {
            return Ok(false);
        }
        if !alias_targets_live(&mut tx, key, alias).await? {
            return Err(StoreError::Conflict);
        }
        insert_alias(&mut tx, key, alias).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces an alias's target, routing and description. False when there is no such alias; `Conflict` when
    /// the function is gone or a version it would route to is missing or being deleted (checked under the
    /// function's lock, as for [`Store::create_alias`]).
    pub async fn update_alias(&self, key: &FunctionKey, alias: &Alias) -> Result<bool> {
        let mut tx = self.begin_checked().await?;
        if !lock_function(&mut tx, self.db.dialect, key).await? {
            return Err(StoreError::Conflict);
        }
        if !alias_targets_live(&mut tx, key, alias).await? {
            return Err(StoreError::Conflict);
        }
        let r = sqlx::query(
            "UPDATE aliases SET function_version = $1, routing = $2, description = $3, mod_ms = $4 \
             WHERE app_id = $5 AND namespace = $6 AND function_name = $7 AND name = $8",
        )
        .bind(&alias.function_version)
        .bind(to_json(&alias.routing))
        .bind(&alias.description)
        .bind(alias.mod_ms)
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(&alias.name)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn delete_alias(&self, key: &FunctionKey, name: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM aliases WHERE app_id = $1 AND namespace = $2 AND function_name = $3 AND name = $4",
        )
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(name)
        .execute(&self.db.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
