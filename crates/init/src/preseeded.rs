//! Files this machine pre-seeded on its donated disk, copied into the stub's image directory
//! before the fetch (see `swarmboot_init::donated`): the fetch then checks every piece of
//! them against the signed torrent, as it does when it resumes, and fetches only what is
//! missing or wrong.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use swarmboot_image::FileEntry;
use swarmboot_init::donated::{self, DONATED_FS, DONATED_LABEL, EXT4_HEAD};

use crate::console::say;

/// Where the donated filesystem is mounted for a moment (on the stub's /run tmpfs).
const MOUNT_AT: &str = "/run/swarmboot/donated";

/// What was found on the donated disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct FromDisk {
    pub files: usize,
    pub bytes: u64,
}

/// Copies every one of `files` that the donated disk holds at its signed size into `out` (as
/// `<sha256>`, where the fetch looks), unless `out` has it already (a fetch tried before).
/// Nothing found, no such disk, or any error: nothing copied, and the fetch gets it all from
/// the network as it would have.
pub fn copy_into(files: &[&FileEntry], out: &Path) -> FromDisk {
    let Some(device) = find_device() else { return FromDisk::default() };
    let at = Path::new(MOUNT_AT);
    if let Err(e) = std::fs::create_dir_all(at) {
        say(format!("cannot make {MOUNT_AT} for the donated disk: {e}"));
        return FromDisk::default();
    }
    // Read-only and `noload`: the journal is not replayed, the disk is never written.
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    if let Err(e) = mount(Some(&device), at, Some(DONATED_FS), flags, Some("noload")) {
        say(format!("the donated disk {} ({DONATED_LABEL}) did not mount read-only: {e}; fetching everything", device.display()));
        return FromDisk::default();
    }
    let mut found = FromDisk::default();
    for f in files {
        let Some(src) = donated::preseeded_path(at, &f.sha256) else { continue };
        let dst = out.join(&f.sha256);
        let on_disk = std::fs::metadata(&src).map(|m| m.is_file() && m.len() == f.size).unwrap_or(false);
        if !on_disk || dst.exists() {
            continue;
        }
        match copy(&src, &dst) {
            Ok(()) => {
                found.files += 1;
                found.bytes += f.size;
            }
            Err(e) => {
                say(format!("copying {} from the donated disk failed: {e}; fetching it instead", f.sha256));
                let _ = std::fs::remove_file(&dst);
            }
        }
    }
    if let Err(e) = umount2(at, MntFlags::MNT_DETACH) {
        say(format!("unmounting the donated disk: {e}"));
    }
    let _ = std::fs::remove_dir(at);
    if found.files > 0 {
        say(format!(
            "{} file(s), {} MiB, of this image were pre-seeded on the donated disk {} ({DONATED_LABEL}): checking every piece against the signed torrents",
            found.files,
            found.bytes >> 20,
            device.display()
        ));
    }
    found
}

/// A temporary name, then a rename: a half-copied file never looks like a whole one.
fn copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    let tmp = dst.with_extension("from-disk");
    std::fs::copy(src, &tmp)?;
    std::fs::rename(&tmp, dst)
}

/// The first block device (disk or partition) whose ext4 label is `ELCHOS-DATA`.
fn find_device() -> Option<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block").ok()?.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    names.into_iter().filter(|n| donated::worth_probing(n)).map(|n| PathBuf::from("/dev").join(n)).find(|dev| {
        let mut head = [0u8; EXT4_HEAD];
        let read = std::fs::File::open(dev).and_then(|mut f| f.read_exact(&mut head));
        read.is_ok() && donated::ext4_label(&head).as_deref() == Some(DONATED_LABEL)
    })
}
