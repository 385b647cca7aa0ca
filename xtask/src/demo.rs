//! The demo (the README's main command): a lab LAN with `swarmboot serve` (authoritative
//! DHCP, TFTP, HTTP, tracker, seed), elchOS built by `swarmboot image build elchos` (once; kept
//! in `~/.cache/swarmboot/demo-<recipe>` and built again when its recipe changes), a stub
//! built for this host's Debian kernel, and VMs (SeaBIOS with its iPXE ROM; OVMF with its own
//! PXE, which chainloads iPXE over TFTP) that PXE-boot elchOS in swarm mode: the first alone,
//! the others together once it runs, so they fetch from it. Consoles are shown live; at the
//! end, how long each VM took from power-on to its login prompt and how many bytes it got from
//! the server's seed and from peers; then everything is torn down.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::initramfs::debian_kernel;
use swarmboot_lab::qemu::{Firmware, Vm, VmSpec};
use swarmboot_lab::{Lan, ScratchDir, Server};

use crate::host::{self, ensure_packages, workspace_root};

/// The line of elchOS's `/etc/issue` its getty prints just before the login prompt.
const LOGIN_ISSUE: &str = "(root logs in with the password or SSH key given to";

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
    // elchOS comes from the cache (built there once per recipe).
    let state = dir.path().join("state");
    host::elchos_state(&state)?;
    let config = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nlease_time = \"1h\"\nrouter = \"10.77.0.1\"\n\
         [boot]\ndefault_image = \"elchos\"\nmode = \"swarm\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        state.display()
    );
    println!("== lab: namespace {} with bridge br0 = 10.77.0.1/24", lan.server.name());
    std::env::set_var("SWARMBOOT_LOG", "info");
    let server = Server::start(&lan.server, dir.path(), &config, 8080)?;
    println!("== swarmboot serve is up (log: {})", server.log_path().display());
    let kernel = debian_kernel().context("no Debian kernel in /boot")?;
    let s = |p: &Path| p.to_str().unwrap().to_string();
    print!("{}", server.cli(&["stub", "build", "--kernel", &s(&kernel)])?);

    let kinds = [Firmware::Bios, Firmware::UefiNativePxe];
    let start = |i: usize| -> anyhow::Result<(String, Vm, Instant)> {
        let fw = kinds[i % kinds.len()];
        let name = format!("vm{i}-{}", if fw == Firmware::Bios { "bios" } else { "uefi" });
        println!("== starting {name} ({fw:?}), QEMU TCG");
        Vm::start_with(&lan, dir.path(), &name, &format!("52:54:00:00:00:{:02x}", 0x10 + i), fw, VmSpec { mib: 1024, reboots: false, jitter: None, disks: &[] })
            .map(|vm| (name, vm, Instant::now()))
    };
    // The first machine alone (everything from the server), the rest once it runs.
    let mut machines: Vec<(String, Vm, Instant)> = vec![start(0)?];
    let mut login_after: Vec<Option<Duration>> = vec![None];
    let mut started_rest = vms <= 1;

    // Follow the consoles until every VM printed its marker.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut offsets: Vec<u64> = vec![0];
    let mut done = vec![false];
    while done.iter().any(|d| !d) || !started_rest {
        if Instant::now() > deadline {
            dir.keep();
            bail!("not every VM booted within 600 s; consoles are in {}", dir.path().display());
        }
        if !started_rest && done[0] {
            for i in 1..vms {
                machines.push(start(i)?);
                offsets.push(0);
                done.push(false);
                login_after.push(None);
            }
            started_rest = true;
        }
        for (i, (name, vm, powered_on)) in machines.iter_mut().enumerate() {
            let exited = vm.exited();
            let Ok(mut f) = std::fs::File::open(&vm.console) else {
                continue;
            };
            f.seek(SeekFrom::Start(offsets[i]))?;
            let mut r = BufReader::new(f);
            let mut line = String::new();
            while r.read_line(&mut line)? > 0 && line.ends_with('\n') {
                offsets[i] += line.len() as u64;
                let text = swarmboot_lab::without_escapes(line.trim_end());
                if !text.trim().is_empty() {
                    println!("[{name}] {text}");
                }
                // The line elchOS's getty prints just before its login prompt.
                if text.contains(LOGIN_ISSUE) && !done[i] {
                    done[i] = true;
                    login_after[i] = Some(powered_on.elapsed());
                    println!("== {name}: power-on → login prompt in {:.0} s", powered_on.elapsed().as_secs_f64());
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
    println!("== each VM: power-on → login prompt, and where its image came from (its stub's count):");
    for (i, (name, vm, _)) in machines.iter().enumerate() {
        let console = String::from_utf8_lossy(&std::fs::read(&vm.console).unwrap_or_default()).into_owned();
        let line = console.lines().find_map(|l| l.split("swarmboot: image verified: ").nth(1)).unwrap_or("(no summary on the console)");
        println!("   {name}: {:.0} s; {line}", login_after[i].map_or(0.0, |d| d.as_secs_f64()));
    }
    println!("== every VM booted elchOS from swarmboot (log in on a console as root, password `elchos`)");
    println!("== leases:\n{}", server.cli(&["leases"])?);
    println!("== counters: {}", server.metrics()?.lines().filter(|l| l.starts_with("swarmboot") && !l.ends_with(" 0")).collect::<Vec<_>>().join(", "));
    println!("== tearing down");
    Ok(())
}
