//! `swarmboot leases`: the lease database as a table or JSON.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use swarmboot_config::Config;
use swarmboot_dhcp::Lease;
use swarmboot_server::lease_store::LeaseStore;

#[derive(serde::Serialize)]
struct LeaseRow {
    ip: Ipv4Addr,
    mac: String,
    hostname: Option<String>,
    state: &'static str,
    expires: u64,
    /// Seconds from now; negative when already past.
    expires_in: i64,
}

pub fn run(path: &Path, json: bool) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let store = LeaseStore::open_read_only(&cfg.server.state_dir).context("no lease database yet: has `swarmboot serve` run with [dhcp] mode on?")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let rows: Vec<LeaseRow> = store
        .load()?
        .into_iter()
        .map(|l: Lease| LeaseRow {
            ip: l.ip,
            mac: l.hwaddr.to_string(),
            hostname: l.hostname,
            state: l.state.as_str(),
            expires: l.expires,
            expires_in: l.expires as i64 - now as i64,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<16} {:<18} {:<9} {:>10}  HOSTNAME", "IP", "MAC", "STATE", "EXPIRES IN");
    for r in &rows {
        let when = if r.expires_in >= 0 { format!("{}s", r.expires_in) } else { "expired".into() };
        println!("{:<16} {:<18} {:<9} {:>10}  {}", r.ip, r.mac, r.state, when, r.hostname.as_deref().map_or("-".into(), crate::terminal_text::printable));
    }
    println!("{} lease record(s)", rows.len());
    Ok(())
}
