//! `image add NAME --rootfs ROOT.squashfs` without `--kernel` and `--initrd`: the newest
//! kernel inside the root with an initramfs of the same release (`/boot/vmlinuz-R` and
//! `/boot/initrd.img-R`, as Debian and Ubuntu install them and `ltsp kernel` looks for them),
//! extracted with unsquashfs (squashfs-tools).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A kernel and initramfs taken out of a root filesystem; the files go with it.
pub struct FoundKernel {
    pub release: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    dir: PathBuf,
}

impl Drop for FoundKernel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Compares kernel releases as versions: runs of digits by value, the rest as text
/// (`6.1.0-10-amd64` > `6.1.0-9-amd64`).
fn release_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<Result<u64, &str>> {
        let mut out = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits > 0 {
                out.push(Ok(rest[..digits].parse().unwrap_or(u64::MAX)));
                rest = &rest[digits..];
            } else {
                let text = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
                out.push(Err(&rest[..text]));
                rest = &rest[text..];
            }
        }
        out
    }
    parts(a).cmp(&parts(b))
}

/// From the paths in a root (`/boot/…`), the newest release that has both a kernel and an
/// initramfs; else what is missing, as a message.
pub fn newest_release<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<String, String> {
    let (mut kernels, mut initrds) = (Vec::new(), std::collections::HashSet::new());
    for p in paths {
        let p = p.trim_start_matches("squashfs-root").trim_start_matches('/');
        if let Some(r) = p.strip_prefix("boot/vmlinuz-") {
            kernels.push(r.to_string());
        } else if let Some(r) = p.strip_prefix("boot/initrd.img-") {
            initrds.insert(r.to_string());
        }
    }
    kernels.sort_by(|a, b| release_cmp(b, a));
    match kernels.iter().find(|k| initrds.contains(*k)) {
        Some(k) => Ok(k.clone()),
        None if kernels.is_empty() => Err("it has no /boot/vmlinuz-*".into()),
        None => Err(format!("it has /boot/vmlinuz-{} but no /boot/initrd.img of that release", kernels.join(", /boot/vmlinuz-"))),
    }
}

/// Finds and extracts the newest kernel and its initramfs from `rootfs` into a temporary
/// directory beside `scratch`.
pub fn from_squashfs(rootfs: &Path, scratch: &Path) -> anyhow::Result<FoundKernel> {
    let unsquashfs = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        let out = Command::new("unsquashfs").args(args).arg(rootfs).output().context("running unsquashfs: install squashfs-tools")?;
        Ok(out)
    };
    let listing = unsquashfs(&["-l", "-d", ""])?;
    if !listing.status.success() {
        bail!("{} is not a squashfs root filesystem: {}", rootfs.display(), String::from_utf8_lossy(&listing.stderr).trim());
    }
    let text = String::from_utf8_lossy(&listing.stdout);
    let release = newest_release(text.lines())
        .map_err(|why| anyhow::anyhow!("no kernel to take from {}: {why}; give the image's kernel and initramfs with --kernel and --initrd", rootfs.display()))?;
    let dir = scratch.join(format!("kernel-from-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let found =
        FoundKernel { kernel: dir.join(format!("boot/vmlinuz-{release}")), initrd: dir.join(format!("boot/initrd.img-{release}")), release: release.clone(), dir: dir.clone() };
    let target = dir.to_str().context("a scratch path that is UTF-8")?;
    let out = Command::new("unsquashfs")
        .args(["-q", "-n", "-f", "-d", target])
        .arg(rootfs)
        .args([format!("boot/vmlinuz-{release}"), format!("boot/initrd.img-{release}")])
        .output()
        .context("running unsquashfs")?;
    if !out.status.success() || !found.kernel.is_file() || !found.initrd.is_file() {
        bail!("cannot extract the kernel {release} from {}: {}", rootfs.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_compare_as_versions() {
        assert_eq!(release_cmp("6.1.0-10-amd64", "6.1.0-9-amd64"), Ordering::Greater);
        assert_eq!(release_cmp("6.12.1-amd64", "6.1.99-amd64"), Ordering::Greater);
        assert_eq!(release_cmp("6.1.0-9-amd64", "6.1.0-9-amd64"), Ordering::Equal);
    }

    #[test]
    fn the_newest_kernel_with_an_initramfs_is_taken() {
        let listing = [
            "squashfs-root",
            "squashfs-root/boot",
            "squashfs-root/boot/config-6.1.0-9-amd64",
            "squashfs-root/boot/initrd.img-6.1.0-9-amd64",
            "squashfs-root/boot/vmlinuz-6.1.0-9-amd64",
            "squashfs-root/boot/initrd.img-6.1.0-10-amd64",
            "squashfs-root/boot/vmlinuz-6.1.0-10-amd64",
            "squashfs-root/boot/vmlinuz-6.1.0-11-amd64",
            "squashfs-root/vmlinuz",
        ];
        assert_eq!(newest_release(listing), Ok("6.1.0-10-amd64".into()), "-11 has no initramfs");
        assert_eq!(newest_release(["/boot/vmlinuz-6.1.0-11-amd64"]), Err("it has /boot/vmlinuz-6.1.0-11-amd64 but no /boot/initrd.img of that release".into()));
        assert_eq!(newest_release(["/etc/hostname"]), Err("it has no /boot/vmlinuz-*".into()));
    }
}
