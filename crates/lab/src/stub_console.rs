//! What a stub says on a VM's console, read back by tests and benchmarks.

/// A stub's summary once its image is whole: "image verified: X MiB in T s, [D MiB from the
/// donated disk, ]A MiB from peers (B MiB of it from the server's seed), C MiB over HTTP; …"
/// (`swarmboot-init`'s worker; MiB rounded to the nearest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verified {
    pub total_mib: u64,
    pub secs: f64,
    /// 0 when the line does not say (no donated disk).
    pub from_donated_disk_mib: u64,
    pub from_peers_mib: u64,
    pub from_server_seed_mib: u64,
    pub over_http_mib: u64,
}

impl Verified {
    /// The figures of the first "image verified: " line in `console`, if any.
    pub fn find(console: &str) -> Option<Verified> {
        console.lines().find(|l| l.contains("image verified: ")).and_then(Verified::parse)
    }

    /// The figures of one such line.
    pub fn parse(line: &str) -> Option<Verified> {
        let rest = line.split_once("image verified: ")?.1;
        // The number right before `key`.
        let before = |key: &str| -> Option<u64> { rest.split_once(key)?.0.rsplit([' ', '(']).next()?.parse().ok() };
        Some(Verified {
            total_mib: rest.split(' ').next()?.parse().ok()?,
            secs: rest.split_once(" MiB in ")?.1.split(' ').next()?.parse().ok()?,
            from_donated_disk_mib: before(" MiB from the donated disk").unwrap_or(0),
            from_peers_mib: before(" MiB from peers")?,
            from_server_seed_mib: before(" MiB of it from the server's seed")?,
            over_http_mib: before(" MiB over HTTP")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Verified;

    #[test]
    fn the_summary_is_read_with_and_without_a_donated_disk() {
        let disk = "[   42.1] swarmboot: image verified: 141 MiB in 6.2 s, 141 MiB from the donated disk, 0 MiB from peers (0 MiB of it from the server's seed), 0 MiB over HTTP; seeding on 10.77.0.101:6881";
        assert_eq!(Verified::parse(disk), Some(Verified { total_mib: 141, secs: 6.2, from_donated_disk_mib: 141, from_peers_mib: 0, from_server_seed_mib: 0, over_http_mib: 0 }));
        let net = "swarmboot: image verified: 140 MiB in 9.3 s, 140 MiB from peers (115 MiB of it from the server's seed), 3 MiB over HTTP; seeding on -";
        assert_eq!(Verified::parse(net), Some(Verified { total_mib: 140, secs: 9.3, from_donated_disk_mib: 0, from_peers_mib: 140, from_server_seed_mib: 115, over_http_mib: 3 }));
        assert_eq!(Verified::find(&format!("swarmboot: stub starting\n{net}\n")).map(|v| v.total_mib), Some(140));
        assert_eq!(Verified::parse("swarmboot: stub starting"), None);
        assert_eq!(Verified::parse("swarmboot: image verified: lots"), None);
    }
}
