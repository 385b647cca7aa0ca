//! The fleet's stages ([`swarmboot_fleet::Fleet`]) behind a lock, with the clock: the DHCP,
//! TFTP and HTTP shells say what they saw, stage reports and check-ins go through its source
//! check, and [`FleetState::run`] ticks it (machines not heard from become lost).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use swarmboot_dhcp::{LeaseState, Outcome};
use swarmboot_fleet::{DhcpClient, Fleet, FleetConfig, Mac, Refused, ReportError, ReportReply, Seen, StageReport};
use swarmboot_swarm::locks::lock;
use tokio::sync::watch;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Why a stage report was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReportFailure {
    #[error(transparent)]
    Bad(#[from] ReportError),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("reports come over IPv4 (the machine's lease); this one came from {0}")]
    NotIpv4(IpAddr),
}

pub struct FleetState {
    fleet: Mutex<Fleet>,
}

/// The IPv4 address of a request's source (mapped IPv6 included).
pub fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

impl FleetState {
    pub fn new(cfg: FleetConfig) -> Self {
        FleetState { fleet: Mutex::new(Fleet::new(cfg)) }
    }

    /// Binds the leases the DHCP service loaded (machines show as lost until heard from).
    pub fn restore_leases<'a>(&self, leases: impl IntoIterator<Item = &'a swarmboot_dhcp::Lease>) {
        let now = now_ms();
        let mut f = lock(&self.fleet);
        for l in leases.into_iter().filter(|l| l.state == LeaseState::Bound) {
            if let Some(mac) = Mac::from_bytes(l.hwaddr.as_bytes()) {
                f.restore_lease(now, mac, l.ip, l.expires.saturating_mul(1000), l.hostname.as_deref());
            }
        }
    }

    pub fn observe(&self, seen: Seen<'_>) {
        lock(&self.fleet).observe(now_ms(), seen);
    }

    /// What one DHCP outcome says of its machine; `granted`: the lease it carries was
    /// saved (so the reply went out).
    pub fn dhcp(&self, o: &Outcome, granted: bool) {
        use dhcproto::v4::MessageType;
        let Some(asked) = &o.asked else { return };
        let Some(mac) = Mac::from_bytes(asked.machine.hwaddr.as_bytes()) else { return };
        let now = now_ms();
        let mut f = lock(&self.fleet);
        for l in &o.released {
            f.observe(now, Seen::Released { mac, ip: l.ip });
        }
        let lease = o.lease.as_ref().filter(|_| granted);
        if let Some(l) = lease.filter(|l| l.state == LeaseState::Released) {
            f.observe(now, Seen::Released { mac, ip: l.ip });
        }
        if !matches!(asked.kind, MessageType::Discover | MessageType::Request | MessageType::Inform) {
            return;
        }
        let m = &asked.machine;
        let client = if m.stub {
            DhcpClient::Stub
        } else if m.ipxe {
            DhcpClient::Ipxe
        } else if m.pxe || m.http_client {
            DhcpClient::Firmware
        } else {
            DhcpClient::Os
        };
        let bound = lease.filter(|l| l.state == LeaseState::Bound);
        let leased = bound.map(|l| (l.ip, l.expires.saturating_mul(1000)));
        let hostname = lease.and_then(|l| l.hostname.as_deref());
        f.observe(now, Seen::Dhcp { mac, client, leased, hostname });
    }

    /// A stage report's body from `from`.
    pub fn report(&self, from: IpAddr, body: &[u8]) -> Result<ReportReply, ReportFailure> {
        let r = StageReport::parse(body)?;
        let from = v4(from).ok_or(ReportFailure::NotIpv4(from))?;
        let mut f = lock(&self.fleet);
        f.report(now_ms(), from, &r)?;
        Ok(ReportReply { interval_secs: f.config().report_interval_secs })
    }

    /// Whether `from` may check in for `mac` (before the registry takes the check-in).
    pub fn check_source(&self, from: IpAddr, mac: Mac) -> Result<(), Refused> {
        match v4(from) {
            Some(ip) => lock(&self.fleet).check_source(now_ms(), ip, mac),
            None => Ok(()),
        }
    }

    /// A check-in the registry took.
    pub fn checked_in(&self, from: IpAddr, mac: Mac, image: &str, uploaded: u64, leaving: bool) {
        if let Some(ip) = v4(from) {
            // The source was checked before the registry took it; the table may have filled
            // up since (then the machine is not shown, and the refusal is counted).
            if let Err(e) = lock(&self.fleet).check_in(now_ms(), ip, mac, image, uploaded, leaving) {
                tracing::warn!(%mac, %ip, "the fleet did not take a check-in the registry took: {e}");
            }
        }
    }

    /// Reads the fleet at one moment (the lock is held while `f` runs: keep it short).
    pub fn read<R>(&self, f: impl FnOnce(&Fleet, u64) -> R) -> R {
        f(&lock(&self.fleet), now_ms())
    }

    /// Ticks the fleet until `shutdown`.
    pub async fn run(self: std::sync::Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let every = Duration::from_millis(lock(&self.fleet).next_tick().clamp(250, 10_000));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => lock(&self.fleet).tick(now_ms()),
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}
