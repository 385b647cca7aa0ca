//! The DHCP shell: two UDP sockets (67 and 4011) bound to the boot interface, the sans-IO core,
//! and the lease database. Per batch of datagrams: decide, persist, then send.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dhcproto::v4::MessageType;
use socket2::{Domain, Protocol, Socket, Type};
use swarmboot_dhcp::{DhcpServer, DropReason, Outcome, Settings, Source, UnixTime, PXE_PORT, SERVER_PORT};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::fleet::FleetState;
use crate::lease_store::LeaseStore;

/// At most this many datagrams are decided and persisted together.
const BATCH: usize = 64;
/// Bigger than any request the core accepts, so an oversized one is seen as such.
const RECV_BUF: usize = swarmboot_dhcp::MAX_REQUEST_LEN + 1;

/// Counters, shared with the HTTP `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct DhcpStats {
    pub received: AtomicU64,
    pub offers: AtomicU64,
    pub acks: AtomicU64,
    pub naks: AtomicU64,
    pub send_errors: AtomicU64,
    pub store_errors: AtomicU64,
    pub drops: [AtomicU64; DropReason::ALL.len()],
}

impl DhcpStats {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Ordering::Relaxed)
    }
    fn count_reply(&self, kind: MessageType) {
        let counter = match kind {
            MessageType::Offer => &self.offers,
            MessageType::Ack => &self.acks,
            MessageType::Nak => &self.naks,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn malformed(&self) -> u64 {
        DropReason::ALL.iter().filter(|r| r.is_malformed()).map(|r| self.dropped(*r)).sum()
    }
}

/// Binds a UDP socket to `0.0.0.0:port` on interface `iface` only, able to broadcast.
fn bind(iface: &str, port: u16) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.as_bytes())).with_context(|| format!("cannot bind to interface {iface} (SO_BINDTODEVICE needs root or CAP_NET_RAW)"))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into()).with_context(|| format!("cannot bind UDP port {port} on {iface}: another DHCP server running?"))?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

fn now() -> UnixTime {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub struct DhcpService {
    core: DhcpServer,
    store: LeaseStore,
    s67: UdpSocket,
    s4011: UdpSocket,
    stats: Arc<DhcpStats>,
    fleet: Arc<FleetState>,
}

impl DhcpService {
    pub fn bind(core: DhcpServer, store: LeaseStore, iface: &str, stats: Arc<DhcpStats>, fleet: Arc<FleetState>) -> anyhow::Result<Self> {
        Ok(DhcpService { core, store, s67: bind(iface, SERVER_PORT)?, s4011: bind(iface, PXE_PORT)?, stats, fleet })
    }

    /// Serves until `shutdown`; a new value on `reload` replaces the core's settings.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>, mut reload: watch::Receiver<Option<Settings>>) -> anyhow::Result<()> {
        let mut buf = vec![0u8; RECV_BUF];
        let mut buf_pxe = vec![0u8; RECV_BUF];
        let mut batch: Vec<(Source, Vec<u8>)> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                r = self.s67.recv_from(&mut buf) => push(&mut batch, r, SERVER_PORT, &buf),
                r = self.s4011.recv_from(&mut buf_pxe) => push(&mut batch, r, PXE_PORT, &buf_pxe),
                _ = shutdown.changed() => return Ok(()),
                Ok(()) = reload.changed() => {
                    if let Some(settings) = reload.borrow_and_update().clone() {
                        self.core.reconfigure(settings);
                        info!(leases = self.core.leases().len(), "DHCP settings reloaded");
                    }
                    continue;
                }
            }
            // Take whatever else is already queued, to persist it in the same transaction.
            while batch.len() < BATCH {
                let before = batch.len();
                if let Ok(r) = self.s67.try_recv_from(&mut buf) {
                    push(&mut batch, Ok(r), SERVER_PORT, &buf);
                }
                if batch.len() < BATCH {
                    if let Ok(r) = self.s4011.try_recv_from(&mut buf) {
                        push(&mut batch, Ok(r), PXE_PORT, &buf);
                    }
                }
                if batch.len() == before {
                    break;
                }
            }
            self.process(&mut batch).await;
        }
    }

    async fn process(&mut self, batch: &mut Vec<(Source, Vec<u8>)>) {
        let t = now();
        let outcomes: Vec<(Source, Outcome)> = batch
            .drain(..)
            .map(|(src, bytes)| {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                (src, self.core.handle(t, src, &bytes))
            })
            .collect();
        let leases: Vec<_> = outcomes.iter().flat_map(|(_, o)| o.released.iter().cloned().chain(o.lease.clone())).collect();
        let persisted = match self.store.save(&leases) {
            Ok(()) => true,
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "lease database write failed; not sending the replies that grant those leases");
                false
            }
        };
        for (src, o) in outcomes {
            if let Some(reason) = o.drop {
                self.stats.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
                if reason.is_malformed() {
                    debug!(peer = %src.peer, reason = reason.as_str(), "dropped malformed datagram");
                } else {
                    debug!(peer = %src.peer, reason = reason.as_str(), "no reply");
                }
            }
            for l in &o.released {
                info!(ip = %l.ip, mac = %l.hwaddr, "lease released: the machine holds its share of addresses under other client ids");
            }
            if let Some(l) = &o.lease {
                info!(ip = %l.ip, mac = %l.hwaddr, state = l.state.as_str(), hostname = l.hostname.as_deref().unwrap_or(""), "lease");
            }
            self.fleet.dhcp(&o, persisted);
            let Some(reply) = o.reply else { continue };
            if o.lease.is_some() && !persisted {
                continue;
            }
            self.stats.count_reply(reply.kind);
            let sock = if src.local_port == PXE_PORT { &self.s4011 } else { &self.s67 };
            if let Err(e) = sock.send_to(&reply.bytes, SocketAddr::V4(reply.to)).await {
                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                warn!(to = %reply.to, error = %e, "cannot send DHCP reply");
            }
        }
    }
}

fn push(batch: &mut Vec<(Source, Vec<u8>)>, r: std::io::Result<(usize, SocketAddr)>, port: u16, buf: &[u8]) {
    match r {
        Ok((n, SocketAddr::V4(peer))) => batch.push((Source { peer, local_port: port }, buf[..n].to_vec())),
        Ok((_, SocketAddr::V6(_))) => {}
        Err(e) => debug!(error = %e, "recv failed"),
    }
}
