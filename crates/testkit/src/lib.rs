//! Test support for Stratus: one harness, two drivers (SQLite and PostgreSQL).
//!
//! - [`Backend`] picks the metadata database of a test; [`fresh_database_url`] makes a database of its own for
//!   one test (a new PostgreSQL database, dropped again when the guard goes).
//! - [`Server`] starts the real `stratus` binary on `127.0.0.1:0` with a temporary data directory and hands out
//!   a signed [`Client`]; it can be stopped, killed with `SIGKILL` and restarted on the same data.
//! - [`zips`] builds fixture packages, good and bad.
//! - [`wait_status`] and friends poll, always with a deadline.
//!
//! Tests that must run on both backends use [`on_both_backends!`] (or [`on_both_backends_async!`]): the
//! PostgreSQL variant runs when `STRATUS_TEST_DATABASE_URL` is set, is skipped loudly when it is not, and fails
//! when `CI` is set and it is not.
//!
//! Other prerequisites (root, `python3`, `node`, `curl`) go through [`require!`] and the helpers of [`prereq`],
//! re-exported here: a missing one fails the test under `CI` and is skipped loudly otherwise.

mod backend;
mod client;
mod server;
pub mod stream;
mod wait;
pub mod zips;

pub use prereq::{self, require};

pub use backend::{Backend, TestDatabase, block_on, fresh_database_url};
pub use client::{ApiError, Client, RawResponse, Request};
pub use server::{Credentials, Server};
pub use stream::{SseEvent, StatusStream};
pub use wait::{
    TERMINAL, wait_for, wait_function_gone, wait_layer_status, wait_status, wait_version_status,
};

/// Seconds since the Unix epoch, as `X-TC-Timestamp` wants them.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A name no other test in this run uses: `prefix` plus a process-wide counter.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
