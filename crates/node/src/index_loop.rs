//! Keeps the server's index of this node's shares in step: a scan of the shares every
//! `--index-every` seconds (off the async workers), the changes sent as signed batches
//! (`swarmboot_namespace::Publisher` decides what goes), and now and then an empty batch to
//! ask whether the server still holds the index. It starts once the node has checked in (the
//! server takes batches only from a node's live key); refused batches (the server is away,
//! restarted) are tried again later; nothing here stops the agent.

use std::time::{Duration, Instant};

use swarmboot_manifest::SigningKey;
use swarmboot_namespace::batch::{self, IndexReply, SIGNATURE_HEADER};
use swarmboot_namespace::cursor::MAX_NODE_ENTRIES;
use swarmboot_namespace::Publisher;
use swarmboot_node::serve::Node;
use swarmboot_node::status::IndexState;
use tracing::{info, warn};

/// How often the server is asked whether it still holds the index, when nothing changed.
pub const PROBE_EVERY: Duration = Duration::from_secs(300);
/// After a failed batch.
const RETRY: Duration = Duration::from_secs(5);

pub struct IndexLoop {
    pub node: Node,
    pub server: String,
    pub node_key: SigningKey,
    pub mac: String,
    /// How often the shares are scanned.
    pub scan_every: Duration,
    /// Read each file's SHA-256 too (`--index-hashes`).
    pub hashes: bool,
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64)
}

impl IndexLoop {
    pub async fn run(self) {
        let url = swarmboot_urls::Urls::new(&self.server).index();
        let mut p = Publisher::new(&self.mac, &self.node_key.public().to_hex(), epoch_now());
        // The server takes batches only from a node that checked in with this key.
        while !self.node.status.read().expect("status lock").last_checkin.as_ref().is_some_and(|c| c.ok) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut next_scan = Instant::now();
        let mut next_probe = Instant::now() + PROBE_EVERY;
        let hashes = std::sync::Arc::new(std::sync::Mutex::new(swarmboot_node::index_scan::Hashes::default()));
        loop {
            if p.wants_scan() || Instant::now() >= next_scan {
                let shares: Vec<(String, std::sync::Arc<std::os::fd::OwnedFd>)> =
                    self.node.shares.read().expect("shares lock").iter().map(|(n, fd)| (n.clone(), fd.clone())).collect();
                let started = Instant::now();
                let (cache, hashing) = (hashes.clone(), self.hashes);
                let scanned = tokio::task::spawn_blocking(move || {
                    let refs: Vec<(&String, &std::os::fd::OwnedFd)> = shares.iter().map(|(n, fd)| (n, fd.as_ref())).collect();
                    let mut cache = cache.lock().expect("hash cache");
                    swarmboot_node::index_scan::scan(refs, MAX_NODE_ENTRIES as usize, hashing.then_some(&mut *cache))
                })
                .await;
                match scanned {
                    Ok(s) => {
                        let (skipped, cut) = (s.skipped, s.cut);
                        if s.cut {
                            warn!(entries = s.entries.len(), "more entries than the index takes: the rest are not indexed");
                        }
                        let n = s.entries.len();
                        p.scanned(s.entries);
                        let st = p.state();
                        if st.waiting > 0 {
                            info!(entries = n, changes = st.waiting, skipped, took_ms = started.elapsed().as_millis() as u64, "shares scanned for the index");
                        }
                        let scanned_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                        self.node.status.write().expect("status lock").index =
                            Some(IndexState { entries: st.held, waiting: st.waiting, skipped, truncated: cut, hashes: self.hashes, scanned_at });
                    }
                    Err(e) => warn!(error = %e, "scanning the shares failed"),
                }
                next_scan = Instant::now() + self.scan_every;
            }
            if Instant::now() >= next_probe {
                p.probe();
                next_probe = Instant::now() + PROBE_EVERY;
            }
            let Some(b) = p.next_batch() else {
                tokio::time::sleep_until(next_scan.min(next_probe).into()).await;
                continue;
            };
            let (body, signature) = batch::seal(&self.node_key, &b);
            let sent = swarmboot_fetch::http::post(&url, &[(SIGNATURE_HEADER, &signature)], body, 1 << 16, Duration::from_secs(30)).await;
            match sent {
                Ok((200, bytes)) => match serde_json::from_slice::<IndexReply>(&bytes) {
                    Ok(reply) => {
                        if let IndexReply::StartOver { why } = &reply {
                            info!(%why, "the server asks for the whole index again");
                        }
                        p.answered(&reply, epoch_now());
                        let st = p.state();
                        if let Some(i) = self.node.status.write().expect("status lock").index.as_mut() {
                            (i.entries, i.waiting) = (st.held, st.waiting);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "the server's answer to an index batch is unreadable");
                        tokio::time::sleep(RETRY).await;
                    }
                },
                Ok((code, bytes)) => {
                    warn!(code, answer = %String::from_utf8_lossy(&bytes).trim(), "index batch not taken; trying again");
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => {
                    warn!(error = %e, "index batch not sent; trying again");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}
