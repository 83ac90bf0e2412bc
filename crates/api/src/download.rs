//! Signed, expiring download links for code packages (GetFunctionAddress).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a link stays valid.
pub const LINK_TTL_SECS: i64 = 30 * 60;

fn mac(key: &str, sha256: &str, expires: i64) -> String {
    // HMAC accepts keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(format!("{sha256}\n{expires}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The path and query of a link to `sha256` valid until `expires` (Unix seconds).
pub fn link(key: &str, sha256: &str, expires: i64) -> String {
    format!(
        "/code/{sha256}?expires={expires}&signature={}",
        mac(key, sha256, expires)
    )
}

/// Whether a link's signature is right and it has not expired at `now`.
pub fn check(key: &str, sha256: &str, expires: i64, signature: &str, now: i64) -> bool {
    let want = mac(key, sha256, expires);
    let same = want.len() == signature.len()
        && want
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same && now <= expires
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_and_expire() {
        let l = link("k", "abc", 100);
        let sig = l
            .rsplit_once("signature=")
            .map(|(_, s)| s)
            .expect("signature");
        assert!(check("k", "abc", 100, sig, 100));
        assert!(!check("k", "abc", 100, sig, 101), "expired");
        assert!(!check("other", "abc", 100, sig, 50), "wrong key");
        assert!(!check("k", "abd", 100, sig, 50), "other blob");
        assert!(!check("k", "abc", 200, sig, 50), "extended expiry");
    }
}
