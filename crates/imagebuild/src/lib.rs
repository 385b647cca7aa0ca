//! Boot images built from Debian.
//!
//! A [`Recipe`] says what a root holds: the release, the packages, files written into it,
//! units enabled, commands run in it, and what its squashfs leaves out. [`build`] runs it:
//! mmdebstrap (`--variant=minbase`, apt retrying failed downloads, from the mirror the recipe names or mmdebstrap's default)
//! into a directory, the files and units, the list of installed packages with their versions,
//! the newest kernel and its initramfs from `/boot` ([`kernel::newest_release`]), and
//! mksquashfs (zstd). [`elchos`] is the product's default image; the lab's stock Debian root
//! is another recipe.
//!
//! What it does not do: register anything (the CLI adds the result to the catalog), or reach
//! any network but the apt source.

mod build;
pub mod elchos;
pub mod kernel;
mod recipe;

pub use build::{build, BuildError, Built, BUILD_NICENESS};
pub use recipe::{Recipe, RootCopy, RootFile, APT_RETRIES};
