//! elchOS, the image swarmboot boots by default: a Debian 12 system that will share the
//! machine's disks with the fleet (the file-sharing host of the elchOS design notes). In this
//! release it boots, keeps seeding, lets the operator log in, and starts the node agent's
//! unit (a placeholder until the agent exists).
//!
//! - Network: systemd-networkd, DHCP on every wired NIC (`en*`, `eth*`) with the client
//!   identifier the stub used (the MAC), so the machine keeps the stub's lease and address; the
//!   hostname from DHCP.
//! - Operator login: on the serial console and the first text console (getty), and SSH.
//!   Root is locked unless the build was given `root_password_hash` (a crypt(3) hash, as
//!   `openssl passwd -6` or `mkpasswd -m sha-512` make) or `authorized_keys` (for SSH). The
//!   SSH host keys are made on each machine at its first start, not baked into the image.
//! - `elchos-agent.service`: the node agent's unit, a placeholder that says so.
//! - Left out of the squashfs: the initramfs in `/boot` (the manifest carries it), sound,
//!   GPU, media, wireless and Bluetooth drivers, documentation.

use crate::recipe::{Recipe, RootFile};

/// What the operator chooses at build time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElchosOptions {
    /// The apt source (see [`Recipe::mirror`]).
    pub mirror: Option<String>,
    /// More packages.
    pub include: Vec<String>,
    /// root's password as a crypt(3) hash; `None`: no password login.
    pub root_password_hash: Option<String>,
    /// SSH public keys for root (the lines of an `authorized_keys` file).
    pub authorized_keys: Option<String>,
}

/// The Debian release elchOS is built from.
pub const SUITE: &str = "bookworm";

/// The kernel command line elchOS boots with: a login on the serial port and on the screen.
pub const CMDLINE: &str = "console=tty0 console=ttyS0,115200";

const PACKAGES: &[&str] = &["systemd", "systemd-sysv", "udev", "iproute2", "procps", "kmod", "iputils-ping", "openssh-server", "linux-image-amd64"];

const AGENT_UNIT: &str = "[Unit]
Description=elchOS node agent (placeholder)
Documentation=man:swarmboot(8)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/echo \"elchos-agent: placeholder: the node agent (disks, check-in, stats) is not part of this elchOS yet\"

[Install]
WantedBy=multi-user.target
";

const HOST_KEYS_UNIT: &str = "[Unit]
Description=SSH host keys of this machine (made at its first start, not shipped in the image)
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
";

const NETWORK: &str = "[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
# The client identifier the stub used (type 1 + MAC): the same lease, the same address, so the
# seeder keeps its address and the pool holds one lease per machine.
ClientIdentifier=mac
";

/// What elchOS's squashfs leaves out: the initramfs (the manifest carries it), drivers a
/// file-sharing host has no use for (sound, GPU, media, wireless, Bluetooth, ISDN, industrial
/// I/O, staging), documentation.
pub const EXCLUDE: &[&str] = &[
    "boot/initrd.img-*",
    "usr/lib/modules/*/kernel/sound",
    "usr/lib/modules/*/kernel/drivers/gpu",
    "usr/lib/modules/*/kernel/drivers/media",
    "usr/lib/modules/*/kernel/drivers/net/wireless",
    "usr/lib/modules/*/kernel/drivers/bluetooth",
    "usr/lib/modules/*/kernel/drivers/staging",
    "usr/lib/modules/*/kernel/drivers/iio",
    "usr/lib/modules/*/kernel/drivers/isdn",
    "usr/lib/modules/*/kernel/net/wireless",
    "usr/lib/modules/*/kernel/net/mac80211",
    "usr/lib/modules/*/kernel/net/bluetooth",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
];

/// elchOS as a recipe.
pub fn recipe(o: &ElchosOptions) -> Recipe {
    let mut files = vec![
        RootFile::new("/etc/hostname", 0o644, "elchos\n"),
        RootFile::new("/etc/elchos-release", 0o644, format!("elchOS, built by swarmboot image build from Debian {SUITE}\n")),
        RootFile::new("/etc/issue", 0o644, "elchOS \\n \\l\n(root logs in with the password or SSH key given to `swarmboot image build elchos`; none given: locked)\n\n"),
        RootFile::new("/etc/systemd/network/20-wired.network", 0o644, NETWORK),
        RootFile::new("/etc/systemd/system/elchos-agent.service", 0o644, AGENT_UNIT),
        RootFile::new("/etc/systemd/system/elchos-ssh-host-keys.service", 0o644, HOST_KEYS_UNIT),
    ];
    let mut commands = vec![
        // Host keys are per machine: the unit above makes them at the first start.
        "rm -f \"$1\"/etc/ssh/ssh_host_*".to_string(),
    ];
    if let Some(keys) = &o.authorized_keys {
        files.push(RootFile::new("/root/.ssh/authorized_keys", 0o600, keys.clone()));
    }
    if let Some(hash) = &o.root_password_hash {
        // The hash goes through a file, never through a shell word.
        files.push(RootFile::new("/root/.elchos-root-hash", 0o600, format!("{hash}\n")));
        commands.push("chroot \"$1\" sh -c 'usermod -p \"$(cat /root/.elchos-root-hash)\" root' && rm -f \"$1\"/root/.elchos-root-hash".to_string());
    } else {
        commands.push("chroot \"$1\" passwd -l root".to_string());
    }
    Recipe {
        name: "elchos".into(),
        suite: SUITE.into(),
        mirror: o.mirror.clone(),
        packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
        include: o.include.clone(),
        files,
        enable: ["systemd-networkd.service", "systemd-networkd-wait-online.service", "elchos-agent.service", "elchos-ssh-host-keys.service"]
            .iter()
            .map(|u| u.to_string())
            .collect(),
        commands,
        exclude: EXCLUDE.iter().map(|e| e.to_string()).collect(),
    }
}

/// Whether `hash` looks like a crypt(3) hash (`$id$…`), not a password typed by mistake.
pub fn is_crypt_hash(hash: &str) -> bool {
    let parts: Vec<&str> = hash.split('$').collect();
    hash.starts_with('$') && parts.len() >= 4 && !parts[1].is_empty() && !hash.contains(char::is_whitespace) && !hash.contains(['\'', '"', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_locked_unless_a_hash_or_key_is_given() {
        let locked = recipe(&ElchosOptions::default());
        assert!(locked.commands.iter().any(|c| c.contains("passwd -l root")));
        assert!(!locked.files.iter().any(|f| f.path.starts_with("/root/")));
        let with = recipe(&ElchosOptions { root_password_hash: Some("$6$salt$hash".into()), authorized_keys: Some("ssh-ed25519 AAAA op@desk\n".into()), ..Default::default() });
        assert!(with.commands.iter().any(|c| c.contains("usermod -p")) && !with.commands.iter().any(|c| c.contains("passwd -l")));
        assert!(!with.commands.iter().any(|c| c.contains("$6$salt$hash")), "the hash is never a shell word");
        let keys = with.files.iter().find(|f| f.path == "/root/.ssh/authorized_keys").unwrap();
        assert_eq!((keys.mode, keys.content.as_str()), (0o600, "ssh-ed25519 AAAA op@desk\n"));
    }

    #[test]
    fn the_agent_runs_and_the_network_is_networkds() {
        let r = recipe(&ElchosOptions { include: vec!["htop".into()], ..Default::default() });
        assert!(r.enable.contains(&"elchos-agent.service".to_string()) && r.enable.contains(&"systemd-networkd.service".to_string()));
        assert!(r.mmdebstrap_args("/t").iter().any(|a| a.starts_with("--include=") && a.ends_with(",linux-image-amd64,htop")));
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn crypt_hashes_are_told_from_passwords() {
        assert!(is_crypt_hash("$6$rounds=5000$salt$abc"));
        assert!(is_crypt_hash("$y$j9T$salt$abc"));
        assert!(!is_crypt_hash("hunter2"));
        assert!(!is_crypt_hash("$6$a b$c"));
    }
}
