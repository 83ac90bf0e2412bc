//! Operator commands run beside a live server on the same data directory (`stratus account …`, `stratus key …`)
//! touch nothing of the server's temporary files: each process works in a directory of its own under
//! `DATA_DIR/tmp`, and only `serve` clears the directories of processes that are gone.

use std::path::Path;

use serde_json::json;
use testkit::{Backend, on_both_backends, wait_status, zips};

use crate::{SETTLE, create_body, start};

/// A package of about 1 MiB that does not compress, unique to `n`: its upload and its unpacking take long enough
/// to be in flight while the CLI runs.
fn bulky_zip(n: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(n).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let noise: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect();
    zips::build(&[
        zips::file("index.py", zips::PYTHON_HANDLER),
        zips::file("data.bin", &noise),
    ])
}

/// The entries of `DATA_DIR/tmp`.
fn temp_entries(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `stratus account create` (and `key create`), run again and again during 50 concurrent creates against a live
/// server on the same data directory, loses none of them: every create is accepted and ends Active. Before each
/// process had its own temporary directory, every CLI command wiped `DATA_DIR/tmp`, taking the server's
/// in-flight uploads and unpack directories with it.
fn account_commands_beside_a_live_server_lose_no_create(b: Backend) {
    const CREATES: usize = 50;
    const THREADS: usize = 10;
    let mut srv = start(&b);
    let c = srv.client();
    let zips: Vec<Vec<u8>> = (0..CREATES as u32).map(bulky_zip).collect();
    let server_tmp = temp_entries(&srv.data_dir());
    assert_eq!(
        server_tmp.len(),
        1,
        "the server's own directory: {server_tmp:?}"
    );

    let mut accounts = Vec::new();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let creators: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = c.clone();
                let zips = &zips;
                scope.spawn(move || {
                    let mut failed = Vec::new();
                    for i in (t..CREATES).step_by(THREADS) {
                        let body = create_body(
                            &format!("busy{i}"),
                            &zips[i],
                            "Python3.9",
                            "index.main_handler",
                        );
                        if let Err(e) = c.call("CreateFunction", body) {
                            failed.push(format!("busy{i}: {e}"));
                        }
                    }
                    failed
                })
            })
            .collect();
        // The CLI, over and over while the creates are in flight (bounded).
        for round in 0..40 {
            if round > 0 && creators.iter().all(|h| h.is_finished()) {
                break;
            }
            accounts.push(srv.create_account());
            if round % 4 == 3 {
                let key =
                    srv.run_cli(&["key", "create", "--app-id", &accounts[0].app_id.to_string()]);
                assert!(key.contains("SecretId"), "key create printed {key:?}");
            }
        }
        creators
            .into_iter()
            .flat_map(|h| h.join().expect("creator thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "creates refused beside the CLI: {failures:?}"
    );
    assert!(accounts.len() >= 2, "the CLI ran during the creates");
    for i in 0..CREATES {
        let v = wait_status(&c, &format!("busy{i}"), "$LATEST", &["Active"], SETTLE);
        assert_eq!(v["Status"], "Active", "busy{i}: {v}");
    }
    // Each CLI process removed its own directory when it finished; the server's is untouched.
    assert_eq!(temp_entries(&srv.data_dir()), server_tmp);
    // The new accounts work.
    let other = srv.client_for(accounts.last().expect("an account"));
    other.ok("ListFunctions", json!({}));

    // A server killed outright leaves its directory; the next `serve` clears it (its process is gone), while a
    // CLI command run before that leaves it alone.
    srv.kill9();
    let left = temp_entries(&srv.data_dir());
    assert_eq!(left, server_tmp, "a killed server's directory stays");
    srv.create_account();
    assert_eq!(temp_entries(&srv.data_dir()), server_tmp);
    srv.restart();
    let now = temp_entries(&srv.data_dir());
    assert_eq!(now.len(), 1, "only the new server's directory: {now:?}");
    assert_ne!(now, server_tmp);
    let c = srv.client();
    let v = wait_status(&c, "busy0", "$LATEST", &["Active"], SETTLE);
    assert_eq!(v["Status"], "Active");
}

on_both_backends!(account_commands_beside_a_live_server_lose_no_create);
