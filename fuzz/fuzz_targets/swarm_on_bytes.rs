//! The swarm from hostile peers' bytes: two connections to a seed of a small torrent fed
//! any bytes (after a valid handshake), with transmits and timers in between; a peer is
//! answered or dropped, never a panic, and nothing unverified is kept.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarmboot_peerwire::wire::Handshake;
use swarmboot_peerwire::Bitfield;
use swarmboot_swarm::storage::MemStorage;
use swarmboot_swarm::{Swarm, SwarmConfig};
use swarmboot_torrent::Metainfo;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let file: Vec<u8> = (0..3 * 16384 + 100).map(|i| (i * 7) as u8).collect();
    let (meta, _) = Metainfo::single_file("f", &file, 16384, None, true);
    let mut cfg = SwarmConfig::new(&meta, [9; 20]);
    cfg.super_seed = ctl & 1 == 1;
    let seeding = ctl & 2 == 2;
    let pieces = meta.pieces.len() as u32;
    let (have, mut store) = if seeding { (Bitfield::full(pieces), MemStorage::new(file.clone(), 16384)) } else { (Bitfield::new(pieces), MemStorage::zeroed(file.len(), 16384)) };
    let now = Instant::now();
    let mut swarm = Swarm::new(cfg, have, now);
    let keys: Vec<_> = (0..2).filter_map(|_| swarm.add_peer(now, false)).collect();
    for (n, &k) in keys.iter().enumerate() {
        let mut hello = Vec::new();
        Handshake::new(meta.info_hash, [n as u8 + 1; 20]).encode(&mut hello);
        swarm.on_bytes(now, k, &hello, &mut store);
    }
    for (i, chunk) in rest.chunks(usize::from(ctl >> 2).max(1)).enumerate() {
        let t = now + Duration::from_millis(100 * i as u64);
        let k = keys[i % keys.len()];
        swarm.on_bytes(t, k, chunk, &mut store);
        let _ = swarm.poll_transmit(t, k, &mut store);
        if swarm.poll_timeout() <= t {
            swarm.on_timeout(t, &mut store);
        }
        while swarm.poll_event().is_some() {}
    }
    if !seeding && swarm.is_complete() {
        assert_eq!(store.data, file, "complete means every piece verified");
    }
});
