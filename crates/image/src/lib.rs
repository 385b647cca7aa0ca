//! The image catalog: which images (and datasets) exist, in which versions, made of which
//! files.
//!
//! - Files live once, content-addressed by SHA-256, under `<state_dir>/store/ab/abcd/abcdef…`
//!   (first two hex characters, first four, the full hash): a file two images or two versions
//!   share is stored once. See [`Store`].
//! - Each image version has a [`Manifest`] at `<state_dir>/images/NAME/VERSION.toml`. Adding
//!   NAME again makes version n+1, whose `predecessor` is n. Versions are never changed in
//!   place, and their files stay until [`Catalog::gc`] removes them, so a machine that started
//!   booting version n finishes on version n.
//!
//! Manifests are signed when added (`VERSION.sig`, see [`Catalog::signed`]).
//!
//! [`datasets`]: named sets of files placed on donors' space, stored and signed the same way
//! (`<state_dir>/datasets/NAME.toml`); `gc` keeps their files and the seed serves them.
//!
//! What it does not do: serve files, or decide
//! which machine boots what (that is `swarmboot-bootplan`).

mod catalog;
pub mod datasets;
pub mod image_datasets;
mod manifest_files;
mod store;

pub use catalog::{BrokenManifest, BuildInputs, Catalog, CatalogError, FileEntry, GcReport, Manifest, Role, StubRecord};
pub use store::{is_sha256_hex, relative_path, Store};
