//! vsftpd, run by the agent ([`swarmboot_node::ftp`]): its configuration written to the run
//! directory, the program kept running (started again after a pause when it exits), and every
//! 2 s its root brought in line with the node's shares (each bind-mounted there read-only by
//! its name, so a share that goes or is stopped leaves FTP too) and its log read for the bytes
//! served per share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::mount::{MountFlags, UnmountFlags};
use swarmboot_node::ftp::{bind_changes, downloads, vsftpd_conf, FtpConfig};
use swarmboot_node::log_tail::LogTail;
use swarmboot_node::serve::Node;
use tracing::{info, warn};

/// The FTP root in the run directory.
pub fn root(run_dir: &Path) -> PathBuf {
    run_dir.join("ftp")
}

pub async fn run(node: Node, run_dir: PathBuf, port: u16) {
    let root = root(&run_dir);
    // What an earlier run left bound there goes first.
    unbind_all(&root);
    if let Err(e) = std::fs::create_dir_all(&root) {
        warn!(error = %e, root = %root.display(), "cannot make the FTP root: no FTP");
        return;
    }
    let mut bound = BTreeMap::new();
    let config = FtpConfig {
        root: root.display().to_string(),
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
        bind_shares(&root, &mut bound, &node);
        info!(port, "vsftpd serving the shares over anonymous FTP");
        loop {
            tokio::select! {
                status = child.wait() => {
                    warn!(?status, "vsftpd exited; starting it again in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    break;
                }
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    bind_shares(&root, &mut bound, &node);
                    read_log(&log, &mut tail, &node);
                }
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

/// Binds every share into the FTP root (read-only, `nodev,nosuid,noexec`) and unbinds what is
/// no longer shared. A bind that cannot be made read-only is undone.
fn bind_shares(root: &Path, bound: &mut BTreeMap<String, String>, node: &Node) {
    let wanted: BTreeMap<String, String> = node.status.read().expect("status lock").shares.iter().map(|s| (s.name.clone(), s.path.clone())).collect();
    let (unbind, bind) = bind_changes(bound, &wanted);
    for name in unbind {
        let at = root.join(&name);
        if let Err(e) = rustix::mount::unmount(&at, UnmountFlags::DETACH) {
            warn!(error = %e, at = %at.display(), "cannot unbind a share from the FTP root");
        }
        let _ = std::fs::remove_dir(&at);
        bound.remove(&name);
        info!(share = %name, "no longer over FTP");
    }
    for (name, dir) in bind {
        let at = root.join(&name);
        let made = std::fs::create_dir_all(&at).and_then(|_| Ok(rustix::mount::mount_bind(&dir, &at)?)).and_then(|_| {
            let ro = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
            rustix::mount::mount_remount(&at, ro, "").inspect_err(|_| {
                let _ = rustix::mount::unmount(&at, UnmountFlags::DETACH);
            })?;
            Ok(())
        });
        match made {
            Ok(()) => {
                bound.insert(name, dir);
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&at);
                warn!(error = %e, share = %name, "cannot bind the share into the FTP root: not over FTP");
            }
        }
    }
}

/// Unbinds whatever is in the FTP root (at start, and when the agent stops).
pub fn unbind_all(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let at = e.path();
        let _ = rustix::mount::unmount(&at, UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&at);
    }
}
