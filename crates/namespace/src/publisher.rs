//! The node's side of keeping the server's index of its shares in step (sans-IO: scans and
//! replies in, batches out).
//!
//! The publisher remembers what the server holds (each entry's key and [`Entry::digest`],
//! nothing more) and, from each scan of the shares, the changes that bring the server's copy
//! to the scan: removals first (a removed directory takes its contents, so only the topmost is
//! sent), then upserts in key order (parents before children). One batch is in flight at a
//! time; it counts as held from the moment it is made, is sent again until answered, and a
//! demand to start over clears everything and asks for a new scan. When nothing changed a scan
//! makes no batch at all.

use std::collections::{BTreeMap, VecDeque};

use crate::batch::{IndexBatch, IndexReply, MAX_BATCH_CHANGES, MAX_BATCH_LEN};
use crate::cursor::MAX_NODE_ENTRIES;
use crate::entry::{Entry, Key, Kind};

/// Room kept in a batch for everything but its entries.
const BATCH_OVERHEAD: usize = 4096;

/// One change waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Remove(Key),
    Upsert(Entry),
}

impl Change {
    /// About as many bytes as it takes in a batch's JSON (names may be escaped: up to 6 bytes
    /// each for a control character, which entries never hold; 2 for `"` and `\`).
    fn size(&self) -> usize {
        match self {
            Change::Remove(k) => 32 + 2 * (k.share.len() + k.path.len()),
            Change::Upsert(e) => 160 + 2 * (e.share.len() + e.path.len()),
        }
    }
}

/// What the node says about its index, for its status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherState {
    pub epoch: u64,
    /// Entries the server holds (counting the batch in flight).
    pub held: u64,
    /// Changes not yet sent.
    pub waiting: usize,
    /// The last scan had more than [`MAX_NODE_ENTRIES`] entries: the rest are not indexed.
    pub truncated: bool,
}

#[derive(Debug)]
pub struct Publisher {
    epoch: u64,
    next_seq: u64,
    held: BTreeMap<Key, u64>,
    queue: VecDeque<Change>,
    in_flight: Option<IndexBatch>,
    wants_scan: bool,
    truncated: bool,
    mac: String,
    node_key: String,
}

impl Publisher {
    /// A publisher for the node `mac` speaking with `node_key`, starting at `epoch` (a number
    /// the node has not used with this key before: the time in ms will do).
    pub fn new(mac: &str, node_key: &str, epoch: u64) -> Self {
        Publisher {
            epoch,
            next_seq: 1,
            held: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: None,
            wants_scan: true,
            truncated: false,
            mac: mac.into(),
            node_key: node_key.into(),
        }
    }

    /// The server asked to start over (or the publisher began): a scan is wanted now.
    pub fn wants_scan(&self) -> bool {
        self.wants_scan
    }

    pub fn state(&self) -> PublisherState {
        PublisherState { epoch: self.epoch, held: self.held.len() as u64, waiting: self.queue.len(), truncated: self.truncated }
    }

    /// A scan of the shares (any order, every entry checked by the caller): the changes from
    /// what the server holds become the queue (replacing changes not yet sent). At most
    /// [`MAX_NODE_ENTRIES`] entries are indexed, the first in key order.
    pub fn scanned(&mut self, scan: impl IntoIterator<Item = Entry>) {
        let mut now: BTreeMap<Key, Entry> = scan.into_iter().map(|e| (e.key(), e)).collect();
        self.truncated = now.len() as u64 > MAX_NODE_ENTRIES;
        if let Some(cut) = now.keys().nth(MAX_NODE_ENTRIES as usize).cloned() {
            now.split_off(&cut);
        }
        self.queue.clear();
        let mut removed: Vec<Key> = Vec::new();
        for (k, _) in self.held.iter().filter(|(k, _)| !now.contains_key(*k)) {
            if removed.last().is_some_and(|d| k.is_within(d)) {
                continue;
            }
            removed.push(k.clone());
        }
        // A removal takes everything beneath it, so an entry beneath a removed one is sent
        // again (a walk never finds one: it would be beneath a directory it did not find).
        let beneath_removed = |k: &Key| {
            let i = removed.partition_point(|r| r <= k);
            i > 0 && k.is_within(&removed[i - 1])
        };
        let upserts: Vec<Entry> = now.into_iter().filter(|(k, e)| self.held.get(k) != Some(&e.digest()) || beneath_removed(k)).map(|(_, e)| e).collect();
        self.queue.extend(removed.into_iter().map(Change::Remove));
        self.queue.extend(upserts.into_iter().map(Change::Upsert));
        self.wants_scan = false;
    }

    /// The batch to send now: the one in flight (again), else the next from the queue
    /// (`None`: nothing to send).
    pub fn next_batch(&mut self) -> Option<IndexBatch> {
        if self.in_flight.is_none() && (!self.queue.is_empty() || self.next_seq == 1) && !self.wants_scan {
            self.in_flight = Some(self.make_batch());
        }
        self.in_flight.clone()
    }

    /// Asks whether the server still holds what the node thinks it does (it may have lost its
    /// index): an empty batch, unless one is in flight or changes wait to be sent. The shell
    /// calls it now and then (a scan that changed nothing sends nothing otherwise).
    pub fn probe(&mut self) {
        if self.in_flight.is_none() && self.queue.is_empty() && !self.wants_scan {
            self.in_flight = Some(self.make_batch());
        }
    }

    fn make_batch(&mut self) -> IndexBatch {
        let (mut upserts, mut removals, mut bytes) = (Vec::new(), Vec::new(), BATCH_OVERHEAD);
        while let Some(c) = self.queue.front() {
            if upserts.len() + removals.len() >= MAX_BATCH_CHANGES || bytes + c.size() > MAX_BATCH_LEN {
                break;
            }
            bytes += c.size();
            match self.queue.pop_front().expect("front") {
                Change::Remove(k) => {
                    let gone: Vec<Key> = self.held.range(&k..).take_while(|(h, _)| h.is_within(&k)).map(|(h, _)| h.clone()).collect();
                    for g in gone {
                        self.held.remove(&g);
                    }
                    removals.push(k);
                }
                Change::Upsert(e) => {
                    if e.kind == Kind::File {
                        // A directory that became a file: its contents went with it.
                        let k = e.key();
                        let below: Vec<Key> = self.held.range(&k..).skip(1).take_while(|(h, _)| h.is_within(&k)).map(|(h, _)| h.clone()).collect();
                        for g in below {
                            self.held.remove(&g);
                        }
                    }
                    self.held.insert(e.key(), e.digest());
                    upserts.push(e);
                }
            }
        }
        let b = IndexBatch {
            mac: self.mac.clone(),
            node_key: self.node_key.clone(),
            epoch: self.epoch,
            seq: self.next_seq,
            upserts,
            removals,
            entries_after: self.held.len() as u64,
            more: !self.queue.is_empty(),
        };
        self.next_seq += 1;
        b
    }

    /// The server's answer to the batch in flight. `new_epoch` is used if it asks to start
    /// over (a number not used before with this key).
    pub fn answered(&mut self, reply: &IndexReply, new_epoch: u64) {
        let Some(sent) = self.in_flight.take() else { return };
        match reply {
            IndexReply::Taken { next_seq, .. } | IndexReply::Expected { next_seq } if *next_seq == sent.seq + 1 => {}
            IndexReply::Expected { next_seq } if *next_seq == sent.seq => self.in_flight = Some(sent),
            _ => self.start_over(new_epoch),
        }
    }

    fn start_over(&mut self, epoch: u64) {
        self.epoch = epoch.max(self.epoch + 1);
        self.next_seq = 1;
        self.held.clear();
        self.queue.clear();
        self.in_flight = None;
        self.wants_scan = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_became_a_file_takes_its_contents_along() {
        let f = |p: &str| Entry { share: "m".into(), path: p.into(), kind: Kind::File, size: 1, mtime: 0, hash: None };
        let d = |p: &str| Entry { share: "m".into(), path: p.into(), kind: Kind::Dir, size: 0, mtime: 0, hash: None };
        let mut p = Publisher::new("52:54:00:00:00:01", "k", 1);
        p.scanned([d("a"), f("a/x"), f("a/y"), f("b")]);
        let b = p.next_batch().unwrap();
        assert_eq!((b.seq, b.upserts.len(), b.entries_after), (1, 4, 4));
        p.answered(&IndexReply::Taken { next_seq: 2, entries: 4 }, 9);
        p.scanned([f("a"), f("b")]);
        let b = p.next_batch().unwrap();
        let removed: Vec<&str> = b.removals.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(removed, ["a/x", "a/y"]);
        assert_eq!((b.upserts.len(), b.entries_after), (1, 2));
    }
}
