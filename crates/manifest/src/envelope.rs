//! The signed-manifest envelope: what a client downloads and checks before trusting a byte.
//!
//! ```text
//! swarmboot-manifest v1 ed25519 <signer public key, 64 hex> <signature, 128 hex>\n
//! <manifest body: the bytes that were signed>
//! ```
//!
//! The signature is over `"swarmboot manifest v1\0"` followed by the body, so a signature made
//! by this key for anything else cannot be replayed as a manifest. The signer key in the first
//! line is only a name for error messages: a manifest is trusted when the signature verifies
//! under a key the *caller* trusts, whatever key the envelope claims.

use crate::keys::{PublicKey, SigningKey};

const MAGIC: &str = "swarmboot-manifest v1 ed25519";
const DOMAIN: &[u8] = b"swarmboot manifest v1\0";

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a signed swarmboot manifest (the first line must start with `{MAGIC}`)")]
    NotAnEnvelope,
    #[error("the signed manifest's first line is malformed: {0}")]
    BadHeader(&'static str),
    #[error("the manifest is signed by key {signer}, which is not a key you trust ({trusted})")]
    UntrustedKey { signer: String, trusted: String },
    #[error("the manifest was altered after it was signed: its signature does not match its contents under the trusted key {fingerprint}")]
    Tampered { fingerprint: String },
    #[error("no trusted key was given, so no manifest can be trusted")]
    NoTrustedKey,
}

fn signed_bytes(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DOMAIN.len() + body.len());
    v.extend_from_slice(DOMAIN);
    v.extend_from_slice(body);
    v
}

/// Signs `body` and wraps it in an envelope.
pub fn seal(key: &SigningKey, body: &[u8]) -> Vec<u8> {
    let sig = key.sign(&signed_bytes(body));
    let mut out = format!("{MAGIC} {} {}\n", key.public().to_hex(), hex::encode(sig)).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Checks an envelope against the keys the caller trusts and returns the body (a borrow of
/// `envelope`) and the key that verified it.
pub fn open<'a>(envelope: &'a [u8], trusted: &[PublicKey]) -> Result<(&'a [u8], PublicKey), OpenError> {
    let nl = envelope.iter().position(|&b| b == b'\n').ok_or(OpenError::NotAnEnvelope)?;
    let header = std::str::from_utf8(&envelope[..nl]).map_err(|_| OpenError::NotAnEnvelope)?;
    let rest = header.strip_prefix(MAGIC).ok_or(OpenError::NotAnEnvelope)?;
    let mut fields = rest.split(' ');
    if fields.next() != Some("") {
        return Err(OpenError::NotAnEnvelope);
    }
    let signer = fields.next().ok_or(OpenError::BadHeader("no signer key"))?;
    let sig_hex = fields.next().ok_or(OpenError::BadHeader("no signature"))?;
    if fields.next().is_some() {
        return Err(OpenError::BadHeader("more than two fields after the format name"));
    }
    let signer = PublicKey::from_hex(signer).map_err(|_| OpenError::BadHeader("the signer key is not 64 hex digits of an ed25519 key"))?;
    if sig_hex.len() != 128 {
        return Err(OpenError::BadHeader("the signature is not 128 hex digits"));
    }
    let sig = hex::decode(sig_hex).map_err(|_| OpenError::BadHeader("the signature is not hex"))?;
    let body = &envelope[nl + 1..];
    if trusted.is_empty() {
        return Err(OpenError::NoTrustedKey);
    }
    let Some(key) = trusted.iter().find(|k| **k == signer) else {
        let names: Vec<String> = trusted.iter().map(|k| k.fingerprint()).collect();
        return Err(OpenError::UntrustedKey { signer: signer.fingerprint(), trusted: names.join(", ") });
    };
    key.verify(&signed_bytes(body), &sig).map_err(|_| OpenError::Tampered { fingerprint: key.fingerprint() })?;
    Ok((body, *key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = key();
        let body = b"name = \"elchos\"\nversion = 1\n";
        let env = seal(&k, body);
        assert!(env.starts_with(b"swarmboot-manifest v1 ed25519 "));
        let (got, by) = open(&env, &[k.public()]).unwrap();
        assert_eq!((got, by), (&body[..], k.public()));
        let other = key();
        assert_eq!(open(&env, &[other.public(), k.public()]).unwrap().1, k.public(), "any trusted key may be the one");
    }

    #[test]
    fn every_refusal_says_which() {
        let k = key();
        let env = seal(&k, b"version = 1\n");
        // One changed byte of the body: tampered, under the trusted key.
        let mut t = env.clone();
        *t.last_mut().unwrap() = b'2';
        assert!(matches!(open(&t, &[k.public()]), Err(OpenError::Tampered { .. })));
        // One changed digit of the signature: tampered too.
        let mut t = env.clone();
        let at = env.iter().position(|&b| b == b'\n').unwrap() - 1;
        t[at] = if t[at] == b'0' { b'1' } else { b'0' };
        assert!(matches!(open(&t, &[k.public()]), Err(OpenError::Tampered { .. })));
        // Another key signed it (someone re-signed a changed manifest): untrusted, named.
        let stranger = key();
        let forged = seal(&stranger, b"version = 1\n");
        match open(&forged, &[k.public()]) {
            Err(OpenError::UntrustedKey { signer, trusted }) => {
                assert_eq!((signer, trusted), (stranger.public().fingerprint(), k.public().fingerprint()));
            }
            other => panic!("{other:?}"),
        }
        // A forger who writes the trusted key into the header still fails the signature.
        let mut claimed = forged.clone();
        let key_hex = k.public().to_hex();
        let start = MAGIC.len() + 1;
        claimed[start..start + 64].copy_from_slice(key_hex.as_bytes());
        assert!(matches!(open(&claimed, &[k.public()]), Err(OpenError::Tampered { .. })));
        assert_eq!(open(&env, &[]), Err(OpenError::NoTrustedKey));
        assert_eq!(open(b"name = \"x\"\n", &[k.public()]), Err(OpenError::NotAnEnvelope));
        assert_eq!(open(b"", &[k.public()]), Err(OpenError::NotAnEnvelope));
        let header_only = format!("{MAGIC} {key_hex}\n");
        assert!(matches!(open(header_only.as_bytes(), &[k.public()]), Err(OpenError::BadHeader(_))));
        let short_sig = format!("{MAGIC} {key_hex} abcd\n");
        assert!(matches!(open(short_sig.as_bytes(), &[k.public()]), Err(OpenError::BadHeader(_))));
    }

    #[test]
    fn a_signature_over_other_bytes_is_not_a_manifest_signature() {
        // The raw key signs without the domain prefix (as another protocol might): not accepted.
        let k = key();
        let body = b"version = 1\n";
        let raw = k.sign(body);
        let env = format!("{MAGIC} {} {}\n", k.public().to_hex(), hex::encode(raw));
        let mut env = env.into_bytes();
        env.extend_from_slice(body);
        assert!(matches!(open(&env, &[k.public()]), Err(OpenError::Tampered { .. })));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let k = key();
        let env = seal(&k, b"x");
        for len in 0..env.len() {
            let _ = open(&env[..len], &[k.public()]);
        }
        for i in 0..env.len() {
            let mut t = env.clone();
            t[i] ^= 0x80;
            assert!(open(&t, &[k.public()]).is_err(), "flipping byte {i} must be refused");
        }
    }
}
