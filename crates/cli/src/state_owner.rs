//! The CLI run as root on a state directory the service owns (the Debian package runs the
//! server as the `swarmboot` user): whatever root created in it — store files, torrents, the
//! signing key, the lease database's side files — is handed to the directory's owner
//! afterwards, so the service can read and write it. Root-owned state directories (a server
//! run as root) are left alone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Gives every root-owned entry under `state_dir` to the owner of `state_dir`; returns how
/// many changed. Does nothing unless this process is root and the owner is not.
pub fn hand_back(state_dir: &Path) -> std::io::Result<usize> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(0);
    }
    let top = match std::fs::metadata(state_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if top.uid() == 0 {
        return Ok(0);
    }
    let mut changed = 0;
    let mut stack = vec![state_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let m = std::fs::symlink_metadata(&path)?;
            if m.uid() == 0 {
                std::os::unix::fs::lchown(&path, Some(top.uid()), Some(top.gid()))?;
                changed += 1;
            }
            if m.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root (CI is): files root makes in a directory owned by `nobody` become nobody's.
    #[test]
    fn roots_files_go_to_the_directorys_owner() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("SWARMBOOT_SKIP_LAB").is_some(), "needs root (to chown); set SWARMBOOT_SKIP_LAB=1 to skip on purpose");
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
}
