//! One file or directory a node shares, and the checks every entry passes before anything
//! stores or shows it (a node is a stranger: its names may be anything).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// Longest path within a share, in bytes.
pub const MAX_PATH: usize = 4096;
/// Longest single name (a path part, a share name), in bytes.
pub const MAX_NAME: usize = 255;
/// Most parts a path may have.
pub const MAX_DEPTH: usize = 64;

/// A file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

/// One entry of a node's shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The share's name (its first part in the namespace).
    pub share: String,
    /// Within the share: `a/b/c`, no leading `/`.
    pub path: String,
    pub kind: Kind,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// Last modified, unix seconds.
    pub mtime: i64,
    /// SHA-256 of the content (64 lowercase hex digits), when the node computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// Why an entry (or a share name, or a path) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("an empty name")]
    Empty,
    #[error("a name longer than {MAX_NAME} bytes")]
    NameTooLong,
    #[error("a path longer than {MAX_PATH} bytes")]
    PathTooLong,
    #[error("a path deeper than {MAX_DEPTH} parts")]
    TooDeep,
    #[error("`.`, `..` or an empty part in a path (paths are relative, `a/b`)")]
    BadPart,
    #[error("a control character in a name")]
    Control,
    #[error("a `/` in a share name")]
    SlashInShare,
    #[error("a hash that is not 64 lowercase hex digits")]
    BadHash,
    #[error("a directory with a size")]
    DirWithSize,
}

/// A share's name: one part, printable, not `.` or `..`.
pub fn check_share(name: &str) -> Result<(), EntryError> {
    if name.contains('/') {
        return Err(EntryError::SlashInShare);
    }
    check_part(name)
}

fn check_part(part: &str) -> Result<(), EntryError> {
    if part.is_empty() {
        return Err(EntryError::Empty);
    }
    if part.len() > MAX_NAME {
        return Err(EntryError::NameTooLong);
    }
    if part == "." || part == ".." {
        return Err(EntryError::BadPart);
    }
    if part.chars().any(char::is_control) {
        return Err(EntryError::Control);
    }
    Ok(())
}

/// A path within a share: `a/b/c`, each part a name.
pub fn check_path(path: &str) -> Result<(), EntryError> {
    if path.len() > MAX_PATH {
        return Err(EntryError::PathTooLong);
    }
    let mut depth = 0;
    for part in path.split('/') {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(EntryError::TooDeep);
        }
        if part.is_empty() {
            return Err(EntryError::BadPart);
        }
        check_part(part)?;
    }
    Ok(())
}

impl Entry {
    /// Every field within its limits.
    pub fn check(&self) -> Result<(), EntryError> {
        check_share(&self.share)?;
        check_path(&self.path)?;
        if self.kind == Kind::Dir && self.size != 0 {
            return Err(EntryError::DirWithSize);
        }
        if let Some(h) = &self.hash {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(EntryError::BadHash);
            }
        }
        Ok(())
    }

    pub fn key(&self) -> Key {
        Key { share: self.share.clone(), path: self.path.clone() }
    }

    /// What a change to the entry changes: kind, size, time, hash (64-bit FNV-1a: a node
    /// compares its scan with what the server confirmed by this, not by the whole entry).
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::default();
        h.write(&[self.kind as u8]);
        h.write(&self.size.to_le_bytes());
        h.write(&self.mtime.to_le_bytes());
        h.write(self.hash.as_deref().unwrap_or("").as_bytes());
        h.0
    }

    /// Where it is in the namespace: `share/path`.
    pub fn ns_path(&self) -> String {
        format!("{}/{}", self.share, self.path)
    }
}

/// The directory a namespace path is in (`""` for a share itself).
pub fn parent(ns_path: &str) -> &str {
    ns_path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The last part of a namespace path.
pub fn name(ns_path: &str) -> &str {
    ns_path.rsplit_once('/').map_or(ns_path, |(_, n)| n)
}

/// 64-bit FNV-1a (stable across runs and machines).
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Where an entry is: share and path, ordered share first, then part by part (`a/b` before
/// `a-c`, as a sorted directory walk visits them: a directory's contents right after it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub share: String,
    pub path: String,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.share.cmp(&other.share).then_with(|| by_parts(&self.path, &other.path))
    }
}

/// `a` and `b` compared part by part (`a.split('/')` beside `b.split('/')`) without splitting:
/// byte by byte with `/` below every other byte. A node sorts its whole scan by it (100 000
/// keys): splitting at each comparison cost it most of a check-in.
fn by_parts(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let rank = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    match (a.get(same), b.get(same)) {
        (Some(&x), Some(&y)) => rank(x).cmp(&rank(y)),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Key {
    /// Whether `self` is `dir` or lies beneath it (same share).
    pub fn is_within(&self, dir: &Key) -> bool {
        self.share == dir.share && (self.path == dir.path || self.path.strip_prefix(dir.path.as_str()).is_some_and(|rest| rest.starts_with('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(share: &str, path: &str) -> Entry {
        Entry { share: share.into(), path: path.into(), kind: Kind::File, size: 1, mtime: 0, hash: None }
    }

    #[test]
    fn paths_are_relative_bounded_and_printable() {
        for good in ["a", "a/b/c", "Kill Bill (2003).mkv", "ü/日本/ok", "a$(rm -rf)/`x`;|&", "...", ".hidden"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", EntryError::BadPart),
            ("/etc", EntryError::BadPart),
            ("a//b", EntryError::BadPart),
            ("a/", EntryError::BadPart),
            ("../x", EntryError::BadPart),
            ("a/../../x", EntryError::BadPart),
            ("a/./b", EntryError::BadPart),
            ("a\nb", EntryError::Control),
            ("a\u{7f}", EntryError::Control),
        ] {
            assert_eq!(check_path(bad), Err(why), "{bad:?}");
        }
        assert_eq!(check_path(&"x".repeat(256)), Err(EntryError::NameTooLong));
        assert_eq!(check_path(&["a"; 65].join("/")), Err(EntryError::TooDeep));
        assert_eq!(check_path(&["abcdefgh"; 500].join("/")), Err(EntryError::PathTooLong));
        assert_eq!(check_share("a/b"), Err(EntryError::SlashInShare));
        assert_eq!(check_share(".."), Err(EntryError::BadPart));
        assert_eq!(check_share("My Music"), Ok(()));
    }

    #[test]
    fn entries_check_their_hash_and_directories_have_no_size() {
        let mut e = file("m", "a");
        assert_eq!(e.check(), Ok(()));
        e.hash = Some("ab".repeat(32));
        assert_eq!(e.check(), Ok(()));
        e.hash = Some("AB".repeat(32));
        assert_eq!(e.check(), Err(EntryError::BadHash));
        let d = Entry { kind: Kind::Dir, ..file("m", "a") };
        assert_eq!(d.check(), Err(EntryError::DirWithSize));
        assert_eq!(Entry { size: 0, ..d }.check(), Ok(()));
    }

    #[test]
    fn keys_order_part_by_part_and_digests_follow_content() {
        let k = |p: &str| Key { share: "m".into(), path: p.into() };
        let mut keys = [k("a-c"), k("a/b"), k("a"), k("b"), k("a/b/c"), Key { share: "l".into(), path: "z".into() }];
        keys.sort();
        let paths: Vec<&str> = keys.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(paths, ["z", "a", "a/b", "a/b/c", "a-c", "b"]);
        // The same order as splitting, over every path of up to 4 of a few telling characters.
        let mut paths = vec![String::new()];
        for len in 1..=4 {
            let longer: Vec<String> = paths.iter().filter(|p| p.chars().count() == len - 1).flat_map(|p| ["a", "/", "-", "é"].map(|c| format!("{p}{c}"))).collect();
            paths.extend(longer);
        }
        for p in &paths {
            for q in &paths {
                assert_eq!(by_parts(p, q), p.split('/').cmp(q.split('/')), "{p:?} beside {q:?}");
            }
        }
        assert!(k("a/b/c").is_within(&k("a")) && k("a").is_within(&k("a")) && !k("a-c").is_within(&k("a")) && !k("ab").is_within(&k("a")));
        let (a, mut b) = (file("m", "x"), file("m", "x"));
        assert_eq!(a.digest(), b.digest());
        b.mtime = 1;
        assert_ne!(a.digest(), b.digest());
        assert_eq!((parent("m/a/b"), name("m/a/b"), parent("m"), name("m")), ("m/a", "b", "", "m"));
        assert_eq!(file("music", "a/b").ns_path(), "music/a/b");
    }
}
