//! The namespace over WebDAV, read-only (RFC 4918 class 1 without locks or writes), so file
//! managers, `davfs2` and Windows open it as a drive: `OPTIONS`, `PROPFIND` (depth 0 or 1; a
//! request for infinity is answered as depth 1), `GET` and `HEAD` under `/dav/`. A file's
//! bytes come from the nodes that hold it, by ranges, through the server (a client needs to
//! reach only the server), from the next source when one fails mid-file.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use swarmboot_httpd::html::escape;
use swarmboot_httpd::ranges::{bytes_for, content_type, Bytes as Part};
use swarmboot_namespace::entry::Kind;
use swarmboot_namespace::reading::Sources;
use swarmboot_urls::routes;

use crate::namespace::{Shown, TreeView};
use crate::state::AppState;

/// Bytes fetched from a node per request while streaming a file.
pub const CHUNK: u64 = 1 << 20;
/// How long one chunk may take from one node.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(20);
const ALLOW: &str = "OPTIONS, GET, HEAD, PROPFIND";

/// `/dav` and beneath (behind the dashboard's read gate).
pub fn routes() -> Router<AppState> {
    // (`/dav/`, as WebDAV clients open a collection, is the top too.)
    Router::new().route(routes::DAV_ROOT, any(root)).route(&format!("{}/", routes::DAV_ROOT), any(root)).route(routes::DAV, any(at))
}

async fn root(State(s): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    handle(s, method, headers, String::new()).await
}

async fn at(State(s): State<AppState>, method: Method, headers: HeaderMap, Path(path): Path<String>) -> Response {
    handle(s, method, headers, path).await
}

/// A path as an href under `/dav/`, each part escaped.
fn href(path: &str, dir: bool) -> String {
    let parts: Vec<String> = path.split('/').filter(|p| !p.is_empty()).map(|p| swarmboot_urls::escape(p.as_bytes())).collect();
    let mut h = format!("{}/{}", routes::DAV_ROOT, parts.join("/"));
    if dir && !h.ends_with('/') {
        h.push('/');
    }
    h
}

fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
}

fn response_xml(path: &str, name: &str, e: Option<&Shown>) -> String {
    let (dir, size, mtime, etag) = match e {
        None => (true, 0, 0, None),
        Some(sh) => (sh.entry.kind == Kind::Dir, sh.entry.size, sh.entry.mtime, sh.entry.hash.clone().or_else(|| Some(format!("{}-{}", sh.entry.size, sh.entry.mtime)))),
    };
    let mut props = format!("<D:displayname>{}</D:displayname>", escape(name));
    if dir {
        props.push_str("<D:resourcetype><D:collection/></D:resourcetype>");
    } else {
        props.push_str(&format!(
            "<D:resourcetype/><D:getcontentlength>{size}</D:getcontentlength><D:getcontenttype>{}</D:getcontenttype><D:getetag>\"{}\"</D:getetag>",
            escape(&content_type(name)),
            escape(etag.as_deref().unwrap_or(""))
        ));
    }
    if mtime > 0 {
        props.push_str(&format!("<D:getlastmodified>{}</D:getlastmodified>", http_date(mtime)));
    }
    format!("<D:response><D:href>{}</D:href><D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>", escape(&href(path, dir)))
}

async fn handle(s: AppState, method: Method, headers: HeaderMap, path: String) -> Response {
    let path = path.trim_matches('/').to_string();
    if method == Method::OPTIONS {
        return ([(header::ALLOW, ALLOW), (header::HeaderName::from_static("dav"), "1")], "").into_response();
    }
    let state = s.clone();
    let wanted = path.clone();
    let view = match tokio::task::spawn_blocking(move || state.namespace.tree(&state.nodes, &wanted)).await {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) => return (StatusCode::NOT_FOUND, "not on any live node\n").into_response(),
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "task failed\n").into_response(),
    };
    match method.as_str() {
        "PROPFIND" => propfind(&path, &view, headers.get("depth").and_then(|d| d.to_str().ok()) == Some("0")),
        "GET" | "HEAD" if view.kind == Kind::Dir => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("/files/{}", href(&path, true).trim_start_matches("/dav/"))).unwrap_or(HeaderValue::from_static("/files")),
            );
            r
        }
        "GET" | "HEAD" => match view.entries.into_iter().next() {
            Some(file) => get_file(file, headers.get(header::RANGE).and_then(|r| r.to_str().ok()), method == Method::HEAD),
            None => (StatusCode::NOT_FOUND, "not on any live node\n").into_response(),
        },
        _ => ([(header::ALLOW, ALLOW)], StatusCode::METHOD_NOT_ALLOWED).into_response(),
    }
}

fn propfind(path: &str, view: &TreeView, depth0: bool) -> Response {
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">");
    let name = path.rsplit('/').next().unwrap_or("");
    if view.kind == Kind::Dir {
        body.push_str(&response_xml(path, if name.is_empty() { "swarmboot" } else { name }, None));
        if !depth0 {
            for e in &view.entries {
                body.push_str(&response_xml(&e.path, &e.entry.name, Some(e)));
            }
        }
    } else if let Some(e) = view.entries.first() {
        body.push_str(&response_xml(&e.path, &e.entry.name, Some(e)));
    }
    body.push_str("</D:multistatus>\n");
    let mut r = (StatusCode::MULTI_STATUS, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    r
}

/// A file from its sources, by ranges, as one response (206 for a range).
fn get_file(file: Shown, range: Option<&str>, head: bool) -> Response {
    let size = file.entry.size;
    let (status, start, end) = match bytes_for(range, size) {
        Part::Whole => (StatusCode::OK, 0, size),
        Part::Part(r) => (StatusCode::PARTIAL_CONTENT, *r.start(), r.end() + 1),
        Part::Unsatisfiable => return ([(header::CONTENT_RANGE, format!("bytes */{size}"))], StatusCode::RANGE_NOT_SATISFIABLE).into_response(),
    };
    let urls: Vec<String> = file.source_urls.iter().flat_map(|s| s.urls.iter().filter(|u| u.starts_with("http://")).take(1).cloned()).collect();
    if urls.is_empty() {
        return (StatusCode::BAD_GATEWAY, "no source serves it over HTTP\n").into_response();
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type(&file.entry.name)).unwrap_or(HeaderValue::from_static("application/octet-stream")));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)).expect("ascii"));
    }
    if head {
        return (status, headers).into_response();
    }
    let stream = futures_util::stream::unfold((Sources::new(urls), start), move |(mut sources, pos)| async move {
        if pos >= end {
            return None;
        }
        let upto = (pos + CHUNK).min(end);
        loop {
            let url = sources.current()?.to_string();
            match swarmboot_fetch::http::get(&url, Some((pos, upto)), (upto - pos) as usize, CHUNK_TIMEOUT).await {
                Ok(bytes) => return Some((Ok::<_, std::io::Error>(bytes), (sources, upto))),
                Err(e) => {
                    tracing::info!(%url, at = pos, error = %e, "a source failed mid-file: the next one takes over");
                    if sources.failed(&url).is_none() {
                        return Some((Err(std::io::Error::other(format!("every source failed at byte {pos}"))), (sources, end)));
                    }
                }
            }
        }
    });
    (status, headers, Body::from_stream(stream)).into_response()
}
