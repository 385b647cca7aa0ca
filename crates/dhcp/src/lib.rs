//! DHCPv4 decisions for swarmboot, as a sans-IO core.
//!
//! The main type is [`DhcpServer`]: [`DhcpServer::handle`] takes the current time, where a
//! datagram came from and its bytes, and returns an [`Outcome`]: at most one reply to send, the
//! lease record to persist *before* sending it, and, for a dropped packet, why.
//!
//! The core covers the authoritative server (DISCOVER/OFFER/REQUEST/ACK, INIT-REBOOT,
//! RENEW/REBIND, RELEASE, DECLINE, INFORM, NAK), relayed requests (subnet chosen by `giaddr`),
//! and proxyDHCP for PXE firmware (ports 67 and 4011). It decodes each packet once into a
//! [`ClientRequest`] whose [`Machine`] says what kind of firmware is asking (BIOS, UEFI, UEFI HTTP,
//! iPXE), and asks [`boot::select_boot_file`] what that machine should load.
//!
//! [`client::DhcpClient`] is the other side, for the stub's init: a sans-IO DISCOVER / OFFER /
//! REQUEST / ACK client with the broadcast flag.
//!
//! What it does not do: open sockets, read the clock, touch the disk or log. The server crate's
//! shell does those, and restores the [`LeaseTable`] from its database at start.

pub mod boot;
pub mod client;
mod leases;
mod reply;
mod request;
mod server;
mod settings;

pub use boot::{BootFile, BootSettings};
pub use leases::{ClientId, Lease, LeaseState, LeaseTable};
pub use request::{parse_request, ClientArch, ClientRequest, HwAddr, Machine, MAX_REQUEST_LEN};
pub use server::{DhcpServer, DropReason, Outcome, Reply, Source};
pub use settings::{netmask, AddressRange, Mode, Reservation, Settings, SettingsError, Subnet};

/// Seconds since the Unix epoch. The shell reads the clock; the core only compares numbers.
pub type UnixTime = u64;

/// The DHCP server port (also the port relays listen on).
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot server port, where proxyDHCP REQUESTs arrive.
pub const PXE_PORT: u16 = 4011;
