//! What the stub says on the console: one line per event, `swarmboot: …`, and a progress line
//! redrawn in place while the image downloads.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// A progress line is on screen without its newline.
static PROGRESS_OPEN: AtomicBool = AtomicBool::new(false);

pub fn say(msg: impl std::fmt::Display) {
    let mut e = std::io::stderr().lock();
    if PROGRESS_OPEN.swap(false, Ordering::Relaxed) {
        let _ = writeln!(e);
    }
    let _ = writeln!(e, "swarmboot: {msg}");
}

pub fn progress(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r{line}   ");
    let _ = e.flush();
    PROGRESS_OPEN.store(true, Ordering::Relaxed);
}
