//! The `swarmboot` command. `main` only parses arguments and dispatches; each subcommand is a
//! short function over the library crates. Errors are reported here, with their context chain.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use swarmboot_config::{Config, DEFAULT_PATH};
use swarmboot_dhcp::{Lease, Mode};
use swarmboot_server::lease_store::LeaseStore;

#[derive(Parser)]
#[command(name = "swarmboot", version, about = "Netboot a fleet from one server: DHCP, TFTP, HTTP and a BitTorrent swarm")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the boot server (DHCP, HTTP) until SIGTERM.
    Serve {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Check a config file and say what it would do; exit 1 with every problem found if it is bad.
    CheckConfig {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// List DHCP leases from the lease database.
    Leases {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWARMBOOT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => check_config(config),
        Command::Leases { config, json } => leases(config, json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmboot: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(swarmboot_server::run(cfg))
}

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
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
    println!("  http {}; state in {}", cfg.http.listen, cfg.server.state_dir.display());
    Ok(())
}

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

fn leases(path: PathBuf, json: bool) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
    let store = LeaseStore::open_read_only(&cfg.server.state_dir)
        .context("no lease database yet: has `swarmboot serve` run with [dhcp] mode on?")?;
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
        println!("{:<16} {:<18} {:<9} {:>10}  {}", r.ip, r.mac, r.state, when, r.hostname.as_deref().unwrap_or("-"));
    }
    println!("{} lease record(s)", rows.len());
    Ok(())
}
