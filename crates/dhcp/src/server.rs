//! The decisions: one request in, at most one reply and one lease record out.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{self, MessageType};

use crate::boot::select_boot_file;
use crate::leases::{Lease, LeaseState, LeaseTable};
use crate::reply;
use crate::request::{parse_request, ClientRequest, Machine};
use crate::settings::{Mode, Settings, Subnet};
use crate::values::{DropReason, UnixTime, CLIENT_PORT, PXE_PORT, SERVER_PORT};

/// Where a datagram came from and on which of our ports it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub peer: SocketAddrV4,
    /// 67, or 4011 for PXE boot-server requests.
    pub local_port: u16,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub to: SocketAddrV4,
    /// Sent to 255.255.255.255 (the shell needs `SO_BROADCAST` and the bound interface).
    pub broadcast: bool,
    pub kind: MessageType,
    /// The address offered or acknowledged (0.0.0.0 for proxy and INFORM answers).
    pub yiaddr: Ipv4Addr,
    pub bytes: Vec<u8>,
}

/// What to do about one datagram. The shell persists `released` and `lease` first, then
/// sends `reply`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Option<Reply>,
    pub lease: Option<Lease>,
    /// Bindings the server ended to keep the machine within its share
    /// ([`Settings::max_leases_per_machine`]).
    pub released: Vec<Lease>,
    pub drop: Option<DropReason>,
    /// Who asked, and what (`None`: the datagram could not be read).
    pub asked: Option<Asked>,
}

/// The request an [`Outcome`] answers: which machine, which program in it (firmware, iPXE,
/// the stub, an OS), and which message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub kind: MessageType,
    pub machine: Machine,
}

impl Outcome {
    fn dropped(reason: DropReason) -> Self {
        Outcome { drop: Some(reason), ..Default::default() }
    }
    fn reply(reply: Option<Reply>) -> Self {
        match reply {
            Some(r) => Outcome { reply: Some(r), ..Default::default() },
            None => Outcome::dropped(DropReason::Undecodable),
        }
    }
}

/// The DHCP server's state: its settings and the lease table.
#[derive(Debug)]
pub struct DhcpServer {
    settings: Settings,
    leases: LeaseTable,
}

impl DhcpServer {
    /// `records` are the leases the shell loaded from its database.
    pub fn new(settings: Settings, records: impl IntoIterator<Item = Lease>) -> Self {
        let leases = LeaseTable::new(&settings, records);
        DhcpServer { settings, leases }
    }

    /// Takes new settings (a config reload) and keeps every lease record; in-flight offers are
    /// forgotten (their clients get a NAK or a new offer).
    pub fn reconfigure(&mut self, settings: Settings) {
        let records: Vec<Lease> = self.leases.iter().filter(|l| l.state != LeaseState::Offered).cloned().collect();
        self.leases = LeaseTable::new(&settings, records);
        self.settings = settings;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// Decides what to do about one datagram.
    pub fn handle(&mut self, now: UnixTime, source: Source, bytes: &[u8]) -> Outcome {
        let req = match parse_request(bytes) {
            Ok(r) => r,
            Err(reason) => return Outcome::dropped(reason),
        };
        let outcome = match (self.settings.mode, source.local_port) {
            (Mode::Off, _) => Outcome::dropped(DropReason::ModeOff),
            (_, PXE_PORT) => self.boot_server(&req, source),
            (Mode::Proxy, _) => self.proxy(&req),
            (Mode::Authoritative, _) => self.authoritative(now, &req),
        };
        Outcome { asked: Some(Asked { kind: req.kind, machine: req.machine }), ..outcome }
    }

    // ---- proxyDHCP and the PXE boot server (port 4011) ----

    /// Port 67 in proxy mode: a PXE DISCOVER gets boot information and no address.
    fn proxy(&self, req: &ClientRequest) -> Outcome {
        if req.kind != MessageType::Discover {
            return Outcome::dropped(DropReason::UnexpectedMessage);
        }
        self.boot_only_reply(req, MessageType::Offer, reply_destination(req, MessageType::Offer))
    }

    /// Port 4011: a PXE client asks the boot server (us) for its boot file, unicast.
    fn boot_server(&self, req: &ClientRequest, source: Source) -> Outcome {
        if !matches!(req.kind, MessageType::Request | MessageType::Inform) {
            return Outcome::dropped(DropReason::UnexpectedMessage);
        }
        let to = (source.peer.ip() != &Ipv4Addr::UNSPECIFIED).then_some(source.peer);
        self.boot_only_reply(req, MessageType::Ack, to)
    }

    /// A reply with boot information and no address, for a PXE client.
    fn boot_only_reply(&self, req: &ClientRequest, kind: MessageType, to: Option<SocketAddrV4>) -> Outcome {
        if !req.machine.pxe {
            return Outcome::dropped(DropReason::NotPxeClient);
        }
        let Some(boot) = select_boot_file(&req.machine, self.settings.server_ip, &self.settings.boot) else {
            return Outcome::dropped(DropReason::NoBootFile);
        };
        let mut r = reply::skeleton(req, kind, self.settings.server_ip);
        r.set_ciaddr(req.ciaddr);
        reply::add_boot(&mut r, req, &boot);
        Outcome::reply(finish(r, to, kind))
    }

    // ---- authoritative ----

    fn authoritative(&mut self, now: UnixTime, req: &ClientRequest) -> Outcome {
        let Some(subnet) = self.subnet_for(req) else {
            return Outcome::dropped(DropReason::NoSubnetForRelay);
        };
        match req.kind {
            MessageType::Discover => self.discover(now, req, subnet),
            MessageType::Request => self.request(now, req, subnet),
            MessageType::Decline => self.decline(now, req),
            MessageType::Release => self.release(now, req),
            MessageType::Inform => self.inform(req, subnet),
            _ => Outcome::dropped(DropReason::UnexpectedMessage),
        }
    }

    /// The subnet a request is about: the relay's (giaddr), else the one the client's address
    /// is in (a unicast RENEW from behind a relay has no giaddr), else our own.
    fn subnet_for(&self, req: &ClientRequest) -> Option<usize> {
        let subnets = &self.settings.subnets;
        if req.giaddr != Ipv4Addr::UNSPECIFIED {
            return subnets.iter().position(|s| s.contains(req.giaddr));
        }
        if req.ciaddr != Ipv4Addr::UNSPECIFIED {
            if let Some(i) = subnets.iter().position(|s| s.contains(req.ciaddr)) {
                return Some(i);
            }
        }
        Some(0)
    }

    fn reserved_ip(&self, req: &ClientRequest) -> Option<&crate::Reservation> {
        self.settings.reservations.iter().find(|r| r.hwaddr == req.machine.hwaddr)
    }

    /// Whether `req`'s client may hold `ip` on subnet `subnet` now.
    fn may_hold(&self, now: UnixTime, req: &ClientRequest, subnet: usize, ip: Ipv4Addr) -> bool {
        let s = &self.settings.subnets[subnet];
        if !s.contains(ip) {
            return false;
        }
        let assignable = match self.reserved_ip(req) {
            Some(r) if r.ip == ip => true,
            _ => s.in_pool(ip) && !self.leases.is_reserved(ip),
        };
        assignable && self.leases.free_for(ip, &req.client_id, now)
    }

    fn choose_address(&mut self, now: UnixTime, req: &ClientRequest, subnet: usize) -> Option<Ipv4Addr> {
        if let Some(r) = self.reserved_ip(req) {
            let ip = r.ip;
            if self.may_hold(now, req, subnet, ip) {
                return Some(ip);
            }
        }
        if let Some(prev) = self.leases.of_client(&req.client_id).map(|l| l.ip) {
            if self.may_hold(now, req, subnet, prev) {
                return Some(prev);
            }
        }
        if let Some(ip) = req.requested_ip {
            if self.may_hold(now, req, subnet, ip) {
                return Some(ip);
            }
        }
        if let Some(ip) = self.leases.take_unused(&self.settings, subnet) {
            return Some(ip);
        }
        self.leases.oldest_reusable(&self.settings, subnet, now)
    }

    /// A machine (chaddr) keeps at most `max_leases_per_machine` addresses at once: a client id
    /// new to it beyond that takes the place of its record that ends first. Firmware, iPXE,
    /// the stub and the booted system may each use a client id of their own, so a machine
    /// needs a few; one that invents client ids cannot empty the pool. Returns the bindings it
    /// ended (offers are only forgotten).
    fn keep_machine_within_share(&mut self, now: UnixTime, req: &ClientRequest) -> Vec<Lease> {
        let others: Vec<Lease> = self.leases.held_by_machine(&req.machine.hwaddr, now).into_iter().filter(|l| l.client_id != req.client_id).cloned().collect();
        let keep = self.settings.max_leases_per_machine.saturating_sub(1);
        let mut released = Vec::new();
        for l in others.iter().take(others.len().saturating_sub(keep)) {
            if l.state == LeaseState::Offered {
                self.leases.withdraw_offer(l.ip, &l.client_id);
            } else {
                let ended = Lease { state: LeaseState::Released, expires: now, ..l.clone() };
                self.leases.put(ended.clone());
                released.push(ended);
            }
        }
        released
    }

    fn discover(&mut self, now: UnixTime, req: &ClientRequest, subnet: usize) -> Outcome {
        let released = self.keep_machine_within_share(now, req);
        let Some(ip) = self.choose_address(now, req, subnet) else {
            return Outcome { released, ..Outcome::dropped(DropReason::PoolExhausted) };
        };
        let keeps_binding = self.leases.get(ip).is_some_and(|l| l.client_id == req.client_id && l.state == LeaseState::Bound && l.is_active(now));
        if !keeps_binding {
            let hold = now + u64::from(self.settings.offer_secs);
            self.leases.put(self.lease_record(req, ip, LeaseState::Offered, hold));
        }
        let s = &self.settings.subnets[subnet];
        let mut r = reply::skeleton(req, MessageType::Offer, self.settings.server_ip);
        r.set_yiaddr(ip);
        self.fill_assignment(&mut r, req, s);
        Outcome { released, ..Outcome::reply(finish(r, reply_destination(req, MessageType::Offer), MessageType::Offer)) }
    }

    fn request(&mut self, now: UnixTime, req: &ClientRequest, subnet: usize) -> Outcome {
        let ip = match (req.server_id, req.ciaddr) {
            // SELECTING: the client names the server it chose.
            (Some(sid), _) if sid != self.settings.server_ip => {
                if let Some(ip) = req.requested_ip {
                    self.leases.withdraw_offer(ip, &req.client_id);
                }
                return Outcome::dropped(DropReason::ForOtherServer);
            }
            (Some(_), ciaddr) => match req.requested_ip {
                Some(ip) => ip,
                None if ciaddr != Ipv4Addr::UNSPECIFIED => ciaddr,
                None => return Outcome::dropped(DropReason::MissingRequestedIp),
            },
            // INIT-REBOOT: the client asks to keep an address it remembers.
            (None, ciaddr) if ciaddr == Ipv4Addr::UNSPECIFIED => match req.requested_ip {
                Some(ip) => ip,
                None => return Outcome::dropped(DropReason::MissingRequestedIp),
            },
            // RENEWING (unicast) or REBINDING (broadcast).
            (None, ciaddr) => ciaddr,
        };
        if !self.may_hold(now, req, subnet, ip) {
            return self.nak(req);
        }
        let released = self.keep_machine_within_share(now, req);
        let lease_secs = self.settings.subnets[subnet].lease_secs;
        let lease = self.lease_record(req, ip, LeaseState::Bound, now + u64::from(lease_secs));
        self.leases.put(lease.clone());
        let s = &self.settings.subnets[subnet];
        let mut r = reply::skeleton(req, MessageType::Ack, self.settings.server_ip);
        r.set_yiaddr(ip).set_ciaddr(req.ciaddr);
        self.fill_assignment(&mut r, req, s);
        let mut out = Outcome::reply(finish(r, reply_destination(req, MessageType::Ack), MessageType::Ack));
        if out.reply.is_some() {
            out.lease = Some(lease);
        }
        out.released = released;
        out
    }

    fn nak(&self, req: &ClientRequest) -> Outcome {
        let mut r = reply::skeleton(req, MessageType::Nak, self.settings.server_ip);
        r.opts_mut().insert(v4::DhcpOption::Message("address not available".into()));
        Outcome::reply(finish(r, reply_destination(req, MessageType::Nak), MessageType::Nak))
    }

    fn decline(&mut self, now: UnixTime, req: &ClientRequest) -> Outcome {
        if req.server_id.is_some_and(|s| s != self.settings.server_ip) {
            return Outcome::dropped(DropReason::ForOtherServer);
        }
        let Some(ip) = req.requested_ip else {
            return Outcome::dropped(DropReason::MissingRequestedIp);
        };
        match self.leases.get(ip) {
            Some(l) if l.client_id == req.client_id => {}
            _ => return Outcome::dropped(DropReason::NotTheHolder),
        }
        let until = now + u64::from(self.settings.decline_secs);
        let lease = self.lease_record(req, ip, LeaseState::Declined, until);
        self.leases.put(lease.clone());
        Outcome { lease: Some(lease), ..Default::default() }
    }

    fn release(&mut self, now: UnixTime, req: &ClientRequest) -> Outcome {
        if req.server_id.is_some_and(|s| s != self.settings.server_ip) {
            return Outcome::dropped(DropReason::ForOtherServer);
        }
        let ip = req.ciaddr;
        match self.leases.get(ip) {
            Some(l) if l.client_id == req.client_id && l.state == LeaseState::Bound => {}
            _ => return Outcome::dropped(DropReason::NotTheHolder),
        }
        let lease = self.lease_record(req, ip, LeaseState::Released, now);
        self.leases.put(lease.clone());
        Outcome { lease: Some(lease), ..Default::default() }
    }

    fn inform(&self, req: &ClientRequest, subnet: usize) -> Outcome {
        let s = &self.settings.subnets[subnet];
        let mut r = reply::skeleton(req, MessageType::Ack, self.settings.server_ip);
        r.set_ciaddr(req.ciaddr);
        reply::add_network_options(&mut r, s);
        if let Some(boot) = select_boot_file(&req.machine, self.settings.server_ip, &self.settings.boot) {
            reply::add_boot(&mut r, req, &boot);
        }
        Outcome::reply(finish(r, reply_destination(req, MessageType::Ack), MessageType::Ack))
    }

    /// Network options, lease times, hostname of a reservation and boot information.
    fn fill_assignment(&self, r: &mut v4::Message, req: &ClientRequest, s: &Subnet) {
        reply::add_network_options(r, s);
        reply::add_lease_times(r, s.lease_secs);
        if let Some(name) = self.reserved_ip(req).and_then(|res| res.hostname.clone()) {
            r.opts_mut().insert(v4::DhcpOption::Hostname(name));
        }
        if let Some(boot) = select_boot_file(&req.machine, self.settings.server_ip, &self.settings.boot) {
            reply::add_boot(r, req, &boot);
        }
    }

    fn lease_record(&self, req: &ClientRequest, ip: Ipv4Addr, state: LeaseState, expires: UnixTime) -> Lease {
        let hostname = self.reserved_ip(req).and_then(|r| r.hostname.clone()).or_else(|| req.hostname.clone());
        Lease { ip, client_id: req.client_id.clone(), hwaddr: req.machine.hwaddr.clone(), hostname, state, expires }
    }
}

/// RFC 2131 4.1: to the relay if there is one; to `ciaddr` if the client has an address (and
/// this is not a NAK); otherwise broadcast. Unicast to `yiaddr` of an unconfigured client would
/// need an ARP entry for it, so we broadcast instead, which every client accepts.
fn reply_destination(req: &ClientRequest, kind: MessageType) -> Option<SocketAddrV4> {
    if req.giaddr != Ipv4Addr::UNSPECIFIED {
        Some(SocketAddrV4::new(req.giaddr, SERVER_PORT))
    } else if req.ciaddr != Ipv4Addr::UNSPECIFIED && kind != MessageType::Nak {
        Some(SocketAddrV4::new(req.ciaddr, CLIENT_PORT))
    } else {
        None
    }
}

/// Encodes `r`; `to == None` means broadcast to the client port.
fn finish(r: v4::Message, to: Option<SocketAddrV4>, kind: MessageType) -> Option<Reply> {
    let yiaddr = r.yiaddr();
    let bytes = reply::encode(&r)?;
    Some(match to {
        Some(to) => Reply { to, broadcast: false, kind, yiaddr, bytes },
        None => Reply { to: SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), broadcast: true, kind, yiaddr, bytes },
    })
}
