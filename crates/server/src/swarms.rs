//! Each image's swarm as the server sees it — the tracker's peers and what they reported
//! moving, the server's seed's uploads — per file and summed per image, and one machine's
//! swarms (its entries in the tracker and the peers beside it). `/api/v1/swarms`, the images
//! page and a machine's page read it; `history` samples [`image_bytes`] for the charts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde::Serialize;
use swarmboot_image::{Catalog, Manifest};
use swarmboot_swarm::locks::lock;
use swarmboot_tracker::PeerTable;

use crate::history::{self, ImageBytes};
use crate::seeder::Seeder;
use crate::state::AppState;

/// Peers a machine's page lists per swarm.
pub const MAX_NEIGHBOURS: usize = 50;
/// Swarms a machine's page lists.
pub const MAX_MACHINE_SWARMS: usize = 64;

/// What a file of the catalog is: (image, version, role, size), by info hash.
fn files_by_hash(manifests: &[Manifest]) -> HashMap<[u8; 20], (String, u32, String, u64)> {
    let mut out = HashMap::new();
    for m in manifests {
        for f in &m.files {
            if let Some(h) = f.info_hash.as_deref().and_then(|h| hex::decode(h).ok()).and_then(|h| <[u8; 20]>::try_from(h).ok()) {
                // A file two versions share is listed under the newest.
                let e = out.entry(h).or_insert_with(|| (m.name.clone(), m.version, f.role.as_str().to_string(), f.size));
                if m.name == e.0 && m.version > e.1 {
                    e.1 = m.version;
                }
            }
        }
    }
    out
}

/// Each image's bytes moved since start (the seed's, the machines'), the first
/// [`history::MAX_IMAGES`] by name: what a history sample keeps.
pub fn image_bytes(catalog: &Catalog, tracker: Option<&Mutex<PeerTable>>, seeder: Option<&Seeder>) -> Vec<ImageBytes> {
    let Ok(manifests) = catalog.all() else { return vec![] };
    let seed = seeder.map(Seeder::uploaded_by_file).unwrap_or_default();
    let table = tracker.map(lock);
    let mut by_image: BTreeMap<String, ImageBytes> = BTreeMap::new();
    for (hash, (image, ..)) in files_by_hash(&manifests) {
        let e = by_image.entry(image.clone()).or_insert_with(|| ImageBytes { name: image, ..Default::default() });
        e.seed_uploaded += seed.get(&hash).copied().unwrap_or(0);
        e.peers_uploaded += table.as_ref().and_then(|t| t.reported_in(&hash)).map_or(0, |r| r.uploaded);
    }
    by_image.into_values().take(history::MAX_IMAGES).collect()
}

/// One file's swarm.
#[derive(Debug, Clone, Serialize)]
pub struct FileSwarm {
    pub version: u32,
    pub role: String,
    pub size: u64,
    pub info_hash: String,
    /// Peers with the whole file (the server's seed not counted), and fetching it.
    pub seeds: u32,
    pub fetching: u32,
    /// Downloads the tracker saw complete since the server started.
    pub completed: u64,
    /// What the server's seed sent, and what the machines reported sending and getting, since
    /// the server started.
    pub seed_uploaded: u64,
    pub peers_uploaded: u64,
    pub peers_downloaded: u64,
}

/// One image's swarms together.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSwarm {
    pub name: String,
    /// Machines in any of its swarms (by address; the server's seed not counted).
    pub machines: usize,
    /// Of them, those still fetching a file, and how far they are over the files they fetch
    /// (0–100; `null`: nobody is fetching).
    pub fetching: usize,
    pub fetching_percent: Option<u8>,
    pub seed_uploaded: u64,
    pub peers_uploaded: u64,
    /// The share of the bytes machines got that came from other machines, since the server
    /// started (`null`: nothing moved yet).
    pub from_peers_share: Option<f64>,
    pub files: Vec<FileSwarm>,
    /// The last hour: bytes per second the seed and the machines sent, a point per sample
    /// interval.
    pub every_secs: u64,
    pub seed_per_sec: Vec<f64>,
    pub peers_per_sec: Vec<f64>,
}

/// The server's own address (its seed's peers are not machines).
fn server_ip(s: &AppState) -> Option<Ipv4Addr> {
    s.facts.address.split('/').next().and_then(|a| a.parse().ok())
}

/// Every image's swarms, by name.
pub fn swarms_view(s: &AppState) -> Result<Vec<ImageSwarm>, String> {
    let manifests = s.catalog.all().map_err(|e| e.to_string())?;
    let seed = s.seeder.as_deref().map(Seeder::uploaded_by_file).unwrap_or_default();
    let server = server_ip(s);
    let samples = s.history.samples();
    let table = s.tracker.as_deref().map(lock);
    // Per image: machines, machines fetching, (bytes they have, bytes they fetch), files.
    type Acc = (BTreeSet<Ipv4Addr>, BTreeSet<Ipv4Addr>, (u64, u64), Vec<FileSwarm>);
    let mut images: BTreeMap<String, Acc> = BTreeMap::new();
    for (hash, (image, version, role, size)) in files_by_hash(&manifests) {
        let entry = images.entry(image).or_default();
        let peers = table.as_ref().map(|t| t.peers_of(&hash, usize::MAX)).unwrap_or_default();
        let machines: Vec<_> = peers.iter().filter(|p| Some(*p.address.ip()) != server).collect();
        entry.0.extend(machines.iter().map(|p| *p.address.ip()));
        for p in machines.iter().filter(|p| p.left > 0) {
            entry.1.insert(*p.address.ip());
            entry.2 .0 += size.saturating_sub(p.left);
            entry.2 .1 += size;
        }
        let reported = table.as_ref().and_then(|t| t.reported_in(&hash)).unwrap_or_default();
        entry.3.push(FileSwarm {
            version,
            role,
            size,
            info_hash: hex::encode(hash),
            seeds: machines.iter().filter(|p| p.left == 0).count() as u32,
            fetching: machines.iter().filter(|p| p.left > 0).count() as u32,
            completed: table.as_ref().and_then(|t| t.scrape(&hash)).map_or(0, |e| e.downloaded),
            seed_uploaded: seed.get(&hash).copied().unwrap_or(0),
            peers_uploaded: reported.uploaded,
            peers_downloaded: reported.downloaded,
        });
    }
    drop(table);
    Ok(images
        .into_iter()
        .map(|(name, (machines, fetching, (have, want), mut files))| {
            files.sort_by(|a, b| b.version.cmp(&a.version).then(a.role.cmp(&b.role)));
            let seed_uploaded = files.iter().map(|f| f.seed_uploaded).sum::<u64>();
            let peers_uploaded = files.iter().map(|f| f.peers_uploaded).sum::<u64>();
            let total = seed_uploaded + peers_uploaded;
            let (seed_per_sec, peers_per_sec) = history::image_points(&name, &samples);
            ImageSwarm {
                machines: machines.len(),
                fetching: fetching.len(),
                fetching_percent: (want > 0).then(|| (have.saturating_mul(100) / want).min(100) as u8),
                seed_uploaded,
                peers_uploaded,
                from_peers_share: (total > 0).then(|| peers_uploaded as f64 / total as f64),
                files,
                every_secs: history::EVERY.as_secs(),
                seed_per_sec,
                peers_per_sec,
                name,
            }
        })
        .collect())
}

/// A peer beside a machine in one swarm.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub address: String,
    /// The machine at that address, when the fleet knows it; `server` for the server's seed.
    pub mac: Option<String>,
    pub server: bool,
    pub left: u64,
}

/// One swarm a machine is in.
#[derive(Debug, Clone, Serialize)]
pub struct MachineSwarm {
    /// `name@version`, and the file's role in it.
    pub image: String,
    pub role: String,
    pub size: u64,
    pub left: u64,
    /// What it reported sending and getting in this swarm.
    pub uploaded: u64,
    pub downloaded: u64,
    pub last_seen_secs: u64,
    /// The other peers, fetching first (at most [`MAX_NEIGHBOURS`]), and how many in all.
    pub peers: Vec<Neighbour>,
    pub peer_count: usize,
}

/// The swarms a machine at `addresses` is in, as the tracker heard it, with the peers beside it.
pub fn machine_swarms(s: &AppState, addresses: &[Ipv4Addr]) -> Vec<MachineSwarm> {
    let Some(tracker) = s.tracker.as_deref() else { return vec![] };
    let manifests = s.catalog.all().unwrap_or_default();
    let files = files_by_hash(&manifests);
    let server = server_ip(s);
    let entries: Vec<_> = {
        let t = lock(tracker);
        addresses
            .iter()
            .flat_map(|ip| t.swarms_of(*ip, MAX_MACHINE_SWARMS))
            .take(MAX_MACHINE_SWARMS)
            .map(|(hash, me)| {
                let all = t.peers_of(&hash, usize::MAX);
                let others: Vec<_> = all.into_iter().filter(|p| p.address != me.address).collect();
                (hash, me, others)
            })
            .collect()
    };
    let mac_at: HashMap<Ipv4Addr, String> =
        s.fleet.read(|f, now| f.machines().flat_map(|m| m.ip().into_iter().chain(m.live_leases(now)).map(|i| (i, m.mac.to_string())).collect::<Vec<_>>()).collect());
    let now = std::time::Instant::now();
    entries
        .into_iter()
        .map(|(hash, me, others)| {
            let (image, version, role, size) = files.get(&hash).cloned().unwrap_or_else(|| ("(not in the catalog)".into(), 0, "?".into(), 0));
            MachineSwarm {
                image: format!("{image}@{version}"),
                role,
                size,
                left: me.left,
                uploaded: me.uploaded,
                downloaded: me.downloaded,
                last_seen_secs: now.saturating_duration_since(me.last_seen).as_secs(),
                peer_count: others.len(),
                peers: others
                    .iter()
                    .take(MAX_NEIGHBOURS)
                    .map(|p| Neighbour { address: p.address.to_string(), mac: mac_at.get(p.address.ip()).cloned(), server: Some(*p.address.ip()) == server, left: p.left })
                    .collect(),
            }
        })
        .collect()
}
