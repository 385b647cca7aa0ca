//! The newc ("070701") cpio format the kernel unpacks an initramfs from: a writer (the stub's
//! initramfs, the archive a kexec carries the image in) and a reader (LTSP's `ltsp.img`).

use std::io::Write;

pub const DIR: u32 = 0o040755;
pub const FILE: u32 = 0o100644;
pub const EXEC: u32 = 0o100755;
pub const CHAR_DEV: u32 = 0o020600;
pub const SYMLINK: u32 = 0o120777;

pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: usize,
    /// Directories written so far (for [`CpioWriter::entry_with_parents`]).
    dirs: std::collections::BTreeSet<String>,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter { out, ino: 0, written: 0, dirs: Default::default() }
    }

    /// One entry; `rdev` is (major, minor) for device nodes.
    pub fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> std::io::Result<()> {
        self.header(name, mode, data.len() as u64, rdev)?;
        self.write(data)?;
        self.pad()
    }

    /// A file of `len` bytes read from `data` (streamed: an image's root filesystem does not
    /// fit in memory twice).
    pub fn entry_from(&mut self, name: &str, mode: u32, len: u64, data: &mut impl std::io::Read) -> std::io::Result<()> {
        self.header(name, mode, len, (0, 0))?;
        let copied = std::io::copy(&mut std::io::Read::take(data, len), &mut self.out)?;
        if copied != len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{name}: {copied} of {len} bytes")));
        }
        self.written += len as usize;
        self.pad()
    }

    /// A symbolic link `name` → `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> std::io::Result<()> {
        self.entry(name, SYMLINK, target.as_bytes(), (0, 0))
    }

    fn header(&mut self, name: &str, mode: u32, len: u64, rdev: (u32, u32)) -> std::io::Result<()> {
        let len = u32::try_from(len).map_err(|_| std::io::Error::other(format!("{name}: newc cpio holds files below 4 GiB")))?;
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            len,
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
        self.pad()
    }

    pub fn dir(&mut self, name: &str) -> std::io::Result<()> {
        self.dirs.insert(name.trim_end_matches('/').to_string());
        self.entry(name, DIR, &[], (0, 0))
    }

    /// A file at `name`, after entries for those of its parent directories not written yet
    /// (`a/b/c.ko` → `a`, `a/b`, then the file).
    pub fn entry_with_parents(&mut self, name: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let mut parent = String::new();
        for part in name.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if !self.dirs.contains(&parent) {
                self.dir(&parent.clone())?;
            }
        }
        self.entry(name, mode, data, (0, 0))
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
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

/// One entry of a newc archive, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// As stored (`./etc/ltsp/ltsp.conf`, `usr`, …).
    pub name: &'a str,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A file's bytes, a symbolic link's target.
    pub data: &'a [u8],
}

impl Entry<'_> {
    pub fn is_dir(&self) -> bool {
        self.mode & TYPE == DIR & TYPE
    }
    pub fn is_file(&self) -> bool {
        self.mode & TYPE == FILE & TYPE
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & TYPE == SYMLINK & TYPE
    }
}

/// The file type bits of a mode.
pub const TYPE: u32 = 0o170000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("not a newc cpio archive: no 070701 header at byte {0}")]
    BadMagic(usize),
    #[error("cpio header at byte {0} has a field that is not hexadecimal")]
    BadField(usize),
    #[error("cpio entry at byte {at} says {wants} bytes follow, but the archive ends first")]
    Truncated { at: usize, wants: u64 },
    #[error("cpio entry at byte {0} has a name that is empty, longer than 4096 bytes or not UTF-8")]
    BadName(usize),
    #[error("more than {0} entries in the archive")]
    TooMany(usize),
    #[error("the archive ends without its TRAILER!!! entry")]
    NoTrailer,
}

/// At most this many entries are read from an archive.
pub const MAX_ENTRIES: usize = 100_000;
const HEADER: usize = 110;

/// The entries of a newc archive, up to its trailer (whatever follows it, such as a second
/// archive appended, is not read). Every length is checked against the bytes there are.
pub fn entries(archive: &[u8]) -> Result<Vec<Entry<'_>>, CpioError> {
    let align = |n: usize| n.div_ceil(4) * 4;
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = archive.get(at..).unwrap_or_default();
        if rest.is_empty() {
            return Err(CpioError::NoTrailer);
        }
        if !b"070701".starts_with(&rest[..rest.len().min(6)]) {
            return Err(CpioError::BadMagic(at));
        }
        let header = rest.get(..HEADER).ok_or(CpioError::Truncated { at, wants: HEADER as u64 })?;
        let field = |i: usize| -> Result<u32, CpioError> {
            let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).map_err(|_| CpioError::BadField(at))?;
            u32::from_str_radix(hex, 16).map_err(|_| CpioError::BadField(at))
        };
        let (mode, uid, gid, size, namesize) = (field(1)?, field(2)?, field(3)?, field(6)? as usize, field(11)? as usize);
        if !(2..=4097).contains(&namesize) {
            return Err(CpioError::BadName(at));
        }
        let name_at = at + HEADER;
        let raw = archive.get(name_at..name_at + namesize).ok_or(CpioError::Truncated { at, wants: namesize as u64 })?;
        let name = std::str::from_utf8(&raw[..namesize - 1]).map_err(|_| CpioError::BadName(at))?;
        let data_at = align(name_at + namesize);
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        let data = archive.get(data_at..data_at + size).ok_or(CpioError::Truncated { at, wants: size as u64 })?;
        if out.len() == MAX_ENTRIES {
            return Err(CpioError::TooMany(MAX_ENTRIES));
        }
        out.push(Entry { name, mode, uid, gid, data });
        at = align(data_at + size);
    }
}

/// Whether a 64-bit little-endian ELF has a PT_INTERP program header (is dynamically linked,
/// so it would not run in an initramfs without its loader and libraries).
pub fn is_dynamic_elf(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    if !elf.starts_with(b"\x7fELF") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        elf.get(o..o + 4).is_some_and(|t| u32::from_le_bytes(t.try_into().expect("4 bytes")) == 3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer writes the reader reads back, up to the trailer; damaged archives are
    /// errors that say where, never a panic.
    #[test]
    fn the_reader_reads_what_the_writer_wrote_and_refuses_damage() {
        let mut c = CpioWriter::new(Vec::new());
        c.dir("etc").unwrap();
        c.entry("etc/ltsp.conf", FILE, b"[clients]\n", (0, 0)).unwrap();
        c.entry("run.sh", EXEC, b"#!/bin/sh\n", (0, 0)).unwrap();
        c.symlink("sbin-init", "../usr/lib/systemd/systemd").unwrap();
        let archive = c.finish().unwrap();
        let got = entries(&archive).unwrap();
        let names: Vec<&str> = got.iter().map(|e| e.name).collect();
        assert_eq!(names, ["etc", "etc/ltsp.conf", "run.sh", "sbin-init"]);
        assert!(got[0].is_dir() && got[1].is_file() && got[3].is_symlink());
        assert_eq!((got[1].data, got[2].mode & 0o7777), (&b"[clients]\n"[..], 0o755));
        assert_eq!(got[3].data, b"../usr/lib/systemd/systemd");

        let mut appended = archive.clone();
        appended.extend_from_slice(b"anything after the trailer");
        assert_eq!(entries(&appended).unwrap().len(), 4);
        for cut in [0, 50, 115, 200, archive.len() - 20] {
            let e = entries(&archive[..cut]).unwrap_err();
            assert!(matches!(e, CpioError::Truncated { .. } | CpioError::NoTrailer), "cut at {cut}: {e}");
        }
        let mut bad = archive.clone();
        bad[0] = b'1';
        assert_eq!(entries(&bad).unwrap_err(), CpioError::BadMagic(0));
        let mut bad = archive.clone();
        bad[20] = b'z';
        assert_eq!(entries(&bad).unwrap_err(), CpioError::BadField(0));
        let mut huge = archive.clone();
        huge[6 + 8 * 6..14 + 8 * 6].copy_from_slice(b"ffffffff");
        assert!(matches!(entries(&huge).unwrap_err(), CpioError::Truncated { at: 0, .. }));
    }

    #[test]
    fn entries_are_aligned_newc() {
        let mut c = CpioWriter::new(Vec::new());
        c.dir("etc").unwrap();
        c.entry("etc/x", FILE, b"hello", (0, 0)).unwrap();
        let out = c.finish().unwrap();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("etc/x\0") && s.contains("hello") && s.contains("TRAILER!!!\0"));
    }

    #[test]
    fn a_streamed_entry_is_the_same_bytes_and_a_short_reader_is_an_error() {
        let data: Vec<u8> = (0..1001u32).map(|i| i as u8).collect();
        let mut a = CpioWriter::new(Vec::new());
        a.entry("big", FILE, &data, (0, 0)).unwrap();
        a.symlink("rootfs", "big").unwrap();
        let mut b = CpioWriter::new(Vec::new());
        b.entry_from("big", FILE, 1001, &mut &data[..]).unwrap();
        b.symlink("rootfs", "big").unwrap();
        assert_eq!(a.finish().unwrap(), b.finish().unwrap());
        let mut c = CpioWriter::new(Vec::new());
        assert!(c.entry_from("big", FILE, 2000, &mut &data[..]).is_err(), "1001 of 2000 bytes");
    }

    #[test]
    fn tells_static_from_dynamic_binaries() {
        assert!(is_dynamic_elf(&std::fs::read("/bin/sh").unwrap()), "Debian's /bin/sh is dynamic");
        assert!(!is_dynamic_elf(b"#!/bin/sh"));
    }
}
