//! A node's check-in: what it is, what it has and shares, what it served, and what became of
//! the commands it was given; signed with the key the node made at boot.
//!
//! On the wire: `POST /api/v1/checkin` with the JSON body and the signature in the
//! [`SIGNATURE_HEADER`] header (over `"swarmboot node check-in v1\0"` and the body exactly as
//! sent). The signature proves the sender holds the node key the body names; the server's
//! registry decides whether that key may speak for that machine ([`crate::registry`]). A
//! check-in's `counter` grows with each one a boot sends, so a recorded check-in replayed later
//! is refused rather than keeping a dead node alive.

use serde::{Deserialize, Serialize};
use swarmboot_manifest::{PublicKey, SigningKey};

use crate::command::{Ack, SignedCommand, MAX_PENDING_ACKS};

/// The HTTP header the node's signature travels in.
pub const SIGNATURE_HEADER: &str = "swarmboot-node-signature";
const DOMAIN: &[u8] = b"swarmboot node check-in v1\0";
/// Most bytes a check-in may have (the server reads no more).
pub const MAX_CHECKIN_LEN: usize = 256 * 1024;
/// Most disks, shares and counters one check-in may list.
pub const MAX_DISKS: usize = 256;
pub const MAX_SHARES: usize = 256;
pub const MAX_SERVED: usize = 1024;
/// Longest text in any field (names, paths, URLs, reasons).
pub const MAX_TEXT: usize = 1024;

/// One check-in, as the node sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// The machine's MAC address, lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The public key the node made at this boot, 64 hex digits.
    pub node_key: String,
    /// 1 for a boot's first check-in, then one more each time.
    pub counter: u64,
    /// `NAME@VERSION` the node booted.
    pub image: String,
    pub uptime_secs: u64,
    /// The node is going away (shut down or rebooting): the server lets its key go at once
    /// rather than after the missed check-ins, so the next boot's key is taken.
    #[serde(default)]
    pub leaving: bool,
    pub disks: Vec<Disk>,
    pub shares: Vec<Share>,
    pub served: Vec<Served>,
    pub seeding: Seeding,
    pub acks: Vec<Ack>,
}

/// A block device the node found, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// `/dev/sda1`, `/dev/md127`, …
    pub device: String,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub size: u64,
    /// Bytes in use (mounted filesystems only).
    pub used: Option<u64>,
    /// Where it is mounted (read-only), or why it is not.
    pub mounted_at: Option<String>,
    pub why_not: Option<String>,
    /// Labelled `ELCHOS-DATA`: space the owner gives (the only disk the node may write).
    pub donated: bool,
}

/// A directory the node shares, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub name: String,
    pub path: String,
    pub urls: Vec<String>,
}

/// Bytes and requests served from one share over one protocol since the node's statistics
/// began (they survive agent restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Served {
    /// `http`, `ftp` or `adc`.
    pub protocol: String,
    pub share: String,
    pub bytes: u64,
    pub requests: u64,
}

/// What the node's seeder does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeding {
    pub torrents: u32,
    pub peers: u32,
    pub uploaded: u64,
}

/// The server's answer to a check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInReply {
    /// Seconds until the next check-in.
    pub interval_secs: u64,
    /// How many of the check-in's acknowledgements the server recorded (the node drops them).
    pub acks_taken: usize,
    pub commands: Vec<SignedCommand>,
    /// The port of the server's ADC hub, when it runs one (`[adc] enable`): the node's ADC
    /// client joins it at the address it reaches the server by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adc_port: Option<u16>,
}

/// Why a check-in could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("a check-in of {0} bytes, more than {MAX_CHECKIN_LEN}")]
    TooLong(usize),
    #[error("no {SIGNATURE_HEADER} header: a check-in is signed with the node's key")]
    Unsigned,
    #[error("the check-in's signature does not verify with the node key it names (forged or damaged)")]
    BadSignature,
    #[error("not a check-in: {0}")]
    Malformed(String),
}

/// The body and the signature (hex) a node sends.
pub fn seal(key: &SigningKey, c: &CheckIn) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(c).expect("a check-in serializes");
    let sig = key.sign_in(DOMAIN, &body);
    (body, sig)
}

/// Reads a check-in: bounded, signed by the key it names, every field within its limits.
pub fn open(body: &[u8], signature: Option<&str>) -> Result<(CheckIn, PublicKey), ReportError> {
    if body.len() > MAX_CHECKIN_LEN {
        return Err(ReportError::TooLong(body.len()));
    }
    let signature = signature.ok_or(ReportError::Unsigned)?;
    let c: CheckIn = serde_json::from_slice(body).map_err(|e| ReportError::Malformed(e.to_string()))?;
    let key = PublicKey::from_hex(&c.node_key).map_err(|e| ReportError::Malformed(format!("node_key: {e}")))?;
    key.verify_in(DOMAIN, body, signature).map_err(|_| ReportError::BadSignature)?;
    check_limits(&c).map_err(ReportError::Malformed)?;
    Ok((c, key))
}

/// Whether `mac` reads as `aa:bb:cc:dd:ee:ff` (lowercase hex).
pub fn is_mac(mac: &str) -> bool {
    mac.len() == 17 && mac.split(':').count() == 6 && mac.split(':').all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
}

fn check_limits(c: &CheckIn) -> Result<(), String> {
    if !is_mac(&c.mac) {
        return Err(format!("mac {:?} is not a lowercase aa:bb:cc:dd:ee:ff", c.mac.chars().take(40).collect::<String>()));
    }
    let counts = [("disks", c.disks.len(), MAX_DISKS), ("shares", c.shares.len(), MAX_SHARES), ("served", c.served.len(), MAX_SERVED), ("acks", c.acks.len(), MAX_PENDING_ACKS)];
    if let Some((what, n, max)) = counts.iter().find(|(_, n, max)| n > max) {
        return Err(format!("{n} {what}, more than {max}"));
    }
    let mut texts: Vec<&str> = vec![&c.image];
    for d in &c.disks {
        texts.extend([d.device.as_str()]);
        texts.extend([&d.fstype, &d.label, &d.mounted_at, &d.why_not].into_iter().flatten().map(String::as_str));
    }
    for s in &c.shares {
        if s.urls.len() > 16 {
            return Err(format!("{} URLs for one share, more than 16", s.urls.len()));
        }
        texts.extend([s.name.as_str(), s.path.as_str()]);
        texts.extend(s.urls.iter().map(String::as_str));
    }
    texts.extend(c.served.iter().flat_map(|s| [s.protocol.as_str(), s.share.as_str()]));
    texts.extend(c.acks.iter().map(|a| a.outcome.as_str()));
    match texts.iter().find(|t| t.len() > MAX_TEXT || t.chars().any(char::is_control)) {
        Some(t) => Err(format!("a field longer than {MAX_TEXT} bytes or with control characters: {:?}…", t.chars().take(40).collect::<String>())),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn checkin(key: &SigningKey, counter: u64) -> CheckIn {
        CheckIn {
            mac: "52:54:00:aa:bb:01".into(),
            node_key: key.public().to_hex(),
            counter,
            image: "elchos@1".into(),
            uptime_secs: 30,
            leaving: false,
            disks: vec![Disk {
                device: "/dev/vdb1".into(),
                fstype: Some("ext4".into()),
                label: Some("music".into()),
                size: 64 << 20,
                used: Some(10 << 20),
                mounted_at: Some("/srv/elchos/music".into()),
                why_not: None,
                donated: false,
            }],
            shares: vec![Share { name: "music".into(), path: "/srv/elchos/music".into(), urls: vec!["http://10.77.0.100/music/".into()] }],
            served: vec![Served { protocol: "http".into(), share: "music".into(), bytes: 1234, requests: 2 }],
            seeding: Seeding { torrents: 1, peers: 2, uploaded: 99 },
            acks: vec![],
        }
    }

    #[test]
    fn a_sealed_check_in_opens_under_the_key_it_names_and_nothing_else() {
        let node = SigningKey::from_seed([5; 32]);
        let c = checkin(&node, 1);
        let (body, sig) = seal(&node, &c);
        assert_eq!(open(&body, Some(&sig)), Ok((c.clone(), node.public())));
        assert_eq!(open(&body, None), Err(ReportError::Unsigned));
        // Another node's key in the body, this node's signature: refused.
        let other = SigningKey::from_seed([6; 32]);
        let (body2, _) = seal(&other, &CheckIn { node_key: other.public().to_hex(), ..c.clone() });
        assert_eq!(open(&body2, Some(&sig)), Err(ReportError::BadSignature));
        // One byte changed.
        let mut tampered = body.clone();
        let at = tampered.windows(4).position(|w| w == b"1234").unwrap();
        tampered[at] = b'9';
        assert_eq!(open(&tampered, Some(&sig)), Err(ReportError::BadSignature));
        for s in ["", "zz", &sig[..10]] {
            assert_eq!(open(&body, Some(s)), Err(ReportError::BadSignature), "{s:?}");
        }
    }

    #[test]
    fn hostile_check_ins_are_bounded() {
        let node = SigningKey::from_seed([5; 32]);
        let sealed = |c: &CheckIn| seal(&node, c);
        assert!(matches!(open(&vec![b' '; MAX_CHECKIN_LEN + 1], Some("00")), Err(ReportError::TooLong(_))));
        let cases: Vec<(&str, CheckIn)> = vec![
            ("mac", CheckIn { mac: "52:54:00:AA:BB:01".into(), ..checkin(&node, 1) }),
            ("mac", CheckIn { mac: "not a mac".into(), ..checkin(&node, 1) }),
            ("disks", CheckIn { disks: vec![checkin(&node, 1).disks[0].clone(); MAX_DISKS + 1], ..checkin(&node, 1) }),
            ("control", CheckIn { image: "elchos\u{1b}[2J".into(), ..checkin(&node, 1) }),
            ("longer", CheckIn { image: "x".repeat(MAX_TEXT + 1), ..checkin(&node, 1) }),
        ];
        for (what, c) in cases {
            let (body, sig) = sealed(&c);
            match open(&body, Some(&sig)) {
                Err(ReportError::Malformed(m)) => assert!(m.contains(what), "{what}: {m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(matches!(open(b"{\"mac\":1}", Some("00")), Err(ReportError::Malformed(_))));
    }
}
