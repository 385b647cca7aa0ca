//! `swarmboot torrent create | seed | get`: the swarm engine on its own, for operators, the
//! interoperability tests and the storm benchmark.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use swarmboot_peerwire::picker::Order;
use swarmboot_swarm::engine::{Engine, EngineConfig};
use swarmboot_swarm::storage::FileStorage;
use swarmboot_swarm::SwarmConfig;
use swarmboot_torrent::Metainfo;

#[derive(Subcommand)]
pub enum TorrentAction {
    /// Make a single-file .torrent of FILE.
    Create {
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Piece size in KiB (a power of two).
        #[arg(long, default_value_t = 256)]
        piece_kib: u32,
        #[arg(long)]
        announce: Option<String>,
        /// Mark it private (BEP 27: no DHT, no PEX).
        #[arg(long)]
        private: bool,
    },
    /// Seed a torrent whose data is already in DIR, until SIGTERM or SIGINT.
    Seed {
        torrent: PathBuf,
        /// Directory holding the torrent's file(s).
        #[arg(long)]
        data: PathBuf,
        /// Hand out every piece once before any twice (the boot server's seed).
        #[arg(long)]
        super_seed: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Download a torrent into DIR (resuming what is there), verify it, and exit; with
    /// --seed keep seeding until SIGTERM or SIGINT.
    Get {
        torrent: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        seed: bool,
        /// Fetch pieces strictly in order.
        #[arg(long)]
        in_order: bool,
        #[command(flatten)]
        net: NetArgs,
    },
}

#[derive(Args)]
pub struct NetArgs {
    /// Listen for peers here.
    #[arg(long, default_value = "0.0.0.0:6881")]
    listen: SocketAddr,
    /// Bind to this network interface.
    #[arg(long)]
    interface: Option<String>,
    /// Tracker announce URL (default: the torrent's).
    #[arg(long)]
    tracker: Option<String>,
    /// A peer to dial (repeatable).
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// Peers we upload to at once (one of them an optimistic slot that rotates).
    #[arg(long, default_value_t = 8)]
    upload_slots: usize,
    /// With --super-seed: peers served at once (each holds up to two offered pieces).
    #[arg(long, default_value_t = 4)]
    super_seed_slots: usize,
    /// Write counters as JSON here on exit.
    #[arg(long)]
    stats: Option<PathBuf>,
}

pub fn run(action: TorrentAction) -> anyhow::Result<()> {
    match action {
        TorrentAction::Create { file, output, piece_kib, announce, private } => create(&file, &output, piece_kib, announce.as_deref(), private),
        TorrentAction::Seed { torrent, data, super_seed, net } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(seed(&torrent, &data, super_seed, net))
        }
        TorrentAction::Get { torrent, out, seed, in_order, net } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(get(&torrent, &out, seed, in_order, net))
        }
    }
}

fn create(file: &Path, output: &Path, piece_kib: u32, announce: Option<&str>, private: bool) -> anyhow::Result<()> {
    anyhow::ensure!(piece_kib.is_power_of_two() && (16..=16384).contains(&piece_kib), "--piece-kib must be a power of two from 16 to 16384");
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).context("the file needs a UTF-8 name")?;
    let (meta, bytes) = Metainfo::single_file(name, &data, piece_kib * 1024, announce, private);
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("{}  {} pieces of {} KiB  info hash {}", output.display(), meta.pieces.len(), piece_kib, hex::encode(meta.info_hash));
    Ok(())
}

fn load(torrent: &Path) -> anyhow::Result<Metainfo> {
    let bytes = std::fs::read(torrent).with_context(|| format!("reading {}", torrent.display()))?;
    Metainfo::parse(&bytes).with_context(|| format!("{} is not a valid torrent", torrent.display()))
}

fn engine_config(meta: &Metainfo, net: &NetArgs, super_seed: bool, order: Order) -> EngineConfig {
    let mut swarm = SwarmConfig::new(meta, swarmboot_swarm::engine::random_peer_id());
    swarm.super_seed = super_seed;
    swarm.upload_slots = net.upload_slots;
    swarm.super_seed_slots = net.super_seed_slots;
    swarm.order = order;
    EngineConfig {
        listen: net.listen,
        bind_device: net.interface.clone(),
        tracker: net.tracker.clone(),
        peers: net.peers.clone(),
        max_announce_interval: Duration::from_secs(5),
        swarm,
    }
}

pub async fn until_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn write_stats(path: Option<&Path>, engine: &Engine, complete_after: Option<Duration>) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let p = engine.progress();
    let peers: Vec<_> =
        engine.peers().into_iter().map(|r| serde_json::json!({"addr": r.addr.to_string(), "downloaded": r.stats.downloaded, "uploaded": r.stats.uploaded})).collect();
    let v = serde_json::json!({
        "downloaded": p.totals.downloaded, "uploaded": p.totals.uploaded, "wasted": p.totals.wasted,
        "hash_failures": p.totals.hash_failures, "have": p.have, "pieces": p.pieces,
        "complete_secs": complete_after.map(|d| d.as_secs_f64()), "peers": peers,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&v)?).with_context(|| format!("writing {}", path.display()))
}

async fn seed(torrent: &Path, data: &Path, super_seed: bool, net: NetArgs) -> anyhow::Result<()> {
    let meta = load(torrent)?;
    let mut store = FileStorage::open_existing(&meta, data).with_context(|| format!("opening the torrent's files under {}", data.display()))?;
    let have = store.verify(&meta)?;
    anyhow::ensure!(have.is_complete(), "{} of {} pieces under {} match the torrent; seeding needs all of them", have.count(), have.len(), data.display());
    let engine = Engine::start(&meta, store, have, engine_config(&meta, &net, super_seed, Order::RarestFirst)).await?;
    eprintln!("seeding {} ({} bytes) on {}{}", meta.name, meta.total_length(), engine.local_addr(), if super_seed { ", super-seeding" } else { "" });
    let signal = until_signal();
    tokio::pin!(signal);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            r = &mut signal => { r?; break; }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let p = engine.progress();
                if p.totals.uploaded != last.1 {
                    let rate = (p.totals.uploaded - last.1) as f64 / last.0.elapsed().as_secs_f64();
                    eprintln!("uploaded {:.1} MiB ({:.2} copies)  {:.1} MB/s  {} peers, uploading to {}", p.totals.uploaded as f64 / 1048576.0, p.totals.uploaded as f64 / p.total_length.max(1) as f64, rate / 1e6, p.peers, p.uploading_to);
                }
                last = (Instant::now(), p.totals.uploaded);
            }
        }
    }
    engine.shutdown().await;
    write_stats(net.stats.as_deref(), &engine, None)?;
    let t = engine.progress().totals;
    eprintln!("uploaded {} bytes ({:.2} copies)", t.uploaded, t.uploaded as f64 / meta.total_length().max(1) as f64);
    Ok(())
}

async fn get(torrent: &Path, out: &Path, keep_seeding: bool, in_order: bool, net: NetArgs) -> anyhow::Result<()> {
    let meta = load(torrent)?;
    let mut store = FileStorage::create(&meta, out).with_context(|| format!("creating the torrent's files under {}", out.display()))?;
    // Files created just now hold nothing: skip hashing them (20 clients hashing 64 MiB of
    // zeros at once cost a boot storm half a second on 2 cores).
    let have = if store.is_fresh() { swarmboot_peerwire::Bitfield::new(meta.pieces.len() as u32) } else { store.verify(&meta)? };
    let order = if in_order { Order::InOrder } else { Order::RarestFirst };
    let started = Instant::now();
    let engine = Engine::start(&meta, store, have, engine_config(&meta, &net, false, order)).await?;
    let tty = std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64);
    let done = engine.wait_complete();
    tokio::pin!(done);
    let signal = until_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut done => break,
            r = &mut signal => {
                r?;
                engine.shutdown().await;
                write_stats(net.stats.as_deref(), &engine, None)?;
                anyhow::bail!("interrupted before the download completed");
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let p = engine.progress();
                let rate = (p.bytes_have - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), p.bytes_have);
                let eta = if rate > 0.0 { format!("{:.0}s", (p.total_length - p.bytes_have) as f64 / rate) } else { "-".into() };
                let line = format!("{:.1}/{:.1} MiB  {:3}%  {:.1} MB/s  {} peers ({} sending, {} receiving)  ETA {eta}", p.bytes_have as f64 / 1048576.0, p.total_length as f64 / 1048576.0, p.bytes_have * 100 / p.total_length.max(1), rate / 1e6, p.peers, p.sources, p.uploading_to);
                if tty { eprint!("\r{line}   "); } else { eprintln!("{line}"); }
                let _ = std::io::stderr().flush();
            }
        }
    }
    let took = started.elapsed();
    let t = engine.progress().totals;
    eprintln!(
        "{}complete: {} bytes in {:.2} s, {} bytes uploaded, {} wasted, {} hash failures",
        if tty { "\n" } else { "" },
        meta.total_length(),
        took.as_secs_f64(),
        t.uploaded,
        t.wasted,
        t.hash_failures
    );
    if keep_seeding {
        eprintln!("seeding on {} until stopped", engine.local_addr());
        until_signal().await?;
    }
    engine.shutdown().await;
    write_stats(net.stats.as_deref(), &engine, Some(took))?;
    Ok(())
}
