//! The tracker from raw query bytes: any announce or scrape query gets a bencoded reply (peers
//! or a failure reason), never a panic; announces from many sources keep the table sane.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarmboot_tracker::{handle_announce, handle_scrape, PeerTable, TrackerConfig};

fuzz_target!(|data: &[u8]| {
    let mut t = PeerTable::new(TrackerConfig::default(), 1);
    t.allow(*b"aaaaaaaaaaaaaaaaaaaa");
    let t0 = Instant::now();
    // The input is several queries separated by newlines, from different sources and times.
    for (i, q) in data.split(|&b| b == b'\n').enumerate() {
        let source = Ipv4Addr::new(10, 0, (i / 256) as u8, i as u8);
        let r = handle_announce(&mut t, q, source, t0 + Duration::from_secs(i as u64 * 7));
        assert!(r.first() == Some(&b'd') && r.last() == Some(&b'e'));
        let s = handle_scrape(&t, q);
        assert!(s.first() == Some(&b'd'));
    }
});
