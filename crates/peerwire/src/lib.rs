//! The BitTorrent peer-wire protocol for swarmboot's own swarm engine, as a sans-IO core.
//!
//! - [`wire`]: the handshake and every message of BEP 3 (core), BEP 6 (Fast extension:
//!   have-all, have-none, suggest, reject, allowed-fast) and BEP 10 (extension protocol),
//!   encoded into a buffer and decoded from a byte stream by [`wire::Decoder`], which never
//!   panics and refuses oversized messages.
//! - [`Bitfield`]: which pieces a peer has, with the spare bits checked.
//! - [`picker::PiecePicker`]: which piece to request next: rarest first with a random tie-break,
//!   a strict in-order mode for what the stub needs first, and an endgame.
//! - [`superseed::SuperSeed`]: what the boot server's seed offers each peer, so every piece
//!   leaves the server once before any piece leaves it twice.
//! - [`peer::Peer`]: one connection: handshake checks, protocol checks that drop a misbehaving
//!   peer with a reason, outstanding requests, keep-alives well inside the idle timeout.
//!
//! What it does not do: the choking policy, piece storage and SHA-1, the swarm across
//! peers, sockets, disk — those are `swarmboot-swarm`, built on this crate.

mod bitfield;
pub mod peer;
pub mod picker;
pub mod superseed;
pub mod wire;

pub use bitfield::{Bitfield, BitfieldError};
