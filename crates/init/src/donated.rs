//! The donated disk as the stub sees it. An elchOS machine's donor fetches the next version of
//! the image it booted onto its donated space (`ELCHOS-DATA`) before anyone reboots into it;
//! RAM does not outlive the reboot, that disk does. So the stub looks for an ext4 filesystem
//! labelled `ELCHOS-DATA`, mounts it read-only, and copies the files it is about to fetch from
//! the donor's store there into its own directory, where the fetch resumes from them.
//!
//! What is on the disk is only a head start, never trusted: every copied piece is checked
//! against the torrent whose info hash the signed manifest gives, and each file whole by
//! SHA-256, as a fetched one is; a piece that fails is fetched from peers. The disk is never
//! written (read-only, and without replaying its journal).
//!
//! Here: the label and where a donor keeps a file (pure); the shell is the binary's
//! `preseeded` module.

use std::path::{Path, PathBuf};

/// The label of donated space (elchOS's agent formats a blank partition named so with it).
pub const DONATED_LABEL: &str = "ELCHOS-DATA";

/// The donor's directory on the donated filesystem (elchOS mounts the filesystem at
/// `/srv/elchos-data` and runs its donor in `/srv/elchos-data/donor`).
pub const DONOR_SUBDIR: &str = "donor";

/// The filesystem the stub reads donated space from (the one elchOS formats; an XFS or btrfs
/// disk labelled `ELCHOS-DATA` serves its donor, but the stub carries no driver for it).
pub const DONATED_FS: &str = "ext4";

/// The modules that read [`DONATED_FS`], in load order (the stub builder carries them): ext4
/// checksums its metadata with crc32c, a soft dependency `modules.dep` does not list, and the
/// stub has no modprobe for the kernel to ask.
pub const DONATED_FS_MODULES: [&str; 2] = ["crypto-crc32c", "fs-ext4"];

/// Bytes from a device's start that [`ext4_label`] needs: the superblock is at 1024.
pub const EXT4_HEAD: usize = 2048;

const SUPERBLOCK: usize = 1024;
const MAGIC_AT: usize = 0x38;
const EXT4_MAGIC: u16 = 0xEF53;
const LABEL_AT: usize = 0x78;
const LABEL_LEN: usize = 16;

/// The volume label of the ext2/3/4 filesystem whose first [`EXT4_HEAD`] bytes are `head`;
/// `None` if it is no such filesystem (or the head is short). A label that is not UTF-8 is
/// read lossily (it can never equal ours then).
pub fn ext4_label(head: &[u8]) -> Option<String> {
    let sb = head.get(SUPERBLOCK..SUPERBLOCK + LABEL_AT + LABEL_LEN)?;
    if u16::from_le_bytes([sb[MAGIC_AT], sb[MAGIC_AT + 1]]) != EXT4_MAGIC {
        return None;
    }
    let label = &sb[LABEL_AT..LABEL_AT + LABEL_LEN];
    let end = label.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
    Some(String::from_utf8_lossy(&label[..end]).into_owned())
}

/// Whether a block device named `name` (in `/sys/class/block`) could hold donated space:
/// not a loop, RAM, zram or optical device, nor a device-mapper or md device (they are
/// assembled later, by the booted system).
pub fn worth_probing(name: &str) -> bool {
    !["loop", "ram", "zram", "sr", "dm-", "md", "nbd"].iter().any(|p| name.starts_with(p))
}

/// Where the donor on a donated filesystem mounted at `fs_root` keeps the file with this
/// SHA-256 (`donor/store/ab/abcd/<sha256>`); `None` for anything that is not a SHA-256.
pub fn preseeded_path(fs_root: &Path, sha256: &str) -> Option<PathBuf> {
    Some(fs_root.join(DONOR_SUBDIR).join("store").join(swarmboot_image::relative_path(sha256)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 2048 bytes of an ext4 filesystem as mkfs.ext4 leaves them, with this label.
    fn head(label: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; EXT4_HEAD];
        h[SUPERBLOCK + MAGIC_AT..SUPERBLOCK + MAGIC_AT + 2].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        h[SUPERBLOCK + LABEL_AT..SUPERBLOCK + LABEL_AT + label.len()].copy_from_slice(label);
        h
    }

    #[test]
    fn the_label_is_read_from_the_superblock() {
        assert_eq!(ext4_label(&head(b"ELCHOS-DATA")).as_deref(), Some(DONATED_LABEL));
        assert_eq!(ext4_label(&head(b"")).as_deref(), Some(""));
        assert_eq!(ext4_label(&head(b"SIXTEEN-BYTES-XY")).as_deref(), Some("SIXTEEN-BYTES-XY"), "a full 16-byte label has no NUL");
    }

    #[test]
    fn anything_else_has_no_label() {
        let mut not_ext = head(b"ELCHOS-DATA");
        not_ext[SUPERBLOCK + MAGIC_AT] = 0;
        assert_eq!(ext4_label(&not_ext), None, "no ext magic");
        assert_eq!(ext4_label(&head(b"ELCHOS-DATA")[..SUPERBLOCK + LABEL_AT + 4]), None, "cut short");
        assert_eq!(ext4_label(&[]), None);
        assert_eq!(ext4_label(&vec![0xff; EXT4_HEAD]), None);
    }

    #[test]
    fn only_disks_and_partitions_are_probed() {
        for name in ["vda", "vdb1", "sda2", "nvme0n1p3", "mmcblk0p1", "hda"] {
            assert!(worth_probing(name), "{name}");
        }
        for name in ["loop0", "ram1", "zram0", "sr0", "dm-0", "md127", "nbd3"] {
            assert!(!worth_probing(name), "{name}");
        }
    }

    #[test]
    fn files_are_where_the_donor_keeps_them() {
        let sha = "ab".repeat(32);
        assert_eq!(preseeded_path(Path::new("/m"), &sha).unwrap(), Path::new("/m/donor/store/ab/abab").join(&sha));
        assert_eq!(preseeded_path(Path::new("/m"), "../../etc/shadow"), None);
        assert_eq!(preseeded_path(Path::new("/m"), &"AB".repeat(32)), None, "upper-case hex is not a store name");
    }
}
