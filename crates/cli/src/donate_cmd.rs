//! `swarmboot donate`: give disk space to a boot server's datasets (issue 20; the seed's
//! "elephant" daemon). Until SIGTERM: check in with what is held (signed with the donor's key,
//! each dataset with its ticket), do what the server's signed reply says — fetch what to add
//! through the swarm (the server and other donors seed it), stop seeding and drop what to
//! remove — delete store files no held dataset lists, and seed everything held.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use swarmboot_checkin::donation::{self, DonorCheckIn, SignedDonorReply, SIGNATURE_HEADER};
use swarmboot_fetch::{http, FetchConfig, Seeds};
use swarmboot_manifest::PublicKey;
use swarmboot_swarm::engine::PeerListener;
use swarmboot_urls::Urls;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::donor_dir::DonorDir;

#[derive(Args)]
pub struct DonateArgs {
    /// The boot server, `http://host:port`.
    #[arg(long)]
    server: String,
    /// The space to give: bytes, or with K, M, G or T (powers of 1024: `100G` is 100 GiB).
    #[arg(long)]
    space: String,
    /// Where the datasets go (created; nothing outside it is touched).
    #[arg(long)]
    dir: PathBuf,
    /// The server's public key: 64 hex digits, or a file holding them (`swarmboot key show`).
    #[arg(long)]
    server_key: String,
    /// Listen for peers here.
    #[arg(long, default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// Stop after this many check-ins (default: run until stopped).
    #[arg(long)]
    rounds: Option<u64>,
}

/// `100G` → 107374182400.
pub fn parse_space(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().with_context(|| format!("--space {text}: a number of bytes, or with K, M, G or T"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => anyhow::bail!("--space {text}: the unit is K, M, G or T"),
    };
    n.checked_mul(1u64 << shift).with_context(|| format!("--space {text}: too large"))
}

pub fn run(a: DonateArgs) -> anyhow::Result<()> {
    let server_key = crate::fetch_cmd::parse_key(&a.server_key)?;
    let space = parse_space(&a.space)?;
    let dir = DonorDir::open(&a.dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(donate(&a, dir, server_key, space))
}

/// A dataset's fetch in flight, and the files it covers.
struct Fetching {
    files: Vec<String>,
    task: JoinHandle<Result<Seeds, swarmboot_fetch::FetchError>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn donate(a: &DonateArgs, dir: DonorDir, server_key: PublicKey, space: u64) -> anyhow::Result<()> {
    let key = dir.key()?;
    let donor_key = key.public().to_hex();
    let urls = Urls::new(&a.server);
    let mut fetch_cfg = FetchConfig::new(&a.server, "datasets", &a.dir, vec![server_key]);
    fetch_cfg.listen = a.listen;
    // One listener for every dataset's engines.
    let listener = PeerListener::bind(a.listen, None).with_context(|| format!("--listen {}", a.listen))?;
    info!(donor = %key.public().fingerprint(), server = %a.server, space, dir = %a.dir.display(), "donating");
    // Each file is fetched and seeded once, by the first held dataset that lists it (one
    // listener serves a torrent once): which dataset covers each file, each dataset's seeds,
    // and the fetch each dataset has running (with the files it covers).
    let mut covered: BTreeMap<String, String> = BTreeMap::new();
    let mut seeding: BTreeMap<String, Vec<Seeds>> = BTreeMap::new();
    let mut fetching: BTreeMap<String, Fetching> = BTreeMap::new();
    let (mut counter, mut rounds, mut interval) = (0u64, 0u64, Duration::from_secs(30));
    let stop = crate::torrent_cmd::until_signal();
    tokio::pin!(stop);
    loop {
        // Fetches that ended: seeding now, or tried again later.
        let done: Vec<String> = fetching.iter().filter(|(_, f)| f.task.is_finished()).map(|(n, _)| n.clone()).collect();
        for name in done {
            let f = fetching.remove(&name).expect("listed");
            match f.task.await {
                Ok(Ok(seeds)) => {
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
        let held = dir.held(&server_key);
        counter = (counter + 1).max(now_ms());
        let c = DonorCheckIn { donor_key: donor_key.clone(), counter, capacity: space, holdings: dir.holdings(&held) };
        let (body, signature) = donation::seal(&key, &c);
        match http::post(&urls.donor(), &[(SIGNATURE_HEADER, &signature)], body, donation::MAX_REPLY_LEN, Duration::from_secs(30)).await {
            Ok((200, bytes)) => {
                let signed: SignedDonorReply = serde_json::from_slice(&bytes).context("the server's reply")?;
                match donation::open_reply(&signed, &server_key, &donor_key, counter) {
                    Ok(reply) => {
                        interval = Duration::from_secs(reply.interval_secs.clamp(1, 3600));
                        for name in &reply.remove {
                            for s in seeding.remove(name).unwrap_or_default() {
                                s.shutdown().await;
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
                            match http::get(&url, None, 64 << 20, Duration::from_secs(60)).await {
                                Ok(envelope) => match dir.record(&t.dataset, &envelope, &t.ticket, &server_key) {
                                    Ok(m) => info!(dataset = %m.name, files = m.files.len(), bytes = m.bytes(), "to hold, as the server said"),
                                    Err(e) => warn!(dataset = %t.dataset, "refused: {e:#}"),
                                },
                                Err(e) => warn!(%url, "cannot get the dataset's manifest: {e}"),
                            }
                        }
                    }
                    Err(e) => warn!("a reply that is not the server's answer to this check-in: nothing in it done ({e})"),
                }
            }
            Ok((code, bytes)) => warn!(code, "the server refused the check-in: {}", String::from_utf8_lossy(&bytes).trim()),
            Err(e) => warn!("cannot check in: {e}"),
        }
        // Reconcile, then fetch and seed what is held.
        let held = dir.held(&server_key);
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
        if a.rounds.is_some_and(|r| rounds >= r) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            r = &mut stop => { r?; break; }
        }
    }
    for (_, f) in fetching {
        f.task.abort();
    }
    for s in seeding.into_values().flatten() {
        s.shutdown().await;
    }
    listener.close();
    info!("stopped donating");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_space;

    #[test]
    fn space_reads_in_powers_of_1024() {
        assert_eq!(parse_space("100G").unwrap(), 100 << 30);
        assert_eq!(parse_space("512").unwrap(), 512);
        assert_eq!(parse_space("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_space("10 m").unwrap(), 10 << 20);
        assert!(parse_space("lots").is_err() && parse_space("5X").is_err() && parse_space("99999999999T").is_err());
    }
}
