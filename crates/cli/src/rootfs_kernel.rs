//! `image add NAME --rootfs ROOT.squashfs` without `--kernel` and `--initrd`: the newest
//! kernel inside the root with an initramfs of the same release (`/boot/vmlinuz-R` and
//! `/boot/initrd.img-R`, as Debian and Ubuntu install them and `ltsp kernel` looks for them),
//! extracted with unsquashfs (squashfs-tools).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A kernel and initramfs taken out of a root filesystem; the files go with it.
pub struct FoundKernel {
    pub release: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Removed when this is dropped.
    _dir: tempfile::TempDir,
}

/// Finds and extracts the newest kernel and its initramfs from `rootfs` into a new temporary
/// directory of root's (never into the state directory, where the service could swap the
/// directory for a link while unsquashfs writes).
pub fn from_squashfs(rootfs: &Path) -> anyhow::Result<FoundKernel> {
    let unsquashfs = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        let out = Command::new("unsquashfs").args(args).arg(rootfs).output().context("running unsquashfs: install squashfs-tools")?;
        Ok(out)
    };
    let listing = unsquashfs(&["-l", "-d", ""])?;
    if !listing.status.success() {
        bail!("{} is not a squashfs root filesystem: {}", rootfs.display(), String::from_utf8_lossy(&listing.stderr).trim());
    }
    let text = String::from_utf8_lossy(&listing.stdout);
    let release = swarmboot_imagebuild::kernel::newest_release(text.lines())
        .map_err(|why| anyhow::anyhow!("no kernel to take from {}: {why}; give the image's kernel and initramfs with --kernel and --initrd", rootfs.display()))?;
    let tmp = tempfile::Builder::new().prefix("swarmboot-kernel-from-rootfs-").tempdir().context("a temporary directory for the kernel")?;
    let dir = tmp.path().join("root");
    let target = dir.to_str().context("a temporary path that is UTF-8")?.to_string();
    let found = FoundKernel { kernel: dir.join(format!("boot/vmlinuz-{release}")), initrd: dir.join(format!("boot/initrd.img-{release}")), release: release.clone(), _dir: tmp };
    let out = Command::new("unsquashfs")
        .args(["-q", "-n", "-f", "-d", &target])
        .arg(rootfs)
        .args([format!("boot/vmlinuz-{release}"), format!("boot/initrd.img-{release}")])
        .output()
        .context("running unsquashfs")?;
    if !out.status.success() || !found.kernel.is_file() || !found.initrd.is_file() {
        bail!("cannot extract the kernel {release} from {}: {}", rootfs.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(found)
}
