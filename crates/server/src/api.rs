//! The fleet's JSON API under `/api/v1/`: `POST report` (the stub's and seeders' stage
//! reports), `fleet` (the table, filtered and sorted), `machines/MAC` (one machine's boots and
//! what its agent says), `events` (stage changes after an id). Reading is open on the boot
//! network unless `[http] dashboard` says otherwise (see `crate::admin`); the shapes are
//! `swarmboot_fleet::view`'s.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use swarmboot_fleet::{FleetView, Mac, MachineView, Refused, Selection, SortKey, Stage};
use swarmboot_urls::routes;
use tracing::info;

use crate::fleet::ReportFailure;
use crate::state::AppState;

/// What machines send: open to the boot network whatever `[http] dashboard` says.
pub fn machine_routes() -> Router<AppState> {
    Router::new().route(routes::REPORT, post(report).layer(axum::extract::DefaultBodyLimit::max(swarmboot_fleet::report::MAX_REPORT_LEN)))
}

/// What the dashboard's readers read (behind `crate::dashboard::read_gate`).
pub fn read_routes() -> Router<AppState> {
    Router::new()
        .route(routes::FLEET, get(fleet))
        .route(routes::MACHINE, get(machine))
        .route(routes::EVENTS, get(events))
        .route(routes::IMAGES, get(images))
        .route(routes::LEASES, get(leases))
        .route(routes::SERVER, get(server))
        .route(routes::SWARMS, get(swarms))
        .route(routes::DATASETS, get(datasets))
        .route(routes::ASSIGNMENTS, get(assignments))
        .route(routes::ASSIGN, post(assign).layer(axum::extract::DefaultBodyLimit::max(4096)))
        .route(routes::OPENAPI, get(openapi))
}

/// A stage report: the next interval as JSON; 400 unreadable, 403 not from the machine's
/// address, 503 the fleet table is full.
async fn report(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: axum::body::Bytes) -> Response {
    match s.fleet.report(peer.ip(), &body) {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => {
            let status = match &e {
                ReportFailure::Bad(_) | ReportFailure::NotIpv4(_) => StatusCode::BAD_REQUEST,
                ReportFailure::Refused(Refused::Full(_)) => StatusCode::SERVICE_UNAVAILABLE,
                ReportFailure::Refused(_) => StatusCode::FORBIDDEN,
            };
            info!(%peer, %status, error = %e, "stage report refused");
            (status, format!("{e}\n")).into_response()
        }
    }
}

/// `/api/v1/fleet`'s query: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    pub stage: Option<String>,
    pub image: Option<String>,
    pub q: Option<String>,
    pub stuck: Option<String>,
    pub sort: Option<String>,
    pub desc: Option<String>,
    pub limit: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "yes" | "on"))
}

impl FleetQuery {
    /// The selection it asks for, or what is wrong with it (the parameter named).
    pub fn selection(&self) -> Result<Selection, String> {
        let stage = match self.stage.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(Stage::parse(s).ok_or_else(|| format!("stage={s:?}: one of {}", Stage::ALL.map(Stage::as_str).join(", ")))?),
        };
        let sort = match self.sort.as_deref().filter(|s| !s.is_empty()) {
            None => SortKey::default(),
            Some(s) => SortKey::parse(s).ok_or_else(|| format!("sort={s:?}: one of {}", SortKey::NAMES.join(", ")))?,
        };
        let limit = match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(l) => Some(l.parse::<usize>().map_err(|_| format!("limit={l:?}: a number of machines"))?),
        };
        let text = self.q.as_deref().filter(|q| !q.trim().is_empty()).map(|q| q.chars().take(200).collect());
        Ok(Selection { stage, image: self.image.clone().filter(|i| !i.is_empty()), text, stuck_only: flag(&self.stuck), sort, descending: flag(&self.desc), limit })
    }
}

async fn fleet(State(s): State<AppState>, Query(q): Query<FleetQuery>) -> Response {
    match q.selection() {
        Ok(sel) => Json(s.fleet.read(|f, now| FleetView::of(f, now, &sel))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// One machine, with what its agent last said; 404 for a machine the server has not seen.
pub fn machine_view(s: &AppState, mac: &str) -> Result<MachineView, (StatusCode, String)> {
    let mac: Mac = mac.parse().map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")))?;
    let view = s.fleet.read(|f, now| f.get(&mac).map(|m| MachineView::of(m, now, f)));
    let mut view = view.ok_or_else(|| (StatusCode::NOT_FOUND, format!("no machine {mac} has been seen since the server started\n")))?;
    view.node = s.nodes.view(&mac.to_string(), crate::fleet::now_ms() / 1000);
    Ok(view)
}

async fn machine(State(s): State<AppState>, Path(mac): Path<String>) -> Response {
    match machine_view(&s, &mac) {
        Ok(mut v) => {
            v.swarms = serde_json::to_value(crate::swarms::machine_swarms(&s, &v.addresses)).ok();
            Json(v).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Stage changes after `after` (oldest first, at most `limit`, 1000 by default), and the
/// newest id to ask after next.
async fn events(State(s): State<AppState>, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.unwrap_or(1000).min(5000);
    let body = s.fleet.read(|f, _| {
        let events: Vec<_> = f.events_after(q.after.unwrap_or(0), limit).cloned().collect();
        serde_json::json!({ "last_event": f.last_event(), "events": events })
    });
    Json(body).into_response()
}

/// One file of an image version and its swarm, as the tracker counts it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileView {
    pub role: String,
    pub size: u64,
    pub sha256: String,
    /// Machines with the whole file (the server's seed included), and fetching it now.
    pub seeds: u32,
    pub fetching: u32,
    /// Downloads the tracker saw complete since the server started.
    pub completed: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionView {
    pub version: u32,
    pub created: u64,
    pub size: u64,
    pub cmdline: String,
    pub files: Vec<FileView>,
    /// Machines running this version, and booting it (any stage before running).
    pub running: usize,
    pub booting: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageView {
    pub name: String,
    pub latest: u32,
    /// Newest first.
    pub versions: Vec<VersionView>,
}

/// Every image in the catalog, its versions and who runs or seeds each.
pub fn images_view(s: &AppState) -> Result<Vec<ImageView>, String> {
    let manifests = s.catalog.all().map_err(|e| e.to_string())?;
    // (image@version) → (running, booting), from the fleet.
    let counts: std::collections::HashMap<String, (usize, usize)> = s.fleet.read(|f, _| {
        let mut c = std::collections::HashMap::new();
        for m in f.machines() {
            if let Some(image) = m.image() {
                let e: &mut (usize, usize) = c.entry(image.to_string()).or_default();
                match m.stage {
                    Stage::Running => e.0 += 1,
                    Stage::Lost => {}
                    _ => e.1 += 1,
                }
            }
        }
        c
    });
    let tracker = s.tracker.as_ref().map(|t| swarmboot_swarm::locks::lock(t));
    let mut out: Vec<ImageView> = Vec::new();
    for m in manifests {
        let (running, booting) = counts.get(&format!("{}@{}", m.name, m.version)).copied().unwrap_or_default();
        let files = m
            .files
            .iter()
            .map(|f| {
                let scrape =
                    f.info_hash.as_deref().and_then(|h| hex::decode(h).ok()).and_then(|h| <[u8; 20]>::try_from(h).ok()).and_then(|h| tracker.as_ref().and_then(|t| t.scrape(&h)));
                FileView {
                    role: f.role.as_str().to_string(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                    seeds: scrape.map_or(0, |e| e.complete),
                    fetching: scrape.map_or(0, |e| e.incomplete),
                    completed: scrape.map_or(0, |e| e.downloaded),
                }
            })
            .collect::<Vec<_>>();
        let v = VersionView { version: m.version, created: m.created, size: m.files.iter().map(|f| f.size).sum(), cmdline: m.cmdline.clone(), files, running, booting };
        match out.iter_mut().find(|i| i.name == m.name) {
            Some(i) => {
                i.latest = i.latest.max(m.version);
                i.versions.push(v);
            }
            None => out.push(ImageView { name: m.name.clone(), latest: m.version, versions: vec![v] }),
        }
    }
    for i in &mut out {
        i.versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn images(State(s): State<AppState>) -> Response {
    let done = tokio::task::spawn_blocking(move || images_view(&s)).await;
    match done {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the catalog: {e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "images task failed\n").into_response(),
    }
}

/// Every dataset: its files, size, the replicas it should have and the donors that hold it.
async fn datasets(State(s): State<AppState>) -> Response {
    let donors = s.donors.clone();
    match tokio::task::spawn_blocking(move || donors.view(crate::fleet::now_ms())).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "datasets task failed\n").into_response(),
    }
}

/// An active lease, as `/api/v1/leases` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseView {
    pub ip: String,
    pub mac: String,
    pub hostname: Option<String>,
    pub expires_in_ms: u64,
}

/// The leases our DHCP holds bound now (from the lease database), by address.
pub fn leases_view(s: &AppState, now_ms: u64) -> Result<Vec<LeaseView>, String> {
    if s.facts.dhcp == "off" {
        return Ok(Vec::new());
    }
    let store = crate::lease_store::LeaseStore::open_read_only(&s.facts.state_dir).map_err(|e| format!("the lease database: {e}"))?;
    let mut leases: Vec<_> = store
        .load()
        .map_err(|e| format!("the lease database: {e}"))?
        .into_iter()
        .filter(|l| l.state == swarmboot_dhcp::LeaseState::Bound && l.expires.saturating_mul(1000) > now_ms)
        .collect();
    leases.sort_by_key(|l| l.ip);
    Ok(leases
        .into_iter()
        .map(|l| LeaseView { ip: l.ip.to_string(), mac: l.hwaddr.to_string(), hostname: l.hostname.clone(), expires_in_ms: l.expires.saturating_mul(1000).saturating_sub(now_ms) })
        .collect())
}

async fn leases(State(s): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || leases_view(&s, crate::fleet::now_ms())).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "leases task failed\n").into_response(),
    }
}

/// `/api/v1/server`: what the server page shows: facts, problems, the last hour's samples.
async fn server(State(s): State<AppState>) -> Response {
    let done = tokio::task::spawn_blocking(move || {
        let f = &s.facts;
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "started_ms": f.started_ms,
            "interface": f.interface,
            "address": f.address,
            "dhcp": f.dhcp,
            "base_url": s.boot.read().expect("boot config lock").base_url,
            "stub": s.catalog.stub().ok().flatten().map(|st| serde_json::json!({ "release": st.release, "initrd_size": st.initrd_size, "built": st.built })),
            "problems": problems(&s),
            "sample_every_secs": crate::history::EVERY.as_secs(),
            "samples": s.history.samples(),
        })
    })
    .await;
    match done {
        Ok(v) => Json(v).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server task failed\n").into_response(),
    }
}

/// `/api/v1/swarms`: each image's swarms, per file and summed, with the last hour's bytes.
async fn swarms(State(s): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || crate::swarms::swarms_view(&s)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the catalog: {e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "swarms task failed\n").into_response(),
    }
}

/// `/api/v1/assignments`: who boots what (the config's `[boot]` with the assignments over it).
async fn assignments(State(s): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || crate::assign::assignments_view(&s)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "assignments task failed\n").into_response(),
    }
}

/// `POST /api/v1/assign`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    /// `default`, a group, or a MAC.
    target: String,
    /// The image; absent with `unset`.
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    unset: bool,
}

/// Assigns an image as `swarmboot assign` does: the admin token (bearer), or the server itself.
async fn assign(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    let a = crate::admin::asker(&s.admin, &headers, peer);
    if let Err(refused) = crate::admin::may_act(&a) {
        tracing::warn!(%peer, "assignment refused: {refused}");
        return (StatusCode::FORBIDDEN, format!("{refused}\n")).into_response();
    }
    let body: AssignBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("the body is {{\"target\": \"default|GROUP|MAC\", \"image\": \"NAME\"}} or {{\"target\": …, \"unset\": true}}: {e}\n"))
                .into_response()
        }
    };
    let image = match (body.image, body.unset) {
        (Some(i), false) => Some(i),
        (None, true) => None,
        _ => return (StatusCode::BAD_REQUEST, "give either \"image\" or \"unset\": true\n").into_response(),
    };
    let target = swarmboot_config::Target::parse(&body.target);
    let done = tokio::task::spawn_blocking(move || crate::assign::assign(&s, &target, image.as_deref())).await;
    match done {
        Ok(Ok(said)) => {
            info!(%peer, %said, "assigned through the API");
            Json(serde_json::json!({ "said": said })).into_response()
        }
        Ok(Err(e)) => {
            let status = if e.is_request_error() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
            (status, format!("{e}\n")).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "assign task failed\n").into_response(),
    }
}

/// What needs the operator's attention, in words that say what to do.
pub fn problems(s: &AppState) -> Vec<String> {
    let mut out = Vec::new();
    match s.catalog.stub() {
        Ok(None) => out.push("No stub is built: machines boot their images directly over HTTP, not from the swarm. Run `swarmboot stub build`.".to_string()),
        Err(e) => out.push(format!("The stub record cannot be read: {e}")),
        Ok(Some(_)) => {}
    }
    let rules = s.boot.read().expect("boot config lock").rules.clone();
    let mut wanted: Vec<&str> = rules.clients.iter().map(|r| r.image.as_str()).chain(rules.default_image.as_deref()).collect();
    wanted.sort();
    wanted.dedup();
    for name in wanted {
        if let Ok(None) = s.catalog.latest(name) {
            out.push(format!("The config boots image {name:?}, which the catalog does not have: machines get a script that waits. Add it (`swarmboot image add {name} …` or `swarmboot image build elchos`) or assign another (`swarmboot assign`, the images page) or change [boot]."));
        }
    }
    if rules.default_image.is_none() {
        out.push("No [boot] default_image: machines no rule names get no image.".into());
    }
    if let Ok(broken) = s.catalog.broken_manifests() {
        for b in broken {
            out.push(format!("A manifest cannot be read and is not served: {} ({})", b.path.display(), b.why));
        }
    }
    let fc = s.fleet.read(|f, _| f.counters());
    if fc.full > 0 {
        out.push(format!("The fleet table was full {} time(s): machines were not recorded (20000 at most, lost ones make room).", fc.full));
    }
    if fc.reports_refused > 0 {
        out.push(format!("{} stage report(s) were refused: not from an address our DHCP leased to that MAC (the log names them).", fc.reports_refused));
    }
    out
}

/// The API's description (`/api/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("../assets/openapi.json");

/// The API's description (OpenAPI 3).
async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI file and the router agree: every route under the API (and the dashboard's
    /// actions) is described, and nothing else is.
    #[test]
    fn the_openapi_file_describes_every_api_route_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        let described: std::collections::BTreeSet<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
        // (axum writes a path that takes the rest as `{*path}`, OpenAPI as `{path}`.)
        let served: std::collections::BTreeSet<String> = [
            routes::FLEET,
            routes::MACHINE,
            routes::EVENTS,
            routes::IMAGES,
            routes::LEASES,
            routes::SERVER,
            routes::REPORT,
            routes::CHECKIN,
            routes::DONOR,
            routes::ORDERS,
            routes::MACHINE_COMMAND,
            routes::SWARMS,
            routes::DATASETS,
            routes::INDEX,
            routes::TREE_ROOT,
            routes::TREE,
            routes::SEARCH,
            routes::ASSIGNMENTS,
            routes::ASSIGN,
            routes::IMAGES_ASSIGN,
        ]
        .into_iter()
        .map(|r| r.replace("{*", "{"))
        .collect();
        assert_eq!(described, served);
        let q = FleetQuery { stage: Some("running".into()), sort: Some("last_seen".into()), desc: Some("1".into()), limit: Some("5".into()), ..Default::default() };
        let sel = q.selection().unwrap();
        assert_eq!((sel.stage, sel.sort, sel.descending, sel.limit), (Some(Stage::Running), SortKey::LastSeen, true, Some(5)));
        for (bad, named) in [(FleetQuery { stage: Some("up".into()), ..Default::default() }, "stage="), (FleetQuery { limit: Some("-1".into()), ..Default::default() }, "limit=")] {
            assert!(bad.selection().unwrap_err().starts_with(named));
        }
    }
}
