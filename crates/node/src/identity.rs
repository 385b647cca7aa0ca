//! Who the node is and whom it reports to, as the boot left it: the stub's note on `/run`
//! (the server it booted from, the image and version it verified), the MAC of the interface
//! the machine's default route leaves by (the NIC it booted with, on a machine with one
//! network), and what the seeder the stub left does. Plain functions over the files' text;
//! the agent reads the files.

use swarmboot_init::seed_service::SeedNote;

/// What the agent needs from the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The boot server's base URL.
    pub server: String,
    /// `NAME@VERSION`.
    pub image: String,
}

/// Most bytes of the note read (it is a few hundred).
pub const MAX_NOTE: usize = 64 * 1024;

/// The server and image from the stub's note (`/run/swarmboot/seed.toml`).
pub fn from_note(text: &str) -> Result<Identity, String> {
    if text.len() > MAX_NOTE {
        return Err(format!("the boot's note is {} bytes, more than {MAX_NOTE}", text.len()));
    }
    let note: SeedNote = toml::from_str(text).map_err(|e| format!("the boot's note cannot be read: {e}"))?;
    if !(note.server.starts_with("http://") || note.server.starts_with("https://")) {
        return Err(format!("the boot's note names server {:?}, not an http URL", note.server));
    }
    Ok(Identity { server: note.server.trim_end_matches('/').to_string(), image: format!("{}@{}", note.image, note.version) })
}

/// What the machine's seeder reports (`/run/swarmboot/seed-stats.toml`), if it can be read.
pub fn seeding(text: &str) -> Option<swarmboot_checkin::report::Seeding> {
    if text.len() > MAX_NOTE {
        return None;
    }
    let s: swarmboot_init::seed_service::SeedStats = toml::from_str(text).ok()?;
    Some(swarmboot_checkin::report::Seeding { torrents: s.torrents, peers: s.peers, uploaded: s.uploaded })
}

/// The interface of the IPv4 default route in `/proc/net/route` (the first, if several).
pub fn default_route_interface(route: &str) -> Option<String> {
    route.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags …: destination 0 and the route up (flag 1).
        let up = f.get(3).and_then(|x| u32::from_str_radix(x, 16).ok()).is_some_and(|flags| flags & 1 == 1);
        (f.len() >= 4 && f[1] == "00000000" && up && !f[0].is_empty() && !f[0].contains('/')).then(|| f[0].to_string())
    })
}

/// A MAC from sysfs (`/sys/class/net/IF/address`), lowercase, if it is one.
pub fn mac_from_sysfs(address: &str) -> Option<String> {
    let mac = address.trim().to_ascii_lowercase();
    swarmboot_checkin::report::is_mac(&mac).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_gives_the_server_and_the_image() {
        let note = "server = \"http://10.77.0.1:8080/\"\nimage = \"elchos\"\nversion = 3\ntrusted_keys = [\"ab\"]\ndir = \"/run/swarmboot/image\"\nroles = [\"rootfs\"]\n";
        assert_eq!(from_note(note), Ok(Identity { server: "http://10.77.0.1:8080".into(), image: "elchos@3".into() }));
        assert!(from_note("server = 1").unwrap_err().contains("cannot be read"));
        let file = note.replace("http://10.77.0.1:8080/", "file:///etc/passwd");
        assert!(from_note(&file).unwrap_err().contains("not an http URL"));
        assert!(from_note(&"#".repeat(MAX_NOTE + 1)).unwrap_err().contains("more than"));
    }

    #[test]
    fn the_seeders_counters_are_read() {
        let s = seeding("torrents = 3\npeers = 2\nuploaded = 123456\n").unwrap();
        assert_eq!((s.torrents, s.peers, s.uploaded), (3, 2, 123_456));
        assert_eq!(seeding("torrents = -1\n"), None);
        assert_eq!(seeding(""), None);
    }

    #[test]
    fn the_default_route_names_the_boot_interface() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     ens4\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     ens3\t00000000\t014D000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("ens3"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
        assert_eq!(default_route_interface("h\n../x\t00000000\t0\t0003\n"), None);
        assert_eq!(mac_from_sysfs("52:54:00:AB:cd:01\n").as_deref(), Some("52:54:00:ab:cd:01"));
        assert_eq!(mac_from_sysfs("00:00:00:00:00:00:00:00\n"), None);
    }
}
