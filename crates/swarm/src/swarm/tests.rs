//! Scripted swarms: nodes joined by in-memory links with a per-node upload rate and a fake
//! clock; no sockets, no real time.

use std::collections::VecDeque;

use swarmboot_peerwire::wire::{Message, BLOCK};
use swarmboot_torrent::Metainfo;

use super::*;
use crate::storage::MemStorage;

/// A node: its swarm and its storage.
struct Node {
    swarm: Swarm,
    store: MemStorage,
    /// Upload bytes per tick.
    rate: usize,
    events: Vec<SwarmEvent>,
}

/// A connection: node a's peer `ka` is node b's peer `kb`; bytes in flight each way.
struct Link {
    a: usize,
    ka: PeerKey,
    b: usize,
    kb: PeerKey,
    a_to_b: VecDeque<u8>,
    b_to_a: VecDeque<u8>,
}

struct Net {
    nodes: Vec<Node>,
    links: Vec<Link>,
    now: Instant,
    tick: Duration,
}

fn data_of(len: usize, salt: u32) -> Vec<u8> {
    let mut x = 0x9E37_79B9u32 ^ salt;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn id(n: u8) -> [u8; 20] {
    let mut id = *b"-SB0001-000000000000";
    id[19] = n;
    id[18] = n.wrapping_mul(37);
    id
}

impl Net {
    fn new() -> Self {
        Net { nodes: Vec::new(), links: Vec::new(), now: Instant::now(), tick: Duration::from_millis(1) }
    }

    fn add(&mut self, meta: &Metainfo, data: Option<&[u8]>, rate: usize, tweak: impl FnOnce(&mut SwarmConfig)) -> usize {
        let n = self.nodes.len();
        let mut cfg = SwarmConfig::new(meta, id(n as u8 + 1));
        tweak(&mut cfg);
        let pieces = meta.pieces.len() as u32;
        let (have, store) = match data {
            Some(d) => (Bitfield::full(pieces), MemStorage::new(d.to_vec(), meta.piece_length)),
            None => (Bitfield::new(pieces), MemStorage::zeroed(meta.total_length() as usize, meta.piece_length)),
        };
        self.nodes.push(Node { swarm: Swarm::new(cfg, have, self.now), store, rate, events: Vec::new() });
        n
    }

    fn connect(&mut self, a: usize, b: usize) {
        let ka = self.nodes[a].swarm.add_peer(self.now, true).unwrap();
        let kb = self.nodes[b].swarm.add_peer(self.now, false).unwrap();
        self.links.push(Link { a, ka, b, kb, a_to_b: VecDeque::new(), b_to_a: VecDeque::new() });
    }

    /// One tick: every node sends up to its rate (round-robin over its links, only taking new
    /// bytes from the swarm when the link's queue is short: backpressure), every link delivers
    /// what was sent, timers fire.
    fn step(&mut self) {
        self.now += self.tick;
        let now = self.now;
        for n in 0..self.nodes.len() {
            let mine: Vec<usize> = (0..self.links.len()).filter(|&l| self.links[l].a == n || self.links[l].b == n).collect();
            let mut budget = self.nodes[n].rate;
            let mut progress = true;
            while budget > 0 && progress {
                progress = false;
                for &l in &mine {
                    let link = &mut self.links[l];
                    let (key, queue) = if link.a == n { (link.ka, &mut link.a_to_b) } else { (link.kb, &mut link.b_to_a) };
                    let node = &mut self.nodes[n];
                    if queue.len() < 4 * BLOCK as usize && node.swarm.is_open(key) {
                        let bytes = node.swarm.poll_transmit(now, key, &mut node.store);
                        queue.extend(bytes);
                    }
                    let take = queue.len().min(budget).min(BLOCK as usize);
                    if take > 0 {
                        let chunk: Vec<u8> = queue.drain(..take).collect();
                        budget -= take;
                        progress = true;
                        let (to, to_key) = if link.a == n { (link.b, link.kb) } else { (link.a, link.ka) };
                        let dst = &mut self.nodes[to];
                        dst.swarm.on_bytes(now, to_key, &chunk, &mut dst.store);
                    }
                }
            }
        }
        for node in &mut self.nodes {
            if node.swarm.poll_timeout() <= now {
                node.swarm.on_timeout(now, &mut node.store);
            }
            while let Some(e) = node.swarm.poll_event() {
                node.events.push(e);
            }
            node.swarm.take_wakeups();
        }
        // Closed connections: drop them at the other end too.
        let mut i = 0;
        while i < self.links.len() {
            let l = &self.links[i];
            let (a_open, b_open) = (self.nodes[l.a].swarm.is_open(l.ka), self.nodes[l.b].swarm.is_open(l.kb));
            if !a_open || !b_open {
                let l = self.links.remove(i);
                self.nodes[l.a].swarm.peer_closed(self.now, l.ka);
                self.nodes[l.b].swarm.peer_closed(self.now, l.kb);
            } else {
                i += 1;
            }
        }
    }

    fn run_until(&mut self, max_ticks: u32, done: impl Fn(&Net) -> bool) -> u32 {
        for t in 0..max_ticks {
            if done(self) {
                return t;
            }
            self.step();
        }
        panic!("not done after {max_ticks} ticks");
    }

    fn complete(&self, n: usize) -> bool {
        self.nodes[n].swarm.is_complete()
    }
}

#[test]
fn a_leecher_gets_every_byte_from_a_seed() {
    let data = data_of(300_000, 1);
    let (meta, _) = Metainfo::single_file("img", &data, 32768, None, true);
    let mut net = Net::new();
    let seed = net.add(&meta, Some(&data), 100_000, |_| {});
    let leech = net.add(&meta, None, 100_000, |_| {});
    net.connect(leech, seed);
    net.run_until(2000, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data);
    assert!(net.nodes[leech].events.contains(&SwarmEvent::Complete));
    let t = net.nodes[leech].swarm.totals();
    assert_eq!((t.downloaded, t.wasted, t.hash_failures), (300_000, 0, 0));
    assert_eq!(net.nodes[seed].swarm.totals().uploaded, 300_000);
}

/// Pieces from elsewhere (the HTTP fallback) join a download already under way: verified,
/// announced to peers, and the rest comes from the seed; a wrong piece is refused.
#[test]
fn pieces_from_elsewhere_are_verified_and_shared() {
    let data = data_of(300_000, 7);
    let (meta, _) = Metainfo::single_file("img", &data, 32768, None, true);
    let mut net = Net::new();
    let seed = net.add(&meta, Some(&data), 100_000, |_| {});
    let leech = net.add(&meta, None, 100_000, |_| {});
    let piece = |i: usize| &data[i * 32768..((i + 1) * 32768).min(data.len())];
    {
        let n = &mut net.nodes[leech];
        assert_eq!(n.swarm.add_piece(9, piece(9), &mut n.store), Ok(true), "the short last piece");
        assert_eq!(n.swarm.add_piece(9, piece(9), &mut n.store), Ok(false), "already had it");
        assert_eq!(n.swarm.add_piece(3, piece(4), &mut n.store), Err(AddPieceError::HashMismatch(3)));
        assert_eq!(n.swarm.add_piece(3, &piece(3)[1..], &mut n.store), Err(AddPieceError::HashMismatch(3)));
        assert_eq!(n.swarm.add_piece(10, piece(9), &mut n.store), Err(AddPieceError::NoSuchPiece(10)));
    }
    net.connect(leech, seed);
    net.run_until(200, |n| n.nodes[leech].swarm.progress().have >= 4);
    let n = &mut net.nodes[leech];
    assert_eq!(n.swarm.add_piece(0, piece(0), &mut n.store).map(|_| ()), Ok(()), "mid-download, wanted or not");
    net.run_until(2000, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data);
    let from_seed = net.nodes[seed].swarm.totals().uploaded;
    assert!(from_seed <= 300_000 - (data.len() as u64 - 9 * 32768), "the seed did not send piece 9: {from_seed}");
}

/// The storm the engine exists for: one super-seeding server, 12 leechers that all know
/// each other, every node with the same upload rate. The server's upload stays near one copy,
/// and nobody takes much longer than the bound SIZE / RATE.
#[test]
fn a_super_seed_uploads_about_one_copy_in_a_storm() {
    let size = 1 << 20;
    let data = data_of(size, 2);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    let rate = 20_000; // bytes per tick, everyone
    let server = net.add(&meta, Some(&data), rate, |c| {
        c.super_seed = true;
    });
    let leechers: Vec<usize> = (0..12).map(|_| net.add(&meta, None, rate, |_| {})).collect();
    for (i, &l) in leechers.iter().enumerate() {
        net.connect(l, server);
        for &m in &leechers[..i] {
            net.connect(l, m);
        }
    }
    let ticks = net.run_until(20_000, |n| leechers.iter().all(|&l| n.complete(l)));
    for &l in &leechers {
        assert_eq!(net.nodes[l].store.data, data);
    }
    let up = net.nodes[server].swarm.totals().uploaded as f64 / size as f64;
    let bound = (size / rate) as f64;
    eprintln!("server uploaded {up:.2} copies; all done in {ticks} ticks, bound {bound}");
    assert!(up <= 1.2, "server uploaded {up:.2} copies");
    assert!((ticks as f64) < 2.0 * bound, "{ticks} ticks for a bound of {bound}");
    // No piece went out twice while another had not gone out.
    let ss = net.nodes[server].swarm.superseed.as_ref().unwrap();
    let counts: Vec<u32> = (0..meta.pieces.len() as u32).map(|i| ss.uploads(i)).collect();
    assert!(counts.iter().all(|&c| c >= 1), "every piece left the server: {counts:?}");
}

/// A peer that serves corrupted blocks: its pieces fail the SHA-1 check, it is dropped, and
/// the download completes from the honest seed. Nothing unverified is ever written.
#[test]
fn a_peer_sending_bad_pieces_is_dropped_and_nothing_bad_is_kept() {
    let data = data_of(256 * 1024, 3);
    let (meta, _) = Metainfo::single_file("img", &data, 32768, None, true);
    let mut bad_data = data.clone();
    for i in (0..bad_data.len()).step_by(1000) {
        bad_data[i] ^= 0xFF;
    }
    let mut net = Net::new();
    let liar = net.add(&meta, Some(&bad_data), 200_000, |_| {});
    let honest = net.add(&meta, Some(&data), 5_000, |_| {});
    let leech = net.add(&meta, None, 100_000, |_| {});
    net.connect(leech, liar);
    net.connect(leech, honest);
    net.run_until(5000, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data, "only verified pieces were written");
    let ev = &net.nodes[leech].events;
    assert!(ev.iter().any(|e| matches!(e, SwarmEvent::PieceFailed { .. })), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, SwarmEvent::Dropped { reason: DropReason::BadPieces, .. })), "{ev:?}");
    assert!(net.nodes[leech].swarm.totals().hash_failures >= 1);
}

/// With the signed list of per-piece SHA-256, that list decides, not the torrent's SHA-1: a
/// torrent whose SHA-1s describe a liar's bytes, a list that describes the true ones. The
/// liar's pieces (right by SHA-1) are refused and it is dropped; the leecher ends with the
/// true bytes, and pieces from elsewhere are checked the same way.
#[test]
fn with_a_sha256_list_pieces_are_checked_by_it() {
    use sha2::Digest;
    let data = data_of(256 * 1024, 5);
    let mut liars = data.clone();
    for i in (0..liars.len()).step_by(1000) {
        liars[i] ^= 0xFF;
    }
    let (meta, _) = Metainfo::single_file("img", &liars, 32768, None, true);
    let list: Vec<[u8; 32]> = data.chunks(32768).map(|c| sha2::Sha256::digest(c).into()).collect();
    let list = std::sync::Arc::new(list);
    let mut net = Net::new();
    let liar = net.add(&meta, Some(&liars), 200_000, |_| {});
    let honest = net.add(&meta, Some(&data), 5_000, |_| {});
    let leech = net.add(&meta, None, 100_000, |c| c.piece_sha256 = Some(list.clone()));
    {
        let n = &mut net.nodes[leech];
        assert_eq!(n.swarm.add_piece(7, &liars[7 * 32768..8 * 32768], &mut n.store), Err(AddPieceError::HashMismatch(7)), "right by SHA-1 only");
        assert_eq!(n.swarm.add_piece(7, &data[7 * 32768..8 * 32768], &mut n.store), Ok(true));
    }
    net.connect(leech, liar);
    net.connect(leech, honest);
    net.run_until(5000, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data, "only pieces that matched their SHA-256 were written");
    let ev = &net.nodes[leech].events;
    assert!(ev.iter().any(|e| matches!(e, SwarmEvent::Dropped { reason: DropReason::BadPieces, .. })), "{ev:?}");
}

#[test]
fn garbage_on_the_wire_drops_only_that_peer() {
    let data = data_of(100_000, 4);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    let seed = net.add(&meta, Some(&data), 100_000, |_| {});
    let leech = net.add(&meta, None, 100_000, |_| {});
    net.connect(leech, seed);
    let now = net.now;
    let node = &mut net.nodes[seed];
    let junk_key = node.swarm.add_peer(now, false).unwrap();
    node.swarm.on_bytes(now, junk_key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n..........................................", &mut node.store);
    let mut dropped = None;
    while let Some(e) = node.swarm.poll_event() {
        if let SwarmEvent::Dropped { key, reason } = e {
            dropped = Some((key, reason));
        }
    }
    assert!(matches!(dropped, Some((k, DropReason::Wire(_))) if k == junk_key), "{dropped:?}");
    net.run_until(2000, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data);
}

#[test]
fn one_connection_per_pair_of_peers() {
    let data = data_of(50_000, 5);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    let a = net.add(&meta, Some(&data), 100_000, |_| {});
    let b = net.add(&meta, None, 100_000, |_| {});
    net.connect(a, b);
    net.connect(b, a);
    net.run_until(2000, |n| n.complete(b));
    for _ in 0..10 {
        net.step();
    }
    assert_eq!(net.links.len(), 1, "both ends kept the same one");
    assert_eq!(net.nodes[a].swarm.peer_count(), 1);
    assert_eq!(net.nodes[b].swarm.peer_count(), 1);
    assert!(
        net.nodes[b].events.iter().any(|e| matches!(e, SwarmEvent::Dropped { reason: DropReason::Duplicate, .. }))
            || net.nodes[a].events.iter().any(|e| matches!(e, SwarmEvent::Dropped { reason: DropReason::Duplicate, .. }))
    );
}

/// One upload slot and four leechers that only know the seed: the slot must move (the
/// rechoke rotates the optimistic slot, and a finished leecher frees it), so all finish.
#[test]
fn few_upload_slots_still_serve_everyone() {
    let data = data_of(64 * 1024, 6);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    net.tick = Duration::from_millis(50);
    let seed = net.add(&meta, Some(&data), 2_000, |c| c.upload_slots = 1);
    let leechers: Vec<usize> = (0..4).map(|_| net.add(&meta, None, 2_000, |_| {})).collect();
    for &l in &leechers {
        net.connect(l, seed);
    }
    net.run_until(20_000, |n| leechers.iter().all(|&l| n.complete(l)));
    for &l in &leechers {
        assert_eq!(net.nodes[l].store.data, data);
    }
}

/// Requests that never get an answer (a peer that unchokes and then goes quiet) are taken
/// back after the request timeout; the peer is then asked for one block at a time until it
/// delivers, and the pieces come from someone else.
#[test]
fn a_snubbing_peer_loses_its_requests() {
    let data = data_of(64 * 16384, 7);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    net.tick = Duration::from_millis(100);
    let leech = net.add(&meta, None, 100_000, |_| {});
    let now = net.now;
    // A silent "peer" we script by hand: handshake, have-all, unchoke, then nothing.
    let node = &mut net.nodes[leech];
    let k = node.swarm.add_peer(now, true).unwrap();
    let mut hello = Vec::new();
    swarmboot_peerwire::wire::Handshake::new(meta.info_hash, id(99)).encode(&mut hello);
    Message::HaveAll.encode(&mut hello);
    Message::Unchoke.encode(&mut hello);
    node.swarm.on_bytes(now, k, &hello, &mut node.store);
    let asked = node.swarm.peers[&k].wire.outstanding();
    assert!(asked >= 4, "it filled a pipeline at the silent peer: {asked}");
    for _ in 0..149 {
        net.step();
    }
    assert_eq!(net.nodes[leech].swarm.peers[&k].wire.outstanding(), asked, "14.9 s: still waiting");
    for _ in 0..2 {
        net.step();
    }
    assert_eq!(net.nodes[leech].swarm.peers[&k].wire.outstanding(), 1, "after 15 s: one probe request");
    let seed = net.add(&meta, Some(&data), 100_000, |_| {});
    net.connect(leech, seed);
    net.run_until(1000, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data);
}

/// A partitioned storm (the bug the 40-client benchmark found: peers that can reach only the
/// server): three leechers in a mesh and two that reach nobody but the super-seeding server.
/// Pieces of the first round that went to the cut-off peers have not spread, so they go out
/// again; the cut-off peers get nothing from peers, so the seed serves them everything. All
/// complete; nothing is lost to a deadlock.
#[test]
fn a_partitioned_swarm_still_completes_from_a_super_seed() {
    let size = 512 * 1024;
    let data = data_of(size, 8);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    net.tick = Duration::from_millis(10);
    let rate = 4_000;
    let server = net.add(&meta, Some(&data), rate, |c| c.super_seed = true);
    let mesh: Vec<usize> = (0..3).map(|_| net.add(&meta, None, rate, |_| {})).collect();
    let alone: Vec<usize> = (0..2).map(|_| net.add(&meta, None, rate, |_| {})).collect();
    for (i, &m) in mesh.iter().enumerate() {
        net.connect(m, server);
        for &o in &mesh[..i] {
            net.connect(m, o);
        }
    }
    for &a in &alone {
        net.connect(a, server);
    }
    let everyone: Vec<usize> = mesh.iter().chain(&alone).copied().collect();
    net.run_until(20_000, |n| everyone.iter().all(|&l| n.complete(l)));
    for &l in &everyone {
        assert_eq!(net.nodes[l].store.data, data);
    }
    let up = net.nodes[server].swarm.totals().uploaded as f64 / size as f64;
    assert!(up >= 2.0, "the two cut-off peers could only get their bytes from the seed: {up:.2} copies");
    assert!(up <= 3.6, "but the mesh got most of its bytes from itself: {up:.2} copies");
}

/// A peer that asks and never reads (100k requests while choked, nothing drained): the rejects
/// it provokes never hold more than a mebibyte; it is dropped instead.
#[test]
fn a_peer_that_never_reads_is_dropped_before_its_answers_reach_a_mebibyte() {
    let data = data_of(64 * 1024, 8);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    let seed = net.add(&meta, Some(&data), 100_000, |_| {});
    let now = net.now;
    let node = &mut net.nodes[seed];
    let k = node.swarm.add_peer(now, false).unwrap();
    let mut hello = Vec::new();
    swarmboot_peerwire::wire::Handshake::new(meta.info_hash, id(99)).encode(&mut hello);
    Message::HaveNone.encode(&mut hello);
    node.swarm.on_bytes(now, k, &hello, &mut node.store);
    let mut request = Vec::new();
    for _ in 0..1000 {
        Message::Request { index: 0, begin: 0, length: 16384 }.encode(&mut request);
    }
    let (mut sent, mut most) = (0, 0);
    while sent < 100_000 && node.swarm.is_open(k) {
        node.swarm.on_bytes(now, k, &request, &mut node.store);
        sent += 1000;
        if let Some(slot) = node.swarm.peers.get(&k) {
            most = most.max(slot.wire.pending_transmit());
        }
    }
    assert!(most <= MAX_PENDING_OUT, "{most} bytes waited for it");
    assert!(!node.swarm.is_open(k), "dropped after {sent} requests");
    let mut reasons = Vec::new();
    while let Some(e) = node.swarm.poll_event() {
        if let SwarmEvent::Dropped { reason, .. } = e {
            reasons.push(reason);
        }
    }
    assert_eq!(reasons, vec![DropReason::NotReading]);
    assert!(sent < 100_000, "it was dropped well before the 100k: after {sent}");
}

/// A HAVE for a piece the peer already announced costs a decode and nothing more: 1M of them
/// on a 16384-piece torrent (each used to clone the peer's bitfield and walk every piece).
#[test]
fn a_million_duplicate_haves_cost_little() {
    let data = data_of(16384, 9);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut cfg = SwarmConfig::new(&meta, id(1));
    cfg.piece_hashes = vec![[0; 20]; 16384];
    cfg.total_length = 16384 * 16384;
    let now = Instant::now();
    let mut swarm = Swarm::new(cfg, Bitfield::new(16384), now);
    let mut store = MemStorage::zeroed(16384, 16384);
    let k = swarm.add_peer(now, false).unwrap();
    let mut hello = Vec::new();
    swarmboot_peerwire::wire::Handshake::new(meta.info_hash, id(99)).encode(&mut hello);
    Message::HaveNone.encode(&mut hello);
    swarm.on_bytes(now, k, &hello, &mut store);
    let mut haves = Vec::new();
    for _ in 0..10_000 {
        Message::Have(5).encode(&mut haves);
    }
    let started = std::time::Instant::now();
    for _ in 0..100 {
        swarm.on_bytes(now, k, &haves, &mut store);
    }
    let took = started.elapsed();
    eprintln!("1M duplicate HAVEs: {took:?}");
    assert!(swarm.is_open(k));
    assert_eq!(swarm.picker.availability(5), 1, "counted once");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// Four peers take the super-seed's offers (2 each: every slot of the seed) and never ask for
/// a block, only sending keep-alives. Their offers lapse, they are benched, and a fifth peer
/// gets the whole file from the seed.
#[test]
fn a_fifth_peer_gets_pieces_despite_four_hoarders() {
    let data = data_of(32 * 16384, 10);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    net.tick = Duration::from_millis(100);
    let seed = net.add(&meta, Some(&data), 100_000, |c| c.super_seed = true);
    let now = net.now;
    let hoarders: Vec<PeerKey> = (0..4u8)
        .map(|n| {
            let node = &mut net.nodes[seed];
            let k = node.swarm.add_peer(now, false).unwrap();
            let mut hello = Vec::new();
            swarmboot_peerwire::wire::Handshake::new(meta.info_hash, id(90 + n)).encode(&mut hello);
            Message::HaveNone.encode(&mut hello);
            Message::Interested.encode(&mut hello);
            node.swarm.on_bytes(now, k, &hello, &mut node.store);
            k
        })
        .collect();
    net.step();
    let held: usize = hoarders.iter().map(|&k| net.nodes[seed].swarm.superseed.as_ref().unwrap().offered(k).len()).sum();
    assert_eq!(held, 8, "the hoarders hold every offer the seed makes at once");
    let leech = net.add(&meta, None, 100_000, |_| {});
    net.connect(leech, seed);
    let mut ticks = 0;
    while !net.complete(leech) {
        assert!(ticks < 600, "the fifth peer got {} of 32 pieces in 60 s", net.nodes[leech].swarm.picker.have().count());
        if ticks % 20 == 0 {
            let now = net.now;
            let node = &mut net.nodes[seed];
            for &k in &hoarders {
                node.swarm.on_bytes(now, k, &[0, 0, 0, 0], &mut node.store);
            }
        }
        net.step();
        ticks += 1;
    }
    assert_eq!(net.nodes[leech].store.data, data);
    assert!(hoarders.iter().all(|&k| net.nodes[seed].swarm.is_open(k)), "the hoarders are still connected (only benched)");
    eprintln!("complete after {:.1} s", f64::from(ticks) / 10.0);
}

/// A swarm full of connections that never move a block (80 handshaken peers sending only
/// keep-alives) still takes a newcomer once they have been idle for `evict_idle_after`, and
/// the newcomer gets the file.
#[test]
fn idle_peers_give_their_places_to_newcomers() {
    let data = data_of(8 * 16384, 11);
    let (meta, _) = Metainfo::single_file("img", &data, 16384, None, true);
    let mut net = Net::new();
    net.tick = Duration::from_millis(100);
    let seed = net.add(&meta, Some(&data), 100_000, |_| {});
    let now = net.now;
    let max = net.nodes[seed].swarm.cfg.max_peers;
    let idle: Vec<PeerKey> = (0..max)
        .map(|n| {
            let node = &mut net.nodes[seed];
            let k = node.swarm.add_peer(now, false).unwrap();
            let mut hello = Vec::new();
            swarmboot_peerwire::wire::Handshake::new(meta.info_hash, id(100 + n as u8)).encode(&mut hello);
            Message::HaveNone.encode(&mut hello);
            node.swarm.on_bytes(now, k, &hello, &mut node.store);
            k
        })
        .collect();
    assert_eq!(net.nodes[seed].swarm.add_peer(now, false), None, "full of peers connected just now");
    for t in 0..301 {
        if t % 100 == 0 {
            let now = net.now;
            let node = &mut net.nodes[seed];
            for &k in &idle {
                node.swarm.on_bytes(now, k, &[0, 0, 0, 0], &mut node.store);
            }
        }
        net.step();
    }
    let leech = net.add(&meta, None, 100_000, |_| {});
    net.connect(leech, seed);
    net.run_until(600, |n| n.complete(leech));
    assert_eq!(net.nodes[leech].store.data, data);
    let evicted = net.nodes[seed].events.iter().filter(|e| matches!(e, SwarmEvent::Dropped { reason: DropReason::IdleForNewcomer, .. })).count();
    assert_eq!(evicted, 1, "one idle peer gave its place");
}
