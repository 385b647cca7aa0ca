//! The stage reports the stub's worker, the seeders and the booted unit send the boot server
//! (`POST /api/v1/report`, see `swarmboot_fleet::report`), so its dashboard shows where each
//! machine's boot is. Each is bounded in time and one at most is in flight; a server that does
//! not answer costs the boot nothing (reports are a courtesy, like seeding).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use swarmboot_fetch::FetchProgress;
use swarmboot_fleet::{Mac, ReportReply, Reported, Reporter, StageReport};

/// How long a report may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The counters a report carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub have: u64,
    pub total: u64,
    pub from_peers: u64,
    pub from_seed: u64,
    pub from_http: u64,
    pub uploaded: u64,
    pub peers: u32,
}

impl From<&FetchProgress> for Counters {
    fn from(p: &FetchProgress) -> Self {
        Counters {
            have: p.bytes_have,
            total: p.total,
            from_peers: p.from_peers,
            from_seed: p.from_server_seed.min(p.from_peers),
            from_http: p.from_http,
            uploaded: p.uploaded,
            peers: p.peers as u32,
        }
    }
}

/// One machine's reporter: where, who, which image.
#[derive(Clone)]
pub struct StageReports {
    url: String,
    mac: Mac,
    image: String,
    version: u32,
    by: Reporter,
    in_flight: Arc<AtomicBool>,
    interval_secs: Arc<AtomicU64>,
}

impl StageReports {
    pub fn new(server: &str, mac: Mac, image: &str, version: u32, by: Reporter) -> Self {
        StageReports {
            url: swarmboot_urls::Urls::new(server).report(),
            mac,
            image: image.to_string(),
            version,
            by,
            in_flight: Arc::new(AtomicBool::new(false)),
            interval_secs: Arc::new(AtomicU64::new(swarmboot_fleet::report::DEFAULT_INTERVAL_SECS)),
        }
    }

    fn body(&self, stage: Reported, c: Counters) -> Vec<u8> {
        StageReport {
            mac: self.mac,
            stage,
            by: self.by,
            image: self.image.clone(),
            version: self.version,
            have: c.have.min(c.total),
            total: c.total,
            from_peers: c.from_peers,
            from_seed: c.from_seed.min(c.from_peers),
            from_http: c.from_http,
            uploaded: c.uploaded,
            peers: c.peers,
        }
        .to_json()
    }

    /// Sends a report and waits for the answer (at most a few seconds); whether the server
    /// took it. The server's interval is kept for [`StageReports::interval`].
    pub async fn send(&self, stage: Reported, c: Counters) -> bool {
        let body = self.body(stage, c);
        match swarmboot_fetch::http::post(&self.url, &[], body, 4096, TIMEOUT).await {
            Ok((200, reply)) => {
                if let Ok(r) = serde_json::from_slice::<ReportReply>(&reply) {
                    self.interval_secs.store(r.interval().as_secs(), Ordering::Relaxed);
                }
                true
            }
            Ok((status, reply)) => {
                tracing::debug!(status, reply = %String::from_utf8_lossy(&reply).trim(), "stage report refused");
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "stage report not sent");
                false
            }
        }
    }

    /// Sends a report in the background, unless one is still on its way.
    pub fn spawn(&self, stage: Reported, c: Counters) {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.send(stage, c).await;
            me.in_flight.store(false, Ordering::Release);
        });
    }

    /// How often the server wants to hear from a booted machine.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.load(Ordering::Relaxed))
    }
}

/// The MAC of network interface `name` (`/sys/class/net/NAME/address`).
pub fn mac_of(name: &str) -> Option<Mac> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    text.trim().parse().ok()
}

/// The MAC of the interface that holds `address`.
pub fn mac_with(address: Ipv4Addr) -> Option<Mac> {
    let name = nix::ifaddrs::getifaddrs().ok()?.find(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())) == Some(address))?.interface_name;
    mac_of(&name)
}
