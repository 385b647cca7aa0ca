//! The fleet as the boot server sees it: one record per machine (by MAC) with the stage of its
//! boot — `dhcp → ipxe → stub → fetching → handover → running`, or `lost` — the time spent in
//! each over its last boots, its address, image, and where its bytes came from.
//!
//! The stages come from what the server already sees (DHCP requests and which client sent
//! them, TFTP reads, the boot script request) and from what machines report: the stub while it
//! fetches and when it hands over, the seeder of a booted system ([`report`]), the elchOS
//! agent's check-in. [`Fleet`] is a plain state machine over those events and the time the
//! shell passes in: no sockets, no clock.
//!
//! A report binds to the machine's MAC and address: the server knows each MAC's address from
//! the lease it granted (or, beside another DHCP server, from the MAC's boot script request),
//! and a report or check-in for that MAC from another address is refused.

pub mod fleet;
pub mod mac;
pub mod report;
pub mod view;

pub use fleet::{Binding, Boot, DhcpClient, Event, Fleet, FleetConfig, FleetCounters, ImageAt, Machine, Progress, Refused, Seen, Selection, SortKey, Stage};
pub use mac::Mac;
pub use report::{ReportError, ReportReply, Reported, Reporter, StageReport};
pub use view::{BootView, FleetView, MachineView, Row, StageSpan};
