//! Root-only tests that start real sandboxed instances and check, from inside, what they can see and do.
//! Without root every test prints a loud SKIPPED line and passes.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use sandbox::{Child, Helper, InstanceSpec, Plan, SpawnIo, spawn};

fn have_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    () => {
        if !have_root() {
            eprintln!(
                "SKIPPED (needs root): {} — sandbox isolation is NOT tested",
                module_path!()
            );
            return;
        }
    };
}

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
    require_root!();
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
