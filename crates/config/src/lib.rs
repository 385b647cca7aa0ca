//! swarmboot's configuration file (`/etc/swarmboot/swarmboot.toml`): the serde schema, its
//! defaults, and validation whose messages name the key and the problem.
//!
//! Main type: [`Config`]. [`Config::parse`] refuses unknown keys and malformed values;
//! [`Config::dhcp_settings`] checks the DHCP section against the served network and builds the
//! DHCP core's [`swarmboot_dhcp::Settings`].
//!
//! What it does not do: read network interfaces (the server passes the interface's prefix in)
//! or open files other than the one it is asked to load.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use swarmboot_dhcp::{AddressRange, BootSettings, HwAddr, Mode, Reservation, Settings, Subnet};

pub const DEFAULT_PATH: &str = "/etc/swarmboot/swarmboot.toml";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub dhcp: DhcpSection,
    #[serde(default)]
    pub boot: BootSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub tftp: TftpSection,
    #[serde(default)]
    pub swarm: SwarmSection,
    #[serde(default)]
    pub build: BuildSection,
    /// Where the file was read from (for messages).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The NIC facing the boot network. Empty (as installed): not configured yet, and
    /// `swarmboot serve` serves nothing (see [`Config::is_configured`]).
    #[serde(default)]
    pub interface: String,
    /// This server's IPv4 address on it, optionally with its prefix (`10.77.0.1/24`). Without a
    /// prefix, the server reads it from the interface. Required with `interface`.
    #[serde(default = "HostAddress::unset")]
    pub address: HostAddress,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/swarmboot")
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection { interface: String::new(), address: HostAddress::unset(), state_dir: default_state_dir() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    #[default]
    Off,
    Authoritative,
    Proxy,
}

impl DhcpMode {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            DhcpMode::Off => "off",
            DhcpMode::Authoritative => "authoritative",
            DhcpMode::Proxy => "proxy",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpSection {
    #[serde(default)]
    pub mode: DhcpMode,
    #[serde(default)]
    pub pool: Vec<Pool>,
    #[serde(default = "default_lease_time")]
    pub lease_time: Seconds,
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    #[serde(default)]
    pub domain: Option<String>,
    /// How long a DECLINEd address stays unused.
    #[serde(default = "default_decline_time")]
    pub decline_time: Seconds,
    #[serde(default)]
    pub reservation: Vec<ReservationEntry>,
    #[serde(default)]
    pub subnet: Vec<RelayedSubnet>,
}

impl Default for DhcpSection {
    fn default() -> Self {
        DhcpSection {
            mode: DhcpMode::Off,
            pool: vec![],
            lease_time: default_lease_time(),
            router: None,
            dns: vec![],
            domain: None,
            decline_time: default_decline_time(),
            reservation: vec![],
            subnet: vec![],
        }
    }
}

fn default_lease_time() -> Seconds {
    Seconds(12 * 3600)
}
fn default_decline_time() -> Seconds {
    Seconds(600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationEntry {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub hostname: Option<String>,
}

/// A subnet behind a DHCP relay, chosen by the relay's `giaddr`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayedSubnet {
    pub network: Network,
    pub pool: Vec<Pool>,
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    /// Defaults to `[dhcp] dns`.
    #[serde(default)]
    pub dns: Option<Vec<Ipv4Addr>>,
    /// Defaults to `[dhcp] lease_time`.
    #[serde(default)]
    pub lease_time: Option<Seconds>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    /// iPXE for BIOS PXE ROMs, as a TFTP path.
    #[serde(default = "default_bios_file")]
    pub bios_file: String,
    /// iPXE for x86-64 UEFI: `snponly.efi` (default) or `ipxe.efi` for NICs without SNP.
    #[serde(default = "default_efi_file")]
    pub efi_x64_file: String,
    /// The image a machine boots when no `[[boot.client]]` rule matches it (default: elchos,
    /// which `swarmboot image build elchos` makes).
    #[serde(default = "default_image")]
    pub default_image: Option<String>,
    /// `"swarm"`: machines boot the stub, which fetches the image from peers (falls back to
    /// direct while no stub is built); `"direct"`: iPXE loads the image's kernel and initrd.
    #[serde(default)]
    pub mode: BootModeSetting,
    /// Per-machine overrides, first match wins.
    #[serde(default)]
    pub client: Vec<ClientEntry>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootModeSetting {
    #[default]
    Swarm,
    Direct,
}

impl From<BootModeSetting> for swarmboot_bootplan::BootMode {
    fn from(m: BootModeSetting) -> Self {
        match m {
            BootModeSetting::Swarm => swarmboot_bootplan::BootMode::Swarm,
            BootModeSetting::Direct => swarmboot_bootplan::BootMode::Direct,
        }
    }
}

impl Default for BootSection {
    fn default() -> Self {
        BootSection { bios_file: default_bios_file(), efi_x64_file: default_efi_file(), default_image: default_image(), mode: BootModeSetting::default(), client: vec![] }
    }
}

/// `[[boot.client]] mac = "52:54:00:*" image = "NAME"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// A name for the group of machines this rule covers (`swarmboot assign NAME IMAGE`).
    #[serde(default)]
    pub name: Option<String>,
    /// A MAC address or glob (`*`, `?`, `[0-9]`), any case.
    pub mac: String,
    pub image: String,
    /// Overrides `[boot] mode` for these machines.
    #[serde(default)]
    pub mode: Option<BootModeSetting>,
}
fn default_bios_file() -> String {
    "undionly.kpxe".into()
}
fn default_efi_file() -> String {
    "snponly.efi".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL machines use for everything after the boot script (files, manifests, tracker),
    /// when it is not `http://<server.address>:<listen port>` (a reverse proxy or cache in
    /// front of the server).
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection { listen: default_listen(), public_url: None }
    }
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

/// The server's BitTorrent side: its seed of every published file and its tracker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmSection {
    /// Seed every file of every image version (super-seeding). Off: machines get the files
    /// from each other and, when the swarm stalls, over HTTP.
    #[serde(default = "yes")]
    pub seed: bool,
    /// Where the seed listens for peers (one port for every file). Bound to
    /// `server.interface`.
    #[serde(default = "default_swarm_listen")]
    pub listen: SocketAddr,
    /// Peers the seed sends to at once (super-seed upload slots).
    #[serde(default = "default_seed_slots")]
    pub upload_slots: usize,
    /// Answer tracker announces at `/announce` (and `/scrape`) on the HTTP listener.
    #[serde(default = "yes")]
    pub tracker: bool,
}

/// `swarmboot image build`: where Debian comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// The apt source images are built from: a mirror or apt cache URL (`http://…/debian`,
    /// `file:///srv/mirror/debian`), or the path of a file with sources lines (one-line or
    /// deb822). Unset: mmdebstrap's default, Debian's mirror with the release's updates and
    /// security suites.
    #[serde(default)]
    pub mirror: Option<String>,
}

impl Default for SwarmSection {
    fn default() -> Self {
        SwarmSection { seed: true, listen: default_swarm_listen(), upload_slots: default_seed_slots(), tracker: true }
    }
}
fn default_image() -> Option<String> {
    Some("elchos".into())
}
fn default_swarm_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 6881))
}
fn default_seed_slots() -> usize {
    4
}

/// The read-only TFTP server (first stage only: iPXE; everything after goes over HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_tftp_listen")]
    pub listen: SocketAddr,
    /// Directory served; defaults to `<state_dir>/tftp`.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Where Debian's `ipxe` package puts its binaries; a requested name not found under `root`
    /// is looked up here (so `undionly.kpxe`, `snponly.efi`, `ipxe.efi` work out of the box).
    #[serde(default = "default_ipxe_dir")]
    pub ipxe_dir: PathBuf,
    /// Largest block size granted to a client (bytes, 512..=65464).
    #[serde(default = "default_max_blksize")]
    pub max_blksize: u16,
    /// Largest window (RFC 7440) granted.
    #[serde(default = "default_max_windowsize")]
    pub max_windowsize: u16,
}

impl Default for TftpSection {
    fn default() -> Self {
        TftpSection {
            enabled: true,
            listen: default_tftp_listen(),
            root: None,
            ipxe_dir: default_ipxe_dir(),
            max_blksize: default_max_blksize(),
            max_windowsize: default_max_windowsize(),
        }
    }
}

impl TftpSection {
    pub fn root_dir(&self, state_dir: &Path) -> PathBuf {
        self.root.clone().unwrap_or_else(|| state_dir.join("tftp"))
    }
}

fn yes() -> bool {
    true
}
fn default_tftp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 69))
}
fn default_ipxe_dir() -> PathBuf {
    PathBuf::from("/usr/lib/ipxe")
}
fn default_max_blksize() -> u16 {
    1468
}
fn default_max_windowsize() -> u16 {
    64
}

// ---- value types: parsed from strings, with messages that say what was expected ----

/// `10.77.0.1` or `10.77.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostAddress {
    pub ip: Ipv4Addr,
    pub prefix_len: Option<u8>,
}

impl HostAddress {
    /// No address (`0.0.0.0`): a config that names no interface yet.
    fn unset() -> Self {
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

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::parse(&text, path)
    }

    /// Parses `text` (read from `path`) and checks everything that does not depend on the host.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax { path: path.into(), message: e.to_string() })?;
        cfg.path = path.into();
        let problems = cfg.problems(None);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: path.into(), problems });
        }
        Ok(cfg)
    }

    /// `[boot]`'s image rules for the boot planner.
    pub fn image_rules(&self) -> Result<swarmboot_bootplan::ImageRules, ConfigError> {
        let mut clients = Vec::new();
        let mut problems = Vec::new();
        for (i, c) in self.boot.client.iter().enumerate() {
            match swarmboot_bootplan::ClientRule::new(&c.mac, &c.image) {
                Ok(r) => clients.push(r.with_mode(c.mode.map(Into::into))),
                Err(e) => problems.push(Problem { key: format!("boot.client[{i}].mac"), message: e.to_string() }),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: self.path.clone(), problems });
        }
        Ok(swarmboot_bootplan::ImageRules { default_image: self.boot.default_image.clone(), default_mode: self.boot.mode.into(), clients })
    }

    /// The base of every URL a machine is given after its boot script.
    pub fn base_url(&self) -> String {
        self.http.public_url.clone().unwrap_or_else(|| format!("http://{}:{}", self.server.address.ip, self.http.listen.port()))
    }

    /// The prefix length of the served network, from `server.address` if it has one.
    pub fn configured_prefix(&self) -> Option<u8> {
        self.server.address.prefix_len
    }

    /// The DHCP core's settings, given the prefix length of the server's network (from
    /// `server.address` or read from the interface).
    pub fn dhcp_settings(&self, prefix_len: u8) -> Result<Settings, ConfigError> {
        let problems = self.problems(Some(prefix_len));
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: self.path.clone(), problems });
        }
        let d = &self.dhcp;
        let mut subnets = vec![Subnet {
            network: masked(self.server.address.ip, prefix_len),
            prefix_len,
            pools: d.pool.iter().map(|p| p.0).collect(),
            routers: d.router.into_iter().collect(),
            dns: d.dns.clone(),
            domain: d.domain.clone(),
            lease_secs: d.lease_time.0,
        }];
        for s in &d.subnet {
            subnets.push(Subnet {
                network: s.network.network,
                prefix_len: s.network.prefix_len,
                pools: s.pool.iter().map(|p| p.0).collect(),
                routers: s.router.into_iter().collect(),
                dns: s.dns.clone().unwrap_or_else(|| d.dns.clone()),
                domain: d.domain.clone(),
                lease_secs: s.lease_time.unwrap_or(d.lease_time).0,
            });
        }
        let settings = Settings {
            mode: match d.mode {
                DhcpMode::Off => Mode::Off,
                DhcpMode::Authoritative => Mode::Authoritative,
                DhcpMode::Proxy => Mode::Proxy,
            },
            server_ip: self.server.address.ip,
            subnets,
            reservations: d.reservation.iter().map(|r| Reservation { hwaddr: r.mac.0.clone(), ip: r.ip, hostname: r.hostname.clone() }).collect(),
            decline_secs: d.decline_time.0,
            offer_secs: 60,
            boot: BootSettings {
                http_base: self.http.public_url.clone(),
                http_port: self.http.listen.port(),
                script_path: swarmboot_bootplan::script_url(""),
                bios_file: self.boot.bios_file.clone(),
                efi_x64_file: self.boot.efi_x64_file.clone(),
                ..BootSettings::default()
            },
        };
        // Everything `validate` checks was checked above with key names; this is the core's
        // own guard.
        settings.validate().map_err(|e| ConfigError::Invalid { path: self.path.clone(), problems: vec![Problem { key: "dhcp".into(), message: e.to_string() }] })?;
        Ok(settings)
    }

    /// Whether the config names an interface to serve on. A fresh install's does not: the
    /// server then starts, says what to configure, and serves nothing (a DHCP server that
    /// answers on a network it was not meant for is an incident).
    pub fn is_configured(&self) -> bool {
        !self.server.interface.is_empty()
    }

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

/// A network as (address, prefix length).
type Net = (Ipv4Addr, u8);

fn masked(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & u32::from(swarmboot_dhcp::netmask(prefix_len)))
}

fn in_net(ip: Ipv4Addr, network: Ipv4Addr, prefix_len: u8) -> bool {
    masked(ip, prefix_len) == network
}

#[cfg(test)]
mod tests;
