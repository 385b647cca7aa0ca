//! A tiny test initramfs (newc cpio, written here): static busybox and an `/init` that prints a
//! marker taken from the kernel command line (`marker=...`) to the console and powers off.

use std::io::Write;
use std::path::Path;

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

struct Cpio<W: Write> {
    out: W,
    ino: u32,
    written: usize,
}

impl<W: Write> Cpio<W> {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> std::io::Result<()> {
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, 1, 0, data.len(), 0, 0, rdev.0, rdev.1, name.len() + 1, 0
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len();
        Ok(())
    }
    fn pad(&mut self) -> std::io::Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.write(&[0u8; 3][..n])
    }
}

/// Writes the test initramfs to `dest`, with `busybox` (a static binary) as `/bin/busybox`.
pub fn write_test_initramfs(dest: &Path, busybox: &Path) -> std::io::Result<()> {
    let bb = std::fs::read(busybox)?;
    let mut c = Cpio { out: std::io::BufWriter::new(std::fs::File::create(dest)?), ino: 0, written: 0 };
    const DIR: u32 = 0o040755;
    const FILE: u32 = 0o100755;
    const CHR: u32 = 0o020600;
    c.entry("bin", DIR, &[], (0, 0))?;
    c.entry("dev", DIR, &[], (0, 0))?;
    c.entry("dev/console", CHR, &[], (5, 1))?;
    c.entry("bin/busybox", FILE, &bb, (0, 0))?;
    c.entry("init", FILE, INIT.as_bytes(), (0, 0))?;
    c.entry("TRAILER!!!", 0, &[], (0, 0))?;
    c.out.flush()
}

/// The newest Debian kernel in /boot.
pub fn debian_kernel() -> Option<std::path::PathBuf> {
    let mut k: Vec<_> = std::fs::read_dir("/boot").ok()?.filter_map(|e| e.ok()).map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))).collect();
    k.sort();
    k.pop()
}
