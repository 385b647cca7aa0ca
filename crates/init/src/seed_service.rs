//! The seeder as a systemd service of the booted system.
//!
//! The stub's worker seeds from the moment the image is verified, before the image's init
//! runs. A sysadmin expects a long-running daemon to be a unit (`systemctl status
//! swarmboot-seed`, its log in the journal, a command line in `ps` that says what it is, a
//! stop that does not hold up shutdown). So before handing over, the stub leaves on the
//! tmpfs that becomes the booted system's `/run`:
//!
//! - its own binary ([`BINARY`]) and a [`SeedNote`] ([`NOTE`]: server, image, version, the
//!   keys, which files are there);
//! - a runtime unit ([`UNIT`], wanted by `multi-user.target` through [`WANTS`]; runtime units
//!   in `/run/systemd/system` are read by systemd and vanish with the machine, nothing is
//!   written into the image) whose `ExecStart` is `swarmboot-init seed NOTE`;
//! - the worker's pid ([`PID_FILE`]).
//!
//! When systemd starts the unit (after `network-online.target`: the image's own network
//! manager has had its say), the service stops the worker named in the pid file and seeds the
//! same verified files, listening on every address; when the machine's address changes, it
//! announces again from the new one. An image without systemd never reads the unit: the
//! worker seeds on.
//!
//! This module only says what to write; `seeder.rs` and `pid1.rs` do it.

use serde::{Deserialize, Serialize};
use swarmboot_image::Role;

/// The unit's name.
pub const SERVICE: &str = "swarmboot-seed.service";
/// The stub's binary, copied where the booted system can run it.
pub const BINARY: &str = "/run/swarmboot/bin/swarmboot-init";
/// The note the service reads.
pub const NOTE: &str = "/run/swarmboot/seed.toml";
/// The worker that seeds until the service takes over.
pub const PID_FILE: &str = "/run/swarmboot/seed.pid";
/// The runtime unit.
pub const UNIT: &str = "/run/systemd/system/swarmboot-seed.service";
/// Its `multi-user.target` wants link.
pub const WANTS: &str = "/run/systemd/system/multi-user.target.wants/swarmboot-seed.service";
/// A runtime unit that says on the console (through the kernel log) when the image reached
/// multi-user.target: systemd's own status lines are not reliable on a serial console once a
/// getty has hung it up.
pub const BOOTED_UNIT: &str = "/run/systemd/system/swarmboot-booted.service";
pub const BOOTED_WANTS: &str = "/run/systemd/system/multi-user.target.wants/swarmboot-booted.service";
/// What the booted unit says (after `swarmboot: NAME@VERSION`).
pub const BOOTED_SAYS: &str = "is up: multi-user.target reached";
/// Where the init a kexec carried along puts the carried image for the service (a bind mount
/// of the initramfs's image directory).
pub const CARRIED_IMAGE: &str = "/run/swarmboot/image";
/// The port the stub's worker listens on, and the service after it.
pub const PORT: u16 = 6881;
/// What the service does, rewritten every few seconds ([`SeedStats`], TOML): the node agent
/// shows it on the machine's page and reports it with its check-ins.
pub const STATS: &str = "/run/swarmboot/seed-stats.toml";

/// The seeder's counters now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedStats {
    /// Torrents seeded (one per file of the image).
    pub torrents: u32,
    /// Peers connected, over all torrents.
    pub peers: u32,
    /// Payload bytes sent to peers since the service started.
    pub uploaded: u64,
}

/// How long the service waits for the worker to go before it kills it.
pub const WORKER_GRACE_SECS: u64 = 3;

/// What the service seeds, from where, trusting which keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNote {
    /// The boot server's base URL (its tracker is at `/announce`).
    pub server: String,
    pub image: String,
    pub version: u32,
    /// Public keys (hex) the manifest may be signed with.
    pub trusted_keys: Vec<String>,
    /// The fetched image's directory (the layout `swarmboot_fetch::fetch` writes).
    pub dir: String,
    /// The roles that were fetched (the stub leaves out the kernel and initramfs when it
    /// switch_roots with its own kernel).
    pub roles: Vec<Role>,
}

impl SeedNote {
    /// The unit file that runs the service for this note.
    pub fn unit(&self) -> String {
        format!(
            "# Written by the swarmboot stub at boot; it lives on /run and goes with the machine.\n\
             # It serves the image this machine booted to the machines booting after it.\n\
             [Unit]\n\
             Description=swarmboot seeder of {image}@{version}\n\
             Documentation=man:swarmboot(8)\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             ExecStart={BINARY} seed {NOTE}\n\
             Environment=SWARMBOOT_LOG=info\n\
             Restart=on-failure\n\
             RestartSec=5\n\
             TimeoutStopSec=5\n\
             Nice=5\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            image = self.image,
            version = self.version,
        )
    }
}

/// The unit that says when `image@version` reached multi-user.target (see [`BOOTED_UNIT`]),
/// in the kernel log and to the boot server at `server`.
pub fn booted_unit(image: &str, version: u32, server: &str) -> String {
    format!(
        "# Written by the swarmboot stub at boot; it lives on /run and goes with the machine.\n\
         [Unit]\n\
         Description=swarmboot: {image}@{version} reached multi-user.target\n\
         After=multi-user.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={BINARY} booted {image}@{version} {server}\n"
    )
}

/// The kernel log line the booted unit writes (`/dev/kmsg`, level notice).
pub fn booted_line(image_at_version: &str) -> String {
    format!("<5>swarmboot: {image_at_version} {BOOTED_SAYS}\n")
}

/// The first address of `addresses` peers can reach this machine at: IPv4, not loopback,
/// link-local or unspecified. The service announces again when this changes.
pub fn reachable_address(addresses: impl IntoIterator<Item = std::net::Ipv4Addr>) -> Option<std::net::Ipv4Addr> {
    addresses.into_iter().find(|ip| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> SeedNote {
        SeedNote {
            server: "http://10.77.0.1:8080".into(),
            image: "deb12".into(),
            version: 3,
            trusted_keys: vec!["ab".repeat(32)],
            dir: "/run/swarmboot/image".into(),
            roles: vec![Role::Rootfs],
        }
    }

    #[test]
    fn the_note_round_trips_and_refuses_what_it_does_not_know() {
        let n = note();
        assert_eq!(toml::from_str::<SeedNote>(&toml::to_string(&n).unwrap()).unwrap(), n);
        let extra = format!("{}\nport = 1\n", toml::to_string(&n).unwrap());
        assert!(toml::from_str::<SeedNote>(&extra).is_err());
    }

    #[test]
    fn the_unit_runs_the_copied_binary_on_the_note_and_stops_quickly() {
        let unit = note().unit();
        assert!(unit.contains("ExecStart=/run/swarmboot/bin/swarmboot-init seed /run/swarmboot/seed.toml\n"), "{unit}");
        assert!(unit.contains("Description=swarmboot seeder of deb12@3\n"), "a description short enough for systemd's 80-column status lines: {unit}");
        assert!(unit.contains("After=network-online.target\n") && unit.contains("TimeoutStopSec=5\n"), "{unit}");
        assert!(WANTS.ends_with(SERVICE) && UNIT.ends_with(SERVICE));
    }

    #[test]
    fn the_booted_unit_runs_after_multi_user_and_says_so_in_the_kernel_log() {
        let unit = booted_unit("deb12", 3, "http://10.0.0.1:8080");
        assert!(unit.contains("After=multi-user.target\n") && unit.contains("ExecStart=/run/swarmboot/bin/swarmboot-init booted deb12@3 http://10.0.0.1:8080\n"), "{unit}");
        assert_eq!(booted_line("deb12@3"), "<5>swarmboot: deb12@3 is up: multi-user.target reached\n");
        assert!(BOOTED_WANTS.starts_with("/run/systemd/system/multi-user.target.wants/"));
    }

    #[test]
    fn the_reachable_address_skips_loopback_and_link_local() {
        use std::net::Ipv4Addr;
        let a = [Ipv4Addr::LOCALHOST, Ipv4Addr::new(169, 254, 1, 2), Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(10, 77, 0, 100)];
        assert_eq!(reachable_address(a), Some(Ipv4Addr::new(10, 77, 0, 100)));
        assert_eq!(reachable_address([Ipv4Addr::LOCALHOST]), None);
    }
}
