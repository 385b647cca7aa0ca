//! The upgrade benchmark: N elchOS VMs, each with an `ELCHOS-DATA` disk (ext4, as an owner
//! labels one), power on at once and boot elchos@1 through the swarm with nothing pre-seeded —
//! the baseline storm. Then elchos@2 is added while they run (a new root: version 1's with a
//! MiB of noise past its end), their donors fetch it onto their donated disks, and all N are
//! rebooted at once by signed commands: the stubs find it there. Printed per storm: the bytes
//! the server's seed sent (the stubs' own count, from their consoles), the server's uplink
//! bytes (br0, everything: iPXE, the stub, check-ins), each ÷ the root filesystem's size,
//! and when the last VM reached multi-user.target. Between the storms, the datasets on
//! the same fleet: three wanting 2 replicas each, then a successor of one.

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

    datasets_on_the_fleet(&lan, &server, &macs, dir)?;

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

/// The datasets of the lab, on the booted fleet: three datasets wanting 2 replicas
/// each go onto the machines' donated disks; each is then served byte-identical from at least
/// 2 machines' `datasets` shares and listed in the server's namespace with those machines as
/// its sources. Then a successor of one, with one file more, takes its place on its holders:
/// what the machines report downloading for it is compared with that one file.
fn datasets_on_the_fleet(lan: &Lan, server: &Server, macs: &[String], dir: &Path) -> anyhow::Result<()> {
    const REPLICAS: usize = 2;
    let sets: [(&str, &[(&str, usize)]); 3] =
        [("set-a", &[("a1.bin", 3 << 20), ("notes/a2.txt", 200_000)]), ("set-b", &[("b1.bin", 2 << 20), ("b2.bin", 1 << 20)]), ("set-c", &[("c1.bin", 1 << 20)])];
    let mut contents: Vec<(String, Files)> = Vec::new();
    for (i, (name, files)) in sets.iter().enumerate() {
        let root = dir.join(name);
        let mut kept = Vec::new();
        for (j, (rel, len)) in files.iter().enumerate() {
            let bytes = swarmboot_lab::noise(*len, 100 + 10 * i as u64 + j as u64);
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().context("a file in a directory")?)?;
            std::fs::write(&path, &bytes)?;
            kept.push((rel.to_string(), bytes));
        }
        server.cli(&["dataset", "add", name, root.to_str().unwrap_or_default(), "--replicas", &REPLICAS.to_string()])?;
        contents.push((name.to_string(), kept));
    }
    let added = Instant::now();
    loop {
        let holders: Vec<Vec<&str>> = contents.iter().map(|(name, files)| holding(lan, server, macs, name, files)).collect();
        if holders.iter().all(|h| h.len() >= REPLICAS) && contents.iter().all(|(name, files)| in_namespace(server, name, files, REPLICAS)) {
            let said: Vec<String> = contents.iter().zip(&holders).map(|((name, _), h)| format!("{name} by {}", h.len())).collect();
            println!(
                "{} datasets wanting {REPLICAS} replicas each: served byte-identical ({}) and in the namespace with as many sources {:.0} s after they were added",
                contents.len(),
                said.join(", "),
                added.elapsed().as_secs_f64()
            );
            break;
        }
        anyhow::ensure!(
            added.elapsed() < Duration::from_secs(600),
            "the datasets were not on {REPLICAS} machines each 600 s after they were added: {holders:?}; consoles in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // set-b2: set-b and one new file, in set-b's place.
    let (_, b_files) = &contents[1];
    let b_holders: Vec<String> = holding(lan, server, macs, "set-b", b_files).into_iter().map(str::to_string).collect();
    let new_file = swarmboot_lab::noise(1 << 20, 199);
    let root = dir.join("set-b");
    std::fs::write(root.join("b3.bin"), &new_file)?;
    let mut b2_files = b_files.clone();
    b2_files.push(("b3.bin".to_string(), new_file.clone()));
    // The machines' announces carry what they downloaded (the donors' and the seeders').
    std::thread::sleep(Duration::from_secs(CHECKIN_SECS + 3));
    let downloaded_before = server.metric("swarmboot_peers_downloaded_bytes_total")?;
    server.cli(&["dataset", "add", "set-b2", root.to_str().unwrap_or_default(), "--replicas", &REPLICAS.to_string(), "--successor-of", "set-b"])?;
    let added = Instant::now();
    loop {
        let b2 = holding(lan, server, macs, "set-b2", &b2_files);
        let b = holding(lan, server, macs, "set-b", b_files);
        if b2.len() >= REPLICAS && b.iter().all(|m| !b2.contains(m)) && b_holders.iter().all(|m| b2.contains(&m.as_str())) {
            break;
        }
        anyhow::ensure!(
            added.elapsed() < Duration::from_secs(300),
            "set-b2 did not take set-b's place within 300 s: set-b2 on {b2:?}, set-b still on {b:?} (it was on {b_holders:?})"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let took = added.elapsed();
    // Settled: the same holders, and what they announce downloading no longer growing, over
    // two check-ins (a donor with room may take set-b2 too, though it never held set-b: all of
    // it is what it lacks).
    let (mut holders, mut downloaded) = (Vec::new(), 0);
    loop {
        let now = holding(lan, server, macs, "set-b2", &b2_files);
        let total = server.metric("swarmboot_peers_downloaded_bytes_total")? - downloaded_before;
        if now == holders && total == downloaded {
            break;
        }
        (holders, downloaded) = (now, total);
        anyhow::ensure!(added.elapsed() < Duration::from_secs(600), "set-b2's holders did not settle within 600 s: {holders:?}");
        std::thread::sleep(Duration::from_secs(2 * CHECKIN_SECS + 3));
    }
    // What they lacked: at least the new file each; all of set-b2 on a machine that did not
    // hold set-b when it was added (one still fetching set-b then is counted so: an upper bound).
    let b2_len: usize = b2_files.iter().map(|(_, b)| b.len()).sum();
    let least = new_file.len() * holders.len();
    let most: usize = holders.iter().map(|m| if b_holders.iter().any(|b| b == m) { new_file.len() } else { b2_len }).sum();
    println!(
        "set-b2 (set-b + 1 MiB) in set-b's place on its {} holders {:.0} s after it was added ({} machines hold it); they reported downloading {:.2} MiB for it: {:.2}× the new file on each, {:.2}× what they lacked at most ({:.2} MiB) (goal ≤ 1.05× what they lacked)",
        b_holders.len(),
        took.as_secs_f64(),
        holders.len(),
        downloaded as f64 / 1048576.0,
        downloaded as f64 / least as f64,
        downloaded as f64 / most as f64,
        most as f64 / 1048576.0
    );
    Ok(())
}

/// A dataset's files: path in it, content.
type Files = Vec<(String, Vec<u8>)>;

/// The machines that serve every file of dataset `name` byte-identical from their `datasets`
/// share.
fn holding<'a>(lan: &Lan, server: &Server, macs: &'a [String], name: &str, files: &[(String, Vec<u8>)]) -> Vec<&'a str> {
    macs.iter()
        .filter(|mac| {
            let Some(base) = datasets_share(server, mac) else { return false };
            files.iter().all(|(rel, bytes)| {
                let out = lan.server.command("curl").args(["-sS", "--fail", "--max-time", "60"]).arg(format!("{base}{name}/{rel}")).output();
                out.is_ok_and(|o| o.status.success() && o.stdout == *bytes)
            })
        })
        .map(String::as_str)
        .collect()
}

/// Whether the server's namespace lists each of the dataset's files with at least `sources`
/// machines behind it.
fn in_namespace(server: &Server, name: &str, files: &[(String, Vec<u8>)], sources: usize) -> bool {
    files.iter().all(|(rel, _)| {
        let (parent, leaf) = rel.rsplit_once('/').map_or((String::new(), rel.as_str()), |(p, l)| (format!("/{p}"), l));
        let tree: serde_json::Value = serde_json::from_str(&server.get(&format!("/api/v1/tree/datasets/{name}{parent}")).unwrap_or_default()).unwrap_or_default();
        tree["entries"].as_array().is_some_and(|entries| entries.iter().any(|e| e["name"] == leaf && e["sources"].as_array().is_some_and(|s| s.len() >= sources)))
    })
}

/// The URL of node `mac`'s `datasets` share (from `swarmboot node list`).
fn datasets_share(server: &Server, mac: &str) -> Option<String> {
    let text = server.cli(&["node", "list", "--json"]).ok()?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).ok()?;
    rows.iter().find(|r| r["mac"] == mac).and_then(|n| n["shares"].as_array()?.iter().find(|s| s["name"] == "datasets")?["urls"][0].as_str().map(str::to_string))
}

/// Whether the node `mac` serves `path` from its `datasets` share at `len` bytes (a HEAD from
/// the server's namespace).
fn holds_whole(lan: &Lan, server: &Server, mac: &str, path: &str, len: u64) -> bool {
    let Some(base) = datasets_share(server, mac) else { return false };
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
