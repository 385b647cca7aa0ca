//! DHCP with real clients: busybox udhcpc, ISC dhclient, dnsmasq beside us, perfdhcp as relay.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use swarmboot_lab::clients::{Dhclient, Udhcpc};
use swarmboot_lab::{probe, require_root, Lan, Proc, ScratchDir, Server};

const T: Duration = Duration::from_secs(20);

fn config(dir: &ScratchDir, dhcp: &str) -> String {
    format!(
        r#"[server]
interface = "br0"
address = "10.77.0.1"
state_dir = "{state}"
[dhcp]
{dhcp}
[http]
listen = "127.0.0.1:8080"
"#,
        state = dir.path().join("state").display()
    )
}

const AUTHORITATIVE: &str = r#"mode = "authoritative"
pool = ["10.77.0.100-10.77.0.199"]
lease_time = "1h"
router = "10.77.0.1"
dns = ["10.77.0.1"]
"#;

/// A LAN with `swarmboot serve` on it. Bind its fields in declaration order (`Lab { dir, lan,
/// server }`) so that they drop server first, then the namespaces, then the files.
struct Lab {
    dir: ScratchDir,
    lan: Lan,
    server: Server,
}

fn lab(tag: &str, dhcp: &str) -> Lab {
    let dir = ScratchDir::new(tag).unwrap();
    let lan = Lan::new("10.77.0.1/24").unwrap();
    let server = Server::start(&lan.server, dir.path(), &config(&dir, dhcp), 8080).unwrap();
    Lab { server, lan, dir }
}

fn in_pool(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap();
    (Ipv4Addr::new(10, 77, 0, 100)..=Ipv4Addr::new(10, 77, 0, 199)).contains(&ip)
}

#[test]
fn udhcpc_gets_renews_and_releases_a_lease() {
    if !require_root("udhcpc_gets_renews_and_releases_a_lease") {
        return;
    }
    let Lab { dir, mut lan, server } = lab("udhcpc", AUTHORITATIVE);
    let h = lan.add_host(None).unwrap();
    let client = Udhcpc::start(lan.host(h), dir.path(), "a", &[]).unwrap();

    let bound = client.wait("bound", 0, T).unwrap();
    assert!(in_pool(bound.ip()), "{bound:?}");
    assert_eq!(bound.get("serverid"), Some("10.77.0.1"));
    assert_eq!(bound.get("lease"), Some("3600"));
    assert_eq!(bound.get("router"), Some("10.77.0.1"));
    assert_eq!(server.lease(bound.ip()).unwrap().unwrap()["state"], "bound");

    client.renew().unwrap();
    let renewed = client.wait("renew", 0, T).unwrap();
    assert_eq!(renewed.ip(), bound.ip(), "renewal keeps the address");

    client.release().unwrap();
    client.wait("deconfig", 1, T).unwrap();
    wait_until(|| server.lease(bound.ip()).unwrap().unwrap()["state"] == "released", "lease released").unwrap();
    assert!(server.metric("swarmboot_dhcp_acks_total").unwrap() >= 2);
}

#[test]
fn dhclient_gets_renews_and_releases_a_lease() {
    if !require_root("dhclient_gets_renews_and_releases_a_lease") {
        return;
    }
    // A 12 s lease: dhclient renews on its own at T1 = 6 s.
    let Lab { dir, mut lan, server } = lab("dhclient", &AUTHORITATIVE.replace("\"1h\"", "\"12s\""));
    let h = lan.add_host(None).unwrap();
    let mut client = Dhclient::start(lan.host(h), dir.path(), "a").unwrap();

    let bound = client.wait("BOUND", 0, T).unwrap();
    assert!(in_pool(bound.ip()), "{bound:?}");
    assert_eq!(bound.get("lease"), Some("12"));
    let renewed = client.wait("RENEW", 0, T).unwrap();
    assert_eq!(renewed.ip(), bound.ip(), "the RENEWING exchange keeps the address");
    let rec = server.lease(bound.ip()).unwrap().unwrap();
    assert_eq!(rec["state"], "bound");

    client.release().unwrap();
    wait_until(|| server.lease(bound.ip()).unwrap().unwrap()["state"] == "released", "lease released").unwrap();
}

#[test]
fn clients_never_share_an_address_and_reservations_are_honoured() {
    if !require_root("clients_never_share_an_address_and_reservations_are_honoured") {
        return;
    }
    let dhcp = format!("{AUTHORITATIVE}[[dhcp.reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.77.0.10\"\nhostname = \"lab-01\"\n");
    let Lab { dir, mut lan, server: _server } = lab("many", &dhcp);
    let reserved = lan.add_host(Some("52:54:00:00:00:01")).unwrap();
    let others: Vec<usize> = (0..4).map(|_| lan.add_host(None).unwrap()).collect();

    let r = Udhcpc::start(lan.host(reserved), dir.path(), "reserved", &[]).unwrap();
    let clients: Vec<Udhcpc> = others.iter().enumerate().map(|(i, h)| Udhcpc::start(lan.host(*h), dir.path(), &format!("c{i}"), &[]).unwrap()).collect();

    let ev = r.wait("bound", 0, T).unwrap();
    assert_eq!(ev.ip(), "10.77.0.10");
    assert_eq!(ev.get("hostname"), Some("lab-01"));
    let mut ips: Vec<String> = clients.iter().map(|c| c.wait("bound", 0, T).unwrap().ip().to_string()).collect();
    assert!(ips.iter().all(|ip| in_pool(ip)), "{ips:?}");
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "four clients, four addresses: {ips:?}");
}

#[test]
fn after_kill_9_a_renewing_client_keeps_its_address_and_a_new_one_gets_another() {
    if !require_root("after_kill_9_a_renewing_client_keeps_its_address_and_a_new_one_gets_another") {
        return;
    }
    let Lab { dir, mut lan, mut server } = lab("kill9", AUTHORITATIVE);
    let a = lan.add_host(None).unwrap();
    let b = lan.add_host(None).unwrap();
    let ca = Udhcpc::start(lan.host(a), dir.path(), "a", &[]).unwrap();
    let ip_a = ca.wait("bound", 0, T).unwrap().ip().to_string();

    server.kill9();
    server.restart(&lan.server).unwrap();
    assert!(server.log().contains("leases=1"), "the restarted server loaded the lease:\n{}", server.log());

    ca.renew().unwrap();
    assert_eq!(ca.wait("renew", 0, T).unwrap().ip(), ip_a);
    let cb = Udhcpc::start(lan.host(b), dir.path(), "b", &[]).unwrap();
    let ip_b = cb.wait("bound", 0, T).unwrap().ip().to_string();
    assert_ne!(ip_a, ip_b);
}

#[test]
fn proxy_mode_beside_dnsmasq_gives_pxe_clients_one_address_and_one_boot_offer() {
    if !require_root("proxy_mode_beside_dnsmasq_gives_pxe_clients_one_address_and_one_boot_offer") {
        return;
    }
    let Lab { dir, mut lan, server } = lab("proxy", "mode = \"proxy\"\n");
    // The site's DHCP server: dnsmasq handing out addresses only, on another host.
    let d = lan.add_host(None).unwrap();
    lan.host(d).ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]).unwrap();
    let mut dnsmasq_cmd = lan.host(d).command("dnsmasq");
    dnsmasq_cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--interface=eth0",
        "--bind-interfaces",
        "--dhcp-range=10.77.0.50,10.77.0.60,1h",
        "--dhcp-authoritative",
        // dnsmasq pings an address before offering it and answers up to seconds later; the
        // test is about swarmboot, so it gets dnsmasq's answer at once.
        "--no-ping",
    ]);
    dnsmasq_cmd.arg(format!("--dhcp-leasefile={}", dir.path().join("dnsmasq.leases").display()));
    dnsmasq_cmd.arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()));
    let dnsmasq = Proc::spawn("dnsmasq", &mut dnsmasq_cmd, &dir.path().join("dnsmasq.log")).unwrap();
    swarmboot_lab::wait_for_line(&dnsmasq.log, "DHCP, IP range", T).unwrap();

    let c = lan.add_host(None).unwrap();
    let replies = probe::exchange(lan.host(c), "eth0", vec![probe::discover([0x52, 0x54, 0, 9, 9, 1], 0xabc1, probe::pxe_bios_options())], Duration::from_secs(3)).unwrap();
    let offers: Vec<_> = replies.iter().filter(|(_, m)| m.opts().msg_type() == Some(MessageType::Offer)).collect();
    let addresses: Vec<_> = offers.iter().filter(|(_, m)| !m.yiaddr().is_unspecified()).collect();
    let boots: Vec<_> = offers.iter().filter(|(_, m)| m.yiaddr().is_unspecified()).collect();
    assert_eq!(addresses.len(), 1, "one address offer, from dnsmasq: {replies:?}");
    assert_eq!(addresses[0].1.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 2))));
    assert_eq!(boots.len(), 1, "one boot offer, from swarmboot: {replies:?}");
    let boot = &boots[0].1;
    assert_eq!(boot.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 1))));
    assert_eq!(boot.fname().map(|f| f.split(|b| *b == 0).next().unwrap().to_vec()), Some(b"undionly.kpxe".to_vec()));
    assert_eq!(boot.opts().get(OptionCode::VendorExtensions), Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255])));

    // A plain client gets dnsmasq's offer only.
    let plain = probe::exchange(lan.host(c), "eth0", vec![probe::discover([0x52, 0x54, 0, 9, 9, 2], 0xabc2, vec![])], Duration::from_secs(3)).unwrap();
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0].1.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 2))));
    assert_eq!(server.metric("swarmboot_dhcp_dropped_total{reason=\"not_pxe_client\"}").unwrap(), 1);
    assert!(server.leases().unwrap().is_empty(), "proxy mode grants no leases");
}

#[test]
fn a_relayed_discover_gets_an_address_from_the_relays_subnet() {
    if !require_root("a_relayed_discover_gets_an_address_from_the_relays_subnet") {
        return;
    }
    let dhcp = format!("{AUTHORITATIVE}[[dhcp.subnet]]\nnetwork = \"10.78.0.0/24\"\npool = [\"10.78.0.100-10.78.0.199\"]\nrouter = \"10.78.0.1\"\n");
    let Lab { dir: _dir, mut lan, server } = lab("relay", &dhcp);
    // perfdhcp plays the relay agent for 10.78.0.0/24: giaddr = its address there.
    let r = lan.add_host(None).unwrap();
    lan.host(r).ip(&["addr", "add", "10.77.0.3/24", "dev", "eth0"]).unwrap();
    lan.host(r).ip(&["addr", "add", "10.78.0.1/24", "dev", "eth0"]).unwrap();
    lan.server.ip(&["route", "add", "10.78.0.0/24", "via", "10.77.0.3"]).unwrap();
    let out = lan.host(r).command("perfdhcp").args(["-4", "-n", "3", "-r", "1", "-R", "3", "-W", "500000", "-l", "10.78.0.1", "10.77.0.1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let leases = server.leases().unwrap();
    assert!(!leases.is_empty(), "perfdhcp got no lease:\n{text}\nserver:\n{}", server.log());
    for l in &leases {
        let ip: Ipv4Addr = l["ip"].as_str().unwrap().parse().unwrap();
        assert!((Ipv4Addr::new(10, 78, 0, 100)..=Ipv4Addr::new(10, 78, 0, 199)).contains(&ip), "{l}");
        assert_eq!(l["state"], "bound");
    }
    assert!(text.contains("received packets: 3"), "every DISCOVER and REQUEST answered:\n{text}");
}

#[test]
fn malformed_datagrams_are_counted_and_the_server_keeps_serving() {
    if !require_root("malformed_datagrams_are_counted_and_the_server_keeps_serving") {
        return;
    }
    let Lab { dir, mut lan, server } = lab("garbage", AUTHORITATIVE);
    let g = lan.add_host(None).unwrap();
    let valid = probe::discover([0x52, 0x54, 0, 7, 7, 7], 1, vec![]);
    let mut garbage: Vec<Vec<u8>> = vec![vec![], vec![0xff; 10], vec![1; 239], vec![0; 300]];
    let mut truncated_options = valid.clone();
    truncated_options.truncate(242); // inside option 53
    garbage.push(truncated_options);
    let mut huge_option = valid[..240].to_vec();
    huge_option.extend([53, 1, 1, 82, 200]);
    garbage.push(huge_option);
    let mut bad_82 = valid[..240].to_vec();
    bad_82.extend([53, 1, 1, 82, 4, 1, 9, 0xde, 0xad, 255]);
    garbage.push(bad_82);
    let mut reply_op = valid.clone();
    reply_op[0] = 2;
    garbage.push(reply_op);
    garbage.push(vec![0x41; 5000]);
    let n = garbage.len() as u64;
    let replies = probe::exchange(lan.host(g), "eth0", garbage, Duration::from_secs(1)).unwrap();
    assert!(replies.is_empty(), "garbage got answers: {replies:?}");
    wait_until(|| server.metric("swarmboot_dhcp_malformed_total").unwrap_or(0) >= n - 1, "counted").unwrap();
    // The 5000-byte datagram is counted too (as oversized), and a real client still gets served.
    assert_eq!(server.metric("swarmboot_dhcp_malformed_total").unwrap(), n, "{}", server.metrics().unwrap());
    let c = lan.add_host(None).unwrap();
    let client = Udhcpc::start(lan.host(c), dir.path(), "after", &[]).unwrap();
    assert!(in_pool(client.wait("bound", 0, T).unwrap().ip()));
}

fn wait_until(mut f: impl FnMut() -> bool, what: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("timed out waiting for: {what}")
}
