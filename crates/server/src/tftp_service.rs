//! The TFTP shell: the well-known socket, one task and one socket per transfer (no cap on
//! concurrent transfers), files from the TFTP root, Debian's iPXE directory, or virtual files
//! generated per client. The protocol is `swarmboot-tftp`'s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use swarmboot_swarm::admission::Admission;
use swarmboot_tftp::packet::{self, encode_error, ErrorCode, Initial};
use swarmboot_tftp::{Limits, Outgoing, Request, Step, Transfer, TransferEnd};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn, Instrument};

/// Counters, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct TftpStats {
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub client_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub refused: AtomicU64,
    pub malformed: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Requests refused because too many transfers ran (from that client, or in all).
    pub busy: AtomicU64,
}

/// A file made for the client asking (its address in, the bytes out).
pub type VirtualFile = Arc<dyn Fn(SocketAddr) -> Vec<u8> + Send + Sync>;

/// Where served names come from.
#[derive(Clone)]
pub struct FileSource {
    root: PathBuf,
    ipxe_dir: PathBuf,
    virtual_files: HashMap<String, VirtualFile>,
}

/// Why a request gets an ERROR.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{0}")]
    BadName(#[from] swarmboot_tftp::path::BadPath),
    #[error("file not found")]
    NotFound,
    #[error("path leaves the TFTP root")]
    OutsideRoot,
    #[error("not a regular file")]
    NotAFile,
}

enum Opened {
    Disk(std::fs::File),
    Memory(Vec<u8>),
}

impl Opened {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Opened::Disk(f) => f.read_exact_at(buf, offset),
            Opened::Memory(v) => {
                let start = offset as usize;
                buf.copy_from_slice(&v[start..start + buf.len()]);
                Ok(())
            }
        }
    }
}

impl FileSource {
    pub fn new(root: &Path, ipxe_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(FileSource { root: root.canonicalize()?, ipxe_dir: ipxe_dir.to_path_buf(), virtual_files: HashMap::new() })
    }

    /// Serves `name` (a path as [`swarmboot_tftp::path::resolve`] returns it) from `make`.
    pub fn add_virtual(&mut self, name: &str, make: VirtualFile) {
        self.virtual_files.insert(name.to_string(), make);
    }

    /// Finds what a request names: a virtual file, a regular file under the root (after
    /// resolving symlinks, still under the root), or an entry of the iPXE directory.
    pub fn locate(&self, requested: &[u8], peer: SocketAddr) -> Result<Located, Refusal> {
        let name = swarmboot_tftp::path::resolve(requested)?;
        if let Some(make) = self.virtual_files.get(&name) {
            return Ok(Located::Memory(make(peer)));
        }
        let candidate = self.root.join(&name);
        let found = match candidate.canonicalize() {
            Ok(real) if !real.starts_with(&self.root) => return Err(Refusal::OutsideRoot),
            Ok(real) => real,
            // A bare name is an entry of the iPXE directory; its symlinks are the package's own
            // (Debian links ipxe.efi to /boot/ipxe.efi), so they are followed.
            Err(_) if !name.contains('/') => self.ipxe_dir.join(&name),
            Err(_) => return Err(Refusal::NotFound),
        };
        match std::fs::metadata(&found) {
            Ok(m) if m.is_file() => Ok(Located::Disk(found)),
            Ok(_) => Err(Refusal::NotAFile),
            Err(_) => Err(Refusal::NotFound),
        }
    }

    fn open(&self, requested: &[u8], peer: SocketAddr) -> Result<(Opened, u64), Refusal> {
        match self.locate(requested, peer)? {
            Located::Memory(bytes) => {
                let len = bytes.len() as u64;
                Ok((Opened::Memory(bytes), len))
            }
            Located::Disk(path) => {
                let file = std::fs::File::open(&path).map_err(|_| Refusal::NotFound)?;
                let len = file.metadata().map_err(|_| Refusal::NotFound)?.len();
                Ok((Opened::Disk(file), len))
            }
        }
    }
}

/// Where a served name was found.
pub enum Located {
    Disk(PathBuf),
    Memory(Vec<u8>),
}

pub struct TftpService {
    sock: UdpSocket,
    files: Arc<FileSource>,
    limits: Limits,
    stats: Arc<TftpStats>,
    /// Transfers running (each holds a socket), in all and per client.
    running: Admission,
    /// The boot interface: every socket is bound to it (SO_BINDTODEVICE).
    device: Option<String>,
    /// Told of every read request (firmware loading iPXE moves its machine's stage).
    fleet: Option<Arc<crate::fleet::FleetState>>,
}

impl TftpService {
    /// Binds `listen`, on the boot interface `device` only (TFTP serves the boot LAN, never
    /// another network the host is on).
    pub async fn bind(listen: SocketAddr, device: Option<&str>, files: Arc<FileSource>, limits: Limits, running: Admission, stats: Arc<TftpStats>) -> anyhow::Result<Self> {
        let sock = udp_on(listen, device).with_context(|| format!("tftp.listen: cannot bind {listen}{}", device.map(|d| format!(" on {d}")).unwrap_or_default()))?;
        Ok(TftpService { sock, files, limits, stats, running, device: device.map(str::to_owned), fleet: None })
    }

    /// Tells `fleet` of every read request.
    pub fn with_fleet(mut self, fleet: Arc<crate::fleet::FleetState>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        let local_ip = self.sock.local_addr()?.ip();
        loop {
            let (n, peer) = tokio::select! {
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => { debug!(error = %e, "tftp recv"); continue; }
                },
                _ = shutdown.changed() => return Ok(()),
            };
            match packet::parse_initial(&buf[..n]) {
                Ok(Initial::Read(req)) => {
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    if let (Some(fleet), Some(ip)) = (&self.fleet, crate::fleet::v4(peer.ip())) {
                        fleet.observe(swarmboot_fleet::Seen::Tftp { ip });
                    }
                    let Some(permit) = self.running.admit(peer.ip()) else {
                        self.stats.busy.fetch_add(1, Ordering::Relaxed);
                        debug!(%peer, "too many transfers running; refused");
                        let _ = self.sock.send_to(&encode_error(ErrorCode::NotDefined, "server busy: too many transfers, try again"), peer).await;
                        continue;
                    };
                    let span = info_span!("tftp", %peer, file = %String::from_utf8_lossy(&req.filename));
                    let (files, limits, stats, device) = (self.files.clone(), self.limits, self.stats.clone(), self.device.clone());
                    tokio::spawn(
                        async move {
                            transfer(local_ip, device.as_deref(), peer, req, files, limits, stats).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Ok(Initial::Write) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = self.sock.send_to(&encode_error(ErrorCode::AccessViolation, "read-only server"), peer).await;
                }
                Err(e) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, error = %e, "dropped malformed TFTP datagram");
                }
            }
        }
    }
}

/// One transfer on its own socket (its transfer ID), until it completes, fails or times out.
/// A UDP socket on `addr`, bound to `device` if given.
fn udp_on(addr: SocketAddr, device: Option<&str>) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(d) = device {
        s.bind_device(Some(d.as_bytes()))?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

async fn transfer(local_ip: std::net::IpAddr, device: Option<&str>, peer: SocketAddr, req: Request, files: Arc<FileSource>, limits: Limits, stats: Arc<TftpStats>) {
    let sock = match udp_on(SocketAddr::new(local_ip, 0), device) {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "cannot open a transfer socket"),
    };
    if let Err(e) = sock.connect(peer).await {
        return warn!(error = %e, "cannot reach client");
    }
    let (file, size) = match files.open(&req.filename, peer) {
        Ok(x) => x,
        Err(refusal) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            info!(%refusal, "refused");
            let code = match refusal {
                Refusal::NotFound => ErrorCode::FileNotFound,
                _ => ErrorCode::AccessViolation,
            };
            let _ = sock.send(&encode_error(code, &refusal.to_string())).await;
            return;
        }
    };
    let (mut t, mut step) = Transfer::start(&req.options, size, Instant::now(), &limits);
    let mut out = vec![0u8; 4 + t.blksize()];
    let mut inbuf = [0u8; 1024];
    loop {
        if let Err(e) = send_step(&sock, &step, &file, &mut out, &stats).await {
            warn!(error = %e, "transfer aborted");
            return;
        }
        if let Some(end) = step.end {
            let counter = match end {
                TransferEnd::Complete => &stats.completed,
                TransferEnd::ClientError(_) => &stats.client_errors,
                TransferEnd::TimedOut => &stats.timeouts,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            debug!(?end, size, "transfer ended");
            return;
        }
        let Some(deadline) = t.poll_timeout() else {
            return;
        };
        step = tokio::select! {
            r = sock.recv(&mut inbuf) => match r {
                Ok(n) => t.on_packet(Instant::now(), &inbuf[..n]),
                // ICMP port unreachable and the like: the client is gone.
                Err(_) => Step { send: vec![], end: Some(TransferEnd::TimedOut) },
            },
            _ = tokio::time::sleep_until(deadline.into()) => t.on_timeout(Instant::now()),
        };
    }
}

async fn send_step(sock: &UdpSocket, step: &Step, file: &Opened, out: &mut [u8], stats: &TftpStats) -> std::io::Result<()> {
    for s in &step.send {
        match s {
            Outgoing::Packet(p) => {
                sock.send(p).await?;
            }
            Outgoing::Data { wire, offset, len } => {
                packet::write_data_header(out, *wire);
                file.read_at(&mut out[4..4 + len], *offset)?;
                sock.send(&out[..4 + len]).await?;
                stats.bytes_sent.fetch_add(*len as u64, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.77.0.5:2000".parse().unwrap()
    }

    #[test]
    fn names_resolve_inside_the_root_only() {
        let root = tempfile::tempdir().unwrap();
        let ipxe = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("boot.bin"), b"abc").unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(ipxe.path().join("undionly.kpxe"), b"ipxe").unwrap();
        std::fs::write(root.path().join("elsewhere.efi"), b"efi!!").unwrap();
        std::os::unix::fs::symlink(root.path().join("elsewhere.efi"), ipxe.path().join("ipxe.efi")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("boot.bin", root.path().join("inside")).unwrap();
        let mut fs = FileSource::new(root.path(), ipxe.path()).unwrap();
        fs.add_virtual("hello.txt", Arc::new(|p: SocketAddr| format!("hello {}", p.ip()).into_bytes()));

        let size = |name: &[u8]| fs.open(name, peer()).map(|(_, n)| n);
        assert_eq!(size(b"boot.bin"), Ok(3));
        assert_eq!(size(b"/boot.bin"), Ok(3));
        assert_eq!(size(b"inside"), Ok(3), "a symlink that stays inside is fine");
        assert_eq!(size(b"undionly.kpxe"), Ok(4), "falls back to the iPXE directory");
        assert_eq!(size(b"ipxe.efi"), Ok(5), "the iPXE directory's own symlinks are followed");
        assert_eq!(size(b"hello.txt"), Ok(15));
        assert_eq!(size(b"escape"), Err(Refusal::OutsideRoot));
        assert_eq!(size(b"sub"), Err(Refusal::NotAFile));
        assert_eq!(size(b"missing"), Err(Refusal::NotFound));
        assert_eq!(size(b"sub/undionly.kpxe"), Err(Refusal::NotFound), "the iPXE fallback is for bare names");
        assert!(matches!(size(b"../etc/passwd"), Err(Refusal::BadName(_))));
        assert!(matches!(size(b"..\\x"), Err(Refusal::BadName(_))));
        let (f, n) = fs.open(b"hello.txt", peer()).unwrap();
        let mut b = vec![0; n as usize];
        f.read_at(&mut b, 0).unwrap();
        assert_eq!(b, b"hello 10.77.0.5");
    }
}
