//! Real client datagrams from `testdata/`: what the core reads from each, and what it answers.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::MessageType;
use swarmboot_dhcp::*;

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{name}.bin", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// (file, message type, PXE, arch, hostname)
type Expected = (&'static str, MessageType, bool, Option<ClientArch>, Option<&'static str>);
const EXPECTED: &[Expected] = &[
    ("udhcpc-discover", MessageType::Discover, false, None, Some("capbox")),
    ("udhcpc-request-selecting", MessageType::Request, false, None, Some("capbox")),
    ("udhcpc-pxe-bios-discover", MessageType::Discover, true, Some(ClientArch::BiosX86), None),
    ("udhcpc-pxe-bios-request", MessageType::Request, true, Some(ClientArch::BiosX86), None),
    ("dhclient-discover", MessageType::Discover, false, None, None),
    ("dhclient-request-selecting", MessageType::Request, false, None, None),
];

#[test]
fn captures_decode_to_what_the_clients_sent() {
    for (name, kind, pxe, arch, hostname) in EXPECTED {
        let r = parse_request(&capture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(r.kind, *kind, "{name}");
        assert_eq!(r.machine.pxe, *pxe, "{name}");
        assert_eq!(r.machine.arch, *arch, "{name}");
        assert!(!r.machine.ipxe, "{name}");
        assert_eq!(r.machine.hwaddr.as_bytes().len(), 6, "{name}");
        if hostname.is_some() {
            assert_eq!(r.hostname.as_deref(), *hostname, "{name}");
        }
    }
    let pxe = parse_request(&capture("udhcpc-pxe-bios-discover")).unwrap();
    assert_eq!(pxe.machine.guid.as_ref().map(|g| g.len()), Some(16));
}

#[test]
fn the_captured_discovers_get_offers_and_the_pxe_one_gets_its_boot_file() {
    let settings = Settings {
        mode: Mode::Authoritative,
        server_ip: Ipv4Addr::new(10, 77, 0, 1),
        subnets: vec![Subnet {
            network: Ipv4Addr::new(10, 77, 0, 0),
            prefix_len: 24,
            pools: vec![AddressRange { first: Ipv4Addr::new(10, 77, 0, 100), last: Ipv4Addr::new(10, 77, 0, 199) }],
            routers: vec![],
            dns: vec![],
            domain: None,
            lease_secs: 3600,
        }],
        reservations: vec![],
        decline_secs: 600,
        offer_secs: 60,
        max_leases_per_machine: swarmboot_dhcp::DEFAULT_MAX_LEASES_PER_MACHINE,
        boot: BootSettings::default(),
    };
    let mut s = DhcpServer::new(settings, vec![]);
    let src = Source { peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), local_port: 67 };
    for name in ["udhcpc-discover", "dhclient-discover", "udhcpc-pxe-bios-discover"] {
        let out = s.handle(1_800_000_000, src, &capture(name));
        let r = out.reply.unwrap_or_else(|| panic!("{name}: {:?}", out.drop));
        assert_eq!(r.kind, MessageType::Offer, "{name}");
        let has_file = r.bytes[108] != 0;
        assert_eq!(has_file, name.contains("pxe"), "{name}: boot file only for the PXE client");
    }
}
