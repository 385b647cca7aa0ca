//! A donor's check-in and the server's answer (issue 20). A donor is an elchOS node with a data
//! disk or any host running `swarmboot donate`: it gives space, holds datasets, seeds them.
//!
//! On the wire: `POST /api/v1/donor` with the JSON [`DonorCheckIn`] and the donor key's
//! signature in [`SIGNATURE_HEADER`] (over `"swarmboot donor check-in v1\0"` and the body as
//! sent). Its `counter` is the donor's clock in milliseconds: the server takes only a counter
//! above the last it took from that key, so a recorded check-in replayed later keeps no dead
//! donor alive. The answer is a [`SignedDonorReply`]: the [`DonorReply`] as JSON text and the
//! server's signature over it; it names the donor key and the counter it answers, so it cannot
//! be replayed to another donor or to a later check-in — a donor deletes nothing on a word the
//! server did not sign for it, now.
//!
//! Each dataset the server tells a donor to add comes with a **ticket**: the server's signature
//! over (donor key, dataset). The donor shows it with that holding at every check-in; only
//! holdings with a valid ticket count as replicas, so donors that merely claim a dataset count
//! for nothing (`swarmboot_placement` takes the flag, the server checks the signature).

use serde::{Deserialize, Serialize};
use swarmboot_manifest::{PublicKey, SigningKey};

/// The HTTP header the donor's signature travels in.
pub const SIGNATURE_HEADER: &str = "swarmboot-donor-signature";
const CHECKIN_DOMAIN: &[u8] = b"swarmboot donor check-in v1\0";
const REPLY_DOMAIN: &[u8] = b"swarmboot donor reply v1\0";
const TICKET_DOMAIN: &[u8] = b"swarmboot dataset ticket v1\0";
/// Most bytes a donor's check-in may have.
pub const MAX_DONOR_CHECKIN_LEN: usize = 2 * 1024 * 1024;
/// Most datasets one check-in may list.
pub const MAX_HOLDINGS: usize = 10_000;
/// Most bytes of a reply a donor reads.
pub const MAX_REPLY_LEN: usize = 4 * 1024 * 1024;

/// What a donor says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DonorCheckIn {
    /// The donor's public key, 64 hex digits (made once and kept: it is the donor's identity).
    pub donor_key: String,
    /// The donor's clock, milliseconds since the Unix epoch (each check-in above the last).
    pub counter: u64,
    /// Bytes it gives.
    pub capacity: u64,
    pub holdings: Vec<DonorHolding>,
}

/// A dataset a donor holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DonorHolding {
    pub dataset: String,
    /// Per mille of its bytes on the donor's disk, verified.
    pub permille: u16,
    /// The server's ticket for it (hex), as the reply that told the donor to add it gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// What the server tells a donor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DonorReply {
    /// The donor and check-in it answers.
    pub donor_key: String,
    pub counter: u64,
    /// Seconds until the next check-in.
    pub interval_secs: u64,
    /// Datasets to fetch and seed, each with its ticket.
    pub add: Vec<Ticketed>,
    /// Datasets to drop (their files no held dataset lists go).
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticketed {
    pub dataset: String,
    pub ticket: String,
}

/// A [`DonorReply`] as it travels: its JSON text exactly as signed, and the server's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDonorReply {
    pub reply: String,
    /// 64 bytes, hex.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DonationError {
    #[error("a donor check-in of {0} bytes, more than {MAX_DONOR_CHECKIN_LEN}")]
    TooLong(usize),
    #[error("no {SIGNATURE_HEADER} header: a donor signs its check-in with its key")]
    Unsigned,
    #[error("the signature does not verify with the key it names (forged or damaged)")]
    BadSignature,
    #[error("not a donor check-in: {0}")]
    Malformed(String),
    #[error("the reply is not signed by the server's key (forged or damaged): nothing in it is done")]
    ForgedReply,
    #[error("the reply answers another donor or check-in: nothing in it is done")]
    NotOurs,
}

/// The body and signature (hex) a donor sends.
pub fn seal(key: &SigningKey, c: &DonorCheckIn) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(c).expect("a check-in serializes");
    let signature = key.sign_in(CHECKIN_DOMAIN, &body);
    (body, signature)
}

/// A donor's check-in: bounded, signed by the key it names, every name one a dataset can have.
pub fn open(body: &[u8], signature: Option<&str>) -> Result<(DonorCheckIn, PublicKey), DonationError> {
    if body.len() > MAX_DONOR_CHECKIN_LEN {
        return Err(DonationError::TooLong(body.len()));
    }
    let signature = signature.ok_or(DonationError::Unsigned)?;
    let c: DonorCheckIn = serde_json::from_slice(body).map_err(|e| DonationError::Malformed(e.to_string()))?;
    let key = PublicKey::from_hex(&c.donor_key).map_err(|e| DonationError::Malformed(format!("donor_key: {e}")))?;
    key.verify_in(CHECKIN_DOMAIN, body, signature).map_err(|_| DonationError::BadSignature)?;
    if c.holdings.len() > MAX_HOLDINGS {
        return Err(DonationError::Malformed(format!("{} holdings, at most {MAX_HOLDINGS}", c.holdings.len())));
    }
    for h in &c.holdings {
        if !is_dataset_name(&h.dataset) {
            return Err(DonationError::Malformed(format!("{:?} cannot name a dataset", h.dataset.chars().take(70).collect::<String>())));
        }
        if h.permille > 1000 {
            return Err(DonationError::Malformed(format!("{} per mille of {}", h.permille, h.dataset)));
        }
        if h.ticket.as_ref().is_some_and(|t| t.len() != 128) {
            return Err(DonationError::Malformed(format!("the ticket of {} is not 64 bytes of hex", h.dataset)));
        }
    }
    Ok((c, key))
}

/// Whether `name` is one a dataset (or image) can have: 1 to 64 of `a-z A-Z 0-9 . _ -`, not
/// starting with `.` or `-`; or a boot image's version as a dataset, `IMAGE@VERSION`.
pub fn is_dataset_name(name: &str) -> bool {
    let plain = |n: &str| (1..=64).contains(&n.len()) && !n.starts_with(['.', '-']) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match name.split_once('@') {
        // A boot image's version as a dataset: `elchos@2`.
        Some((image, version)) => plain(image) && (1..=10).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_digit()),
        None => plain(name),
    }
}

fn ticket_bytes(donor_key: &str, dataset: &str) -> Vec<u8> {
    [donor_key.as_bytes(), b"\0", dataset.as_bytes()].concat()
}

/// The ticket for `donor_key` to hold `dataset`.
pub fn ticket(server: &SigningKey, donor_key: &str, dataset: &str) -> String {
    server.sign_in(TICKET_DOMAIN, &ticket_bytes(donor_key, dataset))
}

/// Whether `ticket` is the server's for `donor_key` to hold `dataset`.
pub fn ticket_valid(server: &PublicKey, donor_key: &str, dataset: &str, ticket: &str) -> bool {
    server.verify_in(TICKET_DOMAIN, &ticket_bytes(donor_key, dataset), ticket).is_ok()
}

/// The reply, signed by the server.
pub fn sign_reply(server: &SigningKey, r: &DonorReply) -> SignedDonorReply {
    let reply = serde_json::to_string(r).expect("a reply serializes");
    let signature = server.sign_in(REPLY_DOMAIN, reply.as_bytes());
    SignedDonorReply { reply, signature }
}

/// The donor's reading of a reply: signed by `server`, for this donor and this check-in.
pub fn open_reply(signed: &SignedDonorReply, server: &PublicKey, donor_key: &str, counter: u64) -> Result<DonorReply, DonationError> {
    server.verify_in(REPLY_DOMAIN, signed.reply.as_bytes(), &signed.signature).map_err(|_| DonationError::ForgedReply)?;
    let r: DonorReply = serde_json::from_str(&signed.reply).map_err(|e| DonationError::Malformed(e.to_string()))?;
    if r.donor_key != donor_key || r.counter != counter {
        return Err(DonationError::NotOurs);
    }
    if let Some(bad) = r.add.iter().map(|t| t.dataset.as_str()).chain(r.remove.iter().map(String::as_str)).find(|n| !is_dataset_name(n)) {
        return Err(DonationError::Malformed(format!("{bad:?} cannot name a dataset")));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkin(key: &SigningKey) -> DonorCheckIn {
        DonorCheckIn {
            donor_key: key.public().to_hex(),
            counter: 1_700_000_000_000,
            capacity: 100 << 30,
            holdings: vec![DonorHolding { dataset: "books-10".into(), permille: 1000, ticket: None }],
        }
    }

    #[test]
    fn a_check_in_opens_only_as_signed_and_within_bounds() {
        let donor = SigningKey::from_seed([1; 32]);
        let (body, sig) = seal(&donor, &checkin(&donor));
        let (c, key) = open(&body, Some(&sig)).unwrap();
        assert_eq!((c, key.to_hex()), (checkin(&donor), donor.public().to_hex()));
        assert_eq!(open(&body, None), Err(DonationError::Unsigned));
        let mut forged = body.clone();
        forged[body.len() - 5] ^= 1;
        assert!(open(&forged, Some(&sig)).is_err());
        let other = SigningKey::from_seed([2; 32]);
        let (_, theirs) = seal(&other, &checkin(&other));
        assert_eq!(open(&body, Some(&theirs)), Err(DonationError::BadSignature), "signed by another key than it names");
        for name in ["books", "elchos@2", "a.b_c-1@4294967295"] {
            assert!(is_dataset_name(name), "{name}");
        }
        for name in ["", ".x", "-x", "a/b", "x@", "@1", "x@1@2", "x@-1", "x@12345678901", "x@1a", &"x".repeat(65)] {
            assert!(!is_dataset_name(name), "{name}");
        }
        for bad in [
            DonorHolding { dataset: "../etc".into(), permille: 0, ticket: None },
            DonorHolding { dataset: "x".into(), permille: 1001, ticket: None },
            DonorHolding { dataset: "x".into(), permille: 0, ticket: Some("ab".into()) },
        ] {
            let c = DonorCheckIn { holdings: vec![bad.clone()], ..checkin(&donor) };
            let (body, sig) = seal(&donor, &c);
            assert!(matches!(open(&body, Some(&sig)), Err(DonationError::Malformed(_))), "{bad:?}");
        }
        let many = DonorCheckIn { holdings: vec![checkin(&donor).holdings[0].clone(); MAX_HOLDINGS + 1], ..checkin(&donor) };
        let (body, sig) = seal(&donor, &many);
        assert!(matches!(open(&body, Some(&sig)), Err(DonationError::TooLong(_)) | Err(DonationError::Malformed(_))));
    }

    #[test]
    fn tickets_and_replies_hold_only_for_their_donor_dataset_and_check_in() {
        let server = SigningKey::from_seed([9; 32]);
        let (a, b) = (SigningKey::from_seed([1; 32]).public().to_hex(), SigningKey::from_seed([2; 32]).public().to_hex());
        let t = ticket(&server, &a, "books");
        assert!(ticket_valid(&server.public(), &a, "books", &t));
        assert!(!ticket_valid(&server.public(), &b, "books", &t), "another donor's ticket");
        assert!(!ticket_valid(&server.public(), &a, "films", &t), "another dataset's ticket");
        assert!(!ticket_valid(&SigningKey::from_seed([8; 32]).public(), &a, "books", &t), "another server's");
        assert!(!ticket_valid(&server.public(), &a, "books", "zz"));

        let r = DonorReply { donor_key: a.clone(), counter: 5, interval_secs: 60, add: vec![Ticketed { dataset: "books".into(), ticket: t }], remove: vec!["old".into()] };
        let signed = sign_reply(&server, &r);
        assert_eq!(open_reply(&signed, &server.public(), &a, 5), Ok(r.clone()));
        assert_eq!(open_reply(&signed, &server.public(), &b, 5), Err(DonationError::NotOurs));
        assert_eq!(open_reply(&signed, &server.public(), &a, 6), Err(DonationError::NotOurs), "an old answer to a later check-in");
        let mut tampered = signed.clone();
        tampered.reply = tampered.reply.replace("old", "all");
        assert_eq!(open_reply(&tampered, &server.public(), &a, 5), Err(DonationError::ForgedReply));
        assert_eq!(open_reply(&signed, &SigningKey::from_seed([8; 32]).public(), &a, 5), Err(DonationError::ForgedReply));
    }
}
