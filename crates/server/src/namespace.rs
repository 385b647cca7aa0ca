//! The namespace as the server serves it: nodes' index batches taken into the index store
//! (signed by the node's live key, from its address), and the merged tree and search hits of
//! the live nodes with the URLs each source serves them at (`/api/v1/tree/…`,
//! `/api/v1/search`, the dashboard's `/files/…`, WebDAV, `swarmboot mount`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use swarmboot_checkin::report::Share;
use swarmboot_namespace::batch::{self, BatchError, IndexReply};
use swarmboot_namespace::entry::Kind;
use swarmboot_namespace::listing::{self, Listed, Row};
use swarmboot_namespace::query::Query;
use swarmboot_swarm::locks::lock;

use crate::fleet::FleetState;
use crate::index_store::{Hit, IndexStore, IndexStoreError};
use crate::nodes::Nodes;

#[derive(Debug, Default)]
pub struct IndexStats {
    pub batches: AtomicU64,
    /// Unreadable, forged, over a bound, from the wrong key or address.
    pub refused: AtomicU64,
    pub entries_changed: AtomicU64,
    pub searches: AtomicU64,
}

/// The index store and its counters.
pub struct Namespace {
    store: Mutex<IndexStore>,
    pub stats: IndexStats,
}

/// Why a batch got no answer.
#[derive(Debug, thiserror::Error)]
pub enum BatchFailure {
    #[error(transparent)]
    Bad(#[from] BatchError),
    #[error("{0} is not a live node with that key: check in first (a new boot's key takes the MAC once the old one is lost)")]
    NotItsKey(String),
    #[error(transparent)]
    NotItsAddress(#[from] swarmboot_fleet::Refused),
    #[error("{0}")]
    OverBound(String),
    #[error(transparent)]
    Store(#[from] IndexStoreError),
}

/// One source of an entry: a node and the URLs it serves the entry at.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub node: String,
    pub urls: Vec<String>,
}

/// One entry of a merged directory or a search, with its sources.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The namespace path (the listed name's).
    pub path: String,
    #[serde(flatten)]
    pub entry: Listed,
    pub source_urls: Vec<Source>,
}

/// A directory of the namespace.
#[derive(Debug, Clone, Serialize)]
pub struct TreeView {
    pub path: String,
    /// `file` when the path names a file (then `entries` holds it alone).
    pub kind: Kind,
    pub entries: Vec<Shown>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchView {
    pub query: String,
    pub hits: Vec<Shown>,
    /// More hits than shown (the limit was reached).
    pub more: bool,
}

/// `path` within a share as URL path parts, each escaped.
fn escaped(rest: &str) -> String {
    rest.split('/').map(|p| swarmboot_urls::escape(p.as_bytes())).collect::<Vec<_>>().join("/")
}

/// The URLs `node` serves the namespace path `path` at: each of its share's base URLs with
/// the rest of the path, escaped.
fn urls_of(shares: &HashMap<String, Vec<Share>>, node: &str, path: &str, kind: Kind) -> Vec<String> {
    let (share, rest) = path.split_once('/').unwrap_or((path, ""));
    let Some(s) = shares.get(node).and_then(|all| all.iter().find(|s| s.name == share)) else { return vec![] };
    let tail = if rest.is_empty() { String::new() } else { escaped(rest) + if kind == Kind::Dir { "/" } else { "" } };
    s.urls.iter().map(|u| format!("{}{tail}", if u.ends_with('/') { u.clone() } else { format!("{u}/") })).collect()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn shown(dir: &str, l: Listed, shares: &HashMap<String, Vec<Share>>) -> Shown {
    let real = join(dir, &l.real_name);
    let source_urls = l.sources.iter().map(|n| Source { node: n.clone(), urls: urls_of(shares, n, &real, l.kind) }).collect();
    Shown { path: join(dir, &l.name), entry: l, source_urls }
}

impl Namespace {
    pub fn open(state_dir: &std::path::Path) -> Result<Self, IndexStoreError> {
        Ok(Namespace { store: Mutex::new(IndexStore::open(state_dir)?), stats: IndexStats::default() })
    }

    /// A node's batch: read and checked, from the node's live key and address, then applied.
    pub fn take(&self, fleet: &FleetState, nodes: &Nodes, from: IpAddr, body: &[u8], signature: Option<&str>) -> Result<IndexReply, BatchFailure> {
        let refused = |e: BatchFailure| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            e
        };
        let (b, _key) = batch::open(body, signature).map_err(|e| refused(e.into()))?;
        let mac: swarmboot_fleet::Mac = b.mac.parse().map_err(|_| refused(BatchError::Malformed(format!("mac {:?}", b.mac)).into()))?;
        fleet.check_source(from, mac).map_err(|e| refused(e.into()))?;
        if nodes.live_key(&b.mac, crate::fleet::now_ms() / 1000).as_deref() != Some(b.node_key.as_str()) {
            return Err(refused(BatchFailure::NotItsKey(b.mac.clone())));
        }
        let changes = (b.upserts.len() + b.removals.len()) as u64;
        let reply = lock(&self.store).apply(&b)?.map_err(|why| refused(BatchFailure::OverBound(why)))?;
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        if matches!(reply, IndexReply::Taken { .. }) {
            self.stats.entries_changed.fetch_add(changes, Ordering::Relaxed);
        }
        Ok(reply)
    }

    /// The live nodes and their shares.
    fn live(nodes: &Nodes) -> (Vec<String>, HashMap<String, Vec<Share>>) {
        let shares = nodes.live_shares(crate::fleet::now_ms() / 1000);
        (shares.keys().cloned().collect(), shares)
    }

    /// The merged directory at `path` (`""`: the top), or the file there.
    pub fn tree(&self, nodes: &Nodes, path: &str) -> Result<Option<TreeView>, IndexStoreError> {
        let path = path.trim_matches('/');
        let (live, shares) = Self::live(nodes);
        let store = lock(&self.store);
        let children = store.children(path, &live)?;
        if !children.is_empty() || path.is_empty() {
            let entries = listing::merge(children).into_iter().map(|l| shown(path, l, &shares)).collect();
            return Ok(Some(TreeView { path: path.to_string(), kind: Kind::Dir, entries }));
        }
        // A file, or an empty directory, or a variant's listed name.
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let siblings = listing::merge(store.children(dir, &live)?);
        drop(store);
        Ok(siblings.into_iter().find(|l| l.name == name).map(|l| {
            let kind = l.kind;
            TreeView { path: path.to_string(), kind, entries: vec![shown(dir, l, &shares)] }
        }))
    }

    /// The hits of `text` among the live nodes, merged like a listing (same path and content:
    /// one hit with its sources), at most `limit`.
    pub fn search(&self, nodes: &Nodes, q: &Query, text: &str, limit: usize) -> Result<SearchView, IndexStoreError> {
        self.stats.searches.fetch_add(1, Ordering::Relaxed);
        let (live, shares) = Self::live(nodes);
        let hits = lock(&self.store).search(q, &live, limit + 1)?;
        let more = hits.len() > limit;
        // Group by directory so that each group merges as a listing does; then in the order
        // the index found each path's first row.
        let mut order: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut by_dir: HashMap<String, Vec<Row>> = HashMap::new();
        for Hit { node, path, kind, size, mtime, hash } in hits.into_iter().take(limit) {
            let (dir, name) = path.rsplit_once('/').map_or((String::new(), path.clone()), |(d, n)| (d.to_string(), n.to_string()));
            if seen.insert(path.clone()) {
                order.push((dir.clone(), name.clone()));
            }
            by_dir.entry(dir).or_default().push(Row { node, name, kind, size, mtime, hash });
        }
        let mut merged: HashMap<(String, String), Vec<Shown>> = HashMap::new();
        for (dir, rows) in by_dir {
            for l in listing::merge(rows) {
                merged.entry((dir.clone(), l.real_name.clone())).or_default().push(shown(&dir, l, &shares));
            }
        }
        let mut out: Vec<Shown> = Vec::new();
        for key in order {
            if let Some(mut variants) = merged.remove(&key) {
                variants.sort_by(|a, b| a.path.cmp(&b.path));
                out.extend(variants);
            }
        }
        Ok(SearchView { query: text.to_string(), hits: out, more })
    }

    /// Entries held per node.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, IndexStoreError> {
        lock(&self.store).counts()
    }
}
