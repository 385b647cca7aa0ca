//! Is the image's kernel the one running? The stub switch_roots when it is (its modules are
//! already loaded and match) and kexecs when it is not. Compared: the release and the build
//! string (`#1 SMP … (date)`) from the bzImage's header and from `/proc/version`.

/// The version string in a bzImage's setup header (`kernel_version` at 0x20E points at it,
/// relative to 0x200), like `6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP …`.
pub fn bzimage_version(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let protocol = u16::from_le_bytes(image.get(0x206..0x208)?.try_into().ok()?);
    if protocol < 0x200 {
        return None;
    }
    let off = usize::from(u16::from_le_bytes(image.get(0x20E..0x210)?.try_into().ok()?)) + 0x200;
    let raw = image.get(off..image.len().min(off + 512))?;
    let end = raw.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&raw[..end]).ok().map(str::to_string)
}

/// (release, build string) from either form.
fn parts(s: &str) -> Option<(&str, &str)> {
    let s = s.trim().strip_prefix("Linux version ").unwrap_or(s.trim());
    let release = s.split_whitespace().next()?;
    let build = &s[s.find(" #")? + 1..];
    Some((release, build))
}

/// Whether `/proc/version` describes the kernel whose bzImage says `image_version`.
pub fn is_running(proc_version: &str, image_version: &str) -> bool {
    matches!((parts(proc_version), parts(image_version)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_proc_version_compare() {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20Fu16.to_le_bytes());
        img[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let v = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)";
        img[0x500..0x500 + v.len()].copy_from_slice(v);
        let got = bzimage_version(&img).unwrap();
        assert_eq!(got.as_bytes(), v);
        let proc = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)\n";
        assert!(is_running(proc, &got));
        assert!(!is_running(&proc.replace("6.1.192-2", "6.1.191-1"), &got), "same release, other build");
        assert!(!is_running(&proc.replace("6.1.0-56", "6.1.0-57"), &got));
        assert_eq!(bzimage_version(&img[..0x300]), None, "string cut off");
        img[0x202] = b'X';
        assert_eq!(bzimage_version(&img), None, "not a bzImage");
        assert_eq!(bzimage_version(b"short"), None);
    }

    /// The Debian kernel on this machine, if there is one, has a readable version.
    #[test]
    fn debian_kernels_in_boot_parse() {
        let Ok(rd) = std::fs::read_dir("/boot") else { return };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("vmlinuz-") {
                let Ok(bytes) = std::fs::read(e.path()) else { continue };
                let v = bzimage_version(&bytes).expect("a bzImage version");
                let release = e.file_name().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
                assert!(v.starts_with(&release), "{v} vs {release}");
            }
        }
    }
}
