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
mod values;

pub use boot::{BootFile, BootSettings};
pub use leases::{Lease, LeaseState, LeaseTable};
pub use request::{parse_request, ClientArch, ClientRequest, Machine, MAX_REQUEST_LEN, STUB_CLASS};
pub use server::{Asked, DhcpServer, Outcome, Reply, Source};
pub use settings::{netmask, AddressRange, Mode, Reservation, Settings, SettingsError, Subnet, DEFAULT_MAX_LEASES_PER_MACHINE};
pub use values::{BadHwAddr, ClientId, DropReason, HwAddr, UnixTime, CLIENT_PORT, PXE_PORT, SERVER_PORT};
