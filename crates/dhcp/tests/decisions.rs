//! The DHCP core, scripted: (time, datagram in) -> reply and lease record out. No sockets.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{self, DhcpOption, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use swarmboot_dhcp::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const T0: UnixTime = 1_800_000_000;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        server_ip: SERVER,
        subnets: vec![
            Subnet {
                network: ip("10.77.0.0"),
                prefix_len: 24,
                pools: vec![AddressRange { first: ip("10.77.0.100"), last: ip("10.77.0.103") }],
                routers: vec![SERVER],
                dns: vec![SERVER],
                domain: Some("lab".into()),
                lease_secs: 3600,
            },
            Subnet {
                network: ip("10.78.0.0"),
                prefix_len: 24,
                pools: vec![AddressRange { first: ip("10.78.0.100"), last: ip("10.78.0.199") }],
                routers: vec![ip("10.78.0.1")],
                dns: vec![SERVER],
                domain: None,
                lease_secs: 600,
            },
        ],
        reservations: vec![Reservation { hwaddr: "52:54:00:00:00:01".parse().unwrap(), ip: ip("10.77.0.10"), hostname: Some("lab-01".into()) }],
        decline_secs: 600,
        offer_secs: 60,
        max_leases_per_machine: swarmboot_dhcp::DEFAULT_MAX_LEASES_PER_MACHINE,
        boot: BootSettings::default(),
    }
}

/// A client as the core sees it: a MAC and whatever options it sends.
#[derive(Clone)]
struct Client {
    mac: [u8; 6],
    opts: Vec<DhcpOption>,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    broadcast: bool,
}

impl Client {
    fn new(last: u8) -> Self {
        Client { mac: [0x52, 0x54, 0, 0, 1, last], opts: vec![], ciaddr: Ipv4Addr::UNSPECIFIED, giaddr: Ipv4Addr::UNSPECIFIED, broadcast: false }
    }
    fn with(mut self, o: DhcpOption) -> Self {
        self.opts.push(o);
        self
    }
    fn packet(&self, kind: MessageType, extra: &[DhcpOption]) -> Vec<u8> {
        let mut m = v4::Message::new_with_id(0x1234_5678, self.ciaddr, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, self.giaddr, &self.mac);
        if self.broadcast {
            m.set_flags(v4::Flags::default().set_broadcast());
        }
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in self.opts.iter().chain(extra) {
            m.opts_mut().insert(o.clone());
        }
        m.to_vec().unwrap()
    }
}

fn port67() -> Source {
    Source { peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), local_port: 67 }
}

fn decode(r: &Reply) -> v4::Message {
    v4::Message::decode(&mut dhcproto::Decoder::new(&r.bytes)).unwrap()
}

fn send(s: &mut DhcpServer, now: UnixTime, c: &Client, kind: MessageType, extra: &[DhcpOption]) -> Outcome {
    s.handle(now, port67(), &c.packet(kind, extra))
}

/// DISCOVER then REQUEST; returns the acknowledged address.
fn dora(s: &mut DhcpServer, now: UnixTime, c: &Client) -> Ipv4Addr {
    let offer = send(s, now, c, MessageType::Discover, &[]).reply.expect("offer");
    assert_eq!(offer.kind, MessageType::Offer);
    let out = send(s, now, c, MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(offer.yiaddr)]);
    let ack = out.reply.expect("ack");
    assert_eq!(ack.kind, MessageType::Ack);
    let lease = out.lease.expect("an ACK always comes with a record to persist");
    assert_eq!((lease.ip, lease.state), (ack.yiaddr, LeaseState::Bound));
    ack.yiaddr
}

/// The `file` field as a client reads it: up to the first NUL.
fn file(m: &v4::Message) -> &str {
    let f = m.fname().expect("a file name");
    std::str::from_utf8(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]).unwrap()
}

fn opt(m: &v4::Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

#[test]
fn offer_carries_configuration_and_is_broadcast_and_padded() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let out = send(&mut s, T0, &Client::new(2), MessageType::Discover, &[]);
    assert_eq!(out.lease, None, "offers are not persisted");
    let r = out.reply.unwrap();
    assert!(r.broadcast);
    assert_eq!(r.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert!(r.bytes.len() >= 300, "reply is {} bytes", r.bytes.len());
    let m = decode(&r);
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.xid(), 0x1234_5678);
    assert_eq!(m.yiaddr(), ip("10.77.0.100"));
    assert_eq!(m.chaddr()[..6], [0x52, 0x54, 0, 0, 1, 2]);
    assert_eq!(opt(&m, OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(SERVER)));
    assert_eq!(opt(&m, OptionCode::SubnetMask), Some(&DhcpOption::SubnetMask(ip("255.255.255.0"))));
    assert_eq!(opt(&m, OptionCode::Router), Some(&DhcpOption::Router(vec![SERVER])));
    assert_eq!(opt(&m, OptionCode::DomainNameServer), Some(&DhcpOption::DomainNameServer(vec![SERVER])));
    assert_eq!(opt(&m, OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(3600)));
    assert_eq!(opt(&m, OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
    assert_eq!(opt(&m, OptionCode::Rebinding), Some(&DhcpOption::Rebinding(3150)));
    assert_eq!(m.fname(), None, "a plain OS client gets no boot file");
}

#[test]
fn two_clients_get_different_addresses_and_a_client_keeps_its_own() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let (a, b) = (Client::new(2), Client::new(3));
    let ipa = dora(&mut s, T0, &a);
    let ipb = dora(&mut s, T0, &b);
    assert_ne!(ipa, ipb);
    assert_eq!(dora(&mut s, T0 + 10, &a), ipa, "a client gets its previous address back");
    // Even a DISCOVER from a bound client does not downgrade its lease to an offer.
    send(&mut s, T0 + 11, &a, MessageType::Discover, &[]);
    assert_eq!(s.leases().get(ipa).unwrap().state, LeaseState::Bound);
}

#[test]
fn offers_are_held_for_their_client_only() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let (a, b) = (Client::new(2), Client::new(3));
    let offered = send(&mut s, T0, &a, MessageType::Discover, &[]).reply.unwrap().yiaddr;
    // b asks for a's offered address: it gets another one.
    let other = send(&mut s, T0, &b, MessageType::Discover, &[DhcpOption::RequestedIpAddress(offered)]).reply.unwrap().yiaddr;
    assert_ne!(offered, other);
    // and cannot take it by REQUEST either.
    let out = send(&mut s, T0, &b, MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(offered)]);
    assert_eq!(out.reply.unwrap().kind, MessageType::Nak);
    assert_eq!(out.lease, None);
}

#[test]
fn choosing_another_server_withdraws_our_offer() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let a = Client::new(2);
    let offered = send(&mut s, T0, &a, MessageType::Discover, &[]).reply.unwrap().yiaddr;
    let out = send(&mut s, T0, &a, MessageType::Request, &[DhcpOption::ServerIdentifier(ip("10.77.0.254")), DhcpOption::RequestedIpAddress(offered)]);
    assert_eq!((out.reply, out.drop), (None, Some(DropReason::ForOtherServer)));
    assert!(s.leases().get(offered).is_none());
}

#[test]
fn init_reboot_acks_own_address_and_naks_others() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let (a, b) = (Client::new(2), Client::new(3));
    let ipa = dora(&mut s, T0, &a);
    let ack = send(&mut s, T0 + 5, &a, MessageType::Request, &[DhcpOption::RequestedIpAddress(ipa)]).reply.unwrap();
    assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, ipa));
    let nak = send(&mut s, T0 + 5, &b, MessageType::Request, &[DhcpOption::RequestedIpAddress(ipa)]).reply.unwrap();
    assert_eq!(nak.kind, MessageType::Nak);
    assert!(nak.broadcast, "a NAK is broadcast");
    let wrong_net = send(&mut s, T0 + 5, &b, MessageType::Request, &[DhcpOption::RequestedIpAddress(ip("192.168.1.7"))]).reply.unwrap();
    assert_eq!(wrong_net.kind, MessageType::Nak);
    let missing = send(&mut s, T0 + 5, &b, MessageType::Request, &[]);
    assert_eq!(missing.drop, Some(DropReason::MissingRequestedIp));
}

#[test]
fn renew_is_unicast_to_ciaddr_and_extends_the_lease() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut a = Client::new(2);
    let ipa = dora(&mut s, T0, &a);
    a.ciaddr = ipa;
    let out = send(&mut s, T0 + 1800, &a, MessageType::Request, &[]);
    let ack = out.reply.unwrap();
    assert_eq!((ack.kind, ack.broadcast, ack.to), (MessageType::Ack, false, SocketAddrV4::new(ipa, 68)));
    assert_eq!(decode(&ack).ciaddr(), ipa);
    assert_eq!(out.lease.unwrap().expires, T0 + 1800 + 3600);
    // Someone else "renewing" a's address is refused.
    let mut b = Client::new(3);
    b.ciaddr = ipa;
    assert_eq!(send(&mut s, T0 + 1800, &b, MessageType::Request, &[]).reply.unwrap().kind, MessageType::Nak);
}

#[test]
fn release_frees_the_address_but_remembers_the_client() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut a = Client::new(2);
    let ipa = dora(&mut s, T0, &a);
    a.ciaddr = ipa;
    let out = send(&mut s, T0 + 1, &a, MessageType::Release, &[DhcpOption::ServerIdentifier(SERVER)]);
    assert_eq!(out.reply, None);
    assert_eq!(out.lease.as_ref().map(|l| l.state), Some(LeaseState::Released));
    // Another client does not get it while never-used addresses remain...
    assert_ne!(dora(&mut s, T0 + 2, &Client::new(3)), ipa);
    // ...and the releasing client gets it back.
    a.ciaddr = Ipv4Addr::UNSPECIFIED;
    assert_eq!(dora(&mut s, T0 + 3, &a), ipa);
    // A stranger cannot release it.
    let mut b = Client::new(4);
    b.ciaddr = ipa;
    assert_eq!(send(&mut s, T0 + 4, &b, MessageType::Release, &[]).drop, Some(DropReason::NotTheHolder));
}

#[test]
fn declined_address_is_quarantined() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let a = Client::new(2);
    let ipa = dora(&mut s, T0, &a);
    let out = send(&mut s, T0 + 1, &a, MessageType::Decline, &[DhcpOption::RequestedIpAddress(ipa), DhcpOption::ServerIdentifier(SERVER)]);
    assert_eq!(out.lease.as_ref().map(|l| (l.state, l.expires)), Some((LeaseState::Declined, T0 + 601)));
    // The decliner itself gets a different address.
    assert_ne!(dora(&mut s, T0 + 2, &a), ipa);
    // Nobody gets it while quarantined, even by asking for it.
    let b = Client::new(3);
    let got = send(&mut s, T0 + 3, &b, MessageType::Discover, &[DhcpOption::RequestedIpAddress(ipa)]).reply.unwrap().yiaddr;
    assert_ne!(got, ipa);
    // A stranger cannot decline someone else's address.
    let c = Client::new(4);
    let ipc_owner = dora(&mut s, T0 + 4, &b);
    assert_eq!(send(&mut s, T0 + 5, &c, MessageType::Decline, &[DhcpOption::RequestedIpAddress(ipc_owner)]).drop, Some(DropReason::NotTheHolder));
}

#[test]
fn inform_gets_configuration_without_an_address() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut a = Client::new(2);
    a.ciaddr = ip("10.77.0.50");
    let out = send(&mut s, T0, &a, MessageType::Inform, &[]);
    assert_eq!(out.lease, None);
    let r = out.reply.unwrap();
    assert_eq!((r.kind, r.yiaddr, r.to), (MessageType::Ack, Ipv4Addr::UNSPECIFIED, SocketAddrV4::new(ip("10.77.0.50"), 68)));
    let m = decode(&r);
    assert!(opt(&m, OptionCode::AddressLeaseTime).is_none());
    assert!(opt(&m, OptionCode::SubnetMask).is_some());
}

#[test]
fn reservation_is_honoured_and_kept_from_others() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut reserved = Client::new(0);
    reserved.mac = [0x52, 0x54, 0, 0, 0, 1];
    let offer = send(&mut s, T0, &reserved, MessageType::Discover, &[]).reply.unwrap();
    assert_eq!(offer.yiaddr, ip("10.77.0.10"));
    assert_eq!(opt(&decode(&offer), OptionCode::Hostname), Some(&DhcpOption::Hostname("lab-01".into())));
    assert_eq!(dora(&mut s, T0, &reserved), ip("10.77.0.10"));
    let other = Client::new(9);
    let out = send(&mut s, T0, &other, MessageType::Request, &[DhcpOption::RequestedIpAddress(ip("10.77.0.10"))]);
    assert_eq!(out.reply.unwrap().kind, MessageType::Nak);
}

#[test]
fn relayed_requests_get_the_relays_subnet_and_go_back_to_the_relay() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut a = Client::new(2);
    a.giaddr = ip("10.78.0.1");
    let relay_info = {
        let mut ri = v4::relay::RelayAgentInformation::default();
        ri.insert(v4::relay::RelayInfo::AgentCircuitId(b"port7".to_vec()));
        DhcpOption::RelayAgentInformation(ri)
    };
    a = a.with(relay_info.clone());
    let offer = send(&mut s, T0, &a, MessageType::Discover, &[]).reply.unwrap();
    assert_eq!(offer.yiaddr, ip("10.78.0.100"));
    assert_eq!((offer.to, offer.broadcast), (SocketAddrV4::new(ip("10.78.0.1"), 67), false));
    let m = decode(&offer);
    assert_eq!(m.giaddr(), ip("10.78.0.1"));
    assert_eq!(opt(&m, OptionCode::Router), Some(&DhcpOption::Router(vec![ip("10.78.0.1")])));
    assert_eq!(opt(&m, OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(600)));
    assert_eq!(opt(&m, OptionCode::RelayAgentInformation), Some(&relay_info), "option 82 is echoed");
    assert_eq!(dora(&mut s, T0, &a), ip("10.78.0.100"));
    // The unicast RENEW from behind the relay has no giaddr; ciaddr picks the subnet.
    let mut renewing = a.clone();
    renewing.giaddr = Ipv4Addr::UNSPECIFIED;
    renewing.ciaddr = ip("10.78.0.100");
    assert_eq!(send(&mut s, T0 + 300, &renewing, MessageType::Request, &[]).reply.unwrap().kind, MessageType::Ack);
    // An unknown relay is ignored.
    let mut stray = Client::new(3);
    stray.giaddr = ip("10.99.0.1");
    assert_eq!(send(&mut s, T0, &stray, MessageType::Discover, &[]).drop, Some(DropReason::NoSubnetForRelay));
}

#[test]
fn exhausted_pool_is_reported_then_reused_after_expiry() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut got = Vec::new();
    for i in 0..4 {
        got.push(dora(&mut s, T0, &Client::new(10 + i)));
    }
    got.sort();
    assert_eq!(got, vec![ip("10.77.0.100"), ip("10.77.0.101"), ip("10.77.0.102"), ip("10.77.0.103")]);
    assert_eq!(send(&mut s, T0 + 1, &Client::new(20), MessageType::Discover, &[]).drop, Some(DropReason::PoolExhausted));
    // After the leases run out, the longest-expired address is reused.
    let ipn = dora(&mut s, T0 + 3601, &Client::new(20));
    assert!(got.contains(&ipn));
}

#[test]
fn a_restarted_server_keeps_every_granted_lease() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut persisted = Vec::new();
    let a = Client::new(2);
    let offer = send(&mut s, T0, &a, MessageType::Discover, &[]).reply.unwrap();
    let out = send(&mut s, T0, &a, MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(offer.yiaddr)]);
    persisted.push(out.lease.unwrap());
    // An offer to b is in flight when the server dies: it is not persisted.
    let b = Client::new(3);
    let offer_b = send(&mut s, T0, &b, MessageType::Discover, &[]).reply.unwrap();

    let mut s2 = DhcpServer::new(settings(Mode::Authoritative), persisted);
    let mut renewing = a.clone();
    renewing.ciaddr = offer.yiaddr;
    assert_eq!(send(&mut s2, T0 + 10, &renewing, MessageType::Request, &[]).reply.unwrap().kind, MessageType::Ack);
    let c = Client::new(4);
    let ipc = dora(&mut s2, T0 + 10, &c);
    assert_ne!(ipc, offer.yiaddr, "a new client never gets a granted address");
    // b's REQUEST for its lost offer is ACKed only if the address is still free.
    let out = send(&mut s2, T0 + 11, &b, MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(offer_b.yiaddr)]);
    let r = out.reply.unwrap();
    if offer_b.yiaddr == ipc {
        assert_eq!(r.kind, MessageType::Nak);
    } else {
        assert_eq!(r.kind, MessageType::Ack);
    }
}

fn pxe_bios() -> Client {
    Client::new(5)
        .with(DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()))
        .with(DhcpOption::ClientSystemArchitecture(v4::Architecture(0)))
        .with(DhcpOption::ClientMachineIdentifier(vec![0; 17]))
}

#[test]
fn proxy_mode_answers_pxe_clients_with_boot_information_only() {
    let mut s = DhcpServer::new(settings(Mode::Proxy), vec![]);
    let out = send(&mut s, T0, &pxe_bios(), MessageType::Discover, &[]);
    assert_eq!(out.lease, None);
    let r = out.reply.unwrap();
    assert_eq!((r.kind, r.yiaddr, r.broadcast), (MessageType::Offer, Ipv4Addr::UNSPECIFIED, true));
    let m = decode(&r);
    assert_eq!(file(&m), "undionly.kpxe");
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(opt(&m, OptionCode::ClassIdentifier), Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec())));
    assert_eq!(opt(&m, OptionCode::VendorExtensions), Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255])));
    assert_eq!(opt(&m, OptionCode::ClientMachineIdentifier), Some(&DhcpOption::ClientMachineIdentifier(vec![0; 17])));
    assert!(opt(&m, OptionCode::AddressLeaseTime).is_none());
    // Non-PXE clients and REQUESTs on port 67 are left to the real DHCP server.
    assert_eq!(send(&mut s, T0, &Client::new(6), MessageType::Discover, &[]).drop, Some(DropReason::NotPxeClient));
    assert_eq!(send(&mut s, T0, &pxe_bios(), MessageType::Request, &[]).drop, Some(DropReason::UnexpectedMessage));
    assert!(s.leases().is_empty());
}

#[test]
fn port_4011_requests_get_a_unicast_boot_ack() {
    for mode in [Mode::Proxy, Mode::Authoritative] {
        let mut s = DhcpServer::new(settings(mode), vec![]);
        let mut c = pxe_bios().with(DhcpOption::ClientSystemArchitecture(v4::Architecture(7)));
        c.ciaddr = ip("10.77.0.150");
        let from = Source { peer: SocketAddrV4::new(ip("10.77.0.150"), 4011), local_port: 4011 };
        let r = s.handle(T0, from, &c.packet(MessageType::Request, &[])).reply.unwrap();
        assert_eq!((r.kind, r.to, r.broadcast), (MessageType::Ack, from.peer, false));
        assert_eq!(file(&decode(&r)), "snponly.efi");
    }
}

#[test]
fn ipxe_is_sent_to_its_script_not_to_ipxe() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let c = pxe_bios().with(DhcpOption::UserClass(b"iPXE".to_vec()));
    let m = decode(&send(&mut s, T0, &c, MessageType::Discover, &[]).reply.unwrap());
    assert_eq!(file(&m), "http://10.77.0.1:8080/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}");
    assert!(opt(&m, OptionCode::VendorExtensions).is_none());
    let c175 = pxe_bios().with(DhcpOption::Unknown(v4::UnknownOption::new(OptionCode::Unknown(175), vec![0xb1, 1, 1])));
    let m = decode(&send(&mut s, T0, &c175, MessageType::Discover, &[]).reply.unwrap());
    assert_eq!(file(&m), "http://10.77.0.1:8080/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}");
}

#[test]
fn a_boot_url_too_long_for_the_file_field_goes_in_option_67() {
    let mut st = settings(Mode::Proxy);
    st.boot.efi_x64_file = format!("{}/snponly.efi", "d".repeat(130));
    let mut s = DhcpServer::new(st, vec![]);
    let c = pxe_bios().with(DhcpOption::ClientSystemArchitecture(v4::Architecture(7)));
    let m = decode(&send(&mut s, T0, &c, MessageType::Discover, &[]).reply.unwrap());
    assert_eq!(m.fname(), None);
    match opt(&m, OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(b)) => assert!(b.ends_with(b"/snponly.efi") && b.len() > 128),
        other => panic!("no option 67: {other:?}"),
    }
}

#[test]
fn uefi_pxe_and_http_boot_in_authoritative_mode() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let efi = Client::new(7).with(DhcpOption::ClassIdentifier(b"PXEClient:Arch:00007:UNDI:003016".to_vec())).with(DhcpOption::ClientSystemArchitecture(v4::Architecture(7)));
    let m = decode(&send(&mut s, T0, &efi, MessageType::Discover, &[]).reply.unwrap());
    assert_eq!(file(&m), "snponly.efi");
    assert_ne!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    let http = Client::new(8).with(DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec())).with(DhcpOption::ClientSystemArchitecture(v4::Architecture(16)));
    let m = decode(&send(&mut s, T0, &http, MessageType::Discover, &[]).reply.unwrap());
    assert_eq!(file(&m), "http://10.77.0.1:8080/tftp/snponly.efi");
    assert_eq!(opt(&m, OptionCode::ClassIdentifier), Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec())));
}

#[test]
fn broadcast_flag_and_mode_off() {
    let mut s = DhcpServer::new(settings(Mode::Off), vec![]);
    assert_eq!(send(&mut s, T0, &Client::new(2), MessageType::Discover, &[]).drop, Some(DropReason::ModeOff));
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let mut c = Client::new(2);
    c.broadcast = true;
    let r = send(&mut s, T0, &c, MessageType::Discover, &[]).reply.unwrap();
    assert!(r.broadcast);
    assert!(decode(&r).flags().broadcast(), "the broadcast flag is copied");
}

#[test]
fn server_messages_from_clients_are_dropped() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    for kind in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        assert_eq!(send(&mut s, T0, &Client::new(2), kind, &[]).drop, Some(DropReason::UnexpectedMessage));
    }
    let mut reply = v4::Message::new(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, &[1, 2, 3, 4, 5, 6]);
    reply.set_opcode(Opcode::BootReply);
    reply.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
    assert_eq!(s.handle(T0, port67(), &reply.to_vec().unwrap()).drop, Some(DropReason::NotARequest));
}

/// Mutations of valid packets (a small xorshift, fixed seed): every outcome is a reply or a
/// counted drop, never a panic; and the table stays consistent.
#[test]
fn mangled_packets_never_panic() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let seeds: Vec<Vec<u8>> = vec![
        Client::new(2).packet(MessageType::Discover, &[]),
        pxe_bios().packet(MessageType::Request, &[DhcpOption::RequestedIpAddress(ip("10.77.0.100"))]),
        Client::new(3).with(DhcpOption::ClientIdentifier(vec![1, 2, 3])).packet(MessageType::Decline, &[]),
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut outcomes = 0;
    for i in 0..20_000 {
        let mut p = seeds[i % seeds.len()].clone();
        let n = (next() % 8) as usize;
        for _ in 0..n {
            match next() % 4 {
                0 if !p.is_empty() => {
                    let at = (next() as usize) % p.len();
                    p[at] = next() as u8;
                }
                1 => p.truncate((next() as usize) % (p.len() + 1)),
                2 => p.extend((0..(next() % 64)).map(|_| next() as u8)),
                0 => {}
                _ => {
                    let at = 240 + (next() as usize) % (p.len().saturating_sub(240) + 1);
                    p.insert(at.min(p.len()), next() as u8);
                }
            }
        }
        let out = s.handle(T0 + i as u64, port67(), &p);
        assert!(out.reply.is_some() || out.drop.is_some() || out.lease.is_some());
        outcomes += 1;
    }
    assert_eq!(outcomes, 20_000);
    for l in s.leases().iter() {
        assert_eq!(s.leases().get(l.ip), Some(l));
    }
}

/// Many clients, random operations, and crashes at random moments: the server is rebuilt from
/// the records persisted so far (a crash may also fall between persisting a record and sending
/// its reply). At every step, no two clients believe they hold the same address, and every
/// address a client believes it holds is persisted as its binding.
#[test]
fn crashes_at_any_moment_never_give_one_address_to_two_clients() {
    use std::collections::HashMap;
    let mut st = settings(Mode::Authoritative);
    st.subnets[0].pools = vec![AddressRange { first: ip("10.77.0.100"), last: ip("10.77.0.105") }];
    st.subnets[0].lease_secs = 100;
    st.reservations.clear();
    let mut persisted: HashMap<Ipv4Addr, Lease> = HashMap::new();
    let mut s = DhcpServer::new(st.clone(), vec![]);
    let mut held: Vec<Option<(Ipv4Addr, UnixTime)>> = vec![None; 9];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut now = T0;
    let (mut acks, mut crashes) = (0, 0);
    for _ in 0..30_000 {
        now += rnd(15);
        let who = rnd(held.len() as u64) as usize;
        let mut c = Client::new(who as u8);
        let mine = held[who].filter(|(_, exp)| now < *exp).map(|(ip, _)| ip);
        let pkt = match (rnd(7), mine) {
            (0, _) => {
                crashes += 1;
                s = DhcpServer::new(st.clone(), persisted.values().cloned().collect::<Vec<_>>());
                continue;
            }
            (1, Some(ip)) => {
                c.ciaddr = ip;
                c.packet(MessageType::Request, &[]) // RENEWING
            }
            (2, Some(ip)) => c.packet(MessageType::Request, &[DhcpOption::RequestedIpAddress(ip)]), // INIT-REBOOT
            (3, Some(ip)) => {
                c.ciaddr = ip;
                held[who] = None;
                c.packet(MessageType::Release, &[DhcpOption::ServerIdentifier(SERVER)])
            }
            (5, _) => {
                // A client with a stale lease file asks for any pool address (INIT-REBOOT).
                let ip = Ipv4Addr::from(u32::from(ip("10.77.0.100")) + rnd(6) as u32);
                c.packet(MessageType::Request, &[DhcpOption::RequestedIpAddress(ip)])
            }
            (4, Some(ip)) => {
                held[who] = None;
                c.packet(MessageType::Decline, &[DhcpOption::RequestedIpAddress(ip), DhcpOption::ServerIdentifier(SERVER)])
            }
            _ => {
                // DISCOVER, then REQUEST what was offered (possibly after another client's turn).
                let Some(offer) = s.handle(now, port67(), &c.packet(MessageType::Discover, &[])).reply else {
                    continue;
                };
                match rnd(4) {
                    0 => {
                        // The server crashes between OFFER and REQUEST; the offer is forgotten.
                        crashes += 1;
                        s = DhcpServer::new(st.clone(), persisted.values().cloned().collect::<Vec<_>>());
                    }
                    1 => {
                        // Another client completes a whole exchange in between.
                        let o = rnd(held.len() as u64) as usize;
                        let other = Client::new(o as u8);
                        if let Some(off) = s.handle(now, port67(), &other.packet(MessageType::Discover, &[])).reply {
                            let req = other.packet(MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(off.yiaddr)]);
                            let out = s.handle(now, port67(), &req);
                            if let Some(l) = out.lease {
                                persisted.insert(l.ip, l);
                            }
                            match out.reply.map(|r| (r.kind, r.yiaddr)) {
                                Some((MessageType::Ack, ip)) => held[o] = Some((ip, now + 100)),
                                Some((MessageType::Nak, _)) => held[o] = None,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
                c.packet(MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(offer.yiaddr)])
            }
        };
        let out = s.handle(now, port67(), &pkt);
        if let Some(l) = out.lease.clone() {
            persisted.insert(l.ip, l);
        }
        if rnd(20) == 0 {
            // Crash after persisting, before sending.
            crashes += 1;
            s = DhcpServer::new(st.clone(), persisted.values().cloned().collect::<Vec<_>>());
            continue;
        }
        if let Some(r) = out.reply {
            match r.kind {
                MessageType::Ack => {
                    acks += 1;
                    held[who] = Some((r.yiaddr, now + 100));
                }
                MessageType::Nak => held[who] = None,
                _ => {}
            }
        }
        let active: Vec<(usize, Ipv4Addr, UnixTime)> = held.iter().enumerate().filter_map(|(i, h)| h.filter(|(_, e)| now < *e).map(|(ip, e)| (i, ip, e))).collect();
        for (i, ip, exp) in &active {
            assert!(active.iter().all(|(j, ip2, _)| j == i || ip2 != ip), "two clients hold {ip} at {now}: {active:?}");
            let rec = persisted.get(ip).expect("a held address is persisted");
            assert_eq!(rec.client_id, ClientId::from_hwaddr(1, &HwAddr::new(&Client::new(*i as u8).mac)), "{ip}");
            assert!(rec.state == LeaseState::Bound && rec.expires >= *exp, "{rec:?}");
        }
    }
    assert!(acks > 5_000 && crashes > 3_000, "the run exercised little: {acks} ACKs, {crashes} crashes");
}

/// One machine invents client ids: DISCOVER and REQUEST with 2× the pool's size of random ids
/// (a pool of 16). It holds at most its share (4: firmware, iPXE, the stub and the booted
/// system may each have a client id), each new id ending its oldest binding, so a legitimate
/// client still gets an address. The ended bindings come out to be persisted.
#[test]
fn invented_client_ids_from_one_machine_cannot_empty_the_pool() {
    let mut st = settings(Mode::Authoritative);
    st.subnets[0].pools = vec![AddressRange { first: ip("10.77.0.100"), last: ip("10.77.0.115") }];
    let mut s = DhcpServer::new(st, vec![]);
    let pool = 16;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut released = 0;
    for n in 0..2 * pool {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let liar = Client::new(66).with(DhcpOption::ClientIdentifier(x.to_be_bytes().to_vec()));
        let now = T0 + n as u64;
        let offered = send(&mut s, now, &liar, MessageType::Discover, &[]);
        let ended = |o: &Outcome| o.released.iter().filter(|l| l.state == LeaseState::Released && l.hwaddr.to_string() == "52:54:00:00:01:42").count();
        released += ended(&offered);
        let offer = offered.reply.as_ref().expect("an offer");
        let out = send(&mut s, now, &liar, MessageType::Request, &[DhcpOption::ServerIdentifier(SERVER), DhcpOption::RequestedIpAddress(offer.yiaddr)]);
        assert_eq!(out.reply.as_ref().expect("an answer").kind, MessageType::Ack);
        released += ended(&out);
    }
    let bound = s.leases().iter().filter(|l| l.state == LeaseState::Bound).count();
    assert_eq!(bound, DEFAULT_MAX_LEASES_PER_MACHINE, "the liar's share");
    assert_eq!(released, 2 * pool - DEFAULT_MAX_LEASES_PER_MACHINE, "its older bindings were ended and come out to be persisted");
    let honest = dora(&mut s, T0 + 100, &Client::new(7));
    assert!(s.settings().subnets[0].in_pool(honest));
}

/// DISCOVERs from 2× the pool's size of invented machines (new MAC and client id each time)
/// only ever hold offers: a full pool of unconfirmed offers still has room for a client that
/// completes DISCOVER and REQUEST.
#[test]
fn unconfirmed_offers_cannot_keep_a_client_out() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    for n in 0..8u8 {
        let fake = Client::new(100 + n).with(DhcpOption::ClientIdentifier(vec![9, n]));
        assert!(send(&mut s, T0, &fake, MessageType::Discover, &[]).reply.is_some(), "offer {n}: the oldest unconfirmed offer makes room");
    }
    let honest = dora(&mut s, T0 + 1, &Client::new(7));
    assert!(s.settings().subnets[0].in_pool(honest));
}

#[test]
fn every_outcome_says_who_asked_so_the_fleet_can_tell_firmware_ipxe_and_the_stub_apart() {
    let mut s = DhcpServer::new(settings(Mode::Authoritative), vec![]);
    let asked = |o: Outcome| {
        let a = o.asked.expect("a readable request is named");
        (a.kind, a.machine.pxe, a.machine.ipxe, a.machine.stub)
    };
    let firmware = Client::new(40).with(DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()));
    assert_eq!(asked(send(&mut s, 0, &firmware, MessageType::Discover, &[])), (MessageType::Discover, true, false, false));
    let stub = Client::new(41).with(DhcpOption::ClassIdentifier(swarmboot_dhcp::STUB_CLASS.to_vec()));
    assert_eq!(asked(send(&mut s, 0, &stub, MessageType::Discover, &[])), (MessageType::Discover, false, false, true));
    let ipxe = Client::new(42).with(DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec())).with(DhcpOption::UserClass(b"\x04iPXE".to_vec()));
    let ack = send(&mut s, 0, &ipxe, MessageType::Request, &[]);
    assert_eq!(asked(ack), (MessageType::Request, true, true, false));
    // Even a request that gets no answer is named; garbage is not.
    let mut off = DhcpServer::new(settings(Mode::Off), vec![]);
    assert!(send(&mut off, 0, &stub, MessageType::Discover, &[]).asked.is_some());
    assert!(s.handle(0, port67(), &[0u8; 300]).asked.is_none());
}
