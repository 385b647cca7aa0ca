//! The stub's network: pick the wired interface, bring it up and wait for a link, DHCP, apply
//! the lease over rtnetlink ([`configure`]). Failures are explained and retried with backoff.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use swarmboot_dhcp::client::{ClientConfig, ClientLease, DhcpClient};
use swarmboot_init::netlink;
use swarmboot_init::nic_name::{predictable_name, PciNic};

use crate::console::say;

/// A `NETLINK_ROUTE` socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl with the family set is a valid address (pid 0: the kernel picks).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a sockaddr_nl of the size passed.
        let r = unsafe { libc::bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_nl>() as u32) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink { fd, seq: 1 })
    }

    fn call(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        self.seq += 1;
        let seq = self.seq;
        let msg = build(seq);
        // SAFETY: msg is a valid buffer of msg.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        for _ in 0..16 {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            match netlink::ack_of(&buf[..n as usize], seq) {
                Some(0) => return Ok(()),
                Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                None => continue,
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "no netlink acknowledgement"))
    }

    pub fn rename(&mut self, index: u32, name: &str) -> io::Result<()> {
        self.call(|seq| netlink::rename(seq, index, name))
    }

    pub fn link_up(&mut self, index: u32) -> io::Result<()> {
        self.call(|seq| netlink::link_up(seq, index))
    }

    pub fn apply(&mut self, index: u32, lease: &ClientLease) -> io::Result<()> {
        self.call(|seq| netlink::add_address(seq, index, lease.address, lease.prefix_len))?;
        if let Some(gw) = lease.router {
            self.call(|seq| netlink::add_default_route(seq, index, gw))?;
        }
        Ok(())
    }
}

/// Ethernet interfaces (type 1, not loopback), sorted by name.
pub fn ethernet_interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net").map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()).unwrap_or_default();
    v.retain(|n| n != "lo" && std::fs::read_to_string(format!("/sys/class/net/{n}/type")).is_ok_and(|t| t.trim() == "1"));
    v.sort();
    v
}

pub fn ifindex(name: &str) -> io::Result<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "ifindex"))
}

pub fn mac_of(name: &str) -> io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    bytes.try_into().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: no Ethernet address")))
}

/// The PCI facts udev names a NIC by (see `swarmboot_init::nic_name`); `None` for a NIC that
/// is not on PCI.
fn pci_nic(name: &str) -> Option<PciNic> {
    let dev = std::fs::canonicalize(format!("/sys/class/net/{name}/device")).ok()?;
    let is_pci = |n: &str| n.len() == 12 && n.as_bytes()[4] == b':' && n.as_bytes()[7] == b':' && n.as_bytes()[10] == b'.';
    let pci = dev.ancestors().find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_pci))?;
    let address = pci.file_name()?.to_str()?.to_string();
    let number = |p: std::path::PathBuf| std::fs::read_to_string(p).ok().and_then(|t| t.trim().parse::<u32>().ok());
    let slot = std::fs::read_dir("/sys/bus/pci/slots").ok().and_then(|rd| {
        rd.flatten().find_map(|e| {
            let a = std::fs::read_to_string(e.path().join("address")).ok()?;
            (a.trim() == &address[..address.len() - 2]).then(|| e.file_name().to_str()?.parse::<u32>().ok()).flatten()
        })
    });
    // Bit 7 of the header type (config space offset 0x0e): a multi-function device.
    let multifunction = std::fs::read(pci.join("config")).ok().and_then(|c| c.get(0x0e).copied()).is_some_and(|h| h & 0x80 != 0);
    Some(PciNic {
        acpi_index: number(pci.join("acpi_index")),
        index: number(pci.join("index")),
        slot,
        multifunction,
        dev_port: number(format!("/sys/class/net/{name}/dev_port").into()).unwrap_or(0),
        address,
    })
}

/// Gives the (still down) NIC `name` the name the booted system's udev would give it; returns
/// the name it has now.
pub fn rename_as_udev_would(nl: &mut Netlink, name: &str) -> String {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let Some(wanted) = pci_nic(name).and_then(|n| predictable_name(&n, &cmdline)) else { return name.to_string() };
    if wanted == name {
        return wanted;
    }
    match ifindex(name).and_then(|i| nl.rename(i, &wanted)) {
        Ok(()) => {
            say(format!("{name} is {wanted} from now on (the name the booted system's udev gives it; net.ifnames=0 keeps {name})"));
            wanted
        }
        Err(e) => {
            say(format!("cannot rename {name} to {wanted} ({e}); it stays {name}"));
            name.to_string()
        }
    }
}

fn has_carrier(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).is_ok_and(|c| c.trim() == "1")
}

/// Seconds to wait before try `n` (0-based): 1, 2, 4, … 30.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs((1u64 << n.min(5)).min(30))
}

/// Brings `name` up and waits until it has a link; explains and retries until it does.
pub async fn bring_up(nl: &mut Netlink, name: &str) -> u32 {
    let mut tries = 0;
    loop {
        match ifindex(name).and_then(|i| nl.link_up(i).map(|_| i)) {
            Ok(index) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if has_carrier(name) {
                        return index;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                say(format!("no link on {name} after 10 s: is the cable plugged in and the switch port up? Retrying in {} s", backoff(tries).as_secs()));
            }
            Err(e) => say(format!("cannot bring {name} up: {e}; retrying in {} s", backoff(tries).as_secs())),
        }
        tokio::time::sleep(backoff(tries)).await;
        tries += 1;
    }
}

fn dhcp_socket(name: &str) -> io::Result<tokio::net::UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(name.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, swarmboot_dhcp::CLIENT_PORT)).into())?;
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// Asks DHCP on `name` until a server grants an address; says what is going on.
pub async fn dhcp(name: &str, mac: [u8; 6], xid: u32) -> io::Result<ClientLease> {
    let sock = dhcp_socket(name)?;
    let mut client = DhcpClient::new(ClientConfig { mac, xid, vendor_class: swarmboot_dhcp::STUB_CLASS.to_vec() }, Instant::now());
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, swarmboot_dhcp::SERVER_PORT);
    let mut buf = vec![0u8; 1500];
    let mut told = 0;
    loop {
        if let Some(l) = client.lease() {
            return Ok(l.clone());
        }
        if let Some(msg) = client.poll_transmit(Instant::now()) {
            sock.send_to(&msg, to).await?;
            if client.unanswered() >= 4 && client.unanswered() != told {
                told = client.unanswered();
                say(format!("no DHCP answer on {name} yet ({told} requests sent): is a DHCP server on this network, and does it serve this port?"));
            }
        }
        let wait = client.poll_timeout().map_or(Duration::from_millis(100), |t| t.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                if let Err(e) = client.on_datagram(Instant::now(), &buf[..n]) {
                    tracing::debug!("DHCP datagram ignored: {e}");
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
    }
}

async fn pick_interface(wanted: Option<&str>) -> String {
    let mut tries = 0;
    loop {
        let found = ethernet_interfaces();
        match wanted {
            Some(w) if found.iter().any(|f| f == w) => return w.to_string(),
            None if !found.is_empty() => return found[0].clone(),
            _ => {}
        }
        if tries == 10 {
            say(format!(
                "no {} network interface yet: is the NIC's driver in the stub? (`swarmboot stub build` bundles virtio_net, e1000, e1000e, igb, ixgbe, r8169, tg3, bnx2 …); interfaces: {found:?}",
                wanted.unwrap_or("Ethernet")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        tries += 1;
    }
}

/// The wired interface (`wanted`, or the first found, renamed as udev would name it) up, an
/// address from DHCP applied; its name and the lease. `lease_file`: leave the lease in `/run`
/// as an initramfs-tools boot would (a machine's own boot; not a test's named interface).
pub async fn configure(wanted: Option<&str>, lease_file: bool) -> io::Result<(String, ClientLease)> {
    let picked = pick_interface(wanted).await;
    let mut nl = Netlink::open()?;
    // An interface we were told to use keeps its name; the one we found gets udev's.
    let name = if wanted.is_some() { picked } else { rename_as_udev_would(&mut nl, &picked) };
    let index = bring_up(&mut nl, &name).await;
    let mac = mac_of(&name)?;
    let xid = u32::from_le_bytes([mac[2], mac[3], mac[4], mac[5]])
        ^ std::process::id().rotate_left(16)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    say(format!("{name} is up; asking DHCP"));
    let lease = dhcp(&name, mac, xid).await?;
    nl.apply(index, &lease)?;
    say(format!("{name}: {}/{} via {} (DHCP server {})", lease.address, lease.prefix_len, lease.router.map_or("-".to_string(), |r| r.to_string()), lease.server));
    // What an initramfs-tools boot leaves for the booted system (it moves along with /run).
    if !lease_file {
        return Ok((name, lease));
    }
    if let Err(e) = std::fs::write(swarmboot_init::ipconfig::path(&name), swarmboot_init::ipconfig::file(&name, &lease)) {
        tracing::warn!("cannot write {}: {e}", swarmboot_init::ipconfig::path(&name));
    }
    Ok((name, lease))
}
