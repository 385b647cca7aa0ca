//! `swarmboot setup`: pick the boot network's interface, send one DHCPDISCOVER on it to see
//! whether a DHCP server already answers there, and write the config: proxy mode beside an
//! existing DHCP server, authoritative with a proposed pool when there is none.
//!
//! The decisions ([`propose`], [`edit_config`]) are plain functions over what the shell found;
//! the shell lists interfaces, probes, asks and writes.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_config::Config;
use swarmboot_dhcp::client::{ClientConfig, ClientIgnored, DhcpClient};

#[derive(clap::Args)]
pub struct SetupArgs {
    /// The interface facing the machines that boot (default: ask; with --yes, the only one
    /// with an IPv4 address).
    #[arg(long)]
    interface: Option<String>,
    /// Do not ask: take the proposal and write it (for scripts).
    #[arg(long)]
    yes: bool,
    /// Seconds to wait for an answer to the DHCPDISCOVER.
    #[arg(long, default_value_t = 3)]
    probe_secs: u64,
    /// Skip the probe and use this mode: "authoritative" or "proxy".
    #[arg(long)]
    mode: Option<String>,
    /// Print the config that would be written instead of writing it.
    #[arg(long)]
    dry_run: bool,
}

/// A network interface as setup shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Option<(Ipv4Addr, u8)>,
    pub up: bool,
}

/// What answered the DHCPDISCOVER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResult {
    /// DHCP servers that offered an address: (server, offered address).
    pub offers: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// proxyDHCP servers (PXE answers without an address): another boot server.
    pub proxies: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Another DHCP server hands out addresses: answer PXE only.
    Proxy,
    /// Nobody does: hand out this pool (and this router, if the interface has a gateway).
    Authoritative { pool: (Ipv4Addr, Ipv4Addr), router: Option<Ipv4Addr> },
}

/// The proposal for a server at `addr/prefix` given what the probe saw.
pub fn propose(addr: Ipv4Addr, prefix: u8, probe: &ProbeResult, gateway: Option<Ipv4Addr>) -> anyhow::Result<Proposal> {
    if !probe.offers.is_empty() {
        return Ok(Proposal::Proxy);
    }
    let pool = propose_pool(addr, prefix).with_context(|| format!("{addr}/{prefix} is too small a network to hand out addresses in (/29 or larger needed)"))?;
    Ok(Proposal::Authoritative { pool, router: gateway })
}

/// The upper half of the subnet (without its broadcast address), or the lower half (without
/// the network address) when the server's own address is in the upper one.
pub fn propose_pool(addr: Ipv4Addr, prefix: u8) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if !(8..=29).contains(&prefix) {
        return None;
    }
    let size = 1u32 << (32 - prefix);
    let net = u32::from(addr) & !(size - 1);
    let a = u32::from(addr);
    let (start, end) = if a >= net + size / 2 { (net + 1, net + size / 2 - 1) } else { (net + size / 2, net + size - 2) };
    Some((Ipv4Addr::from(start), Ipv4Addr::from(end)))
}

/// `text` (the config file, comments kept) with the interface, address and DHCP mode set.
pub fn edit_config(text: &str, iface: &str, addr: Ipv4Addr, prefix: u8, proposal: &Proposal) -> anyhow::Result<String> {
    use toml_edit::{value, Array, DocumentMut, Item, Table};
    let mut doc: DocumentMut = text.parse().context("the config is not valid TOML")?;
    let table = |doc: &mut DocumentMut, name: &str| -> anyhow::Result<()> {
        if !doc.contains_key(name) {
            doc.insert(name, Item::Table(Table::new()));
        }
        anyhow::ensure!(doc[name].is_table(), "[{name}] is not a table");
        Ok(())
    };
    table(&mut doc, "server")?;
    table(&mut doc, "dhcp")?;
    doc["server"]["interface"] = value(iface);
    doc["server"]["address"] = value(format!("{addr}/{prefix}"));
    let dhcp = doc["dhcp"].as_table_mut().expect("checked");
    match proposal {
        Proposal::Proxy => {
            dhcp["mode"] = value("proxy");
            dhcp.remove("pool");
            dhcp.remove("router");
        }
        Proposal::Authoritative { pool, router } => {
            dhcp["mode"] = value("authoritative");
            let mut a = Array::new();
            a.push(format!("{}-{}", pool.0, pool.1));
            dhcp["pool"] = value(a);
            match router {
                Some(r) => dhcp["router"] = value(r.to_string()),
                None => {
                    dhcp.remove("router");
                }
            }
        }
    }
    Ok(doc.to_string())
}

/// Every interface but loopback, sorted by name.
fn interfaces() -> anyhow::Result<Vec<Interface>> {
    use nix::net::if_::InterfaceFlags;
    let mut by_name: std::collections::BTreeMap<String, Interface> = Default::default();
    for ifa in nix::ifaddrs::getifaddrs().context("listing network interfaces")? {
        if ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK) {
            continue;
        }
        let e = by_name.entry(ifa.interface_name.clone()).or_insert_with(|| Interface { name: ifa.interface_name.clone(), mac: None, ipv4: None, up: false });
        e.up |= ifa.flags.contains(InterfaceFlags::IFF_UP);
        if let Some(a) = &ifa.address {
            if let Some(l) = a.as_link_addr() {
                e.mac = l.addr().or(e.mac);
            }
            if let Some(sin) = a.as_sockaddr_in() {
                if e.ipv4.is_none() {
                    let prefix = ifa.netmask.as_ref().and_then(|m| m.as_sockaddr_in()).map_or(32, |m| u32::from(m.ip()).count_ones() as u8);
                    e.ipv4 = Some((sin.ip(), prefix));
                }
            }
        }
    }
    Ok(by_name.into_values().collect())
}

/// The default gateway reached through `iface` (from /proc/net/route), if any.
fn gateway_of(iface: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[0] == iface && f[1] == "00000000").then(|| u32::from_str_radix(f[2], 16).ok()).flatten().map(|g| Ipv4Addr::from(u32::from_be(g)))
    })
}

/// Sends one DHCPDISCOVER on `iface` (from port 68, broadcast) and collects answers for
/// `wait`. Answers from this machine's own address (a swarmboot already serving there) are
/// left out.
fn probe(iface: &Interface, wait: Duration) -> anyhow::Result<ProbeResult> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mac = iface.mac.with_context(|| format!("{} has no hardware address to ask DHCP with", iface.name))?;
    let own = iface.ipv4.map(|(a, _)| a);
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.name.as_bytes())).with_context(|| format!("binding to {}", iface.name))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, swarmboot_dhcp::CLIENT_PORT)).into())
        .with_context(|| format!("binding UDP port {} (is a DHCP client running on {}?)", swarmboot_dhcp::CLIENT_PORT, iface.name))?;
    let sock: std::net::UdpSocket = s.into();
    let xid = u32::from_le_bytes([mac[2], mac[3], mac[4], mac[5]])
        ^ std::process::id()
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let start = Instant::now();
    let mut client = DhcpClient::new(ClientConfig { mac, xid, vendor_class: b"swarmboot-setup".to_vec() }, start);
    let discover = client.poll_transmit(start).expect("a DISCOVER at once");
    sock.send_to(&discover, SocketAddrV4::new(Ipv4Addr::BROADCAST, swarmboot_dhcp::SERVER_PORT))?;
    let mut result = ProbeResult::default();
    let mut buf = vec![0u8; 1500];
    while let Some(left) = wait.checked_sub(start.elapsed()).filter(|d| !d.is_zero()) {
        sock.set_read_timeout(Some(left))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => return Err(e.into()),
        };
        let from = match from {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => continue,
        };
        match client.on_datagram(Instant::now(), &buf[..n]) {
            Ok(()) => {
                if let Some(o) = client.offer() {
                    if Some(o.server) != own && !result.offers.iter().any(|(s, _)| *s == o.server) {
                        result.offers.push((o.server, o.address));
                    }
                }
                // Hear the other servers too.
                client = DhcpClient::new(ClientConfig { mac, xid, vendor_class: b"swarmboot-setup".to_vec() }, start);
                let _ = client.poll_transmit(start);
            }
            Err(ClientIgnored::NoAddress) if Some(from) != own && !result.proxies.contains(&from) => result.proxies.push(from),
            Err(_) => {}
        }
    }
    Ok(result)
}

fn ask(question: &str) -> anyhow::Result<String> {
    print!("{question} ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        bail!("no answer (end of input)");
    }
    Ok(line.trim().to_string())
}

fn fmt_mac(m: Option<[u8; 6]>) -> String {
    m.map_or("-".into(), |m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

pub fn run(config: &Path, a: SetupArgs) -> anyhow::Result<()> {
    let interactive = !a.yes;
    if interactive && !std::io::stdin().is_terminal() {
        bail!("no terminal to ask on: run `swarmboot setup --yes [--interface IF]` to take the proposal without questions");
    }
    let all = interfaces()?;
    println!("Network interfaces:");
    for (i, f) in all.iter().enumerate() {
        let addr = f.ipv4.map_or("no IPv4 address".into(), |(a, p)| format!("{a}/{p}"));
        println!("  {}) {:<12} {:<20} {}  {}", i + 1, f.name, addr, fmt_mac(f.mac), if f.up { "up" } else { "down" });
    }
    let with_v4: Vec<&Interface> = all.iter().filter(|f| f.ipv4.is_some()).collect();
    let iface = match &a.interface {
        Some(name) => all.iter().find(|f| &f.name == name).with_context(|| format!("there is no interface {name}"))?,
        None if !interactive => match with_v4.as_slice() {
            [one] => one,
            [] => bail!("no interface has an IPv4 address: give the boot network's interface a fixed address first"),
            _ => bail!("several interfaces have an IPv4 address: say which one faces the machines that boot with --interface"),
        },
        None => {
            let default = with_v4.first().map(|f| f.name.clone()).unwrap_or_default();
            let answer = ask(&format!("Which interface faces the machines that should boot? [{default}]"))?;
            let pick = if answer.is_empty() { default } else { answer };
            let by_number = pick.parse::<usize>().ok().and_then(|n| all.get(n.wrapping_sub(1)));
            by_number.or_else(|| all.iter().find(|f| f.name == pick)).with_context(|| format!("there is no interface {pick}"))?
        }
    };
    let (addr, prefix) =
        iface.ipv4.with_context(|| format!("{} has no IPv4 address: a boot server needs a fixed one on the boot network; configure it, then run setup again", iface.name))?;
    println!("Boot network: {} ({addr}/{prefix})", iface.name);

    let probe_result = match a.mode.as_deref() {
        None => {
            print!("Asking for a DHCP server on {} (one DHCPDISCOVER, {} s)... ", iface.name, a.probe_secs);
            std::io::stdout().flush()?;
            let r = probe(iface, Duration::from_secs(a.probe_secs))?;
            if r.offers.is_empty() {
                println!("none answered.");
            } else {
                let who: Vec<String> = r.offers.iter().map(|(s, o)| format!("{s} (offered {o})")).collect();
                println!("answered by {}.", who.join(", "));
            }
            if !r.proxies.is_empty() {
                println!("Note: a proxyDHCP (PXE) server already answers at {:?}: two boot servers on one network confuse PXE firmware.", r.proxies);
            }
            r
        }
        Some("proxy") => ProbeResult { offers: vec![(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)], proxies: vec![] },
        Some("authoritative") => ProbeResult::default(),
        Some(other) => bail!("--mode {other:?}: use \"authoritative\" or \"proxy\""),
    };
    let proposal = propose(addr, prefix, &probe_result, gateway_of(&iface.name))?;
    match &proposal {
        Proposal::Proxy => println!("Proposal: [dhcp] mode = \"proxy\": the existing DHCP server keeps handing out addresses; swarmboot answers PXE only."),
        Proposal::Authoritative { pool, router } => println!(
            "Proposal: [dhcp] mode = \"authoritative\", pool {}-{} ({} addresses){}.",
            pool.0,
            pool.1,
            u32::from(pool.1) - u32::from(pool.0) + 1,
            router.map_or(", no router (none on this interface)".into(), |r| format!(", router {r}"))
        ),
    }

    let current = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    let text = edit_config(&current, &iface.name, addr, prefix, &proposal)?;
    // What is written must load.
    Config::parse(&text, config).context("the edited config does not validate (nothing written)")?;
    if a.dry_run {
        print!("{text}");
        return Ok(());
    }
    if interactive {
        let configured = Config::parse(&current, config).map(|c| c.is_configured()).unwrap_or(false);
        let q = if configured { format!("{} already names an interface; overwrite those settings? [y/N]", config.display()) } else { format!("Write {}? [y/N]", config.display()) };
        if !matches!(ask(&q)?.to_ascii_lowercase().as_str(), "y" | "yes") {
            println!("Nothing written.");
            return Ok(());
        }
    }
    crate::config_file::write_atomically(config, &text)?;
    println!("Wrote {}. Start serving with: systemctl restart swarmboot", config.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_pool_is_the_half_of_the_subnet_without_the_server() {
        assert_eq!(propose_pool(ip("10.77.0.1"), 24), Some((ip("10.77.0.128"), ip("10.77.0.254"))));
        assert_eq!(propose_pool(ip("10.77.0.200"), 24), Some((ip("10.77.0.1"), ip("10.77.0.127"))));
        assert_eq!(propose_pool(ip("172.16.5.9"), 16), Some((ip("172.16.128.0"), ip("172.16.255.254"))));
        assert_eq!(propose_pool(ip("192.168.1.1"), 29), Some((ip("192.168.1.4"), ip("192.168.1.6"))));
        assert_eq!(propose_pool(ip("192.168.1.1"), 30), None, "too small");
    }

    #[test]
    fn an_answering_dhcp_server_means_proxy_mode() {
        let seen = ProbeResult { offers: vec![(ip("10.77.0.254"), ip("10.77.0.50"))], proxies: vec![] };
        assert_eq!(propose(ip("10.77.0.1"), 24, &seen, None).unwrap(), Proposal::Proxy);
        let none = ProbeResult::default();
        assert_eq!(
            propose(ip("10.77.0.1"), 24, &none, Some(ip("10.77.0.254"))).unwrap(),
            Proposal::Authoritative { pool: (ip("10.77.0.128"), ip("10.77.0.254")), router: Some(ip("10.77.0.254")) }
        );
        assert!(propose(ip("10.77.0.1"), 31, &none, None).is_err());
    }

    /// The installed config, edited, keeps its comments and loads as the proposal says.
    #[test]
    fn the_installed_config_is_edited_in_place() {
        let installed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/swarmboot.toml")).unwrap();
        let auth = Proposal::Authoritative { pool: (ip("10.77.0.128"), ip("10.77.0.254")), router: None };
        let text = edit_config(&installed, "br0", ip("10.77.0.1"), 24, &auth).unwrap();
        assert!(text.contains("# swarmboot configuration") && text.contains("#[[dhcp.reservation]]"), "comments kept:\n{text}");
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert!(cfg.is_configured());
        assert_eq!(cfg.dhcp.mode, swarmboot_config::DhcpMode::Authoritative);
        let s = cfg.dhcp_settings(24).unwrap();
        assert_eq!(s.subnets[0].pools.iter().map(|p| p.len()).sum::<u64>(), 127);

        let text = edit_config(&text, "br0", ip("10.77.0.1"), 24, &Proposal::Proxy).unwrap();
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.dhcp.mode, swarmboot_config::DhcpMode::Proxy);
        assert!(cfg.dhcp.pool.is_empty(), "proxy mode hands out nothing: {text}");

        let auth7 = Proposal::Authoritative { pool: (ip("192.168.7.128"), ip("192.168.7.254")), router: Some(ip("192.168.7.1")) };
        let from_nothing = edit_config("", "eth1", ip("192.168.7.2"), 24, &auth7).unwrap();
        assert!(Config::parse(&from_nothing, Path::new("t.toml")).unwrap().is_configured(), "{from_nothing}");
        let wrong = edit_config("", "eth1", ip("192.168.7.2"), 24, &auth).unwrap();
        let e = Config::parse(&wrong, Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains("outside the interface's subnet 192.168.7.0/24"), "what setup writes is validated: {e}");
    }
}
