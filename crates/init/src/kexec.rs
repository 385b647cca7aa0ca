//! The stub's kexec path: the image's kernel is not the running one. The image (its fetched
//! files, with their torrents and signed manifest) and this binary ride along in an archive
//! (layout in `swarmboot_init::carry`), so the seeder starts again in the new kernel
//! (`carried.rs`) without fetching or hashing anything.
//!
//! An image with a root filesystem boots without its own initramfs: the archive is the whole
//! initramfs, with the new kernel's loop, squashfs and overlay modules taken from the image's
//! root, and the carried init mounts the root. An image without one gets the archive appended
//! to its initramfs; when RAM is too short to hold the image twice for a moment, it boots
//! without the archive and seeding ends at the jump.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use swarmboot_image::{Manifest, Role};
use swarmboot_init::carry::{self, Carry};
use swarmboot_init::cpio::{CpioWriter, CHAR_DEV, EXEC, FILE};
use swarmboot_init::handover::Plan;
use swarmboot_init::kmod::ModuleIndex;
use swarmboot_manifest::PublicKey;

use crate::console::say;
use crate::drivers::Drivers;

/// What the carried init needs to mount a root filesystem in the new kernel.
const ROOT_MODULES: [&str; 3] = ["loop", "squashfs", "overlay"];

/// Files for the carried archive: path in it, bytes.
type Files = Vec<(String, Vec<u8>)>;

/// The new kernel's modules for mounting the image's root, from the image's own
/// `/lib/modules/<release>` (with the index cut down to them), or none when they are built in.
fn root_modules(drivers: &mut Drivers, rootfs: &Path, release: &str) -> anyhow::Result<Files> {
    let peek = Path::new("/run/swarmboot/peek");
    crate::rootfs::with_squashfs(drivers, rootfs, peek, |root| -> anyhow::Result<Files> {
        let dir = root.join("lib/modules").join(release);
        let dep = std::fs::read_to_string(dir.join("modules.dep")).map_err(|e| {
            anyhow::anyhow!("the image's root has no modules for its kernel {release} ({}/modules.dep: {e}): install that kernel's package in the image", dir.display())
        })?;
        let alias = std::fs::read_to_string(dir.join("modules.alias")).unwrap_or_default();
        let index = ModuleIndex::parse(&alias, &dep);
        let files = index.closure(ROOT_MODULES);
        let (sub_alias, sub_dep) = index.subset(&files);
        let base = format!("lib/modules/{release}");
        let mut out = vec![(format!("{base}/modules.alias"), sub_alias.into_bytes()), (format!("{base}/modules.dep"), sub_dep.into_bytes())];
        for f in files {
            let bytes = std::fs::read(dir.join(&f)).map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(&f).display()))?;
            out.push((format!("{base}/{f}"), bytes));
        }
        Ok(out)
    })?
}

/// Room left for the stub while the kernel copies the archive.
const MARGIN: u64 = 32 << 20;

/// Whether `f`'s data stays on the tmpfs after it is copied into the archive: the kernel and
/// the initramfs (kexec without carrying needs them), not the root filesystem.
fn keeps(m: &Manifest, f: &swarmboot_image::FileEntry) -> bool {
    m.files.iter().any(|o| o.sha256 == f.sha256 && matches!(o.role, Role::Kernel | Role::Initrd))
}

/// Writes `<dir>/kexec-initrd`: the image's initramfs (unless the carried init mounts the root
/// itself), then the carried archive with `extra` files. The root filesystem's data is deleted
/// once it is in the archive (the archive replaces it on the tmpfs); the kernel and initramfs
/// stay, so a failure here can still kexec without carrying.
fn write_carried_initrd(dir: &Path, m: &Manifest, note: &Carry, extra: &Files) -> anyhow::Result<PathBuf> {
    let exe = std::fs::read("/proc/self/exe")?;
    let image_initrd = if note.mount_root { 0 } else { std::fs::metadata(dir.join("initrd"))?.len() };
    let distinct: Vec<&swarmboot_image::FileEntry> = m.distinct_files(|r| note.roles.contains(&r)).into_iter().map(|(f, _)| f).collect();
    let carried: u64 = distinct.iter().map(|f| f.size).sum::<u64>() + extra.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    let total = image_initrd + carried + exe.len() as u64;
    // Data deleted once copied (everything but the kernel and initramfs, which a failure here
    // still needs); while the kernel copies the archive, the archive is there twice, less that.
    let deleted: u64 = distinct.iter().filter(|f| !keeps(m, f)).map(|f| f.size).sum();
    let need = total + (total - deleted) + MARGIN;
    let have = crate::worker::mem_available().unwrap_or(0);
    anyhow::ensure!(
        have >= need,
        "carrying the image needs {} MiB of free RAM for a moment ({} MiB of archive while the kernel copies it), this machine has {} MiB",
        need >> 20,
        total >> 20,
        have >> 20
    );

    let path = dir.join("kexec-initrd");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    if !note.mount_root {
        std::io::copy(&mut File::open(dir.join("initrd"))?, &mut out)?;
        out.write_all(&[0u8; 3][..((4 - image_initrd % 4) % 4) as usize])?;
    }
    let mut c = CpioWriter::new(out);
    if note.mount_root {
        // The whole initramfs: the kernel gives init its console from here.
        c.dir("dev")?;
        c.entry("dev/console", CHAR_DEV, &[], (5, 1))?;
    }
    for (name, bytes) in extra {
        c.entry_with_parents(name, FILE, bytes)?;
    }
    c.dir("swarmboot")?;
    c.entry(carry::INIT.trim_start_matches('/'), EXEC, &exe, (0, 0))?;
    c.entry(carry::NOTE.trim_start_matches('/'), FILE, toml::to_string(note)?.as_bytes(), (0, 0))?;
    let img = carry::IMAGE_DIR.trim_start_matches('/');
    c.dir(img)?;
    c.entry(&format!("{img}/manifest.signed"), FILE, &std::fs::read(dir.join("manifest.signed"))?, (0, 0))?;
    for f in &distinct {
        let torrent = dir.join(format!("{}.torrent", f.sha256));
        if let Ok(t) = std::fs::read(&torrent) {
            c.entry(&format!("{img}/{}.torrent", f.sha256), FILE, &t, (0, 0))?;
        }
        let data = dir.join(&f.sha256);
        c.entry_from(&format!("{img}/{}", f.sha256), FILE, f.size, &mut File::open(&data)?)?;
        if !keeps(m, f) {
            let _ = std::fs::remove_file(&data);
            for o in m.files.iter().filter(|o| o.sha256 == f.sha256) {
                let _ = std::fs::remove_file(dir.join(o.role.as_str()));
            }
        }
    }
    for f in m.files.iter().filter(|f| note.roles.contains(&f.role)) {
        c.symlink(&format!("{img}/{}", f.role.as_str()), &f.sha256)?;
    }
    c.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(path)
}

/// Loads the image's kernel with the carried archive (after the image's initramfs, for an
/// image without a root filesystem) and jumps. The caller has stopped the stub's worker: its files must not be open for writing (the
/// kernel refuses those with ETXTBSY), and its memory is wanted for the copy; its seeding
/// starts again in the new kernel.
pub fn kexec(drivers: &mut Drivers, dir: &Path, m: &Manifest, plan: Plan, trusted: &[PublicKey], server: &str) -> anyhow::Result<std::convert::Infallible> {
    let mount_root = plan == Plan::KernelAndRootfs;
    let (carried_cmdline, image_init) = carry::kexec_cmdline(&m.cmdline, mount_root);
    let note = Carry {
        server: server.to_string(),
        image: m.name.clone(),
        version: m.version,
        trusted_keys: trusted.iter().map(PublicKey::to_hex).collect(),
        init: image_init,
        roles: plan.roles(m),
        mount_root,
    };
    let extra = if mount_root {
        let header = std::fs::read(dir.join("kernel"))?;
        let version = swarmboot_init::kernel::bzimage_version(&header).ok_or_else(|| anyhow::anyhow!("the image's kernel has no version in its header: not a bzImage?"))?;
        let release = version.split_whitespace().next().unwrap_or_default().to_string();
        root_modules(drivers, &dir.join("rootfs"), &release)?
    } else {
        Vec::new()
    };
    let (initrd, cmdline, carried) = match write_carried_initrd(dir, m, &note, &extra) {
        Ok(p) => (p, carried_cmdline, true),
        // Without the archive, an image whose root was to be mounted by it cannot start.
        Err(e) if mount_root => anyhow::bail!("cannot carry the image into its kernel: {e:#}"),
        Err(e) => {
            say(format!("cannot carry the image into its kernel ({e:#}): it boots without the stub's seeder"));
            let _ = std::fs::remove_file(dir.join("kexec-initrd"));
            (dir.join("initrd"), m.cmdline.clone(), false)
        }
    };
    say(format!(
        "the image's kernel is not the stub's: kexec into {}@{}{}",
        m.name,
        m.version,
        match (carried, mount_root) {
            (true, true) => " (the image, its kernel's root modules and the seeder go along; its root is mounted there)",
            (true, false) => " (the image and its seeder go along)",
            _ => " (seeding stops at the jump)",
        }
    ));
    let k = File::open(dir.join("kernel"))?;
    let i = File::open(&initrd)?;
    let cmdline = CString::new(cmdline)?;
    // SAFETY: kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags); the length
    // includes the terminating NUL, as the kernel requires; the descriptors are open.
    let r = unsafe { libc::syscall(libc::SYS_kexec_file_load, k.as_raw_fd(), i.as_raw_fd(), cmdline.as_bytes_with_nul().len(), cmdline.as_ptr(), 0usize) };
    anyhow::ensure!(r == 0, "kexec_file_load: {}", std::io::Error::last_os_error());
    // The kernel holds its own copy now.
    drop(i);
    if carried {
        let _ = std::fs::remove_file(&initrd);
    }
    nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_KEXEC)?;
    anyhow::bail!("reboot(RB_KEXEC) returned")
}
