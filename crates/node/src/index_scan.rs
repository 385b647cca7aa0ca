//! A scan of the node's shares for the fleet's index: every directory and regular file beneath
//! each share's directory, walked from the share's open descriptor (each directory opened
//! beneath its parent without following a link, so nothing outside the share is ever read),
//! sizes and modification times from `statat` without following links. Links, devices and
//! names the namespace cannot carry (not UTF-8, control characters, over the bounds) are left
//! out and counted. At most `max` entries; the walk is sorted, so a cut is the same each time.
//! With a [`Hashes`] cache (`--index-hashes`), each file's SHA-256 is read too — once per
//! size and modification time, so a rescan of unchanged files reads nothing.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::fd::OwnedFd;

use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags};
use swarmboot_namespace::entry::{check_share, Entry, Kind, MAX_DEPTH};

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Left out: links, devices, unreadable or unrepresentable names.
    pub skipped: u64,
    /// More than `max` entries: the rest are not indexed.
    pub cut: bool,
}

/// Files' SHA-256 as last read, by (share, path), with the size and time they were read at.
#[derive(Debug, Default)]
pub struct Hashes {
    known: HashMap<(String, String), (u64, i64, String)>,
    /// Bytes read for hashes since the cache was made.
    pub bytes_read: u64,
}

impl Hashes {
    fn of(&mut self, share: &str, path: &str, size: u64, mtime: i64, dir: &OwnedFd, name: &std::ffi::CStr) -> Option<String> {
        let key = (share.to_string(), path.to_string());
        if let Some((s, m, h)) = self.known.get(&key) {
            if *s == size && *m == mtime {
                return Some(h.clone());
            }
        }
        let fd = openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let mut file = std::fs::File::from(fd);
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            self.bytes_read += n as u64;
        }
        let h = hex::encode(sha2::Digest::finalize(hasher));
        self.known.insert(key, (size, mtime, h.clone()));
        Some(h)
    }

    /// Forgets files not seen in the last scan (bounded by what is shared).
    fn keep_only(&mut self, seen: &[Entry]) {
        let keep: std::collections::HashSet<(&str, &str)> = seen.iter().map(|e| (e.share.as_str(), e.path.as_str())).collect();
        self.known.retain(|(s, p), _| keep.contains(&(s.as_str(), p.as_str())));
    }
}

/// Scans `shares` (name → open directory), at most `max` entries in all; with `hashes`,
/// each file's SHA-256 too.
pub fn scan<'a>(shares: impl IntoIterator<Item = (&'a String, &'a OwnedFd)>, max: usize, mut hashes: Option<&mut Hashes>) -> Scan {
    let mut out = Scan::default();
    let sorted: BTreeMap<&String, &OwnedFd> = shares.into_iter().collect();
    for (name, fd) in sorted {
        if check_share(name).is_err() {
            out.skipped += 1;
            continue;
        }
        walk(name, fd, "", 1, max, &mut out, hashes.as_deref_mut());
        if out.cut {
            break;
        }
    }
    if let Some(h) = hashes {
        h.keep_only(&out.entries);
    }
    out
}

fn walk(share: &str, dir: &OwnedFd, prefix: &str, depth: usize, max: usize, out: &mut Scan, mut hashes: Option<&mut Hashes>) {
    let Ok(listing) = Dir::read_from(dir) else {
        out.skipped += 1;
        return;
    };
    let mut names: Vec<std::ffi::CString> = Vec::new();
    for e in listing {
        let Ok(e) = e else {
            out.skipped += 1;
            continue;
        };
        let n = e.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        names.push(n.to_owned());
    }
    names.sort();
    for n in names {
        if out.entries.len() >= max {
            out.cut = true;
            return;
        }
        let Ok(text) = n.to_str() else {
            out.skipped += 1;
            continue;
        };
        let path = if prefix.is_empty() { text.to_string() } else { format!("{prefix}/{text}") };
        let Ok(st) = statat(dir, &n, AtFlags::SYMLINK_NOFOLLOW) else {
            out.skipped += 1;
            continue;
        };
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            _ => {
                out.skipped += 1;
                continue;
            }
        };
        let size = if kind == Kind::File { u64::try_from(st.st_size).unwrap_or(0) } else { 0 };
        let mut e = Entry { share: share.to_string(), path: path.clone(), kind, size, mtime: st.st_mtime, hash: None };
        if e.check().is_err() {
            out.skipped += 1;
            continue;
        }
        if let (Some(h), Kind::File) = (&mut hashes, kind) {
            e.hash = h.of(share, &path, size, st.st_mtime, dir, &n);
        }
        out.entries.push(e);
        if kind == Kind::Dir && depth < MAX_DEPTH {
            match openat(dir, &n, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                Ok(sub) => walk(share, &sub, &path, depth + 1, max, out, hashes.as_deref_mut()),
                Err(_) => out.skipped += 1,
            }
            if out.cut {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn a_share_is_walked_sorted_without_leaving_it_and_odd_names_are_counted() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "no").unwrap();
        let m = root.path().join("m");
        std::fs::create_dir_all(m.join("d/e")).unwrap();
        std::fs::write(m.join("d/e/deep.txt"), "12345").unwrap();
        std::fs::write(m.join("d-x"), "1").unwrap();
        std::fs::write(m.join("Kill Bill; $(x).mkv"), "abc").unwrap();
        std::fs::write(m.join("bad\nname"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), m.join("link")).unwrap();
        let shares: BTreeMap<String, OwnedFd> = [("m".to_string(), open_dir(&m))].into();
        let s = scan(&shares, 100, None);
        let paths: Vec<(&str, Kind, u64)> = s.entries.iter().map(|e| (e.path.as_str(), e.kind, e.size)).collect();
        assert_eq!(paths, [("Kill Bill; $(x).mkv", Kind::File, 3), ("d", Kind::Dir, 0), ("d/e", Kind::Dir, 0), ("d/e/deep.txt", Kind::File, 5), ("d-x", Kind::File, 1)]);
        assert_eq!((s.skipped, s.cut), (2, false), "the link and the name with a newline");
        let cut = scan(&shares, 2, None);
        assert_eq!((cut.entries.len(), cut.cut), (2, true));
        // With hashes: each file's SHA-256, read once while it stays the same.
        let mut h = Hashes::default();
        let s = scan(&shares, 100, Some(&mut h));
        let deep = s.entries.iter().find(|e| e.path == "d/e/deep.txt").unwrap();
        assert_eq!(deep.hash.as_deref(), Some("5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5"), "sha256 of 12345");
        assert!(s.entries.iter().all(|e| e.hash.is_some() == (e.kind == Kind::File)));
        let read = h.bytes_read;
        scan(&shares, 100, Some(&mut h));
        assert_eq!(h.bytes_read, read, "nothing read again");
    }
}
