//! `swarmboot node list|show|command`: the elchOS nodes that check in, from the server's node
//! registry (`nodes.sqlite`, read beside the running server); commands go to the running
//! server as orders signed with its key (`POST /api/v1/orders`), which signs each node's
//! command for that node's boot.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use swarmboot_checkin::command::Action;
use swarmboot_checkin::order::{seal, Order, Queued, SIGNATURE_HEADER};
use swarmboot_checkin::registry::{Node, Registry, RegistryConfig};
use swarmboot_config::Config;
use swarmboot_server::node_store::NodeStore;

#[derive(Subcommand)]
pub enum NodeAction {
    /// Every node: live or lost, its image, disks, shares and bytes served.
    List {
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One node (by MAC address): its disks, shares, counters and commands.
    Show { mac: String },
    /// Have the running server send a command, signed with its key, to one node or to every
    /// live node with their next check-in: `reboot`, `rescan-disks`, `boot IMAGE` (the machine
    /// boots IMAGE from its next start on: assigned as `swarmboot assign MAC IMAGE` does, or as
    /// the default image for `all`; the node is told), `stop-sharing SHARE`.
    Command {
        /// A MAC address, or `all`.
        target: String,
        /// reboot | rescan-disks | boot | stop-sharing
        action: String,
        /// The image (`boot`) or share (`stop-sharing`).
        argument: Option<String>,
    },
}

/// What `list` and `show` read from the registry.
enum View {
    List { json: bool },
    Show { mac: String },
}

/// The command an operator typed.
fn action(name: &str, argument: Option<String>) -> anyhow::Result<Action> {
    Ok(match (name, argument) {
        ("reboot", None) => Action::Reboot,
        ("rescan-disks" | "rescan", None) => Action::RescanDisks,
        ("boot", Some(image)) => Action::BootNext { image },
        ("stop-sharing", Some(share)) => Action::StopSharing { share },
        ("boot", None) => anyhow::bail!("`boot` needs the image: swarmboot node command MAC boot IMAGE"),
        ("stop-sharing", None) => anyhow::bail!("`stop-sharing` needs the share's name (`swarmboot node show MAC` lists them)"),
        (other, arg) => anyhow::bail!("no command {other:?}{}: reboot, rescan-disks, boot IMAGE or stop-sharing SHARE", arg.map_or(String::new(), |a| format!(" {a}"))),
    })
}

fn order(cfg: &Config, target: &str, action: Action) -> anyhow::Result<()> {
    let target = if target == "all" { "all".to_string() } else { target.to_ascii_lowercase() };
    if target != "all" && !swarmboot_checkin::report::is_mac(&target) {
        anyhow::bail!("{target:?} is neither a MAC address (52:54:00:12:34:56) nor `all`");
    }
    let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir).context("the server's key signs the order: run this as root or as the server's user")?;
    let id = swarmboot_manifest::freshness::Nonce::random()?.to_hex();
    let o = Order { target, action: action.clone(), issued: unix_now(), id };
    let (body, signature) = seal(&key, &o);
    let url = swarmboot_urls::Urls::new(&crate::local_server::url(cfg)).orders();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, reply) = rt
        .block_on(swarmboot_fetch::http::post(&url, &[(SIGNATURE_HEADER, &signature)], body, 64 << 10, std::time::Duration::from_secs(10)))
        .with_context(|| format!("cannot reach the running server at {url} (is `swarmboot serve` running?)"))?;
    let text = String::from_utf8_lossy(&reply);
    if status != 200 {
        anyhow::bail!("the server refused: {}", text.trim());
    }
    let queued: Queued = serde_json::from_slice(&reply).with_context(|| format!("the server's reply: {text}"))?;
    for (mac, seq) in &queued.commands {
        println!("{mac}: command {seq} ({action}) goes out with its next check-in");
    }
    if queued.commands.is_empty() {
        println!("no live node: nothing sent");
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn state(registry: &Registry, n: &Node, now: u64) -> &'static str {
    if n.left {
        "left"
    } else if registry.is_lost(n, now) {
        "lost"
    } else {
        "live"
    }
}

fn fingerprint(hex: &str) -> String {
    swarmboot_manifest::PublicKey::from_hex(hex).map(|k| k.fingerprint()).unwrap_or_else(|_| "?".into())
}

pub fn run(path: &Path, what: NodeAction) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let what = match what {
        NodeAction::Command { target, action: name, argument } => {
            let action = action(&name, argument)?;
            if let Action::BootNext { image } = &action {
                // The server boots it: the assignment first (as `swarmboot assign` makes it),
                // then the node is told.
                let whom = if target == "all" { crate::assign::Target::Default } else { crate::assign::Target::parse(&target) };
                if matches!(whom, crate::assign::Target::Group(_)) {
                    anyhow::bail!("{target:?} is neither a MAC address (52:54:00:12:34:56) nor `all`");
                }
                println!("{}", crate::assign::apply(path, &whom, image)?);
            }
            return order(&cfg, &target, action);
        }
        NodeAction::List { json } => View::List { json },
        NodeAction::Show { mac } => View::Show { mac },
    };
    let store = NodeStore::open_read_only(&cfg.server.state_dir).context("no node registry yet: has `swarmboot serve` run, and has a node checked in?")?;
    let (nodes, next_seq) = store.load()?;
    let registry_cfg = RegistryConfig { interval: cfg.nodes.checkin_interval.0.into(), missed_before_lost: cfg.nodes.missed_before_lost, ..Default::default() };
    let registry = Registry::restore(registry_cfg, nodes, next_seq);
    let now = unix_now();
    match what {
        View::List { json } => {
            if json {
                let rows: Vec<serde_json::Value> = registry
                    .nodes()
                    .iter()
                    .map(|(mac, n)| {
                        serde_json::json!({"mac": mac, "state": state(&registry, n, now), "last_checkin": n.last_checkin, "first_seen": n.first_seen,
                            "node_key": n.report.node_key, "image": n.report.image, "uptime_secs": n.report.uptime_secs,
                            "disks": n.report.disks.iter().map(|d| serde_json::json!({"device": d.device, "fstype": d.fstype, "label": d.label, "size": d.size, "used": d.used, "mounted_at": d.mounted_at, "why_not": d.why_not, "donated": d.donated})).collect::<Vec<_>>(),
                            "shares": n.report.shares.iter().map(|s| serde_json::json!({"name": s.name, "path": s.path, "urls": s.urls})).collect::<Vec<_>>(),
                            "served": n.report.served.iter().map(|s| serde_json::json!({"protocol": s.protocol, "share": s.share, "bytes": s.bytes, "requests": s.requests})).collect::<Vec<_>>(),
                            "pending_commands": n.pending.len()})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("{:<18} {:<5} {:>9}  {:<16} {:>5} {:>6} {:>14}", "MAC", "STATE", "SEEN", "IMAGE", "DISKS", "SHARES", "SERVED BYTES");
            for (mac, n) in registry.nodes() {
                let mounted = n.report.disks.iter().filter(|d| d.mounted_at.is_some()).count();
                let served: u64 = n.report.served.iter().map(|s| s.bytes).fold(0, u64::saturating_add);
                println!(
                    "{mac:<18} {:<5} {:>8}s  {:<16} {:>5} {:>6} {served:>14}",
                    state(&registry, n, now),
                    now.saturating_sub(n.last_checkin),
                    n.report.image,
                    format!("{mounted}/{}", n.report.disks.len()),
                    n.report.shares.len()
                );
            }
            let live = registry.nodes().values().filter(|n| state(&registry, n, now) == "live").count();
            println!(
                "{} node(s), {live} live (check-in every {} s, lost after {} missed)",
                registry.nodes().len(),
                registry.config().interval,
                registry.config().missed_before_lost
            );
        }
        View::Show { mac } => {
            let mac = mac.to_ascii_lowercase();
            let n = registry.nodes().get(&mac).with_context(|| format!("no node {mac} has checked in (`swarmboot node list` shows those that have)"))?;
            let r = &n.report;
            println!(
                "{mac}: {} (last check-in {} s ago, first seen at {}), image {}, up {} s",
                state(&registry, n, now),
                now.saturating_sub(n.last_checkin),
                n.first_seen,
                r.image,
                r.uptime_secs
            );
            println!("node key {} (made at its boot)", fingerprint(&r.node_key));
            println!("disks:");
            for d in &r.disks {
                let what = match (&d.mounted_at, &d.why_not) {
                    _ if d.donated => "donated (ELCHOS-DATA)".to_string(),
                    (Some(at), _) => format!("mounted read-only at {at}"),
                    (None, Some(why)) => format!("not mounted: {why}"),
                    (None, None) => "not mounted".into(),
                };
                println!(
                    "  {:<14} {:<8} {:<16} {:>14} {:>14}  {what}",
                    d.device,
                    d.fstype.as_deref().unwrap_or("-"),
                    d.label.as_deref().unwrap_or("-"),
                    d.size,
                    d.used.map_or("-".into(), |u| u.to_string())
                );
            }
            println!("shares:");
            for s in &r.shares {
                println!("  {:<16} {}  {}", s.name, s.path, s.urls.join(" "));
            }
            println!("served:");
            for s in &r.served {
                println!("  {:<5} {:<16} {:>14} bytes {:>8} requests", s.protocol, s.share, s.bytes, s.requests);
            }
            println!("seeding: {} torrent(s), {} peer(s), {} bytes uploaded", r.seeding.torrents, r.seeding.peers, r.seeding.uploaded);
            for p in &n.pending {
                println!("waiting: command {} {} (expires at {})", p.seq, p.action, p.expires);
            }
            for o in &n.history {
                let what = o.action.as_ref().map_or(String::new(), |a| format!(" {a}"));
                println!("command {}{what}: {} (at {})", o.seq.map_or("?".into(), |s| s.to_string()), o.outcome, o.at);
            }
        }
    }
    Ok(())
}
