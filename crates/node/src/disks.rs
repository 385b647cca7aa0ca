//! Which block devices the node mounts, where, and how; and why it leaves the others alone.
//!
//! Minimal impact is the rule: every filesystem is mounted read-only *and* without replaying
//! its journal or log (`noload` for ext2/3/4, `norecovery` for XFS, `rescue=nologreplay` for
//! btrfs; a read-only mount that replays a journal writes to the disk), and the shell sets the
//! block device itself read-only first (`BLKROSET`): filesystems then refuse to mount it
//! writable or to replay a journal on it, and the kernel logs any write that still comes. Nothing mounted is executable, setuid or a device node (`nodev,nosuid,noexec`):
//! the files are strangers' and are only served. The one exception is a disk or partition the
//! owner labelled `ELCHOS-DATA`: donated space, mounted writable at [`DONATED_AT`] for the
//! fleet's datasets and never shared as a disk. A filesystem labelled so is used as it is; a
//! GPT partition *named* `ELCHOS-DATA` with no filesystem on it is formatted (ext4) first —
//! the only thing the node ever formats, and never anything holding a filesystem.
//!
//! Input: what the shell read from sysfs and `blkid -p` (a low-level probe that only reads).
//! Output: a [`Plan`] per device, in device order, with mount points that are unique and safe
//! as one path component.

use std::collections::BTreeMap;

use swarmboot_checkin::report::Disk;

/// The label that marks donated space, and the filesystem made on a blank donated partition
/// (the stub reads pre-seeded files from it after a reboot: `swarmboot_init::donated`).
pub use swarmboot_init::donated::{DONATED_FS, DONATED_LABEL};
/// Where shares are mounted: `/srv/elchos/<name>`.
pub const SHARE_ROOT: &str = "/srv/elchos";
/// Where donated space is mounted (writable; outside the shares).
pub const DONATED_AT: &str = "/srv/elchos-data";
/// The donor's directory on donated space (`swarmboot_donor::dir`): [`DONATED_AT`] /
/// `swarmboot_init::donated::DONOR_SUBDIR`, where the stub looks after a reboot.
pub const DONOR_DIR: &str = "/srv/elchos-data/donor";
/// The share that shows the datasets held on donated space (the donor's `view/`); no disk
/// takes this name.
pub const DATASETS_SHARE: &str = "datasets";
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
    /// A floppy drive (`fd0`): not probed (an empty drive answers with I/O errors, slowly).
    Floppy,
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
    /// The partition's own name in its (GPT) table, if it has one.
    pub part_label: Option<String>,
    /// A whole disk with a partition table: its partitions are what counts.
    pub has_partitions: bool,
    /// Something holds it already (sysfs `holders/`: a running md array or a mapping).
    pub held: bool,
}

/// How to mount one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `/srv/elchos/<name>`.
    pub at: String,
    /// The share's name: the mount point's last component.
    pub name: String,
    /// The kernel's filesystem type ([`NTFS_3G`] for NTFS: mounted by ntfs-3g).
    pub fstype: &'static str,
    /// `mount(2)` data: the filesystem's own no-replay option, and the rest.
    pub options: &'static str,
}

/// What the node does with a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Mount it read-only and share it.
    Share(Mount),
    /// Labelled `ELCHOS-DATA`: the owner's donation, mounted writable for datasets, not shared.
    Donate(Donation),
    /// Left alone, and why (shown on the node's page).
    Skip(String),
}

/// How donated space is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Donation {
    /// The kernel's filesystem type (mounted writable, with its journal replayed as usual).
    pub fstype: &'static str,
    /// A blank partition named `ELCHOS-DATA`: make an ext4 filesystem labelled so first.
    pub format: bool,
}

/// Flags every share is mounted with (besides read-only, which is `MS_RDONLY`).
pub const MOUNT_FLAGS: &str = "ro,nodev,nosuid,noexec,noatime";

/// The "type" of a filesystem mounted by ntfs-3g (a FUSE program) rather than the kernel.
pub const NTFS_3G: &str = "ntfs-3g";

/// The kernel type and the no-replay options for a filesystem `blkid` named, if we mount it.
fn how(fstype: &str) -> Option<(&'static str, &'static str)> {
    Some(match fstype {
        "ext2" | "ext3" | "ext4" => ("ext4", "noload"),
        "xfs" => ("xfs", "norecovery"),
        "btrfs" => ("btrfs", "rescue=nologreplay"),
        "vfat" => ("vfat", "iocharset=utf8"),
        "exfat" => ("exfat", "iocharset=utf8"),
        // Debian 12's kernel has no ntfs3: NTFS is read by ntfs-3g (FUSE), read-only.
        "ntfs" => (NTFS_3G, ""),
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
/// `music-2`). `kept`: devices mounted by an earlier pass and the names they have, which they
/// keep (a disk plugged in later never takes a mounted share's name).
pub fn plan(devices: &[Device], kept: &BTreeMap<String, String>) -> Vec<(Device, Plan)> {
    let mut taken: Vec<String> = kept.values().cloned().chain([DATASETS_SHARE.to_string()]).collect();
    let mut donation: Option<&str> = None;
    devices
        .iter()
        .map(|d| {
            let mut p = plan_one(d, kept.get(&d.path), &mut taken);
            if let Plan::Donate(_) = p {
                // One donation per machine: the first in device order.
                match donation {
                    Some(first) => p = Plan::Skip(format!("labelled {DONATED_LABEL} too, but {first} is this machine's donated space (one per machine)")),
                    None => donation = Some(&d.path),
                }
            }
            (d.clone(), p)
        })
        .collect()
}

/// How a device marked as donated is used, or why it is left alone.
fn donation(d: &Device) -> Option<Plan> {
    let labelled = d.label.as_deref() == Some(DONATED_LABEL);
    let named = d.part_label.as_deref() == Some(DONATED_LABEL);
    match (d.fstype.as_deref(), labelled, named) {
        (Some(fs @ ("ext2" | "ext3" | "ext4" | "xfs" | "btrfs")), true, _) => {
            let fstype = match fs {
                "xfs" => "xfs",
                "btrfs" => "btrfs",
                _ => "ext4",
            };
            Some(Plan::Donate(Donation { fstype, format: false }))
        }
        (Some(fs), true, _) => Some(Plan::Skip(format!("labelled {DONATED_LABEL}, but {fs} is not a filesystem donated space can use (ext4, XFS or btrfs): left alone"))),
        (None, _, true) => Some(Plan::Donate(Donation { fstype: DONATED_FS, format: true })),
        (Some(fs), false, true) => Some(Plan::Skip(format!(
            "a partition named {DONATED_LABEL} that holds a {fs} filesystem not labelled {DONATED_LABEL}: left alone (only a blank one is formatted); label the filesystem {DONATED_LABEL} to donate it as it is"
        ))),
        _ => None,
    }
}

fn plan_one(d: &Device, kept: Option<&String>, taken: &mut Vec<String>) -> Plan {
    match d.kind {
        Kind::Virtual => return Plan::Skip("the system's own (loop, RAM or mapped device)".into()),
        Kind::Floppy => return Plan::Skip("a floppy drive: not probed".into()),
        Kind::Disk if d.has_partitions => return Plan::Skip("partitioned: its partitions are listed".into()),
        _ => {}
    }
    if d.size == 0 {
        return Plan::Skip("empty (no medium)".into());
    }
    if let Some(p) = donation(d) {
        return p;
    }
    let Some((fstype, options)) = d.fstype.as_deref().and_then(how) else {
        return Plan::Skip(why_not(d.fstype.as_deref()));
    };
    if let Some(name) = kept {
        return Plan::Share(Mount { at: format!("{SHARE_ROOT}/{name}"), name: name.clone(), fstype, options });
    }
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

/// Mount points under `root` in `/proc/self/mountinfo` text (its fifth field, octal escapes
/// undone), deepest first: what an earlier run of the agent left mounted.
pub fn mounts_under(mountinfo: &str, root: &str) -> Vec<String> {
    let prefix = format!("{}/", root.trim_end_matches('/'));
    let mut out: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| {
            let b = p.as_bytes();
            let mut s = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                match (b[i], b.get(i + 1..i + 4).and_then(|o| std::str::from_utf8(o).ok()).and_then(|o| u8::from_str_radix(o, 8).ok())) {
                    (b'\\', Some(c)) => {
                        s.push(c);
                        i += 4;
                    }
                    (c, _) => {
                        s.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&s).into_owned()
        })
        .filter(|p| p.starts_with(&prefix))
        .collect();
    out.sort_by_key(|p| (std::cmp::Reverse(p.matches('/').count()), p.clone()));
    out.dedup();
    out
}

/// An md RAID array to assemble read-only: its UUID (as `blkid` prints it) and the members
/// found, in device order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaidSet {
    pub uuid: String,
    pub members: Vec<String>,
}

/// Most members one array may list (md's own limit is far higher; a machine has a few disks).
pub const MAX_MEMBERS: usize = 64;

/// The arrays whose members are here and not yet part of a running array.
pub fn raid_sets(devices: &[Device]) -> Vec<RaidSet> {
    let mut sets: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in devices.iter().filter(|d| d.fstype.as_deref() == Some("linux_raid_member") && !d.held && d.kind != Kind::Virtual) {
        if let Some(uuid) = d.uuid.as_deref().filter(|u| !u.is_empty()) {
            let members = sets.entry(uuid).or_default();
            if members.len() < MAX_MEMBERS {
                members.push(d.path.clone());
            }
        }
    }
    sets.into_iter().map(|(uuid, members)| RaidSet { uuid: uuid.to_string(), members }).collect()
}

/// What the node reports about a device: its plan, and how it went (`mounted`: the mount
/// succeeded, with the bytes in use; `Err`: why it failed).
pub fn report(d: &Device, p: &Plan, outcome: Option<Result<u64, String>>) -> Disk {
    let mut disk = Disk { device: d.path.clone(), fstype: d.fstype.clone(), label: d.label.clone(), size: d.size, used: None, mounted_at: None, why_not: None, donated: false };
    match (p, outcome) {
        (Plan::Share(m), Some(Ok(used))) => {
            disk.mounted_at = Some(m.at.clone());
            disk.used = Some(used);
        }
        (Plan::Share(_), Some(Err(why))) => disk.why_not = Some(why),
        (Plan::Share(_), None) => disk.why_not = Some("not mounted yet".into()),
        (Plan::Donate(_), Some(Ok(used))) => {
            disk.donated = true;
            disk.mounted_at = Some(DONATED_AT.into());
            disk.used = Some(used);
        }
        (Plan::Donate(_), outcome) => {
            disk.donated = true;
            disk.why_not = Some(match outcome {
                Some(Err(why)) => format!("donated space not in use: {why}"),
                _ => "donated space, not mounted yet".into(),
            });
        }
        (Plan::Skip(why), _) => disk.why_not = Some(why.clone()),
    }
    disk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str, kind: Kind, fstype: Option<&str>, label: Option<&str>) -> Device {
        Device {
            path: path.into(),
            kind,
            size: 1 << 30,
            fstype: fstype.map(Into::into),
            label: label.map(Into::into),
            uuid: Some("1234-ABCD".into()),
            part_label: None,
            has_partitions: false,
            held: false,
        }
    }

    #[test]
    fn the_donor_is_where_the_stub_looks_for_it() {
        assert_eq!(std::path::Path::new(DONOR_DIR), std::path::Path::new(DONATED_AT).join(swarmboot_init::donated::DONOR_SUBDIR));
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
            ("ntfs", NTFS_3G, ""),
            ("iso9660", "iso9660", ""),
        ] {
            let plans = plan(&[dev("/dev/vdb1", Kind::Partition, Some(blkid), Some("data"))], &BTreeMap::new());
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
            (dev("/dev/fd0", Kind::Floppy, None, None), "floppy"),
        ];
        for (mut d, why) in cases {
            if why == "partitioned" {
                d.has_partitions = true;
            }
            match &plan(std::slice::from_ref(&d), &BTreeMap::new())[0].1 {
                Plan::Skip(reason) => assert!(reason.contains(why), "{}: {reason}", d.path),
                other => panic!("{}: {other:?}", d.path),
            }
        }
        let empty = Device { size: 0, ..dev("/dev/sr0", Kind::Optical, Some("iso9660"), None) };
        assert!(matches!(&plan(&[empty], &BTreeMap::new())[0].1, Plan::Skip(r) if r.contains("no medium")));
    }

    #[test]
    fn donated_space_is_used_as_labelled_and_only_a_blank_named_partition_is_formatted() {
        let named = |path: &str, fstype: Option<&str>, label: Option<&str>| Device { part_label: Some(DONATED_LABEL.into()), ..dev(path, Kind::Partition, fstype, label) };
        let p = |devices: &[Device]| plan(devices, &BTreeMap::new()).into_iter().map(|(_, p)| p).collect::<Vec<_>>();
        // A filesystem labelled ELCHOS-DATA is used as it is; a blank partition named so is formatted.
        assert_eq!(p(&[dev("/dev/vdd", Kind::Disk, Some("ext4"), Some(DONATED_LABEL))]), [Plan::Donate(Donation { fstype: "ext4", format: false })]);
        assert_eq!(p(&[dev("/dev/vdd", Kind::Disk, Some("xfs"), Some(DONATED_LABEL))]), [Plan::Donate(Donation { fstype: "xfs", format: false })]);
        assert_eq!(p(&[named("/dev/vde1", None, None)]), [Plan::Donate(Donation { fstype: DONATED_FS, format: true })]);
        assert_eq!(p(&[named("/dev/vde1", Some("ext4"), Some(DONATED_LABEL))]), [Plan::Donate(Donation { fstype: "ext4", format: false })]);
        // Never formatted: anything holding a filesystem, a blank device that is not named so.
        let kept = |d: Device, why: &str| {
            let got = p(std::slice::from_ref(&d));
            assert!(matches!(&got[0], Plan::Skip(r) if r.contains(why)), "{d:?}: {got:?}");
        };
        kept(named("/dev/vde1", Some("ntfs"), Some("Windows")), "only a blank one is formatted");
        kept(named("/dev/vde1", Some("ext4"), None), "only a blank one is formatted");
        kept(dev("/dev/vde1", Kind::Partition, None, None), "no filesystem");
        kept(dev("/dev/vdf", Kind::Disk, None, None), "no filesystem");
        kept(dev("/dev/vde1", Kind::Partition, Some("vfat"), Some(DONATED_LABEL)), "ext4, XFS or btrfs");
        // One donation per machine: the first.
        let two = p(&[dev("/dev/vdd", Kind::Disk, Some("ext4"), Some(DONATED_LABEL)), named("/dev/vde1", None, None)]);
        assert!(matches!(&two[0], Plan::Donate(_)) && matches!(&two[1], Plan::Skip(r) if r.contains("/dev/vdd is this machine's donated space")), "{two:?}");
        // Never a share.
        assert!(!two.iter().any(|p| matches!(p, Plan::Share(_))));
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
        let names: Vec<String> = plan(&devices, &BTreeMap::new()).iter().map(|(_, p)| share(p).name.clone()).collect();
        assert_eq!(names[..6], ["music", "music-2", "_.._etc", "Meine_Bilder_2024", "1234-ABCD", "md127"]);
        assert_eq!(names[6].len(), MAX_NAME);
        for n in &names {
            assert!(!n.contains('/') && n != "." && n != ".." && !n.is_empty(), "{n}");
        }
    }

    #[test]
    fn a_disk_plugged_in_later_never_takes_a_mounted_shares_name() {
        let old = dev("/dev/vdc1", Kind::Partition, Some("ext4"), Some("music"));
        let first = plan(std::slice::from_ref(&old), &BTreeMap::new());
        assert_eq!(share(&first[0].1).name, "music");
        // vdb1, also "music", sorts first; vdc1 keeps its name and mount point.
        let new = dev("/dev/vdb1", Kind::Partition, Some("vfat"), Some("music"));
        let kept = BTreeMap::from([("/dev/vdc1".to_string(), "music".to_string())]);
        let again = plan(&[new, old], &kept);
        assert_eq!((share(&again[0].1).name.as_str(), share(&again[1].1).at.as_str()), ("music-2", "/srv/elchos/music"));
    }

    #[test]
    fn raid_members_group_by_array_and_running_arrays_are_left() {
        let member = |path: &str, uuid: &str, held: bool| Device { uuid: Some(uuid.into()), held, ..dev(path, Kind::Disk, Some("linux_raid_member"), Some("elchos:0")) };
        let devices = [
            member("/dev/vdc", "aaaa", false),
            dev("/dev/vdd1", Kind::Partition, Some("ext4"), None),
            member("/dev/vde", "aaaa", false),
            member("/dev/vdf", "bbbb", true),
            member("/dev/vdg", "bbbb", true),
            Device { uuid: None, ..member("/dev/vdh", "", false) },
        ];
        assert_eq!(raid_sets(&devices), [RaidSet { uuid: "aaaa".into(), members: vec!["/dev/vdc".into(), "/dev/vde".into()] }]);
        // A hostile disk set claiming one array a thousand times: bounded.
        let many: Vec<Device> = (0..1000).map(|i| member(&format!("/dev/x{i}"), "cccc", false)).collect();
        assert_eq!(raid_sets(&many)[0].members.len(), MAX_MEMBERS);
    }

    #[test]
    fn the_report_says_where_a_disk_is_mounted_or_why_not() {
        let d = dev("/dev/vdb1", Kind::Partition, Some("ext4"), Some("music"));
        let p = &plan(std::slice::from_ref(&d), &BTreeMap::new())[0].1;
        let ok = report(&d, p, Some(Ok(4096)));
        assert_eq!((ok.mounted_at.as_deref(), ok.used, ok.why_not), (Some("/srv/elchos/music"), Some(4096), None));
        let failed = report(&d, p, Some(Err("mount: bad superblock".into())));
        assert_eq!((failed.mounted_at, failed.why_not.as_deref()), (None, Some("mount: bad superblock")));
        let donate = Plan::Donate(Donation { fstype: "ext4", format: true });
        let donated = report(&d, &donate, None);
        assert!(donated.donated && donated.why_not.unwrap().contains("donated"));
        let in_use = report(&d, &donate, Some(Ok(8192)));
        assert_eq!((in_use.donated, in_use.mounted_at.as_deref(), in_use.used), (true, Some(DONATED_AT), Some(8192)));
        let failed = report(&d, &donate, Some(Err("mkfs.ext4: no space".into())));
        assert!(failed.why_not.unwrap().contains("mkfs.ext4: no space"));
    }

    #[test]
    fn what_an_earlier_agent_mounted_is_found_deepest_first() {
        let info = "22 1 0:20 / / rw - overlay overlay rw\n\
                    40 22 254:16 / /srv/elchos/music ro,nodev - ext4 /dev/vdb ro\n\
                    41 40 0:50 / /srv/elchos/music/inner ro - vfat /dev/vdc ro\n\
                    42 22 0:51 / /srv/elchos/Meine\\040Bilder ro - fuseblk /dev/vdd ro\n\
                    43 22 0:52 / /srv/elchosX ro - ext4 /dev/vde ro\n";
        assert_eq!(mounts_under(info, SHARE_ROOT), ["/srv/elchos/music/inner", "/srv/elchos/Meine Bilder", "/srv/elchos/music"]);
        assert!(mounts_under("x\n\n1 2 3 4\n", SHARE_ROOT).is_empty());
    }
}
