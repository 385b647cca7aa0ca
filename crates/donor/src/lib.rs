//! A donor of disk space for a boot server's datasets (issue 20; the seed's "elephant"
//! daemon): [`dir::DonorDir`] is what it keeps, [`donate`] the loop — check in with what is
//! held (signed with the donor's key, each dataset with its ticket), do what the server's
//! signed reply says (fetch what to add through the swarm, where the server and other donors
//! seed it; stop seeding and drop what to remove), delete store files no held dataset lists,
//! keep the view in line and seed everything held.
//!
//! `swarmboot donate` runs it on any Linux host (and as the `swarmboot-donate` service); the
//! elchOS node agent runs it on a disk labelled `ELCHOS-DATA`. Which donor holds what is the
//! server's decision (`swarmboot_placement`); this side only reports and obeys signed orders.

pub mod dir;
mod donate;

pub use donate::{donate, Settings};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DonorError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the donor key in {}: {reason}", dir.display())]
    Key { dir: PathBuf, reason: String },
    /// A dataset manifest or name that cannot be used (the server's signature, the name, a
    /// hash or path in it).
    #[error("{0}")]
    Manifest(String),
    #[error("cannot listen for peers on {addr}: {reason} (choose another address or port)")]
    Listen { addr: std::net::SocketAddr, reason: String },
    #[error("the server's reply does not read: {0}")]
    Reply(String),
}
