//! What a node sends to keep the server's index of its shares in step: `POST /api/v1/index`
//! with a JSON [`IndexBatch`] and the node's signature in the same header as its check-ins
//! (over `"swarmboot node index v1\0"` and the body as sent), and what the server answers.
//!
//! A node's index has an epoch (chosen by the node when it starts over, e.g. at boot) and a
//! sequence: batch 1 of an epoch starts over (`reset`: the server drops what it had of that
//! node), each later batch is the next number. The server takes only the batch it expects
//! next (see [`crate::cursor`]); anything else gets the number it expects, or a demand to
//! start over. So a lost reply is harmless (the node sends the same batch again; the server
//! says it already has it) and a server that lost its index asks for everything once.

use serde::{Deserialize, Serialize};
use swarmboot_manifest::{PublicKey, SigningKey};

use crate::entry::{check_path, check_share, Entry, EntryError, Key};

/// The header the node's signature travels in (the same as a check-in's).
pub const SIGNATURE_HEADER: &str = "swarmboot-node-signature";
const DOMAIN: &[u8] = b"swarmboot node index v1\0";
/// Most bytes one batch may have (the server reads no more).
pub const MAX_BATCH_LEN: usize = 4 << 20;
/// Most upserts plus removals in one batch.
pub const MAX_BATCH_CHANGES: usize = 10_000;

/// One batch of changes to a node's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexBatch {
    /// The machine's MAC, lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The key the node checks in with (64 hex digits).
    pub node_key: String,
    pub epoch: u64,
    /// 1 for an epoch's first batch (which starts over), then one more each.
    pub seq: u64,
    /// Entries new or changed, parents before children.
    pub upserts: Vec<Entry>,
    /// Entries gone; a directory takes everything beneath it.
    pub removals: Vec<Key>,
    /// Entries the node's index holds once this batch is applied (the server checks it holds
    /// as many, and starts over if not).
    pub entries_after: u64,
    /// More batches follow before the node's index is whole again.
    pub more: bool,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "result", rename_all = "snake_case")]
pub enum IndexReply {
    /// Taken (or taken before): the next batch is `next_seq`.
    Taken { next_seq: u64, entries: u64 },
    /// Not the batch expected: send `next_seq` (the node lost a reply, or resends).
    Expected { next_seq: u64 },
    /// The server does not hold this epoch (restarted without it, or its copy disagrees):
    /// start over with a new epoch.
    StartOver { why: String },
}

/// Why a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("an index batch of {0} bytes, more than {MAX_BATCH_LEN}")]
    TooLong(usize),
    #[error("no {SIGNATURE_HEADER} header: an index batch is signed with the node's key")]
    Unsigned,
    #[error("the batch's signature does not verify with the node key it names (forged or damaged)")]
    BadSignature,
    #[error("not an index batch: {0}")]
    Malformed(String),
    #[error("{0} changes in one batch, more than {MAX_BATCH_CHANGES}")]
    TooManyChanges(usize),
    #[error("entry {index}: {error}")]
    BadEntry { index: usize, error: EntryError },
}

/// The body and the signature (hex) a node sends.
pub fn seal(key: &SigningKey, b: &IndexBatch) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(b).expect("a batch serializes");
    let sig = key.sign_in(DOMAIN, &body);
    (body, sig)
}

/// Reads a batch: bounded, signed by the key it names, every entry checked. Whether that key
/// may speak for the MAC is the registry's to say.
pub fn open(body: &[u8], signature: Option<&str>) -> Result<(IndexBatch, PublicKey), BatchError> {
    if body.len() > MAX_BATCH_LEN {
        return Err(BatchError::TooLong(body.len()));
    }
    let signature = signature.ok_or(BatchError::Unsigned)?;
    let b: IndexBatch = serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.to_string()))?;
    let key = PublicKey::from_hex(&b.node_key).map_err(|e| BatchError::Malformed(format!("node_key: {e}")))?;
    key.verify_in(DOMAIN, body, signature).map_err(|_| BatchError::BadSignature)?;
    let changes = b.upserts.len() + b.removals.len();
    if changes > MAX_BATCH_CHANGES {
        return Err(BatchError::TooManyChanges(changes));
    }
    if b.seq == 0 {
        return Err(BatchError::Malformed("seq 0: batches count from 1".into()));
    }
    for (index, e) in b.upserts.iter().enumerate() {
        e.check().map_err(|error| BatchError::BadEntry { index, error })?;
    }
    for (i, k) in b.removals.iter().enumerate() {
        check_share(&k.share).and_then(|()| check_path(&k.path)).map_err(|error| BatchError::BadEntry { index: b.upserts.len() + i, error })?;
    }
    Ok((b, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Kind;

    fn batch(key: &SigningKey) -> IndexBatch {
        IndexBatch {
            mac: "52:54:00:aa:bb:01".into(),
            node_key: key.public().to_hex(),
            epoch: 7,
            seq: 1,
            upserts: vec![Entry { share: "movies".into(), path: "KillBill.mkv".into(), kind: Kind::File, size: 5, mtime: 1, hash: None }],
            removals: vec![],
            entries_after: 1,
            more: false,
        }
    }

    #[test]
    fn a_sealed_batch_opens_and_a_changed_one_does_not() {
        let key = SigningKey::from_seed([3; 32]);
        let (body, sig) = seal(&key, &batch(&key));
        let (b, k) = open(&body, Some(&sig)).unwrap();
        assert_eq!((b, k.to_hex()), (batch(&key), key.public().to_hex()));
        let mut forged = body.clone();
        let at = forged.iter().position(|c| *c == b'K').unwrap();
        forged[at] = b'X';
        assert_eq!(open(&forged, Some(&sig)), Err(BatchError::BadSignature));
        assert_eq!(open(&body, None), Err(BatchError::Unsigned));
        assert_eq!(open(&vec![b' '; MAX_BATCH_LEN + 1], Some(&sig)), Err(BatchError::TooLong(MAX_BATCH_LEN + 1)));
    }

    #[test]
    fn hostile_entries_and_sizes_are_refused_with_the_entry_named() {
        let key = SigningKey::from_seed([3; 32]);
        let mut b = batch(&key);
        b.upserts[0].path = "../../etc/passwd".into();
        let (body, sig) = seal(&key, &b);
        assert_eq!(open(&body, Some(&sig)), Err(BatchError::BadEntry { index: 0, error: EntryError::BadPart }));
        let mut b = batch(&key);
        b.removals = vec![Key { share: "a/b".into(), path: "x".into() }];
        let (body, sig) = seal(&key, &b);
        assert_eq!(open(&body, Some(&sig)), Err(BatchError::BadEntry { index: 1, error: EntryError::SlashInShare }));
        let mut b = batch(&key);
        b.removals = (0..MAX_BATCH_CHANGES).map(|i| Key { share: "m".into(), path: format!("f{i}") }).collect();
        let (body, sig) = seal(&key, &b);
        assert_eq!(open(&body, Some(&sig)), Err(BatchError::TooManyChanges(MAX_BATCH_CHANGES + 1)));
        let mut b = batch(&key);
        b.seq = 0;
        let (body, sig) = seal(&key, &b);
        assert!(matches!(open(&body, Some(&sig)), Err(BatchError::Malformed(_))));
        assert!(matches!(open(b"{\"mac\": 1}", Some(&sig)), Err(BatchError::Malformed(_))));
    }

    #[test]
    fn replies_read_back() {
        for r in [IndexReply::Taken { next_seq: 3, entries: 10 }, IndexReply::Expected { next_seq: 2 }, IndexReply::StartOver { why: "x".into() }] {
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<IndexReply>(&text).unwrap(), r, "{text}");
        }
    }
}
