//! A scan of the node's shares for the fleet's index: every directory and regular file beneath
//! each share's directory, walked from the share's open descriptor (each directory opened
//! beneath its parent without following a link, so nothing outside the share is ever read),
//! sizes and modification times from `statat` without following links. Links, devices and
//! names the namespace cannot carry (not UTF-8, control characters, over the bounds) are left
//! out and counted. At most `max` entries; the walk is sorted, so a cut is the same each time.

use std::collections::BTreeMap;
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

/// Scans `shares` (name → open directory), at most `max` entries in all.
pub fn scan<'a>(shares: impl IntoIterator<Item = (&'a String, &'a OwnedFd)>, max: usize) -> Scan {
    let mut out = Scan::default();
    let sorted: BTreeMap<&String, &OwnedFd> = shares.into_iter().collect();
    for (name, fd) in sorted {
        if check_share(name).is_err() {
            out.skipped += 1;
            continue;
        }
        walk(name, fd, "", 1, max, &mut out);
        if out.cut {
            break;
        }
    }
    out
}

fn walk(share: &str, dir: &OwnedFd, prefix: &str, depth: usize, max: usize, out: &mut Scan) {
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
        let e = Entry {
            share: share.to_string(),
            path: path.clone(),
            kind,
            size: if kind == Kind::File { u64::try_from(st.st_size).unwrap_or(0) } else { 0 },
            mtime: st.st_mtime,
            hash: None,
        };
        if e.check().is_err() {
            out.skipped += 1;
            continue;
        }
        out.entries.push(e);
        if kind == Kind::Dir && depth < MAX_DEPTH {
            match openat(dir, &n, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                Ok(sub) => walk(share, &sub, &path, depth + 1, max, out),
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
        let s = scan(&shares, 100);
        let paths: Vec<(&str, Kind, u64)> = s.entries.iter().map(|e| (e.path.as_str(), e.kind, e.size)).collect();
        assert_eq!(paths, [("Kill Bill; $(x).mkv", Kind::File, 3), ("d", Kind::Dir, 0), ("d/e", Kind::Dir, 0), ("d/e/deep.txt", Kind::File, 5), ("d-x", Kind::File, 1)]);
        assert_eq!((s.skipped, s.cut), (2, false), "the link and the name with a newline");
        let cut = scan(&shares, 2);
        assert_eq!((cut.entries.len(), cut.cut), (2, true));
    }
}
