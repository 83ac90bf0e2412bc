//! Prerequisites of tests: root, `python3`, `node`, `curl`, …
//!
//! A test that needs something this machine lacks must not pass as if it had run. [`require!`] checks a condition
//! first thing in the test: when it holds, the test goes on; when it does not, the test
//!
//! - **fails** if the `CI` environment variable is set (and not empty): CI must run every test;
//! - otherwise writes one loud `SKIPPED` line straight to the process's stderr (past the test harness's output
//!   capture, which swallows `eprintln!` of passing tests) and returns from the test.
//!
//! ```
//! fn needs_curl() {
//!     prereq::require!(prereq::has_command("curl"), "curl on PATH");
//!     // … the test proper …
//! }
//! # needs_curl();
//! ```
//!
//! No dependencies, so that any crate's tests can use it (also through `testkit`, which re-exports it).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Checks a prerequisite of the current test: when `$cond` is false the test is skipped loudly (see the crate
/// documentation), or fails when `CI` is set. `$why` names what is missing ("root", "node on PATH").
#[macro_export]
macro_rules! require {
    ($cond:expr, $why:expr $(,)?) => {
        if !$cond {
            $crate::skip(module_path!(), line!(), &$why);
            return;
        }
    };
}

/// Whether the `CI` environment variable is set (to anything but the empty string).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// What [`require!`] does when a prerequisite is missing: panics under CI, otherwise writes the notice to the real
/// stderr and returns (the macro then returns from the test).
#[track_caller]
pub fn skip(module: &str, line: u32, why: &str) {
    let notice = notice(&test_name(module, line), why);
    if in_ci() {
        panic!("{notice} (CI is set, so it may not be skipped)");
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(format!("\n!!! {notice}\n").as_bytes());
    let _ = err.flush();
}

fn notice(test: &str, why: &str) -> String {
    format!("SKIPPED {test}: needs {why}; this test did NOT run")
}

/// The running test's name: libtest names each test's thread after it; `module:line` otherwise.
fn test_name(module: &str, line: u32) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => format!("{module}:{line}"),
    }
}

/// Whether the process runs with effective uid 0 (read from `/proc/self/status`, so no libc is needed).
pub fn has_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_uid(&s))
        == Some(0)
}

/// The effective uid in a `/proc/<pid>/status` text (`Uid:` real, effective, saved, filesystem).
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The first executable file called `name` on `PATH` (or `name` itself when it contains a `/`).
pub fn find_command(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return is_executable(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Whether an executable called `name` is on `PATH`.
pub fn has_command(name: &str) -> bool {
    find_command(name).is_some()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_field() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t5\t7\t5\t5\n"), Some(7));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn finds_sh_and_not_a_made_up_command() {
        assert!(has_command("sh"));
        assert!(find_command("/bin/sh").is_some());
        assert!(!has_command("surely-no-such-command-here"));
        assert!(!has_command("/nonexistent/sh"));
    }

    #[test]
    fn names_the_test_from_its_thread() {
        let name = test_name("m", 1);
        assert!(name.contains("names_the_test_from_its_thread"), "{name}");
        let n = notice("t", "root");
        assert!(n.contains("SKIPPED t") && n.contains("needs root") && n.contains("NOT run"));
    }

    fn guarded(cond: bool, ran: &mut bool) {
        require!(cond, "a condition");
        *ran = true;
    }

    #[test]
    fn require_runs_the_rest_only_when_the_condition_holds() {
        let mut ran = false;
        guarded(true, &mut ran);
        assert!(ran);
        if in_ci() {
            // Under CI a missing prerequisite fails the test.
            let r = std::panic::catch_unwind(|| guarded(false, &mut false));
            assert!(r.is_err());
        } else {
            let mut ran = false;
            guarded(false, &mut ran);
            assert!(!ran);
        }
    }
}
