//! A tracker's reply as our engine reads it: any bytes give peers or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmboot_swarm::announce::parse_reply;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_reply(data) {
        assert!(r.peers.len() <= data.len() / 6 + 1);
    }
});
