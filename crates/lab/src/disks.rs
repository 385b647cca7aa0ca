//! Disk images for the lab's VMs, made and filled by Debian's own filesystem tools without
//! mounting anything on the host (whose kernel lacks vfat and ntfs3): `mkfs.ext4 -d` fills from
//! a directory, `mkfs.vfat` + `mcopy`, `mkntfs` + `ntfs-3g` (FUSE). Each image is a whole
//! disk holding one filesystem (no partition table), as a USB stick or a second disk often is.

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

/// `blkid -p -o export` of an image: (TYPE, LABEL).
pub fn probe(image: &Path) -> anyhow::Result<(String, String)> {
    let out = run(Command::new("blkid").args(["-p", "-o", "export"]).arg(image))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("").to_string();
    Ok((get("TYPE"), get("LABEL")))
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
    }
}
