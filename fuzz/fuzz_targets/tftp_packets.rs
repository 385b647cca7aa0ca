//! TFTP from any client: a first datagram parses or is refused, and a transfer fed any
//! datagrams and timeouts ends or goes on, never a panic, never past the file.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarmboot_tftp::packet::{parse_initial, Initial};
use swarmboot_tftp::{Limits, Outgoing, Transfer};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let (first, later) = rest.split_at(usize::from(split).min(rest.len()));
    let Ok(Initial::Read(req)) = parse_initial(first) else { return };
    let size = 10_000;
    let now = Instant::now();
    let (mut t, mut step) = Transfer::start(&req.options, size, now, &Limits::default());
    for (i, packet) in later.chunks(8).enumerate() {
        for s in &step.send {
            if let Outgoing::Data { offset, len, .. } = s {
                assert!(offset + *len as u64 <= size);
            }
        }
        if step.end.is_some() {
            return;
        }
        let at = now + Duration::from_millis(300 * i as u64);
        step = if i % 3 == 2 { t.on_timeout(at) } else { t.on_packet(at, packet) };
    }
});
