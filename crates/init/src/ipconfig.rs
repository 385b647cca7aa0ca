//! The lease file klibc's `ipconfig` leaves in an initramfs-tools boot, `/run/net-<device>.conf`
//! (shell assignments), which programs of the booted system read for what DHCP said: LTSP's
//! init takes the DNS servers, the domain and the host name from it. The stub writes the same
//! file for its own lease, so those programs find what they would after an initramfs-tools
//! boot. A server's domain name is hostile input: only host-name characters are kept.

use swarmboot_dhcp::client::ClientLease;

/// Where the file goes for `device`.
pub fn path(device: &str) -> String {
    format!("/run/net-{device}.conf")
}

/// The file for `device`'s `lease`, in ipconfig's variable names.
pub fn file(device: &str, lease: &ClientLease) -> String {
    let mask = if lease.prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(lease.prefix_len.min(32))) };
    let broadcast = std::net::Ipv4Addr::from(u32::from(lease.address) | !mask);
    let dns = |i: usize| lease.dns.get(i).map_or("0.0.0.0".to_string(), |a| a.to_string());
    let domain: String = lease.domain.as_deref().unwrap_or_default().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')).take(253).collect();
    let device: String = device.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    [
        ("DEVICE", device),
        ("PROTO", "dhcp".into()),
        ("IPV4ADDR", lease.address.to_string()),
        ("IPV4BROADCAST", broadcast.to_string()),
        ("IPV4NETMASK", std::net::Ipv4Addr::from(mask).to_string()),
        ("IPV4GATEWAY", lease.router.map_or("0.0.0.0".into(), |r| r.to_string())),
        ("IPV4DNS0", dns(0)),
        ("IPV4DNS1", dns(1)),
        ("HOSTNAME", String::new()),
        ("DNSDOMAIN", domain),
        ("ROOTSERVER", lease.server.to_string()),
        ("DHCPLEASETIME", lease.lease_secs.to_string()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}='{v}'\n"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_lease_in_ipconfigs_words_and_nothing_a_shell_would_run() {
        let lease = ClientLease {
            address: Ipv4Addr::new(192, 168, 67, 176),
            prefix_len: 24,
            router: Some(Ipv4Addr::new(192, 168, 67, 1)),
            dns: vec![Ipv4Addr::new(192, 168, 67, 1)],
            domain: Some("lab.example'; reboot; '".into()),
            server: Ipv4Addr::new(192, 168, 67, 1),
            lease_secs: 43200,
        };
        let f = file("ens3", &lease);
        assert_eq!(path("ens3"), "/run/net-ens3.conf");
        for line in [
            "DEVICE='ens3'",
            "IPV4ADDR='192.168.67.176'",
            "IPV4BROADCAST='192.168.67.255'",
            "IPV4NETMASK='255.255.255.0'",
            "IPV4GATEWAY='192.168.67.1'",
            "IPV4DNS0='192.168.67.1'",
            "IPV4DNS1='0.0.0.0'",
            "ROOTSERVER='192.168.67.1'",
            "DHCPLEASETIME='43200'",
        ] {
            assert!(f.lines().any(|l| l == line), "{line} in:\n{f}");
        }
        assert!(f.contains("DNSDOMAIN='lab.examplereboot'\n"), "quotes, spaces and ; are dropped:\n{f}");
        assert_eq!(f.matches('\'').count(), 2 * f.lines().count(), "every value is one quoted word");
    }
}
