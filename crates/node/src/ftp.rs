//! Anonymous FTP of the shares, read-only, by Debian's vsftpd (a small, long-hardened FTP
//! server whose anonymous mode is chrooted and write-free by configuration). The agent writes
//! its configuration ([`vsftpd_conf`]), runs it, and reads its transfer log
//! ([`downloads`]) for the bytes served per share.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Where vsftpd serves from and listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpConfig {
    /// The directory each share is bind-mounted in, read-only, by its name (in the run
    /// directory): anonymous users are chrooted there and see each share as a directory.
    pub root: String,
    pub port: u16,
    /// Passive data ports (first, last).
    pub passive: (u16, u16),
    /// vsftpd's transfer log.
    pub log: String,
    /// An empty directory, not writable by the FTP user (vsftpd's `secure_chroot_dir`).
    pub empty_dir: String,
    /// Most sessions in all and from one address.
    pub max_clients: u32,
    pub max_per_ip: u32,
}

/// The configuration file: anonymous, read-only, no local users, bounded sessions and idle
/// times, downloads logged in vsftpd's own format.
pub fn vsftpd_conf(c: &FtpConfig) -> String {
    let mut s = String::from("# Written by swarmboot-node at start: anonymous, read-only FTP of the shares.\n");
    let lines: [(&str, String); 31] = [
        ("listen", "YES".into()),
        ("listen_ipv6", "NO".into()),
        ("listen_port", c.port.to_string()),
        ("background", "NO".into()),
        ("anonymous_enable", "YES".into()),
        ("no_anon_password", "YES".into()),
        ("anon_root", c.root.clone()),
        ("local_enable", "NO".into()),
        ("write_enable", "NO".into()),
        ("anon_upload_enable", "NO".into()),
        ("anon_mkdir_write_enable", "NO".into()),
        ("anon_other_write_enable", "NO".into()),
        ("hide_ids", "YES".into()),
        ("dirmessage_enable", "NO".into()),
        ("ls_recurse_enable", "NO".into()),
        ("xferlog_enable", "YES".into()),
        ("xferlog_std_format", "NO".into()),
        ("vsftpd_log_file", c.log.clone()),
        ("max_clients", c.max_clients.to_string()),
        ("max_per_ip", c.max_per_ip.to_string()),
        ("idle_session_timeout", "120".into()),
        ("data_connection_timeout", "120".into()),
        ("accept_timeout", "60".into()),
        ("connect_timeout", "60".into()),
        ("pasv_enable", "YES".into()),
        ("pasv_min_port", c.passive.0.to_string()),
        ("pasv_max_port", c.passive.1.to_string()),
        ("secure_chroot_dir", c.empty_dir.clone()),
        ("ftp_username", "ftp".into()),
        ("ssl_enable", "NO".into()),
        ("pam_service_name", "vsftpd".into()),
    ];
    for (k, v) in lines {
        let _ = writeln!(s, "{k}={v}");
    }
    s
}

/// Longest log line read (a longer one is skipped).
pub const MAX_LINE: usize = 8192;

/// The completed downloads in vsftpd's log text: (share, bytes). A line looks like
/// `… [pid 7] [ftp] OK DOWNLOAD: Client "10.0.0.5", "/music/a b.mp3", 4096 bytes, 812.3Kbyte/sec`;
/// the share is the path's first component (the client is chrooted in the share root). Failed
/// transfers (`FAIL DOWNLOAD`) sent bytes too and count.
pub fn downloads(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter(|l| l.len() <= MAX_LINE)
        .filter_map(|l| {
            let rest = l.split_once(" DOWNLOAD: Client \"")?.1;
            let (_, rest) = rest.split_once("\", \"")?;
            // The path may hold `", ` itself: the byte count follows the last one.
            let (path, tail) = rest.rsplit_once("\", ")?;
            let bytes: u64 = tail.split_once(" bytes")?.0.trim().parse().ok()?;
            let share = path.trim_start_matches('/').split('/').next().filter(|s| !s.is_empty())?;
            Some((share.to_string(), bytes))
        })
        .collect()
}

/// What brings the FTP root's bind mounts (`bound`: name → directory) to the shares
/// (`wanted`): the names to unbind (gone, stopped, or now another directory), then the binds
/// to make.
pub fn bind_changes(bound: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> (Vec<String>, Vec<(String, String)>) {
    let unbind = bound.iter().filter(|(name, dir)| wanted.get(*name) != Some(dir)).map(|(name, _)| name.clone()).collect();
    let bind = wanted.iter().filter(|(name, dir)| bound.get(*name) != Some(dir)).map(|(n, d)| (n.clone(), d.clone())).collect();
    (unbind, bind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FtpConfig {
        FtpConfig {
            root: "/srv/elchos".into(),
            port: 21,
            passive: (40000, 40199),
            log: "/run/swarmboot-node/vsftpd.log".into(),
            empty_dir: "/run/swarmboot-node/vsftpd-empty".into(),
            max_clients: 200,
            max_per_ip: 16,
        }
    }

    #[test]
    fn the_configuration_is_anonymous_read_only_and_bounded() {
        let conf = vsftpd_conf(&config());
        let get = |k: &str| conf.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("{k} in\n{conf}"));
        for (k, v) in [
            ("anonymous_enable", "YES"),
            ("local_enable", "NO"),
            ("write_enable", "NO"),
            ("anon_upload_enable", "NO"),
            ("anon_root", "/srv/elchos"),
            ("max_per_ip", "16"),
            ("background", "NO"),
            ("pasv_min_port", "40000"),
        ] {
            assert_eq!(get(k), v, "{k}");
        }
        // One key per line, no duplicates (vsftpd takes the last).
        let keys: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).map(|l| l.split('=').next().unwrap()).collect();
        let mut dedup = keys.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(keys.len(), dedup.len());
    }

    #[test]
    fn downloads_are_counted_per_share() {
        let log = "Sun Dec  6 23:10:10 2026 [pid 7] CONNECT: Client \"10.77.0.1\"\n\
                   Sun Dec  6 23:10:10 2026 [pid 8] [ftp] OK LOGIN: Client \"10.77.0.1\", anon password \"?\"\n\
                   Sun Dec  6 23:10:11 2026 [pid 9] [ftp] OK DOWNLOAD: Client \"10.77.0.1\", \"/music/sub/data.bin\", 200000 bytes, 9000.00Kbyte/sec\n\
                   Sun Dec  6 23:10:12 2026 [pid 9] [ftp] OK DOWNLOAD: Client \"10.77.0.1\", \"/docs/a \", b\", 5 bytes, 1.00Kbyte/sec\n\
                   Sun Dec  6 23:10:13 2026 [pid 9] [ftp] FAIL DOWNLOAD: Client \"10.77.0.1\", \"/music/big.iso\", 1024 bytes, 1.00Kbyte/sec\n\
                   Sun Dec  6 23:10:14 2026 [pid 9] [ftp] OK DOWNLOAD: Client \"10.77.0.1\", \"/\", 3 bytes, 1.00Kbyte/sec\n\
                   garbage DOWNLOAD: Client \"x\", \"/music/y\", lots bytes\n";
        assert_eq!(downloads(log), [("music".to_string(), 200_000), ("docs".into(), 5), ("music".into(), 1024)]);
        assert!(downloads(&format!("OK DOWNLOAD: Client \"a\", \"/music/{}\", 5 bytes", "x".repeat(MAX_LINE))).is_empty());
    }

    #[test]
    fn the_ftp_roots_binds_follow_the_shares() {
        let m = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<BTreeMap<_, _>>();
        let bound = m(&[("music", "/srv/elchos/music"), ("usb", "/srv/elchos/usb"), ("docs", "/srv/elchos/docs")]);
        // usb pulled, docs now another disk's, photos new.
        let wanted = m(&[("music", "/srv/elchos/music"), ("docs", "/srv/elchos/docs-2"), ("photos", "/srv/elchos/photos")]);
        let (unbind, bind) = bind_changes(&bound, &wanted);
        assert_eq!(unbind, ["docs", "usb"]);
        assert_eq!(bind, [("docs".to_string(), "/srv/elchos/docs-2".to_string()), ("photos".to_string(), "/srv/elchos/photos".to_string())]);
        assert_eq!(bind_changes(&wanted, &wanted), (vec![], vec![]));
    }
}
