//! The fleet-boot benchmark: N QEMU VMs (SeaBIOS + iPXE ROM, TCG) power on at once and boot
//! an image of SIZE MiB of incompressible data, in swarm mode and in direct mode, in one run on
//! the same lab, each booting one kernel: in swarm mode the image is Debian's kernel, a tiny
//! initramfs and a squashfs root holding the data (the stub fetches it through the swarm and
//! switch_roots); in direct mode iPXE loads Debian's kernel and an initramfs holding the same
//! data over HTTP. The server's uplink (br0) is shaped to RATE, as a boot server's port would
//! be. Printed per mode and VM: seconds from power-on to the image's marker, and the server's
//! bytes per VM (br0's tx counter ÷ N, headers included) ÷ the image's size.
//!
//! `--image elchos`: N VMs boot elchOS (`swarmboot image build elchos`, built once per recipe
//! into the cache) to multi-user.target, through the swarm and with `swarmboot.swarm=0` on its
//! command line (the same stub and switch_root, every byte of the image from the server over
//! HTTP, nothing seeded): seconds from power-on to multi-user.target, and the server's bytes
//! per VM ÷ the elchOS root filesystem's size.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use swarmboot_lab::initramfs::{debian_kernel, write_test_initramfs, write_test_initramfs_with_data, write_test_rootfs, MARKER_PREFIX};
use swarmboot_lab::qemu::{Firmware, Vm};
use swarmboot_lab::{Lan, ScratchDir, Server};

use crate::host;

pub struct StubBenchArgs {
    pub vms: usize,
    pub size_mib: usize,
    pub rate: String,
    /// `synthetic` (SIZE MiB of noise) or `elchos`.
    pub image: String,
}

struct Row {
    mode: &'static str,
    times: Vec<f64>,
    server_bytes: u64,
    image: u64,
}

pub fn run(a: StubBenchArgs) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-stub", "info")? {
        return Ok(());
    }
    host::build_stub_init()?;
    match a.image.as_str() {
        "synthetic" => {}
        "elchos" => return elchos(&a),
        other => anyhow::bail!("--image {other:?}: synthetic or elchos"),
    }
    let scratch = ScratchDir::new("bench-stub")?;
    let kernel = debian_kernel().context("no Debian kernel in /boot")?;
    let busybox = Path::new("/bin/busybox");
    let (big_initrd, small_initrd, rootfs) = (scratch.path().join("data-initrd.cpio"), scratch.path().join("initrd.cpio"), scratch.path().join("root.squashfs"));
    write_test_initramfs_with_data(&big_initrd, busybox, a.size_mib, 3)?;
    write_test_initramfs(&small_initrd, busybox)?;
    write_test_rootfs(&rootfs, busybox, a.size_mib, 3)?;
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let image = len(&kernel) + len(&big_initrd);
    let files = |mode: &str| -> Vec<(&'static str, std::path::PathBuf)> {
        if mode == "swarm" {
            vec![("--kernel", kernel.clone()), ("--initrd", small_initrd.clone()), ("--rootfs", rootfs.clone())]
        } else {
            vec![("--kernel", kernel.clone()), ("--initrd", big_initrd.clone())]
        }
    };
    println!("bench-stub: {} VMs at once, image {:.1} MiB (kernel + {} MiB of data), server uplink {}", a.vms, image as f64 / 1048576.0, a.size_mib, a.rate);
    let mut rows = Vec::new();
    for mode in ["swarm", "direct"] {
        let row = boot_all(&a, mode, &scratch, &kernel, &files(mode), image)?;
        let mut t = row.times.clone();
        t.sort_by(f64::total_cmp);
        println!(
            "{mode:>6}: marker after {} s (max {:.1} s); server {:.2} images per VM",
            row.times.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" / "),
            t[t.len() - 1],
            row.server_bytes as f64 / a.vms as f64 / image as f64
        );
        rows.push(row);
    }
    table(&rows, "marker");
    Ok(())
}

/// The Markdown table of `rows` (swarm first, the baseline second) and the ratios.
fn table(rows: &[Row], reached: &str) {
    println!("\n| mode | VM | power-on → {reached} | server bytes ÷ image (per VM, all VMs) |");
    println!("|---|---|---|---|");
    for r in rows {
        for (i, t) in r.times.iter().enumerate() {
            println!("| {} | vm{i} | {t:.1} s | {:.2} |", r.mode, r.server_bytes as f64 / r.times.len() as f64 / r.image as f64);
        }
    }
    let max = |r: &Row| r.times.iter().copied().fold(0.0, f64::max);
    let (s, d) = (&rows[0], &rows[1]);
    println!("\n{} vs {}: last {reached} {:.2}× {}'s, server bytes {:.2}× {}'s", s.mode, d.mode, max(s) / max(d), d.mode, s.server_bytes as f64 / d.server_bytes as f64, d.mode);
}

/// What every VM's console must show, and when it did.
fn wait_all(vms: &mut [Vm], t0: Instant, needle: &str, what: &str, dir: &Path) -> anyhow::Result<Vec<f64>> {
    let mut times = vec![None; vms.len()];
    let deadline = t0 + Duration::from_secs(900);
    while times.iter().any(Option::is_none) {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not every VM showed {needle:?} in 900 s; consoles in {}", dir.display());
        for (i, vm) in vms.iter_mut().enumerate() {
            let seen = || String::from_utf8_lossy(&std::fs::read(&vm.console).unwrap_or_default()).lines().any(|l| swarmboot_lab::without_escapes(l).contains(needle));
            if times[i].is_none() && seen() {
                times[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(times.into_iter().map(|t| t.unwrap_or(f64::NAN)).collect())
}

/// elchOS to multi-user.target on N VMs at once: through the swarm, then over HTTP only.
fn elchos(a: &StubBenchArgs) -> anyhow::Result<()> {
    let scratch = ScratchDir::new("bench-stub-elchos")?;
    let kernel = debian_kernel().context("no Debian kernel in /boot")?;
    let mut rows = Vec::new();
    for mode in ["swarm", "http"] {
        let dir = scratch.path().join(mode);
        host::elchos_state(&dir.join("state"))?;
        let lan = Lan::new("10.77.0.1/24")?;
        let cfg = format!(
            "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
             [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n\
             [http]\nlisten = \"0.0.0.0:8080\"\n",
            dir.join("state").display()
        );
        let server = Server::start(&lan.server, &dir, &cfg, 8080)?;
        let list: serde_json::Value = serde_json::from_str(&server.cli(&["image", "list", "--json"])?)?;
        let elchos = list.as_array().and_then(|a| a.iter().rfind(|m| m["name"] == "elchos")).context("no elchos in the catalog")?;
        let rootfs = elchos["files"].as_array().and_then(|f| f.iter().find(|f| f["role"] == "rootfs")).and_then(|f| f["size"].as_u64()).context("elchos has no rootfs")?;
        if mode == "http" {
            // The same files, every byte from the server over HTTP.
            let store = |role: &str| -> anyhow::Result<String> {
                let sha = elchos["files"].as_array().and_then(|f| f.iter().find(|f| f["role"] == role)).and_then(|f| f["sha256"].as_str()).context("a file")?;
                Ok(dir.join("state/store").join(&sha[..2]).join(&sha[..4]).join(sha).display().to_string())
            };
            let cmdline = format!("{} swarmboot.swarm=0", elchos["cmdline"].as_str().unwrap_or_default());
            server.cli(&["image", "add", "elchos", "--kernel", &store("kernel")?, "--initrd", &store("initrd")?, "--rootfs", &store("rootfs")?, "--cmdline", &cmdline])?;
        }
        server.cli(&["stub", "build", "--kernel", kernel.to_str().unwrap_or_default()])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.metric("swarmboot_seed_files")? < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        lan.server.shape("br0", &a.rate)?;
        let before = lan.server.tx_bytes("br0")?;
        let t0 = Instant::now();
        let spec = swarmboot_lab::qemu::VmSpec { mib: 1024, reboots: false, jitter: None, disks: &[] };
        let mut vms: Vec<Vm> =
            (0..a.vms).map(|i| Vm::start_with(&lan, &dir, &format!("vm{i}"), &format!("52:54:00:be:01:{i:02x}"), Firmware::Bios, spec)).collect::<anyhow::Result<_>>()?;
        // swarmboot-booted.service's kernel log line, once multi-user.target is reached (the
        // elchos@2 of the HTTP run is the same image).
        let times = wait_all(&mut vms, t0, "is up: multi-user.target reached", mode, &dir)?;
        let server_bytes = lan.server.tx_bytes("br0")? - before;
        println!(
            "{mode:>6}: multi-user.target after {} s; server {:.2} root filesystems per VM",
            times.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" / "),
            server_bytes as f64 / a.vms as f64 / rootfs as f64
        );
        drop(vms);
        rows.push(Row { mode, times, server_bytes, image: rootfs });
    }
    println!("bench-stub: {} VMs at once boot elchOS ({:.1} MiB root filesystem), server uplink {}", a.vms, rows[0].image as f64 / 1048576.0, a.rate);
    table(&rows, "multi-user.target");
    Ok(())
}

fn boot_all(a: &StubBenchArgs, mode: &'static str, scratch: &ScratchDir, kernel: &Path, files: &[(&str, std::path::PathBuf)], image: u64) -> anyhow::Result<Row> {
    let dir = scratch.path().join(mode);
    std::fs::create_dir_all(&dir)?;
    let lan = Lan::new("10.77.0.1/24")?;
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n\
         [boot]\ndefault_image = \"bench\"\nmode = \"{mode}\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.join("state").display()
    );
    let server = Server::start(&lan.server, &dir, &cfg, 8080)?;
    let s = |p: &Path| p.to_str().unwrap_or_default().to_string();
    let mut args: Vec<String> = vec!["image".into(), "add".into(), "bench".into()];
    for (flag, path) in files {
        args.push(flag.to_string());
        args.push(s(path));
    }
    args.extend(["--cmdline".into(), "console=ttyS0 panic=-1 marker=bench".into()]);
    server.cli(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    if mode == "swarm" {
        server.cli(&["stub", "build", "--kernel", &s(kernel)])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.metric("swarmboot_seed_files")? < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    lan.server.shape("br0", &a.rate)?;
    let before = lan.server.tx_bytes("br0")?;
    let t0 = Instant::now();
    let mut vms: Vec<Vm> = (0..a.vms).map(|i| Vm::start(&lan, &dir, &format!("vm{i}"), &format!("52:54:00:be:00:{i:02x}"), Firmware::Bios)).collect::<anyhow::Result<_>>()?;
    let mut times = vec![None; a.vms];
    let deadline = t0 + Duration::from_secs(600);
    while times.iter().any(Option::is_none) {
        anyhow::ensure!(Instant::now() < deadline, "{mode}: not every VM reached the marker in 600 s; consoles in {}", dir.display());
        for (i, vm) in vms.iter_mut().enumerate() {
            if times[i].is_none() && std::fs::read_to_string(&vm.console).is_ok_and(|c| c.contains(&format!("{MARKER_PREFIX} bench"))) {
                times[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let server_bytes = lan.server.tx_bytes("br0")? - before;
    drop(vms);
    Ok(Row { mode, times: times.into_iter().map(|t| t.unwrap_or(f64::NAN)).collect(), server_bytes, image })
}
