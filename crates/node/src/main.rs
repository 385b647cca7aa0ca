//! `swarmboot-node`: the elchOS node agent (being built: it mounts the machine's disks
//! read-only and shares them over HTTP and FTP, serves the status page and checks in with the
//! boot server, taking its commands; with --adc it shares them on the server's ADC hub too).
//!
//! In elchOS: `swarmboot-node --disks --ftp --adc --boot-note
//! /run/swarmboot/seed.toml --key-file /etc/swarmboot/server.pub` (the server and image from
//! the stub's note, the MAC from the
//! boot interface, the server's key from the image). By hand or in tests: `--share NAME=DIR …
//! [--listen 0.0.0.0:80] [--state /var/lib/elchos] [--image NAME@V] [--server URL --key-file F
//! --mac MAC [--run-dir /run/swarmboot-node] [--reboot-command CMD]]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rustix::fs::{Mode, OFlags};
use swarmboot_checkin::report::{Seeding, Share};
use swarmboot_node::serve::{router, Node};
use swarmboot_node::stats::Counters;
use swarmboot_node::status::Status;
use tracing::{info, warn};

mod adc_client;
mod checkins;
mod disk_mounts;
mod ftp_server;
mod index_loop;

#[derive(Parser)]
#[command(version, about = "The elchOS node agent: shares this machine's disks read-only and shows its status page")]
struct Args {
    /// Where the HTTP shares and the status page listen.
    #[arg(long, default_value = "0.0.0.0:80")]
    listen: SocketAddr,
    /// A directory to share as NAME (repeatable).
    #[arg(long = "share", value_name = "NAME=DIR")]
    shares: Vec<String>,
    /// Where the counters are kept across restarts of the agent.
    #[arg(long, default_value = "/var/lib/elchos")]
    state: PathBuf,
    /// What the node booted (NAME@VERSION), for the page.
    #[arg(long, default_value = "unknown")]
    image: String,
    /// The boot server's URL: the node checks in there (none without it).
    #[arg(long, default_value = "")]
    server: String,
    /// The server's public key (the file the image carries; never one from the network):
    /// commands are checked against it.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The machine's MAC address (its identity in the registry); default: the MAC of the
    /// interface the default route leaves by.
    #[arg(long, default_value = "")]
    mac: String,
    /// The stub's note of this boot (`/run/swarmboot/seed.toml`): the server and the image
    /// when --server and --image are not given.
    #[arg(long)]
    boot_note: Option<PathBuf>,
    /// Find the machine's disks, mount them read-only under /srv/elchos and share them (and
    /// pick up disks plugged in later).
    #[arg(long)]
    disks: bool,
    /// Serve every share over anonymous, read-only FTP too (vsftpd, chrooted in a directory of
    /// the run directory where the agent bind-mounts each share read-only: a share that goes
    /// or is stopped leaves FTP as well).
    #[arg(long)]
    ftp: bool,
    #[arg(long, default_value_t = 21)]
    ftp_port: u16,
    /// Share over ADC too: run eiskaltdcpp-daemon, which joins the hub the server names in its
    /// check-in replies (`[adc] enable` on the server) with the node's shares.
    #[arg(long)]
    adc: bool,
    /// The ADC client's port for transfers (TCP) and search results (UDP); TLS on the next.
    #[arg(long, default_value_t = 1412)]
    adc_port: u16,
    /// Where the key this boot checks in with is made (a tmpfs: a new key each boot).
    #[arg(long, default_value = "/run/swarmboot-node")]
    run_dir: PathBuf,
    /// What a `reboot` command runs (after its acknowledgement reached the server).
    #[arg(long, default_value = "systemctl reboot")]
    reboot_command: String,
    /// Seconds between scans of the shares for the server's index of what the fleet shares.
    #[arg(long, default_value_t = 30)]
    index_every: u64,
    /// Read every shared file's SHA-256 for the index (once per size and time), so equal files
    /// on different machines are known to be equal, not guessed from size and time.
    #[arg(long)]
    index_hashes: bool,
    /// The host name or address shares are reached at (for their URLs on the page).
    #[arg(long, default_value = "")]
    public_host: String,
}

/// The MAC of the interface the IPv4 default route leaves by, waiting up to a minute for the
/// route (the unit starts after network-online.target; a slow DHCP server is not an error).
async fn boot_mac() -> anyhow::Result<String> {
    for _ in 0..60 {
        let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        if let Some(iface) = swarmboot_node::identity::default_route_interface(&route) {
            let address = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).unwrap_or_default();
            return swarmboot_node::identity::mac_from_sysfs(&address).with_context(|| format!("{iface} has no MAC address ({address:?}); give --mac"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("no IPv4 default route after a minute, so no boot interface to take the MAC from; give --mac")
}

/// The address this machine reaches `server` from (no packet is sent: a UDP socket's route).
fn address_towards(server: &str) -> Option<String> {
    let host = server.split("://").nth(1)?.split('/').next()?;
    let target = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect(target).ok()?;
    Some(s.local_addr().ok()?.ip().to_string())
}

fn random_id() -> std::io::Result<[u8; 24]> {
    use std::io::Read;
    let mut id = [0; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut id)?;
    Ok(id)
}

fn uptime_secs() -> u64 {
    std::fs::read_to_string("/proc/uptime").ok().and_then(|t| t.split('.').next()?.parse().ok()).unwrap_or(0)
}

/// Worker threads of the agent's runtime, whatever the cores: a worker held up by the disk
/// (writes throttled while the kernel writes back a fetched dataset, on a one-CPU machine)
/// must not hold up check-ins, shares and the page with it.
const WORKERS: usize = 4;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SWARMBOOT_LOG").unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    let a = Args::parse();
    let (mut server, mut image, mut mac) = (a.server.clone(), a.image.clone(), a.mac.clone());
    if let Some(note) = &a.boot_note {
        let text = std::fs::read_to_string(note).with_context(|| format!("--boot-note {}", note.display()))?;
        let id = swarmboot_node::identity::from_note(&text).map_err(anyhow::Error::msg).with_context(|| format!("--boot-note {}", note.display()))?;
        if server.is_empty() {
            server = id.server;
        }
        if image == "unknown" {
            image = id.image;
        }
    }
    if a.adc && server.is_empty() {
        anyhow::bail!("--adc joins the hub the boot server names: give --server or --boot-note too");
    }
    if !server.is_empty() && mac.is_empty() {
        mac = boot_mac().await?;
    }
    let public_host = match (a.public_host.is_empty(), a.listen.ip().is_unspecified()) {
        (false, _) => a.public_host.clone(),
        (true, false) => a.listen.ip().to_string(),
        (true, true) => address_towards(&server).unwrap_or_else(|| a.listen.ip().to_string()),
    };
    let urls = ShareUrls { host: public_host, port: a.listen.port(), ftp: a.ftp.then_some(a.ftp_port) };
    let mut shares = BTreeMap::new();
    let mut listed = Vec::new();
    for s in &a.shares {
        let (name, dir) = s.split_once('=').with_context(|| format!("--share {s}: expected NAME=DIR"))?;
        let safe = swarmboot_node::disks::safe_name(name).filter(|n| n == name).with_context(|| format!("--share {s}: a share's name is letters, digits, `-`, `_`, `.`"))?;
        let fd =
            rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).with_context(|| format!("--share {s}: cannot open {dir} as a directory"))?;
        listed.push(urls.share(&safe, dir));
        shares.insert(safe, Arc::new(fd));
    }
    std::fs::create_dir_all(&a.state).with_context(|| format!("--state {}", a.state.display()))?;
    let counters_path = a.state.join("served.json");
    let (counters, damaged) = Counters::load(&counters_path);
    if let Some(why) = damaged {
        warn!("{why}");
    }
    let status = Status {
        mac: mac.clone(),
        image: image.clone(),
        uptime_secs: uptime_secs(),
        server: server.clone(),
        last_checkin: None,
        disks: vec![],
        shares: listed.clone(),
        served: counters.served(),
        seeding: Seeding::default(),
        index: None,
    };
    let node = Node {
        shares: Arc::new(RwLock::new(shares)),
        stopped: Arc::default(),
        counters: Arc::new(Mutex::new(counters)),
        status: Arc::new(RwLock::new(status)),
        downloads: Arc::default(),
    };
    if a.ftp {
        std::fs::create_dir_all(&a.run_dir).with_context(|| format!("--run-dir {}", a.run_dir.display()))?;
        tokio::spawn(ftp_server::run(node.clone(), a.run_dir.clone(), a.ftp_port));
    }
    // The server's key (the file the image carries) checks commands, and a donor's orders and
    // datasets.
    let server_key = match server.is_empty() {
        true => None,
        false => {
            let key_file = a.key_file.as_ref().context("--server needs --key-file: the server's public key that came with the image")?;
            let text = std::fs::read_to_string(key_file).with_context(|| format!("--key-file {}", key_file.display()))?;
            Some(swarmboot_manifest::PublicKey::from_key_file(&text).with_context(|| format!("--key-file {}", key_file.display()))?)
        }
    };
    let rescan = match a.disks {
        true => {
            let rescan = Arc::new(tokio::sync::Notify::new());
            let (first_tx, first_rx) = tokio::sync::oneshot::channel();
            // The image this machine booted, as a dataset (`elchos@1`): its donor says it holds
            // it, and is told to take the next version.
            let booted = (image.contains('@') && swarmboot_checkin::donation::is_dataset_name(&image)).then(|| image.clone());
            let donor = server_key.map(|key| (server.clone(), key, booted));
            tokio::spawn(disk_loop(node.clone(), listed, urls, rescan.clone(), first_tx, donor));
            // The first check-in already lists the disks.
            let _ = first_rx.await;
            Some(rescan)
        }
        false => None,
    };
    let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("--listen {}: cannot listen", a.listen))?;
    info!(listen = %a.listen, shares = a.shares.len(), "swarmboot-node serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = swarmboot_httpd::ConnectionLimits { admission: swarmboot_swarm::admission::Admission::new(2048, 32), header_timeout: Duration::from_secs(10) };
    let http = tokio::spawn(swarmboot_httpd::serve(listener, router(node.clone()), limits, Arc::new(|| {}), stop_rx));
    if let Some(server_key) = server_key {
        if !swarmboot_checkin::report::is_mac(&mac) {
            anyhow::bail!("--mac {mac:?}: the machine's MAC address, lowercase aa:bb:cc:dd:ee:ff");
        }
        std::fs::create_dir_all(&a.run_dir).with_context(|| format!("--run-dir {}", a.run_dir.display()))?;
        let node_key = swarmboot_manifest::SigningKey::load_or_create(&a.run_dir).with_context(|| format!("making this boot's key in {}", a.run_dir.display()))?;
        info!(%server, %mac, node_key = %node_key.public().fingerprint(), "checking in");
        let (adc_hub, hub_port) = tokio::sync::watch::channel(None);
        if a.adc {
            let settings = swarmboot_node::adc::ClientSettings {
                nick: swarmboot_node::adc::nick(&mac),
                description: format!("elchOS node {mac} ({image})"),
                port: a.adc_port,
                tls_port: a.adc_port.checked_add(1).context("--adc-port: the TLS port is the next one, so at most 65534")?,
                private_id: random_id().context("reading /dev/urandom for the ADC client's private id")?,
                slots: 16,
            };
            tokio::spawn(adc_client::AdcClient { node: node.clone(), run_dir: a.run_dir.clone(), settings, server: server.clone(), hub_port }.run());
        }
        // The same key, read again from the run directory (a key is not copied in memory).
        let index_key = swarmboot_manifest::SigningKey::load_or_create(&a.run_dir).with_context(|| format!("reading this boot's key in {}", a.run_dir.display()))?;
        tokio::spawn(
            index_loop::IndexLoop {
                node: node.clone(),
                server: server.clone(),
                node_key: index_key,
                mac: mac.clone(),
                scan_every: Duration::from_secs(a.index_every.max(1)),
                hashes: a.index_hashes,
            }
            .run(),
        );
        let agent = checkins::Agent { node: node.clone(), server: server.clone(), server_key, node_key, mac, image, reboot_command: a.reboot_command.clone(), rescan, adc_hub };
        tokio::spawn(agent.run());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let served = node.counters.lock().expect("counters lock").clone();
                let seeding = std::fs::read_to_string(swarmboot_init::seed_service::STATS).ok().and_then(|t| swarmboot_node::identity::seeding(&t));
                {
                    let mut s = node.status.write().expect("status lock");
                    s.uptime_secs = uptime_secs();
                    s.served = served.served();
                    if let Some(seeding) = seeding {
                        s.seeding = seeding;
                    }
                }
                if let Err(e) = served.save(&counters_path) {
                    warn!(path = %counters_path.display(), error = %e, "cannot save the counters");
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = http.await;
    if a.ftp {
        ftp_server::unbind_all(&ftp_server::root(&a.run_dir));
    }
    node.counters.lock().expect("counters lock").save(&counters_path).with_context(|| format!("saving {}", counters_path.display()))?;
    Ok(())
}

/// Where a share is reached.
#[derive(Clone)]
struct ShareUrls {
    host: String,
    port: u16,
    /// The FTP port, if FTP is on.
    ftp: Option<u16>,
}

impl ShareUrls {
    /// The share's URLs: HTTP, and FTP when it is on.
    fn share(&self, name: &str, path: &str) -> Share {
        let port = if self.port == 80 { String::new() } else { format!(":{}", self.port) };
        let mut urls = vec![format!("http://{}{port}/{name}/", self.host)];
        if let Some(ftp_port) = self.ftp {
            let port = if ftp_port == 21 { String::new() } else { format!(":{ftp_port}") };
            urls.push(format!("ftp://{}{port}/{name}/", self.host));
        }
        Share { name: name.to_string(), path: path.to_string(), urls }
    }
}

/// Passes over the disks every few seconds (and at once on `rescan-disks`, which also retries
/// what failed): the node's shares and its page follow what is mounted. `fixed`: the shares
/// given with --share.
/// The donor on donated space, while it runs: its task and what stops it.
struct Donating {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Share of donated space given to datasets (the rest is the filesystem's own and the
/// donor's directory).
const DONATED_SHARE_PERCENT: u64 = 95;

/// Each pass mounts and shares what the plan says; while donated space is mounted (and the
/// server is known) a donor runs on it (`swarmboot_donor`), stopped when the disk goes.
async fn disk_loop(
    node: Node,
    fixed: Vec<Share>,
    urls: ShareUrls,
    rescan: Arc<tokio::sync::Notify>,
    first: tokio::sync::oneshot::Sender<()>,
    donor: Option<(String, swarmboot_manifest::PublicKey, Option<String>)>,
) {
    let mut first = Some(first);
    let mut donating: Option<Donating> = None;
    let disks = Arc::new(Mutex::new(disk_mounts::Disks::new()));
    let mut retry = false;
    loop {
        let d = disks.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let mut d = d.lock().expect("disks lock");
            if retry {
                d.forget_failures();
            }
            d.pass()
        })
        .await;
        match pass {
            Ok(pass) => {
                let stopped = node.stopped.read().expect("stopped lock").clone();
                {
                    let mut shares = node.shares.write().expect("shares lock");
                    shares.retain(|name, _| fixed.iter().any(|f| &f.name == name) || pass.shares.contains_key(name));
                    for (name, (_, fd)) in &pass.shares {
                        if !stopped.contains(name) {
                            shares.entry(name.clone()).or_insert_with(|| fd.clone());
                        }
                    }
                }
                let mut listed: Vec<Share> = fixed.clone();
                listed.extend(pass.shares.iter().map(|(name, (at, _))| urls.share(name, at)));
                listed.retain(|s| !stopped.contains(&s.name));
                {
                    let mut s = node.status.write().expect("status lock");
                    s.disks = pass.disks;
                    s.shares = listed;
                }
                if donating.as_ref().is_some_and(|d| d.task.is_finished()) {
                    donating = None; // ended with an error (logged): started again below
                }
                match (pass.donated, &donor) {
                    (Some(size), Some((server, key, booted))) if donating.is_none() => {
                        let settings = swarmboot_donor::Settings {
                            server: server.clone(),
                            server_key: *key,
                            space: size / 100 * DONATED_SHARE_PERCENT,
                            dir: swarmboot_node::disks::DONOR_DIR.into(),
                            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                            rounds: None,
                            booted: booted.clone(),
                        };
                        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                        let task = tokio::spawn(async move {
                            if let Err(e) = swarmboot_donor::donate(&settings, async move {
                                let _ = stopped.await;
                            })
                            .await
                            {
                                warn!("donating stopped: {e}");
                            }
                        });
                        donating = Some(Donating { task, stop });
                    }
                    (None, _) => {
                        if let Some(d) = donating.take() {
                            let _ = d.stop.send(());
                            let _ = d.task.await;
                        }
                    }
                    _ => {}
                }
            }
            Err(e) => warn!(error = %e, "a pass over the disks failed"),
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        retry = tokio::select! {
            _ = tokio::time::sleep(DISK_PASS) => false,
            _ = rescan.notified() => true,
        };
    }
}

/// How often the agent looks for disks plugged in or pulled.
const DISK_PASS: Duration = Duration::from_secs(5);
