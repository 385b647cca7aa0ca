//! rtnetlink messages the stub needs, built and parsed as bytes (sans-IO): bring a link up,
//! add an IPv4 address, add a default route; and the kernel's acknowledgement. The shell sends
//! them on a `NETLINK_ROUTE` socket.

use std::net::Ipv4Addr;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

fn message(kind: u16, extra_flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | extra_flags).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// RTM_NEWLINK: set IFF_UP on interface `index`.
pub fn link_up(seq: u32, index: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(AF_UNSPEC);
    b.push(0);
    b.extend_from_slice(&0u16.to_ne_bytes()); // type
    b.extend_from_slice(&(index as i32).to_ne_bytes());
    b.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    b.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    message(RTM_NEWLINK, 0, seq, &b)
}

/// RTM_NEWLINK: rename interface `index` (it must be down) to `name` (at most 15 bytes).
pub fn rename(seq: u32, index: u32, name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(AF_UNSPEC);
    b.push(0);
    b.extend_from_slice(&0u16.to_ne_bytes()); // type
    b.extend_from_slice(&(index as i32).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // flags
    b.extend_from_slice(&0u32.to_ne_bytes()); // change mask: none
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    attr(&mut b, IFLA_IFNAME, &z);
    message(RTM_NEWLINK, 0, seq, &b)
}

/// RTM_NEWADDR: `address/prefix_len` on interface `index` (replacing an equal one).
pub fn add_address(seq: u32, index: u32, address: Ipv4Addr, prefix_len: u8) -> Vec<u8> {
    let mut b = vec![AF_INET, prefix_len, 0, RT_SCOPE_UNIVERSE];
    b.extend_from_slice(&index.to_ne_bytes());
    attr(&mut b, IFA_LOCAL, &address.octets());
    attr(&mut b, IFA_ADDRESS, &address.octets());
    let host_bits = if prefix_len >= 32 { 0 } else { u32::MAX >> prefix_len };
    attr(&mut b, IFA_BROADCAST, &Ipv4Addr::from(u32::from(address) | host_bits).octets());
    message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, seq, &b)
}

/// RTM_NEWROUTE: the default route via `gateway` out of interface `index`.
pub fn add_default_route(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST];
    b.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    attr(&mut b, RTA_GATEWAY, &gateway.octets());
    attr(&mut b, RTA_OIF, &index.to_ne_bytes());
    message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, seq, &b)
}

/// The kernel's answer to request `seq`: `Some(0)` success, `Some(-errno)` failure, `None` if
/// `reply` holds no acknowledgement for `seq`.
pub fn ack_of(reply: &[u8], seq: u32) -> Option<i32> {
    let mut at = 0;
    while at + 16 <= reply.len() {
        let len = u32::from_ne_bytes(reply[at..at + 4].try_into().ok()?) as usize;
        if len < 16 || at + len > reply.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(reply[at + 4..at + 6].try_into().ok()?);
        let got_seq = u32::from_ne_bytes(reply[at + 8..at + 12].try_into().ok()?);
        if kind == NLMSG_ERROR && got_seq == seq && len >= 20 {
            return Some(i32::from_ne_bytes(reply[at + 16..at + 20].try_into().ok()?));
        }
        at += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_kernels_layout() {
        let m = link_up(7, 3);
        assert_eq!(m.len(), 16 + 16);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        let a = add_address(8, 3, Ipv4Addr::new(10, 77, 0, 100), 24);
        assert_eq!(a.len(), 16 + 8 + 3 * 8, "ifaddrmsg and three 4-byte attributes");
        assert_eq!(&a[16..20], &[AF_INET, 24, 0, 0]);
        assert_eq!(&a[a.len() - 4..], &[10, 77, 0, 255], "broadcast of the /24");
        let r = add_default_route(9, 3, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(r.len(), 16 + 12 + 8 + 8);
        assert_eq!(&r[16 + 12 + 4..16 + 12 + 8], &[10, 77, 0, 1]);
    }

    #[test]
    fn a_rename_carries_the_name_nul_terminated_and_changes_no_flags() {
        let m = rename(4, 2, "ens3");
        assert_eq!(m.len(), 16 + 16 + 12, "ifinfomsg and one attribute of 4 + 5 bytes, padded to 8");
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 2);
        assert_eq!(&m[24..32], &[0; 8], "no flag changes");
        assert_eq!(u16::from_ne_bytes(m[32..34].try_into().unwrap()), 9);
        assert_eq!(u16::from_ne_bytes(m[34..36].try_into().unwrap()), IFLA_IFNAME);
        assert_eq!(&m[36..41], b"ens3\0");
    }

    #[test]
    fn acknowledgements() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&5u32.to_ne_bytes());
        ack.extend_from_slice(&0u32.to_ne_bytes());
        ack.extend_from_slice(&(-17i32).to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert_eq!(ack_of(&ack, 5), Some(-17));
        assert_eq!(ack_of(&ack, 6), None);
        assert_eq!(ack_of(&ack[..10], 5), None);
        assert_eq!(ack_of(&[0xff; 40], 5), None);
    }
}
