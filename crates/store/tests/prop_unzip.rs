//! Property tests of safe unzip: arbitrary bytes and mutated archives (hostile names, symlinks, modes, sizes;
//! then bytes flipped, overwritten, cut or spliced) never make `unpack_with_budget` panic, never put anything
//! outside the destination (nor a symlink that leads out of it, nor a special file), and never write more file
//! content than the archive's limit and the shared budget allow; the budget is charged exactly what was written.
//!
//! Each property runs 1024 cases by default (a few seconds in all, in debug); set `PROPTEST_CASES` for longer runs.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use store::unzip::{Budget, UnzipLimits, unpack_with_budget};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 1024;
    }
    c
}

/// One entry to put in an archive.
#[derive(Debug, Clone)]
enum Entry {
    File {
        name: String,
        mode: u32,
        data: Vec<u8>,
        stored: bool,
    },
    Dir {
        name: String,
    },
    Symlink {
        name: String,
        target: String,
    },
}

/// Entry names, friendly and hostile.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-z]{1,6}(/[a-z]{1,6}){0,3}",
        1 => Just("../escape".to_string()),
        1 => Just("a/../../escape".to_string()),
        1 => Just("/abs".to_string()),
        1 => Just("\\\\server\\share".to_string()),
        1 => Just("C:evil".to_string()),
        1 => Just("dir\\file".to_string()),
        1 => Just("./a//b".to_string()),
        1 => Just("a\0b".to_string()),
        1 => Just("".to_string()),
        1 => "[a-z./\\\\]{1,12}",
        1 => any::<String>(),
    ]
}

/// Symlink targets, contained and escaping.
fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z]{1,6}(/[a-z]{1,6}){0,2}",
        4 => "(\\.\\./){1,4}[a-z]{0,6}",
        1 => Just("/etc/passwd".to_string()),
        1 => Just("a/../../x".to_string()),
        1 => Just("".to_string()),
        1 => "[a-z./\\\\]{1,12}",
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::collection::vec(any::<u8>(), 0..2048),
        4 => (0usize..200_000).prop_map(|n| vec![0u8; n]),
        // Past the ratio exemption.
        1 => (1usize << 20..3 << 20).prop_map(|n| vec![0u8; n]),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        4 => (name(), prop_oneof![Just(0o644u32), Just(0o755), Just(0o4755), Just(0o000), 0u32..0o7777], data(), any::<bool>())
            .prop_map(|(name, mode, data, stored)| Entry::File { name, mode, data, stored }),
        1 => name().prop_map(|name| Entry::Dir { name }),
        1 => (name(), target()).prop_map(|(name, target)| Entry::Symlink { name, target }),
    ]
}

/// Builds a zip of `entries`, skipping those the writer refuses (duplicates, for one).
fn build(entries: &[Entry]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = |mode: u32, stored: bool| {
        SimpleFileOptions::default()
            .compression_method(if stored {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            })
            .unix_permissions(mode)
    };
    for e in entries {
        let _ = match e {
            Entry::File {
                name,
                mode,
                data,
                stored,
            } => w
                .start_file(name.as_str(), opts(*mode, *stored))
                .and_then(|()| w.write_all(data).map_err(Into::into)),
            Entry::Dir { name } => w.add_directory(name.as_str(), opts(0o755, false)),
            Entry::Symlink { name, target } => {
                w.add_symlink(name.as_str(), target.as_str(), opts(0o777, false))
            }
        };
    }
    w.finish().map(Cursor::into_inner).unwrap_or_default()
}

/// A change to an archive's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte.
    Flip(prop::sample::Index, u8),
    /// Overwrite 1–4 bytes with a value (sizes, counts and offsets in headers are 2 or 4 bytes).
    Set(prop::sample::Index, u32, usize),
    /// Keep only a prefix.
    Cut(prop::sample::Index),
    /// Copy a range over another place (duplicates headers and names).
    Splice(prop::sample::Index, prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        3 => (any::<prop::sample::Index>(), prop_oneof![Just(0u32), Just(u32::MAX), Just(0xffff), any::<u32>()], 1usize..=4)
            .prop_map(|(i, v, n)| Mutation::Set(i, v, n)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Cut),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1usize..64)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn mutate(zip: &mut Vec<u8>, m: &Mutation) {
    if zip.is_empty() {
        return;
    }
    let len = zip.len();
    match m {
        Mutation::Flip(i, x) => zip[i.index(len)] ^= x,
        Mutation::Set(i, v, n) => {
            let at = i.index(len);
            for (k, b) in v.to_le_bytes().iter().take(*n).enumerate() {
                if let Some(slot) = zip.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::Cut(i) => zip.truncate(i.index(len)),
        Mutation::Splice(from, to, n) => {
            let (from, to) = (from.index(len), to.index(len));
            let n = (*n).min(len - from).min(len - to);
            let chunk = zip[from..from + n].to_vec();
            zip[to..to + n].copy_from_slice(&chunk);
        }
    }
}

fn limits() -> impl Strategy<Value = (UnzipLimits, u64)> {
    (
        prop_oneof![Just(65_536u64), 0u64..16],
        prop_oneof![Just(500u64 << 20), 0u64..300_000],
        prop_oneof![Just(1000u64), 1u64..50, Just(u64::MAX)],
        prop_oneof![Just(u64::MAX), 0u64..300_000],
    )
        .prop_map(|(max_entries, max_unpacked_bytes, max_ratio, budget)| {
            (
                UnzipLimits {
                    max_entries,
                    max_unpacked_bytes,
                    max_ratio,
                },
                budget,
            )
        })
}

/// A destination with a sibling that must stay untouched.
struct Sandbox {
    _root: tempfile::TempDir,
    parent: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

const SENTINEL: &[u8] = b"must not change";

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().expect("tempdir");
        // One level more, so that `../../x` from the destination still lands in our own directory.
        let parent = root.path().join("p");
        let dest = parent.join("dest");
        let outside = parent.join("outside");
        fs::create_dir_all(&dest).expect("dest");
        fs::create_dir_all(&outside).expect("outside");
        fs::write(outside.join("sentinel"), SENTINEL).expect("sentinel");
        Sandbox {
            parent,
            dest,
            outside,
            _root: root,
        }
    }

    /// Checks that nothing but `dest` changed, and that `dest` holds only safe things; returns the bytes of
    /// file content in it.
    fn check(&self) -> Result<u64, TestCaseError> {
        let mut names: Vec<String> = fs::read_dir(&self.parent)
            .expect("list parent")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        prop_assert_eq!(names, vec!["dest".to_string(), "outside".to_string()]);
        let outside: Vec<_> = fs::read_dir(&self.outside).expect("list").collect();
        prop_assert_eq!(
            outside.len(),
            1,
            "something was written next to the destination"
        );
        prop_assert_eq!(
            fs::read(self.outside.join("sentinel")).expect("sentinel"),
            SENTINEL
        );
        prop_assert!(
            fs::read_dir(self._root.path()).expect("list root").count() == 1,
            "something was written above the destination"
        );
        let mut bytes = 0;
        walk(&self.dest, &self.dest, &mut bytes)?;
        Ok(bytes)
    }
}

/// Whether `target`, read from a link in `dir` (relative to `root`), stays inside `root`, lexically.
fn stays_inside(root: &Path, dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let Ok(rel) = dir.strip_prefix(root) else {
        return false;
    };
    let mut depth: Vec<_> = rel.components().collect();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::Normal(_) => depth.push(c),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

fn walk(root: &Path, dir: &Path, bytes: &mut u64) -> Result<(), TestCaseError> {
    for e in fs::read_dir(dir).expect("list") {
        let path = e.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("stat");
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            prop_assert!(
                stays_inside(root, dir, &target),
                "{} -> {} leads out",
                path.display(),
                target.display()
            );
        } else if ft.is_dir() {
            walk(root, &path, bytes)?;
        } else {
            prop_assert!(ft.is_file(), "{} is a special file", path.display());
            prop_assert_eq!(
                meta.permissions().mode() & 0o7000,
                0,
                "{} kept setuid/setgid/sticky",
                path.display()
            );
            *bytes += meta.len();
        }
    }
    Ok(())
}

/// Unpacks `zip` under `limits` and a budget of `budget` bytes, and checks every property.
fn unpack_and_check(zip: &[u8], limits: &UnzipLimits, budget: u64) -> Result<(), TestCaseError> {
    let sandbox = Sandbox::new();
    let mut b = Budget::new(budget);
    let result = unpack_with_budget(zip, &sandbox.dest, limits, &mut b);
    if let Err(e) = &result {
        prop_assert!(!e.to_string().is_empty());
    }
    let written = sandbox.check()?;
    prop_assert!(
        written <= limits.max_unpacked_bytes,
        "{} bytes written, limit {}",
        written,
        limits.max_unpacked_bytes
    );
    prop_assert!(
        written <= budget,
        "{} bytes written, budget {}",
        written,
        budget
    );
    prop_assert_eq!(b.used(), written, "the budget is charged what was written");
    if let Ok(done) = result {
        prop_assert_eq!(done.bytes, written);
    }
    // Leave the tree removable, whatever modes it got.
    let _ = make_writable(&sandbox.dest);
    Ok(())
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        if fs::symlink_metadata(&path)?.is_dir() {
            make_writable(&path)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes (and bytes that start like a zip) are refused or unpacked safely.
    #[test]
    fn arbitrary_bytes_are_safe(
        prefix in prop_oneof![Just(Vec::new()), Just(b"PK\x03\x04".to_vec()), Just(b"PK\x05\x06".to_vec())],
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        (limits, budget) in limits(),
    ) {
        let mut zip = prefix;
        zip.extend(bytes);
        unpack_and_check(&zip, &limits, budget)?;
    }

    /// Archives of friendly and hostile entries, as written, are unpacked safely or refused.
    #[test]
    fn hostile_archives_are_safe(
        entries in prop::collection::vec(entry(), 0..8),
        (limits, budget) in limits(),
    ) {
        unpack_and_check(&build(&entries), &limits, budget)?;
    }

    /// The same archives with their bytes damaged: still safe.
    #[test]
    fn mutated_archives_are_safe(
        entries in prop::collection::vec(entry(), 1..6),
        changes in prop::collection::vec(mutation(), 1..5),
        (limits, budget) in limits(),
    ) {
        let mut zip = build(&entries);
        for m in &changes {
            mutate(&mut zip, m);
        }
        unpack_and_check(&zip, &limits, budget)?;
    }

    /// Well-formed archives of plain files within the limits unpack completely.
    #[test]
    fn plain_archives_unpack_completely(
        files in prop::collection::btree_map("[a-z]{1,8}", prop::collection::vec(any::<u8>(), 0..4096), 1..8),
    ) {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(name, data)| Entry::File { name: name.clone(), mode: 0o644, data: data.clone(), stored: false })
            .collect();
        let zip = build(&entries);
        let sandbox = Sandbox::new();
        let mut budget = Budget::new(u64::MAX);
        let done = unpack_with_budget(&zip, &sandbox.dest, &UnzipLimits::default(), &mut budget)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(done.files, files.len() as u64);
        for (name, data) in &files {
            prop_assert_eq!(&fs::read(sandbox.dest.join(name)).expect("read"), data);
        }
        prop_assert_eq!(sandbox.check()?, done.bytes);
    }
}
