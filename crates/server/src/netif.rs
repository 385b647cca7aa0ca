//! Facts about the host's network interfaces that the config does not carry.

use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;

#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    #[error("cannot list network interfaces: {0}")]
    List(#[from] nix::Error),
    #[error("server.interface: there is no interface {0} with an IPv4 address")]
    NoSuchInterface(String),
    #[error("server.address: {addr} is not configured on {iface} (it has {have})")]
    AddressNotOnInterface { addr: Ipv4Addr, iface: String, have: String },
}

/// The prefix length of `addr` on interface `iface`.
pub fn prefix_of(iface: &str, addr: Ipv4Addr) -> Result<u8, NetifError> {
    let mut have = Vec::new();
    for ifa in getifaddrs()? {
        if ifa.interface_name != iface {
            continue;
        }
        let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) else {
            continue;
        };
        let prefix = u32::from(m.ip()).count_ones() as u8;
        if a.ip() == addr {
            return Ok(prefix);
        }
        have.push(format!("{}/{prefix}", a.ip()));
    }
    if have.is_empty() {
        return Err(NetifError::NoSuchInterface(iface.into()));
    }
    Err(NetifError::AddressNotOnInterface { addr, iface: iface.into(), have: have.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_slash_8() {
        assert_eq!(prefix_of("lo", Ipv4Addr::LOCALHOST).unwrap(), 8);
        let e = prefix_of("lo", Ipv4Addr::new(127, 0, 0, 9)).unwrap_err().to_string();
        assert!(e.contains("not configured on lo (it has 127.0.0.1/8)"), "{e}");
        assert!(matches!(prefix_of("no-such-if0", Ipv4Addr::LOCALHOST), Err(NetifError::NoSuchInterface(_))));
    }
}
