//! The content-addressed file store. Beside every file `<sha256>` lies `<sha256>.torrent`: a
//! private single-file v1 torrent of it (named by its hash, no tracker inside; the server adds
//! its announce URL when serving it), so a file shared by two images or two versions is one
//! swarm; and `<sha256>.piece-sha256`: the SHA-256 of each of the torrent's pieces (32 bytes
//! each), which the server signs and serves so clients check pieces by SHA-256 as they come.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use swarmboot_torrent::Metainfo;

/// The piece size for a stored file: 256 KiB (boot storms of a 64 MiB file on 100 Mbit links
/// measured best at 128–256 KiB: small pieces spread sooner, and 16 blocks per piece keep the
/// per-piece overhead low), doubled for files over 4 GiB so no torrent has more than 16 384
/// pieces (a 2 KiB bitfield).
pub fn piece_length_for(size: u64) -> u32 {
    let mut len: u64 = 256 * 1024;
    while size.div_ceil(len) > 16_384 {
        len *= 2;
    }
    len as u32
}

/// Whether `s` is 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where a store keeps the file with this hash, relative to the store's root: `ab/abcd/<sha256>`
/// (the server's store, a donor's, the stub reading a donor's on its donated disk). `None`
/// for anything that is not a SHA-256 in lowercase hex, so no caller can name another path.
pub fn relative_path(sha256: &str) -> Option<PathBuf> {
    is_sha256_hex(sha256).then(|| Path::new(&sha256[..2]).join(&sha256[..4]).join(sha256))
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
        Some(self.root.join(relative_path(sha256)?))
    }

    /// Copies `src` into the store (unless it is there already); returns its hash and size.
    /// The copy is written to a temporary file (`swarmboot_durable`: an unpredictable name,
    /// never through a link), synced, and renamed into place; its torrent likewise. A missing
    /// or unreadable torrent (a crash, a zero-length file) is made again.
    pub fn put(&self, src: &Path) -> std::io::Result<(String, u64)> {
        let tmp_dir = self.root.join("tmp");
        swarmboot_durable::create_dir_all(&tmp_dir)?;
        let mut input = File::open(src)?;
        let (mut tmp, tmp_path) = swarmboot_durable::create_temp_in(&tmp_dir, 0o640)?;
        let piece_len = piece_length_for(input.metadata()?.len());
        let mut hasher = Sha256::new();
        let mut pieces = PieceHasher::new(piece_len);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            pieces.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            size += n as u64;
        }
        tmp.sync_all()?;
        drop(tmp);
        let sha = hex::encode(hasher.finalize());
        let dest = self.path_of(&sha).expect("a hex digest");
        swarmboot_durable::crash_point("store:copied");
        if dest.exists() {
            swarmboot_durable::remove_file(&tmp_path)?;
        } else {
            swarmboot_durable::create_dir_all(dest.parent().expect("nested"))?;
            swarmboot_durable::move_into_place(&tmp_path, &dest)?;
        }
        swarmboot_durable::crash_point("store:placed");
        let torrent = torrent_path(&dest);
        if !matches!(self.torrent(&sha), Ok(Some(_))) {
            // The file grew or shrank while read: its length decides (a later put fixes it).
            let piece_len = if piece_length_for(size) == piece_len {
                piece_len
            } else {
                return Ok((sha, size));
            };
            let (sha1s, sha256s) = pieces.finish();
            let (_, bytes) = Metainfo::from_piece_hashes(&sha, size, piece_len, &sha1s, None, true);
            swarmboot_durable::replace(&piece_sha256_path(&dest), &sha256s.concat(), 0o640)?;
            swarmboot_durable::replace(&torrent, &bytes, 0o640)?;
        } else if let (Ok(None), Ok(Some((meta, _)))) = (self.piece_sha256(&sha), self.torrent(&sha)) {
            // Stored before the store made lists: this pass hashed its pieces.
            if meta.piece_length == piece_len {
                swarmboot_durable::replace(&piece_sha256_path(&dest), &pieces.finish().1.concat(), 0o640)?;
            }
        }
        Ok((sha, size))
    }

    /// The SHA-256 of each piece of the stored file `sha256`'s torrent (`None`: no such file,
    /// no torrent, or no list yet; a list that is not one hash per piece of the torrent is
    /// none).
    pub fn piece_sha256(&self, sha256: &str) -> std::io::Result<Option<Vec<[u8; 32]>>> {
        let (Some(path), Some((meta, _))) = (self.path_of(sha256), self.torrent(sha256)?) else {
            return Ok(None);
        };
        match std::fs::read(piece_sha256_path(&path)) {
            Ok(raw) if raw.len() == meta.pieces.len() * 32 => Ok(Some(raw.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Store::piece_sha256`], the file read and the list made now if it has none (stored
    /// before the store made lists, or its list is damaged). `None`: no such file or torrent.
    pub fn ensure_piece_sha256(&self, sha256: &str) -> std::io::Result<Option<Vec<[u8; 32]>>> {
        if let Some(list) = self.piece_sha256(sha256)? {
            return Ok(Some(list));
        }
        let (Some(path), Some((meta, _))) = (self.path_of(sha256), self.torrent(sha256)?) else {
            return Ok(None);
        };
        let (sha1s, sha256s) = PieceHasher::new(meta.piece_length).read_all(File::open(&path)?)?;
        if sha1s != meta.pieces {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{sha256} does not match its torrent: no piece SHA-256 made")));
        }
        swarmboot_durable::replace(&piece_sha256_path(&path), &sha256s.concat(), 0o640)?;
        Ok(Some(sha256s))
    }

    /// The torrent of the stored file `sha256`, parsed (`None`: no such file or no torrent).
    pub fn torrent(&self, sha256: &str) -> std::io::Result<Option<(Metainfo, Vec<u8>)>> {
        let Some(p) = self.path_of(sha256) else {
            return Ok(None);
        };
        match std::fs::read(torrent_path(&p)) {
            Ok(bytes) => Metainfo::parse(&bytes).map(|m| Some((m, bytes))).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{sha256}.torrent: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The torrent of the stored file `sha256`, made now if the file has none yet (stored
    /// before the store made torrents). `None`: no such file.
    /// A torrent that does not parse (a crash while it was written by an older version, a
    /// zero-length file) is made again too.
    pub fn ensure_torrent(&self, sha256: &str) -> std::io::Result<Option<(Metainfo, Vec<u8>)>> {
        if let Ok(Some(t)) = self.torrent(sha256) {
            return Ok(Some(t));
        }
        let Some(path) = self.path_of(sha256) else {
            return Ok(None);
        };
        let mut input = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = input.metadata()?.len();
        let piece_len = piece_length_for(size);
        let (sha1s, sha256s) = PieceHasher::new(piece_len).read_all(&mut input)?;
        let (meta, bytes) = Metainfo::from_piece_hashes(sha256, size, piece_len, &sha1s, None, true);
        swarmboot_durable::replace(&piece_sha256_path(&path), &sha256s.concat(), 0o640)?;
        swarmboot_durable::replace(&torrent_path(&path), &bytes, 0o640)?;
        Ok(Some((meta, bytes)))
    }

    /// Every hash in the store.
    pub fn hashes(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        let Ok(level1) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
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
            swarmboot_durable::remove_file(&p)?;
            for beside in [torrent_path(&p), piece_sha256_path(&p)] {
                match swarmboot_durable::remove_file(&beside) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            // Remove the now-empty fan-out directories; a non-empty one stays.
            if let Some(d) = p.parent() {
                let _ = swarmboot_durable::remove_dir(d);
                if let Some(d) = d.parent() {
                    let _ = swarmboot_durable::remove_dir(d);
                }
            }
        }
        Ok(())
    }
}

fn torrent_path(blob: &Path) -> PathBuf {
    beside(blob, ".torrent")
}

fn piece_sha256_path(blob: &Path) -> PathBuf {
    beside(blob, ".piece-sha256")
}

fn beside(blob: &Path, suffix: &str) -> PathBuf {
    let mut name = blob.file_name().expect("a hash").to_os_string();
    name.push(suffix);
    blob.with_file_name(name)
}

/// (SHA-1 of each piece, SHA-256 of each piece).
type PieceHashes = (Vec<[u8; 20]>, Vec<[u8; 32]>);

/// SHA-1 and SHA-256 of each piece, over data that arrives in chunks of any size.
struct PieceHasher {
    piece_len: usize,
    sha1: sha1::Sha1,
    sha256: Sha256,
    in_current: usize,
    done: PieceHashes,
}

impl PieceHasher {
    fn new(piece_len: u32) -> Self {
        PieceHasher { piece_len: piece_len as usize, sha1: sha1::Sha1::new(), sha256: Sha256::new(), in_current: 0, done: (Vec::new(), Vec::new()) }
    }
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (self.piece_len - self.in_current).min(data.len());
            self.sha1.update(&data[..take]);
            self.sha256.update(&data[..take]);
            self.in_current += take;
            data = &data[take..];
            if self.in_current == self.piece_len {
                self.end_piece();
            }
        }
    }
    fn end_piece(&mut self) {
        self.done.0.push(std::mem::take(&mut self.sha1).finalize().into());
        self.done.1.push(std::mem::take(&mut self.sha256).finalize().into());
        self.in_current = 0;
    }
    /// Hashes what `input` holds to its end, then [`PieceHasher::finish`].
    fn read_all(mut self, mut input: impl Read) -> std::io::Result<PieceHashes> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                return Ok(self.finish());
            }
            self.update(&buf[..n]);
        }
    }
    fn finish(mut self) -> PieceHashes {
        if self.in_current > 0 {
            self.end_piece();
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stored file gets a private torrent named by its hash, whose pieces verify
    /// against the file; it goes when the file goes.
    #[test]
    fn each_file_has_its_torrent() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path().join("store"));
        let data: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 20) as u8).collect();
        let f = dir.path().join("rootfs");
        std::fs::write(&f, &data).unwrap();
        let (sha, _) = s.put(&f).unwrap();
        let (m, _) = s.torrent(&sha).unwrap().expect("a torrent beside the file");
        assert_eq!((m.name.as_str(), m.total_length(), m.piece_length, m.private, m.announce.as_deref()), (sha.as_str(), 700_000, 256 * 1024, true, None));
        assert_eq!(m.pieces.len(), 3);
        for i in 0..3u32 {
            let start = i as usize * 256 * 1024;
            assert!(m.verify(i, &data[start..start + m.piece_len(i) as usize]), "piece {i}");
        }
        let (same, _) = Metainfo::single_file(&sha, &data, 256 * 1024, None, true);
        assert_eq!(same.info_hash, m.info_hash, "streamed hashing = hashing it whole");
        assert_eq!(s.hashes().unwrap(), vec![sha.clone()], "torrents are not files of the store");
        // A file stored before torrents existed gets the same torrent on demand.
        let tpath = s.path_of(&sha).unwrap().with_extension("torrent");
        let original = std::fs::read(&tpath).unwrap();
        std::fs::remove_file(&tpath).unwrap();
        assert!(s.torrent(&sha).unwrap().is_none());
        let (again, bytes) = s.ensure_torrent(&sha).unwrap().unwrap();
        assert_eq!((again.info_hash, bytes), (m.info_hash, original));
        assert!(s.ensure_torrent(&"0".repeat(64)).unwrap().is_none());
        // The SHA-256 of each piece, beside it; made again on demand, or by the next put.
        let sha256s: Vec<[u8; 32]> = data.chunks(256 * 1024).map(|c| Sha256::digest(c).into()).collect();
        assert_eq!(s.piece_sha256(&sha).unwrap().as_ref(), Some(&sha256s));
        let lpath = s.path_of(&sha).unwrap().with_extension("piece-sha256");
        std::fs::remove_file(&lpath).unwrap();
        assert_eq!(s.piece_sha256(&sha).unwrap(), None);
        assert_eq!(s.ensure_piece_sha256(&sha).unwrap().as_ref(), Some(&sha256s));
        std::fs::write(&lpath, [0u8; 64]).unwrap();
        assert_eq!(s.piece_sha256(&sha).unwrap(), None, "two hashes for three pieces: no list");
        s.put(&f).unwrap();
        assert_eq!(s.piece_sha256(&sha).unwrap().as_ref(), Some(&sha256s));
        assert_eq!(s.ensure_piece_sha256(&"0".repeat(64)).unwrap(), None);
        s.remove(&sha).unwrap();
        assert!(s.torrent(&sha).unwrap().is_none());
        assert!(!lpath.exists());
        assert!(s.hashes().unwrap().is_empty());
    }

    #[test]
    fn piece_sizes_keep_torrents_small() {
        assert_eq!(piece_length_for(0), 256 * 1024);
        assert_eq!(piece_length_for(4 << 30), 256 * 1024);
        assert_eq!(piece_length_for((4 << 30) + 1), 512 * 1024);
        assert!((40u64 << 30).div_ceil(u64::from(piece_length_for(40 << 30))) <= 16_384);
    }

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
