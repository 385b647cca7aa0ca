//! BEP 9 from a peer: any extension handshake or metadata request is read or refused, never a
//! panic; a piece asked for is answered within the metadata's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmboot_swarm::metadata::{handshake, reply, requested_piece, their_id};

fuzz_target!(|data: &[u8]| {
    let _ = their_id(data);
    if let Some(piece) = requested_piece(data) {
        let info: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let r = reply(piece, &info);
        assert!(r.len() <= 16384 + 128);
    }
    let _ = handshake(data.len());
});
