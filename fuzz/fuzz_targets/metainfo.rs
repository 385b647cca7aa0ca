//! Torrents and bencode from disk or the network: any bytes parse or are refused with a
//! reason, never a panic; what bencode decodes encodes back to the same bytes (it is strict).
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmboot_torrent::bencode;
use swarmboot_torrent::Metainfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = bencode::decode(data) {
        assert_eq!(v.to_bytes(), data, "canonical bencode round-trips");
    }
    if let Ok(m) = Metainfo::parse(data) {
        assert!(m.piece_length > 0 && !m.pieces.is_empty());
    }
});
