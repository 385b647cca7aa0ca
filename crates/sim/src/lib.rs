//! Boot storms in virtual time, to measure and tune the swarm engine at the scale of a campus
//! without one: [`storm::run`] drives swarmboot's own sans-IO cores — the swarm
//! (`swarmboot_swarm::Swarm`: peers, picker, choker, super-seed) of the server and of every
//! machine, and the tracker (`swarmboot_tracker::PeerTable`) — over [`links`], a model of
//! ports, rooms and their uplinks where connections get their max-min fair share. Bytes are
//! the real peer wire, every piece is verified; only time is virtual.
//!
//! `cargo xtask bench-sim` checks it against the real storm bench and reports fleets of 20 to
//! 2000 machines.

pub mod links;
pub mod storm;

pub use storm::{run, Role, SimError, StormReport, StormSpec};
