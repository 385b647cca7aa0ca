//! Real Debian 12 systems through the stub (`swarmboot_lab::debian`: mmdebstrap, systemd,
//! udev, ifupdown/dhclient or systemd-networkd, Debian's kernels; built once, cached). The
//! operator's view is checked the way an operator looks: logged in as root on the serial
//! console, `systemctl`, `ps`, `journalctl`.

use std::time::{Duration, Instant};

use swarmboot_lab::debian::{debian_root, DebianRoot, IFUPDOWN, ROOT_PASSWORD};
use swarmboot_lab::qemu::{Firmware, Vm, VmSpec};
use swarmboot_lab::{require_root, Lan, ScratchDir, Server};

/// PXE to multi-user.target under TCG, with a Debian root of about 100 MiB through the swarm.
const BOOT: Duration = Duration::from_secs(600);
/// What the stub's `swarmboot-booted.service` writes to the kernel log (so to the console) once
/// the image reached multi-user.target; systemd's own status lines are lost on a serial
/// console whose getty hung it up.
const MULTI_USER: &str = "swarmboot: deb12@1 is up: multi-user.target reached";
const VM: VmSpec = VmSpec { mib: 1024, reboots: true, jitter: None, disks: &[] };

struct DebianLab {
    dir: ScratchDir,
    lan: Lan,
    server: Server,
}

/// A server (authoritative DHCP, swarm mode) with a stub built from the Debian root's
/// generic kernel and its modules, and the image `deb12` (the root's squashfs booted with
/// `kernel`) whose command line adds `cmdline`.
fn debian_lab(tag: &str, deb: &DebianRoot, kernel: &swarmboot_lab::debian::Kernel, cmdline: &str) -> DebianLab {
    let dir = ScratchDir::new(tag).unwrap();
    let lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n\
         [boot]\ndefault_image = \"deb12\"\nmode = \"swarm\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let line = format!("console=ttyS0 {cmdline}");
    server.cli(&["image", "add", "deb12", "--kernel", &s(&kernel.vmlinuz), "--initrd", &s(&kernel.initrd), "--rootfs", &s(&deb.squashfs), "--cmdline", &line]).unwrap();
    let built = server.cli(&["stub", "build", "--kernel", &s(&deb.generic.vmlinuz), "--modules-dir", &s(&deb.generic.modules)]).unwrap();
    assert!(built.contains("registered"), "{built}");
    DebianLab { dir, lan, server }
}

/// The console line with `needle`, from the start of the console.
fn console_line(vm: &Vm, needle: &str) -> String {
    let c = String::from_utf8_lossy(&std::fs::read(&vm.console).unwrap()).into_owned();
    c.lines().map(swarmboot_lab::without_escapes).find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} on {}'s console", vm.mac)).trim_end_matches('\r').to_string()
}

/// A stock Debian 12 root (systemd, udev, ifupdown + dhclient re-DHCPing the NIC), its kernel
/// the stub's: PXE → stub → root through the swarm → switch_root → multi-user.target. 30 s
/// later the seeder is `swarmboot-seed.service` (active, its log in the journal, the stub's
/// worker gone) seeding from the address the image's dhclient holds; a second machine, with
/// the server's seed off, boots the same image from the first alone; then `systemctl reboot`
/// of the first: the seeder stops within 5 s and the machine PXE-boots again.
#[test]
fn debian_switch_root_reaches_multi_user_seeds_under_systemd_and_reboots_through_pxe() {
    if !require_root("debian_switch_root_reaches_multi_user_seeds_under_systemd_and_reboots_through_pxe") {
        return;
    }
    let deb = debian_root().unwrap();
    let mut lab = debian_lab("deb-switch", &deb, &deb.generic, &format!("{IFUPDOWN} swarmboot.stall=600"));
    let started = Instant::now();
    let mut vm1 = Vm::start_with(&lab.lan, lab.dir.path(), "vm1", "52:54:00:5d:01:01", Firmware::Bios, VM).unwrap();
    vm1.wait_for(MULTI_USER, BOOT).unwrap();
    let multi_user = started.elapsed();
    eprintln!("vm1: power-on → multi-user.target in {:.0} s", multi_user.as_secs_f64());
    assert!(console_line(&vm1, "swarmboot: deb12@1 verified").contains("its kernel is the stub's: fetching only its root filesystem"));
    assert!(console_line(&vm1, "swarmboot: switching to deb12@1 (/sbin/init)").contains("removed the stub's"));

    vm1.login("root", ROOT_PASSWORD, Duration::from_secs(120)).unwrap();
    std::thread::sleep(Duration::from_secs(30).saturating_sub(started.elapsed() - multi_user));
    let status = vm1.shell("systemctl is-active swarmboot-seed; systemctl show -p MainPID --value swarmboot-seed", Duration::from_secs(60)).unwrap();
    let mut status_lines = status.lines();
    assert_eq!(status_lines.next(), Some("active"), "swarmboot-seed.service:\n{status}");
    let pid: u32 = status_lines.next().and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("a main pid:\n{status}"));
    let ps = vm1.shell("ps -eo pid=,comm=,args= | grep '[s]warmboot'", Duration::from_secs(60)).unwrap();
    let seeders: Vec<&str> = ps.lines().collect();
    assert_eq!(seeders.len(), 1, "one seeder, the service (the stub's worker handed over):\n{ps}");
    let words: Vec<&str> = seeders[0].split_whitespace().collect();
    assert_eq!(words[..4], [pid.to_string().as_str(), "swarmboot-seed", "/run/swarmboot/bin/swarmboot-init", "seed"], "{ps}");
    let journal = vm1.shell("journalctl -b -u swarmboot-seed --no-pager -o cat", Duration::from_secs(60)).unwrap();
    assert!(journal.contains("took over seeding from the stub's worker"), "{journal}");
    let seeding = journal.lines().find(|l| l.contains("swarmboot: seeding deb12@1")).unwrap_or_else(|| panic!("{journal}"));
    let addr = vm1.shell("ip -4 -o addr show scope global | awk '{print $4}'", Duration::from_secs(60)).unwrap();
    let addr = addr.lines().next().and_then(|a| a.split('/').next()).unwrap_or_default().to_string();
    assert!(addr.starts_with("10.77.0.") && seeding.contains(&format!("from {addr}:6881")), "the service seeds from the address dhclient holds ({addr}): {seeding}");
    let dhclient = vm1.shell("pgrep -a dhclient", Duration::from_secs(60)).unwrap();
    assert!(dhclient.contains("eth0") || dhclient.contains("ens3"), "ifupdown's dhclient manages the NIC:\n{dhclient}");
    eprintln!("vm1: {seeding}");

    // VM2 from VM1 alone.
    let mut cfg = std::fs::read_to_string(&lab.server.config).unwrap();
    cfg.push_str("[swarm]\nseed = false\n");
    std::fs::write(&lab.server.config, cfg).unwrap();
    lab.server.restart(&lab.lan.server).unwrap();
    let mut vm2 = Vm::start_with(&lab.lan, lab.dir.path(), "vm2", "52:54:00:5d:01:02", Firmware::Bios, VM).unwrap();
    vm2.wait_for(MULTI_USER, BOOT).unwrap();
    let verified = console_line(&vm2, "swarmboot: image verified");
    eprintln!("vm2: {verified}");
    assert!(verified.contains("(0 MiB of it from the server's seed), 0 MiB over HTTP"), "{verified}");
    assert_eq!(lab.server.metric("swarmboot_seed_uploaded_bytes_total").unwrap(), 0, "the server did not seed");
    drop(vm2);

    // A reboot: the seeder stops at once, the machine goes back through PXE.
    vm1.mark();
    let reboot = Instant::now();
    vm1.send("systemctl reboot\n").unwrap();
    // systemd shortens unit names to fit its 80-column status lines: `swarmboot-seed.se…`.
    vm1.wait_for("Stopping swarmboot-seed", Duration::from_secs(120)).unwrap();
    let stopping = Instant::now();
    vm1.wait_for("Stopped swarmboot-seed", Duration::from_secs(60)).unwrap();
    let stop = stopping.elapsed();
    vm1.wait_for("reboot: Restarting system", Duration::from_secs(180)).unwrap();
    let shutdown = reboot.elapsed();
    vm1.wait_for("swarmboot: stub starting", Duration::from_secs(180)).unwrap();
    eprintln!(
        "vm1: the seeder stopped in {:.1} s (as the console showed it), the whole shutdown took {:.0} s; rebooted through PXE into the stub",
        stop.as_secs_f64(),
        shutdown.as_secs_f64()
    );
    assert!(stop < Duration::from_secs(5), "the seeder held shutdown for {stop:?}");
}

/// The same stock root with Debian's cloud kernel (another build of the release: the stub
/// kexecs it), systemd-networkd managing the network, and `init=` set as LTSP images set it (a
/// script that does its part and execs systemd). The root comes into the new kernel without
/// the image's initramfs (which knows nothing of swarmboot and would ask for `root=`): the
/// carried init mounts it with the cloud kernel's own modules from the image and execs the
/// image's `init=`, and systemd reaches multi-user.target; the seeder is the service there,
/// seeding from the address networkd got.
#[test]
fn debian_with_its_own_kernel_is_kexeced_mounts_its_root_and_seeds_under_networkd() {
    if !require_root("debian_with_its_own_kernel_is_kexeced_mounts_its_root_and_seeds_under_networkd") {
        return;
    }
    let deb = debian_root().unwrap();
    let lab = debian_lab("deb-kexec", &deb, &deb.cloud, &format!("{} init={}", swarmboot_lab::debian::NETWORKD, swarmboot_lab::debian::WRAPPED_INIT));
    let started = Instant::now();
    let mut vm = Vm::start_with(&lab.lan, lab.dir.path(), "vm1", "52:54:00:5d:02:01", Firmware::Bios, VM).unwrap();
    vm.wait_for(MULTI_USER, BOOT).unwrap();
    eprintln!("vm1: power-on → multi-user.target in {:.0} s (two kernels)", started.elapsed().as_secs_f64());
    assert!(console_line(&vm, "swarmboot: deb12@1 verified").contains("its kernel is not the stub's: fetching its kernel and root filesystem"));
    assert!(console_line(&vm, "kexec into deb12@1").contains("its root is mounted there"));
    assert!(console_line(&vm, "swarmboot: switching to deb12@1").contains("(/usr/local/sbin/lab-init) in its own kernel"));
    assert!(console_line(&vm, swarmboot_lab::debian::WRAPPED_INIT_SAYS).ends_with("PID 1"), "the image's init= ran as PID 1");
    let console = String::from_utf8_lossy(&std::fs::read(&vm.console).unwrap()).into_owned();
    assert_eq!(console.matches("Linux version").count(), 2, "the stub's kernel, then the image's");
    assert!(!console.contains("No root device specified"), "the image's own initramfs did not run");

    vm.login("root", ROOT_PASSWORD, Duration::from_secs(120)).unwrap();
    let kernel = vm.shell("uname -r; systemctl is-active systemd-networkd networking", Duration::from_secs(60)).unwrap();
    let lines: Vec<&str> = kernel.lines().collect();
    assert!(lines.first().is_some_and(|r| r.ends_with("-cloud-amd64")), "{kernel}");
    assert_eq!(lines[1..], ["active", "inactive"], "networkd manages the network, ifupdown is masked:\n{kernel}");
    let status = vm.shell("systemctl is-active swarmboot-seed; pgrep -c -x swarmboot-seed", Duration::from_secs(60)).unwrap();
    assert_eq!(status.lines().collect::<Vec<_>>(), ["active", "1"], "the service seeds, the carried seeder handed over:\n{status}");
    let journal = vm.shell("journalctl -b -u swarmboot-seed --no-pager -o cat", Duration::from_secs(60)).unwrap();
    let addr = vm.shell("ip -4 -o addr show scope global | awk '{print $4}'", Duration::from_secs(60)).unwrap();
    let addr = addr.lines().next().and_then(|a| a.split('/').next()).unwrap_or_default().to_string();
    let seeding = journal.lines().rev().find(|l| l.contains("swarmboot: seeding deb12@1")).unwrap_or_else(|| panic!("{journal}"));
    assert!(addr.starts_with("10.77.0.") && seeding.contains(&format!("from {addr}:6881")), "seeding from networkd's address {addr}: {journal}");
    eprintln!("vm1: {seeding}");
}

/// The line of elchOS's `/etc/issue` the getty prints just before its login prompt (which has
/// no newline).
const ELCHOS_ISSUE: &str = "(root logs in with the password or SSH key given to";

/// `crypt(3)` of `elchos-test` (`openssl passwd -6 -salt swarmboottest elchos-test`).
const ELCHOS_ROOT_HASH: &str = "$6$swarmboottest$GAk5TJMtKCGTo6IhL5P8zaVMUIDTZrqGffGLf0x3tUnpPYY7RuxJCa2Gpce1oWDzWt9To.JvtcVQFg0B0LNS8/";

/// `swarmboot image build elchos` on the lab's server (mmdebstrap from the apt source this
/// machine uses), with a root password hash: the image is added as elchos@1 with its build
/// inputs in the signed manifest, and is the default image. Two VMs PXE-boot it through the
/// swarm (the stub built from this host's kernel, as `swarmboot stub build` does by default) to
/// multi-user.target; the operator logs in as root on the serial console and finds the node
/// agent's unit, the seeder and networkd running, and host keys made on this machine.
#[test]
fn elchos_is_built_from_debian_and_boots_two_machines() {
    if !require_root("elchos_is_built_from_debian_and_boots_two_machines") {
        return;
    }
    let dir = ScratchDir::new("elchos").unwrap();
    let lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    let started = Instant::now();
    let built = server.cli(&["image", "build", "elchos", "--root-password-hash", ELCHOS_ROOT_HASH, "--include", "less"]).unwrap();
    eprintln!("{built}(the command took {:.0} s)", started.elapsed().as_secs_f64());
    let summary = built.lines().find(|l| l.starts_with("built elchos@1 in ")).unwrap_or_else(|| panic!("{built}"));
    let mib: u64 = summary.split("squashfs ").nth(2).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{summary}"));
    assert!(mib <= 150, "elchOS's squashfs is {mib} MiB, the goal is at most 150: {summary}");
    assert!(built.contains("machines without a [[boot.client]] rule boot it"), "{built}");
    // The build's inputs are in the signed manifest.
    let manifest = lan.server.command("curl").args(["-sS", "--fail", "http://10.77.0.1:8080/manifest/elchos"]).output().unwrap();
    let manifest = String::from_utf8_lossy(&manifest.stdout);
    assert!(manifest.starts_with("swarmboot-manifest v1 ed25519 "), "{manifest}");
    for needle in ["[build]", "recipe = \"elchos\"", "suite = \"bookworm\"", "include = [\"less\"]", "\"systemd=", "\"less=", "\"linux-image-amd64="] {
        assert!(manifest.contains(needle), "{needle} in the manifest:\n{manifest}");
    }
    let stub = server.cli(&["stub", "build"]).unwrap();
    assert!(stub.contains("registered"), "{stub}");

    let mut vms = Vec::new();
    for (i, firmware) in [Firmware::Bios, Firmware::Bios].into_iter().enumerate() {
        let vm = Vm::start_with(&lan, dir.path(), &format!("vm{i}"), &format!("52:54:00:5d:03:0{i}"), firmware, VM).unwrap();
        vms.push((vm, Instant::now()));
        if i == 0 {
            // The first alone, so the second finds a peer.
            let (vm, at) = vms.last_mut().unwrap();
            vm.wait_for(ELCHOS_ISSUE, BOOT).unwrap();
            eprintln!("vm0: power-on → login prompt in {:.0} s", at.elapsed().as_secs_f64());
            vm.wait_for("swarmboot: elchos@1 is up: multi-user.target reached", BOOT).unwrap();
        }
    }
    let (vm1, at) = vms.last_mut().unwrap();
    vm1.wait_for(ELCHOS_ISSUE, BOOT).unwrap();
    vm1.wait_for("swarmboot: elchos@1 is up: multi-user.target reached", BOOT).unwrap();
    eprintln!("vm1: power-on → login prompt in {:.0} s; {}", at.elapsed().as_secs_f64(), console_line(vm1, "swarmboot: image verified"));
    let (vm0, _) = &mut vms[0];
    vm0.login("root", "elchos-test", Duration::from_secs(120)).unwrap();
    let status =
        vm0.shell("cat /etc/elchos-release; systemctl is-active elchos-agent swarmboot-seed systemd-networkd; ls /etc/ssh/ssh_host_ed25519_key", Duration::from_secs(60)).unwrap();
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("elchOS, built by swarmboot image build")), "{status}");
    assert_eq!(lines[1..], ["active", "active", "active", "/etc/ssh/ssh_host_ed25519_key"], "{status}");
    let agent = vm0.shell("journalctl -b -u elchos-agent --no-pager -o cat", Duration::from_secs(60)).unwrap();
    assert!(agent.contains("elchos-agent: placeholder"), "{agent}");
    // networkd asked with the stub's client identifier: the same lease, so the service seeds
    // from the address the stub had.
    let stub_lease = console_line(vm0, "swarmboot: ens3: ");
    let stub_addr = stub_lease.split("ens3: ").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_string();
    let journal = vm0.shell("journalctl -b -u swarmboot-seed --no-pager -o cat", Duration::from_secs(60)).unwrap();
    assert!(journal.contains(&format!("from {stub_addr}:6881")), "the stub had {stub_addr}: {journal}");
}
