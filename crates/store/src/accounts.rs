//! Accounts, their API keys, and namespaces.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::{Result, StoreError, is_unique_violation};
use crate::functions::for_update;

/// An account: it owns keys and every resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub app_id: i64,
    pub uin: String,
    pub created_ms: i64,
}

/// What a SecretId resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub secret_id: String,
    pub secret_key: String,
    pub app_id: i64,
    pub uin: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    pub add_ms: i64,
    pub mod_ms: i64,
}

fn namespace(r: &AnyRow) -> Result<Namespace> {
    Ok(Namespace {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        add_ms: r.try_get("add_ms")?,
        mod_ms: r.try_get("mod_ms")?,
    })
}

impl Store {
    /// An installation-wide setting, set to `value` if it had none (the first node to ask decides).
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.db.write)
        .await?;
        let r = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db.write)
            .await?;
        Ok(r.try_get("value")?)
    }

    pub async fn count_accounts(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM accounts")
            .fetch_one(&self.db.read)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// Creates an account, its `default` namespace and its first key, in one transaction.
    pub async fn create_account(&self, account: &Account, key: &ApiKey) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        sqlx::query("INSERT INTO accounts (app_id, uin, created_ms) VALUES ($1, $2, $3)")
            .bind(account.app_id)
            .bind(&account.uin)
            .bind(account.created_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists("account")
                } else {
                    e.into()
                }
            })?;
        sqlx::query(
            "INSERT INTO namespaces (app_id, name, description, add_ms, mod_ms) VALUES ($1, 'default', '', $2, $2)",
        )
        .bind(account.app_id)
        .bind(account.created_ms)
        .execute(&mut *tx)
        .await?;
        insert_key(&mut tx, key, account.created_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds another key to an existing account.
    pub async fn create_key(&self, key: &ApiKey) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        insert_key(&mut tx, key, crate::now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn account(&self, app_id: i64) -> Result<Option<Account>> {
        let r = sqlx::query("SELECT app_id, uin, created_ms FROM accounts WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&self.db.read)
            .await?;
        r.map(|r| {
            Ok(Account {
                app_id: r.try_get("app_id")?,
                uin: r.try_get("uin")?,
                created_ms: r.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT app_id, uin, created_ms FROM accounts ORDER BY app_id")
            .fetch_all(&self.db.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Account {
                    app_id: r.try_get("app_id")?,
                    uin: r.try_get("uin")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }

    /// Resolves a SecretId to its key and account.
    pub async fn api_key(&self, secret_id: &str) -> Result<Option<ApiKey>> {
        let r = sqlx::query(
            "SELECT k.secret_id, k.secret_key, k.app_id, a.uin FROM api_keys k JOIN accounts a ON a.app_id = k.app_id WHERE k.secret_id = $1",
        )
        .bind(secret_id)
        .fetch_optional(&self.db.read)
        .await?;
        r.map(|r| {
            Ok(ApiKey {
                secret_id: r.try_get("secret_id")?,
                secret_key: r.try_get("secret_key")?,
                app_id: r.try_get("app_id")?,
                uin: r.try_get("uin")?,
            })
        })
        .transpose()
    }

    pub async fn namespaces(&self, app_id: i64) -> Result<Vec<Namespace>> {
        let rows = sqlx::query(
            "SELECT name, description, add_ms, mod_ms FROM namespaces WHERE app_id = $1 ORDER BY add_ms, name",
        )
        .bind(app_id)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(namespace).collect()
    }

    pub async fn namespace(&self, app_id: i64, name: &str) -> Result<Option<Namespace>> {
        let r = sqlx::query(
            "SELECT name, description, add_ms, mod_ms FROM namespaces WHERE app_id = $1 AND name = $2",
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(&self.db.read)
        .await?;
        r.as_ref().map(namespace).transpose()
    }

    /// Inserts a namespace unless the account already has `max` of them. The account row is locked before the
    /// count, so two concurrent creates cannot both pass the quota (PostgreSQL's READ COMMITTED would let two
    /// counts that each miss the other's insert).
    pub async fn create_namespace(&self, app_id: i64, ns: &Namespace, max: i64) -> Result<bool> {
        let mut tx = self.begin_checked().await?;
        sqlx::query(&format!(
            "SELECT app_id FROM accounts WHERE app_id = $1{}",
            for_update(self.db.dialect)
        ))
        .bind(app_id)
        .fetch_optional(&mut *tx)
        .await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM namespaces WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if n >= max {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO namespaces (app_id, name, description, add_ms, mod_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(app_id)
        .bind(&ns.name)
        .bind(&ns.description)
        .bind(ns.add_ms)
        .bind(ns.mod_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists("namespace")
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(true)
    }

    /// Returns false when there is no such namespace.
    pub async fn update_namespace(
        &self,
        app_id: i64,
        name: &str,
        description: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE namespaces SET description = $1, mod_ms = $2 WHERE app_id = $3 AND name = $4",
        )
        .bind(description)
        .bind(now)
        .bind(app_id)
        .bind(name)
        .execute(&self.db.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes an empty namespace. `Ok(None)`: no such namespace; `Ok(Some(n))` with n > 0: it still holds n
    /// functions and was kept. The namespace row is locked before the count, as a function create locks it
    /// before inserting (`Store::create_function_within`), so no function is created in a deleted namespace.
    pub async fn delete_namespace(&self, app_id: i64, name: &str) -> Result<Option<i64>> {
        let mut tx = self.begin_checked().await?;
        let exists = sqlx::query(&format!(
            "SELECT name FROM namespaces WHERE app_id = $1 AND name = $2{}",
            for_update(self.db.dialect)
        ))
        .bind(app_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !exists {
            return Ok(None);
        }
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM functions WHERE app_id = $1 AND namespace = $2 AND qualifier = '$LATEST'",
        )
        .bind(app_id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n > 0 {
            return Ok(Some(n));
        }
        let r = sqlx::query("DELETE FROM namespaces WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((r.rows_affected() == 1).then_some(0))
    }
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &ApiKey,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (secret_id, secret_key, app_id, created_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.secret_id)
    .bind(&key.secret_key)
    .bind(key.app_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists("key")
        } else {
            e.into()
        }
    })?;
    Ok(())
}
