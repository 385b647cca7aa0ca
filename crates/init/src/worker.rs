//! The stub's worker: network, DHCP, the signed manifest, the image through the swarm (HTTP
//! Range when it stalls), then seeding for as long as the machine runs. It runs in its own
//! process (forked by PID 1 before any thread exists), so it keeps running — and seeding —
//! after PID 1 has exec'd the image's init; its files stay open on the tmpfs that is moved into
//! the new root's `/run`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use swarmboot_fetch::{FetchConfig, FetchError, Fetched};
use swarmboot_image::{FileEntry, Role};
use swarmboot_init::cmdline::StubArgs;
use swarmboot_init::handover::{self, Plan, StubKernel};
use swarmboot_manifest::PublicKey;

use crate::console::{progress, say};
use crate::net::{self, backoff};
use crate::stage_reports::{Counters, StageReports};
use swarmboot_fleet::{Reported, Reporter};

pub struct WorkerArgs {
    pub stub: StubArgs,
    pub trusted: Vec<PublicKey>,
    pub out: PathBuf,
    /// The interface to use (default: the first Ethernet interface that appears).
    pub interface: Option<String>,
    /// Whether to look for files pre-seeded on a donated disk first (PID 1's worker; never
    /// `swarmboot-init fetch`, a test's tool on a host whose disks are not its business).
    pub donated_disk: bool,
}

/// Free memory the image must fit in, with room for the booted system to start.
const RAM_MARGIN: u64 = 64 << 20;

/// MemAvailable from /proc/meminfo, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// Runs until the image is fetched and verified, calls `ready`, then seeds forever.
pub async fn run(a: WorkerArgs, ready: impl FnOnce(&Fetched)) -> anyhow::Result<()> {
    // PID 1's worker picks the NIC itself; `swarmboot-init fetch` is told one (a test's).
    let (name, lease) = net::configure(a.interface.as_deref(), a.interface.is_none()).await?;

    // Always the latest, as the server vouches for it in answer to this request: the
    // command line's `@version` is the boot script's, which nothing authenticates.
    let mut cfg = FetchConfig::new(&a.stub.server, &a.stub.image, &a.out, a.trusted.clone());
    cfg.stall_timeout = a.stub.stall;
    cfg.use_swarm = a.stub.swarm;
    cfg.bind_device = Some(name.clone());
    cfg.listen = std::net::SocketAddr::from((lease.address, 6881));
    // The kernel this stub was built for (the stub builder's note; none in stubs built before).
    let stub_kernel = StubKernel::installed();
    let proc_version = std::fs::read_to_string("/proc/version").unwrap_or_default();
    let mac = crate::stage_reports::mac_of(&name);
    let mut tries = 0;
    // Bytes this boot copied from files pre-seeded on the donated disk (0 without one).
    let mut copied_from_disk = 0u64;
    let (fetched, reports) = loop {
        // The manifest first: it says which files to fetch and how much RAM they need.
        let signed = match swarmboot_fetch::fetch_manifest(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                explain(&e, tries);
                tokio::time::sleep(backoff(tries)).await;
                tries += 1;
                continue;
            }
        };
        let m = &signed.manifest;
        if let Some(hint) = a.stub.version.filter(|v| *v != m.version) {
            say(format!("the boot script named {}@{hint}; the server vouches for @{} as the latest: booting that", m.name, m.version));
        }
        let plan = Plan::decide(m, stub_kernel.as_ref(), &proc_version);
        let need = handover::ram_needed(m, plan, RAM_MARGIN);
        if let Some(have) = mem_available() {
            if have < need.total() {
                say(format!(
                    "not enough RAM for {}@{}: it needs {} MiB ({} MiB of files, {} MiB to load its kernel, {} MiB to run), this machine has {} MiB free; retrying in {} s",
                    m.name,
                    m.version,
                    need.total() >> 20,
                    need.files >> 20,
                    need.load >> 20,
                    need.margin >> 20,
                    have >> 20,
                    backoff(tries).as_secs()
                ));
                tokio::time::sleep(backoff(tries)).await;
                tries += 1;
                continue;
            }
        }
        let ltsp = if m.file(Role::Ltsp).is_some() { " (and LTSP's ltsp.img)" } else { "" };
        let what = match plan {
            Plan::RootfsOnly => format!("its kernel is the stub's: fetching only its root filesystem{ltsp}, {} MiB", nearest_mib(need.files)),
            Plan::KernelAndRootfs => format!("its kernel is not the stub's: fetching its kernel and root filesystem{ltsp}, {} MiB", nearest_mib(need.files)),
            Plan::Everything => format!("fetching {} MiB", nearest_mib(need.files)),
        };
        let http_only = if cfg.use_swarm { "" } else { " over HTTP only (swarmboot.swarm=0)" };
        say(format!("{}@{} verified (signed by {}); {what}{http_only}", m.name, m.version, signed.signer.fingerprint()));
        // This version (a newer one added meanwhile waits for the next boot), these files.
        let mut this = cfg.clone();
        this.version = Some(m.version);
        this.roles = Some(plan.roles(m));
        if a.donated_disk {
            let roles = plan.roles(m);
            let files: Vec<FileEntry> = m.distinct_files(|r| roles.contains(&r)).into_iter().map(|(f, _)| f.clone()).collect();
            let out = a.out.clone();
            let found = tokio::task::spawn_blocking(move || crate::preseeded::copy_into(&files.iter().collect::<Vec<_>>(), &out)).await.unwrap_or_default();
            copied_from_disk = copied_from_disk.max(found.bytes);
        }
        let mut last = (Instant::now(), 0u64);
        // Where this boot is, for the server's dashboard (every 2 s while fetching).
        let reports = mac.map(|mac| StageReports::new(&a.stub.server, mac, &m.name, m.version, Reporter::Stub));
        let mut last_report: Option<Instant> = None;
        let result = swarmboot_fetch::fetch_signed(&this, signed.clone(), |p| {
            if last.0.elapsed() >= Duration::from_millis(900) || p.bytes_have == p.total {
                let rate = p.bytes_have.saturating_sub(last.1) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
                progress(&p.line(rate));
                last = (Instant::now(), p.bytes_have);
            }
            if let Some(r) = &reports {
                if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(swarmboot_fleet::report::FETCH_REPORT_SECS)) {
                    r.spawn(Reported::Fetching, p.into());
                    last_report = Some(Instant::now());
                }
            }
        })
        .await;
        match result {
            Ok(f) => break (f, reports),
            Err(e) => {
                explain(&e, tries);
                tokio::time::sleep(backoff(tries)).await;
                tries += 1;
            }
        }
    };
    let p = fetched.progress;
    // What of the copy verified (a fetch cut short by a reboot leaves a file of the right
    // size with pieces missing: those came from peers).
    let from_disk = copied_from_disk.min(p.resumed);
    let disk = if copied_from_disk > 0 { format!("{} MiB from the donated disk, ", nearest_mib(from_disk)) } else { String::new() };
    say(format!(
        "image verified: {} MiB in {:.1} s, {disk}{} MiB from peers ({} MiB of it from the server's seed), {} MiB over HTTP; seeding on {}",
        nearest_mib(p.total),
        p.elapsed.as_secs_f64(),
        nearest_mib(p.from_peers),
        nearest_mib(p.from_server_seed),
        nearest_mib(p.from_http),
        fetched.listen_addr().map_or("-".into(), |a| a.to_string())
    ));
    if let Some(r) = &reports {
        r.send(Reported::Handover, (&p).into()).await;
    }
    ready(&fetched);
    // Seed for as long as the machine runs, and say so.
    let Some(r) = reports else {
        std::future::pending::<()>().await;
        return Ok(());
    };
    loop {
        tokio::time::sleep(r.interval()).await;
        let (_, peers) = fetched.torrents_and_peers();
        r.send(Reported::Seeding, Counters { uploaded: fetched.uploaded(), peers: peers as u32, ..(&p).into() }).await;
    }
}

/// Bytes in whole MiB, rounded to the nearest: the image's size and where its bytes came from
/// then agree on the console (32.99 MiB fetched, all from peers, reads "33 MiB … 33 MiB from
/// peers", not "32 … 33"; peers may send a few blocks twice near the end, so theirs can be more).
fn nearest_mib(bytes: u64) -> u64 {
    (bytes + (1 << 19)) >> 20
}

fn explain(e: &FetchError, tries: u32) {
    let wait = backoff(tries).as_secs();
    match e {
        FetchError::Untrusted { .. } => say(format!(
            "REFUSING TO BOOT: {e}. Nothing was booted; asking again in {wait} s. This stub trusts only the key built into it: if the server's key was changed on purpose, run `swarmboot stub build` on the server and boot again"
        )),
        FetchError::WrongImage { .. } | FetchError::BadManifest(_) | FetchError::NotFresh { .. } | FetchError::Stale { .. } => {
            say(format!("REFUSING TO BOOT: {e}. Nothing was booted; asking again in {wait} s"))
        }
        FetchError::Http { .. } | FetchError::NoSuchImage(_) => say(format!("the boot server is not answering as it should: {e}; retrying in {wait} s")),
        other => say(format!("fetching the image failed: {other}; retrying in {wait} s")),
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_mib;

    #[test]
    fn sizes_round_to_the_nearest_mib() {
        assert_eq!(nearest_mib(0), 0);
        assert_eq!(nearest_mib((1 << 19) - 1), 0, "less than half a MiB over HTTP reads 0");
        assert_eq!(nearest_mib(1 << 19), 1);
        assert_eq!(nearest_mib((33 << 20) - 10_000), 33);
        assert_eq!(nearest_mib((33 << 20) + 300_000), 33);
    }
}
