//! The dashboard's view of the namespace: `/files/PATH` (a merged directory: each entry with
//! its size, the nodes that hold it and their links) and `/search?q=` (the search box's
//! answers), server-rendered over the same views as `/api/v1/tree` and `/api/v1/search`;
//! every name a node sent is escaped.

use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use swarmboot_httpd::html::escape;
use swarmboot_namespace::entry::Kind;
use swarmboot_urls::routes;

use crate::namespace::Shown;
use crate::pages::{bytes, html, page};
use crate::state::AppState;

/// The pages (behind the dashboard's read gate).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::FILES_ROOT, get(files_root))
        .route(&format!("{}/", routes::FILES_ROOT), get(files_root))
        .route(routes::FILES, get(files))
        .route(routes::SEARCH_PAGE, get(search))
}

/// A namespace path as a link under `prefix` (`/files`), each part escaped.
fn link(prefix: &str, path: &str) -> String {
    let parts: Vec<String> = path.split('/').filter(|p| !p.is_empty()).map(|p| swarmboot_urls::escape(p.as_bytes())).collect();
    format!("{prefix}/{}", parts.join("/"))
}

fn search_form(q: &str) -> String {
    format!(
        "<form method=\"get\" action=\"{}\" class=\"command\" role=\"search\"><label>Search the files <input type=\"search\" name=\"q\" value=\"{}\" size=\"40\" \
         placeholder=\"words, size&gt;700M, type:video, ext:iso, in:movies\"></label> <button type=\"submit\">Search</button></form>",
        routes::SEARCH_PAGE,
        escape(q)
    )
}

/// The rows of a table of entries: name (a link into the tree for a directory), size, the
/// nodes that hold it with their links.
fn rows(entries: &[Shown], full_path: bool) -> String {
    let mut out = String::new();
    for e in entries {
        let shown_name = if full_path { &e.path } else { &e.entry.name };
        let name = match e.entry.kind {
            Kind::Dir => format!("<a href=\"{}\">{}/</a>", escape(&link("/files", &e.path)), escape(shown_name)),
            Kind::File => match e.source_urls.iter().flat_map(|s| s.urls.first()).next() {
                Some(u) => format!("<a href=\"{}\">{}</a>", escape(u), escape(shown_name)),
                None => escape(shown_name),
            },
        };
        let sources: Vec<String> = e
            .source_urls
            .iter()
            .map(|s| {
                let links: Vec<String> = s.urls.iter().map(|u| format!("<a href=\"{}\">{}</a>", escape(u), escape(u.split(':').next().unwrap_or("link")))).collect();
                format!("<a href=\"/machines/{m}\">{m}</a> {}", links.join(" "), m = escape(&s.node))
            })
            .collect();
        let size = if e.entry.kind == Kind::Dir { String::new() } else { bytes(e.entry.size) };
        let _ = write!(out, "<tr><th scope=\"row\">{name}</th><td>{size}</td><td>{}</td></tr>", sources.join("<br>"));
    }
    out
}

fn table(entries: &[Shown], full_path: bool) -> String {
    format!(
        "<div class=\"scroll\"><table class=\"files\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Size</th><th scope=\"col\">On</th></tr></thead><tbody>{}</tbody></table></div>",
        rows(entries, full_path)
    )
}

/// `fragment=1`: the live part alone (the page's script refreshes it).
#[derive(Debug, Default, Deserialize)]
struct Fragment {
    fragment: Option<String>,
}

async fn files_root(State(s): State<AppState>, Query(f): Query<Fragment>) -> Response {
    files_at(s, String::new(), f.fragment.is_some()).await
}

async fn files(State(s): State<AppState>, Path(path): Path<String>, Query(f): Query<Fragment>) -> Response {
    files_at(s, path, f.fragment.is_some()).await
}

async fn files_at(s: AppState, path: String, fragment: bool) -> Response {
    let state = s.clone();
    let wanted = path.clone();
    let view = match tokio::task::spawn_blocking(move || state.namespace.tree(&state.nodes, &wanted)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return html(StatusCode::INTERNAL_SERVER_ERROR, page("Files", "Files", &format!("<p class=\"error\">The index: {}</p>", escape(&e.to_string())), "")),
        Err(_) => return html(StatusCode::INTERNAL_SERVER_ERROR, "files task failed\n".into()),
    };
    let path = path.trim_matches('/');
    let mut crumbs = String::from("<nav aria-label=\"Where\" class=\"crumbs\"><a href=\"/files\">files</a>");
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = if at.is_empty() { part.to_string() } else { format!("{at}/{part}") };
        let _ = write!(crumbs, " / <a href=\"{}\">{}</a>", escape(&link("/files", &at)), escape(part));
    }
    crumbs.push_str("</nav>");
    let body = match view {
        None => (StatusCode::NOT_FOUND, "<p class=\"error\">Nothing here on the live nodes.</p>".to_string()),
        Some(v) if v.entries.is_empty() => {
            (StatusCode::OK, "<p>Nothing shared yet: elchOS nodes index their shares and send them with their check-ins. Nodes lost to the server drop out.</p>".to_string())
        }
        Some(v) => (StatusCode::OK, format!("<p>{} entr{} from the live nodes.</p>{}", v.entries.len(), if v.entries.len() == 1 { "y" } else { "ies" }, table(&v.entries, false))),
    };
    if fragment {
        return html(body.0, body.1);
    }
    html(body.0, page("Files", "Files", &format!("{}{crumbs}", search_form("")), &body.1))
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    fragment: Option<String>,
}

async fn search(State(s): State<AppState>, Query(p): Query<SearchParams>) -> Response {
    let q = match swarmboot_namespace::query::Query::parse(&p.q) {
        Ok(q) => q,
        Err(e) => return html(StatusCode::BAD_REQUEST, page("Search", "Files", &search_form(&p.q), &format!("<p class=\"error\">{}</p>", escape(&e.to_string())))),
    };
    let state = s.clone();
    let text = p.q.clone();
    let done = tokio::task::spawn_blocking(move || state.namespace.search(&state.nodes, &q, &text, crate::namespace_http::DEFAULT_HITS)).await;
    let live = match done {
        Ok(Ok(v)) if v.hits.is_empty() => "<p>No file on the live nodes matches.</p>".to_string(),
        Ok(Ok(v)) => format!("<p>{} hit(s){}.</p>{}", v.hits.len(), if v.more { ", more not shown: narrow the search" } else { "" }, table(&v.hits, true)),
        Ok(Err(e)) => format!("<p class=\"error\">The index: {}</p>", escape(&e.to_string())),
        Err(_) => "<p class=\"error\">The search failed.</p>".to_string(),
    };
    if p.fragment.is_some() {
        return html(StatusCode::OK, live);
    }
    html(StatusCode::OK, page("Search", "Files", &search_form(&p.q), &live))
}
