//! The upgrade benchmark: N elchOS VMs, each with an `ELCHOS-DATA` disk (ext4, as an owner
//! labels one), power on at once and boot elchos@1 through the swarm with nothing pre-seeded —
//! the baseline storm. Then elchos@2 is added while they run (a new root: version 1's with a
//! MiB of noise past its end), their donors fetch it onto their donated disks, and all N are
//! rebooted at once by signed commands: the stubs find it there. Printed per storm: the bytes
//! the server's seed sent (the stubs' own count, from their consoles), the server's uplink
//! bytes (br0, everything: iPXE, the stub, check-ins), each ÷ the root filesystem's size,
//! and when the last VM reached multi-user.target.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use swarmboot_lab::disks::{make, Filesystem};
use swarmboot_lab::initramfs::debian_kernel;
use swarmboot_lab::qemu::{Firmware, Vm, VmSpec};
use swarmboot_lab::stub_console::Verified;
use swarmboot_lab::{Lan, ScratchDir, Server};

use crate::host;

pub struct UpgradeBenchArgs {
    pub vms: usize,
    pub rate: String,
}

/// One storm: what the stubs' consoles said and what crossed the server's uplink.
struct Storm {
    name: &'static str,
    /// Seconds from the storm's start to multi-user.target, per VM.
    up: Vec<f64>,
    /// Each VM's stub's "image verified" figures.
    figures: Vec<Verified>,
    uplink: u64,
}

const CHECKIN_SECS: u64 = 5;
const UP: &str = "is up: multi-user.target reached";

pub fn run(a: UpgradeBenchArgs) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-upgrade", "info")? {
        return Ok(());
    }
    host::build_stub_init()?;
    anyhow::ensure!(a.vms >= 1, "--vms must be at least 1");
    let scratch = ScratchDir::new("bench-upgrade")?;
    let dir = scratch.path();
    host::elchos_state(&dir.join("state"))?;
    let lan = Lan::new("10.77.0.1/24")?;
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n[nodes]\ncheckin_interval = \"{CHECKIN_SECS}s\"\n",
        dir.join("state").display()
    );
    let server = Server::start(&lan.server, dir, &cfg, 8080)?;
    let kernel = debian_kernel().context("no Debian kernel in /boot")?;
    server.cli(&["stub", "build", "--kernel", kernel.to_str().unwrap_or_default()])?;
    let list: serde_json::Value = serde_json::from_str(&server.cli(&["image", "list", "--json"])?)?;
    let v1 = list.as_array().and_then(|a| a.iter().rfind(|m| m["name"] == "elchos")).context("no elchos in the catalog")?.clone();
    let stored = |role: &str| -> anyhow::Result<std::path::PathBuf> {
        let sha = v1["files"].as_array().and_then(|f| f.iter().find(|f| f["role"] == role)).and_then(|f| f["sha256"].as_str()).with_context(|| format!("elchos has no {role}"))?;
        Ok(dir.join("state/store").join(&sha[..2]).join(&sha[..4]).join(sha))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.metric("swarmboot_seed_files")? < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Room for the next version (root, kernel, initramfs) on each donated disk (sparse files).
    let disks: Vec<[std::path::PathBuf; 1]> = (0..a.vms).map(|i| [dir.join(format!("data{i}.img"))]).collect();
    for d in &disks {
        make(&d[0], 384, Filesystem::Ext4, "ELCHOS-DATA", None)?;
    }
    lan.server.shape("br0", &a.rate)?;
    let macs: Vec<String> = (0..a.vms).map(|i| format!("52:54:00:be:02:{i:02x}")).collect();
    println!("bench-upgrade: {} elchOS VMs with donated disks, server uplink {}", a.vms, a.rate);

    // The baseline: all at once, nothing pre-seeded.
    let before = lan.server.tx_bytes("br0")?;
    let t0 = Instant::now();
    let mut vms: Vec<Vm> = disks
        .iter()
        .zip(&macs)
        .enumerate()
        .map(|(i, (d, mac))| Vm::start_with(&lan, dir, &format!("vm{i}"), mac, Firmware::Bios, VmSpec { mib: 1024, reboots: true, jitter: None, disks: d }))
        .collect::<anyhow::Result<_>>()?;
    let from = vec![0; a.vms];
    let up = wait_all(&vms, &from, t0, UP, dir)?;
    let first = Storm { name: "first boot (nothing pre-seeded)", up, figures: figures(&vms, &from)?, uplink: lan.server.tx_bytes("br0")? - before };
    println!("{}: last VM up after {:.0} s", first.name, first.up.iter().copied().fold(0.0, f64::max));

    // elchos@2 while they run; every donor holds it before anyone reboots.
    let mut root2 = std::fs::read(stored("rootfs")?)?;
    root2.extend(swarmboot_lab::noise(1 << 20, 22));
    let root2_path = dir.join("root2.squashfs");
    std::fs::write(&root2_path, &root2)?;
    let s = |p: &Path| p.to_str().unwrap_or_default().to_string();
    let cmdline = v1["cmdline"].as_str().unwrap_or_default().to_string();
    server.cli(&["image", "add", "elchos", "--kernel", &s(&stored("kernel")?), "--initrd", &s(&stored("initrd")?), "--rootfs", &s(&root2_path), "--cmdline", &cmdline])?;
    let added = Instant::now();
    // Held once verified whole: each donor's view, shared as `datasets`, shows it only then
    // (the server's count of holders includes donors told to add it).
    loop {
        let whole = macs.iter().filter(|mac| holds_whole(&lan, &server, mac, "elchos@2/rootfs", root2.len() as u64)).count();
        if whole == a.vms {
            break;
        }
        anyhow::ensure!(
            added.elapsed() < Duration::from_secs(900),
            "only {whole} of {} machines held elchos@2 whole 900 s after it was added; consoles in {}",
            a.vms,
            dir.display()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    println!("elchos@2 ({} MiB root) held by all {} donated disks {:.0} s after it was added", root2.len() >> 20, a.vms, added.elapsed().as_secs_f64());

    // All rebooted at once by signed commands (each out with its machine's next check-in).
    let from: Vec<usize> = vms.iter().map(|vm| std::fs::metadata(&vm.console).map_or(0, |m| m.len() as usize)).collect();
    let before = lan.server.tx_bytes("br0")?;
    let t0 = Instant::now();
    for mac in &macs {
        let out = lan.server.command(swarmboot_lab::bin("swarmboot")).args(["node", "command", mac, "reboot", "--config"]).arg(&server.config).output()?;
        anyhow::ensure!(out.status.success(), "node command {mac} reboot: {}", String::from_utf8_lossy(&out.stderr));
    }
    let up = wait_all(&vms, &from, t0, "elchos@2 is up: multi-user.target reached", dir)?;
    let upgrade = Storm { name: "upgrade reboot (pre-seeded)", up, figures: figures(&vms, &from)?, uplink: lan.server.tx_bytes("br0")? - before };
    vms.clear();
    table(&[first, upgrade], root2.len() as f64 / 1048576.0);
    Ok(())
}

/// Whether the node `mac` serves `path` from its `datasets` share at `len` bytes (a HEAD from
/// the server's namespace).
fn holds_whole(lan: &Lan, server: &Server, mac: &str, path: &str, len: u64) -> bool {
    let Ok(text) = server.cli(&["node", "list", "--json"]) else { return false };
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    let base = rows.iter().find(|r| r["mac"] == mac).and_then(|n| n["shares"].as_array()?.iter().find(|s| s["name"] == "datasets")?["urls"][0].as_str().map(str::to_string));
    let Some(base) = base else { return false };
    let Ok(out) = lan.server.command("curl").args(["-sS", "--fail", "--head", "--max-time", "20"]).arg(format!("{base}{path}")).output() else { return false };
    out.status.success() && String::from_utf8_lossy(&out.stdout).to_ascii_lowercase().contains(&format!("content-length: {len}"))
}

/// Seconds from `t0` until each VM's console, after byte `from[i]`, showed `needle`.
fn wait_all(vms: &[Vm], from: &[usize], t0: Instant, needle: &str, dir: &Path) -> anyhow::Result<Vec<f64>> {
    let mut times = vec![None; vms.len()];
    let deadline = t0 + Duration::from_secs(1200);
    while times.iter().any(Option::is_none) {
        anyhow::ensure!(Instant::now() < deadline, "not every VM showed {needle:?} within 1200 s; consoles in {}", dir.display());
        for (i, vm) in vms.iter().enumerate() {
            if times[i].is_none() && after(vm, from[i]).lines().any(|l| swarmboot_lab::without_escapes(l).contains(needle)) {
                times[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(times.into_iter().map(|t| t.unwrap_or(f64::NAN)).collect())
}

fn after(vm: &Vm, from: usize) -> String {
    let bytes = std::fs::read(&vm.console).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned()
}

/// Each VM's "image verified" figures after byte `from[i]` of its console.
fn figures(vms: &[Vm], from: &[usize]) -> anyhow::Result<Vec<Verified>> {
    vms.iter()
        .zip(from)
        .map(|(vm, &f)| {
            let text = after(vm, f);
            let line = text
                .lines()
                .map(swarmboot_lab::without_escapes)
                .find(|l| l.contains("image verified: "))
                .with_context(|| format!("no \"image verified\" on {}", vm.console.display()))?;
            Verified::parse(&line).with_context(|| format!("cannot read {line:?}"))
        })
        .collect()
}

fn table(storms: &[Storm], root_mib: f64) {
    println!("\n| storm | VMs | server's seed ÷ root (all VMs) | from donated disks ÷ root | server uplink ÷ root | last VM up |");
    println!("|---|---|---|---|---|---|");
    for s in storms {
        let seed: u64 = s.figures.iter().map(|f| f.from_server_seed_mib).sum();
        let disk: u64 = s.figures.iter().map(|f| f.from_donated_disk_mib).sum();
        println!(
            "| {} | {} | {:.2} ({seed} MiB) | {:.2} | {:.2} | {:.0} s |",
            s.name,
            s.up.len(),
            seed as f64 / root_mib,
            disk as f64 / root_mib,
            s.uplink as f64 / 1048576.0 / root_mib,
            s.up.iter().copied().fold(0.0, f64::max)
        );
    }
    if let [first, upgrade] = storms {
        let seed = |s: &Storm| s.figures.iter().map(|f| f.from_server_seed_mib).sum::<u64>() as f64;
        println!(
            "\nupgrade vs first boot: the server's seed {:.2}×, the uplink {:.2}× (goal: seed ≤ 0.3 images for all)",
            seed(upgrade) / seed(first).max(1.0),
            upgrade.uplink as f64 / first.uplink.max(1) as f64
        );
    }
}
