//! Boot benchmark: a VM's power-on → marker time. OVMF's own PXE fetches iPXE (`snponly.efi`)
//! over TFTP in both cases; then swarmboot serves the script, kernel and initramfs over HTTP,
//! while dnsmasq serves the same script (with `tftp://` URLs), kernel and initramfs over TFTP.
//! Median of several boots each; the ratio is dnsmasq's time ÷ swarmboot's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use swarmboot_lab::initramfs::{debian_kernel, write_test_initramfs, MARKER_PREFIX};
use swarmboot_lab::qemu::{Firmware, Vm};
use swarmboot_lab::{wait_for_line, Lan, Proc, ScratchDir, Server};

use crate::host::{self, Running};

const CMDLINE: &str = "console=ttyS0 panic=-1 marker=bench";

pub fn run(runs: usize) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-boot", "warn,swarmboot_server=info,swarmboot_server::dhcp_service=warn,swarmboot_server::http=warn")? {
        return Ok(());
    }
    let dir = ScratchDir::new("bench-boot")?;
    let kernel = debian_kernel().context("no Debian kernel in /boot")?;
    let initrd = dir.path().join("initrd.cpio");
    write_test_initramfs(&initrd, Path::new("/bin/busybox"))?;

    let mut results = Vec::new();
    for server in ["swarmboot", "dnsmasq"] {
        let mut times = Vec::new();
        for i in 0..runs {
            let lan = Lan::new("10.77.0.1/24")?;
            let sdir = dir.path().join(format!("{server}-{i}"));
            std::fs::create_dir_all(&sdir)?;
            let _running = start(server, &lan, &sdir, &kernel, &initrd)?;
            let t = Instant::now();
            let mut vm = Vm::start(&lan, &sdir, "vm", "52:54:00:00:09:01", Firmware::UefiNativePxe)?;
            vm.wait_for(&format!("{MARKER_PREFIX} bench"), Duration::from_secs(300))?;
            let took = t.elapsed();
            println!("{server:>9} boot {i}: {:.1} s", took.as_secs_f64());
            times.push(took);
        }
        times.sort();
        results.push((server, times[times.len() / 2]));
    }
    let ours = results[0].1.as_secs_f64();
    println!("\nVM power-on → marker (OVMF native PXE, TCG), median of {runs}:");
    println!("| server | seconds | server ÷ swarmboot |");
    println!("|---|---|---|");
    for (name, t) in &results {
        println!("| {name} | {:.1} | {:.2} |", t.as_secs_f64(), t.as_secs_f64() / ours);
    }
    Ok(())
}

fn start(server: &str, lan: &Lan, dir: &Path, kernel: &Path, initrd: &Path) -> anyhow::Result<Running> {
    if server == "swarmboot" {
        let cfg = format!(
            "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
             [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n\
             [boot]\ndefault_image = \"bench\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
            dir.join("state").display()
        );
        let s = Server::start(&lan.server, dir, &cfg, 8080)?;
        s.cli(&["image", "add", "bench", "--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap(), "--cmdline", CMDLINE])?;
        return Ok(Running::Swarmboot(s));
    }
    // dnsmasq: DHCP + TFTP; UEFI firmware gets snponly.efi, iPXE gets a TFTP-only script.
    let root = dir.join("tftp");
    std::fs::create_dir_all(&root)?;
    std::fs::copy("/usr/lib/ipxe/snponly.efi", root.join("snponly.efi"))?;
    std::fs::copy(kernel, root.join("vmlinuz"))?;
    std::fs::copy(initrd, root.join("initrd.img"))?;
    std::fs::write(
        root.join("boot-tftp.ipxe"),
        format!("#!ipxe\nkernel tftp://10.77.0.1/vmlinuz initrd=initrd.img {CMDLINE}\ninitrd --name initrd.img tftp://10.77.0.1/initrd.img\nboot\n"),
    )?;
    let mut c = lan.server.command("dnsmasq");
    c.args(["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces", "--no-ping", "--enable-tftp"])
        .arg(format!("--tftp-root={}", root.display()))
        .args(["--dhcp-range=10.77.0.100,10.77.0.199,1h", "--dhcp-userclass=set:ipxe,iPXE", "--dhcp-boot=tag:ipxe,boot-tftp.ipxe", "--dhcp-boot=tag:!ipxe,snponly.efi"])
        .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()));
    let p = Proc::spawn("dnsmasq", &mut c, &dir.join("dnsmasq.log"))?;
    wait_for_line(&p.log, "DHCP, IP range", Duration::from_secs(10))?;
    Ok(Running::Other(p))
}
