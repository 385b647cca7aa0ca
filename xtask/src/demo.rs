//! The demo (the README's main command): a lab LAN with `swarmboot serve` (authoritative
//! DHCP, TFTP, HTTP, tracker, seed), a stub built for Debian's kernel, an image whose root is a
//! squashfs with 32 MiB of noise in it, and VMs (SeaBIOS with its iPXE ROM; OVMF with its own
//! PXE, which chainloads iPXE over TFTP) that PXE-boot in swarm mode: the first alone, the
//! others together once it runs, so they fetch from it. Consoles are shown live; at the end,
//! how many bytes each VM got from the server and from peers; then everything is torn down.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::initramfs::{debian_kernel, write_test_initramfs, write_test_rootfs, MARKER_PREFIX};
use swarmboot_lab::qemu::{Firmware, Vm};
use swarmboot_lab::{Lan, ScratchDir, Server};

use crate::host::{self, ensure_packages, workspace_root};

pub fn run(vms: usize) -> anyhow::Result<()> {
    ensure_packages()?;
    let root = workspace_root();
    host::run(host::cargo().current_dir(&root).args(["build", "--workspace", "--bins"]))?;
    host::build_stub_init()?;
    if !swarmboot_lab::require_root("demo") {
        return Ok(());
    }
    let dir = ScratchDir::new("demo")?;
    let lan = Lan::new("10.77.0.1/24")?;
    let config = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nlease_time = \"1h\"\nrouter = \"10.77.0.1\"\n\
         [boot]\ndefault_image = \"demo\"\nmode = \"swarm\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    println!("== lab: namespace {} with bridge br0 = 10.77.0.1/24", lan.server.name());
    std::env::set_var("SWARMBOOT_LOG", "info");
    let server = Server::start(&lan.server, dir.path(), &config, 8080)?;
    println!("== swarmboot serve is up (log: {})", server.log_path().display());

    let kernel = debian_kernel().context("no Debian kernel in /boot")?;
    let initrd = dir.path().join("demo-initrd.cpio");
    write_test_initramfs(&initrd, Path::new("/bin/busybox"))?;
    let rootfs = dir.path().join("demo-root.squashfs");
    write_test_rootfs(&rootfs, Path::new("/bin/busybox"), 32, 7)?;
    let s = |p: &Path| p.to_str().unwrap().to_string();
    print!(
        "{}",
        server.cli(&[
            "image",
            "add",
            "demo",
            "--kernel",
            &s(&kernel),
            "--initrd",
            &s(&initrd),
            "--rootfs",
            &s(&rootfs),
            "--cmdline",
            "console=ttyS0 panic=-1 marker=demo-booted"
        ])?
    );
    print!("{}", server.cli(&["stub", "build", "--kernel", &s(&kernel)])?);

    let kinds = [Firmware::Bios, Firmware::UefiNativePxe];
    let start = |i: usize| -> anyhow::Result<(String, Vm)> {
        let fw = kinds[i % kinds.len()];
        let name = format!("vm{i}-{}", if fw == Firmware::Bios { "bios" } else { "uefi" });
        println!("== starting {name} ({fw:?}), QEMU TCG");
        Vm::start(&lan, dir.path(), &name, &format!("52:54:00:00:00:{:02x}", 0x10 + i), fw).map(|vm| (name, vm))
    };
    // The first machine alone (everything from the server), the rest once it runs.
    let mut machines: Vec<(String, Vm)> = vec![start(0)?];
    let mut started_rest = vms <= 1;

    // Follow the consoles until every VM printed its marker.
    let deadline = Instant::now() + Duration::from_secs(400);
    let mut offsets: Vec<u64> = vec![0];
    let mut done = vec![false];
    while done.iter().any(|d| !d) || !started_rest {
        if Instant::now() > deadline {
            dir.keep();
            bail!("not every VM booted within 400 s; consoles are in {}", dir.path().display());
        }
        if !started_rest && done[0] {
            for i in 1..vms {
                machines.push(start(i)?);
                offsets.push(0);
                done.push(false);
            }
            started_rest = true;
        }
        for (i, (name, vm)) in machines.iter_mut().enumerate() {
            let exited = vm.exited();
            let Ok(mut f) = std::fs::File::open(&vm.console) else {
                continue;
            };
            f.seek(SeekFrom::Start(offsets[i]))?;
            let mut r = BufReader::new(f);
            let mut line = String::new();
            while r.read_line(&mut line)? > 0 && line.ends_with('\n') {
                offsets[i] += line.len() as u64;
                let text = line.trim_end();
                if !text.is_empty() {
                    println!("[{name}] {text}");
                }
                if text.contains(MARKER_PREFIX) {
                    done[i] = true;
                }
                line.clear();
            }
            if exited && !done[i] {
                dir.keep();
                bail!("{name} stopped without booting its image; consoles are in {}", dir.path().display());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("== where each VM's image came from (its stub's count):");
    for (name, vm) in &machines {
        let console = std::fs::read_to_string(&vm.console).unwrap_or_default();
        let line = console.lines().find_map(|l| l.split("swarmboot: image verified: ").nth(1)).unwrap_or("(no summary on the console)");
        println!("   {name}: {line}");
    }
    println!("== every VM booted its image from swarmboot");
    println!("== leases:\n{}", server.cli(&["leases"])?);
    println!("== counters: {}", server.metrics()?.lines().filter(|l| l.starts_with("swarmboot") && !l.ends_with(" 0")).collect::<Vec<_>>().join(", "));
    println!("== tearing down");
    Ok(())
}
