//! Durability: data survives a graceful restart; after `kill -9` at any instant and a restart, every record
//! reaches a terminal status without a client doing anything, and nothing acknowledged is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{
    Backend, TERMINAL, on_both_backends, wait_for, wait_layer_status, wait_status, zips,
};

use crate::{SETTLE, create_active, create_body, s, start};

/// A reply without its RequestId, for comparing the same read before and after a restart.
fn without_request_id(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("RequestId");
    }
    v
}

fn data_survives_a_restart(b: Backend) {
    let mut srv = start(&b);
    let c = srv.client();
    create_active(&c, "keep");
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "keep", "Description": "before restart", "MemorySize": 256}),
    );
    wait_status(&c, "keep", "$LATEST", &["Active"], SETTLE);
    c.ok(
        "PublishVersion",
        json!({"FunctionName": "keep", "Description": "v1"}),
    );
    wait_status(&c, "keep", "1", &["Active"], SETTLE);
    c.ok(
        "CreateAlias",
        json!({"FunctionName": "keep", "Name": "prod", "FunctionVersion": "1"}),
    );
    c.ok(
        "CreateFunction",
        create_body(
            "broken",
            &zips::missing_handler(),
            "Python3.9",
            "index.main_handler",
        ),
    );
    wait_status(&c, "broken", "$LATEST", &["CreateFailed"], SETTLE);
    c.ok(
        "CreateNamespace",
        json!({"Namespace": "team", "Description": "a team"}),
    );
    let mut in_ns = create_body(
        "elsewhere",
        &zips::node_hello(),
        "Nodejs18.15",
        "index.main_handler",
    );
    in_ns["Namespace"] = json!("team");
    c.ok("CreateFunction", in_ns);
    let content = zips::build(&[zips::file("python/lib.py", b"X = 1\n")]);
    c.ok(
        "PublishLayerVersion",
        json!({
            "LayerName": "lib",
            "CompatibleRuntimes": ["Python3.9"],
            "Content": {"ZipFile": zips::b64(&content)},
        }),
    );
    wait_layer_status(&c, "lib", 1, &["Active"], SETTLE);
    wait_for("the function in namespace team", SETTLE, || {
        let v = c.ok(
            "GetFunction",
            json!({"FunctionName": "elsewhere", "Namespace": "team"}),
        );
        (v["Status"] == "Active").then_some(())
    });
    let other = srv.create_account();

    let reads: Vec<(&str, Value)> = vec![
        ("GetFunction", json!({"FunctionName": "keep"})),
        (
            "GetFunction",
            json!({"FunctionName": "keep", "Qualifier": "1"}),
        ),
        ("GetFunction", json!({"FunctionName": "broken"})),
        (
            "GetFunction",
            json!({"FunctionName": "elsewhere", "Namespace": "team"}),
        ),
        ("ListFunctions", json!({})),
        ("ListVersionByFunction", json!({"FunctionName": "keep"})),
        ("ListAliases", json!({"FunctionName": "keep"})),
        (
            "GetLayerVersion",
            json!({"LayerName": "lib", "LayerVersion": 1}),
        ),
        ("ListNamespaces", json!({})),
    ];
    let before: Vec<Value> = reads
        .iter()
        .map(|(a, body)| without_request_id(c.ok(a, body.clone())))
        .collect();
    let creds = srv.credentials().clone();
    let accounts_before = srv.run_cli(&["account", "list"]);

    let status = srv.stop();
    assert!(status.success(), "SIGTERM: stratus exited with {status}");
    srv.restart();
    assert_eq!(
        srv.credentials(),
        &creds,
        "the development key is kept across restarts"
    );
    assert_eq!(
        srv.run_cli(&["account", "list"]),
        accounts_before,
        "a restart creates no account"
    );
    let c = srv.client();
    for ((a, body), was) in reads.iter().zip(&before) {
        let now = without_request_id(c.ok(a, body.clone()));
        assert_eq!(&now, was, "{a} {body} changed across the restart");
    }
    srv.client_for(&other).ok("ListFunctions", json!({}));
    // And it keeps working.
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "keep", "Description": "after restart"}),
    );
    let v = wait_status(&c, "keep", "$LATEST", &["Active"], SETTLE);
    assert_eq!(s(&v, "Description"), "after restart");
    let v = c.ok("PublishVersion", json!({"FunctionName": "keep"}));
    assert_eq!(s(&v, "FunctionVersion"), "2");
}

const PENDING_OPS: &str = "SELECT COUNT(*) AS n FROM operations WHERE state = 'pending'";

/// What one load thread did to one function.
#[derive(Default, Clone)]
struct Fate {
    /// CreateFunction acknowledged (false: its outcome is unknown, the server died under it).
    create_acked: bool,
    /// The package was bad: it must end CreateFailed.
    bad: bool,
    /// The package sent.
    zip: Vec<u8>,
    /// Descriptions of acknowledged updates, in order.
    updates_acked: Vec<String>,
    /// An update whose outcome is unknown, sent after the acknowledged ones.
    update_unknown: Option<String>,
    delete_acked: bool,
    delete_unknown: bool,
}

impl std::fmt::Debug for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fate")
            .field("create_acked", &self.create_acked)
            .field("bad", &self.bad)
            .field("zip_bytes", &self.zip.len())
            .field("updates_acked", &self.updates_acked)
            .field("update_unknown", &self.update_unknown)
            .field("delete_acked", &self.delete_acked)
            .field("delete_unknown", &self.delete_unknown)
            .finish()
    }
}

fn crash_under_load_loses_nothing(b: Backend) {
    const THREADS: usize = 16;
    const CALLS_PER_THREAD: usize = 13; // 208 calls in all
    const KILL_AFTER: usize = 70; // acknowledged calls
    let mut srv = start(&b);
    let base = srv.client();
    let acked = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let fates: BTreeMap<String, Fate> = std::thread::scope(|sc| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = base.clone();
                let acked = &acked;
                sc.spawn(move || load_thread(t, CALLS_PER_THREAD, &c, acked))
            })
            .collect();
        // Kill once enough calls were acknowledged, while the others are in flight.
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::SeqCst) < KILL_AFTER && !threads.iter().all(|h| h.is_finished())
        {
            assert!(Instant::now() < deadline, "load did not get going");
            std::thread::sleep(Duration::from_millis(1));
        }
        srv.kill9();
        killed.store(true, Ordering::SeqCst);
        let mut all = BTreeMap::new();
        for h in threads {
            all.extend(h.join().expect("load thread"));
        }
        all
    });
    assert!(killed.load(Ordering::SeqCst));
    let unknown = fates
        .values()
        .filter(|f| !f.create_acked || f.update_unknown.is_some() || f.delete_unknown)
        .count();
    let acked_calls = acked.load(Ordering::SeqCst);
    assert!(
        (KILL_AFTER..THREADS * CALLS_PER_THREAD).contains(&acked_calls),
        "the kill must land mid-flight ({acked_calls} calls acknowledged)"
    );
    eprintln!(
        "[{}] killed after {acked_calls} acknowledged calls; {} functions touched, {unknown} with an unknown outcome",
        b.name(),
        fates.len()
    );

    let restarted = Instant::now();
    srv.restart();
    let c = srv.client();
    let budget = Duration::from_secs(15);
    let listed: BTreeMap<String, Value> = wait_for(
        "every function to reach a terminal status after the crash",
        budget.saturating_sub(restarted.elapsed()),
        || {
            let v = c.ok("ListFunctions", json!({"Limit": 1000}));
            let fns = v["Functions"].as_array().expect("Functions");
            let all_terminal = fns.iter().all(|f| TERMINAL.contains(&s(f, "Status")));
            all_terminal.then(|| {
                fns.iter()
                    .map(|f| (s(f, "FunctionName").to_string(), f.clone()))
                    .collect()
            })
        },
    );
    wait_for(
        "no operation left pending",
        budget.saturating_sub(restarted.elapsed()),
        || (srv.db_count(PENDING_OPS) == 0).then_some(()),
    );
    eprintln!(
        "[{}] settled {:?} after the restart",
        b.name(),
        restarted.elapsed()
    );

    let known: BTreeSet<&String> = fates.keys().collect();
    for name in listed.keys() {
        assert!(known.contains(name), "{name} exists but was never created");
    }
    for (name, fate) in &fates {
        let found = listed.get(name);
        if fate.delete_acked {
            assert!(found.is_none(), "{name}: acknowledged delete was lost");
            continue;
        }
        let Some(f) = found else {
            assert!(
                !fate.create_acked || fate.delete_unknown,
                "{name}: acknowledged create was lost ({fate:?})"
            );
            continue;
        };
        let status = s(f, "Status");
        let want = if fate.bad { "CreateFailed" } else { "Active" };
        assert_eq!(status, want, "{name}: {fate:?}: {f}");
        let v = c.ok("GetFunction", json!({"FunctionName": name}));
        let desc = s(&v, "Description").to_string();
        let mut allowed: Vec<String> = fate.updates_acked.last().cloned().into_iter().collect();
        if fate.updates_acked.is_empty() {
            allowed.push(String::new());
        }
        allowed.extend(fate.update_unknown.clone());
        assert!(
            allowed.contains(&desc),
            "{name}: serves description {desc:?}, expected one of {allowed:?}"
        );
        // The code package survived the crash byte for byte.
        let addr = c.ok("GetFunctionAddress", json!({"FunctionName": name}));
        assert_eq!(
            s(&addr, "CodeSha256"),
            store::sha256_hex(&fate.zip),
            "{name}: code"
        );
        let got = c.fetch(s(&addr, "Url")).expect("download the code");
        assert_eq!(got.status, 200, "{name}: download");
        assert!(got.body == fate.zip, "{name}: downloaded code differs");
    }

    // The server is healthy afterwards.
    let survivor = fates
        .iter()
        .find(|(n, f)| !f.bad && listed.contains_key(*n))
        .map(|(n, _)| n.clone())
        .expect("some function survived");
    c.ok(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": survivor, "Description": "after the crash"}),
    );
    wait_status(&c, &survivor, "$LATEST", &["Active"], SETTLE);
}

/// One load thread: creates its own functions (every fifth with a bad package), updates and deletes some of
/// them, until the server goes away. Returns what was acknowledged.
fn load_thread(
    t: usize,
    calls: usize,
    c: &testkit::Client,
    acked: &AtomicUsize,
) -> BTreeMap<String, Fate> {
    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    let mut live: Vec<String> = Vec::new();
    for i in 0..calls {
        let (action, body, target) = if i % 3 == 2 && !live.is_empty() {
            let target = live[(i / 3) % live.len()].clone();
            if i % 7 == 5 {
                ("DeleteFunction", json!({"FunctionName": target}), target)
            } else {
                let desc = format!("t{t}-call{i}");
                (
                    "UpdateFunctionConfiguration",
                    json!({"FunctionName": target, "Description": desc}),
                    target,
                )
            }
        } else {
            let name = format!("crash-{t}-{i}");
            let bad = i % 5 == 4;
            let zip = if bad {
                zips::missing_handler()
            } else {
                zips::python_hello_v((t * 100 + i) as u32)
            };
            fates.insert(
                name.clone(),
                Fate {
                    bad,
                    zip: zip.clone(),
                    ..Fate::default()
                },
            );
            (
                "CreateFunction",
                create_body(&name, &zip, "Python3.9", "index.main_handler"),
                name,
            )
        };
        let desc = body
            .get("Description")
            .and_then(Value::as_str)
            .map(str::to_string);
        let outcome = c.try_call(action, body);
        let fate = fates.get_mut(&target).expect("known function");
        match outcome {
            Ok(Ok(_)) => {
                acked.fetch_add(1, Ordering::SeqCst);
                match action {
                    "CreateFunction" => {
                        fate.create_acked = true;
                        live.push(target);
                    }
                    "DeleteFunction" => {
                        fate.delete_acked = true;
                        live.retain(|n| *n != target);
                    }
                    _ => fate.updates_acked.push(desc.expect("description")),
                }
            }
            Ok(Err(e)) => {
                // Refused while the function is still being created or updated, or after a failed create.
                let expected = [
                    "FailedOperation.FunctionStatusError",
                    "FailedOperation.UpdateFunctionConfiguration",
                ];
                assert!(
                    action != "CreateFunction" && expected.contains(&e.code.as_str()),
                    "{action} {target}: unexpected refusal {e}"
                );
            }
            Err(_) => {
                // The server died: the outcome of this call is unknown, and the thread stops.
                match action {
                    "CreateFunction" => {}
                    "DeleteFunction" => fate.delete_unknown = true,
                    _ => fate.update_unknown = desc,
                }
                break;
            }
        }
    }
    fates
}

on_both_backends!(data_survives_a_restart, crash_under_load_loses_nothing);
