//! Every check of a parsed config, each problem named by its key.

use std::path::Path;

use swarmboot_dhcp::AddressRange;

use crate::schema::{Config, DhcpMode};
use crate::values::{in_net, masked, Net};

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Config {
    /// Every problem found. With `prefix_len`, also the checks against the served network.
    pub fn problems(&self, prefix_len: Option<u8>) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: String, message: String| out.push(Problem { key, message });
        let d = &self.dhcp;
        let prefix_len = prefix_len.or(self.server.address.prefix_len);
        if !self.is_configured() {
            // As installed: nothing is served, so only a DHCP mode without an interface is wrong.
            if d.mode != DhcpMode::Off {
                bad("server.interface".into(), format!("dhcp.mode = \"{}\" needs the interface to serve on, like br0", d.mode.as_str()));
            }
        } else if self.server.address.ip.is_unspecified() {
            bad("server.address".into(), format!("is required with server.interface: this server's IPv4 address on {}, like 10.77.0.1/24", self.server.interface));
        }
        if d.mode == DhcpMode::Authoritative && d.pool.is_empty() && d.reservation.is_empty() {
            bad("dhcp.pool".into(), "mode is \"authoritative\" but there is no pool to hand out".into());
        }
        if let Some(u) = &self.http.public_url {
            let host = u.strip_prefix("http://").unwrap_or("");
            if host.is_empty() || host.contains(char::is_whitespace) || u.ends_with('/') {
                bad("http.public_url".into(), format!("{u:?} must look like http://host:port (plain HTTP, no trailing slash)"));
            }
        }
        if let Some(m) = &self.build.mirror {
            let url = ["http://", "https://", "file://"].iter().any(|p| m.starts_with(p) && m.len() > p.len());
            let sources_file = m.starts_with('/') && Path::new(m).is_file();
            if !(url || sources_file) || m.contains(char::is_whitespace) {
                bad("build.mirror".into(), format!("{m:?} must be a mirror URL (http://, https://, file://) or the path of an existing file of apt sources"));
            }
        }
        for (key, total, per_key, per_client) in [
            ("http.max_connections", self.http.max_connections, "http.max_connections_per_client", self.http.max_connections_per_client),
            ("tftp.max_transfers", self.tftp.max_transfers, "tftp.max_transfers_per_client", self.tftp.max_transfers_per_client),
            ("swarm.max_peer_connections", self.swarm.max_peer_connections, "swarm.max_peer_connections_per_client", self.swarm.max_peer_connections_per_client),
        ] {
            if !(1..=100_000).contains(&total) {
                bad(key.into(), format!("{total} is out of range (1 to 100000)"));
            }
            if per_client == 0 || per_client > total {
                bad(per_key.into(), format!("{per_client} must be at least 1 and at most {key} ({total})"));
            }
        }
        if let Some(root) = &self.tftp.root {
            // Lexically: `..` and `.` resolved, so `/srv/../var/lib` is caught as well.
            let norm = |p: &Path| {
                p.components().fold(std::path::PathBuf::new(), |mut acc, c| {
                    match c {
                        std::path::Component::ParentDir => {
                            acc.pop();
                        }
                        std::path::Component::CurDir => {}
                        c => acc.push(c),
                    }
                    acc
                })
            };
            if norm(&self.server.state_dir).starts_with(norm(root)) {
                bad(
                    "tftp.root".into(),
                    format!(
                        "{} holds server.state_dir ({}): TFTP would serve the signing key and the lease database; use a directory of its own",
                        root.display(),
                        self.server.state_dir.display()
                    ),
                );
            }
        }
        if !(1..=255).contains(&self.tftp.max_timeout.0) {
            bad("tftp.max_timeout".into(), format!("{} s is out of range (1s to 255s, RFC 2349)", self.tftp.max_timeout.0));
        }
        if !(1..=3600).contains(&self.http.header_timeout.0) {
            bad("http.header_timeout".into(), format!("{} s is out of range (1s to 3600s)", self.http.header_timeout.0));
        }
        if !(1..=86_400).contains(&self.nodes.checkin_interval.0) {
            bad("nodes.checkin_interval".into(), format!("{} s is out of range (1s to 1d)", self.nodes.checkin_interval.0));
        }
        if !(1..=100).contains(&self.nodes.missed_before_lost) {
            bad("nodes.missed_before_lost".into(), format!("{} is out of range (1 to 100)", self.nodes.missed_before_lost));
        }
        if !(1..=604_800).contains(&self.nodes.command_ttl.0) {
            bad("nodes.command_ttl".into(), format!("{} s is out of range (1s to 7d)", self.nodes.command_ttl.0));
        }
        if !(1..=100_000).contains(&self.adc.max_users) {
            bad("adc.max_users".into(), format!("{} is out of range (1 to 100000)", self.adc.max_users));
        }
        let name = &self.adc.hub_name;
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            bad("adc.hub_name".into(), format!("{name:?}: 1 to 64 characters, no quotes, backslashes or control characters"));
        }
        if self.adc.listen.port() == 0 {
            bad("adc.listen".into(), "port 0: give the port the hub listens on (ADC's usual is 1511)".into());
        }
        if !(1..=64).contains(&self.swarm.upload_slots) {
            bad("swarm.upload_slots".into(), format!("{} is out of range (1 to 64)", self.swarm.upload_slots));
        }
        if d.lease_time.0 < 10 {
            bad("dhcp.lease_time".into(), format!("{} s is too short (at least 10s)", d.lease_time.0));
        }
        for (i, s) in d.subnet.iter().enumerate() {
            if s.pool.is_empty() {
                bad(format!("dhcp.subnet[{i}].pool"), "is empty".into());
            }
            if let Some(lt) = s.lease_time {
                if lt.0 < 10 {
                    bad(format!("dhcp.subnet[{i}].lease_time"), format!("{} s is too short (at least 10s)", lt.0));
                }
            }
        }

        // Every pool, with its key and its subnet, for the range checks.
        let mut pools: Vec<(String, AddressRange, Option<Net>)> = Vec::new();
        let own = prefix_len.map(|p| (masked(self.server.address.ip, p), p));
        for (i, p) in d.pool.iter().enumerate() {
            pools.push((format!("dhcp.pool[{i}]"), p.0, own));
        }
        for (i, s) in d.subnet.iter().enumerate() {
            for (j, p) in s.pool.iter().enumerate() {
                pools.push((format!("dhcp.subnet[{i}].pool[{j}]"), p.0, Some((s.network.network, s.network.prefix_len))));
            }
            if let Some((net, plen)) = own {
                let m = u32::from(swarmboot_dhcp::netmask(plen.min(s.network.prefix_len)));
                if u32::from(net) & m == u32::from(s.network.network) & m {
                    bad(format!("dhcp.subnet[{i}].network"), format!("{} overlaps the server's own network {net}/{plen}", s.network));
                }
            }
            if let Some(r) = s.router {
                if !in_net(r, s.network.network, s.network.prefix_len) {
                    bad(format!("dhcp.subnet[{i}].router"), format!("{r} is outside {}", s.network));
                }
            }
        }
        for (i, (key, range, net)) in pools.iter().enumerate() {
            if let Some((network, plen)) = net {
                if !in_net(range.first, *network, *plen) || !in_net(range.last, *network, *plen) {
                    let whose = if key.starts_with("dhcp.pool") { "the interface's subnet" } else { "its subnet" };
                    bad(key.clone(), format!("{}-{} is outside {whose} {network}/{plen}", range.first, range.last));
                }
            }
            for (other_key, other, _) in &pools[..i] {
                if range.overlaps(other) {
                    bad(key.clone(), format!("{}-{} overlaps {other_key} ({}-{})", range.first, range.last, other.first, other.last));
                }
            }
            if range.contains(self.server.address.ip) {
                bad(key.clone(), format!("contains the server's own address {}", self.server.address.ip));
            }
        }
        if let (Some(r), Some((net, plen))) = (d.router, own) {
            if !in_net(r, net, plen) {
                bad("dhcp.router".into(), format!("{r} is outside the interface's subnet {net}/{plen}"));
            }
        }
        for (i, r) in d.reservation.iter().enumerate() {
            let key = format!("dhcp.reservation[{i}]");
            if let Some(j) = d.reservation[..i].iter().position(|o| o.ip == r.ip) {
                bad(format!("{key}.ip"), format!("{} is already reserved by dhcp.reservation[{j}]", r.ip));
            }
            if let Some(j) = d.reservation[..i].iter().position(|o| o.mac == r.mac) {
                bad(format!("{key}.mac"), format!("{} already has dhcp.reservation[{j}]", r.mac.0));
            }
            let in_some_subnet = own.is_some_and(|(n, p)| in_net(r.ip, n, p)) || d.subnet.iter().any(|s| in_net(r.ip, s.network.network, s.network.prefix_len));
            if own.is_some() && !in_some_subnet {
                bad(format!("{key}.ip"), format!("{} is in no served subnet", r.ip));
            }
        }
        for (i, c) in self.boot.client.iter().enumerate() {
            if let Err(e) = swarmboot_bootplan::ClientRule::new(&c.mac, &c.image) {
                bad(format!("boot.client[{i}].mac"), e.to_string());
            }
        }
        if !(512..=65464).contains(&self.tftp.max_blksize) {
            bad("tftp.max_blksize".into(), format!("{} is outside 512..=65464", self.tftp.max_blksize));
        }
        if self.tftp.max_windowsize == 0 {
            bad("tftp.max_windowsize".into(), "must be at least 1".into());
        }
        for (key, file) in [("boot.bios_file", &self.boot.bios_file), ("boot.efi_x64_file", &self.boot.efi_x64_file)] {
            if file.is_empty() || file.len() > 120 {
                bad(key.into(), "must be a TFTP path of 1 to 120 bytes".into());
            }
        }
        out
    }
}
