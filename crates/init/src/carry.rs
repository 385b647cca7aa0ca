//! What a kexec carries into the image's kernel, so the image keeps being seeded there.
//!
//! The stub appends one uncompressed newc archive to the image's initramfs (the kernel unpacks
//! concatenated archives in order, each compressed or not) holding:
//!
//! - `swarmboot/init`: the stub's own init binary;
//! - `swarmboot/carry.toml`: a [`Carry`] note (server, image, trusted keys, the image's init);
//! - `swarmboot/image/`: the fetched image as [`fetch`] lays it out (`<sha256>` data,
//!   `<sha256>.torrent`, `manifest.signed`), with `kernel`, `initrd`, `rootfs` as symlinks;
//! - for an image with a root filesystem, `lib/modules/<release>/`: the new kernel's loop,
//!   squashfs and overlay modules and what they need, taken from the image's own
//!   `/lib/modules`, with cut-down `modules.alias` and `modules.dep`.
//!
//! and boots the kernel with `rdinit=/swarmboot/init` appended to the image's command line
//! ([`kexec_cmdline`]). There the binary, as PID 1, sees the note and opens the image. An image
//! with a root filesystem ([`Carry::mount_root`]) boots without its own initramfs (a stock one
//! knows nothing of swarmboot and would look for `root=`): the binary mounts the root
//! filesystem (squashfs under a tmpfs overlay) as the stub does, forks the seeder and execs the
//! image's `init=` (or `/sbin/init`) in it. An image without one gets its initramfs with the
//! archive appended; the binary forks the seeder and execs the initramfs's init, which never
//! knows.
//!
//! [`fetch`]: https://docs.rs/swarmboot-fetch

use serde::{Deserialize, Serialize};
use swarmboot_image::Role;

/// Where the stub's binary sits in the carried archive.
pub const INIT: &str = "/swarmboot/init";
/// The note the carried seeder reads.
pub const NOTE: &str = "/swarmboot/carry.toml";
/// The image's files.
pub const IMAGE_DIR: &str = "/swarmboot/image";

/// The note in the carried archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carry {
    /// The boot server's base URL (its tracker is at `/announce`).
    pub server: String,
    pub image: String,
    pub version: u32,
    /// Public keys (hex) the manifest may be signed with: the stub's.
    pub trusted_keys: Vec<String>,
    /// The image's own init, exec'd once the seeder is forked.
    pub init: String,
    /// The roles carried (the files in the image directory).
    pub roles: Vec<Role>,
    /// The image's root filesystem is mounted by the carried init (no image initramfs).
    pub mount_root: bool,
}

/// The command line to kexec the image's kernel with: the image's, with our init as the
/// initramfs's init (`rdinit=`, placed before a `--` that hands the rest to init), and the
/// init to exec after ours. With `mount_root` (our init mounts the image's root filesystem)
/// that is the image's `init=`, else `/sbin/init`; without, the init of the image's initramfs:
/// its `rdinit=`, else the kernel's default `/init`.
pub fn kexec_cmdline(image_cmdline: &str, mount_root: bool) -> (String, String) {
    let words = crate::cmdline::words(image_cmdline);
    let (kernel_part, init_part) = match words.iter().position(|w| w == "--") {
        Some(i) => (&words[..i], Some(&words[i..])),
        None => (&words[..], None),
    };
    let image_init = match mount_root {
        true => crate::cmdline::root_init(image_cmdline),
        false => crate::cmdline::value(kernel_part, "rdinit").unwrap_or("/init").to_string(),
    };
    let quote = |w: &String| match w.split_once('=') {
        _ if !w.contains(char::is_whitespace) => w.clone(),
        Some((k, v)) => format!("{k}=\"{v}\""),
        None => format!("\"{w}\""),
    };
    let mut out: Vec<String> = kernel_part.iter().filter(|w| !w.starts_with("rdinit=")).map(quote).collect();
    out.push(format!("rdinit={INIT}"));
    if let Some(rest) = init_part {
        out.extend(rest.iter().map(quote));
    }
    (out.join(" "), image_init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_init_runs_first_and_the_images_init_is_remembered() {
        assert_eq!(kexec_cmdline("console=ttyS0 panic=-1", false), ("console=ttyS0 panic=-1 rdinit=/swarmboot/init".into(), "/init".into()));
        assert_eq!(kexec_cmdline("rdinit=/sbin/preinit quiet", false), ("quiet rdinit=/swarmboot/init".into(), "/sbin/preinit".into()));
        assert_eq!(kexec_cmdline("quiet -- single rdinit=x", false), ("quiet rdinit=/swarmboot/init -- single rdinit=x".into(), "/init".into()), "after -- the words are init's");
        assert_eq!(kexec_cmdline("", false), ("rdinit=/swarmboot/init".into(), "/init".into()));
    }

    #[test]
    fn with_the_root_mounted_by_us_the_images_init_is_its_init_argument() {
        // An LTSP image: its init= runs in the mounted root (and stays on the line for it).
        let ltsp = "console=ttyS0 init=/usr/share/ltsp/client/init/init ltsp.image=images/x.img";
        assert_eq!(kexec_cmdline(ltsp, true), (format!("{ltsp} rdinit=/swarmboot/init"), "/usr/share/ltsp/client/init/init".into()));
        assert_eq!(kexec_cmdline("console=ttyS0", true).1, "/sbin/init");
        assert_eq!(kexec_cmdline("quiet -- init=/x", true).1, "/sbin/init", "after -- the words are init's");
    }

    #[test]
    fn quoted_values_stay_one_word() {
        let (line, _) = kexec_cmdline(r#"a="b c" d"#, false);
        assert_eq!(line, r#"a="b c" d rdinit=/swarmboot/init"#);
        assert_eq!(crate::cmdline::words(&line), vec!["a=b c", "d", "rdinit=/swarmboot/init"]);
    }

    #[test]
    fn the_note_round_trips_through_toml() {
        let c = Carry {
            server: "http://10.0.0.1:8080".into(),
            image: "elchos".into(),
            version: 2,
            trusted_keys: vec!["ab".into()],
            init: "/init".into(),
            roles: vec![Role::Kernel, Role::Rootfs],
            mount_root: true,
        };
        assert_eq!(toml::from_str::<Carry>(&toml::to_string(&c).unwrap()).unwrap(), c);
        assert!(toml::from_str::<Carry>("server = 1").is_err());
    }
}
