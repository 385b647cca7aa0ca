//! The tokio shell around [`Swarm`]: it listens and dials (bound to the boot interface if
//! asked), runs one reader and one writer task per peer, the timer, and the tracker loop, and
//! exposes progress and per-peer counters. All decisions are the core's; this file only moves
//! bytes and arms timers.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use swarmboot_peerwire::superseed::PeerKey;
use swarmboot_torrent::Metainfo;

use crate::admission::{Admission, Permit};
use crate::announce::{parse_reply, Announce, AnnounceEvent};
use crate::locks::lock;
use crate::storage::FileStorage;
use crate::swarm::{PeerStats, Progress, Swarm, SwarmConfig, SwarmEvent};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address to listen on for peers (port 0: any free port); unused by [`Engine::start_on`].
    pub listen: SocketAddr,
    /// Bind the listener and the dialer to this interface (SO_BINDTODEVICE).
    pub bind_device: Option<String>,
    /// Tracker announce URL (default: the torrent's `announce`).
    pub tracker: Option<String>,
    /// Peers to dial without a tracker.
    pub peers: Vec<SocketAddr>,
    /// Re-announce at least this often (trackers' intervals are often minutes; a boot storm
    /// needs its peers in seconds).
    pub max_announce_interval: Duration,
    pub swarm: SwarmConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("this listener already serves torrent {0}")]
    AlreadyServed(String),
}

struct Inner {
    swarm: Swarm,
    store: FileStorage,
}

struct PeerTasks {
    writer: Arc<Notify>,
    reader: Option<AbortHandle>,
    addr: SocketAddr,
}

struct Shared {
    inner: Mutex<Inner>,
    peers: Mutex<HashMap<PeerKey, PeerTasks>>,
    /// Addresses we are connected or connecting to (dialed or announced), not to dial twice.
    dialing: Mutex<HashSet<SocketAddr>>,
    /// Peers dropped for sending bad pieces: a dialed one (ip, port) is never dialed again,
    /// however often the tracker lists it; for one that dialed us, (ip, 0), its IP may not
    /// connect again.
    banned: Mutex<HashSet<SocketAddr>>,
    timer: Notify,
    complete: watch::Sender<bool>,
    cfg: EngineConfig,
    local: SocketAddr,
    started: Instant,
}

/// A running engine; dropping it stops nothing, call [`Engine::shutdown`].
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    listener: PeerListener,
    /// Whether `listener` was made for this engine alone (closed with it).
    own_listener: bool,
}

/// A fresh peer id: `-SB0100-` (Azureus style: swarmboot 0.1.0) and 12 random bytes.
pub fn random_peer_id() -> [u8; 20] {
    use std::io::Read;
    let mut id = *b"-SB0100-000000000000";
    let mut rnd = [0u8; 12];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut rnd)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64 ^ u64::from(std::process::id());
        rnd[..8].copy_from_slice(&t.to_le_bytes());
    }
    id[8..].copy_from_slice(&rnd);
    id
}

/// Bytes of a handshake up to and including the info hash: length byte, protocol name,
/// reserved bits, info hash.
const HANDSHAKE_TO_INFO_HASH: usize = 1 + 19 + 8 + 20;

/// Incoming peer connections a listener holds at once (handshaking or routed to an engine).
pub const DEFAULT_MAX_INBOUND: usize = 2048;
/// Of those, from one address (a machine connects once per file it fetches or seeds).
pub const DEFAULT_MAX_INBOUND_PER_SOURCE: usize = 16;

/// One TCP listener for any number of engines (a server seeding every file of its store on
/// one port): it reads each incoming connection's handshake up to the info hash and hands the
/// connection, with those bytes, to the engine of that torrent. Unknown torrents and
/// connections that do not handshake within 10 s are closed.
#[derive(Clone)]
pub struct PeerListener {
    inner: Arc<ListenerShared>,
}

struct ListenerShared {
    local: SocketAddr,
    device: Option<String>,
    /// Incoming connections, from the handshake until they close.
    admission: Admission,
    routes: Mutex<HashMap<[u8; 20], Weak<Shared>>>,
    accept: Mutex<Option<AbortHandle>>,
}

impl PeerListener {
    /// Listens on `addr` (bound to `device` if given), admitting [`DEFAULT_MAX_INBOUND`]
    /// connections at once, [`DEFAULT_MAX_INBOUND_PER_SOURCE`] per address. Needs a tokio runtime.
    pub fn bind(addr: SocketAddr, device: Option<&str>) -> Result<PeerListener, EngineError> {
        Self::bind_with(addr, device, Admission::new(DEFAULT_MAX_INBOUND, DEFAULT_MAX_INBOUND_PER_SOURCE))
    }

    /// [`PeerListener::bind`] with other caps on incoming connections.
    pub fn bind_with(addr: SocketAddr, device: Option<&str>, admission: Admission) -> Result<PeerListener, EngineError> {
        let listener = listen(addr, device).map_err(|source| EngineError::Listen { addr, source })?;
        let local = listener.local_addr().map_err(|source| EngineError::Listen { addr, source })?;
        let inner = Arc::new(ListenerShared { local, device: device.map(str::to_owned), admission, routes: Mutex::new(HashMap::new()), accept: Mutex::new(None) });
        let task = tokio::spawn(accept_loop(Arc::downgrade(&inner), listener)).abort_handle();
        *lock(&inner.accept) = Some(task);
        Ok(PeerListener { inner })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Stops accepting (connections already handed to engines stay).
    pub fn close(&self) {
        if let Some(t) = lock(&self.inner.accept).take() {
            t.abort();
        }
    }

    /// Incoming connections open now, and those refused at the caps since start.
    pub fn inbound(&self) -> (usize, u64) {
        (self.inner.admission.held(), self.inner.admission.refused())
    }

    /// How many torrents are served here.
    pub fn torrents(&self) -> usize {
        lock(&self.inner.routes).values().filter(|w| w.strong_count() > 0).count()
    }
}

/// One peer's counters with its address.
#[derive(Debug, Clone)]
pub struct PeerReport {
    pub addr: SocketAddr,
    pub stats: PeerStats,
}

impl Engine {
    /// Starts seeding/leeching `meta` with `store` (already verified: `have`), listening on
    /// `cfg.listen` alone.
    pub async fn start(meta: &Metainfo, store: FileStorage, have: swarmboot_peerwire::Bitfield, cfg: EngineConfig) -> Result<Engine, EngineError> {
        let listener = PeerListener::bind(cfg.listen, cfg.bind_device.as_deref())?;
        let mut engine = Self::start_on(&listener, meta, store, have, cfg).await?;
        engine.own_listener = true;
        Ok(engine)
    }

    /// Like [`Engine::start`], on a listener shared with other engines (`cfg.listen` and
    /// `cfg.bind_device` are the listener's). Fails if the listener already serves this torrent.
    pub async fn start_on(listener: &PeerListener, meta: &Metainfo, store: FileStorage, have: swarmboot_peerwire::Bitfield, cfg: EngineConfig) -> Result<Engine, EngineError> {
        let local = listener.local_addr();
        let mut cfg = cfg;
        cfg.listen = local;
        cfg.bind_device = listener.inner.device.clone();
        let swarm = Swarm::new(cfg.swarm.clone(), have, Instant::now());
        let (complete, _) = watch::channel(swarm.is_complete());
        if cfg.tracker.is_none() {
            cfg.tracker = meta.announce.clone();
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner { swarm, store }),
            peers: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashSet::new()),
            banned: Mutex::new(HashSet::new()),
            timer: Notify::new(),
            complete,
            cfg,
            local,
            started: Instant::now(),
        });
        {
            let mut routes = lock(&listener.inner.routes);
            if routes.get(&meta.info_hash).is_some_and(|w| w.strong_count() > 0) {
                return Err(EngineError::AlreadyServed(hex::encode(meta.info_hash)));
            }
            routes.insert(meta.info_hash, Arc::downgrade(&shared));
        }
        let engine = Engine { shared: shared.clone(), tasks: Arc::new(Mutex::new(Vec::new())), listener: listener.clone(), own_listener: false };
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(timer_loop(shared.clone())).abort_handle());
        for &p in &shared.cfg.peers {
            dial(shared.clone(), p);
        }
        if shared.cfg.tracker.is_some() {
            tasks.push(tokio::spawn(tracker_loop(shared.clone())).abort_handle());
        }
        *lock(&engine.tasks) = tasks;
        info!(listen = %local, "swarm engine started");
        Ok(engine)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    pub fn progress(&self) -> Progress {
        lock(&self.shared.inner).swarm.progress()
    }

    pub fn peers(&self) -> Vec<PeerReport> {
        let stats = lock(&self.shared.inner).swarm.peer_stats(Instant::now());
        let peers = lock(&self.shared.peers);
        stats.into_iter().filter_map(|s| peers.get(&s.key).map(|t| PeerReport { addr: t.addr, stats: s })).collect()
    }

    /// Which pieces we have (verified).
    pub fn have(&self) -> swarmboot_peerwire::Bitfield {
        lock(&self.shared.inner).swarm.have().clone()
    }

    /// A whole piece fetched some other way (HTTP): verified, stored and announced to peers.
    pub fn add_piece(&self, index: u32, data: &[u8]) -> Result<bool, crate::swarm::AddPieceError> {
        let mut guard = lock(&self.shared.inner);
        let inner = &mut *guard;
        let r = inner.swarm.add_piece(index, data, &mut inner.store);
        dispatch(&self.shared, inner);
        r
    }

    /// Dials one more peer.
    pub fn add_peer(&self, addr: SocketAddr) {
        dial(self.shared.clone(), addr);
    }

    /// Resolves when every piece is here and verified.
    pub async fn wait_complete(&self) {
        let mut rx = self.shared.complete.subscribe();
        let _ = rx.wait_for(|&c| c).await;
    }

    /// Stops every task and closes every connection (sends `stopped` to the tracker first).
    pub async fn shutdown(&self) {
        if self.shared.cfg.tracker.is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(2), announce_once(&self.shared, AnnounceEvent::Stopped)).await;
        }
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        {
            let mut routes = lock(&self.listener.inner.routes);
            if routes.get(&self.shared.cfg.swarm.info_hash).is_some_and(|w| w.ptr_eq(&Arc::downgrade(&self.shared))) {
                routes.remove(&self.shared.cfg.swarm.info_hash);
            }
        }
        if self.own_listener {
            self.listener.close();
        }
        // Close every connection in the core; `dispatch` then stops each peer's tasks.
        let mut guard = lock(&self.shared.inner);
        let inner = &mut *guard;
        let keys: Vec<PeerKey> = lock(&self.shared.peers).keys().copied().collect();
        for key in keys {
            inner.swarm.peer_closed(Instant::now(), key);
        }
        dispatch(&self.shared, inner);
    }
}

fn listen(addr: SocketAddr, device: Option<&str>) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    if let Some(dev) = device {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    sock.bind(addr)?;
    sock.listen(128)
}

async fn connect(addr: SocketAddr, local_ip: IpAddr, device: Option<&str>) -> std::io::Result<TcpStream> {
    let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(dev) = device {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    if !local_ip.is_unspecified() && local_ip.is_ipv4() == addr.is_ipv4() {
        sock.bind(SocketAddr::new(local_ip, 0))?;
    }
    tokio::time::timeout(Duration::from_secs(5), sock.connect(addr)).await.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

fn dial(shared: Arc<Shared>, addr: SocketAddr) {
    if addr == shared.local || lock(&shared.banned).contains(&addr) || !lock(&shared.dialing).insert(addr) {
        return;
    }
    tokio::spawn(async move {
        match connect(addr, shared.local.ip(), shared.cfg.bind_device.as_deref()).await {
            Ok(stream) => run_peer(shared, stream, addr, None, Vec::new()),
            Err(e) => {
                debug!(%addr, "dial failed: {e}");
                lock(&shared.dialing).remove(&addr);
            }
        }
    });
}

async fn accept_loop(listener_shared: Weak<ListenerShared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Some(ls) = listener_shared.upgrade() else {
                    return; // every handle and engine is gone: close the socket
                };
                let Some(permit) = ls.admission.admit(addr.ip()) else {
                    debug!(%addr, "too many connections (from this address, or in all); closing");
                    continue;
                };
                let ls = Arc::downgrade(&ls);
                tokio::spawn(async move { route_incoming(ls, stream, addr, permit).await });
            }
            Err(e) => {
                warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads an incoming handshake up to the info hash and hands the connection to its engine.
async fn route_incoming(ls: Weak<ListenerShared>, mut stream: TcpStream, addr: SocketAddr, permit: Permit) {
    let mut head = [0u8; HANDSHAKE_TO_INFO_HASH];
    match tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        _ => return debug!(%addr, "no handshake; closing"),
    }
    if &head[..20] != b"\x13BitTorrent protocol" {
        return debug!(%addr, "not a BitTorrent handshake; closing");
    }
    let info_hash: [u8; 20] = head[28..48].try_into().expect("20 bytes");
    let engine = ls.upgrade().and_then(|l| lock(&l.routes).get(&info_hash).and_then(Weak::upgrade));
    match engine {
        Some(shared) => run_peer(shared, stream, addr, Some(permit), head.to_vec()),
        None => {
            debug!(%addr, info_hash = %hex::encode(info_hash), "handshake for a torrent not served here; closing")
        }
    }
}

/// After the core ran: wake writers, stop dropped peers' tasks, report events.
fn dispatch(shared: &Shared, inner: &mut Inner) {
    let wake = inner.swarm.take_wakeups();
    let mut events = Vec::new();
    while let Some(e) = inner.swarm.poll_event() {
        events.push(e);
    }
    let mut peers = lock(&shared.peers);
    for k in wake {
        if let Some(p) = peers.get(&k) {
            p.writer.notify_one();
        }
    }
    for e in events {
        match e {
            SwarmEvent::Dropped { key, reason } => {
                if let Some(p) = peers.remove(&key) {
                    if reason == crate::swarm::DropReason::BadPieces {
                        warn!(addr = %p.addr, "peer dropped and banned: {reason}");
                        lock(&shared.banned).insert(p.addr);
                    }
                    debug!(addr = %p.addr, "peer dropped: {reason}");
                    if let Some(r) = p.reader {
                        r.abort();
                    }
                    p.writer.notify_one();
                    if p.addr.port() != 0 {
                        lock(&shared.dialing).remove(&p.addr);
                    }
                }
            }
            SwarmEvent::Connected { key, .. } => {
                if let Some(p) = peers.get(&key) {
                    debug!(addr = %p.addr, "peer connected");
                }
            }
            SwarmEvent::PieceFailed { piece, .. } => warn!(piece, "piece failed its SHA-1 check"),
            SwarmEvent::StorageFailed { piece, error } => warn!(piece, "storage: {error}"),
            SwarmEvent::PieceVerified(_) => {}
            SwarmEvent::SuperSeedRound(n) => info!(round = n, after_secs = shared.started.elapsed().as_secs_f64(), "every piece has left the seed {n} time(s)"),
            SwarmEvent::Complete => {
                info!("download complete");
                shared.complete.send_replace(true);
            }
        }
    }
    shared.timer.notify_one();
}

/// Runs one connection; `already_read` are bytes of it read before (the routed handshake).
/// An incoming one comes with its listener's `permit`, held until the connection ends.
fn run_peer(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr, permit: Option<Permit>, already_read: Vec<u8>) {
    let outbound = permit.is_none();
    if !outbound && lock(&shared.banned).contains(&SocketAddr::new(addr.ip(), 0)) {
        return debug!(%addr, "banned peer; closing");
    }
    let _ = stream.set_nodelay(true);
    let key = {
        let mut inner = lock(&shared.inner);
        match inner.swarm.add_peer(Instant::now(), outbound) {
            Some(k) => k,
            None => {
                debug!(%addr, "swarm full; closing");
                return;
            }
        }
    };
    let writer = Arc::new(Notify::new());
    lock(&shared.peers).insert(key, PeerTasks { writer: writer.clone(), reader: None, addr: if outbound { addr } else { SocketAddr::new(addr.ip(), 0) } });
    let (mut rd, mut wr) = stream.into_split();
    let sh = shared.clone();
    let reader = tokio::spawn(async move {
        let _permit = permit;
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = Some(already_read).filter(|b| !b.is_empty());
        loop {
            let n = if let Some(b) = first.take() {
                buf[..b.len()].copy_from_slice(&b);
                b.len()
            } else {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                }
            };
            let mut guard = lock(&sh.inner);
            let inner = &mut *guard;
            if n == 0 {
                inner.swarm.peer_closed(Instant::now(), key);
            } else {
                inner.swarm.on_bytes(Instant::now(), key, &buf[..n], &mut inner.store);
            }
            dispatch(&sh, inner);
            if n == 0 || !inner.swarm.is_open(key) {
                return;
            }
        }
    });
    if let Some(p) = lock(&shared.peers).get_mut(&key) {
        p.reader = Some(reader.abort_handle());
    }
    tokio::spawn(async move {
        loop {
            let (bytes, open) = {
                let mut guard = lock(&shared.inner);
                let inner = &mut *guard;
                let bytes = inner.swarm.poll_transmit(Instant::now(), key, &mut inner.store);
                let open = inner.swarm.is_open(key);
                dispatch(&shared, inner);
                (bytes, open)
            };
            if bytes.is_empty() {
                if !open {
                    let _ = wr.shutdown().await;
                    return;
                }
                writer.notified().await;
                continue;
            }
            if wr.write_all(&bytes).await.is_err() {
                let mut guard = lock(&shared.inner);
                let inner = &mut *guard;
                inner.swarm.peer_closed(Instant::now(), key);
                dispatch(&shared, inner);
                return;
            }
        }
    });
}

async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let deadline = {
            let mut guard = lock(&shared.inner);
            let inner = &mut *guard;
            let now = Instant::now();
            if inner.swarm.poll_timeout() <= now {
                inner.swarm.on_timeout(now, &mut inner.store);
                dispatch(&shared, inner);
            }
            inner.swarm.poll_timeout().min(now + Duration::from_millis(500))
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shared.timer.notified() => {}
        }
    }
}

/// One announce; dials the peers it returns. Returns the interval to wait.
async fn announce_once(shared: &Arc<Shared>, event: AnnounceEvent) -> Option<Duration> {
    let base = shared.cfg.tracker.as_ref()?;
    let p = lock(&shared.inner).swarm.progress();
    let a = Announce {
        info_hash: shared.cfg.swarm.info_hash,
        peer_id: shared.cfg.swarm.our_id,
        port: shared.local.port(),
        uploaded: p.totals.uploaded,
        downloaded: p.totals.downloaded,
        left: p.total_length - p.bytes_have,
        event,
        numwant: 80,
    };
    let url = a.url(base);
    let body = match http_get(&url, shared.local.ip(), shared.cfg.bind_device.as_deref()).await {
        Ok(b) => b,
        Err(e) => {
            warn!(tracker = %base, "announce failed: {e}");
            return None;
        }
    };
    match parse_reply(&body) {
        Ok(reply) => {
            debug!(peers = reply.peers.len(), "announced");
            for peer in reply.peers {
                dial(shared.clone(), peer);
            }
            Some(reply.min_interval.unwrap_or(reply.interval).min(reply.interval))
        }
        Err(e) => {
            warn!(tracker = %base, "announce: {e}");
            None
        }
    }
}

async fn tracker_loop(shared: Arc<Shared>) {
    let mut event = AnnounceEvent::Started;
    let mut was_complete = shared.complete.borrow().to_owned();
    let mut complete = shared.complete.subscribe();
    loop {
        let interval = announce_once(&shared, event).await.unwrap_or(Duration::from_secs(5));
        let wait = interval.min(shared.cfg.max_announce_interval).max(Duration::from_secs(1));
        event = AnnounceEvent::None;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = complete.wait_for(|&c| c && !was_complete) => {
                was_complete = true;
                event = AnnounceEvent::Completed;
            }
        }
    }
}

/// A plain HTTP/1.0 GET (trackers on the boot LAN speak http://; no TLS here).
async fn http_get(url: &str, local_ip: IpAddr, device: Option<&str>) -> std::io::Result<Vec<u8>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{m}: {url}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// trackers"))?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = tokio::net::lookup_host(if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") }).await?.next().ok_or_else(|| bad("no address"))?;
    let mut s = connect(addr, local_ip, device).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: swarmboot\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.take(1 << 20).read_to_end(&mut resp)).await.map_err(|_| bad("tracker timed out"))??;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no HTTP header"))?;
    let status = std::str::from_utf8(&resp[..split]).ok().and_then(|h| h.split_whitespace().nth(1)).unwrap_or("");
    if status != "200" {
        return Err(bad(&format!("HTTP status {status}")));
    }
    Ok(resp[split + 4..].to_vec())
}
