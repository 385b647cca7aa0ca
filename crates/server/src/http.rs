//! The HTTP listener (`[http] listen`): health and metrics now; iPXE scripts and boot files
//! join it with the boot path.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use swarmboot_dhcp::DropReason;

use crate::dhcp_service::DhcpStats;
use crate::tftp_service::TftpStats;

#[derive(Clone)]
pub struct AppState {
    pub dhcp: Arc<DhcpStats>,
    pub tftp: Arc<TftpStats>,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route("/metrics", get(metrics)).with_state(state)
}

/// Prometheus text format.
async fn metrics(State(s): State<AppState>) -> String {
    render_metrics(&s.dhcp, &s.tftp)
}

pub fn render_metrics(d: &DhcpStats, t: &TftpStats) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter("swarmboot_dhcp_received_total", "DHCP datagrams received.", d.received.load(Ordering::Relaxed));
    counter("swarmboot_dhcp_offers_total", "DHCPOFFERs sent.", d.offers.load(Ordering::Relaxed));
    counter("swarmboot_dhcp_acks_total", "DHCPACKs sent.", d.acks.load(Ordering::Relaxed));
    counter("swarmboot_dhcp_naks_total", "DHCPNAKs sent.", d.naks.load(Ordering::Relaxed));
    counter("swarmboot_dhcp_send_errors_total", "Replies that could not be sent.", d.send_errors.load(Ordering::Relaxed));
    counter("swarmboot_dhcp_store_errors_total", "Failed lease database writes.", d.store_errors.load(Ordering::Relaxed));
    counter("swarmboot_dhcp_malformed_total", "Malformed datagrams dropped.", d.malformed());
    counter("swarmboot_tftp_requests_total", "TFTP read requests.", t.requests.load(Ordering::Relaxed));
    counter("swarmboot_tftp_completed_total", "TFTP transfers acknowledged to the end.", t.completed.load(Ordering::Relaxed));
    counter("swarmboot_tftp_client_errors_total", "TFTP transfers the client ended with ERROR.", t.client_errors.load(Ordering::Relaxed));
    counter("swarmboot_tftp_timeouts_total", "TFTP transfers given up after retries.", t.timeouts.load(Ordering::Relaxed));
    counter("swarmboot_tftp_refused_total", "TFTP requests refused (not found, outside the root, writes).", t.refused.load(Ordering::Relaxed));
    counter("swarmboot_tftp_malformed_total", "Malformed TFTP datagrams dropped.", t.malformed.load(Ordering::Relaxed));
    counter("swarmboot_tftp_bytes_total", "File bytes sent over TFTP.", t.bytes_sent.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP swarmboot_dhcp_dropped_total Datagrams not answered, by reason.\n# TYPE swarmboot_dhcp_dropped_total counter");
    for r in DropReason::ALL {
        let _ = writeln!(out, "swarmboot_dhcp_dropped_total{{reason=\"{}\"}} {}", r.as_str(), d.dropped(r));
    }
    out
}
