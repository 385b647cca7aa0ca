//! The server's signing key and the public keys clients trust.
//!
//! The key pair lives in `state_dir/signing.key` (the 32-byte ed25519 seed, mode 0600),
//! created on first use from the kernel's random source. A client trusts a manifest only if
//! its signature verifies against a public key it was given (a `--key`, a key file, the
//! stub's built-in key): the signature travels with the bytes, the trust does not.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

pub const KEY_FILE: &str = "signing.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the signing key {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a signing key: it holds {len} bytes, a key is 32")]
    BadKeyFile { path: PathBuf, len: usize },
    #[error("not a public key: {0}")]
    BadPublicKey(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not 64 bytes")]
    Malformed,
    #[error("the signature does not match these bytes under key {fingerprint}")]
    Mismatch { fingerprint: String },
}

/// A public key clients are given; printed and parsed as 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::BadPublicKey(format!("expected 64 hex digits, got {:?}", s.chars().take(80).collect::<String>())));
        }
        let mut arr = [0u8; 32];
        hex::decode_to_slice(s, &mut arr).expect("checked: 64 hex digits");
        ed25519_dalek::VerifyingKey::from_bytes(&arr).map(PublicKey).map_err(|e| KeyError::BadPublicKey(e.to_string()))
    }

    /// The key in a key file: its first line that is not empty or a comment holds the key's hex
    /// digits, alone or after `public key` (what `swarmboot key show` prints, so its output
    /// saved to a file works as the file).
    pub fn from_key_file(text: &str) -> Result<Self, KeyError> {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let hex = match words.as_slice() {
                ["public", "key", hex, ..] => hex,
                [hex, ..] => hex,
                [] => continue,
            };
            return Self::from_hex(hex);
        }
        Err(KeyError::BadPublicKey("the file holds no key: expected 64 hex digits, or the output of `swarmboot key show`".into()))
    }

    /// A short name for the key, to compare by eye: `sha256:` and the first 16 bytes of the
    /// SHA-256 of the key, in hex groups.
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(self.0.as_bytes());
        let groups: Vec<String> = d[..16].chunks(2).map(|c| format!("{:02x}{:02x}", c[0], c[1])).collect();
        format!("sha256:{}", groups.join(":"))
    }

    /// Checks `signature` over `bytes`.
    pub fn verify(&self, bytes: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| SignatureError::Malformed)?;
        self.0.verify_strict(bytes, &sig).map_err(|_| SignatureError::Mismatch { fingerprint: self.fingerprint() })
    }

    /// Checks a hex signature [`SigningKey::sign_in`] made over `bytes` in `domain`.
    pub fn verify_in(&self, domain: &[u8], bytes: &[u8], signature_hex: &str) -> Result<(), SignatureError> {
        let mut sig = [0u8; 64];
        hex::decode_to_slice(signature_hex.trim().as_bytes(), &mut sig).map_err(|_| SignatureError::Malformed)?;
        self.verify(&[domain, bytes].concat(), &sig)
    }
}

/// The server's key pair.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().fingerprint())
    }
}

impl SigningKey {
    /// Loads `state_dir/signing.key`, creating it (mode 0600, random) if it does not exist.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, KeyError> {
        let path = state_dir.join(KEY_FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        match std::fs::read(&path) {
            // An empty file is a key that was never written (a crash between creating the file
            // and writing it, by an older version): nothing was signed with it, so make one.
            Ok(bytes) if bytes.is_empty() => {
                swarmboot_durable::remove_file(&path).map_err(io)?;
                Self::load_or_create(state_dir)
            }
            Ok(bytes) => {
                let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::BadKeyFile { path: path.clone(), len: bytes.len() })?;
                Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                swarmboot_durable::create_dir_all(state_dir).map_err(io)?;
                let mut seed = [0u8; 32];
                std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed)).map_err(io)?;
                // Written whole, then linked into place: two servers starting at once cannot
                // both write a key, and a crash leaves no key or the whole key.
                if !swarmboot_durable::publish_new(&path, &seed, 0o600).map_err(io)? {
                    return Self::load_or_create(state_dir);
                }
                Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key pair of a 32-byte seed (tests; a node's key made at boot from random bytes).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// A 64-byte signature over `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.0.sign(bytes).to_bytes()
    }

    /// A signature over `bytes` in `domain` (a `\0`-terminated name of what is signed, so a
    /// signature on one kind of message is never valid as another), in hex.
    pub fn sign_in(&self, domain: &[u8], bytes: &[u8]) -> String {
        hex::encode(self.sign(&[domain, bytes].concat()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_file_holds_the_bare_key_or_what_key_show_prints() {
        let dir = tempfile::tempdir().unwrap();
        let public = SigningKey::load_or_create(dir.path()).unwrap().public();
        let hex = public.to_hex();
        let shown = format!("public key  {hex}\nfingerprint {}\n(private key in /var/lib/swarmboot/signing.key)\n", public.fingerprint());
        assert_eq!(PublicKey::from_key_file(&shown).unwrap(), public, "`swarmboot key show > server.pub`");
        assert_eq!(PublicKey::from_key_file(&format!("# the boot server\n\n{hex}\n")).unwrap(), public);
        assert!(PublicKey::from_key_file("").unwrap_err().to_string().contains("the output of `swarmboot key show`"));
        assert!(PublicKey::from_key_file("public key  nothex").is_err());
    }

    /// A key file left empty (a crash between creating and writing it, by an older version)
    /// does not block start-up: nothing was signed with it, so a key is made.
    #[test]
    fn an_empty_key_file_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"").unwrap();
        let k = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join(KEY_FILE)).unwrap().len(), 32);
        assert_eq!(SigningKey::load_or_create(dir.path()).unwrap().public(), k.public());
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(SigningKey::load_or_create(dir.path()), Err(KeyError::BadKeyFile { len: 5, .. })), "a key file with bytes in it is never replaced");
    }

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = SigningKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(k1.public(), k2.public(), "the second start reads the same key");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(SigningKey::load_or_create(other.path()).unwrap().public(), k1.public());
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(SigningKey::load_or_create(dir.path()), Err(KeyError::BadKeyFile { len: 5, .. })));
    }

    #[test]
    fn signatures_verify_only_for_the_same_bytes_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let manifest = b"name = \"elchos\"\nversion = 3\n";
        let sig = key.sign(manifest);
        let public = PublicKey::from_hex(&key.public().to_hex()).unwrap();
        assert_eq!(public.verify(manifest, &sig), Ok(()));
        let mut tampered = manifest.to_vec();
        tampered[19] = b'4';
        assert!(matches!(public.verify(&tampered, &sig), Err(SignatureError::Mismatch { .. })));
        let mut bad_sig = sig;
        bad_sig[0] ^= 1;
        assert!(public.verify(manifest, &bad_sig).is_err());
        assert_eq!(public.verify(manifest, &sig[..63]), Err(SignatureError::Malformed));
        let stranger = SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let err = stranger.public().verify(manifest, &sig).unwrap_err();
        assert_eq!(err, SignatureError::Mismatch { fingerprint: stranger.public().fingerprint() }, "the message names the key tried");
        // In a domain: valid only in that domain, as hex, padded or not.
        let in_checkin = key.sign_in(b"check-in v1\0", manifest);
        assert!(public.verify_in(b"check-in v1\0", manifest, &in_checkin).is_ok());
        assert!(public.verify_in(b"check-in v1\0", manifest, &format!(" {in_checkin}\n")).is_ok());
        assert!(public.verify_in(b"batch v1\0", manifest, &in_checkin).is_err(), "a check-in's signature is no batch's");
        assert_eq!(public.verify_in(b"check-in v1\0", manifest, "zz"), Err(SignatureError::Malformed));
    }

    #[test]
    fn public_keys_parse_strictly_and_fingerprints_are_stable() {
        assert!(PublicKey::from_hex("abc").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
        // RFC 8032 test 1's public key.
        let k = PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
        assert_eq!(k.to_hex(), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let fp = k.fingerprint();
        assert!(fp.starts_with("sha256:") && fp.len() == "sha256:".len() + 8 * 5 - 1, "{fp}");
        // RFC 8032 test 1: the empty message's signature under that key.
        let sig_hex = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let sig = hex::decode(sig_hex).unwrap();
        assert_eq!(k.verify(b"", &sig), Ok(()));
    }
}
