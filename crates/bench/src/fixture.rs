//! Test data: the 1 KiB Python code package and a small deterministic random number generator.

use std::io::Write;

use base64::Engine;

/// The size the code package aims at.
pub const ZIP_BYTES: usize = 1024;

/// A deterministic generator (SplitMix64): the same seed gives the same names and offsets in every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn zip_with(source: &[u8]) -> anyhow::Result<Vec<u8>> {
    zip_file("index.py", source)
}

/// A zip holding one file.
pub fn zip_file(name: &str, source: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    w.start_file(name, opts)?;
    w.write_all(source)?;
    Ok(w.finish()?.into_inner())
}

/// A Python package of about [`ZIP_BYTES`] bytes with `index.main_handler`, unique for each `tag` (so every
/// create or update stores and unpacks a new blob, as a real deployment would).
pub fn python_zip(tag: &str) -> anyhow::Result<Vec<u8>> {
    let mut src = format!(
        "# stratus bench package {tag}\n\ndef main_handler(event, context):\n    return event\n\n"
    );
    let overhead = zip_with(src.as_bytes())?.len();
    let mut rng = Rng::new(tag.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }));
    // Fill with comment lines to the target size (a stored entry grows byte for byte).
    let mut room = ZIP_BYTES.saturating_sub(overhead);
    while room > 0 {
        let line_len = room.min(64);
        let mut line = String::from("#");
        while line.len() + 1 < line_len {
            line.push(char::from(b'a' + rng.below(26) as u8));
        }
        line.push('\n');
        line.truncate(line_len);
        room -= line.len();
        src.push_str(&line);
    }
    zip_with(src.as_bytes())
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_is_about_1_kib_unique_and_has_the_handler() {
        let a = python_zip("b1-create-0").expect("zip");
        let b = python_zip("b1-create-1").expect("zip");
        assert_eq!(a.len(), ZIP_BYTES, "stored entries make the size exact");
        assert_eq!(b.len(), ZIP_BYTES);
        assert_ne!(a, b);
        assert_eq!(a, python_zip("b1-create-0").expect("zip"), "deterministic");
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(a)).expect("readable zip");
        let mut f = z.by_name("index.py").expect("index.py");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).expect("read");
        assert!(text.contains("def main_handler(event, context):"));
    }

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        assert_eq!(Rng::new(1).below(0), 0);
    }
}
