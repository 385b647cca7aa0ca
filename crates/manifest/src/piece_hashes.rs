//! The SHA-256 of every piece of a stored file, signed: so a client checks each piece by
//! SHA-256 as it arrives and needs no pass over the whole file at the end.
//!
//! A manifest names each file by SHA-256 and its torrent by info hash; a torrent checks pieces
//! by SHA-1. The whole file's SHA-256 can only be checked once every byte is there, and that
//! pass sits between the last piece and the boot. This statement, signed with the manifest's
//! key, binds the file's SHA-256 (as the manifest names it) and its torrent's info hash and
//! piece length to the SHA-256 of each piece, so a file whose every piece matches it is the
//! file the manifest names:
//!
//! ```text
//! swarmboot-pieces v1 file=<64 hex> info_hash=<40 hex> piece_length=<n> pieces=<n> sig=<128 hex>\n
//! <pieces × 32 bytes: the SHA-256 of each piece, in order>
//! ```
//!
//! The signature is over `"swarmboot piece sha256 v1\0"`, the line up to ` sig=`, a newline
//! and the hashes, so neither a manifest signature nor a freshness statement can stand in for
//! it. A client without one (an older server) checks the whole file as before.

use sha2::{Digest, Sha256};

use crate::keys::{PublicKey, SigningKey};

const DOMAIN: &[u8] = b"swarmboot piece sha256 v1\0";
const PREFIX: &str = "swarmboot-pieces v1 ";
/// More pieces than any stored file has (the store keeps files at 16 384 pieces or fewer).
pub const MAX_PIECES: usize = 65_536;
/// Longer than any statement can be.
pub const MAX_LEN: usize = 512 + MAX_PIECES * 32;

/// What the server vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceHashes {
    /// The file's SHA-256, as its manifest names it.
    pub file_sha256: [u8; 32],
    /// Its torrent's info hash, as its manifest names it.
    pub info_hash: [u8; 20],
    pub piece_length: u32,
    /// The SHA-256 of each piece.
    pub hashes: Vec<[u8; 32]>,
}

impl PieceHashes {
    /// Whether `data` is piece `index` (`false` for an index past the end).
    pub fn matches(&self, index: u32, data: &[u8]) -> bool {
        self.hashes.get(index as usize).is_some_and(|h| <[u8; 32]>::from(Sha256::digest(data)) == *h)
    }
}

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceHashesError {
    #[error("the piece hashes are malformed: {0}")]
    Malformed(&'static str),
    #[error("the piece hashes are not signed by a key you trust")]
    Untrusted,
}

fn line(p: &PieceHashes) -> String {
    format!("{PREFIX}file={} info_hash={} piece_length={} pieces={}", hex::encode(p.file_sha256), hex::encode(p.info_hash), p.piece_length, p.hashes.len())
}

fn signed_bytes(line: &str, raw: &[u8]) -> Vec<u8> {
    [DOMAIN, line.as_bytes(), b"\n", raw].concat()
}

/// The statement for `p`, signed.
pub fn seal(key: &SigningKey, p: &PieceHashes) -> Vec<u8> {
    let line = line(p);
    let raw = p.hashes.concat();
    let sig = key.sign(&signed_bytes(&line, &raw));
    let mut out = format!("{line} sig={}\n", hex::encode(sig)).into_bytes();
    out.extend_from_slice(&raw);
    out
}

/// Parses a statement and checks its signature against `trusted`; the caller compares the
/// file, info hash, piece length and count with its manifest and torrent.
pub fn open(bytes: &[u8], trusted: &[PublicKey]) -> Result<PieceHashes, PieceHashesError> {
    use PieceHashesError::Malformed;
    if bytes.len() > MAX_LEN {
        return Err(Malformed("longer than any statement"));
    }
    let nl = bytes.iter().take(512).position(|&b| b == b'\n').ok_or(Malformed("no first line"))?;
    let first = std::str::from_utf8(&bytes[..nl]).map_err(|_| Malformed("the first line is not text"))?;
    let raw = &bytes[nl + 1..];
    let (line, sig_hex) = first.rsplit_once(" sig=").ok_or(Malformed("no signature"))?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| Malformed("the signature is not 128 hex digits"))?;
    let mut words = line.strip_prefix(PREFIX).ok_or(Malformed("not version 1"))?.split(' ');
    let mut field = |name: &'static str| {
        words.next().and_then(|w| w.strip_prefix(name)?.strip_prefix('=')).ok_or(Malformed("its fields are not file, info_hash, piece_length, pieces in this order"))
    };
    let mut file_sha256 = [0u8; 32];
    hex::decode_to_slice(field("file")?, &mut file_sha256).map_err(|_| Malformed("file is not a SHA-256"))?;
    let mut info_hash = [0u8; 20];
    hex::decode_to_slice(field("info_hash")?, &mut info_hash).map_err(|_| Malformed("info_hash is not 40 hex digits"))?;
    let piece_length: u32 = field("piece_length")?.parse().map_err(|_| Malformed("piece_length is not a number"))?;
    let pieces: usize = field("pieces")?.parse().map_err(|_| Malformed("pieces is not a number"))?;
    if words.next().is_some() {
        return Err(Malformed("more fields than version 1 has"));
    }
    if pieces > MAX_PIECES || piece_length == 0 {
        return Err(Malformed("more pieces than a stored file has, or pieces of no length"));
    }
    if raw.len() != pieces * 32 {
        return Err(Malformed("the hashes after the first line are not 32 bytes for each piece"));
    }
    let hashes: Vec<[u8; 32]> = raw.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
    let p = PieceHashes { file_sha256, info_hash, piece_length, hashes };
    // Only the exact line this module writes verifies: one statement, one spelling.
    if self::line(&p) != line {
        return Err(Malformed("not written as version 1 writes it"));
    }
    let signed = signed_bytes(line, raw);
    if trusted.iter().any(|k| k.verify(&signed, &sig).is_ok()) {
        Ok(p)
    } else {
        Err(PieceHashesError::Untrusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    fn sample() -> (Vec<u8>, PieceHashes) {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let hashes = data.chunks(4096).map(|c| <[u8; 32]>::from(Sha256::digest(c))).collect();
        (data.clone(), PieceHashes { file_sha256: Sha256::digest(&data).into(), info_hash: [7; 20], piece_length: 4096, hashes })
    }

    #[test]
    fn sealed_then_opened_it_checks_each_piece() {
        let k = key();
        let (data, p) = sample();
        let bytes = seal(&k, &p);
        let got = open(&bytes, &[key().public(), k.public()]).unwrap();
        assert_eq!(got, p);
        for (i, c) in data.chunks(4096).enumerate() {
            assert!(got.matches(i as u32, c), "piece {i}");
        }
        let mut bad = data[4096..8192].to_vec();
        bad[17] ^= 1;
        assert!(!got.matches(1, &bad));
        assert!(!got.matches(0, &data[4096..8192]), "another piece's bytes");
        assert!(!got.matches(3, &data[..10]), "past the end");
    }

    #[test]
    fn every_changed_byte_is_refused_and_nothing_panics() {
        let k = key();
        let (_, p) = sample();
        let bytes = seal(&k, &p);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(open(&t, &[k.public()]).is_err(), "flipping a bit of byte {i} must be refused");
        }
        for len in 0..bytes.len() {
            assert!(open(&bytes[..len], &[k.public()]).is_err(), "cut at {len}");
        }
        assert_eq!(open(&bytes, &[key().public()]), Err(PieceHashesError::Untrusted));
        assert_eq!(open(&bytes, &[]), Err(PieceHashesError::Untrusted));
    }

    #[test]
    fn a_manifest_or_freshness_signature_is_not_a_piece_statement() {
        // The same key's signature over the same line and hashes without this domain (as a
        // manifest envelope or another protocol would sign them): refused.
        let k = key();
        let (_, p) = sample();
        let l = line(&p);
        let raw = p.hashes.concat();
        let sig = k.sign(&[l.as_bytes(), b"\n", &raw].concat());
        let mut forged = format!("{l} sig={}\n", hex::encode(sig)).into_bytes();
        forged.extend_from_slice(&raw);
        assert_eq!(open(&forged, &[k.public()]), Err(PieceHashesError::Untrusted));
        let envelope = crate::seal(&k, &seal(&k, &p));
        assert!(open(&envelope, &[k.public()]).is_err());
    }

    #[test]
    fn bounds_are_checked_before_anything_is_hashed() {
        let k = key();
        let big = vec![b'a'; MAX_LEN + 1];
        assert_eq!(open(&big, &[k.public()]), Err(PieceHashesError::Malformed("longer than any statement")));
        let claim = format!("{PREFIX}file={} info_hash={} piece_length=4096 pieces=70000 sig={}\n", "0".repeat(64), "0".repeat(40), "0".repeat(128));
        assert!(matches!(open(claim.as_bytes(), &[k.public()]), Err(PieceHashesError::Malformed(_))));
        let spaced = format!("{PREFIX}file={} info_hash={} piece_length=04096 pieces=0 sig={}\n", "0".repeat(64), "0".repeat(40), "0".repeat(128));
        assert_eq!(open(spaced.as_bytes(), &[k.public()]), Err(PieceHashesError::Malformed("not written as version 1 writes it")));
    }
}
