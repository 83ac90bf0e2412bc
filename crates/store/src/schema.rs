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

/// The status change log (the live status stream): one row per status change of a function, a version, a layer
/// version or an asynchronous event, written by database triggers in the transaction that changes the status, so
/// no writer can forget it and a rolled-back change leaves no row. `id` orders the rows; on SQLite (one writer)
/// it is the commit order. On PostgreSQL two transactions may commit their ids out of order, so a transaction
/// takes the shared advisory lock 7402 before it draws an id and keeps it to its end: a reader knows which
/// transactions may still commit an id it has seen drawn (see `changes.rs`). Deleting a function record logs
/// `Deleted`.
const V13_SQLITE: &str = r#"
CREATE TABLE status_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    db_ms BIGINT NOT NULL
);
CREATE INDEX status_changes_by_app ON status_changes (app_id, id);
CREATE INDEX status_changes_by_time ON status_changes (db_ms);
CREATE TRIGGER functions_status_inserted AFTER INSERT ON functions BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (NEW.app_id, CASE WHEN NEW.qualifier = '$LATEST' THEN 'function' ELSE 'version' END, NEW.namespace,
        NEW.name, NEW.qualifier, '', NEW.status, NEW.reasons, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER functions_status_updated AFTER UPDATE OF status ON functions WHEN OLD.status <> NEW.status BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (NEW.app_id, CASE WHEN NEW.qualifier = '$LATEST' THEN 'function' ELSE 'version' END, NEW.namespace,
        NEW.name, NEW.qualifier, '', NEW.status, NEW.reasons, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER functions_status_deleted AFTER DELETE ON functions BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (OLD.app_id, CASE WHEN OLD.qualifier = '$LATEST' THEN 'function' ELSE 'version' END, OLD.namespace,
        OLD.name, OLD.qualifier, '', 'Deleted', '[]', CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER layers_status_inserted AFTER INSERT ON layers BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (NEW.app_id, 'layer_version', '', NEW.name, CAST(NEW.version AS TEXT), '', NEW.status, NEW.reasons,
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER layers_status_updated AFTER UPDATE OF status ON layers WHEN OLD.status <> NEW.status BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (NEW.app_id, 'layer_version', '', NEW.name, CAST(NEW.version AS TEXT), '', NEW.status, NEW.reasons,
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER async_events_status_inserted AFTER INSERT ON async_events BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (NEW.app_id, 'async_event', NEW.namespace, NEW.function_name, NEW.qualifier, NEW.id, NEW.status, '[]',
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER async_events_status_updated AFTER UPDATE OF status ON async_events WHEN OLD.status <> NEW.status BEGIN
    INSERT INTO status_changes (app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (NEW.app_id, 'async_event', NEW.namespace, NEW.function_name, NEW.qualifier, NEW.id, NEW.status, '[]',
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
"#;
const V13_POSTGRES: &str = r#"
CREATE TABLE status_changes (
    id BIGINT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    db_ms BIGINT NOT NULL
);
CREATE INDEX status_changes_by_app ON status_changes (app_id, id);
CREATE INDEX status_changes_by_time ON status_changes (db_ms);
CREATE SEQUENCE status_changes_id;
CREATE FUNCTION stratus_log_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    change_id BIGINT;
    k TEXT;
    ns TEXT;
    nm TEXT;
    q TEXT;
    rid TEXT := '';
    st TEXT;
    rs TEXT := '[]';
    app BIGINT;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'functions' THEN
        IF TG_OP = 'DELETE' THEN
            app := OLD.app_id; ns := OLD.namespace; nm := OLD.name; q := OLD.qualifier; st := 'Deleted';
        ELSE
            app := NEW.app_id; ns := NEW.namespace; nm := NEW.name; q := NEW.qualifier; st := NEW.status;
            rs := NEW.reasons;
        END IF;
        k := CASE WHEN q = '$LATEST' THEN 'function' ELSE 'version' END;
    ELSIF TG_TABLE_NAME = 'layers' THEN
        app := NEW.app_id; k := 'layer_version'; ns := ''; nm := NEW.name; q := CAST(NEW.version AS TEXT);
        st := NEW.status; rs := NEW.reasons;
    ELSE
        app := NEW.app_id; k := 'async_event'; ns := NEW.namespace; nm := NEW.function_name; q := NEW.qualifier;
        rid := NEW.id; st := NEW.status;
    END IF;
    -- Held from before the id is drawn to the end of the transaction: readers wait for its holders (shared, so
    -- writers never wait for each other).
    PERFORM pg_advisory_xact_lock_shared(7402);
    change_id := nextval('status_changes_id');
    INSERT INTO status_changes (id, app_id, kind, namespace, name, qualifier, request_id, status, reasons, db_ms)
    VALUES (change_id, app, k, ns, nm, q, rid, st, rs, CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT));
    PERFORM pg_notify('stratus_changes', CAST(app AS TEXT));
    RETURN NULL;
END
$$;
CREATE TRIGGER functions_status_inserted AFTER INSERT ON functions FOR EACH ROW EXECUTE FUNCTION stratus_log_status();
CREATE TRIGGER functions_status_updated AFTER UPDATE OF status ON functions FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION stratus_log_status();
CREATE TRIGGER functions_status_deleted AFTER DELETE ON functions FOR EACH ROW EXECUTE FUNCTION stratus_log_status();
CREATE TRIGGER layers_status_inserted AFTER INSERT ON layers FOR EACH ROW EXECUTE FUNCTION stratus_log_status();
CREATE TRIGGER layers_status_updated AFTER UPDATE OF status ON layers FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION stratus_log_status();
CREATE TRIGGER async_events_status_inserted AFTER INSERT ON async_events FOR EACH ROW
    EXECUTE FUNCTION stratus_log_status();
CREATE TRIGGER async_events_status_updated AFTER UPDATE OF status ON async_events FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION stratus_log_status();
"#;

/// Timer ticks. `timer_states` holds, per trigger, the last tick considered (fired, or skipped up to it): a
/// scheduler advances it by compare-and-set from the value it read, so one node decides each tick. `timer_ticks`
/// records the decision under the unique key (trigger, tick): a fired tick with the id of its event (inserted in
/// the same transaction), or a run of skipped ticks keyed by its first tick, with the last time it covers and how
/// many ticks it held. Neither references `triggers`: a trigger deleted while a node fires it must not fail that
/// node's batch; rows of deleted triggers are pruned.
const V9: &str = r#"
CREATE TABLE timer_states (
    trigger_id TEXT PRIMARY KEY,
    last_tick_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE timer_ticks (
    trigger_id TEXT NOT NULL,
    tick_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    event_id TEXT,
    until_ms BIGINT NOT NULL,
    ticks BIGINT NOT NULL,
    node TEXT NOT NULL,
    recorded_ms BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, tick_ms)
);
CREATE INDEX timer_ticks_by_recorded ON timer_ticks (recorded_ms);
"#;

/// Concurrency: a function's reservation (referencing its `$LATEST` record, so it goes with the function), a
/// namespace's total (going with the namespace), and the shares of each limit that the nodes of a cluster hold
/// under a lease on the database's clock (see `concurrency.rs`).
const V12: &str = r#"
CREATE TABLE concurrency_reservations (
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    mem_mb BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, namespace, function_name),
    FOREIGN KEY (app_id, namespace, function_name, qualifier)
        REFERENCES functions (app_id, namespace, name, qualifier) ON DELETE CASCADE
);
CREATE TABLE namespace_concurrency (
    app_id BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    total_mb BIGINT NOT NULL,
    mod_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, namespace),
    FOREIGN KEY (app_id, namespace) REFERENCES namespaces (app_id, name) ON DELETE CASCADE
);
CREATE TABLE concurrency_shares (
    node TEXT NOT NULL,
    app_id BIGINT NOT NULL,
    scope TEXT NOT NULL,
    share_mb BIGINT NOT NULL,
    used_mb BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, scope, node)
);
CREATE INDEX concurrency_shares_by_node ON concurrency_shares (node)
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
        version: 9,
        name: "timer ticks, each fired or skipped once",
        sqlite: V9,
        postgres: V9,
    },
    Migration {
        version: 11,
        name: "one function URL per qualifier",
        sqlite: V11,
        postgres: V11,
    },
    Migration {
        version: 12,
        name: "concurrency reservations, namespace totals and the nodes' leased shares",
        sqlite: V12,
        postgres: V12,
    },
    Migration {
        version: 13,
        name: "the status change log",
        sqlite: V13_SQLITE,
        postgres: V13_POSTGRES,
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
