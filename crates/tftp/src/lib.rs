//! Read-only TFTP (RFC 1350) with options blksize, tsize, timeout and windowsize (RFC 2347,
//! 2348, 2349, 7440), as a sans-IO core.
//!
//! - [`packet`]: parsing requests and acknowledgements, encoding DATA, OACK and ERROR.
//! - [`path::resolve`]: turns a requested file name into a safe relative path, or refuses it.
//! - [`Transfer`]: one read transfer. [`Transfer::start`] negotiates options;
//!   [`Transfer::on_packet`], [`Transfer::on_timeout`] and [`Transfer::poll_timeout`] drive it.
//!   It says which blocks to send ([`Outgoing`]); the shell reads them from the file.
//!
//! What it does not do: open sockets or files, read the clock, or decide what a path maps to.
//! That is the server crate's TFTP shell.

pub mod packet;
pub mod path;
mod transfer;

pub use packet::{ErrorCode, Request, RequestOptions};
pub use transfer::{Limits, Outgoing, Step, Transfer, TransferEnd};
