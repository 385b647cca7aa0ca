//! Decode + decide, the whole DHCP core: any datagram, in any mode and on either port, is
//! answered or dropped with a reason; it never panics, and the lease table stays consistent.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use swarmboot_dhcp::*;

fn settings(mode: Mode) -> Settings {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    Settings {
        mode,
        server_ip: ip("10.77.0.1"),
        subnets: vec![
            Subnet {
                network: ip("10.77.0.0"),
                prefix_len: 24,
                pools: vec![AddressRange { first: ip("10.77.0.100"), last: ip("10.77.0.103") }],
                routers: vec![ip("10.77.0.1")],
                dns: vec![ip("10.77.0.1")],
                domain: Some("lab".into()),
                lease_secs: 60,
            },
            Subnet {
                network: ip("10.78.0.0"),
                prefix_len: 24,
                pools: vec![AddressRange { first: ip("10.78.0.100"), last: ip("10.78.0.101") }],
                routers: vec![],
                dns: vec![],
                domain: None,
                lease_secs: 60,
            },
        ],
        reservations: vec![Reservation { hwaddr: HwAddr::new(&[0x52, 0x54, 0, 0, 0, 1]), ip: ip("10.77.0.10"), hostname: None }],
        decline_secs: 30,
        offer_secs: 10,
        max_leases_per_machine: swarmboot_dhcp::DEFAULT_MAX_LEASES_PER_MACHINE,
        boot: BootSettings::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks mode, port and clock; the rest is the datagram, sent twice so that
    // state left by the first handling is exercised by the second.
    let Some((&ctl, pkt)) = data.split_first() else { return };
    let mode = [Mode::Authoritative, Mode::Proxy, Mode::Off][usize::from(ctl % 3)];
    let port = if ctl & 0x10 != 0 { PXE_PORT } else { SERVER_PORT };
    let mut s = DhcpServer::new(settings(mode), vec![]);
    let src = Source { peer: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 150), 68), local_port: port };
    for now in [1_800_000_000u64, 1_800_000_000 + u64::from(ctl >> 5) * 40] {
        let out = s.handle(now, src, pkt);
        assert!(out.reply.is_some() || out.drop.is_some() || out.lease.is_some());
        if let Some(r) = &out.reply {
            assert!(r.bytes.len() >= 300);
            assert!(parse_request(&r.bytes).is_err(), "a reply never parses as a request");
        }
    }
    for l in s.leases().iter() {
        assert_eq!(s.leases().get(l.ip), Some(l));
    }
});
