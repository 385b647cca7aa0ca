//! Disk images for the lab's VMs, made and filled by Debian's own filesystem tools without
//! mounting anything on the host (whose kernel lacks vfat and ntfs3): `mkfs.ext4 -d` fills from
//! a directory, `mkfs.vfat` + `mcopy`, `mkntfs` + `ntfs-3g` (FUSE). Each image is a whole
//! disk holding one filesystem (no partition table), as a USB stick or a second disk often is.
//!
//! [`make_raid1`]: two members of an md RAID1 array (metadata 1.2) holding one filesystem. The
//! host kernel has no md driver, so the lab writes the superblocks itself, as the kernel's
//! `md_p.h` lays them out (the layout and the checksum are facts of the format; `mdadm
//! --examine` reads them back in the test), and puts the same filesystem at the data offset
//! of each member.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::netns::run;

/// A filesystem a lab disk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filesystem {
    Ext4,
    Vfat,
    Ntfs,
}

/// Makes `image` (`mib` MiB) with `fs` labelled `label`, holding a copy of `content` (a
/// directory; `None`: empty).
pub fn make(image: &Path, mib: u64, fs: Filesystem, label: &str, content: Option<&Path>) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(image);
    std::fs::File::create(image)?.set_len(mib << 20).with_context(|| format!("sizing {}", image.display()))?;
    match fs {
        Filesystem::Ext4 => {
            let mut cmd = Command::new("mkfs.ext4");
            cmd.args(["-q", "-F", "-L", label]);
            if let Some(dir) = content {
                cmd.arg("-d").arg(dir);
            }
            run(cmd.arg(image))?;
        }
        Filesystem::Vfat => {
            run(Command::new("mkfs.vfat").args(["-n", label]).arg(image))?;
            if let Some(dir) = content {
                for entry in std::fs::read_dir(dir)? {
                    run(Command::new("mcopy").args(["-s", "-p", "-Q", "-i"]).arg(image).arg(entry?.path()).arg("::/"))?;
                }
            }
        }
        Filesystem::Ntfs => {
            run(Command::new("mkntfs").args(["-F", "-Q", "-q", "-L", label]).arg(image))?;
            if let Some(dir) = content {
                let mnt = tempfile::tempdir()?;
                run(Command::new("ntfs-3g").arg(image).arg(mnt.path()))?;
                let copied = run(Command::new("cp").args(["-r", "--no-preserve=ownership"]).arg(format!("{}/.", dir.display())).arg(mnt.path()));
                let unmounted = run(Command::new("fusermount").arg("-u").arg(mnt.path()));
                copied?;
                unmounted?;
            }
        }
    }
    Ok(())
}

/// Makes `image` (`mib` MiB) with a GPT partition table (util-linux's `sfdisk`) and one
/// partition named `name` over the rest of it, with no filesystem on it (a blank partition).
/// Returns the partition's offset in bytes.
pub fn make_blank_gpt(image: &Path, mib: u64, name: &str) -> anyhow::Result<u64> {
    let _ = std::fs::remove_file(image);
    std::fs::File::create(image)?.set_len(mib << 20).with_context(|| format!("sizing {}", image.display()))?;
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running sfdisk (Debian's fdisk package)")?;
    std::io::Write::write_all(child.stdin.as_mut().context("sfdisk's stdin")?, format!("label: gpt\nstart=2048, type=linux, name=\"{name}\"\n").as_bytes())?;
    anyhow::ensure!(child.wait()?.success(), "sfdisk {} failed", image.display());
    Ok(2048 * 512)
}

/// `blkid -p` of the filesystem at `offset` bytes into `image`: (TYPE, LABEL).
pub fn probe_at(image: &Path, offset: u64) -> anyhow::Result<(String, String)> {
    let out = run(Command::new("blkid").args(["-p", "-o", "export", "-O", &offset.to_string()]).arg(image))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").to_string();
    Ok((get("TYPE="), get("LABEL=")))
}

/// md metadata 1.2: the superblock 4 KiB into each member, the data 1 MiB in.
const MD_SUPER_OFFSET: u64 = 8;
const MD_DATA_OFFSET: u64 = 2048;
const MD_MAGIC: u32 = 0xa92b_4efc;

/// Two RAID1 members (`members`, each `mib` MiB) of one array named `name`, holding `fs`
/// labelled `label` with a copy of `content`. Returns the array's UUID as `blkid` prints it.
pub fn make_raid1(members: [&Path; 2], mib: u64, name: &str, fs: Filesystem, label: &str, content: Option<&Path>) -> anyhow::Result<String> {
    let sectors = (mib << 20) / 512;
    let data_sectors = sectors - MD_DATA_OFFSET;
    let inner = members[0].with_extension("fs");
    make(&inner, (data_sectors * 512) >> 20, fs, label, content)?;
    let data = std::fs::read(&inner)?;
    std::fs::remove_file(&inner)?;
    // Deterministic UUIDs (a test's disks are the same each run): from the name.
    let uuid = |salt: u8| -> [u8; 16] {
        use sha2::Digest;
        let d = sha2::Sha256::digest([name.as_bytes(), &[salt]].concat());
        d[..16].try_into().expect("16 bytes")
    };
    let set_uuid = uuid(0);
    for (i, member) in members.iter().enumerate() {
        let mut sb = vec![0u8; 256 + 2 * 2];
        let put32 = |sb: &mut Vec<u8>, at: usize, v: u32| sb[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 = |sb: &mut Vec<u8>, at: usize, v: u64| sb[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put32(&mut sb, 0, MD_MAGIC);
        put32(&mut sb, 4, 1); // major_version
        sb[16..32].copy_from_slice(&set_uuid);
        let n = name.as_bytes();
        sb[32..32 + n.len().min(32)].copy_from_slice(&n[..n.len().min(32)]);
        put64(&mut sb, 64, 1_700_000_000); // ctime
        put32(&mut sb, 72, 1); // level: RAID1
        put64(&mut sb, 80, data_sectors); // size used of each member
        put32(&mut sb, 92, 2); // raid_disks
        put64(&mut sb, 128, MD_DATA_OFFSET);
        put64(&mut sb, 136, data_sectors); // data_size
        put64(&mut sb, 144, MD_SUPER_OFFSET);
        put64(&mut sb, 152, 0); // recovery_offset
        put32(&mut sb, 160, i as u32); // dev_number
        sb[168..184].copy_from_slice(&uuid(1 + i as u8)); // device_uuid
        put64(&mut sb, 192, 1_700_000_000); // utime
        put64(&mut sb, 200, 1); // events
        put64(&mut sb, 208, u64::MAX); // resync_offset: in sync
        put32(&mut sb, 220, 2); // max_dev
        sb[256..258].copy_from_slice(&0u16.to_le_bytes()); // dev_roles[0]: slot 0
        sb[258..260].copy_from_slice(&1u16.to_le_bytes()); // dev_roles[1]: slot 1
        let csum = md_csum(&sb);
        put32(&mut sb, 216, csum);
        let _ = std::fs::remove_file(member);
        let f = std::fs::File::create(member)?;
        f.set_len(mib << 20)?;
        use std::os::unix::fs::FileExt;
        f.write_all_at(&sb, MD_SUPER_OFFSET * 512)?;
        f.write_all_at(&data, MD_DATA_OFFSET * 512)?;
    }
    let h = hex::encode(set_uuid);
    // blkid prints an md UUID as 8-4-4-4-12.
    Ok(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

/// md's superblock checksum: the little-endian 32-bit words summed into 64 bits (the checksum
/// field counted as 0), the carry folded back once.
fn md_csum(sb: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    for (i, w) in sb.chunks(4).enumerate() {
        if i * 4 == 216 {
            continue;
        }
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        sum += u64::from(u32::from_le_bytes(b));
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

/// `blkid -p -o export` of an image: (TYPE, LABEL).
pub fn probe(image: &Path) -> anyhow::Result<(String, String)> {
    probe_at(image, 0)
}

/// One file's bytes read back from an image with the filesystem's own tools (no mount).
pub fn read_back(image: &Path, fs: Filesystem, path: &str) -> anyhow::Result<Vec<u8>> {
    let out = match fs {
        Filesystem::Ext4 => run(Command::new("debugfs").args(["-R", &format!("cat /{path}")]).arg(image))?,
        Filesystem::Vfat => run(Command::new("mtype").args(["-i"]).arg(image).arg(format!("::/{path}")))?,
        Filesystem::Ntfs => run(Command::new("ntfscat").arg(image).arg(format!("/{path}")))?,
    };
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each filesystem made from a directory: blkid names its type and label, and a file in a
    /// subdirectory reads back byte for byte (no mount: the host kernel need not know it).
    #[test]
    fn disks_are_made_and_filled_by_debians_tools() {
        if !crate::require_root("disks_are_made_and_filled_by_debians_tools") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let content = t.path().join("content");
        std::fs::create_dir_all(content.join("sub")).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(content.join("sub/data.bin"), &data).unwrap();
        std::fs::write(content.join("readme.txt"), b"hello from the lab\n").unwrap();
        for (fs, blkid_type, label) in [(Filesystem::Ext4, "ext4", "music"), (Filesystem::Vfat, "vfat", "PHOTOS"), (Filesystem::Ntfs, "ntfs", "docs")] {
            let image = t.path().join(format!("{label}.img"));
            make(&image, 32, fs, label, Some(&content)).unwrap();
            assert_eq!(probe(&image).unwrap(), (blkid_type.to_string(), label.to_string()), "{fs:?}");
            assert_eq!(read_back(&image, fs, "sub/data.bin").unwrap(), data, "{fs:?}");
            assert_eq!(read_back(&image, fs, "readme.txt").unwrap(), b"hello from the lab\n", "{fs:?}");
        }
        let donated = t.path().join("donated.img");
        make(&donated, 16, Filesystem::Ext4, "ELCHOS-DATA", None).unwrap();
        assert_eq!(probe(&donated).unwrap(), ("ext4".into(), "ELCHOS-DATA".into()));
        // A blank GPT partition named ELCHOS-DATA: no filesystem until a node formats it.
        let blank = t.path().join("blank.img");
        let offset = make_blank_gpt(&blank, 16, "ELCHOS-DATA").unwrap();
        assert!(probe_at(&blank, offset).is_err(), "blkid finds nothing on the blank partition");
        let table = run(Command::new("sfdisk").arg("--dump").arg(&blank)).unwrap();
        assert!(String::from_utf8_lossy(&table.stdout).contains("start=        2048") && String::from_utf8_lossy(&table.stdout).contains("name=\"ELCHOS-DATA\""));
    }

    /// The members the lab writes are what mdadm calls a clean two-disk RAID1 of one array,
    /// and each holds the filesystem at the data offset.
    #[test]
    fn raid1_members_are_what_mdadm_examines() {
        if !crate::require_root("raid1_members_are_what_mdadm_examines") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let content = t.path().join("content");
        std::fs::create_dir_all(&content).unwrap();
        std::fs::write(content.join("mirrored.txt"), b"on both disks\n").unwrap();
        let (a, b) = (t.path().join("r0.img"), t.path().join("r1.img"));
        let uuid = make_raid1([&a, &b], 24, "elchos:mirror", Filesystem::Ext4, "mirror", Some(&content)).unwrap();
        for (i, m) in [&a, &b].into_iter().enumerate() {
            let out = run(Command::new("mdadm").arg("--examine").arg(m)).unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            for needle in
                ["Version : 1.2", "Raid Level : raid1", "Raid Devices : 2", "Name : elchos:mirror", "State : clean", "Checksum : ", "correct", "Data Offset : 2048 sectors"]
            {
                assert!(text.contains(needle), "member {i}: {needle}:\n{text}");
            }
            assert!(text.contains(&format!("Device Role : Active device {i}")), "{text}");
            assert!(text.replace(':', "").contains(&uuid.replace('-', "")), "{uuid}:\n{text}");
            let blkid = run(Command::new("blkid").args(["-p", "-o", "export"]).arg(m)).unwrap();
            let blkid = String::from_utf8_lossy(&blkid.stdout).into_owned();
            assert!(blkid.contains("TYPE=linux_raid_member") && blkid.contains(&format!("UUID={uuid}")), "{blkid}");
            // The filesystem at the data offset, read back without md.
            let inner = t.path().join("inner.fs");
            run(Command::new("dd").arg(format!("if={}", m.display())).arg(format!("of={}", inner.display())).args(["bs=1M", "skip=1", "status=none"])).unwrap();
            assert_eq!(read_back(&inner, Filesystem::Ext4, "mirrored.txt").unwrap(), b"on both disks\n");
        }
    }
}
