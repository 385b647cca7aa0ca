//! `swarmboot status`: the fleet table in a terminal, read from the running server's
//! `/api/v1/fleet` (the dashboard's data): where each machine's boot is, for how long, what
//! it runs, where its bytes came from. `--json` prints the API's answer as it is.

use std::path::Path;

use clap::Args;
use swarmboot_config::Config;
use swarmboot_fleet::FleetView;

use crate::terminal_text::printable;

#[derive(Args)]
pub struct StatusArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Only machines in this stage (dhcp, ipxe, stub, fetching, handover, running, lost).
    #[arg(long)]
    stage: Option<String>,
    /// Only machines booting or running this image.
    #[arg(long)]
    image: Option<String>,
    /// Only machines whose MAC, name, address or image contain all these words.
    #[arg(long)]
    find: Option<String>,
    /// Only machines stuck in a stage.
    #[arg(long)]
    stuck: bool,
    /// Sort by mac, hostname, ip, image, stage, since, last_seen or uploaded.
    #[arg(long, default_value = "mac")]
    sort: String,
    /// Largest first.
    #[arg(long)]
    desc: bool,
    /// At most this many machines.
    #[arg(long)]
    limit: Option<usize>,
}

/// The query string for `args` (values escaped).
fn query(a: &StatusArgs) -> String {
    let esc = |v: &str| swarmboot_urls::escape(v.as_bytes());
    let mut q = vec![format!("sort={}", esc(&a.sort))];
    for (k, v) in [("stage", &a.stage), ("image", &a.image), ("q", &a.find)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", esc(v)));
        }
    }
    if a.stuck {
        q.push("stuck=1".into());
    }
    if a.desc {
        q.push("desc=1".into());
    }
    if let Some(l) = a.limit {
        q.push(format!("limit={l}"));
    }
    q.join("&")
}

pub fn run(path: &Path, args: StatusArgs) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let url = swarmboot_urls::Urls::new(&crate::local_server::url(&cfg)).fleet(&query(&args));
    if args.json {
        let v: serde_json::Value = crate::local_server::get_json(&url)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let v: FleetView = crate::local_server::get_json(&url)?;
    print!("{}", table(&v));
    Ok(())
}

/// The table `status` prints.
pub fn table(v: &FleetView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let counts: Vec<String> = v.by_stage.iter().filter(|c| c.machines > 0).map(|c| format!("{} {}", c.machines, c.stage)).collect();
    let stuck = if v.stuck > 0 { format!(", {} stuck", v.stuck) } else { String::new() };
    let _ = writeln!(out, "{} machine(s): {}{stuck}", v.by_stage.iter().map(|c| c.machines).sum::<usize>(), if counts.is_empty() { "none yet".into() } else { counts.join(", ") });
    let _ =
        writeln!(out, "{:<17}  {:<15}  {:<15}  {:<14}  {:<14}  {:>10}  {:>8}  {:>19}  NAME", "MAC", "ADDRESS", "IMAGE", "STAGE", "FOR", "SEEN", "UPLOADED", "FROM PEERS/SERVER");
    for r in &v.machines {
        let stage = match r.stage.as_str() {
            "fetching" => format!("fetching {}%", r.percent),
            s => s.to_string(),
        };
        let stage = if r.stuck { format!("{stage}!") } else { stage };
        let seen = if r.last_seen_ms == 0 { "-".into() } else { format!("{} ago", short(v.now_ms.saturating_sub(r.last_seen_ms))) };
        let _ = writeln!(
            out,
            "{:<17}  {:<15}  {:<15}  {:<14}  {:<14}  {:>10}  {:>8}  {:>19}  {}",
            r.mac,
            r.ip.as_deref().unwrap_or("-"),
            r.image.as_deref().map(printable).unwrap_or_else(|| "-".into()),
            stage,
            short(v.now_ms.saturating_sub(r.since_ms)),
            seen,
            mib(r.uploaded),
            format!("{}/{}", mib(r.from_peers), mib(r.from_server)),
            r.hostname.as_deref().map(printable).unwrap_or_else(|| "-".into()),
        );
    }
    if v.matched > v.machines.len() {
        let _ = writeln!(out, "({} more: --limit)", v.matched - v.machines.len());
    }
    if v.stuck > 0 {
        let _ = writeln!(out, "! stuck: longer in that stage than a boot should take");
    }
    out
}

fn short(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn mib(b: u64) -> String {
    format!("{}M", (b + (1 << 19)) >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_fleet::{DhcpClient, Fleet, FleetConfig, Mac, Seen, Selection};

    #[test]
    fn the_table_shows_each_machine_and_escapes_what_machines_sent() {
        let mut f = Fleet::new(FleetConfig::default());
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        f.observe(1_000, Seen::Dhcp { mac, client: DhcpClient::Ipxe, leased: Some(("10.0.0.5".parse().unwrap(), 10_000_000)), hostname: Some("pc\u{1b}[2J") });
        let v = FleetView::of(&f, 400_000, &Selection::default());
        let t = table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "1 machine(s): 1 ipxe, 1 stuck");
        assert!(lines[2].starts_with("52:54:00:00:00:01  10.0.0.5         -                ipxe!           6m"), "{t}");
        assert!(lines[2].ends_with(" pc[2J"), "the escape character never reaches the terminal: {t}");
        let args =
            StatusArgs { json: false, stage: Some("fetching".into()), image: None, find: Some("lab pc".into()), stuck: true, sort: "since".into(), desc: true, limit: Some(5) };
        assert_eq!(query(&args), "sort=since&stage=fetching&q=lab%20pc&stuck=1&desc=1&limit=5");
    }
}
