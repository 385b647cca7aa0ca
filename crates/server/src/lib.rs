//! swarmboot's boot server: the thin tokio shells around the protocol cores.
//!
//! [`run`] reads the served network from the interface, starts the DHCP service (sockets on
//! 67 and 4011, the lease database), the TFTP service, the HTTP listener (boot scripts, signed
//! manifests, image files, torrents, the tracker) and the seed of every image file
//! ([`seeder`]), with `[adc] enable` the ADC hub ([`adc_hub`]), reloads on SIGHUP, and stops
//! them on SIGTERM/SIGINT.
//!
//! What it does not do: decide anything about DHCP (that is `swarmboot-dhcp`) or parse config
//! (that is `swarmboot-config`). Sockets are opened by the shells: this crate, the swarm
//! engine and the fetch client's HTTP, the stub's init, and the CLI's `setup` (one DHCP probe).

pub mod adc_hub;
pub mod admin;
pub mod api;
pub mod assign;
pub mod dashboard;
pub mod dhcp_service;
pub mod donors;
pub mod files_page;
pub mod fleet;
pub mod history;
pub mod http;
pub mod index_store;
pub mod lease_store;
pub mod namespace;
pub mod namespace_http;
pub mod netif;
pub mod node_store;
pub mod nodes;
pub mod pages;
pub mod seeder;
mod sqlite;
pub mod state;
pub mod swarms;
pub mod tftp_service;
pub mod webdav;

use std::sync::Arc;

use anyhow::Context;
use swarmboot_config::Config;
use swarmboot_dhcp::{DhcpServer, Mode};
use swarmboot_swarm::admission::Admission;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::dhcp_service::{DhcpService, DhcpStats};
use crate::lease_store::LeaseStore;
use crate::tftp_service::{FileSource, TftpService, TftpStats};

/// The prefix length of the served network: from `server.address`, else from the interface.
pub fn served_prefix(cfg: &Config) -> anyhow::Result<u8> {
    let from_iface = netif::prefix_of(&cfg.server.interface, cfg.server.address.ip);
    match (cfg.configured_prefix(), from_iface) {
        (Some(p), _) => Ok(p),
        (None, Ok(p)) => Ok(p),
        (None, Err(e)) => Err(e).context("server.address has no /prefix, so it is read from the interface"),
    }
}

/// Raises the soft limit on open files to the hard one (the unit sets both with
/// `LimitNOFILE=`; a server started by hand often has a soft 1024) and warns when the
/// connection caps could need more than that.
fn file_descriptors(cfg: &Config) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    // Listening sockets, the lease database, store files being read, the log: a margin.
    let caps = cfg.http.max_connections + cfg.tftp.max_transfers + cfg.swarm.max_peer_connections + 256;
    if (caps as u64) > soft {
        warn!(limit = soft, needed = caps, "the open-file limit is lower than the connection caps may need (http.max_connections + tftp.max_transfers + swarm.max_peer_connections + 256): raise LimitNOFILE= or lower the caps");
    } else {
        info!(limit = soft, "open-file limit");
    }
}

/// The running server's pid, in the state directory (SIGHUP reloads it).
pub const PID_FILE: &str = "serve.pid";

/// Runs the server until SIGTERM or SIGINT. SIGHUP re-reads the config file: DHCP settings
/// and boot rules change without dropping leases or transfers (the catalog is read per request
/// anyway); a config that does not validate is logged and the running one kept.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    file_descriptors(&cfg);
    let prefix = served_prefix(&cfg)?;
    let settings = cfg.dhcp_settings(prefix)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = watch::channel::<Option<swarmboot_dhcp::Settings>>(None);
    let dhcp_stats = Arc::new(DhcpStats::default());
    let tftp_stats = Arc::new(TftpStats::default());
    let http_stats = Arc::new(state::HttpStats::default());

    let fleet = Arc::new(fleet::FleetState::new(swarmboot_fleet::FleetConfig::default()));
    let history = Arc::new(history::History::default());
    let mode_now = settings.mode;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(fleet.clone().run(stop_rx.clone()));
    let dhcp_on = settings.mode != Mode::Off;
    if dhcp_on {
        let store = LeaseStore::open(&cfg.server.state_dir)?;
        let records = store.load()?;
        let mode = settings.mode;
        fleet.restore_leases(&records);
        let core = DhcpServer::new(settings, records);
        info!(leases = core.leases().len(), ?mode, interface = %cfg.server.interface, "DHCP lease table loaded");
        let service = DhcpService::bind(core, store, &cfg.server.interface, dhcp_stats.clone(), fleet.clone())?;
        let (rx, reload) = (stop_rx.clone(), reload_rx.clone());
        tasks.spawn(async move { service.run(rx, reload).await.context("DHCP service") });
    } else {
        info!("[dhcp] mode = \"off\": not answering DHCP");
    }

    let tftp_root = cfg.tftp.root_dir(&cfg.server.state_dir);
    let files = Arc::new(FileSource::new(&tftp_root, &cfg.tftp.ipxe_dir).with_context(|| format!("tftp.root: cannot use {}", tftp_root.display()))?);
    if cfg.tftp.enabled {
        let limits = swarmboot_tftp::Limits {
            max_blksize: cfg.tftp.max_blksize,
            max_windowsize: cfg.tftp.max_windowsize,
            max_timeout: std::time::Duration::from_secs(cfg.tftp.max_timeout.0.into()),
            ..Default::default()
        };
        let running = Admission::new(cfg.tftp.max_transfers, cfg.tftp.max_transfers_per_client);
        let service = TftpService::bind(cfg.tftp.listen, Some(&cfg.server.interface), files.clone(), limits, running, tftp_stats.clone()).await?.with_fleet(fleet.clone());
        info!(listen = %cfg.tftp.listen, root = %tftp_root.display(), "TFTP serving");
        let rx = stop_rx.clone();
        tasks.spawn(async move { service.run(rx).await.context("TFTP service") });
    }

    let key = Arc::new(swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?);
    info!(key = %key.public().to_hex(), fingerprint = %key.public().fingerprint(), "manifests are signed with this key");
    let catalog = swarmboot_image::Catalog::new(&cfg.server.state_dir);
    let seed_seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let tracker = Arc::new(std::sync::Mutex::new(swarmboot_tracker::PeerTable::new(swarmboot_tracker::TrackerConfig::default(), seed_seed)));
    let seeder = if cfg.swarm.seed || cfg.swarm.tracker {
        let settings = seeder::SeedSettings {
            seed: cfg.swarm.seed,
            listen: cfg.swarm.listen,
            device: Some(cfg.server.interface.clone()),
            upload_slots: cfg.swarm.upload_slots,
            address: cfg.server.address.ip,
            peers: Admission::new(cfg.swarm.max_peer_connections, cfg.swarm.max_peer_connections_per_client),
        };
        let s = Arc::new(seeder::Seeder::new(catalog.clone(), tracker.clone(), settings)?);
        let rx = stop_rx.clone();
        tasks.spawn(s.clone().run(std::time::Duration::from_secs(5), rx));
        Some(s)
    } else {
        None
    };

    let boot = Arc::new(std::sync::RwLock::new(boot_config(&cfg)?));
    let http_addrs = cfg.http.listen_addrs(cfg.server.address.ip);
    let mut listeners = Vec::new();
    for addr in &http_addrs {
        let what = if cfg.http.listen.is_some() { "http.listen" } else { "http.listen (unset: the boot address and 127.0.0.1)" };
        listeners.push(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("{what}: cannot listen on {addr}"))?);
    }
    let registry_cfg = swarmboot_checkin::registry::RegistryConfig {
        interval: cfg.nodes.checkin_interval.0.into(),
        missed_before_lost: cfg.nodes.missed_before_lost,
        command_ttl: cfg.nodes.command_ttl.0.into(),
        adc_port: cfg.adc.enable.then_some(cfg.adc.listen.port()),
        ..Default::default()
    };
    let node_store = node_store::NodeStore::open(&cfg.server.state_dir)?;
    let nodes = Arc::new(nodes::Nodes::open(registry_cfg, node_store)?);
    let catalog_for_history = catalog.clone();
    let namespace = Arc::new(namespace::Namespace::open(&cfg.server.state_dir).with_context(|| format!("the index in {}", cfg.server.state_dir.display()))?);
    let donors = Arc::new(donors::Donors::new(
        &cfg.server.state_dir,
        key.clone(),
        u64::from(cfg.nodes.checkin_interval.0).max(1),
        cfg.nodes.missed_before_lost,
        random_seed(),
        fleet::now_ms(),
    ));
    let app = http::router(state::AppState {
        dhcp: dhcp_stats.clone(),
        tftp: tftp_stats.clone(),
        http: http_stats.clone(),
        boot: boot.clone(),
        catalog,
        files,
        key,
        piece_sha256: Arc::default(),
        tracker: cfg.swarm.tracker.then_some(tracker.clone()),
        seeder: seeder.clone(),
        nodes: nodes.clone(),
        fleet: fleet.clone(),
        admin: Arc::new(admin::AdminToken::load_or_create(&cfg.server.state_dir).with_context(|| format!("the admin token in {}", cfg.server.state_dir.display()))?),
        dashboard: cfg.http.dashboard,
        history: history.clone(),
        namespace: namespace.clone(),
        donors: donors.clone(),
        facts: Arc::new(state::ServerFacts {
            started_ms: fleet::now_ms(),
            interface: cfg.server.interface.clone(),
            address: format!("{}/{prefix}", cfg.server.address.ip),
            dhcp: match mode_now {
                Mode::Authoritative => "authoritative".into(),
                Mode::Proxy => "proxy".into(),
                Mode::Off => "off".into(),
            },
            state_dir: cfg.server.state_dir.clone(),
            config: cfg.path.clone(),
        }),
    });
    {
        let (dhcp, tftp, web, seeder, tracker, fleet, catalog) =
            (dhcp_stats.clone(), tftp_stats.clone(), http_stats.clone(), seeder.clone(), cfg.swarm.tracker.then(|| tracker.clone()), fleet.clone(), catalog_for_history);
        let sample = move || {
            let l = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let swarm = http::SwarmCounters::read(seeder.as_deref(), tracker.as_deref());
            let (by_stage, fc) = fleet.read(|f, _| (f.by_stage(), f.counters()));
            let count = |pick: fn(swarmboot_fleet::Stage) -> bool| by_stage.iter().filter(|(s, _)| pick(*s)).map(|(_, n)| *n as u64).sum();
            history::Sample {
                at_ms: fleet::now_ms(),
                dhcp_received: l(&dhcp.received),
                dhcp_acks: l(&dhcp.acks),
                tftp_requests: l(&tftp.requests),
                tftp_bytes: l(&tftp.bytes_sent),
                http_blob_bytes: l(&web.blob_bytes),
                http_scripts: l(&web.scripts),
                announces: l(&web.announces),
                seed_uploaded: swarm.seed_uploaded,
                peers_uploaded: swarm.peers_uploaded,
                reports: fc.reports,
                machines_booting: count(swarmboot_fleet::Stage::is_transient),
                machines_running: count(|s| s == swarmboot_fleet::Stage::Running),
                images: swarms::image_bytes(&catalog, tracker.as_deref(), seeder.as_deref()),
            }
        };
        tasks.spawn(history::run(history.clone(), sample, stop_rx.clone()));
    }
    let limits = http::ConnectionLimits {
        admission: Admission::new(cfg.http.max_connections, cfg.http.max_connections_per_client),
        header_timeout: std::time::Duration::from_secs(cfg.http.header_timeout.0.into()),
    };
    for listener in listeners {
        let (rx, stats, app, limits) = (stop_rx.clone(), http_stats.clone(), app.clone(), limits.clone());
        tasks.spawn(async move { http::serve(listener, app, limits, stats, rx).await.context("HTTP listener") });
    }
    if cfg.adc.enable {
        let uhub = adc_hub::find_uhub().context("adc.enable: the ADC hub is uhub, which is not installed (apt install uhub), or set [adc] enable = false")?;
        let hub = adc_hub::HubSettings { listen: cfg.adc.listen, max_users: cfg.adc.max_users, hub_name: cfg.adc.hub_name.clone() };
        let (rx, dir) = (stop_rx.clone(), cfg.server.state_dir.clone());
        tasks.spawn(async move { adc_hub::run(hub, uhub, dir, rx).await.context("ADC hub") });
    }
    // Where `swarmboot assign` and the picker find the server to reload it.
    let pid_file = cfg.server.state_dir.join(PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        warn!(path = %pid_file.display(), error = %e, "cannot write the pid file: `swarmboot assign` will not reload this server");
    }
    info!(address = %cfg.server.address.ip, prefix, http = ?http_addrs, "swarmboot ready");

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let result = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = term.recv() => break Ok(()),
            _ = hup.recv() => match reload(&cfg.path, dhcp_on) {
                Ok((settings, new_boot)) => {
                    *boot.write().expect("boot config lock") = new_boot;
                    if let Some(s) = settings {
                        let _ = reload_tx.send(Some(s));
                    }
                    info!(config = %cfg.path.display(), "config reloaded");
                }
                Err(e) => error!(config = %cfg.path.display(), error = format!("{e:#}"), "config NOT reloaded; keeping the running one"),
            },
            Some(r) = tasks.join_next() => break r.context("task panicked").and_then(|r| r),
        }
    };
    info!("shutting down");
    if std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim() == std::process::id().to_string()) {
        let _ = std::fs::remove_file(&pid_file);
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let swarm = http::SwarmCounters::read(seeder.as_deref(), None);
    let summary = http::render_metrics(&http::MetricSources {
        dhcp: &dhcp_stats,
        tftp: &tftp_stats,
        http: &http_stats,
        swarm: &swarm,
        nodes: &nodes,
        machines: &fleet,
        index: &namespace.stats,
        donors: &donors,
    });
    info!(metrics = %summary.lines().filter(|l| !l.starts_with('#') && !l.ends_with(" 0")).collect::<Vec<_>>().join(", "), "final counters");
    result
}

/// 64 bits from the kernel's generator, for the placement's draws (a server whose draws could be
/// foretold could be gamed).
fn random_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => fleet::now_ms() ^ u64::from(std::process::id()).rotate_left(32),
    }
}

/// The config's boot rules with the tools' assignments (`swarmboot assign`, the dashboard)
/// layered over them.
fn boot_config(cfg: &Config) -> anyhow::Result<state::BootConfig> {
    let assignments = swarmboot_config::Assignments::load(&cfg.server.state_dir)?;
    Ok(state::BootConfig { rules: cfg.image_rules(&assignments)?, base_url: cfg.base_url() })
}

/// Re-reads the config for SIGHUP. Interface, addresses, listeners and the TFTP root are not
/// changed by a reload (a restart changes them); DHCP settings and boot rules are.
fn reload(path: &std::path::Path, dhcp_on: bool) -> anyhow::Result<(Option<swarmboot_dhcp::Settings>, state::BootConfig)> {
    let cfg = Config::load(path)?;
    let settings = if dhcp_on {
        let s = cfg.dhcp_settings(served_prefix(&cfg)?)?;
        (s.mode != Mode::Off).then_some(s)
    } else {
        None
    };
    Ok((settings, boot_config(&cfg)?))
}
