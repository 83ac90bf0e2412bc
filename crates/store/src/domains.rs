//! Custom domains: a host name that routes its requests to functions by path.
//!
//! A domain is unique installation-wide (the primary key), so a domain belongs to exactly one account; a second
//! account's create fails with `AlreadyExists` in the database, so two concurrent creates cannot both succeed. The
//! routes (`EndpointsConfig`) and tags are stored as the JSON the control plane validated; the store does not read
//! them. Every update is conditional on the revision the caller read.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::{Result, StoreError, is_unique_violation};

/// One custom domain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    /// The host name, lower case.
    pub domain: String,
    pub app_id: i64,
    /// `HTTP`, `HTTPS` or `HTTP&HTTPS`.
    pub protocol: String,
    /// The routes, as the control plane's JSON.
    pub endpoints: String,
    /// `CertConfig.CertificateId` (empty: none).
    pub cert_id: String,
    /// `WafConfig.WafOpen` and `WafInstanceId`, stored and shown back (empty: not given).
    pub waf_open: String,
    pub waf_instance_id: String,
    /// The tags, as a JSON array of `{"Key","Value"}`.
    pub tags: String,
    /// Bumped by every change: updates condition on it.
    pub rev: i64,
    pub add_ms: i64,
    pub mod_ms: i64,
}

/// How ListCustomDomains sorts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DomainOrder {
    #[default]
    AddTime,
    ModTime,
}

const COLUMNS: &str = "domain, app_id, protocol, endpoints, cert_id, waf_open, waf_instance_id, tags, rev, add_ms, mod_ms";

fn domain_row(r: &AnyRow) -> Result<DomainRow> {
    Ok(DomainRow {
        domain: r.try_get("domain")?,
        app_id: r.try_get("app_id")?,
        protocol: r.try_get("protocol")?,
        endpoints: r.try_get("endpoints")?,
        cert_id: r.try_get("cert_id")?,
        waf_open: r.try_get("waf_open")?,
        waf_instance_id: r.try_get("waf_instance_id")?,
        tags: r.try_get("tags")?,
        rev: r.try_get("rev")?,
        add_ms: r.try_get("add_ms")?,
        mod_ms: r.try_get("mod_ms")?,
    })
}

impl Store {
    /// Inserts a domain; `AlreadyExists("domain")` when any account has it already.
    pub async fn create_domain(&self, row: &DomainRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO custom_domains ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&row.domain)
        .bind(row.app_id)
        .bind(&row.protocol)
        .bind(&row.endpoints)
        .bind(&row.cert_id)
        .bind(&row.waf_open)
        .bind(&row.waf_instance_id)
        .bind(&row.tags)
        .bind(row.rev)
        .bind(row.add_ms)
        .bind(row.mod_ms)
        .execute(&self.db.write)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists("domain")
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// A domain, whichever account has it.
    pub async fn domain(&self, domain: &str) -> Result<Option<DomainRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM custom_domains WHERE domain = $1"
        ))
        .bind(domain)
        .fetch_optional(&self.db.read)
        .await?
        .map(|r| domain_row(&r))
        .transpose()
    }

    /// One page of an account's domains, and how many it has.
    pub async fn list_domains(
        &self,
        app_id: i64,
        order: DomainOrder,
        descending: bool,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<DomainRow>, i64)> {
        let col = match order {
            DomainOrder::AddTime => "add_ms",
            DomainOrder::ModTime => "mod_ms",
        };
        let dir = if descending { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM custom_domains WHERE app_id = $1 \
             ORDER BY {col} {dir}, domain {dir} LIMIT $2 OFFSET $3"
        ))
        .bind(app_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db.read)
        .await?
        .iter()
        .map(domain_row)
        .collect::<Result<Vec<_>>>()?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM custom_domains WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(&self.db.read)
            .await?
            .try_get("n")?;
        Ok((rows, total))
    }

    /// Replaces a domain's settings if it is still at revision `rev` (the row's `rev` is the next one);
    /// `Conflict` otherwise.
    pub async fn update_domain(&self, rev: i64, row: &DomainRow) -> Result<()> {
        let done = sqlx::query(
            "UPDATE custom_domains SET protocol = $1, endpoints = $2, cert_id = $3, waf_open = $4, \
             waf_instance_id = $5, tags = $6, rev = $7, mod_ms = $8 \
             WHERE domain = $9 AND app_id = $10 AND rev = $11",
        )
        .bind(&row.protocol)
        .bind(&row.endpoints)
        .bind(&row.cert_id)
        .bind(&row.waf_open)
        .bind(&row.waf_instance_id)
        .bind(&row.tags)
        .bind(row.rev)
        .bind(row.mod_ms)
        .bind(&row.domain)
        .bind(row.app_id)
        .bind(rev)
        .execute(&self.db.write)
        .await?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Removes an account's domain; `false` when it has no such domain.
    pub async fn delete_domain(&self, app_id: i64, domain: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM custom_domains WHERE domain = $1 AND app_id = $2")
            .bind(domain)
            .bind(app_id)
            .execute(&self.db.write)
            .await?
            .rows_affected();
        Ok(done == 1)
    }
}
