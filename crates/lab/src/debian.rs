//! Real Debian 12 systems for the lab: a root made by mmdebstrap from the apt mirror the host
//! uses (stable, with its updates and security suites), packed with mksquashfs. It is built
//! once and kept in `~/.cache/swarmboot/debian-<inputs>/` (a lock file makes parallel tests
//! wait for the one build); a change of its inputs makes a new one.
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
//! Left out of the squashfs, to keep the lab's machines quick under TCG: the kernels'
//! initramfs images (the stub replaces them) and driver trees no QEMU machine of the lab has
//! (sound, GPUs, media, wireless, physical Ethernet, SCSI, USB, InfiniBand, ...), and
//! documentation. Everything a VM boots with is there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Root's password in the lab's Debian images.
pub const ROOT_PASSWORD: &str = "swarmboot";

/// Kernel command line words that make the image's network ifupdown's (+ dhclient).
pub const IFUPDOWN: &str = "systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd-wait-online.service";
/// Kernel command line words that make the image's network systemd-networkd's.
pub const NETWORKD: &str = "systemd.mask=networking.service systemd.mask=ifupdown-wait-online.service systemd.mask=ifup@.service";

const PACKAGES: &[&str] = &["systemd", "systemd-sysv", "udev", "iproute2", "procps", "kmod", "ifupdown", "isc-dhcp-client", "linux-image-amd64", "linux-image-cloud-amd64"];

/// What mmdebstrap runs in the finished root (`$1` is the root).
const CUSTOMIZE: &[&str] = &[
    "echo deb12 > \"$1/etc/hostname\"",
    "echo 'root:swarmboot' | chroot \"$1\" chpasswd",
    "printf 'auto lo\\niface lo inet loopback\\n\\nallow-hotplug eth0\\niface eth0 inet dhcp\\n\\nallow-hotplug ens3\\niface ens3 inet dhcp\\n' > \"$1/etc/network/interfaces\"",
    "mkdir -p \"$1/etc/systemd/network\" && printf '[Match]\\nName=eth0 ens3\\n\\n[Network]\\nDHCP=ipv4\\n' > \"$1/etc/systemd/network/20-wired.network\"",
    "systemctl --root=\"$1\" enable systemd-networkd.service systemd-networkd-wait-online.service",
];

/// Left out of the squashfs (mksquashfs wildcards).
const EXCLUDE: &[&str] = &[
    "boot/initrd.img-*",
    "usr/lib/modules/*/kernel/sound",
    "usr/lib/modules/*/kernel/drivers/gpu",
    "usr/lib/modules/*/kernel/drivers/media",
    "usr/lib/modules/*/kernel/drivers/net/wireless",
    "usr/lib/modules/*/kernel/drivers/net/ethernet",
    "usr/lib/modules/*/kernel/drivers/infiniband",
    "usr/lib/modules/*/kernel/drivers/staging",
    "usr/lib/modules/*/kernel/drivers/scsi",
    "usr/lib/modules/*/kernel/drivers/usb",
    "usr/lib/modules/*/kernel/drivers/bluetooth",
    "usr/lib/modules/*/kernel/drivers/isdn",
    "usr/lib/modules/*/kernel/drivers/iio",
    "usr/lib/modules/*/kernel/drivers/hwmon",
    "usr/lib/modules/*/kernel/net/wireless",
    "usr/lib/modules/*/kernel/net/mac80211",
    "usr/lib/modules/*/kernel/net/bluetooth",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
];

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

/// The inputs' fingerprint: a change of packages, hooks or exclusions makes a new root.
fn inputs_key() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ("debian-root v1", PACKAGES, CUSTOMIZE, EXCLUDE, std::env::var("SWARMBOOT_DEBIAN_MIRROR").ok()).hash(&mut h);
    format!("{:016x}", h.finish())
}

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/swarmboot")
}

fn build_or_reuse() -> anyhow::Result<DebianRoot> {
    let dir = cache_dir().join(format!("debian-{}", inputs_key()));
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::File::create(dir.join("lock"))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", dir.display()))?;
    let done = dir.join("done");
    if !done.exists() {
        build(&dir)?;
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

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn build(dir: &Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let root = dir.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let mut mm = Command::new("mmdebstrap");
    mm.args(["--variant=minbase", "--quiet", &format!("--include={}", PACKAGES.join(","))]);
    for hook in CUSTOMIZE {
        mm.arg(format!("--customize-hook={hook}"));
    }
    mm.arg("bookworm").arg(&root);
    // No mirror: mmdebstrap takes the default one with stable's updates and security suites.
    if let Ok(m) = std::env::var("SWARMBOOT_DEBIAN_MIRROR") {
        mm.arg(m);
    }
    run(&mut mm).context("building the lab's Debian root (mmdebstrap; the apt mirror must be reachable)")?;
    let excl = dir.join("exclude.txt");
    std::fs::write(&excl, EXCLUDE.join("\n") + "\n")?;
    let sq = dir.join("root.squashfs");
    run(Command::new("mksquashfs")
        .arg(&root)
        .arg(&sq)
        .args(["-noappend", "-quiet", "-no-progress", "-no-xattrs", "-comp", "zstd", "-Xcompression-level", "15", "-wildcards", "-ef"])
        .arg(&excl))?;
    eprintln!("lab: built the Debian 12 root in {:.0} s ({} MiB squashfs) into {}", started.elapsed().as_secs_f64(), std::fs::metadata(&sq)?.len() >> 20, dir.display());
    Ok(())
}
