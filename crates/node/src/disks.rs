//! Which block devices the node mounts, where, and how; and why it leaves the others alone.
//!
//! Minimal impact is the rule: every filesystem is mounted read-only *and* without replaying
//! its journal or log (`noload` for ext2/3/4, `norecovery` for XFS, `rescue=nologreplay` for
//! btrfs; a read-only mount that replays a journal writes to the disk), and the shell sets the
//! block device itself read-only first (`BLKROSET`), so a filesystem driver that would write
//! anyway cannot. Nothing mounted is executable, setuid or a device node (`nodev,nosuid,noexec`):
//! the files are strangers' and are only served. The one exception is a disk or partition the
//! owner labelled `ELCHOS-DATA`: donated space, never shared, kept for datasets.
//!
//! Input: what the shell read from sysfs and `blkid -p` (a low-level probe that only reads).
//! Output: a [`Plan`] per device, in device order, with mount points that are unique and safe
//! as one path component.

/// The label that marks donated space.
pub const DONATED_LABEL: &str = "ELCHOS-DATA";
/// Where shares are mounted: `/srv/elchos/<name>`.
pub const SHARE_ROOT: &str = "/srv/elchos";
/// Longest mount point name (a label can be long; a path component must not be).
const MAX_NAME: usize = 64;

/// What a block device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole disk (`sda`, `vdb`, `nvme0n1`).
    Disk,
    Partition,
    /// An md RAID array (assembled read-only by the shell).
    Raid,
    /// A CD/DVD drive (`sr0`).
    Optical,
    /// Loop, RAM, zram and device-mapper devices: the system's own, never a share.
    Virtual,
}

/// One block device as the shell found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `/dev/vdb1`.
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    /// `TYPE` from `blkid -p` (`ext4`, `vfat`, `linux_raid_member`, …), if it found one.
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// A whole disk with a partition table: its partitions are what counts.
    pub has_partitions: bool,
}

/// How to mount one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `/srv/elchos/<name>`.
    pub at: String,
    /// The share's name: the mount point's last component.
    pub name: String,
    /// The kernel's filesystem type (`ntfs3` for NTFS).
    pub fstype: &'static str,
    /// `mount(2)` data: the filesystem's own no-replay option, and the rest.
    pub options: &'static str,
}

/// What the node does with a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Mount it read-only and share it.
    Share(Mount),
    /// Labelled `ELCHOS-DATA`: the owner's donation, not shared.
    Donated,
    /// Left alone, and why (shown on the node's page).
    Skip(String),
}

/// Flags every share is mounted with (besides read-only, which is `MS_RDONLY`).
pub const MOUNT_FLAGS: &str = "ro,nodev,nosuid,noexec,noatime";

/// The kernel type and the no-replay options for a filesystem `blkid` named, if we mount it.
fn how(fstype: &str) -> Option<(&'static str, &'static str)> {
    Some(match fstype {
        "ext2" | "ext3" | "ext4" => ("ext4", "noload"),
        "xfs" => ("xfs", "norecovery"),
        "btrfs" => ("btrfs", "rescue=nologreplay"),
        "vfat" => ("vfat", "iocharset=utf8"),
        "exfat" => ("exfat", "iocharset=utf8"),
        "ntfs" => ("ntfs3", "iocharset=utf8"),
        "iso9660" => ("iso9660", ""),
        "udf" => ("udf", ""),
        _ => return None,
    })
}

/// Why a device with this `blkid` type (or none) is not mounted.
fn why_not(fstype: Option<&str>) -> String {
    match fstype {
        None => "no filesystem found".into(),
        Some("linux_raid_member") => "part of an md RAID array (the array is shared once assembled)".into(),
        Some("swap") => "swap space".into(),
        Some("crypto_LUKS") => "encrypted (LUKS): the node has no key".into(),
        Some("LVM2_member") => "an LVM physical volume (not assembled)".into(),
        Some(other) => format!("filesystem {other} is not one the node mounts"),
    }
}

/// A safe path component from a label: letters, digits, `-`, `_`, `.` kept, the rest `_`;
/// never empty, `.` or `..`; at most [`MAX_NAME`] bytes.
pub fn safe_name(raw: &str) -> Option<String> {
    let s: String = raw.trim().chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).take(MAX_NAME).collect();
    let s = s.trim_matches('.').to_string();
    (!s.is_empty() && s.bytes().any(|b| b != b'_')).then_some(s)
}

/// The plan for every device, in the order given; mount points unique (a second `music` is
/// `music-2`).
pub fn plan(devices: &[Device]) -> Vec<(Device, Plan)> {
    let mut taken: Vec<String> = Vec::new();
    devices
        .iter()
        .map(|d| {
            let p = plan_one(d, &mut taken);
            (d.clone(), p)
        })
        .collect()
}

fn plan_one(d: &Device, taken: &mut Vec<String>) -> Plan {
    match d.kind {
        Kind::Virtual => return Plan::Skip("the system's own (loop, RAM or mapped device)".into()),
        Kind::Disk if d.has_partitions => return Plan::Skip("partitioned: its partitions are listed".into()),
        _ => {}
    }
    if d.size == 0 {
        return Plan::Skip("empty (no medium)".into());
    }
    if d.label.as_deref() == Some(DONATED_LABEL) {
        return Plan::Donated;
    }
    let Some((fstype, options)) = d.fstype.as_deref().and_then(how) else {
        return Plan::Skip(why_not(d.fstype.as_deref()));
    };
    let device_name = d.path.rsplit('/').next().unwrap_or(&d.path);
    let base = d.label.as_deref().and_then(safe_name).or_else(|| d.uuid.as_deref().and_then(safe_name)).or_else(|| safe_name(device_name)).unwrap_or_else(|| "disk".into());
    let mut name = base.clone();
    let mut n = 1;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    taken.push(name.clone());
    Plan::Share(Mount { at: format!("{SHARE_ROOT}/{name}"), name, fstype, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str, kind: Kind, fstype: Option<&str>, label: Option<&str>) -> Device {
        Device { path: path.into(), kind, size: 1 << 30, fstype: fstype.map(Into::into), label: label.map(Into::into), uuid: Some("1234-ABCD".into()), has_partitions: false }
    }

    fn share(p: &Plan) -> &Mount {
        match p {
            Plan::Share(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_filesystem_is_mounted_read_only_without_replaying_its_journal() {
        for (blkid, kernel, replay_off) in [
            ("ext4", "ext4", "noload"),
            ("ext3", "ext4", "noload"),
            ("ext2", "ext4", "noload"),
            ("xfs", "xfs", "norecovery"),
            ("btrfs", "btrfs", "rescue=nologreplay"),
            ("vfat", "vfat", ""),
            ("exfat", "exfat", ""),
            ("ntfs", "ntfs3", ""),
            ("iso9660", "iso9660", ""),
        ] {
            let plans = plan(&[dev("/dev/vdb1", Kind::Partition, Some(blkid), Some("data"))]);
            let m = share(&plans[0].1);
            assert_eq!((m.fstype, m.at.as_str()), (kernel, "/srv/elchos/data"), "{blkid}");
            assert!(m.options.contains(replay_off), "{blkid}: {}", m.options);
        }
        assert!(MOUNT_FLAGS.split(',').collect::<Vec<_>>().starts_with(&["ro", "nodev", "nosuid", "noexec"]));
    }

    #[test]
    fn what_is_left_alone_says_why() {
        let cases = [
            (dev("/dev/vda", Kind::Disk, None, None), "partitioned"),
            (dev("/dev/vdc1", Kind::Partition, Some("linux_raid_member"), None), "md RAID"),
            (dev("/dev/vdc2", Kind::Partition, Some("swap"), None), "swap"),
            (dev("/dev/vdc3", Kind::Partition, Some("crypto_LUKS"), None), "LUKS"),
            (dev("/dev/vdc4", Kind::Partition, Some("zfs_member"), None), "zfs_member is not one"),
            (dev("/dev/vdc5", Kind::Partition, None, None), "no filesystem"),
            (dev("/dev/loop0", Kind::Virtual, Some("squashfs"), None), "system's own"),
        ];
        for (mut d, why) in cases {
            if why == "partitioned" {
                d.has_partitions = true;
            }
            match &plan(std::slice::from_ref(&d))[0].1 {
                Plan::Skip(reason) => assert!(reason.contains(why), "{}: {reason}", d.path),
                other => panic!("{}: {other:?}", d.path),
            }
        }
        let empty = Device { size: 0, ..dev("/dev/sr0", Kind::Optical, Some("iso9660"), None) };
        assert!(matches!(&plan(&[empty])[0].1, Plan::Skip(r) if r.contains("no medium")));
    }

    #[test]
    fn donated_space_is_never_shared() {
        let p = plan(&[dev("/dev/vdd", Kind::Disk, Some("ext4"), Some(DONATED_LABEL)), dev("/dev/vde1", Kind::Partition, Some("vfat"), Some(DONATED_LABEL))]);
        assert!(p.iter().all(|(_, p)| *p == Plan::Donated), "{p:?}");
    }

    #[test]
    fn mount_points_are_unique_safe_names() {
        let devices = [
            dev("/dev/vdb1", Kind::Partition, Some("ext4"), Some("music")),
            dev("/dev/vdb2", Kind::Partition, Some("ext4"), Some("music")),
            dev("/dev/vdb3", Kind::Partition, Some("vfat"), Some("../../etc")),
            dev("/dev/vdb4", Kind::Partition, Some("ntfs"), Some("Meine Bilder/2024")),
            dev("/dev/vdb5", Kind::Partition, Some("ext4"), Some("..")),
            Device { uuid: None, ..dev("/dev/md127", Kind::Raid, Some("ext4"), None) },
            dev("/dev/vdb6", Kind::Partition, Some("xfs"), Some(&"x".repeat(300))),
        ];
        let names: Vec<String> = plan(&devices).iter().map(|(_, p)| share(p).name.clone()).collect();
        assert_eq!(names[..6], ["music", "music-2", "_.._etc", "Meine_Bilder_2024", "1234-ABCD", "md127"]);
        assert_eq!(names[6].len(), MAX_NAME);
        for n in &names {
            assert!(!n.contains('/') && n != "." && n != ".." && !n.is_empty(), "{n}");
        }
    }
}
