//! A tiny test initramfs (newc cpio, with the stub builder's writer): static busybox and an `/init` that prints a
//! marker taken from the kernel command line (`marker=...`) to the console and powers off.

use std::io::Write;
use std::path::Path;

use swarmboot_stub::cpio::{is_dynamic_elf, CpioWriter, CHAR_DEV, EXEC};

/// The line a test VM prints when its image booted: `SWARMBOOT-TEST-MARKER <marker>`.
pub const MARKER_PREFIX: &str = "SWARMBOOT-TEST-MARKER";

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
for word in $(/bin/busybox cat /proc/cmdline); do
  case "$word" in marker=*) m="${word#marker=}" ;; esac
done
echo "SWARMBOOT-TEST-MARKER $m"
/bin/busybox poweroff -f
"#;

/// Writes the test initramfs to `dest`, with `busybox` (a static binary) as `/bin/busybox`.
pub fn write_test_initramfs(dest: &Path, busybox: &Path) -> std::io::Result<()> {
    write_test_initramfs_with_data(dest, busybox, 0, 0)
}

/// The test initramfs with `data_mib` MiB of incompressible bytes in `/data/noise` (an image
/// whose size is its size on the wire, for benchmarks that boot it directly or by kexec).
pub fn write_test_initramfs_with_data(dest: &Path, busybox: &Path, data_mib: usize, salt: u64) -> std::io::Result<()> {
    let bb = std::fs::read(busybox)?;
    if is_dynamic_elf(&bb) {
        return Err(std::io::Error::other(format!("{} is dynamically linked and would not run in the initramfs: install busybox-static", busybox.display())));
    }
    let mut c = CpioWriter::new(std::io::BufWriter::new(std::fs::File::create(dest)?));
    c.dir("bin")?;
    c.dir("dev")?;
    c.entry("dev/console", CHAR_DEV, &[], (5, 1))?;
    c.entry("bin/busybox", EXEC, &bb, (0, 0))?;
    c.entry("init", EXEC, INIT.as_bytes(), (0, 0))?;
    if data_mib > 0 {
        c.dir("data")?;
        c.entry("data/noise", EXEC & !0o111, &crate::noise(data_mib << 20, salt), (0, 0))?;
    }
    c.finish()?.flush()
}

/// The init of [`write_networked_test_initramfs`]: what a real image's initramfs does first
/// (load the NIC driver, DHCP), then the marker, then whether a seeder the stub carried along
/// runs (`SWARMBOOT-TEST-SEEDING <pids> files=N`, N counting `/swarmboot/image`); stays up.
const NETWORKED_INIT: &str = r#"#!/bin/busybox sh
b=/bin/busybox
$b mkdir -p /proc /sys /tmp
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
for m in $($b cat /lib/modules/load-order); do $b insmod /lib/modules/$m; done
for word in $($b cat /proc/cmdline); do
  case "$word" in marker=*) m="${word#marker=}" ;; esac
done
$b ip link set eth0 up
$b udhcpc -i eth0 -q -n -t 20 -s /bin/dhcp-bound >/dev/null 2>&1 || echo "test image: no DHCP answer"
echo "SWARMBOOT-TEST-MARKER $m"
seeders=""
for i in $($b seq 30); do
  for c in /proc/[0-9]*/comm; do
    [ "$($b cat $c 2>/dev/null)" = "swarmboot-seed" ] && seeders="$seeders ${c%/comm}"
  done
  [ -n "$seeders" ] && break
  $b sleep 1
done
echo "SWARMBOOT-TEST-SEEDING$seeders files=$($b ls /swarmboot/image 2>/dev/null | $b wc -l)"
exec $b sleep 100000
"#;

/// busybox udhcpc's script: configure the address it got (`$mask` is the prefix length).
const DHCP_BOUND: &str = r#"#!/bin/busybox sh
case "$1" in bound|renew) /bin/busybox ip addr add "$ip/$mask" dev "$interface" ;; esac
"#;

/// A test initramfs that brings up its network as an image of its own would: the kernel
/// modules of `release` that `virtio_net` needs (read from `/lib/modules/<release>`,
/// uncompressed), loaded in order; busybox `udhcpc` on eth0; then the marker.
pub fn write_networked_test_initramfs(dest: &Path, busybox: &Path, release: &str) -> anyhow::Result<()> {
    use swarmboot_init::kmod::ModuleIndex;
    let bb = std::fs::read(busybox)?;
    anyhow::ensure!(!is_dynamic_elf(&bb), "{} is dynamically linked: install busybox-static", busybox.display());
    let mods = Path::new("/lib/modules").join(release);
    let read = |f: &str| std::fs::read_to_string(mods.join(f)).map_err(|e| anyhow::anyhow!("{}: {e}", mods.join(f).display()));
    let index = ModuleIndex::parse(&read("modules.alias")?, &read("modules.dep")?);
    let mut order: Vec<String> = Vec::new();
    for m in ["virtio_pci", "virtio_net"] {
        // Built into the kernel: nothing to load.
        for f in index.load_order(m).unwrap_or_default() {
            if !order.contains(&f) {
                order.push(f);
            }
        }
    }
    let mut c = CpioWriter::new(std::io::BufWriter::new(std::fs::File::create(dest)?));
    for d in ["bin", "dev", "lib", "lib/modules"] {
        c.dir(d)?;
    }
    c.entry("dev/console", CHAR_DEV, &[], (5, 1))?;
    c.entry("bin/busybox", EXEC, &bb, (0, 0))?;
    c.entry("bin/dhcp-bound", EXEC, DHCP_BOUND.as_bytes(), (0, 0))?;
    c.entry("init", EXEC, NETWORKED_INIT.as_bytes(), (0, 0))?;
    let mut names = String::new();
    for f in &order {
        anyhow::ensure!(f.ends_with(".ko"), "{f}: compressed modules are not supported by this test image");
        let name = f.rsplit('/').next().unwrap_or(f);
        c.entry(&format!("lib/modules/{name}"), EXEC & !0o111, &std::fs::read(mods.join(f))?, (0, 0))?;
        names.push_str(name);
        names.push('\n');
    }
    c.entry("lib/modules/load-order", EXEC & !0o111, names.as_bytes(), (0, 0))?;
    c.finish()?.flush()?;
    Ok(())
}

/// The newest Debian kernel in /boot (the one the stub builder defaults to).
pub use swarmboot_stub::newest_kernel as debian_kernel;

/// The init of the test root filesystem: prints the marker, then whether the stub's seeder
/// still runs (`SWARMBOOT-TEST-SEEDING <pids>`), then stays up (a booted machine keeps
/// seeding for the others).
const ROOT_INIT: &str = r#"#!/bin/busybox sh
b=/bin/busybox
$b mkdir -p /proc /sys /tmp
[ -e /proc/self ] || $b mount -t proc proc /proc
for word in $($b cat /proc/cmdline); do
  case "$word" in marker=*) m="${word#marker=}" ;; esac
done
echo "SWARMBOOT-TEST-MARKER $m"
seeders=""
for c in /proc/[0-9]*/comm; do
  [ "$($b cat $c 2>/dev/null)" = "swarmboot-seed" ] && seeders="$seeders ${c%/comm}"
done
echo "SWARMBOOT-TEST-SEEDING$seeders files=$($b ls /run/swarmboot/image 2>/dev/null | $b wc -l)"
exec $b sleep 100000
"#;

/// A squashfs root filesystem for stub tests: static busybox, an `/sbin/init` that prints the
/// marker from the kernel command line and whether the stub's seeder survived the switch, and
/// `data_mib` MiB of incompressible bytes (`/data/noise`), so where the bytes came from can be
/// measured. Needs `mksquashfs` (squashfs-tools).
pub fn write_test_rootfs(dest: &Path, busybox: &Path, data_mib: usize, salt: u64) -> anyhow::Result<()> {
    let tree = dest.with_extension("tree");
    let _ = std::fs::remove_dir_all(&tree);
    for d in ["bin", "sbin", "proc", "sys", "dev", "run", "tmp", "data"] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    let bb = std::fs::read(busybox)?;
    anyhow::ensure!(!is_dynamic_elf(&bb), "{} is dynamically linked: install busybox-static", busybox.display());
    std::fs::write(tree.join("bin/busybox"), bb)?;
    std::fs::write(tree.join("sbin/init"), ROOT_INIT)?;
    use std::os::unix::fs::PermissionsExt;
    for f in ["bin/busybox", "sbin/init"] {
        std::fs::set_permissions(tree.join(f), std::fs::Permissions::from_mode(0o755))?;
    }
    let noise = crate::noise(data_mib << 20, salt);
    std::fs::write(tree.join("data/noise"), noise)?;
    let _ = std::fs::remove_file(dest);
    let out = std::process::Command::new("mksquashfs").arg(&tree).arg(dest).args(["-noappend", "-no-progress", "-all-root", "-comp", "gzip"]).output()?;
    anyhow::ensure!(out.status.success(), "mksquashfs: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&tree)?;
    Ok(())
}
