//! A node's publisher against a server's index, in memory: random share trees changing
//! between scans, batches and replies lost on the way, the server losing its index; after
//! every round the server's copy is the node's scan, entry for entry.

use std::collections::BTreeMap;

use swarmboot_namespace::batch::{IndexBatch, IndexReply};
use swarmboot_namespace::cursor::{after_apply, decide, Cursor, Decision};
use swarmboot_namespace::entry::{Entry, Key, Kind};
use swarmboot_namespace::Publisher;

/// The server's side as `crates/server`'s index store does it, in a map.
#[derive(Default)]
struct Server {
    cursor: Option<Cursor>,
    entries: BTreeMap<Key, Entry>,
    applied: usize,
}

impl Server {
    fn remove_below(&mut self, k: &Key, including: bool) {
        // Beneath a key is right after it in key order.
        let gone: Vec<Key> = self.entries.range(k..).map(|(e, _)| e).take_while(|e| e.is_within(k)).filter(|e| including || *e != k).cloned().collect();
        for g in gone {
            self.entries.remove(&g);
        }
    }

    fn handle(&mut self, b: &IndexBatch) -> IndexReply {
        match decide(self.cursor.as_ref(), b) {
            Decision::Answer(r) => r,
            Decision::Refuse(why) => panic!("refused: {why}"),
            Decision::Apply { reset } => {
                self.applied += 1;
                if reset {
                    self.entries.clear();
                }
                for k in &b.removals {
                    self.remove_below(k, true);
                }
                for e in &b.upserts {
                    if e.kind == Kind::File {
                        self.remove_below(&e.key(), false);
                    }
                    self.entries.insert(e.key(), e.clone());
                }
                let (c, reply) = after_apply(b, self.entries.len() as u64);
                if matches!(reply, IndexReply::StartOver { .. }) {
                    self.entries.clear();
                }
                self.cursor = Some(c);
                reply
            }
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random tree: directories `d0…`, files in them, some at the top of each share.
fn tree(rng: &mut Rng, size: u64) -> BTreeMap<Key, Entry> {
    let mut t = BTreeMap::new();
    for _ in 0..size {
        let share = ["movies", "music"][rng.below(2) as usize].to_string();
        let depth = rng.below(3);
        let mut path = String::new();
        for d in 0..depth {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&format!("d{}", rng.below(4) + d * 10));
            let e = Entry { share: share.clone(), path: path.clone(), kind: Kind::Dir, size: 0, mtime: 0, hash: None };
            t.entry(e.key()).or_insert(e);
        }
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&format!("f{}", rng.below(30)));
        let e = Entry { share, path, kind: Kind::File, size: rng.below(100), mtime: rng.below(3) as i64, hash: None };
        // A file where a directory is (or the reverse) stays a directory in this tree.
        if !t.keys().any(|k: &Key| k.is_within(&e.key()) && *k != e.key()) {
            t.insert(e.key(), e);
        }
    }
    // Drop files that have a directory beneath them (a path is one or the other).
    let dirs: Vec<Key> = t.values().filter(|e| e.kind == Kind::Dir).map(Entry::key).collect();
    t.retain(|k, e| e.kind == Kind::Dir || !dirs.iter().any(|d| d.is_within(k) && d != k));
    t
}

/// Sends until the publisher has nothing more, losing requests and replies at `loss` in 100.
fn exchange(p: &mut Publisher, s: &mut Server, rng: &mut Rng, loss: u64, scan: &BTreeMap<Key, Entry>, epoch: &mut u64) {
    // The shell's occasional question: does the server still hold it?
    p.probe();
    for _ in 0..10_000 {
        if p.wants_scan() {
            p.scanned(scan.values().cloned());
        }
        let Some(b) = p.next_batch() else { return };
        if rng.below(100) < loss {
            continue; // the request was lost: sent again
        }
        let reply = s.handle(&b);
        if rng.below(100) < loss {
            continue; // the reply was lost
        }
        *epoch += 1;
        p.answered(&reply, *epoch);
    }
    panic!("no quiet after 10000 exchanges");
}

#[test]
fn the_servers_copy_follows_the_scans_through_loss_and_restarts() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut epoch = 1000;
        let mut p = Publisher::new("52:54:00:00:00:01", "k", epoch);
        let mut s = Server::default();
        let mut scan = tree(&mut rng, 40);
        for round in 0..12 {
            let loss = [0, 10, 40][rng.below(3) as usize];
            exchange(&mut p, &mut s, &mut rng, loss, &scan, &mut epoch);
            assert_eq!(s.entries, scan, "seed {seed} round {round}: the server's copy is the scan");
            // The shares change: a new tree shares most of the old one.
            let mut next = tree(&mut rng, 10);
            for (k, e) in &scan {
                if rng.below(10) > 0 && !next.keys().any(|n| (n.is_within(k) || k.is_within(n)) && n != k) {
                    next.insert(k.clone(), e.clone());
                }
            }
            let dirs: Vec<Key> = next.values().filter(|e| e.kind == Kind::Dir).map(Entry::key).collect();
            next.retain(|k, e| e.kind == Kind::Dir || !dirs.iter().any(|d| d.is_within(k) && d != k));
            scan = next;
            if rng.below(8) == 0 {
                s = Server::default(); // the server lost its index
            }
            p.scanned(scan.values().cloned());
        }
    }
}

#[test]
fn nothing_changed_sends_nothing_and_one_change_sends_one_entry() {
    let mut rng = Rng(7);
    let scan = tree(&mut rng, 300);
    let mut p = Publisher::new("52:54:00:00:00:01", "k", 1);
    let mut s = Server::default();
    let mut epoch = 1;
    exchange(&mut p, &mut s, &mut rng, 0, &scan, &mut epoch);
    let before = s.applied;
    p.scanned(scan.values().cloned());
    assert_eq!(p.next_batch(), None, "the same scan: no batch");
    assert_eq!(s.applied, before);
    let mut changed = scan.clone();
    let f = changed.values_mut().find(|e| e.kind == Kind::File).unwrap();
    f.size += 1;
    p.scanned(changed.values().cloned());
    let b = p.next_batch().unwrap();
    assert_eq!((b.upserts.len(), b.removals.len(), b.entries_after), (1, 0, scan.len() as u64));
    assert_eq!(s.handle(&b), IndexReply::Taken { next_seq: b.seq + 1, entries: scan.len() as u64 });
    assert_eq!(s.applied, before + 1);
}

#[test]
fn a_big_scan_goes_in_bounded_batches() {
    let scan: Vec<Entry> = (0..25_000).map(|i| Entry { share: "m".into(), path: format!("f{i:06}"), kind: Kind::File, size: i, mtime: 0, hash: None }).collect();
    let mut p = Publisher::new("52:54:00:00:00:01", "k", 1);
    let mut s = Server::default();
    p.scanned(scan);
    let mut sizes = Vec::new();
    while let Some(b) = p.next_batch() {
        sizes.push(b.upserts.len());
        let reply = s.handle(&b);
        p.answered(&reply, 99);
    }
    assert_eq!(sizes, [10_000, 10_000, 5_000]);
    assert_eq!(s.entries.len(), 25_000);
}
