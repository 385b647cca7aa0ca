//! PID 1 of a kexec'd image, for a moment: the stub carried the image and this binary into
//! the new kernel's initramfs (see `kexec.rs` and `swarmboot_init::carry`). Open the image,
//! fork the seeder, exec the image's own init. Whatever goes wrong here, the image's init
//! runs: seeding is a favour to the fleet, booting is the machine's job.
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
use swarmboot_manifest::PublicKey;
use swarmboot_swarm::engine::PeerListener;

use crate::console::say;

/// Whether this process is the init of a kexec'd image that carries the stub's seeder.
pub fn is_carried() -> bool {
    std::process::id() == 1 && Path::new(carry::NOTE).exists()
}

/// The port the seeder listens on (as in the stub).
const SEED_PORT: u16 = 6881;

pub fn run() -> ! {
    let note = std::fs::read_to_string(carry::NOTE).map_err(anyhow::Error::from).and_then(|t| Ok(toml::from_str::<Carry>(&t)?));
    let init = note.as_ref().map_or("/init".to_string(), |n| n.init.clone());
    match note.map_err(|e| e.context(carry::NOTE)).and_then(|n| open(&n).map(|img| (n, img))) {
        Ok((note, (cfg, image))) => {
            // SAFETY: no other thread exists in this process (no runtime has been started).
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    let _ = nix::unistd::setsid();
                    let _ = nix::sys::prctl::set_name(c"swarmboot-seed");
                    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
                    rt.block_on(seed(note, cfg, image));
                    std::process::exit(0)
                }
                Ok(ForkResult::Parent { .. }) => {}
                Err(e) => say(format!("fork: {e}; the image boots without its seeder")),
            }
        }
        Err(e) => say(format!("cannot seed the carried image ({e:#}); it boots without its seeder")),
    }
    exec_image_init(&init)
}

fn open(note: &Carry) -> anyhow::Result<(FetchConfig, VerifiedImage)> {
    let trusted = note.trusted_keys.iter().map(|k| PublicKey::from_hex(k)).collect::<Result<Vec<_>, _>>()?;
    let mut cfg = FetchConfig::new(&note.server, &note.image, Path::new(carry::IMAGE_DIR), trusted);
    cfg.version = Some(note.version);
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
    match image.seed(listener, &cfg).await {
        Ok(seeding) => {
            say(format!("seeding {}@{} again after the kexec, from {address}:{port}", note.image, note.version));
            let _seeding = seeding;
            std::future::pending::<()>().await
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
