//! BitTorrent peers for the interoperability tests and the storm benchmark: our engine
//! (`swarmboot torrent seed|get`), aria2c, rqbit (librqbit's client) and transmission-cli,
//! plus opentracker. Each is a [`Command`] builder, so the caller runs it on loopback or inside
//! a namespace ([`crate::Netns::command`]) and keeps it as a [`crate::Proc`].

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind an ephemeral port")
}

/// The rqbit binary: `$SWARMBOOT_RQBIT`, else `rqbit` on the PATH. `cargo xtask test` builds
/// it (rqbit 9.1.0) into a cache directory and sets the variable.
pub fn rqbit_path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SWARMBOOT_RQBIT") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("rqbit")).find(|p| p.exists()));
    on_path.context("rqbit not found: run the suite with `cargo xtask test` (it installs rqbit 9.1.0), or set SWARMBOOT_RQBIT")
}

/// opentracker in whitelist mode (Debian builds it so) for `info_hashes`. It refuses to run
/// as root: it chroots into a directory of its own under `dir` (mode 755) and drops to
/// `nobody`, so the whitelist lives inside that directory.
pub fn opentracker(dir: &Path, ip: IpAddr, port: u16, info_hashes: &[[u8; 20]]) -> anyhow::Result<Command> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join(format!("opentracker-{port}"));
    std::fs::create_dir_all(&root)?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    let list: String = info_hashes.iter().map(|h| hex::encode(h) + "\n").collect();
    std::fs::write(root.join("whitelist.txt"), list)?;
    let mut c = Command::new("opentracker");
    c.arg("-i").arg(ip.to_string()).args(["-p", &port.to_string(), "-P", &port.to_string(), "-w", "/whitelist.txt"]).arg("-d").arg(&root);
    Ok(c)
}

/// How a peer reaches the others.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Tracker announce URL (the torrent's if `None`).
    pub tracker: Option<String>,
    /// Peers to dial directly.
    pub peers: Vec<SocketAddr>,
}

/// `swarmboot torrent seed`.
pub fn ours_seed(swarmboot: &Path, torrent: &Path, data: &Path, listen: SocketAddr, super_seed: bool, how: &Discovery, stats: &Path) -> Command {
    let mut c = Command::new(swarmboot);
    c.args(["torrent", "seed"]).arg(torrent).arg("--data").arg(data).arg("--listen").arg(listen.to_string()).arg("--stats").arg(stats);
    if super_seed {
        c.arg("--super-seed");
    }
    discovery_args(&mut c, how);
    c
}

/// `swarmboot torrent get`; with `seed`, keeps seeding after completion.
pub fn ours_get(swarmboot: &Path, torrent: &Path, out: &Path, listen: SocketAddr, seed: bool, how: &Discovery, stats: &Path) -> Command {
    let mut c = Command::new(swarmboot);
    c.args(["torrent", "get"]).arg(torrent).arg("--out").arg(out).arg("--listen").arg(listen.to_string()).arg("--stats").arg(stats);
    if seed {
        c.arg("--seed");
    }
    discovery_args(&mut c, how);
    c
}

fn discovery_args(c: &mut Command, how: &Discovery) {
    if let Some(t) = &how.tracker {
        c.arg("--tracker").arg(t);
    }
    for p in &how.peers {
        c.arg("--peer").arg(p.to_string());
    }
}

/// aria2c downloading into `out` (it finds peers through the torrent's tracker only); with
/// `seed_secs` > 0 it seeds that long after completing, else it exits when done.
pub fn aria2c_get(torrent: &Path, out: &Path, port: u16, seed_secs: u32) -> Command {
    let mut c = Command::new("aria2c");
    c.args(["--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--summary-interval=0", "--console-log-level=warn"])
        .arg(format!("--listen-port={port}"))
        .arg("--bt-tracker-interval=2")
        .arg(if seed_secs == 0 { "--seed-time=0".to_string() } else { format!("--seed-time={}", f64::from(seed_secs) / 60.0) })
        .arg("--seed-ratio=0.0")
        .arg("--allow-overwrite=true")
        .arg("-d")
        .arg(out)
        .arg(torrent);
    c
}

/// aria2c seeding the complete data in `data` for `secs` seconds.
pub fn aria2c_seed(torrent: &Path, data: &Path, port: u16, secs: u32) -> Command {
    let mut c = aria2c_get(torrent, data, port, secs);
    c.arg("--check-integrity=true");
    c
}

/// rqbit downloading into `out` from `peers` (and the tracker); exits when done unless
/// `keep` (then it seeds until stopped).
pub fn rqbit_get(rqbit: &Path, torrent: &Path, out: &Path, listen: SocketAddr, peers: &[SocketAddr], keep: bool) -> Command {
    let mut c = Command::new(rqbit);
    c.args(["--disable-dht", "--disable-upnp-port-forward", "-v", "info", "-i", "2s", "--listen-ip"])
        .arg(listen.ip().to_string())
        .arg("--listen-port")
        .arg(listen.port().to_string())
        // Without this it announces a port it does not listen on.
        .arg("--announce-port")
        .arg(listen.port().to_string())
        .args(["download", "--overwrite", "--disable-http-api", "-o"])
        .arg(out);
    if !keep {
        c.arg("-e");
    }
    if !peers.is_empty() {
        c.arg("--initial-peers").arg(peers.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","));
    }
    c.arg(torrent);
    c
}

/// transmission-cli seeding (or downloading, then seeding) `torrent` in `dir` until stopped.
pub fn transmission(torrent: &Path, dir: &Path, config_dir: &Path, port: u16) -> Command {
    let mut c = Command::new("transmission-cli");
    c.arg("-g").arg(config_dir).arg("-w").arg(dir).args(["-p", &port.to_string(), "-et", "-M", "-B"]).arg(torrent);
    c
}
