//! The node's HTTP listener (port 80): the status page, its JSON, and every share read-only —
//! the decisions are [`crate::share_http`]'s; this is the I/O around them. Bytes sent are
//! counted per share as they leave ([`crate::stats::Counters`]).

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rustix::fs::{fstat, statat, AtFlags, Dir, FileType};

use crate::share_http::{listing_html, open_beneath, read_chunk, route, Entry, Route};
use crate::stats::Counters;
use crate::status::{render_html, Status};
use swarmboot_httpd::ranges::{bytes_for, content_type, Bytes};

/// Most entries a listing shows (a directory with more is cut, and says so).
const MAX_LISTING: usize = 10_000;

/// What the handlers share.
#[derive(Clone)]
pub struct Node {
    /// Shares by name: the directory each was opened as (never looked up by path again).
    pub shares: Arc<RwLock<BTreeMap<String, Arc<OwnedFd>>>>,
    /// Shares the server said to stop (`stop-sharing`): not shared again this boot, even when
    /// a pass over the disks finds them.
    pub stopped: Arc<RwLock<BTreeSet<String>>>,
    pub counters: Arc<Mutex<Counters>>,
    /// The page's content, refreshed by the agent.
    pub status: Arc<RwLock<Status>>,
    /// Downloads under way (each reads in chunks of [`read_chunk`] for their number).
    pub downloads: Arc<AtomicUsize>,
}

pub fn router(node: Node) -> Router {
    Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| handle(node.clone(), method, uri, headers))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

async fn handle(node: Node, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET and HEAD");
    }
    let r = match route(uri.path()) {
        Ok(r) => r,
        Err(why) => return plain(StatusCode::BAD_REQUEST, &format!("bad path: {why}")),
    };
    match r {
        Route::Status => {
            let page = render_html(&node.status.read().expect("status lock"), unix_now());
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
        Route::StatusJson => axum::Json(node.status.read().expect("status lock").clone()).into_response(),
        Route::Share { share, path } => {
            let Some(root) = node.shares.read().expect("shares lock").get(&share).cloned() else {
                return plain(StatusCode::NOT_FOUND, &format!("no share {share}"));
            };
            // openat2 and reading a directory block: off the async threads.
            let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let head = method == Method::HEAD;
            match tokio::task::spawn_blocking(move || open(&root, &path)).await {
                Ok(Ok(Opened::Dir(entries, cut))) if uri.path().ends_with('/') => {
                    let parts: Vec<String> =
                        uri.path().trim_matches('/').split('/').skip(1).map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()).collect();
                    let mut page = listing_html(&share, &parts, &entries);
                    if cut {
                        page.push_str(&format!("<!-- only the first {MAX_LISTING} entries -->\n"));
                    }
                    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
                }
                Ok(Ok(Opened::Dir(..))) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, format!("{}/", uri.path()))]).into_response(),
                Ok(Ok(Opened::File(fd, len))) => send_file(fd, len, range.as_deref(), head, &share, &node, uri.path()).await,
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => plain(StatusCode::NOT_FOUND, "not in this share"),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => plain(StatusCode::NOT_FOUND, "no such file"),
                Ok(Err(e)) => plain(StatusCode::FORBIDDEN, &format!("cannot read it: {e}")),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "the read task failed"),
            }
        }
    }
}

enum Opened {
    /// Entries, and whether the listing was cut.
    Dir(Vec<Entry>, bool),
    File(OwnedFd, u64),
}

fn open(root: &OwnedFd, path: &[String]) -> std::io::Result<Opened> {
    let fd = open_beneath(root, path)?;
    let st = fstat(&fd)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let mut entries = Vec::new();
            let mut cut = false;
            for e in Dir::read_from(&fd)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name == "." || name == ".." {
                    continue;
                }
                if entries.len() == MAX_LISTING {
                    cut = true;
                    break;
                }
                let (dir, size) = match statat(&fd, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(s) => (FileType::from_raw_mode(s.st_mode) == FileType::Directory, u64::try_from(s.st_size).unwrap_or(0)),
                    Err(_) => (false, 0),
                };
                entries.push(Entry { name, dir, size });
            }
            Ok(Opened::Dir(entries, cut))
        }
        FileType::RegularFile => Ok(Opened::File(fd, u64::try_from(st.st_size).unwrap_or(0))),
        _ => Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not a regular file or directory")),
    }
}

async fn send_file(fd: OwnedFd, len: u64, range: Option<&str>, head: bool, share: &str, node: &Node, path: &str) -> Response {
    let (status, start, count) = match bytes_for(range, len) {
        Bytes::Whole => (StatusCode::OK, 0, len),
        Bytes::Part(r) => (StatusCode::PARTIAL_CONTENT, *r.start(), r.end() - r.start() + 1),
        Bytes::Unsatisfiable => return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{len}"))]).into_response(),
    };
    let name = path.rsplit('/').next().unwrap_or("");
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type(name))
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{len}", start + count - 1));
    }
    if head {
        return resp.body(Body::empty()).expect("a valid response");
    }
    node.counters.lock().expect("counters lock").add_request("http", share);
    let download = Download { file: Arc::new(std::fs::File::from(fd)), at: start, left: count, under_way: UnderWay::new(node.downloads.clone()) };
    let (share, counters) = (share.to_string(), node.counters.clone());
    // Each chunk read on the blocking pool straight into the buffer that is sent; counted as
    // the bytes leave, so an aborted download counts what it got.
    let stream = futures_util::stream::unfold(download, move |mut d| {
        let (share, counters) = (share.clone(), counters.clone());
        async move {
            if d.left == 0 {
                return None;
            }
            let want = (read_chunk(d.under_way.count()) as u64).min(d.left) as usize;
            let (file, at) = (d.file.clone(), d.at);
            let read = tokio::task::spawn_blocking(move || {
                // Into the buffer's spare capacity: no pass to zero it first.
                let mut buf = Vec::with_capacity(want);
                rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut buf), at)?;
                Ok::<_, std::io::Error>(buf)
            })
            .await;
            let chunk = match read {
                Ok(Ok(buf)) if !buf.is_empty() => buf,
                // Shorter than it said (truncated since), failed, or the pool is gone: the
                // client sees a body shorter than its length.
                _ => return None,
            };
            d.at += chunk.len() as u64;
            d.left -= chunk.len() as u64;
            counters.lock().expect("counters lock").add_bytes("http", &share, chunk.len() as u64);
            Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)), d))
        }
    });
    resp.body(Body::from_stream(stream)).expect("a valid response")
}

/// A file being sent.
struct Download {
    file: Arc<std::fs::File>,
    at: u64,
    left: u64,
    under_way: UnderWay,
}

/// One download counted in [`Node::downloads`] for as long as it lives.
struct UnderWay(Arc<AtomicUsize>);

impl UnderWay {
    fn new(n: Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        UnderWay(n)
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
