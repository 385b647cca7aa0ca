//! Which first-stage file a network-booting machine is told to load. The one place that maps
//! firmware to a boot file; the DHCP decisions only ask it.

use std::net::Ipv4Addr;

use crate::request::{ClientArch, Machine};

/// Boot-related settings the DHCP core needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSettings {
    /// The HTTP base URL machines are given (`[http] public_url`, when they reach the server
    /// through a proxy); `None`: `http://<server address>:<http_port>`.
    pub http_base: Option<String>,
    /// TCP port of the server's HTTP listener (iPXE scripts and everything after iPXE).
    pub http_port: u16,
    /// What follows the base in the URL of the boot script iPXE is handed: the route and the
    /// settings iPXE expands itself, as `swarmboot_urls` spells the contract; the config passes
    /// it in (the default is the same path, which a test of the config holds it to).
    pub script_path: String,
    /// TFTP path of iPXE for BIOS PXE ROMs.
    pub bios_file: String,
    /// TFTP path of iPXE for x86-64 UEFI (`snponly.efi`, or `ipxe.efi` for NICs without SNP).
    pub efi_x64_file: String,
    /// TFTP path of iPXE for 64-bit ARM UEFI.
    pub efi_arm64_file: String,
}

impl Default for BootSettings {
    fn default() -> Self {
        BootSettings {
            http_base: None,
            http_port: 8080,
            script_path: "/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}".into(),
            bios_file: "undionly.kpxe".into(),
            efi_x64_file: "snponly.efi".into(),
            efi_arm64_file: "arm64/snponly.efi".into(),
        }
    }
}

/// What to put in a reply for a network-booting machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// The `file` field: a TFTP path or, for iPXE and UEFI HTTP boot, a URL.
    pub filename: String,
    /// The `siaddr` field (TFTP server).
    pub next_server: Ipv4Addr,
    /// Answer as a UEFI HTTP boot server (option 60 `HTTPClient`).
    pub http_boot: bool,
}

/// The boot file for `machine`, or `None` when it is not network-booting or its architecture
/// has no iPXE build we serve.
pub fn select_boot_file(machine: &Machine, server_ip: Ipv4Addr, boot: &BootSettings) -> Option<BootFile> {
    if !machine.is_netboot() {
        return None;
    }
    let base = boot.http_base.clone().unwrap_or_else(|| format!("http://{server_ip}:{}", boot.http_port));
    let http = |path: &str| format!("{base}/{path}");
    let tftp = |path: &str| BootFile { filename: path.to_string(), next_server: server_ip, http_boot: false };
    if machine.ipxe {
        // iPXE is already running: hand it the script, never iPXE again (that would loop). iPXE
        // expands the ${...} settings in the URL itself.
        return Some(BootFile { filename: format!("{base}{}", boot.script_path), next_server: server_ip, http_boot: false });
    }
    let arch = machine.arch.unwrap_or(ClientArch::BiosX86);
    if machine.http_client || arch.is_http_boot() {
        let file = match arch {
            ClientArch::EfiArm64Http | ClientArch::EfiArm64 => &boot.efi_arm64_file,
            _ => &boot.efi_x64_file,
        };
        return Some(BootFile { filename: http(&format!("tftp/{file}")), next_server: server_ip, http_boot: true });
    }
    match arch {
        ClientArch::BiosX86 => Some(tftp(&boot.bios_file)),
        ClientArch::EfiX64 => Some(tftp(&boot.efi_x64_file)),
        ClientArch::EfiArm64 => Some(tftp(&boot.efi_arm64_file)),
        ClientArch::EfiIa32 | ClientArch::EfiArm32 | ClientArch::EfiX64Http | ClientArch::EfiArm64Http => None,
        ClientArch::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::HwAddr;

    fn machine(arch: Option<ClientArch>, pxe: bool, http: bool, ipxe: bool) -> Machine {
        Machine { hwaddr: HwAddr::new(&[2, 0, 0, 0, 0, 1]), arch, pxe, http_client: http, ipxe, stub: false, guid: None }
    }
    const S: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    #[test]
    fn firmware_gets_its_ipxe_build() {
        let b = BootSettings::default();
        let f = |m| select_boot_file(&m, S, &b).map(|f| f.filename);
        assert_eq!(f(machine(Some(ClientArch::BiosX86), true, false, false)).as_deref(), Some("undionly.kpxe"));
        assert_eq!(f(machine(Some(ClientArch::EfiX64), true, false, false)).as_deref(), Some("snponly.efi"));
        assert_eq!(f(machine(Some(ClientArch::EfiArm64), true, false, false)).as_deref(), Some("arm64/snponly.efi"));
        assert_eq!(f(machine(Some(ClientArch::EfiX64Http), false, true, false)).as_deref(), Some("http://10.77.0.1:8080/tftp/snponly.efi"));
        assert_eq!(f(machine(Some(ClientArch::EfiIa32), true, false, false)), None);
        assert_eq!(f(machine(None, false, false, false)), None, "an OS client gets no boot file");
    }

    #[test]
    fn ipxe_never_gets_ipxe_again() {
        let b = BootSettings::default();
        for arch in [ClientArch::BiosX86, ClientArch::EfiX64] {
            let got = select_boot_file(&machine(Some(arch), true, false, true), S, &b).unwrap();
            assert_eq!(got.filename, "http://10.77.0.1:8080/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}");
        }
    }

    /// Machines that reach the server through a proxy (`[http] public_url`) are handed it, as
    /// every URL after the boot script is.
    #[test]
    fn the_public_url_is_what_machines_are_handed() {
        let b = BootSettings { http_base: Some("http://boot.lab:80".into()), ..BootSettings::default() };
        let ipxe = select_boot_file(&machine(Some(ClientArch::BiosX86), true, false, true), S, &b).unwrap();
        assert_eq!(ipxe.filename, "http://boot.lab:80/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}");
        let http_boot = select_boot_file(&machine(Some(ClientArch::EfiX64Http), false, true, false), S, &b).unwrap();
        assert_eq!(http_boot.filename, "http://boot.lab:80/tftp/snponly.efi");
    }

    #[test]
    fn uefi_http_boot_is_marked() {
        let got = select_boot_file(&machine(Some(ClientArch::EfiX64Http), false, true, false), S, &Default::default());
        assert!(got.unwrap().http_boot);
    }
}
