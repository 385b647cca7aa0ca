//! `swarmboot serve` and `swarmboot check-config`: run the server, or say what it would do.

use std::path::Path;

use swarmboot_config::Config;
use swarmboot_dhcp::Mode;

/// What an installed but unconfigured server says (in its log and `check-config`).
fn not_configured(path: &Path) -> String {
    format!(
        "{}: not configured yet, so swarmboot serves nothing (no DHCP, TFTP, HTTP or seed): name the boot network's interface and this server's address on it ([server] interface, address) and choose [dhcp] mode, e.g. with `swarmboot setup`; then `systemctl restart swarmboot`",
        path.display()
    )
}

pub fn serve(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    if !cfg.is_configured() {
        tracing::warn!("{}", not_configured(path));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(swarmboot_server::run(cfg))
}

pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    if !cfg.is_configured() {
        println!("{}", not_configured(path));
        return Ok(());
    }
    let prefix = match swarmboot_server::served_prefix(&cfg) {
        Ok(p) => p,
        Err(e) => {
            println!("{}: note: {e:#}; checking against a /24 instead", path.display());
            24
        }
    };
    let s = cfg.dhcp_settings(prefix)?;
    let addresses: u64 = s.subnets.iter().flat_map(|n| &n.pools).map(|p| p.len()).sum();
    let mode = match s.mode {
        Mode::Off => "off (hands out nothing)",
        Mode::Authoritative => "authoritative",
        Mode::Proxy => "proxy (boot information for PXE clients only)",
    };
    println!("{}: OK", path.display());
    println!("  interface {} address {}/{prefix}", cfg.server.interface, s.server_ip);
    println!("  dhcp {mode}: {addresses} addresses in {} subnet(s), {} reservation(s)", s.subnets.len(), s.reservations.len());
    let http: Vec<String> = cfg.http.listen_addrs(cfg.server.address.ip).iter().map(ToString::to_string).collect();
    println!("  http {}; state in {}", http.join(" and "), cfg.server.state_dir.display());
    let w = &cfg.swarm;
    println!(
        "  swarm: tracker {}; seed {}",
        if w.tracker { format!("at {}", swarmboot_urls::Urls::new(&format!("http://{}:{}", s.server_ip, cfg.http.port())).announce()) } else { "off".into() },
        if w.seed { format!("on {} (bound to {}), {} upload slots", w.listen, cfg.server.interface, w.upload_slots) } else { "off".into() }
    );
    Ok(())
}
