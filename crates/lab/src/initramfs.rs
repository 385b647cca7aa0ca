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

/// The newest Debian kernel in /boot.
pub fn debian_kernel() -> Option<std::path::PathBuf> {
    let mut k: Vec<_> =
        std::fs::read_dir("/boot").ok()?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))).collect();
    k.sort();
    k.pop()
}

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
