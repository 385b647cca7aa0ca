//! [`Fleet`]: each machine's record and the rules that move it through the stages.
//!
//! - A boot begins when firmware or iPXE asks for an address (or the boot script) after the
//!   machine's current boot got past them; every other event that would move a machine back is
//!   stale (a lease renewal, a late report) and only says the machine is alive.
//! - `running` is said by the booted system itself (its `swarmboot-booted` unit once
//!   multi-user.target is reached, or the elchOS agent's check-in), not guessed.
//! - A machine that reports (it got as far as the stub) and is not heard from for
//!   [`FleetConfig::lost_after_ms`] is `lost`; one that never reports (firmware, iPXE) is lost
//!   after [`FleetConfig::silent_lost_after_ms`].
//! - Bounded: at most [`FleetConfig::max_machines`] records (a new MAC takes the place of the
//!   machine lost longest, else it is refused), [`FleetConfig::boots_kept`] boots per machine,
//!   [`MAX_STAGES_PER_BOOT`] stage changes per boot, [`FleetConfig::events_kept`] events.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::mac::Mac;
use crate::report::{Reported, Reporter, StageReport};

/// Stage changes kept per boot (a boot that flaps between lost and back stops adding them).
pub const MAX_STAGES_PER_BOOT: usize = 24;
/// The longest hostname kept (DNS's label limit); longer ones are cut.
pub const MAX_HOSTNAME: usize = 63;

/// Where a machine's boot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The firmware asked for an address and a boot file.
    Dhcp,
    /// Firmware loaded iPXE (TFTP), or iPXE asked for an address or its boot script.
    Ipxe,
    /// The stub's init asked for an address.
    Stub,
    /// The stub is fetching the image.
    Fetching,
    /// The image is here and verified; the stub handed over and the system is starting.
    Handover,
    /// The booted system says it is up.
    Running,
    /// Not heard from.
    Lost,
}

impl Stage {
    pub const ALL: [Stage; 7] = [Stage::Dhcp, Stage::Ipxe, Stage::Stub, Stage::Fetching, Stage::Handover, Stage::Running, Stage::Lost];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dhcp => "dhcp",
            Stage::Ipxe => "ipxe",
            Stage::Stub => "stub",
            Stage::Fetching => "fetching",
            Stage::Handover => "handover",
            Stage::Running => "running",
            Stage::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Stages a machine stays in only for a moment on its way up: one it stays in for longer
    /// than [`FleetConfig::stuck_after_ms`] is stuck.
    pub fn is_transient(self) -> bool {
        !matches!(self, Stage::Running | Stage::Lost)
    }
}

/// Which program sent a DHCP request (from its vendor and user classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClient {
    /// PXE firmware (class `PXEClient`, not iPXE).
    Firmware,
    /// iPXE (user class `iPXE` or its option 175).
    Ipxe,
    /// The stub's init (class `swarmboot-stub`).
    Stub,
    /// Anything else: the booted system's own DHCP client.
    Os,
}

/// Something the server saw a machine do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    /// A DHCP request. `leased`: the address our DHCP granted and until when (unix ms; none
    /// in proxy mode).
    Dhcp { mac: Mac, client: DhcpClient, leased: Option<(Ipv4Addr, u64)>, hostname: Option<&'a str> },
    /// Our DHCP ended the machine's binding of `ip` (released, or given up for another).
    Released { mac: Mac, ip: Ipv4Addr },
    /// A TFTP read from `ip` (firmware loading iPXE).
    Tftp { ip: Ipv4Addr },
    /// iPXE asked for the boot script from `ip`; `image`: what the script boots.
    Script { mac: Mac, ip: Ipv4Addr, arch: &'a str, image: Option<(&'a str, u32)> },
    /// Any other request from `ip` (a file, a manifest, an announce): a sign of life.
    Request { ip: Ipv4Addr },
}

/// Why a report or check-in was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{from} is leased to {holder}, not to {mac}: a machine reports only for itself")]
    AddressOfAnother { from: Ipv4Addr, mac: Mac, holder: Mac },
    #[error("{mac} holds the lease of {leased}; its reports come from there, not from {from}")]
    NotItsAddress { from: Ipv4Addr, mac: Mac, leased: Ipv4Addr },
    #[error("the fleet table is full ({0} machines, none lost): raise the limit or forget machines")]
    Full(usize),
}

#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub max_machines: usize,
    pub boots_kept: usize,
    pub events_kept: usize,
    /// A machine that reports is lost after this long without a word.
    pub lost_after_ms: u64,
    /// A machine that has not reached the stub (firmware, iPXE) is lost after this long.
    pub silent_lost_after_ms: u64,
    /// A machine longer than this in a stage it should pass through is stuck.
    pub stuck_after_ms: u64,
    /// The seeder's report interval the server asks for.
    pub report_interval_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            max_machines: 20_000,
            boots_kept: 5,
            events_kept: 5_000,
            lost_after_ms: 3 * 30_000 + 10_000,
            silent_lost_after_ms: 600_000,
            stuck_after_ms: 300_000,
            report_interval_secs: crate::report::DEFAULT_INTERVAL_SECS,
        }
    }
}

/// Image name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageAt {
    pub name: String,
    pub version: u32,
}

impl std::fmt::Display for ImageAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// Where the image's bytes came from, and how far the fetch is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub have: u64,
    pub total: u64,
    /// From other machines (the server's seed not counted).
    pub from_peers: u64,
    /// From the server: its seed and HTTP.
    pub from_server: u64,
    pub peers: u32,
}

impl Progress {
    pub fn percent(&self) -> u8 {
        (self.have.saturating_mul(100) / self.total.max(1)).min(100) as u8
    }
}

/// One boot: the stages it went through, with when each began (unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Boot {
    pub started_ms: u64,
    pub stages: Vec<(Stage, u64)>,
    pub image: Option<ImageAt>,
    pub progress: Progress,
}

impl Boot {
    /// The furthest stage this boot got to before it was lost (`None`: only lost).
    fn reached(&self) -> Option<Stage> {
        self.stages.iter().rev().map(|(s, _)| *s).find(|s| *s != Stage::Lost)
    }
}

/// Addresses kept per machine that our DHCP leased it (the DHCP server holds a machine to
/// 4 by default, one per client id: firmware, the stub and the booted system may each get one).
pub const MAX_LEASES: usize = 8;

/// What the server knows of a machine's address (the latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "from")]
pub enum Binding {
    /// Our DHCP leased it, until `until_ms`: reports for this MAC come from its leases only,
    /// and no other MAC reports from them.
    Lease { ip: Ipv4Addr, until_ms: u64 },
    /// Seen it come from there (a boot script request, a report): the latest wins.
    Seen { ip: Ipv4Addr },
}

impl Binding {
    pub fn ip(&self) -> Ipv4Addr {
        match *self {
            Binding::Lease { ip, .. } | Binding::Seen { ip } => ip,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub mac: Mac,
    pub hostname: Option<String>,
    pub address: Option<Binding>,
    /// Every address our DHCP leases it, with when each lease ends (unix ms), at most
    /// [`MAX_LEASES`] (the oldest ending goes first).
    pub leases: Vec<(Ipv4Addr, u64)>,
    /// iPXE's `${buildarch}` from the boot script request.
    pub arch: Option<String>,
    pub stage: Stage,
    pub since_ms: u64,
    pub last_seen_ms: u64,
    /// It got as far as the stub: it reports, so silence means lost.
    pub reports: bool,
    /// The elchOS agent checks in for it.
    pub agent: bool,
    /// Payload bytes it uploaded to others, as its seeder last said.
    pub uploaded: u64,
    /// Newest last.
    pub boots: VecDeque<Boot>,
}

impl Machine {
    fn new(mac: Mac, now_ms: u64) -> Self {
        Machine {
            mac,
            hostname: None,
            address: None,
            leases: Vec::new(),
            arch: None,
            stage: Stage::Lost,
            since_ms: now_ms,
            last_seen_ms: now_ms,
            reports: false,
            agent: false,
            uploaded: 0,
            boots: VecDeque::new(),
        }
    }

    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.address.map(|b| b.ip())
    }

    /// The addresses our DHCP leases it at `now_ms`.
    pub fn live_leases(&self, now_ms: u64) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.leases.iter().filter(move |(_, until)| now_ms < *until).map(|(ip, _)| *ip)
    }

    /// The current boot.
    pub fn boot(&self) -> Option<&Boot> {
        self.boots.back()
    }

    /// What it runs or is booting.
    pub fn image(&self) -> Option<&ImageAt> {
        self.boot().and_then(|b| b.image.as_ref())
    }

    pub fn is_stuck(&self, now_ms: u64, cfg: &FleetConfig) -> bool {
        self.stage.is_transient() && now_ms.saturating_sub(self.since_ms) > cfg.stuck_after_ms
    }
}

/// A stage change or a refused report, for `/api/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: u64,
    pub at_ms: u64,
    pub mac: Mac,
    pub stage: Stage,
    /// `true`: this stage began a new boot.
    pub new_boot: bool,
}

/// Which machines, in which order (`/api/v1/fleet?…`, `swarmboot status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub stage: Option<Stage>,
    /// Image name (any version).
    pub image: Option<String>,
    /// Words that must all appear in the MAC, hostname, address or image.
    pub text: Option<String>,
    pub stuck_only: bool,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Mac,
    Hostname,
    Ip,
    Image,
    Stage,
    Since,
    LastSeen,
    Uploaded,
}

impl SortKey {
    pub const NAMES: [&'static str; 8] = ["mac", "hostname", "ip", "image", "stage", "since", "last_seen", "uploaded"];

    pub fn parse(s: &str) -> Option<SortKey> {
        use SortKey::*;
        [Mac, Hostname, Ip, Image, Stage, Since, LastSeen, Uploaded].into_iter().zip(Self::NAMES).find(|(_, n)| *n == s).map(|(k, _)| k)
    }
}

/// Counters of what the fleet refused or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FleetCounters {
    pub reports: u64,
    pub reports_refused: u64,
    /// New machines not recorded because the table was full of machines not lost.
    pub full: u64,
}

#[derive(Debug)]
pub struct Fleet {
    cfg: FleetConfig,
    machines: HashMap<Mac, Machine>,
    /// Addresses our DHCP leased, to the MAC holding each.
    leased: HashMap<Ipv4Addr, Mac>,
    /// Machines at each address (seen or leased), for events that only know the address.
    at: HashMap<Ipv4Addr, Mac>,
    events: VecDeque<Event>,
    next_event: u64,
    counters: FleetCounters,
}

impl Fleet {
    pub fn new(cfg: FleetConfig) -> Self {
        Fleet { cfg, machines: HashMap::new(), leased: HashMap::new(), at: HashMap::new(), events: VecDeque::new(), next_event: 1, counters: FleetCounters::default() }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.cfg
    }

    pub fn counters(&self) -> FleetCounters {
        self.counters
    }

    pub fn get(&self, mac: &Mac) -> Option<&Machine> {
        self.machines.get(mac)
    }

    pub fn len(&self) -> usize {
        self.machines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    pub fn machines(&self) -> impl Iterator<Item = &Machine> {
        self.machines.values()
    }

    /// A lease the server had before it started: the binding, without a stage (the machine
    /// shows as lost until it is heard from).
    pub fn restore_lease(&mut self, now_ms: u64, mac: Mac, ip: Ipv4Addr, until_ms: u64, hostname: Option<&str>) {
        if until_ms <= now_ms {
            return;
        }
        let Some(m) = self.record(mac, now_ms) else { return };
        m.last_seen_ms = 0;
        if let Some(h) = hostname {
            m.hostname = Some(clean_hostname(h));
        }
        self.bind_lease(mac, ip, until_ms);
    }

    /// Something the server saw, at unix time `now_ms`.
    pub fn observe(&mut self, now_ms: u64, seen: Seen<'_>) {
        match seen {
            Seen::Dhcp { mac, client, leased, hostname } => {
                let Some(m) = self.record(mac, now_ms) else { return };
                m.last_seen_ms = now_ms;
                if let Some(h) = hostname {
                    m.hostname = Some(clean_hostname(h));
                }
                if let Some((ip, until_ms)) = leased {
                    self.bind_lease(mac, ip, until_ms);
                }
                let to = match client {
                    DhcpClient::Firmware => Some(Stage::Dhcp),
                    DhcpClient::Ipxe => Some(Stage::Ipxe),
                    DhcpClient::Stub => Some(Stage::Stub),
                    DhcpClient::Os => None,
                };
                if let Some(to) = to {
                    self.enter(mac, to, now_ms);
                }
            }
            Seen::Released { mac, ip } => self.unlease(mac, ip),
            Seen::Tftp { ip } => {
                if let Some(mac) = self.at.get(&ip).copied() {
                    self.touch(mac, now_ms);
                    self.enter(mac, Stage::Ipxe, now_ms);
                }
            }
            Seen::Script { mac, ip, arch, image } => {
                let Some(m) = self.record(mac, now_ms) else { return };
                m.last_seen_ms = now_ms;
                if !arch.is_empty() {
                    m.arch = Some(arch.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(16).collect());
                }
                if m.live_leases(now_ms).next().is_none() {
                    self.bind_seen(mac, ip);
                }
                self.enter(mac, Stage::Ipxe, now_ms);
                if let Some((name, version)) = image {
                    self.set_image(mac, name, version);
                }
            }
            Seen::Request { ip } => {
                if let Some(mac) = self.at.get(&ip).copied() {
                    self.touch(mac, now_ms);
                }
            }
        }
    }

    /// Whether a report or check-in for `mac` may come from `from`: not from an address our
    /// DHCP leases to another MAC, and from one of the MAC's own leases when it has any.
    pub fn check_source(&self, now_ms: u64, from: Ipv4Addr, mac: Mac) -> Result<(), Refused> {
        if let Some(holder) = self.leased.get(&from) {
            if *holder != mac && self.machines.get(holder).is_some_and(|m| m.live_leases(now_ms).any(|ip| ip == from)) {
                return Err(Refused::AddressOfAnother { from, mac, holder: *holder });
            }
        }
        if let Some(m) = self.machines.get(&mac) {
            let newest = m.leases.iter().filter(|(_, until)| now_ms < *until).max_by_key(|(_, until)| *until).map(|(ip, _)| *ip);
            if let Some(leased) = newest {
                if !m.live_leases(now_ms).any(|ip| ip == from) {
                    return Err(Refused::NotItsAddress { from, mac, leased });
                }
            }
        }
        Ok(())
    }

    /// A stage report from `from` at `now_ms`.
    pub fn report(&mut self, now_ms: u64, from: Ipv4Addr, r: &StageReport) -> Result<(), Refused> {
        self.counters.reports += 1;
        self.accept(now_ms, from, r.mac).inspect_err(|_| self.counters.reports_refused += 1)?;
        let known = self.machines.get(&r.mac).and_then(Machine::boot).and_then(Boot::reached).is_some();
        let to = match (r.stage, r.by) {
            (Reported::Fetching, _) => Some(Stage::Fetching),
            (Reported::Handover, _) => Some(Stage::Handover),
            (Reported::Running, _) => Some(Stage::Running),
            // A seeder the server knows no boot of (the server restarted): the stub's worker
            // seeds from the handover on, the system's seeder once the system is up.
            (Reported::Seeding, Reporter::Stub) if !known => Some(Stage::Handover),
            (Reported::Seeding, Reporter::System) if !known => Some(Stage::Running),
            (Reported::Seeding, _) => None,
        };
        match to {
            Some(to) => self.enter(r.mac, to, now_ms),
            None => self.touch(r.mac, now_ms),
        }
        self.set_image(r.mac, &r.image, r.version);
        let m = self.machines.get_mut(&r.mac).expect("accepted");
        m.reports = true;
        m.uploaded = r.uploaded;
        if matches!(r.stage, Reported::Fetching | Reported::Handover) {
            if let Some(b) = m.boots.back_mut() {
                b.progress =
                    Progress { have: r.have, total: r.total, from_peers: r.from_peers - r.from_seed, from_server: r.from_seed.saturating_add(r.from_http), peers: r.peers };
            }
        }
        Ok(())
    }

    /// An elchOS agent's check-in (already verified by the registry's rules) from `from`:
    /// the system is up, or (`leaving`) going down.
    pub fn check_in(&mut self, now_ms: u64, from: Ipv4Addr, mac: Mac, image: &str, uploaded: u64, leaving: bool) -> Result<(), Refused> {
        self.accept(now_ms, from, mac)?;
        self.enter(mac, if leaving { Stage::Lost } else { Stage::Running }, now_ms);
        if let Some((name, version)) = image.rsplit_once('@').and_then(|(n, v)| Some((n, v.parse().ok()?))) {
            if crate::report::is_image_name(name) {
                self.set_image(mac, name, version);
            }
        }
        let m = self.machines.get_mut(&mac).expect("accepted");
        m.reports = true;
        m.agent = true;
        m.uploaded = m.uploaded.max(uploaded);
        Ok(())
    }

    /// Machines not heard from for long enough become lost.
    pub fn tick(&mut self, now_ms: u64) {
        let cfg = &self.cfg;
        let lost: Vec<Mac> = self
            .machines
            .values()
            .filter(|m| m.stage != Stage::Lost)
            .filter(|m| {
                let quiet = now_ms.saturating_sub(m.last_seen_ms);
                if m.reports {
                    quiet > cfg.lost_after_ms
                } else {
                    quiet > cfg.silent_lost_after_ms && m.stage != Stage::Running
                }
            })
            .map(|m| m.mac)
            .collect();
        for mac in lost {
            self.enter(mac, Stage::Lost, now_ms);
        }
    }

    /// When [`Fleet::tick`] has something to do next, at the latest.
    pub fn next_tick(&self) -> u64 {
        self.cfg.lost_after_ms.min(self.cfg.silent_lost_after_ms) / 4
    }

    /// Events after `after` (an event id), oldest first, at most `limit`.
    pub fn events_after(&self, after: u64, limit: usize) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.id > after).take(limit)
    }

    pub fn last_event(&self) -> u64 {
        self.next_event - 1
    }

    /// Machines by stage, in [`Stage::ALL`] order.
    pub fn by_stage(&self) -> [(Stage, usize); 7] {
        let mut out = Stage::ALL.map(|s| (s, 0));
        for m in self.machines.values() {
            out[Stage::ALL.iter().position(|s| *s == m.stage).expect("every stage")].1 += 1;
        }
        out
    }

    /// The machines `sel` picks, in its order.
    pub fn select(&self, now_ms: u64, sel: &Selection) -> Vec<&Machine> {
        let words: Vec<String> = sel.text.as_deref().unwrap_or("").split_whitespace().map(str::to_lowercase).collect();
        let mut out: Vec<&Machine> = self
            .machines
            .values()
            .filter(|m| sel.stage.is_none_or(|s| m.stage == s))
            .filter(|m| sel.image.as_deref().is_none_or(|i| m.image().is_some_and(|im| im.name == i)))
            .filter(|m| !sel.stuck_only || m.is_stuck(now_ms, &self.cfg))
            .filter(|m| {
                if words.is_empty() {
                    return true;
                }
                let hay = format!(
                    "{} {} {} {}",
                    m.mac,
                    m.hostname.as_deref().unwrap_or(""),
                    m.ip().map(|i| i.to_string()).unwrap_or_default(),
                    m.image().map(|i| i.to_string()).unwrap_or_default()
                )
                .to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .collect();
        let key = |m: &Machine| -> (String, u64) {
            match sel.sort {
                SortKey::Mac => (String::new(), 0),
                SortKey::Hostname => (m.hostname.clone().unwrap_or_default(), 0),
                SortKey::Ip => (String::new(), m.ip().map_or(u64::MAX, |i| u32::from(i).into())),
                SortKey::Image => (m.image().map(|i| format!("{}@{:010}", i.name, i.version)).unwrap_or_default(), 0),
                SortKey::Stage => (String::new(), Stage::ALL.iter().position(|s| *s == m.stage).unwrap_or(0) as u64),
                SortKey::Since => (String::new(), m.since_ms),
                SortKey::LastSeen => (String::new(), m.last_seen_ms),
                SortKey::Uploaded => (String::new(), m.uploaded),
            }
        };
        out.sort_by(|a, b| key(a).cmp(&key(b)).then(a.mac.cmp(&b.mac)));
        if sel.descending {
            out.reverse();
        }
        out.truncate(sel.limit.unwrap_or(usize::MAX));
        out
    }

    // ---- inside ----

    /// The machine's record, made if new (taking the place of the machine lost longest when
    /// the table is full); `None` when the table is full of machines not lost.
    fn record(&mut self, mac: Mac, now_ms: u64) -> Option<&mut Machine> {
        if !self.machines.contains_key(&mac) {
            if self.machines.len() >= self.cfg.max_machines {
                let oldest_lost = self.machines.values().filter(|m| m.stage == Stage::Lost).min_by_key(|m| (m.last_seen_ms, m.mac)).map(|m| m.mac);
                match oldest_lost {
                    Some(gone) => self.forget(gone),
                    None => {
                        self.counters.full += 1;
                        return None;
                    }
                }
            }
            self.machines.insert(mac, Machine::new(mac, now_ms));
        }
        self.machines.get_mut(&mac)
    }

    fn forget(&mut self, mac: Mac) {
        if let Some(m) = self.machines.remove(&mac) {
            for ip in m.ip().into_iter().chain(m.leases.iter().map(|(ip, _)| *ip)) {
                if self.at.get(&ip) == Some(&mac) {
                    self.at.remove(&ip);
                }
                if self.leased.get(&ip) == Some(&mac) {
                    self.leased.remove(&ip);
                }
            }
        }
    }

    /// A report or check-in's source checked and the machine recorded.
    fn accept(&mut self, now_ms: u64, from: Ipv4Addr, mac: Mac) -> Result<(), Refused> {
        self.check_source(now_ms, from, mac)?;
        let max = self.cfg.max_machines;
        let m = self.record(mac, now_ms).ok_or(Refused::Full(max))?;
        m.last_seen_ms = now_ms;
        if m.live_leases(now_ms).next().is_none() {
            self.bind_seen(mac, from);
        }
        Ok(())
    }

    /// Our DHCP leased `ip` to `mac` until `until_ms`: it is the machine's latest address, one
    /// of its leases, and no longer another machine's.
    fn bind_lease(&mut self, mac: Mac, ip: Ipv4Addr, until_ms: u64) {
        if let Some(other) = self.leased.get(&ip).copied().filter(|o| *o != mac) {
            self.unlease(other, ip);
        }
        let Some(m) = self.machines.get_mut(&mac) else { return };
        match m.leases.iter_mut().find(|(held, _)| *held == ip) {
            Some(l) => l.1 = until_ms,
            None => m.leases.push((ip, until_ms)),
        }
        if m.leases.len() > MAX_LEASES {
            let (i, _) = m.leases.iter().enumerate().min_by_key(|(_, (_, until))| *until).expect("not empty");
            let (gone, _) = m.leases.remove(i);
            if self.leased.get(&gone) == Some(&mac) {
                self.leased.remove(&gone);
            }
        }
        m.address = Some(Binding::Lease { ip, until_ms });
        self.leased.insert(ip, mac);
        self.at.insert(ip, mac);
    }

    /// `mac` came from `ip`, which our DHCP did not lease it: its latest address.
    fn bind_seen(&mut self, mac: Mac, ip: Ipv4Addr) {
        let Some(m) = self.machines.get_mut(&mac) else { return };
        if let Some(old) = m.ip().filter(|old| *old != ip && !m.leases.iter().any(|(l, _)| l == old)) {
            if self.at.get(&old) == Some(&mac) {
                self.at.remove(&old);
            }
        }
        m.address = Some(Binding::Seen { ip });
        self.at.insert(ip, mac);
    }

    /// `mac` no longer holds the lease of `ip`.
    fn unlease(&mut self, mac: Mac, ip: Ipv4Addr) {
        if self.leased.get(&ip) == Some(&mac) {
            self.leased.remove(&ip);
        }
        let Some(m) = self.machines.get_mut(&mac) else { return };
        m.leases.retain(|(held, _)| *held != ip);
        if matches!(m.address, Some(Binding::Lease { ip: held, .. }) if held == ip) {
            m.address = match m.leases.iter().max_by_key(|(_, until)| *until) {
                Some(&(other, until_ms)) => Some(Binding::Lease { ip: other, until_ms }),
                None => Some(Binding::Seen { ip }),
            };
        }
    }

    fn touch(&mut self, mac: Mac, now_ms: u64) {
        if let Some(m) = self.machines.get_mut(&mac) {
            m.last_seen_ms = now_ms;
            if m.stage == Stage::Lost {
                // Heard from again: back where its boot was.
                if let Some(reached) = m.boot().and_then(Boot::reached) {
                    self.enter(mac, reached, now_ms);
                }
            }
        }
    }

    fn set_image(&mut self, mac: Mac, name: &str, version: u32) {
        if let Some(b) = self.machines.get_mut(&mac).and_then(|m| m.boots.back_mut()) {
            if b.image.as_ref().is_none_or(|i| i.name != name || i.version != version) {
                b.image = Some(ImageAt { name: name.to_string(), version });
            }
        }
    }

    /// Moves the machine to `to`: a new boot when firmware or iPXE speaks after the boot got
    /// past them, nothing when the event is stale (it would move the boot back otherwise).
    fn enter(&mut self, mac: Mac, to: Stage, now_ms: u64) {
        let boots_kept = self.cfg.boots_kept.max(1);
        let Some(m) = self.machines.get_mut(&mac) else { return };
        let reached = m.boot().and_then(Boot::reached);
        let new_boot = match reached {
            None => to != Stage::Lost,
            Some(r) => to != Stage::Lost && to < r && to <= Stage::Ipxe,
        };
        if !new_boot {
            if to == m.stage {
                return;
            }
            // Stale: an event from before where the boot got (a renewal, a late report).
            if to != Stage::Lost && reached.is_some_and(|r| to < r) {
                if m.stage == Stage::Lost {
                    // …but it says the machine is back.
                    let r = reached.expect("checked");
                    return self.enter(mac, r, now_ms);
                }
                return;
            }
        }
        if new_boot {
            if m.boots.len() >= boots_kept {
                m.boots.pop_front();
            }
            m.boots.push_back(Boot { started_ms: now_ms, stages: Vec::new(), image: None, progress: Progress::default() });
            if to < Stage::Stub {
                m.reports = false;
            }
            m.uploaded = 0;
        }
        m.stage = to;
        m.since_ms = now_ms;
        if let Some(b) = m.boots.back_mut() {
            if b.stages.len() < MAX_STAGES_PER_BOOT {
                b.stages.push((to, now_ms));
            }
        }
        let id = self.next_event;
        self.next_event += 1;
        if self.events.len() >= self.cfg.events_kept.max(1) {
            self.events.pop_front();
        }
        self.events.push_back(Event { id, at_ms: now_ms, mac, stage: to, new_boot });
    }
}

/// A hostname as the fleet keeps it: at most [`MAX_HOSTNAME`] characters, no control
/// characters (pages escape it anyway).
fn clean_hostname(h: &str) -> String {
    h.chars().filter(|c| !c.is_control()).take(MAX_HOSTNAME).collect()
}
