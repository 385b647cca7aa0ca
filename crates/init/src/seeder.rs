//! `swarmboot-init seed NOTE`: the seeder as `swarmboot-seed.service` of the booted system
//! (see `swarmboot_init::seed_service`). It takes over from the stub's worker (stops the pid
//! in the pid file), seeds the verified files on every address, and announces again whenever
//! the machine's address changes (the image's network manager may re-DHCP the NIC). Its lines
//! go to stderr: the journal. SIGTERM ends it at once (no handler: nothing to flush).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use swarmboot_fetch::{FetchConfig, VerifiedImage};
use swarmboot_init::seed_service::{self, SeedNote};
use swarmboot_manifest::PublicKey;
use swarmboot_swarm::engine::PeerListener;

use crate::console::say;
use crate::stage_reports::{Counters, StageReports};
use swarmboot_fleet::{Reported, Reporter};

/// Leaves the units for the booted system on the stub's `/run` (before it moves into the new
/// root): this binary, the booted unit, and — with `worker`, the pid of the process seeding
/// until then — the note, the seeder's unit and its wants link, the pid. `root` is where `/run`
/// is now (`/` in the stub).
pub fn leave_for_the_booted_system(root: &Path, note: &SeedNote, worker: Option<i32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    for p in [seed_service::BINARY, seed_service::UNIT, seed_service::WANTS, seed_service::BOOTED_WANTS] {
        std::fs::create_dir_all(at(p).parent().expect("absolute paths"))?;
    }
    std::fs::copy("/proc/self/exe", at(seed_service::BINARY))?;
    std::fs::set_permissions(at(seed_service::BINARY), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(at(seed_service::BOOTED_UNIT), seed_service::booted_unit(&note.image, note.version, &note.server))?;
    let _ = std::fs::remove_file(at(seed_service::BOOTED_WANTS));
    std::os::unix::fs::symlink("../swarmboot-booted.service", at(seed_service::BOOTED_WANTS))?;
    let Some(worker) = worker else { return Ok(()) };
    let text = toml::to_string(note).map_err(std::io::Error::other)?;
    std::fs::write(at(seed_service::NOTE), text)?;
    std::fs::write(at(seed_service::UNIT), note.unit())?;
    let _ = std::fs::remove_file(at(seed_service::WANTS));
    std::os::unix::fs::symlink(format!("../{}", seed_service::SERVICE), at(seed_service::WANTS))?;
    std::fs::write(at(seed_service::PID_FILE), format!("{worker}\n"))
}

/// `swarmboot-init booted NAME@VERSION`: says in the kernel log (and so on the console and in
/// the journal) that the image reached multi-user.target.
pub fn booted(image_at_version: &str, server: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let line = seed_service::booted_line(image_at_version);
    std::fs::OpenOptions::new().write(true).open("/dev/kmsg").and_then(|mut k| k.write_all(line.as_bytes())).context("writing to /dev/kmsg")?;
    println!("{}", line.trim_start_matches("<5>").trim_end());
    // …and to the server, for its dashboard: this machine is running.
    let (Some(server), Some((image, version))) = (server, image_at_version.rsplit_once('@').and_then(|(n, v)| Some((n, v.parse::<u32>().ok()?)))) else {
        return Ok(());
    };
    let Some(mac) = machine_address().and_then(crate::stage_reports::mac_with) else {
        println!("no IPv4 address on this machine: the server is not told it is running");
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let reports = StageReports::new(server, mac, image, version, Reporter::System);
    if !rt.block_on(reports.send(Reported::Running, Counters::default())) {
        println!("the server at {server} did not take the report that this machine is running");
    }
    Ok(())
}

pub fn run(note_path: &Path) -> anyhow::Result<()> {
    let _ = nix::sys::prctl::set_name(c"swarmboot-seed");
    let text = std::fs::read_to_string(note_path).with_context(|| format!("reading the seed note {}", note_path.display()))?;
    let note: SeedNote = toml::from_str(&text).with_context(|| format!("{} is not a seed note", note_path.display()))?;
    stop_the_worker(Path::new(seed_service::PID_FILE));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(seed(note))
}

/// The process state letter in `/proc/PID/stat` (`None`: gone).
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

/// Stops the stub's worker named in `pid_file` (if it is still the worker: its name is
/// `swarmboot-seed`), waiting a moment for it to go; the pid file goes too.
fn stop_the_worker(pid_file: &Path) {
    use nix::sys::signal::{kill, Signal};
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) else { return };
    let _ = std::fs::remove_file(pid_file);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if pid <= 1 || pid == std::process::id() as i32 || comm.trim() != "swarmboot-seed" {
        return;
    }
    let target = nix::unistd::Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(seed_service::WORKER_GRACE_SECS);
    while matches!(state_of(pid), Some(s) if s != 'Z') {
        if std::time::Instant::now() > deadline {
            let _ = kill(target, Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    say(format!("took over seeding from the stub's worker (pid {pid})"));
}

fn machine_address() -> Option<Ipv4Addr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    seed_service::reachable_address(addrs.filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip())))
}

/// Binds the peer port; the worker's socket may take a moment to close.
async fn listen(addr: SocketAddr) -> anyhow::Result<PeerListener> {
    let mut tries = 0;
    loop {
        match PeerListener::bind(addr, None) {
            Ok(l) => return Ok(l),
            Err(e) if tries < 20 => {
                tracing::debug!("binding {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
                tries += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen for peers on {addr}: is another seeder running?")),
        }
    }
}

async fn seed(note: SeedNote) -> anyhow::Result<()> {
    let trusted = note.trusted_keys.iter().map(|k| PublicKey::from_hex(k)).collect::<Result<Vec<_>, _>>().context("a key in the seed note")?;
    let mut cfg = FetchConfig::new(&note.server, &note.image, Path::new(&note.dir), trusted);
    cfg.version = Some(note.version);
    cfg.roles = Some(note.roles.clone());
    cfg.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, seed_service::PORT));
    let mut waiting_said = false;
    loop {
        let address = loop {
            if let Some(a) = machine_address() {
                break a;
            }
            if !waiting_said {
                say("no IPv4 address on this machine yet: seeding starts once the network is configured");
                waiting_said = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let image = VerifiedImage::open(Path::new(&note.dir), &cfg).with_context(|| format!("the verified image in {}", note.dir))?;
        let bytes: u64 = image.files_size();
        let seeding = image.seed(listen(cfg.listen).await?, &cfg).await?;
        let port = seeding.listen_addr().map_or(seed_service::PORT, |a| a.port());
        say(format!(
            "seeding {}@{} ({} MiB) from {address}:{port}, announcing to {}",
            note.image,
            note.version,
            (bytes + (1 << 19)) >> 20,
            swarmboot_urls::Urls::new(&note.server).announce()
        ));
        // What this machine seeds, for the server's dashboard: now, then every interval.
        let reports = crate::stage_reports::mac_with(address).map(|mac| StageReports::new(&note.server, mac, &note.image, note.version, Reporter::System));
        let mut next_report = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (torrents, peers) = seeding.torrents_and_peers();
            let stats = seed_service::SeedStats { torrents: torrents as u32, peers: peers as u32, uploaded: seeding.uploaded() };
            if let Some(r) = reports.as_ref().filter(|_| std::time::Instant::now() >= next_report) {
                r.spawn(Reported::Seeding, Counters { have: bytes, total: bytes, uploaded: stats.uploaded, peers: stats.peers, ..Default::default() });
                next_report = std::time::Instant::now() + r.interval();
            }
            if let Err(e) = write_stats(Path::new(seed_service::STATS), &stats) {
                tracing::debug!("writing {}: {e}", seed_service::STATS);
            }
            let now = machine_address();
            if now != Some(address) {
                say(format!("this machine's address changed from {address} to {}: announcing again from it", now.map_or("none".to_string(), |a| a.to_string())));
                seeding.shutdown().await;
                break;
            }
        }
    }
}

/// The stats file, replaced whole (a reader never sees half of it).
fn write_stats(path: &Path, stats: &seed_service::SeedStats) -> std::io::Result<()> {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, toml::to_string(stats).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_naming_another_process_stops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("seed.pid");
        // This test's own process: not a worker (its name is not swarmboot-seed), left alone.
        std::fs::write(&f, format!("{}\n", std::process::id())).unwrap();
        stop_the_worker(&f);
        assert!(!f.exists(), "the pid file is used once");
        assert!(state_of(std::process::id() as i32).is_some());
        stop_the_worker(&f);
    }
}
