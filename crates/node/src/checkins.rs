//! The agent's check-ins: [`swarmboot_node::checkin_loop`] driven over HTTP, and the commands
//! it lets through carried out.

use std::time::Instant;

use swarmboot_checkin::command::{Action, Command};
use swarmboot_checkin::report::{self, CheckIn, CheckInReply, SIGNATURE_HEADER};
use swarmboot_manifest::{PublicKey, SigningKey};
use swarmboot_node::checkin_loop::{CheckInLoop, Next};
use swarmboot_node::serve::Node;
use swarmboot_node::status::LastCheckIn;
use tracing::{info, warn};

pub struct Agent {
    pub node: Node,
    pub server: String,
    pub server_key: PublicKey,
    pub node_key: SigningKey,
    pub mac: String,
    pub image: String,
    pub reboot_command: String,
    /// Wakes the disk loop for `rescan-disks` (none: the agent does not manage disks).
    pub rescan: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Where the hub port each reply names goes (to the ADC client).
    pub adc_hub: tokio::sync::watch::Sender<Option<u16>>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Agent {
    pub async fn run(self) {
        let url = swarmboot_urls::Urls::new(&self.server).checkin();
        let mut l = CheckInLoop::new(self.server_key, &self.mac, &self.node_key.public().fingerprint(), Instant::now());
        loop {
            match l.poll(Instant::now()) {
                Next::Wait(t) => tokio::time::sleep_until(t.into()).await,
                Next::Reboot => {
                    info!(command = %self.reboot_command, "rebooting as the server said");
                    let status = tokio::process::Command::new("sh").arg("-c").arg(&self.reboot_command).status().await;
                    if let Err(e) = status {
                        warn!(error = %e, "the reboot command did not run");
                    }
                    return;
                }
                Next::CheckIn => {
                    let mut c = self.report();
                    l.prepare(&mut c);
                    let (body, signature) = report::seal(&self.node_key, &c);
                    let sent = swarmboot_fetch::http::post(&url, &[(SIGNATURE_HEADER, &signature)], body, 1 << 20, std::time::Duration::from_secs(10)).await;
                    let (now, unix) = (Instant::now(), unix_now());
                    let problem = match sent {
                        Ok((200, bytes)) => match serde_json::from_slice::<CheckInReply>(&bytes) {
                            Ok(reply) => {
                                self.adc_hub.send_if_modified(|p| std::mem::replace(p, reply.adc_port) != reply.adc_port);
                                for cmd in l.on_reply(now, unix, &reply) {
                                    let outcome = self.carry_out(&cmd);
                                    info!(seq = cmd.seq, action = %cmd.action, ?outcome, "command");
                                    l.done(cmd.seq, outcome);
                                }
                                None
                            }
                            Err(e) => Some(format!("the server's reply is not a check-in reply: {e}")),
                        },
                        Ok((code, bytes)) => Some(format!("{code}: {}", String::from_utf8_lossy(&bytes).trim())),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(p) = &problem {
                        warn!(problem = %p, "check-in failed");
                        l.on_failure(now, unix, p.clone());
                    }
                    self.node.status.write().expect("status lock").last_checkin = Some(LastCheckIn { at: unix, ok: problem.is_none(), problem });
                }
            }
        }
    }

    /// The check-in's content from the node's current status and counters.
    fn report(&self) -> CheckIn {
        let status = self.node.status.read().expect("status lock").clone();
        let served = self.node.counters.lock().expect("counters lock").served();
        CheckIn {
            mac: self.mac.clone(),
            node_key: self.node_key.public().to_hex(),
            counter: 0,
            image: self.image.clone(),
            uptime_secs: status.uptime_secs,
            leaving: false,
            disks: status.disks,
            shares: status.shares,
            served,
            seeding: status.seeding,
            acks: vec![],
        }
    }

    fn carry_out(&self, c: &Command) -> Result<(), String> {
        match &c.action {
            Action::StopSharing { share } => {
                if self.node.shares.write().expect("shares lock").remove(share).is_none() {
                    return Err(format!("no share {share}"));
                }
                self.node.stopped.write().expect("stopped lock").insert(share.clone());
                self.node.status.write().expect("status lock").shares.retain(|s| &s.name != share);
                Ok(())
            }
            Action::RescanDisks => match &self.rescan {
                Some(r) => {
                    r.notify_one();
                    Ok(())
                }
                None => Err("this node does not manage disks (the agent runs without --disks)".into()),
            },
            Action::BootNext { image } => {
                info!(%image, "the server will boot this machine into {image} next time");
                Ok(())
            }
            // The loop never hands a reboot out (it acknowledges it, then says Next::Reboot).
            Action::Reboot => Err("a reboot is not carried out here".into()),
        }
    }
}
