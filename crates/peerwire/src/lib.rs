//! The BitTorrent peer-wire protocol for swarmboot's own swarm engine, as a sans-IO core.
//!
//! - [`wire`]: the handshake and every message of BEP 3 (core), BEP 6 (Fast extension:
//!   have-all, have-none, suggest, reject, allowed-fast) and BEP 10 (extension protocol),
//!   encoded into a buffer and decoded from a byte stream by [`wire::Decoder`], which never
//!   panics and refuses oversized messages.
//! - [`Bitfield`]: which pieces a peer has, with the spare bits checked.
//! - [`picker::PiecePicker`]: which piece to request next: rarest first with a random tie-break,
//!   a strict in-order mode for what the stub needs first, and an endgame.
//!
//! What it does not do (yet): peer state machines, choking and super-seeding, sockets, disk.
//! The swarm issue builds those on this crate.

mod bitfield;
pub mod picker;
pub mod wire;

pub use bitfield::{Bitfield, BitfieldError};
