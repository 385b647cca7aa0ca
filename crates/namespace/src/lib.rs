//! One namespace over what every elchOS node shares (issue 19, being built), sans-IO.
//!
//! A node shares directories by name (`music`, `movies`); the namespace puts every node's
//! shares side by side: `movies/KillBill` from node A and `movies/TheMatrix` from node B are
//! both in `movies/`. The server keeps the fleet's index; nodes keep it in step with deltas.
//!
//! - [`entry`]: one file or directory a node shares ([`Entry`]), checked: a path is relative,
//!   `/`-separated, without `.`/`..`/empty parts or control characters, bounded; [`Key`]
//!   orders paths part by part (the order a sorted directory walk visits them).
//! - [`batch`]: what a node sends (`POST /api/v1/index`): a signed [`IndexBatch`] of upserts and
//!   removals under an epoch and a sequence number, bounded in bytes and entries.
//! - [`publisher`]: the node's side: what the server has confirmed, the latest scan, and the
//!   next batch that brings the one to the other ([`Publisher`]).
//! - [`cursor`]: the server's decision on a batch given where that node's index stands.
//! - [`listing`]: a directory of the namespace from the rows of every live node: same path and
//!   same content is one entry with several sources, different content two entries.
//! - [`query`]: `swarmboot search` words and filters, and the FTS5 query they become.
//! - [`reading`]: reading a file by ranges from its sources: how much to fetch (readahead for
//!   sequential reads only) and from whom (the next source when one fails).
//!
//! What it does not do: walk file systems, talk HTTP, or store anything.

pub mod batch;
pub mod cursor;
pub mod entry;
pub mod listing;
pub mod publisher;
pub mod query;
pub mod reading;

pub use batch::{IndexBatch, IndexReply};
pub use entry::{Entry, Key, Kind};
pub use publisher::Publisher;
