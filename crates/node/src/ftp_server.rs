//! vsftpd, run by the agent ([`swarmboot_node::ftp`]): its configuration written to the run
//! directory, the program kept running (started again after a pause when it exits), its log
//! read every few seconds for the bytes served per share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use swarmboot_node::ftp::{downloads, vsftpd_conf, FtpConfig};
use swarmboot_node::log_tail::LogTail;
use swarmboot_node::serve::Node;
use tracing::{info, warn};

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
    let mut tail = LogTail::at_end(&log);
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
                _ = tokio::time::sleep(Duration::from_secs(2)) => read_log(&log, &mut tail, &node),
            }
        }
    }
}

/// Counts the downloads logged since the last look.
fn read_log(path: &Path, tail: &mut LogTail, node: &Node) {
    let Some(text) = tail.read_new(path) else { return };
    let mut counters = node.counters.lock().expect("counters lock");
    for (share, bytes) in downloads(&text) {
        counters.add("ftp", &share, bytes);
    }
}
