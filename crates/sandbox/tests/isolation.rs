//! Root-only tests that start real sandboxed instances and check, from inside, what they can see and do.
//! Without root each test fails under `CI` and otherwise prints a loud SKIPPED line (`prereq::require!`).

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use prereq::{has_root, require};
use sandbox::{Child, Helper, InstanceSpec, Plan, SpawnIo, spawn};

/// What every test here needs.
const ROOT: &str = "root (sandbox isolation is not tested without it)";

fn helper() -> Helper {
    Helper {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_sandbox-helper")),
        ..Helper::default()
    }
}

/// A host directory tree: the function's code, two layers, and a fake data dir with a secret.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("sandbox-it-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let root = fs::canonicalize(dir.path()).expect("canonical");
        // Readable by the instance's unprivileged user.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        let f = Fixture { _dir: dir, root };
        f.write("data/code/index.sh", "echo hello from the code\n");
        f.write("data/layers/one/both.txt", "one\n");
        f.write("data/layers/one/only-one.txt", "one\n");
        f.write("data/layers/two/both.txt", "two\n");
        f.write("data/secret.key", "TOPSECRET\n");
        f.write("data/db.sqlite", "database\n");
        f
    }

    fn write(&self, rel: &str, contents: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, contents).expect("write");
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root {
                break;
            }
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
            dir = d.parent();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A spec running `sh -c script` with the code, both layers, and the data dir forbidden.
    fn spec(&self, name: &str, script: &str) -> InstanceSpec {
        let id = format!("it-{}-{name}", std::process::id());
        let mut spec = InstanceSpec::new(id, self.path("data/code"), "/bin/sh");
        spec.layers = vec![self.path("data/layers/one"), self.path("data/layers/two")];
        spec.forbidden = vec![self.path("data")];
        spec.args = vec!["-c".into(), script.into()];
        spec.env = vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())];
        spec.uid = 40000 + (std::process::id() % 1000);
        spec.gid = spec.uid;
        spec
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn pipe() -> (std::io::PipeReader, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (r, OwnedFd::from(w))
}

fn start(spec: &InstanceSpec) -> (Child, std::io::PipeReader, std::io::PipeReader) {
    let plan = Plan::build(spec).expect("plan");
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let io = SpawnIo {
        stdout: Some(out_w),
        stderr: Some(err_w),
        ..SpawnIo::default()
    };
    let child = spawn(&plan, io, &helper()).expect("spawn");
    (child, out_r, err_r)
}

fn finish(mut child: Child, mut out: std::io::PipeReader, mut err: std::io::PipeReader) -> Output {
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let status = child.wait().expect("wait");
    child.cleanup().expect("cleanup");
    Output {
        status,
        stdout,
        stderr: stderr.join().expect("stderr"),
    }
}

fn run(spec: &InstanceSpec) -> Output {
    let (child, out, err) = start(spec);
    finish(child, out, err)
}

#[test]
fn runs_a_program_as_the_unprivileged_user() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let spec = f.spec(
        "id",
        "id -u; id -g; id -G; pwd; hostname; cat /var/user/index.sh",
    );
    let out = run(&spec);
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let uid = spec.uid.to_string();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..5],
        [uid.as_str(), uid.as_str(), uid.as_str(), "/var/user", "scf"],
        "{}",
        out.stdout
    );
    assert_eq!(lines[5], "echo hello from the code");
}

/// Runs `script`, which prints one `name=value` line per check; returns them.
fn checks(out: &Output) -> std::collections::BTreeMap<String, String> {
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn sees_its_code_read_only_layers_merged_and_a_private_writable_tmp() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let script = r#"
        echo code=$(cat /var/user/index.sh)
        touch /var/user/new 2>/dev/null && echo code_writable=yes || echo code_writable=no
        echo both=$(cat /opt/both.txt)
        echo only_one=$(cat /opt/only-one.txt)
        touch /opt/new 2>/dev/null && echo opt_writable=yes || echo opt_writable=no
        echo hi > /tmp/t && echo tmp=$(cat /tmp/t)
        echo tmp_size=$(df -k /tmp | awk 'NR==2 {print $2}')
        echo shm=$(echo s > /dev/shm/s && cat /dev/shm/s)
        touch /x 2>/dev/null && echo root_writable=yes || echo root_writable=no
        touch /etc/x 2>/dev/null && echo etc_writable=yes || echo etc_writable=no
        touch /usr/x 2>/dev/null && echo usr_writable=yes || echo usr_writable=no
        echo null=$(echo gone > /dev/null && echo ok)
        echo env=$(env | sort | tr '\n' ' ')
    "#;
    let out = run(&f.spec("fs", script));
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let c = checks(&out);
    assert_eq!(c["code"], "echo hello from the code");
    assert_eq!(c["code_writable"], "no");
    assert_eq!(c["both"], "two", "the later layer wins");
    assert_eq!(c["only_one"], "one", "the earlier layer's other files stay");
    assert_eq!(c["opt_writable"], "no");
    assert_eq!(c["tmp"], "hi");
    assert_eq!(c["tmp_size"], (512 * 1024).to_string());
    assert_eq!(c["shm"], "s");
    assert_eq!(c["root_writable"], "no");
    assert_eq!(c["etc_writable"], "no");
    assert_eq!(c["usr_writable"], "no");
    assert_eq!(c["null"], "ok");
    assert!(
        c["env"].starts_with("PATH=/usr/local/bin:/usr/bin:/bin PWD=/var/user"),
        "{}",
        c["env"]
    );
    // nothing leaked to the host
    assert!(!f.path("data/code/new").exists());
}

#[test]
fn cannot_see_the_data_dir_keys_or_other_functions_code() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    f.write("data/code-other/other-fn-7f3a.py", "OTHER FUNCTION\n");
    let data = f.path("data");
    let script = format!(
        r#"
        cat {data}/secret.key 2>/dev/null && echo secret=visible || echo secret=hidden
        ls {data} 2>/dev/null && echo data=visible || echo data=hidden
        cat {data}/code-other/other-fn-7f3a.py 2>/dev/null && echo other=visible || echo other=hidden
        echo found=$(find / -path /proc -prune -o \( -name secret.key -o -name other-fn-7f3a.py -o -name db.sqlite \) -print 2>/dev/null | tr '\n' ' ')
        echo grep=$(grep -rl TOPSECRET /var /opt /tmp /etc /root /home 2>/dev/null | tr '\n' ' ')
        echo var=$(ls /var/user/.. | tr '\n' ' ')
        echo top=$(ls / | tr '\n' ' ')
        ls /proc/1/root/ >/dev/null 2>&1 && echo init_root=visible || echo init_root=hidden
        "#,
        data = data.display()
    );
    let out = run(&f.spec("secrets", &script));
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let c = checks(&out);
    assert_eq!(c["secret"], "hidden");
    assert_eq!(c["data"], "hidden");
    assert_eq!(c["other"], "hidden");
    assert_eq!(c["found"].trim(), "");
    assert_eq!(c["grep"].trim(), "");
    assert_eq!(c["var"].trim(), "user");
    assert_eq!(c["init_root"], "hidden");
    for name in c["top"].split_whitespace() {
        assert!(
            [
                "bin", "dev", "etc", "lib", "lib64", "opt", "proc", "sbin", "tmp", "usr", "var"
            ]
            .contains(&name),
            "unexpected /{name} in the instance's root: {}",
            c["top"]
        );
    }
}

#[test]
fn sees_only_its_own_processes() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let script = r#"
        sleep 5 &
        echo pids=$(ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\n' ' ')
        echo ps=$(ps -e -o pid= | wc -l)
        echo one=$(cat /proc/1/cmdline | tr '\0' ' ')
        kill $! 2>/dev/null; true
    "#;
    let out = run(&f.spec("pids", script));
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let c = checks(&out);
    let pids: Vec<u32> = c["pids"]
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    // init, the shell, sleep, and the pipeline's ls/grep/sort/tr
    assert!(pids.len() <= 8, "too many processes visible: {pids:?}");
    assert_eq!(pids[0], 1);
    assert!(
        !pids.contains(&std::process::id()),
        "the host's processes are visible"
    );
    assert!(
        c["ps"].trim().parse::<u32>().expect("count") <= 8,
        "{}",
        c["ps"]
    );
}

#[test]
fn runs_unprivileged_with_no_new_privileges_and_no_capabilities() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    // A setuid-root copy of `id` inside the code: it must not make anyone root.
    let suid = f.path("data/code/suid-id");
    fs::copy("/usr/bin/id", &suid).expect("copy id");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).expect("setuid");
    let script = r#"
        echo euid=$(/var/user/suid-id -u)
        echo nnp=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)
        echo capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
        echo capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
        echo passwd=$(grep ":$(id -u):" /etc/passwd | cut -d: -f1)
        echo nproc=$(awk '/^Max processes/ {print $3}' /proc/self/limits) nofile=$(ulimit -n) core=$(ulimit -c)
    "#;
    let spec = f.spec("privs", script);
    let out = run(&spec);
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let c = checks(&out);
    assert_eq!(c["euid"], spec.uid.to_string());
    assert_eq!(c["nnp"], "1");
    assert_eq!(c["capeff"], "0000000000000000");
    assert_eq!(c["capbnd"], "0000000000000000");
    assert_eq!(c["passwd"], "user");
    let limits = out
        .stdout
        .lines()
        .find(|l| l.starts_with("nproc="))
        .expect("limits line");
    assert_eq!(limits, "nproc=1024 nofile=1024 core=0");
}

const PY_CONNECT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=2)
    s.sendall(sys.argv[3].encode())
    s.close()
    print("connected")
except OSError as e:
    print("refused" if isinstance(e, ConnectionRefusedError) else "failed:" + type(e).__name__)
"#;

fn python_spec(f: &Fixture, name: &str, script: &str, args: &[String]) -> InstanceSpec {
    let mut spec = f.spec(name, "");
    spec.program = "/usr/bin/python3".into();
    spec.args = vec!["-c".into(), script.into()];
    spec.args.extend(args.iter().cloned());
    spec
}

#[test]
fn cannot_reach_the_host_loopback_or_any_network() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    // Stands for Stratus's own API (and the database): listening on the host's loopback.
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    host.set_nonblocking(true).expect("nonblocking");
    let port = host.local_addr().expect("addr").port().to_string();
    let out = run(&python_spec(
        &f,
        "net",
        PY_CONNECT,
        &["127.0.0.1".into(), port, "x".into()],
    ));
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    assert_eq!(out.stdout.trim(), "refused", "{}", out.stderr);
    assert!(
        host.accept().is_err(),
        "the instance reached the host's loopback"
    );

    let script = r#"
        echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')
        echo routes=$(tail -n +2 /proc/net/route | wc -l)
    "#;
    let out = run(&f.spec("ifaces", script));
    let c = checks(&out);
    assert_eq!(c["ifaces"].trim(), "lo", "only loopback");
    assert_eq!(c["routes"], "0");
    // nothing outside either
    let out = run(&python_spec(
        &f,
        "out",
        PY_CONNECT,
        &["1.1.1.1".into(), "53".into(), "x".into()],
    ));
    assert!(out.stdout.trim().starts_with("failed:"), "{}", out.stdout);
}

#[test]
fn the_runtime_listener_is_reachable_only_from_its_own_instance() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let listen = "127.0.0.1:9001".parse().expect("addr");
    // Instance A idles with its own runtime listener.
    let mut a_spec = f.spec("rt-a", "sleep 30");
    a_spec.runtime_listen = Some(listen);
    let (mut a, a_out, a_err) = start(&a_spec);
    let a_listener = a.take_runtime_listener().expect("A's listener");
    a_listener.set_nonblocking(true).expect("nonblocking");
    assert_eq!(
        a_listener.local_addr().expect("addr"),
        std::net::SocketAddr::V4(listen)
    );

    // Instance B connects to 127.0.0.1:9001: it reaches its own listener, never A's.
    let mut b_spec = python_spec(
        &f,
        "rt-b",
        PY_CONNECT,
        &["127.0.0.1".into(), "9001".into(), "from-b".into()],
    );
    b_spec.runtime_listen = Some(listen);
    let (mut b, b_out, b_err) = start(&b_spec);
    let b_listener = b.take_runtime_listener().expect("B's listener");
    let (mut conn, _) = b_listener.accept().expect("B reaches its own runtime API");
    let mut got = String::new();
    conn.read_to_string(&mut got).expect("read");
    assert_eq!(got, "from-b");
    let out = finish(b, b_out, b_err);
    assert_eq!(out.stdout.trim(), "connected", "{}", out.stderr);
    assert!(a_listener.accept().is_err(), "B reached A's runtime API");

    // The parent can reach into A's namespace (as the engine does for web functions).
    let _conn = a.connect(9001).expect("connect into A");
    std::thread::sleep(Duration::from_millis(50));
    assert!(a_listener.accept().is_ok());
    a.kill().expect("kill");
    let out = finish(a, a_out, a_err);
    assert!(!out.status.success());
}

#[test]
fn extra_descriptors_arrive_at_3_and_4_and_nothing_else_leaks() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let (mut r3, w3) = pipe();
    let (r4, mut w4) = std::io::pipe().expect("pipe");
    let mut spec = f.spec(
        "fds",
        "read line <&4; echo \"got $line\" >&3; echo fds=$(ls /proc/self/fd | tr '\\n' ' ')",
    );
    spec.extra_fds = 2;
    let plan = Plan::build(&spec).expect("plan");
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let io = SpawnIo {
        stdout: Some(out_w),
        stderr: Some(err_w),
        fds: vec![w3, OwnedFd::from(r4)],
        ..SpawnIo::default()
    };
    let child = spawn(&plan, io, &helper()).expect("spawn");
    use std::io::Write;
    w4.write_all(b"ping\n").expect("write");
    drop(w4);
    let out = finish(child, out_r, err_r);
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let mut got = String::new();
    r3.read_to_string(&mut got).expect("read");
    assert_eq!(got, "got ping\n");
    // 0-2, 3 and 4, and the descriptor `ls` opens for /proc/self/fd
    let fds = checks(&out)["fds"].clone();
    let fds: Vec<u32> = fds
        .split_whitespace()
        .map(|s| s.parse().expect("fd"))
        .collect();
    assert!(
        fds.iter().all(|fd| *fd <= 5),
        "unexpected descriptors {fds:?}"
    );
}

#[test]
fn memory_over_the_limit_is_oom_killed_and_reported() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let mut spec = python_spec(
        &f,
        "oom",
        "import sys\nprint('allocating', flush=True)\nx = b'a' * (256 << 20)\nprint('survived')",
        &[],
    );
    spec.memory_limit_bytes = 64 << 20;
    let (child, out, err) = start(&spec);
    let started = Instant::now();
    let mut child = child;
    let status = child.wait().expect("wait");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        child.oom_killed().expect("oom counter"),
        "no OOM kill recorded; status {status}"
    );
    let peak = child.memory_peak().expect("peak").unwrap_or(0);
    assert!(peak <= 64 << 20, "peak {peak} above the limit");
    let out = finish(child, out, err);
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGKILL),
        "killed, reported as 128+9"
    );
    assert!(!out.stdout.contains("survived"));
}

#[test]
fn memory_usage_is_readable_while_it_runs() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let (mut child, out, err) = start(&python_spec(
        &f,
        "mem",
        "x = b'a' * (32 << 20)\nimport time\ntime.sleep(30)",
        &[],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut usage = 0;
    while Instant::now() < deadline {
        usage = child.memory_usage().expect("usage");
        if usage > 32 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(usage > 32 << 20, "usage {usage}");
    assert!(!child.oom_killed().expect("oom"));
    child.kill().expect("kill");
    let _ = finish(child, out, err);
}

#[test]
fn a_fork_bomb_is_contained_and_killing_the_instance_ends_it() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let mut spec = f.spec("bomb", "bomb() { bomb | bomb & }; bomb; sleep 30");
    spec.max_processes = 64;
    // NPROC counts per uid across the host: give the bomb a uid of its own.
    spec.uid += 1;
    spec.gid += 1;
    let (mut child, out, err) = start(&spec);
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        peak = peak.max(child.cgroup().pids_current().expect("pids.current"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peak <= 64, "pids {peak} above the limit");
    // the host still forks
    assert!(
        std::process::Command::new("/bin/true")
            .status()
            .expect("host fork")
            .success()
    );
    let cgroup = child.cgroup().clone();
    child.kill().expect("kill");
    let killed = Instant::now();
    let out = finish(child, out, err);
    assert!(killed.elapsed() < Duration::from_secs(10));
    assert!(!out.status.success());
    assert!(
        !cgroup.pids_dir.exists(),
        "the cgroup is removed once the instance is gone"
    );
}

#[test]
fn killing_the_instance_ends_its_whole_process_tree() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let (mut child, out, err) =
        start(&f.spec("tree", "(sleep 60 &); (sh -c 'sleep 61' &); sleep 62"));
    let cgroup = child.cgroup().clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cgroup.pids_current().expect("pids") < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let procs = fs::read_to_string(cgroup.pids_dir.join("cgroup.procs")).expect("procs");
    let pids: Vec<i32> = procs.lines().map(|l| l.parse().expect("pid")).collect();
    assert!(pids.len() >= 4, "{pids:?}");
    child.kill().expect("kill");
    let _ = finish(child, out, err);
    for pid in pids {
        // Gone, or (reparented away and not yet reaped) a zombie.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().chars().next());
        assert!(
            matches!(state, None | Some(Some('Z'))),
            "process {pid} survived: {stat}"
        );
    }
}

#[test]
fn a_failed_exec_is_reported_and_leaves_nothing_behind() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let mut spec = f.spec("noexec", "");
    spec.program = "/nonexistent/program".into();
    let plan = Plan::build(&spec).expect("plan");
    match spawn(&plan, SpawnIo::default(), &helper()) {
        Err(sandbox::SandboxError::Setup(msg)) => {
            assert!(msg.contains("execve /nonexistent/program"), "{msg}")
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
    assert!(!plan.cgroup.memory_dir.exists());
    assert!(!plan.cgroup.pids_dir.exists());
}

#[test]
fn a_spec_exposing_a_forbidden_path_never_starts() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let mut spec = f.spec("forbidden", "true");
    spec.code_dir = f.root.clone();
    assert!(matches!(
        Plan::build(&spec),
        Err(sandbox::SandboxError::InvalidSpec(_))
    ));
}

#[test]
fn this_host_can_sandbox_as_root_and_not_without() {
    if has_root() {
        sandbox::check_privileges().expect("root on this host can sandbox");
    } else {
        let why = sandbox::check_privileges().expect_err("an unprivileged user cannot sandbox");
        assert!(why.contains("CAP_SYS_ADMIN"), "{why}");
    }
}

#[test]
fn starting_an_instance_is_cheap() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let spec = f.spec("speed", "true");
    let plan = Plan::build(&spec).expect("plan");
    let rounds = 10;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut child = spawn(&plan, SpawnIo::default(), &helper()).expect("spawn");
        assert!(child.wait().expect("wait").success());
        child.cleanup().expect("cleanup");
    }
    let each = started.elapsed() / rounds;
    eprintln!("spawn + run `true` + wait + cleanup: {each:?} per instance");
    assert!(each < Duration::from_secs(1), "{each:?}");
}

#[test]
fn namespaces_and_mounts_are_refused_while_threads_and_forks_work() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let script = r#"
        unshare -U true 2>/dev/null && echo userns=allowed || echo userns=refused
        unshare -r true 2>/dev/null && echo userns_root=allowed || echo userns_root=refused
        echo threads=$(python3 -c 'import threading; t = threading.Thread(target=lambda: None); t.start(); t.join(); print("ok")')
        echo fork=$(python3 -c 'import os; pid = os.fork(); os._exit(0) if pid == 0 else print("ok" if os.waitpid(pid, 0)[1] == 0 else "bad")')
        echo node=$(node -e 'require("fs").readFile("/var/user/index.sh", "utf8", (e, d) => console.log(e ? "error" : "ok"))' 2>&1)
        echo subprocess=$(python3 -c 'import subprocess; print(subprocess.run(["true"]).returncode == 0 and "ok")')
        echo interfaces=$(python3 -c 'import socket; print("ok" if socket.if_nameindex() else "none")')
        python3 -c "$PROBE"
    "#;
    // Raw system calls through ctypes: what the allow-list refuses, and how.
    let probe = format!(
        r#"
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    print(name + "=" + ("ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
call("unknown", 1000)
call("x32", {x32} | {getpid})
call("keyctl", {keyctl}, 0, -1)
call("ptrace", {ptrace}, 0, 0, 0, 0)
call("clone3", {clone3}, 0, 0)
call("io_uring", {io_uring_setup}, 1, 0)
call("af_alg", {socket}, {af_alg}, {seqpacket}, 0)
call("netlink_audit", {socket}, {af_netlink}, {raw}, {netlink_audit})
call("no_aslr", {personality}, 0x0040000)
"#,
        x32 = 0x4000_0000u32,
        getpid = libc::SYS_getpid,
        keyctl = libc::SYS_keyctl,
        ptrace = libc::SYS_ptrace,
        clone3 = libc::SYS_clone3,
        io_uring_setup = libc::SYS_io_uring_setup,
        socket = libc::SYS_socket,
        af_alg = libc::AF_ALG,
        seqpacket = libc::SOCK_SEQPACKET,
        af_netlink = libc::AF_NETLINK,
        raw = libc::SOCK_RAW,
        netlink_audit = libc::NETLINK_AUDIT,
        personality = libc::SYS_personality,
    );
    let mut spec = f.spec("seccomp", script);
    spec.env.push(("PROBE".into(), probe));
    spec.memory_limit_bytes = 512 << 20;
    let out = run(&spec);
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let c = checks(&out);
    assert_eq!(c["userns"], "refused");
    assert_eq!(c["userns_root"], "refused");
    assert_eq!(c["threads"], "ok");
    assert_eq!(c["fork"], "ok");
    assert_eq!(c["node"], "ok");
    assert_eq!(c["subprocess"], "ok");
    assert_eq!(c["interfaces"], "ok", "netlink route sockets work");
    for refused in [
        "unknown",
        "x32",
        "keyctl",
        "ptrace",
        "af_alg",
        "netlink_audit",
        "no_aslr",
    ] {
        assert_eq!(c[refused], "EPERM", "{refused}: {}", out.stdout);
    }
    assert_eq!(c["clone3"], "ENOSYS", "glibc falls back to clone");
    assert_eq!(c["io_uring"], "ENOSYS", "libuv falls back to plain calls");
}

#[test]
fn instances_die_with_the_server_even_when_it_is_killed() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let spec = f.spec("orphan", "sleep 1000");
    let plan = Plan::build(&spec).expect("plan");
    let plan_file = f.path("plan.json");
    fs::write(&plan_file, plan.to_bytes().expect("encode")).expect("write plan");
    // A stand-in server: starts the instance, then is SIGKILLed (no destructor runs).
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_sandbox-helper"))
        .arg("__hold")
        .arg(&plan_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("server");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("init pid");
    let init: i32 = line.trim().parse().expect("pid");
    assert!(plan.cgroup.pids_current().expect("pids") >= 2);
    server.kill().expect("kill the server");
    server.wait().expect("reap the server");
    let deadline = Instant::now() + Duration::from_secs(5);
    while plan.cgroup.pids_current().unwrap_or(0) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        plan.cgroup.pids_current().unwrap_or(0),
        0,
        "the instance outlived its server"
    );
    let stat = fs::read_to_string(format!("/proc/{init}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "init {init} still runs: {stat}"
    );
    plan.cgroup.remove().expect("remove the cgroup");
}

#[test]
fn leftover_cgroups_are_removed_and_busy_ones_kept() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let mut spec = f.spec("leftover-busy", "sleep 30");
    spec.cgroup.parent = format!("stratus-it-{}", std::process::id());
    let (mut child, out, err) = start(&spec);
    let stale = spec.cgroup.parent_dirs()[0].join("it-stale");
    fs::create_dir_all(&stale).expect("a stale cgroup");
    let (removed, busy) = spec.cgroup.remove_leftovers().expect("remove");
    assert_eq!(
        (removed, busy),
        (1, 2),
        "v1: the stale one removed; the running instance's two kept"
    );
    assert!(!stale.exists());
    assert!(child.cgroup().memory_dir.exists());
    child.kill().expect("kill");
    let _ = finish(child, out, err);
    for dir in spec.cgroup.parent_dirs() {
        fs::remove_dir(dir).expect("remove the test's parent cgroup");
    }
}

#[test]
fn python_runs_with_code_and_layers_on_its_path() {
    require!(has_root(), ROOT);
    let f = Fixture::new();
    f.write(
        "data/code/handler.py",
        "import helper\ndef main(): return helper.VALUE\n",
    );
    f.write("data/layers/one/helper.py", "VALUE = 'from layer one'\n");
    f.write("data/layers/two/helper.py", "VALUE = 'from layer two'\n");
    let mut spec = python_spec(
        &f,
        "python",
        "import handler, ssl, json; print(handler.main())",
        &[],
    );
    spec.env
        .push(("PYTHONPATH".into(), "/var/user:/opt".into()));
    let out = run(&spec);
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    assert_eq!(out.stdout.trim(), "from layer two");
}

#[test]
fn a_child_can_be_shared_across_threads_and_awaited_through_its_exit_fd() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Child>();
    require!(has_root(), ROOT);
    let f = Fixture::new();
    let (mut child, out, err) = start(&f.spec("exitfd", "sleep 0.2; exit 7"));
    let fd = child.exit_fd().expect("pidfd");
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 0) },
        0,
        "not readable while it runs"
    );
    assert!(child.try_wait().expect("try_wait").is_none());
    // SAFETY: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 10_000) },
        1,
        "readable once it ended"
    );
    assert_eq!(
        child.try_wait().expect("try_wait").and_then(|s| s.code()),
        Some(7)
    );
    let _ = finish(child, out, err);
}

#[test]
fn dropping_an_instance_never_blocks_and_its_cgroup_goes_in_the_background() {
    require!(has_root(), ROOT);
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let f = Fixture::new();
    let (mut child, _out, _err) = start(&f.spec("teardown", "sleep 30"));
    let helper = child.pid();
    let dirs = child.cgroup().remove.clone();
    // A nested cgroup keeps the instance's own from being removed until the test takes it away: a teardown that
    // waits for the removal inside `drop` (up to 2 s of retries) would block the async thread that long.
    let nested = dirs[0].join("held");
    fs::create_dir(&nested).expect("a nested cgroup");
    // Removed however the test ends, so that a failure leaves no cgroup behind.
    struct Nested(PathBuf);
    impl Drop for Nested {
        fn drop(&mut self) {
            let _ = fs::remove_dir(&self.0);
        }
    }
    let nested = Nested(nested);
    let gone = Arc::new(AtomicBool::new(false));
    let flag = gone.clone();
    child.on_teardown(move || flag.store(true, Ordering::SeqCst));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let took = rt.block_on(async move {
        let ticks = tokio::spawn(async {
            let mut n = 0u32;
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                n += 1;
            }
            n
        });
        tokio::task::yield_now().await;
        let t = Instant::now();
        drop(child);
        let took = t.elapsed();
        // The runtime's only thread is free again: the ticker finishes on it.
        assert_eq!(ticks.await.expect("ticker"), 20);
        took
    });
    assert!(
        took < Duration::from_millis(100),
        "dropping the instance blocked for {took:?}"
    );

    // Killed at once and reaped in the background: no zombie is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ours = |pid: u32| {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            after.split(' ').nth(1) == Some(&std::process::id().to_string())
        })
    };
    while ours(helper) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!ours(helper), "the helper {helper} was not reaped");
    std::thread::sleep(Duration::from_millis(100));
    assert!(dirs[0].exists(), "held by the nested cgroup");
    assert!(
        !gone.load(Ordering::SeqCst),
        "the hook runs only once it is gone"
    );

    fs::remove_dir(&nested.0).expect("remove the nested cgroup");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(gone.load(Ordering::SeqCst) && dirs.iter().all(|d| !d.exists()))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for d in &dirs {
        assert!(!d.exists(), "{} was not removed", d.display());
    }
    assert!(gone.load(Ordering::SeqCst), "the teardown hook ran");
    assert!(sandbox::flush_teardown(Duration::from_secs(10)));
}

#[test]
fn cleanup_runs_the_teardown_hooks_and_a_dropped_cleaned_child_does_nothing_more() {
    require!(has_root(), ROOT);
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let f = Fixture::new();
    let (mut child, _out, _err) = start(&f.spec("hooks", "exit 0"));
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    child.on_teardown(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let dirs = child.cgroup().remove.clone();
    child.cleanup().expect("cleanup");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(dirs.iter().all(|d| !d.exists()));
    drop(child);
    assert!(sandbox::flush_teardown(Duration::from_secs(10)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
