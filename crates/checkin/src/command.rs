//! The server's signed commands to a node, and the node's gate.
//!
//! A command names the node it is for by the fingerprint of the key the node made at boot
//! (a key in `/run`, so a new one each boot): a command captured from one boot is refused by
//! every later boot, and by every other node. Within a boot, sequence numbers only grow: the
//! gate remembers the highest it let through and refuses a command at or below it (a replay).
//! The expiry is checked against the node's clock; the server sets it minutes ahead, so a
//! command held back (a node that was away) does not run long after the operator asked.
//!
//! On the wire a command is `{"command": "<JSON text>", "signature": "<128 hex>"}`: the
//! signature is over `"swarmboot node command v1\0"` and the JSON text exactly as sent, so the
//! text is checked before it is parsed and no other signed statement of the server's (a
//! manifest, a freshness line) can stand in for a command.

use serde::{Deserialize, Serialize};
use swarmboot_manifest::{PublicKey, SigningKey};

const DOMAIN: &[u8] = b"swarmboot node command v1\0";
/// Longer than any command (a share or image name is at most a few hundred bytes).
pub const MAX_COMMAND_LEN: usize = 4096;

/// What a node is told to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    /// Restart the machine (it comes back through PXE).
    Reboot,
    /// Look for disks again (mount what is new, forget what is gone).
    RescanDisks,
    /// Boot this image the next time the machine starts (the server has assigned it; the node
    /// shows it and reboots when told to).
    BootNext { image: String },
    /// Stop sharing this share (by its name on the node's page) until the next boot.
    StopSharing { share: String },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Reboot => write!(f, "reboot"),
            Action::RescanDisks => write!(f, "rescan-disks"),
            Action::BootNext { image } => write!(f, "boot {image} next time"),
            Action::StopSharing { share } => write!(f, "stop-sharing {share}"),
        }
    }
}

/// One command, as the server signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Grows with every command the server issues to this node.
    pub seq: u64,
    /// The machine (MAC address, `aa:bb:…`), for people reading logs.
    pub mac: String,
    /// The fingerprint of the key the node made at this boot ([`PublicKey::fingerprint`]).
    pub node_key: String,
    /// Unix seconds: when the server issued it, and after when the node must refuse it.
    pub issued: u64,
    pub expires: u64,
    pub action: Action,
}

/// A command with the server's signature, as it travels in a check-in reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    /// The command's JSON text, exactly as signed.
    pub command: String,
    /// 64 bytes, hex.
    pub signature: String,
}

impl SignedCommand {
    pub fn sign(key: &SigningKey, c: &Command) -> Self {
        let command = serde_json::to_string(c).expect("a command serializes");
        let signature = key.sign_in(DOMAIN, command.as_bytes());
        SignedCommand { command, signature }
    }
}

/// Why a node refused a command (each is acknowledged as refused, with this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not signed by the server's key (the key that came with this image, {trusted}): forged or damaged")]
    Forged { trusted: String },
    #[error("not a command: {0}")]
    Malformed(String),
    #[error("for {mac} (node key {node_key}), not this node")]
    NotForThisNode { mac: String, node_key: String },
    #[error("command {seq} was let through or refused already (the last was {last}): replayed")]
    Replayed { seq: u64, last: u64 },
    #[error("expired at {expires} (unix time); it is {now} here")]
    Expired { expires: u64, now: u64 },
}

/// What the node reports about a command in its next check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// The command's sequence number, when the command could be read (a forged one's claim
    /// is reported as `None`: nothing it says is known to be the server's).
    pub seq: Option<u64>,
    /// `done`, or `refused: <why>`, or `failed: <why>` (let through, but it did not work).
    pub outcome: String,
}

/// The node's side: checks each command, lets each through at most once, and collects what
/// to acknowledge.
#[derive(Debug)]
pub struct Gate {
    trusted: PublicKey,
    mac: String,
    node_key: String,
    /// The highest sequence number seen from the server this boot (let through or refused
    /// as expired): none at or below it runs.
    last: Option<u64>,
    acks: Vec<Ack>,
}

/// At most this many acknowledgements wait for the next check-in (the oldest go first).
pub const MAX_PENDING_ACKS: usize = 64;

impl Gate {
    /// `trusted`: the server key that came with the image (never one from the network);
    /// `node_key`: the fingerprint of the key this node made at boot.
    pub fn new(trusted: PublicKey, mac: &str, node_key: &str) -> Self {
        Gate { trusted, mac: mac.to_ascii_lowercase(), node_key: node_key.to_string(), last: None, acks: Vec::new() }
    }

    /// Checks one signed command at unix time `now`: the command to run (it is recorded as
    /// let through first, so it can never run twice), or why not (recorded for the next
    /// check-in). The caller reports how a command it ran went with [`Gate::done`].
    pub fn admit(&mut self, signed: &SignedCommand, now: u64) -> Result<Command, Refusal> {
        let r = self.check(signed, now);
        if let Err(why) = &r {
            let seq = match why {
                Refusal::Forged { .. } | Refusal::Malformed(_) | Refusal::NotForThisNode { .. } => None,
                Refusal::Replayed { seq, .. } => Some(*seq),
                Refusal::Expired { .. } => serde_json::from_str::<Command>(&signed.command).ok().map(|c| c.seq),
            };
            self.ack(Ack { seq, outcome: format!("refused: {why}") });
        }
        r
    }

    fn check(&mut self, signed: &SignedCommand, now: u64) -> Result<Command, Refusal> {
        if signed.command.len() > MAX_COMMAND_LEN {
            return Err(Refusal::Malformed(format!("{} bytes, more than {MAX_COMMAND_LEN}", signed.command.len())));
        }
        let forged = || Refusal::Forged { trusted: self.trusted.fingerprint() };
        self.trusted.verify_in(DOMAIN, signed.command.as_bytes(), &signed.signature).map_err(|_| forged())?;
        // Signed by the server: what it says is the server's word from here on.
        let c: Command = serde_json::from_str(&signed.command).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if c.node_key != self.node_key || !c.mac.eq_ignore_ascii_case(&self.mac) {
            return Err(Refusal::NotForThisNode { mac: c.mac, node_key: c.node_key });
        }
        if let Some(last) = self.last.filter(|&last| c.seq <= last) {
            return Err(Refusal::Replayed { seq: c.seq, last });
        }
        // Seen: neither this number nor a lower one will run this boot, expired or not.
        self.last = Some(c.seq);
        if now > c.expires {
            return Err(Refusal::Expired { expires: c.expires, now });
        }
        Ok(c)
    }

    /// How a command [`Gate::admit`] let through went: `Ok` → `done`, `Err(why)` → `failed`.
    pub fn done(&mut self, seq: u64, outcome: Result<(), String>) {
        let outcome = match outcome {
            Ok(()) => "done".to_string(),
            Err(why) => format!("failed: {why}"),
        };
        self.ack(Ack { seq: Some(seq), outcome });
    }

    fn ack(&mut self, a: Ack) {
        if self.acks.len() == MAX_PENDING_ACKS {
            self.acks.remove(0);
        }
        self.acks.push(a);
    }

    /// The acknowledgements for the next check-in; they stay until [`Gate::acknowledged`].
    pub fn pending_acks(&self) -> &[Ack] {
        &self.acks
    }

    /// The server took the first `n` acknowledgements (its reply to a check-in that carried them).
    pub fn acknowledged(&mut self, n: usize) {
        self.acks.drain(..n.min(self.acks.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "52:54:00:aa:bb:01";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    fn node_key() -> String {
        key(9).public().fingerprint()
    }

    fn cmd(seq: u64, expires: u64, action: Action) -> Command {
        Command { seq, mac: MAC.into(), node_key: node_key(), issued: 1000, expires, action }
    }

    fn gate(server: &SigningKey) -> Gate {
        Gate::new(server.public(), MAC, &node_key())
    }

    #[test]
    fn a_signed_command_for_this_boot_runs_once_and_is_acknowledged() {
        let server = key(1);
        let mut g = gate(&server);
        let c = cmd(7, 2000, Action::Reboot);
        let signed = SignedCommand::sign(&server, &c);
        assert_eq!(g.admit(&signed, 1500), Ok(c.clone()));
        g.done(7, Ok(()));
        // The same command again (a replayed reply, or the server sending it twice).
        assert_eq!(g.admit(&signed, 1500), Err(Refusal::Replayed { seq: 7, last: 7 }));
        let acks: Vec<(Option<u64>, &str)> = g.pending_acks().iter().map(|a| (a.seq, a.outcome.as_str())).collect();
        assert_eq!(acks[0], (Some(7), "done"));
        assert!(acks[1].1.starts_with("refused: command 7 was let through or refused already"), "{acks:?}");
        g.acknowledged(2);
        assert!(g.pending_acks().is_empty());
        // A later number runs; a lower one never.
        assert!(g.admit(&SignedCommand::sign(&server, &cmd(8, 2000, Action::RescanDisks)), 1500).is_ok());
        assert_eq!(g.admit(&SignedCommand::sign(&server, &cmd(5, 2000, Action::RescanDisks)), 1500), Err(Refusal::Replayed { seq: 5, last: 8 }));
    }

    #[test]
    fn forged_tampered_and_foreign_commands_are_refused() {
        let server = key(1);
        let mut g = gate(&server);
        // Signed by another key.
        let by_other = SignedCommand::sign(&key(2), &cmd(1, 2000, Action::Reboot));
        assert!(matches!(g.admit(&by_other, 1500), Err(Refusal::Forged { .. })));
        // The server's signature, another command text (the action changed, the sequence moved).
        let good = SignedCommand::sign(&server, &cmd(2, 2000, Action::RescanDisks));
        for (from, to) in [("rescan-disks", "reboot"), ("\"seq\":2", "\"seq\":3"), ("\"expires\":2000", "\"expires\":9999")] {
            let tampered = SignedCommand { command: good.command.replace(from, to), signature: good.signature.clone() };
            assert_ne!(tampered.command, good.command, "{from}");
            assert!(matches!(g.admit(&tampered, 1500), Err(Refusal::Forged { .. })), "{from} → {to}");
        }
        for sig in ["", "zz", &"00".repeat(64), &good.signature[..126]] {
            let bad = SignedCommand { command: good.command.clone(), signature: sig.to_string() };
            assert!(matches!(g.admit(&bad, 1500), Err(Refusal::Forged { .. })), "{sig:?}");
        }
        // Another statement of the server's key (not a command) cannot stand in for one.
        let raw = SignedCommand { command: good.command.clone(), signature: hex::encode(server.sign(good.command.as_bytes())) };
        assert!(matches!(g.admit(&raw, 1500), Err(Refusal::Forged { .. })));
        // For another node, or for this machine's earlier boot (another node key).
        let other_mac = Command { mac: "52:54:00:aa:bb:02".into(), ..cmd(3, 2000, Action::Reboot) };
        assert!(matches!(g.admit(&SignedCommand::sign(&server, &other_mac), 1500), Err(Refusal::NotForThisNode { .. })));
        let earlier_boot = Command { node_key: key(8).public().fingerprint(), ..cmd(4, 2000, Action::Reboot) };
        assert!(matches!(g.admit(&SignedCommand::sign(&server, &earlier_boot), 1500), Err(Refusal::NotForThisNode { .. })));
        // None of those counted as seen: the genuine command still runs.
        assert!(g.admit(&good, 1500).is_ok());
        assert!(g.pending_acks().iter().filter(|a| a.outcome.starts_with("refused: not signed by the server's key")).all(|a| a.seq.is_none()));
    }

    #[test]
    fn an_expired_command_is_refused_and_cannot_come_back() {
        let server = key(1);
        let mut g = gate(&server);
        let c = SignedCommand::sign(&server, &cmd(3, 2000, Action::Reboot));
        assert_eq!(g.admit(&c, 2001), Err(Refusal::Expired { expires: 2000, now: 2001 }));
        assert_eq!(g.pending_acks()[0].seq, Some(3));
        // Not even with the clock turned back.
        assert_eq!(g.admit(&c, 1500), Err(Refusal::Replayed { seq: 3, last: 3 }));
        // At the expiry second it still runs.
        assert!(g.admit(&SignedCommand::sign(&server, &cmd(4, 2000, Action::Reboot)), 2000).is_ok());
    }

    #[test]
    fn hostile_text_is_bounded_and_never_panics() {
        let server = key(1);
        let mut g = gate(&server);
        let huge = SignedCommand { command: "x".repeat(MAX_COMMAND_LEN + 1), signature: "00".repeat(64) };
        assert!(matches!(g.admit(&huge, 0), Err(Refusal::Malformed(_))));
        // Signed but not a command (unknown field, unknown action): malformed, not run.
        for text in [r#"{"seq":1}"#, r#"{"seq":1,"mac":"x","node_key":"y","issued":0,"expires":9,"action":{"do":"format-disks"}}"#, "[]", "\u{0}"] {
            let s = SignedCommand { command: text.into(), signature: server.sign_in(DOMAIN, text.as_bytes()) };
            assert!(matches!(g.admit(&s, 0), Err(Refusal::Malformed(_))), "{text}");
        }
        for i in 0..(MAX_PENDING_ACKS as u64 + 10) {
            let _ = g.admit(&SignedCommand::sign(&key(2), &cmd(i, 2000, Action::Reboot)), 0);
        }
        assert_eq!(g.pending_acks().len(), MAX_PENDING_ACKS, "bounded");
    }

    #[test]
    fn actions_read_as_an_operator_writes_them() {
        let json = |a: &Action| serde_json::to_string(a).unwrap();
        assert_eq!(json(&Action::Reboot), r#"{"do":"reboot"}"#);
        assert_eq!(json(&Action::StopSharing { share: "sda1".into() }), r#"{"do":"stop-sharing","share":"sda1"}"#);
        assert_eq!(Action::BootNext { image: "elchos@3".into() }.to_string(), "boot elchos@3 next time");
    }
}
