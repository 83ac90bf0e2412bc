//! Property tests of the TC3-HMAC-SHA256 parser and verifier: no input makes them panic, a request signed the
//! way the clients sign it verifies, and changing any one byte of what the signature covers (the payload hash,
//! the timestamp, a signed header) or of the signature itself makes it fail.
//!
//! Each property runs 4096 cases by default (a few seconds in all, in debug); set `PROPTEST_CASES` for longer runs.

use api::tc3::{self, Authorization, SignatureError, SignedRequest};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 4096;
    }
    c
}

/// A request as a client would send it, with the key it is signed with.
#[derive(Debug, Clone)]
struct Signed {
    secret_id: String,
    secret_key: String,
    service: String,
    host: String,
    content_type: String,
    body: Vec<u8>,
    timestamp: i64,
}

impl Signed {
    fn authorization(&self) -> String {
        tc3::authorization(
            &self.secret_id,
            &self.secret_key,
            &self.service,
            &self.host,
            &self.content_type,
            &self.body,
            self.timestamp,
        )
    }

    fn payload_hash(&self) -> String {
        hex::encode(Sha256::digest(&self.body))
    }

    /// Verifies `auth` against this request as received with `host`, `content_type`, `hash` and `timestamp`.
    fn verify_as(
        &self,
        auth: &Authorization,
        host: &str,
        content_type: &str,
        hash: &str,
        timestamp: i64,
    ) -> Result<(), SignatureError> {
        let header = |n: &str| match n {
            "host" => Some(host.to_string()),
            "content-type" => Some(content_type.to_string()),
            _ => None,
        };
        tc3::verify(auth, &self.secret_key, "POST", "", &header, hash, timestamp)
    }

    fn verify(&self, auth: &Authorization) -> Result<(), SignatureError> {
        self.verify_as(
            auth,
            &self.host,
            &self.content_type,
            &self.payload_hash(),
            self.timestamp,
        )
    }
}

fn signed_request() -> impl Strategy<Value = Signed> {
    (
        "AKID[A-Za-z0-9]{1,36}",
        "[ -~]{1,40}",
        prop_oneof!["scf", "[a-z0-9]{1,12}"],
        "[a-z0-9.-]{1,30}(:[0-9]{1,5})?",
        prop_oneof![
            Just("application/json".to_string()),
            "[a-z]{1,10}/[a-z0-9.+-]{1,20}(; charset=utf-8)?",
        ],
        proptest::collection::vec(any::<u8>(), 0..512),
        0i64..4_102_444_800,
    )
        .prop_map(
            |(secret_id, secret_key, service, host, content_type, body, timestamp)| Signed {
                secret_id,
                secret_key,
                service,
                host,
                content_type,
                body,
                timestamp,
            },
        )
}

/// A printable ASCII byte other than `old`, from `pick`.
fn other_printable(old: u8, pick: u8) -> u8 {
    let span = b'~' - b' ' + 1; // 95 printable characters
    let mut new = b' ' + pick % span;
    if new == old {
        new = b' ' + (pick % span + 1) % span;
    }
    new
}

/// A hex digit of another value than `old` (so never just its other case).
fn other_hex(old: u8, shift: u8) -> u8 {
    let value = (old as char).to_digit(16).unwrap_or(0) as u8;
    let new = (value + 1 + shift % 15) % 16;
    b"0123456789abcdef"[new as usize]
}

fn credential() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,12}/20[0-9]{2}-[01][0-9]-[0-3][0-9]/[a-z0-9]{1,6}/tc3_request"
}

/// One part of an `Authorization` header: well formed or not.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        credential().prop_map(|c| format!("Credential={c}")),
        "[ -~]{0,40}".prop_map(|c| format!("Credential={c}")),
        prop_oneof![
            Just("content-type;host".to_string()),
            "[a-z;-]{0,20}",
            "[ -~]{0,20}"
        ]
        .prop_map(|s| format!("SignedHeaders={s}")),
        prop_oneof!["[0-9a-fA-F]{64}", "[ -~]{0,70}"].prop_map(|s| format!("Signature={s}")),
        "[ -~]{0,20}",
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the header, the parser answers (and what it accepts is well formed).
    #[test]
    fn any_string_parses_or_is_refused(h in any::<String>()) {
        if let Ok(a) = tc3::parse_authorization(&h) {
            prop_assert_eq!(a.signature.len(), 64);
        }
    }

    /// Header-shaped strings (well-formed and broken parts in any order) exercise every check past the prefix.
    #[test]
    fn header_shaped_strings_parse_or_are_refused(parts in proptest::collection::vec(part(), 0..5)) {
        let h = format!("TC3-HMAC-SHA256 {}", parts.join(", "));
        if let Ok(a) = tc3::parse_authorization(&h) {
            prop_assert_eq!(a.signature.len(), 64);
            prop_assert!(a.signature.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(a.date.len(), 10);
            prop_assert!(!a.secret_id.is_empty() && !a.service.is_empty());
            prop_assert!(!a.signed_headers.is_empty());
        }
    }

    /// The three parts, in any order and spacing, always parse to what they say.
    #[test]
    fn well_formed_headers_parse(
        cred in credential(),
        signature in "[0-9a-fA-F]{64}",
        order in Just([0usize, 1, 2]).prop_shuffle(),
        sep in prop_oneof![Just(","), Just(", "), Just(" ,  ")],
    ) {
        let parts = [
            format!("Credential={cred}"),
            "SignedHeaders=content-type;host".to_string(),
            format!("Signature={signature}"),
        ];
        let h = format!("TC3-HMAC-SHA256 {}", order.iter().map(|i| parts[*i].as_str()).collect::<Vec<_>>().join(sep));
        let a = tc3::parse_authorization(&h).expect("well formed");
        prop_assert_eq!(format!("{}/{}/{}/tc3_request", a.secret_id, a.date, a.service), cred);
        prop_assert_eq!(a.signed_headers, "content-type;host");
        prop_assert_eq!(a.signature, signature.to_ascii_lowercase());
    }

    /// The verifier answers for any authorization, headers, hash and timestamp (the whole `i64` range).
    #[test]
    fn verify_never_panics(
        date in "[0-9-]{0,12}",
        service in "[ -~]{0,12}",
        signed_headers in "[a-z;:-]{0,30}",
        signature in "[0-9a-f]{0,64}",
        host in "[ -~]{0,30}",
        hash in "[ -~]{0,64}",
        timestamp in any::<i64>(),
    ) {
        let auth = Authorization {
            secret_id: "AKIDx".into(),
            date,
            service,
            signed_headers,
            signature,
        };
        let header = |n: &str| (n == "host").then(|| host.clone());
        let r = tc3::verify(&auth, "key", "POST", "", &header, &hash, timestamp);
        prop_assert!(r.is_err(), "a random signature verified");
    }

    /// What the clients' signing produces, the server's parser and verifier accept.
    #[test]
    fn a_reference_signature_verifies(req in signed_request()) {
        let header = req.authorization();
        let auth = tc3::parse_authorization(&header).expect("a client's header parses");
        prop_assert_eq!(&auth.secret_id, &req.secret_id);
        prop_assert_eq!(&auth.service, &req.service);
        prop_assert_eq!(req.verify(&auth), Ok(()));
        // The same through the lower-level pieces: UNSIGNED-PAYLOAD requests sign the literal's hash.
        let unsigned = hex::encode(Sha256::digest(tc3::UNSIGNED_PAYLOAD.as_bytes()));
        let headers = [("content-type", req.content_type.as_str()), ("host", req.host.as_str())];
        let sig = tc3::signature(
            &req.secret_key,
            &auth.date,
            &auth.service,
            "content-type;host",
            &SignedRequest {
                method: "POST",
                query: "",
                headers: &headers,
                payload_hash: &unsigned,
                timestamp: req.timestamp,
            },
        );
        let auth = Authorization { signature: sig, ..auth };
        prop_assert_eq!(
            req.verify_as(&auth, &req.host, &req.content_type, &unsigned, req.timestamp),
            Ok(())
        );
        prop_assert_eq!(req.verify(&auth), Err(SignatureError::Mismatch));
    }

    /// One byte of the payload hash changed: refused.
    #[test]
    fn a_changed_payload_hash_is_refused(req in signed_request(), at in 0usize..64, shift in any::<u8>()) {
        let auth = tc3::parse_authorization(&req.authorization()).expect("parses");
        let mut hash = req.payload_hash().into_bytes();
        hash[at] = other_hex(hash[at], shift);
        let hash = String::from_utf8(hash).expect("hex");
        prop_assert_eq!(
            req.verify_as(&auth, &req.host, &req.content_type, &hash, req.timestamp),
            Err(SignatureError::Mismatch)
        );
    }

    /// One digit of the timestamp changed: refused (a new date in the scope, or a mismatch).
    #[test]
    fn a_changed_timestamp_is_refused(req in signed_request(), at in any::<prop::sample::Index>(), pick in any::<u8>()) {
        let auth = tc3::parse_authorization(&req.authorization()).expect("parses");
        let mut digits = req.timestamp.to_string().into_bytes();
        let i = at.index(digits.len());
        let mut new = b'0' + pick % 10;
        if new == digits[i] {
            new = b'0' + (pick % 10 + 1) % 10;
        }
        digits[i] = new;
        let ts: i64 = String::from_utf8(digits).expect("digits").parse().expect("a number");
        prop_assert_ne!(ts, req.timestamp);
        let r = req.verify_as(&auth, &req.host, &req.content_type, &req.payload_hash(), ts);
        prop_assert!(
            matches!(r, Err(SignatureError::Mismatch | SignatureError::ScopeDate { .. })),
            "{:?}", r
        );
    }

    /// One byte of a signed header (host or content type) changed: refused.
    #[test]
    fn a_changed_signed_header_is_refused(
        req in signed_request(),
        in_host in any::<bool>(),
        at in any::<prop::sample::Index>(),
        pick in any::<u8>(),
    ) {
        let auth = tc3::parse_authorization(&req.authorization()).expect("parses");
        let (mut host, mut content_type) = (req.host.clone().into_bytes(), req.content_type.clone().into_bytes());
        let target = if in_host { &mut host } else { &mut content_type };
        let i = at.index(target.len());
        target[i] = other_printable(target[i], pick);
        let (host, content_type) = (
            String::from_utf8(host).expect("ascii"),
            String::from_utf8(content_type).expect("ascii"),
        );
        // Header values are compared trimmed: a changed outer byte that became a space is still a change,
        // because the generated values never end in one.
        prop_assert_eq!(
            req.verify_as(&auth, &host, &content_type, &req.payload_hash(), req.timestamp),
            Err(SignatureError::Mismatch)
        );
    }

    /// One hex digit of the signature changed (to another value): refused.
    #[test]
    fn a_changed_signature_is_refused(req in signed_request(), at in 0usize..64, shift in any::<u8>()) {
        let header = req.authorization();
        let start = header.find("Signature=").expect("has a signature") + "Signature=".len();
        let mut bytes = header.into_bytes();
        bytes[start + at] = other_hex(bytes[start + at], shift);
        let header = String::from_utf8(bytes).expect("ascii");
        let auth = tc3::parse_authorization(&header).expect("still well formed");
        prop_assert_eq!(req.verify(&auth), Err(SignatureError::Mismatch));
    }

    /// Another secret key: refused.
    #[test]
    fn another_key_is_refused(req in signed_request(), other in "[ -~]{1,40}") {
        prop_assume!(other != req.secret_key);
        let auth = tc3::parse_authorization(&req.authorization()).expect("parses");
        let wrong = Signed { secret_key: other, ..req.clone() };
        prop_assert_eq!(wrong.verify(&auth), Err(SignatureError::Mismatch));
    }
}
