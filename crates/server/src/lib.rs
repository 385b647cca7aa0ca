//! swarmboot's boot server: the thin tokio shells around the protocol cores.
//!
//! [`run`] reads the served network from the interface, starts the DHCP service (sockets on
//! 67 and 4011, the lease database), the TFTP service and the HTTP listener, and stops them on
//! SIGTERM/SIGINT.
//!
//! What it does not do: decide anything about DHCP (that is `swarmboot-dhcp`) or parse config
//! (that is `swarmboot-config`). Only this crate and the stub's init open sockets.

pub mod dhcp_service;
pub mod http;
pub mod lease_store;
pub mod netif;
pub mod tftp_service;

use std::sync::Arc;

use anyhow::Context;
use swarmboot_config::Config;
use swarmboot_dhcp::{DhcpServer, Mode};
use tokio::sync::watch;
use tracing::info;

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

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let prefix = served_prefix(&cfg)?;
    let settings = cfg.dhcp_settings(prefix)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let dhcp_stats = Arc::new(DhcpStats::default());
    let tftp_stats = Arc::new(TftpStats::default());

    let mut tasks = tokio::task::JoinSet::new();
    if settings.mode != Mode::Off {
        let store = LeaseStore::open(&cfg.server.state_dir)?;
        let records = store.load()?;
        let mode = settings.mode;
        let core = DhcpServer::new(settings, records);
        info!(leases = core.leases().len(), ?mode, interface = %cfg.server.interface, "DHCP lease table loaded");
        let service = DhcpService::bind(core, store, &cfg.server.interface, dhcp_stats.clone())?;
        let rx = stop_rx.clone();
        tasks.spawn(async move { service.run(rx).await.context("DHCP service") });
    } else {
        info!("[dhcp] mode = \"off\": not answering DHCP");
    }

    if cfg.tftp.enabled {
        let root = cfg.tftp.root_dir(&cfg.server.state_dir);
        let files = FileSource::new(&root, &cfg.tftp.ipxe_dir)
            .with_context(|| format!("tftp.root: cannot use {}", root.display()))?;
        let limits = swarmboot_tftp::Limits {
            max_blksize: cfg.tftp.max_blksize,
            max_windowsize: cfg.tftp.max_windowsize,
            ..Default::default()
        };
        let service = TftpService::bind(cfg.tftp.listen, files, limits, tftp_stats.clone()).await?;
        info!(listen = %cfg.tftp.listen, root = %root.display(), "TFTP serving");
        let rx = stop_rx.clone();
        tasks.spawn(async move { service.run(rx).await.context("TFTP service") });
    }

    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", cfg.http.listen))?;
    let app = http::router(http::AppState { dhcp: dhcp_stats.clone(), tftp: tftp_stats.clone() });
    let mut rx = stop_rx.clone();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.changed().await;
            })
            .await
            .context("HTTP listener")
    });
    info!(address = %cfg.server.address.ip, prefix, http = %cfg.http.listen, "swarmboot ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        Some(r) = tasks.join_next() => r.context("task panicked").and_then(|r| r),
    };
    info!("shutting down");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    info!(metrics = %http::render_metrics(&dhcp_stats, &tftp_stats).lines().filter(|l| !l.starts_with('#') && !l.ends_with(" 0")).collect::<Vec<_>>().join(", "), "final counters");
    result
}
