//! PID 1 of a kexec'd image, for a moment: the stub carried the image and this binary into
//! the new kernel's initramfs (see `kexec.rs` and `swarmboot_init::carry`). Open the image,
//! fork the seeder, exec the image's own init. Whatever goes wrong with seeding, the image's
//! init runs: seeding is a favour to the fleet, booting is the machine's job.
//!
//! An image with a root filesystem came without its initramfs ([`Carry::mount_root`]): this
//! init mounts the root as the stub would (the new kernel's modules came along), leaves the
//! seeder's systemd unit on `/run` (`seeder.rs`; the image directory is bind-mounted at
//! `/run/swarmboot/image` for it), and execs the image's `init=` or `/sbin/init` in the root.
//!
//! The seeder waits for the image to configure an IPv4 address (every netbooted system brings
//! up its network; the seeder does not fight it for the interface), then seeds every file,
//! all pieces present, announcing to the server's tracker. It keeps the files open, so it
//! does not matter that the image's init may empty the initramfs (`run-init` does).

use std::ffi::CString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use nix::unistd::{fork, ForkResult};
use swarmboot_fetch::{FetchConfig, VerifiedImage};
use swarmboot_init::carry::{self, Carry};
use swarmboot_init::seed_service::{self, SeedNote};
use swarmboot_manifest::PublicKey;
use swarmboot_swarm::engine::PeerListener;

use crate::console::say;
use crate::stage_reports::{Counters, StageReports};
use swarmboot_fleet::{Reported, Reporter};

/// Whether this process is the init of a kexec'd image that carries the stub's seeder.
pub fn is_carried() -> bool {
    std::process::id() == 1 && Path::new(carry::NOTE).exists()
}

/// The port the seeder listens on (as in the stub).
const SEED_PORT: u16 = 6881;

pub fn run() -> ! {
    let note = std::fs::read_to_string(carry::NOTE).map_err(anyhow::Error::from).and_then(|t| Ok(toml::from_str::<Carry>(&t)?));
    if let Ok(n) = &note {
        if n.mount_root {
            boot_root(n.clone());
        }
    }
    let init = note.as_ref().map_or("/init".to_string(), |n| n.init.clone());
    match note.map_err(|e| e.context(carry::NOTE)).and_then(|n| open(&n).map(|img| (n, img))) {
        Ok((note, (cfg, image))) => {
            fork_seeder(note, cfg, image);
        }
        Err(e) => say(format!("cannot seed the carried image ({e:#}); it boots without its seeder")),
    }
    exec_image_init(&init)
}

/// LTSP's init expects the network its initramfs configured (as the stub's was in the stub's
/// kernel): the NIC's driver from the image's own modules, the NIC up with an address from
/// DHCP. Failures are said; LTSP's init then says what it misses.
fn network_for_ltsp(drivers: &mut crate::drivers::Drivers, squashfs: &Path) {
    let loaded = crate::rootfs::with_squashfs(drivers, squashfs, Path::new("/run/swarmboot/modules"), |root| {
        crate::drivers::Drivers::open_in(root).load_for_devices();
    });
    if let Err(e) = loaded {
        say(format!("cannot load the NIC's driver from the image ({e:#})"));
    }
    let configured = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(anyhow::Error::from).and_then(|rt| {
        // No longer than LTSP's initramfs would wait; the image's init runs either way.
        Ok(rt.block_on(async { tokio::time::timeout(Duration::from_secs(120), crate::net::configure(None, true)).await })??)
    });
    if let Err(e) = configured {
        say(format!("the network for LTSP's init is not up ({e:#})"));
    }
}

/// Forks the seeder (before any thread exists in this process); its pid.
fn fork_seeder(note: Carry, cfg: FetchConfig, image: VerifiedImage) -> Option<i32> {
    // SAFETY: no other thread exists in this process (no runtime has been started).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            let _ = nix::sys::prctl::set_name(c"swarmboot-seed");
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
            rt.block_on(seed(note, cfg, image));
            std::process::exit(0)
        }
        Ok(ForkResult::Parent { child }) => Some(child.as_raw()),
        Err(e) => {
            say(format!("fork: {e}; the image boots without its seeder"));
            None
        }
    }
}

/// The image's root filesystem, mounted here in the image's kernel, becomes `/`; the seeder
/// runs on, and becomes a systemd unit if the image runs systemd.
fn boot_root(note: Carry) -> ! {
    crate::rootfs::mount_api_filesystems();
    let mut drivers = crate::drivers::Drivers::open();
    let image_dir = Path::new(seed_service::CARRIED_IMAGE);
    if let Err(e) = std::fs::create_dir_all(image_dir)
        .map_err(anyhow::Error::from)
        .and_then(|_| Ok(nix::mount::mount(Some(carry::IMAGE_DIR), image_dir, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)?))
    {
        say(format!("cannot put the image on /run ({e}); the seeder will not become a systemd unit"));
    }
    let seed_note = SeedNote {
        server: note.server.clone(),
        image: note.image.clone(),
        version: note.version,
        trusted_keys: note.trusted_keys.clone(),
        dir: seed_service::CARRIED_IMAGE.to_string(),
        roles: note.roles.clone(),
    };
    let seeder = match open(&note) {
        Ok((cfg, image)) => fork_seeder(note.clone(), cfg, image),
        Err(e) => {
            say(format!("cannot seed the carried image ({e:#}); it boots without its seeder"));
            None
        }
    };
    if let Err(e) = crate::seeder::leave_for_the_booted_system(Path::new("/"), &seed_note, seeder) {
        say(format!("the seeder will not become a systemd unit in the booted system ({e})"));
    }
    let squashfs = Path::new(carry::IMAGE_DIR).join("rootfs");
    let started = crate::ltsp_install::Start::for_image(Path::new(carry::IMAGE_DIR), note.init.clone(), &note.server).and_then(|start| {
        if start.ltsp.is_some() {
            network_for_ltsp(&mut drivers, &squashfs);
        }
        let newroot = crate::rootfs::assemble(&mut drivers, &squashfs)?;
        say(format!("switching to {}@{} ({}) in its own kernel", note.image, note.version, start.init));
        crate::rootfs::switch(&newroot, &start)
    });
    match started {
        Ok(never) => match never {},
        Err(e) => {
            say(format!("cannot start the image: {e:#}; rebooting in 60 s"));
            std::thread::sleep(Duration::from_secs(60));
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}

fn open(note: &Carry) -> anyhow::Result<(FetchConfig, VerifiedImage)> {
    let trusted = note.trusted_keys.iter().map(|k| PublicKey::from_hex(k)).collect::<Result<Vec<_>, _>>()?;
    let mut cfg = FetchConfig::new(&note.server, &note.image, Path::new(carry::IMAGE_DIR), trusted);
    cfg.version = Some(note.version);
    cfg.roles = Some(note.roles.clone());
    cfg.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, SEED_PORT));
    let image = VerifiedImage::open(Path::new(carry::IMAGE_DIR), &cfg)?;
    Ok((cfg, image))
}

/// The first IPv4 address that is not loopback or link-local (what DHCP gave the image).
fn configured_address() -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip())).find(|ip| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
}

async fn seed(note: Carry, cfg: FetchConfig, image: VerifiedImage) {
    let address = loop {
        if let Some(a) = configured_address() {
            break a;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // The stub's port, or any port if the image uses that one (the tracker learns which).
    let listener = match PeerListener::bind(cfg.listen, None) {
        Ok(l) => l,
        Err(_) => match PeerListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), None) {
            Ok(l) => l,
            Err(e) => return say(format!("cannot listen for peers in the booted image ({e}); seeding stops")),
        },
    };
    let port = listener.local_addr().port();
    let bytes = image.files_size();
    match image.seed(listener, &cfg).await {
        Ok(seeding) => {
            say(format!("seeding {}@{} again after the kexec, from {address}:{port}", note.image, note.version));
            // Where this machine is, for the server's dashboard: handed over, seeding.
            let Some(mac) = crate::stage_reports::mac_with(address) else { return std::future::pending::<()>().await };
            let reports = StageReports::new(&note.server, mac, &note.image, note.version, Reporter::Stub);
            loop {
                let (_, peers) = seeding.torrents_and_peers();
                reports.send(Reported::Seeding, Counters { have: bytes, total: bytes, uploaded: seeding.uploaded(), peers: peers as u32, ..Default::default() }).await;
                tokio::time::sleep(reports.interval()).await;
            }
        }
        Err(e) => say(format!("cannot seed {}@{} in the booted image: {e}; seeding stops", note.image, note.version)),
    }
}

fn exec_image_init(init: &str) -> ! {
    let path = CString::new(init).unwrap_or_else(|_| c"/init".to_owned());
    let args: Vec<CString> = std::iter::once(path.clone()).chain(std::env::args().skip(1).filter_map(|a| CString::new(a).ok())).collect();
    let e = nix::unistd::execv(&path, &args).unwrap_err();
    say(format!("cannot start the image's init {init}: {e}"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
