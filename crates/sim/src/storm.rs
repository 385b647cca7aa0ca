//! A boot storm in virtual time: the boot server's super-seed and N machines, each the real
//! [`Swarm`] core fed real peer-wire bytes, the real tracker core ([`PeerTable`]) answering
//! their announces, and [`Links`] deciding how fast bytes move. Machines do what the engine's
//! shell does (`swarmboot_swarm::engine`): announce at start, every `min(interval, 5 s)` and
//! on completion, dial every peer the tracker names that they are not already dialing, close
//! what the core drops. Every piece is verified as on a real machine (by SHA-256 from the
//! signed list, as `swarmboot fetch` does, or by SHA-1).
//!
//! Not modelled: CPU (hashing and copying are free and instant), TCP's slow start and
//! congestion control (a connection with bytes to send gets its max-min fair share at once),
//! the HTTP before the swarm (manifest, torrents: `start_spread` stands for it).

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use swarmboot_peerwire::superseed::PeerKey;
use swarmboot_peerwire::Bitfield;
use swarmboot_swarm::storage::Storage;
use swarmboot_swarm::{Swarm, SwarmConfig, SwarmEvent};
use swarmboot_torrent::Metainfo;
use swarmboot_tracker::query::{AnnounceRequest, Event as TrackerEvent};
use swarmboot_tracker::{PeerTable, TrackerConfig};

use crate::links::{LinkId, Links, Path, Scratch};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct StormSpec {
    pub machines: usize,
    /// Machines are spread evenly over this many rooms (subnets of their own).
    pub rooms: usize,
    /// Each room's uplink to the core, each way (bits per second; `None`: the rooms share one
    /// switch, nothing between them).
    pub room_uplink_bps: Option<f64>,
    pub image_bytes: usize,
    pub piece_length: u32,
    /// Each machine's port, each way.
    pub machine_bps: f64,
    /// The server's port, each way.
    pub server_bps: f64,
    /// One way, between any two hosts.
    pub latency: Duration,
    /// Bytes a connection's sender holds beyond what is on the wire (its socket buffer).
    pub send_buffer: usize,
    /// Chance that a step's bytes on one connection are lost and come a retransmission
    /// timeout (`rto`) later, holding back what follows them.
    pub loss: f64,
    pub rto: Duration,
    /// Share of machines that die (power off, silently) at a random moment of their download.
    pub die_fraction: f64,
    /// Machines start at random moments within this (process start, manifest, torrents).
    pub start_spread: Duration,
    pub server_slots: usize,
    pub client_slots: usize,
    /// Pieces checked by SHA-256 from the signed list (as `swarmboot fetch`), else by SHA-1.
    pub sha256_pieces: bool,
    pub step: Duration,
    pub seed: u64,
}

impl StormSpec {
    /// The storm bench's lab (`cargo xtask bench-storm`): one switch, every port 100 Mbit/s,
    /// 64 MiB in pieces of 256 KiB, the server's 4 super-seed slots and the clients' 12.
    pub fn lab(machines: usize) -> Self {
        StormSpec {
            machines,
            rooms: 1,
            room_uplink_bps: None,
            image_bytes: 64 << 20,
            piece_length: 256 << 10,
            machine_bps: 100e6,
            server_bps: 100e6,
            latency: Duration::from_micros(200),
            send_buffer: 256 << 10,
            loss: 0.0,
            rto: Duration::from_millis(200),
            die_fraction: 0.0,
            start_spread: Duration::from_millis(200),
            server_slots: 4,
            client_slots: 12,
            sha256_pieces: true,
            step: Duration::from_millis(1),
            seed: 1,
        }
    }

    /// A university lab: `machines` in rooms of 40, each room behind a 1 Gbit/s uplink,
    /// machines at 1 Gbit/s, the server at 10 Gbit/s.
    pub fn campus(machines: usize) -> Self {
        StormSpec { rooms: machines.div_ceil(40), room_uplink_bps: Some(1e9), machine_bps: 1e9, server_bps: 10e9, latency: Duration::from_micros(100), ..StormSpec::lab(machines) }
    }

    /// The time no machine can beat: the image through its own port.
    pub fn bound(&self) -> f64 {
        self.image_bytes as f64 * 8.0 / self.machine_bps
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// Seconds from the start of the storm to each machine's last verified piece (`None`:
    /// it died first).
    pub times: Vec<Option<f64>>,
    /// Bytes the server sent (peer wire, payload and messages).
    pub server_bytes: u64,
    /// Bytes into and out of each room through its uplink.
    pub room_uplink: Vec<(u64, u64)>,
    pub died: usize,
    /// Virtual seconds simulated.
    pub virtual_secs: f64,
}

impl StormReport {
    /// The `p` quantile (0..=1) of the completion times of machines that finished.
    pub fn quantile(&self, p: f64) -> f64 {
        let mut t: Vec<f64> = self.times.iter().flatten().copied().collect();
        t.sort_by(f64::total_cmp);
        if t.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * t.len() as f64).ceil() as usize).clamp(1, t.len());
        t[rank - 1]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{unfinished} machine(s) still downloading after {secs:.0} virtual seconds (a stuck swarm)")]
    Stuck { unfinished: usize, secs: f64 },
    #[error("the spec is not a storm: {0}")]
    BadSpec(&'static str),
}

/// Which side a [`Swarm`] is tuned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Machine,
}

/// Every host holds the same image: reads come from one shared copy, and a verified piece is
/// those very bytes, so writes keep nothing (the image is in memory once, whatever N; the
/// connections' buffers and the cores' pieces in flight are what grows with it).
struct SharedImage {
    data: Arc<Vec<u8>>,
    piece_length: usize,
}

impl Storage for SharedImage {
    fn read_block(&mut self, piece: u32, begin: u32, len: u32) -> std::io::Result<Vec<u8>> {
        let start = piece as usize * self.piece_length + begin as usize;
        self.data.get(start..start + len as usize).map(<[u8]>::to_vec).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end"))
    }
    fn write_piece(&mut self, _piece: u32, _data: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// One way of a connection: bytes on the wire (the first `on_wire`, arriving as `arrivals`
/// say) and, behind them, bytes in the sender's socket buffer.
#[derive(Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    on_wire: usize,
    arrivals: VecDeque<(Duration, usize)>,
    /// Fractional bytes of rate not yet spent.
    credit: f64,
    /// The core may have bytes for it.
    poll: bool,
}

impl Pipe {
    fn buffered(&self) -> usize {
        self.bytes.len() - self.on_wire
    }
}

struct Conn {
    /// (node, its key for the other) for each end; `pipes[i]` carries end i's bytes.
    ends: [(usize, PeerKey); 2],
    pipes: [Pipe; 2],
    paths: [Path; 2],
    /// Per end: whether it still has the connection open.
    open: [bool; 2],
    /// Crosses an uplink: (room out of, room into) for each direction.
    rooms: [(Option<usize>, Option<usize>); 2],
}

struct Host {
    ip: Ipv4Addr,
    room: Option<usize>,
    up: LinkId,
    down: LinkId,
    swarm: Option<Swarm>,
    /// Its core's settings (a machine's core is made when it starts).
    cfg: SwarmConfig,
    store: SharedImage,
    starts: Duration,
    dies: Option<Duration>,
    dead: bool,
    done: Option<Duration>,
    next_announce: Option<Duration>,
    conns: HashMap<PeerKey, usize>,
    /// Hosts dialed (connecting or connected), not dialed twice.
    dialing: HashSet<usize>,
    peer_id: [u8; 20],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// `from`'s connection attempt to `to` is answered (or times out).
    Connect { from: usize, to: usize },
    /// The other end closed: `node` sees its connection `key` close.
    Closed { node: usize, key: PeerKey },
    /// `from`'s dial of `to` got no answer.
    TimedOut { from: usize, to: usize },
}

/// Small and seeded: deaths, losses and start times are the same for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The image: incompressible bytes, the same for the same size.
pub fn image_bytes(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x5157_4A1B);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Runs the storm to the end: every live machine complete. `tune` adjusts each host's
/// [`SwarmConfig`] (the engine's settings under test).
pub fn run(spec: &StormSpec, tune: impl Fn(Role, &mut SwarmConfig)) -> Result<StormReport, SimError> {
    if spec.machines == 0 || spec.rooms == 0 || spec.image_bytes == 0 || spec.piece_length == 0 || spec.step.is_zero() {
        return Err(SimError::BadSpec("machines, rooms, image, pieces and step must be more than 0"));
    }
    let data = Arc::new(image_bytes(spec.image_bytes));
    let (meta, _) = Metainfo::single_file("image", &data, spec.piece_length, None, true);
    let sha256: Option<Arc<Vec<[u8; 32]>>> = spec.sha256_pieces.then(|| {
        use sha2::Digest;
        Arc::new(data.chunks(spec.piece_length as usize).map(|c| sha2::Sha256::digest(c).into()).collect())
    });
    let mut sim = Sim::new(spec, &meta, data, sha256, &tune);
    sim.run()
}

struct Sim<'a> {
    spec: &'a StormSpec,
    base: Instant,
    now: Duration,
    hosts: Vec<Host>,
    conns: Vec<Conn>,
    links: Links,
    room_links: Vec<(LinkId, LinkId)>,
    by_addr: HashMap<SocketAddrV4, usize>,
    tracker: PeerTable,
    due: BinaryHeap<std::cmp::Reverse<(Duration, u64, Due)>>,
    seq: u64,
    rng: Rng,
    info_hash: [u8; 20],
    total_length: u64,
    server_bytes: u64,
    room_uplink: Vec<(u64, u64)>,
    scratch: Scratch,
}

const PORT: u16 = 6881;
/// The engine's connect timeout (`swarmboot_swarm::engine`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the simulator asks the cores whether a timer is due.
const TIMER_TICK: Duration = Duration::from_millis(10);
/// The engine announces at least this often, and at most once a second.
const MAX_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5);

impl<'a> Sim<'a> {
    fn new(spec: &'a StormSpec, meta: &Metainfo, data: Arc<Vec<u8>>, sha256: Option<Arc<Vec<[u8; 32]>>>, tune: &dyn Fn(Role, &mut SwarmConfig)) -> Self {
        let base = Instant::now();
        let mut links = Links::default();
        let room_links: Vec<(LinkId, LinkId)> = match spec.room_uplink_bps {
            Some(bps) => (0..spec.rooms).map(|_| (links.add(bps / 8.0), links.add(bps / 8.0))).collect(),
            None => Vec::new(),
        };
        let mut rng = Rng(spec.seed);
        let mut tracker = PeerTable::new(TrackerConfig::default(), spec.seed ^ 0x7EAC);
        tracker.allow(meta.info_hash);
        let pieces = meta.pieces.len() as u32;
        // The server: in the first room's subnet when there is one room (the lab), in a
        // subnet of its own otherwise.
        let server_ip = if spec.rooms == 1 { Ipv4Addr::new(10, 1, 0, 1) } else { Ipv4Addr::new(10, 0, 0, 1) };
        let host = |ip: Ipv4Addr, room: Option<usize>, bps: f64, role: Role, id: u32, links: &mut Links| {
            let mut peer_id = *b"-SB0100-sim000000000";
            peer_id[16..20].copy_from_slice(&id.to_be_bytes());
            let mut cfg = SwarmConfig::new(meta, peer_id);
            cfg.rng_seed ^= spec.seed;
            match role {
                Role::Server => {
                    cfg.super_seed = true;
                    cfg.super_seed_slots = spec.server_slots;
                }
                Role::Machine => {
                    cfg.upload_slots = spec.client_slots;
                    cfg.piece_sha256 = sha256.clone();
                }
            }
            tune(role, &mut cfg);
            Host {
                ip,
                room,
                up: links.add(bps / 8.0),
                down: links.add(bps / 8.0),
                swarm: (role == Role::Server).then(|| Swarm::new(cfg.clone(), Bitfield::full(pieces), base)),
                cfg,
                store: SharedImage { data: data.clone(), piece_length: spec.piece_length as usize },
                starts: Duration::ZERO,
                dies: None,
                dead: false,
                done: None,
                next_announce: None,
                conns: HashMap::new(),
                dialing: HashSet::new(),
                peer_id,
            }
        };
        let mut hosts = vec![host(server_ip, None, spec.server_bps, Role::Server, 0, &mut links)];
        let per_room = spec.machines.div_ceil(spec.rooms);
        for m in 0..spec.machines {
            let (room, i) = (m / per_room, m % per_room);
            let ip = Ipv4Addr::new(10, 1 + room as u8, (i / 200) as u8, (10 + i % 200) as u8);
            let mut h = host(ip, Some(room), spec.machine_bps, Role::Machine, m as u32 + 1, &mut links);
            h.starts = spec.start_spread.mul_f64(rng.unit());
            hosts.push(h);
        }
        // Who dies, and when: a random moment of what would be its download.
        let dying = (spec.die_fraction * spec.machines as f64).round() as usize;
        let mut order: Vec<usize> = (1..=spec.machines).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for &m in order.iter().take(dying) {
            hosts[m].dies = Some(hosts[m].starts + Duration::from_secs_f64(spec.bound() * rng.unit()));
        }
        let by_addr = hosts.iter().enumerate().map(|(i, h)| (SocketAddrV4::new(h.ip, PORT), i)).collect();
        let mut sim = Sim {
            spec,
            base,
            now: Duration::ZERO,
            hosts,
            conns: Vec::new(),
            links,
            room_links,
            by_addr,
            tracker,
            due: BinaryHeap::new(),
            seq: 0,
            rng,
            info_hash: meta.info_hash,
            total_length: meta.total_length(),
            server_bytes: 0,
            room_uplink: vec![(0, 0); spec.rooms],
            scratch: Scratch::default(),
        };
        // The seed is in the tracker from the start (the server announces it itself).
        sim.announce(0, TrackerEvent::Started);
        sim
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn schedule(&mut self, after: Duration, what: Due) {
        self.seq += 1;
        self.due.push(std::cmp::Reverse((self.now + after, self.seq, what)));
    }

    fn rtt(&self) -> Duration {
        2 * self.spec.latency
    }

    fn run(&mut self) -> Result<StormReport, SimError> {
        let limit = Duration::from_secs_f64(20.0 * self.spec.bound() + 120.0);
        loop {
            self.now += self.spec.step;
            self.start_and_kill();
            self.run_due();
            self.timers();
            self.fill();
            self.transmit();
            self.deliver();
            let unfinished = self.hosts[1..].iter().filter(|h| !h.dead && h.done.is_none()).count();
            if unfinished == 0 {
                break;
            }
            if self.now > limit {
                return Err(SimError::Stuck { unfinished, secs: self.now.as_secs_f64() });
            }
        }
        Ok(StormReport {
            times: self.hosts[1..].iter().map(|h| h.done.map(|d| d.as_secs_f64())).collect(),
            server_bytes: self.server_bytes,
            room_uplink: self.room_uplink.clone(),
            died: self.hosts.iter().filter(|h| h.dead).count(),
            virtual_secs: self.now.as_secs_f64(),
        })
    }

    /// Machines whose moment came start (their swarm, their first announce) or die.
    fn start_and_kill(&mut self) {
        let pieces = self.hosts[0].cfg.piece_hashes.len() as u32;
        for n in 1..self.hosts.len() {
            let h = &mut self.hosts[n];
            if h.swarm.is_none() && !h.dead && h.starts <= self.now {
                h.swarm = Some(Swarm::new(h.cfg.clone(), Bitfield::new(pieces), self.base + self.now));
                self.announce(n, TrackerEvent::Started);
            }
            let h = &mut self.hosts[n];
            if !h.dead && h.dies.is_some_and(|d| d <= self.now) && h.done.is_none() {
                // Powered off: it sends nothing more and answers nothing; its peers find out
                // by their own timeouts, and the tracker lists it until it expires.
                h.dead = true;
                h.swarm = None;
            }
        }
    }

    /// What the engine's tracker loop does: announce, then dial every peer named.
    fn announce(&mut self, n: usize, event: TrackerEvent) {
        let now = self.at();
        let h = &self.hosts[n];
        let p = h.swarm.as_ref().map(|s| s.progress());
        let req = AnnounceRequest {
            info_hash: self.info_hash,
            peer_id: h.peer_id,
            port: PORT,
            uploaded: p.map_or(0, |p| p.totals.uploaded),
            downloaded: p.map_or(0, |p| p.totals.downloaded),
            left: p.map_or(self.total_length, |p| p.total_length - p.bytes_have),
            event,
            numwant: if n == 0 { 0 } else { 80 },
            want_dict: false,
            claimed_ip: None,
        };
        let ip = h.ip;
        let interval = match self.tracker.announce(&req, ip, now) {
            Ok(reply) => {
                for peer in reply.peers {
                    if let Some(&to) = self.by_addr.get(&peer) {
                        if to != n && self.hosts[n].dialing.insert(to) {
                            // The reply, then the TCP handshake.
                            let rtt = self.rtt();
                            self.schedule(2 * rtt, Due::Connect { from: n, to });
                        }
                    }
                }
                reply.min_interval.min(reply.interval)
            }
            Err(_) => MAX_ANNOUNCE_INTERVAL,
        };
        let wait = if n == 0 { Duration::from_secs(60) } else { interval.clamp(Duration::from_secs(1), MAX_ANNOUNCE_INTERVAL) };
        self.hosts[n].next_announce = Some(self.now + wait);
    }

    fn run_due(&mut self) {
        while self.due.peek().is_some_and(|d| d.0 .0 <= self.now) {
            let std::cmp::Reverse((_, _, what)) = self.due.pop().expect("peeked");
            match what {
                Due::Connect { from, to } => self.connect(from, to),
                Due::TimedOut { from, to } => {
                    self.hosts[from].dialing.remove(&to);
                }
                Due::Closed { node, key } => {
                    let now = self.at();
                    let h = &mut self.hosts[node];
                    if let Some(c) = h.conns.remove(&key) {
                        if let Some(s) = h.swarm.as_mut() {
                            s.peer_closed(now, key);
                        }
                        let side = if self.conns[c].ends[0].0 == node { 0 } else { 1 };
                        self.conns[c].open[side] = false;
                        if side == 0 {
                            h.dialing.remove(&self.conns[c].ends[1].0);
                        }
                        self.outputs(node);
                    }
                }
            }
        }
        for n in 0..self.hosts.len() {
            if self.hosts[n].swarm.is_some() && self.hosts[n].next_announce.is_some_and(|t| t <= self.now) {
                self.announce(n, TrackerEvent::Update);
            }
        }
    }

    fn connect(&mut self, from: usize, to: usize) {
        let now = self.at();
        if self.hosts[from].swarm.is_none() {
            return;
        }
        if self.hosts[to].dead {
            // No answer: the dial times out, and until then it is not dialed again.
            self.schedule(CONNECT_TIMEOUT, Due::TimedOut { from, to });
            return;
        }
        let Some(kt) = self.hosts[to].swarm.as_mut().and_then(|s| s.add_peer(now, false)) else {
            // Not listening yet, or full: refused.
            self.hosts[from].dialing.remove(&to);
            return;
        };
        let Some(kf) = self.hosts[from].swarm.as_mut().and_then(|s| s.add_peer(now, true)) else {
            self.hosts[to].swarm.as_mut().expect("just added").peer_closed(now, kt);
            self.hosts[from].dialing.remove(&to);
            return;
        };
        let c = self.conns.len();
        let path = |s: &Sim, a: usize, b: usize| -> (Path, (Option<usize>, Option<usize>)) {
            let (ha, hb) = (&s.hosts[a], &s.hosts[b]);
            let mut links = vec![ha.up];
            let mut crossing = (None, None);
            if !s.room_links.is_empty() && ha.room != hb.room {
                if let Some(r) = ha.room {
                    links.push(s.room_links[r].0);
                    crossing.0 = Some(r);
                }
                if let Some(r) = hb.room {
                    links.push(s.room_links[r].1);
                    crossing.1 = Some(r);
                }
            }
            links.push(hb.down);
            (Path::new(&links), crossing)
        };
        let (p0, r0) = path(self, from, to);
        let (p1, r1) = path(self, to, from);
        self.conns.push(Conn {
            ends: [(from, kf), (to, kt)],
            pipes: [Pipe { poll: true, ..Pipe::default() }, Pipe { poll: true, ..Pipe::default() }],
            paths: [p0, p1],
            open: [true, true],
            rooms: [r0, r1],
        });
        self.hosts[from].conns.insert(kf, c);
        self.hosts[to].conns.insert(kt, c);
        self.outputs(from);
        self.outputs(to);
    }

    /// What a core wants done after a call: writers woken, dropped peers closed, completion.
    fn outputs(&mut self, n: usize) {
        let Some(swarm) = self.hosts[n].swarm.as_mut() else { return };
        let woken = swarm.take_wakeups();
        let mut events = Vec::new();
        while let Some(e) = swarm.poll_event() {
            events.push(e);
        }
        for key in woken {
            if let Some(&c) = self.hosts[n].conns.get(&key) {
                let side = if self.conns[c].ends[0].0 == n { 0 } else { 1 };
                self.conns[c].pipes[side].poll = true;
            }
        }
        for e in events {
            match e {
                SwarmEvent::Dropped { key, .. } => {
                    if let Some(c) = self.hosts[n].conns.remove(&key) {
                        let side = if self.conns[c].ends[0].0 == n { 0 } else { 1 };
                        self.conns[c].open[side] = false;
                        if side == 0 {
                            let other = self.conns[c].ends[1].0;
                            self.hosts[n].dialing.remove(&other);
                        }
                        let (other, okey) = self.conns[c].ends[1 - side];
                        if self.conns[c].open[1 - side] {
                            let lat = self.spec.latency;
                            self.schedule(lat, Due::Closed { node: other, key: okey });
                        }
                    }
                }
                SwarmEvent::Complete if n != 0 && self.hosts[n].done.is_none() => {
                    self.hosts[n].done = Some(self.now);
                    self.announce(n, TrackerEvent::Completed);
                }
                _ => {}
            }
        }
    }

    /// Every core whose timer is due (looked at every [`TIMER_TICK`]: the cores' timers are
    /// seconds long, and asking each core costs a look at every peer).
    fn timers(&mut self) {
        if self.now.as_micros() % TIMER_TICK.as_micros() >= self.spec.step.as_micros() {
            return;
        }
        let now = self.at();
        for n in 0..self.hosts.len() {
            let h = &mut self.hosts[n];
            let Some(swarm) = h.swarm.as_mut() else { continue };
            if swarm.poll_timeout() <= now {
                swarm.on_timeout(now, &mut h.store);
                self.outputs(n);
            }
        }
    }

    /// Senders fill their socket buffers from their cores.
    fn fill(&mut self) {
        let now = self.at();
        let cap = self.spec.send_buffer;
        for c in 0..self.conns.len() {
            for side in 0..2 {
                let conn = &mut self.conns[c];
                let (n, key) = conn.ends[side];
                let pipe = &mut conn.pipes[side];
                if !pipe.poll || !conn.open[side] || pipe.buffered() >= cap {
                    continue;
                }
                let h = &mut self.hosts[n];
                let Some(swarm) = h.swarm.as_mut() else { continue };
                pipe.poll = false;
                while pipe.buffered() < cap {
                    let out = swarm.poll_transmit(now, key, &mut h.store);
                    if out.is_empty() {
                        break;
                    }
                    pipe.bytes.extend(out);
                    // More may come once this drains.
                    pipe.poll = true;
                }
                self.outputs(n);
            }
        }
    }

    /// Bytes leave socket buffers at the links' fair rates.
    fn transmit(&mut self) {
        let mut flows = Vec::new();
        let mut paths = Vec::new();
        for (c, conn) in self.conns.iter().enumerate() {
            for side in 0..2 {
                let (from, _) = conn.ends[side];
                let (to, _) = conn.ends[1 - side];
                // A dead receiver acknowledges nothing: its sender's connection stalls.
                if conn.pipes[side].buffered() > 0 && !self.hosts[from].dead && !self.hosts[to].dead {
                    flows.push((c, side));
                    paths.push(conn.paths[side]);
                }
            }
        }
        if flows.is_empty() {
            return;
        }
        let rates = self.links.fair_rates(&paths, &mut self.scratch);
        let dt = self.spec.step.as_secs_f64();
        for (&(c, side), rate) in flows.iter().zip(rates) {
            let lost = self.spec.loss > 0.0 && self.rng.unit() < self.spec.loss;
            let conn = &mut self.conns[c];
            let pipe = &mut conn.pipes[side];
            pipe.credit += rate * dt;
            let n = (pipe.credit as usize).min(pipe.buffered());
            if n == 0 {
                continue;
            }
            pipe.credit -= n as f64;
            if pipe.buffered() == n {
                pipe.credit = 0.0;
            }
            pipe.on_wire += n;
            let mut arrive = self.now + self.spec.latency + if lost { self.spec.rto } else { Duration::ZERO };
            if let Some(&(last, _)) = pipe.arrivals.back() {
                arrive = arrive.max(last);
            }
            pipe.arrivals.push_back((arrive, n));
            pipe.poll = true;
            let from = conn.ends[side].0;
            if from == 0 {
                self.server_bytes += n as u64;
            }
            let (out_of, into) = conn.rooms[side];
            if let Some(r) = out_of {
                self.room_uplink[r].1 += n as u64;
            }
            if let Some(r) = into {
                self.room_uplink[r].0 += n as u64;
            }
        }
    }

    /// Bytes whose time came reach their receivers' cores.
    fn deliver(&mut self) {
        let now = self.at();
        for c in 0..self.conns.len() {
            for side in 0..2 {
                let conn = &mut self.conns[c];
                let (to, tkey) = conn.ends[1 - side];
                let open = conn.open[1 - side];
                let pipe = &mut conn.pipes[side];
                let mut due = 0;
                while pipe.arrivals.front().is_some_and(|&(t, _)| t <= self.now) {
                    due += pipe.arrivals.pop_front().expect("peeked").1;
                }
                if due == 0 {
                    continue;
                }
                pipe.on_wire -= due;
                let h = &mut self.hosts[to];
                if open && !h.dead {
                    if let Some(swarm) = h.swarm.as_mut() {
                        let (a, b) = pipe.bytes.as_slices();
                        let a_len = a.len().min(due);
                        swarm.on_bytes(now, tkey, &a[..a_len], &mut h.store);
                        if a_len < due {
                            swarm.on_bytes(now, tkey, &b[..due - a_len], &mut h.store);
                        }
                    }
                }
                self.conns[c].pipes[side].bytes.drain(..due);
                if open && !self.hosts[to].dead {
                    self.outputs(to);
                }
            }
        }
    }
}
