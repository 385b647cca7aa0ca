//! vsftpd, run by the agent ([`swarmboot_node::ftp`]): its configuration written to the run
//! directory, the program kept running (started again after a pause when it exits), its log
//! read every few seconds for the bytes served per share.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use swarmboot_node::ftp::{downloads, vsftpd_conf, FtpConfig};
use swarmboot_node::serve::Node;
use tracing::{info, warn};

/// Most log bytes read in one go.
const MAX_READ: u64 = 1 << 20;

pub async fn run(node: Node, run_dir: PathBuf, root: String, port: u16) {
    let config = FtpConfig {
        root,
        port,
        passive: (40000, 40199),
        log: run_dir.join("vsftpd.log").display().to_string(),
        empty_dir: run_dir.join("vsftpd-empty").display().to_string(),
        max_clients: 200,
        max_per_ip: 16,
    };
    let conf = run_dir.join("vsftpd.conf");
    let prepared = std::fs::create_dir_all(&config.empty_dir).and_then(|_| std::fs::write(&conf, vsftpd_conf(&config)));
    if let Err(e) = prepared {
        warn!(error = %e, dir = %run_dir.display(), "cannot write vsftpd's configuration: no FTP");
        return;
    }
    let log = PathBuf::from(&config.log);
    let mut offset = std::fs::metadata(&log).map_or(0, |m| m.len());
    loop {
        let mut child = match tokio::process::Command::new("vsftpd").arg(&conf).kill_on_drop(true).spawn() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot start vsftpd: no FTP");
                return;
            }
        };
        info!(port, "vsftpd serving the shares over anonymous FTP");
        loop {
            tokio::select! {
                status = child.wait() => {
                    warn!(?status, "vsftpd exited; starting it again in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    break;
                }
                _ = tokio::time::sleep(Duration::from_secs(2)) => read_log(&log, &mut offset, &node),
            }
        }
    }
}

/// Counts the downloads logged since `offset` (whole lines only; a log that shrank was
/// started again).
fn read_log(path: &Path, offset: &mut u64, node: &Node) {
    let Ok(mut f) = std::fs::File::open(path) else { return };
    let len = f.metadata().map_or(0, |m| m.len());
    if len < *offset {
        *offset = 0;
    }
    if len == *offset || f.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if f.take(MAX_READ).read_to_end(&mut buf).is_err() {
        return;
    }
    let whole = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        // One line longer than a read: skipped.
        None if buf.len() as u64 == MAX_READ => buf.len(),
        None => return,
    };
    *offset += whole as u64;
    let text = String::from_utf8_lossy(&buf[..whole]);
    let mut counters = node.counters.lock().expect("counters lock");
    for (share, bytes) in downloads(&text) {
        counters.add("ftp", &share, bytes);
    }
}
