//! Where pieces live: the [`Storage`] trait the swarm core reads blocks from and writes verified
//! pieces to, [`FileStorage`] (the torrent's files on disk or tmpfs, positioned reads and writes,
//! no seeking and no shared file cursor) and [`MemStorage`] (tests).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use sha2::Sha256;
use swarmboot_peerwire::Bitfield;
use swarmboot_torrent::Metainfo;

/// Piece data, addressed by piece index and offset inside the piece.
pub trait Storage {
    fn read_block(&mut self, piece: u32, begin: u32, len: u32) -> io::Result<Vec<u8>>;
    /// Writes a whole piece that already matched its hash.
    fn write_piece(&mut self, piece: u32, data: &[u8]) -> io::Result<()>;
}

/// The layout of a torrent's bytes over its files.
#[derive(Debug, Clone)]
struct Layout {
    piece_length: u64,
    /// (path, first byte of the file in the torrent, length).
    files: Vec<(PathBuf, u64, u64)>,
}

impl Layout {
    fn new(meta: &Metainfo, root: &Path) -> Self {
        let mut offset = 0;
        let files = meta
            .files
            .iter()
            .map(|f| {
                let mut path = root.join(&meta.name);
                for c in &f.path {
                    path.push(c);
                }
                let entry = (path, offset, f.length);
                offset += f.length;
                entry
            })
            .collect();
        Layout { piece_length: u64::from(meta.piece_length), files }
    }

    /// The pieces of `[start, start + len)` that fall in each file: (file index, offset in
    /// file, offset in the range, length).
    fn spans(&self, start: u64, len: u64) -> impl Iterator<Item = (usize, u64, usize, usize)> + '_ {
        let end = start + len;
        self.files.iter().enumerate().filter_map(move |(i, &(_, first, flen))| {
            let (a, b) = (start.max(first), end.min(first + flen));
            (a < b).then(|| (i, a - first, (a - start) as usize, (b - a) as usize))
        })
    }
}

/// The torrent's files under a directory (`<root>/<name>` for a single file,
/// `<root>/<name>/<path…>` for several), opened once.
#[derive(Debug)]
pub struct FileStorage {
    layout: Layout,
    files: Vec<File>,
    fresh: bool,
}

impl FileStorage {
    /// Opens (creating, at full length, sparse) the torrent's files under `root`.
    pub fn create(meta: &Metainfo, root: &Path) -> io::Result<Self> {
        let layout = Layout::new(meta, root);
        let mut files = Vec::new();
        let mut fresh = true;
        for (path, _, len) in &layout.files {
            fresh &= !path.exists();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = File::options().read(true).write(true).create(true).truncate(false).open(path)?;
            if f.metadata()?.len() != *len {
                f.set_len(*len)?;
            }
            files.push(f);
        }
        Ok(FileStorage { layout, files, fresh })
    }

    /// Whether every file was created just now (nothing to verify: no piece is there).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Opens existing files read-only (a seed of data that is already complete).
    pub fn open_existing(meta: &Metainfo, root: &Path) -> io::Result<Self> {
        let layout = Layout::new(meta, root);
        let files = layout.files.iter().map(|(p, _, _)| File::open(p)).collect::<io::Result<_>>()?;
        Ok(FileStorage { layout, files, fresh: false })
    }

    /// Which pieces already on disk match their SHA-1 (resuming, or seeding existing files).
    pub fn verify(&mut self, meta: &Metainfo) -> io::Result<Bitfield> {
        self.verify_with(meta, |i, data| <[u8; 20]>::from(Sha1::digest(data)) == meta.pieces[i as usize])
    }

    /// Which pieces already on disk match their SHA-256 in `sha256` (one per piece of `meta`,
    /// from a signed list).
    pub fn verify_by_sha256(&mut self, meta: &Metainfo, sha256: &[[u8; 32]]) -> io::Result<Bitfield> {
        self.verify_with(meta, |i, data| sha256.get(i as usize).is_some_and(|h| <[u8; 32]>::from(Sha256::digest(data)) == *h))
    }

    fn verify_with(&mut self, meta: &Metainfo, matches: impl Fn(u32, &[u8]) -> bool) -> io::Result<Bitfield> {
        let mut have = Bitfield::new(meta.pieces.len() as u32);
        for i in 0..meta.pieces.len() as u32 {
            let data = self.read_block(i, 0, meta.piece_len(i))?;
            if matches(i, &data) {
                have.set(i);
            }
        }
        Ok(have)
    }

    fn range_start(&self, piece: u32, begin: u32) -> u64 {
        u64::from(piece) * self.layout.piece_length + u64::from(begin)
    }
}

impl Storage for FileStorage {
    fn read_block(&mut self, piece: u32, begin: u32, len: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        let start = self.range_start(piece, begin);
        let mut covered = 0;
        for (f, at, off, n) in self.layout.spans(start, u64::from(len)) {
            self.files[f].read_exact_at(&mut buf[off..off + n], at)?;
            covered += n;
        }
        if covered != len as usize {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "block past the end of the torrent"));
        }
        Ok(buf)
    }

    fn write_piece(&mut self, piece: u32, data: &[u8]) -> io::Result<()> {
        let start = self.range_start(piece, 0);
        for (f, at, off, n) in self.layout.spans(start, data.len() as u64) {
            self.files[f].write_all_at(&data[off..off + n], at)?;
        }
        Ok(())
    }
}

/// Pieces in memory.
#[derive(Debug, Clone)]
pub struct MemStorage {
    pub data: Vec<u8>,
    piece_length: u32,
}

impl MemStorage {
    pub fn new(data: Vec<u8>, piece_length: u32) -> Self {
        MemStorage { data, piece_length }
    }
    pub fn zeroed(len: usize, piece_length: u32) -> Self {
        MemStorage { data: vec![0; len], piece_length }
    }
}

impl Storage for MemStorage {
    fn read_block(&mut self, piece: u32, begin: u32, len: u32) -> io::Result<Vec<u8>> {
        let start = piece as usize * self.piece_length as usize + begin as usize;
        self.data.get(start..start + len as usize).map(<[u8]>::to_vec).ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "block past the end"))
    }
    fn write_piece(&mut self, piece: u32, data: &[u8]) -> io::Result<()> {
        let start = piece as usize * self.piece_length as usize;
        self.data[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_across_file_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = "x".repeat(60);
        // 3 files of 10, 25 and 5 bytes; pieces of 16: [0,16) spans a and b, [32,40) spans b and c.
        let t = format!(
            "d4:infod5:filesld6:lengthi10e4:pathl5:a.bineed6:lengthi25e4:pathl3:sub5:b.bineed6:lengthi5e4:pathl5:c.bineee4:name3:img12:piece lengthi16e6:pieces60:{hashes}ee"
        );
        let meta = Metainfo::parse(t.as_bytes()).unwrap();
        let data: Vec<u8> = (0..40u8).collect();
        let mut s = FileStorage::create(&meta, dir.path()).unwrap();
        assert!(s.is_fresh());
        for i in 0..3u32 {
            let p = &data[i as usize * 16..(i as usize * 16 + 16).min(40)];
            s.write_piece(i, p).unwrap();
        }
        assert_eq!(std::fs::read(dir.path().join("img/a.bin")).unwrap(), &data[..10]);
        assert_eq!(std::fs::read(dir.path().join("img/sub/b.bin")).unwrap(), &data[10..35]);
        assert_eq!(std::fs::read(dir.path().join("img/c.bin")).unwrap(), &data[35..]);
        assert_eq!(s.read_block(1, 4, 12).unwrap(), &data[20..32]);
        assert_eq!(s.read_block(2, 0, 8).unwrap(), &data[32..40]);
        assert!(s.read_block(2, 0, 9).is_err(), "past the end");
        assert!(!FileStorage::create(&meta, dir.path()).unwrap().is_fresh(), "files exist now");
    }

    #[test]
    fn verify_finds_the_pieces_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let (meta, _) = Metainfo::single_file("root.img", &data, 16384, None, true);
        let mut damaged = data.clone();
        damaged[40_000] ^= 1; // piece 2
        std::fs::write(dir.path().join("root.img"), &damaged).unwrap();
        let have = FileStorage::open_existing(&meta, dir.path()).unwrap().verify(&meta).unwrap();
        assert_eq!(have.count(), meta.pieces.len() as u32 - 1);
        assert!(!have.has(2));
        // By SHA-256: the same; a list whose piece 5 is another's finds piece 5 missing too.
        let mut sha256: Vec<[u8; 32]> = data.chunks(16384).map(|c| Sha256::digest(c).into()).collect();
        let have = FileStorage::open_existing(&meta, dir.path()).unwrap().verify_by_sha256(&meta, &sha256).unwrap();
        assert_eq!(have.iter().collect::<Vec<_>>(), (0..meta.pieces.len() as u32).filter(|&i| i != 2).collect::<Vec<_>>());
        sha256[5] = sha256[4];
        let have = FileStorage::open_existing(&meta, dir.path()).unwrap().verify_by_sha256(&meta, &sha256).unwrap();
        assert!(!have.has(2) && !have.has(5) && have.has(4));
        assert!(!FileStorage::open_existing(&meta, dir.path()).unwrap().verify_by_sha256(&meta, &sha256[..3]).unwrap().has(3), "a short list checks nothing past it");
    }
}
