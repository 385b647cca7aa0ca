//! The CLI run as root on a state directory the service owns (the Debian package runs the
//! server as the `swarmboot` user). What root writes there through `swarmboot_durable` is the
//! owner's from the start (`write_as_owner_of`, set up in `main`); whatever else root created
//! in it — the lease database's side files, files an older version wrote as root — is handed
//! to the directory's owner afterwards, so the service can read and write it. Root-owned
//! state directories (a server run as root) are left alone.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{chownat, fstat, open, openat, statat, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::process::{Gid, Uid};

/// Gives every root-owned entry under `state_dir` to the owner of `state_dir`; returns how
/// many changed. Does nothing unless this process is root and the owner is not.
///
/// The service could swap a directory for a link while this walks (to have root give it
/// `/etc/shadow`), so nothing here goes by path below `state_dir`: each directory is opened
/// from its parent's descriptor without following a link, entries are looked at and changed
/// relative to it without following one, and a regular file with other names (a hard link to
/// a file elsewhere) is left alone.
pub fn hand_back(state_dir: &Path) -> std::io::Result<usize> {
    if !rustix::process::geteuid().is_root() {
        return Ok(0);
    }
    let top = match open(state_dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) if e == rustix::io::Errno::NOENT => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let st = fstat(&top)?;
    if st.st_uid == 0 {
        return Ok(0);
    }
    let mut changed = 0;
    walk(&top, (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid)), MAX_DEPTH, &mut changed)?;
    Ok(changed)
}

/// Deeper than the store's fan-out (`store/ab/abcd/FILE`) by far; a deeper tree (only the
/// service could have made it) is not walked further.
const MAX_DEPTH: u32 = 16;

/// Hands back `dir`'s root-owned entries, then walks its subdirectories, each opened from `dir`
/// without following a link.
fn walk(dir: &OwnedFd, owner: (Uid, Gid), depth: u32, changed: &mut usize) -> std::io::Result<()> {
    let mut subdirs: Vec<CString> = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let Ok(st) = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
        let kind = FileType::from_raw_mode(st.st_mode);
        if st.st_uid == 0 && !(kind == FileType::RegularFile && st.st_nlink > 1) {
            chownat(dir, name, Some(owner.0), Some(owner.1), AtFlags::SYMLINK_NOFOLLOW)?;
            *changed += 1;
        }
        if kind == FileType::Directory {
            subdirs.push(name.to_owned());
        }
    }
    for name in subdirs.iter().filter(|_| depth > 0) {
        // Swapped for a link (or removed) since it was listed: not followed, not walked.
        if let Ok(fd) = openat(dir, name.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
            walk(&fd, owner, depth - 1, changed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// These tests change owners: root only (CI is), unless skipped on purpose.
    fn as_root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        assert!(root || std::env::var_os("SWARMBOOT_SKIP_LAB").is_some(), "needs root (to chown); set SWARMBOOT_SKIP_LAB=1 to skip on purpose");
        root
    }

    /// As root (CI is): files root makes in a directory owned by `nobody` become nobody's.
    #[test]
    fn roots_files_go_to_the_directorys_owner() {
        if !as_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        std::fs::create_dir_all(state.join("store/ab")).unwrap();
        std::fs::write(state.join("store/ab/file"), b"x").unwrap();
        std::fs::write(state.join("signing.key"), b"k").unwrap();
        std::os::unix::fs::symlink("store/ab/file", state.join("link")).unwrap();
        assert_eq!(hand_back(&state).unwrap(), 0, "a root-owned state directory is left alone");
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        assert_eq!(hand_back(&state).unwrap(), 5, "store, store/ab, store/ab/file, signing.key, link");
        for p in ["store", "store/ab/file", "signing.key", "link"] {
            assert_eq!(std::fs::symlink_metadata(state.join(p)).unwrap().uid(), 65534, "{p}");
        }
        assert_eq!(hand_back(&state).unwrap(), 0, "nothing left to change");
    }

    /// What the service could plant for root's walk to give it root's files: a directory
    /// swapped for a link to root's, a hard link to a root file. Neither target changes hands.
    #[test]
    fn links_the_service_planted_give_it_nothing() {
        if !as_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("shadow"), b"root's").unwrap();
        let state = d.path().join("state");
        std::fs::create_dir_all(state.join("store")).unwrap();
        std::os::unix::fs::symlink(&victim, state.join("store/ab")).unwrap();
        std::fs::hard_link(victim.join("shadow"), state.join("hardlink")).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        assert_eq!(hand_back(&state).unwrap(), 2, "store and the link store/ab itself");
        assert_eq!(std::fs::symlink_metadata(state.join("store/ab")).unwrap().uid(), 65534, "the link itself");
        assert_eq!(std::fs::metadata(victim.join("shadow")).unwrap().uid(), 0, "neither through the directory link nor through the hard link");
        assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
    }
}
