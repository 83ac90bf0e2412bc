//! Triggers: what makes a function run without a caller waiting (timers today).
//!
//! A trigger row belongs to one function and is bound to one of its qualifiers. Its `function_row` references the
//! record it is bound to (the version's row for a version, `$LATEST`'s row for `$LATEST` and for an alias) and,
//! when bound to an alias, its `alias` references that alias; both foreign keys cascade, so the transaction that
//! removes a function, a version or an alias removes the triggers bound to it, and an insert racing such a removal
//! fails instead of leaving a trigger behind. Every write is conditional on the revision of the function's
//! `$LATEST` record the caller decided from; creation counts the triggers of its type in the same transaction.

use model::FunctionKey;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::Dialect;
use crate::error::{Result, StoreError, is_unique_violation};

/// One trigger as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRow {
    /// Unique per creation: a trigger deleted and created again under the same name gets a new id.
    pub id: String,
    pub key: FunctionKey,
    /// `timer`, …: the control plane gives it meaning.
    pub trigger_type: String,
    pub name: String,
    /// The qualifier as given: `$LATEST`, a version number or an alias name.
    pub qualifier: String,
    /// The id of the function record it is bound to (`$LATEST`'s row for `$LATEST` and for an alias).
    pub function_row: String,
    /// The alias it is bound to, if it is bound to one.
    pub alias: Option<String>,
    /// `TriggerDesc` as stored (for a timer `{"cron":"…"}`).
    pub desc: String,
    pub enabled: bool,
    pub custom_argument: String,
    pub description: String,
    pub resource_id: String,
    /// Bumped by every change: updates condition on it.
    pub rev: i64,
    pub add_ms: i64,
    pub mod_ms: i64,
}

/// How ListTriggers sorts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TriggerOrder {
    AddTime,
    #[default]
    ModTime,
}

/// A ListTriggers query. Each list, when not empty, keeps the triggers matching any of its values.
#[derive(Debug, Clone, Default)]
pub struct TriggerQuery {
    /// Exact qualifiers.
    pub qualifiers: Vec<String>,
    /// Exact names.
    pub names: Vec<String>,
    /// Substrings of the description.
    pub descriptions: Vec<String>,
    pub order_by: TriggerOrder,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

const COLUMNS: &str = "id, app_id, namespace, function_name, trigger_type, name, qualifier, function_row, alias, \
     trigger_desc, enabled, custom_argument, description, resource_id, rev, add_ms, mod_ms";

fn trigger_row(r: &AnyRow) -> Result<TriggerRow> {
    Ok(TriggerRow {
        id: r.try_get("id")?,
        key: FunctionKey {
            app_id: r.try_get("app_id")?,
            namespace: r.try_get("namespace")?,
            name: r.try_get("function_name")?,
        },
        trigger_type: r.try_get("trigger_type")?,
        name: r.try_get("name")?,
        qualifier: r.try_get("qualifier")?,
        function_row: r.try_get("function_row")?,
        alias: r.try_get("alias")?,
        desc: r.try_get("trigger_desc")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        custom_argument: r.try_get("custom_argument")?,
        description: r.try_get("description")?,
        resource_id: r.try_get("resource_id")?,
        rev: r.try_get("rev")?,
        add_ms: r.try_get("add_ms")?,
        mod_ms: r.try_get("mod_ms")?,
    })
}

/// A referenced row vanished under the write (the function, version or alias was removed meanwhile).
fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

impl Store {
    /// Locks the `$LATEST` record (on PostgreSQL; SQLite has one writer) and checks it is still at revision `rev`:
    /// `Conflict` otherwise, so the caller reads again and decides again.
    async fn hold_function(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        latest_id: &str,
        rev: i64,
    ) -> Result<()> {
        let sql = match self.db.dialect {
            Dialect::Sqlite => "SELECT rev FROM functions WHERE id = $1",
            Dialect::Postgres => "SELECT rev FROM functions WHERE id = $1 FOR UPDATE",
        };
        let now: Option<i64> = sqlx::query(sql)
            .bind(latest_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("rev"))
            .transpose()?;
        if now == Some(rev) {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Inserts a trigger unless its function already has `max_per_type` triggers of that type, provided the
    /// function's `$LATEST` record is still at revision `latest_rev`. `Ok(false)`: the limit is reached;
    /// `AlreadyExists`: the function has a trigger of that type and name; `Conflict`: the function changed or its
    /// bound record went away meanwhile.
    pub async fn create_trigger(
        &self,
        latest_id: &str,
        latest_rev: i64,
        row: &TriggerRow,
        max_per_type: i64,
    ) -> Result<bool> {
        let mut tx = self.db.write.begin().await?;
        self.hold_function(&mut tx, latest_id, latest_rev).await?;
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM triggers \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3 AND trigger_type = $4",
        )
        .bind(row.key.app_id)
        .bind(&row.key.namespace)
        .bind(&row.key.name)
        .bind(&row.trigger_type)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n >= max_per_type {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO triggers ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&row.id)
        .bind(row.key.app_id)
        .bind(&row.key.namespace)
        .bind(&row.key.name)
        .bind(&row.trigger_type)
        .bind(&row.name)
        .bind(&row.qualifier)
        .bind(&row.function_row)
        .bind(row.alias.clone())
        .bind(&row.desc)
        .bind(i64::from(row.enabled))
        .bind(&row.custom_argument)
        .bind(&row.description)
        .bind(&row.resource_id)
        .bind(row.rev)
        .bind(row.add_ms)
        .bind(row.mod_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists("trigger")
            } else if is_foreign_key_violation(&e) {
                StoreError::Conflict
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(true)
    }

    /// One trigger of a function, by type and name.
    pub async fn trigger(
        &self,
        key: &FunctionKey,
        trigger_type: &str,
        name: &str,
    ) -> Result<Option<TriggerRow>> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM triggers \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3 AND trigger_type = $4 AND name = $5"
        ))
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(trigger_type)
        .bind(name)
        .fetch_optional(&self.db.read)
        .await?;
        r.as_ref().map(trigger_row).transpose()
    }

    /// One trigger by its id (a function URL names its trigger by id), with the type it must have.
    pub async fn trigger_by_id(&self, id: &str, trigger_type: &str) -> Result<Option<TriggerRow>> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM triggers WHERE id = $1 AND trigger_type = $2"
        ))
        .bind(id)
        .bind(trigger_type)
        .fetch_optional(&self.db.read)
        .await?;
        r.as_ref().map(trigger_row).transpose()
    }

    /// Replaces a trigger's description of its source, its state, its custom argument and its description, provided
    /// the trigger is still at `row.rev` and the function's `$LATEST` record at `latest_rev` (`Conflict` otherwise).
    pub async fn update_trigger(
        &self,
        latest_id: &str,
        latest_rev: i64,
        row: &TriggerRow,
    ) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        self.hold_function(&mut tx, latest_id, latest_rev).await?;
        let r = sqlx::query(
            "UPDATE triggers SET trigger_desc = $1, enabled = $2, custom_argument = $3, description = $4, \
             mod_ms = $5, rev = rev + 1 WHERE id = $6 AND rev = $7",
        )
        .bind(&row.desc)
        .bind(i64::from(row.enabled))
        .bind(&row.custom_argument)
        .bind(&row.description)
        .bind(row.mod_ms)
        .bind(&row.id)
        .bind(row.rev)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a trigger, provided the function's `$LATEST` record is still at `latest_rev` (`Conflict`
    /// otherwise). False when it was already gone.
    pub async fn delete_trigger(
        &self,
        latest_id: &str,
        latest_rev: i64,
        trigger_id: &str,
    ) -> Result<bool> {
        let mut tx = self.db.write.begin().await?;
        self.hold_function(&mut tx, latest_id, latest_rev).await?;
        let r = sqlx::query("DELETE FROM triggers WHERE id = $1")
            .bind(trigger_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// The triggers of a function, filtered, sorted and paged, with the total count before paging.
    pub async fn list_triggers(
        &self,
        key: &FunctionKey,
        q: &TriggerQuery,
    ) -> Result<(Vec<TriggerRow>, i64)> {
        let mut filter = String::from("app_id = $1 AND namespace = $2 AND function_name = $3");
        let mut binds: Vec<String> = Vec::new();
        let mut next = 4;
        for (col, vals) in [("qualifier", &q.qualifiers), ("name", &q.names)] {
            if vals.is_empty() {
                continue;
            }
            let ph: Vec<String> = (0..vals.len()).map(|i| format!("${}", next + i)).collect();
            filter.push_str(&format!(" AND {col} IN ({})", ph.join(", ")));
            binds.extend(vals.iter().cloned());
            next += vals.len();
        }
        if !q.descriptions.is_empty() {
            let ph: Vec<String> = (0..q.descriptions.len())
                .map(|i| format!("description LIKE ${} ESCAPE '\\'", next + i))
                .collect();
            filter.push_str(&format!(" AND ({})", ph.join(" OR ")));
            binds.extend(q.descriptions.iter().map(|d| {
                format!(
                    "%{}%",
                    d.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                )
            }));
            next += q.descriptions.len();
        }
        let order_col = match q.order_by {
            TriggerOrder::AddTime => "add_ms",
            TriggerOrder::ModTime => "mod_ms",
        };
        let dir = if q.descending { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM triggers WHERE {filter}");
        let list_sql = format!(
            "SELECT {COLUMNS} FROM triggers WHERE {filter} \
             ORDER BY {order_col} {dir}, name {dir}, trigger_type {dir} LIMIT ${} OFFSET ${}",
            next,
            next + 1
        );
        let mut count = sqlx::query(&count_sql)
            .bind(key.app_id)
            .bind(&key.namespace)
            .bind(&key.name);
        let mut list = sqlx::query(&list_sql)
            .bind(key.app_id)
            .bind(&key.namespace)
            .bind(&key.name);
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
            rows.iter().map(trigger_row).collect::<Result<Vec<_>>>()?,
            total,
        ))
    }

    /// The triggers bound to one qualifier of a function (GetFunction's `Triggers`), oldest first.
    pub async fn triggers_bound_to(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Vec<TriggerRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM triggers \
             WHERE app_id = $1 AND namespace = $2 AND function_name = $3 AND qualifier = $4 \
             ORDER BY add_ms, name, trigger_type"
        ))
        .bind(key.app_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(qualifier)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(trigger_row).collect()
    }

    /// Every open (enabled) trigger of a type, across accounts: what a scheduler works from. Read from a partial
    /// index of open triggers by type, so closed ones cost nothing.
    pub async fn open_triggers(&self, trigger_type: &str) -> Result<Vec<TriggerRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM triggers WHERE trigger_type = $1 AND enabled = 1 ORDER BY id"
        ))
        .bind(trigger_type)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(trigger_row).collect()
    }
}
