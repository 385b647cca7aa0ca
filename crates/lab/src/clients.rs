//! Real DHCP clients in lab hosts: busybox `udhcpc` and ISC `dhclient`. Each gets a script that
//! only records what happened and sets the address on the host's `eth0` (never resolv.conf).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::netns::run;
use crate::proc::Proc;
use crate::Netns;

/// One line a client script recorded: the event and its `key=value` fields.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub fields: Vec<(String, String)>,
}

impl Event {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
    pub fn ip(&self) -> &str {
        self.get("ip").unwrap_or("")
    }
}

fn read_events(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let kind = parts.next()?.to_string();
            let fields = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Some(Event { kind, fields })
        })
        .collect()
}

/// Waits until the `nth` (0-based) event of kind `kind` is recorded.
fn wait_event(path: &Path, proc: &Proc, kind: &str, nth: usize, timeout: Duration) -> anyhow::Result<Event> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let events = read_events(path);
        if let Some(e) = events.iter().filter(|e| e.kind == kind).nth(nth) {
            return Ok(e.clone());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "{}: no {kind:?} event #{nth} after {timeout:?}; events: {:?}\nclient output:\n{}",
                proc.name,
                events.iter().map(|e| &e.kind).collect::<Vec<_>>(),
                proc.output()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_script(path: &Path, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, body)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// busybox `udhcpc`, running in the foreground and staying up to renew.
pub struct Udhcpc {
    proc: Proc,
    events: PathBuf,
}

impl Udhcpc {
    pub fn start(ns: &Netns, dir: &Path, tag: &str, extra_args: &[&str]) -> anyhow::Result<Self> {
        let events = dir.join(format!("udhcpc-{tag}.events"));
        let script = dir.join(format!("udhcpc-{tag}.sh"));
        write_script(
            &script,
            &format!(
                "#!/bin/sh\n\
                 echo \"$1 ip=$ip mask=$mask lease=$lease serverid=$serverid router=$router hostname=$hostname boot_file=$boot_file\" >> {ev}\n\
                 case \"$1\" in\n\
                   bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\" ;;\n\
                   deconfig) ip addr flush dev \"$interface\" ;;\n\
                 esac\n",
                ev = events.display()
            ),
        )?;
        let mut cmd = ns.command("udhcpc");
        cmd.args(["-i", "eth0", "-f", "-t", "20", "-T", "1", "-A", "1", "-s"]).arg(&script).args(extra_args);
        let proc = Proc::spawn(&format!("udhcpc {tag}"), &mut cmd, &dir.join(format!("udhcpc-{tag}.log")))?;
        Ok(Udhcpc { proc, events })
    }

    pub fn wait(&self, kind: &str, nth: usize, timeout: Duration) -> anyhow::Result<Event> {
        wait_event(&self.events, &self.proc, kind, nth, timeout)
    }

    /// SIGUSR1: renew now.
    pub fn renew(&self) -> anyhow::Result<()> {
        self.proc.signal(Signal::SIGUSR1)
    }

    /// SIGUSR2: release the lease.
    pub fn release(&self) -> anyhow::Result<()> {
        self.proc.signal(Signal::SIGUSR2)
    }

    pub fn events(&self) -> Vec<Event> {
        read_events(&self.events)
    }
}

/// ISC `dhclient` in the foreground (`-d`), with its own lease and pid files.
pub struct Dhclient {
    proc: Proc,
    events: PathBuf,
    args: Vec<String>,
    ns: String,
}

impl Dhclient {
    pub fn start(ns: &Netns, dir: &Path, tag: &str) -> anyhow::Result<Self> {
        let events = dir.join(format!("dhclient-{tag}.events"));
        let script = dir.join(format!("dhclient-{tag}.sh"));
        write_script(
            &script,
            &format!(
                "#!/bin/sh\n\
                 echo \"$reason ip=$new_ip_address lease=$new_dhcp_lease_time serverid=$new_dhcp_server_identifier old=$old_ip_address\" >> {ev}\n\
                 case \"$reason\" in\n\
                   BOUND|RENEW|REBIND|REBOOT) ip addr flush dev \"$interface\"; ip addr add \"$new_ip_address/$new_subnet_mask\" dev \"$interface\" ;;\n\
                   RELEASE|EXPIRE|STOP|FAIL) ip addr flush dev \"$interface\" ;;\n\
                 esac\n\
                 exit 0\n",
                ev = events.display()
            ),
        )?;
        let args: Vec<String> = vec![
            "-4".into(),
            "-sf".into(),
            script.display().to_string(),
            "-lf".into(),
            dir.join(format!("dhclient-{tag}.leases")).display().to_string(),
            "-pf".into(),
            dir.join(format!("dhclient-{tag}.pid")).display().to_string(),
        ];
        let mut cmd = ns.command("dhclient");
        cmd.arg("-d").args(&args).arg("eth0");
        let proc = Proc::spawn(&format!("dhclient {tag}"), &mut cmd, &dir.join(format!("dhclient-{tag}.log")))?;
        Ok(Dhclient { proc, events, args, ns: ns.name().into() })
    }

    pub fn wait(&self, kind: &str, nth: usize, timeout: Duration) -> anyhow::Result<Event> {
        wait_event(&self.events, &self.proc, kind, nth, timeout)
    }

    /// `dhclient -r`: stops the running client and sends a RELEASE.
    pub fn release(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "dhclient", "-r"]).args(&self.args).arg("eth0");
        run(&mut cmd).context("dhclient -r")?;
        self.proc.stop(Duration::from_secs(2));
        Ok(())
    }
}
