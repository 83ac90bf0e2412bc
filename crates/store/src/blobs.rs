//! Content-addressed blobs (code and layer zips) in a local directory: `blobs/<sha256>`, written to a temporary
//! file, fsynced, renamed into place and the directory fsynced, so a blob is durable before any record that
//! references it commits. Unpacked trees live beside them under `unpacked/<sha256>` and are derived data.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
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
}

/// The blob directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
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

impl BlobStore {
    /// Opens (creating) the blob directory under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<BlobStore> {
        let root = data_dir.to_path_buf();
        for sub in ["blobs", "unpacked", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        // Leftovers of a crash mid-write are never referenced: clear them.
        let tmp = root.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        Ok(BlobStore { root })
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    /// Where a blob's unpacked tree lives.
    pub fn unpacked_path(&self, sha256: &str) -> PathBuf {
        self.root.join("unpacked").join(sha256)
    }

    /// A fresh private temporary path (for unpacking before an atomic rename).
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{hint}.{}.{n}", std::process::id()))
    }

    /// Stores bytes durably; returns their address. Storing the same bytes twice is harmless.
    pub fn put(&self, bytes: &[u8]) -> Result<CodeRef> {
        let sha256 = sha256_hex(bytes);
        let dest = self.path(&sha256);
        let code = CodeRef {
            sha256,
            size: bytes.len() as u64,
        };
        if dest.exists() {
            // Refresh the mtime so a concurrent collection of an unreferenced copy keeps its grace period.
            let _ = fs::File::options()
                .append(true)
                .open(&dest)
                .and_then(|f| f.set_modified(SystemTime::now()));
            return Ok(code);
        }
        let tmp = self.temp_path(&code.sha256);
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        write().map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        fsync_dir(&self.root.join("blobs"))?;
        Ok(code)
    }

    pub fn read(&self, sha256: &str) -> Result<Vec<u8>> {
        if !valid_sha(sha256) {
            return Err(StoreError::BlobMissing {
                sha256: sha256.to_string(),
            });
        }
        fs::read(self.path(sha256)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::BlobMissing {
                    sha256: sha256.to_string(),
                }
            } else {
                StoreError::io(self.path(sha256), e)
            }
        })
    }

    pub fn exists(&self, sha256: &str) -> bool {
        valid_sha(sha256) && self.path(sha256).is_file()
    }

    /// The blob unpacked under `unpacked/<sha256>`, unpacking it first if needed (into a temporary directory
    /// renamed into place, so a half-unpacked tree is never seen). Idempotent; safe to race.
    pub fn ensure_unpacked(&self, sha256: &str, limits: &UnzipLimits) -> Result<UnpackedTree> {
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
            return Ok(UnpackedTree { path, bytes });
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
        })
    }

    /// Removes blobs (and their unpacked trees) that are not in `referenced` and were last written more than
    /// `grace` ago. The grace period covers a blob written by a request whose transaction has not committed yet.
    /// Returns how many blobs were removed.
    pub fn collect(&self, referenced: &HashSet<String>, grace: Duration) -> Result<usize> {
        let dir = self.root.join("blobs");
        let now = SystemTime::now();
        let mut removed = 0;
        for e in fs::read_dir(&dir)
            .map_err(|e| StoreError::io(&dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_sha(&name) || referenced.contains(&name) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= grace);
            if !old {
                continue;
            }
            let _ = fs::remove_dir_all(self.unpacked_path(&name));
            let _ = fs::remove_file(self.root.join("unpacked").join(format!("{name}.bytes")));
            fs::remove_file(e.path()).map_err(|err| StoreError::io(e.path(), err))?;
            removed += 1;
        }
        Ok(removed)
    }
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
}
