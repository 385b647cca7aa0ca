//! LTSP clients booted through the swarm are real LTSP clients (`swarmboot_lab::ltsp`: an LTSP
//! server set up as LTSP's documentation does, with Debian's `ltsp`, and the plugin).
//!
//! The machine PXE-boots as LTSP's dnsmasq serves it, through LTSP's own iPXE menu, whose
//! default is the plugin's swarmboot entry; the stub fetches the image LTSP made, and LTSP's
//! `ltsp.img` with it, through the swarm, installs `ltsp.img` into the root as LTSP's initramfs
//! does, and LTSP's init runs.

use std::time::Duration;

use swarmboot_lab::debian::debian_root;
use swarmboot_lab::ltsp::{ltsp_build, LtspServer, IMAGE, ROOT_LOGIN_CLIENTS, ROOT_LOGIN_SECTION, ROOT_PASSWORD, SERVER_CIDR};
use swarmboot_lab::qemu::{Firmware, Vm, VmSpec};
use swarmboot_lab::{require_root, Lan, ScratchDir};

const BOOT: Duration = Duration::from_secs(600);
/// The server's user's password (checked by the server's sshd when the user logs in on a client).
const ALICE_PASSWORD: &str = "alice-on-the-server";
const VM: VmSpec = VmSpec { mib: 1024, reboots: true, jitter: None, disks: &[] };
/// What `ltsp.conf`'s `[clients]` section makes LTSP's init print.
const POST_INIT_SAYS: &str = "lab: ltsp.conf [clients] POST_INIT ran";
/// `[server]`: the plugin's settings; the lab's server has no systemd, so `ltsp dnsmasq` does
/// not restart dnsmasq (the lab starts it), by LTSP's `OMIT_FUNCTIONS`. `[clients]`: a command
/// that says on the console that it ran, and root's password for the console login.
fn ltsp_conf() -> String {
    format!(
        "[server]\nSWARMBOOT_DEFAULT=1\nSWARMBOOT_CMDLINE=\"console=ttyS0\"\nOMIT_FUNCTIONS=\"restart_dnsmasq\"\n\
         [clients]\nPOST_INIT_LAB=\"echo '{POST_INIT_SAYS}' > /dev/console\"\n{ROOT_LOGIN_CLIENTS}{ROOT_LOGIN_SECTION}"
    )
}

fn multi_user(version: u32) -> String {
    format!("swarmboot: {IMAGE}@{version} is up: multi-user.target reached")
}

/// On the client, logged in as root: LTSP's init ran (its `[clients]` command on the console,
/// `/run/ltsp/client`), the server's `user` exists, `server` is the LTSP server in
/// `/etc/hosts`, the DNS server is DHCP's, the server's SSH host key is known (an SSH login reaches the password step), and
/// the seeder runs as a systemd service.
fn assert_ltsp_client(vm: &mut Vm, user: &str) {
    vm.login("root", ROOT_PASSWORD, Duration::from_secs(120)).unwrap();
    let passwd = vm.shell(&format!("getent passwd {user}"), Duration::from_secs(60)).unwrap();
    assert!(passwd.starts_with(&format!("{user}:")) && passwd.contains(&format!("/home/{user}")), "the server's user {user} on the client: {passwd:?}");
    let mode = vm.shell("test -d /run/ltsp/client && echo ltsp-client; grep -w server /etc/hosts; grep nameserver /etc/resolv.conf", Duration::from_secs(60)).unwrap();
    assert!(mode.contains("ltsp-client") && mode.contains("192.168.67.1\tserver"), "LTSP's init configured the client:\n{mode}");
    // From DHCP (`ltsp dnsmasq --dns-server=192.168.67.1`; without it dnsmasq hands out this
    // host's resolver, which the image's resolv.conf, copied by mmdebstrap, already names),
    // through the lease file an initramfs-tools boot leaves in /run, which LTSP's init reads.
    assert!(mode.lines().any(|l| l == "nameserver 192.168.67.1"), "LTSP's init took the DNS server from the lease:\n{mode}");
    // As LTSP's login (pamltsp) does: the server's host keys from ltsp.img, strictly.
    let ssh = vm
        .shell(
            &format!("ssh -o UserKnownHostsFile=/etc/ltsp/ssh_known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 {user}@server true 2>&1"),
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(ssh.contains("Permission denied"), "ssh to the LTSP server, its host key known from ltsp.img: {ssh}");
    let seed = vm.shell("systemctl is-active swarmboot-seed", Duration::from_secs(60)).unwrap();
    assert_eq!(seed.trim(), "active", "the seeder keeps running");
}

/// LTSP's server with the plugin; a client VM through LTSP's iPXE menu (swarmboot entry by
/// default), its kernel the stub's (switch_root), where the server's user logs in with an
/// SSHFS home; a second from the first with the server's
/// seed off; a new user, `ltsp initrd` + `ltsp swarmboot` (a new version, the same root and
/// torrent), a stub of another kernel, and the first client rebooted: kexec, the new user there.
#[test]
fn ltsp_clients_booted_through_the_swarm_are_ltsp_clients() {
    if !require_root("ltsp_clients_booted_through_the_swarm_are_ltsp_clients") {
        return;
    }
    let build = ltsp_build().unwrap();
    let dir = ScratchDir::new("ltsp").unwrap();
    let lan = Lan::new(SERVER_CIDR).unwrap();
    let mut server = LtspServer::prepare(&build, &lan, dir.path(), &ltsp_conf(), "").unwrap();
    let (kernel, modules) = build.client_modules().unwrap();
    let setup = server
        .sh(&format!(
            "set -e; useradd --create-home --shell /bin/bash alice; echo 'alice:{ALICE_PASSWORD}' | chpasswd; ltsp initrd >/dev/null 2>&1; \
             swarmboot stub build --kernel {kernel} --modules-dir {modules} 2>&1; ltsp swarmboot 2>&1; \
             ltsp ipxe >/dev/null 2>&1; ltsp dnsmasq --dns-server=192.168.67.1 >/dev/null 2>&1; grep -c swarmboot /srv/tftp/ltsp/ltsp.ipxe"
        ))
        .unwrap();
    eprintln!("LTSP server:\n{setup}");
    assert!(
        setup.contains(&format!("added {IMAGE}@1")) && setup.lines().any(|l| l.trim_start().starts_with("ltsp ")),
        "ltsp swarmboot publishes ltsp.img with the image:\n{setup}"
    );
    let v1_rootfs = setup.lines().find(|l| l.trim_start().starts_with("rootfs")).unwrap().to_string();
    server.start_daemons().unwrap();
    server.serve().unwrap();

    let mut vm1 = Vm::start_with(&lan, dir.path(), "vm1", "52:54:00:17:00:01", Firmware::Bios, VM).unwrap();
    vm1.wait_for(&multi_user(1), BOOT).unwrap();
    assert!(vm1.console_line(&format!("swarmboot: {IMAGE}@1 verified")).contains("its kernel is the stub's: fetching only its root filesystem (and LTSP's ltsp.img)"));
    vm1.console_line("installed LTSP's ltsp.img into the image");
    assert!(vm1.console_line(&format!("swarmboot: switching to {IMAGE}@1")).contains("(/usr/share/ltsp/client/init/init)"));
    vm1.console_line(POST_INIT_SAYS);
    let dnsmasq = std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap();
    assert!(dnsmasq.contains("sent /srv/tftp/ltsp/ltsp.ipxe to 192.168.67."), "the VM came through LTSP's iPXE menu (dnsmasq's TFTP):\n{dnsmasq}");
    assert!(server.serve_log().contains("boot script mac=52:54:00:17:00:01"), "and its swarmboot entry chained to swarmboot:\n{}", server.serve_log());
    assert_ltsp_client(&mut vm1, "alice");
    // The server's user logs in on the client as on any LTSP client: the password checked by
    // the LTSP server's sshd (LTSP's pamltsp), the home mounted from the server over SSHFS.
    vm1.send("exit\n").unwrap();
    vm1.login("alice", ALICE_PASSWORD, Duration::from_secs(120)).unwrap();
    let home = vm1.shell("id -un; findmnt -n -o FSTYPE,SOURCE /home/alice; echo written on the client > ~/from-the-client", Duration::from_secs(60)).unwrap();
    assert!(home.starts_with("alice\n") && home.contains("fuse.sshfs") && home.contains("alice@server:"), "alice's session on the client:\n{home}");
    assert_eq!(server.sh("cat /home/alice/from-the-client").unwrap(), "written on the client\n", "the home is the server's");
    vm1.send("exit\n").unwrap();
    vm1.login("root", ROOT_PASSWORD, Duration::from_secs(120)).unwrap();

    // A second client from the first alone.
    std::fs::write(server.root.join("etc/swarmboot/swarmboot.toml"), format!("{}[swarm]\nseed = false\n", swarmboot_lab::ltsp::SWARMBOOT_TOML)).unwrap();
    server.serve().unwrap();
    let mut vm2 = Vm::start_with(&lan, dir.path(), "vm2", "52:54:00:17:00:02", Firmware::Bios, VM).unwrap();
    vm2.wait_for(&multi_user(1), BOOT).unwrap();
    let verified = vm2.console_line("swarmboot: image verified");
    eprintln!("vm2: {verified}");
    assert!(verified.contains("(0 MiB of it from the server's seed), 0 MiB over HTTP"), "{verified}");
    assert_eq!(server.metric("swarmboot_seed_uploaded_bytes_total").unwrap(), 0, "the server did not seed");
    vm2.console_line(POST_INIT_SAYS);

    // A new user; LTSP's commands as a site runs them; a stub of another kernel.
    let deb = debian_root().unwrap();
    let cloud = server.root.join("tmp/cloud");
    std::fs::create_dir_all(&cloud).unwrap();
    std::fs::copy(&deb.cloud.vmlinuz, cloud.join("vmlinuz")).unwrap();
    let copied = std::process::Command::new("cp").arg("-a").arg(&deb.cloud.modules).arg(cloud.join("modules")).status().unwrap();
    assert!(copied.success());
    let again = server.sh("set -e; useradd --create-home --shell /bin/bash bob; ltsp initrd >/dev/null 2>&1; ltsp swarmboot 2>&1; swarmboot stub build --kernel /tmp/cloud/vmlinuz --modules-dir /tmp/cloud/modules 2>&1").unwrap();
    eprintln!("LTSP server, again:\n{again}");
    assert!(again.contains(&format!("added {IMAGE}@2")), "{again}");
    assert_eq!(again.lines().find(|l| l.trim_start().starts_with("rootfs")).unwrap(), v1_rootfs, "the same root filesystem");
    let sha = v1_rootfs.split_whitespace().last().unwrap().to_string();
    let copies = server.sh(&format!("find /var/lib/swarmboot/store -type f -name {sha} | wc -l")).unwrap();
    assert_eq!(copies.trim(), "1", "republishing stored the root once");

    vm1.mark();
    vm1.send("systemctl reboot\n").unwrap();
    vm1.wait_for("swarmboot: stub starting", Duration::from_secs(300)).unwrap();
    vm1.wait_for(&multi_user(2), BOOT).unwrap();
    let console = String::from_utf8_lossy(&std::fs::read(&vm1.console).unwrap()).into_owned();
    let after: Vec<String> = console.lines().map(swarmboot_lab::without_escapes).skip_while(|l| !l.contains("swarmboot: stub starting")).collect();
    let line = |needle: &str| after.iter().rev().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} after the reboot")).clone();
    assert!(line(&format!("swarmboot: {IMAGE}@2 verified")).contains("its kernel is not the stub's: fetching its kernel and root filesystem (and LTSP's ltsp.img)"));
    let verified = line("swarmboot: image verified");
    eprintln!("vm1 after the reboot: {verified}");
    assert!(verified.contains("(0 MiB of it from the server's seed)") && !verified.contains(" 0 MiB from peers"), "the root came from vm2, which seeds it since v1: {verified}");
    line("kexec into");
    line("installed LTSP's ltsp.img into the image");
    assert!(line("in its own kernel").contains("(/usr/share/ltsp/client/init/init)"));
    assert!(after.iter().any(|l| l.contains(POST_INIT_SAYS)));
    vm1.mark();
    assert_ltsp_client(&mut vm1, "bob");
    drop(vm2);
}
