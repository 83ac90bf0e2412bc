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
/// 200 characters, the fields hold them in full.
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
    #[error("entry `{}`: duplicate entry, `{}` was already unpacked", shown(.entry), shown(.path))]
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
    tracing::debug!(
        files = state.done.files,
        dirs = state.done.dirs,
        symlinks = state.done.symlinks,
        bytes = state.done.bytes,
        dest = %dest.display(),
        "unpacked archive"
    );
    Ok(state.done)
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
enum Node {
    /// A directory; `mode` is its final mode.
    Dir {
        explicit: bool,
        mode: u32,
    },
    File,
    Symlink,
}

impl Node {
    fn describe(&self) -> &'static str {
        match self {
            Node::Dir { .. } => "directory",
            Node::File => "file",
            Node::Symlink => "symlink",
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
    dest: &'a Path,
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

        let target = self.dest.join(&path);
        self.check_parent_on_disk(entry, &path)?;
        match kind {
            Kind::Dir => {
                self.make_dir(&target)?;
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
                self.write_file(&info, data, &target, file_mode(mode))?;
                self.nodes.insert(path, Node::File);
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
                std::os::unix::fs::symlink(OsStr::from_bytes(&link_target), &target)
                    .map_err(io_err(&target))?;
                self.nodes.insert(path, Node::Symlink);
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
                    self.make_dir(&self.dest.join(parent))?;
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
        let parent = match path.rfind('/') {
            Some(at) => self.dest.join(&path[..at]),
            None => return Ok(()),
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

    fn make_dir(&mut self, path: &Path) -> Result<(), UnzipError> {
        // Owner-only while unpacking; final modes are set by `finish_dirs`.
        DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(io_err(path))?;
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
        target: &Path,
        mode: u32,
    ) -> Result<(), UnzipError> {
        let entry = info.name.as_str();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)
            .map_err(io_err(target))?;
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
            file.write_all(&self.buf[..n]).map_err(io_err(target))?;
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
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(target))?;
        Ok(())
    }

    /// Gives every directory its final mode, without following symlinks.
    fn finish_dirs(&self) -> Result<(), UnzipError> {
        for (path, node) in &self.nodes {
            if let Node::Dir { mode, .. } = node {
                let full = self.dest.join(path);
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
