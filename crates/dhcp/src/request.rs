//! Decoding a datagram, once, into a [`ClientRequest`] that decisions can match on.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, MessageType, Opcode, OptionCode};
use dhcproto::Decodable;

use crate::values::{ClientId, DropReason, HwAddr};

/// Largest datagram the core looks at. Real requests are well under 1500 bytes.
pub const MAX_REQUEST_LEN: usize = 4096;
/// Fixed BOOTP header (236 bytes) plus the magic cookie.
const MIN_REQUEST_LEN: usize = 240;

/// The firmware's processor/boot architecture, from option 93 (RFC 4578, IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientArch {
    /// x86 BIOS PXE (type 0).
    BiosX86,
    /// 32-bit x86 UEFI (type 6).
    EfiIa32,
    /// x86-64 UEFI (types 7 and 9).
    EfiX64,
    /// 32-bit ARM UEFI (type 10).
    EfiArm32,
    /// 64-bit ARM UEFI (type 11).
    EfiArm64,
    /// x86-64 UEFI HTTP boot (type 16).
    EfiX64Http,
    /// 64-bit ARM UEFI HTTP boot (type 19).
    EfiArm64Http,
    /// Any other registered or unregistered type.
    Other(u16),
}

impl ClientArch {
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => ClientArch::BiosX86,
            6 => ClientArch::EfiIa32,
            7 | 9 => ClientArch::EfiX64,
            10 => ClientArch::EfiArm32,
            11 => ClientArch::EfiArm64,
            16 => ClientArch::EfiX64Http,
            19 => ClientArch::EfiArm64Http,
            other => ClientArch::Other(other),
        }
    }
    pub fn is_http_boot(self) -> bool {
        matches!(self, ClientArch::EfiX64Http | ClientArch::EfiArm64Http)
    }
}

/// What is asking: decoded once from options 60, 77, 93, 97 and 175.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub hwaddr: HwAddr,
    /// Option 93; `None` when the client did not say (an OS DHCP client).
    pub arch: Option<ClientArch>,
    /// Option 60 starts with `PXEClient`: network-boot firmware (or iPXE).
    pub pxe: bool,
    /// Option 60 starts with `HTTPClient`: UEFI HTTP boot.
    pub http_client: bool,
    /// iPXE is asking (user class `iPXE` or iPXE's option 175), so do not chainload iPXE again.
    pub ipxe: bool,
    /// Option 60 starts with `swarmboot-stub`: the stub's init.
    pub stub: bool,
    /// Option 97, the client machine identifier (type byte and UUID), if sent.
    pub guid: Option<Vec<u8>>,
}

impl Machine {
    /// Wants boot information (rather than only an address).
    pub fn is_netboot(&self) -> bool {
        self.pxe || self.http_client || self.ipxe
    }
}

/// A decoded, checked client message.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub kind: MessageType,
    pub xid: u32,
    pub client_id: ClientId,
    pub machine: Machine,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub broadcast_flag: bool,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// The message as decoded, kept to copy fields and option 82 into the reply.
    pub message: v4::Message,
}

/// The vendor class (option 60) the stub's DHCP client sends.
pub const STUB_CLASS: &[u8] = b"swarmboot-stub";

/// Decodes and checks one datagram. Every way it can fail is a [`DropReason`].
pub fn parse_request(bytes: &[u8]) -> Result<ClientRequest, DropReason> {
    let message = decode_guarded(bytes)?;
    if message.opcode() != Opcode::BootRequest {
        return Err(DropReason::NotARequest);
    }
    let hlen = usize::from(message.hlen());
    if hlen == 0 || hlen > 16 {
        return Err(DropReason::BadHardwareAddress);
    }
    let kind = message.opts().msg_type().ok_or(DropReason::NoMessageType)?;
    let hwaddr = HwAddr::new(&message.chaddr()[..hlen.min(message.chaddr().len())]);
    let opts = message.opts();

    let client_id = match opts.get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => ClientId::new(id.clone()),
        _ => ClientId::from_hwaddr(u8::from(message.htype()), &hwaddr),
    };
    let class = match opts.get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(c)) => c.as_slice(),
        _ => &[],
    };
    let arch = match opts.get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(a)) => Some(ClientArch::from_code(a.0)),
        _ => None,
    };
    let user_class_ipxe = match opts.get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(u)) => user_class_has(u, b"iPXE"),
        _ => false,
    };
    let ipxe_encap = opts.get(OptionCode::Unknown(175)).is_some();
    let guid = match opts.get(OptionCode::ClientMachineIdentifier) {
        Some(DhcpOption::ClientMachineIdentifier(g)) => Some(g.clone()),
        _ => None,
    };
    let machine = Machine {
        hwaddr,
        arch,
        pxe: class.starts_with(b"PXEClient"),
        http_client: class.starts_with(b"HTTPClient"),
        ipxe: user_class_ipxe || ipxe_encap,
        stub: class.starts_with(STUB_CLASS),
        guid,
    };
    let requested_ip = match opts.get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let server_id = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let hostname = match opts.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => Some(h.clone()),
        _ => None,
    };
    Ok(ClientRequest {
        kind,
        xid: message.xid(),
        client_id,
        machine,
        ciaddr: message.ciaddr(),
        giaddr: message.giaddr(),
        broadcast_flag: message.flags().broadcast(),
        requested_ip,
        server_id,
        hostname,
        message,
    })
}

/// Size, magic cookie and option lengths checked, then decoded by dhcproto (which would
/// panic on some malformed options): for requests and, in [`crate::client`], replies.
pub(crate) fn decode_guarded(bytes: &[u8]) -> Result<v4::Message, DropReason> {
    if bytes.len() > MAX_REQUEST_LEN {
        return Err(DropReason::Oversized);
    }
    if bytes.len() < MIN_REQUEST_LEN {
        return Err(DropReason::Truncated);
    }
    if bytes[236..240] != [99, 130, 83, 99] {
        return Err(DropReason::BadMagic);
    }
    check_option_lengths(&bytes[MIN_REQUEST_LEN..])?;
    v4::Message::decode(&mut dhcproto::Decoder::new(bytes)).map_err(|_| DropReason::Undecodable)
}

/// Walks the option TLVs before dhcproto decodes them: every length must fit the datagram, and
/// options whose decoders in dhcproto 0.15 assume a length (and, built with debug assertions,
/// panic on another) must have it. Adjacent repeats are concatenated first (RFC 3396), as
/// dhcproto does.
fn check_option_lengths(options: &[u8]) -> Result<(), DropReason> {
    let mut at = 0;
    let mut run: Option<(u8, usize)> = None;
    let check = |code: u8, len: usize| -> Result<(), DropReason> {
        let ok = match code {
            80 => len == 0,
            94 => len == 3,
            81 => len >= 3,
            151 => len >= 1,
            152..=155 => len == 4,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(DropReason::Undecodable)
        }
    };
    while at < options.len() {
        let code = options[at];
        if code == 0 || code == 255 {
            if let Some((c, l)) = run.take() {
                check(c, l)?;
            }
            if code == 255 {
                return Ok(());
            }
            at += 1;
            continue;
        }
        let len = usize::from(*options.get(at + 1).ok_or(DropReason::Undecodable)?);
        if at + 2 + len > options.len() {
            return Err(DropReason::Undecodable);
        }
        if code == 82 && !sub_options_fill(&options[at + 2..at + 2 + len]) {
            return Err(DropReason::Undecodable);
        }
        run = match run {
            Some((c, l)) if c == code => Some((c, l + len)),
            Some((c, l)) => {
                check(c, l)?;
                Some((code, len))
            }
            None => Some((code, len)),
        };
        at += 2 + len;
    }
    match run {
        Some((c, l)) => check(c, l),
        None => Ok(()),
    }
}

/// Whether `data` is a sequence of (code, length, value) sub-options that ends exactly at its
/// end, as option 82 must be (RFC 3046).
fn sub_options_fill(data: &[u8]) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        match rest {
            [_, len, tail @ ..] if usize::from(*len) <= tail.len() => rest = &tail[usize::from(*len)..],
            _ => return false,
        }
    }
    true
}

/// RFC 3004 user class data is a list of length-prefixed strings; some clients (iPXE among
/// them) send a bare string instead. Accept both.
fn user_class_has(data: &[u8], class: &[u8]) -> bool {
    if data == class {
        return true;
    }
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            return false;
        }
        if &tail[..len] == class {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwaddr_round_trips() {
        let h: HwAddr = "52:54:00:AB:cd:01".parse().unwrap();
        assert_eq!(h.to_string(), "52:54:00:ab:cd:01");
        assert_eq!("52-54-00-ab-cd-01".parse::<HwAddr>().unwrap(), h);
        assert!("52:54:00:ab:cd:1".parse::<HwAddr>().is_err());
        assert!("".parse::<HwAddr>().is_err());
        assert!("zz:00".parse::<HwAddr>().is_err());
    }

    #[test]
    fn user_class_forms() {
        assert!(user_class_has(b"iPXE", b"iPXE"));
        assert!(user_class_has(b"\x04iPXE", b"iPXE"));
        assert!(user_class_has(b"\x03abc\x04iPXE", b"iPXE"));
        assert!(!user_class_has(b"\x09iPXE", b"iPXE"));
        assert!(!user_class_has(b"", b"iPXE"));
    }

    #[test]
    fn option_lengths_dhcproto_assumes_are_checked() {
        assert_eq!(check_option_lengths(&[53, 1, 1, 255]), Ok(()));
        assert_eq!(check_option_lengths(&[53, 5, 1]), Err(DropReason::Undecodable), "length past the end");
        assert_eq!(check_option_lengths(&[53]), Err(DropReason::Undecodable), "no length byte");
        assert_eq!(check_option_lengths(&[80, 1, 0, 255]), Err(DropReason::Undecodable));
        assert_eq!(check_option_lengths(&[81, 2, 0, 0, 255]), Err(DropReason::Undecodable));
        assert_eq!(check_option_lengths(&[152, 2, 0, 0, 152, 2, 0, 0, 255]), Ok(()), "concatenated to 4");
        assert_eq!(check_option_lengths(&[152, 4, 0, 0, 0, 0, 152, 4, 0, 0, 0, 0]), Err(DropReason::Undecodable));
        assert_eq!(check_option_lengths(&[0, 0, 255, 99, 99]), Ok(()), "bytes after End are ignored");
        assert_eq!(check_option_lengths(&[82, 4, 1, 2, 0xaa, 0xbb, 255]), Ok(()));
        assert_eq!(check_option_lengths(&[82, 4, 1, 9, 0xde, 0xad, 255]), Err(DropReason::Undecodable), "sub-option overruns 82");
        assert_eq!(check_option_lengths(&[82, 3, 1, 0, 7, 255]), Err(DropReason::Undecodable), "sub-option without length");
    }

    #[test]
    fn short_and_long_datagrams_are_dropped() {
        assert_eq!(parse_request(&[]).unwrap_err(), DropReason::Truncated);
        assert_eq!(parse_request(&[1; 239]).unwrap_err(), DropReason::Truncated);
        assert_eq!(parse_request(&[1; 300]).unwrap_err(), DropReason::BadMagic);
        assert_eq!(parse_request(&vec![0; MAX_REQUEST_LEN + 1]).unwrap_err(), DropReason::Oversized);
    }
}
