//! `swarmboot image add|build|list|rm|gc`: the catalog from the command line.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Subcommand;
use swarmboot_config::Config;

#[derive(Subcommand)]
pub enum ImageAction {
    /// Add NAME (version 1, or the next version of an existing image).
    Add {
        name: String,
        /// The image's kernel (default with --rootfs: the newest /boot/vmlinuz-* in the root that
        /// has an initramfs).
        #[arg(long, requires = "initrd")]
        kernel: Option<PathBuf>,
        /// The image's initramfs (default with --rootfs: /boot/initrd.img-* of that kernel).
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// A squashfs root filesystem.
        #[arg(long, required_unless_present = "kernel")]
        rootfs: Option<PathBuf>,
        /// LTSP's ltsp.img (`ltsp initrd`), applied to the root before LTSP's init runs, as LTSP's
        /// own boot does (`ltsp swarmboot` passes it).
        #[arg(long, requires = "rootfs")]
        ltsp: Option<PathBuf>,
        /// Kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Add nothing when the latest version has the same files and command line.
        #[arg(long)]
        if_changed: bool,
    },
    /// Build an image from Debian (mmdebstrap from `[build] mirror`, squashfs) and add it as the
    /// next version: `elchos`, the default image. Its inputs go into the signed manifest.
    Build {
        /// What to build: elchos.
        recipe: String,
        /// Add it under this name (default: elchos).
        #[arg(long)]
        name: Option<String>,
        /// One more package (repeatable).
        #[arg(long = "include", value_name = "PACKAGE")]
        include: Vec<String>,
        /// root's password as a crypt(3) hash (`openssl passwd -6`, `mkpasswd -m sha-512`);
        /// without it and without keys root cannot log in.
        #[arg(long, value_name = "HASH")]
        root_password_hash: Option<String>,
        /// A file of SSH public keys that may log in as root.
        #[arg(long, value_name = "FILE")]
        authorized_keys: Option<PathBuf>,
        /// Where to build (default: a new directory in /var/tmp); removed afterwards.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
    /// List images and their versions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove NAME (all versions) or NAME@VERSION. Files stay until `image gc`.
    Rm { name: String },
    /// Remove old versions and files nothing references.
    Gc {
        /// Versions of each image to keep, newest first.
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Keep a version until its successor is at least this old (machines still booting it).
        #[arg(long, default_value = "1h")]
        grace: humantime::Duration,
    },
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn run(path: &Path, action: ImageAction) -> anyhow::Result<()> {
    use swarmboot_image::{Catalog, Role};
    let cfg = Config::load(path)?;
    let catalog = Catalog::new(&cfg.server.state_dir);
    match action {
        ImageAction::Add { name, kernel, initrd, rootfs, ltsp, cmdline, if_changed } => {
            let found;
            let (kernel, initrd) = match (&kernel, &initrd, &rootfs) {
                (Some(k), Some(i), _) => (k.as_path(), i.as_path()),
                (_, _, Some(r)) => {
                    found = crate::rootfs_kernel::from_squashfs(r)?;
                    println!("took kernel {release} from {}: /boot/vmlinuz-{release} and /boot/initrd.img-{release}", r.display(), release = found.release);
                    (found.kernel.as_path(), found.initrd.as_path())
                }
                _ => anyhow::bail!("give the image's files: --kernel K --initrd I, or --rootfs R (its newest kernel is taken)"),
            };
            let mut files = vec![(Role::Kernel, kernel), (Role::Initrd, initrd)];
            if let Some(r) = &rootfs {
                files.push((Role::Rootfs, r.as_path()));
            }
            if let Some(l) = &ltsp {
                files.push((Role::Ltsp, l.as_path()));
            }
            let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
            let (m, new) =
                if if_changed { catalog.add_if_changed(&name, &files, &cmdline, unix_now(), &key)? } else { (catalog.add(&name, &files, &cmdline, unix_now(), &key)?, true) };
            if !new {
                println!("unchanged: {}@{} has these files and command line; nothing added", m.name, m.version);
                return Ok(());
            }
            println!("added {}@{}{}, signed by {}", m.name, m.version, m.predecessor.map(|p| format!(" (successor of @{p})")).unwrap_or_default(), key.public().fingerprint());
            for f in &m.files {
                println!("  {:<7} {:>12} bytes  sha256 {}", format!("{:?}", f.role).to_lowercase(), f.size, f.sha256);
            }
        }
        ImageAction::Build { recipe, name, include, root_password_hash, authorized_keys, work_dir } => {
            crate::image_build::run(&cfg, &catalog, crate::image_build::BuildArgs { recipe, name, include, root_password_hash, authorized_keys, work_dir }, unix_now())?;
        }
        ImageAction::List { json } => {
            let all = catalog.all()?;
            if json {
                // Paths on this server (the catalog does not know where it is reached).
                let paths = swarmboot_urls::Urls::new("");
                let rows: Vec<_> = all
                    .iter()
                    .map(|m| {
                        serde_json::json!({"name": m.name, "version": m.version, "created": m.created, "predecessor": m.predecessor, "cmdline": m.cmdline,
                        "manifest": paths.manifest(&m.name, Some(m.version)),
                        "files": m.files.iter().map(|f| serde_json::json!({"role": format!("{:?}", f.role).to_lowercase(), "size": f.size, "sha256": f.sha256, "info_hash": f.info_hash,
                            "blob": paths.blob(&f.sha256), "torrent": paths.torrent(&f.sha256), "magnet": paths.magnet(&f.sha256)})).collect::<Vec<_>>()})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("{:<20} {:>7} {:>12}  CMDLINE", "IMAGE", "VERSION", "SIZE");
            for m in &all {
                let size: u64 = m.files.iter().map(|f| f.size).sum();
                println!("{:<20} {:>7} {:>12}  {}", m.name, m.version, size, m.cmdline);
            }
            println!("{} image version(s)", all.len());
            for b in catalog.broken_manifests()? {
                eprintln!("note: {} is not a manifest ({}), so it is no version; remove it if nothing should be there", b.path.display(), b.why);
            }
        }
        ImageAction::Rm { name } => {
            let (name, version) = match name.split_once('@') {
                Some((n, v)) => (n.to_string(), Some(v.parse::<u32>().with_context(|| format!("`{v}` is not a version number"))?)),
                None => (name, None),
            };
            for m in catalog.remove(&name, version)? {
                println!("removed {}@{}", m.name, m.version);
            }
        }
        ImageAction::Gc { keep, grace } => {
            let r = catalog.gc(keep.max(1), grace.as_secs(), unix_now())?;
            for (n, v) in &r.versions {
                println!("removed {n}@{v}");
            }
            println!("removed {} file(s), {} bytes", r.blobs, r.bytes);
        }
    }
    Ok(())
}
