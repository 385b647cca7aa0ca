//! Real Debian 12 systems for the lab: a root made by mmdebstrap from the default apt mirror
//! (stable, with its updates and security suites), packed with mksquashfs — a
//! `swarmboot_imagebuild` recipe, as elchOS is. It is built once and kept in
//! `~/.cache/swarmboot/debian-<recipe>/` (a lock file makes parallel tests wait for the one
//! build); a change of the recipe makes a new one.
//!
//! The root is a stock `--variant=minbase` system with systemd, udev, ifupdown with
//! isc-dhcp-client, systemd-networkd (in systemd), and two kernels: `linux-image-amd64` (the
//! stub is built from it, so the stub switch_roots) and `linux-image-cloud-amd64` (another
//! build of the same release: the stub kexecs it). Both network managers are configured for
//! the NIC as `eth0` or `ens3` (what udev names QEMU's NIC when it can rename it); the
//! images made from the root choose one on the kernel command line
//! ([`IFUPDOWN`], [`NETWORKD`]). Root's password is [`ROOT_PASSWORD`]: a lab image, logged
//! into on its serial console by tests.
//!
//! Left out of the squashfs, to keep the lab's machines quick under TCG: what elchOS leaves out
//! (the initramfs images, sound, GPU, media, wireless drivers, documentation) and driver trees
//! no QEMU machine of the lab has (physical Ethernet, SCSI, USB, InfiniBand, hwmon).
//! Everything a VM boots with is there.

use std::path::{Path, PathBuf};

use anyhow::Context;
use swarmboot_imagebuild::{Recipe, RootFile};

/// Root's password in the lab's Debian images.
pub const ROOT_PASSWORD: &str = "swarmboot";

/// Kernel command line words that make the image's network ifupdown's (+ dhclient).
pub const IFUPDOWN: &str = "systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd-wait-online.service";
/// Kernel command line words that make the image's network systemd-networkd's.
pub const NETWORKD: &str = "systemd.mask=networking.service systemd.mask=ifupdown-wait-online.service systemd.mask=ifup@.service";

const PACKAGES: &[&str] = &["systemd", "systemd-sysv", "udev", "iproute2", "procps", "kmod", "ifupdown", "isc-dhcp-client", "linux-image-amd64", "linux-image-cloud-amd64"];

const INTERFACES: &str = "auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n\nallow-hotplug ens3\niface ens3 inet dhcp\n";
const NETWORK: &str = "[Match]\nName=eth0 ens3\n\n[Network]\nDHCP=ipv4\n";

/// An init that does its own setup and then execs systemd, as LTSP's
/// `init=/usr/share/ltsp/client/init/init` does; images that boot with [`WRAPPED_INIT`] on
/// their command line print [`WRAPPED_INIT_SAYS`] on the console first.
pub const WRAPPED_INIT: &str = "/usr/local/sbin/lab-init";
pub const WRAPPED_INIT_SAYS: &str = "lab-init: an init= of the image's own ran as PID";
const WRAPPED_INIT_SCRIPT: &str = "#!/bin/sh\necho \"lab-init: an init= of the image's own ran as PID $$\" > /dev/console\nexec /sbin/init \"$@\"\n";

/// Left out beyond what elchOS leaves out.
const EXCLUDE_MORE: &[&str] = &[
    "usr/lib/modules/*/kernel/drivers/net/ethernet",
    "usr/lib/modules/*/kernel/drivers/infiniband",
    "usr/lib/modules/*/kernel/drivers/scsi",
    "usr/lib/modules/*/kernel/drivers/usb",
    "usr/lib/modules/*/kernel/drivers/hwmon",
];

fn recipe() -> Recipe {
    Recipe {
        name: "deb12-lab".into(),
        suite: "bookworm".into(),
        mirror: std::env::var("SWARMBOOT_DEBIAN_MIRROR").ok(),
        packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
        include: vec![],
        files: vec![
            RootFile::new("/etc/hostname", 0o644, "deb12\n"),
            RootFile::new("/etc/network/interfaces", 0o644, INTERFACES),
            RootFile::new("/etc/systemd/network/20-wired.network", 0o644, NETWORK),
            RootFile::new(WRAPPED_INIT, 0o755, WRAPPED_INIT_SCRIPT),
        ],
        copies: vec![],
        enable: vec!["systemd-networkd.service".into(), "systemd-networkd-wait-online.service".into()],
        commands: vec![format!("echo 'root:{ROOT_PASSWORD}' | chroot \"$1\" chpasswd")],
        exclude: swarmboot_imagebuild::elchos::EXCLUDE.iter().chain(EXCLUDE_MORE).map(|e| e.to_string()).collect(),
    }
}

/// One kernel of the root, with the initramfs Debian made for it.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// `/lib/modules/<release>` in the unpacked root (for `swarmboot stub build --modules-dir`).
    pub modules: PathBuf,
}

/// The built root.
#[derive(Debug, Clone)]
pub struct DebianRoot {
    /// The unpacked root.
    pub root: PathBuf,
    pub squashfs: PathBuf,
    /// `linux-image-amd64`'s kernel.
    pub generic: Kernel,
    /// `linux-image-cloud-amd64`'s kernel.
    pub cloud: Kernel,
}

/// The lab's Debian root: built on first use (about 3 minutes), then taken from the cache.
pub fn debian_root() -> anyhow::Result<DebianRoot> {
    static BUILT: std::sync::Mutex<Option<DebianRoot>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = built.as_ref() {
        return Ok(r.clone());
    }
    let r = build_or_reuse()?;
    *built = Some(r.clone());
    Ok(r)
}

fn build_or_reuse() -> anyhow::Result<DebianRoot> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let r = recipe();
    let dir = home.join(".cache/swarmboot").join(format!("debian-{}", r.fingerprint()));
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::File::create(dir.join("lock"))?;
    let _locked = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", dir.display()))?;
    let done = dir.join("done");
    if !done.exists() {
        let started = std::time::Instant::now();
        let built =
            swarmboot_imagebuild::build(&r, &dir, |step| eprintln!("lab: Debian root: {step}")).context("building the lab's Debian root (the apt mirror must be reachable)")?;
        eprintln!(
            "lab: built the Debian 12 root in {:.0} s ({} MiB squashfs) into {}",
            started.elapsed().as_secs_f64(),
            std::fs::metadata(&built.squashfs)?.len() >> 20,
            dir.display()
        );
        std::fs::write(&done, "")?;
    }
    let root = dir.join("root");
    Ok(DebianRoot { generic: kernel_of(&root, "-amd64", "-cloud-amd64")?, cloud: kernel_of(&root, "-cloud-amd64", "")?, squashfs: dir.join("root.squashfs"), root })
}

/// The kernel in `root/boot` whose release ends with `suffix` (and not with `not`).
fn kernel_of(root: &Path, suffix: &str, not: &str) -> anyhow::Result<Kernel> {
    let mut found: Vec<String> = std::fs::read_dir(root.join("boot"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("vmlinuz-").map(str::to_string))
        .filter(|r| r.ends_with(suffix) && (not.is_empty() || !r.ends_with(not)))
        .collect();
    found.sort();
    let release = found.pop().with_context(|| format!("no vmlinuz-*{suffix} in {}/boot", root.display()))?;
    Ok(Kernel {
        vmlinuz: root.join(format!("boot/vmlinuz-{release}")),
        initrd: root.join(format!("boot/initrd.img-{release}")),
        modules: root.join(format!("usr/lib/modules/{release}")),
    })
}
