//! elchOS, the image swarmboot boots by default: a Debian 12 system that shares the machine's
//! disks with the fleet (the file-sharing host of the elchOS design notes). It boots, keeps
//! seeding, lets the operator log in, and runs the node agent.
//!
//! - Network: systemd-networkd, DHCP on every wired NIC (`en*`, `eth*`) with the client
//!   identifier the stub used (the MAC), so the machine keeps the stub's lease and address; the
//!   hostname from DHCP.
//! - Operator login: on the serial console and the first text console (getty), and SSH.
//!   Root is locked unless the build was given `root_password_hash` (a crypt(3) hash, as
//!   `openssl passwd -6` or `mkpasswd -m sha-512` make) or `authorized_keys` (for SSH). The
//!   SSH host keys are made on each machine at its first start, not baked into the image.
//! - `elchos-agent.service`: the node agent (`swarmboot-node`, copied from the server that
//!   builds the image, with the server's public key: the key the agent checks commands with
//!   comes with the image, never from the network). It finds the machine's disks, mounts them
//!   read-only and shares them, and checks in with the server the stub booted from. A disk the
//!   owner labelled `ELCHOS-DATA` (or a blank partition named so, formatted with e2fsprogs'
//!   `mkfs.ext4`) is donated space: the agent holds and seeds the fleet's datasets there.
//! - FTP: Debian's vsftpd, its own unit masked: the agent runs it with its configuration.
//! - ADC: Debian's eiskaltdcpp-daemon (a headless DC++ client, no unit of its own): the agent
//!   runs it, shares the disks through it and joins the hub the server names.
//! - md RAID: `mdadm` is there for the agent, which assembles arrays read-only; Debian's own
//!   automatic assembly (udev's incremental rule, `AUTO` in mdadm.conf) and mdadm's periodic
//!   checks are off, so nothing assembles an array writable behind the agent's back.
//! - Left out of the squashfs: the initramfs in `/boot` (the manifest carries it), sound,
//!   GPU, media, wireless and Bluetooth drivers, documentation.

use crate::recipe::{Recipe, RootCopy, RootFile};

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
    /// The node agent and the key it trusts.
    pub agent: Option<Agent>,
}

/// The node agent an image carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// `swarmboot-node` on the building machine.
    pub binary: std::path::PathBuf,
    /// The server's public key (what `swarmboot key show` prints).
    pub server_key: String,
}

/// Where the agent is in the image, and the key it trusts.
pub const AGENT_BINARY: &str = "/usr/lib/swarmboot/swarmboot-node";
pub const AGENT_KEY: &str = "/etc/swarmboot/server.pub";

/// The Debian release elchOS is built from.
pub const SUITE: &str = "bookworm";

/// The kernel command line elchOS boots with: a login on the serial port and on the screen.
pub const CMDLINE: &str = "console=tty0 console=ttyS0,115200";

const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "iproute2",
    "procps",
    "kmod",
    "iputils-ping",
    "openssh-server",
    "linux-image-amd64",
    "mdadm",
    "ntfs-3g",
    "vsftpd",
    "eiskaltdcpp-daemon",
    "e2fsprogs",
];

/// `elchos-agent.service`: the agent from [`AGENT_BINARY`], trusting [`AGENT_KEY`].
fn agent_unit() -> String {
    format!(
        "[Unit]
Description=elchOS node agent: shares this machine's disks read-only, checks in with the boot server
Documentation=man:swarmboot(8)
After=network-online.target swarmboot-seed.service
Wants=network-online.target

[Service]
ExecStart={AGENT_BINARY} --disks --ftp --adc --boot-note /run/swarmboot/seed.toml --key-file {AGENT_KEY}
Restart=on-failure
RestartSec=5
StateDirectory=elchos
RuntimeDirectory=swarmboot-node

[Install]
WantedBy=multi-user.target
"
    )
}

/// No array is assembled but by the agent (read-only, members named).
const MDADM_CONF: &str = "# elchOS: the node agent assembles md arrays read-only; nothing else assembles them.\nAUTO -all\n";

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
        RootFile::new("/etc/systemd/system/elchos-ssh-host-keys.service", 0o644, HOST_KEYS_UNIT),
        RootFile::new("/etc/mdadm/mdadm.conf", 0o644, MDADM_CONF),
        // An empty rule of the same name hides Debian's incremental assembly on hot-plug.
        RootFile::new("/etc/udev/rules.d/64-md-raid-assembly.rules", 0o644, "# elchOS: md arrays are assembled read-only by the node agent\n"),
    ];
    let mut copies = Vec::new();
    let mut enable = vec!["systemd-networkd.service", "systemd-networkd-wait-online.service", "elchos-ssh-host-keys.service"];
    if let Some(agent) = &o.agent {
        files.push(RootFile::new("/etc/systemd/system/elchos-agent.service", 0o644, agent_unit()));
        files.push(RootFile::new(AGENT_KEY, 0o644, format!("# the boot server's key: elchos-agent checks the server's commands with it\n{}\n", agent.server_key.trim())));
        copies.push(RootCopy { from: agent.binary.clone(), path: AGENT_BINARY.into(), mode: 0o755 });
        enable.push("elchos-agent.service");
    }
    let mut commands = vec![
        // Host keys are per machine: the unit above makes them at the first start.
        "rm -f \"$1\"/etc/ssh/ssh_host_*".to_string(),
        // mdadm's periodic checks and its mail monitor: nothing for a read-only array.
        "systemctl --root=\"$1\" mask mdcheck_start.timer mdcheck_continue.timer mdmonitor-oneshot.timer mdmonitor.service".to_string(),
        // vsftpd runs under the agent, with the agent's configuration (anonymous, read-only).
        "systemctl --root=\"$1\" mask vsftpd.service".to_string(),
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
        copies,
        enable: enable.into_iter().map(str::to_string).collect(),
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
    fn the_agent_runs_with_the_servers_key_and_the_network_is_networkds() {
        let agent = Agent { binary: "/usr/lib/swarmboot/swarmboot-node".into(), server_key: "public key abcd\n".into() };
        let r = recipe(&ElchosOptions { include: vec!["htop".into()], agent: Some(agent), ..Default::default() });
        assert!(r.enable.contains(&"elchos-agent.service".to_string()) && r.enable.contains(&"systemd-networkd.service".to_string()));
        assert_eq!(r.copies[0].path, AGENT_BINARY);
        let key = r.files.iter().find(|f| f.path == AGENT_KEY).unwrap();
        assert!(key.content.ends_with("\npublic key abcd\n"), "{}", key.content);
        let unit = r.files.iter().find(|f| f.path.ends_with("elchos-agent.service")).unwrap();
        assert!(unit.content.contains(&format!("--key-file {AGENT_KEY}")) && unit.content.contains(AGENT_BINARY));
        assert!(unit.content.contains(" --adc ") && unit.content.contains(" --ftp "), "{}", unit.content);
        assert!(!recipe(&ElchosOptions::default()).enable.contains(&"elchos-agent.service".to_string()), "no agent, no unit");
        assert!(r.mmdebstrap_args("/t").iter().any(|a| a.starts_with("--include=") && a.ends_with("linux-image-amd64,mdadm,ntfs-3g,vsftpd,eiskaltdcpp-daemon,e2fsprogs,htop")));
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
