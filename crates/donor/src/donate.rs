//! The donor's loop: a thin shell over the check-in protocol (`swarmboot_checkin::donation`),
//! the fetch (`swarmboot_fetch::fetch_files`) and the donor's directory.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use swarmboot_checkin::donation::{self, DonorCheckIn, DonorHolding, SignedDonorReply, SIGNATURE_HEADER};
use swarmboot_fetch::{http, FetchConfig, Seeds};
use swarmboot_image::datasets::DatasetManifest;
use swarmboot_manifest::PublicKey;
use swarmboot_swarm::engine::PeerListener;
use swarmboot_urls::Urls;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::dir::{DonorDir, Held};
use crate::DonorError;

/// What a donor gives and to whom.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The boot server, `http://host:port`.
    pub server: String,
    /// The server's public key: manifests and replies are checked against it.
    pub server_key: PublicKey,
    /// Bytes given: the server assigns no more, and the donor takes no more.
    pub space: u64,
    /// The donor's directory (nothing outside it is touched).
    pub dir: PathBuf,
    /// Where to listen for peers.
    pub listen: SocketAddr,
    /// Stop after this many check-ins (`None`: until `stop`).
    pub rounds: Option<u64>,
    /// The boot image version this machine runs, as a dataset (`elchos@1`): said to be held
    /// (it is, in RAM, not in the donor's space), so the server tells the donor to take the
    /// image's next version where it has room — and machines hold an upgrade before they
    /// reboot into it.
    pub booted: Option<String>,
}

/// A dataset's fetch in flight, and the files it covers.
struct Fetching {
    files: Vec<String>,
    task: JoinHandle<Result<Seeds, swarmboot_fetch::FetchError>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The bytes `held` takes on disk: each file once, however many datasets list it.
fn bytes_on_disk<'a>(held: impl Iterator<Item = &'a DatasetManifest>) -> (u64, HashSet<&'a str>) {
    let mut seen = HashSet::new();
    let mut bytes = 0u64;
    for m in held {
        for f in &m.files {
            if seen.insert(f.sha256.as_str()) {
                bytes = bytes.saturating_add(f.size);
            }
        }
    }
    (bytes, seen)
}

/// Whether adding `m` to `held` stays within `space`.
fn fits(held: &[Held], m: &DatasetManifest, space: u64) -> bool {
    let (bytes, seen) = bytes_on_disk(held.iter().map(|h| &h.manifest));
    let mut adds: HashSet<&str> = HashSet::new();
    let extra: u64 = m.files.iter().filter(|f| !seen.contains(f.sha256.as_str()) && adds.insert(f.sha256.as_str())).map(|f| f.size).sum();
    bytes.saturating_add(extra) <= space
}

/// The size of the booted image version `name`, from its signed manifest (`None`, and said,
/// when it cannot be had: tried again next round).
async fn booted_size(urls: &Urls, name: &str, server_key: &PublicKey) -> Option<u64> {
    let envelope =
        http::get(&urls.dataset(name), None, 64 << 20, Duration::from_secs(60)).await.inspect_err(|e| warn!(image = name, "cannot get the booted image's manifest: {e}")).ok()?;
    crate::dir::open_manifest(&envelope, server_key, name).inspect_err(|e| warn!(image = name, "the booted image's manifest: {e}")).ok().map(|m| m.bytes())
}

/// What a check-in says: the space given and what is held, plus the booted image version —
/// unless a held dataset is it or succeeds it — with its size on top of the space (it is in
/// RAM, not in the space), so taking its successor in its place needs room only for the
/// successor.
fn with_booted(space: u64, mut holdings: Vec<DonorHolding>, held: &[Held], booted: Option<&(String, u64)>) -> (u64, Vec<DonorHolding>) {
    let Some((name, bytes)) = booted else { return (space, holdings) };
    if held.iter().any(|h| h.manifest.name == *name || h.manifest.successor_of.as_deref() == Some(name)) {
        return (space, holdings);
    }
    holdings.push(DonorHolding { dataset: name.clone(), permille: 1000, ticket: None });
    (space.saturating_add(*bytes), holdings)
}

/// Donates until `stop` completes (or `rounds` check-ins are done), then stops every fetch
/// and seed.
pub async fn donate(s: &Settings, stop: impl Future<Output = ()>) -> Result<(), DonorError> {
    let dir = DonorDir::open(&s.dir)?;
    let key = dir.key()?;
    let donor_key = key.public().to_hex();
    let urls = Urls::new(&s.server);
    let mut fetch_cfg = FetchConfig::new(&s.server, "datasets", &s.dir, vec![s.server_key]);
    fetch_cfg.listen = s.listen;
    // One listener for every dataset's engines.
    let listener = PeerListener::bind(s.listen, None).map_err(|e| DonorError::Listen { addr: s.listen, reason: e.to_string() })?;
    info!(donor = %key.public().fingerprint(), server = %s.server, space = s.space, dir = %s.dir.display(), "donating");
    // Each file is fetched and seeded once, by the first held dataset that lists it (one
    // listener serves a torrent once): which dataset covers each file, each dataset's seeds,
    // and the fetch each dataset has running (with the files it covers).
    let mut covered: BTreeMap<String, String> = BTreeMap::new();
    let mut seeding: BTreeMap<String, Vec<Seeds>> = BTreeMap::new();
    let mut fetching: BTreeMap<String, Fetching> = BTreeMap::new();
    let (mut counter, mut rounds, mut interval) = (0u64, 0u64, Duration::from_secs(30));
    // The booted image version's size, once its manifest was read.
    let mut booted: Option<(String, u64)> = None;
    tokio::pin!(stop);
    loop {
        // Fetches that ended: seeding now, or tried again later.
        let done: Vec<String> = fetching.iter().filter(|(_, f)| f.task.is_finished()).map(|(n, _)| n.clone()).collect();
        for name in done {
            let f = fetching.remove(&name).expect("listed");
            match f.task.await {
                Ok(Ok(seeds)) => {
                    for sha in &f.files {
                        dir.mark_verified(sha)?;
                    }
                    info!(dataset = %name, bytes = seeds.progress.total, from_peers = seeds.progress.from_peers, from_http = seeds.progress.from_http, "fetched and verified; seeding");
                    seeding.entry(name).or_default().push(seeds);
                }
                failed => {
                    match failed {
                        Ok(Err(e)) => warn!(dataset = %name, "fetch failed (tried again): {e}"),
                        Err(e) => warn!(dataset = %name, "fetch task ended: {e}"),
                        Ok(Ok(_)) => unreachable!("matched above"),
                    }
                    covered.retain(|sha, _| !f.files.contains(sha));
                }
            }
        }
        let held = dir.held(&s.server_key);
        if let (Some(name), None) = (&s.booted, &booted) {
            booted = booted_size(&urls, name, &s.server_key).await.map(|bytes| (name.clone(), bytes));
        }
        counter = (counter + 1).max(now_ms());
        let (capacity, holdings) = with_booted(s.space, dir.holdings(&held), &held, booted.as_ref());
        let c = DonorCheckIn { donor_key: donor_key.clone(), counter, capacity, holdings };
        let (body, signature) = donation::seal(&key, &c);
        match http::post(&urls.donor(), &[(SIGNATURE_HEADER, &signature)], body, donation::MAX_REPLY_LEN, Duration::from_secs(30)).await {
            Ok((200, bytes)) => {
                let signed: SignedDonorReply = serde_json::from_slice(&bytes).map_err(|e| DonorError::Reply(e.to_string()))?;
                match donation::open_reply(&signed, &s.server_key, &donor_key, counter) {
                    Ok(reply) => {
                        interval = Duration::from_secs(reply.interval_secs.clamp(1, 3600));
                        for name in &reply.remove {
                            for seeds in seeding.remove(name).unwrap_or_default() {
                                seeds.shutdown().await;
                            }
                            if let Some(f) = fetching.remove(name) {
                                f.task.abort();
                            }
                            // Files it covered that another dataset lists are fetched (checked,
                            // then seeded) for that one.
                            covered.retain(|_, by| by != name);
                            dir.forget(name)?;
                            info!(dataset = %name, "dropped, as the server said");
                        }
                        for t in &reply.add {
                            let url = urls.dataset(&t.dataset);
                            let envelope = match http::get(&url, None, 64 << 20, Duration::from_secs(60)).await {
                                Ok(e) => e,
                                Err(e) => {
                                    warn!(%url, "cannot get the dataset's manifest: {e}");
                                    continue;
                                }
                            };
                            // The server keeps within the space given; so does the donor, whatever
                            // a reply says.
                            let held = dir.held(&s.server_key);
                            match crate::dir::open_manifest(&envelope, &s.server_key, &t.dataset) {
                                Ok(m) if !fits(&held, &m, s.space) => {
                                    warn!(dataset = %t.dataset, bytes = m.bytes(), space = s.space, "refused: it would not fit in the space given")
                                }
                                Ok(_) => match dir.record(&t.dataset, &envelope, &t.ticket, &s.server_key) {
                                    Ok(m) => info!(dataset = %m.name, files = m.files.len(), bytes = m.bytes(), "to hold, as the server said"),
                                    Err(e) => warn!(dataset = %t.dataset, "cannot record it: {e}"),
                                },
                                Err(e) => warn!(dataset = %t.dataset, "refused: {e}"),
                            }
                        }
                    }
                    Err(e) => warn!("a reply that is not the server's answer to this check-in: nothing in it done ({e})"),
                }
            }
            Ok((code, bytes)) => warn!(code, "the server refused the check-in: {}", String::from_utf8_lossy(&bytes).trim()),
            Err(e) => warn!("cannot check in: {e}"),
        }
        // Reconcile (and the view), then fetch and seed what is held.
        let held = dir.held(&s.server_key);
        let (files, bytes) = dir.reconcile(&held)?;
        if files > 0 {
            info!(files, bytes, "deleted files no held dataset lists");
        }
        for h in &held {
            let name = h.manifest.name.clone();
            let wanted: Vec<_> = dir.wanted(&h.manifest).into_iter().filter(|w| !covered.contains_key(&w.sha256)).collect();
            if wanted.is_empty() || fetching.contains_key(&name) {
                continue;
            }
            let files: Vec<String> = wanted.iter().map(|w| w.sha256.clone()).collect();
            for sha in &files {
                covered.insert(sha.clone(), name.clone());
            }
            let (cfg, listener) = (fetch_cfg.clone(), listener.clone());
            fetching.insert(name, Fetching { files, task: tokio::spawn(async move { swarmboot_fetch::fetch_files(&cfg, &listener, wanted, |_| {}).await }) });
        }
        rounds += 1;
        if s.rounds.is_some_and(|r| rounds >= r) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stop => break,
        }
    }
    for (_, f) in fetching {
        f.task.abort();
    }
    for seeds in seeding.into_values().flatten() {
        seeds.shutdown().await;
    }
    listener.close();
    info!("stopped donating");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_image::datasets::DatasetFile;

    fn manifest(name: &str, files: &[(&str, u64)]) -> DatasetManifest {
        let files = files.iter().map(|(sha, size)| DatasetFile { path: format!("{sha}.bin"), size: *size, sha256: sha.repeat(64), info_hash: String::new() }).collect();
        DatasetManifest { name: name.into(), created: 1, replicas: 2, successor_of: None, files }
    }

    #[test]
    fn the_booted_image_is_claimed_until_its_successor_is_held() {
        let booted = ("elchos@1".to_string(), 140);
        let (space, holdings) = with_booted(100, vec![], &[], Some(&booted));
        assert_eq!((space, holdings.len(), holdings[0].dataset.as_str(), holdings[0].ticket.is_none()), (240, 1, "elchos@1", true));
        let next = DatasetManifest { successor_of: Some("elchos@1".into()), ..manifest("elchos@2", &[("a", 150)]) };
        let held = vec![Held { manifest: next, ticket: Some("t".into()) }];
        assert_eq!(with_booted(100, vec![], &held, Some(&booted)), (100, vec![]), "its successor is held: nothing more to say");
        assert_eq!(with_booted(100, vec![], &[], None), (100, vec![]));
    }

    #[test]
    fn a_dataset_fits_when_the_files_it_adds_fit() {
        let held = vec![Held { manifest: manifest("a", &[("a", 60), ("b", 30)]), ticket: None }];
        // b is held already: only c counts.
        assert!(fits(&held, &manifest("n", &[("b", 30), ("c", 10)]), 100));
        assert!(!fits(&held, &manifest("n", &[("b", 30), ("c", 11)]), 100));
        // A file listed twice counts once.
        assert!(fits(&[], &manifest("n", &[("c", 60), ("c", 60)]), 100));
        assert!(!fits(&[], &manifest("n", &[("c", 60), ("d", 60)]), 100));
    }
}
