//! eiskaltdcpp-daemon, run by the agent ([`swarmboot_node::adc`]): started with its settings
//! written to the run directory (and again after a pause when it exits), then every few
//! seconds: its shares brought in line with the node's, the server's hub joined once a
//! check-in reply names it, and its upload log read for the bytes served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use swarmboot_node::adc::{self, ClientSettings};
use swarmboot_node::log_tail::LogTail;
use swarmboot_node::serve::Node;
use tokio::sync::watch;
use tracing::{info, warn};

pub struct AdcClient {
    pub node: Node,
    pub run_dir: PathBuf,
    pub settings: ClientSettings,
    /// The boot server's URL (the hub is on its host).
    pub server: String,
    /// The hub's port from the last check-in reply.
    pub hub_port: watch::Receiver<Option<u16>>,
}

struct Rpc {
    url: String,
    id: u64,
}

impl Rpc {
    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.id += 1;
        let body = adc::request(self.id, method, params);
        let (code, answer) = swarmboot_fetch::http::post(&self.url, &[], body, adc::MAX_ANSWER, Duration::from_secs(10)).await?;
        anyhow::ensure!(code == 200, "{method}: HTTP {code}");
        Ok(adc::result(&answer)?)
    }
}

impl AdcClient {
    pub async fn run(self) {
        let dir = self.run_dir.join("adc");
        let prepared = std::fs::create_dir_all(dir.join("Logs")).and_then(|_| std::fs::write(dir.join("DCPlusPlus.xml"), adc::settings_xml(&self.settings)));
        if let Err(e) = prepared {
            warn!(error = %e, dir = %dir.display(), "cannot write the ADC client's settings: no ADC");
            return;
        }
        let log = dir.join(adc::UPLOAD_LOG);
        let mut tail = LogTail::at_end(&log);
        let (ip, port) = adc::RPC_ADDR.split_once(':').unwrap_or(("127.0.0.1", "3121"));
        loop {
            let spawned = tokio::process::Command::new(adc::DAEMON).arg("-c").arg(format!("{}/", dir.display())).args(["-L", ip, "-P", port]).kill_on_drop(true).spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "cannot start {}: no ADC", adc::DAEMON);
                    return;
                }
            };
            info!(nick = %self.settings.nick, port = self.settings.port, "ADC client started");
            let mut rpc = Rpc { url: format!("http://{}/", adc::RPC_ADDR), id: 0 };
            let mut refresh_when_hashed = false;
            loop {
                tokio::select! {
                    status = child.wait() => {
                        warn!(?status, "the ADC client exited; starting it again in 5 s");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(3)) => {
                        if let Err(e) = self.tend(&mut rpc, &mut refresh_when_hashed).await {
                            warn!(error = %e, "the ADC client did not answer");
                        }
                        read_log(&log, &mut tail, &self.node);
                    }
                }
            }
        }
    }

    /// One round: shares (refreshed again once the files found by a refresh are hashed: those
    /// hashed after it are not in the share until the next one), then the hub.
    async fn tend(&self, rpc: &mut Rpc, refresh_when_hashed: &mut bool) -> anyhow::Result<()> {
        let want: BTreeMap<String, String> = self.node.status.read().expect("status lock").shares.iter().map(|s| (s.name.clone(), s.path.clone())).collect();
        let listed = rpc.call("share.list", json!({"separator": "\t"})).await?;
        let calls = adc::share_calls(&adc::listed_shares(listed.as_str().unwrap_or_default()), &want);
        for c in &calls {
            let (method, params) = c.method();
            let r = rpc.call(method, params).await?;
            info!(call = ?c, result = %r, "ADC share");
        }
        let left = adc::hashing_left(&rpc.call("hash.status", json!({})).await?);
        if !calls.is_empty() || (*refresh_when_hashed && left == 0) {
            rpc.call("share.refresh", json!({})).await?;
            // A refresh finds the files to hash: look again once they are.
            *refresh_when_hashed = !calls.is_empty();
        }
        if left > 0 {
            *refresh_when_hashed = true;
        }
        let hub = (*self.hub_port.borrow()).and_then(|p| adc::hub_url(&self.server, p));
        if let Some(hub) = hub {
            let hubs = rpc.call("hub.list", json!({"separator": "\t"})).await?;
            if !adc::joined(hubs.as_str().unwrap_or_default(), &hub) {
                info!(%hub, "joining the ADC hub");
                rpc.call("hub.add", json!({"huburl": hub})).await?;
            }
        }
        Ok(())
    }
}

/// Counts the uploads logged since the last look (a line a chunk sent).
fn read_log(path: &Path, tail: &mut LogTail, node: &Node) {
    let Some(text) = tail.read_new(path) else { return };
    let shares: BTreeMap<String, String> = node.status.read().expect("status lock").shares.iter().map(|s| (s.name.clone(), s.path.clone())).collect();
    let mut counters = node.counters.lock().expect("counters lock");
    for (share, bytes) in adc::uploads(&text, &shares) {
        counters.add("adc", &share, bytes);
    }
}
