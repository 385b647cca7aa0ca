//! The peer-wire layer from a hostile peer's bytes: a connection (`Peer`) fed any bytes, cut
//! anywhere, answers or drops the peer with a reason; never a panic, and its decode buffer
//! stays bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarmboot_peerwire::peer::{Peer, PeerConfig};
use swarmboot_peerwire::wire::{Decoder, Handshake};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let now = Instant::now();
    // A valid handshake first (so the messages after it are reached), then the input.
    let mut bytes = Vec::new();
    Handshake::new([7; 20], [1; 20]).encode(&mut bytes);
    bytes.extend_from_slice(rest);
    let mut peer = Peer::new(PeerConfig::new([7; 20], [2; 20], 37), now);
    let mut decoder = Decoder::new(16384 + 13);
    for (i, chunk) in bytes.chunks(usize::from(cut).max(1)).enumerate() {
        let t = now + Duration::from_millis(i as u64);
        let _ = peer.on_bytes(t, chunk);
        let _ = peer.take_transmit(t);
        decoder.push(chunk);
        while let Ok(Some(_)) = decoder.next_frame() {}
        assert!(decoder.held() <= 2 * (16384 + 13) + chunk.len());
    }
    let _ = peer.on_timeout(now + Duration::from_secs(120));
});
