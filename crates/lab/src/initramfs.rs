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
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
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
    if has_interpreter(&bb) {
        return Err(std::io::Error::other(format!("{} is dynamically linked and would not run in the initramfs: install busybox-static", busybox.display())));
    }
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

/// Whether a 64-bit little-endian ELF has a PT_INTERP program header (is dynamically linked).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    if !elf.starts_with(b"\x7fELF") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        elf.get(o..o + 4).is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) == 3)
    })
}

/// The newest Debian kernel in /boot.
pub fn debian_kernel() -> Option<std::path::PathBuf> {
    let mut k: Vec<_> =
        std::fs::read_dir("/boot").ok()?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))).collect();
    k.sort();
    k.pop()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tells_static_from_dynamic_binaries() {
        // /bin/sh on Debian is dynamically linked.
        assert!(super::has_interpreter(&std::fs::read("/bin/sh").unwrap()));
        assert!(!super::has_interpreter(b"#!/bin/sh"));
    }
}
