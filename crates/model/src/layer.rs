//! Layer versions.

use crate::{CodeRef, LayerStatus, StatusReason};

/// One version of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerVersion {
    pub app_id: i64,
    pub name: String,
    pub version: i64,
    pub status: LayerStatus,
    pub reasons: Vec<StatusReason>,
    pub description: String,
    pub license: String,
    pub compatible_runtimes: Vec<String>,
    pub content: CodeRef,
    pub add_ms: i64,
}
