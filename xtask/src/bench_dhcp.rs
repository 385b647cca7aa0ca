//! DHCP benchmark: perfdhcp (acting as a relay, unicast) drives each server in turn over the
//! same rate ladder, in a lab LAN; a server's score is the best rate of granted leases per
//! second at which both exchanges (DISCOVER-OFFER, REQUEST-ACK) lose at most 1 %. All servers
//! persist leases: swarmboot (SQLite WAL), dnsmasq (lease file), Kea (memfile, persist=true).
//! dnsmasq runs with `--no-ping`: its default ICMP check before each offer waits seconds per
//! new address, and neither Kea nor swarmboot probes; the comparison is of DHCP handling.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use swarmboot_lab::{wait_for_line, Lan, Netns, Proc, ScratchDir, Server};

use crate::host::{self, Running};

const POOL_FIRST: &str = "10.77.1.0";
const POOL_LAST: &str = "10.77.255.254";
/// Distinct clients perfdhcp simulates (fewer than the pool holds).
const CLIENTS: u32 = 30_000;

#[derive(Debug, Clone, Copy)]
struct Rung {
    rate: u32,
    leases_per_sec: f64,
    do_drops: f64,
    ra_drops: f64,
}

impl Rung {
    fn ok(&self) -> bool {
        self.do_drops <= 1.0 && self.ra_drops <= 1.0
    }
}

pub fn run(rates: &[u32], period: u32) -> anyhow::Result<()> {
    // Startup lines only: per-lease logging is not what is measured.
    if !host::prepare_bench("bench-dhcp", "warn,swarmboot_server=info,swarmboot_server::dhcp_service=warn")? {
        return Ok(());
    }
    let mut results: Vec<(&str, Vec<Rung>)> = Vec::new();
    for server in ["swarmboot", "dnsmasq", "kea"] {
        let dir = ScratchDir::new(&format!("bench-{server}"))?;
        let mut lan = Lan::new("10.77.0.1/16")?;
        let h = lan.add_host(None)?;
        lan.host(h).ip(&["addr", "add", "10.77.0.3/16", "dev", "eth0"])?;
        let _guard = start(server, &lan.server, dir.path())?;
        let mut rungs = Vec::new();
        for &rate in rates {
            let r = perfdhcp(lan.host(h), rate, period)?;
            println!(
                "{server:>9} offered {rate:>6}/s: {:>8.1} leases/s, drops DO {:>5.2} % RA {:>5.2} %{}",
                r.leases_per_sec,
                r.do_drops,
                r.ra_drops,
                if r.ok() { "" } else { "  (over 1 %)" }
            );
            let ok = r.ok();
            rungs.push(r);
            if !ok && rungs.iter().filter(|r| !r.ok()).count() >= 2 {
                break; // two rungs over the limit: higher rates will not do better
            }
        }
        results.push((server, rungs));
    }
    let best = |rungs: &[Rung]| -> (f64, u32) { rungs.iter().filter(|r| r.ok()).map(|r| (r.leases_per_sec, r.rate)).fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a }) };
    let ours = best(&results[0].1).0;
    println!("\nbest leases/s at <= 1 % drops ({period} s per rate, {CLIENTS} clients, leases persisted):");
    println!("| server | best leases/s | at offered rate | swarmboot ÷ server |");
    println!("|---|---|---|---|");
    for (name, rungs) in &results {
        let (b, at) = best(rungs);
        let ratio = if b > 0.0 { format!("{:.2}", ours / b) } else { "n/a".into() };
        println!("| {name} | {b:.0} | {at}/s | {ratio} |");
    }
    Ok(())
}

fn start(server: &str, ns: &Netns, dir: &Path) -> anyhow::Result<Running> {
    match server {
        "swarmboot" => {
            let cfg = format!(
                "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
                 [dhcp]\nmode = \"authoritative\"\npool = [\"{POOL_FIRST}-{POOL_LAST}\"]\nlease_time = \"1h\"\n\
                 router = \"10.77.0.1\"\n[http]\nlisten = \"127.0.0.1:8080\"\n",
                dir.join("state").display()
            );
            Ok(Running::Swarmboot(Server::start(ns, dir, &cfg, 8080)?))
        }
        "dnsmasq" => {
            let mut c = ns.command("dnsmasq");
            c.args(["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces", "--dhcp-authoritative", "--quiet-dhcp", "--no-ping"])
                .arg(format!("--dhcp-range={POOL_FIRST},{POOL_LAST},255.255.0.0,1h"))
                .arg(format!("--dhcp-lease-max={}", 70_000))
                .arg(format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()))
                .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
            let p = Proc::spawn("dnsmasq", &mut c, &dir.join("dnsmasq.log"))?;
            wait_for_line(&p.log, "DHCP, IP range", Duration::from_secs(10))?;
            Ok(Running::Other(p))
        }
        "kea" => {
            let conf = dir.join("kea-dhcp4.json");
            std::fs::write(
                &conf,
                format!(
                    r#"{{"Dhcp4": {{
  "interfaces-config": {{"interfaces": ["br0"], "dhcp-socket-type": "udp"}},
  "lease-database": {{"type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0}},
  "valid-lifetime": 3600,
  "subnet4": [{{"id": 1, "subnet": "10.77.0.0/16", "pools": [{{"pool": "{POOL_FIRST} - {POOL_LAST}"}}],
                "option-data": [{{"name": "routers", "data": "10.77.0.1"}}]}}],
  "loggers": [{{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{{"output": "stderr"}}]}}]
}}}}"#,
                    leases = dir.join("kea-leases4.csv").display()
                ),
            )?;
            let mut c = ns.command("kea-dhcp4");
            c.arg("-c").arg(&conf).env("KEA_PIDFILE_DIR", dir).env("KEA_LOCKFILE_DIR", "none");
            let mut p = Proc::spawn("kea-dhcp4", &mut c, &dir.join("kea.log"))?;
            // Kea logs nothing at WARN when it starts well: give it a moment, then check it is up.
            std::thread::sleep(Duration::from_secs(2));
            if p.exited() {
                bail!("kea-dhcp4 exited:\n{}", p.output());
            }
            Ok(Running::Other(p))
        }
        other => bail!("unknown server {other}"),
    }
}

fn perfdhcp(ns: &Netns, rate: u32, period: u32) -> anyhow::Result<Rung> {
    let out = ns
        .command("perfdhcp")
        .args(["-4", "-r", &rate.to_string(), "-p", &period.to_string(), "-R", &CLIENTS.to_string(), "-W", "1000000", "-l", "10.77.0.3", "10.77.0.1"])
        .output()
        .context("perfdhcp")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_perfdhcp(&text, period)
        .with_context(|| format!("cannot read perfdhcp output:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)))
        .map(|(leases_per_sec, do_drops, ra_drops)| Rung { rate, leases_per_sec, do_drops, ra_drops })
}

/// (ACKs per second, DISCOVER-OFFER drop %, REQUEST-ACK drop %) from perfdhcp's report.
fn parse_perfdhcp(text: &str, period: u32) -> Option<(f64, f64, f64)> {
    let section = |name: &str| -> Option<&str> {
        let start = text.find(&format!("***Statistics for: {name}***"))?;
        let rest = &text[start + 3..];
        Some(&rest[..rest.find("***Statistics for:").unwrap_or(rest.len())])
    };
    let field = |sec: &str, key: &str| -> Option<f64> {
        let line = sec.lines().find(|l| l.trim_start().starts_with(key))?;
        line.split(':').nth(1)?.trim().trim_end_matches('%').trim().parse().ok()
    };
    let d = section("DISCOVER-OFFER")?;
    let r = section("REQUEST-ACK")?;
    let sent_d = field(d, "sent packets")?;
    let recv_d = field(d, "received packets")?;
    let sent_r = field(r, "sent packets")?;
    let recv_r = field(r, "received packets")?;
    let pct = |sent: f64, recv: f64| {
        if sent > 0.0 {
            100.0 * (sent - recv).max(0.0) / sent
        } else {
            100.0
        }
    };
    Some((recv_r / f64::from(period), pct(sent_d, recv_d), pct(sent_r, recv_r)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_perfdhcp_report() {
        let t = "***Rate statistics***\nRate: 990 4-way exchanges/second, expected rate: 1000\n\n\
                 ***Statistics for: DISCOVER-OFFER***\nsent packets: 5000\nreceived packets: 4990\ndrops: 10\ndrops ratio: 0.2 %\n\n\
                 ***Statistics for: REQUEST-ACK***\nsent packets: 4990\nreceived packets: 4940\ndrops: 50\ndrops ratio: 1.0 %\n";
        let (lps, d, r) = super::parse_perfdhcp(t, 5).unwrap();
        assert_eq!(lps, 988.0);
        assert!((d - 0.2).abs() < 1e-9 && (r - 100.0 * 50.0 / 4990.0).abs() < 1e-9);
    }
}
