//! Writes into the state directory that survive a crash and cannot be turned against root.
//!
//! - **Crash-safe.** A file is written whole under a temporary name in its own directory,
//!   synced, then put in place by `rename` ([`replace`]) or by `link`, which fails if the name
//!   exists ([`publish_new`]: a version number claimed and filled in one step); the directory
//!   is synced after. A crash leaves the old file or the new one, never a part, and at worst
//!   a stray `.tmp-*` file ([`is_temporary`] names them for cleaning).
//! - **No planted links.** The state directory belongs to the service user; root's CLI
//!   (`image add` from the LTSP plugin) writes there too. Temporary names are unpredictable
//!   and created with `O_CREAT | O_EXCL` (which never follows a symbolic link), and `rename`
//!   and `link` replace or refuse a link at the final name rather than write through it. So a
//!   link planted by a compromised service leaves its target untouched.
//! - **Root writes as the directory's owner.** A link can also be planted one level up: the
//!   service swaps `images/NAME` for a link to `/etc`, and a rename into `images/NAME/2.toml`
//!   lands in `/etc`. So once [`write_as_owner_of`] has named the state directory, every
//!   change this crate makes (files, directories, renames, links, removals) is made, on the
//!   calling thread and for that call only, with the file-system identity of the directory's
//!   owner (`setfsuid`/`setfsgid`, no supplementary groups; the kernel drops root's file
//!   capabilities with it): wherever a link leads, root can do there only what the service
//!   could do itself. Reads keep root's identity (root reads files the service cannot, such
//!   as `/boot/vmlinuz-*`), and what root creates is the owner's from the start.
//! - **Crash points.** [`crash_point`] ends the process on the spot when `SWARMBOOT_CRASH_AT`
//!   names it: the fault tests kill a writer at every step and check what is left. [`replace`]
//!   and [`publish_new`] have one each after the temporary file is written (`replace:EXT`,
//!   `publish:EXT`, by the file's extension).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that names the crash point to die at (tests only).
pub const CRASH_AT: &str = "SWARMBOOT_CRASH_AT";

/// Ends the process here, as `kill -9` would (no destructors, nothing flushed), when
/// [`CRASH_AT`] names `point`.
pub fn crash_point(point: &str) {
    if std::env::var_os(CRASH_AT).is_some_and(|v| v == point) {
        std::process::abort();
    }
}

/// The owner (uid, gid) whose identity this process's changes take (see [`write_as_owner_of`]).
static OWNER: OnceLock<(u32, u32)> = OnceLock::new();

/// When this process runs as root and `state_dir` belongs to someone else, makes every
/// later change through this crate take that owner's file-system identity; returns the owner's
/// uid then, `None` otherwise (not root, a root-owned or missing directory: nothing changes).
/// Set once per process; a second call with another owner is refused.
pub fn write_as_owner_of(state_dir: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let m = match std::fs::metadata(state_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if m.uid() == 0 {
        return Ok(None);
    }
    let owner = *OWNER.get_or_init(|| (m.uid(), m.gid()));
    if owner != (m.uid(), m.gid()) {
        return Err(std::io::Error::other(format!("{} belongs to {}:{}, but this process already writes as {}:{}", state_dir.display(), m.uid(), m.gid(), owner.0, owner.1)));
    }
    Ok(Some(owner.0))
}

/// The calling thread's file-system identity switched to the owner's until dropped (nothing
/// switched when no owner was named).
struct AsOwner {
    /// Root's supplementary groups, to give back.
    groups: Option<Vec<rustix::process::Gid>>,
}

fn as_owner() -> std::io::Result<AsOwner> {
    use nix::unistd::{setfsgid, setfsuid, Gid, Uid};
    let Some(&(uid, gid)) = OWNER.get() else {
        return Ok(AsOwner { groups: None });
    };
    let groups = rustix::process::getgroups()?;
    // This thread only: rustix's setgroups is the raw system call (glibc's would change every
    // thread), and setfsuid/setfsgid are per thread.
    rustix::thread::set_thread_groups(&[])?;
    let guard = AsOwner { groups: Some(groups) };
    setfsgid(Gid::from_raw(gid));
    setfsuid(Uid::from_raw(uid));
    // Both calls report the previous id, whatever happened: an invalid id (-1) only asks.
    let now = (setfsuid(Uid::from_raw(u32::MAX)).as_raw(), setfsgid(Gid::from_raw(u32::MAX)).as_raw());
    if now != (uid, gid) {
        return Err(std::io::Error::other(format!("cannot take the state directory owner's identity ({uid}:{gid}) for writing")));
    }
    Ok(guard)
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        if let Some(groups) = &self.groups {
            nix::unistd::setfsuid(nix::unistd::Uid::from_raw(0));
            nix::unistd::setfsgid(nix::unistd::Gid::from_raw(0));
            let _ = rustix::thread::set_thread_groups(groups);
        }
    }
}

/// `f` with the owner's identity (see [`write_as_owner_of`]).
fn owned<T>(f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let _as = as_owner()?;
    f()
}

const TEMP_PREFIX: &str = ".tmp-";

/// Whether a file name is one of our temporary names (left behind by a crash).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// An unpredictable name in `dir`: pid, a counter, the clock and random bytes.
fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut random = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut random);
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{TEMP_PREFIX}{}-{n}-{nanos:x}-{:016x}", std::process::id(), u64::from_le_bytes(random)))
}

/// Creates `path`, which must not exist (not even as a symbolic link: `O_CREAT | O_EXCL` fails
/// on a link, whatever it points to), for writing.
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    owned(|| OpenOptions::new().write(true).create_new(true).mode(mode).open(path))
}

/// Creates `path` and its missing parents (see `std::fs::create_dir_all`).
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    owned(|| std::fs::create_dir_all(path))
}

/// Removes the file (or link) at `path`.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    owned(|| std::fs::remove_file(path))
}

/// Removes the directory `path` if it is empty.
pub fn remove_dir(path: &Path) -> std::io::Result<()> {
    owned(|| std::fs::remove_dir(path))
}

/// A new file in `path`'s directory under a temporary name, holding `bytes`, synced.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<PathBuf> {
    let dir = path.parent().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a directory"))?;
    let tmp = temp_path(dir);
    let mut f = create_new(&tmp, mode)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// What a crash point after writing `path`'s temporary file is called by: `replace:sig`,
/// `publish:toml`, … (the file name's extension).
fn extension(path: &Path) -> &str {
    path.extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// Syncs a directory, so a rename or link in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    owned(|| File::open(dir))?.sync_all()
}

/// Writes `bytes` to `path`, replacing what is there (a link there is replaced, not followed).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    crash_point(&format!("replace:{}", extension(path)));
    if let Err(e) = owned(|| std::fs::rename(&tmp, path)) {
        let _ = remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path.parent().expect("checked in write_temp"))
}

/// Writes `bytes` to `path` only if nothing is there (a link there counts): `Ok(false)` if
/// something is. The name is claimed and filled in one step, so no reader ever sees it empty.
pub fn publish_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    let tmp = write_temp(path, bytes, mode)?;
    crash_point(&format!("publish:{}", extension(path)));
    let linked = owned(|| std::fs::hard_link(&tmp, path));
    let _ = remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path.parent().expect("checked in write_temp"))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Holds an exclusive lock on `path` (created if missing, never through a link) until the
/// returned file is dropped: writers of one catalog (`image add`, `rm`, `gc`) take turns.
pub fn lock_exclusive(path: &Path) -> std::io::Result<File> {
    let f = owned(|| OpenOptions::new().read(true).write(true).create(true).mode(0o640).custom_flags(libc::O_NOFOLLOW).open(path))?;
    f.lock()?;
    Ok(f)
}

/// Moves a file written and synced elsewhere in the same filesystem to `path` (replacing),
/// and syncs `path`'s directory.
pub fn move_into_place(from: &Path, path: &Path) -> std::io::Result<()> {
    owned(|| std::fs::rename(from, path))?;
    sync_dir(path.parent().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a directory"))?)
}

/// A new temporary file in `dir` for a large write the caller streams, syncs and then moves
/// with [`move_into_place`].
pub fn create_temp_in(dir: &Path, mode: u32) -> std::io::Result<(File, PathBuf)> {
    let tmp = temp_path(dir);
    Ok((create_new(&tmp, mode)?, tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_lock_is_exclusive_and_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("catalog.lock");
        let held = lock_exclusive(&p).unwrap();
        let other = OpenOptions::new().read(true).open(&p).unwrap();
        assert!(other.try_lock().is_err(), "held");
        drop(held);
        assert!(other.try_lock().is_ok(), "released");
        let link = dir.path().join("planted.lock");
        symlink(dir.path().join("absent"), &link).unwrap();
        assert!(lock_exclusive(&link).is_err());
        assert!(!dir.path().join("absent").exists(), "a dangling link made nothing");
    }

    #[test]
    fn replace_and_publish_write_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        replace(&p, b"one", 0o640).unwrap();
        replace(&p, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let n = dir.path().join("1.toml");
        assert!(publish_new(&n, b"first", 0o640).unwrap());
        assert!(!publish_new(&n, b"second", 0o640).unwrap(), "the name was taken");
        assert_eq!(std::fs::read(&n).unwrap(), b"first");
        let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| is_temporary(n)), "no temporary file left: {names:?}");
    }

    /// A compromised service plants links where root's CLI writes: at the final names, and at
    /// a name a temporary file could have. Their targets stay untouched.
    #[test]
    fn planted_links_leave_their_targets_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"root's file").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        // At the final name: replace swaps the link out, publish refuses.
        symlink(&victim, state.join("stub.toml")).unwrap();
        replace(&state.join("stub.toml"), b"stub", 0o640).unwrap();
        symlink(&victim, state.join("2.toml")).unwrap();
        assert!(!publish_new(&state.join("2.toml"), b"manifest", 0o640).unwrap());
        // At a temporary name: creating it fails instead of writing through.
        let planted = state.join(".tmp-planted");
        symlink(&victim, &planted).unwrap();
        assert_eq!(create_new(&planted, 0o640).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"root's file");
        assert!(!std::fs::symlink_metadata(state.join("stub.toml")).unwrap().file_type().is_symlink());
    }
}
