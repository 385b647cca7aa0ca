//! `.torrent` metainfo (BEP 3), with BEP 27's `private` flag.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use crate::bencode::{self, BencodeError, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components under the torrent's name (single-file torrents: empty).
    pub path: Vec<String>,
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub announce: Option<String>,
    pub name: String,
    pub piece_length: u32,
    pub pieces: Vec<[u8; 20]>,
    pub files: Vec<FileEntry>,
    pub private: bool,
    /// SHA-1 of the `info` dictionary as it appears in the file.
    pub info_hash: [u8; 20],
    /// The `info` dictionary's bytes as they appear in the file (what BEP 9 hands to peers
    /// that joined by magnet link).
    pub info: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error("not bencode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("missing or malformed `{0}`")]
    Field(&'static str),
    #[error("unsafe file path component {0:?}")]
    UnsafePath(String),
    #[error("{hashes} piece hashes for {needed} pieces")]
    PieceCount { hashes: usize, needed: u64 },
}

/// A path component the stub can write without leaving its directory.
fn safe_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0'])
}

impl Metainfo {
    pub fn parse(bytes: &[u8]) -> Result<Self, MetainfoError> {
        let (root, span) = bencode::decode_with_span(bytes, b"info")?;
        let span = span.ok_or(MetainfoError::Field("info"))?;
        let info = root.get("info").ok_or(MetainfoError::Field("info"))?;
        let text = |v: Option<&Value>, f| v.and_then(Value::as_bytes).and_then(|b| std::str::from_utf8(b).ok()).map(String::from).ok_or(MetainfoError::Field(f));
        let name = text(info.get("name"), "info.name")?;
        if !safe_component(&name) {
            return Err(MetainfoError::UnsafePath(name));
        }
        let piece_length =
            info.get("piece length").and_then(Value::as_int).and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0).ok_or(MetainfoError::Field("info.piece length"))?;
        let raw = info.get("pieces").and_then(Value::as_bytes).filter(|p| p.len() % 20 == 0).ok_or(MetainfoError::Field("info.pieces"))?;
        let pieces: Vec<[u8; 20]> = raw.chunks(20).map(|c| c.try_into().expect("20 bytes")).collect();
        let len_of = |v: &Value| v.get("length").and_then(Value::as_int).and_then(|n| u64::try_from(n).ok());
        let files = match (len_of(info), info.get("files").and_then(Value::as_list)) {
            (Some(length), None) => vec![FileEntry { path: vec![], length }],
            (None, Some(list)) if !list.is_empty() => {
                let mut out = Vec::new();
                for f in list {
                    let length = len_of(f).ok_or(MetainfoError::Field("info.files.length"))?;
                    let comps = f.get("path").and_then(Value::as_list).filter(|l| !l.is_empty()).ok_or(MetainfoError::Field("info.files.path"))?;
                    let mut path = Vec::new();
                    for c in comps {
                        let c = text(Some(c), "info.files.path")?;
                        if !safe_component(&c) {
                            return Err(MetainfoError::UnsafePath(c));
                        }
                        path.push(c);
                    }
                    out.push(FileEntry { path, length });
                }
                out
            }
            _ => return Err(MetainfoError::Field("info.length or info.files")),
        };
        let total: u64 = files.iter().map(|f| f.length).sum();
        let needed = total.div_ceil(u64::from(piece_length));
        if pieces.len() as u64 != needed {
            return Err(MetainfoError::PieceCount { hashes: pieces.len(), needed });
        }
        Ok(Metainfo {
            announce: root.get("announce").and_then(Value::as_bytes).and_then(|b| std::str::from_utf8(b).ok()).map(String::from),
            name,
            piece_length,
            pieces,
            files,
            private: info.get("private").and_then(Value::as_int) == Some(1),
            info_hash: Sha1::digest(&bytes[span.clone()]).into(),
            info: bytes[span].to_vec(),
        })
    }

    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    /// The length of piece `i` (the last one may be short).
    pub fn piece_len(&self, i: u32) -> u32 {
        let start = u64::from(i) * u64::from(self.piece_length);
        (self.total_length() - start).min(u64::from(self.piece_length)) as u32
    }

    /// Whether `data` is piece `i`.
    pub fn verify(&self, i: u32, data: &[u8]) -> bool {
        self.pieces.get(i as usize).is_some_and(|h| <[u8; 20]>::from(Sha1::digest(data)) == *h)
    }

    /// A single-file torrent of `data`; returns it and its `.torrent` bytes.
    pub fn single_file(name: &str, data: &[u8], piece_length: u32, announce: Option<&str>, private: bool) -> (Metainfo, Vec<u8>) {
        let hashes: Vec<[u8; 20]> = data.chunks(piece_length as usize).map(|c| Sha1::digest(c).into()).collect();
        Self::from_piece_hashes(name, data.len() as u64, piece_length, &hashes, announce, private)
    }

    /// A single-file torrent from piece hashes computed elsewhere (streaming over a file too
    /// large to hold in memory); returns it and its `.torrent` bytes.
    pub fn from_piece_hashes(name: &str, length: u64, piece_length: u32, hashes: &[[u8; 20]], announce: Option<&str>, private: bool) -> (Metainfo, Vec<u8>) {
        let pieces: Vec<u8> = hashes.concat();
        let mut info = BTreeMap::new();
        info.insert(b"length".to_vec(), Value::Int(length as i64));
        info.insert(b"name".to_vec(), Value::Bytes(name.as_bytes().to_vec()));
        info.insert(b"piece length".to_vec(), Value::Int(i64::from(piece_length)));
        info.insert(b"pieces".to_vec(), Value::Bytes(pieces));
        if private {
            info.insert(b"private".to_vec(), Value::Int(1));
        }
        let mut root = BTreeMap::new();
        if let Some(a) = announce {
            root.insert(b"announce".to_vec(), Value::Bytes(a.as_bytes().to_vec()));
        }
        root.insert(b"info".to_vec(), Value::Dict(info));
        let bytes = Value::Dict(root).to_bytes();
        (Metainfo::parse(&bytes).expect("a torrent we just built parses"), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_file_round_trip_and_verify() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (m, bytes) = Metainfo::single_file("stub.img", &data, 32768, Some("http://10.77.0.1:8080/announce"), true);
        assert_eq!(m.pieces.len(), 4);
        assert_eq!((m.piece_len(0), m.piece_len(3)), (32768, 100_000 - 3 * 32768));
        assert!(m.private);
        assert!(m.verify(1, &data[32768..65536]));
        assert!(!m.verify(1, &data[0..32768]));
        assert!(!m.verify(9, &data[0..10]));
        let again = Metainfo::parse(&bytes).unwrap();
        assert_eq!(again, m);
        // The info hash is over the info dictionary's bytes as written.
        let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
        let expected: [u8; 20] = Sha1::digest(&bytes[start..bytes.len() - 1]).into();
        assert_eq!(m.info_hash, expected);
    }

    #[test]
    fn multi_file_and_hostile_paths() {
        let hashes = "x".repeat(40);
        let ok = format!("d4:infod5:filesld6:lengthi10e4:pathl3:sub5:a.bineed6:lengthi30e4:pathl5:b.bineee4:name3:img12:piece lengthi32e6:pieces40:{hashes}ee");
        let m = Metainfo::parse(ok.as_bytes()).unwrap();
        assert_eq!(m.files[0].path, vec!["sub".to_string(), "a.bin".to_string()]);
        assert_eq!(m.total_length(), 40);
        let evil = ok.replace("3:sub", "2:..");
        assert_eq!(Metainfo::parse(evil.as_bytes()), Err(MetainfoError::UnsafePath("..".into())));
        let short = ok.replace("6:pieces40:", "6:pieces20:").replace(&hashes, &"x".repeat(20));
        assert_eq!(Metainfo::parse(short.as_bytes()), Err(MetainfoError::PieceCount { hashes: 1, needed: 2 }));
        assert!(Metainfo::parse(b"d4:infoi1ee").is_err());
        assert!(Metainfo::parse(b"not bencode").is_err());
    }
}
