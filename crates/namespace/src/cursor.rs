//! The server's decision on a node's index batch, given where that node's index stands there
//! ([`Cursor`]): apply it, tell the node which batch comes next, ask it to start over, or
//! refuse it. The store applies what this says and nothing else.

use crate::batch::{IndexBatch, IndexReply};

/// Most entries the server indexes for one node (an honest node's [`crate::Publisher`] sends
/// no more).
pub const MAX_NODE_ENTRIES: u64 = 2_000_000;

/// Where one node's index stands on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The key of the node that wrote it (a new boot has a new key, and starts over).
    pub node_key: String,
    pub epoch: u64,
    pub next_seq: u64,
    pub entries: u64,
}

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply it (first dropping everything of that node, with `reset`), then answer with
    /// [`after_apply`].
    Apply { reset: bool },
    /// Apply nothing; answer this.
    Answer(IndexReply),
    /// Apply nothing; refuse it (413: the node's index is over the bound).
    Refuse(String),
}

/// The decision on `b` from a node whose index stands at `stored` (`None`: nothing held).
pub fn decide(stored: Option<&Cursor>, b: &IndexBatch) -> Decision {
    if b.entries_after > MAX_NODE_ENTRIES {
        return Decision::Refuse(format!("{} entries, more than the {MAX_NODE_ENTRIES} the server indexes for one node", b.entries_after));
    }
    let start_over = |why: &str| Decision::Answer(IndexReply::StartOver { why: why.into() });
    let Some(c) = stored.filter(|c| c.node_key == b.node_key) else {
        return if b.seq == 1 { Decision::Apply { reset: true } } else { start_over("the server holds no index from this node key: start over") };
    };
    if b.epoch > c.epoch {
        return if b.seq == 1 { Decision::Apply { reset: true } } else { start_over("a new epoch starts with batch 1") };
    }
    if b.epoch < c.epoch {
        // A replay of an older epoch, or a confused node: nothing of it is applied.
        return start_over("an older epoch than the server holds");
    }
    if b.seq == c.next_seq {
        Decision::Apply { reset: b.seq == 1 }
    } else {
        Decision::Answer(IndexReply::Expected { next_seq: c.next_seq })
    }
}

/// The cursor after `b` was applied and the node's entries counted (`held`), and the answer:
/// a count that differs from the node's own means the copies differ: start over.
pub fn after_apply(b: &IndexBatch, held: u64) -> (Cursor, IndexReply) {
    if held != b.entries_after {
        let c = Cursor { node_key: b.node_key.clone(), epoch: b.epoch, next_seq: 1, entries: held };
        return (c, IndexReply::StartOver { why: format!("the server holds {held} entries of this node, the node says {}", b.entries_after) });
    }
    let c = Cursor { node_key: b.node_key.clone(), epoch: b.epoch, next_seq: b.seq + 1, entries: held };
    (c, IndexReply::Taken { next_seq: b.seq + 1, entries: held })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(key: &str, epoch: u64, seq: u64) -> IndexBatch {
        IndexBatch { mac: "52:54:00:00:00:01".into(), node_key: key.into(), epoch, seq, upserts: vec![], removals: vec![], entries_after: 0, more: false }
    }

    fn at(key: &str, epoch: u64, next_seq: u64) -> Cursor {
        Cursor { node_key: key.into(), epoch, next_seq, entries: 0 }
    }

    #[test]
    fn the_expected_batch_applies_and_anything_else_is_answered() {
        assert_eq!(decide(None, &b("k", 5, 1)), Decision::Apply { reset: true });
        assert!(matches!(decide(None, &b("k", 5, 2)), Decision::Answer(IndexReply::StartOver { .. })));
        let c = at("k", 5, 3);
        assert_eq!(decide(Some(&c), &b("k", 5, 3)), Decision::Apply { reset: false });
        assert_eq!(decide(Some(&c), &b("k", 5, 2)), Decision::Answer(IndexReply::Expected { next_seq: 3 }), "a resend after a lost reply");
        assert_eq!(decide(Some(&c), &b("k", 5, 1)), Decision::Answer(IndexReply::Expected { next_seq: 3 }), "a replayed first batch resets nothing");
        assert_eq!(decide(Some(&c), &b("k", 5, 9)), Decision::Answer(IndexReply::Expected { next_seq: 3 }));
        assert_eq!(decide(Some(&c), &b("k", 6, 1)), Decision::Apply { reset: true }, "the node started over");
        assert!(matches!(decide(Some(&c), &b("k", 6, 2)), Decision::Answer(IndexReply::StartOver { .. })));
        assert!(matches!(decide(Some(&c), &b("k", 4, 1)), Decision::Answer(IndexReply::StartOver { .. })), "an older epoch applies nothing");
        assert_eq!(decide(Some(&c), &b("other", 1, 1)), Decision::Apply { reset: true }, "a new boot's key starts over");
        assert!(matches!(decide(Some(&c), &b("other", 9, 4)), Decision::Answer(IndexReply::StartOver { .. })));
    }

    #[test]
    fn too_many_entries_are_refused_and_a_count_that_differs_starts_over() {
        let mut big = b("k", 1, 1);
        big.entries_after = MAX_NODE_ENTRIES + 1;
        assert!(matches!(decide(None, &big), Decision::Refuse(_)));
        let mut ok = b("k", 1, 1);
        ok.entries_after = 10;
        assert_eq!(after_apply(&ok, 10), (Cursor { node_key: "k".into(), epoch: 1, next_seq: 2, entries: 10 }, IndexReply::Taken { next_seq: 2, entries: 10 }));
        let (c, r) = after_apply(&ok, 9);
        assert!(matches!(r, IndexReply::StartOver { .. }) && c.next_seq == 1);
        assert!(matches!(decide(Some(&c), &b("k", 1, 2)), Decision::Answer(IndexReply::Expected { next_seq: 1 })), "then only a new start is taken");
    }
}
