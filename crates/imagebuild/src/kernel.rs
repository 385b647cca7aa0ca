//! The newest kernel in a root: `/boot/vmlinuz-R` with `/boot/initrd.img-R` of the same
//! release, as Debian and Ubuntu install them and `ltsp kernel` looks for them.

use std::cmp::Ordering;

/// Compares kernel releases as versions: runs of digits by value, the rest as text
/// (`6.1.0-10-amd64` > `6.1.0-9-amd64`).
pub fn release_cmp(a: &str, b: &str) -> Ordering {
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
