//! A scripted DHCP client for the lab: sends exactly the datagrams a test builds (a PXE
//! DISCOVER, garbage) and collects every reply, from every server, for a while. Real clients
//! (udhcpc, dhclient) take only the first offer; this sees them all.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{Decodable, Encodable};
use socket2::{Domain, Protocol, Socket, Type};

use crate::Netns;

/// A DISCOVER from `mac` with `opts`.
pub fn discover(mac: [u8; 6], xid: u32, opts: Vec<DhcpOption>) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = v4::Message::new_with_id(xid, z, z, z, z, &mac);
    m.set_flags(v4::Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
    for o in opts {
        m.opts_mut().insert(o);
    }
    m.to_vec().expect("encode DISCOVER")
}

/// The options a BIOS PXE ROM sends.
pub fn pxe_bios_options() -> Vec<DhcpOption> {
    vec![
        DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
        DhcpOption::ClientSystemArchitecture(v4::Architecture(0)),
        DhcpOption::ClientMachineIdentifier([0u8].iter().chain([7u8; 16].iter()).copied().collect()),
    ]
}

/// Broadcasts `datagrams` to port 67 from port 68 on `iface` in `ns`, then collects decoded
/// replies for `listen`.
pub fn exchange(ns: &Netns, iface: &str, datagrams: Vec<Vec<u8>>, listen: Duration) -> anyhow::Result<Vec<(SocketAddr, v4::Message)>> {
    let iface = iface.to_string();
    ns.enter(move || -> anyhow::Result<Vec<(SocketAddr, v4::Message)>> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())?;
        let s: UdpSocket = s.into();
        for d in &datagrams {
            s.send_to(d, (Ipv4Addr::BROADCAST, 67))?;
        }
        let deadline = Instant::now() + listen;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match s.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Ok(m) = v4::Message::decode(&mut dhcproto::Decoder::new(&buf[..n])) {
                        out.push((from, m));
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    })?
}
