//! End-to-end tests: one binary, one module per area. Every test builds its own lab (network
//! namespaces with unique names, removed on drop) and runs real clients against
//! `swarmboot serve`. They need root; see `swarmboot_lab::require_root`.

mod adc;
mod boot;
mod dashboard;
mod datasets;
mod debian;
mod dhcp;
mod elchos;
mod fetch;
mod flood;
mod http;
mod ltsp;
mod namespace;
mod nodes;
mod pick;
mod setup;
mod stub;
mod swarm;
mod tftp;
mod torrent;
