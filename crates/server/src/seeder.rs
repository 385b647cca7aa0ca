//! The server's side of the swarm: every file of every image version is a swarm the tracker
//! serves (its whitelist) and, with `[swarm] seed = true`, one our engine seeds with
//! super-seeding, all on one port (`PeerListener`) bound to the boot interface.
//!
//! [`Seeder::sync`] makes the running set match the catalog (at start, then every few seconds
//! and whenever a manifest is served, so `swarmboot image add` on a running server is picked up
//! before its first machine announces; removed versions' files stop).
//! A file is hashed before it is first seeded; what was verified is remembered in
//! `<store>/verified.json` by size, mtime, ctime and inode, so a restart seeds a large store
//! at once and a file changed on disk is hashed again.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use swarmboot_image::Catalog;
use swarmboot_swarm::admission::Admission;
use swarmboot_swarm::engine::{random_peer_id, Engine, EngineConfig, PeerListener};
use swarmboot_swarm::locks::lock;
use swarmboot_swarm::storage::FileStorage;
use swarmboot_swarm::SwarmConfig;
use swarmboot_tracker::query::{AnnounceRequest, Event};
use swarmboot_tracker::PeerTable;
use tokio::sync::watch;
use tracing::{info, warn};

/// How the server seeds (from `[swarm]` and `[server]`).
#[derive(Debug, Clone)]
pub struct SeedSettings {
    pub seed: bool,
    pub listen: SocketAddr,
    /// The boot interface the seed's socket is bound to (`None`: any, for tests on loopback).
    pub device: Option<String>,
    pub upload_slots: usize,
    /// The server's address on the boot network: what the tracker hands out for the seed.
    pub address: Ipv4Addr,
    /// Incoming peer connections, in all and per address (`[swarm] max_peer_connections…`).
    pub peers: Admission,
}

struct Seeded {
    info_hash: [u8; 20],
    engine: Option<Engine>,
}

/// The seed engines and the tracker's whitelist.
pub struct Seeder {
    catalog: Catalog,
    tracker: Arc<Mutex<PeerTable>>,
    settings: SeedSettings,
    listener: Option<PeerListener>,
    peer_id: [u8; 20],
    seeds: Mutex<HashMap<String, Seeded>>,
    /// Bytes uploaded by seeds that have stopped since (their files left the catalog).
    uploaded_by_stopped: AtomicU64,
    /// Files hashed before seeding since start (a restart over a verified store hashes none).
    pub files_hashed: AtomicU64,
    /// Sync now (a manifest was asked for: its files may be new).
    wake: tokio::sync::Notify,
}

impl Seeder {
    /// Binds the seed's port (if seeding). Needs a tokio runtime.
    pub fn new(catalog: Catalog, tracker: Arc<Mutex<PeerTable>>, settings: SeedSettings) -> anyhow::Result<Seeder> {
        let listener = if settings.seed {
            let l = PeerListener::bind_with(settings.listen, settings.device.as_deref(), settings.peers.clone())
                .with_context(|| format!("swarm.listen: the seed cannot listen on {}", settings.listen))?;
            info!(listen = %l.local_addr(), device = ?settings.device, "seed listening");
            Some(l)
        } else {
            None
        };
        Ok(Seeder {
            catalog,
            tracker,
            settings,
            listener,
            peer_id: random_peer_id(),
            seeds: Mutex::new(HashMap::new()),
            uploaded_by_stopped: AtomicU64::new(0),
            files_hashed: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// The seed's address, if seeding.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(PeerListener::local_addr)
    }

    /// Asks for a sync soon (wakes the loop of [`Seeder::run`]; many asks make one sync).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Payload bytes the server's seed has uploaded since start.
    pub fn uploaded(&self) -> u64 {
        let running: u64 = lock(&self.seeds).values().filter_map(|s| s.engine.as_ref()).map(|e| e.progress().totals.uploaded).sum();
        running + self.uploaded_by_stopped.load(Ordering::Relaxed)
    }

    /// Payload bytes the server's seed has uploaded of each file it seeds now, by info hash.
    pub fn uploaded_by_file(&self) -> std::collections::HashMap<[u8; 20], u64> {
        lock(&self.seeds).values().filter_map(|s| s.engine.as_ref().map(|e| (s.info_hash, e.progress().totals.uploaded))).collect()
    }

    /// Files served by the tracker (and seeded, when seeding).
    pub fn files(&self) -> usize {
        lock(&self.seeds).len()
    }

    /// Makes the served swarms match the catalog's files.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let catalog = self.catalog.clone();
        let wanted: BTreeMap<String, u64> = tokio::task::spawn_blocking(move || catalog.served_files()).await?.context("reading the catalog")?;
        let known: Vec<String> = lock(&self.seeds).keys().cloned().collect();
        for sha in known.iter().filter(|s| !wanted.contains_key(*s)) {
            let gone = lock(&self.seeds).remove(sha);
            if let Some(g) = gone {
                lock(&self.tracker).forbid(&g.info_hash);
                if let Some(e) = g.engine {
                    e.shutdown().await;
                    self.uploaded_by_stopped.fetch_add(e.progress().totals.uploaded, Ordering::Relaxed);
                }
                info!(file = %sha, "no image or dataset uses this file any more: not served");
            }
        }
        for sha in wanted.keys().filter(|s| !known.contains(s)) {
            match self.start_one(sha).await {
                Ok(s) => {
                    lock(&self.seeds).insert(sha.clone(), s);
                }
                Err(e) => warn!(file = %sha, "not served through the swarm: {e:#}"),
            }
        }
        self.announce_self();
        Ok(())
    }

    async fn start_one(&self, sha: &str) -> anyhow::Result<Seeded> {
        let store = self.catalog.store().clone();
        let owned = sha.to_string();
        let (torrent, listed) = tokio::task::spawn_blocking(move || (store.ensure_torrent(&owned), store.ensure_piece_sha256(&owned))).await?;
        let (meta, _) = torrent?.context("the file is not in the store")?;
        if let Err(e) = listed {
            warn!(file = %sha, "no SHA-256 list of its pieces (clients check the whole file): {e}");
        }
        lock(&self.tracker).allow(meta.info_hash);
        let Some(listener) = &self.listener else {
            return Ok(Seeded { info_hash: meta.info_hash, engine: None });
        };
        let path = self.catalog.store().path_of(sha).context("a stored file's hash")?;
        let dir = path.parent().context("a stored file has a directory")?.to_path_buf();
        let record = VerifiedFiles::new(self.catalog.store().root());
        let (storage, have, hashed) = {
            let meta = meta.clone();
            let sha = sha.to_string();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let mut storage = FileStorage::open_existing(&meta, &dir)?;
                if record.is_verified(&sha, &path) {
                    let mut have = swarmboot_peerwire::Bitfield::new(meta.pieces.len() as u32);
                    for i in 0..meta.pieces.len() as u32 {
                        have.set(i);
                    }
                    return Ok((storage, have, false));
                }
                let started = Instant::now();
                let have = storage.verify(&meta)?;
                if have.is_complete() {
                    record.mark_verified(&sha, &path)?;
                }
                info!(file = %sha, bytes = meta.total_length(), secs = started.elapsed().as_secs_f64(), "hashed before seeding");
                Ok((storage, have, true))
            })
            .await??
        };
        if hashed {
            self.files_hashed.fetch_add(1, Ordering::Relaxed);
        }
        if !have.is_complete() {
            warn!(file = %sha, good = have.count(), pieces = have.len(), "the stored file does not match its torrent: seeding only the good pieces; machines get the rest over HTTP");
        }
        let mut swarm = SwarmConfig::new(&meta, self.peer_id);
        swarm.super_seed = true;
        swarm.super_seed_slots = self.settings.upload_slots;
        let cfg = EngineConfig { listen: listener.local_addr(), bind_device: None, tracker: None, peers: vec![], max_announce_interval: Duration::from_secs(5), swarm };
        let engine = Engine::start_on(listener, &meta, storage, have, cfg).await?;
        Ok(Seeded { info_hash: meta.info_hash, engine: Some(engine) })
    }

    /// The seed is a peer of every swarm it seeds: the tracker hears it directly (no HTTP to
    /// ourselves), as complete, with no transfer counts (those are the machines' own reports).
    fn announce_self(&self) {
        let Some(addr) = self.local_addr() else {
            return;
        };
        let hashes: Vec<[u8; 20]> = lock(&self.seeds).values().filter(|s| s.engine.is_some()).map(|s| s.info_hash).collect();
        let mut table = lock(&self.tracker);
        let now = Instant::now();
        for info_hash in hashes {
            let req = AnnounceRequest {
                info_hash,
                peer_id: self.peer_id,
                port: addr.port(),
                uploaded: 0,
                downloaded: 0,
                left: 0,
                event: Event::Update,
                numwant: 0,
                want_dict: false,
                claimed_ip: None,
            };
            let _ = table.announce(&req, self.settings.address, now);
        }
    }

    /// Syncs every `every` until `stop`, then stops every seed.
    pub async fn run(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            if let Err(e) = self.sync().await {
                warn!("seeding: {e:#}");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => break,
            }
        }
        let engines: Vec<Engine> = lock(&self.seeds).values().filter_map(|s| s.engine.clone()).collect();
        for e in engines {
            e.shutdown().await;
        }
        if let Some(l) = &self.listener {
            l.close();
        }
        Ok(())
    }
}

/// `<store>/verified.json`: files whose every piece was hashed, with what identified the file
/// on disk then. Written whole and synced (`swarmboot_durable::replace`).
struct VerifiedFiles {
    path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileIdentity {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> std::io::Result<FileIdentity> {
        let m = std::fs::metadata(path)?;
        Ok(FileIdentity {
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
        })
    }
}

/// One lock for every seeder in this process writing the record.
static RECORD_LOCK: Mutex<()> = Mutex::new(());

impl VerifiedFiles {
    fn new(store_root: &Path) -> Self {
        VerifiedFiles { path: store_root.join("verified.json") }
    }

    fn load(&self) -> BTreeMap<String, FileIdentity> {
        std::fs::read(&self.path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn is_verified(&self, sha: &str, file: &Path) -> bool {
        let _guard = lock(&RECORD_LOCK);
        match (self.load().get(sha), FileIdentity::of(file)) {
            (Some(recorded), Ok(now)) => *recorded == now,
            _ => false,
        }
    }

    fn mark_verified(&self, sha: &str, file: &Path) -> std::io::Result<()> {
        let _guard = lock(&RECORD_LOCK);
        let mut all = self.load();
        all.insert(sha.to_string(), FileIdentity::of(file)?);
        // Forget files no longer in the store.
        let store = swarmboot_image::Store::new(self.path.parent().unwrap_or(Path::new("/")).to_path_buf());
        all.retain(|h, _| h == sha || store.path_of(h).is_some_and(|p| p.exists()));
        swarmboot_durable::replace(&self.path, &serde_json::to_vec_pretty(&all).expect("serializes"), 0o640)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_no_longer_verified() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "ab".repeat(32);
        let file = dir.path().join("ab/abab").join(&sha);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"0123456789").unwrap();
        let v = VerifiedFiles::new(dir.path());
        assert!(!v.is_verified(&sha, &file));
        v.mark_verified(&sha, &file).unwrap();
        assert!(v.is_verified(&sha, &file));
        assert!(VerifiedFiles::new(dir.path()).is_verified(&sha, &file), "kept on disk");
        // Same length, rewritten in place: mtime/ctime move, so it is hashed again.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, b"9876543210").unwrap();
        assert!(!v.is_verified(&sha, &file));
        assert!(!v.is_verified(&"cd".repeat(32), &file), "another hash was never verified");
    }
}
