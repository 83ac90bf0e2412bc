//! Safe unpacking of user-supplied zip archives (function code and layers).
//!
//! Everything in an uploaded archive is hostile input. [`unpack`] writes an
//! archive into an empty directory and refuses anything that could touch a
//! path outside it, create something other than regular files, directories
//! and contained symlinks, or use unbounded disk space.
//!
//! # Policy
//!
//! * **Names.** An entry name is split into components on `/` *and* on `\`
//!   (Windows tools sometimes write `dir\file.py`). Splitting happens before
//!   any check, so no created name ever contains a backslash and every check
//!   below applies to the components. Empty and `.` components are skipped
//!   (`a//b` and `./a/b` both mean `a/b`). Rejected: empty names, names with
//!   a NUL byte, a leading `/` or `\` (absolute or UNC paths), a leading
//!   drive letter (`C:`), and any `..` component, even one that would stay
//!   inside the package.
//! * **Entry kinds** come from the unix mode in the external attributes when
//!   the archive was made on unix. Regular files, directories and symlinks
//!   are accepted; FIFOs, sockets and devices are rejected. Without a unix
//!   mode, or when it says "regular file" (or no type at all), a name ending
//!   in `/` or `\` is a directory and anything else a file.
//! * **Symlinks.** The target must be non-empty, relative, without NUL or
//!   backslash, at most [`MAX_SYMLINK_TARGET`] bytes, and `..` may appear
//!   only at its start (`../../lib/x` is fine, `lib/../x` is not). The
//!   leading `..` components are resolved lexically against the link's own
//!   directory and must not climb above the package root. Allowing `..` only
//!   at the start makes the lexical answer agree with what the kernel does:
//!   the link's directory is a real directory, so climbing from it is plain,
//!   and a later `..` after a component that is itself a symlink could climb
//!   out of a place the lexical view does not see.
//! * **Never writing through a symlink.** Every entry's parent components
//!   must be directories that this call created (a file or symlink created
//!   by an earlier entry is refused). On top of that, the parent is checked
//!   with `symlink_metadata`, directories are created with `mkdir` (which
//!   does not follow a final symlink), and files are opened with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW`.
//! * **Duplicates.** Two entries that resolve to the same path are refused
//!   (including byte-identical names, which the zip reader would otherwise
//!   collapse silently). A directory that was created implicitly as a parent
//!   may still get its own explicit entry later.
//! * **Modes.** With a unix mode, files keep `mode & 0o777` plus owner read;
//!   directories keep `mode & 0o777` plus owner read and search. Setuid,
//!   setgid and sticky bits are always dropped. Without a unix mode (e.g.
//!   archives made on Windows) files get `0o644` and directories `0o755`.
//!   Directory modes are applied at the end, so a read-only directory in the
//!   archive does not stop its own contents from being written.
//! * **Sizes.** Bytes are counted as they are written, never taken from the
//!   headers alone; the copy stops before the chunk that would exceed the
//!   budget, so no more than the budget ever reaches the disk. Headers are
//!   only used to reject early. The compression ratio is checked per entry
//!   against the entry's compressed size (the reader never consumes more
//!   compressed bytes than that); entries of at most [`RATIO_EXEMPT_BYTES`]
//!   are exempt so that small, very repetitive text files are fine.
//! * Only the `stored` and `deflate` methods are supported; encrypted
//!   entries are refused.
//! * Nothing is fsynced: the unpacked tree is derived data and can be
//!   rebuilt from the archive.
//!
//! On error the destination may hold a partial tree; the caller should
//! remove it.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zip::{CompressionMethod, ZipArchive};

/// Entries that unpack to at most this many bytes are exempt from the
/// compression ratio limit.
pub const RATIO_EXEMPT_BYTES: u64 = 1024 * 1024;

/// Longest symlink target accepted, in bytes.
pub const MAX_SYMLINK_TARGET: usize = 4095;

const COPY_CHUNK: usize = 64 * 1024;

// Unix file type bits as stored in the high half of a zip entry's external
// attributes. These are the same on every unix, so they are spelled out here
// rather than taken from the platform's `mode_t`.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

/// The "version made by" host byte for unix.
const HOST_UNIX: u8 = 3;

/// Limits applied to one archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnzipLimits {
    /// Most entries (files, directories and symlinks together) in the archive.
    pub max_entries: u64,
    /// Most bytes of file content written for the archive.
    pub max_unpacked_bytes: u64,
    /// Highest unpacked:compressed ratio for an entry larger than
    /// [`RATIO_EXEMPT_BYTES`].
    pub max_ratio: u64,
}

impl Default for UnzipLimits {
    /// 65,536 entries, 500 MiB, ratio 1000.
    fn default() -> Self {
        UnzipLimits {
            max_entries: 65_536,
            max_unpacked_bytes: 500 * 1024 * 1024,
            max_ratio: 1000,
        }
    }
}

/// What [`unpack`] created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Directories created, whether listed in the archive or implied by a
    /// deeper entry. The destination itself is not counted.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

/// An unpacked-size allowance shared by several archives.
///
/// A function's code and its layers share one budget: create it once with
/// the total, then pass it to [`unpack_with_budget`] for each archive. Every
/// byte written is taken from it, also when the call fails part way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    total: u64,
    remaining: u64,
}

impl Budget {
    /// A budget of `total_bytes` bytes of file content.
    pub fn new(total_bytes: u64) -> Self {
        Budget {
            total: total_bytes,
            remaining: total_bytes,
        }
    }

    /// The size the budget was created with.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes not yet used.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Bytes used so far.
    pub fn used(&self) -> u64 {
        self.total - self.remaining
    }
}

/// Why an entry name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePathReason {
    /// A `..` component.
    ParentComponent,
    /// Starts with `/` or `\`.
    Absolute,
    /// Starts with a drive letter such as `C:`.
    DriveLetter,
    /// Contains a NUL byte.
    Nul,
    /// Empty, or nothing but `.` and separators for an entry that is not a
    /// directory.
    Empty,
}

impl fmt::Display for UnsafePathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnsafePathReason::ParentComponent => "path escapes the package",
            UnsafePathReason::Absolute => "absolute path",
            UnsafePathReason::DriveLetter => "path starts with a drive letter",
            UnsafePathReason::Nul => "name contains a NUL byte",
            UnsafePathReason::Empty => "empty name",
        })
    }
}

/// Why a symlink target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymlinkReason {
    /// The target is absolute.
    Absolute,
    /// The target climbs above the package root.
    Escapes,
    /// `..` after a normal component.
    ParentAfterName,
    /// The target is empty.
    Empty,
    /// The target contains a NUL byte.
    Nul,
    /// The target contains a backslash.
    Backslash,
    /// The target is longer than [`MAX_SYMLINK_TARGET`].
    TooLong,
}

impl fmt::Display for SymlinkReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SymlinkReason::Absolute => "is absolute",
            SymlinkReason::Escapes => "escapes the package",
            SymlinkReason::ParentAfterName => {
                "uses `..` after a name (only leading `..` is allowed)"
            }
            SymlinkReason::Empty => "is empty",
            SymlinkReason::Nul => "contains a NUL byte",
            SymlinkReason::Backslash => "contains a backslash",
            SymlinkReason::TooLong => "is too long",
        })
    }
}

/// Why an archive could not be unpacked. Messages are lowercase and name
/// the entry; names are shown with control characters escaped and cut at
/// 200 characters, while the fields hold them in full (except a symlink
/// target refused as too long, which is kept to its first 64 bytes).
#[derive(Debug, thiserror::Error)]
pub enum UnzipError {
    /// The input is not a zip archive, or its directory is damaged.
    #[error("not a zip archive or corrupt archive: {detail}")]
    InvalidArchive { detail: String },
    /// An entry's data is damaged (bad checksum, bad deflate stream, size
    /// differs from the header, unreadable local header).
    #[error("entry `{}`: corrupt data: {detail}", shown(.entry))]
    CorruptEntry { entry: String, detail: String },
    /// The entry name could reach outside the destination.
    #[error("entry `{}`: {reason}", shown(.entry))]
    UnsafePath {
        entry: String,
        reason: UnsafePathReason,
    },
    /// A symlink whose target is absolute or escapes the package.
    #[error("entry `{}`: symlink target `{}` {reason}", shown(.entry), shown(.target))]
    UnsafeSymlink {
        entry: String,
        target: String,
        reason: SymlinkReason,
    },
    /// A FIFO, socket or device (or an unknown file type).
    #[error("entry `{}`: {} is not allowed (unix mode {mode:#o})", shown(.entry), special_kind(*.mode))]
    SpecialFile { entry: String, mode: u32 },
    /// The archive has more entries than allowed.
    #[error("archive has {count} entries, over the limit of {max}")]
    TooManyEntries { count: u64, max: u64 },
    /// Writing this entry would exceed the unpacked size limit. `limit` is
    /// the limit that was hit: the archive's own, or the shared budget's
    /// total.
    #[error("entry `{}`: unpacked size over the limit of {limit} bytes", shown(.entry))]
    TooLarge { entry: String, limit: u64 },
    /// The entry unpacks to more than `max_ratio` times its compressed size.
    /// `unpacked` is what it would have reached (or what its header claims).
    #[error(
        "entry `{}`: compression ratio over the limit of {max_ratio} \
         ({unpacked} bytes from {compressed} compressed bytes)",
        shown(.entry)
    )]
    RatioTooHigh {
        entry: String,
        compressed: u64,
        unpacked: u64,
        max_ratio: u64,
    },
    /// Two entries resolve to the same path `path`.
    #[error(
        "entry `{}`: duplicate entry, an earlier entry also unpacks to `{}`",
        shown(.entry),
        shown(.path)
    )]
    Duplicate { entry: String, path: String },
    /// The entry would be written inside `component`, which an earlier entry
    /// made a file or a symlink.
    #[error(
        "entry `{}`: `{}` is a {existing} from an earlier entry, not a directory",
        shown(.entry),
        shown(.component)
    )]
    PathConflict {
        entry: String,
        component: String,
        existing: &'static str,
    },
    /// The entry is encrypted.
    #[error("entry `{}`: encrypted entries are not supported", shown(.entry))]
    Encrypted { entry: String },
    /// The entry uses a compression method other than stored or deflate.
    #[error(
        "entry `{}`: unsupported compression method {method} (only stored and deflate are supported)",
        shown(.entry)
    )]
    UnsupportedCompression { entry: String, method: String },
    /// The destination is missing, not a directory, or not empty.
    #[error("destination `{}` {reason}", .path.display())]
    Destination { path: PathBuf, reason: &'static str },
    /// A file system operation failed.
    #[error("i/o error at `{}`: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn shown(name: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out = String::with_capacity(name.len().min(MAX_CHARS * 4));
    for (i, c) in name.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn special_kind(mode: u32) -> &'static str {
    match mode & S_IFMT {
        S_IFIFO => "fifo",
        S_IFCHR => "character device",
        S_IFBLK => "block device",
        S_IFSOCK => "socket",
        _ => "special file of unknown type",
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UnzipError + '_ {
    move |source| UnzipError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Unpacks `zip` into `dest`, an existing empty directory, with the
/// archive's own limits.
pub fn unpack(zip: &[u8], dest: &Path, limits: &UnzipLimits) -> Result<Unpacked, UnzipError> {
    let mut budget = Budget::new(limits.max_unpacked_bytes);
    unpack_with_budget(zip, dest, limits, &mut budget)
}

/// Like [`unpack`], and also takes every byte written from `budget`, so that
/// several archives (code plus layers) can share one allowance. The archive
/// must stay within both `limits.max_unpacked_bytes` and what is left of the
/// budget.
pub fn unpack_with_budget(
    zip: &[u8],
    dest: &Path,
    limits: &UnzipLimits,
    budget: &mut Budget,
) -> Result<Unpacked, UnzipError> {
    check_destination(dest)?;
    let (done, _) = walk(zip, Some(dest), limits, budget)?;
    tracing::debug!(
        files = done.files,
        dirs = done.dirs,
        symlinks = done.symlinks,
        bytes = done.bytes,
        dest = %dest.display(),
        "unpacked archive"
    );
    Ok(done)
}

/// Everything [`unpack`] checks, without writing anything: every entry's data is decompressed and its checksum
/// verified, every name, kind, symlink target and limit checked as if unpacking. An archive that passes unpacks
/// (short of the disk failing), and the listing answers what the unpacked tree would hold.
pub fn check(zip: &[u8], limits: &UnzipLimits) -> Result<Listing, UnzipError> {
    let mut budget = Budget::new(limits.max_unpacked_bytes);
    let (unpacked, nodes) = walk(zip, None, limits, &mut budget)?;
    Ok(Listing { unpacked, nodes })
}

/// What an archive that passed [`check`] unpacks to.
#[derive(Debug)]
pub struct Listing {
    /// What unpacking it creates.
    pub unpacked: Unpacked,
    nodes: HashMap<String, Node>,
}

/// The kind of a path in a [`Listing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedKind {
    Dir,
    /// A regular file and whether any execute bit is set once unpacked.
    File {
        executable: bool,
    },
    Symlink,
}

impl Listing {
    /// What `path` (relative, `/`-separated) would be in the unpacked tree: symlinks in its directories are
    /// followed within the package, and so is a final symlink when `follow` is set (like `metadata`; without,
    /// like `symlink_metadata`). `None` when nothing is there or a link leads outside the package.
    pub fn kind(&self, path: &str, follow: bool) -> Option<ListedKind> {
        let mut todo: Vec<String> = path.rsplit('/').map(str::to_owned).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop()?;
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            match self.nodes.get(&cur.join("/"))? {
                Node::Symlink { target } => {
                    if todo.iter().all(|t| t.is_empty() || t == ".") && !follow {
                        return Some(ListedKind::Symlink);
                    }
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    cur.pop();
                    let target = std::str::from_utf8(target).ok()?;
                    todo.extend(target.rsplit('/').map(str::to_owned));
                }
                Node::File { mode } => {
                    if todo.iter().any(|t| !t.is_empty() && t != ".") {
                        return None;
                    }
                    return Some(ListedKind::File {
                        executable: mode & 0o111 != 0,
                    });
                }
                Node::Dir { .. } => {}
            }
        }
        Some(ListedKind::Dir)
    }
}

/// Checks (and with a destination, writes) every entry of an archive.
fn walk(
    zip: &[u8],
    dest: Option<&Path>,
    limits: &UnzipLimits,
    budget: &mut Budget,
) -> Result<(Unpacked, HashMap<String, Node>), UnzipError> {
    // Refuse an archive that declares too many entries before the zip
    // reader builds its index of them.
    if let Some(declared) = declared_entry_count(zip)
        && declared > limits.max_entries
    {
        return Err(UnzipError::TooManyEntries {
            count: declared,
            max: limits.max_entries,
        });
    }

    let mut archive =
        ZipArchive::new(Cursor::new(zip)).map_err(|e| UnzipError::InvalidArchive {
            detail: e.to_string(),
        })?;

    let records = central_records(zip, archive.central_directory_start());
    let count = records.len().max(archive.len()) as u64;
    if count > limits.max_entries {
        return Err(UnzipError::TooManyEntries {
            count,
            max: limits.max_entries,
        });
    }
    let mut seen = HashSet::with_capacity(records.len());
    for record in &records {
        if !seen.insert(record.name) {
            let name = String::from_utf8_lossy(record.name).into_owned();
            return Err(UnzipError::Duplicate {
                entry: name.clone(),
                path: name,
            });
        }
    }
    if records.len() != archive.len() {
        // The reader keys entries by decoded name, so two different raw
        // names that decode alike would collapse into one.
        return Err(UnzipError::InvalidArchive {
            detail: format!(
                "central directory has {} records but {} distinct entry names",
                records.len(),
                archive.len()
            ),
        });
    }

    let mut state = State {
        dest,
        limits,
        budget,
        archive_bytes: 0,
        nodes: HashMap::with_capacity(records.len()),
        done: Unpacked::default(),
        buf: vec![0; COPY_CHUNK],
    };
    for (index, record) in records.iter().enumerate() {
        state.entry(&mut archive, index, record)?;
    }
    state.finish_dirs()?;
    Ok((state.done, state.nodes))
}

/// True if `path` is a regular file with any execute bit set. A symlink
/// counts only if it resolves to such a file inside the directory that
/// contains `path` (for `root/scf_bootstrap`, inside the package root).
pub fn is_executable_file(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    let meta = if meta.file_type().is_symlink() {
        let Some(parent) = path.parent() else {
            return false;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let (Ok(root), Ok(target)) = (fs::canonicalize(parent), fs::canonicalize(path)) else {
            return false;
        };
        if !target.starts_with(&root) {
            return false;
        }
        match fs::metadata(&target) {
            Ok(meta) => meta,
            Err(_) => return false,
        }
    } else {
        meta
    };
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

fn check_destination(dest: &Path) -> Result<(), UnzipError> {
    let destination = |reason| UnzipError::Destination {
        path: dest.to_path_buf(),
        reason,
    };
    let meta = match fs::metadata(dest) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(destination("does not exist")),
        Err(e) => return Err(io_err(dest)(e)),
    };
    if !meta.is_dir() {
        return Err(destination("is not a directory"));
    }
    let mut listing = fs::read_dir(dest).map_err(io_err(dest))?;
    if listing.next().is_some() {
        return Err(destination("is not empty"));
    }
    Ok(())
}

fn le16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn le32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn le64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;

/// The entry count declared by the last end-of-central-directory record
/// (the one a reader tries first), including its zip64 form. `None` if no
/// such record is found; the zip reader then has the final word.
fn declared_entry_count(zip: &[u8]) -> Option<u64> {
    let last = zip.len().checked_sub(EOCD_LEN)?;
    let lowest = last.saturating_sub(usize::from(u16::MAX));
    let mut pos = last;
    loop {
        if le32(zip, pos) == Some(EOCD_SIG) {
            let comment = usize::from(le16(zip, pos + 20)?);
            if pos + EOCD_LEN + comment <= zip.len() {
                let count = le16(zip, pos + 8)?.max(le16(zip, pos + 10)?);
                let zip64 = pos
                    .checked_sub(ZIP64_LOCATOR_LEN)
                    .filter(|&at| le32(zip, at) == Some(ZIP64_LOCATOR_SIG))
                    .and_then(|at| le64(zip, at + 8))
                    .and_then(|at| usize::try_from(at).ok())
                    .filter(|&at| le32(zip, at) == Some(ZIP64_EOCD_SIG))
                    .and_then(|at| le64(zip, at.checked_add(32)?));
                return Some(match zip64 {
                    Some(count64) => count64.max(u64::from(count)),
                    None => u64::from(count),
                });
            }
        }
        if pos == lowest {
            return None;
        }
        pos -= 1;
    }
}

/// One central directory record, read straight from the archive bytes.
struct CentralRecord<'a> {
    name: &'a [u8],
    host: u8,
    external_attributes: u32,
}

impl CentralRecord<'_> {
    fn unix_mode(&self) -> Option<u32> {
        let mode = self.external_attributes >> 16;
        (self.host == HOST_UNIX && mode != 0).then_some(mode)
    }
}

/// Walks the central directory from `start` for as long as records follow
/// one another. The zip reader keeps one entry per name, so this is how
/// byte-identical duplicate names are seen, and where the host system and
/// external attributes come from.
fn central_records(zip: &[u8], start: u64) -> Vec<CentralRecord<'_>> {
    let mut records = Vec::new();
    let Ok(mut pos) = usize::try_from(start) else {
        return records;
    };
    while le32(zip, pos) == Some(CENTRAL_SIG) {
        let (Some(made_by), Some(name_len), Some(extra_len), Some(comment_len), Some(attrs)) = (
            le16(zip, pos + 4),
            le16(zip, pos + 28),
            le16(zip, pos + 30),
            le16(zip, pos + 32),
            le32(zip, pos + 38),
        ) else {
            break;
        };
        let name_start = pos + CENTRAL_LEN;
        let name_end = name_start + usize::from(name_len);
        let Some(name) = zip.get(name_start..name_end) else {
            break;
        };
        records.push(CentralRecord {
            name,
            host: made_by.to_be_bytes()[0],
            external_attributes: attrs,
        });
        pos = name_end + usize::from(extra_len) + usize::from(comment_len);
    }
    records
}

/// Splits an entry name into a normalized relative path (components joined
/// by `/`, possibly empty for the root) and whether it names a directory.
fn normalize_name(name: &str) -> Result<(String, bool), UnsafePathReason> {
    if name.is_empty() {
        return Err(UnsafePathReason::Empty);
    }
    if name.contains('\0') {
        return Err(UnsafePathReason::Nul);
    }
    if name.starts_with(['/', '\\']) {
        return Err(UnsafePathReason::Absolute);
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(UnsafePathReason::DriveLetter);
    }
    let mut path = String::with_capacity(name.len());
    for component in name.split(['/', '\\']) {
        match component {
            "" | "." => {}
            ".." => return Err(UnsafePathReason::ParentComponent),
            normal => {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(normal);
            }
        }
    }
    Ok((path, name.ends_with(['/', '\\'])))
}

/// Checks a symlink target for a link whose directory is `link_depth`
/// components below the package root.
fn check_symlink_target(target: &[u8], link_depth: usize) -> Result<(), SymlinkReason> {
    if target.is_empty() {
        return Err(SymlinkReason::Empty);
    }
    if target.len() > MAX_SYMLINK_TARGET {
        return Err(SymlinkReason::TooLong);
    }
    if target.contains(&0) {
        return Err(SymlinkReason::Nul);
    }
    if target.contains(&b'\\') {
        return Err(SymlinkReason::Backslash);
    }
    if target.starts_with(b"/") {
        return Err(SymlinkReason::Absolute);
    }
    let mut ups = 0usize;
    let mut seen_name = false;
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if seen_name => return Err(SymlinkReason::ParentAfterName),
            b".." => {
                ups += 1;
                if ups > link_depth {
                    return Err(SymlinkReason::Escapes);
                }
            }
            _ => seen_name = true,
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// The entry kind from its unix mode (if any) and whether its name ends in
/// a separator. `Err(mode)` for special files.
fn classify(mode: Option<u32>, dir_name: bool) -> Result<Kind, u32> {
    let plain = if dir_name { Kind::Dir } else { Kind::File };
    let Some(mode) = mode else {
        return Ok(plain);
    };
    match mode & S_IFMT {
        S_IFLNK => Ok(Kind::Symlink),
        S_IFDIR => Ok(Kind::Dir),
        0 | S_IFREG => Ok(plain),
        _ => Err(mode),
    }
}

fn file_mode(mode: Option<u32>) -> u32 {
    mode.map_or(0o644, |m| (m & 0o777) | 0o400)
}

fn dir_mode(mode: Option<u32>) -> u32 {
    mode.map_or(0o755, |m| (m & 0o777) | 0o500)
}

/// What this call created at a path.
#[derive(Debug)]
enum Node {
    /// A directory; `mode` is its final mode.
    Dir {
        explicit: bool,
        mode: u32,
    },
    /// A regular file and its final mode.
    File {
        mode: u32,
    },
    Symlink {
        target: Vec<u8>,
    },
}

impl Node {
    fn describe(&self) -> &'static str {
        match self {
            Node::Dir { .. } => "directory",
            Node::File { .. } => "file",
            Node::Symlink { .. } => "symlink",
        }
    }
}

/// Metadata of one entry, copied out of the reader before the data is read.
struct EntryInfo {
    name: String,
    encrypted: bool,
    method: CompressionMethod,
    compressed: u64,
    size: u64,
}

struct State<'a> {
    /// Where to write; `None` to check only.
    dest: Option<&'a Path>,
    limits: &'a UnzipLimits,
    budget: &'a mut Budget,
    /// File content bytes written for this archive.
    archive_bytes: u64,
    /// Everything created so far, by normalized relative path.
    nodes: HashMap<String, Node>,
    done: Unpacked,
    buf: Vec<u8>,
}

impl State<'_> {
    /// How many more bytes this archive may write, and the limit to report
    /// when that is exceeded.
    fn allowance(&self) -> (u64, u64) {
        let own = self
            .limits
            .max_unpacked_bytes
            .saturating_sub(self.archive_bytes);
        if own <= self.budget.remaining {
            (own, self.limits.max_unpacked_bytes)
        } else {
            (self.budget.remaining, self.budget.total)
        }
    }

    fn entry(
        &mut self,
        archive: &mut ZipArchive<Cursor<&[u8]>>,
        index: usize,
        record: &CentralRecord<'_>,
    ) -> Result<(), UnzipError> {
        let info = {
            let file = archive
                .by_index_raw(index)
                .map_err(|e| UnzipError::CorruptEntry {
                    entry: String::from_utf8_lossy(record.name).into_owned(),
                    detail: e.to_string(),
                })?;
            if file.name_raw() != record.name {
                return Err(UnzipError::InvalidArchive {
                    detail: format!(
                        "entry {index} is `{}` in the reader but `{}` in the central directory",
                        shown(file.name()),
                        shown(&String::from_utf8_lossy(record.name))
                    ),
                });
            }
            EntryInfo {
                name: file.name().to_owned(),
                encrypted: file.encrypted(),
                method: file.compression(),
                compressed: file.compressed_size(),
                size: file.size(),
            }
        };
        let entry = info.name.as_str();

        let (path, dir_name) = normalize_name(entry).map_err(|reason| UnzipError::UnsafePath {
            entry: entry.to_owned(),
            reason,
        })?;
        let mode = record.unix_mode();
        let kind = classify(mode, dir_name).map_err(|mode| UnzipError::SpecialFile {
            entry: entry.to_owned(),
            mode,
        })?;
        if info.encrypted {
            return Err(UnzipError::Encrypted {
                entry: entry.to_owned(),
            });
        }
        if !matches!(
            info.method,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(UnzipError::UnsupportedCompression {
                entry: entry.to_owned(),
                method: info.method.to_string(),
            });
        }

        if path.is_empty() {
            // `./` and the like: the package root itself.
            return match kind {
                Kind::Dir => Ok(()),
                Kind::File | Kind::Symlink => Err(UnzipError::UnsafePath {
                    entry: entry.to_owned(),
                    reason: UnsafePathReason::Empty,
                }),
            };
        }
        self.make_parents(entry, &path)?;
        match self.nodes.get_mut(&path) {
            Some(Node::Dir { explicit, mode: m }) if !*explicit && kind == Kind::Dir => {
                *explicit = true;
                *m = dir_mode(mode);
                return Ok(());
            }
            Some(_) => {
                return Err(UnzipError::Duplicate {
                    entry: entry.to_owned(),
                    path,
                });
            }
            None => {}
        }

        let target = self.dest.map(|d| d.join(&path));
        self.check_parent_on_disk(entry, &path)?;
        match kind {
            Kind::Dir => {
                self.make_dir(target.as_deref())?;
                self.nodes.insert(
                    path,
                    Node::Dir {
                        explicit: true,
                        mode: dir_mode(mode),
                    },
                );
            }
            Kind::File => {
                self.early_size_checks(&info)?;
                let data = archive
                    .by_index(index)
                    .map_err(|e| corrupt(entry, e.to_string()))?;
                let mode = file_mode(mode);
                self.write_file(&info, data, target.as_deref(), mode)?;
                self.nodes.insert(path, Node::File { mode });
                self.done.files += 1;
            }
            Kind::Symlink => {
                let data = archive
                    .by_index(index)
                    .map_err(|e| corrupt(entry, e.to_string()))?;
                let link_target = read_link_target(entry, data)?;
                let depth = path.matches('/').count();
                check_symlink_target(&link_target, depth).map_err(|reason| {
                    UnzipError::UnsafeSymlink {
                        entry: entry.to_owned(),
                        target: String::from_utf8_lossy(&link_target).into_owned(),
                        reason,
                    }
                })?;
                if let Some(target) = &target {
                    std::os::unix::fs::symlink(OsStr::from_bytes(&link_target), target)
                        .map_err(io_err(target))?;
                }
                self.nodes.insert(
                    path,
                    Node::Symlink {
                        target: link_target,
                    },
                );
                self.done.symlinks += 1;
            }
        }
        Ok(())
    }

    /// Creates the missing parent directories of `path`, refusing to go
    /// through anything an earlier entry made a file or symlink.
    fn make_parents(&mut self, entry: &str, path: &str) -> Result<(), UnzipError> {
        for (at, _) in path.match_indices('/') {
            let parent = &path[..at];
            match self.nodes.get(parent) {
                Some(Node::Dir { .. }) => {}
                Some(other) => {
                    return Err(UnzipError::PathConflict {
                        entry: entry.to_owned(),
                        component: parent.to_owned(),
                        existing: other.describe(),
                    });
                }
                None => {
                    let dir = self.dest.map(|d| d.join(parent));
                    self.make_dir(dir.as_deref())?;
                    self.nodes.insert(
                        parent.to_owned(),
                        Node::Dir {
                            explicit: false,
                            mode: dir_mode(None),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Belt and braces: the directory an entry is created in must be a real
    /// directory on disk, not a symlink.
    fn check_parent_on_disk(&self, entry: &str, path: &str) -> Result<(), UnzipError> {
        let parent = match (self.dest, path.rfind('/')) {
            (Some(dest), Some(at)) => dest.join(&path[..at]),
            _ => return Ok(()),
        };
        let meta = fs::symlink_metadata(&parent).map_err(io_err(&parent))?;
        if meta.file_type().is_dir() {
            Ok(())
        } else {
            Err(UnzipError::PathConflict {
                entry: entry.to_owned(),
                component: path.rsplit_once('/').map_or("", |(p, _)| p).to_owned(),
                existing: if meta.file_type().is_symlink() {
                    "symlink"
                } else {
                    "file"
                },
            })
        }
    }

    fn make_dir(&mut self, path: Option<&Path>) -> Result<(), UnzipError> {
        // Owner-only while unpacking; final modes are set by `finish_dirs`.
        if let Some(path) = path {
            DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(io_err(path))?;
        }
        self.done.dirs += 1;
        Ok(())
    }

    /// Rejects on the header's word alone when it already says too much.
    fn early_size_checks(&self, info: &EntryInfo) -> Result<(), UnzipError> {
        let (allowed, limit) = self.allowance();
        if info.size > allowed {
            return Err(UnzipError::TooLarge {
                entry: info.name.clone(),
                limit,
            });
        }
        if ratio_exceeded(info.size, info.compressed, self.limits.max_ratio) {
            return Err(UnzipError::RatioTooHigh {
                entry: info.name.clone(),
                compressed: info.compressed,
                unpacked: info.size,
                max_ratio: self.limits.max_ratio,
            });
        }
        Ok(())
    }

    fn write_file(
        &mut self,
        info: &EntryInfo,
        mut data: impl Read,
        target: Option<&Path>,
        mode: u32,
    ) -> Result<(), UnzipError> {
        let entry = info.name.as_str();
        let mut file = match target {
            Some(target) => Some(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(target)
                    .map_err(io_err(target))?,
            ),
            None => None,
        };
        let mut written = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(entry, e.to_string())),
            };
            let chunk = n as u64;
            let after = written + chunk;
            if ratio_exceeded(after, info.compressed, self.limits.max_ratio) {
                return Err(UnzipError::RatioTooHigh {
                    entry: entry.to_owned(),
                    compressed: info.compressed,
                    unpacked: after,
                    max_ratio: self.limits.max_ratio,
                });
            }
            let (allowed, limit) = self.allowance();
            if chunk > allowed {
                return Err(UnzipError::TooLarge {
                    entry: entry.to_owned(),
                    limit,
                });
            }
            if let (Some(file), Some(target)) = (&mut file, target) {
                file.write_all(&self.buf[..n]).map_err(io_err(target))?;
            }
            written = after;
            self.archive_bytes += chunk;
            self.budget.remaining -= chunk;
            self.done.bytes += chunk;
        }
        if written != info.size {
            return Err(corrupt(
                entry,
                format!("header says {} bytes but the data has {written}", info.size),
            ));
        }
        if let (Some(file), Some(target)) = (&file, target) {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_err(target))?;
        }
        Ok(())
    }

    /// Gives every directory its final mode, without following symlinks.
    fn finish_dirs(&self) -> Result<(), UnzipError> {
        let Some(dest) = self.dest else {
            return Ok(());
        };
        for (path, node) in &self.nodes {
            if let Node::Dir { mode, .. } = node {
                let full = dest.join(path);
                let dir = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
                    .open(&full)
                    .map_err(io_err(&full))?;
                dir.set_permissions(fs::Permissions::from_mode(*mode))
                    .map_err(io_err(&full))?;
            }
        }
        Ok(())
    }
}

fn corrupt(entry: &str, detail: String) -> UnzipError {
    UnzipError::CorruptEntry {
        entry: entry.to_owned(),
        detail,
    }
}

/// True if `unpacked` bytes from `compressed` bytes is over `max_ratio`,
/// with small entries exempt.
fn ratio_exceeded(unpacked: u64, compressed: u64, max_ratio: u64) -> bool {
    unpacked > RATIO_EXEMPT_BYTES && unpacked > compressed.max(1).saturating_mul(max_ratio)
}

/// Reads a symlink entry's target, refusing more than
/// [`MAX_SYMLINK_TARGET`] bytes. Reads to the end so the checksum is
/// verified.
fn read_link_target(entry: &str, data: impl Read) -> Result<Vec<u8>, UnzipError> {
    let mut target = Vec::new();
    data.take(MAX_SYMLINK_TARGET as u64 + 1)
        .read_to_end(&mut target)
        .map_err(|e| corrupt(entry, e.to_string()))?;
    if target.len() > MAX_SYMLINK_TARGET {
        target.truncate(64);
        return Err(UnzipError::UnsafeSymlink {
            entry: entry.to_owned(),
            target: String::from_utf8_lossy(&target).into_owned(),
            reason: SymlinkReason::TooLong,
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use tempfile::TempDir;
    use zip::ZipWriter;
    use zip::result::ZipResult;
    use zip::write::SimpleFileOptions;

    type Writer = ZipWriter<Cursor<Vec<u8>>>;

    const MIB: u64 = 1024 * 1024;

    fn build(f: impl FnOnce(&mut Writer) -> ZipResult<()>) -> Vec<u8> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        f(&mut writer).expect("build zip");
        writer.finish().expect("finish zip").into_inner()
    }

    fn opts(mode: u32) -> SimpleFileOptions {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(mode)
    }

    fn file(w: &mut Writer, name: &str, mode: u32, data: &[u8]) -> ZipResult<()> {
        w.start_file(name, opts(mode))?;
        w.write_all(data)?;
        Ok(())
    }

    fn one_file(name: &str) -> Vec<u8> {
        build(|w| file(w, name, 0o644, b"data"))
    }

    /// (raw name, central header offset, local header offset) of every
    /// record of an archive without a comment.
    fn headers(zip: &[u8]) -> Vec<(Vec<u8>, usize, usize)> {
        let eocd = zip.len() - EOCD_LEN;
        assert_eq!(le32(zip, eocd), Some(EOCD_SIG));
        let count = le16(zip, eocd + 10).expect("count");
        let mut pos = le32(zip, eocd + 16).expect("cd offset") as usize;
        let mut out = Vec::new();
        for _ in 0..count {
            assert_eq!(le32(zip, pos), Some(CENTRAL_SIG));
            let name_len = usize::from(le16(zip, pos + 28).expect("name len"));
            let extra_len = usize::from(le16(zip, pos + 30).expect("extra len"));
            let comment_len = usize::from(le16(zip, pos + 32).expect("comment len"));
            let local = le32(zip, pos + 42).expect("local offset") as usize;
            let name = zip[pos + CENTRAL_LEN..pos + CENTRAL_LEN + name_len].to_vec();
            out.push((name, pos, local));
            pos += CENTRAL_LEN + name_len + extra_len + comment_len;
        }
        out
    }

    /// Lets `f` edit the central and local headers of entry `name` (each
    /// slice starts at its header's signature).
    fn edit(zip: &mut [u8], name: &str, f: impl FnOnce(&mut [u8], &mut [u8])) {
        let (_, central, local) = headers(zip)
            .into_iter()
            .find(|(n, ..)| n == name.as_bytes())
            .expect("entry in archive");
        let (head, tail) = zip.split_at_mut(central);
        f(tail, &mut head[local..]);
    }

    /// Sets the full unix mode (file type bits included) of an entry, which
    /// `unix_permissions` cannot do since it keeps only `mode & 0o777`.
    fn set_unix_mode(zip: &mut [u8], name: &str, mode: u32) {
        edit(zip, name, |central, _| {
            central[5] = HOST_UNIX;
            central[38..42].copy_from_slice(&(mode << 16).to_le_bytes());
        });
    }

    /// Makes an entry look like it came from a DOS/Windows tool with no
    /// attributes.
    fn clear_unix_mode(zip: &mut [u8], name: &str) {
        edit(zip, name, |central, _| {
            central[5] = 0;
            central[38..42].copy_from_slice(&0u32.to_le_bytes());
        });
    }

    /// Overwrites the uncompressed size in both headers.
    fn set_size(zip: &mut [u8], name: &str, size: u32) {
        edit(zip, name, |central, local| {
            central[24..28].copy_from_slice(&size.to_le_bytes());
            local[22..26].copy_from_slice(&size.to_le_bytes());
        });
    }

    struct Dest {
        // The parent is kept empty apart from `path`, so tests can check that
        // nothing was written next to the destination.
        parent: TempDir,
        path: PathBuf,
    }

    impl Dest {
        fn new() -> Dest {
            let parent = TempDir::new().expect("tempdir");
            let path = parent.path().join("pkg");
            fs::create_dir(&path).expect("mkdir dest");
            Dest { parent, path }
        }

        fn join(&self, rel: &str) -> PathBuf {
            self.path.join(rel)
        }

        fn nothing_outside(&self) {
            let names: Vec<_> = fs::read_dir(self.parent.path())
                .expect("read parent")
                .map(|e| e.expect("dirent").file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("pkg")]);
        }
    }

    impl Drop for Dest {
        fn drop(&mut self) {
            // Read-only directories from the archives would stop the cleanup.
            make_writable(&self.path);
        }
    }

    fn make_writable(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        if let Ok(listing) = fs::read_dir(dir) {
            for entry in listing.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    make_writable(&entry.path());
                }
            }
        }
    }

    /// Bytes of regular file content under `dir`.
    fn tree_bytes(dir: &Path) -> u64 {
        let mut total = 0;
        for entry in fs::read_dir(dir).expect("read dir").flatten() {
            let meta = fs::symlink_metadata(entry.path()).expect("lstat");
            if meta.is_dir() {
                total += tree_bytes(&entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
        total
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path)
            .expect("lstat")
            .permissions()
            .mode()
            & 0o7777
    }

    fn unpack_ok(zip: &[u8]) -> (Dest, Unpacked) {
        let dest = Dest::new();
        let done = unpack(zip, &dest.path, &UnzipLimits::default()).expect("unpack");
        dest.nothing_outside();
        (dest, done)
    }

    fn unpack_err_with(zip: &[u8], limits: &UnzipLimits) -> (Dest, UnzipError) {
        let dest = Dest::new();
        let err = unpack(zip, &dest.path, limits).expect_err("unpack should fail");
        dest.nothing_outside();
        (dest, err)
    }

    fn unpack_err(zip: &[u8]) -> UnzipError {
        unpack_err_with(zip, &UnzipLimits::default()).1
    }

    /// `len` zeros in one deflated entry, written in chunks so the input is
    /// never in memory.
    fn zeros_zip(name: &str, len: u64) -> Vec<u8> {
        build(|w| {
            w.start_file(name, opts(0o644))?;
            let chunk = vec![0u8; MIB as usize];
            let mut left = len;
            while left > 0 {
                let n = left.min(MIB);
                w.write_all(&chunk[..n as usize])?;
                left -= n;
            }
            Ok(())
        })
    }

    /// 200 MiB of zeros, built once for all the bomb tests.
    fn bomb() -> &'static [u8] {
        static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
        BOMB.get_or_init(|| zeros_zip("bomb.bin", 200 * MIB))
    }

    #[test]
    fn normal_package_round_trips_content_and_modes() {
        let big: Vec<u8> = (0..2 * MIB as u32).map(|i| (i * 7 % 251) as u8).collect();
        let zip = build(|w| {
            file(w, "README.md", 0o644, b"hello\n")?;
            w.add_directory("bin/", opts(0o755))?;
            file(w, "bin/scf_bootstrap", 0o755, b"#!/bin/sh\nexec ./app\n")?;
            file(w, "src/app/main.py", 0o640, b"print('hi')\n")?;
            file(w, "data/empty.txt", 0o600, b"")?;
            w.start_file(
                "big.bin",
                SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
            )?;
            w.write_all(&big)?;
            Ok(())
        });
        let (dest, done) = unpack_ok(&zip);
        assert_eq!(
            done,
            Unpacked {
                files: 5,
                dirs: 4,
                symlinks: 0,
                bytes: 6 + 21 + 12 + big.len() as u64,
            }
        );
        assert_eq!(fs::read(dest.join("README.md")).expect("read"), b"hello\n");
        assert_eq!(
            fs::read(dest.join("bin/scf_bootstrap")).expect("read"),
            b"#!/bin/sh\nexec ./app\n"
        );
        assert_eq!(
            fs::read(dest.join("src/app/main.py")).expect("read"),
            b"print('hi')\n"
        );
        assert_eq!(fs::read(dest.join("data/empty.txt")).expect("read"), b"");
        assert_eq!(fs::read(dest.join("big.bin")).expect("read"), big);
        assert_eq!(mode_of(&dest.join("README.md")), 0o644);
        assert_eq!(mode_of(&dest.join("bin/scf_bootstrap")), 0o755);
        assert_eq!(mode_of(&dest.join("src/app/main.py")), 0o640);
        assert_eq!(mode_of(&dest.join("data/empty.txt")), 0o600);
        assert_eq!(mode_of(&dest.join("bin")), 0o755);
        assert_eq!(mode_of(&dest.join("src")), 0o755);
        assert_eq!(mode_of(&dest.join("src/app")), 0o755);
        assert!(is_executable_file(&dest.join("bin/scf_bootstrap")));
        assert!(!is_executable_file(&dest.join("README.md")));
    }

    #[test]
    fn entries_without_unix_mode_get_default_modes() {
        let mut zip = build(|w| {
            w.add_directory("d/", opts(0o700))?;
            file(w, "d/f.txt", 0o600, b"x")
        });
        clear_unix_mode(&mut zip, "d/");
        clear_unix_mode(&mut zip, "d/f.txt");
        let (dest, _) = unpack_ok(&zip);
        assert_eq!(mode_of(&dest.join("d")), 0o755);
        assert_eq!(mode_of(&dest.join("d/f.txt")), 0o644);
    }

    #[test]
    fn explicit_directory_after_its_contents_keeps_its_mode() {
        let zip = build(|w| {
            file(w, "p/q.txt", 0o644, b"q")?;
            w.add_directory("p/", opts(0o750))
        });
        let (dest, done) = unpack_ok(&zip);
        assert_eq!(done.dirs, 1);
        assert_eq!(mode_of(&dest.join("p")), 0o750);
        assert_eq!(fs::read(dest.join("p/q.txt")).expect("read"), b"q");
    }

    #[test]
    fn unsafe_paths_are_rejected_naming_the_entry() {
        let err = unpack_err(&one_file("../evil.py"));
        assert_eq!(
            err.to_string(),
            "entry `../evil.py`: path escapes the package"
        );

        let cases: &[(&str, UnsafePathReason)] = &[
            ("a/../../x", UnsafePathReason::ParentComponent),
            ("a/b/..", UnsafePathReason::ParentComponent),
            ("..\\evil.py", UnsafePathReason::ParentComponent),
            ("a\\..\\..\\evil.py", UnsafePathReason::ParentComponent),
            ("/etc/passwd", UnsafePathReason::Absolute),
            ("\\evil.py", UnsafePathReason::Absolute),
            ("\\\\server\\share\\x", UnsafePathReason::Absolute),
            ("C:\\evil.py", UnsafePathReason::DriveLetter),
            ("c:evil.py", UnsafePathReason::DriveLetter),
            ("a\0b", UnsafePathReason::Nul),
            ("", UnsafePathReason::Empty),
            (".", UnsafePathReason::Empty),
        ];
        for (name, want) in cases {
            let zip = one_file(name);
            match unpack_err(&zip) {
                UnzipError::UnsafePath { entry, reason } => {
                    assert_eq!(&entry, name);
                    assert_eq!(reason, *want, "{name:?}");
                }
                other => panic!("{name:?}: unexpected {other}"),
            }
        }
        // A directory entry for the root itself (`./`) is a harmless no-op.
        let zip = build(|w| w.add_directory("./", opts(0o700)));
        let (dest, done) = unpack_ok(&zip);
        assert_eq!(done, Unpacked::default());
        assert_eq!(fs::read_dir(&dest.path).expect("read").count(), 0);

        let err = unpack_err(&one_file("C:\\evil.py"));
        assert_eq!(
            err.to_string(),
            "entry `C:\\evil.py`: path starts with a drive letter"
        );
        let err = unpack_err(&one_file("a\0b"));
        assert_eq!(
            err.to_string(),
            "entry `a\\u{0}b`: name contains a NUL byte"
        );
    }

    #[test]
    fn backslash_is_a_separator() {
        let zip = build(|w| file(w, "dir\\sub\\file.py", 0o644, b"x = 1\n"));
        let (dest, done) = unpack_ok(&zip);
        assert_eq!(done.dirs, 2);
        assert_eq!(
            fs::read(dest.join("dir/sub/file.py")).expect("read"),
            b"x = 1\n"
        );
        assert_eq!(fs::read_dir(&dest.path).expect("read").count(), 1);
    }

    #[test]
    fn symlinks_inside_the_package_are_allowed() {
        let zip = build(|w| {
            file(w, "lib/real.so", 0o755, b"ELF")?;
            w.add_symlink("lib/link.so", "real.so", opts(0o777))?;
            w.add_symlink("bin/tool", "../lib/./real.so", opts(0o777))?;
            w.add_symlink("self", ".", opts(0o777))?;
            w.add_symlink("a/b/root", "../..", opts(0o777))?;
            w.add_symlink("dangling", "not/there", opts(0o777))?;
            w.add_symlink("scf_bootstrap", "lib/real.so", opts(0o777))
        });
        let (dest, done) = unpack_ok(&zip);
        assert_eq!(done.symlinks, 6);
        assert_eq!(done.files, 1);
        let link = |p: &str| fs::read_link(dest.join(p)).expect("readlink");
        assert_eq!(link("lib/link.so"), Path::new("real.so"));
        assert_eq!(link("bin/tool"), Path::new("../lib/./real.so"));
        assert_eq!(link("self"), Path::new("."));
        assert_eq!(link("a/b/root"), Path::new("../.."));
        assert_eq!(fs::read(dest.join("bin/tool")).expect("read"), b"ELF");
        assert!(is_executable_file(&dest.join("scf_bootstrap")));
        // Containment is judged against the link's own directory.
        assert!(!is_executable_file(&dest.join("bin/tool")));
    }

    #[test]
    fn check_lists_what_unpack_writes_without_writing() {
        let zip = build(|w| {
            file(w, "lib/real.so", 0o755, b"ELF")?;
            file(w, "index.py", 0o644, b"def main_handler(e, c): return e")?;
            w.add_symlink("lib/link.so", "real.so", opts(0o777))?;
            w.add_symlink("bin/tool", "../lib/./real.so", opts(0o777))?;
            w.add_symlink("self", ".", opts(0o777))?;
            w.add_symlink("a/b/root", "../..", opts(0o777))?;
            w.add_symlink("dangling", "not/there", opts(0o777))?;
            w.add_symlink("loop", "loop", opts(0o777))?;
            w.add_symlink("scf_bootstrap", "lib/real.so", opts(0o777))
        });
        let listing = check(&zip, &UnzipLimits::default()).expect("check");
        let (_, done) = unpack_ok(&zip);
        assert_eq!(listing.unpacked, done);
        let exec = Some(ListedKind::File { executable: true });
        assert_eq!(listing.kind("scf_bootstrap", true), exec);
        assert_eq!(
            listing.kind("scf_bootstrap", false),
            Some(ListedKind::Symlink)
        );
        assert_eq!(listing.kind("bin/tool", true), exec);
        assert_eq!(listing.kind("self/a/b/root/lib/link.so", true), exec);
        assert_eq!(
            listing.kind("index.py", false),
            Some(ListedKind::File { executable: false })
        );
        assert_eq!(listing.kind("lib", false), Some(ListedKind::Dir));
        assert_eq!(listing.kind("a/b/root", true), Some(ListedKind::Dir));
        assert_eq!(listing.kind("dangling", true), None);
        assert_eq!(listing.kind("dangling", false), Some(ListedKind::Symlink));
        assert_eq!(listing.kind("loop", true), None);
        assert_eq!(listing.kind("index.py/x", false), None);
        assert_eq!(listing.kind("../index.py", false), None);
        assert_eq!(listing.kind("missing.py", false), None);
    }

    #[test]
    fn check_refuses_what_unpack_refuses_with_the_same_error() {
        let mut crc = build(|w| {
            w.start_file(
                "a.txt",
                SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
            )?;
            w.write_all(b"hello world")?;
            Ok(())
        });
        let (_, _, local) = headers(&crc)[0].clone();
        crc[local + 30 + "a.txt".len()] ^= 0xff;
        let mut short = one_file("short.txt");
        set_size(&mut short, "short.txt", 10);
        let cases = [
            crc,
            short,
            one_file("../up.txt"),
            build(|w| w.add_symlink("l", "/etc/passwd", opts(0o777))),
            build(|w| {
                file(w, "f", 0o644, b"x")?;
                file(w, "f/g", 0o644, b"y")
            }),
            zeros_zip("zeros", 2 * MIB),
            b"not a zip".to_vec(),
        ];
        let limits = UnzipLimits {
            max_unpacked_bytes: MIB,
            ..UnzipLimits::default()
        };
        for zip in &cases {
            let checked = check(zip, &limits).expect_err("check should fail");
            let (_, unpacked) = unpack_err_with(zip, &limits);
            assert_eq!(checked.to_string(), unpacked.to_string());
        }
    }

    #[test]
    fn escaping_symlinks_are_rejected() {
        let cases: &[(&str, &str, SymlinkReason)] = &[
            ("l", "/etc/passwd", SymlinkReason::Absolute),
            ("l", "..", SymlinkReason::Escapes),
            ("l", "../x", SymlinkReason::Escapes),
            ("a/b/l", "../../../x", SymlinkReason::Escapes),
            ("a/l", "x/../../y", SymlinkReason::ParentAfterName),
            ("a/l", "x/..", SymlinkReason::ParentAfterName),
            ("l", "..\\x", SymlinkReason::Backslash),
            ("l", "", SymlinkReason::Empty),
        ];
        for (name, target, want) in cases {
            let zip = build(|w| w.add_symlink(*name, *target, opts(0o777)));
            match unpack_err(&zip) {
                UnzipError::UnsafeSymlink {
                    entry,
                    target: got,
                    reason,
                } => {
                    assert_eq!(&entry, name);
                    assert_eq!(&got, target);
                    assert_eq!(reason, *want, "{name} -> {target}");
                }
                other => panic!("{name} -> {target}: unexpected {other}"),
            }
        }
        let zip = build(|w| w.add_symlink("etc", "/etc", opts(0o777)));
        assert_eq!(
            unpack_err(&zip).to_string(),
            "entry `etc`: symlink target `/etc` is absolute"
        );
        let long = "a/".repeat(3000);
        let zip = build(|w| w.add_symlink("l", &long, opts(0o777)));
        assert!(matches!(
            unpack_err(&zip),
            UnzipError::UnsafeSymlink {
                reason: SymlinkReason::TooLong,
                ..
            }
        ));
    }

    #[test]
    fn never_writes_through_an_earlier_symlink() {
        // `a -> .` then `a/../../x`: the `..` is refused outright.
        let zip = build(|w| {
            w.add_symlink("a", ".", opts(0o777))?;
            file(w, "a/../../x", 0o644, b"pwned")
        });
        assert!(matches!(
            unpack_err(&zip),
            UnzipError::UnsafePath {
                reason: UnsafePathReason::ParentComponent,
                ..
            }
        ));

        // `d -> /etc` then `d/passwd`: the link itself is refused.
        let zip = build(|w| {
            w.add_symlink("d", "/etc", opts(0o777))?;
            file(w, "d/passwd", 0o644, b"root::0:0::/:/bin/sh\n")
        });
        assert!(matches!(
            unpack_err(&zip),
            UnzipError::UnsafeSymlink {
                reason: SymlinkReason::Absolute,
                ..
            }
        ));

        // A link that stays inside is fine, writing through it is not.
        for target in [".", "sub", "sub/deeper"] {
            let zip = build(|w| {
                w.add_directory("sub/deeper/", opts(0o755))?;
                w.add_symlink("d", target, opts(0o777))?;
                file(w, "d/x", 0o644, b"through")
            });
            let (dest, err) = unpack_err_with(&zip, &UnzipLimits::default());
            assert_eq!(
                err.to_string(),
                "entry `d/x`: `d` is a symlink from an earlier entry, not a directory"
            );
            assert!(!dest.join("x").exists());
            assert!(!dest.join("sub/x").exists());
            assert!(!dest.join("sub/deeper/x").exists());
        }

        // Nor may a directory entry reuse the link's name.
        let zip = build(|w| {
            w.add_symlink("d", "sub", opts(0o777))?;
            w.add_directory("d/", opts(0o755))
        });
        assert!(matches!(unpack_err(&zip), UnzipError::Duplicate { .. }));
    }

    #[test]
    fn crafted_unix_mode_is_read_back_by_the_zip_reader() {
        let mut zip = one_file("pipe");
        set_unix_mode(&mut zip, "pipe", 0o010_644);
        let mut archive = ZipArchive::new(Cursor::new(&zip[..])).expect("open");
        let entry = archive.by_name("pipe").expect("entry");
        assert_eq!(entry.unix_mode(), Some(0o010_644));
    }

    #[test]
    fn special_files_are_rejected() {
        let cases = [
            (0o010_644, "fifo"),
            (0o020_644, "character device"),
            (0o060_644, "block device"),
            (0o140_755, "socket"),
            (0o170_644, "special file of unknown type"),
        ];
        for (mode, kind) in cases {
            let mut zip = one_file("node");
            set_unix_mode(&mut zip, "node", mode);
            let err = unpack_err(&zip);
            assert!(
                matches!(&err, UnzipError::SpecialFile { entry, mode: m } if entry == "node" && *m == mode),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("entry `node`: {kind} is not allowed (unix mode {mode:#o})")
            );
        }
    }

    #[test]
    fn setuid_setgid_and_sticky_bits_are_cleared() {
        let mut zip = build(|w| {
            file(w, "suid", 0o755, b"#!/bin/sh\n")?;
            file(w, "sgid", 0o750, b"x")?;
            file(w, "unreadable", 0o000, b"x")?;
            w.add_directory("sticky/", opts(0o777))?;
            w.add_directory("locked/", opts(0o000))?;
            file(w, "locked/inside", 0o644, b"still written")
        });
        set_unix_mode(&mut zip, "suid", S_IFREG | 0o4755);
        set_unix_mode(&mut zip, "sgid", S_IFREG | 0o2750);
        set_unix_mode(&mut zip, "sticky/", S_IFDIR | 0o1777);
        let (dest, _) = unpack_ok(&zip);
        assert_eq!(mode_of(&dest.join("suid")), 0o755);
        assert_eq!(mode_of(&dest.join("sgid")), 0o750);
        assert_eq!(mode_of(&dest.join("unreadable")), 0o400);
        assert_eq!(mode_of(&dest.join("sticky")), 0o777);
        assert_eq!(mode_of(&dest.join("locked")), 0o500);
        assert_eq!(
            fs::read(dest.join("locked/inside")).expect("read"),
            b"still written"
        );
    }

    #[test]
    fn entry_count_is_capped() {
        let zip = build(|w| {
            for i in 0..11 {
                file(w, &format!("f{i}"), 0o644, b"")?;
            }
            Ok(())
        });
        assert_eq!(declared_entry_count(&zip), Some(11));
        let limits = UnzipLimits {
            max_entries: 10,
            ..UnzipLimits::default()
        };
        let (dest, err) = unpack_err_with(&zip, &limits);
        assert!(
            matches!(err, UnzipError::TooManyEntries { count: 11, max: 10 }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "archive has 11 entries, over the limit of 10"
        );
        assert_eq!(fs::read_dir(&dest.path).expect("read").count(), 0);

        let limits = UnzipLimits {
            max_entries: 11,
            ..UnzipLimits::default()
        };
        let dest = Dest::new();
        let done = unpack(&zip, &dest.path, &limits).expect("11 entries fit");
        assert_eq!(done.files, 11);
    }

    #[test]
    fn zip_bomb_is_stopped_by_the_byte_cap() {
        let cap = 8 * MIB;
        let limits = UnzipLimits {
            max_unpacked_bytes: cap,
            max_ratio: u64::MAX,
            ..UnzipLimits::default()
        };
        // Honest header: refused before anything is written.
        let (dest, err) = unpack_err_with(bomb(), &limits);
        assert!(
            matches!(&err, UnzipError::TooLarge { entry, limit } if entry == "bomb.bin" && *limit == cap),
            "{err}"
        );
        assert_eq!(tree_bytes(&dest.path), 0);

        // Header claiming 1000 bytes: caught while copying, at the cap.
        let mut lying = bomb().to_vec();
        set_size(&mut lying, "bomb.bin", 1000);
        let (dest, err) = unpack_err_with(&lying, &limits);
        assert!(
            matches!(&err, UnzipError::TooLarge { entry, limit } if entry == "bomb.bin" && *limit == cap),
            "{err}"
        );
        let written = tree_bytes(&dest.path);
        assert!(written <= cap, "{written} bytes written past the cap");
        assert!(
            written > cap - 2 * COPY_CHUNK as u64,
            "stopped early at {written}"
        );
    }

    #[test]
    fn zip_bomb_is_stopped_by_the_ratio_cap() {
        let compressed = bomb().len() as u64;
        // Honest header, default limits: refused before anything is written.
        let (dest, err) = unpack_err_with(bomb(), &UnzipLimits::default());
        assert!(
            matches!(&err, UnzipError::RatioTooHigh { entry, unpacked, .. }
                if entry == "bomb.bin" && *unpacked == 200 * MIB),
            "{err}"
        );
        assert_eq!(tree_bytes(&dest.path), 0);

        // Header claiming 1000 bytes: caught while copying.
        let mut lying = bomb().to_vec();
        set_size(&mut lying, "bomb.bin", 1000);
        let limits = UnzipLimits {
            max_ratio: 100,
            ..UnzipLimits::default()
        };
        let (dest, err) = unpack_err_with(&lying, &limits);
        assert!(
            matches!(&err, UnzipError::RatioTooHigh { entry, max_ratio: 100, .. } if entry == "bomb.bin"),
            "{err}"
        );
        let bound = RATIO_EXEMPT_BYTES.max(compressed * 100);
        let written = tree_bytes(&dest.path);
        assert!(written <= bound, "{written} bytes written past {bound}");
        assert!(written > 0);
    }

    #[test]
    fn small_entries_are_exempt_from_the_ratio_cap() {
        let zip = zeros_zip("zeros.txt", RATIO_EXEMPT_BYTES);
        let limits = UnzipLimits {
            max_ratio: 2,
            ..UnzipLimits::default()
        };
        let dest = Dest::new();
        let done = unpack(&zip, &dest.path, &limits).expect("small entry is exempt");
        assert_eq!(done.bytes, RATIO_EXEMPT_BYTES);

        let zip = zeros_zip("zeros.txt", RATIO_EXEMPT_BYTES + 1);
        let (_, err) = unpack_err_with(&zip, &limits);
        assert!(matches!(err, UnzipError::RatioTooHigh { .. }), "{err}");
    }

    #[test]
    fn not_a_zip_and_truncated_zip_are_rejected() {
        for junk in [&b""[..], b"definitely not a zip archive", &[0u8; 100]] {
            assert!(
                matches!(unpack_err(junk), UnzipError::InvalidArchive { .. }),
                "{junk:?}"
            );
        }
        let zip = build(|w| {
            file(w, "a.txt", 0o644, &[b'a'; 4000])?;
            file(w, "b.txt", 0o644, &[b'b'; 4000])
        });
        for cut in [zip.len() / 2, zip.len() - 1, 30] {
            let err = unpack_err(&zip[..cut]);
            assert!(
                matches!(err, UnzipError::InvalidArchive { .. }),
                "cut at {cut}: {err}"
            );
            assert!(
                err.to_string()
                    .starts_with("not a zip archive or corrupt archive: ")
            );
        }
    }

    #[test]
    fn corrupt_entry_data_is_rejected() {
        let mut zip = build(|w| {
            w.start_file(
                "a.txt",
                SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
            )?;
            w.write_all(b"hello world")?;
            Ok(())
        });
        // Flip a data byte: the checksum no longer matches.
        let (_, _, local) = headers(&zip)[0].clone();
        let data = local + 30 + "a.txt".len();
        zip[data] ^= 0xff;
        let err = unpack_err(&zip);
        assert!(
            matches!(&err, UnzipError::CorruptEntry { entry, .. } if entry == "a.txt"),
            "{err}"
        );

        // A header that claims more than the data holds.
        let mut zip = one_file("short.txt");
        set_size(&mut zip, "short.txt", 10);
        let err = unpack_err(&zip);
        assert_eq!(
            err.to_string(),
            "entry `short.txt`: corrupt data: header says 10 bytes but the data has 4"
        );
    }

    #[test]
    fn duplicate_entries_are_rejected() {
        // Byte-identical names: the writer refuses them, so rename one.
        let mut zip = build(|w| {
            file(w, "dup.txt", 0o644, b"first")?;
            file(w, "dxp.txt", 0o644, b"second")
        });
        let (_, central, local) = headers(&zip)[1].clone();
        for at in [central + CENTRAL_LEN, local + 30] {
            zip[at..at + 7].copy_from_slice(b"dup.txt");
        }
        // The zip reader alone would see one entry and hide the other.
        assert_eq!(
            ZipArchive::new(Cursor::new(&zip[..])).expect("open").len(),
            1
        );
        let err = unpack_err(&zip);
        assert_eq!(
            err.to_string(),
            "entry `dup.txt`: duplicate entry, an earlier entry also unpacks to `dup.txt`"
        );

        // Different names for the same path.
        let pairs: &[(&str, &str)] = &[
            ("a/b", "a//b"),
            ("x", "./x"),
            ("dir/f", "dir\\f"),
            ("same", "same/"),
            ("d/", "./d/"),
        ];
        for (first, second) in pairs {
            let zip = build(|w| {
                for name in [first, second] {
                    if name.ends_with('/') {
                        w.add_directory(*name, opts(0o755))?;
                    } else {
                        file(w, name, 0o644, b"x")?;
                    }
                }
                Ok(())
            });
            match unpack_err(&zip) {
                UnzipError::Duplicate { entry, .. } => assert_eq!(&entry, second),
                other => panic!("{first} + {second}: unexpected {other}"),
            }
        }

        // A file where an earlier entry needs a directory.
        let zip = build(|w| {
            file(w, "a", 0o644, b"file")?;
            file(w, "a/b", 0o644, b"under a file")
        });
        assert_eq!(
            unpack_err(&zip).to_string(),
            "entry `a/b`: `a` is a file from an earlier entry, not a directory"
        );
    }

    #[test]
    fn encrypted_and_unsupported_entries_are_rejected() {
        let mut zip = one_file("secret.txt");
        edit(&mut zip, "secret.txt", |central, local| {
            central[8] |= 1;
            local[6] |= 1;
        });
        assert_eq!(
            unpack_err(&zip).to_string(),
            "entry `secret.txt`: encrypted entries are not supported"
        );

        let mut zip = one_file("packed.txt");
        edit(&mut zip, "packed.txt", |central, local| {
            central[10..12].copy_from_slice(&14u16.to_le_bytes());
            local[8..10].copy_from_slice(&14u16.to_le_bytes());
        });
        let err = unpack_err(&zip);
        assert!(
            matches!(&err, UnzipError::UnsupportedCompression { entry, .. } if entry == "packed.txt"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("only stored and deflate are supported")
        );
    }

    #[test]
    fn budget_is_shared_across_archives() {
        let code = build(|w| file(w, "index.py", 0o644, &[b'c'; 1000]));
        let layer = build(|w| file(w, "lib/layer.py", 0o644, &[b'l'; 600]));
        let small_layer = build(|w| file(w, "lib/small.py", 0o644, &[b's'; 500]));
        let limits = UnzipLimits::default();

        let mut budget = Budget::new(1500);
        let code_dir = Dest::new();
        let done = unpack_with_budget(&code, &code_dir.path, &limits, &mut budget).expect("code");
        assert_eq!(done.bytes, 1000);
        assert_eq!((budget.used(), budget.remaining()), (1000, 500));

        let layer_dir = Dest::new();
        let err = unpack_with_budget(&layer, &layer_dir.path, &limits, &mut budget)
            .expect_err("over the shared budget");
        assert!(
            matches!(&err, UnzipError::TooLarge { entry, limit: 1500 } if entry == "lib/layer.py"),
            "{err}"
        );
        assert_eq!(tree_bytes(&layer_dir.path), 0);

        let small_dir = Dest::new();
        unpack_with_budget(&small_layer, &small_dir.path, &limits, &mut budget)
            .expect("fits exactly");
        assert_eq!(budget.remaining(), 0);

        // The archive's own limit still applies under a larger budget.
        let mut budget = Budget::new(10_000);
        let limits = UnzipLimits {
            max_unpacked_bytes: 999,
            ..UnzipLimits::default()
        };
        let dest = Dest::new();
        let err = unpack_with_budget(&code, &dest.path, &limits, &mut budget)
            .expect_err("over the archive limit");
        assert!(
            matches!(err, UnzipError::TooLarge { limit: 999, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "entry `index.py`: unpacked size over the limit of 999 bytes"
        );
    }

    #[test]
    fn destination_must_be_an_existing_empty_directory() {
        let zip = one_file("a.txt");
        let limits = UnzipLimits::default();
        let dest = Dest::new();
        fs::write(dest.join("already"), b"x").expect("write");
        assert!(matches!(
            unpack(&zip, &dest.path, &limits),
            Err(UnzipError::Destination {
                reason: "is not empty",
                ..
            })
        ));
        assert!(matches!(
            unpack(&zip, &dest.join("already"), &limits),
            Err(UnzipError::Destination {
                reason: "is not a directory",
                ..
            })
        ));
        assert!(matches!(
            unpack(&zip, &dest.join("missing"), &limits),
            Err(UnzipError::Destination {
                reason: "does not exist",
                ..
            })
        ));
    }

    #[test]
    fn is_executable_file_checks_kind_bits_and_containment() {
        let dir = TempDir::new().expect("tempdir");
        let pkg = dir.path().join("pkg");
        fs::create_dir(&pkg).expect("mkdir");
        let write = |name: &Path, mode: u32| {
            fs::write(name, b"#!/bin/sh\n").expect("write");
            fs::set_permissions(name, fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write(&pkg.join("exec"), 0o755);
        write(&pkg.join("owner_only"), 0o700);
        write(&pkg.join("plain"), 0o644);
        write(&dir.path().join("outside"), 0o755);
        std::os::unix::fs::symlink("exec", pkg.join("inside_link")).expect("symlink");
        std::os::unix::fs::symlink("../outside", pkg.join("escaping_link")).expect("symlink");
        fs::create_dir(pkg.join("adir")).expect("mkdir");

        assert!(is_executable_file(&pkg.join("exec")));
        assert!(is_executable_file(&pkg.join("owner_only")));
        assert!(is_executable_file(&pkg.join("inside_link")));
        assert!(!is_executable_file(&pkg.join("plain")));
        assert!(!is_executable_file(&pkg.join("escaping_link")));
        assert!(!is_executable_file(&pkg.join("adir")));
        assert!(!is_executable_file(&pkg.join("missing")));
    }

    #[test]
    fn messages_escape_control_characters_and_cut_long_names() {
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = "x".repeat(500);
        assert_eq!(shown(&long).chars().count(), 201);
    }
}
