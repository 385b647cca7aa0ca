//! The ADC hub elchOS nodes share their disks through (`[adc] enable = true`): Debian's
//! uhub, configured and kept running by the server. uhub is a small, well-kept ADC hub with
//! per-user flood control; a hub of our own would add a protocol to maintain for no gain.
//!
//! [`uhub_conf`] is the configuration (plain text, tested); [`run`] writes it to the state
//! directory, starts uhub, starts it again when it exits, and stops it with the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

/// What the hub is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub listen: SocketAddr,
    pub max_users: u32,
    /// Checked by the config (no quotes, backslashes or control characters).
    pub hub_name: String,
}

/// Per-user flood control: what one user may do in [`FLOOD_INTERVAL`] seconds before uhub
/// drops the excess (searches, chat lines, connection requests, INF updates, the rest).
pub const FLOOD_INTERVAL: u32 = 10;
const FLOOD_SEARCH: u32 = 20;
const FLOOD_CHAT: u32 = 10;
const FLOOD_CONNECT: u32 = 40;
const FLOOD_UPDATE: u32 = 5;
const FLOOD_EXTRAS: u32 = 20;

/// uhub's configuration: the listen address, the user cap, flood control, no registration,
/// no TLS (a LAN hub), no system information in the banner.
pub fn uhub_conf(s: &HubSettings) -> String {
    format!(
        "# Written by swarmboot serve from [adc] in its configuration; changes here are overwritten.\n\
         hub_enabled = yes\n\
         server_bind_addr = \"{ip}\"\n\
         server_port = {port}\n\
         hub_name = \"{name}\"\n\
         hub_description = \"elchOS nodes sharing their disks\"\n\
         max_users = {max_users}\n\
         registered_users_only = no\n\
         register_self = no\n\
         show_banner_sys_info = no\n\
         tls_enable = no\n\
         flood_ctl_interval = {FLOOD_INTERVAL}\n\
         flood_ctl_search = {FLOOD_SEARCH}\n\
         flood_ctl_chat = {FLOOD_CHAT}\n\
         flood_ctl_connect = {FLOOD_CONNECT}\n\
         flood_ctl_update = {FLOOD_UPDATE}\n\
         flood_ctl_extras = {FLOOD_EXTRAS}\n",
        ip = s.listen.ip(),
        port = s.listen.port(),
        name = s.hub_name,
        max_users = s.max_users,
    )
}

/// uhub's path, if it is installed.
pub fn find_uhub() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        .to_str()
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("uhub"))
        .find(|p| p.is_file())
}

/// Writes the configuration into `state_dir` and keeps uhub running until `stop`.
pub async fn run(s: HubSettings, uhub: PathBuf, state_dir: PathBuf, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let conf = state_dir.join("uhub.conf");
    std::fs::write(&conf, uhub_conf(&s)).with_context(|| format!("writing {}", conf.display()))?;
    loop {
        let mut child = tokio::process::Command::new(&uhub).arg("-c").arg(&conf).kill_on_drop(true).spawn().with_context(|| format!("starting {}", uhub.display()))?;
        info!(listen = %s.listen, "ADC hub (uhub) running: adc://{}", s.listen);
        tokio::select! {
            status = child.wait() => {
                warn!(?status, "uhub exited; starting it again in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
            _ = stop.changed() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_says_where_how_many_and_how_much() {
        let c = uhub_conf(&HubSettings { listen: "10.77.0.1:1511".parse().unwrap(), max_users: 800, hub_name: "lab hub".into() });
        let get = |k: &str| c.lines().find_map(|l| l.strip_prefix(&format!("{k} = "))).unwrap_or_else(|| panic!("{k} in\n{c}"));
        assert_eq!(
            [get("server_bind_addr"), get("server_port"), get("max_users"), get("hub_name"), get("flood_ctl_search"), get("tls_enable")],
            ["\"10.77.0.1\"", "1511", "800", "\"lab hub\"", "20", "no"]
        );
    }
}
