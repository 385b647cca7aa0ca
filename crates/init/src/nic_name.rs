//! The name the booted system's udev gives the NIC, so the stub can give it that name before
//! it brings it up. Once up (the stub keeps it up: it seeds through it while the image boots),
//! an interface can no longer be renamed, so without this a Debian image whose
//! `/etc/network/interfaces` or `.network` file says `ens3` would wait for a device that never
//! appears while the NIC stays `eth0`. udev's default policy (`NamePolicy=keep kernel database
//! onboard slot path` in `99-default.link`) keeps a name userspace gave, and this one is the
//! one it would have chosen: for a PCI NIC, `eno<acpi_index|index>` (onboard), else
//! `ens<slot>` (a hotplug slot in `/sys/bus/pci/slots`), else `enp<bus>s<device>`, with
//! `f<function>` for a function of a multi-function device (systemd's `net_id`). With
//! `net.ifnames=0` on the command line the kernel's name stays.
//!
//! Sans-IO: the shell reads the facts from sysfs.

/// What sysfs says about a NIC's PCI device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciNic {
    /// `0000:00:03.0`
    pub address: String,
    /// `acpi_index` of the device (firmware's onboard index), if any.
    pub acpi_index: Option<u32>,
    /// `index` (SMBIOS onboard index), if any.
    pub index: Option<u32>,
    /// The hotplug slot whose `address` is this device's `domain:bus:device`, if any.
    pub slot: Option<u32>,
    /// The device has more than one function.
    pub multifunction: bool,
    /// `dev_port` of the net device (ports of one function), 0 for the first.
    pub dev_port: u32,
}

/// `domain, bus, device, function` of `0000:00:03.0`.
fn parse_address(a: &str) -> Option<(u32, u32, u32, u32)> {
    let (domain, rest) = a.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(device)?, hex(function)?))
}

/// The predictable name for `nic`, or `None` (keep the kernel's) when `cmdline` turns
/// predictable names off or the facts do not make one.
pub fn predictable_name(nic: &PciNic, cmdline: &str) -> Option<String> {
    let words = crate::cmdline::words(cmdline);
    if crate::cmdline::value(&words, "net.ifnames") == Some("0") {
        return None;
    }
    let (domain, bus, device, function) = parse_address(&nic.address)?;
    let port = if nic.dev_port > 0 { format!("d{}", nic.dev_port) } else { String::new() };
    // Onboard: firmware indexes up to 16383 (larger ones are bogus, systemd ignores them).
    if let Some(i) = nic.acpi_index.or(nic.index.filter(|&i| i > 0)).filter(|&i| i <= 16383) {
        return Some(format!("eno{i}{port}"));
    }
    let func = if nic.multifunction || function > 0 { format!("f{function}") } else { String::new() };
    let prefix = if domain > 0 { format!("P{domain}") } else { String::new() };
    let name = match nic.slot {
        Some(slot) => format!("{prefix}ens{slot}{func}{port}"),
        None => format!("{prefix}enp{bus}s{device}{func}{port}"),
    };
    (name.len() <= 15).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(address: &str) -> PciNic {
        PciNic { address: address.into(), ..Default::default() }
    }

    #[test]
    fn names_follow_udevs_default_policy() {
        // QEMU's i440fx: a virtio NIC in hotplug slot 3.
        assert_eq!(predictable_name(&PciNic { slot: Some(3), ..nic("0000:00:03.0") }, "console=ttyS0"), Some("ens3".into()));
        // q35: behind a PCIe root port, no slot.
        assert_eq!(predictable_name(&nic("0000:01:00.0"), ""), Some("enp1s0".into()));
        // Bus and device are hex in sysfs, decimal in names.
        assert_eq!(predictable_name(&nic("0000:1a:0b.0"), ""), Some("enp26s11".into()));
        // Onboard wins over slot and path; SMBIOS index 0 means none.
        assert_eq!(predictable_name(&PciNic { acpi_index: Some(1), slot: Some(3), ..nic("0000:00:19.0") }, ""), Some("eno1".into()));
        assert_eq!(predictable_name(&PciNic { index: Some(0), ..nic("0000:00:19.0") }, ""), Some("enp0s25".into()));
        assert_eq!(predictable_name(&PciNic { acpi_index: Some(20000), ..nic("0000:00:19.0") }, ""), Some("enp0s25".into()), "a bogus index");
        // Functions of multi-function devices, second ports, other domains.
        assert_eq!(predictable_name(&PciNic { multifunction: true, ..nic("0000:02:00.1") }, ""), Some("enp2s0f1".into()));
        assert_eq!(predictable_name(&PciNic { multifunction: true, dev_port: 1, ..nic("0000:02:00.0") }, ""), Some("enp2s0f0d1".into()));
        assert_eq!(predictable_name(&nic("0001:00:03.0"), ""), Some("P1enp0s3".into()));
    }

    #[test]
    fn net_ifnames_0_or_no_pci_address_keeps_the_kernels_name() {
        assert_eq!(predictable_name(&PciNic { slot: Some(3), ..nic("0000:00:03.0") }, "quiet net.ifnames=0"), None);
        assert_eq!(predictable_name(&nic("virtio0"), ""), None);
        assert_eq!(predictable_name(&nic(""), ""), None);
    }
}
