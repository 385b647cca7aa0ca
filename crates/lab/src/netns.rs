//! Network namespaces, a bridge, and hosts on veth pairs.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};
use nix::sched::{setns, CloneFlags};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn unique() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Runs `cmd`, failing with its stderr when it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args)).map(|_| ())
}

/// A network namespace of our own, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `sb<pid>x<n><tag>` with loopback up.
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let name = format!("sb{}x{}{tag}", std::process::id(), unique());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// An HTTP request with `curl` from inside the namespace: (status, body). A body is sent
    /// from a file in `scratch`, as JSON unless `headers` name a content type.
    pub fn curl(&self, scratch: &std::path::Path, method: &str, url: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> (u16, String) {
        let mut cmd = self.command("curl");
        cmd.args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
        if let Some(b) = body {
            let file = scratch.join(format!("curl-{}-{}.body", self.name, std::process::id()));
            std::fs::write(&file, b).expect("writing a request body in the scratch directory");
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                cmd.args(["-H", "content-type: application/json"]);
            }
            cmd.arg("--data-binary").arg(format!("@{}", file.display()));
        }
        for (k, v) in headers {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        let out = cmd.arg(url).output().expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl {url}: {text}{}", String::from_utf8_lossy(&out.stderr)));
        (code.trim().parse().unwrap_or_else(|_| panic!("curl {url}: {text}")), body.to_string())
    }

    /// `cmd` (program, arguments, environment), run inside the namespace.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut c = self.command(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Shapes what `dev` sends to `rate` (tc syntax, like `100mbit`): a token bucket with a
    /// 64 KiB burst and 20 ms of queue, as a switch port of that speed would.
    pub fn shape(&self, dev: &str, rate: &str) -> anyhow::Result<()> {
        run(self.command("tc").args(["qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "20ms"])).map(|_| ())
    }

    /// Bytes `dev` has sent (its tx counter, headers included).
    pub fn tx_bytes(&self, dev: &str) -> anyhow::Result<u64> {
        let out = run(self.command("cat").arg(format!("/sys/class/net/{dev}/statistics/tx_bytes")))?;
        String::from_utf8_lossy(&out.stdout).trim().parse().context("tx_bytes")
    }

    /// Runs `f` on a thread that has entered the namespace; sockets it opens live there.
    pub fn enter<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> anyhow::Result<R> {
        enter_named(&self.name, f)
    }
}

/// Runs `f` on a new thread inside the namespace called `name`.
pub(crate) fn enter_named<R: Send + 'static>(name: &str, f: impl FnOnce() -> R + Send + 'static) -> anyhow::Result<R> {
    let file = File::open(format!("/run/netns/{name}")).with_context(|| format!("open netns {name}"))?;
    let h = std::thread::spawn(move || setns(file, CloneFlags::CLONE_NEWNET).map(|_| f()));
    h.join().map_err(|_| anyhow::anyhow!("thread in {name} panicked"))?.context("setns")
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A server namespace with bridge `br0` holding the server's address, and hosts plugged into it.
/// Hosts are dropped before the server namespace.
pub struct Lan {
    pub hosts: Vec<Netns>,
    /// Each host's bridge port (in the server namespace): the host's downlink.
    pub ports: Vec<String>,
    pub server: Netns,
    pub server_ip: Ipv4Addr,
    pub prefix_len: u8,
}

impl Lan {
    /// A LAN whose server namespace has `server_cidr` (like `10.77.0.1/24`) on `br0`.
    pub fn new(server_cidr: &str) -> anyhow::Result<Self> {
        let (addr, plen) = server_cidr.split_once('/').context("server_cidr needs a /prefix")?;
        let server = Netns::new("srv")?;
        server.ip(&["link", "add", "br0", "type", "bridge", "forward_delay", "0"])?;
        server.ip(&["addr", "add", server_cidr, "dev", "br0"])?;
        server.ip(&["link", "set", "br0", "up"])?;
        Ok(Lan { hosts: Vec::new(), ports: Vec::new(), server, server_ip: addr.parse()?, prefix_len: plen.parse()? })
    }

    /// Makes the bridge drop `percent` % of the frames it forwards between ports and of those
    /// to and from the server, at random (nftables' `numgen`, as netem's `loss` would; the
    /// lab's kernels have no netem).
    pub fn lossy(&self, percent: u8) -> anyhow::Result<()> {
        let script = format!(
            "table bridge swarmboot_lab_loss {{\n\
             chain lab_forward {{ type filter hook forward priority 0; numgen random mod 100 < {percent} counter drop; }}\n\
             chain lab_input {{ type filter hook input priority 0; numgen random mod 100 < {percent} counter drop; }}\n\
             chain lab_output {{ type filter hook output priority 0; numgen random mod 100 < {percent} counter drop; }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!("swarmboot-lab-loss-{}.nft", unique()));
        std::fs::write(&path, script)?;
        let r = run(self.server.command("nft").arg("-f").arg(&path)).map(|_| ());
        let _ = std::fs::remove_file(&path);
        r
    }

    /// Frames [`Lan::lossy`] has dropped so far.
    pub fn lost_frames(&self) -> anyhow::Result<u64> {
        let out = run(self.server.command("nft").args(["list", "table", "bridge", "swarmboot_lab_loss"]))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(text.split("packets ").skip(1).filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok()).sum())
    }

    /// Plugs a new host into the bridge: its side is `eth0`, up, with no address, and with
    /// `mac` if given. Returns the host's index in `hosts`.
    pub fn add_host(&mut self, mac: Option<&str>) -> anyhow::Result<usize> {
        let host = Netns::new("h")?;
        let port = format!("p{}", unique());
        ip(&["link", "add", &port, "netns", self.server.name(), "type", "veth", "peer", "name", "eth0", "netns", host.name()])?;
        self.server.ip(&["link", "set", &port, "master", "br0", "up"])?;
        if let Some(mac) = mac {
            host.ip(&["link", "set", "eth0", "address", mac])?;
        }
        host.ip(&["link", "set", "eth0", "up"])?;
        self.hosts.push(host);
        self.ports.push(port);
        Ok(self.hosts.len() - 1)
    }

    pub fn host(&self, i: usize) -> &Netns {
        &self.hosts[i]
    }
}
