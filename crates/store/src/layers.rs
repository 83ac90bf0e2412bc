//! Layer versions.

use model::{CodeRef, LayerStatus, LayerVersion};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::functions::{from_json, to_json};
use crate::ops::{NewOp, insert_op};

const COLUMNS: &str = "app_id, name, version, status, reasons, description, license, runtimes, content_sha, content_size, rev, add_ms";

/// A stored layer version with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub layer: LayerVersion,
    pub rev: i64,
}

fn layer_row(r: &AnyRow) -> Result<LayerRow> {
    let status: String = r.try_get("status")?;
    let size: i64 = r.try_get("content_size")?;
    Ok(LayerRow {
        layer: LayerVersion {
            app_id: r.try_get("app_id")?,
            name: r.try_get("name")?,
            version: r.try_get("version")?,
            status: status
                .parse()
                .map_err(|e| StoreError::corrupt("layers.status", e))?,
            reasons: from_json("layers.reasons", &r.try_get::<String, _>("reasons")?)?,
            description: r.try_get("description")?,
            license: r.try_get("license")?,
            compatible_runtimes: from_json(
                "layers.runtimes",
                &r.try_get::<String, _>("runtimes")?,
            )?,
            content: CodeRef {
                sha256: r.try_get("content_sha")?,
                size: u64::try_from(size)
                    .map_err(|e| StoreError::corrupt("layers.content_size", e))?,
            },
            add_ms: r.try_get("add_ms")?,
        },
        rev: r.try_get("rev")?,
    })
}

/// The key an operation on a layer version targets.
pub fn layer_target(app_id: i64, name: &str, version: i64) -> String {
    format!("layer:{app_id}:{name}:{version}")
}

impl Store {
    /// Takes the layer's next version number (never reused, even after deletes), records the version as
    /// `Publishing` and the operation that will finish it, in one transaction. Returns the number, or `None` when
    /// the layer already has `max_versions` versions.
    pub async fn begin_publish_layer(
        &self,
        layer: &LayerVersion,
        max_versions: i64,
        make_op: impl FnOnce(i64) -> NewOp,
    ) -> Result<Option<i64>> {
        let mut tx = self.db.write.begin().await?;
        sqlx::query(
            "INSERT INTO layer_names (app_id, name, next_version) VALUES ($1, $2, 1) ON CONFLICT (app_id, name) DO NOTHING",
        )
        .bind(layer.app_id)
        .bind(&layer.name)
        .execute(&mut *tx)
        .await?;
        // The counter row is updated (and so locked) before the live versions are counted: concurrent publishes
        // of one layer count one after the other, and a refused one rolls its number back.
        let version: i64 = sqlx::query(
            "UPDATE layer_names SET next_version = next_version + 1 WHERE app_id = $1 AND name = $2 RETURNING next_version - 1 AS v",
        )
        .bind(layer.app_id)
        .bind(&layer.name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
        let live: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM layers WHERE app_id = $1 AND name = $2 AND status <> 'Deleted'",
        )
        .bind(layer.app_id)
        .bind(&layer.name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if live >= max_versions {
            return Ok(None);
        }
        sqlx::query(&format!(
            "INSERT INTO layers ({COLUMNS}, mod_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11)"
        ))
        .bind(layer.app_id)
        .bind(&layer.name)
        .bind(version)
        .bind(layer.status.as_str())
        .bind(to_json(&layer.reasons))
        .bind(&layer.description)
        .bind(&layer.license)
        .bind(to_json(&layer.compatible_runtimes))
        .bind(&layer.content.sha256)
        .bind(i64::try_from(layer.content.size).unwrap_or(i64::MAX))
        .bind(layer.add_ms)
        .execute(&mut *tx)
        .await?;
        insert_op(&mut tx, &make_op(version)).await?;
        tx.commit().await?;
        Ok(Some(version))
    }

    pub async fn layer_version(
        &self,
        app_id: i64,
        name: &str,
        version: i64,
    ) -> Result<Option<LayerRow>> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM layers WHERE app_id = $1 AND name = $2 AND version = $3"
        ))
        .bind(app_id)
        .bind(name)
        .bind(version)
        .fetch_optional(&self.db.read)
        .await?;
        r.as_ref().map(layer_row).transpose()
    }

    /// The versions of one layer, newest first, without `Deleted` tombstones.
    pub async fn layer_versions(&self, app_id: i64, name: &str) -> Result<Vec<LayerRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM layers WHERE app_id = $1 AND name = $2 AND status <> 'Deleted' ORDER BY version DESC"
        ))
        .bind(app_id)
        .bind(name)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(layer_row).collect()
    }

    /// Each layer's newest version that is not `Deleted`, by layer name.
    pub async fn latest_layers(&self, app_id: i64) -> Result<Vec<LayerRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM layers l WHERE app_id = $1 AND status <> 'Deleted' AND version = \
             (SELECT MAX(version) FROM layers m WHERE m.app_id = l.app_id AND m.name = l.name AND m.status <> 'Deleted') \
             ORDER BY name"
        ))
        .bind(app_id)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(layer_row).collect()
    }

    /// Moves a layer version to `status` if it is still at revision `rev`, and records the operation.
    pub async fn begin_layer_change(
        &self,
        row: &LayerRow,
        status: LayerStatus,
        op: &NewOp,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.db.write.begin().await?;
        let r = sqlx::query(
            "UPDATE layers SET status = $1, rev = rev + 1, mod_ms = $2 WHERE app_id = $3 AND name = $4 AND version = $5 AND rev = $6",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(row.layer.app_id)
        .bind(&row.layer.name)
        .bind(row.layer.version)
        .bind(row.rev)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        insert_op(&mut tx, op).await?;
        tx.commit().await?;
        Ok(())
    }
}
