//! What the stub says on the console: one line per event, `swarmboot: …`, and a progress line
//! redrawn in place while the image downloads.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use swarmboot_fetch::FetchProgress;

/// A progress line is on screen without its newline.
static PROGRESS_OPEN: AtomicBool = AtomicBool::new(false);

pub fn say(msg: impl std::fmt::Display) {
    let mut e = std::io::stderr().lock();
    if PROGRESS_OPEN.swap(false, Ordering::Relaxed) {
        let _ = writeln!(e);
    }
    let _ = writeln!(e, "swarmboot: {msg}");
}

/// The progress line: `[#####.....] 41% 26.2/64.0 MiB 11.3 MB/s 7 peers (3 sending) ETA 3s`.
pub fn progress_line(p: &FetchProgress, rate: f64) -> String {
    let pct = p.bytes_have * 100 / p.total.max(1);
    let filled = (pct / 5) as usize;
    let eta = if rate > 0.0 { format!("{:.0}s", (p.total - p.bytes_have) as f64 / rate) } else { "-".into() };
    format!(
        "[{}{}] {pct:3}% {:.1}/{:.1} MiB {:.1} MB/s {} peers ({} sending) ETA {eta}{}",
        "#".repeat(filled),
        ".".repeat(20 - filled),
        p.bytes_have as f64 / 1048576.0,
        p.total as f64 / 1048576.0,
        rate / 1e6,
        p.peers,
        p.sources,
        if p.fallback { " [swarm stalled: HTTP]" } else { "" }
    )
}

pub fn progress(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r{line}   ");
    let _ = e.flush();
    PROGRESS_OPEN.store(true, Ordering::Relaxed);
}
