//! What an elchOS node and the boot server say to each other (sans-IO: bytes and times in,
//! decisions out; the node agent and `swarmboot serve` do the I/O).
//!
//! - [`command`]: the server's commands to a node (`reboot`, `rescan-disks`, …), each signed by
//!   the server's key and bound to one boot of one node, with a sequence number and an expiry;
//!   the node's [`command::Gate`] checks each against the key that came with its image and
//!   lets it run at most once, and says why it refused one.
//! - [`report`]: a node's check-in (image, disks, shares, bytes served, acknowledgements),
//!   signed with the key the node made at boot, and the server's reply.
//! - [`order`]: an operator's order to the running server (`swarmboot node command`), signed
//!   with the server's own key, fresh within a minute, taken once.
//! - [`donation`]: a donor's check-in (the space it gives, the datasets it holds with their
//!   tickets) and the server's signed answer (datasets to add, each with its ticket, and to
//!   remove).
//! - [`registry`]: the server's registry: a node's key holds its MAC while it is live, lost
//!   nodes, commands waiting for their node, what became of each.

pub mod command;
pub mod donation;
pub mod order;
pub mod registry;
pub mod report;
