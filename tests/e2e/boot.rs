//! Real PXE boots: QEMU (TCG) VMs with their iPXE ROMs, SeaBIOS and OVMF, boot through
//! swarmboot to an image's kernel and initramfs, which prints a marker and powers off.

use std::path::Path;
use std::time::Duration;

use swarmboot_lab::initramfs::{debian_kernel, write_test_initramfs, MARKER_PREFIX};
use swarmboot_lab::qemu::{Firmware, Vm};
use swarmboot_lab::{require_root, Lan, ScratchDir, Server};

/// Guest boots under TCG on a 2-core machine: generous.
const BOOT: Duration = Duration::from_secs(240);

struct BootLab {
    dir: ScratchDir,
    lan: Lan,
    server: Server,
}

fn config(dir: &Path, dhcp: &str) -> String {
    format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\n{dhcp}\n\
         [boot]\ndefault_image = \"demo\"\n[[boot.client]]\nmac = \"52:54:00:bb:*\"\nimage = \"other\"\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.join("state").display()
    )
}

const AUTHORITATIVE: &str = "mode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\nrouter = \"10.77.0.1\"\n";

fn boot_lab(tag: &str, dhcp: &str) -> BootLab {
    let dir = ScratchDir::new(tag).unwrap();
    let lan = Lan::new("10.77.0.1/24").unwrap();
    let server = Server::start(&lan.server, dir.path(), &config(dir.path(), dhcp), 8080).unwrap();
    let lab = BootLab { dir, lan, server };
    lab.add_image("demo", "demo-v1");
    lab
}

impl BootLab {
    /// Adds a version of `name` whose initramfs prints `marker`.
    fn add_image(&self, name: &str, marker: &str) {
        let kernel = debian_kernel().expect("a Debian kernel in /boot (package linux-image-amd64)");
        let initrd = self.dir.path().join("test-initrd.cpio");
        if !initrd.exists() {
            write_test_initramfs(&initrd, Path::new("/bin/busybox")).unwrap();
        }
        let cmdline = format!("console=ttyS0 panic=-1 marker={marker}");
        self.server.cli(&["image", "add", name, "--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap(), "--cmdline", &cmdline]).unwrap();
    }
    fn vm(&self, name: &str, mac: &str, fw: Firmware) -> Vm {
        Vm::start(&self.lan, self.dir.path(), name, mac, fw).unwrap()
    }
}

fn marker(m: &str) -> String {
    format!("{MARKER_PREFIX} {m}")
}

#[test]
fn bios_and_uefi_vms_pxe_boot_to_the_marker() {
    if !require_root("bios_and_uefi_vms_pxe_boot_to_the_marker") {
        return;
    }
    let lab = boot_lab("boot-auth", AUTHORITATIVE);
    let mut bios = lab.vm("bios", "52:54:00:00:01:01", Firmware::Bios);
    let mut uefi = lab.vm("uefi", "52:54:00:00:01:02", Firmware::Uefi);
    let mut native = lab.vm("uefi-native", "52:54:00:00:01:03", Firmware::UefiNativePxe);
    bios.wait_for(&marker("demo-v1"), BOOT).unwrap();
    uefi.wait_for(&marker("demo-v1"), BOOT).unwrap();
    native.wait_for(&marker("demo-v1"), BOOT).unwrap();
    assert!(lab.server.metric("swarmboot_http_boot_scripts_total").unwrap() >= 3);
    // OVMF's own PXE chainloaded iPXE (snponly.efi) over TFTP.
    assert!(lab.server.metric("swarmboot_tftp_completed_total").unwrap() >= 1);
}

#[test]
fn proxy_mode_beside_dnsmasq_boots_bios_and_uefi_vms() {
    if !require_root("proxy_mode_beside_dnsmasq_boots_bios_and_uefi_vms") {
        return;
    }
    let mut lab = boot_lab("boot-proxy", "mode = \"proxy\"\n");
    // The site's DHCP server: dnsmasq handing out addresses only, on another host.
    let d = lab.lan.add_host(None).unwrap();
    lab.lan.host(d).ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]).unwrap();
    let mut cmd = lab.lan.host(d).command("dnsmasq");
    cmd.args(["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping"])
        .args(["--dhcp-range=10.77.0.50,10.77.0.60,1h", "--dhcp-option=3,10.77.0.1"])
        .arg(format!("--dhcp-leasefile={}", lab.dir.path().join("dnsmasq.leases").display()))
        .arg(format!("--pid-file={}", lab.dir.path().join("dnsmasq.pid").display()));
    let dnsmasq = swarmboot_lab::Proc::spawn("dnsmasq", &mut cmd, &lab.dir.path().join("dnsmasq.log")).unwrap();
    swarmboot_lab::wait_for_line(&dnsmasq.log, "DHCP, IP range", Duration::from_secs(10)).unwrap();

    let mut bios = lab.vm("bios", "52:54:00:00:02:01", Firmware::Bios);
    let mut native = lab.vm("uefi-native", "52:54:00:00:02:02", Firmware::UefiNativePxe);
    bios.wait_for(&marker("demo-v1"), BOOT).unwrap();
    native.wait_for(&marker("demo-v1"), BOOT).unwrap();
    assert!(lab.server.leases().unwrap().is_empty(), "proxy mode grants no leases");
    let leases = std::fs::read_to_string(lab.dir.path().join("dnsmasq.leases")).unwrap();
    assert!(leases.contains("52:54:00:00:02:01") && leases.contains("52:54:00:00:02:02"), "dnsmasq gave the addresses: {leases}");
}

#[test]
fn per_mac_override_and_an_image_replaced_mid_boot() {
    if !require_root("per_mac_override_and_an_image_replaced_mid_boot") {
        return;
    }
    let lab = boot_lab("boot-rules", AUTHORITATIVE);
    lab.add_image("other", "other-v1");
    let mut overridden = lab.vm("override", "52:54:00:bb:00:01", Firmware::Bios);
    let mut mid = lab.vm("midboot", "52:54:00:00:03:01", Firmware::Bios);
    // As soon as `mid` has its script (demo version 1), the operator adds demo version 2.
    swarmboot_lab::wait_for_line(lab.server.log_path(), "boot script mac=52:54:00:00:03:01", BOOT).unwrap();
    lab.add_image("demo", "demo-v2");
    mid.wait_for(&marker("demo-v1"), BOOT).unwrap();
    overridden.wait_for(&marker("other-v1"), BOOT).unwrap();
    // A machine starting now gets version 2.
    let mut late = lab.vm("late", "52:54:00:00:03:02", Firmware::Bios);
    late.wait_for(&marker("demo-v2"), BOOT).unwrap();
}
