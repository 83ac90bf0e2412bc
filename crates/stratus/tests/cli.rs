//! The client commands of the real `stratus` binary against a real server (SQLite, temporary data directory):
//! deploying folders (new, updated, failing), invoking, following logs, profiles, JSON output, exit codes, and
//! progress drawn on a pseudo-terminal only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{Backend, Server, prereq, require};

/// How long one command may run before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stratus")
}

const HANDLER_V1: &str = "def main_handler(event, context):\n    print('log line v1')\n    return {'v': 1, 'event': event}\n";
const HANDLER_V2: &str = "def main_handler(event, context):\n    print('log line v2')\n    return {'v': 2, 'event': event}\n";

/// What a command did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "the command failed: {self:?}");
        self
    }
}

/// A server and a user of it: a config directory of its own and the server's data directory for its
/// development account.
struct Env {
    srv: Server,
    home: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        Env {
            srv: Server::start(bin(), &Backend::Sqlite, &[]),
            home: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.srv.addr())
    }

    /// `stratus ARGS` with nothing inherited that could change it: no `STRATUS_*`, no proxy, a private HOME and
    /// config directory; the server through `STRATUS_ENDPOINT` and its data directory (the development account).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("STRATUS_")
                || k.eq_ignore_ascii_case("http_proxy")
                || k.eq_ignore_ascii_case("https_proxy")
                || k.eq_ignore_ascii_case("all_proxy")
                || k == "NO_COLOR"
                || k == "XDG_CONFIG_HOME"
            {
                cmd.env_remove(&*k);
            }
        }
        cmd.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("STRATUS_ENDPOINT", self.endpoint())
            .env("STRATUS_DATA_DIR", self.srv.data_dir())
            .env("STRATUS_POLL_MS", "100")
            .env("STRATUS_WAIT_SECS", "30")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Out {
        run_bounded(self.command(args), &args.join(" "))
    }
}

/// Runs `cmd` to its end (killed, and the test failed, after [`COMMAND_TIMEOUT`]).
fn run_bounded(mut cmd: Command, what: &str) -> Out {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdout(std::fs::File::create(&o).expect("stdout file"))
        .stderr(std::fs::File::create(&e).expect("stderr file"));
    let mut child = cmd.spawn().expect("start stratus");
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{what}` did not finish in {COMMAND_TIMEOUT:?}");
            }
        }
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
    }
}

/// A folder with `index.py` holding `handler` and the other `files`.
fn folder(root: &Path, name: &str, handler: Option<&str>, files: &[(&str, &[u8])]) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    if let Some(h) = handler {
        std::fs::write(d.join("index.py"), h).expect("write index.py");
    }
    for (n, data) in files {
        std::fs::write(d.join(n), data).expect("write file");
    }
    d
}

/// `n` bytes that do not compress.
fn noise(n: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn deploy_new_updated_and_failing_folders_then_invoke_and_list() {
    let env = Env::start();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = folder(
        work.path(),
        "hello",
        Some(HANDLER_V1),
        &[
            (".stratusignore", b"*.secret\n"),
            ("token.secret", &noise(64 << 10)),
        ],
    );

    // New: the folder's name is the function's; created Active, the ignored file left out of the package.
    let out = env.run(&["fn", "deploy", path(&dir), "-o", "json"]).ok();
    let v = out.json();
    assert_eq!(v["FunctionName"], "hello", "{out:?}");
    assert_eq!(v["Status"], "Active", "{out:?}");
    assert_eq!(v["Runtime"], "Python3.9");
    let code_size = v["CodeSize"].as_i64().expect("CodeSize");
    assert!(
        code_size < 4096,
        "the ignored 64 KiB file was packaged: {v}"
    );
    assert!(
        out.stderr.trim().is_empty(),
        "--output json writes nothing for people on stderr: {:?}",
        out.stderr
    );

    let inv = env
        .run(&[
            "fn",
            "invoke",
            "hello",
            "--event",
            r#"{"n": 7}"#,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(inv["InvokeResult"], 0, "{inv}");
    let ret: Value = serde_json::from_str(inv["RetMsg"].as_str().expect("RetMsg")).expect("JSON");
    assert_eq!(ret, serde_json::json!({"v": 1, "event": {"n": 7}}));

    // Updated: new code and configuration, reported as each status change in table mode.
    std::fs::write(dir.join("index.py"), HANDLER_V2).expect("rewrite");
    let out = env
        .run(&[
            "fn",
            "deploy",
            path(&dir),
            "--memory",
            "256",
            "--env",
            "GREETING=hi",
        ])
        .ok();
    assert!(out.stdout.contains("Deployed hello: Active"), "{out:?}");
    assert!(
        out.stderr.contains("Updating"),
        "status changes shown: {out:?}"
    );
    let got = env.run(&["fn", "get", "hello", "-o", "json"]).ok().json();
    assert_eq!(got["MemorySize"], 256);
    assert_eq!(got["Environment"]["Variables"][0]["Key"], "GREETING");
    let out = env.run(&["fn", "invoke", "hello"]).ok();
    assert!(out.stdout.contains("\"v\": 2"), "{out:?}");
    let queued = env
        .run(&["fn", "invoke", "hello", "--async", "-o", "json"])
        .ok()
        .json();
    assert!(
        !queued["FunctionRequestId"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "an event's request id: {queued}"
    );
    let out = env.run(&["fn", "invoke", "hello", "--async"]).ok();
    assert_eq!(out.stdout.trim().len(), 36, "the request id alone: {out:?}");
    let out = env.run(&["fn", "deploy", path(&dir), "--type", "http"]);
    assert_eq!(out.code, 1, "a function's type cannot change: {out:?}");
    assert!(out.stderr.contains("type Event"), "{out:?}");

    // A folder without the handler's file: exit 4 with the reason.
    let bad = folder(
        work.path(),
        "broken",
        None,
        &[("main.py", HANDLER_V1.as_bytes())],
    );
    let out = env.run(&["fn", "deploy", path(&bad), "--name", "broken"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("CreateFailed"), "{out:?}");
    assert!(
        out.stderr.contains("index.py"),
        "the StatusReasons name the missing file: {out:?}"
    );
    let out = env.run(&[
        "fn",
        "deploy",
        path(&bad),
        "--name",
        "broken2",
        "-o",
        "json",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(out.json()["Status"], "CreateFailed");

    // Listing, as JSON for scripts and as a table.
    let list = env.run(&["fn", "list", "-o", "json"]).ok().json();
    let names: Vec<&str> = list["Functions"]
        .as_array()
        .expect("Functions")
        .iter()
        .filter_map(|f| f["FunctionName"].as_str())
        .collect();
    assert!(
        names.contains(&"hello") && names.contains(&"broken"),
        "{list}"
    );
    assert_eq!(list["TotalCount"], 3);
    let table = env.run(&["fn", "list"]).ok();
    let first = table.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("NAME") && first.contains("STATUS"),
        "{table:?}"
    );
    assert!(
        !table.stdout.contains('\x1b'),
        "no colour without a terminal: {table:?}"
    );

    // Publish, versions, an alias; the refusals exit 3 with the SCF code.
    let out = env
        .run(&["fn", "deploy", path(&dir), "--publish", "-o", "json"])
        .ok();
    assert_eq!(out.json()["PublishedVersion"], "1", "{out:?}");
    let vs = env
        .run(&["fn", "versions", "hello", "-o", "json"])
        .ok()
        .json();
    assert!(
        vs["Versions"]
            .as_array()
            .expect("Versions")
            .iter()
            .any(|v| v["Version"] == "1"),
        "{vs}"
    );
    env.run(&["alias", "create", "hello", "live", "--version", "1"])
        .ok();
    let a = env
        .run(&["alias", "get", "hello", "live", "-o", "json"])
        .ok()
        .json();
    assert_eq!(a["FunctionVersion"], "1");
    let out = env.run(&["fn", "get", "nope", "-o", "json"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.json()["Error"]["Code"], "ResourceNotFound.Function");
    let out = env.run(&["fn", "invoke", "hello", "--event", "{not json"]);
    assert_eq!(
        out.code, 1,
        "a bad event is refused before any call: {out:?}"
    );

    env.run(&["fn", "delete", "broken"]).ok();
    let out = env.run(&["fn", "get", "broken"]);
    assert_eq!(out.code, 3, "{out:?}");
}

#[test]
fn logs_follow_sees_a_new_invocation() {
    let env = Env::start();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = folder(work.path(), "tail", Some(HANDLER_V1), &[]);
    env.run(&["fn", "deploy", path(&dir)]).ok();
    let first = env.run(&["fn", "invoke", "tail", "-o", "json"]).ok().json();
    let first_id = first["FunctionRequestId"].as_str().expect("id").to_string();

    // Without --follow: the invocation there already, as one JSON record a line.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = env.run(&["fn", "logs", "tail", "-o", "json"]).ok();
        if out.stdout.contains(&first_id) {
            let rec: Value = serde_json::from_str(out.stdout.lines().last().expect("a line"))
                .expect("JSON line");
            assert_eq!(rec["RequestId"], first_id.as_str());
            assert!(
                rec["Log"].as_str().unwrap_or("").contains("log line v1"),
                "{rec}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first invocation's log never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut child = env
        .command(&["fn", "logs", "tail", "--follow", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start logs --follow");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let second = env.run(&["fn", "invoke", "tail", "-o", "json"]).ok().json();
    let second_id = second["FunctionRequestId"]
        .as_str()
        .expect("id")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let rec: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                let id = rec["RequestId"].as_str().unwrap_or("").to_string();
                seen.push(id.clone());
                if id == second_id {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let still_running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "logs --follow never printed {second_id}; saw {seen:?}"
    );
    assert!(still_running, "logs --follow keeps running");
    assert_eq!(
        seen.iter().filter(|i| **i == first_id).count(),
        1,
        "each record is printed once: {seen:?}"
    );

    // `logs --follow | head -1`: once the reader is gone, the next record ends the process.
    let mut child = env
        .command(&["fn", "logs", "tail", "--follow", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start logs --follow");
    let mut reader = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("a first record");
    assert!(line.contains("RequestId"), "{line}");
    drop(reader);
    env.run(&["fn", "invoke", "tail"]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let status = status.expect("logs --follow kept running with no reader");
    assert_eq!(status.code(), Some(141), "{status}");
}

#[test]
fn profiles_configure_and_resolution() {
    let env = Env::start();
    let creds = env.srv.credentials().clone();
    let out = env
        .run(&[
            "configure",
            "--profile",
            "lab",
            "--endpoint",
            &env.endpoint(),
            "--secret-id",
            &creds.secret_id,
            "--secret-key",
            &creds.secret_key,
            "--namespace",
            "default",
        ])
        .ok();
    let file = env.home.path().join("config/stratus/config.toml");
    assert!(out.stderr.contains("lab"), "{out:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("config file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the profile file holds a secret key");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(
        text.contains("[profiles.lab]") && text.contains(&creds.secret_key),
        "{text}"
    );

    // The profile alone, with no endpoint or data directory in the environment.
    let mut cmd = env.command(&["fn", "list", "--profile", "lab", "-o", "json"]);
    cmd.env_remove("STRATUS_ENDPOINT")
        .env_remove("STRATUS_DATA_DIR");
    let out = run_bounded(cmd, "fn list --profile lab").ok();
    assert_eq!(out.json()["TotalCount"], 0);

    // A profile that is not there; no key anywhere; a wrong key (refused by the server: exit 3).
    let out = env.run(&["fn", "list", "--profile", "nope"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nope"), "{out:?}");
    let mut cmd = env.command(&["fn", "list"]);
    cmd.env("STRATUS_DATA_DIR", env.home.path().join("no-data"));
    let out = run_bounded(cmd, "fn list without a key");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("stratus configure"), "{out:?}");
    let mut cmd = env.command(&["fn", "list", "-o", "json"]);
    cmd.env("STRATUS_SECRET_ID", &creds.secret_id)
        .env("STRATUS_SECRET_KEY", "wrong");
    let out = run_bounded(cmd, "fn list with a wrong key");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.json()["Error"]["Code"]
            .as_str()
            .unwrap_or("")
            .starts_with("AuthFailure"),
        "{out:?}"
    );
}

/// Runs `stratus ARGS` on a pseudo-terminal through util-linux `script`, with `extra` variables; returns what
/// the terminal received (stdout and stderr together).
fn on_pty(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Out {
    let line: Vec<String> = std::iter::once(bin())
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let base = env.command(&[]);
    let mut script = Command::new("script");
    script
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    script.env("TERM", "xterm-256color");
    for (k, v) in extra {
        script.env(k, v);
    }
    run_bounded(script, &args.join(" "))
}

/// Drawn progress: indicatif's line clearing, and spinner frames.
fn has_progress(text: &str) -> bool {
    text.contains("\x1b[2K") || text.contains('\r') && text.contains("Uploading")
}

#[test]
fn progress_is_drawn_on_a_terminal_only() {
    require!(
        prereq::has_command("script"),
        "util-linux `script` is needed for a pseudo-terminal"
    );
    let env = Env::start();
    let work = tempfile::tempdir().expect("tempdir");
    // More than 1 MiB that does not compress: the upload shows a bar.
    let big = noise(1 << 20);
    let dir = folder(
        work.path(),
        "bulky",
        Some(HANDLER_V1),
        &[("data.bin", &big)],
    );

    let start = Instant::now();
    let out = on_pty(&env, &["fn", "deploy", path(&dir)], &[]);
    let took = start.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        has_progress(&out.stdout),
        "no progress drawn on a terminal: {:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Uploading"),
        "the upload bar: {:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\x1b[32mActive"),
        "the status is coloured on a terminal: {:?}",
        out.stdout
    );
    eprintln!("deploy of a 1 MiB folder to Active on a pseudo-terminal: {took:?}");

    // JSON output on a terminal: no progress, no colour, only the document.
    let out = on_pty(&env, &["fn", "deploy", path(&dir), "-o", "json"], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !has_progress(&out.stdout) && !out.stdout.contains('\x1b'),
        "{:?}",
        out.stdout
    );
    let v: Value =
        serde_json::from_str(&out.stdout.replace("\r\n", "\n")).expect("only JSON on the terminal");
    assert_eq!(v["Status"], "Active");

    // NO_COLOR on a terminal: no colour in the table.
    let out = on_pty(&env, &["fn", "list"], &[("NO_COLOR", "1")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("bulky") && !out.stdout.contains('\x1b'),
        "{:?}",
        out.stdout
    );

    // Through pipes: plain lines, nothing drawn.
    std::fs::write(dir.join("index.py"), HANDLER_V2).expect("rewrite");
    let out = env.run(&["fn", "deploy", path(&dir)]).ok();
    assert!(
        !has_progress(&out.stderr) && !out.stderr.contains('\x1b'),
        "{:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Updating"),
        "status changes as plain lines: {out:?}"
    );
}

#[test]
fn layers_aliases_and_triggers() {
    let env = Env::start();
    let work = tempfile::tempdir().expect("tempdir");
    let lay = work.path().join("deps");
    std::fs::create_dir_all(lay.join("python")).expect("mkdir");
    std::fs::write(lay.join("python/greeting.py"), "WORD = 'layered'\n").expect("write");
    let out = env
        .run(&[
            "layer",
            "publish",
            path(&lay),
            "--name",
            "deps",
            "--runtime",
            "Python3.9",
        ])
        .ok();
    assert!(
        out.stdout
            .contains("Published layer deps version 1: Active"),
        "{out:?}"
    );
    let vs = env
        .run(&["layer", "versions", "deps", "-o", "json"])
        .ok()
        .json();
    assert_eq!(vs["LayerVersions"][0]["Status"], "Active", "{vs}");

    let handler =
        "from greeting import WORD\n\ndef main_handler(event, context):\n    return WORD\n";
    let dir = folder(work.path(), "uses", Some(handler), &[]);
    env.run(&["fn", "deploy", path(&dir), "--layer", "deps:1", "--publish"])
        .ok();
    let out = env.run(&["fn", "invoke", "uses", "-o", "json"]).ok().json();
    assert_eq!(out["RetMsg"], "\"layered\"", "{out}");

    env.run(&["alias", "create", "uses", "live", "--version", "1"])
        .ok();
    let out = env.run(&["fn", "invoke", "uses", "-q", "live"]).ok();
    assert!(out.stdout.contains("layered"), "{out:?}");
    let out = env.run(&["alias", "list", "uses"]).ok();
    assert!(out.stdout.lines().any(|l| l.starts_with("live")), "{out:?}");

    env.run(&[
        "trigger",
        "create",
        "uses",
        "--name",
        "every5",
        "--type",
        "timer",
        "--desc",
        "0 */5 * * * * *",
    ])
    .ok();
    let ts = env
        .run(&["trigger", "list", "uses", "-o", "json"])
        .ok()
        .json();
    assert_eq!(ts["Triggers"][0]["TriggerName"], "every5", "{ts}");
    env.run(&[
        "trigger", "delete", "uses", "--name", "every5", "--type", "timer",
    ])
    .ok();
    let ts = env
        .run(&["trigger", "list", "uses", "-o", "json"])
        .ok()
        .json();
    assert_eq!(ts["TotalCount"], 0, "{ts}");
    // Code that raises: the invocation fails with exit 4 and the error on stderr.
    let boom = folder(
        work.path(),
        "boom",
        Some("def main_handler(event, context):\n    raise ValueError('kaboom')\n"),
        &[],
    );
    env.run(&["fn", "deploy", path(&boom)]).ok();
    let out = env.run(&["fn", "invoke", "boom"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("kaboom"), "{out:?}");
    let out = env.run(&["fn", "invoke", "boom", "-o", "json"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_ne!(out.json()["InvokeResult"], 0);
    // A layer version that does not exist: refused (exit 3).
    let out = env.run(&["fn", "deploy", path(&dir), "--layer", "deps:9"]);
    assert_eq!(out.code, 3, "{out:?}");
}

#[test]
fn configure_asks_on_a_terminal_without_echoing_the_secret() {
    require!(
        prereq::has_command("script"),
        "util-linux `script` is needed for a pseudo-terminal"
    );
    let env = Env::start();
    let creds = env.srv.credentials().clone();
    let line = format!("'{}' configure --profile asked", bin());
    let base = env.command(&[]);
    let mut script = Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script.spawn().expect("start script");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    use std::io::{Read, Write};
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut screen = String::new();
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let wait_for = |screen: &mut String, text: &str| {
        while !screen.contains(text) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(chunk) => screen.push_str(&chunk),
                Err(_) => panic!("the terminal never showed {text:?}: {screen:?}"),
            }
        }
    };
    // Endpoint and SecretId typed ahead; the key only once its prompt is up (and echo is off); Region and
    // Namespace left as they are.
    let typed = format!("{}\r{}\r", env.endpoint(), creds.secret_id);
    stdin.write_all(typed.as_bytes()).expect("type");
    stdin.flush().expect("flush");
    wait_for(&mut screen, "SecretKey [none]: ");
    std::thread::sleep(Duration::from_millis(200));
    stdin
        .write_all(format!("{}\r\r\r", creds.secret_key).as_bytes())
        .expect("type the key");
    stdin.flush().expect("flush");
    wait_for(&mut screen, "Saved profile `asked`");
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("configure did not finish");
            }
        }
    };
    drop(stdin);
    let _ = reader.join();
    while let Ok(chunk) = rx.try_recv() {
        screen.push_str(&chunk);
    }
    assert!(status.success(), "{screen:?}");
    assert!(screen.contains("SecretKey [none]: "), "{screen:?}");
    assert!(
        !screen.contains(&creds.secret_key),
        "the secret key was echoed: {screen:?}"
    );
    assert!(
        screen.contains(&creds.secret_id),
        "the id is echoed: {screen:?}"
    );
    // The profile works on its own.
    let mut cmd = env.command(&["fn", "list", "--profile", "asked", "-o", "json"]);
    cmd.env_remove("STRATUS_ENDPOINT")
        .env_remove("STRATUS_DATA_DIR");
    run_bounded(cmd, "fn list --profile asked").ok();
}
