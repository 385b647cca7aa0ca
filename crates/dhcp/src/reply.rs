//! Building reply datagrams from a request and a decision.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, MessageType, Opcode, OptionCode};
use dhcproto::Encodable;

use crate::boot::BootFile;
use crate::request::ClientRequest;
use crate::settings::Subnet;

/// Replies shorter than this are padded: the BOOTP minimum, below which some clients (the
/// Linux in-kernel one among them) ignore the packet.
pub const MIN_REPLY_LEN: usize = 300;

/// PXE option 43, sub-option 6 (discovery control) = 8: "boot from the file in this packet; do
/// not look for boot servers", so firmware does not wait for a boot menu.
const PXE_VENDOR_OPTIONS: [u8; 4] = [6, 1, 0x08, 255];

/// The reply skeleton every answer shares: header fields copied from the request, message type
/// and server identifier set, option 82 echoed (RFC 3046).
pub fn skeleton(req: &ClientRequest, kind: MessageType, server_ip: Ipv4Addr) -> v4::Message {
    let m = &req.message;
    let mut r = v4::Message::default();
    r.set_opcode(Opcode::BootReply).set_htype(m.htype()).set_xid(m.xid()).set_flags(m.flags()).set_giaddr(m.giaddr()).set_chaddr(&m.chaddr()[..usize::from(m.hlen()).min(16)]);
    let opts = r.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(server_ip));
    if let Some(relay) = m.opts().get(OptionCode::RelayAgentInformation) {
        opts.insert(relay.clone());
    }
    r
}

/// Adds the network configuration of `subnet` (mask, routers, DNS, domain).
pub fn add_network_options(r: &mut v4::Message, subnet: &Subnet) {
    let opts = r.opts_mut();
    opts.insert(DhcpOption::SubnetMask(subnet.mask()));
    opts.insert(DhcpOption::BroadcastAddr(subnet.broadcast()));
    if !subnet.routers.is_empty() {
        opts.insert(DhcpOption::Router(subnet.routers.clone()));
    }
    if !subnet.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(subnet.dns.clone()));
    }
    if let Some(d) = &subnet.domain {
        opts.insert(DhcpOption::DomainName(d.clone()));
    }
}

/// Adds lease time, T1 (1/2) and T2 (7/8).
pub fn add_lease_times(r: &mut v4::Message, lease_secs: u32) {
    let opts = r.opts_mut();
    opts.insert(DhcpOption::AddressLeaseTime(lease_secs));
    opts.insert(DhcpOption::Renewal(lease_secs / 2));
    opts.insert(DhcpOption::Rebinding((u64::from(lease_secs) * 7 / 8) as u32));
}

/// Adds what a network-booting machine needs: `siaddr`, `file`, and for PXE firmware option
/// 60 and option 43 (and option 97 echoed, which PXE 2.1 asks of proxy servers).
pub fn add_boot(r: &mut v4::Message, req: &ClientRequest, boot: &BootFile) {
    r.set_siaddr(boot.next_server);
    // The `file` field holds 127 bytes and a NUL; a longer name (a long URL) goes in option 67.
    if boot.filename.len() < 128 {
        r.set_fname_str(&boot.filename);
    } else {
        r.opts_mut().insert(DhcpOption::BootfileName(boot.filename.as_bytes().to_vec()));
    }
    let opts = r.opts_mut();
    if boot.http_boot {
        opts.insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
    } else if req.machine.pxe {
        opts.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
        if !req.machine.ipxe {
            opts.insert(DhcpOption::VendorExtensions(PXE_VENDOR_OPTIONS.to_vec()));
        }
    }
    if let Some(guid) = &req.machine.guid {
        opts.insert(DhcpOption::ClientMachineIdentifier(guid.clone()));
    }
}

/// Encodes and pads a reply. Encoding a message built from decoded parts cannot fail; if it
/// ever does, the reply is not sent.
pub fn encode(r: &v4::Message) -> Option<Vec<u8>> {
    let mut bytes = r.to_vec().ok()?;
    if bytes.len() < MIN_REPLY_LEN {
        bytes.resize(MIN_REPLY_LEN, 0);
    }
    Some(bytes)
}
