//! The HTTP listener (`[http] listen`): everything after iPXE. `/boot.ipxe` (the machine's
//! script), `/blob/<sha256>` (image files, content-addressed), `/tftp/<name>` (the TFTP files,
//! for UEFI HTTP boot), `/healthz`, `/metrics`. Files are served with HEAD, Range and
//! Content-Length.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use swarmboot_bootplan::{render, Asker, BootPlan, ImageRules};
use swarmboot_dhcp::DropReason;
use swarmboot_image::Catalog;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tracing::{info, warn};

use crate::dhcp_service::DhcpStats;
use crate::tftp_service::{FileSource, Located, TftpStats};

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
    pub not_found: AtomicU64,
}

#[derive(Clone)]
pub struct AppState {
    pub dhcp: Arc<DhcpStats>,
    pub tftp: Arc<TftpStats>,
    pub http: Arc<HttpStats>,
    pub boot: Arc<RwLock<BootConfig>>,
    pub catalog: Catalog,
    pub files: Arc<FileSource>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/boot.ipxe", get(boot_script))
        .route("/blob/{sha256}", get(blob))
        .route("/torrent/{name}", get(torrent))
        .route("/tftp/{*name}", get(tftp_file))
        .with_state(state)
}

#[derive(Debug, Deserialize, Default)]
struct ScriptQuery {
    #[serde(default)]
    mac: String,
    #[serde(default)]
    arch: String,
    #[serde(default)]
    uuid: String,
}

/// The machine's iPXE script: its image's latest version, or a message and a retry.
async fn boot_script(State(s): State<AppState>, Query(q): Query<ScriptQuery>) -> Response {
    let asker = Asker { mac: q.mac, arch: q.arch, uuid: q.uuid };
    let boot = s.boot.read().expect("boot config lock").clone();
    let plan: Result<BootPlan, String> = match boot.rules.image_for(&asker.mac) {
        None => Err("no [boot] default_image, and no [[boot.client]] rule matches".into()),
        Some(name) => match s.catalog.latest(name) {
            Ok(Some(m)) => BootPlan::from_manifest(&m).map_err(|e| e.to_string()),
            Ok(None) => Err(format!("the catalog has no image {name}")),
            Err(e) => Err(e.to_string()),
        },
    };
    s.http.scripts.fetch_add(1, Ordering::Relaxed);
    match &plan {
        Ok(p) => info!(mac = %asker.mac, arch = %asker.arch, image = %p.image, version = p.version, "boot script"),
        Err(reason) => {
            s.http.scripts_without_image.fetch_add(1, Ordering::Relaxed);
            warn!(mac = %asker.mac, %reason, "boot script without an image");
        }
    }
    let script = render(plan.as_ref().map_err(|e| e.as_str()), &asker, &boot.base_url);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], script).into_response()
}

async fn blob(State(s): State<AppState>, Path(sha256): Path<String>, req: Request) -> Response {
    match s.catalog.store().path_of(&sha256) {
        Some(path) if path.is_file() => {
            s.http.blobs.fetch_add(1, Ordering::Relaxed);
            serve_file(path, req).await
        }
        _ => not_found(&s),
    }
}

/// `/torrent/<sha256>.torrent`: the store's torrent of that file with this server's tracker
/// as `announce`. The stored torrent is `d4:info…e`; `8:announce` sorts before `4:info`, so
/// it goes right after the opening `d` and the `info` bytes (the info hash) stay untouched.
async fn torrent(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(sha256) = name.strip_suffix(".torrent") else { return not_found(&s) };
    let stored = match s.catalog.store().torrent(sha256) {
        Ok(Some((_, bytes))) if bytes.starts_with(b"d4:info") => bytes,
        Ok(_) => return not_found(&s),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let announce = format!("{}/announce", s.boot.read().expect("boot config lock").base_url);
    let mut out = Vec::with_capacity(stored.len() + announce.len() + 16);
    out.extend_from_slice(format!("d8:announce{}:{announce}", announce.len()).as_bytes());
    out.extend_from_slice(&stored[1..]);
    ([(header::CONTENT_TYPE, "application/x-bittorrent")], out).into_response()
}

async fn tftp_file(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    match s.files.locate(name.as_bytes(), peer) {
        Ok(Located::Disk(path)) => serve_file(path, req).await,
        Ok(Located::Memory(bytes)) => bytes.into_response(),
        Err(_) => not_found(&s),
    }
}

async fn serve_file(path: std::path::PathBuf, req: Request) -> Response {
    match ServeFile::new(path).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn not_found(s: &AppState) -> Response {
    s.http.not_found.fetch_add(1, Ordering::Relaxed);
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Prometheus text format.
async fn metrics(State(s): State<AppState>) -> String {
    render_metrics(&s.dhcp, &s.tftp, &s.http)
}

pub fn render_metrics(d: &DhcpStats, t: &TftpStats, h: &HttpStats) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    counter("swarmboot_dhcp_received_total", "DHCP datagrams received.", l(&d.received));
    counter("swarmboot_dhcp_offers_total", "DHCPOFFERs sent.", l(&d.offers));
    counter("swarmboot_dhcp_acks_total", "DHCPACKs sent.", l(&d.acks));
    counter("swarmboot_dhcp_naks_total", "DHCPNAKs sent.", l(&d.naks));
    counter("swarmboot_dhcp_send_errors_total", "Replies that could not be sent.", l(&d.send_errors));
    counter("swarmboot_dhcp_store_errors_total", "Failed lease database writes.", l(&d.store_errors));
    counter("swarmboot_dhcp_malformed_total", "Malformed datagrams dropped.", d.malformed());
    counter("swarmboot_tftp_requests_total", "TFTP read requests.", l(&t.requests));
    counter("swarmboot_tftp_completed_total", "TFTP transfers acknowledged to the end.", l(&t.completed));
    counter("swarmboot_tftp_client_errors_total", "TFTP transfers the client ended with ERROR.", l(&t.client_errors));
    counter("swarmboot_tftp_timeouts_total", "TFTP transfers given up after retries.", l(&t.timeouts));
    counter("swarmboot_tftp_refused_total", "TFTP requests refused (not found, outside the root, writes).", l(&t.refused));
    counter("swarmboot_tftp_malformed_total", "Malformed TFTP datagrams dropped.", l(&t.malformed));
    counter("swarmboot_tftp_bytes_total", "File bytes sent over TFTP.", l(&t.bytes_sent));
    counter("swarmboot_http_boot_scripts_total", "iPXE scripts served.", l(&h.scripts));
    counter("swarmboot_http_boot_scripts_without_image_total", "iPXE scripts that had no image to boot.", l(&h.scripts_without_image));
    counter("swarmboot_http_blobs_total", "Image file requests served.", l(&h.blobs));
    counter("swarmboot_http_not_found_total", "HTTP requests for files that do not exist.", l(&h.not_found));
    let _ = writeln!(out, "# HELP swarmboot_dhcp_dropped_total Datagrams not answered, by reason.\n# TYPE swarmboot_dhcp_dropped_total counter");
    for r in DropReason::ALL {
        let _ = writeln!(out, "swarmboot_dhcp_dropped_total{{reason=\"{}\"}} {}", r.as_str(), d.dropped(r));
    }
    out
}
