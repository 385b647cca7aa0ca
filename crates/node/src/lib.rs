//! The elchOS node agent (`swarmboot-node`, issue 17, being built): what makes an elchOS
//! machine a file-sharing host. Sans-IO cores here, thin shells around them.
//!
//! - [`disks`]: which block devices to mount, where and how (read-only, no journal replay,
//!   nothing executable), and why the others are left alone.
//! - [`probe`]: what the node reads to find them (`/sys/class/block`, `blkid -p -o export`).
//! - [`ftp`]: vsftpd's configuration (anonymous, read-only) and its log read for bytes served.
//! - [`adc`]: the ADC client's settings, its JSON-RPC calls (shares in line with the node's,
//!   the server's hub joined) and its upload log read for bytes served.
//! - [`log_tail`]: the lines those programs' logs gained since the last look.
//! - [`identity`]: the server and image from the stub's note, the MAC of the boot interface.
//! - [`share_http`]: HTTP sharing's decisions: request paths, opening beneath a share (the
//!   kernel refuses links that lead out), ranges, content types, escaped listings.
//! - [`index_scan`]: a scan of the shares for the fleet's index (walked from each share's
//!   open directory, never following a link; odd names left out and counted).
//! - [`checkin_loop`]: when the node checks in, and what it does with a reply (commands through
//!   the gate once; a reboot acknowledged in a leaving check-in first).
//! - [`serve`]: the HTTP listener's handlers (status page, JSON, shares) around those decisions.
//! - [`stats`]: bytes and requests served per protocol and share, kept across agent restarts.
//! - [`status`]: the node's status page and its JSON (`/`, `/api/v1/status`); `swarmboot_httpd::html`
//!   escapes the strangers' names it shows.

pub mod adc;
pub mod checkin_loop;
pub mod disks;
pub mod ftp;
pub mod identity;
pub mod index_scan;
pub mod log_tail;
pub mod probe;
pub mod serve;
pub mod share_http;
pub mod stats;
pub mod status;
