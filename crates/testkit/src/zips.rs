//! Fixture code packages: good ones for each kind of runtime and bad ones for each way a package can be unsafe
//! or unusable. Everything is built in memory.

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use base64::Engine;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Base64 (standard alphabet, padded), as `Code.ZipFile` wants it.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One entry of a package.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    File {
        name: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    Dir {
        name: &'a str,
    },
    Symlink {
        name: &'a str,
        target: &'a str,
    },
}

/// A regular file with mode 0644.
pub fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry::File {
        name,
        mode: 0o644,
        data,
    }
}

/// Builds a zip of `entries`, in order, deflated, with unix modes. Names are written verbatim (`../x` too).
pub fn build(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = |mode: u32| {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(mode)
    };
    for e in entries {
        match e {
            Entry::File { name, mode, data } => {
                w.start_file(*name, opts(*mode)).expect("zip entry");
                w.write_all(data).expect("zip data");
            }
            Entry::Dir { name } => w.add_directory(*name, opts(0o755)).expect("zip dir"),
            Entry::Symlink { name, target } => w
                .add_symlink(*name, *target, opts(0o777))
                .expect("zip symlink"),
        }
    }
    w.finish().expect("finish zip").into_inner()
}

fn le16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Sets the whole unix mode (file type bits included) of entry `name` in the central directory, which the zip
/// writer cannot do (it keeps only the permission bits). For a zip without an archive comment.
pub fn set_unix_mode(zip: &mut [u8], name: &str, mode: u32) {
    const EOCD_LEN: usize = 22;
    let eocd = zip.len() - EOCD_LEN;
    assert_eq!(le32(zip, eocd), 0x0605_4b50, "end of central directory");
    let count = le16(zip, eocd + 10);
    let mut pos = le32(zip, eocd + 16);
    for _ in 0..count {
        assert_eq!(le32(zip, pos), 0x0201_4b50, "central directory header");
        let name_len = le16(zip, pos + 28);
        let extra_len = le16(zip, pos + 30);
        let comment_len = le16(zip, pos + 32);
        if &zip[pos + 46..pos + 46 + name_len] == name.as_bytes() {
            zip[pos + 5] = 3; // made by: unix
            zip[pos + 38..pos + 42].copy_from_slice(&(mode << 16).to_le_bytes());
            return;
        }
        pos += 46 + name_len + extra_len + comment_len;
    }
    panic!("no entry {name:?} in the zip");
}

pub const PYTHON_HANDLER: &[u8] = b"import json\n\n\ndef main_handler(event, context):\n    return {\"hello\": \"world\", \"event\": event}\n";
pub const NODE_HANDLER: &[u8] =
    b"'use strict';\nexports.main_handler = async (event, context) => ({ hello: 'world', event });\n";
pub const BOOTSTRAP: &[u8] = b"#!/bin/sh\n# A minimal custom runtime: say ready, then answer every event with its own body.\nset -eu\napi=\"http://$SCF_RUNTIME_API:$SCF_RUNTIME_API_PORT\"\ncurl -s -d ' ' -X POST \"$api/runtime/init/ready\"\nwhile true; do\n  body=$(curl -s \"$api/runtime/invocation/next\")\n  curl -s -X POST -d \"$body\" \"$api/runtime/invocation/response\"\ndone\n";

/// `index.py` with `main_handler` (Handler `index.main_handler`, any Python runtime).
pub fn python_hello() -> Vec<u8> {
    build(&[file("index.py", PYTHON_HANDLER)])
}

/// Like [`python_hello`] with another greeting, so that its sha256 differs.
pub fn python_hello_v(n: u32) -> Vec<u8> {
    let text = format!(
        "def main_handler(event, context):\n    return {{\"hello\": \"world\", \"v\": {n}}}\n"
    );
    build(&[file("index.py", text.as_bytes())])
}

/// `index.js` exporting `main_handler` (Handler `index.main_handler`, any Node.js runtime).
pub fn node_hello() -> Vec<u8> {
    build(&[file("index.js", NODE_HANDLER)])
}

/// A custom runtime: an executable `scf_bootstrap` at the root.
pub fn custom_runtime() -> Vec<u8> {
    build(&[Entry::File {
        name: "scf_bootstrap",
        mode: 0o755,
        data: BOOTSTRAP,
    }])
}

/// A custom runtime whose `scf_bootstrap` lacks the executable bit.
pub fn custom_runtime_not_executable() -> Vec<u8> {
    build(&[Entry::File {
        name: "scf_bootstrap",
        mode: 0o644,
        data: BOOTSTRAP,
    }])
}

/// A Python package without `index.py` (only `main.py`): Handler `index.main_handler` has no file.
pub fn missing_handler() -> Vec<u8> {
    build(&[file("main.py", PYTHON_HANDLER)])
}

/// A good package plus the entry `../evil.py`.
pub fn parent_dir_entry() -> Vec<u8> {
    build(&[
        file("index.py", PYTHON_HANDLER),
        file("../evil.py", b"print('escaped')\n"),
    ])
}

/// A good package plus the entry `/tmp/evil.py`.
pub fn absolute_entry() -> Vec<u8> {
    build(&[
        file("index.py", PYTHON_HANDLER),
        file("/tmp/evil.py", b"print('escaped')\n"),
    ])
}

/// A good package plus the symlink `escape -> ../../etc/passwd`.
pub fn escaping_symlink() -> Vec<u8> {
    build(&[
        file("index.py", PYTHON_HANDLER),
        Entry::Symlink {
            name: "escape",
            target: "../../etc/passwd",
        },
    ])
}

/// A good package plus `pipe`, a FIFO.
pub fn fifo() -> Vec<u8> {
    let mut z = build(&[file("index.py", PYTHON_HANDLER), file("pipe", b"")]);
    set_unix_mode(&mut z, "pipe", 0o010_644);
    z
}

/// Bytes of zeros in the bomb's `bomb.bin`.
pub const BOMB_BYTES: u64 = 64 * 1024 * 1024;

/// A good package plus `bomb.bin`: 64 MiB of zeros deflated to about 64 KiB, a ratio over 1000. Built once.
pub fn zip_bomb() -> Vec<u8> {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(9))
            .unix_permissions(0o644);
        w.start_file("index.py", opts).expect("zip entry");
        w.write_all(PYTHON_HANDLER).expect("zip data");
        w.start_file("bomb.bin", opts).expect("zip entry");
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..BOMB_BYTES / chunk.len() as u64 {
            w.write_all(&chunk).expect("zip data");
        }
        w.finish().expect("finish zip").into_inner()
    })
    .clone()
}

/// Bytes that are not a zip archive at all.
pub fn not_a_zip() -> Vec<u8> {
    b"this is not a zip archive, just some text".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn names(z: &[u8]) -> Vec<(String, Option<u32>)> {
        let mut a = zip::ZipArchive::new(Cursor::new(z)).expect("valid zip");
        (0..a.len())
            .map(|i| {
                let f = a.by_index(i).expect("entry");
                (f.name().to_string(), f.unix_mode())
            })
            .collect()
    }

    #[test]
    fn fixtures_hold_what_they_claim() {
        assert_eq!(names(&python_hello())[0].0, "index.py");
        assert_eq!(names(&node_hello())[0].0, "index.js");
        let boot = names(&custom_runtime());
        assert_eq!(boot[0].0, "scf_bootstrap");
        assert_eq!(boot[0].1.map(|m| m & 0o777), Some(0o755));
        assert_eq!(names(&parent_dir_entry())[1].0, "../evil.py");
        assert_eq!(names(&absolute_entry())[1].0, "/tmp/evil.py");
        let link = names(&escaping_symlink());
        assert_eq!(link[1].1.map(|m| m & 0o170_000), Some(0o120_000));
        let pipe = names(&fifo());
        assert_eq!(pipe[1], ("pipe".to_string(), Some(0o010_644)));
        assert!(
            names(&missing_handler())
                .iter()
                .all(|(n, _)| n != "index.py")
        );
        assert!(zip::ZipArchive::new(Cursor::new(not_a_zip())).is_err());
    }

    #[test]
    fn the_bomb_is_small_and_expands_over_a_thousandfold() {
        let z = zip_bomb();
        let mut a = zip::ZipArchive::new(Cursor::new(&z[..])).expect("valid zip");
        let mut f = a.by_name("bomb.bin").expect("bomb entry");
        assert_eq!(f.size(), BOMB_BYTES);
        assert!(
            f.size() / f.compressed_size() > 1000,
            "ratio {}",
            f.size() / f.compressed_size()
        );
        let mut first = [1u8; 16];
        f.read_exact(&mut first).expect("read");
        assert_eq!(first, [0u8; 16]);
    }
}
