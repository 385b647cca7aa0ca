//! Hostile and fake servers for the bad-input tests: a static HTTP server that serves whatever
//! bytes a test hands it (a tampered manifest) in place of a boot server, a man in the middle
//! that rewrites requests and answers on their way ([`Proxy`]), and BitTorrent peers that
//! claim every piece and answer every request with garbage ([`CorruptPeer`]) or with the true
//! bytes at a trickle ([`TricklePeer`]). Each takes a listener the
//! caller bound (inside a namespace, if it wants) and runs on threads until dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Serves `GET path` (the query ignored) from a fixed map (404 otherwise), one request per
/// connection. It cannot vouch for a manifest as fresh (that needs the server's key).
pub struct StaticHttp {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl StaticHttp {
    pub fn start(listener: TcpListener, routes: HashMap<String, Vec<u8>>) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        listener.set_nonblocking(true)?;
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = answer(s, &routes);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(StaticHttp { addr, stop })
    }
}

impl Drop for StaticHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An HTTP request's head (up to the blank line); `None` if the peer closed first.
fn read_head(s: &mut TcpStream, timeout: Duration) -> std::io::Result<Option<String>> {
    s.set_read_timeout(Some(timeout))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        req.extend_from_slice(&buf[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&req).into_owned()))
}

fn answer(mut s: TcpStream, routes: &HashMap<String, Vec<u8>>) -> std::io::Result<()> {
    let Some(line) = read_head(&mut s, Duration::from_secs(5))? else { return Ok(()) };
    // The path without its query (a manifest request's nonce).
    let path = line.split_whitespace().nth(1).unwrap_or("").split('?').next().unwrap_or("");
    match routes.get(path) {
        Some(body) => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
            s.write_all(body)
        }
        None => write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

/// What a fake peer ([`CorruptPeer`], [`TricklePeer`]) saw.
#[derive(Debug, Default)]
pub struct FakePeerStats {
    pub connections: AtomicU64,
    /// Requests answered.
    pub blocks_sent: AtomicU64,
    /// Connections the other side closed.
    pub closed_by_peer: AtomicU64,
}

/// How a fake peer answers a request for `length` bytes at `begin` of piece `index`: the block
/// to send (after whatever wait it chooses), `None` to hang up.
type Answer = Box<dyn FnMut(u32, u32, u32) -> Option<Vec<u8>> + Send>;

/// A fake peer of one torrent on its own threads: claims every piece, unchokes at once, and
/// answers each request as `answer` (made per connection) says.
fn start_fake_peer(listener: TcpListener, info_hash: [u8; 20], peer_id: [u8; 20], pieces: u32, answer: impl Fn() -> Answer + Send + 'static) -> Arc<FakePeerStats> {
    let stats = Arc::new(FakePeerStats::default());
    let st = stats.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            st.connections.fetch_add(1, Ordering::Relaxed);
            let (st, answer) = (st.clone(), answer());
            std::thread::spawn(move || serve_fake_peer(s, info_hash, peer_id, pieces, &st, answer));
        }
    });
    stats
}

/// The tracker announce URL's path and query that registers a peer as a seed.
fn seed_announce_path(info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16) -> String {
    let enc = |b: &[u8]| b.iter().map(|x| format!("%{x:02X}")).collect::<String>();
    format!("/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=0&event=started&compact=1", enc(info_hash), enc(peer_id))
}

/// A peer of one torrent that claims to have every piece, unchokes at once, and answers each
/// request with a block of garbage of the requested length.
pub struct CorruptPeer {
    pub addr: SocketAddr,
    pub peer_id: [u8; 20],
    pub stats: Arc<FakePeerStats>,
}

impl CorruptPeer {
    pub fn start(listener: TcpListener, info_hash: [u8; 20], pieces: u32) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let peer_id = *b"-XX0001-corruptpeer!";
        let stats = start_fake_peer(listener, info_hash, peer_id, pieces, || Box::new(|_, _, length| Some(vec![0xA5; length as usize])));
        Ok(CorruptPeer { addr, peer_id, stats })
    }

    /// The tracker announce URL's path and query that registers this peer as a seed.
    pub fn announce_path(&self, info_hash: &[u8; 20]) -> String {
        seed_announce_path(info_hash, &self.peer_id, self.addr.port())
    }
}

/// A genuine but slow seed of one torrent: it has every piece and sends the true bytes, but
/// at one piece's worth of bytes per `every`, on each connection (the peer that kept a swarm
/// from ever looking stalled).
pub struct TricklePeer {
    pub addr: SocketAddr,
    pub peer_id: [u8; 20],
    pub stats: Arc<FakePeerStats>,
}

impl TricklePeer {
    pub fn start(listener: TcpListener, info_hash: [u8; 20], piece_length: u32, data: Vec<u8>, every: Duration) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let peer_id = *b"-XX0001-tricklepeer!";
        let pieces = (data.len() as u64).div_ceil(u64::from(piece_length)) as u32;
        let data = Arc::new(data);
        let stats = start_fake_peer(listener, info_hash, peer_id, pieces, move || {
            let data = data.clone();
            let mut next = std::time::Instant::now();
            Box::new(move |index, begin, length| {
                let at = u64::from(index) * u64::from(piece_length) + u64::from(begin);
                let block = data.get(usize::try_from(at).ok()?..)?.get(..length as usize)?.to_vec();
                // Each block costs its share of `every`: a piece per `every`, paced evenly.
                next += every.mul_f64(f64::from(length) / f64::from(piece_length));
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                Some(block)
            })
        });
        Ok(TricklePeer { addr, peer_id, stats })
    }

    /// The tracker announce URL's path and query that registers this peer as a seed.
    pub fn announce_path(&self, info_hash: &[u8; 20]) -> String {
        seed_announce_path(info_hash, &self.peer_id, self.addr.port())
    }
}

fn serve_fake_peer(mut s: TcpStream, info_hash: [u8; 20], peer_id: [u8; 20], pieces: u32, st: &FakePeerStats, mut answer: Answer) {
    let mut hs = [0u8; 68];
    if s.read_exact(&mut hs).is_err() || hs[28..48] != info_hash {
        return;
    }
    let mut out = Vec::new();
    out.push(19);
    out.extend_from_slice(b"BitTorrent protocol");
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&info_hash);
    out.extend_from_slice(&peer_id);
    // BITFIELD: every piece, spare bits clear.
    let mut bits = vec![0xFFu8; pieces.div_ceil(8) as usize];
    if !pieces.is_multiple_of(8) {
        *bits.last_mut().expect("pieces > 0") = 0xFF << (8 - pieces % 8);
    }
    out.extend_from_slice(&(1 + bits.len() as u32).to_be_bytes());
    out.push(5);
    out.extend_from_slice(&bits);
    out.extend_from_slice(&[0, 0, 0, 1, 1]); // UNCHOKE
    if s.write_all(&out).is_err() {
        return;
    }
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            st.closed_by_peer.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
        if s.read_exact(&mut msg).is_err() {
            st.closed_by_peer.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if msg.first() == Some(&6) && msg.len() == 13 {
            let field = |at: usize| u32::from_be_bytes(msg[at..at + 4].try_into().expect("4 bytes"));
            let Some(block) = answer(field(1), field(5), field(9)) else { return };
            let mut piece = Vec::with_capacity(13 + block.len());
            piece.extend_from_slice(&(9 + block.len() as u32).to_be_bytes());
            piece.push(7);
            piece.extend_from_slice(&msg[1..9]);
            piece.extend_from_slice(&block);
            if s.write_all(&piece).is_err() {
                st.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                return;
            }
            st.blocks_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a [`Proxy`] changes; replaceable while it runs ([`Proxy::set`]).
#[derive(Debug, Clone, Default)]
pub struct Rewrites {
    /// In each request's target: `from` → `to` (first occurrence), before it goes upstream.
    pub request: Vec<(String, String)>,
    /// In the body of each answer to a path (as the client asked) starting with `prefix`:
    /// `(prefix, from, to)`, every occurrence; the length header is set to the new length.
    pub body: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Response headers removed (names in lower case).
    pub drop_headers: Vec<String>,
}

/// A man in the middle on the boot network: an HTTP proxy to `upstream` that rewrites
/// requests and answers as its [`Rewrites`] say and passes everything else through.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Requests or answers it changed.
    pub rewritten: Arc<AtomicU64>,
    rewrites: Arc<std::sync::Mutex<Rewrites>>,
}

impl Proxy {
    /// Start it on a thread that is in the namespace the listener was bound in (so its
    /// connections to `upstream` leave from there).
    pub fn start(listener: TcpListener, upstream: SocketAddr, rewrites: Rewrites) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let rewritten = Arc::new(AtomicU64::new(0));
        let rules = Arc::new(std::sync::Mutex::new(rewrites));
        let (count, shared) = (rewritten.clone(), rules.clone());
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let (count, rules) = (count.clone(), shared.lock().expect("rewrites").clone());
                std::thread::spawn(move || {
                    let _ = relay(s, upstream, &rules, &count);
                });
            }
        });
        Ok(Proxy { addr, rewritten, rewrites: rules })
    }

    /// What it changes from the next connection on.
    pub fn set(&self, rewrites: Rewrites) {
        *self.rewrites.lock().expect("rewrites") = rewrites;
    }
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(haystack.len());
    let (mut i, mut any) = (0, false);
    while i < haystack.len() {
        if !from.is_empty() && haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
            any = true;
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    (out, any)
}

fn relay(mut client: TcpStream, upstream: SocketAddr, rules: &Rewrites, count: &AtomicU64) -> std::io::Result<()> {
    let Some(head) = read_head(&mut client, Duration::from_secs(30))? else { return Ok(()) };
    let asked = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut path = asked.clone();
    for (from, to) in &rules.request {
        if path.contains(from.as_str()) {
            path = path.replacen(from.as_str(), to, 1);
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
    let range = head.lines().find(|l| l.to_ascii_lowercase().starts_with("range:")).map(|l| format!("{l}\r\n")).unwrap_or_default();
    let mut up = TcpStream::connect(upstream)?;
    write!(up, "GET {path} HTTP/1.0\r\nHost: {upstream}\r\n{range}\r\n")?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else { return client.write_all(&resp) };
    let (head, mut body) = (String::from_utf8_lossy(&resp[..split]).into_owned(), resp[split + 4..].to_vec());
    let mut changed = false;
    for (_, from, to) in rules.body.iter().filter(|(prefix, _, _)| asked.starts_with(prefix.as_str())) {
        let (new, any) = replace_all(&body, from, to);
        body = new;
        changed |= any;
    }
    if changed {
        count.fetch_add(1, Ordering::Relaxed);
    }
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        if name == "content-length" {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        } else if !rules.drop_headers.contains(&name) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    client.write_all(out.as_bytes())?;
    client.write_all(&body)
}

/// A TCP connection to `to` from the local address `source` (one of the namespace's), or
/// `None` if it was not made within 2 s: a client that connects and then says nothing.
pub fn connect_from(source: std::net::Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::V4(std::net::SocketAddrV4::new(source, 0)).into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    Some(s.into())
}
