//! Per-account limits, shown by GetAccount and enforced by the control plane.

/// Limits of one account. Defaults follow SCF's published quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub namespaces: i64,
    pub functions_per_namespace: i64,
    pub versions_per_function: i64,
    pub aliases_per_function: i64,
    /// Most triggers of one type on one function (`LimitExceeded.Trigger`).
    pub triggers_per_type: i64,
    pub layers_per_function: usize,
    pub layer_versions_per_layer: i64,
    pub concurrent_executions: i64,
    pub timeout_max: i64,
    pub init_timeout_max: i64,
    /// Largest zip accepted in `Code.ZipFile` / `Content.ZipFile`, in bytes (decoded).
    pub zip_bytes_max: u64,
    /// Largest unpacked size of a function with all its layers, in bytes.
    pub unpacked_bytes_max: u64,
    pub environment_bytes_max: usize,
    pub description_chars_max: usize,
    /// Largest JSON of one kept integration setting (`VpcConfig`, `ProtocolParams`, …), in bytes.
    pub stored_setting_bytes_max: usize,
    /// Largest JSON of all kept integration settings of one function together, in bytes.
    pub stored_settings_bytes_max: usize,
    /// Most tags on one function.
    pub tags_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            namespaces: 5,
            functions_per_namespace: 1000,
            versions_per_function: 1000,
            aliases_per_function: 10,
            triggers_per_type: 10,
            layers_per_function: 5,
            layer_versions_per_layer: 200,
            concurrent_executions: 128,
            timeout_max: 900,
            init_timeout_max: 300,
            zip_bytes_max: 50 * 1024 * 1024,
            unpacked_bytes_max: 500 * 1024 * 1024,
            environment_bytes_max: 4096,
            description_chars_max: 1000,
            stored_setting_bytes_max: 16 * 1024,
            stored_settings_bytes_max: 64 * 1024,
            tags_max: 50,
        }
    }
}
