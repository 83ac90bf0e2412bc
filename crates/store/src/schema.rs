//! The one set of migrations, written in the SQL that SQLite and PostgreSQL both speak (BIGINT, TEXT, no
//! auto-increment, JSON kept as TEXT). A migration that needs a dialect of its own gives both texts.

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

const V1: &str = r#"
CREATE TABLE accounts (
    app_id BIGINT PRIMARY KEY,
    uin TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE TABLE api_keys (
    secret_id TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    app_id BIGINT NOT NULL REFERENCES accounts (app_id),
    created_ms BIGINT NOT NULL
);
CREATE TABLE namespaces (
    app_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    add_ms BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE TABLE functions (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL,
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    serving TEXT,
    pending TEXT,
    serving_code TEXT,
    pending_code TEXT,
    runtime TEXT NOT NULL,
    description TEXT NOT NULL,
    version_description TEXT NOT NULL,
    next_version BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    add_ms BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    UNIQUE (app_id, namespace, name, qualifier)
);
CREATE INDEX functions_by_add ON functions (app_id, namespace, qualifier, add_ms);
CREATE INDEX functions_by_mod ON functions (app_id, namespace, qualifier, mod_ms);
CREATE TABLE aliases (
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    name TEXT NOT NULL,
    function_version TEXT NOT NULL,
    routing TEXT NOT NULL,
    description TEXT NOT NULL,
    add_ms BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, namespace, function_name, name)
);
CREATE TABLE layer_names (
    app_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    next_version BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE TABLE layers (
    app_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    description TEXT NOT NULL,
    license TEXT NOT NULL,
    runtimes TEXT NOT NULL,
    content_sha TEXT NOT NULL,
    content_size BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    add_ms BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, name, version)
);
CREATE TABLE operations (
    id TEXT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    outcome TEXT
);
CREATE INDEX operations_due ON operations (state, lease_until);
CREATE INDEX operations_target ON operations (target, state);
"#;

const V2: &str = r#"
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Blobs shared by every node of a cluster (PostgreSQL); on SQLite the table exists but stays empty, since one node
/// keeps its blobs on its own disk.
const V3_SQLITE: &str = r#"
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    content BLOB NOT NULL,
    created_ms BIGINT NOT NULL
);
"#;
const V3_POSTGRES: &str = r#"
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    content BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
"#;

/// One row per invocation: its result, log and metering figures (GetFunctionLogs, GetRequestStatus, billing).
const V4: &str = r#"
CREATE TABLE invocations (
    request_id TEXT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    bill_ms BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    mem_bytes BIGINT NOT NULL,
    status_code BIGINT NOT NULL,
    ret_msg TEXT NOT NULL,
    log TEXT NOT NULL,
    cold_start BIGINT NOT NULL
);
CREATE INDEX invocations_by_function ON invocations (app_id, namespace, function_name, start_ms);
CREATE INDEX invocations_by_start ON invocations (start_ms);
"#;

/// Claiming walks the pending operations in creation order; with only the (state, lease) index every claim sorted
/// all of them.
const V5: &str = r#"
CREATE INDEX operations_pending ON operations (created_ms) WHERE state = 'pending';
DROP INDEX operations_due;
"#;

/// Failed attempts are counted apart from claims: `attempt` is the fencing token and changes on every claim, while
/// the give-up is decided on the attempts that ended without finishing (see `Store::claim_op`). Operations pending
/// at the upgrade start with a clean count.
const V6: &str = r#"
ALTER TABLE operations ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
"#;

/// Triggers (timers today). The foreign keys cascade: removing a function record (the whole function, or the
/// version a trigger is bound to) or the alias a trigger is bound to removes the trigger in the same transaction.
/// The partial index serves the scheduler's read of the open triggers of a type.
const V7: &str = r#"
CREATE TABLE triggers (
    id TEXT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    function_row TEXT NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    alias TEXT,
    trigger_desc TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    custom_argument TEXT NOT NULL,
    description TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    rev BIGINT NOT NULL,
    add_ms BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    UNIQUE (app_id, namespace, function_name, trigger_type, name),
    FOREIGN KEY (app_id, namespace, function_name, alias)
        REFERENCES aliases (app_id, namespace, function_name, name) ON DELETE CASCADE
);
CREATE INDEX triggers_by_row ON triggers (function_row);
CREATE INDEX triggers_open ON triggers (trigger_type) WHERE enabled = 1;
"#;

/// Function URLs (`http` triggers): a function's qualifier has at most one, enforced by the database so that two
/// concurrent creates cannot both succeed.
const V11: &str = r#"
CREATE UNIQUE INDEX triggers_one_url ON triggers (app_id, namespace, function_name, qualifier)
    WHERE trigger_type = 'http';
"#;

/// Asynchronous events (Invoke with `InvocationType=Event`, later timer firings) and the retry number of each
/// invocation record. An event is one row from its acceptance to its end; while it is `RUNNING`, `due_ms` (the
/// database's clock) is when it may next be claimed: its lease while a dispatcher holds it (`lease_owner` set), or
/// the time of its next attempt (`lease_owner` NULL). `fair_rank` orders claims so that one function's backlog
/// does not starve the others (see `Store::insert_event`).
///
/// `event_configs` holds a function's retry settings (UpdateFunctionEventInvokeConfig); it references the function's
/// `$LATEST` record, so deleting the function deletes them in that transaction.
///
/// An invocation record is now one attempt: the retries of an event share its request id and differ by
/// `retry_num`, so the key becomes (request_id, retry_num); the table is rebuilt (SQLite cannot change a key).
const V8: &str = r#"
CREATE TABLE async_events (
    id TEXT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    uin TEXT NOT NULL,
    region TEXT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    version TEXT NOT NULL,
    invoke_type TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT,
    retry_num BIGINT NOT NULL,
    throttles BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    lease_owner TEXT,
    due_ms BIGINT NOT NULL,
    fair_rank BIGINT NOT NULL,
    abort_requested BIGINT NOT NULL,
    accepted_db_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX async_events_due ON async_events (fair_rank, start_ms) WHERE status = 'RUNNING';
CREATE INDEX async_events_by_function ON async_events (app_id, namespace, function_name, status, fair_rank);
CREATE INDEX async_events_ended ON async_events (updated_ms) WHERE status <> 'RUNNING';
CREATE TABLE event_configs (
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    retry_num BIGINT NOT NULL,
    msg_ttl_secs BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, namespace, function_name),
    FOREIGN KEY (app_id, namespace, function_name, qualifier)
        REFERENCES functions (app_id, namespace, name, qualifier) ON DELETE CASCADE
);
CREATE TABLE invocations_v8 (
    request_id TEXT NOT NULL,
    retry_num BIGINT NOT NULL,
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    bill_ms BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    mem_bytes BIGINT NOT NULL,
    status_code BIGINT NOT NULL,
    ret_msg TEXT NOT NULL,
    log TEXT NOT NULL,
    cold_start BIGINT NOT NULL,
    PRIMARY KEY (request_id, retry_num)
);
INSERT INTO invocations_v8 (request_id, retry_num, app_id, namespace, function_name, qualifier, start_ms,
    duration_us, bill_ms, memory_mb, mem_bytes, status_code, ret_msg, log, cold_start)
    SELECT request_id, 0, app_id, namespace, function_name, qualifier, start_ms, duration_us, bill_ms, memory_mb,
    mem_bytes, status_code, ret_msg, log, cold_start FROM invocations;
DROP TABLE invocations;
ALTER TABLE invocations_v8 RENAME TO invocations;
CREATE INDEX invocations_by_function ON invocations (app_id, namespace, function_name, start_ms);
CREATE INDEX invocations_by_start ON invocations (start_ms);
"#;

/// Custom domains: the domain is the key, so one domain belongs to one account installation-wide.
const V16: &str = r#"
CREATE TABLE custom_domains (
    domain TEXT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    protocol TEXT NOT NULL,
    endpoints TEXT NOT NULL,
    cert_id TEXT NOT NULL,
    waf_open TEXT NOT NULL,
    waf_instance_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    rev BIGINT NOT NULL,
    add_ms BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL
);
CREATE INDEX custom_domains_by_account ON custom_domains (app_id, add_ms);
"#;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts, namespaces, functions, aliases, layers, operations",
        sqlite: V1,
        postgres: V1,
    },
    Migration {
        version: 2,
        name: "installation-wide settings",
        sqlite: V2,
        postgres: V2,
    },
    Migration {
        version: 3,
        name: "blobs shared through the database",
        sqlite: V3_SQLITE,
        postgres: V3_POSTGRES,
    },
    Migration {
        version: 4,
        name: "invocation records",
        sqlite: V4,
        postgres: V4,
    },
    Migration {
        version: 5,
        name: "pending operations in creation order",
        sqlite: V5,
        postgres: V5,
    },
    Migration {
        version: 6,
        name: "failed attempts of an operation",
        sqlite: V6,
        postgres: V6,
    },
    Migration {
        version: 7,
        name: "triggers",
        sqlite: V7,
        postgres: V7,
    },
    Migration {
        version: 8,
        name: "asynchronous events; the retry number of invocation records",
        sqlite: V8,
        postgres: V8,
    },
    Migration {
        version: 11,
        name: "one function URL per qualifier",
        sqlite: V11,
        postgres: V11,
    },
    Migration {
        version: 16,
        name: "custom domains",
        sqlite: V16,
        postgres: V16,
    },
];

/// The version of every migration, in the order they are applied (the numbers need not be contiguous).
pub fn migration_versions() -> impl Iterator<Item = i64> {
    MIGRATIONS.iter().map(|m| m.version)
}
