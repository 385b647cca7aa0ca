//! Installs LTSP's `ltsp.img` into an LTSP image's root before LTSP's init runs, as LTSP's own
//! initramfs hook does (what goes where: `swarmboot_init::ltsp`). The archive is read and
//! checked before the switch, while a failure can still be reported and nothing has changed;
//! it is written after the chroot into the new root, so every path and link resolves inside it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use swarmboot_init::ltsp::{self, Step};

use crate::console::say;

/// An image's `ltsp.img`, read and checked.
pub struct LtspImg {
    archive: Vec<u8>,
}

/// How an image starts: its init, with what more in its environment, LTSP installed first or not.
pub struct Start {
    pub init: String,
    pub env: Vec<String>,
    pub ltsp: Option<LtspImg>,
}

impl Start {
    /// `init` for an image without LTSP; LTSP's init, told the server, after installing the
    /// image's `ltsp.img` (the file `ltsp` in `image_dir`) for an LTSP image.
    pub fn for_image(image_dir: &Path, init: String, server: &str) -> anyhow::Result<Start> {
        let path = image_dir.join("ltsp");
        if !path.exists() {
            return Ok(Start { init, env: Vec::new(), ltsp: None });
        }
        let archive = std::fs::read(&path).with_context(|| format!("reading LTSP's ltsp.img ({})", path.display()))?;
        ltsp::plan(&archive)?;
        let env = ltsp::init_env(server);
        Ok(Start { init: ltsp::INIT.to_string(), env, ltsp: Some(LtspImg { archive }) })
    }
}

impl LtspImg {
    /// Writes the steps under `root` (`/`: the new root, after the chroot).
    pub fn install(&self, root: &Path) -> anyhow::Result<()> {
        let steps = ltsp::plan(&self.archive)?;
        let (mut files, mut bytes) = (0usize, 0usize);
        for step in &steps {
            write(root, step).with_context(|| format!("installing LTSP's ltsp.img into the image: {step:?}"))?;
            if let Step::File { data, .. } = step {
                files += 1;
                bytes += data.len();
            }
        }
        say(format!("installed LTSP's ltsp.img into the image ({files} files, {} KiB; as LTSP's initramfs would): LTSP's init runs next", bytes >> 10));
        Ok(())
    }
}

/// Removes what is at `path` unless it is a directory (a file or link from the image is
/// replaced, as LTSP's `cp -a` and `ln -sf` replace them).
fn clear(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if !md.is_dir() => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

fn write(root: &Path, step: &Step) -> std::io::Result<()> {
    match step {
        Step::Dir { path, mode } => {
            let p = root.join(path);
            std::fs::create_dir_all(&p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
        }
        Step::File { path, mode, uid, gid, data } => {
            let p = root.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            clear(&p)?;
            std::fs::write(&p, data)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
            match std::os::unix::fs::lchown(&p, Some(*uid), Some(*gid)) {
                // PID 1 is root; the unit tests may not be.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
                other => other,
            }
        }
        Step::Symlink { path, target } => {
            let p = root.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            clear(&p)?;
            std::os::unix::fs::symlink(target, &p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_init::cpio::{CpioWriter, DIR, EXEC, FILE};

    /// Into a root laid out as Debian's (merged /usr: `lib` is a link to `usr/lib`) holding the
    /// image's own older LTSP: LTSP's code and settings replace it, the links go through
    /// `lib`, and LTSP's init is what starts, told the server.
    #[test]
    fn ltsp_img_goes_into_the_root_and_ltsps_init_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (image, root) = (dir.path().join("image"), dir.path().join("root"));
        for d in ["usr/lib/systemd/system/multi-user.target.wants", "usr/share/ltsp", "usr/sbin", "etc/modprobe.d"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::write(root.join("usr/share/ltsp/ltsp"), "the image's older ltsp").unwrap();
        std::fs::create_dir_all(&image).unwrap();

        let plain = Start::for_image(&image, "/sbin/init".into(), "http://10.77.0.1:8080").unwrap();
        assert!(plain.ltsp.is_none() && plain.init == "/sbin/init" && plain.env.is_empty(), "no ltsp.img: the image's own init");

        let mut c = CpioWriter::new(Vec::new());
        for d in ["./usr", "./usr/share", "./usr/share/ltsp", "./usr/share/ltsp/client", "./usr/share/ltsp/client/init", "./etc", "./etc/ltsp"] {
            c.entry(d, DIR, &[], (0, 0)).unwrap();
        }
        c.entry("./usr/share/ltsp/ltsp", EXEC, b"#!/bin/sh\n# the server's ltsp\n", (0, 0)).unwrap();
        c.entry("./usr/share/ltsp/client/init/init", EXEC, b"#!/bin/sh\n", (0, 0)).unwrap();
        c.entry("./etc/ltsp/passwd", FILE, b"alice:x:1000:1000::/home/alice:/bin/bash\n", (0, 0)).unwrap();
        std::fs::write(image.join("ltsp"), c.finish().unwrap()).unwrap();

        let start = Start::for_image(&image, "/sbin/init".into(), "http://10.77.0.1:8080").unwrap();
        assert_eq!(start.init, ltsp::INIT);
        assert_eq!(start.env, ["PATH=/sbin:/usr/sbin:/bin:/usr/bin", "SERVER=10.77.0.1"]);
        start.ltsp.as_ref().unwrap().install(&root).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("usr/share/ltsp/ltsp")).unwrap(), "#!/bin/sh\n# the server's ltsp\n");
        assert_eq!(std::fs::metadata(root.join("usr/share/ltsp/client/init/init")).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(std::fs::read_to_string(root.join("etc/ltsp/passwd")).unwrap().starts_with("alice:"));
        assert_eq!(std::fs::read_link(root.join("usr/sbin/ltsp")).unwrap(), Path::new("../share/ltsp/ltsp"));
        assert_eq!(std::fs::read_link(root.join("usr/lib/systemd/system/multi-user.target.wants/ltsp.service")).unwrap(), Path::new("../ltsp.service"));
        assert!(std::fs::read_to_string(root.join("etc/modprobe.d/ltsp.conf")).unwrap().contains("blacklist floppy"));
        start.ltsp.as_ref().unwrap().install(&root).expect("installing twice (a reboot into the same root) replaces what is there");

        std::fs::write(image.join("ltsp"), b"070701 not an archive").unwrap();
        let e = Start::for_image(&image, "/sbin/init".into(), "http://10.77.0.1:8080").err().unwrap();
        assert!(format!("{e:#}").contains("ltsp.img is not LTSP's initramfs archive"), "{e:#}");
    }
}
