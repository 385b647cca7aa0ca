//! Value types parsed from strings, with messages that say what was expected.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Deserialize;
use swarmboot_dhcp::{AddressRange, HwAddr};

/// `10.77.0.1` or `10.77.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostAddress {
    pub ip: Ipv4Addr,
    pub prefix_len: Option<u8>,
}

impl HostAddress {
    /// No address (`0.0.0.0`): a config that names no interface yet.
    pub(crate) fn unset() -> Self {
        HostAddress { ip: Ipv4Addr::UNSPECIFIED, prefix_len: None }
    }
}

impl TryFrom<String> for HostAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an IPv4 address like 10.77.0.1 or 10.77.0.1/24");
        match s.split_once('/') {
            None => Ok(HostAddress { ip: s.parse().map_err(|_| bad())?, prefix_len: None }),
            Some((ip, p)) => {
                let prefix_len: u8 = p.parse().map_err(|_| bad())?;
                if prefix_len > 32 {
                    return Err(bad());
                }
                Ok(HostAddress { ip: ip.parse().map_err(|_| bad())?, prefix_len: Some(prefix_len) })
            }
        }
    }
}

/// `10.78.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Network {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let a = HostAddress::try_from(s.clone()).map_err(|_| format!("`{s}` is not a network like 10.78.0.0/24"))?;
        let prefix_len = a.prefix_len.ok_or_else(|| format!("`{s}` has no prefix length: write it like 10.78.0.0/24"))?;
        let mask = u32::from(swarmboot_dhcp::netmask(prefix_len));
        if u32::from(a.ip) & !mask != 0 {
            return Err(format!("`{s}` has host bits set: the network is {}/{prefix_len}", Ipv4Addr::from(u32::from(a.ip) & mask)));
        }
        Ok(Network { network: a.ip, prefix_len })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// `10.77.0.100-10.77.0.199`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Pool(pub AddressRange);

impl TryFrom<String> for Pool {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an address range like 10.77.0.100-10.77.0.199");
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
            None => {
                let ip: Ipv4Addr = s.trim().parse().map_err(|_| bad())?;
                (ip, ip)
            }
        };
        if first > last {
            return Err(format!("`{s}` runs backwards: its first address is after its last"));
        }
        Ok(Pool(AddressRange { first, last }))
    }
}

/// A duration written like `12h`, `30m`, `90s` or `1d 6h`, held in whole seconds (named so
/// it does not shadow `std::time::Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Seconds(pub u32);

impl TryFrom<String> for Seconds {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let d = humantime::parse_duration(&s).map_err(|e| format!("`{s}` is not a duration like 12h, 30m or 90s ({e})"))?;
        let secs = u32::try_from(d.as_secs()).map_err(|_| format!("`{s}` is too long (at most 136 years)"))?;
        Ok(Seconds(secs))
    }
}

/// `52:54:00:12:34:56`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Mac(pub HwAddr);

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HwAddr::from_str(&s).map(Mac).map_err(|e| e.to_string())
    }
}

/// A network as (address, prefix length).
pub(crate) type Net = (Ipv4Addr, u8);

pub(crate) fn masked(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & u32::from(swarmboot_dhcp::netmask(prefix_len)))
}

pub(crate) fn in_net(ip: Ipv4Addr, network: Ipv4Addr, prefix_len: u8) -> bool {
    masked(ip, prefix_len) == network
}
