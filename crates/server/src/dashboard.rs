//! The dashboard (`http://SERVER:PORT/`): server-rendered pages over the same views as
//! `/api/v1/` — the fleet table (`/`, filtered and sorted by its query, as the API's), a
//! machine's page (`/machines/MAC`), the images and server pages, signing in, and the read
//! gate (`[http] dashboard`) the router puts before every page and the read API. The frame,
//! the assets and the security headers are `crate::pages`'. The script keeps a page live
//! without a reload: every 2 s it asks for the page's `fragment=1` (the same HTML the page was
//! rendered with) and swaps it in, keeping the focused element. Everything a machine reports
//! is escaped here, and a Content-Security-Policy allows no inline script, so a hostname or
//! file name stays text.

use std::fmt::Write;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use swarmboot_checkin::registry::Node;
use swarmboot_fleet::{BootView, FleetView, MachineView, Row, SortKey, Stage};
use swarmboot_httpd::html::escape;
use swarmboot_urls::routes;

use crate::admin::{self, DashboardAccess};
use crate::api::FleetQuery;
use crate::pages::{bytes, clock, duration, html, page};
use crate::state::AppState;

/// The dashboard's own pages and actions (the router puts them behind [`read_gate`] with the
/// read API, the files pages and WebDAV).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route(routes::DASHBOARD, get(fleet_page))
        .route(routes::MACHINE_PAGE, get(machine_page))
        .route(routes::IMAGES_PAGE, get(images_page))
        .route(routes::SERVER_PAGE, get(server_page))
        .route(routes::MACHINE_COMMAND, axum::routing::post(machine_command))
        .route(routes::IMAGES_ASSIGN, axum::routing::post(images_assign))
}

/// What anyone may ask for, whatever `[http] dashboard` says: signing in and out, the assets.
pub fn open_pages() -> Router<AppState> {
    Router::new().route(routes::LOGIN, get(login_page).post(login)).route(routes::LOGOUT, axum::routing::post(logout)).route(routes::ASSET, get(crate::pages::asset))
}

/// Reading needs what `[http] dashboard` says: with `token`, pages send a reader without it
/// to `/login` and the API answers 401; with `off`, both answer 404.
pub async fn read_gate(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request, next: Next) -> Response {
    let a = admin::asker(&s.admin, req.headers(), peer);
    if admin::may_read(s.dashboard, &a) {
        return next.run(req).await;
    }
    let api = req.uri().path().starts_with("/api/");
    match (s.dashboard, api) {
        (DashboardAccess::Off, false) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        (DashboardAccess::Off, true) => {
            (StatusCode::NOT_FOUND, "the dashboard and its API are off here ([http] dashboard = \"off\"): `swarmboot status` on the server reads it\n").into_response()
        }
        (_, true) => (
            StatusCode::UNAUTHORIZED,
            "reading the fleet needs the admin token here ([http] dashboard): send `Authorization: Bearer TOKEN` (`swarmboot token show` on the server)\n",
        )
            .into_response(),
        (_, false) => axum::response::Redirect::to(routes::LOGIN).into_response(),
    }
}

async fn login_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = admin::cookie_token(&headers).is_some_and(|t| s.admin.matches(&t));
    let body = if signed_in {
        format!("<p>Signed in with the admin token.</p><form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form>", routes::LOGOUT)
    } else {
        login_form("")
    };
    html(StatusCode::OK, page("Sign in", "", &body, ""))
}

fn login_form(error: &str) -> String {
    format!(
        "{error}<p>Acting through the dashboard (assigning images, commanding nodes) needs the admin token. On the server, as root: <code>swarmboot token show</code>.</p>\
         <form method=\"post\" action=\"{}\" class=\"login\"><label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required size=\"40\"></label> <button type=\"submit\">Sign in</button></form>",
        routes::LOGIN
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

/// A right token sets the cookie (HttpOnly, SameSite=Strict) and goes to the fleet.
async fn login(State(s): State<AppState>, axum::Form(f): axum::Form<LoginForm>) -> Response {
    if !s.admin.matches(&f.token) {
        tracing::warn!("dashboard sign-in with a wrong token");
        return html(StatusCode::FORBIDDEN, page("Sign in", "", &login_form("<p class=\"error\">That is not the admin token.</p>"), ""));
    }
    let cookie = format!("{}={}; Path=/; HttpOnly; SameSite=Strict", admin::COOKIE, s.admin.as_str());
    let mut r = axum::response::Redirect::to("/").into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex"));
    r
}

async fn logout() -> Response {
    let mut r = axum::response::Redirect::to(routes::LOGIN).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", admin::COOKIE)).expect("ascii"));
    r
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    action: String,
    #[serde(default)]
    argument: String,
    #[serde(default)]
    csrf: String,
}

/// A node command from the machine's page: the admin token (and a browser's CSRF field), then
/// queued as `swarmboot node command` would queue it; back to the machine's page.
async fn machine_command(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(mac): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CommandForm>,
) -> Response {
    use swarmboot_checkin::command::Action;
    let mut a = admin::asker(&s.admin, &headers, peer);
    a.csrf = !f.csrf.is_empty() && f.csrf == s.admin.csrf();
    let fail = |status: StatusCode, why: String| {
        html(status, page("Not done", "", &format!("<p class=\"error\">{}</p><p><a href=\"/machines/{}\">Back to the machine</a></p>", escape(&why), escape(&mac)), ""))
    };
    if let Err(refused) = admin::may_act(&a) {
        tracing::warn!(%peer, %mac, "dashboard command refused: {refused}");
        return fail(StatusCode::FORBIDDEN, refused.to_string());
    }
    let Ok(m) = mac.parse::<swarmboot_fleet::Mac>() else {
        return fail(StatusCode::BAD_REQUEST, format!("{mac:?} is not a MAC address"));
    };
    let action = match (f.action.as_str(), f.argument.trim()) {
        ("reboot", _) => Action::Reboot,
        ("rescan-disks", _) => Action::RescanDisks,
        ("stop-sharing", share) if !share.is_empty() => Action::StopSharing { share: share.to_string() },
        ("stop-sharing", _) => return fail(StatusCode::BAD_REQUEST, "stop-sharing needs the share's name".into()),
        (other, _) => return fail(StatusCode::BAD_REQUEST, format!("no command {other:?}: reboot, rescan-disks or stop-sharing")),
    };
    let target = swarmboot_checkin::registry::Target::Node(m.to_string());
    match s.nodes.command(&s.key, &target, &action, crate::fleet::now_ms() / 1000) {
        Ok(q) => {
            tracing::info!(%peer, mac = %m, %action, commands = ?q.commands, "dashboard command queued");
            axum::response::Redirect::to(&format!("/machines/{m}")).into_response()
        }
        Err(e) => fail(StatusCode::CONFLICT, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    #[serde(flatten)]
    fleet: FleetQuery,
    fragment: Option<String>,
}

async fn fleet_page(State(s): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let sel = match q.fleet.selection() {
        Ok(sel) => sel,
        Err(e) => return html(StatusCode::BAD_REQUEST, page("Fleet", "Fleet", &format!("<p class=\"error\">{}</p>", escape(&e)), "")),
    };
    let view = s.fleet.read(|f, now| FleetView::of(f, now, &sel));
    let live = fleet_live(&view, &q.fleet);
    if q.fragment.is_some() {
        return html(StatusCode::OK, live);
    }
    html(StatusCode::OK, page("Fleet", "Fleet", &filter_form(&q.fleet), &live))
}

/// The filter form: works without the script (a GET of this page).
fn filter_form(q: &FleetQuery) -> String {
    let mut stages = String::from("<option value=\"\">any</option>");
    let chosen = q.stage.as_deref().unwrap_or("");
    for s in Stage::ALL {
        let sel = if s.as_str() == chosen { " selected" } else { "" };
        let _ = write!(stages, "<option{sel}>{}</option>", s.as_str());
    }
    let stuck = if matches!(q.stuck.as_deref(), Some("1")) { " checked" } else { "" };
    let hidden: String =
        [("sort", &q.sort), ("desc", &q.desc)].iter().filter_map(|(k, v)| v.as_deref().map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", escape(v)))).collect();
    format!(
        "<form id=\"filter\" method=\"get\" action=\"/\" role=\"search\">\
         <label>Find <input type=\"search\" name=\"q\" value=\"{q}\" placeholder=\"MAC, name, address, image\" autocomplete=\"off\"></label>\
         <label>Stage <select name=\"stage\">{stages}</select></label>\
         <label>Image <input name=\"image\" value=\"{image}\" size=\"10\"></label>\
         <label><input type=\"checkbox\" name=\"stuck\" value=\"1\"{stuck}> stuck only</label>{hidden}\
         <button type=\"submit\">Filter</button></form>",
        q = escape(q.q.as_deref().unwrap_or("")),
        image = escape(q.image.as_deref().unwrap_or("")),
    )
}

/// The fleet's live part: the stage counts and the table.
fn fleet_live(v: &FleetView, q: &FleetQuery) -> String {
    let mut out = String::from("<ul class=\"stages\" aria-label=\"Machines by stage\">");
    for c in &v.by_stage {
        let _ = write!(out, "<li class=\"st-{s}\"><a href=\"/?stage={s}\"><b>{n}</b> {s}</a></li>", s = c.stage, n = c.machines);
    }
    if v.stuck > 0 {
        let _ = write!(out, "<li class=\"stuck\"><a href=\"/?stuck=1\"><b>{}</b> stuck</a></li>", v.stuck);
    }
    out.push_str("</ul>");
    let _ = write!(out, "<p class=\"count\">{} of {} machines</p>", v.machines.len(), v.by_stage.iter().map(|c| c.machines).sum::<usize>());
    let current = q.sort.as_deref().unwrap_or("mac");
    let desc = matches!(q.desc.as_deref(), Some("1"));
    let head = |key: &str, label: &str| -> String {
        let (next_desc, aria) = match (key == current, desc) {
            (true, false) => ("1", " aria-sort=\"ascending\""),
            (true, true) => ("0", " aria-sort=\"descending\""),
            _ => ("0", ""),
        };
        let mut query = format!("sort={key}&desc={next_desc}");
        for (k, v) in [("q", &q.q), ("stage", &q.stage), ("image", &q.image), ("stuck", &q.stuck)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(query, "&{k}={}", swarmboot_urls::escape(v.as_bytes()));
            }
        }
        format!("<th scope=\"col\"{aria}><a href=\"/?{}\">{label}</a></th>", escape(&query))
    };
    debug_assert!(SortKey::NAMES.contains(&"last_seen"));
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"fleet\"><thead><tr>{}{}{}{}{}{}{}<th scope=\"col\" title=\"Bytes of the image this boot got from other machines, and from the server (its seed and HTTP)\">Peers / server</th>{}</tr></thead><tbody>",
        head("mac", "MAC"),
        head("hostname", "Name"),
        head("ip", "Address"),
        head("image", "Image"),
        head("stage", "Stage"),
        head("since", "For"),
        head("last_seen", "Seen"),
        head("uploaded", "Uploaded"),
    );
    if v.machines.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"empty\">No machine matches. Machines appear here as they PXE-boot.</td></tr>");
    }
    for r in &v.machines {
        out.push_str(&fleet_row(r, v.now_ms));
    }
    out.push_str("</tbody></table></div>");
    out
}

fn fleet_row(r: &Row, now_ms: u64) -> String {
    let stuck = if r.stuck { " stuck" } else { "" };
    let stage = match r.stage.as_str() {
        "fetching" => format!("fetching <progress max=\"100\" value=\"{p}\">{p}%</progress> {p}%", p = r.percent),
        s => s.to_string(),
    };
    let stuck_note = if r.stuck { " <span class=\"badge\">stuck</span>" } else { "" };
    let agent = if r.agent { " <span class=\"badge agent\" title=\"the elchOS agent checks in\">agent</span>" } else { "" };
    let mac = escape(&r.mac);
    format!(
        "<tr class=\"st-{st}{stuck}\" data-mac=\"{mac}\"><th scope=\"row\"><a id=\"m-{mac}\" href=\"/machines/{mac}\">{mac}</a></th><td>{host}</td><td>{ip}</td><td>{image}</td>\
         <td class=\"stage\">{stage}{stuck_note}{agent}</td><td>{since}</td><td>{seen}</td><td>{peers} / {server}</td><td>{up}</td></tr>",
        st = escape(&r.stage),
        host = escape(r.hostname.as_deref().unwrap_or("")),
        ip = escape(r.ip.as_deref().unwrap_or("")),
        image = escape(r.image.as_deref().unwrap_or("")),
        since = duration(now_ms.saturating_sub(r.since_ms)),
        seen = if r.last_seen_ms == 0 { "not since start".to_string() } else { format!("{} ago", duration(now_ms.saturating_sub(r.last_seen_ms))) },
        peers = bytes(r.from_peers),
        server = bytes(r.from_server),
        up = bytes(r.uploaded),
    )
}

async fn machine_page(State(s): State<AppState>, Path(mac): Path<String>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let view = match crate::api::machine_view(&s, &mac) {
        Ok(v) => v,
        Err((status, e)) => return html(status, page("Machine", "", &format!("<p class=\"error\">{}</p><p><a href=\"/\">The fleet</a></p>", escape(e.trim())), "")),
    };
    let now = crate::fleet::now_ms();
    let node = s.nodes.get(&view.machine.mac, now / 1000);
    let swarms = crate::swarms::machine_swarms(&s, &view.addresses);
    let live = machine_live(&view, node.as_ref(), &swarms, now);
    if q.fragment.is_some() {
        return html(StatusCode::OK, live);
    }
    // The command form stays out of the live part (a refresh would wipe what is typed).
    let signed_in = admin::cookie_token(&headers).is_some_and(|t| s.admin.matches(&t));
    let actions = if node.is_none() {
        String::new()
    } else if signed_in {
        format!(
            "<form method=\"post\" action=\"/machines/{mac}/command\" class=\"command\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label>Command <select name=\"action\"><option>reboot</option><option>rescan-disks</option><option>stop-sharing</option></select></label> \
             <label>Share <input name=\"argument\" size=\"12\" placeholder=\"for stop-sharing\"></label> <button type=\"submit\">Send</button></form>",
            mac = escape(&view.machine.mac),
            csrf = s.admin.csrf()
        )
    } else {
        format!("<p><a href=\"{}\">Sign in</a> with the admin token to command this node.</p>", routes::LOGIN)
    };
    html(StatusCode::OK, page(&format!("Machine {}", view.machine.mac), "", &format!("<p><a href=\"/\">← the fleet</a></p>{actions}"), &live))
}

fn machine_live(v: &MachineView, node: Option<&(Node, &str)>, swarms: &[crate::swarms::MachineSwarm], now_ms: u64) -> String {
    let r = &v.machine;
    let mut out = String::from("<dl class=\"facts\">");
    let mut fact = |k: &str, val: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{val}</dd>");
    };
    fact("Stage", format!("<span class=\"st-{s}\">{s}</span>{}", if r.stuck { " <span class=\"badge\">stuck</span>" } else { "" }, s = escape(&r.stage)));
    fact("For", duration(now_ms.saturating_sub(r.since_ms)));
    fact("Name", escape(r.hostname.as_deref().unwrap_or("-")));
    fact("Address", format!("{} {}", escape(r.ip.as_deref().unwrap_or("-")), r.address_from.as_deref().map(|f| format!("({})", escape(f))).unwrap_or_default()));
    fact("Architecture", escape(r.arch.as_deref().unwrap_or("-")));
    fact("Image", escape(r.image.as_deref().unwrap_or("-")));
    fact("Last seen", if r.last_seen_ms == 0 { "not since the server started".into() } else { format!("{} ago", duration(now_ms.saturating_sub(r.last_seen_ms))) });
    fact("Fetched", format!("{}% of {}: {} from peers, {} from the server, {} peers", r.percent, bytes(r.total), bytes(r.from_peers), bytes(r.from_server), r.peers));
    fact("Uploaded", bytes(r.uploaded));
    out.push_str("</dl><h2>Boots</h2>");
    if v.boots.is_empty() {
        out.push_str("<p>No boot seen since the server started.</p>");
    }
    for (i, b) in v.boots.iter().enumerate() {
        out.push_str(&boot_table(b, i == 0));
    }
    out.push_str(&swarm_section(swarms));
    out.push_str(&node_section(node));
    out
}

/// Peers a machine's page names per swarm (the API lists more).
const PEERS_SHOWN: usize = 12;

/// The swarms a machine is in (the tracker's view): the file, how much it has, what it sent
/// and got, and the peers beside it (machines linked).
fn swarm_section(swarms: &[crate::swarms::MachineSwarm]) -> String {
    let mut out = String::from("<h2>Swarms</h2>");
    if swarms.is_empty() {
        out.push_str("<p>In no swarm the tracker knows now (it has not announced, or went quiet).</p>");
        return out;
    }
    out.push_str(
        "<div class=\"scroll\"><table class=\"swarms\"><thead><tr><th scope=\"col\">File</th><th scope=\"col\">Has</th><th scope=\"col\">Sent</th>\
         <th scope=\"col\">Got</th><th scope=\"col\">Heard</th><th scope=\"col\">Peers beside it</th></tr></thead><tbody>",
    );
    for w in swarms {
        let has = if w.left == 0 { "all".to_string() } else { format!("{} of {}", bytes(w.size.saturating_sub(w.left)), bytes(w.size)) };
        let mut peers: Vec<String> = w
            .peers
            .iter()
            .take(PEERS_SHOWN)
            .map(|p| {
                let who = match (&p.mac, p.server) {
                    (_, true) => "the server".to_string(),
                    (Some(m), _) => format!("<a href=\"/machines/{m}\">{m}</a>", m = escape(m)),
                    (None, _) => escape(&p.address),
                };
                if p.left == 0 {
                    format!("{who} (seed)")
                } else {
                    who
                }
            })
            .collect();
        if w.peer_count > PEERS_SHOWN {
            peers.push(format!("and {} more", w.peer_count - PEERS_SHOWN));
        }
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{} {}</th><td>{has}</td><td>{}</td><td>{}</td><td>{} ago</td><td>{}</td></tr>",
            escape(&w.image),
            escape(&w.role),
            bytes(w.uploaded),
            bytes(w.downloaded),
            duration(w.last_seen_secs * 1000),
            if peers.is_empty() { "none".into() } else { peers.join(", ") }
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn boot_table(b: &BootView, current: bool) -> String {
    let mut out = format!(
        "<table class=\"boot\"><caption>{} boot, {} · {}</caption><thead><tr><th scope=\"col\">Stage</th><th scope=\"col\">Began</th><th scope=\"col\">Took</th></tr></thead><tbody>",
        if current { "Current" } else { "Earlier" },
        clock(b.started_ms),
        escape(b.image.as_deref().unwrap_or("no image yet"))
    );
    for s in &b.stages {
        let _ = write!(out, "<tr class=\"st-{st}\"><th scope=\"row\">{st}</th><td>{}</td><td>{}</td></tr>", clock(s.at_ms), duration(s.for_ms), st = escape(&s.stage));
    }
    out.push_str("</tbody></table>");
    out
}

/// What the elchOS agent said: disks, shares (with their URLs), commands.
fn node_section(node: Option<&(Node, &str)>) -> String {
    let Some((n, state)) = node else {
        return "<h2>Agent</h2><p>No elchOS agent has checked in for this machine.</p>".into();
    };
    let c = &n.report;
    let mut out = format!("<h2>Agent</h2><p>{state} · {} · up {} · last check-in {}</p>", escape(&c.image), duration(c.uptime_secs * 1000), clock(n.last_checkin * 1000));
    out.push_str("<h3>Disks</h3><div class=\"scroll\"><table class=\"disks\"><thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Filesystem</th><th scope=\"col\">Label</th><th scope=\"col\">Size</th><th scope=\"col\">Used</th><th scope=\"col\">Mounted</th></tr></thead><tbody>");
    for d in &c.disks {
        let mounted = match (&d.mounted_at, &d.why_not) {
            (Some(at), _) => escape(at),
            (None, Some(why)) => format!("no: {}", escape(why)),
            (None, None) => "no".into(),
        };
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{mounted}{}</td></tr>",
            escape(&d.device),
            escape(d.fstype.as_deref().unwrap_or("")),
            escape(d.label.as_deref().unwrap_or("")),
            bytes(d.size),
            d.used.map(bytes).unwrap_or_default(),
            if d.donated { " (donated)" } else { "" }
        );
    }
    out.push_str("</tbody></table></div><h3>Shares</h3><ul class=\"shares\">");
    for sh in &c.shares {
        let links: String =
            sh.urls.iter().filter(|u| u.starts_with("http://") || u.starts_with("ftp://")).map(|u| format!(" <a href=\"{u}\" rel=\"noreferrer\">{u}</a>", u = escape(u))).collect();
        let served: u64 = c.served.iter().filter(|s| s.share == sh.name).map(|s| s.bytes).sum();
        let _ = write!(out, "<li><b>{}</b>{links} · {} served</li>", escape(&sh.name), bytes(served));
    }
    if c.shares.is_empty() {
        out.push_str("<li>none</li>");
    }
    out.push_str("</ul><h3>Commands</h3><ul class=\"commands\">");
    for p in &n.pending {
        let _ = write!(out, "<li>#{} {} waiting</li>", p.seq, escape(&action(&p.action)));
    }
    for h in n.history.iter().rev() {
        let what = h.action.as_ref().map(action).unwrap_or_default();
        let seq = h.seq.map(|s| format!("#{s} ")).unwrap_or_default();
        let _ = write!(out, "<li>{seq}{}: {} ({})</li>", escape(&what), escape(&h.outcome), clock(h.at * 1000));
    }
    if n.pending.is_empty() && n.history.is_empty() {
        out.push_str("<li>none sent</li>");
    }
    out.push_str("</ul>");
    out
}

fn action(a: &swarmboot_checkin::command::Action) -> String {
    a.to_string()
}

async fn images_page(State(s): State<AppState>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let signed_in = admin::cookie_token(&headers).is_some_and(|t| s.admin.matches(&t));
    images_response(s, q.fragment.is_some(), signed_in, String::new(), StatusCode::OK).await
}

/// The images page, with `notice` (what an assignment did) above it.
async fn images_response(s: AppState, fragment: bool, signed_in: bool, notice: String, status: StatusCode) -> Response {
    let state = s.clone();
    let done = tokio::task::spawn_blocking(move || (crate::api::images_view(&state), crate::assign::assignments_view(&state), crate::swarms::swarms_view(&state))).await;
    let (view, assigned, swarms) = match done {
        Ok((Ok(v), a, w)) => (v, a, w.unwrap_or_default()),
        Ok((Err(e), _, _)) => return html(StatusCode::INTERNAL_SERVER_ERROR, page("Images", "Images", &format!("<p class=\"error\">The catalog: {}</p>", escape(&e)), "")),
        Err(_) => return html(StatusCode::INTERNAL_SERVER_ERROR, "images task failed\n".into()),
    };
    let stub = s.catalog.stub().ok().flatten();
    let live = images_live(&view, &swarms, stub.as_ref().map(|st| st.release.as_str()));
    if fragment {
        return html(StatusCode::OK, live);
    }
    // Who boots what stays out of the live part (a refresh would wipe what is typed).
    let machines: Vec<String> = s.fleet.read(|f, _| f.machines().map(|m| m.mac.to_string()).collect());
    let names: Vec<&str> = view.iter().map(|i| i.name.as_str()).collect();
    let intro = format!("{notice}{}", assign_section(&s, assigned, &names, &machines, signed_in));
    let mut body = page("Images", "Images", &intro, &live);
    if !notice.is_empty() {
        // The answer to the form, at the form's address: the live part still comes from here.
        body = body.replacen("<div id=\"live\">", &format!("<div id=\"live\" data-src=\"{}\">", routes::IMAGES_PAGE), 1);
    }
    html(status, body)
}

/// The default, the groups and the assigned MACs with what each boots; signed in, a form to
/// assign (the same change as `swarmboot assign`) and a button to hand a target back to the
/// config.
fn assign_section(s: &AppState, assigned: Result<Vec<crate::assign::AssignmentView>, String>, images: &[&str], machines: &[String], signed_in: bool) -> String {
    let lines = match assigned {
        Ok(l) => l,
        Err(e) => return format!("<section class=\"assign\"><h2 id=\"assign\">Who boots what</h2><p class=\"error\">{}</p></section>", escape(&e)),
    };
    let csrf = s.admin.csrf();
    let mut out = String::from(
        "<section class=\"assign\"><h2 id=\"assign\">Who boots what</h2><div class=\"scroll\"><table class=\"assignments\"><thead><tr>\
         <th scope=\"col\">Machines</th><th scope=\"col\">Boot</th><th scope=\"col\">Set by</th></tr></thead><tbody>",
    );
    for l in &lines {
        let who = match l.kind {
            "default" => "default <small>(no rule matches)</small>".to_string(),
            "group" => format!("group {} <small>{}</small>", escape(&l.target), escape(l.glob.as_deref().unwrap_or(""))),
            _ => format!("<a href=\"/machines/{m}\">{m}</a>", m = escape(&l.target)),
        };
        let by = if !l.assigned {
            "config".to_string()
        } else if signed_in {
            format!(
                "assigned <form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"target\" value=\"{}\"><input type=\"hidden\" name=\"unset\" value=\"1\">\
                 <button type=\"submit\" aria-label=\"Back to the config for {}\">back to the config</button></form>",
                routes::IMAGES_ASSIGN,
                escape(&l.target),
                escape(&l.target)
            )
        } else {
            "assigned".to_string()
        };
        let boots = match l.image.as_deref() {
            None => "(nothing)".to_string(),
            Some(i) if images.contains(&i) => escape(i),
            Some(i) => format!("{} <small class=\"error\">not in the catalog: these machines get no image</small>", escape(i)),
        };
        let _ = write!(out, "<tr><th scope=\"row\">{who}</th><td>{boots}</td><td>{by}</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    if !signed_in {
        let _ = write!(
            out,
            "<p><a href=\"{}\">Sign in</a> with the admin token to assign images here (or run <code>swarmboot assign</code> on the server).</p></section>",
            routes::LOGIN
        );
        return out;
    }
    out.push_str("<datalist id=\"targets\">");
    let mut known: Vec<&str> = lines.iter().map(|l| l.target.as_str()).collect();
    known.extend(machines.iter().map(String::as_str));
    known.sort_unstable();
    known.dedup();
    for t in known {
        let _ = write!(out, "<option value=\"{}\">", escape(t));
    }
    out.push_str("</datalist>");
    let options: String = images.iter().map(|i| format!("<option>{}</option>", escape(i))).collect();
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{}\" class=\"command\" id=\"assign-form\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Machines: <code>default</code>, a group or a MAC <input name=\"target\" list=\"targets\" required size=\"20\" autocomplete=\"off\"></label> \
         <label>Boot <select name=\"image\">{options}</select></label> <button type=\"submit\">Assign</button></form>\
         <p><small>The same change as <code>swarmboot assign</code>: kept in the state directory's <code>assignments.toml</code>, over the config's <code>[boot]</code>; machines boot it from their next start.</small></p></section>",
        routes::IMAGES_ASSIGN
    );
    out
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    target: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    unset: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// An assignment from the images page: the admin token (and a browser's CSRF field), then the
/// same change as `swarmboot assign`; the page again with what changed.
async fn images_assign(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, axum::Form(f): axum::Form<AssignForm>) -> Response {
    let mut a = admin::asker(&s.admin, &headers, peer);
    a.csrf = !f.csrf.is_empty() && f.csrf == s.admin.csrf();
    let signed_in = a.cookie;
    let notice = |class: &str, text: &str| format!("<p class=\"{class}\" role=\"status\">{}</p>", escape(text));
    if let Err(refused) = admin::may_act(&a) {
        tracing::warn!(%peer, target = %f.target, "dashboard assignment refused: {refused}");
        return images_response(s, false, signed_in, notice("error", &refused.to_string()), StatusCode::FORBIDDEN).await;
    }
    let target = swarmboot_config::Target::parse(f.target.trim());
    let image = if f.unset.is_some() { None } else { f.image.clone().filter(|i| !i.is_empty()) };
    if image.is_none() && f.unset.is_none() {
        return images_response(s, false, signed_in, notice("error", "pick an image to assign"), StatusCode::BAD_REQUEST).await;
    }
    let state = s.clone();
    let done = tokio::task::spawn_blocking(move || crate::assign::assign(&state, &target, image.as_deref())).await;
    match done {
        Ok(Ok(said)) => {
            tracing::info!(%peer, %said, "assigned from the dashboard");
            images_response(s, false, signed_in, notice("done", &format!("Done: {said}. Machines boot it from their next start.")), StatusCode::OK).await
        }
        Ok(Err(e)) => {
            let status = if e.is_request_error() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
            images_response(s, false, signed_in, notice("error", &format!("Not assigned: {e}")), status).await
        }
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "assign task failed\n".into()),
    }
}

fn images_live(images: &[crate::api::ImageView], swarms: &[crate::swarms::ImageSwarm], stub_release: Option<&str>) -> String {
    let mut out = match stub_release {
        Some(r) => format!("<p>Swarm-mode machines boot the stub built for kernel {}.</p>", escape(r)),
        None => "<p class=\"error\">No stub is built (<code>swarmboot stub build</code>): machines boot images directly over HTTP.</p>".into(),
    };
    if images.is_empty() {
        out.push_str("<p>No image yet: <code>swarmboot image build elchos</code> or <code>swarmboot image add</code>.</p>");
    }
    for i in images {
        let _ = write!(
            out,
            "<section class=\"image\"><h2 id=\"image-{n}\">{n} <small>latest @{l}</small></h2><div class=\"scroll\"><table class=\"versions\"><thead><tr>\
             <th scope=\"col\">Version</th><th scope=\"col\">Added</th><th scope=\"col\">Size</th><th scope=\"col\">Running</th><th scope=\"col\">Booting</th>\
             <th scope=\"col\">Files: seeds / fetching</th></tr></thead><tbody>",
            n = escape(&i.name),
            l = i.latest
        );
        if let Some(w) = swarms.iter().find(|w| w.name == i.name) {
            out.push_str(&swarm_summary(w));
        }
        for v in &i.versions {
            let files: Vec<String> = v.files.iter().map(|f| format!("{} {}: {} / {}", escape(&f.role), bytes(f.size), f.seeds, f.fetching)).collect();
            let machines = |n: usize, stage: &str| if n == 0 { "0".to_string() } else { format!("<a href=\"/?image={}&amp;stage={stage}\">{n}</a>", escape(&i.name)) };
            let _ = write!(
                out,
                "<tr><th scope=\"row\">@{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v.version,
                clock(v.created * 1000),
                bytes(v.size),
                machines(v.running, "running"),
                if v.booting == 0 { "0".to_string() } else { format!("<a href=\"/?image={}\">{}</a>", escape(&i.name), v.booting) },
                files.join("<br>")
            );
        }
        out.push_str("</tbody></table></div></section>");
    }
    out
}

async fn server_page(State(s): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let state = s.clone();
    let live = match tokio::task::spawn_blocking(move || server_live(&state)).await {
        Ok(l) => l,
        Err(_) => return html(StatusCode::INTERNAL_SERVER_ERROR, "server page task failed\n".into()),
    };
    if q.fragment.is_some() {
        return html(StatusCode::OK, live);
    }
    html(StatusCode::OK, page("Server", "Server", "", &live))
}

fn server_live(s: &AppState) -> String {
    let now = crate::fleet::now_ms();
    let f = &s.facts;
    let mut out = String::from("<dl class=\"facts\">");
    let mut fact = |k: &str, v: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact("Version", escape(env!("CARGO_PKG_VERSION")));
    fact("Up", duration(now.saturating_sub(f.started_ms)));
    fact("Boot network", format!("{} on {}", escape(&f.address), escape(&f.interface)));
    fact("DHCP", escape(&f.dhcp));
    fact("URL given to machines", escape(&s.boot.read().expect("boot config lock").base_url));
    fact(
        "Stub",
        match s.catalog.stub().ok().flatten() {
            Some(st) => format!("kernel {} · initramfs {} · built {}", escape(&st.release), bytes(st.initrd_size), clock(st.built * 1000)),
            None => "none built".into(),
        },
    );
    out.push_str("</dl><h2>Problems</h2>");
    let problems = crate::api::problems(s);
    if problems.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str("<ul class=\"problems\">");
        for p in problems {
            let _ = write!(out, "<li>{}</li>", escape(&p));
        }
        out.push_str("</ul>");
    }
    out.push_str("<h2>The last hour</h2><div class=\"charts\">");
    let samples = s.history.samples();
    for series in &crate::history::SERIES {
        let points = crate::history::points(series, &samples);
        let latest = points.last().copied().unwrap_or(0.0);
        let peak = points.iter().copied().fold(0.0, f64::max);
        let shown = |v: f64| match (series.counter, series.bytes) {
            (true, true) => format!("{}/s", bytes(v as u64)),
            (true, false) => format!("{v:.1}/s"),
            (false, _) => format!("{v:.0}"),
        };
        let total = samples.last().map(|l| (series.get)(l));
        let total = match (series.counter, total) {
            (true, Some(t)) if series.bytes => format!(" · {} since start", bytes(t)),
            (true, Some(t)) => format!(" · {t} since start"),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<figure class=\"chart\"><figcaption><b>{}</b> now {} · peak {}{total}</figcaption>{}</figure>",
            escape(series.what),
            shown(latest),
            shown(peak),
            sparkline(&points, &format!("{} over the last hour, now {}, peak {}", series.what, shown(latest), shown(peak)))
        );
    }
    out.push_str("</div><h2>Leases</h2>");
    out.push_str(&leases_table(s, now));
    out
}

/// An image's swarms in a line and a chart: machines in them, what the seed and the machines
/// sent since start, and over the last hour.
fn swarm_summary(w: &crate::swarms::ImageSwarm) -> String {
    let share = w.from_peers_share.map(|p| format!(" ({:.0}% of it machine to machine)", p * 100.0)).unwrap_or_default();
    let (seed_now, peers_now) = (w.seed_per_sec.last().copied().unwrap_or(0.0), w.peers_per_sec.last().copied().unwrap_or(0.0));
    let label = format!("bytes per second over the last hour: the server's seed now {}/s, machines now {}/s", bytes(seed_now as u64), bytes(peers_now as u64));
    format!(
        "<p class=\"swarm\">In its swarms now: <b>{}</b> machine(s){}. Since the server started: the server's seed sent {}, machines sent each other {}{share}.</p>\
         <figure class=\"chart swarm\"><figcaption><span class=\"key seed\">server's seed</span> now {}/s · <span class=\"key peers\">machines</span> now {}/s, the last hour</figcaption>{}</figure>",
        w.machines,
        w.fetching_percent.map(|p| format!(", {} of them fetching ({p}% done)", w.fetching)).unwrap_or_default(),
        bytes(w.seed_uploaded),
        bytes(w.peers_uploaded),
        bytes(seed_now as u64),
        bytes(peers_now as u64),
        two_lines(&w.seed_per_sec, &w.peers_per_sec, &label)
    )
}

/// Two lines on one scale (the seed's, the machines'), as [`sparkline`] draws one.
fn two_lines(seed: &[f64], peers: &[f64], label: &str) -> String {
    let (w, h) = (crate::history::KEPT as f64, 40.0);
    let peak = seed.iter().chain(peers).copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let line = |points: &[f64], class: &str| {
        let start = w - points.len() as f64;
        let coords: Vec<String> = points.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", start + i as f64, h - 1.0 - (v / peak) * (h - 2.0))).collect();
        format!("<polyline class=\"{class}\" points=\"{}\"/>", coords.join(" "))
    };
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">{}{}</svg>",
        escape(label),
        line(seed, "seed"),
        line(peers, "peers")
    )
}

/// A small line chart (inline SVG, no script): `points` scaled to the highest.
fn sparkline(points: &[f64], label: &str) -> String {
    let (w, h) = (crate::history::KEPT as f64, 40.0);
    let peak = points.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let start = w - points.len() as f64;
    let coords: Vec<String> = points.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", start + i as f64, h - 1.0 - (v / peak) * (h - 2.0))).collect();
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\"><polyline points=\"{}\"/></svg>",
        escape(label),
        coords.join(" ")
    )
}

fn leases_table(s: &AppState, now_ms: u64) -> String {
    let leases = match crate::api::leases_view(s, now_ms) {
        Ok(l) => l,
        Err(e) => return format!("<p>{}</p>", escape(&e)),
    };
    if leases.is_empty() {
        return "<p>No lease is active.</p>".into();
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"leases\"><thead><tr><th scope=\"col\">Address</th><th scope=\"col\">MAC</th><th scope=\"col\">Name</th><th scope=\"col\">Ends in</th></tr></thead><tbody>",
    );
    for l in leases.iter().take(1000) {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td><a href=\"/machines/{mac}\">{mac}</a></td><td>{}</td><td>{}</td></tr>",
            escape(&l.ip),
            escape(l.hostname.as_deref().unwrap_or("")),
            duration(l.expires_in_ms),
            mac = escape(&l.mac)
        );
    }
    out.push_str("</tbody></table></div>");
    if leases.len() > 1000 {
        let _ = write!(out, "<p>… and {} more (<a href=\"/api/v1/leases\">all as JSON</a>).</p>", leases.len() - 1000);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(duration(999), "0 s");
        assert_eq!(duration(250_000), "4 min 10 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(33 << 20), "33.0 MiB");
    }

    #[test]
    fn a_hostile_machine_s_words_are_text() {
        let row = Row {
            mac: "52:54:00:00:00:01".into(),
            hostname: Some("<script>alert(1)</script>".into()),
            ip: Some("10.0.0.5".into()),
            address_from: Some("lease".into()),
            arch: None,
            image: Some("\"><img src=x onerror=alert(1)>".into()),
            stage: "fetching".into(),
            since_ms: 0,
            last_seen_ms: 0,
            stuck: true,
            percent: 43,
            have: 43,
            total: 100,
            from_peers: 0,
            from_server: 0,
            peers: 0,
            uploaded: 0,
            agent: false,
        };
        let html = fleet_row(&row, 1000);
        assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("<progress max=\"100\" value=\"43\">") && html.contains("stuck"));
    }
}
