//! elchOS nodes checking in: the registry ([`swarmboot_checkin::registry`]) behind a lock, saved
//! to `nodes.sqlite` after each change, and its counters for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use swarmboot_checkin::order::{Order, OrderError, Queued, Taken};
use swarmboot_checkin::registry::{CommandError, Refused, Registry, RegistryConfig, Target};
use swarmboot_checkin::report::{self, CheckInReply, ReportError};
use swarmboot_manifest::SigningKey;
use swarmboot_swarm::locks::lock;

use crate::node_store::{NodeStore, NodeStoreError};

#[derive(Debug, Default)]
pub struct NodeStats {
    pub checkins: AtomicU64,
    /// Unreadable, unsigned or forged check-ins.
    pub bad_checkins: AtomicU64,
    /// Readable check-ins the registry refused (another live node's MAC, replayed, full).
    pub refused_checkins: AtomicU64,
}

/// Why a check-in got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CheckInFailure {
    #[error(transparent)]
    Bad(#[from] ReportError),
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Not from the address the server knows for that MAC (see `swarmboot_fleet`).
    #[error(transparent)]
    NotItsAddress(#[from] swarmboot_fleet::Refused),
    #[error(transparent)]
    Store(#[from] NodeStoreError),
}

/// What the fleet table takes from a check-in the registry took.
#[derive(Debug, Clone)]
pub struct CheckedIn {
    pub mac: String,
    pub image: String,
    pub uploaded: u64,
    pub leaving: bool,
}

/// Why an order queued nothing.
#[derive(Debug, thiserror::Error)]
pub enum OrderFailure {
    #[error(transparent)]
    Bad(#[from] OrderError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Store(#[from] NodeStoreError),
}

pub struct Nodes {
    inner: Mutex<Inner>,
    pub stats: NodeStats,
}

struct Inner {
    registry: Registry,
    store: NodeStore,
    taken: Taken,
}

impl Nodes {
    /// The registry as `store` saved it.
    pub fn open(cfg: RegistryConfig, store: NodeStore) -> Result<Self, NodeStoreError> {
        let (nodes, next_seq) = store.load()?;
        Ok(Nodes { inner: Mutex::new(Inner { registry: Registry::restore(cfg, nodes, next_seq), store, taken: Taken::default() }), stats: NodeStats::default() })
    }

    /// A check-in's body and signature header at unix time `now`; saved before the reply.
    /// `admit` says whether the check-in's MAC may come from where it came from.
    pub fn check_in(
        &self,
        body: &[u8],
        signature: Option<&str>,
        now: u64,
        admit: impl FnOnce(&str) -> Result<(), swarmboot_fleet::Refused>,
    ) -> Result<(CheckInReply, CheckedIn), CheckInFailure> {
        let (c, _key) = report::open(body, signature).inspect_err(|_| {
            self.stats.bad_checkins.fetch_add(1, Ordering::Relaxed);
        })?;
        admit(&c.mac).inspect_err(|_| {
            self.stats.refused_checkins.fetch_add(1, Ordering::Relaxed);
        })?;
        let checked = CheckedIn { mac: c.mac.clone(), image: c.image.clone(), uploaded: c.seeding.uploaded, leaving: c.leaving };
        let mut guard = lock(&self.inner);
        let Inner { registry, store, .. } = &mut *guard;
        let mac = c.mac.clone();
        let reply = registry.check_in(c, now).inspect_err(|_| {
            self.stats.refused_checkins.fetch_add(1, Ordering::Relaxed);
        })?;
        let forgotten = registry.take_forgotten();
        store.save(registry.nodes().get_key_value(&mac), &forgotten, registry.next_seq())?;
        self.stats.checkins.fetch_add(1, Ordering::Relaxed);
        Ok((reply, checked))
    }

    /// An operator's order (signed with `key`, the server's own) at unix time `now`: each
    /// target's command signed for its node's current key, saved, and numbered.
    pub fn order(&self, body: &[u8], signature: Option<&str>, key: &SigningKey, now: u64) -> Result<Queued, OrderFailure> {
        let mut guard = lock(&self.inner);
        let Inner { registry, store, taken } = &mut *guard;
        let o: Order = taken.open(body, signature, &key.public(), now)?;
        let target = if o.target == "all" { Target::All } else { Target::Node(o.target) };
        Self::queue(registry, store, key, &target, &o.action, now)
    }

    /// A command an operator gave through the dashboard (the handler checked the admin
    /// token): queued as an order's would be.
    pub fn command(&self, key: &SigningKey, target: &Target, action: &swarmboot_checkin::command::Action, now: u64) -> Result<Queued, OrderFailure> {
        let mut guard = lock(&self.inner);
        let Inner { registry, store, .. } = &mut *guard;
        Self::queue(registry, store, key, target, action, now)
    }

    fn queue(
        registry: &mut Registry,
        store: &mut NodeStore,
        key: &SigningKey,
        target: &Target,
        action: &swarmboot_checkin::command::Action,
        now: u64,
    ) -> Result<Queued, OrderFailure> {
        let commands = registry.command(key, target, action, now)?;
        store.save(commands.iter().filter_map(|(mac, _)| registry.nodes().get_key_value(mac)), &[], registry.next_seq())?;
        Ok(Queued { commands })
    }

    /// (live, lost) nodes at `now`, and bytes their last check-ins say they served per protocol.
    pub fn summary(&self, now: u64) -> NodeSummary {
        let guard = lock(&self.inner);
        let registry = &guard.registry;
        let mut s = NodeSummary::default();
        for n in registry.nodes().values() {
            if n.left || registry.is_lost(n, now) {
                s.lost += 1;
            } else {
                s.live += 1;
            }
            for served in &n.report.served {
                match s.served.iter_mut().find(|(p, _)| *p == served.protocol) {
                    Some((_, b)) => *b = b.saturating_add(served.bytes),
                    None => s.served.push((served.protocol.clone(), served.bytes)),
                }
            }
        }
        s.served.sort();
        s
    }

    /// The node at `mac` as the registry keeps it, and whether it is `live`, `lost` or `left`.
    pub fn get(&self, mac: &str, now: u64) -> Option<(swarmboot_checkin::registry::Node, &'static str)> {
        let guard = lock(&self.inner);
        let registry = &guard.registry;
        let n = registry.nodes().get(mac)?;
        let state = if n.left {
            "left"
        } else if registry.is_lost(n, now) {
            "lost"
        } else {
            "live"
        };
        Some((n.clone(), state))
    }

    /// The key the node at `mac` speaks with, while it is live.
    pub fn live_key(&self, mac: &str, now: u64) -> Option<String> {
        let guard = lock(&self.inner);
        let n = guard.registry.nodes().get(mac)?;
        (!n.left && !guard.registry.is_lost(n, now)).then(|| n.report.node_key.clone())
    }

    /// Every live node's shares, by MAC.
    pub fn live_shares(&self, now: u64) -> std::collections::HashMap<String, Vec<swarmboot_checkin::report::Share>> {
        let guard = lock(&self.inner);
        let registry = &guard.registry;
        registry.nodes().iter().filter(|(_, n)| !n.left && !registry.is_lost(n, now)).map(|(mac, n)| (mac.clone(), n.report.shares.clone())).collect()
    }

    /// What the node at `mac` last said, for the API: its check-in (disks, shares,
    /// bytes served, seeding), the commands waiting and what became of the last ones.
    pub fn view(&self, mac: &str, now: u64) -> Option<serde_json::Value> {
        let (n, state) = self.get(mac, now)?;
        let pending: Vec<_> = n.pending.iter().map(|p| serde_json::json!({ "seq": p.seq, "action": p.action, "expires": p.expires })).collect();
        Some(serde_json::json!({
            "state": state,
            "first_seen": n.first_seen,
            "last_checkin": n.last_checkin,
            "image": n.report.image,
            "uptime_secs": n.report.uptime_secs,
            "disks": n.report.disks,
            "shares": n.report.shares,
            "served": n.report.served,
            "seeding": n.report.seeding,
            "pending": pending,
            "history": n.history,
        }))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    pub live: u64,
    pub lost: u64,
    /// (protocol, bytes) over every node's last check-in.
    pub served: Vec<(String, u64)>,
}
