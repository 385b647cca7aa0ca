//! The stub's kernel command line, which the boot script (unauthenticated) writes: any line
//! parses or is refused with the key named; the signed-line check never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmboot_init::{cmdline, trust};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(a) = cmdline::parse(text) {
        assert!(a.server.starts_with("http://") && !a.image.is_empty());
    }
    let _ = cmdline::root_init(text);
    let mid = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let (running, signed) = text.split_at(mid);
    if trust::check_command_line(running, signed).is_ok() {
        assert!(trust::check_command_line(signed, running).is_ok(), "the same words either way");
    }
    let _ = trust::trusted_keys(&[], Some(text));
});
