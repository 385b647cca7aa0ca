//! What the node reads to find its disks, as plain functions over text and a directory tree
//! (the shell points them at `/sys/class/block` and feeds them `blkid -p -o export`).

use std::path::Path;

use crate::disks::{Device, Kind};

/// One entry of `/sys/class/block`, before `blkid` looked at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// `vdb1`.
    pub name: String,
    pub kind: Kind,
    /// Bytes (sysfs counts 512-byte sectors).
    pub size: u64,
    pub has_partitions: bool,
    /// sysfs lists a holder (an md array or a device-mapper target runs on it).
    pub held: bool,
    /// A partition's name in its table (`PARTNAME` in its `uevent`: GPT names).
    pub part_name: Option<String>,
}

/// Longest partition name kept (GPT names are 36 UTF-16 units).
const MAX_PART_NAME: usize = 256;

/// `PARTNAME=` from a sysfs `uevent` file's text.
pub fn part_name(uevent: &str) -> Option<String> {
    let name = uevent.lines().find_map(|l| l.strip_prefix("PARTNAME="))?;
    (!name.is_empty()).then(|| name[..floor_char_boundary(name, MAX_PART_NAME)].to_string())
}

/// Every block device under `class_block` (`/sys/class/block`), sorted by name.
pub fn block_devices(class_block: &Path) -> std::io::Result<Vec<BlockEntry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(class_block)? {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let dir = e.path();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let sectors: u64 = read("size").trim().parse().unwrap_or(0);
        let kind = if ["loop", "ram", "zram", "dm-", "nbd"].iter().any(|p| name.starts_with(p)) {
            Kind::Virtual
        } else if dir.join("partition").exists() {
            Kind::Partition
        } else if dir.join("md").is_dir() {
            Kind::Raid
        } else if name.starts_with("sr") {
            Kind::Optical
        } else if name.starts_with("fd") {
            Kind::Floppy
        } else {
            Kind::Disk
        };
        // A disk's partitions are subdirectories of it holding a `partition` file.
        let has_partitions = kind == Kind::Disk && std::fs::read_dir(&dir)?.flatten().any(|c| c.path().join("partition").exists());
        let held = std::fs::read_dir(dir.join("holders")).map(|mut h| h.next().is_some()).unwrap_or(false);
        let part_name = if kind == Kind::Partition { part_name(&read("uevent")) } else { None };
        out.push(BlockEntry { name, kind, size: sectors.saturating_mul(512), has_partitions, held, part_name });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Longest `blkid` output read (it is a few hundred bytes).
const MAX_BLKID: usize = 16 * 1024;

/// `entry` completed with what `blkid -p -o export /dev/NAME` printed (`TYPE`, `LABEL`,
/// `UUID`; values unescaped). Empty output (blkid found nothing, exit status 2) is no filesystem.
pub fn with_blkid(entry: &BlockEntry, export: &str) -> Device {
    let mut d = Device {
        path: format!("/dev/{}", entry.name),
        kind: entry.kind,
        size: entry.size,
        fstype: None,
        label: None,
        uuid: None,
        part_label: entry.part_name.clone(),
        has_partitions: entry.has_partitions,
        held: entry.held,
    };
    let text = &export[..floor_char_boundary(export, MAX_BLKID)];
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = unescape(value);
        match key {
            "TYPE" => d.fstype = Some(value),
            "LABEL" => d.label = Some(value),
            "UUID" => d.uuid = Some(value),
            "PART_ENTRY_NAME" => d.part_label = Some(value),
            _ => {}
        }
    }
    d
}

/// `blkid -o export` escapes shell-special characters with a backslash.
fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, name: &str, sectors: u64, extra: &[&str]) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
        for f in extra {
            let p = d.join(f);
            if f.ends_with('/') {
                std::fs::create_dir_all(p).unwrap();
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, "1\n").unwrap();
            }
        }
    }

    #[test]
    fn sysfs_says_what_each_device_is() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        // vda has a partition (sysfs shows it inside the disk's directory and in the class).
        entry(root, "vda", 2048, &["vda1/partition"]);
        entry(root, "vda1", 2000, &["partition"]);
        entry(root, "vdb", 4096, &["holders/md127"]);
        entry(root, "md127", 8192, &["md/"]);
        entry(root, "sr0", 0, &[]);
        entry(root, "loop0", 100, &[]);
        entry(root, "fd0", 8, &[]);
        entry(root, "zram0", 100, &[]);
        std::fs::write(root.join("vda1/uevent"), "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=ELCHOS-DATA\n").unwrap();
        std::fs::write(root.join("vdb/uevent"), "DEVTYPE=disk\nPARTNAME=not-a-partition\n").unwrap();
        let names: Vec<(String, Option<String>)> = block_devices(root).unwrap().into_iter().filter(|e| e.part_name.is_some()).map(|e| (e.name, e.part_name)).collect();
        assert_eq!(names, [("vda1".to_string(), Some("ELCHOS-DATA".to_string()))]);
        assert_eq!(part_name("PARTNAME=\n"), None);
        let got: Vec<(String, Kind, u64, bool)> = block_devices(root).unwrap().into_iter().map(|e| (e.name, e.kind, e.size, e.has_partitions)).collect();
        let held: Vec<String> = block_devices(root).unwrap().into_iter().filter(|e| e.held).map(|e| e.name).collect();
        assert_eq!(held, ["vdb"]);
        assert_eq!(
            got,
            [
                ("fd0".into(), Kind::Floppy, 4096, false),
                ("loop0".into(), Kind::Virtual, 51200, false),
                ("md127".into(), Kind::Raid, 4 << 20, false),
                ("sr0".into(), Kind::Optical, 0, false),
                ("vda".into(), Kind::Disk, 1 << 20, true),
                ("vda1".into(), Kind::Partition, 1_024_000, false),
                ("vdb".into(), Kind::Disk, 2 << 20, false),
                ("zram0".into(), Kind::Virtual, 51200, false),
            ]
        );
    }

    #[test]
    fn blkid_export_is_read_and_unescaped() {
        let e = BlockEntry { name: "vdb1".into(), kind: Kind::Partition, size: 1 << 30, has_partitions: false, held: false, part_name: Some("ELCHOS-DATA".into()) };
        let d = with_blkid(&e, "DEVNAME=/dev/vdb1\nLABEL=Meine\\ Bilder\\$\nUUID=1234-ABCD\nBLOCK_SIZE=512\nTYPE=vfat\nPARTUUID=0a-01\n");
        assert_eq!((d.path.as_str(), d.fstype.as_deref(), d.label.as_deref(), d.uuid.as_deref()), ("/dev/vdb1", Some("vfat"), Some("Meine Bilder$"), Some("1234-ABCD")));
        let nothing = with_blkid(&e, "");
        assert_eq!((nothing.fstype, nothing.label, nothing.part_label.as_deref()), (None, None, Some("ELCHOS-DATA")), "the partition's name from sysfs");
        let named = with_blkid(&e, "PART_ENTRY_SCHEME=gpt\nPART_ENTRY_NAME=Daten\\ 2\n");
        assert_eq!(named.part_label.as_deref(), Some("Daten 2"), "blkid's name for it wins");
        // Hostile: huge, no newline, multi-byte at the cut, a trailing backslash.
        let big = format!("TYPE=ext4\nLABEL={}\\", "ä".repeat(MAX_BLKID));
        let d = with_blkid(&e, &big);
        assert_eq!(d.fstype.as_deref(), Some("ext4"));
        assert!(d.label.unwrap().len() <= MAX_BLKID);
    }
}
