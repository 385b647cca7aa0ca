//! The file's shape: one struct per section, serde with `deny_unknown_fields`, and the
//! defaults of every key.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::values::*;

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
    #[serde(default)]
    pub nodes: NodesSection,
    #[serde(default)]
    pub adc: AdcSection,
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
    /// Where to listen. Unset: the boot address (`server.address`) and 127.0.0.1, both on
    /// port 8080 — not every address of the host.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The URL machines use for everything after the boot script (files, manifests, tracker),
    /// when it is not `http://<server.address>:<listen port>` (a reverse proxy or cache in
    /// front of the server).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Connections open at once (more are closed as they come).
    #[serde(default = "default_http_connections")]
    pub max_connections: usize,
    /// Connections open at once from one address.
    #[serde(default = "default_http_connections_per_client")]
    pub max_connections_per_client: usize,
    /// A request's headers must arrive within this (it also ends a connection idle between
    /// requests for as long).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Seconds,
    /// Who reads the dashboard and its JSON API: `open` (anyone on the boot network),
    /// `token` (holders of the admin token), `off` (only the server itself). Acting through
    /// it always needs the token.
    #[serde(default)]
    pub dashboard: DashboardAccess,
}

/// `[http] dashboard`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DashboardAccess {
    #[default]
    Open,
    Token,
    Off,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: None,
            public_url: None,
            dashboard: DashboardAccess::Open,
            max_connections: default_http_connections(),
            max_connections_per_client: default_http_connections_per_client(),
            header_timeout: default_header_timeout(),
        }
    }
}
fn default_http_connections() -> usize {
    4096
}
fn default_http_connections_per_client() -> usize {
    32
}
fn default_header_timeout() -> Seconds {
    Seconds(10)
}
/// The HTTP port when `[http] listen` is unset.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

impl HttpSection {
    /// The HTTP port machines are given (`listen`'s, or 8080).
    pub fn port(&self) -> u16 {
        self.listen.map_or(DEFAULT_HTTP_PORT, |a| a.port())
    }

    /// The addresses to listen on: `listen`, or the boot address and 127.0.0.1.
    pub fn listen_addrs(&self, boot: Ipv4Addr) -> Vec<SocketAddr> {
        match self.listen {
            Some(a) => vec![a],
            None if boot.is_unspecified() || boot.is_loopback() => vec![SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_HTTP_PORT))],
            None => vec![SocketAddr::from((boot, DEFAULT_HTTP_PORT)), SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_HTTP_PORT))],
        }
    }
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
    /// Incoming peer connections the seed holds at once.
    #[serde(default = "default_peer_connections")]
    pub max_peer_connections: usize,
    /// Incoming peer connections from one address.
    #[serde(default = "default_peer_connections_per_client")]
    pub max_peer_connections_per_client: usize,
}
fn default_peer_connections() -> usize {
    2048
}
fn default_peer_connections_per_client() -> usize {
    16
}

/// elchOS nodes checking in (`POST /api/v1/checkin`): the node registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesSection {
    /// How often a node checks in (told to each node in every reply).
    #[serde(default = "default_checkin_interval")]
    pub checkin_interval: Seconds,
    /// Check-ins a node may miss before it is marked lost (and its key lets go of its MAC).
    #[serde(default = "default_missed_before_lost")]
    pub missed_before_lost: u32,
    /// How long a command waits for its node before it expires.
    #[serde(default = "default_command_ttl")]
    pub command_ttl: Seconds,
}

impl Default for NodesSection {
    fn default() -> Self {
        NodesSection { checkin_interval: default_checkin_interval(), missed_before_lost: default_missed_before_lost(), command_ttl: default_command_ttl() }
    }
}
fn default_checkin_interval() -> Seconds {
    Seconds(30)
}
fn default_missed_before_lost() -> u32 {
    3
}
fn default_command_ttl() -> Seconds {
    Seconds(600)
}

/// The ADC hub elchOS nodes share their disks through (Debian's uhub, run by `swarmboot serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdcSection {
    /// Run the hub (uhub must be installed: `apt install uhub`).
    #[serde(default)]
    pub enable: bool,
    /// Where the hub listens (`adc://ADDRESS:PORT`).
    #[serde(default = "default_adc_listen")]
    pub listen: std::net::SocketAddr,
    /// Most users on the hub (nodes and people's clients).
    #[serde(default = "default_adc_max_users")]
    pub max_users: u32,
    /// The hub's name in clients.
    #[serde(default = "default_adc_hub_name")]
    pub hub_name: String,
}

impl Default for AdcSection {
    fn default() -> Self {
        AdcSection { enable: false, listen: default_adc_listen(), max_users: default_adc_max_users(), hub_name: default_adc_hub_name() }
    }
}
fn default_adc_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([0, 0, 0, 0], 1511))
}
fn default_adc_max_users() -> u32 {
    1000
}
fn default_adc_hub_name() -> String {
    "swarmboot".into()
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
        SwarmSection {
            seed: true,
            listen: default_swarm_listen(),
            upload_slots: default_seed_slots(),
            tracker: true,
            max_peer_connections: default_peer_connections(),
            max_peer_connections_per_client: default_peer_connections_per_client(),
        }
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
    /// Transfers running at once (each holds a socket); more are refused with an error.
    #[serde(default = "default_tftp_transfers")]
    pub max_transfers: usize,
    /// Transfers running at once for one address.
    #[serde(default = "default_tftp_transfers_per_client")]
    pub max_transfers_per_client: usize,
    /// Longest retransmission timeout a client may ask for (RFC 2349); a longer one is not
    /// granted (the default of 1 s applies).
    #[serde(default = "default_tftp_max_timeout")]
    pub max_timeout: Seconds,
}
fn default_tftp_transfers() -> usize {
    1024
}
fn default_tftp_transfers_per_client() -> usize {
    64
}
fn default_tftp_max_timeout() -> Seconds {
    Seconds(5)
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
            max_transfers: default_tftp_transfers(),
            max_transfers_per_client: default_tftp_transfers_per_client(),
            max_timeout: default_tftp_max_timeout(),
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
