//! Real Debian 12 systems through the stub (`swarmboot_lab::debian`: mmdebstrap, systemd,
//! udev, ifupdown/dhclient or systemd-networkd, Debian's kernels; built once, cached). The
//! operator's view is checked the way an operator looks: logged in as root on the serial
//! console, `systemctl`, `ps`, `journalctl`.

use std::time::{Duration, Instant};

use swarmboot_lab::debian::{debian_root, DebianRoot, IFUPDOWN, ROOT_PASSWORD};
use swarmboot_lab::disks::{make, Filesystem};
use swarmboot_lab::qemu::{Firmware, Vm, VmSpec};
use swarmboot_lab::webdriver::Browser;
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
         [boot]\ndefault_image = \"deb12\"\nmode = \"swarm\"\n[http]\nlisten = \"0.0.0.0:8080\"\n[nodes]\ncheckin_interval = \"5s\"\n",
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

/// A stock Debian 12 root (systemd, udev, ifupdown + dhclient re-DHCPing the NIC), its kernel
/// the stub's: PXE → stub → root through the swarm → switch_root → multi-user.target. 30 s
/// later the seeder is `swarmboot-seed.service` (active, its log in the journal, the stub's
/// worker gone) seeding from the address the image's dhclient holds; the same machine, a plain
/// Debian host, then donates space with the package's `swarmboot-donate.service` and holds a
/// dataset the server gives it; a second machine, with
/// the server's seed off, boots the same image from the first alone; then `systemctl reboot`
/// of the first: the seeder stops within 5 s and the machine PXE-boots again.
#[test]
fn debian_switch_root_reaches_multi_user_seeds_under_systemd_and_reboots_through_pxe() {
    if !require_root("debian_switch_root_reaches_multi_user_seeds_under_systemd_and_reboots_through_pxe") {
        return;
    }
    let deb = debian_root().unwrap();
    let mut lab = debian_lab("deb-switch", &deb, &deb.generic, &format!("{IFUPDOWN} swarmboot.stall=600"));
    // The dashboard, open in chromium from before the first machine starts to after the
    // second is up, never reloaded: what its table showed each machine doing.
    let browser = Browser::start(Some(&lab.lan.server), &lab.dir.path().join("chromedriver.log"), 1280, 800).unwrap();
    browser.goto("http://127.0.0.1:8080/").unwrap();
    browser.eval("window.keptSinceLoad = 1; return 1").unwrap();
    let watching = std::sync::atomic::AtomicBool::new(true);
    let shown: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let rows = "return Array.from(document.querySelectorAll('table#fleet tbody tr[data-mac]')).map(r => [r.dataset.mac, r.querySelector('td.stage').textContent.trim().split(' ')[0]])";
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(serde_json::Value::Array(now)) = browser.eval(rows) {
                    let mut shown = shown.lock().unwrap();
                    for r in now {
                        let (mac, stage) = (r[0].as_str().unwrap_or("").to_string(), r[1].as_str().unwrap_or("").to_string());
                        if shown.iter().rev().find(|(m, _)| *m == mac).is_none_or(|(_, s)| *s != stage) {
                            shown.push((mac, stage));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        // The watcher stops however this ends (a panic here must not leave it looping, and
        // the scope waiting for it forever).
        struct StopWatching<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopWatching<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = StopWatching(&watching);
        boot_two_then_reboot(&lab.lan, lab.dir.path(), &mut lab.server);
    });
    let shown = shown.into_inner().unwrap();
    for mac in ["52:54:00:5d:01:01", "52:54:00:5d:01:02"] {
        let stages: Vec<&str> = shown.iter().filter(|(m, _)| m == mac).map(|(_, s)| s.as_str()).collect();
        eprintln!("{mac}: the open dashboard showed {}", stages.join(" → "));
        let mut want = ["fetching", "handover", "running"].into_iter().peekable();
        for s in &stages {
            if want.peek() == Some(s) {
                want.next();
            }
        }
        assert_eq!(want.next(), None, "{mac} went through fetching, handover and running on the open page: {stages:?}");
    }
    assert_eq!(browser.eval("return window.keptSinceLoad").unwrap(), 1, "the page was never reloaded");
    browser.screenshot(&swarmboot_lab::browser::screenshot_dir().join("dashboard-two-vms.png")).unwrap();
    // The images page: deb12's swarm and its chart of the boots' bytes.
    browser.goto("http://127.0.0.1:8080/images").unwrap();
    let said = browser.eval("return document.querySelector('section.image p.swarm').textContent").unwrap();
    assert!(said.as_str().unwrap().contains("machines sent each other"), "{said}");
    browser.screenshot(&swarmboot_lab::browser::screenshot_dir().join("dashboard-images-two-vms.png")).unwrap();
}

/// VM1 up, VM2 from VM1 alone, VM1 rebooted (the body of the test above, while the
/// dashboard is watched).
fn boot_two_then_reboot(lan: &Lan, dir: &std::path::Path, server: &mut Server) {
    let started = Instant::now();
    let mut vm1 = Vm::start_with(lan, dir, "vm1", "52:54:00:5d:01:01", Firmware::Bios, VM).unwrap();
    vm1.wait_for(MULTI_USER, BOOT).unwrap();
    let multi_user = started.elapsed();
    eprintln!("vm1: power-on → multi-user.target in {:.0} s", multi_user.as_secs_f64());
    assert!(vm1.console_line("swarmboot: deb12@1 verified").contains("its kernel is the stub's: fetching only its root filesystem"));
    assert!(vm1.console_line("swarmboot: switching to deb12@1 (/sbin/init)").contains("removed the stub's"));

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
    donate_with_the_service(&mut vm1, dir, server);

    // VM2 from VM1 alone.
    let mut cfg = std::fs::read_to_string(&server.config).unwrap();
    cfg.push_str("[swarm]\nseed = false\n");
    std::fs::write(&server.config, cfg).unwrap();
    server.restart(&lan.server).unwrap();
    let mut vm2 = Vm::start_with(lan, dir, "vm2", "52:54:00:5d:01:02", Firmware::Bios, VM).unwrap();
    vm2.wait_for(MULTI_USER, BOOT).unwrap();
    // What the server's fleet says of this boot, stage by stage (the booted unit said
    // `running` at multi-user.target).
    // (The unit writes the console line, then tells the server: a moment apart.)
    let asked = Instant::now();
    let machine = loop {
        let m: serde_json::Value = serde_json::from_str(&server.get("/api/v1/machines/52:54:00:5d:01:02").unwrap()).unwrap();
        if m["machine"]["stage"] == "running" || asked.elapsed() > Duration::from_secs(30) {
            break m;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let boot = &machine["boots"][0];
    let spans: Vec<String> =
        boot["stages"].as_array().unwrap().iter().map(|s| format!("{} {:.1} s", s["stage"].as_str().unwrap(), s["for_ms"].as_u64().unwrap() as f64 / 1000.0)).collect();
    eprintln!("vm2's boot as the server saw it: {}", spans.join(", "));
    let stages: Vec<&str> = boot["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    let from = stages.iter().position(|s| *s == "stub").unwrap_or_else(|| panic!("{stages:?}"));
    assert_eq!(stages[from..], ["stub", "fetching", "handover", "running"], "{stages:?}");
    assert!(stages[..from].iter().all(|s| ["dhcp", "ipxe"].contains(s)) && !stages[..from].is_empty(), "{stages:?}");
    assert_eq!((boot["image"].as_str(), machine["machine"]["stage"].as_str()), (Some("deb12@1"), Some("running")));
    let verified = vm2.console_line("swarmboot: image verified");
    eprintln!("vm2: {verified}");
    assert!(verified.contains("(0 MiB of it from the server's seed), 0 MiB over HTTP"), "{verified}");
    assert_eq!(server.metric("swarmboot_seed_uploaded_bytes_total").unwrap(), 0, "the server did not seed");
    // The server's view of that swarm: the image's bytes went machine to machine (vm1's
    // announces say what it sent; the samples chart it), and vm2's page names vm1 beside it.
    let asked = Instant::now();
    let deb12 = loop {
        let swarms: serde_json::Value = serde_json::from_str(&server.get("/api/v1/swarms").unwrap()).unwrap();
        let w = swarms.as_array().unwrap().iter().find(|w| w["name"] == "deb12").cloned().unwrap();
        let charted = w["peers_per_sec"].as_array().unwrap().iter().any(|p| p.as_f64().unwrap() > 0.0);
        if (w["peers_uploaded"].as_u64().unwrap() > 0 && charted) || asked.elapsed() > Duration::from_secs(40) {
            break w;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let rates = |k: &str| deb12[k].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect::<Vec<f64>>();
    eprintln!(
        "deb12's swarm as the server saw it: {} machine(s), the seed sent {} B, machines sent each other {} B; machines' bytes per second over {} samples: peak {:.0}",
        deb12["machines"],
        deb12["seed_uploaded"],
        deb12["peers_uploaded"],
        rates("peers_per_sec").len() + 1,
        rates("peers_per_sec").iter().copied().fold(0.0, f64::max)
    );
    assert_eq!(deb12["seed_uploaded"].as_u64(), Some(0), "{deb12}");
    assert!(deb12["peers_uploaded"].as_u64().unwrap() > 0 && rates("peers_per_sec").iter().any(|p| *p > 0.0), "machine to machine, charted: {deb12}");
    let vm2_page: serde_json::Value = serde_json::from_str(&server.get("/api/v1/machines/52:54:00:5d:01:02").unwrap()).unwrap();
    let beside: Vec<&str> = vm2_page["swarms"].as_array().unwrap().iter().flat_map(|w| w["peers"].as_array().unwrap().iter().filter_map(|p| p["mac"].as_str())).collect();
    assert!(beside.contains(&"52:54:00:5d:01:01"), "vm1 beside vm2 in its swarms: {}", vm2_page["swarms"]);
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

/// A plain Debian host (not elchOS) donating space with the package's service: the
/// `swarmboot` binary, `swarmboot-donate.service` and `/etc/default/swarmboot-donate` (filled
/// in as its comments ask) come on a disk plugged in, are installed where the package puts
/// them and the unit enabled; under systemd (PID 1) it runs as its dynamic user, in its state
/// directory, checks in, fetches the dataset the server gives it through the swarm and holds
/// it byte-identical.
fn donate_with_the_service(vm: &mut Vm, dir: &std::path::Path, server: &Server) {
    let kit = dir.join("donate-kit");
    std::fs::create_dir_all(&kit).unwrap();
    // The test build's binary without its debug sections (the package's is a release build).
    let stripped = std::process::Command::new("objcopy").arg("--strip-debug").arg(swarmboot_lab::bin("swarmboot")).arg(kit.join("swarmboot")).status().unwrap();
    assert!(stripped.success());
    let packaging = concat!(env!("CARGO_MANIFEST_DIR"), "/../debian/");
    std::fs::copy(format!("{packaging}swarmboot.swarmboot-donate.service"), kit.join("swarmboot-donate.service")).unwrap();
    let defaults = std::fs::read_to_string(format!("{packaging}swarmboot-donate.default")).unwrap();
    let filled = defaults
        .replace("\nSWARMBOOT_DONATE_SERVER=\n", "\nSWARMBOOT_DONATE_SERVER=http://10.77.0.1:8080\n")
        .replace("\nSWARMBOOT_DONATE_SERVER_KEY=\n", &format!("\nSWARMBOOT_DONATE_SERVER_KEY={}\n", server.public_key().unwrap()))
        .replace("\nSWARMBOOT_DONATE_SPACE=\n", "\nSWARMBOOT_DONATE_SPACE=64M\n");
    assert_eq!(filled.lines().filter(|l| l.starts_with("SWARMBOOT_DONATE_")).count(), 3, "the defaults file changed its settings' lines:\n{filled}");
    std::fs::write(kit.join("swarmboot-donate.default"), filled).unwrap();
    let disk = dir.join("donate-kit.img");
    make(&disk, 160, Filesystem::Ext4, "donatekit", Some(&kit)).unwrap();
    // What the server asks it to hold.
    let set = dir.join("deb-set");
    std::fs::create_dir_all(&set).unwrap();
    let data = swarmboot_lab::noise(2 << 20, 31);
    std::fs::write(set.join("data.bin"), &data).unwrap();
    let added = server.cli(&["dataset", "add", "deb-set", set.to_str().unwrap(), "--replicas", "1"]).unwrap();
    assert!(added.contains("added dataset deb-set"), "{added}");

    // Plugged in, and typed at only once the kernel has said so (its lines on the serial
    // console cut into a command typed meanwhile, and that command was lost).
    vm.mark();
    vm.plug_disk(&disk, "kit").unwrap();
    vm.wait_for("virtio_blk", Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    for (step, command) in [
        ("MOUNTED", "udevadm settle; mkdir -p /mnt/kit && mount -o ro /dev/disk/by-label/donatekit /mnt/kit && echo MOUNTED"),
        ("COPIED", "install -m 0755 /mnt/kit/swarmboot /usr/sbin/ && install -m 0644 /mnt/kit/swarmboot-donate.service /lib/systemd/system/ && echo COPIED"),
        ("CONFIGURED", "install -m 0644 /mnt/kit/swarmboot-donate.default /etc/default/swarmboot-donate && umount /mnt/kit && echo CONFIGURED"),
        ("ENABLED", "systemctl daemon-reload && systemctl enable --now swarmboot-donate 2>&1 && echo ENABLED"),
    ] {
        let out = vm.shell(command, Duration::from_secs(120)).unwrap();
        assert!(out.contains(step), "{command}:\n{out}");
    }
    let started = Instant::now();
    let held = || -> bool {
        let v: serde_json::Value = serde_json::from_str(&server.get("/api/v1/datasets").unwrap_or_default()).unwrap_or(serde_json::Value::Null);
        v.as_array().and_then(|a| a.iter().find(|x| x["name"] == "deb-set")).and_then(|x| x["holders"].as_u64()) == Some(1)
    };
    while !held() {
        if started.elapsed() > Duration::from_secs(180) {
            let journal =
                vm.shell("systemctl status swarmboot-donate --no-pager; journalctl -u swarmboot-donate --no-pager -n 40 -o cat", Duration::from_secs(60)).unwrap_or_default();
            panic!("deb-set not held by the Debian host's donor within 180 s:\n{journal}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&data));
    // (The donor links its view once it sees the fetch done: a round after it reported it.)
    let view = "/var/lib/swarmboot-donate/view/deb-set/data.bin";
    let sum = vm.shell(&format!("for i in $(seq 60); do [ -e {view} ] && break; sleep 1; done; sha256sum {view}"), Duration::from_secs(120)).unwrap();
    assert!(sum.lines().any(|l| l.starts_with(&format!("{sha}  {view}"))), "the dataset's file byte-identical in the state directory's view:\n{sum}");
    let state = vm.shell("systemctl is-active swarmboot-donate; systemctl is-enabled swarmboot-donate; echo uid $(ps -o uid= -C swarmboot); stat -c 'dir %u %a' /var/lib/private/swarmboot-donate", Duration::from_secs(60)).unwrap();
    let lines: Vec<&str> = state.lines().map(str::trim).collect();
    assert!(lines.contains(&"active") && lines.contains(&"enabled"), "{state}");
    // (A dynamic user has no name without nss-systemd, which a minimal root lacks: its uid.)
    let uid = lines.iter().find_map(|l| l.strip_prefix("uid ")).unwrap_or_default().trim().to_string();
    assert!(!uid.is_empty() && uid != "0", "the donor runs as the unit's dynamic user, not root:\n{state}");
    assert!(lines.contains(&format!("dir {uid} 750").as_str()), "the state directory belongs to the dynamic user:\n{state}");
    eprintln!("vm1 (plain Debian, systemd): swarmboot-donate.service held deb-set {:.0} s after it was enabled, as its dynamic user", started.elapsed().as_secs_f64());
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
    assert!(vm.console_line("swarmboot: deb12@1 verified").contains("its kernel is not the stub's: fetching its kernel and root filesystem"));
    assert!(vm.console_line("kexec into deb12@1").contains("its root is mounted there"));
    assert!(vm.console_line("swarmboot: switching to deb12@1").contains("(/usr/local/sbin/lab-init) in its own kernel"));
    assert!(vm.console_line(swarmboot_lab::debian::WRAPPED_INIT_SAYS).ends_with("PID 1"), "the image's init= ran as PID 1");
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
