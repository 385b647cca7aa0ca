//! What the core needs to know about the network it serves. Built by the config crate from TOML.

use std::net::Ipv4Addr;

use crate::boot::BootSettings;
use crate::values::HwAddr;

/// How the server takes part in DHCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hand out nothing.
    Off,
    /// Hand out addresses from the pools, and boot information to PXE clients.
    Authoritative,
    /// Another server hands out addresses; answer PXE clients with boot information only.
    Proxy,
}

/// An inclusive range of IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AddressRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// One IPv4 subnet the server hands out addresses on: the one on its own interface, or one
/// behind a relay agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    pub pools: Vec<AddressRange>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Lease time in seconds.
    pub lease_secs: u32,
}

impl Subnet {
    pub fn mask(&self) -> Ipv4Addr {
        netmask(self.prefix_len)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask()) == u32::from(self.network)
    }
    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        self.pools.iter().any(|p| p.contains(ip))
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !u32::from(self.mask()))
    }
}

/// The netmask for a prefix length (0..=32).
pub fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = if prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix_len.min(32))) };
    Ipv4Addr::from(bits)
}

/// A fixed address for one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub hwaddr: HwAddr,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

/// Everything the core decides with. `subnets[0]` is the subnet of the server's own interface;
/// the others are reached through relays.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// The server's address on the boot network: server identifier and next-server.
    pub server_ip: Ipv4Addr,
    pub subnets: Vec<Subnet>,
    pub reservations: Vec<Reservation>,
    /// How long a DECLINEd address stays out of use, in seconds.
    pub decline_secs: u32,
    /// How long an OFFERed address is held for the client that was offered it, in seconds.
    pub offer_secs: u32,
    /// Addresses one machine (chaddr) holds at once, over all its client ids (firmware,
    /// iPXE, the stub, the booted system): see [`DEFAULT_MAX_LEASES_PER_MACHINE`].
    pub max_leases_per_machine: usize,
    pub boot: BootSettings,
}

/// A PXE boot uses up to four client ids on one machine (firmware, iPXE, the stub, the
/// booted system), each of which may bind.
pub const DEFAULT_MAX_LEASES_PER_MACHINE: usize = 4;

/// A [`Settings`] value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("no subnet: the server's own subnet must come first")]
    NoSubnet,
    #[error("pool {first}-{last} is outside subnet {network}/{prefix_len}")]
    PoolOutsideSubnet { first: Ipv4Addr, last: Ipv4Addr, network: Ipv4Addr, prefix_len: u8 },
    #[error("pools {a_first}-{a_last} and {b_first}-{b_last} overlap")]
    PoolsOverlap { a_first: Ipv4Addr, a_last: Ipv4Addr, b_first: Ipv4Addr, b_last: Ipv4Addr },
    #[error("reservation {ip} for {hwaddr} is in no configured subnet")]
    ReservationOutsideSubnets { ip: Ipv4Addr, hwaddr: HwAddr },
    #[error("address {ip} is reserved twice")]
    DuplicateReservation { ip: Ipv4Addr },
    #[error("subnets {a} and {b} overlap")]
    SubnetsOverlap { a: String, b: String },
}

impl Settings {
    /// Checks the invariants the core relies on.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.subnets.is_empty() {
            return Err(SettingsError::NoSubnet);
        }
        let mut all_pools: Vec<AddressRange> = Vec::new();
        for (i, s) in self.subnets.iter().enumerate() {
            for other in &self.subnets[..i] {
                let m = u32::from(netmask(s.prefix_len.min(other.prefix_len)));
                if u32::from(s.network) & m == u32::from(other.network) & m {
                    return Err(SettingsError::SubnetsOverlap { a: format!("{}/{}", other.network, other.prefix_len), b: format!("{}/{}", s.network, s.prefix_len) });
                }
            }
            for p in &s.pools {
                if !s.contains(p.first) || !s.contains(p.last) {
                    return Err(SettingsError::PoolOutsideSubnet { first: p.first, last: p.last, network: s.network, prefix_len: s.prefix_len });
                }
                if let Some(q) = all_pools.iter().find(|q| q.overlaps(p)) {
                    return Err(SettingsError::PoolsOverlap { a_first: q.first, a_last: q.last, b_first: p.first, b_last: p.last });
                }
                all_pools.push(*p);
            }
        }
        for (i, r) in self.reservations.iter().enumerate() {
            if !self.subnets.iter().any(|s| s.contains(r.ip)) {
                return Err(SettingsError::ReservationOutsideSubnets { ip: r.ip, hwaddr: r.hwaddr.clone() });
            }
            if self.reservations[..i].iter().any(|o| o.ip == r.ip) {
                return Err(SettingsError::DuplicateReservation { ip: r.ip });
            }
        }
        Ok(())
    }
}
