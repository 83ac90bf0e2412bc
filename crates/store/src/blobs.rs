//! Content-addressed blobs (code and layer zips) in a local directory: `blobs/<sha256>`, written to a temporary
//! file, fsynced, renamed into place and the directory fsynced, so a blob is durable before any record that
//! references it commits. Unpacked trees live beside them under `unpacked/<sha256>` and are derived data.
//! Small packages are not written here when uploaded: `Store::put_blob` keeps them in the database, and a copy
//! arrives here only when an instance needs the tree (`Store::ensure_local_blob`).
//!
//! Each process works in a temporary directory of its own, `tmp/<pid>-<stamp>-<n>/`, whose `lock` file it holds
//! (`flock`) for as long as its blob store lives. Nothing else touches a live process's directory: only `serve`
//! clears leftovers ([`BlobStore::clean_stale_temp`]), and only those whose lock is free and whose pid is gone.
//!
//! Collection never races an upload into losing a blob (see [`BlobStore::move_aside`]): candidates are moved into
//! the collecting process's `trash/` first, and only deleted if, after the move, they are still unreferenced and
//! still older than the grace period; otherwise they are put back.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::unzip::{self, UnzipLimits};
use model::CodeRef;

/// An unpacked blob: where it is and how many bytes its files take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedTree {
    pub path: PathBuf,
    pub bytes: u64,
    /// Whether this call unpacked it (false: it was in place already).
    pub unpacked_now: bool,
}

/// Unpacks of the same content in one process wait for each other (the first one unpacks, the others find its
/// tree), keyed by the first byte of the address.
static UNPACKING: [std::sync::Mutex<()>; 64] = [const { std::sync::Mutex::new(()) }; 64];

fn unpack_lock(sha256: &str) -> std::sync::MutexGuard<'static, ()> {
    let i = sha256
        .get(..2)
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .unwrap_or(0)
        % UNPACKING.len();
    UNPACKING[i].lock().unwrap_or_else(|p| p.into_inner())
}

/// The blob directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    own: Arc<OwnTemp>,
}

/// The name of the lock file in each process's temporary directory.
const LOCK_FILE: &str = "lock";
/// Where a collection keeps the blobs it moved aside, inside its process's temporary directory.
const TRASH: &str = "trash";

/// This process's temporary directory. The lock is held as long as the value lives; when the last clone of the
/// blob store goes, whatever a collection left in its trash goes back to `blobs/` and the directory is removed.
#[derive(Debug)]
struct OwnTemp {
    dir: PathBuf,
    blobs: PathBuf,
    _lock: fs::File,
}

impl Drop for OwnTemp {
    fn drop(&mut self) {
        if let Err(e) = retire(&self.dir, &self.blobs) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the temporary directory");
        }
    }
}

/// Puts back every blob in `dir`'s trash that `blobs/` lacks (a collection that stopped half-way never decided
/// to delete them), then removes `dir`. Keeps `dir` when a blob cannot be put back.
fn retire(dir: &Path, blobs: &Path) -> Result<usize> {
    let trash = dir.join(TRASH);
    let mut restored = 0;
    if let Ok(entries) = fs::read_dir(&trash) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_sha(&name) {
                continue;
            }
            let dest = blobs.join(&name);
            if dest.exists() {
                let _ = fs::remove_file(e.path());
            } else {
                fs::rename(e.path(), &dest).map_err(|err| StoreError::io(&dest, err))?;
                restored += 1;
            }
        }
    }
    if restored > 0 {
        fsync_dir(blobs)?;
    }
    fs::remove_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    Ok(restored)
}

/// The pid that made a temporary entry: `<pid>-…` (a process directory), or `<hint>.<pid>.<n>` (a file of
/// earlier versions, which wrote straight into `tmp/`).
fn owner_pid(name: &str) -> Option<u32> {
    if let Some((pid, _)) = name.split_once('-') {
        return pid.parse().ok();
    }
    let mut parts = name.rsplit('.');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Whether a process with this pid exists (in this pid namespace). Errs on the side of "alive".
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn valid_sha(sha: &str) -> bool {
    sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Adds read permission for everyone to every file (and execute where the owner has it) and read and search
/// permission to every directory of a freshly unpacked tree. Symlinks are left alone.
fn open_to_everyone(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let e = e.map_err(|e| StoreError::io(&dir, e))?;
            let path = e.path();
            let meta = fs::symlink_metadata(&path).map_err(|err| StoreError::io(&path, err))?;
            let mode = meta.permissions().mode() & 0o7777;
            let new = if meta.is_dir() {
                stack.push(path.clone());
                mode | 0o555
            } else if meta.is_file() {
                mode | 0o444 | if mode & 0o100 != 0 { 0o111 } else { 0 }
            } else {
                continue;
            };
            if new != mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(new))
                    .map_err(|err| StoreError::io(&path, err))?;
            }
        }
    }
    let meta = fs::metadata(root).map_err(|e| StoreError::io(root, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    fs::set_permissions(root, fs::Permissions::from_mode(mode | 0o555))
        .map_err(|e| StoreError::io(root, e))
}

/// The lowercase hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Makes `tmp/<pid>-<stamp>-<n>/` and takes its lock.
fn make_own_temp(tmp: &Path, blobs: PathBuf) -> Result<OwnTemp> {
    let pid = std::process::id();
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for n in 0..1000u32 {
        let dir = tmp.join(format!("{pid}-{stamp:x}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::io(&dir, e)),
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::File::create(&lock_path).map_err(|e| StoreError::io(&lock_path, e))?;
        // Nobody else can hold the lock of a directory just made; until it is taken, the live pid in the name
        // keeps cleaners away.
        lock.try_lock()
            .map_err(|e| StoreError::io(&lock_path, std::io::Error::other(e.to_string())))?;
        return Ok(OwnTemp {
            dir,
            blobs,
            _lock: lock,
        });
    }
    Err(StoreError::io(
        tmp,
        std::io::Error::other("no free name for a temporary directory"),
    ))
}

impl BlobStore {
    /// Opens (creating) the blob directory under `data_dir`, and a temporary directory of this process's own.
    /// Other processes' temporary files are left alone (see [`BlobStore::clean_stale_temp`]).
    pub fn open(data_dir: &Path) -> Result<BlobStore> {
        let root = data_dir.to_path_buf();
        for sub in ["blobs", "unpacked", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        let own = make_own_temp(&root.join("tmp"), root.join("blobs"))?;
        Ok(BlobStore {
            root,
            own: Arc::new(own),
        })
    }

    /// This process's temporary directory (under `DATA_DIR/tmp`).
    pub fn temp_dir(&self) -> &Path {
        &self.own.dir
    }

    /// Removes what dead processes left in `DATA_DIR/tmp` (a crash mid-write or mid-unpack): the directory of
    /// a process is removed only when its lock is free (no process holds it, in any pid namespace) and its pid
    /// is not alive here (a directory just made is locked a moment after it appears). Blobs a dead collection had
    /// moved aside go back to `blobs/` first. Only the server calls this; a CLI command beside a live server
    /// must touch nothing of it. Returns how many entries went.
    pub fn clean_stale_temp(&self) -> Result<usize> {
        let tmp = self.root.join("tmp");
        let blobs = self.root.join("blobs");
        let mut removed = 0;
        for e in fs::read_dir(&tmp)
            .map_err(|e| StoreError::io(&tmp, e))?
            .flatten()
        {
            let path = e.path();
            if path == self.own.dir {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner_pid(&name) else {
                continue;
            };
            if pid_alive(pid) {
                continue;
            }
            if path.is_dir() {
                // Held while we remove it, so that no other cleaner works on it at the same time.
                let lock = fs::File::open(path.join(LOCK_FILE)).ok();
                if let Some(l) = &lock
                    && l.try_lock().is_err()
                {
                    continue;
                }
                match retire(&path, &blobs) {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(dir = %path.display(), restored = n, "restored blobs a dead collection had moved aside");
                        }
                        removed += 1;
                    }
                    Err(err) => {
                        tracing::warn!(dir = %path.display(), error = %err, "could not clear a dead process's temporary directory")
                    }
                }
            } else if fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    /// Where a blob's unpacked tree lives.
    pub fn unpacked_path(&self, sha256: &str) -> PathBuf {
        self.root.join("unpacked").join(sha256)
    }

    /// A fresh private temporary path (for unpacking before an atomic rename), in this process's directory.
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.own.dir.join(format!("{hint}.{n}"))
    }

    /// Stores bytes durably; returns their address. Storing the same bytes twice is harmless, and storing bytes
    /// that are already there restarts their grace period (see [`BlobStore::move_aside`]).
    pub fn put(&self, bytes: &[u8]) -> Result<CodeRef> {
        let sha256 = sha256_hex(bytes);
        let dest = self.path(&sha256);
        let code = CodeRef {
            sha256,
            size: bytes.len() as u64,
        };
        if refresh(&dest) {
            return Ok(code);
        }
        let tmp = self.temp_path(&code.sha256);
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io(&tmp, e));
        }
        fs::rename(&tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        fsync_dir(&self.root.join("blobs"))?;
        Ok(code)
    }

    /// Where a blob's bytes are now: in `blobs/`, or in a collection's trash while it re-checks the references.
    fn locate(&self, sha256: &str) -> Option<PathBuf> {
        if !valid_sha(sha256) {
            return None;
        }
        let dest = self.path(sha256);
        if dest.is_file() {
            return Some(dest);
        }
        if let Ok(entries) = fs::read_dir(self.root.join("tmp")) {
            for e in entries.flatten() {
                let p = e.path().join(TRASH).join(sha256);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        // Put back meanwhile.
        dest.is_file().then_some(dest)
    }

    pub fn read(&self, sha256: &str) -> Result<Vec<u8>> {
        // A blob moved aside and put back (or deleted) between locating and reading it: look again.
        for _ in 0..3 {
            let Some(path) = self.locate(sha256) else {
                break;
            };
            match fs::read(&path) {
                Ok(bytes) => return Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(path, e)),
            }
        }
        Err(StoreError::BlobMissing {
            sha256: sha256.to_string(),
        })
    }

    pub fn exists(&self, sha256: &str) -> bool {
        self.locate(sha256).is_some()
    }
    /// The blob unpacked under `unpacked/<sha256>`, unpacking it first if needed (into a temporary directory
    /// renamed into place, so a half-unpacked tree is never seen). Idempotent; safe to race: within a process
    /// concurrent callers unpack once, across processes the first rename wins.
    pub fn ensure_unpacked(&self, sha256: &str, limits: &UnzipLimits) -> Result<UnpackedTree> {
        let _one_at_a_time = unpack_lock(sha256);
        let path = self.unpacked_path(sha256);
        let size_file = self.root.join("unpacked").join(format!("{sha256}.bytes"));
        // The size file is written before the tree is renamed into place, so a tree in place always has one.
        let read_size = || {
            fs::read_to_string(&size_file)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        if path.is_dir()
            && let Some(bytes) = read_size()
        {
            return Ok(UnpackedTree {
                path,
                bytes,
                unpacked_now: false,
            });
        }
        let zip = self.read(sha256)?;
        let tmp = self.temp_path(sha256);
        fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        let unpacked = match unzip::unpack(&zip, &tmp, limits) {
            Ok(u) => u,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
        };
        // Instances run as unprivileged users: everyone may read the code (it is mounted read-only anyway).
        if let Err(e) = open_to_everyone(&tmp) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let size_tmp = self.temp_path(&format!("{sha256}.bytes"));
        let write_size = fs::write(&size_tmp, unpacked.bytes.to_string())
            .and_then(|()| fs::rename(&size_tmp, &size_file));
        if let Err(e) = write_size {
            let _ = fs::remove_dir_all(&tmp);
            return Err(StoreError::io(&size_file, e));
        }
        // Another worker may have unpacked the same content meanwhile: then its tree stays and ours goes. A tree
        // in place is never replaced, since an instance may be using it.
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_dir_all(&tmp);
            if !path.is_dir() {
                return Err(StoreError::io(&path, e));
            }
        }
        Ok(UnpackedTree {
            path,
            bytes: unpacked.bytes,
            unpacked_now: true,
        })
    }

    /// Collection, step 1: the blobs not in `referenced` last written (or re-uploaded) before `cutoff`. The
    /// caller takes `cutoff` (now minus the grace period) before it reads `referenced`.
    pub fn unreferenced_before(
        &self,
        referenced: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<Vec<String>> {
        let dir = self.root.join("blobs");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir)
            .map_err(|e| StoreError::io(&dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_sha(&name) || referenced.contains(&name) {
                continue;
            }
            if modified(&e.path()).is_some_and(|t| t < cutoff) {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Collection, step 2: moves the candidates into this process's trash. Returns those moved.
    ///
    /// Why the move makes collection safe against an upload of the same bytes that races it (`put`, then the
    /// commit of a record that references them):
    ///
    /// - `put` refreshes the modification time of a blob it finds in place, and then checks that the blob is
    ///   still in place; if not, it writes a fresh copy. So either its refresh happened before the move (the
    ///   moved file carries the new time, and step 3 sees it), or the upload left a new file in `blobs/` that
    ///   this collection never touches.
    /// - Step 3 re-reads the references after the move: a record committed meanwhile keeps its blob.
    /// - A record committed after that re-read was uploaded less than the grace period before its commit, so
    ///   after `cutoff`: its blob is young and is put back.
    ///
    /// Readers find a moved blob in the trash (`read`, `exists`), so a worker preparing a record that committed
    /// during a collection never sees it missing. A process that dies with blobs in its trash leaves them to the
    /// next `serve`, which puts them back.
    pub fn move_aside(&self, shas: &[String]) -> Result<Vec<String>> {
        let trash = self.own.dir.join(TRASH);
        fs::create_dir_all(&trash).map_err(|e| StoreError::io(&trash, e))?;
        let mut moved = Vec::new();
        for sha in shas {
            if !valid_sha(sha) {
                continue;
            }
            match fs::rename(self.path(sha), trash.join(sha)) {
                Ok(()) => moved.push(sha.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Put back what was moved so far before giving up.
                    let _ = self.settle(&moved, &moved.iter().cloned().collect(), cutoff_never());
                    return Err(StoreError::io(self.path(sha), e));
                }
            }
        }
        Ok(moved)
    }

    /// Collection, step 3: with the references read after the move, puts back every moved blob that is
    /// referenced or was re-uploaded at or after `cutoff`, and deletes the others with their unpacked trees.
    /// Returns how many blobs were deleted.
    pub fn settle(
        &self,
        moved: &[String],
        referenced: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<usize> {
        let trash = self.own.dir.join(TRASH);
        let mut removed = 0;
        let mut restored = false;
        let mut first_err = None;
        for sha in moved {
            let trashed = trash.join(sha);
            let dest = self.path(sha);
            let old = modified(&trashed).is_some_and(|t| t < cutoff);
            if referenced.contains(sha) || !old {
                // A fresh copy may be in place already (uploaded after the move): the same bytes either way.
                let put_back = if dest.exists() {
                    fs::remove_file(&trashed)
                } else {
                    fs::rename(&trashed, &dest)
                };
                match put_back {
                    Ok(()) => restored = true,
                    Err(e) => {
                        first_err.get_or_insert(StoreError::io(&dest, e));
                    }
                }
                continue;
            }
            if let Err(e) = fs::remove_file(&trashed) {
                first_err.get_or_insert(StoreError::io(&trashed, e));
                continue;
            }
            removed += 1;
            // The unpacked tree is derived data; keep it when the same bytes were uploaded again meanwhile.
            if !dest.exists() {
                let _ = fs::remove_dir_all(self.unpacked_path(sha));
                let _ = fs::remove_file(self.root.join("unpacked").join(format!("{sha}.bytes")));
            }
        }
        if restored {
            fsync_dir(&self.root.join("blobs"))?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// Removes blobs (and their unpacked trees) that are not in `referenced` and were last written more than
    /// `grace` ago: the three steps with one set of references, for a caller that has nothing to re-read
    /// (`Store::collect_blobs` re-reads the metadata between the steps). Returns how many blobs were removed.
    pub fn collect(&self, referenced: &HashSet<String>, grace: Duration) -> Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let candidates = self.unreferenced_before(referenced, cutoff)?;
        let moved = self.move_aside(&candidates)?;
        self.settle(&moved, referenced, cutoff)
    }
}

/// A cutoff before which nothing was written: with it, `settle` keeps everything.
fn cutoff_never() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The deduplicating half of `put`: when the blob is in place, restarts its grace period and says whether it is
/// still in place afterwards (a collection may have moved it aside meanwhile; then the caller writes it again).
fn refresh(dest: &Path) -> bool {
    let Ok(f) = fs::File::options().append(true).open(dest) else {
        return false;
    };
    if f.set_modified(SystemTime::now()).is_err() {
        return false;
    }
    drop(f);
    dest.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = BlobStore::open(dir.path()).expect("open");
        let a = b.put(b"hello").expect("put");
        assert_eq!(
            a.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(a.size, 5);
        assert_eq!(b.put(b"hello").expect("put again"), a);
        assert_eq!(b.read(&a.sha256).expect("read"), b"hello");
        assert!(matches!(
            b.read("../etc/passwd"),
            Err(StoreError::BlobMissing { .. })
        ));
    }

    #[test]
    fn collect_keeps_referenced_and_recent_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = BlobStore::open(dir.path()).expect("open");
        let keep = b.put(b"keep").expect("put");
        let drop = b.put(b"drop").expect("put");
        let mut refs = HashSet::new();
        refs.insert(keep.sha256.clone());
        assert_eq!(b.collect(&refs, Duration::from_secs(3600)).expect("gc"), 0);
        assert_eq!(b.collect(&refs, Duration::ZERO).expect("gc"), 1);
        assert!(b.exists(&keep.sha256));
        assert!(!b.exists(&drop.sha256));
    }
    /// A pid that no process has (a child that has exited and was reaped).
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = c.id();
        c.wait().expect("wait");
        assert!(!pid_alive(pid));
        pid
    }

    #[test]
    fn an_upload_of_a_blob_moved_aside_writes_it_again_and_a_young_blob_is_put_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = BlobStore::open(dir.path()).expect("open");
        let code = b.put(b"racing").expect("put");
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .append(true)
            .open(b.path(&code.sha256))
            .and_then(|f| f.set_modified(old))
            .expect("age the blob");
        let cutoff = SystemTime::now() - Duration::from_secs(60);
        let none = HashSet::new();
        let candidates = b.unreferenced_before(&none, cutoff).expect("candidates");
        assert_eq!(candidates, vec![code.sha256.clone()]);
        let moved = b.move_aside(&candidates).expect("move");
        assert_eq!(moved, candidates);
        assert!(!b.path(&code.sha256).exists());
        // Readers still find it while it is aside.
        assert!(b.exists(&code.sha256));
        assert_eq!(b.read(&code.sha256).expect("read aside"), b"racing");
        // An upload now does not count on the moved file: it writes a fresh copy.
        assert_eq!(b.put(b"racing").expect("re-upload"), code);
        assert!(b.path(&code.sha256).is_file());
        assert_eq!(b.settle(&moved, &none, cutoff).expect("settle"), 1);
        assert_eq!(b.read(&code.sha256).expect("read"), b"racing");

        // A blob refreshed before the move is put back by the re-check.
        fs::File::options()
            .append(true)
            .open(b.path(&code.sha256))
            .and_then(|f| f.set_modified(old))
            .expect("age the blob");
        let candidates = b.unreferenced_before(&none, cutoff).expect("candidates");
        assert_eq!(b.put(b"racing").expect("refresh"), code);
        let moved = b.move_aside(&candidates).expect("move");
        assert_eq!(b.settle(&moved, &none, cutoff).expect("settle"), 0);
        assert!(b.path(&code.sha256).is_file());
        // And so is one that a record referenced meanwhile, however old.
        fs::File::options()
            .append(true)
            .open(b.path(&code.sha256))
            .and_then(|f| f.set_modified(old))
            .expect("age the blob");
        let moved = b
            .move_aside(std::slice::from_ref(&code.sha256))
            .expect("move");
        let refs: HashSet<String> = [code.sha256.clone()].into();
        assert_eq!(b.settle(&moved, &refs, cutoff).expect("settle"), 0);
        assert!(b.path(&code.sha256).is_file());
        assert_eq!(
            fs::read_dir(b.temp_dir().join(TRASH))
                .expect("trash")
                .count(),
            0
        );
    }

    #[test]
    fn each_process_has_its_own_temporary_directory_and_only_dead_ones_are_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = BlobStore::open(dir.path()).expect("open");
        let b = BlobStore::open(dir.path()).expect("open again");
        assert_ne!(a.temp_dir(), b.temp_dir());
        assert!(a.temp_path("x").starts_with(a.temp_dir()));
        // Work in progress of a live blob store.
        let wip = b.temp_path("unpacking");
        fs::create_dir_all(&wip).expect("wip");
        // Leftovers of a dead process: a directory with a blob its collection had moved aside, and a loose file
        // of an earlier version.
        let pid = dead_pid();
        let dead = dir.path().join("tmp").join(format!("{pid}-0-0"));
        fs::create_dir_all(dead.join(TRASH)).expect("dead dir");
        fs::write(dead.join(LOCK_FILE), b"").expect("lock file");
        let sha = sha256_hex(b"moved aside");
        fs::write(dead.join(TRASH).join(&sha), b"moved aside").expect("trashed blob");
        let loose = dir.path().join("tmp").join(format!("{sha}.{pid}.3"));
        fs::write(&loose, b"partial").expect("loose");
        // A dead pid whose lock is still held (another pid namespace, say) is left alone.
        let held = dir.path().join("tmp").join(format!("{pid}-1-0"));
        fs::create_dir_all(&held).expect("held dir");
        let lock = fs::File::create(held.join(LOCK_FILE)).expect("lock");
        lock.try_lock().expect("take the lock");

        assert_eq!(a.clean_stale_temp().expect("clean"), 2);
        assert!(!dead.exists());
        assert!(!loose.exists());
        assert!(held.exists());
        assert!(wip.exists(), "a live process's work is untouched");
        assert!(b.temp_dir().exists() && a.temp_dir().exists());
        assert_eq!(a.read(&sha).expect("restored"), b"moved aside");

        // The last handle of a blob store removes its directory.
        let gone = b.temp_dir().to_path_buf();
        drop(b);
        assert!(!gone.exists());
        drop(lock);
        assert_eq!(a.clean_stale_temp().expect("clean"), 1);
        assert!(!held.exists());
    }
}
