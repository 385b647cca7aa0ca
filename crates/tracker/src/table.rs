//! The swarms the tracker knows and their peers, and the announce decision:
//! `PeerTable::announce(&req, source, now) -> Result<AnnounceReply, Refusal>`. No sockets, no
//! clock (time comes in), randomness from a seed the caller gives.
//!
//! It shapes boot storms: each reply is a bounded random set of peers that prefers peers on the
//! requester's subnet and peers that hold more of the file (those can serve it now), so the
//! first machines do not all get the same few peers; a young swarm is told to re-announce
//! every few seconds, so machines that start together find each other at once; peers that
//! stop announcing expire.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::query::{AnnounceRequest, Event};

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Re-announce interval once a swarm has settled.
    pub interval: Duration,
    /// Re-announce interval while a swarm is young (a boot storm is starting).
    pub young_interval: Duration,
    /// How long a swarm counts as young after its first peer arrived.
    pub young_for: Duration,
    /// A peer not heard from for this long is forgotten.
    pub peer_ttl: Duration,
    /// Peers whose addresses share this many leading bits with the requester's are preferred.
    pub subnet_prefix: u8,
    /// Peers from other subnets in a reply once the requester's subnet gave at least this
    /// many: a room behind an uplink trades inside itself, and these few (seeds and fuller
    /// peers first, so the server's seed among them) bring it what it lacks. A subnet with
    /// fewer peers gets its reply filled from outside.
    pub outside_subnet: usize,
    /// Most peers kept per swarm (new ones beyond are refused).
    pub max_peers_per_swarm: usize,
    /// Most peers kept per source address and swarm: one more from that address replaces its
    /// least recently seen (a host cannot fill a swarm by announcing many ports or ids).
    pub max_peers_per_address: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            interval: Duration::from_secs(60),
            young_interval: Duration::from_secs(5),
            young_for: Duration::from_secs(120),
            peer_ttl: Duration::from_secs(200),
            subnet_prefix: 24,
            outside_subnet: 8,
            max_peers_per_swarm: 4096,
            max_peers_per_address: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerEntry {
    left: u64,
    last_seen: Instant,
    uploaded: u64,
    downloaded: u64,
}

/// Peers are keyed by what the tracker saw: the request's source address with the port the
/// peer announced. An id chosen by the client names nothing here, so a `stopped` sent from
/// another address cannot remove a peer.
#[derive(Debug, Default)]
struct SwarmEntry {
    peers: HashMap<SocketAddrV4, PeerEntry>,
    first_seen: Option<Instant>,
    completed: u64,
    reported: ReportedTotals,
}

/// What peers said they moved, summed over every announce (a peer's counters are
/// cumulative; each announce adds what grew since its previous one, a restarted peer's counters
/// count from zero again).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReportedTotals {
    pub uploaded: u64,
    pub downloaded: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReply {
    pub interval: Duration,
    pub min_interval: Duration,
    pub complete: u32,
    pub incomplete: u32,
    /// The peers handed out: addresses only (peer ids are not handed out; each peer tells its
    /// own in the handshake).
    pub peers: Vec<SocketAddrV4>,
}

/// Why an announce was refused (sent back as a bencoded `failure reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown torrent: this tracker serves only the server's images")]
    UnknownTorrent,
    #[error("swarm is full")]
    SwarmFull,
}

/// One peer of a swarm, as the tracker last heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    pub address: SocketAddrV4,
    /// Bytes it still lacks (0: it seeds).
    pub left: u64,
    /// What it reported moving in this swarm (cumulative, its own counters).
    pub uploaded: u64,
    pub downloaded: u64,
    pub last_seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeEntry {
    pub complete: u32,
    pub incomplete: u32,
    pub downloaded: u64,
}

#[derive(Debug)]
pub struct PeerTable {
    cfg: TrackerConfig,
    swarms: HashMap<[u8; 20], SwarmEntry>,
    rng: u64,
    reported: ReportedTotals,
}

impl PeerTable {
    pub fn new(cfg: TrackerConfig, seed: u64) -> Self {
        PeerTable { cfg, swarms: HashMap::new(), rng: seed | 1, reported: ReportedTotals::default() }
    }

    /// Serves `info_hash` from now on.
    pub fn allow(&mut self, info_hash: [u8; 20]) {
        self.swarms.entry(info_hash).or_default();
    }

    /// Stops serving `info_hash` (its peers are forgotten).
    pub fn forbid(&mut self, info_hash: &[u8; 20]) {
        self.swarms.remove(info_hash);
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Forgets peers not heard from for the TTL.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.cfg.peer_ttl;
        for s in self.swarms.values_mut() {
            s.peers.retain(|_, p| now.saturating_duration_since(p.last_seen) < ttl);
        }
    }

    /// One announce from `source` (the address the request came from; the announced port
    /// replaces its port).
    pub fn announce(&mut self, req: &AnnounceRequest, source: Ipv4Addr, now: Instant) -> Result<AnnounceReply, Refusal> {
        let cfg = self.cfg.clone();
        let swarm = self.swarms.get_mut(&req.info_hash).ok_or(Refusal::UnknownTorrent)?;
        let ttl = cfg.peer_ttl;
        swarm.peers.retain(|_, p| now.saturating_duration_since(p.last_seen) < ttl);
        let first_seen = *swarm.first_seen.get_or_insert(now);
        let key = SocketAddrV4::new(source, req.port);
        let known = swarm.peers.get(&key).map(|p| (p.uploaded, p.downloaded));
        if known.is_none() && req.event != Event::Stopped {
            let from_here: Vec<(Instant, SocketAddrV4)> = swarm.peers.iter().filter(|(a, _)| *a.ip() == source).map(|(a, p)| (p.last_seen, *a)).collect();
            if from_here.len() >= cfg.max_peers_per_address {
                // The address's least recently seen entry makes room (a restarted client).
                if let Some((_, oldest)) = from_here.into_iter().min() {
                    swarm.peers.remove(&oldest);
                }
            } else if swarm.peers.len() >= cfg.max_peers_per_swarm {
                return Err(Refusal::SwarmFull);
            }
        }
        let (up_before, down_before) = known.unwrap_or((0, 0));
        let grown = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
        let (up, down) = (grown(req.uploaded, up_before), grown(req.downloaded, down_before));
        for totals in [&mut self.reported, &mut swarm.reported] {
            totals.uploaded = totals.uploaded.saturating_add(up);
            totals.downloaded = totals.downloaded.saturating_add(down);
        }
        match req.event {
            Event::Stopped => {
                swarm.peers.remove(&key);
            }
            _ => {
                let entry = PeerEntry { left: req.left, last_seen: now, uploaded: req.uploaded, downloaded: req.downloaded };
                let before = swarm.peers.insert(key, entry);
                if req.event == Event::Completed && before.is_none_or(|b| b.left > 0) {
                    swarm.completed = swarm.completed.saturating_add(1);
                }
            }
        }
        let complete = swarm.peers.values().filter(|p| p.left == 0).count() as u32;
        let incomplete = swarm.peers.len() as u32 - complete;
        let mut candidates: Vec<(SocketAddrV4, u64)> = swarm.peers.iter().filter(|(a, _)| **a != key).map(|(a, p)| (*a, p.left)).collect();
        // In address order before the seeded shuffle: the map's own order differs from one
        // table to the next, and the answer must depend on the seed alone.
        candidates.sort_unstable_by_key(|&(a, _)| a);
        let wanted = if req.event == Event::Stopped { 0 } else { req.numwant };
        let peers = self.choose(&mut candidates, source, wanted);
        let young = now.saturating_duration_since(first_seen) < cfg.young_for;
        let interval = if young { cfg.young_interval } else { cfg.interval };
        Ok(AnnounceReply { interval, min_interval: if young { Duration::from_secs(1) } else { interval / 2 }, complete, incomplete, peers })
    }

    /// A bounded random choice: shuffled, then ordered by (same subnet first, more of the
    /// file first, in quarters so that peers of about the same progress stay shuffled).
    fn choose(&mut self, candidates: &mut [(SocketAddrV4, u64)], source: Ipv4Addr, wanted: usize) -> Vec<SocketAddrV4> {
        for i in (1..candidates.len()).rev() {
            let j = (self.next_random() % (i as u64 + 1)) as usize;
            candidates.swap(i, j);
        }
        let max_left = candidates.iter().map(|c| c.1).max().unwrap_or(0).max(1);
        let mask = if self.cfg.subnet_prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.cfg.subnet_prefix.min(32))) };
        let same_subnet = |a: Ipv4Addr| (u32::from(a) & mask) == (u32::from(source) & mask);
        candidates.sort_by_key(|(p, left)| (!same_subnet(*p.ip()), left.saturating_mul(4) / max_left));
        let near = candidates.iter().take(wanted).take_while(|(p, _)| same_subnet(*p.ip())).count();
        let outside = if near >= self.cfg.outside_subnet { self.cfg.outside_subnet } else { wanted - near };
        candidates.iter().take(near + outside.min(wanted - near)).map(|(p, _)| *p).collect()
    }

    /// Counts for one swarm (`None`: not served here).
    pub fn scrape(&self, info_hash: &[u8; 20]) -> Option<ScrapeEntry> {
        let s = self.swarms.get(info_hash)?;
        let complete = s.peers.values().filter(|p| p.left == 0).count() as u32;
        Some(ScrapeEntry { complete, incomplete: s.peers.len() as u32 - complete, downloaded: s.completed })
    }

    /// Bytes peers reported uploading and downloading, over every swarm, since start.
    pub fn reported(&self) -> ReportedTotals {
        self.reported
    }

    /// Bytes peers reported uploading and downloading in one swarm since start (`None`: not
    /// served here).
    pub fn reported_in(&self, info_hash: &[u8; 20]) -> Option<ReportedTotals> {
        self.swarms.get(info_hash).map(|s| s.reported)
    }

    /// Up to `max` peers of one swarm, those still fetching first (fewest bytes left first),
    /// then seeds.
    pub fn peers_of(&self, info_hash: &[u8; 20], max: usize) -> Vec<PeerView> {
        let Some(s) = self.swarms.get(info_hash) else { return vec![] };
        let mut v: Vec<PeerView> = s.peers.iter().map(|(a, p)| view(*a, p)).collect();
        v.sort_by_key(|p| (p.left == 0, p.left, p.address));
        v.truncate(max);
        v
    }

    /// The swarms an address is a peer of (any port), with its entry in each; at most `max`.
    pub fn swarms_of(&self, address: Ipv4Addr, max: usize) -> Vec<([u8; 20], PeerView)> {
        let mut v: Vec<([u8; 20], PeerView)> =
            self.swarms.iter().flat_map(|(h, s)| s.peers.iter().filter(|(a, _)| *a.ip() == address).map(move |(a, p)| (*h, view(*a, p)))).collect();
        v.sort_by_key(|(h, p)| (*h, p.address));
        v.truncate(max);
        v
    }

    /// Every served info hash.
    pub fn info_hashes(&self) -> Vec<[u8; 20]> {
        self.swarms.keys().copied().collect()
    }
}

fn view(address: SocketAddrV4, p: &PeerEntry) -> PeerView {
    PeerView { address, left: p.left, uploaded: p.uploaded, downloaded: p.downloaded, last_seen: p.last_seen }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::DEFAULT_NUMWANT;

    const HASH: [u8; 20] = [9; 20];

    fn req(n: u8, left: u64, event: Event) -> AnnounceRequest {
        let mut peer_id = [0u8; 20];
        peer_id[0] = n;
        AnnounceRequest { info_hash: HASH, peer_id, port: 6881, uploaded: 0, downloaded: 0, left, event, numwant: DEFAULT_NUMWANT, want_dict: false, claimed_ip: None }
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, n)
    }

    /// Cumulative counters: each announce adds what grew; a restarted peer counts from zero.
    #[test]
    fn reported_totals_add_growth_only() {
        let mut t = PeerTable::new(TrackerConfig::default(), 1);
        t.allow(HASH);
        let now = Instant::now();
        let with = |n, up, down, event| AnnounceRequest { uploaded: up, downloaded: down, ..req(n, 10, event) };
        t.announce(&with(1, 0, 0, Event::Started), ip(1), now).unwrap();
        t.announce(&with(1, 100, 1000, Event::Update), ip(1), now).unwrap();
        t.announce(&with(2, 50, 0, Event::Started), ip(2), now).unwrap();
        t.announce(&with(1, 300, 1000, Event::Stopped), ip(1), now).unwrap();
        assert_eq!(t.reported(), ReportedTotals { uploaded: 350, downloaded: 1000 });
        t.announce(&with(2, 20, 5, Event::Update), ip(2), now).unwrap(); // restarted: counts from zero
        assert_eq!(t.reported(), ReportedTotals { uploaded: 370, downloaded: 1005 });
        assert!(t.announce(&with(3, 9, 9, Event::Started), ip(3), now).is_ok());
        let unknown = AnnounceRequest { info_hash: [1; 20], ..with(4, 1000, 1000, Event::Started) };
        assert!(t.announce(&unknown, ip(4), now).is_err());
        assert_eq!(t.reported(), ReportedTotals { uploaded: 379, downloaded: 1014 }, "refused announces count nothing");
        assert_eq!(t.reported_in(&HASH), Some(t.reported()), "one swarm: its totals are all");
        assert_eq!(t.reported_in(&[1; 20]), None);
    }

    /// Per swarm: its own totals, its peers (fetching first), and an address's swarms.
    #[test]
    fn each_swarm_keeps_its_totals_and_its_peers_can_be_listed() {
        let mut t = PeerTable::new(TrackerConfig::default(), 1);
        let other = [7u8; 20];
        t.allow(HASH);
        t.allow(other);
        let now = Instant::now();
        let at = |h: [u8; 20], n, left, up| AnnounceRequest { info_hash: h, uploaded: up, ..req(n, left, Event::Started) };
        t.announce(&at(HASH, 1, 0, 500), ip(1), now).unwrap();
        t.announce(&at(HASH, 2, 70, 10), ip(2), now).unwrap();
        t.announce(&at(HASH, 3, 30, 0), ip(3), now).unwrap();
        t.announce(&at(other, 2, 5, 1), ip(2), now).unwrap();
        assert_eq!(t.reported_in(&HASH).unwrap().uploaded, 510);
        assert_eq!(t.reported_in(&other).unwrap().uploaded, 1);
        assert_eq!(t.reported().uploaded, 511);
        let peers: Vec<(Ipv4Addr, u64)> = t.peers_of(&HASH, 10).iter().map(|p| (*p.address.ip(), p.left)).collect();
        assert_eq!(peers, [(ip(3), 30), (ip(2), 70), (ip(1), 0)], "fetching first, nearest done first, then seeds");
        assert_eq!(t.peers_of(&HASH, 1).len(), 1, "bounded");
        assert!(t.peers_of(&[1; 20], 10).is_empty());
        let of2: Vec<[u8; 20]> = t.swarms_of(ip(2), 10).iter().map(|(h, _)| *h).collect();
        assert_eq!(of2, [other, HASH]);
        assert_eq!(t.swarms_of(ip(2), 10)[1].1.uploaded, 10);
        assert!(t.swarms_of(ip(9), 10).is_empty());
    }

    #[test]
    fn a_full_swarm_refuses_newcomers_only_and_counts_nothing_for_them() {
        let mut t = PeerTable::new(TrackerConfig { max_peers_per_swarm: 2, ..TrackerConfig::default() }, 1);
        t.allow(HASH);
        let now = Instant::now();
        t.announce(&req(1, 10, Event::Started), ip(1), now).unwrap();
        t.announce(&req(2, 10, Event::Started), ip(2), now).unwrap();
        let newcomer = AnnounceRequest { uploaded: 500, ..req(3, 10, Event::Started) };
        assert_eq!(t.announce(&newcomer, ip(3), now), Err(Refusal::SwarmFull));
        assert_eq!(t.reported(), ReportedTotals::default());
        let update = AnnounceRequest { uploaded: 7, ..req(2, 0, Event::Completed) };
        assert!(t.announce(&update, ip(2), now).is_ok(), "peers already in keep announcing");
        assert_eq!(t.reported().uploaded, 7);
    }

    #[test]
    fn unknown_torrents_are_refused() {
        let mut t = PeerTable::new(TrackerConfig::default(), 1);
        assert_eq!(t.announce(&req(1, 5, Event::Started), ip(1), Instant::now()), Err(Refusal::UnknownTorrent));
    }

    #[test]
    fn peers_see_each_other_not_themselves_and_stopped_peers_leave() {
        let mut t = PeerTable::new(TrackerConfig::default(), 1);
        t.allow(HASH);
        let now = Instant::now();
        assert!(t.announce(&req(1, 100, Event::Started), ip(1), now).unwrap().peers.is_empty());
        let r = t.announce(&req(2, 100, Event::Started), ip(2), now).unwrap();
        assert_eq!(r.peers, vec![SocketAddrV4::new(ip(1), 6881)]);
        assert_eq!((r.complete, r.incomplete), (0, 2));
        t.announce(&req(1, 0, Event::Completed), ip(1), now).unwrap();
        assert_eq!(t.scrape(&HASH), Some(ScrapeEntry { complete: 1, incomplete: 1, downloaded: 1 }));
        t.announce(&req(1, 0, Event::Stopped), ip(1), now).unwrap();
        assert!(t.announce(&req(2, 100, Event::Update), ip(2), now).unwrap().peers.is_empty());
    }

    #[test]
    fn young_swarms_reannounce_fast_and_silent_peers_expire() {
        let cfg = TrackerConfig::default();
        let mut t = PeerTable::new(cfg.clone(), 1);
        t.allow(HASH);
        let t0 = Instant::now();
        assert_eq!(t.announce(&req(1, 1, Event::Started), ip(1), t0).unwrap().interval, cfg.young_interval);
        let later = t0 + cfg.young_for + Duration::from_secs(1);
        let r = t.announce(&req(2, 1, Event::Started), ip(2), later).unwrap();
        assert_eq!(r.interval, cfg.interval);
        assert_eq!(r.peers.len(), 1, "peer 1 was seen {:?} ago, within the TTL", later - t0);
        let much_later = t0 + cfg.peer_ttl + Duration::from_secs(1);
        assert!(t.announce(&req(2, 1, Event::Update), ip(2), much_later).unwrap().peers.is_empty(), "peer 1 expired");
    }

    /// 200 machines of a storm announce; each reply is bounded, lists the subnet's peers first
    /// and the seeds before empty peers, and different machines get different peers.
    #[test]
    fn replies_are_bounded_random_and_prefer_near_and_full_peers() {
        let mut t = PeerTable::new(TrackerConfig::default(), 7);
        t.allow(HASH);
        let now = Instant::now();
        let seed = req(250, 0, Event::Started);
        t.announce(&seed, Ipv4Addr::new(10, 77, 0, 1), now).unwrap();
        for n in 0..200u8 {
            let subnet = if n % 2 == 0 { 1 } else { 2 };
            t.announce(&req(n, 1000, Event::Started), Ipv4Addr::new(10, 77, subnet, n), now).unwrap();
        }
        let mut firsts = std::collections::HashSet::new();
        for n in (0..200u8).step_by(2) {
            let r = t.announce(&req(n, 1000, Event::Update), Ipv4Addr::new(10, 77, 1, n), now).unwrap();
            assert_eq!(r.peers.len(), DEFAULT_NUMWANT);
            assert!(r.peers.iter().all(|p| p.ip().octets()[2] == 1), "100 peers share the subnet: all 50 from it");
            firsts.insert(r.peers[0]);
        }
        assert!(firsts.len() > 30, "first peers vary: {}", firsts.len());
        // From another subnet, the seed (whole file) comes before the empty peers.
        let r = t.announce(&req(251, 1000, Event::Started), Ipv4Addr::new(10, 77, 3, 9), now).unwrap();
        assert_eq!(r.peers[0], SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 6881));
        assert_eq!(r.peers.len(), DEFAULT_NUMWANT, "alone in its subnet: filled from outside");
    }

    /// Two tables with the same seed, told the same, answer the same (the simulator replays
    /// storms by seed).
    #[test]
    fn the_same_seed_gives_the_same_answers() {
        let now = Instant::now();
        let replies = || {
            let mut t = PeerTable::new(TrackerConfig::default(), 11);
            t.allow(HASH);
            (0..300u16)
                .map(|n| t.announce(&req((n % 250) as u8, 1000, Event::Started), Ipv4Addr::new(10, 77, (n / 250) as u8, (n % 250) as u8), now).unwrap().peers)
                .collect::<Vec<_>>()
        };
        assert_eq!(replies(), replies());
    }

    /// Rooms behind uplinks: a machine in a room of 40 gets its 39 room-mates and 8 peers
    /// from outside, the seed first; a machine alone in its subnet gets a full reply.
    #[test]
    fn a_room_gets_its_own_peers_and_a_few_from_outside() {
        let mut t = PeerTable::new(TrackerConfig::default(), 3);
        t.allow(HASH);
        let now = Instant::now();
        t.announce(&req(250, 0, Event::Started), Ipv4Addr::new(10, 0, 0, 1), now).unwrap();
        for room in 1..=5u8 {
            for n in 0..40u8 {
                t.announce(&req(n.wrapping_add(room * 40), 1000, Event::Started), Ipv4Addr::new(10, room, 0, 10 + n), now).unwrap();
            }
        }
        let r = t.announce(&AnnounceRequest { numwant: 80, ..req(3 * 40, 1000, Event::Update) }, Ipv4Addr::new(10, 3, 0, 10), now).unwrap();
        let inside = r.peers.iter().filter(|p| p.ip().octets()[1] == 3).count();
        assert_eq!((inside, r.peers.len() - inside), (39, 8), "{:?}", r.peers);
        assert_eq!(r.peers[39], SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881), "the seed first of those outside");
        let alone = t.announce(&AnnounceRequest { numwant: 80, ..req(251, 1000, Event::Started) }, Ipv4Addr::new(10, 9, 0, 10), now).unwrap();
        assert_eq!(alone.peers.len(), 80);
    }

    /// One address announcing 5000 ids on as many ports holds at most its share of the swarm:
    /// a newcomer from another address still gets in, and sees the hoarder's few entries.
    #[test]
    fn one_address_cannot_fill_a_swarm() {
        let cfg = TrackerConfig { max_peers_per_swarm: 100, ..TrackerConfig::default() };
        let mut t = PeerTable::new(cfg.clone(), 1);
        t.allow(HASH);
        let now = Instant::now();
        for n in 0..5000u32 {
            let mut r = req(0, 10, Event::Started);
            r.peer_id[..4].copy_from_slice(&n.to_be_bytes());
            r.port = 10_000 + n as u16;
            t.announce(&r, ip(66), now + Duration::from_millis(u64::from(n))).unwrap();
        }
        let r = t.announce(&AnnounceRequest { numwant: 200, ..req(1, 10, Event::Started) }, ip(1), now + Duration::from_secs(6)).unwrap();
        assert_eq!(r.peers.len(), cfg.max_peers_per_address, "the hoarder's newest entries only");
        assert!(r.peers.iter().all(|p| p.port() >= 10_000 + 5000 - cfg.max_peers_per_address as u16), "{:?}", r.peers);
        assert_eq!(t.scrape(&HASH).unwrap().incomplete as usize, cfg.max_peers_per_address + 1);
    }

    /// Peers are who the tracker saw: a `stopped` with a real peer's id from another address
    /// removes nobody; from the peer's own address and port it removes the peer.
    #[test]
    fn a_stopped_from_another_address_removes_nobody() {
        let mut t = PeerTable::new(TrackerConfig::default(), 1);
        t.allow(HASH);
        let now = Instant::now();
        t.announce(&req(1, 10, Event::Started), ip(1), now).unwrap();
        t.announce(&req(2, 10, Event::Started), ip(2), now).unwrap();
        t.announce(&req(1, 10, Event::Stopped), ip(66), now).unwrap();
        assert_eq!(t.announce(&req(2, 10, Event::Update), ip(2), now).unwrap().peers, vec![SocketAddrV4::new(ip(1), 6881)]);
        t.announce(&req(1, 10, Event::Stopped), ip(1), now).unwrap();
        assert!(t.announce(&req(2, 10, Event::Update), ip(2), now).unwrap().peers.is_empty());
    }

    /// Counters a peer reports are added with saturation: a hostile `uploaded` of u64::MAX
    /// twice does not wrap the totals.
    #[test]
    fn reported_counters_saturate() {
        let mut t = PeerTable::new(TrackerConfig::default(), 1);
        t.allow(HASH);
        let now = Instant::now();
        for n in 1..=2 {
            t.announce(&AnnounceRequest { uploaded: u64::MAX, downloaded: u64::MAX, ..req(n, 10, Event::Started) }, ip(n), now).unwrap();
        }
        assert_eq!(t.reported(), ReportedTotals { uploaded: u64::MAX, downloaded: u64::MAX });
    }
}
