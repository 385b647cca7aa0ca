//! The demo: a lab LAN with `swarmboot serve` (authoritative DHCP) and a few machines running
//! a real DHCP client; shows what each got and the server's lease table, then tears down.
//! (The boot-path issue turns these machines into PXE-booting VMs.)

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use swarmboot_lab::clients::Udhcpc;
use swarmboot_lab::{Lan, ScratchDir, Server};

use crate::host::{self, ensure_packages, workspace_root};

pub fn run(clients: usize) -> anyhow::Result<()> {
    ensure_packages()?;
    let root = workspace_root();
    host::run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).current_dir(&root).args(["build", "--workspace", "--bins"]))?;
    if !swarmboot_lab::require_root("demo") {
        return Ok(());
    }
    let dir = ScratchDir::new("demo")?;
    let mut lan = Lan::new("10.77.0.1/24")?;
    let config = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nlease_time = \"1h\"\n\
         router = \"10.77.0.1\"\ndns = [\"10.77.0.1\"]\n\
         [[dhcp.reservation]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.77.0.10\"\nhostname = \"lab-01\"\n\
         [http]\nlisten = \"127.0.0.1:8080\"\n",
        dir.path().join("state").display()
    );
    println!("== lab: namespace {} with bridge br0 = 10.77.0.1/24", lan.server.name());
    std::env::set_var("SWARMBOOT_LOG", "info");
    let server = Server::start(&lan.server, dir.path(), &config, 8080)?;
    println!("== swarmboot serve is up (log: {})", server.log_path().display());
    let mut running = Vec::new();
    for i in 0..clients {
        let mac = (i == 0).then_some("52:54:00:00:00:01");
        let h = lan.add_host(mac)?;
        println!("== machine {i}: namespace {} starts udhcpc{}", lan.host(h).name(), if mac.is_some() { " (reserved MAC)" } else { "" });
        running.push(Udhcpc::start(lan.host(h), dir.path(), &format!("m{i}"), &[])?);
    }
    for (i, c) in running.iter().enumerate() {
        let ev = c.wait("bound", 0, Duration::from_secs(30)).with_context(|| format!("machine {i}"))?;
        println!(
            "   machine {i}: bound {} (lease {} s, server {}, hostname {})",
            ev.ip(),
            ev.get("lease").unwrap_or("?"),
            ev.get("serverid").unwrap_or("?"),
            ev.get("hostname").unwrap_or("-")
        );
    }
    println!("== swarmboot leases:");
    host::run(Command::new(swarmboot_lab::bin("swarmboot")).args(["leases", "--config"]).arg(&server.config))?;
    println!("== server counters: {}", server
        .metrics()?
        .lines()
        .filter(|l| l.starts_with("swarmboot") && !l.ends_with(" 0"))
        .collect::<Vec<_>>()
        .join(", "));
    println!("== tearing down");
    Ok(())
}
