//! What every HTTP handler shares ([`AppState`]): the counters, the boot rules, the catalog,
//! the tracker and the seed, the nodes, the fleet, the admin token, the history, the index.
//! It names the parts; the parts do not know it (no module below the handlers imports it), so
//! the router and its handlers sit above everything they use.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use swarmboot_bootplan::ImageRules;
use swarmboot_image::Catalog;
use swarmboot_manifest::SigningKey;
use swarmboot_tracker::PeerTable;

use crate::dhcp_service::DhcpStats;
use crate::nodes::Nodes;
use crate::seeder::Seeder;
use crate::tftp_service::{FileSource, TftpStats};

/// What `/boot.ipxe` decides with; replaced as a whole on SIGHUP.
#[derive(Debug, Clone)]
pub struct BootConfig {
    pub rules: ImageRules,
    /// `http://<server address>:<port>`, the base of every URL in a script.
    pub base_url: String,
}

#[derive(Debug, Default)]
pub struct HttpStats {
    pub scripts: AtomicU64,
    pub scripts_without_image: AtomicU64,
    pub blobs: AtomicU64,
    /// Body bytes of image file responses (ranges count what they carry).
    pub blob_bytes: AtomicU64,
    pub manifests: AtomicU64,
    pub announces: AtomicU64,
    pub not_found: AtomicU64,
    /// Connections closed at once: too many open (from that client, or in all).
    pub refused_connections: AtomicU64,
}

#[derive(Clone)]
pub struct AppState {
    pub dhcp: Arc<DhcpStats>,
    pub tftp: Arc<TftpStats>,
    pub http: Arc<HttpStats>,
    pub boot: Arc<RwLock<BootConfig>>,
    pub catalog: Catalog,
    pub files: Arc<FileSource>,
    /// Signs freshness statements, pieces' SHA-256 lists, and manifests that were added
    /// before signing existed.
    pub key: Arc<SigningKey>,
    /// Signed SHA-256 lists of pieces, by file (`/pieces/<sha256>`): made once each.
    pub piece_sha256: Arc<Mutex<std::collections::HashMap<String, axum::body::Bytes>>>,
    /// The tracker (`None`: `[swarm] tracker = false`).
    pub tracker: Option<Arc<Mutex<PeerTable>>>,
    pub seeder: Option<Arc<Seeder>>,
    pub nodes: Arc<Nodes>,
    pub fleet: Arc<crate::fleet::FleetState>,
    /// Who may act through the dashboard, and who may read it (`[http] dashboard`).
    pub admin: Arc<crate::admin::AdminToken>,
    pub dashboard: crate::admin::DashboardAccess,
    /// The server's counters over the last hour.
    pub history: Arc<crate::history::History>,
    /// What the server page says about this server.
    pub facts: Arc<ServerFacts>,
    /// The fleet's index of what nodes share.
    pub namespace: Arc<crate::namespace::Namespace>,
    /// Donors and the datasets placed on them.
    pub donors: Arc<crate::donors::Donors>,
}

/// What the server page shows that does not change while it runs.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub started_ms: u64,
    pub interface: String,
    pub address: String,
    /// `authoritative`, `proxy` or `off`.
    pub dhcp: String,
    pub state_dir: std::path::PathBuf,
    /// The config file (the dashboard's assignments read its `[boot]`).
    pub config: std::path::PathBuf,
}
