//! A DHCPv4 client for the stub's init, sans-IO: DISCOVER → OFFER → REQUEST → ACK. The stub
//! has no address while it asks, so it sets the broadcast flag (replies come to
//! 255.255.255.255). Offers without an address (a proxyDHCP server's PXE answer) are not
//! offers of an address and are skipped. Retransmissions back off 1, 2, 4, 8, 8 … s; four
//! unanswered REQUESTs or a NAK start over with a DISCOVER.
//!
//! Time is passed in; the shell owns the socket and applies the lease (address, route).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType, Opcode, OptionCode};
use dhcproto::Encodable;

use crate::request::decode_guarded;
use crate::values::DropReason;

/// What the client sends with every message.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub mac: [u8; 6],
    /// Transaction id (random per boot).
    pub xid: u32,
    /// Option 60, so servers and logs can tell the stub apart from firmware.
    pub vendor_class: Vec<u8>,
}

/// An address lease as the shell applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// The DHCP server that granted it (option 54).
    pub server: Ipv4Addr,
    pub lease_secs: u32,
}

/// Why a datagram changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIgnored {
    #[error("malformed: {0:?}")]
    Malformed(DropReason),
    #[error("not a reply to this client (other transaction or hardware address)")]
    NotOurs,
    #[error("an offer without an address (a proxyDHCP answer)")]
    NoAddress,
    #[error("a {0:?} we did not expect now")]
    Unexpected(MessageType),
    #[error("no server identifier or subnet mask we can use")]
    Incomplete,
}

#[derive(Debug, Clone)]
enum Phase {
    Selecting,
    Requesting { offer: ClientLease, sent: u32 },
    Bound(ClientLease),
}

#[derive(Debug)]
pub struct DhcpClient {
    cfg: ClientConfig,
    phase: Phase,
    next_send: Instant,
    /// Messages sent since the last answer (for the backoff and for console messages).
    unanswered: u32,
}

const MAX_BACKOFF: Duration = Duration::from_secs(8);
const REQUEST_TRIES: u32 = 4;

impl DhcpClient {
    /// A client that sends its first DISCOVER at once.
    pub fn new(cfg: ClientConfig, now: Instant) -> Self {
        DhcpClient { cfg, phase: Phase::Selecting, next_send: now, unanswered: 0 }
    }

    pub fn lease(&self) -> Option<&ClientLease> {
        match &self.phase {
            Phase::Bound(l) => Some(l),
            _ => None,
        }
    }

    /// The offer being requested (after an OFFER, before the ACK).
    pub fn offer(&self) -> Option<&ClientLease> {
        match &self.phase {
            Phase::Requesting { offer, .. } => Some(offer),
            _ => None,
        }
    }

    /// Messages sent without an answer since the last one (0 once answered).
    pub fn unanswered(&self) -> u32 {
        self.unanswered
    }

    /// When [`DhcpClient::poll_transmit`] has something to send (`None`: bound).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Bound(_) => None,
            _ => Some(self.next_send),
        }
    }

    /// The datagram to broadcast now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_send {
            return None;
        }
        let msg = match &mut self.phase {
            Phase::Bound(_) => return None,
            Phase::Selecting => self.message(MessageType::Discover, None),
            Phase::Requesting { sent, .. } if *sent >= REQUEST_TRIES => {
                self.phase = Phase::Selecting;
                self.message(MessageType::Discover, None)
            }
            Phase::Requesting { offer, sent } => {
                *sent += 1;
                let offer = offer.clone();
                self.message(MessageType::Request, Some(&offer))
            }
        };
        let backoff = Duration::from_secs(1 << self.unanswered.min(3)).min(MAX_BACKOFF);
        self.unanswered += 1;
        self.next_send = now + backoff;
        Some(msg)
    }

    fn message(&self, kind: MessageType, offer: Option<&ClientLease>) -> Vec<u8> {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = v4::Message::new_with_id(self.cfg.xid, z, z, z, z, &self.cfg.mac);
        m.set_flags(v4::Flags::default().set_broadcast());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::DomainName,
            OptionCode::AddressLeaseTime,
            OptionCode::ServerIdentifier,
        ]));
        o.insert(DhcpOption::MaxMessageSize(1500));
        if !self.cfg.vendor_class.is_empty() {
            o.insert(DhcpOption::ClassIdentifier(self.cfg.vendor_class.clone()));
        }
        if let Some(offer) = offer {
            o.insert(DhcpOption::RequestedIpAddress(offer.address));
            o.insert(DhcpOption::ServerIdentifier(offer.server));
        }
        m.to_vec().expect("a message we built encodes")
    }

    /// A datagram received on port 68.
    pub fn on_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ClientIgnored> {
        let m = decode_guarded(bytes).map_err(ClientIgnored::Malformed)?;
        if m.opcode() != Opcode::BootReply {
            return Err(ClientIgnored::Malformed(DropReason::NotARequest));
        }
        // dhcproto's chaddr() slices by hlen and panics past 16.
        if !(6..=16).contains(&m.hlen()) {
            return Err(ClientIgnored::Malformed(DropReason::BadHardwareAddress));
        }
        if m.xid() != self.cfg.xid || m.chaddr().get(..6) != Some(&self.cfg.mac[..]) {
            return Err(ClientIgnored::NotOurs);
        }
        let kind = m.opts().msg_type().ok_or(ClientIgnored::Malformed(DropReason::NoMessageType))?;
        match (&self.phase, kind) {
            (Phase::Selecting, MessageType::Offer) => {
                let offer = lease_of(&m)?;
                self.phase = Phase::Requesting { offer, sent: 0 };
                self.answered(now);
                Ok(())
            }
            (Phase::Requesting { offer, .. }, MessageType::Ack) => {
                let lease = lease_of(&m)?;
                if lease.address != offer.address {
                    return Err(ClientIgnored::Unexpected(kind));
                }
                self.phase = Phase::Bound(lease);
                self.unanswered = 0;
                Ok(())
            }
            (Phase::Requesting { .. }, MessageType::Nak) => {
                self.phase = Phase::Selecting;
                self.answered(now);
                Ok(())
            }
            _ => Err(ClientIgnored::Unexpected(kind)),
        }
    }

    fn answered(&mut self, now: Instant) {
        self.unanswered = 0;
        self.next_send = now;
    }
}

fn lease_of(m: &v4::Message) -> Result<ClientLease, ClientIgnored> {
    let address = m.yiaddr();
    if address.is_unspecified() {
        return Err(ClientIgnored::NoAddress);
    }
    let opts = m.opts();
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => *ip,
        _ => return Err(ClientIgnored::Incomplete),
    };
    let prefix_len = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => {
            let bits = u32::from(*mask);
            let ones = bits.leading_ones();
            if bits.checked_shl(ones).unwrap_or(0) != 0 {
                return Err(ClientIgnored::Incomplete); // not a contiguous mask
            }
            ones as u8
        }
        _ => return Err(ClientIgnored::Incomplete),
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => vec![],
    };
    let domain = match opts.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(d)) => Some(d.clone()),
        _ => None,
    };
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => 3600,
    };
    Ok(ClientLease { address, prefix_len, router, dns, domain, server, lease_secs })
}
