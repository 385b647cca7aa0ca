//! The lease table: who holds which address until when. In memory; the shell persists every
//! record the core hands back in [`crate::Outcome::lease`] and loads them all at start.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::settings::Settings;
use crate::values::{ClientId, HwAddr, UnixTime};

/// Where a lease record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered, not yet requested. Held in memory only, never persisted.
    Offered,
    /// Acknowledged: the client may use the address until `expires`.
    Bound,
    /// Given back by the client; still remembered so the client gets it again.
    Released,
    /// The client found the address in use; nobody gets it until `expires`.
    Declined,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "offered" => LeaseState::Offered,
            "bound" => LeaseState::Bound,
            "released" => LeaseState::Released,
            "declined" => LeaseState::Declined,
            _ => return None,
        })
    }
}

/// One address and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub client_id: ClientId,
    pub hwaddr: HwAddr,
    pub hostname: Option<String>,
    pub state: LeaseState,
    /// Bound: end of the lease. Offered: end of the hold. Declined: end of the quarantine.
    /// Released: when it was released.
    pub expires: UnixTime,
}

impl Lease {
    /// Whether the record still keeps the address from everyone but its client (or, when
    /// declined, from everyone).
    pub fn is_active(&self, now: UnixTime) -> bool {
        match self.state {
            LeaseState::Released => false,
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined => now < self.expires,
        }
    }
}

/// All lease records, indexed by address and by client, and the allocation cursors.
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_ip: HashMap<Ipv4Addr, Lease>,
    by_client: HashMap<ClientId, Ipv4Addr>,
    /// The addresses each machine (chaddr) has records for.
    by_machine: HashMap<HwAddr, Vec<Ipv4Addr>>,
    reserved: HashSet<Ipv4Addr>,
    /// Per subnet, per pool: the next address never handed out in this run.
    cursors: Vec<Vec<u64>>,
}

impl LeaseTable {
    /// A table for `settings`, filled with the records the shell loaded.
    pub fn new(settings: &Settings, records: impl IntoIterator<Item = Lease>) -> Self {
        let mut t = LeaseTable {
            reserved: settings.reservations.iter().map(|r| r.ip).collect(),
            cursors: settings.subnets.iter().map(|s| s.pools.iter().map(|p| u64::from(u32::from(p.first))).collect()).collect(),
            ..Default::default()
        };
        for l in records {
            if l.state != LeaseState::Offered {
                t.put(l);
            }
        }
        t
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }
    /// The most recent record of this client.
    pub fn of_client(&self, client: &ClientId) -> Option<&Lease> {
        self.by_client.get(client).and_then(|ip| self.by_ip.get(ip)).filter(|l| &l.client_id == client)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        self.reserved.contains(&ip)
    }

    /// Whether `client` may be given `ip` now, as far as existing records go.
    pub fn free_for(&self, ip: Ipv4Addr, client: &ClientId, now: UnixTime) -> bool {
        match self.by_ip.get(&ip) {
            None => true,
            Some(l) if l.state == LeaseState::Declined => !l.is_active(now),
            Some(l) => &l.client_id == client || !l.is_active(now),
        }
    }

    /// Records that keep an address for `machine` now (offered or bound), oldest ending first.
    pub fn held_by_machine(&self, machine: &HwAddr, now: UnixTime) -> Vec<&Lease> {
        let mut held: Vec<&Lease> = self
            .by_machine
            .get(machine)
            .into_iter()
            .flatten()
            .filter_map(|ip| self.by_ip.get(ip))
            .filter(|l| &l.hwaddr == machine && matches!(l.state, LeaseState::Offered | LeaseState::Bound) && l.is_active(now))
            .collect();
        held.sort_by_key(|l| (l.expires, l.ip));
        held
    }

    fn unindex_machine(&mut self, hwaddr: &HwAddr, ip: Ipv4Addr) {
        if let Some(ips) = self.by_machine.get_mut(hwaddr) {
            ips.retain(|&i| i != ip);
            if ips.is_empty() {
                self.by_machine.remove(hwaddr);
            }
        }
    }

    /// Inserts or replaces the record for `lease.ip`.
    pub fn put(&mut self, lease: Lease) {
        if let Some(old) = self.by_ip.get(&lease.ip) {
            if old.client_id != lease.client_id && self.by_client.get(&old.client_id) == Some(&lease.ip) {
                self.by_client.remove(&old.client_id);
            }
            if old.hwaddr != lease.hwaddr {
                let old_hw = old.hwaddr.clone();
                self.unindex_machine(&old_hw, lease.ip);
            }
        }
        let ips = self.by_machine.entry(lease.hwaddr.clone()).or_default();
        if !ips.contains(&lease.ip) {
            ips.push(lease.ip);
        }
        if lease.state != LeaseState::Declined {
            self.by_client.insert(lease.client_id.clone(), lease.ip);
        } else if self.by_client.get(&lease.client_id) == Some(&lease.ip) {
            self.by_client.remove(&lease.client_id);
        }
        self.by_ip.insert(lease.ip, lease);
    }

    /// Drops an in-memory offer (the client chose another server).
    pub fn withdraw_offer(&mut self, ip: Ipv4Addr, client: &ClientId) {
        if self.by_ip.get(&ip).is_some_and(|l| l.state == LeaseState::Offered && &l.client_id == client) {
            if let Some(l) = self.by_ip.remove(&ip) {
                self.unindex_machine(&l.hwaddr, ip);
            }
            if self.by_client.get(client) == Some(&ip) {
                self.by_client.remove(client);
            }
        }
    }

    /// An address of subnet `subnet` that no record mentions, lowest first.
    pub fn take_unused(&mut self, settings: &Settings, subnet: usize) -> Option<Ipv4Addr> {
        let pools = &settings.subnets.get(subnet)?.pools;
        let cursors = self.cursors.get_mut(subnet)?;
        for (pool, cursor) in pools.iter().zip(cursors.iter_mut()) {
            let last = u64::from(u32::from(pool.last));
            while *cursor <= last {
                let ip = Ipv4Addr::from(*cursor as u32);
                *cursor += 1;
                if !self.by_ip.contains_key(&ip) && !self.reserved.contains(&ip) {
                    return Some(ip);
                }
            }
        }
        None
    }

    /// The pool address of `subnet` whose record ran out longest ago, for reuse once every
    /// address has been handed out at least once; failing that, the oldest standing offer
    /// (an offer is no promise: unconfirmed ones cannot keep a client out of a full pool).
    pub fn oldest_reusable(&self, settings: &Settings, subnet: usize, now: UnixTime) -> Option<Ipv4Addr> {
        let s = settings.subnets.get(subnet)?;
        let reusable = |l: &&Lease| s.in_pool(l.ip) && !self.reserved.contains(&l.ip);
        self.by_ip
            .values()
            .filter(|l| !l.is_active(now))
            .filter(reusable)
            .min_by_key(|l| (l.expires, l.ip))
            .or_else(|| self.by_ip.values().filter(|l| l.state == LeaseState::Offered).filter(reusable).min_by_key(|l| (l.expires, l.ip)))
            .map(|l| l.ip)
    }
}
