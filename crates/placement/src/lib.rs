//! Which donor holds which dataset (issue 20), sans-IO with seeded randomness.
//!
//! Donors (elchOS nodes with a data disk, any Linux host running `swarmboot donate`) give disk
//! space; the server's datasets go to them so that each dataset has the replicas it asks for,
//! the rare ones first, few bytes move once the fleet has settled, a newer dataset replaces
//! its predecessor by fetching only what it adds, and donors that only claim to hold a dataset
//! cannot get it dropped everywhere.
//!
//! - [`catalog`]: the datasets as placement sees them ([`Catalog`]): files by content hash
//!   (a file two datasets list is one file on disk), replica counts, chains of successors.
//! - [`placement`]: the server's donor table and its answer to each check-in ([`Placement`]):
//!   datasets to add and remove by a knapsack whose values are chances.
//! - [`sim`]: a fleet of donors in one process, in rounds, for the tests and the report.
//!
//! What it does not do: read the clock (times come in as milliseconds), talk to donors, store
//! the table (a server rebuilds it from check-ins), or move any file.

pub mod catalog;
mod disk;
pub mod placement;
pub mod sim;

pub use catalog::{Catalog, CatalogError, Dataset};
pub use placement::{Action, Holding, Placement, Policy, Refusal, Report};
