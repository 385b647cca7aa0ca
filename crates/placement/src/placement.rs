//! The server's side: each donor's holdings as it last reported them, each dataset's replica
//! count, and the answer to a donor's check-in (datasets to add and to remove).
//!
//! The answer, in order:
//! 1. a donor over its capacity (it gave less space) drops datasets others hold enough of
//!    first;
//! 2. a dataset a newer one succeeds is swapped for the newest of its chain wherever the
//!    donor has room for what the newer one adds (files both list stay: the donor fetches only
//!    the difference), making room by dropping datasets others hold enough of;
//! 3. datasets are added by a knapsack whose values are chances: every dataset below its
//!    replica count is a candidate, every other one is drawn with a chance that halves with
//!    each replica over the count but never falls below `p_min` (so donors that only *claim*
//!    to hold a dataset cannot keep it off honest donors); candidates go rarest first into the
//!    donor's room — the whole capacity for a dataset below its count, `fill` of it for an
//!    extra replica, so the fleet keeps room for the datasets that will need it. A dataset
//!    below its count that fits on no other donor may take the place of datasets others hold
//!    enough of.
//!
//! Only holdings the donor shows the server's ticket for count as replicas (see
//! [`Holding::vouched`]).
//!
//! Holdings are kept unless one of these needs their room: few bytes move once the fleet has
//! settled, and a crowd claiming a dataset does not make honest donors drop it.
//!
//! The table is the donors' own reports plus what they were told: a server that starts empty
//! (or a replica with the same catalog) listens for `warmup_ms` before it decides anything, so
//! after one round of check-ins its table is what it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};

use crate::catalog::Catalog;
use crate::disk::Disk;

/// Most datasets one check-in may list.
pub const MAX_HOLDINGS: usize = 10_000;
/// Most donors the table keeps.
pub const MAX_DONORS: usize = 100_000;
/// Longest donor id.
pub const MAX_DONOR_ID: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The least chance a dataset at or over its replica count is drawn for a donor with room.
    pub p_min: f64,
    /// How much of a donor's capacity extra replicas (over the count) may fill.
    pub fill: f64,
    /// How long a fresh table only listens.
    pub warmup_ms: u64,
    /// A donor silent this long leaves the counts.
    pub lost_after_ms: u64,
    /// Most datasets added for one donor per check-in.
    pub max_adds: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { p_min: 0.02, fill: 0.9, warmup_ms: 0, lost_after_ms: u64::MAX, max_adds: 16 }
    }
}

/// A dataset a donor holds, and how much of it it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub dataset: String,
    /// Per mille complete.
    pub permille: u16,
    /// Whether the donor showed the ticket the server signed when it told this donor to add
    /// this dataset (the shell checks the signature). Only vouched holdings count as
    /// replicas: a crowd that claims a dataset it was never given counts for nothing.
    pub vouched: bool,
}

/// What a donor says at check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub donor: String,
    /// Bytes it gives.
    pub capacity: u64,
    pub holdings: Vec<Holding>,
}

/// What the server tells a donor to do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Fetch the dataset's files it lacks, and seed them.
    Add(String),
    /// Drop the dataset; its files no held dataset lists go.
    Remove(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a check-in listing {0} datasets: at most {MAX_HOLDINGS}")]
    TooManyHoldings(usize),
    #[error("the donor table is full ({MAX_DONORS} donors): a new donor waits until one is lost")]
    Full,
    #[error("a donor id is 1 to {MAX_DONOR_ID} bytes")]
    BadDonor,
}

#[derive(Debug, Clone)]
struct Donor {
    capacity: u64,
    held: Vec<u32>,
    /// Of `held`, those without a ticket: on its disk, not counted.
    unvouched: Vec<u32>,
    free: u64,
    seen_ms: u64,
}

/// The donor table and the decisions on it.
#[derive(Clone)]
pub struct Placement {
    policy: Policy,
    catalog: Catalog,
    /// Per dataset: the donors that hold it or were told to add it.
    holders: Vec<u32>,
    /// Datasets below their replica count (the newest of their chain only).
    wanting: BTreeSet<u32>,
    donors: HashMap<String, Donor>,
    /// Donors' free bytes (a multiset): whether some other donor has room.
    frees: BTreeMap<u64, u32>,
    rng: Rng64,
    warm_until_ms: u64,
}

impl Placement {
    /// An empty table over `catalog`, deciding with randomness from `seed` from
    /// `now_ms + policy.warmup_ms` on.
    pub fn new(policy: Policy, catalog: Catalog, seed: u64, now_ms: u64) -> Self {
        let warm_until_ms = now_ms.saturating_add(policy.warmup_ms);
        let mut p = Placement {
            policy,
            holders: vec![0; catalog.len()],
            catalog,
            wanting: BTreeSet::new(),
            donors: HashMap::new(),
            frees: BTreeMap::new(),
            rng: Rng64::seed_from_u64(seed),
            warm_until_ms,
        };
        p.wanting = (0..p.catalog.len() as u32).filter(|&d| p.wants(d)).collect();
        p
    }

    /// The catalog changed: holdings are mapped by name (datasets gone leave the counts; each
    /// donor is told to drop them at its next check-in).
    pub fn set_catalog(&mut self, catalog: Catalog) {
        let old = std::mem::replace(&mut self.catalog, catalog);
        self.holders = vec![0; self.catalog.len()];
        for donor in self.donors.values_mut() {
            let map = |list: &[u32]| {
                let mut new: Vec<u32> = list.iter().filter_map(|&d| self.catalog.index(&old.sets[d as usize].name)).collect();
                new.sort_unstable();
                new
            };
            (donor.held, donor.unvouched) = (map(&donor.held), map(&donor.unvouched));
            for &d in &donor.held {
                if donor.unvouched.binary_search(&d).is_err() {
                    self.holders[d as usize] += 1;
                }
            }
        }
        self.wanting = (0..self.catalog.len() as u32).filter(|&d| self.wants(d)).collect();
    }

    /// New randomness from `seed` (the simulator's many futures of one fleet).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng64::seed_from_u64(seed);
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Takes a donor's check-in; its answer.
    pub fn check_in(&mut self, report: &Report, now_ms: u64) -> Result<Vec<Action>, Refusal> {
        if report.holdings.len() > MAX_HOLDINGS {
            return Err(Refusal::TooManyHoldings(report.holdings.len()));
        }
        if report.donor.is_empty() || report.donor.len() > MAX_DONOR_ID {
            return Err(Refusal::BadDonor);
        }
        match self.donors.remove(&report.donor) {
            Some(old) => self.forget(old),
            None if self.donors.len() >= MAX_DONORS => return Err(Refusal::Full),
            None => {}
        }
        let mut actions = Vec::new();
        let mut held = Vec::with_capacity(report.holdings.len());
        let mut unvouched = Vec::new();
        for h in &report.holdings {
            match self.catalog.index(&h.dataset) {
                Some(d) if h.vouched => held.push(d),
                Some(d) => {
                    held.push(d);
                    unvouched.push(d);
                }
                None => actions.push(Action::Remove(h.dataset.clone())),
            }
        }
        actions.sort();
        actions.dedup();
        held.sort_unstable();
        held.dedup();
        unvouched.sort_unstable();
        unvouched.dedup();
        // Shown once with its ticket and once without: it has the ticket.
        unvouched.retain(|d| !report.holdings.iter().any(|h| h.vouched && self.catalog.index(&h.dataset) == Some(*d)));
        let mut disk = Disk::of(&self.catalog, &held);
        if now_ms >= self.warm_until_ms {
            self.decide(report.capacity, &mut held, &mut disk, &mut actions);
        }
        unvouched.retain(|d| held.binary_search(d).is_ok());
        for &d in &held {
            if unvouched.binary_search(&d).is_err() {
                self.count(d, true);
            }
        }
        let free = report.capacity.saturating_sub(disk.used);
        *self.frees.entry(free).or_insert(0) += 1;
        self.donors.insert(report.donor.clone(), Donor { capacity: report.capacity, held, unvouched, free, seen_ms: now_ms });
        Ok(actions)
    }

    /// Drops donors silent for `lost_after_ms`: what they held leaves the counts (and is
    /// placed again). The donors that went.
    pub fn forget_lost(&mut self, now_ms: u64) -> Vec<String> {
        let lost: Vec<String> = self.donors.iter().filter(|(_, d)| now_ms.saturating_sub(d.seen_ms) >= self.policy.lost_after_ms).map(|(id, _)| id.clone()).collect();
        for id in &lost {
            if let Some(d) = self.donors.remove(id) {
                self.forget(d);
            }
        }
        lost
    }

    /// Donors that hold `dataset` or were told to add it.
    pub fn replicas(&self, dataset: &str) -> Option<u32> {
        self.catalog.index(dataset).map(|d| self.holders[d as usize])
    }

    /// The table: each donor's datasets, by name.
    pub fn table(&self) -> BTreeMap<String, Vec<String>> {
        self.donors
            .iter()
            .map(|(id, d)| {
                let mut names: Vec<String> = d.held.iter().map(|&h| self.catalog.sets[h as usize].name.clone()).collect();
                names.sort();
                (id.clone(), names)
            })
            .collect()
    }

    pub fn donors(&self) -> usize {
        self.donors.len()
    }

    /// A donor's capacity as it last said.
    pub fn capacity(&self, donor: &str) -> Option<u64> {
        self.donors.get(donor).map(|d| d.capacity)
    }

    fn wants(&self, d: u32) -> bool {
        !self.catalog.superseded(d) && self.holders[d as usize] < self.catalog.sets[d as usize].replicas
    }

    fn count(&mut self, d: u32, up: bool) {
        let h = &mut self.holders[d as usize];
        *h = if up { *h + 1 } else { h.saturating_sub(1) };
        if self.wants(d) {
            self.wanting.insert(d);
        } else {
            self.wanting.remove(&d);
        }
    }

    fn forget(&mut self, old: Donor) {
        for &d in &old.held {
            if old.unvouched.binary_search(&d).is_err() {
                self.count(d, false);
            }
        }
        if let Some(n) = self.frees.get_mut(&old.free) {
            *n -= 1;
            if *n == 0 {
                self.frees.remove(&old.free);
            }
        }
    }

    /// Whether others hold enough of `d` without this donor (whose holdings are out of the
    /// counts while it is decided on).
    fn others_suffice(&self, d: u32) -> bool {
        self.holders[d as usize] >= self.catalog.sets[d as usize].replicas
    }

    fn decide(&mut self, capacity: u64, held: &mut Vec<u32>, disk: &mut Disk, actions: &mut Vec<Action>) {
        let name = |c: &Catalog, d: u32| c.sets[d as usize].name.clone();
        // 1. Less space than it holds: drop what others hold enough of first.
        while disk.used > capacity && !held.is_empty() {
            let spare: Vec<u32> = held.iter().copied().filter(|&d| self.others_suffice(d)).collect();
            let from = if spare.is_empty() { held.clone() } else { spare };
            let victim = from[self.rng.random_range(0..from.len())];
            take(&self.catalog, held, disk, victim);
            actions.push(Action::Remove(name(&self.catalog, victim)));
        }
        // 2. Successors: the newest of each held dataset's chain in its place.
        for h in held.clone() {
            let newest = self.catalog.sets[h as usize].newest;
            if newest == h {
                continue;
            }
            if held.contains(&newest) {
                take(&self.catalog, held, disk, h);
                actions.push(Action::Remove(name(&self.catalog, h)));
                continue;
            }
            take(&self.catalog, held, disk, h);
            put(&self.catalog, held, disk, newest);
            let evicted = self.make_room(capacity, held, disk, &[newest]);
            if disk.used > capacity {
                for e in evicted {
                    put(&self.catalog, held, disk, e);
                }
                take(&self.catalog, held, disk, newest);
                put(&self.catalog, held, disk, h);
                continue;
            }
            actions.extend(evicted.into_iter().map(|e| Action::Remove(name(&self.catalog, e))));
            actions.push(Action::Add(name(&self.catalog, newest)));
            actions.push(Action::Remove(name(&self.catalog, h)));
        }
        // 3. Additions: every dataset below its count, others drawn by their chance; rarest
        // first (by replicas over the count, then at random).
        let extras_limit = (capacity as f64 * self.policy.fill.clamp(0.0, 1.0)) as u64;
        let mut candidates: Vec<(i64, u32, u32)> = Vec::new();
        for &d in &self.wanting {
            if held.binary_search(&d).is_err() {
                candidates.push((self.holders[d as usize] as i64 - self.catalog.sets[d as usize].replicas as i64, self.rng.random(), d));
            }
        }
        if disk.used + self.catalog.smallest <= extras_limit {
            for d in 0..self.catalog.len() as u32 {
                if self.catalog.superseded(d) || self.wanting.contains(&d) || held.binary_search(&d).is_ok() {
                    continue;
                }
                let over = self.holders[d as usize] - self.catalog.sets[d as usize].replicas;
                if self.rng.random_bool(chance(over, self.policy.p_min)) {
                    candidates.push((over as i64, self.rng.random(), d));
                }
            }
        }
        candidates.sort_unstable();
        let most_free_elsewhere = self.frees.last_key_value().map_or(0, |(f, _)| *f);
        let mut added = Vec::new();
        for (over, _, c) in candidates {
            if added.len() >= self.policy.max_adds {
                break;
            }
            let wanted = over < 0;
            let cost = disk.cost(&self.catalog, c);
            let limit = if wanted { capacity } else { extras_limit };
            if disk.used + cost <= limit {
                put(&self.catalog, held, disk, c);
                added.push(c);
                continue;
            }
            if !wanted || most_free_elsewhere >= cost {
                continue;
            }
            // Below its count and no other donor has room: in place of datasets others hold
            // enough of.
            put(&self.catalog, held, disk, c);
            let mut protect = added.clone();
            protect.push(c);
            let evicted = self.make_room(capacity, held, disk, &protect);
            if disk.used > capacity {
                for e in evicted {
                    put(&self.catalog, held, disk, e);
                }
                take(&self.catalog, held, disk, c);
                continue;
            }
            actions.extend(evicted.into_iter().map(|e| Action::Remove(name(&self.catalog, e))));
            added.push(c);
        }
        actions.extend(added.into_iter().map(|d| Action::Add(name(&self.catalog, d))));
    }

    /// Drops datasets others hold enough of (not `protect`), chosen at random — not the most
    /// replicated first, which is the one a crowd of false claims would empty — until the
    /// donor is within `capacity` or nothing more may go. What went.
    fn make_room(&mut self, capacity: u64, held: &mut Vec<u32>, disk: &mut Disk, protect: &[u32]) -> Vec<u32> {
        let mut evicted = Vec::new();
        while disk.used > capacity {
            let spare: Vec<u32> = held.iter().copied().filter(|d| !protect.contains(d) && self.others_suffice(*d)).collect();
            if spare.is_empty() {
                break;
            }
            let victim = spare[self.rng.random_range(0..spare.len())];
            take(&self.catalog, held, disk, victim);
            evicted.push(victim);
        }
        evicted
    }
}

/// The chance a dataset `over` replicas over its count is drawn: ½, ¼, … never below `p_min`.
pub fn chance(over: u32, p_min: f64) -> f64 {
    0.5f64.powi(over.min(1000) as i32 + 1).max(p_min).min(1.0)
}

fn put(catalog: &Catalog, held: &mut Vec<u32>, disk: &mut Disk, d: u32) {
    if let Err(at) = held.binary_search(&d) {
        held.insert(at, d);
        disk.add(catalog, d);
    }
}

fn take(catalog: &Catalog, held: &mut Vec<u32>, disk: &mut Disk, d: u32) {
    if let Ok(at) = held.binary_search(&d) {
        held.remove(at);
        disk.remove(catalog, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Dataset;

    const GB: u64 = 1_000_000_000;

    fn catalog(sets: &[(&str, u64, u32)]) -> Catalog {
        let sets: Vec<Dataset> =
            sets.iter().map(|(n, gb, r)| Dataset { name: n.to_string(), files: vec![(format!("{n}-file"), gb * GB)], replicas: *r, successor_of: None }).collect();
        Catalog::new(&sets).unwrap()
    }

    fn report(donor: &str, capacity_gb: u64, held: &[&str]) -> Report {
        Report { donor: donor.into(), capacity: capacity_gb * GB, holdings: held.iter().map(|h| Holding { dataset: h.to_string(), permille: 1000, vouched: true }).collect() }
    }

    fn adds(actions: &[Action]) -> Vec<&str> {
        let mut a: Vec<&str> = actions.iter().filter_map(|a| if let Action::Add(n) = a { Some(n.as_str()) } else { None }).collect();
        a.sort();
        a
    }

    #[test]
    fn the_chance_halves_per_replica_over_the_count_and_never_reaches_zero() {
        assert_eq!((chance(0, 0.02), chance(1, 0.02), chance(2, 0.02)), (0.5, 0.25, 0.125));
        assert_eq!(chance(6, 0.02), 0.02);
        assert_eq!(chance(u32::MAX, 0.02), 0.02);
        assert!(chance(u32::MAX, 0.0) >= 0.0);
    }

    #[test]
    fn a_donor_gets_the_rarest_that_fit_and_keeps_what_it_holds() {
        let mut p = Placement::new(Policy { p_min: 0.0, ..Policy::default() }, catalog(&[("a", 10, 2), ("b", 10, 2), ("big", 500, 1)]), 1, 0);
        let first = p.check_in(&report("d1", 25, &[]), 1).unwrap();
        assert_eq!(adds(&first), ["a", "b"], "both below their count, both fit; the 500 GB one does not");
        assert_eq!((p.replicas("a"), p.replicas("b"), p.replicas("big")), (Some(1), Some(1), Some(0)));
        // Its next check-in (holding both) changes nothing.
        assert_eq!(p.check_in(&report("d1", 25, &["a", "b"]), 2).unwrap(), []);
        assert_eq!(p.table()["d1"], ["a", "b"]);
    }

    #[test]
    fn datasets_the_catalog_lost_are_dropped_and_a_fresh_table_only_listens() {
        let mut p = Placement::new(Policy { warmup_ms: 100, ..Policy::default() }, catalog(&[("a", 10, 2)]), 1, 0);
        let a = p.check_in(&report("d1", 100, &["gone"]), 50).unwrap();
        assert_eq!(a, [Action::Remove("gone".into())], "while listening: only what is not in the catalog goes");
        let a = p.check_in(&report("d1", 100, &[]), 100).unwrap();
        assert_eq!(adds(&a), ["a"]);
    }

    #[test]
    fn a_donor_that_gives_less_space_drops_what_others_hold_enough_of_first() {
        let mut p = Placement::new(Policy { p_min: 0.0, ..Policy::default() }, catalog(&[("a", 10, 1), ("b", 10, 1)]), 1, 0);
        p.check_in(&report("other", 10, &["a"]), 1).unwrap();
        let a = p.check_in(&report("d1", 15, &["a", "b"]), 2).unwrap();
        assert_eq!(a, [Action::Remove("a".into())], "a is held elsewhere, b only here");
    }

    #[test]
    fn a_dataset_below_its_count_that_fits_nowhere_else_takes_the_place_of_a_spare_one() {
        let mut p = Placement::new(Policy { p_min: 0.0, ..Policy::default() }, catalog(&[("spare", 10, 1), ("rare", 10, 1)]), 1, 0);
        p.check_in(&report("other", 10, &["spare"]), 1).unwrap();
        let a = p.check_in(&report("d1", 10, &["spare"]), 2).unwrap();
        assert_eq!(a, [Action::Remove("spare".into()), Action::Add("rare".into())]);
        // With room elsewhere, nothing is evicted: the roomy donor takes it when it checks in.
        let mut p = Placement::new(Policy { p_min: 0.0, ..Policy::default() }, catalog(&[("spare", 10, 1), ("rare", 10, 1)]), 1, 0);
        p.check_in(&report("other", 10, &["spare"]), 1).unwrap();
        p.check_in(&report("roomy", 50, &["spare"]), 1).unwrap();
        assert_eq!(p.check_in(&report("d1", 10, &["spare"]), 2).unwrap(), []);
    }

    #[test]
    fn claims_without_a_ticket_are_kept_but_not_counted() {
        let mut p = Placement::new(Policy { p_min: 0.0, ..Policy::default() }, catalog(&[("x", 10, 1)]), 1, 0);
        let mut claim = report("sybil", 1000, &["x"]);
        claim.holdings[0].vouched = false;
        assert_eq!(p.check_in(&claim, 1).unwrap(), []);
        assert_eq!(p.replicas("x"), Some(0), "an unvouched claim counts for nothing");
        assert_eq!(p.table()["sybil"], ["x"], "it is on its disk as far as the table goes");
        assert_eq!(adds(&p.check_in(&report("honest", 100, &[]), 2).unwrap()), ["x"]);
    }

    #[test]
    fn hostile_check_ins_are_refused_by_bound() {
        let mut p = Placement::new(Policy::default(), Catalog::default(), 1, 0);
        let many = Report { holdings: vec![Holding { dataset: "x".into(), permille: 0, vouched: true }; MAX_HOLDINGS + 1], ..report("d", 1, &[]) };
        assert_eq!(p.check_in(&many, 1), Err(Refusal::TooManyHoldings(MAX_HOLDINGS + 1)));
        assert_eq!(p.check_in(&report("", 1, &[]), 1), Err(Refusal::BadDonor));
        assert_eq!(p.check_in(&report(&"d".repeat(MAX_DONOR_ID + 1), 1, &[]), 1), Err(Refusal::BadDonor));
        for i in 0..MAX_DONORS {
            p.check_in(&report(&format!("d{i}"), 1, &[]), 1).unwrap();
        }
        assert_eq!(p.check_in(&report("one-more", 1, &[]), 1), Err(Refusal::Full));
        assert!(p.check_in(&report("d7", 1, &[]), 2).is_ok(), "a known donor still checks in");
        assert!(p.forget_lost(u64::MAX).is_empty(), "lost_after_ms is forever by default");
    }
}
