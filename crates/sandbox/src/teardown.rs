//! Tearing dropped instances down off the caller's thread.
//!
//! Dropping a [`crate::Child`] kills the instance at once (a signal, never a wait) and hands what is left to
//! one background thread: it reaps the helper (the instance's processes are gone once the helper exits and
//! its cgroup is empty), removes the instance's cgroup directories, then runs the child's teardown hooks
//! (which, for example, return the instance's uid to its pool). Callers such as async runtimes therefore
//! never block in `waitpid` or in the retries of a cgroup removal. The thread polls: each pending instance is
//! looked at again after a short, growing pause, so a stuck one costs a syscall now and then, not a thread.
//! [`flush`] waits until everything handed over so far is gone (for a clean shutdown).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cgroup::CgroupPlan;

/// Code run once an instance is completely gone.
pub(crate) type Hook = Box<dyn FnOnce() + Send>;

/// What is left of a dropped instance.
pub(crate) struct Remains {
    /// The helper's pid: our child, not yet reaped (so the pid is still its own) unless `reaped`.
    pub helper_pid: i32,
    pub helper_pidfd: Option<OwnedFd>,
    pub reaped: bool,
    pub cgroup: CgroupPlan,
    pub hooks: Vec<Hook>,
}

/// First pause before an instance is looked at again, and the longest one.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// The helper is killed again (directly) when it has not exited after this long.
const KILL_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// After this long an instance whose cgroup cannot be removed is given up (its hooks do not run: something
/// of it may still live). The directory stays for [`crate::CgroupConfig::remove_leftovers`].
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

struct Pending {
    remains: Remains,
    since: Instant,
    next: Instant,
    pause: Duration,
    killed_again: bool,
}

enum Step {
    Done,
    Wait,
    GiveUp,
}

impl Pending {
    fn new(remains: Remains) -> Pending {
        let now = Instant::now();
        Pending {
            remains,
            since: now,
            next: now,
            pause: FIRST_PAUSE,
            killed_again: false,
        }
    }

    /// One look: reap the helper if it exited, then try to remove the cgroup.
    fn step(&mut self, now: Instant) -> Step {
        let r = &mut self.remains;
        if !r.reaped {
            let mut status = 0;
            // SAFETY: waitpid on our own unreaped child, without blocking.
            let got = unsafe { libc::waitpid(r.helper_pid, &mut status, libc::WNOHANG) };
            if got == r.helper_pid || (got < 0 && last_errno() == libc::ECHILD) {
                r.reaped = true;
            } else if !self.killed_again && now.duration_since(self.since) >= KILL_AGAIN_AFTER {
                self.killed_again = true;
                kill_helper(r);
            }
        }
        if r.reaped && r.cgroup.remove().is_ok() {
            return Step::Done;
        }
        if now.duration_since(self.since) >= GIVE_UP_AFTER {
            return Step::GiveUp;
        }
        self.next = now + self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        Step::Wait
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn kill_helper(r: &Remains) {
    if let Some(fd) = &r.helper_pidfd {
        // SAFETY: pidfd_send_signal on a pidfd we own.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    } else {
        // SAFETY: the helper is our unreaped child, so its pid cannot have been recycled.
        unsafe {
            libc::kill(r.helper_pid, libc::SIGKILL);
        }
    }
}

/// Runs the hooks of a finished instance; a panicking hook does not take the thread down.
fn run_hooks(hooks: Vec<Hook>) {
    for hook in hooks {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    }
}

struct Reaper {
    tx: mpsc::Sender<Remains>,
    /// Instances handed over and not finished yet.
    pending: Mutex<usize>,
    settled: Condvar,
}

impl Reaper {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut pending = self.lock();
        *pending = pending.saturating_sub(n);
        if *pending == 0 {
            self.settled.notify_all();
        }
    }
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

fn reaper() -> Option<&'static Reaper> {
    REAPER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("sandbox-teardown".into())
                .spawn(move || run(rx))
                .ok()?;
            Some(Reaper {
                tx,
                pending: Mutex::new(0),
                settled: Condvar::new(),
            })
        })
        .as_ref()
}

fn run(rx: mpsc::Receiver<Remains>) {
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let received = match pending.iter().map(|p| p.next).min() {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(next) => rx.recv_timeout(next.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(r) => pending.push(Pending::new(r)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The sender lives in a static: this does not happen.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(r) = rx.try_recv() {
            pending.push(Pending::new(r));
        }
        let now = Instant::now();
        let mut finished = 0;
        let mut i = 0;
        while i < pending.len() {
            if pending[i].next > now {
                i += 1;
                continue;
            }
            match pending[i].step(now) {
                Step::Wait => i += 1,
                Step::Done => {
                    let p = pending.swap_remove(i);
                    run_hooks(p.remains.hooks);
                    finished += 1;
                }
                Step::GiveUp => {
                    // Not reaped or not removable for minutes: leave it (see GIVE_UP_AFTER).
                    drop(pending.swap_remove(i));
                    finished += 1;
                }
            }
        }
        if let Some(r) = reaper() {
            r.finished(finished);
        }
    }
}

/// Hands a killed instance's remains to the background thread. Without one (it could not be started), tears
/// them down here, blocking.
pub(crate) fn hand_over(remains: Remains) {
    if let Some(r) = reaper() {
        *r.lock() += 1;
        if let Err(mpsc::SendError(remains)) = r.tx.send(remains) {
            r.finished(1);
            teardown_here(remains);
        }
    } else {
        teardown_here(remains);
    }
}

fn teardown_here(remains: Remains) {
    let mut p = Pending::new(remains);
    loop {
        let now = Instant::now();
        match p.step(now) {
            Step::Done => {
                run_hooks(p.remains.hooks);
                return;
            }
            Step::GiveUp => return,
            Step::Wait => std::thread::sleep(p.next.saturating_duration_since(Instant::now())),
        }
    }
}

/// Waits until every instance dropped so far has been reaped and its cgroup removed (or given up), at most
/// `timeout`. Returns whether nothing is pending any more. Blocking: for shutdown, not for async threads.
pub fn flush(timeout: Duration) -> bool {
    let Some(r) = reaper() else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    let mut pending = r.lock();
    while *pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        pending = r
            .settled
            .wait_timeout(pending, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    true
}

/// Instances handed over and not finished yet.
pub fn pending() -> usize {
    reaper().map_or(0, |r| *r.lock())
}
