//! The stub's DHCP client against the server core, both sans-IO: every datagram goes from one
//! to the other in memory; time is scripted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{Decodable, Encodable};
use swarmboot_dhcp::client::{ClientConfig, ClientIgnored, DhcpClient};
use swarmboot_dhcp::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        server_ip: SERVER,
        subnets: vec![Subnet {
            network: Ipv4Addr::new(10, 77, 0, 0),
            prefix_len: 24,
            pools: vec![AddressRange { first: Ipv4Addr::new(10, 77, 0, 100), last: Ipv4Addr::new(10, 77, 0, 110) }],
            routers: vec![SERVER],
            dns: vec![SERVER],
            domain: Some("lab".into()),
            lease_secs: 3600,
        }],
        reservations: vec![],
        decline_secs: 600,
        offer_secs: 60,
        max_leases_per_machine: swarmboot_dhcp::DEFAULT_MAX_LEASES_PER_MACHINE,
        boot: BootSettings::default(),
    }
}

fn client(now: Instant) -> DhcpClient {
    DhcpClient::new(ClientConfig { mac: MAC, xid: 0xC0FFEE, vendor_class: b"swarmboot-stub".to_vec() }, now)
}

fn from_client() -> Source {
    Source { peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), local_port: 67 }
}

#[test]
fn binds_against_our_server_with_the_broadcast_flag() {
    let mut server = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let t = Instant::now();
    let mut c = client(t);
    let discover = c.poll_transmit(t).expect("a DISCOVER at once");
    let m = v4::Message::decode(&mut dhcproto::Decoder::new(&discover)).unwrap();
    assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
    assert!(m.flags().broadcast(), "no address yet: replies must be broadcast");
    let offer = server.handle(1_800_000_000, from_client(), &discover).reply.expect("an OFFER");
    assert!(offer.broadcast);
    assert!(c.offer().is_none(), "nothing offered yet");
    c.on_datagram(t, &offer.bytes).unwrap();
    assert_eq!(c.offer().map(|o| (o.address, o.server)), Some((Ipv4Addr::new(10, 77, 0, 100), SERVER)), "the offer being requested");
    let request = c.poll_transmit(t).expect("a REQUEST at once");
    let ack = server.handle(1_800_000_000, from_client(), &request).reply.expect("an ACK");
    assert_eq!(ack.kind, MessageType::Ack);
    c.on_datagram(t, &ack.bytes).unwrap();
    let lease = c.lease().expect("bound");
    assert!(c.offer().is_none(), "bound: no offer pending");
    assert_eq!((lease.address, lease.prefix_len, lease.router, lease.server), (Ipv4Addr::new(10, 77, 0, 100), 24, Some(SERVER), SERVER));
    assert_eq!((lease.dns.clone(), lease.domain.as_deref(), lease.lease_secs), (vec![SERVER], Some("lab"), 3600));
    assert_eq!(c.poll_timeout(), None, "nothing more to send once bound");
    assert!(c.poll_transmit(t + Duration::from_secs(100)).is_none());
}

#[test]
fn retransmits_with_backoff_and_starts_over_after_unanswered_requests_or_a_nak() {
    let t = Instant::now();
    let mut c = client(t);
    let mut sent_at = vec![];
    let mut now = t;
    while sent_at.len() < 6 {
        if c.poll_transmit(now).is_some() {
            sent_at.push(now.duration_since(t).as_secs());
        }
        now += Duration::from_millis(250);
    }
    assert_eq!(sent_at, vec![0, 1, 3, 7, 15, 23], "1, 2, 4, 8, then every 8 s");
    assert_eq!(c.unanswered(), 6);

    // An offer; four REQUESTs go unanswered: back to DISCOVER.
    let mut server = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let offer = server.handle(1_800_000_000, from_client(), &c.poll_transmit(now + Duration::from_secs(60)).unwrap()).reply.unwrap();
    c.on_datagram(now, &offer.bytes).unwrap();
    let kinds: Vec<MessageType> = (0..6)
        .filter_map(|i| c.poll_transmit(now + Duration::from_secs(100 * i)))
        .map(|b| v4::Message::decode(&mut dhcproto::Decoder::new(&b)).unwrap().opts().msg_type().unwrap())
        .collect();
    assert_eq!(kinds, [vec![MessageType::Request; 4], vec![MessageType::Discover; 2]].concat());

    // A NAK while requesting: a DISCOVER at once.
    let mut c = client(t);
    let offer = server.handle(1_800_000_000, from_client(), &c.poll_transmit(t).unwrap()).reply.unwrap();
    c.on_datagram(t, &offer.bytes).unwrap();
    c.poll_transmit(t).unwrap();
    let mut nak = v4::Message::decode(&mut dhcproto::Decoder::new(&offer.bytes)).unwrap();
    nak.opts_mut().insert(DhcpOption::MessageType(MessageType::Nak));
    c.on_datagram(t, &nak.to_vec().unwrap()).unwrap();
    let again = c.poll_transmit(t).unwrap();
    assert_eq!(v4::Message::decode(&mut dhcproto::Decoder::new(&again)).unwrap().opts().msg_type(), Some(MessageType::Discover));
}

#[test]
fn proxy_answers_strangers_and_garbage_change_nothing() {
    let t = Instant::now();
    // A proxyDHCP server answers a PXE-looking DISCOVER with no address; give it the class.
    let mut proxy = DhcpServer::new(settings(Mode::Proxy), vec![]);
    let mut c = DhcpClient::new(ClientConfig { mac: MAC, xid: 7, vendor_class: b"PXEClient:Arch:00000:UNDI:002001".to_vec() }, t);
    let discover = c.poll_transmit(t).unwrap();
    if let Some(r) = proxy.handle(1_800_000_000, from_client(), &discover).reply {
        assert_eq!(c.on_datagram(t, &r.bytes), Err(ClientIgnored::NoAddress));
    }
    // Another client's OFFER.
    let mut server = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut other = DhcpClient::new(ClientConfig { mac: [2, 0, 0, 0, 0, 9], xid: 7, vendor_class: vec![] }, t);
    let theirs = server.handle(1_800_000_000, from_client(), &other.poll_transmit(t).unwrap()).reply.unwrap();
    assert_eq!(c.on_datagram(t, &theirs.bytes), Err(ClientIgnored::NotOurs));
    // Our own DISCOVER echoed back, truncations and byte flips of a real OFFER: refused, no panic.
    assert!(c.on_datagram(t, &discover).is_err());
    let ours = server.handle(1_800_000_000, from_client(), &discover).reply.unwrap().bytes;
    for len in 0..ours.len() {
        let mut probe = DhcpClient::new(ClientConfig { mac: MAC, xid: 7, vendor_class: vec![] }, t);
        let _ = probe.on_datagram(t, &ours[..len]);
    }
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..5000 {
        let mut b = ours.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % b.len();
            b[at] = (x >> 32) as u8;
        }
        let mut probe = DhcpClient::new(ClientConfig { mac: MAC, xid: 7, vendor_class: vec![] }, t);
        let _ = probe.on_datagram(t, &b);
    }
    assert!(c.lease().is_none());
    assert!(c.on_datagram(t, &ours).is_ok(), "the real offer still works");
}
