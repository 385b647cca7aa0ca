//! The HTTP listener (`[http] listen`): everything after iPXE. `/boot.ipxe` (the machine's
//! script), `/manifest/<name>[/<version>][?nonce=]` (a signed manifest envelope; with a nonce,
//! a signed freshness statement beside it), `/blob/<sha256>`
//! (image files, content-addressed), `/torrent/<sha256>.torrent`, `/pieces/<sha256>` (its
//! pieces' SHA-256, signed) and `/magnet/<sha256>` (the file's swarm), `/announce` and `/scrape` (the tracker), `/tftp/<name>` (the TFTP files, for
//! UEFI HTTP boot), `POST /api/v1/checkin` (elchOS nodes, [`crate::nodes`]), `POST
//! /api/v1/orders` (`swarmboot node command`, signed with the server's key), `/healthz`,
//! `/metrics`. Files are served with HEAD, Range and Content-Length.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use swarmboot_bootplan::{decide, render, Asker, SwarmServer};
use swarmboot_dhcp::DropReason;
use swarmboot_manifest::piece_hashes::{self, PieceHashes};
use swarmboot_swarm::locks::lock;
use swarmboot_tracker::PeerTable;
use swarmboot_urls::{routes, Urls};
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tracing::{info, warn};

use crate::dhcp_service::DhcpStats;
use crate::nodes::{CheckInFailure, Nodes, OrderFailure};
use crate::seeder::Seeder;
use crate::state::{AppState, HttpStats};
use crate::tftp_service::{Located, TftpStats};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route(routes::BOOT_SCRIPT, get(boot_script))
        .route(routes::MANIFEST_LATEST, get(manifest_latest))
        .route(routes::MANIFEST_VERSION, get(manifest_version))
        .route(routes::BLOB, get(blob))
        .route(routes::TORRENT, get(torrent))
        .route(routes::MAGNET, get(magnet))
        .route(routes::PIECE_SHA256, get(piece_sha256))
        .route(routes::ANNOUNCE, get(announce))
        .route(routes::SCRAPE, get(scrape))
        .route(routes::TFTP, get(tftp_file))
        .route(routes::CHECKIN, post(checkin).layer(axum::extract::DefaultBodyLimit::max(swarmboot_checkin::report::MAX_CHECKIN_LEN)))
        .route(routes::DONOR, post(donor).layer(axum::extract::DefaultBodyLimit::max(swarmboot_checkin::donation::MAX_DONOR_CHECKIN_LEN)))
        .route(routes::DATASET, get(dataset_manifest))
        .route(routes::ORDERS, post(order).layer(axum::extract::DefaultBodyLimit::max(swarmboot_checkin::order::MAX_ORDER_LEN)))
        .merge(crate::api::machine_routes())
        .merge(crate::namespace_http::machine_routes())
        .merge(
            crate::dashboard::pages()
                .merge(crate::api::read_routes())
                .merge(crate::namespace_http::read_routes())
                .merge(crate::files_page::routes())
                .merge(crate::webdav::routes())
                .layer(axum::middleware::from_fn_with_state(state.clone(), crate::dashboard::read_gate)),
        )
        .merge(crate::dashboard::open_pages())
        .layer(axum::middleware::from_fn_with_state(state.clone(), heard_from))
        .with_state(state)
}

/// Every request is a sign of life of the machine at its source address.
async fn heard_from(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request, next: axum::middleware::Next) -> Response {
    if let Some(ip) = crate::fleet::v4(peer.ip()) {
        if !ip.is_loopback() {
            s.fleet.observe(swarmboot_fleet::Seen::Request { ip });
        }
    }
    next.run(req).await
}

/// How the listener bounds its connections (`[http]`): the accept loop is `swarmboot_httpd`'s.
pub use swarmboot_httpd::ConnectionLimits;

/// Serves `app` on `listener` until `shutdown` changes (`swarmboot_httpd::serve`), counting
/// refused connections in `stats`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stats: Arc<HttpStats>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let on_refused = Arc::new(move || {
        stats.refused_connections.fetch_add(1, Ordering::Relaxed);
    });
    Ok(swarmboot_httpd::serve(listener, app, limits, on_refused, shutdown).await?)
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
async fn boot_script(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Query(q): Query<ScriptQuery>) -> Response {
    let asker = Asker { mac: q.mac, arch: q.arch, uuid: q.uuid };
    let boot = s.boot.read().expect("boot config lock").clone();
    let key = s.key.public().to_hex();
    let server = SwarmServer { base: &boot.base_url, key_hex: &key };
    let decision = decide(&boot.rules, &asker.mac, |name| s.catalog.latest(name).map_err(|e| e.to_string()), s.catalog.stub().map_err(|e| e.to_string()), server);
    if let Some(w) = &decision.warning {
        warn!(mac = %asker.mac, "{w}");
    }
    let plan = decision.plan;
    s.http.scripts.fetch_add(1, Ordering::Relaxed);
    if let (Ok(mac), Some(ip)) = (asker.mac.parse::<swarmboot_fleet::Mac>(), crate::fleet::v4(peer.ip())) {
        let image = plan.as_ref().ok().map(|p| (p.image.as_str(), p.version));
        s.fleet.observe(swarmboot_fleet::Seen::Script { mac, ip, arch: &asker.arch, image });
    }
    match &plan {
        Ok(p) => {
            info!(mac = %asker.mac, arch = %asker.arch, image = %p.image, version = p.version, "boot script")
        }
        Err(reason) => {
            s.http.scripts_without_image.fetch_add(1, Ordering::Relaxed);
            warn!(mac = %asker.mac, %reason, "boot script without an image");
        }
    }
    let script = render(plan.as_ref().map_err(|e| e.0.as_str()), &asker, &boot.base_url);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], script).into_response()
}

async fn blob(State(s): State<AppState>, Path(sha256): Path<String>, req: Request) -> Response {
    match s.catalog.store().path_of(&sha256) {
        Some(path) if path.is_file() => {
            s.http.blobs.fetch_add(1, Ordering::Relaxed);
            let is_head = req.method() == axum::http::Method::HEAD;
            let r = serve_file(path, req).await;
            if !is_head && r.status().is_success() {
                let len = r.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                s.http.blob_bytes.fetch_add(len, Ordering::Relaxed);
            }
            r
        }
        _ => not_found(&s),
    }
}

/// A manifest request's query: the client's nonce, when it asks for a freshness statement.
#[derive(Debug, Deserialize, Default)]
struct ManifestQuery {
    nonce: Option<String>,
}

async fn manifest_latest(State(s): State<AppState>, Path(name): Path<String>, Query(q): Query<ManifestQuery>) -> Response {
    match s.catalog.latest(&name) {
        Ok(Some(m)) => signed_manifest(&s, &name, m.version, q.nonce.as_deref()),
        Ok(None) => not_found(&s),
        Err(e) => manifest_error(&s, e),
    }
}

async fn manifest_version(State(s): State<AppState>, Path((name, version)): Path<(String, String)>, Query(q): Query<ManifestQuery>) -> Response {
    match version.parse::<u32>() {
        Ok(v) => signed_manifest(&s, &name, v, q.nonce.as_deref()),
        Err(_) => not_found(&s),
    }
}

/// A signed manifest envelope (see `swarmboot_manifest::envelope`); with a `nonce`, vouched
/// for in a freshness statement (`swarmboot_manifest::freshness`): this version, and the
/// latest one now.
fn signed_manifest(s: &AppState, name: &str, version: u32, nonce: Option<&str>) -> Response {
    use swarmboot_manifest::freshness::{self, Freshness, Nonce};
    let nonce = match nonce.map(Nonce::from_hex) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return (StatusCode::BAD_REQUEST, "nonce= must be 32 hex digits\n").into_response(),
    };
    let latest = match nonce.map(|_| s.catalog.latest(name)).transpose() {
        Ok(latest) => latest.flatten().map(|m| m.version),
        Err(e) => return manifest_error(s, e),
    };
    match s.catalog.signed(name, version, &s.key) {
        Ok(Some((_, envelope))) => {
            s.http.manifests.fetch_add(1, Ordering::Relaxed);
            if let Some(seeder) = &s.seeder {
                seeder.wake();
            }
            let statement = nonce.map(|nonce| {
                let f = Freshness {
                    nonce,
                    image: name.to_string(),
                    served: version,
                    // A version added since `latest` was read: the served one is the latest.
                    latest: latest.unwrap_or(version).max(version),
                    manifest_sha256: freshness::envelope_sha256(&envelope),
                };
                freshness::vouch(&s.key, &f)
            });
            let mut r = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], envelope).into_response();
            if let Some(value) = statement.and_then(|v| v.parse().ok()) {
                r.headers_mut().insert(freshness::HEADER, value);
            }
            r
        }
        Ok(None) => not_found(s),
        Err(e) => manifest_error(s, e),
    }
}

fn manifest_error(s: &AppState, e: swarmboot_image::CatalogError) -> Response {
    use swarmboot_image::CatalogError;
    match e {
        CatalogError::BadName(_) | CatalogError::NoSuchImage(_) | CatalogError::NoSuchVersion { .. } => not_found(s),
        e => {
            warn!(error = %e, "manifest not served");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

/// `/torrent/<sha256>.torrent`: the store's torrent of that file with this server's tracker
/// as `announce`. The stored torrent is `d4:info…e`; `8:announce` sorts before `4:info`, so
/// it goes right after the opening `d` and the `info` bytes (the info hash) stay untouched.
async fn torrent(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(sha256) = name.strip_suffix(".torrent") else {
        return not_found(&s);
    };
    let stored = match s.catalog.store().torrent(sha256) {
        Ok(Some((_, bytes))) if bytes.starts_with(b"d4:info") => bytes,
        Ok(_) => return not_found(&s),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let announce = Urls::new(&s.boot.read().expect("boot config lock").base_url).announce();
    let mut out = Vec::with_capacity(stored.len() + announce.len() + 16);
    out.extend_from_slice(format!("d8:announce{}:{announce}", announce.len()).as_bytes());
    out.extend_from_slice(&stored[1..]);
    ([(header::CONTENT_TYPE, "application/x-bittorrent")], out).into_response()
}

/// `/pieces/<sha256>`: the SHA-256 of each piece of that file's torrent, signed with the
/// server's key (`swarmboot_manifest::piece_hashes`). 404 while the store has no list for it
/// (the seeder makes one for every file it serves; clients then check the whole file).
async fn piece_sha256(State(s): State<AppState>, Path(sha256): Path<String>) -> Response {
    if let Some(bytes) = lock(&s.piece_sha256).get(&sha256) {
        return piece_sha256_reply(bytes.clone());
    }
    let store = s.catalog.store().clone();
    let name = sha256.clone();
    let found = tokio::task::spawn_blocking(move || -> std::io::Result<_> { Ok(store.torrent(&name)?.zip(store.piece_sha256(&name)?)) }).await;
    let ((meta, _), hashes) = match found {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return not_found(&s),
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let mut file_sha256 = [0u8; 32];
    if hex::decode_to_slice(&sha256, &mut file_sha256).is_err() {
        return not_found(&s);
    }
    let statement = PieceHashes { file_sha256, info_hash: meta.info_hash, piece_length: meta.piece_length, hashes };
    let bytes = axum::body::Bytes::from(piece_hashes::seal(&s.key, &statement));
    let mut cache = lock(&s.piece_sha256);
    // Bounded by the files the store holds; cleared when it outgrows what a catalog serves.
    if cache.len() >= 4096 {
        cache.clear();
    }
    cache.insert(sha256, bytes.clone());
    piece_sha256_reply(bytes)
}

fn piece_sha256_reply(bytes: axum::body::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// `/magnet/<sha256>`: a magnet link for the file's torrent, as text: the info hash, the
/// name, the size, this server's tracker and (`xs`, BEP 9's exact source) the `.torrent` URL,
/// so a client can get the metadata without a peer that has it.
async fn magnet(State(s): State<AppState>, Path(sha256): Path<String>) -> Response {
    let meta = match s.catalog.store().torrent(&sha256) {
        Ok(Some((m, _))) => m,
        Ok(None) => return not_found(&s),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let urls = Urls::new(&s.boot.read().expect("boot config lock").base_url);
    let enc = |u: &str| swarmboot_urls::escape(u.as_bytes());
    let link = format!(
        "magnet:?xt=urn:btih:{}&dn={}&xl={}&tr={}&xs={}\n",
        hex::encode(meta.info_hash),
        meta.name,
        meta.total_length(),
        enc(&urls.announce()),
        enc(&urls.torrent(&sha256))
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], link).into_response()
}

/// The address a tracker request came from, as IPv4 (the swarm is IPv4 only).
fn source_v4(peer: SocketAddr) -> Option<std::net::Ipv4Addr> {
    match peer.ip() {
        std::net::IpAddr::V4(a) => Some(a),
        std::net::IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

/// `/announce`: the raw query bytes go to the tracker core (axum's `Query` would mangle the
/// binary `info_hash` and `peer_id`).
async fn announce(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    let Some(tracker) = &s.tracker else {
        return not_found(&s);
    };
    s.http.announces.fetch_add(1, Ordering::Relaxed);
    let body = match source_v4(peer) {
        Some(ip) => {
            let query = req.uri().query().unwrap_or("").as_bytes();
            swarmboot_tracker::handle_announce(&mut lock(tracker), query, ip, std::time::Instant::now())
        }
        None => swarmboot_tracker::reply::failure("this tracker serves IPv4 peers only"),
    };
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn scrape(State(s): State<AppState>, req: Request) -> Response {
    let Some(tracker) = &s.tracker else {
        return not_found(&s);
    };
    let query = req.uri().query().unwrap_or("").as_bytes();
    let body = swarmboot_tracker::handle_scrape(&lock(tracker), query);
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn tftp_file(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Path(name): Path<String>, req: Request) -> Response {
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
    let swarm = SwarmCounters::read(s.seeder.as_deref(), s.tracker.as_deref());
    render_metrics(&MetricSources { dhcp: &s.dhcp, tftp: &s.tftp, http: &s.http, swarm: &swarm, nodes: &s.nodes, machines: &s.fleet, index: &s.namespace.stats, donors: &s.donors })
}

/// A donor's check-in: the signed answer as JSON; 400 for one that cannot be read or is not
/// signed by the key it names, 409 for a replay, 503 when the donor table is full.
async fn donor(State(s): State<AppState>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    use crate::donors::DonorFailure;
    let signature = headers.get(swarmboot_checkin::donation::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let donors = s.donors.clone();
    let answer = tokio::task::spawn_blocking(move || donors.check_in(&body, signature.as_deref(), crate::fleet::now_ms())).await;
    match answer {
        Ok(Ok(reply)) => axum::Json(reply).into_response(),
        Ok(Err(e)) => {
            let code = match &e {
                DonorFailure::Unreadable(_) => StatusCode::BAD_REQUEST,
                DonorFailure::Replayed { .. } => StatusCode::CONFLICT,
                DonorFailure::Refused(swarmboot_placement::Refusal::Full) => StatusCode::SERVICE_UNAVAILABLE,
                DonorFailure::Refused(_) => StatusCode::BAD_REQUEST,
            };
            (code, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// A dataset's signed manifest (what donors fetch its files by).
async fn dataset_manifest(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.donors.manifest(&name) {
        Ok(Some(envelope)) => ([(header::CONTENT_TYPE, "application/octet-stream")], envelope).into_response(),
        Ok(None) => not_found(&s),
        Err(swarmboot_image::CatalogError::BadName(_)) => not_found(&s),
        Err(e) => manifest_error(&s, e),
    }
}

/// A node's check-in: its reply (interval, commands) as JSON; 400 for a check-in that cannot
/// be read or is not signed by the key it names, 409 when the registry refuses it (another
/// live node's MAC, a replay), 503 when the registry is full.
async fn checkin(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    let signature = headers.get(swarmboot_checkin::report::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (nodes, fleet) = (s.nodes.clone(), s.fleet.clone());
    let now = crate::fleet::now_ms() / 1000;
    let done = tokio::task::spawn_blocking(move || {
        // The registry checks the MAC reads as one; a MAC the fleet cannot read binds nothing.
        let admit = |mac: &str| mac.parse().map_or(Ok(()), |mac| fleet.check_source(peer.ip(), mac));
        let taken = nodes.check_in(&body, signature.as_deref(), now, admit);
        if let Ok((_, c)) = &taken {
            if let Ok(mac) = c.mac.parse() {
                fleet.checked_in(peer.ip(), mac, &c.image, c.uploaded, c.leaving);
            }
        }
        taken
    })
    .await;
    let failure = match done {
        Ok(Ok((reply, _))) => return axum::Json(reply).into_response(),
        Ok(Err(f)) => f,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "check-in task failed\n").into_response(),
    };
    let status = match &failure {
        CheckInFailure::Bad(_) => StatusCode::BAD_REQUEST,
        CheckInFailure::Refused(swarmboot_checkin::registry::Refused::Full(_)) => StatusCode::SERVICE_UNAVAILABLE,
        CheckInFailure::Refused(_) => StatusCode::CONFLICT,
        CheckInFailure::NotItsAddress(_) => StatusCode::FORBIDDEN,
        CheckInFailure::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    warn!(%status, error = %failure, "check-in refused");
    (status, format!("{failure}\n")).into_response()
}

/// An operator's order (`swarmboot node command`, signed with this server's key): the queued
/// commands as JSON; 403 unsigned, 400 stale or repeated, 404 no such node, 409 a lost node or
/// too many waiting.
async fn order(State(s): State<AppState>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    use swarmboot_checkin::order::OrderError;
    use swarmboot_checkin::registry::CommandError;
    let signature = headers.get(swarmboot_checkin::order::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (nodes, key, now) = (s.nodes.clone(), s.key.clone(), crate::fleet::now_ms() / 1000);
    let done = tokio::task::spawn_blocking(move || nodes.order(&body, signature.as_deref(), &key, now)).await;
    let failure = match done {
        Ok(Ok(queued)) => {
            info!(commands = ?queued.commands, "order queued");
            return axum::Json(queued).into_response();
        }
        Ok(Err(f)) => f,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "order task failed\n").into_response(),
    };
    let status = match &failure {
        OrderFailure::Bad(OrderError::NotSigned) => StatusCode::FORBIDDEN,
        OrderFailure::Bad(_) => StatusCode::BAD_REQUEST,
        OrderFailure::Command(CommandError::NoSuchNode(_)) => StatusCode::NOT_FOUND,
        OrderFailure::Command(_) => StatusCode::CONFLICT,
        OrderFailure::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    warn!(%status, error = %failure, "order refused");
    (status, format!("{failure}\n")).into_response()
}

/// The swarm's counters at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct SwarmCounters {
    pub seed_uploaded: u64,
    pub seeded_files: usize,
    pub files_hashed: u64,
    pub peers_uploaded: u64,
    pub peers_downloaded: u64,
}

impl SwarmCounters {
    pub fn read(seeder: Option<&Seeder>, tracker: Option<&Mutex<PeerTable>>) -> Self {
        let reported = tracker.map(|t| lock(t).reported()).unwrap_or_default();
        SwarmCounters {
            seed_uploaded: seeder.map_or(0, Seeder::uploaded),
            seeded_files: seeder.map_or(0, Seeder::files),
            files_hashed: seeder.map_or(0, |s| s.files_hashed.load(Ordering::Relaxed)),
            peers_uploaded: reported.uploaded,
            peers_downloaded: reported.downloaded,
        }
    }
}

/// Everything `/metrics` reports on.
pub struct MetricSources<'a> {
    pub dhcp: &'a DhcpStats,
    pub tftp: &'a TftpStats,
    pub http: &'a HttpStats,
    pub swarm: &'a SwarmCounters,
    pub nodes: &'a Nodes,
    pub machines: &'a crate::fleet::FleetState,
    pub index: &'a crate::namespace::IndexStats,
    pub donors: &'a crate::donors::Donors,
}

/// The counters and gauges in Prometheus text format; the nodes' gauges as of now.
pub fn render_metrics(m: &MetricSources) -> String {
    let MetricSources { dhcp: d, tftp: t, http: h, swarm: w, nodes: n, machines, index: ix, donors } = *m;
    let fleet = n.summary(crate::fleet::now_ms() / 1000);
    let (by_stage, fc) = machines.read(|f, _| (f.by_stage(), f.counters()));
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
    counter("swarmboot_tftp_busy_total", "TFTP requests refused because too many transfers ran (tftp.max_transfers, per client too).", l(&t.busy));
    counter("swarmboot_http_boot_scripts_total", "iPXE scripts served.", l(&h.scripts));
    counter("swarmboot_http_boot_scripts_without_image_total", "iPXE scripts that had no image to boot.", l(&h.scripts_without_image));
    counter("swarmboot_http_blobs_total", "Image file requests served.", l(&h.blobs));
    counter("swarmboot_http_blob_bytes_total", "Image file bytes sent over HTTP.", l(&h.blob_bytes));
    counter("swarmboot_http_manifests_total", "Signed manifests served.", l(&h.manifests));
    counter("swarmboot_http_not_found_total", "HTTP requests for files that do not exist.", l(&h.not_found));
    counter("swarmboot_http_refused_connections_total", "HTTP connections closed at once: too many open (http.max_connections, per client too).", l(&h.refused_connections));
    counter("swarmboot_tracker_announces_total", "Tracker announces received.", l(&h.announces));
    counter("swarmboot_seed_uploaded_bytes_total", "Payload bytes the server's seed uploaded to peers.", w.seed_uploaded);
    counter("swarmboot_seed_hashed_files_total", "Files hashed before seeding since start (a verified store hashes none).", w.files_hashed);
    counter("swarmboot_peers_uploaded_bytes_total", "Payload bytes machines reported uploading (to each other and to the server), from their announces.", w.peers_uploaded);
    counter("swarmboot_peers_downloaded_bytes_total", "Payload bytes machines reported downloading through the swarm, from their announces.", w.peers_downloaded);
    counter("swarmboot_fleet_reports_total", "Stage reports machines sent (the stub, seeders, booted systems).", fc.reports);
    counter("swarmboot_fleet_reports_refused_total", "Stage reports refused: not from the address leased to that MAC, or from one leased to another.", fc.reports_refused);
    counter("swarmboot_index_batches_total", "Index batches from nodes decided (taken, or answered with the batch expected).", l(&ix.batches));
    counter("swarmboot_index_batches_refused_total", "Index batches refused: unreadable, forged, not from the node's live key or address, over the bound.", l(&ix.refused));
    counter("swarmboot_index_entries_changed_total", "Entries added, changed or removed by the index batches taken.", l(&ix.entries_changed));
    counter("swarmboot_index_searches_total", "Searches of the fleet's files.", l(&ix.searches));
    let ds = &donors.stats;
    counter("swarmboot_donor_checkins_total", "Donor check-ins answered.", l(&ds.checkins));
    counter("swarmboot_donor_checkins_bad_total", "Donor check-ins that could not be read or were not signed by the key they name.", l(&ds.bad));
    counter("swarmboot_donor_checkins_refused_total", "Donor check-ins refused: replayed, or over the donor table's bounds.", l(&ds.refused));
    counter("swarmboot_donor_holdings_unvouched_total", "Holdings donors showed without a valid ticket (kept, not counted as replicas).", l(&ds.unvouched));
    counter("swarmboot_fleet_full_total", "Machines not recorded because the fleet table was full of machines not lost.", fc.full);
    counter("swarmboot_node_checkins_total", "elchOS node check-ins taken.", l(&n.stats.checkins));
    counter("swarmboot_node_checkins_bad_total", "Check-ins that could not be read or were not signed by the key they name.", l(&n.stats.bad_checkins));
    counter("swarmboot_node_checkins_refused_total", "Check-ins the registry refused (another live node's MAC, replayed, full).", l(&n.stats.refused_checkins));
    let _ = writeln!(out, "# HELP swarmboot_nodes elchOS nodes the registry knows, live or lost.\n# TYPE swarmboot_nodes gauge");
    let _ = writeln!(out, "swarmboot_nodes{{state=\"live\"}} {}\nswarmboot_nodes{{state=\"lost\"}} {}", fleet.live, fleet.lost);
    let _ = writeln!(
        out,
        "# HELP swarmboot_nodes_served_bytes Bytes the nodes served from their disks, by protocol, as their last check-ins say.\n# TYPE swarmboot_nodes_served_bytes gauge"
    );
    for (protocol, bytes) in &fleet.served {
        let protocol: String = protocol.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let _ = writeln!(out, "swarmboot_nodes_served_bytes{{protocol=\"{protocol}\"}} {bytes}");
    }
    let _ = writeln!(out, "# HELP swarmboot_fleet_machines Machines the server knows, by the stage of their boot.\n# TYPE swarmboot_fleet_machines gauge");
    for (stage, count) in by_stage {
        let _ = writeln!(out, "swarmboot_fleet_machines{{stage=\"{}\"}} {count}", stage.as_str());
    }
    let _ = writeln!(out, "# HELP swarmboot_seed_files Files served through the swarm.\n# TYPE swarmboot_seed_files gauge\nswarmboot_seed_files {}", w.seeded_files);
    let _ = writeln!(out, "# HELP swarmboot_dhcp_dropped_total Datagrams not answered, by reason.\n# TYPE swarmboot_dhcp_dropped_total counter");
    for r in DropReason::ALL {
        let _ = writeln!(out, "swarmboot_dhcp_dropped_total{{reason=\"{}\"}} {}", r.as_str(), d.dropped(r));
    }
    out
}
