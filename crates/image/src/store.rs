//! The content-addressed file store.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Whether `s` is 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with this hash lives (whether or not it is there). `None` for anything
    /// that is not a SHA-256 in lowercase hex, so a caller can never name another path.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.root.join(&sha256[..2]).join(&sha256[..4]).join(sha256))
    }

    /// Copies `src` into the store (unless it is there already); returns its hash and size.
    /// The copy is written to a temporary file, synced, and renamed into place.
    pub fn put(&self, src: &Path) -> std::io::Result<(String, u64)> {
        let tmp_dir = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        let tmp_path = tmp_dir.join(format!("put-{}-{:?}", std::process::id(), std::thread::current().id()));
        let mut input = File::open(src)?;
        let mut tmp = File::create(&tmp_path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            size += n as u64;
        }
        tmp.sync_all()?;
        drop(tmp);
        let sha = hex::encode(hasher.finalize());
        let dest = self.path_of(&sha).expect("a hex digest");
        if dest.exists() {
            std::fs::remove_file(&tmp_path)?;
        } else {
            std::fs::create_dir_all(dest.parent().expect("nested"))?;
            std::fs::rename(&tmp_path, &dest)?;
        }
        Ok((sha, size))
    }

    /// Every hash in the store.
    pub fn hashes(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        let Ok(level1) = std::fs::read_dir(&self.root) else { return Ok(out) };
        for a in level1 {
            let a = a?.path();
            if !a.is_dir() || a.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for b in std::fs::read_dir(&a)? {
                for f in std::fs::read_dir(b?.path())? {
                    let name = f?.file_name().to_string_lossy().to_string();
                    if is_sha256_hex(&name) {
                        out.push(name);
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn remove(&self, sha256: &str) -> std::io::Result<()> {
        if let Some(p) = self.path_of(sha256) {
            std::fs::remove_file(&p)?;
            // Remove the now-empty fan-out directories; a non-empty one stays.
            if let Some(d) = p.parent() {
                let _ = std::fs::remove_dir(d);
                if let Some(d) = d.parent() {
                    let _ = std::fs::remove_dir(d);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path().join("store"));
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let (sha, size) = s.put(&f).unwrap();
        assert_eq!(sha, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(size, 5);
        let p = s.path_of(&sha).unwrap();
        assert!(p.ends_with("2c/2cf2/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(s.put(&f).unwrap().0, sha, "the same content is stored once");
        assert_eq!(s.hashes().unwrap(), vec![sha.clone()]);
        s.remove(&sha).unwrap();
        assert!(s.hashes().unwrap().is_empty());
    }

    #[test]
    fn only_hashes_name_paths() {
        let s = Store::new("/x".into());
        assert!(s.path_of("../../etc/passwd").is_none());
        assert!(s.path_of(&"A".repeat(64)).is_none(), "uppercase is not our spelling");
        assert!(s.path_of(&"a".repeat(63)).is_none());
        assert!(s.path_of(&"a".repeat(64)).is_some());
    }
}
