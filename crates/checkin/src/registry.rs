//! The server's registry of nodes (sans-IO: check-ins and the time in, replies out; the server
//! keeps it in SQLite and serves it).
//!
//! A node is known by its MAC address and speaks with the key it made at boot. The first
//! check-in of a MAC binds its key; while that node is live, a check-in for the MAC under
//! another key is refused (a machine on the LAN cannot take over a live node's identity, its
//! commands or its place on the dashboard). A node is lost after `missed_before_lost`
//! check-in intervals without one; then, or once it said it was leaving (shutting down,
//! rebooting), the next boot's key takes the MAC. Commands wait in the registry, signed for the
//! node's current key, until the node acknowledges them or they expire.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use swarmboot_manifest::SigningKey;

use crate::command::{Action, Command, SignedCommand, MAX_PENDING_ACKS};
use crate::report::{CheckIn, CheckInReply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Seconds between a node's check-ins (told to the node in each reply).
    pub interval: u64,
    /// Intervals without a check-in after which a node is lost.
    pub missed_before_lost: u32,
    /// Seconds a command may wait for its node before it expires.
    pub command_ttl: u64,
    /// Most nodes the registry holds (lost nodes are forgotten first when full).
    pub max_nodes: usize,
    /// Most commands waiting for one node.
    pub max_pending: usize,
    /// The server's ADC hub port (told to the node in each reply), when it runs one.
    pub adc_port: Option<u16>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig { interval: 30, missed_before_lost: 3, command_ttl: 600, max_nodes: 100_000, max_pending: 16, adc_port: None }
    }
}

/// A command waiting for its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub seq: u64,
    pub action: Action,
    pub expires: u64,
    pub signed: SignedCommand,
}

/// What became of a command (the node's acknowledgement, or the registry's word that it
/// expired undelivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub seq: Option<u64>,
    pub action: Option<Action>,
    pub outcome: String,
    pub at: u64,
}

/// Outcomes kept per node, newest last.
pub const HISTORY: usize = 32;

/// One node as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub first_seen: u64,
    pub last_checkin: u64,
    /// The node's last check-in (its acknowledgements taken out).
    pub report: CheckIn,
    /// The node said it was leaving: its key no longer holds the MAC.
    pub left: bool,
    pub pending: Vec<Pending>,
    pub history: VecDeque<Outcome>,
}

/// Why a check-in was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{mac} is a live node with another key (last check-in {last_checkin}); a new key takes the MAC once that node is lost or has said it is leaving")]
    KeyBound { mac: String, last_checkin: u64 },
    #[error("check-in {counter} of this boot came after {last}: replayed")]
    Replayed { counter: u64, last: u64 },
    #[error("the registry holds {0} live nodes, its most")]
    Full(usize),
}

/// Why a command could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no node {0} has checked in")]
    NoSuchNode(String),
    #[error("{0} is lost (no check-in for {1} s): a command could not reach it; it gets none until it checks in again")]
    Lost(String, u64),
    #[error("{0} has {1} commands waiting already")]
    TooMany(String, usize),
}

/// To whom a command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(String),
    /// Every live node.
    All,
}

#[derive(Debug, Clone)]
pub struct Registry {
    cfg: RegistryConfig,
    nodes: BTreeMap<String, Node>,
    /// The next command's sequence number (one series for all nodes: it grows for each).
    next_seq: u64,
    /// MACs forgotten to make room, for the shell to delete ([`Registry::take_forgotten`]).
    forgotten: Vec<String>,
}

impl Registry {
    pub fn new(cfg: RegistryConfig) -> Self {
        Registry { cfg, nodes: BTreeMap::new(), next_seq: 1, forgotten: Vec::new() }
    }

    /// A registry as saved (`nodes`, and the sequence numbers given out so far).
    pub fn restore(cfg: RegistryConfig, nodes: BTreeMap<String, Node>, next_seq: u64) -> Self {
        Registry { cfg, nodes, next_seq: next_seq.max(1), forgotten: Vec::new() }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    /// The MACs forgotten since the last call (to make room for new nodes).
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    /// Whether `node` missed its check-ins at unix time `now`.
    pub fn is_lost(&self, node: &Node, now: u64) -> bool {
        now.saturating_sub(node.last_checkin) > self.cfg.interval.saturating_mul(u64::from(self.cfg.missed_before_lost))
    }

    /// A check-in whose signature by `c.node_key` was verified ([`crate::report::open`]).
    pub fn check_in(&mut self, mut c: CheckIn, now: u64) -> Result<CheckInReply, Refused> {
        let acks = std::mem::take(&mut c.acks);
        match self.nodes.get(&c.mac) {
            Some(n) if n.report.node_key == c.node_key => {
                if c.counter <= n.report.counter {
                    return Err(Refused::Replayed { counter: c.counter, last: n.report.counter });
                }
            }
            Some(n) if !n.left && !self.is_lost(n, now) => return Err(Refused::KeyBound { mac: c.mac.clone(), last_checkin: n.last_checkin }),
            Some(_) => {}
            None => self.make_room(now)?,
        }
        let cfg = self.cfg.clone();
        let node = self.nodes.entry(c.mac.clone()).or_insert_with(|| Node {
            first_seen: now,
            last_checkin: now,
            report: c.clone(),
            left: false,
            pending: vec![],
            history: VecDeque::new(),
        });
        if node.report.node_key != c.node_key {
            // A new boot: what waited for the old key cannot reach this one.
            for p in std::mem::take(&mut node.pending) {
                record(node, Outcome { seq: Some(p.seq), action: Some(p.action), outcome: "dropped: the node booted again before taking it".into(), at: now });
            }
        }
        let acks_taken = acks.len().min(MAX_PENDING_ACKS);
        for a in acks.into_iter().take(MAX_PENDING_ACKS) {
            let action = a.seq.and_then(|s| node.pending.iter().find(|p| p.seq == s)).map(|p| p.action.clone());
            if let Some(s) = a.seq {
                node.pending.retain(|p| p.seq != s);
            }
            record(node, Outcome { seq: a.seq, action, outcome: a.outcome, at: now });
        }
        expire(node, now);
        node.last_checkin = now;
        node.left = c.leaving;
        node.report = c;
        let commands = if node.left { vec![] } else { node.pending.iter().map(|p| p.signed.clone()).collect() };
        Ok(CheckInReply { interval_secs: cfg.interval, acks_taken, commands, adc_port: cfg.adc_port })
    }

    /// A new MAC: room for it, forgetting the longest-lost node when full.
    fn make_room(&mut self, now: u64) -> Result<(), Refused> {
        if self.nodes.len() < self.cfg.max_nodes {
            return Ok(());
        }
        let oldest_lost = self.nodes.iter().filter(|(_, n)| n.left || self.is_lost(n, now)).min_by_key(|(_, n)| n.last_checkin).map(|(m, _)| m.clone());
        match oldest_lost {
            Some(mac) => {
                self.nodes.remove(&mac);
                self.forgotten.push(mac);
                Ok(())
            }
            None => Err(Refused::Full(self.nodes.len())),
        }
    }

    /// Signs `action` for `target` with the server's key: each live node's command goes out
    /// with its next check-in. Returns (MAC, sequence number) for each.
    pub fn command(&mut self, key: &SigningKey, target: &Target, action: &Action, now: u64) -> Result<Vec<(String, u64)>, CommandError> {
        let macs: Vec<String> = match target {
            Target::Node(mac) => {
                let mac = mac.to_ascii_lowercase();
                let n = self.nodes.get(&mac).ok_or_else(|| CommandError::NoSuchNode(mac.clone()))?;
                if n.left || self.is_lost(n, now) {
                    return Err(CommandError::Lost(mac, now.saturating_sub(n.last_checkin)));
                }
                vec![mac]
            }
            Target::All => self.nodes.iter().filter(|(_, n)| !n.left && !self.is_lost(n, now)).map(|(m, _)| m.clone()).collect(),
        };
        for mac in &macs {
            let n = &self.nodes[mac];
            if n.pending.len() >= self.cfg.max_pending {
                return Err(CommandError::TooMany(mac.clone(), n.pending.len()));
            }
        }
        let mut out = Vec::new();
        for mac in macs {
            let seq = self.next_seq;
            self.next_seq += 1;
            let node = self.nodes.get_mut(&mac).expect("listed above");
            expire(node, now);
            let c = Command {
                seq,
                mac: mac.clone(),
                node_key: swarmboot_manifest::PublicKey::from_hex(&node.report.node_key).map(|k| k.fingerprint()).unwrap_or_default(),
                issued: now,
                expires: now.saturating_add(self.cfg.command_ttl),
                action: action.clone(),
            };
            node.pending.push(Pending { seq, action: action.clone(), expires: c.expires, signed: SignedCommand::sign(key, &c) });
            out.push((mac, seq));
        }
        Ok(out)
    }
}

fn record(node: &mut Node, o: Outcome) {
    if node.history.len() == HISTORY {
        node.history.pop_front();
    }
    node.history.push_back(o);
}

fn expire(node: &mut Node, now: u64) {
    let (gone, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut node.pending).into_iter().partition(|p| now > p.expires);
    node.pending = kept;
    for p in gone {
        record(node, Outcome { seq: Some(p.seq), action: Some(p.action), outcome: "expired before the node took it".into(), at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Gate, Refusal};
    use crate::report::tests::checkin;

    const MAC: &str = "52:54:00:aa:bb:01";

    fn server() -> SigningKey {
        SigningKey::from_seed([1; 32])
    }

    fn boot(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    #[test]
    fn every_reply_names_the_interval_and_the_adc_hub_when_the_server_runs_one() {
        let mut r = Registry::new(RegistryConfig { interval: 10, adc_port: Some(1511), ..Default::default() });
        let reply = r.check_in(checkin(&boot(5), 1), 1000).unwrap();
        assert_eq!((reply.interval_secs, reply.adc_port), (10, Some(1511)));
        let json = serde_json::to_string(&reply).unwrap();
        assert!(json.contains(r#""adc_port":1511"#), "{json}");
        // No hub: the field is left out, and a reply without it reads as no hub.
        let reply = Registry::new(RegistryConfig::default()).check_in(checkin(&boot(5), 1), 1000).unwrap();
        let json = serde_json::to_string(&reply).unwrap();
        assert!(!json.contains("adc"), "{json}");
        assert_eq!(serde_json::from_str::<CheckInReply>(&json).unwrap().adc_port, None);
    }

    #[test]
    fn a_live_nodes_key_holds_its_mac_until_it_is_lost_or_leaves() {
        let mut r = Registry::new(RegistryConfig::default());
        let (first, impostor) = (boot(5), boot(6));
        assert_eq!(r.check_in(checkin(&first, 1), 1000).unwrap().interval_secs, 30);
        // Another key for the live MAC: refused, within and up to 3 intervals.
        for t in [1001, 1030, 1090] {
            assert_eq!(r.check_in(checkin(&impostor, 1), t), Err(Refused::KeyBound { mac: MAC.into(), last_checkin: 1000 }), "at {t}");
        }
        // The real node's check-ins keep it live; a recorded one replayed is refused.
        r.check_in(checkin(&first, 2), 1060).unwrap();
        assert_eq!(r.check_in(checkin(&first, 2), 1070), Err(Refused::Replayed { counter: 2, last: 2 }));
        assert!(matches!(r.check_in(checkin(&impostor, 1), 1150), Err(Refused::KeyBound { .. })));
        // Lost after 3 missed intervals: the next boot's key takes the MAC.
        assert!(r.is_lost(&r.nodes()[MAC], 1151));
        r.check_in(checkin(&impostor, 1), 1151).unwrap();
        assert_eq!(r.nodes()[MAC].report.node_key, impostor.public().to_hex());
        // A node that says it is leaving lets its key go at once.
        let next = boot(7);
        r.check_in(CheckIn { leaving: true, ..checkin(&impostor, 2) }, 1160).unwrap();
        r.check_in(checkin(&next, 1), 1161).unwrap();
    }

    #[test]
    fn a_command_reaches_its_node_once_and_its_outcome_is_kept() {
        let key = server();
        let mut r = Registry::new(RegistryConfig::default());
        let node = boot(5);
        r.check_in(checkin(&node, 1), 1000).unwrap();
        let queued = r.command(&key, &Target::Node(MAC.to_uppercase()), &Action::RescanDisks, 1001).unwrap();
        assert_eq!(queued, vec![(MAC.to_string(), 1)]);
        // The node's gate, with the server key from its image, lets it through.
        let mut gate = Gate::new(key.public(), MAC, &node.public().fingerprint());
        let reply = r.check_in(checkin(&node, 2), 1030).unwrap();
        assert_eq!(reply.commands.len(), 1);
        let c = gate.admit(&reply.commands[0], 1030).unwrap();
        assert_eq!(c.action, Action::RescanDisks);
        gate.done(c.seq, Ok(()));
        // Until acknowledged it is sent again; the gate refuses the repeat.
        let again = r.check_in(checkin(&node, 3), 1031).unwrap();
        assert!(matches!(gate.admit(&again.commands[0], 1031), Err(Refusal::Replayed { .. })));
        let acks = gate.pending_acks().to_vec();
        let reply = r.check_in(CheckIn { acks, ..checkin(&node, 4) }, 1060).unwrap();
        assert_eq!((reply.acks_taken, reply.commands.len()), (2, 0));
        let h = &r.nodes()[MAC].history;
        assert_eq!((h[0].seq, h[0].action.clone(), h[0].outcome.as_str()), (Some(1), Some(Action::RescanDisks), "done"));
    }

    #[test]
    fn commands_expire_go_only_to_live_nodes_and_die_with_their_boot() {
        let key = server();
        let cfg = RegistryConfig { command_ttl: 60, max_pending: 2, ..RegistryConfig::default() };
        let mut r = Registry::new(cfg);
        let (a, b) = (boot(5), boot(6));
        r.check_in(checkin(&a, 1), 1000).unwrap();
        r.check_in(CheckIn { mac: "52:54:00:aa:bb:02".into(), ..checkin(&b, 1) }, 1000).unwrap();
        assert_eq!(r.command(&key, &Target::All, &Action::Reboot, 1001).unwrap().len(), 2);
        r.command(&key, &Target::Node(MAC.into()), &Action::RescanDisks, 1001).unwrap();
        assert!(matches!(r.command(&key, &Target::Node(MAC.into()), &Action::RescanDisks, 1001), Err(CommandError::TooMany(_, 2))));
        assert!(matches!(r.command(&key, &Target::Node("52:54:00:00:00:09".into()), &Action::Reboot, 1001), Err(CommandError::NoSuchNode(_))));
        // 61 s later both of MAC's commands expired unsent.
        let reply = r.check_in(checkin(&a, 2), 1062).unwrap();
        assert!(reply.commands.is_empty());
        assert!(r.nodes()[MAC].history.iter().all(|o| o.outcome == "expired before the node took it"));
        // The other node is lost now: no command goes to it.
        assert!(matches!(r.command(&key, &Target::Node("52:54:00:aa:bb:02".into()), &Action::Reboot, 1100), Err(CommandError::Lost(..))));
        assert_eq!(r.command(&key, &Target::All, &Action::RescanDisks, 1100).unwrap(), vec![(MAC.to_string(), 4)], "refused commands took no number");
        // The node reboots (leaving), comes back with a new key: the waiting command is dropped.
        r.check_in(CheckIn { leaving: true, ..checkin(&a, 3) }, 1101).unwrap();
        let again = boot(7);
        assert!(r.check_in(checkin(&again, 1), 1120).unwrap().commands.is_empty());
        assert!(r.nodes()[MAC].history.back().unwrap().outcome.starts_with("dropped"));
    }

    #[test]
    fn a_full_registry_forgets_lost_nodes_first() {
        let mut r = Registry::new(RegistryConfig { max_nodes: 2, ..RegistryConfig::default() });
        let mac = |i: u8| format!("52:54:00:00:00:{i:02x}");
        let k = boot(5);
        r.check_in(CheckIn { mac: mac(1), ..checkin(&k, 1) }, 1000).unwrap();
        r.check_in(CheckIn { mac: mac(2), ..checkin(&k, 1) }, 1050).unwrap();
        assert_eq!(r.check_in(CheckIn { mac: mac(3), ..checkin(&k, 1) }, 1060), Err(Refused::Full(2)));
        // mac(1) is lost at 1091+: it gives its place.
        r.check_in(CheckIn { mac: mac(3), ..checkin(&k, 1) }, 1100).unwrap();
        assert!(!r.nodes().contains_key(&mac(1)) && r.nodes().contains_key(&mac(2)));
        assert_eq!(r.take_forgotten(), vec![mac(1)]);
        assert!(r.take_forgotten().is_empty());
    }
}
