//! PID 1 of the stub: mount the basics, load drivers, fork the worker (before any thread
//! exists), wait until it says the image is here and verified, then hand the machine over:
//! switch_root into the image's root (same kernel) or kexec its kernel (another kernel).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::{fork, pipe, ForkResult};
use swarmboot_image::{Manifest, Role};
use swarmboot_init::handover::{Plan, StubKernel};
use swarmboot_init::seed_service::SeedNote;
use swarmboot_init::trust::{self, TrustError};
use swarmboot_init::{cmdline, kernel};
use swarmboot_manifest::PublicKey;

use crate::console::say;
use crate::drivers::Drivers;
use crate::ltsp_install::Start;
use crate::rootfs;
use crate::worker::{self, WorkerArgs};

/// The worker's pid (0 before the fork).
static WORKER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Where the stub keeps the image: on the tmpfs at /run, which moves into the new root.
const IMAGE_DIR: &str = "/run/swarmboot/image";
/// The server's public key, put into the initramfs by `swarmboot stub build`.
pub const BUILT_IN_KEY: &str = "/etc/swarmboot/server.pub";

fn reboot_after(secs: u64) -> ! {
    say(format!("rebooting in {secs} s"));
    std::thread::sleep(Duration::from_secs(secs));
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The keys built into the stub (`swarmboot stub build` writes [`BUILT_IN_KEY`]).
pub fn built_in_keys() -> Vec<PublicKey> {
    std::fs::read_to_string(BUILT_IN_KEY).ok().and_then(|text| PublicKey::from_key_file(&text).ok()).into_iter().collect()
}

/// The keys a manifest may be signed with: the built-in ones (`extra`: keys the caller was
/// given beside them, `swarmboot-init fetch --key-file`), the one `swarmboot.key=` names if
/// it is one of them; never a key the command line adds (`swarmboot_init::trust`).
pub fn trusted_keys(args: &cmdline::StubArgs, extra: Vec<PublicKey>) -> Result<Vec<PublicKey>, TrustError> {
    let mut built_in = built_in_keys();
    built_in.extend(extra);
    let t = trust::trusted_keys(&built_in, args.key.as_deref())?;
    if let Some(note) = t.note {
        say(note);
    }
    Ok(t.keys)
}

pub fn run() -> ! {
    rootfs::mount_api_filesystems();
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().to_string()).unwrap_or_default();
    say(format!("stub starting (kernel {release})"));
    let line = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let args = match cmdline::parse(&line) {
        Ok(a) => a,
        Err(e) => {
            say(e);
            reboot_after(60)
        }
    };
    let trusted = match trusted_keys(&args, vec![]) {
        Ok(keys) => keys,
        Err(e) => {
            say(format!("REFUSING TO BOOT: {e}"));
            reboot_after(60)
        }
    };
    let mut drivers = Drivers::open();
    drivers.load_for_devices();
    // The worker may read files pre-seeded on a donated disk (`preseeded`).
    for module in swarmboot_init::donated::DONATED_FS_MODULES {
        drivers.load(module);
    }
    let _ = std::fs::create_dir_all(IMAGE_DIR);

    let (r, w) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            say(format!("pipe: {e}"));
            reboot_after(30)
        }
    };
    // SAFETY: no other thread exists yet in this process (no runtime has been started).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r);
            // `ps` in the booted system shows what this process is.
            let _ = nix::sys::prctl::set_name(c"swarmboot-seed");
            let wa = WorkerArgs { stub: args, trusted, out: PathBuf::from(IMAGE_DIR), interface: None, donated_disk: true };
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
            let result = rt.block_on(worker::run(wa, move |_| {
                let _ = nix::unistd::write(&w, b"READY\n");
            }));
            if let Err(e) = result {
                say(format!("the stub's worker stopped: {e:#}"));
            }
            std::process::exit(1)
        }
        Ok(ForkResult::Parent { child }) => {
            WORKER.store(child.as_raw(), std::sync::atomic::Ordering::Relaxed);
            drop(w);
            let mut line = String::new();
            let _ = BufReader::new(std::fs::File::from(r)).read_line(&mut line);
            if line.trim() != "READY" {
                say("the stub's worker stopped before the image was ready");
                reboot_after(30);
            }
        }
        Err(e) => {
            say(format!("fork: {e}"));
            reboot_after(30)
        }
    }
    match hand_over(&mut drivers, &trusted, &args.server, Path::new(IMAGE_DIR), args.swarm) {
        Ok(never) => match never {},
        Err(e) => {
            say(format!("cannot start the image: {e:#}"));
            reboot_after(60)
        }
    }
}

/// What a hand-over that never returns returns.
pub type Never = std::convert::Infallible;

/// Stops the stub's worker (and with it the seeding in this kernel).
fn stop_worker() {
    let worker = WORKER.load(std::sync::atomic::Ordering::Relaxed);
    if worker > 0 {
        let pid = nix::unistd::Pid::from_raw(worker);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// Re-checks the manifest the worker saved, then switch_root or kexec. `seeding`: the worker
/// seeds (not with `swarmboot.swarm=0`), and the booted system's service should take over.
fn hand_over(drivers: &mut Drivers, trusted: &[PublicKey], server: &str, dir: &Path, seeding: bool) -> anyhow::Result<Never> {
    let envelope = std::fs::read(dir.join("manifest.signed"))?;
    let (body, _) = swarmboot_manifest::open(&envelope, trusted)?;
    let m: Manifest = toml::from_str(std::str::from_utf8(body)?)?;
    // The worker's plan, decided again from the re-verified manifest: with the stub's own
    // kernel only the root filesystem was fetched; otherwise the fetched kernel's header tells.
    let proc_version = std::fs::read_to_string("/proc/version").unwrap_or_default();
    let plan = Plan::decide(&m, StubKernel::installed().as_ref(), &proc_version);
    let same = match plan {
        Plan::RootfsOnly => true,
        Plan::KernelAndRootfs | Plan::Everything => {
            let image_kernel = std::fs::read(dir.join("kernel"))?;
            kernel::bzimage_version(&image_kernel).is_some_and(|v| kernel::is_running(&proc_version, &v))
        }
    };
    if same && m.file(Role::Rootfs).is_some() {
        // This kernel's command line stays in force for the booted system: it must be the
        // signed one (a kexec starts the image's kernel with the manifest's line instead).
        let running = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        if let Err(e) = trust::check_command_line(&running, &m.cmdline) {
            anyhow::bail!("REFUSING TO BOOT {}@{}: {e}", m.name, m.version);
        }
        let note = SeedNote {
            server: server.to_string(),
            image: m.name.clone(),
            version: m.version,
            trusted_keys: trusted.iter().map(PublicKey::to_hex).collect(),
            dir: dir.display().to_string(),
            roles: plan.roles(&m),
        };
        let worker = WORKER.load(std::sync::atomic::Ordering::Relaxed);
        // Kept out of the swarm (`swarmboot.swarm=0`): nothing to seed, only the booted unit.
        if let Err(e) = crate::seeder::leave_for_the_booted_system(Path::new("/"), &note, seeding.then_some(worker)) {
            say(format!("the seeder will not become a systemd unit in the booted system ({e}); the stub's worker seeds on"));
        }
        switch_root(drivers, dir, &m, server)
    } else {
        stop_worker();
        crate::kexec::kexec(drivers, dir, &m, plan, trusted, server)
    }
}

/// What [`remove_the_stubs_files`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Removed {
    files: u64,
    bytes: u64,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "removed the stub's {} files ({:.1} MB) from RAM", self.files, self.bytes as f64 / 1e6)
    }
}

/// Removes the stub's own files from the initramfs before switching, as util-linux's
/// switch_root does: nothing can reach them after the chroot, and on the RAM filesystem they
/// would hold memory for as long as the machine runs. Only when `/` is a RAM filesystem, and
/// only on its device: the new root (a mount point) and anything mounted are left alone. The
/// seeder keeps running (its program stays loaded; its files are open on /run, which moved).
fn remove_the_stubs_files() -> Removed {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    use std::os::unix::fs::MetadataExt;
    /// linux/magic.h (neither nix nor libc names it).
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let mut removed = Removed::default();
    #[allow(clippy::unnecessary_cast)] // the magic's type differs between glibc and musl
    let on_ram = statfs("/").is_ok_and(|s| [RAMFS_MAGIC, TMPFS_MAGIC.0 as i64].contains(&(s.filesystem_type().0 as i64)));
    if let (true, Ok(root)) = (on_ram, std::fs::symlink_metadata("/")) {
        remove_tree(Path::new("/"), root.dev(), &mut removed);
    }
    removed
}

/// Removes what is under `dir` on device `dev` (best effort: what cannot go stays), counting it.
fn remove_tree(dir: &Path, dev: u64, removed: &mut Removed) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else { continue };
        if md.dev() != dev {
            continue;
        }
        if md.is_dir() {
            remove_tree(&path, dev, removed);
            let _ = std::fs::remove_dir(&path);
        } else if std::fs::remove_file(&path).is_ok() {
            removed.files += 1;
            removed.bytes += md.len();
        }
    }
}

/// The image's root, read-only squashfs under a tmpfs overlay, becomes `/` (the stub's own
/// files removed from RAM first). For an LTSP image, LTSP's init runs after its `ltsp.img` is installed into the root.
fn switch_root(drivers: &mut Drivers, dir: &Path, m: &Manifest, server: &str) -> anyhow::Result<Never> {
    let start = Start::for_image(dir, cmdline::root_init(&m.cmdline), server)?;
    let newroot = rootfs::assemble(drivers, &dir.join("rootfs"))?;
    let removed = remove_the_stubs_files();
    say(format!("switching to {}@{} ({}); {removed}", m.name, m.version, start.init));
    rootfs::switch(&newroot, &start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_tree_on_the_device_goes_and_one_on_another_stays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("lib/modules/6.1/kernel")).unwrap();
        std::fs::write(root.join("init"), vec![0u8; 4000]).unwrap();
        std::fs::write(root.join("lib/modules/6.1/kernel/virtio_net.ko"), vec![0u8; 1000]).unwrap();
        std::os::unix::fs::symlink("init", root.join("sbin-init")).unwrap();
        let dev = std::fs::metadata(root).unwrap().dev();

        let mut other = Removed::default();
        remove_tree(root, dev.wrapping_add(1), &mut other);
        assert_eq!(other, Removed::default(), "another device's files are not touched");
        assert!(root.join("init").exists());

        let mut removed = Removed::default();
        remove_tree(root, dev, &mut removed);
        assert_eq!(removed, Removed { files: 3, bytes: 5000 + "init".len() as u64 });
        assert_eq!(std::fs::read_dir(root).unwrap().count(), 0, "everything under the root went");
        assert_eq!(removed.to_string(), "removed the stub's 3 files (0.0 MB) from RAM");
    }
}
