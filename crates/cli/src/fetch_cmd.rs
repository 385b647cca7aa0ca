//! `swarmboot fetch`: an image from a boot server through the swarm, verified, with a progress
//! line; `--seed` keeps seeding until SIGTERM/SIGINT.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use swarmboot_fetch::{FetchConfig, FetchProgress};
use swarmboot_manifest::PublicKey;

#[derive(Args)]
pub struct FetchArgs {
    /// The boot server, `http://host:port`.
    #[arg(long)]
    server: String,
    /// NAME or NAME@VERSION (default: the latest version).
    #[arg(long)]
    image: String,
    /// Directory for the files (`kernel`, `initrd`, `rootfs`, `manifest.signed`).
    #[arg(long)]
    out: PathBuf,
    /// A key manifests may be signed with: 64 hex digits, or a file holding them (the server's
    /// `swarmboot key show`). Repeatable.
    #[arg(long = "key", required = true)]
    keys: Vec<String>,
    /// Keep seeding after the download until stopped.
    #[arg(long)]
    seed: bool,
    /// Listen for peers here.
    #[arg(long, default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// Bind the swarm's sockets to this interface.
    #[arg(long)]
    interface: Option<String>,
    /// No progress from the swarm for this long: fetch the missing pieces over HTTP.
    #[arg(long, default_value = "10s")]
    stall_timeout: humantime::Duration,
    /// Do not use the swarm at all (HTTP Range only).
    #[arg(long)]
    http_only: bool,
    /// Peers we upload to at once.
    #[arg(long, default_value_t = swarmboot_fetch::UPLOAD_SLOTS)]
    upload_slots: usize,
    /// Write counters as JSON here (when done, and again when seeding stops).
    #[arg(long)]
    stats: Option<PathBuf>,
}

pub fn parse_key(k: &str) -> anyhow::Result<PublicKey> {
    if let Ok(key) = PublicKey::from_hex(k) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(k).with_context(|| format!("--key {k}: neither 64 hex digits nor a readable key file"))?;
    PublicKey::from_key_file(&text).with_context(|| format!("--key {k}: the file holds no public key"))
}

fn write_stats(path: Option<&Path>, p: &FetchProgress, uploaded: u64, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let v = serde_json::json!({
        "total": p.total, "from_peers": p.from_peers, "from_server_seed": p.from_server_seed, "from_http": p.from_http, "uploaded": uploaded,
        "complete_secs": p.elapsed.as_secs_f64(), "fallback": p.fallback, "hash_failures": p.hash_failures, "listen": listen.map(|a| a.to_string()),
    });
    std::fs::write(path, serde_json::to_vec_pretty(&v)?).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let keys = args.keys.iter().map(|k| parse_key(k)).collect::<anyhow::Result<Vec<_>>>()?;
    let (image, version) = match args.image.split_once('@') {
        Some((n, v)) => (n.to_string(), Some(v.parse::<u32>().with_context(|| format!("--image: `{v}` is not a version number"))?)),
        None => (args.image.clone(), None),
    };
    let mut cfg = FetchConfig::new(&args.server, &image, &args.out, keys);
    cfg.version = version;
    cfg.listen = args.listen;
    cfg.bind_device = args.interface.clone();
    cfg.stall_timeout = args.stall_timeout.into();
    cfg.use_swarm = !args.http_only;
    cfg.upload_slots = args.upload_slots;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let tty = std::io::stderr().is_terminal();
        let mut last = (Instant::now(), 0u64);
        let fetched = swarmboot_fetch::fetch(&cfg, |p| {
            // One line a second (redrawn in place on a terminal).
            if last.0.elapsed().as_millis() < 950 && p.bytes_have != p.total {
                return;
            }
            let rate = (p.bytes_have.saturating_sub(last.1)) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
            last = (Instant::now(), p.bytes_have);
            let line = p.line(rate);
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
        })
        .await
        .map_err(|e| {
            let hint = if matches!(e, swarmboot_fetch::FetchError::Untrusted { .. }) {
                " (if it is the server's key you want, pass it with --key: `swarmboot key show` on the server prints it)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("fetching {} from {}{hint}", args.image, args.server))
        })?;
        let p = fetched.progress;
        let m = &fetched.manifest.manifest;
        eprintln!(
            "{}{}@{} verified (signed by {}): {} bytes in {:.2} s, {} from peers, {} over HTTP",
            if tty { "\n" } else { "" },
            m.name,
            m.version,
            fetched.manifest.signer.fingerprint(),
            p.total,
            p.elapsed.as_secs_f64(),
            p.from_peers,
            p.from_http
        );
        write_stats(args.stats.as_deref(), &p, fetched.uploaded(), fetched.listen_addr())?;
        if args.seed {
            eprintln!("seeding on {} until stopped", fetched.listen_addr().map_or("-".into(), |a| a.to_string()));
            crate::torrent_cmd::until_signal().await?;
            eprintln!("uploaded {} bytes", fetched.uploaded());
        }
        fetched.shutdown().await;
        write_stats(args.stats.as_deref(), &p, fetched.uploaded(), fetched.listen_addr())?;
        Ok(())
    })
}
