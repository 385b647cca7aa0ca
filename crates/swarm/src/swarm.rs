//! The swarm of one torrent, sans-IO: every peer connection ([`swarmboot_peerwire::peer::Peer`]),
//! the piece picker, the choker, super-seeding, piece assembly and verification (SHA-1, or
//! SHA-256 from a signed list).
//!
//! The shell owns the sockets and the clock: it registers a connection ([`Swarm::add_peer`]),
//! feeds its bytes ([`Swarm::on_bytes`]), writes what [`Swarm::poll_transmit`] returns, calls
//! [`Swarm::on_timeout`] at [`Swarm::poll_timeout`], wakes the writers [`Swarm::take_wakeups`]
//! names, and reads [`Swarm::poll_event`]. Storage is behind [`Storage`]; nothing here opens
//! a socket or reads a clock.
//!
//! No piece is written or announced before its hash matched; a peer that sent a piece that did
//! not match (alone, or twice among others) is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use sha2::Sha256;
use swarmboot_peerwire::peer::{Disconnect, Event as WireEvent, Peer, PeerConfig};
use swarmboot_peerwire::picker::{Order, PiecePicker};
use swarmboot_peerwire::superseed::{PeerKey, SuperSeed};
use swarmboot_peerwire::wire::BLOCK;
use swarmboot_peerwire::Bitfield;
use swarmboot_torrent::Metainfo;

use crate::choker::{Candidate, Choker};
use crate::rate::Rate;
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub info_hash: [u8; 20],
    pub our_id: [u8; 20],
    pub piece_hashes: Vec<[u8; 20]>,
    /// The SHA-256 of each piece, from a signed list (`swarmboot_manifest::piece_hashes`):
    /// given, pieces are checked by it instead of their SHA-1.
    pub piece_sha256: Option<std::sync::Arc<Vec<[u8; 32]>>>,
    pub piece_length: u32,
    pub total_length: u64,
    /// Hand out each piece once before any twice (the boot server's seed).
    pub super_seed: bool,
    /// Super-seed: peers served at once (the seed's upload slots).
    pub super_seed_slots: usize,
    /// Super-seed: pieces offered to one peer at once.
    pub super_seed_offers: usize,
    /// Super-seed: an offer no block of which was asked for in this long is withdrawn, and
    /// its peer gets no offer for four times as long (peers that take offers and never ask
    /// would otherwise hold every slot of the seed).
    pub super_seed_offer_timeout: Duration,
    /// Peers we upload to at once (the optimistic slot included).
    pub upload_slots: usize,
    pub rechoke_interval: Duration,
    /// Rechokes between moves of the optimistic slot.
    pub optimistic_every: u32,
    /// Most requests kept outstanding at one peer (the pipeline is sized to bandwidth × delay
    /// below this).
    pub max_pipeline: usize,
    /// Queueing delay the pipeline covers on top of the lowest latency (see `pipeline_target`).
    pub queue_delay: Duration,
    /// A peer that delivers nothing for this long with requests outstanding loses them.
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_peers: usize,
    /// With `max_peers` connected, one that moved no block for this long gives its place to a
    /// newcomer.
    pub evict_idle_after: Duration,
    /// Requests from one peer we queue at most; more are rejected.
    pub max_upload_queue: usize,
    pub order: Order,
    pub rng_seed: u64,
    /// The torrent's `info` dictionary, served to peers that joined by magnet link (BEP 9).
    pub metadata: Option<std::sync::Arc<Vec<u8>>>,
}

impl SwarmConfig {
    pub fn new(meta: &Metainfo, our_id: [u8; 20]) -> Self {
        SwarmConfig {
            info_hash: meta.info_hash,
            our_id,
            piece_hashes: meta.pieces.clone(),
            piece_sha256: None,
            piece_length: meta.piece_length,
            total_length: meta.total_length(),
            super_seed: false,
            super_seed_slots: 4,
            super_seed_offers: 2,
            super_seed_offer_timeout: Duration::from_secs(10),
            upload_slots: 8,
            rechoke_interval: Duration::from_secs(10),
            optimistic_every: 3,
            max_pipeline: 128,
            queue_delay: Duration::from_millis(30),
            request_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_peers: 80,
            evict_idle_after: Duration::from_secs(30),
            max_upload_queue: 256,
            order: Order::RarestFirst,
            rng_seed: u64::from_le_bytes(our_id[12..20].try_into().expect("8 bytes")),
            metadata: Some(std::sync::Arc::new(meta.info.clone())),
        }
    }

    fn pieces(&self) -> u32 {
        self.piece_hashes.len() as u32
    }
    fn piece_len(&self, i: u32) -> u32 {
        let start = u64::from(i) * u64::from(self.piece_length);
        (self.total_length - start).min(u64::from(self.piece_length)) as u32
    }

    /// Whether `data` is piece `index`: by its SHA-256 when the signed list was given, else by
    /// the torrent's SHA-1.
    pub fn piece_matches(&self, index: u32, data: &[u8]) -> bool {
        let i = index as usize;
        match &self.piece_sha256 {
            Some(list) => list.get(i).is_some_and(|h| <[u8; 32]>::from(Sha256::digest(data)) == *h),
            None => self.piece_hashes.get(i).is_some_and(|h| <[u8; 20]>::from(Sha1::digest(data)) == *h),
        }
    }
}

/// Why the swarm dropped a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error(transparent)]
    Wire(#[from] Disconnect),
    #[error("sent pieces that failed their hash check")]
    BadPieces,
    #[error("a second connection to the same peer")]
    Duplicate,
    #[error("connection closed")]
    Closed,
    #[error("idle for long, and a new peer needed its place")]
    IdleForNewcomer,
    #[error("it does not read what it asks for (more than {MAX_PENDING_OUT} bytes of answers waiting)")]
    NotReading,
}

/// What the shell should know (and log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmEvent {
    Connected {
        key: PeerKey,
        peer_id: [u8; 20],
    },
    /// The peer is gone; close its socket if it is still open.
    Dropped {
        key: PeerKey,
        reason: DropReason,
    },
    PieceVerified(u32),
    /// A piece failed its hash check; it is fetched again.
    PieceFailed {
        piece: u32,
        from: Vec<PeerKey>,
    },
    /// Every piece is here and verified.
    Complete,
    /// Super-seeding: every piece has now left this seed at least this many times.
    SuperSeedRound(u32),
    StorageFailed {
        piece: u32,
        error: String,
    },
}

/// Why [`Swarm::add_piece`] refused a piece.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddPieceError {
    #[error("piece {0} is not in this torrent")]
    NoSuchPiece(u32),
    #[error("piece {0} does not match its hash")]
    HashMismatch(u32),
    #[error("cannot store the piece: {0}")]
    Storage(String),
}

/// Counters for the server, the CLI and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Payload bytes received in blocks (duplicates included).
    pub downloaded: u64,
    /// Payload bytes sent in blocks.
    pub uploaded: u64,
    /// Received block bytes we did not need (endgame duplicates, late blocks).
    pub wasted: u64,
    pub hash_failures: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerStats {
    pub key: PeerKey,
    pub peer_id: Option<[u8; 20]>,
    pub downloaded: u64,
    pub uploaded: u64,
    pub down_rate: f64,
    pub up_rate: f64,
    pub pieces: u32,
    pub am_choking: bool,
    pub peer_choking: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub have: u32,
    pub pieces: u32,
    pub bytes_have: u64,
    pub total_length: u64,
    pub peers: usize,
    /// Peers that let us request from them now (not choking us).
    pub sources: usize,
    /// Peers we upload to now (unchoked by us).
    pub uploading_to: usize,
    pub totals: Totals,
}

#[derive(Debug)]
struct PeerSlot {
    wire: Peer,
    outbound: bool,
    peer_id: Option<[u8; 20]>,
    /// Pieces counted for this peer in the picker's availability.
    counted: Bitfield,
    am_choking: bool,
    peer_interested: bool,
    /// Pieces we fetch from this peer; `true` for an endgame duplicate.
    assigned: Vec<(u32, bool)>,
    sent_at: HashMap<(u32, u32), Instant>,
    min_latency: Option<Duration>,
    last_block: Instant,
    /// When a block last moved to or from it (or it connected).
    active_at: Instant,
    down: Rate,
    up: Rate,
    downloaded: u64,
    uploaded: u64,
    upload_queue: VecDeque<(u32, u32, u32)>,
    /// Super-seed: bytes of each offered piece sent to this peer.
    offer_sent: HashMap<u32, u64>,
    strikes: u32,
    /// Let a request time out; gets one request at a time until it delivers a block.
    snubbed: bool,
    /// Super-seed: pieces this seed sent it, and when it last announced a piece it got from
    /// someone else (a peer that gets nothing from peers cannot reach them).
    served: Bitfield,
    last_peer_progress: Instant,
    /// The id the peer wants `ut_metadata` messages sent with (BEP 9).
    ut_metadata: Option<u8>,
}

#[derive(Debug)]
struct Partial {
    data: Vec<u8>,
    done: Vec<bool>,
    requested_by: Vec<Vec<PeerKey>>,
    contributors: Vec<PeerKey>,
}

impl Partial {
    fn new(len: u32) -> Self {
        let blocks = len.div_ceil(BLOCK) as usize;
        Partial { data: vec![0; len as usize], done: vec![false; blocks], requested_by: vec![Vec::new(); blocks], contributors: Vec::new() }
    }
    fn block_len(&self, b: usize) -> u32 {
        (self.data.len() as u32 - b as u32 * BLOCK).min(BLOCK)
    }
}

/// The sans-IO swarm of one torrent.
#[derive(Debug)]
pub struct Swarm {
    cfg: SwarmConfig,
    picker: PiecePicker,
    superseed: Option<SuperSeed>,
    choker: Choker,
    peers: BTreeMap<PeerKey, PeerSlot>,
    next_key: PeerKey,
    partial: HashMap<u32, Partial>,
    events: VecDeque<SwarmEvent>,
    wake: Vec<PeerKey>,
    next_rechoke: Instant,
    choke_dirty: bool,
    totals: Totals,
    bytes_have: u64,
}

/// Bytes of answers (rejects, metadata, keep-alives) waiting for a peer to read before it is
/// dropped: blocks are taken from storage only below [`TRANSMIT_HIGH_WATER`], so only what a
/// peer provokes without reading can pass this.
pub const MAX_PENDING_OUT: usize = 1 << 20;

/// Super-seed: a peer that got no piece from other peers for this long is served anything.
pub const STARVING_AFTER: Duration = Duration::from_secs(3);

/// How much already-encoded output a peer may have before we stop reading blocks from
/// storage for it: blocks are read only as the socket drains.
const TRANSMIT_HIGH_WATER: usize = 4 * (BLOCK as usize + 13);

impl Swarm {
    /// A swarm that already has `have` (verified) pieces.
    pub fn new(cfg: SwarmConfig, have: Bitfield, now: Instant) -> Self {
        assert_eq!(have.len(), cfg.pieces(), "a bitfield of the torrent's pieces");
        let bytes_have = have.iter().map(|i| u64::from(cfg.piece_len(i))).sum();
        let mut picker = PiecePicker::new(cfg.pieces(), have, cfg.rng_seed);
        picker.set_order(cfg.order);
        Swarm {
            superseed: cfg.super_seed.then(|| SuperSeed::new(cfg.pieces(), cfg.super_seed_offers)),
            choker: Choker::new(cfg.upload_slots, cfg.optimistic_every, cfg.rng_seed ^ 0x5EED),
            picker,
            peers: BTreeMap::new(),
            next_key: PeerKey(1),
            partial: HashMap::new(),
            events: VecDeque::new(),
            wake: Vec::new(),
            next_rechoke: now + cfg.rechoke_interval,
            choke_dirty: false,
            totals: Totals::default(),
            bytes_have,
            cfg,
        }
    }

    pub fn config(&self) -> &SwarmConfig {
        &self.cfg
    }
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }
    pub fn is_complete(&self) -> bool {
        self.picker.have().is_complete()
    }
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }
    pub fn has_room(&self) -> bool {
        self.peers.len() < self.cfg.max_peers
    }
    pub fn totals(&self) -> Totals {
        self.totals
    }
    /// Switches piece order (the stub wants the kernel's pieces in order, say).
    pub fn set_order(&mut self, order: Order) {
        self.picker.set_order(order);
    }

    pub fn progress(&self) -> Progress {
        let have = self.picker.have();
        let sources = self.peers.values().filter(|s| s.wire.is_handshaken() && !s.wire.peer_choking).count();
        let uploading_to = self.peers.values().filter(|s| !s.am_choking).count();
        Progress {
            have: have.count(),
            pieces: have.len(),
            bytes_have: self.bytes_have,
            total_length: self.cfg.total_length,
            peers: self.peers.len(),
            sources,
            uploading_to,
            totals: self.totals,
        }
    }

    pub fn peer_stats(&mut self, now: Instant) -> Vec<PeerStats> {
        self.peers
            .iter_mut()
            .map(|(&key, s)| PeerStats {
                key,
                peer_id: s.peer_id,
                downloaded: s.downloaded,
                uploaded: s.uploaded,
                down_rate: s.down.per_sec(now),
                up_rate: s.up.per_sec(now),
                pieces: s.counted.count(),
                am_choking: s.am_choking,
                peer_choking: s.wire.peer_choking,
            })
            .collect()
    }

    /// A new connection (we dialed it: `outbound`); `None` when the swarm is full. Our
    /// handshake is queued at once.
    /// A new connection, or `None` when the swarm is full of peers that moved blocks lately.
    /// When full, the peer that has moved no block (either way) for longest gives its place,
    /// if that was at least [`SwarmConfig::evict_idle_after`] ago: idle connections cannot
    /// keep newcomers out.
    pub fn add_peer(&mut self, now: Instant, outbound: bool) -> Option<PeerKey> {
        if !self.has_room() {
            let idle_for = |s: &PeerSlot| now.saturating_duration_since(s.active_at);
            let idlest = self.peers.iter().max_by_key(|(_, s)| idle_for(s)).filter(|(_, s)| idle_for(s) >= self.cfg.evict_idle_after).map(|(&k, _)| k)?;
            self.remove_peer(idlest, DropReason::IdleForNewcomer);
        }
        let key = self.next_key;
        self.next_key = PeerKey(key.0 + 1);
        let mut pc = PeerConfig::new(self.cfg.info_hash, self.cfg.our_id, self.cfg.pieces());
        pc.idle_timeout = self.cfg.idle_timeout;
        pc.keepalive = self.cfg.idle_timeout / 3;
        pc.max_requests = self.cfg.max_pipeline;
        let slot = PeerSlot {
            wire: Peer::new(pc, now),
            outbound,
            peer_id: None,
            counted: Bitfield::new(self.cfg.pieces()),
            am_choking: true,
            peer_interested: false,
            assigned: Vec::new(),
            sent_at: HashMap::new(),
            min_latency: None,
            last_block: now,
            active_at: now,
            down: Rate::new(now),
            up: Rate::new(now),
            downloaded: 0,
            uploaded: 0,
            upload_queue: VecDeque::new(),
            offer_sent: HashMap::new(),
            strikes: 0,
            snubbed: false,
            served: Bitfield::new(self.cfg.pieces()),
            last_peer_progress: now,
            ut_metadata: None,
        };
        self.peers.insert(key, slot);
        self.wake.push(key);
        Some(key)
    }

    /// The socket closed (or failed).
    pub fn peer_closed(&mut self, now: Instant, key: PeerKey) {
        self.remove_peer(key, DropReason::Closed);
        if self.choke_dirty {
            self.rechoke(now, false);
        }
    }

    pub fn is_open(&self, key: PeerKey) -> bool {
        self.peers.contains_key(&key)
    }

    pub fn poll_event(&mut self) -> Option<SwarmEvent> {
        self.events.pop_front()
    }

    /// Peers that have something new to transmit since the last call.
    pub fn take_wakeups(&mut self) -> Vec<PeerKey> {
        let mut w = std::mem::take(&mut self.wake);
        w.sort_unstable();
        w.dedup();
        w
    }

    /// Bytes to write to `key`'s socket now; blocks it asked for are read from `store` here,
    /// only as fast as the socket takes them.
    pub fn poll_transmit(&mut self, now: Instant, key: PeerKey, store: &mut dyn Storage) -> Vec<u8> {
        let Some(slot) = self.peers.get_mut(&key) else {
            return Vec::new();
        };
        while slot.wire.pending_transmit() < TRANSMIT_HIGH_WATER {
            let Some((index, begin, length)) = slot.upload_queue.pop_front() else {
                break;
            };
            match store.read_block(index, begin, length) {
                Ok(data) => {
                    slot.wire.send_block(index, begin, data);
                    slot.active_at = now;
                    slot.uploaded += u64::from(length);
                    slot.up.add(now, u64::from(length));
                    self.totals.uploaded += u64::from(length);
                    if let Some(ss) = &mut self.superseed {
                        if ss.allows(key, index) {
                            ss.progressed(key, index, now);
                            let sent = slot.offer_sent.entry(index).or_insert(0);
                            *sent += u64::from(length);
                            if *sent >= u64::from(self.cfg.piece_len(index)) {
                                slot.offer_sent.remove(&index);
                                slot.served.set(index);
                                let before = ss.rounds();
                                ss.uploaded(key, index);
                                if ss.rounds() > before {
                                    self.events.push_back(SwarmEvent::SuperSeedRound(ss.rounds()));
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    slot.wire.reject(index, begin, length);
                    self.events.push_back(SwarmEvent::StorageFailed { piece: index, error: e.to_string() });
                }
            }
        }
        let out = slot.wire.take_transmit(now);
        if self.superseed.is_some() {
            // An upload may have finished: hand out the freed offers.
            self.refill_offers(now);
        }
        out
    }

    /// When to call [`Swarm::on_timeout`] next.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_rechoke;
        if let Some(e) = self.superseed.as_ref().and_then(|ss| ss.next_expiry(self.cfg.super_seed_offer_timeout)) {
            t = t.min(e);
        }
        for s in self.peers.values() {
            t = t.min(s.wire.poll_timeout());
            if s.wire.outstanding() > 0 {
                t = t.min(s.last_block + self.cfg.request_timeout);
            }
        }
        t
    }

    pub fn on_timeout(&mut self, now: Instant, store: &mut dyn Storage) {
        let _ = store;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(slot) = self.peers.get_mut(&key) else {
                continue;
            };
            let events = slot.wire.on_timeout(now);
            if slot.wire.has_transmit() {
                self.wake.push(key);
            }
            if slot.wire.outstanding() > 0 && now >= slot.last_block + self.cfg.request_timeout {
                // Snubbed: give its pieces to others.
                slot.wire.forget_requests();
                slot.last_block = now;
                slot.snubbed = true;
                self.release_assignments(key);
            }
            for e in events {
                if let WireEvent::Dropped(why) = e {
                    self.remove_peer(key, why.into());
                }
            }
        }
        if let Some(ss) = &mut self.superseed {
            let lapsed = ss.expire(now, self.cfg.super_seed_offer_timeout);
            for (key, piece) in &lapsed {
                if let Some(slot) = self.peers.get_mut(key) {
                    slot.offer_sent.remove(piece);
                }
            }
            if !lapsed.is_empty() {
                self.refill_offers(now);
            }
        }
        if now >= self.next_rechoke {
            self.next_rechoke = now + self.cfg.rechoke_interval;
            self.rechoke(now, true);
        } else if self.choke_dirty {
            self.rechoke(now, false);
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(now, key);
        }
    }

    /// Bytes read from `key`'s socket.
    pub fn on_bytes(&mut self, now: Instant, key: PeerKey, bytes: &[u8], store: &mut dyn Storage) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let events = slot.wire.on_bytes(now, bytes);
        for e in events {
            if !self.peers.contains_key(&key) {
                break;
            }
            self.on_wire_event(now, key, e, store);
            // Answers it provoked (rejects, metadata) pile up while it does not read.
            if self.peers.get(&key).is_some_and(|s| s.wire.pending_transmit() > MAX_PENDING_OUT) {
                self.remove_peer(key, DropReason::NotReading);
            }
        }
        if self.choke_dirty {
            self.rechoke(now, false);
        }
        self.fill_requests(now, key);
        if self.peers.get(&key).is_some_and(|s| s.wire.has_transmit() || !s.upload_queue.is_empty()) {
            self.wake.push(key);
        }
    }

    fn on_wire_event(&mut self, now: Instant, key: PeerKey, e: WireEvent, store: &mut dyn Storage) {
        match e {
            WireEvent::Connected { peer_id, extended, .. } => {
                self.on_connected(key, peer_id);
                if let (true, Some(md), Some(slot)) = (extended, &self.cfg.metadata, self.peers.get_mut(&key)) {
                    slot.wire.send_extended(0, crate::metadata::handshake(md.len()));
                }
            }
            WireEvent::Extended { id: 0, payload } => {
                self.peers.get_mut(&key).expect("live peer").ut_metadata = crate::metadata::their_id(&payload);
            }
            WireEvent::Extended { id: crate::metadata::OUR_ID, payload } => {
                let slot = self.peers.get_mut(&key).expect("live peer");
                if let (Some(piece), Some(their), Some(md)) = (crate::metadata::requested_piece(&payload), slot.ut_metadata, &self.cfg.metadata) {
                    slot.wire.send_extended(their, crate::metadata::reply(piece, md));
                    self.wake.push(key);
                }
            }
            WireEvent::Extended { .. } => {}
            WireEvent::Has(has) => {
                let slot = self.peers.get_mut(&key).expect("live peer");
                for i in 0..has.len() {
                    match (slot.counted.has(i), has.has(i)) {
                        (false, true) => {
                            self.picker.peer_has(i);
                            if !slot.served.has(i) {
                                slot.last_peer_progress = now;
                            }
                        }
                        (true, false) => self.picker.peer_lost(i),
                        _ => {}
                    }
                }
                slot.counted = has;
                self.withdraw_offers_had_elsewhere(key, now);
                self.update_interest(key);
            }
            WireEvent::Have(i) => {
                // One piece: O(1) here (a HAVE for a piece the peer had is no event at all).
                let slot = self.peers.get_mut(&key).expect("live peer");
                if slot.counted.has(i) {
                    return;
                }
                slot.counted.set(i);
                self.picker.peer_has(i);
                if !slot.served.has(i) {
                    slot.last_peer_progress = now;
                }
                let wanted = !self.picker.have().has(i);
                if wanted && !slot.wire.am_interested {
                    slot.wire.set_interested(true);
                    self.wake.push(key);
                }
                self.withdraw_offers_had_elsewhere(key, now);
            }
            WireEvent::Choked => {
                let slot = self.peers.get_mut(&key).expect("live peer");
                slot.wire.forget_requests();
                self.release_assignments(key);
            }
            WireEvent::Unchoked => {}
            WireEvent::Interested(yes) => {
                let slot = self.peers.get_mut(&key).expect("live peer");
                slot.peer_interested = yes;
                self.choke_dirty = true;
            }
            WireEvent::Block { index, begin, data } => self.on_block(now, key, index, begin, data, store),
            WireEvent::Lost { index, begin, .. } => {
                if let Some(p) = self.partial.get_mut(&index) {
                    let b = (begin / BLOCK) as usize;
                    if let Some(r) = p.requested_by.get_mut(b) {
                        r.retain(|&k| k != key);
                    }
                }
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.sent_at.remove(&(index, begin));
                }
            }
            WireEvent::Requested { index, begin, length } => self.on_request(key, index, begin, length),
            WireEvent::Cancelled { index, begin, length } => {
                let slot = self.peers.get_mut(&key).expect("live peer");
                slot.upload_queue.retain(|&r| r != (index, begin, length));
            }
            WireEvent::Dropped(why) => self.remove_peer(key, why.into()),
        }
    }

    fn on_connected(&mut self, key: PeerKey, peer_id: [u8; 20]) {
        let our_id = self.cfg.our_id;
        let outbound = self.peers[&key].outbound;
        // One connection per pair of peers: the one dialed by the lower peer id stays.
        if let Some((&other, o)) = self.peers.iter().find(|(&k, s)| k != key && s.peer_id == Some(peer_id)) {
            let canonical_outbound = our_id < peer_id;
            let drop = if o.outbound == canonical_outbound && outbound != canonical_outbound {
                key
            } else if outbound == canonical_outbound && o.outbound != canonical_outbound {
                other
            } else {
                key
            };
            self.remove_peer(drop, DropReason::Duplicate);
            if drop == key {
                return;
            }
        }
        let slot = self.peers.get_mut(&key).expect("live peer");
        slot.peer_id = Some(peer_id);
        if self.superseed.is_some() {
            slot.wire.announce(&Bitfield::new(self.cfg.pieces()));
        } else {
            slot.wire.announce(self.picker.have());
        }
        self.events.push_back(SwarmEvent::Connected { key, peer_id });
        self.choke_dirty = true;
    }

    /// Super-seed: the offers `key` now has (it got them from other peers) are withdrawn and
    /// others handed out. A peer holds at most `super_seed_offers`, so this is O(1).
    fn withdraw_offers_had_elsewhere(&mut self, key: PeerKey, now: Instant) {
        let (Some(ss), Some(slot)) = (&mut self.superseed, self.peers.get_mut(&key)) else { return };
        for p in ss.offered(key) {
            if slot.counted.has(p) {
                ss.withdraw(key, p);
                slot.offer_sent.remove(&p);
            }
        }
        self.refill_offers(now);
    }

    /// Super-seed: the offers are the seed's admission control (every peer that lacks pieces
    /// is unchoked). At most `super_seed_slots × super_seed_offers` pieces are on offer at once,
    /// each peer holds at most `super_seed_offers`, and free offers go to the peers the seed
    /// has sent the least, so the first copy of the file is spread evenly over the fleet and
    /// every peer has its share to pass on.
    ///
    /// A peer that announced no piece it got from someone else for [`STARVING_AFTER`] is
    /// treated as cut off from the other peers: it goes first and may be offered any piece.
    fn refill_offers(&mut self, now: Instant) {
        let Some(ss) = &mut self.superseed else {
            return;
        };
        let cap = self.cfg.super_seed_slots * self.cfg.super_seed_offers;
        let starving = |s: &PeerSlot| now.saturating_duration_since(s.last_peer_progress) >= STARVING_AFTER;
        let mut order: Vec<(bool, u64, PeerKey)> = self
            .peers
            .iter()
            .filter(|(_, s)| s.wire.is_handshaken() && !s.am_choking && !s.counted.is_complete())
            .map(|(&k, s)| (!starving(s), s.uploaded + s.offer_sent.values().sum::<u64>(), k))
            .collect();
        order.sort_unstable();
        let picker = &self.picker;
        let mut progress = true;
        while ss.total_offers() < cap && progress {
            progress = false;
            for &(fed, _, key) in &order {
                if ss.total_offers() >= cap {
                    break;
                }
                let slot = self.peers.get_mut(&key).expect("listed");
                if let Some(piece) = ss.offer(now, key, &slot.counted, |i| picker.availability(i), !fed) {
                    slot.wire.have(piece);
                    self.wake.push(key);
                    progress = true;
                    // One offer per peer per pass: spread before doubling up.
                }
            }
        }
    }

    fn on_request(&mut self, key: PeerKey, index: u32, begin: u32, length: u32) {
        let have = self.picker.have().has(index);
        let in_piece = u64::from(begin) + u64::from(length) <= u64::from(self.cfg.piece_len(index));
        let offered = self.superseed.as_ref().is_none_or(|ss| ss.allows(key, index));
        let max_queue = self.cfg.max_upload_queue;
        let slot = self.peers.get_mut(&key).expect("live peer");
        if slot.am_choking || !have || !in_piece || !offered || slot.upload_queue.len() >= max_queue {
            slot.wire.reject(index, begin, length);
            return;
        }
        if !slot.upload_queue.contains(&(index, begin, length)) {
            slot.upload_queue.push_back((index, begin, length));
        }
    }

    fn on_block(&mut self, now: Instant, key: PeerKey, index: u32, begin: u32, data: Vec<u8>, store: &mut dyn Storage) {
        let len = data.len() as u64;
        self.totals.downloaded += len;
        let slot = self.peers.get_mut(&key).expect("live peer");
        slot.downloaded += len;
        slot.down.add(now, len);
        slot.last_block = now;
        slot.active_at = now;
        slot.snubbed = false;
        if let Some(sent) = slot.sent_at.remove(&(index, begin)) {
            let lat = now.saturating_duration_since(sent);
            slot.min_latency = Some(slot.min_latency.map_or(lat, |m| m.min(lat)));
        }
        let Some(p) = self.partial.get_mut(&index) else {
            self.totals.wasted += len;
            return;
        };
        let b = (begin / BLOCK) as usize;
        if !begin.is_multiple_of(BLOCK) || b >= p.done.len() || p.block_len(b) as u64 != len || p.done[b] {
            self.totals.wasted += len;
            return;
        }
        p.data[begin as usize..begin as usize + data.len()].copy_from_slice(&data);
        p.done[b] = true;
        if !p.contributors.contains(&key) {
            p.contributors.push(key);
        }
        // Endgame: the others asked for this block too; cancel theirs.
        for other in std::mem::take(&mut p.requested_by[b]) {
            if other != key {
                if let Some(o) = self.peers.get_mut(&other) {
                    o.wire.cancel(index, begin, len as u32);
                    o.sent_at.remove(&(index, begin));
                    self.wake.push(other);
                }
            }
        }
        if p.done.iter().all(|&d| d) {
            self.finish_piece(index, store);
        }
    }

    fn finish_piece(&mut self, index: u32, store: &mut dyn Storage) {
        let p = self.partial.remove(&index).expect("a piece in progress");
        let holders: Vec<PeerKey> = self.peers.iter().filter(|(_, s)| s.assigned.iter().any(|&(a, _)| a == index)).map(|(&k, _)| k).collect();
        for k in &holders {
            self.peers.get_mut(k).expect("listed").assigned.retain(|&(a, _)| a != index);
        }
        let ok = self.cfg.piece_matches(index, &p.data);
        if !ok {
            self.totals.hash_failures += 1;
            for _ in &holders {
                self.picker.piece_abandoned(index);
            }
            self.events.push_back(SwarmEvent::PieceFailed { piece: index, from: p.contributors.clone() });
            let alone = p.contributors.len() == 1;
            for k in p.contributors {
                if let Some(s) = self.peers.get_mut(&k) {
                    s.strikes += 1;
                    if alone || s.strikes >= 2 {
                        self.remove_peer(k, DropReason::BadPieces);
                    }
                }
            }
            return;
        }
        if let Err(e) = store.write_piece(index, &p.data) {
            for _ in &holders {
                self.picker.piece_abandoned(index);
            }
            self.events.push_back(SwarmEvent::StorageFailed { piece: index, error: e.to_string() });
            return;
        }
        self.piece_stored(index, p.data.len());
    }

    /// A whole piece that came from elsewhere (the fetch client's HTTP fallback): checked
    /// against its hash, written, and announced like a piece from a peer; requests still out
    /// for it are forgotten (their blocks count as wasted if they come). `Ok(false)`: we
    /// already had it.
    pub fn add_piece(&mut self, index: u32, data: &[u8], store: &mut dyn Storage) -> Result<bool, AddPieceError> {
        if index >= self.cfg.pieces() {
            return Err(AddPieceError::NoSuchPiece(index));
        }
        if self.picker.have().has(index) {
            return Ok(false);
        }
        if data.len() != self.cfg.piece_len(index) as usize || !self.cfg.piece_matches(index, data) {
            self.totals.hash_failures += 1;
            return Err(AddPieceError::HashMismatch(index));
        }
        if self.partial.remove(&index).is_some() {
            for s in self.peers.values_mut() {
                s.assigned.retain(|&(a, _)| a != index);
            }
        }
        store.write_piece(index, data).map_err(|e| AddPieceError::Storage(e.to_string()))?;
        self.piece_stored(index, data.len());
        Ok(true)
    }

    /// After a verified piece was written: count it, announce it, update interest.
    fn piece_stored(&mut self, index: u32, len: usize) {
        self.picker.piece_done(index);
        self.bytes_have += len as u64;
        self.events.push_back(SwarmEvent::PieceVerified(index));
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let s = self.peers.get_mut(&k).expect("listed");
            if s.wire.is_handshaken() && self.superseed.is_none() {
                s.wire.have(index);
                self.wake.push(k);
            }
            self.update_interest(k);
        }
        if self.is_complete() {
            self.events.push_back(SwarmEvent::Complete);
            self.choke_dirty = true;
        }
    }

    fn update_interest(&mut self, key: PeerKey) {
        let have = self.picker.have();
        let Some(s) = self.peers.get_mut(&key) else {
            return;
        };
        let wanted = s.counted.iter().any(|i| !have.has(i));
        if wanted != s.wire.am_interested {
            s.wire.set_interested(wanted);
            self.wake.push(key);
        }
    }

    /// Releases the pieces `key` was fetching, so others can be asked for them.
    fn release_assignments(&mut self, key: PeerKey) {
        let Some(s) = self.peers.get_mut(&key) else {
            return;
        };
        s.sent_at.clear();
        for (piece, _) in std::mem::take(&mut s.assigned) {
            self.picker.piece_abandoned(piece);
            if let Some(p) = self.partial.get_mut(&piece) {
                for r in &mut p.requested_by {
                    r.retain(|&k| k != key);
                }
            }
        }
    }

    fn remove_peer(&mut self, key: PeerKey, reason: DropReason) {
        if !self.peers.contains_key(&key) {
            return;
        }
        self.release_assignments(key);
        let s = self.peers.remove(&key).expect("checked");
        self.picker.remove_peer(&s.counted);
        if let Some(ss) = &mut self.superseed {
            ss.peer_gone(key);
        }
        self.choke_dirty = true;
        self.events.push_back(SwarmEvent::Dropped { key, reason });
    }

    /// Requests kept outstanding at this peer: bandwidth × delay, where the delay is twice
    /// the lowest request latency seen plus [`SwarmConfig::queue_delay`] (under load our
    /// requests wait behind our own uploads in our uplink's queue, and its blocks behind other
    /// peers' in its queue); at least 4, at most `max_pipeline`.
    fn pipeline_target(cfg: &SwarmConfig, s: &mut PeerSlot, now: Instant) -> usize {
        if s.snubbed {
            return 1;
        }
        let rate = s.down.per_sec(now);
        let delay = 2 * s.min_latency.unwrap_or(Duration::from_millis(5)).max(Duration::from_millis(1)) + cfg.queue_delay;
        let bdp = rate * delay.as_secs_f64() / f64::from(BLOCK);
        (4 + bdp.ceil() as usize).min(cfg.max_pipeline)
    }

    /// Keeps `key`'s pipeline full: free blocks of the pieces it is fetching, then new pieces
    /// from the picker.
    fn fill_requests(&mut self, now: Instant, key: PeerKey) {
        let Some(s) = self.peers.get_mut(&key) else {
            return;
        };
        if !s.wire.can_request() || !s.wire.am_interested {
            return;
        }
        let target = Self::pipeline_target(&self.cfg, s, now);
        let mut sent = false;
        'fill: while s.wire.outstanding() < target {
            for &(piece, dup) in &s.assigned {
                let p = self.partial.get_mut(&piece).expect("assigned pieces are in progress");
                let free = (0..p.done.len()).find(|&b| !p.done[b] && !p.requested_by[b].contains(&key) && (dup || p.requested_by[b].is_empty()));
                if let Some(b) = free {
                    p.requested_by[b].push(key);
                    let begin = b as u32 * BLOCK;
                    if s.wire.outstanding() == 0 {
                        s.last_block = now;
                    }
                    s.wire.request(piece, begin, p.block_len(b));
                    s.sent_at.insert((piece, begin), now);
                    sent = true;
                    continue 'fill;
                }
            }
            let Some(piece) = self.picker.pick(&s.wire.peer_has) else {
                break;
            };
            let len = self.cfg.piece_len(piece);
            let dup = match self.partial.get(&piece) {
                None => false,
                // In flight elsewhere: either an endgame duplicate, or a piece someone dropped
                // half-way whose free blocks are ours now.
                Some(p) => (0..p.done.len()).all(|b| p.done[b] || !p.requested_by[b].is_empty()),
            };
            self.partial.entry(piece).or_insert_with(|| Partial::new(len));
            s.assigned.push((piece, dup));
        }
        if sent {
            self.wake.push(key);
        }
    }

    fn rechoke(&mut self, now: Instant, full: bool) {
        self.choke_dirty = false;
        if self.superseed.is_some() {
            for (&key, s) in self.peers.iter_mut() {
                let unchoke = s.wire.is_handshaken() && !s.counted.is_complete();
                if s.wire.is_handshaken() && unchoke == s.am_choking {
                    s.am_choking = !unchoke;
                    s.wire.choke(!unchoke);
                    self.wake.push(key);
                }
            }
            self.refill_offers(now);
            return;
        }
        let seeding = self.is_complete();
        let cands: Vec<Candidate> = self
            .peers
            .iter_mut()
            .filter(|(_, s)| s.peer_interested && s.wire.is_handshaken())
            .map(|(&key, s)| Candidate { key, rate: if seeding { s.up.per_sec(now) } else { s.down.per_sec(now) }, unchoked: !s.am_choking })
            .collect();
        let chosen = if full { self.choker.rechoke(&cands) } else { self.choker.fill(&cands) };
        for (&key, s) in self.peers.iter_mut() {
            let unchoke = chosen.contains(&key);
            if s.wire.is_handshaken() && unchoke == s.am_choking {
                s.am_choking = !unchoke;
                s.wire.choke(!unchoke);
                if !unchoke {
                    // BEP 6: a choke without the Fast extension discards their requests;
                    // with it, we reject each one.
                    for (i, b, l) in std::mem::take(&mut s.upload_queue) {
                        s.wire.reject(i, b, l);
                    }
                }
                self.wake.push(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
