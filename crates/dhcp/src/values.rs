//! The plain values every part of the core shares, and nothing else: hardware addresses,
//! client identifiers, why a datagram is dropped, time as the shell passes it in, the ports.
//! A leaf: it imports no other module of the crate.

use std::fmt;
use std::str::FromStr;

/// Seconds since the Unix epoch. The shell reads the clock; the core only compares numbers.
pub type UnixTime = u64;

/// The DHCP server port (also the port relays listen on).
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot server port, where proxyDHCP REQUESTs arrive.
pub const PXE_PORT: u16 = 4011;

/// A client hardware address (`chaddr`, `hlen` bytes long; 6 for Ethernet).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HwAddr(Vec<u8>);

impl HwAddr {
    pub fn new(bytes: &[u8]) -> Self {
        HwAddr(bytes.to_vec())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for HwAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HwAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A hardware address that is not colon- or dash-separated hex bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a hardware address like 52:54:00:12:34:56")]
pub struct BadHwAddr(pub String);

impl FromStr for HwAddr {
    type Err = BadHwAddr;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes: Result<Vec<u8>, _> = s.split([':', '-']).map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).map_err(|_| ()) } else { Err(()) }).collect();
        match bytes {
            Ok(b) if !b.is_empty() && b.len() <= 16 => Ok(HwAddr(b)),
            _ => Err(BadHwAddr(s.to_string())),
        }
    }
}

/// How a client is told apart: option 61 when it sends one, else hardware type + `chaddr`
/// (the same bytes RFC 2132 suggests for option 61).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Vec<u8>);

impl ClientId {
    pub fn new(bytes: Vec<u8>) -> Self {
        ClientId(bytes)
    }
    pub fn from_hwaddr(htype: u8, hwaddr: &HwAddr) -> Self {
        let mut v = Vec::with_capacity(1 + hwaddr.as_bytes().len());
        v.push(htype);
        v.extend_from_slice(hwaddr.as_bytes());
        ClientId(v)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a datagram got no reply. The malformed ones are counted as such by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    // Malformed or hostile.
    Oversized,
    Truncated,
    BadMagic,
    Undecodable,
    NotARequest,
    BadHardwareAddress,
    NoMessageType,
    MissingRequestedIp,
    // Well-formed, but not ours to answer.
    ModeOff,
    ForOtherServer,
    NotPxeClient,
    UnexpectedMessage,
    NoSubnetForRelay,
    PoolExhausted,
    NoBootFile,
    NotTheHolder,
}

impl DropReason {
    pub const ALL: [DropReason; 16] = [
        DropReason::Oversized,
        DropReason::Truncated,
        DropReason::BadMagic,
        DropReason::Undecodable,
        DropReason::NotARequest,
        DropReason::BadHardwareAddress,
        DropReason::NoMessageType,
        DropReason::MissingRequestedIp,
        DropReason::ModeOff,
        DropReason::ForOtherServer,
        DropReason::NotPxeClient,
        DropReason::UnexpectedMessage,
        DropReason::NoSubnetForRelay,
        DropReason::PoolExhausted,
        DropReason::NoBootFile,
        DropReason::NotTheHolder,
    ];

    /// A packet no correct client sends.
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            DropReason::Oversized
                | DropReason::Truncated
                | DropReason::BadMagic
                | DropReason::Undecodable
                | DropReason::NotARequest
                | DropReason::BadHardwareAddress
                | DropReason::NoMessageType
                | DropReason::MissingRequestedIp
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Oversized => "oversized",
            DropReason::Truncated => "truncated",
            DropReason::BadMagic => "bad_magic",
            DropReason::Undecodable => "undecodable",
            DropReason::NotARequest => "not_a_request",
            DropReason::BadHardwareAddress => "bad_hardware_address",
            DropReason::NoMessageType => "no_message_type",
            DropReason::MissingRequestedIp => "missing_requested_ip",
            DropReason::ModeOff => "mode_off",
            DropReason::ForOtherServer => "for_other_server",
            DropReason::NotPxeClient => "not_pxe_client",
            DropReason::UnexpectedMessage => "unexpected_message",
            DropReason::NoSubnetForRelay => "no_subnet_for_relay",
            DropReason::PoolExhausted => "pool_exhausted",
            DropReason::NoBootFile => "no_boot_file",
            DropReason::NotTheHolder => "not_the_holder",
        }
    }
}
