//! Zipping a code folder into a package. Paths matched by the folder's `.stratusignore` (gitignore syntax:
//! `#` comments, `!` to re-include, a trailing `/` for directories only, a leading `/` to anchor at the folder)
//! are left out, and so are `.git/` and the ignore file itself. Unix modes are kept (an executable
//! `scf_bootstrap` stays executable) and symbolic links are stored as links.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::Error;

/// The ignore file read from the folder's root.
pub const IGNORE_FILE: &str = ".stratusignore";

/// A package built from a folder.
#[derive(Debug, Clone)]
pub struct Package {
    pub zip: Vec<u8>,
    /// Regular files in it.
    pub files: usize,
    /// Their bytes, uncompressed.
    pub bytes: u64,
}

impl Package {
    /// The zip as `Code.ZipFile` wants it (standard base64, padded).
    pub fn base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.zip)
    }
}

fn pkg_err(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Package {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn matcher(root: &Path) -> Result<Gitignore, Error> {
    let mut b = GitignoreBuilder::new(root);
    b.add_line(None, "/.git/")
        .and_then(|b| b.add_line(None, &format!("/{IGNORE_FILE}")))
        .map_err(|e| pkg_err(root, e))?;
    let file = root.join(IGNORE_FILE);
    if file.exists()
        && let Some(e) = b.add(&file)
    {
        return Err(pkg_err(&file, e));
    }
    b.build().map_err(|e| pkg_err(&file, e))
}

/// Zips `dir` (deflated, entries in name order, paths relative to `dir`).
pub fn zip_dir(dir: &Path) -> Result<Package, Error> {
    let meta = std::fs::metadata(dir).map_err(|e| pkg_err(dir, e))?;
    if !meta.is_dir() {
        return Err(pkg_err(dir, "not a directory"));
    }
    let ignore = matcher(dir)?;
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let mut pkg = Package {
        zip: Vec::new(),
        files: 0,
        bytes: 0,
    };
    // An explicit stack, not recursion: deep trees cannot overflow it.
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| pkg_err(&d, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| pkg_err(&d, e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for e in entries {
            let path = e.path();
            let ft = e.file_type().map_err(|err| pkg_err(&path, err))?;
            if ignore
                .matched_path_or_any_parents(&path, ft.is_dir())
                .is_ignore()
            {
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .map_err(|err| pkg_err(&path, err))?
                .to_str()
                .ok_or_else(|| pkg_err(&path, "the name is not UTF-8"))?
                .to_string();
            let md = std::fs::symlink_metadata(&path).map_err(|err| pkg_err(&path, err))?;
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                md.permissions().mode() & 0o7777
            };
            let opts = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Deflated)
                .unix_permissions(mode);
            if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|err| pkg_err(&path, err))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| pkg_err(&path, "the link target is not UTF-8"))?;
                w.add_symlink(rel, target, opts)
                    .map_err(|err| pkg_err(&path, err))?;
            } else if ft.is_dir() {
                w.add_directory(format!("{rel}/"), opts)
                    .map_err(|err| pkg_err(&path, err))?;
                subdirs.push(path);
            } else if ft.is_file() {
                let data = std::fs::read(&path).map_err(|err| pkg_err(&path, err))?;
                w.start_file(rel, opts).map_err(|err| pkg_err(&path, err))?;
                w.write_all(&data).map_err(|err| pkg_err(&path, err))?;
                pkg.files += 1;
                pkg.bytes += data.len() as u64;
            }
            // Sockets, FIFOs and devices have no place in a package: left out.
        }
        // Popped in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    pkg.zip = w.finish().map_err(|e| pkg_err(dir, e))?.into_inner();
    Ok(pkg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(zip: &[u8]) -> Vec<String> {
        let a = zip::ZipArchive::new(Cursor::new(zip)).expect("a zip");
        a.file_names().map(str::to_string).collect()
    }

    #[test]
    fn honours_the_ignore_file_and_keeps_modes() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        std::fs::write(root.join("index.py"), "def main_handler(e, c): return 1\n").expect("w");
        std::fs::write(root.join("notes.log"), "x").expect("w");
        std::fs::write(root.join("keep.log"), "x").expect("w");
        std::fs::create_dir_all(root.join("build/out")).expect("mkdir");
        std::fs::write(root.join("build/out/a.o"), "x").expect("w");
        std::fs::create_dir_all(root.join("lib/build")).expect("mkdir");
        std::fs::write(root.join("lib/build/b.py"), "x").expect("w");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::write(root.join(".git/HEAD"), "x").expect("w");
        std::fs::write(root.join("scf_bootstrap"), "#!/bin/sh\n").expect("w");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.join("scf_bootstrap"),
                std::fs::Permissions::from_mode(0o755),
            )
            .expect("chmod");
        }
        std::os::unix::fs::symlink("index.py", root.join("link.py")).expect("symlink");
        std::fs::write(
            root.join(IGNORE_FILE),
            "# build output\n*.log\n!keep.log\n/build/\n",
        )
        .expect("w");
        let p = zip_dir(root).expect("zips");
        assert_eq!(
            names(&p.zip),
            [
                "index.py",
                "keep.log",
                "lib/",
                "link.py",
                "scf_bootstrap",
                "lib/build/",
                "lib/build/b.py"
            ]
        );
        assert_eq!(p.files, 4);
        let mut a = zip::ZipArchive::new(Cursor::new(&p.zip)).expect("zip");
        let f = a.by_name("scf_bootstrap").expect("entry");
        assert_eq!(f.unix_mode().map(|m| m & 0o777), Some(0o755));
        drop(f);
        let l = a.by_name("link.py").expect("entry");
        assert!(l.is_symlink());
    }

    #[test]
    fn refuses_what_is_not_a_folder() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("file");
        std::fs::write(&f, "x").expect("w");
        assert!(matches!(zip_dir(&f), Err(Error::Package { .. })));
        assert!(zip_dir(&d.path().join("missing")).is_err());
    }
}
