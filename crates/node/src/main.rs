//! `swarmboot-node`: the elchOS node agent (being built: it serves shares and the status page
//! and checks in with the boot server, taking its commands; disks, FTP and ADC come next).
//!
//! `swarmboot-node --share NAME=DIR … [--listen 0.0.0.0:80] [--state /var/lib/elchos]
//! [--image NAME@V] [--server URL --key-file F --mac MAC [--run-dir /run/swarmboot-node]
//! [--reboot-command CMD]]`

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

mod checkins;

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
    #[arg(long, requires = "server")]
    key_file: Option<PathBuf>,
    /// The machine's MAC address (its identity in the registry).
    #[arg(long, default_value = "")]
    mac: String,
    /// Where the key this boot checks in with is made (a tmpfs: a new key each boot).
    #[arg(long, default_value = "/run/swarmboot-node")]
    run_dir: PathBuf,
    /// What a `reboot` command runs (after its acknowledgement reached the server).
    #[arg(long, default_value = "systemctl reboot")]
    reboot_command: String,
    /// The host name or address shares are reached at (for their URLs on the page).
    #[arg(long, default_value = "")]
    public_host: String,
}

fn uptime_secs() -> u64 {
    std::fs::read_to_string("/proc/uptime").ok().and_then(|t| t.split('.').next()?.parse().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SWARMBOOT_LOG").unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    let a = Args::parse();
    let mut shares = BTreeMap::new();
    let mut listed = Vec::new();
    for s in &a.shares {
        let (name, dir) = s.split_once('=').with_context(|| format!("--share {s}: expected NAME=DIR"))?;
        let safe = swarmboot_node::disks::safe_name(name).filter(|n| n == name).with_context(|| format!("--share {s}: a share's name is letters, digits, `-`, `_`, `.`"))?;
        let fd =
            rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).with_context(|| format!("--share {s}: cannot open {dir} as a directory"))?;
        let host = if a.public_host.is_empty() { a.listen.ip().to_string() } else { a.public_host.clone() };
        listed.push(Share { name: safe.clone(), path: dir.to_string(), urls: vec![format!("http://{host}:{}/{safe}/", a.listen.port())] });
        shares.insert(safe, Arc::new(fd));
    }
    std::fs::create_dir_all(&a.state).with_context(|| format!("--state {}", a.state.display()))?;
    let counters_path = a.state.join("served.json");
    let (counters, damaged) = Counters::load(&counters_path);
    if let Some(why) = damaged {
        warn!("{why}");
    }
    let status = Status {
        mac: a.mac.clone(),
        image: a.image.clone(),
        uptime_secs: uptime_secs(),
        server: a.server.clone(),
        last_checkin: None,
        disks: vec![],
        shares: listed,
        served: counters.served(),
        seeding: Seeding::default(),
    };
    let node = Node { shares: Arc::new(RwLock::new(shares)), counters: Arc::new(Mutex::new(counters)), status: Arc::new(RwLock::new(status)) };
    let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("--listen {}: cannot listen", a.listen))?;
    info!(listen = %a.listen, shares = a.shares.len(), "swarmboot-node serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = swarmboot_httpd::ConnectionLimits { admission: swarmboot_swarm::admission::Admission::new(2048, 32), header_timeout: Duration::from_secs(10) };
    let server = tokio::spawn(swarmboot_httpd::serve(listener, router(node.clone()), limits, Arc::new(|| {}), stop_rx));
    if !a.server.is_empty() {
        let key_file = a.key_file.as_ref().context("--server needs --key-file: the server's public key that came with the image")?;
        let text = std::fs::read_to_string(key_file).with_context(|| format!("--key-file {}", key_file.display()))?;
        let server_key = swarmboot_manifest::PublicKey::from_key_file(&text).with_context(|| format!("--key-file {}", key_file.display()))?;
        if !swarmboot_checkin::report::is_mac(&a.mac) {
            anyhow::bail!("--mac {:?}: the machine's MAC address, lowercase aa:bb:cc:dd:ee:ff", a.mac);
        }
        std::fs::create_dir_all(&a.run_dir).with_context(|| format!("--run-dir {}", a.run_dir.display()))?;
        let node_key = swarmboot_manifest::SigningKey::load_or_create(&a.run_dir).with_context(|| format!("making this boot's key in {}", a.run_dir.display()))?;
        info!(server = %a.server, node_key = %node_key.public().fingerprint(), "checking in");
        let agent = checkins::Agent {
            node: node.clone(),
            server: a.server.clone(),
            server_key,
            node_key,
            mac: a.mac.clone(),
            image: a.image.clone(),
            reboot_command: a.reboot_command.clone(),
        };
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
                {
                    let mut s = node.status.write().expect("status lock");
                    s.uptime_secs = uptime_secs();
                    s.served = served.served();
                }
                if let Err(e) = served.save(&counters_path) {
                    warn!(path = %counters_path.display(), error = %e, "cannot save the counters");
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    node.counters.lock().expect("counters lock").save(&counters_path).with_context(|| format!("saving {}", counters_path.display()))?;
    Ok(())
}
