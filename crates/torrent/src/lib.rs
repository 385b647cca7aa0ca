//! Torrent files: [`bencode`] values, and [`Metainfo`] (BEP 3, single- and multi-file, the BEP 27
//! `private` flag) parsed from and written to `.torrent` bytes, with the info hash taken over
//! the `info` dictionary's bytes exactly as they appear in the file (so torrents made by other
//! tools hash the same here as there).
//!
//! What it does not do: read files from disk for hashing (the caller passes bytes or a reader),
//! or talk to trackers.

pub mod bencode;
mod metainfo;

pub use metainfo::{FileEntry, Metainfo, MetainfoError};
