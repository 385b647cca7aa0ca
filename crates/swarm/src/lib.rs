//! swarmboot's swarm engine, built for boot storms on a LAN.
//!
//! - [`swarm::Swarm`]: the sans-IO swarm of one torrent: peers (over
//!   [`swarmboot_peerwire::peer::Peer`]), rarest-first picking with an endgame, choking with
//!   upload slots ([`choker`]), super-seeding for the boot server, request pipelines sized to
//!   bandwidth × delay, piece assembly and SHA-1 verification before anything is written or
//!   announced. No sockets, no clock: time comes in as arguments.
//! - [`storage`]: where pieces live ([`storage::FileStorage`]: positioned reads and writes).
//! - [`announce`]: tracker announces (BEP 3 / BEP 23), sans-IO: the request URL and the
//!   response parser.
//! - [`metadata`]: BEP 9 (`ut_metadata`), serving side: a client that joined by magnet link
//!   gets the `info` dictionary from us.
//! - [`engine`]: the tokio shell: TCP listener and dialer (bound to an interface), one reader
//!   and one writer task per peer, the tracker loop, bounded peers, progress counters; one
//!   engine per torrent, any number of them behind one [`engine::PeerListener`] port.
//!
//! - [`locks`]: how a mutex is taken, and in which order.
//! - [`admission`]: connections by source address, capped in total and per source (the peer
//!   listener's, and the server's HTTP and TFTP).
//!
//! Not here (yet): DHT and PEX (private torrents only), uTP, encryption, asking peers for
//! metadata (we always start from a torrent).

pub mod admission;
pub mod announce;
pub mod choker;
pub mod engine;
pub mod locks;
pub mod metadata;
pub mod rate;
pub mod storage;
pub mod swarm;

pub use swarm::{AddPieceError, DropReason, Progress, Swarm, SwarmConfig, SwarmEvent, Totals};
