//! QEMU machines on the lab bridge: a tap in the server namespace, TCG (no KVM here), BIOS
//! (SeaBIOS) or UEFI (OVMF), the NIC's iPXE ROM from Debian's ipxe-qemu, serial console to a
//! file. Stopped by PID and its tap removed on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::unique;
use crate::proc::{wait_for_line, Proc};
use crate::Lan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS; the NIC's iPXE ROM does the network boot.
    Bios,
    /// OVMF with the NIC's iPXE ROM (iPXE asks DHCP and fetches the script directly).
    Uefi,
    /// OVMF with no NIC ROM: OVMF's own PXE asks DHCP as a UEFI firmware (arch 7), fetches
    /// `snponly.efi` over TFTP, and that iPXE continues over HTTP.
    UefiNativePxe,
}

pub struct Vm {
    proc: Proc,
    pub console: PathBuf,
    pub mac: String,
    tap: String,
    ns: String,
}

impl Vm {
    /// Starts a VM (384 MiB of RAM) that network-boots from the lab bridge.
    pub fn start(lan: &Lan, dir: &Path, name: &str, mac: &str, firmware: Firmware) -> anyhow::Result<Self> {
        Self::start_with_memory(lan, dir, name, mac, firmware, 384)
    }

    /// Like [`Vm::start`], with `mib` MiB of RAM.
    pub fn start_with_memory(lan: &Lan, dir: &Path, name: &str, mac: &str, firmware: Firmware, mib: u32) -> anyhow::Result<Self> {
        let tap = format!("t{}", unique());
        lan.server.ip(&["tuntap", "add", &tap, "mode", "tap"])?;
        lan.server.ip(&["link", "set", &tap, "master", "br0", "up"])?;
        let console = dir.join(format!("{name}.console"));
        let mut cmd = lan.server.command("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-m", &mib.to_string(), "-smp", "1", "-display", "none", "-no-reboot", "-boot", "n"])
            .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
            .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={mac}{}", if firmware == Firmware::UefiNativePxe { ",romfile=" } else { "" })])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-monitor", "none"]);
        if firmware != Firmware::Bios {
            cmd.args(["-bios", "/usr/share/ovmf/OVMF.fd"]);
        }
        let proc = Proc::spawn(&format!("qemu {name}"), &mut cmd, &dir.join(format!("{name}.qemu.log")))?;
        Ok(Vm { proc, console, mac: mac.into(), tap, ns: lan.server.name().into() })
    }

    /// Waits for a console line containing `needle`; fails at once if QEMU exits without it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let exited = self.proc.exited();
            if let Ok(line) = wait_for_line(&self.console, needle, Duration::ZERO) {
                return Ok(line);
            }
            if exited || std::time::Instant::now() > deadline {
                let console = std::fs::read_to_string(&self.console).unwrap_or_default();
                let tail: Vec<&str> = console.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
                anyhow::bail!(
                    "VM {}: no {needle:?} on the console ({}); last console lines:\n{}\nqemu: {}",
                    self.mac,
                    if exited { "QEMU exited" } else { "timed out" },
                    tail.join("\n"),
                    self.proc.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether QEMU has exited (the guest powered off).
    pub fn exited(&mut self) -> bool {
        self.proc.exited()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.proc.kill9();
        let _ = std::process::Command::new("ip").args(["-n", &self.ns, "link", "del", &self.tap]).output();
    }
}
