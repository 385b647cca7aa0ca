//! Freshness: the server's signed word that a manifest it serves is the one it would serve now.
//!
//! A signed manifest stays valid forever, so a man in the middle could answer "the latest
//! elchos" with version 1, validly signed, long after version 3 replaced it. Clocks do not
//! help (a diskless machine has no trusted time). Instead the client sends a random nonce with
//! its request, and the server answers beside the manifest with a one-line statement, signed
//! with the same key, that binds the nonce to the image, the version it served, the version it
//! holds as the latest now, and the SHA-256 of the envelope it served:
//!
//! ```text
//! v1 nonce=<32 hex> image=<name> served=<version> latest=<version> manifest=<64 hex> sig=<128 hex>
//! ```
//!
//! It travels as the `swarmboot-freshness` HTTP header of the manifest reply. The signature is
//! over `"swarmboot freshness v1\0"` and the line up to ` sig=`, so neither a manifest signature
//! nor a freshness statement can stand in for the other. What a client then accepts (the
//! latest only, or a version an operator named) is the client's policy, not this module's.

use crate::keys::{PublicKey, SigningKey};

/// The HTTP header the statement travels in.
pub const HEADER: &str = "swarmboot-freshness";
const DOMAIN: &[u8] = b"swarmboot freshness v1\0";
/// Longer than any statement can be (image names are at most 64 bytes).
pub const MAX_LEN: usize = 512;

/// 16 random bytes a client sends and expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce([u8; 16]);

impl Nonce {
    /// A nonce from the kernel's random source.
    pub fn random() -> std::io::Result<Self> {
        use std::io::Read;
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(Nonce(b))
    }

    pub fn from_bytes(b: [u8; 16]) -> Self {
        Nonce(b)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Exactly 32 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(Nonce(b))
    }
}

/// What the server vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub nonce: Nonce,
    pub image: String,
    /// The version of the manifest in this reply.
    pub served: u32,
    /// The version the server holds as the image's latest at the moment it answered.
    pub latest: u32,
    /// SHA-256 of the envelope in this reply.
    pub manifest_sha256: [u8; 32],
}

/// The SHA-256 a statement names an envelope by.
pub fn envelope_sha256(envelope: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(envelope).into()
}

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreshnessError {
    #[error("the server's reply has no signed freshness statement ({HEADER} header): the server is older than this client, or someone between them replayed a manifest")]
    Missing,
    #[error("the freshness statement is malformed: {0}")]
    Malformed(&'static str),
    #[error("the freshness statement is not signed by a key you trust")]
    Untrusted,
}

fn unsigned_line(f: &Freshness) -> String {
    format!("v1 nonce={} image={} served={} latest={} manifest={}", f.nonce.to_hex(), f.image, f.served, f.latest, hex::encode(f.manifest_sha256))
}

fn signed_bytes(line: &str) -> Vec<u8> {
    [DOMAIN, line.as_bytes()].concat()
}

/// The header value vouching for `f`.
pub fn vouch(key: &SigningKey, f: &Freshness) -> String {
    let line = unsigned_line(f);
    let sig = key.sign(&signed_bytes(&line));
    format!("{line} sig={}", hex::encode(sig))
}

/// Parses a header value and checks its signature against `trusted`; the caller compares
/// the fields with what it asked for and what it got.
pub fn check(header: Option<&str>, trusted: &[PublicKey]) -> Result<Freshness, FreshnessError> {
    use FreshnessError::Malformed;
    let header = header.ok_or(FreshnessError::Missing)?;
    if header.len() > MAX_LEN {
        return Err(Malformed("longer than any statement"));
    }
    let (line, sig_hex) = header.rsplit_once(" sig=").ok_or(Malformed("no signature"))?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| Malformed("the signature is not 128 hex digits"))?;
    let mut words = line.split(' ');
    if words.next() != Some("v1") {
        return Err(Malformed("not version 1"));
    }
    let mut field = |name: &'static str| {
        words.next().and_then(|w| w.strip_prefix(name)?.strip_prefix('=')).ok_or(Malformed("its fields are not nonce, image, served, latest, manifest in this order"))
    };
    let nonce = Nonce::from_hex(field("nonce")?).ok_or(Malformed("the nonce is not 32 hex digits"))?;
    let image = field("image")?.to_string();
    let served = field("served")?.parse().map_err(|_| Malformed("served is not a version number"))?;
    let latest = field("latest")?.parse().map_err(|_| Malformed("latest is not a version number"))?;
    let mut manifest_sha256 = [0u8; 32];
    hex::decode_to_slice(field("manifest")?, &mut manifest_sha256).map_err(|_| Malformed("manifest is not a SHA-256"))?;
    if words.next().is_some() {
        return Err(Malformed("more fields than version 1 has"));
    }
    let f = Freshness { nonce, image, served, latest, manifest_sha256 };
    // Only the exact line this module writes verifies, so two spellings of one statement
    // cannot both pass.
    if unsigned_line(&f) != line {
        return Err(Malformed("not written as version 1 writes it"));
    }
    let bytes = signed_bytes(line);
    if trusted.iter().any(|k| k.verify(&bytes, &sig).is_ok()) {
        Ok(f)
    } else {
        Err(FreshnessError::Untrusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    fn statement() -> Freshness {
        Freshness { nonce: Nonce::from_bytes([7; 16]), image: "elchos".into(), served: 1, latest: 3, manifest_sha256: [9; 32] }
    }

    #[test]
    fn a_vouched_statement_checks_under_its_key_only() {
        let k = key();
        let h = vouch(&k, &statement());
        assert!(h.starts_with("v1 nonce=07070707070707070707070707070707 image=elchos served=1 latest=3 manifest=0909"), "{h}");
        assert_eq!(check(Some(&h), &[key().public(), k.public()]).unwrap(), statement());
        assert_eq!(check(Some(&h), &[key().public()]), Err(FreshnessError::Untrusted));
        assert_eq!(check(None, &[k.public()]), Err(FreshnessError::Missing));
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let k = key();
        let h = vouch(&k, &statement());
        for (from, to) in [("latest=3", "latest=1"), ("served=1", "served=3"), ("image=elchos", "image=elchoz"), ("nonce=07", "nonce=08"), ("manifest=09", "manifest=0a")] {
            let changed = h.replacen(from, to, 1);
            assert_ne!(changed, h);
            assert_eq!(check(Some(&changed), &[k.public()]), Err(FreshnessError::Untrusted), "{from} → {to}");
        }
    }

    #[test]
    fn malformed_statements_are_refused_with_why() {
        let k = key();
        let h = vouch(&k, &statement());
        let cases = [
            ("".to_string(), "no signature"),
            (h.replace("v1 ", "v2 "), "not version 1"),
            (h.replace(" served=1", ""), "in this order"),
            (h.replace("served=1", "served=01"), "as version 1 writes it"),
            (h.replace("served=1", "served=x"), "not a version number"),
            (h.replace("nonce=07", "nonce=7"), "32 hex digits"),
            (format!("{h}0"), "128 hex digits"),
            (h.replace(" sig=", " extra=1 sig="), "more fields"),
            ("x".repeat(MAX_LEN + 1), "longer than any"),
        ];
        for (text, why) in cases {
            match check(Some(&text), &[k.public()]) {
                Err(FreshnessError::Malformed(w)) => assert!(w.contains(why), "{text:?}: {w}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn nonces_are_32_hex_digits() {
        let n = Nonce::random().unwrap();
        assert_eq!(Nonce::from_hex(&n.to_hex()), Some(n));
        assert_ne!(Nonce::random().unwrap(), n);
        for bad in ["", "00", &"0".repeat(31), &"0".repeat(33), &"g".repeat(32)] {
            assert_eq!(Nonce::from_hex(bad), None, "{bad:?}");
        }
    }
}
