//! `swarmboot serve` running in a lab namespace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::netns::{run, Netns};
use crate::proc::{wait_for_line, Proc};

pub struct Server {
    proc: Proc,
    ns: String,
    dir: PathBuf,
    starts: u32,
    pub config: PathBuf,
    pub http_port: u16,
}

impl Server {
    /// Writes `config_toml` to `dir/swarmboot.toml` and starts the server in `ns`; returns once
    /// it logged that it is ready (sockets bound).
    pub fn start(ns: &Netns, dir: &Path, config_toml: &str, http_port: u16) -> anyhow::Result<Self> {
        let config = dir.join("swarmboot.toml");
        std::fs::write(&config, config_toml)?;
        let proc = Self::launch(ns, dir, &config, 0)?;
        Ok(Server { proc, ns: ns.name().into(), dir: dir.into(), starts: 1, config, http_port })
    }

    fn launch(ns: &Netns, dir: &Path, config: &Path, n: u32) -> anyhow::Result<Proc> {
        let log = dir.join(format!("server-{n}.log"));
        let mut cmd = ns.command(crate::bin("swarmboot"));
        let level = std::env::var("SWARMBOOT_LOG").unwrap_or_else(|_| "debug".into());
        cmd.args(["serve", "--config"]).arg(config).env("SWARMBOOT_LOG", level);
        let mut proc = Proc::spawn("swarmboot serve", &mut cmd, &log)?;
        for _ in 0..300 {
            if proc.output().contains("swarmboot ready") {
                return Ok(proc);
            }
            if proc.exited() {
                bail!("swarmboot serve exited at start:\n{}", proc.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_for_line(&log, "swarmboot ready", Duration::from_secs(1)).map(|_| proc)
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// Starts it again with the same config and state (after [`Server::kill9`]).
    pub fn restart(&mut self, ns: &Netns) -> anyhow::Result<()> {
        self.proc.kill9();
        self.proc = Self::launch(ns, &self.dir, &self.config, self.starts)?;
        self.starts += 1;
        Ok(())
    }

    /// Sends `sig` to the server process (SIGHUP: reload the config).
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        self.proc.signal(sig)
    }

    /// Runs `swarmboot ARGS... --config <this server's config>` and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(std::process::Command::new(crate::bin("swarmboot")).args(args).arg("--config").arg(&self.config))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Server::cli`] run in the server's namespace, for commands that talk to the running
    /// server over its loopback (`status`, `node command`).
    pub fn cli_in_ns(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(std::process::Command::new("ip").args(["netns", "exec", &self.ns]).arg(crate::bin("swarmboot")).args(args).arg("--config").arg(&self.config))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The server's public key in hex (`swarmboot key show`), what clients are given as `--key`.
    pub fn public_key(&self) -> anyhow::Result<String> {
        self.cli(&["key", "show"])?.lines().find_map(|l| l.strip_prefix("public key")).map(|k| k.trim().to_string()).context("no public key in `key show`")
    }

    /// The server process's id (for /proc).
    pub fn pid(&self) -> i32 {
        self.proc.pid().as_raw()
    }

    /// The server process's open file descriptors and resident memory (kB), from /proc.
    pub fn footprint(&self) -> anyhow::Result<(usize, u64)> {
        let pid = self.proc.pid().as_raw();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).context("no VmRSS")?;
        Ok((fds, rss))
    }

    /// Everything the server logged since its last start.
    pub fn log(&self) -> String {
        self.proc.output()
    }

    pub fn log_path(&self) -> &Path {
        &self.proc.log
    }

    /// `swarmboot leases --json`, parsed.
    pub fn leases(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let out = run(std::process::Command::new(crate::bin("swarmboot")).args(["leases", "--json", "--config"]).arg(&self.config))?;
        serde_json::from_slice(&out.stdout).context("leases --json output")
    }

    /// The lease record for `ip`, if any.
    pub fn lease(&self, ip: &str) -> anyhow::Result<Option<serde_json::Value>> {
        Ok(self.leases()?.into_iter().find(|l| l["ip"] == ip))
    }

    /// GET `/metrics` from inside the server's namespace.
    pub fn metrics(&self) -> anyhow::Result<String> {
        metrics(&self.ns, self.http_port)
    }

    /// GET `path` from inside the server's namespace (over its loopback): the body of a 200.
    pub fn get(&self, path: &str) -> anyhow::Result<String> {
        get(&self.ns, self.http_port, path)
    }

    /// One counter from `/metrics` (`name` may include labels, as in the exposition line).
    pub fn metric(&self, name: &str) -> anyhow::Result<u64> {
        metric(&self.ns, self.http_port, name)
    }
}

/// GET `/metrics` of the server listening on `port` inside namespace `ns`.
pub(crate) fn metrics(ns: &str, port: u16) -> anyhow::Result<String> {
    get(ns, port, "/metrics")
}

/// GET `path` of the server listening on `port` inside namespace `ns`: the body of a 200.
pub(crate) fn get(ns: &str, port: u16, path: &str) -> anyhow::Result<String> {
    let path = path.to_string();
    crate::netns::enter_named(ns, move || -> anyhow::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        let (head, body) = reply.split_once("\r\n\r\n").with_context(|| format!("GET {path}: {reply}"))?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}\n{body}");
        Ok(body.to_string())
    })?
}

/// One counter from [`metrics`].
pub(crate) fn metric(ns: &str, port: u16, name: &str) -> anyhow::Result<u64> {
    let m = metrics(ns, port)?;
    let line = m.lines().find(|l| l.split_once(' ').is_some_and(|(n, _)| n == name)).with_context(|| format!("no metric {name} in:\n{m}"))?;
    Ok(line.rsplit(' ').next().unwrap_or("").trim().parse()?)
}
