//! A fleet of donors in one process, in rounds (one check-in each), for the tests and the
//! report: datasets of mixed sizes and replica counts, donors of mixed capacities that do what
//! they are told at once (fetch what a dataset adds, drop what no held dataset lists), donors
//! that die and new ones that join, Sybils that claim a dataset they do not hold, successors,
//! and a server that loses its table. Everything is drawn from one seed.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};

use crate::catalog::{Catalog, Dataset};
use crate::placement::{Action, Holding, Placement, Policy, Report};

const GB: u64 = 1_000_000_000;
const CAPACITY_LO: u64 = 60 * GB;
const CAPACITY_HI: u64 = 600 * GB;
/// Time between a donor's check-ins.
pub const ROUND_MS: u64 = 60_000;

/// The shape of a fleet.
#[derive(Debug, Clone)]
pub struct Spec {
    pub donors: usize,
    /// Donors' capacities are drawn log-uniform between these (bytes).
    pub capacity: (u64, u64),
    pub datasets: usize,
    pub seed: u64,
    pub policy: Policy,
}

impl Default for Spec {
    /// 200 donors of 60 to 600 GB, 500 datasets of 1 to 100 GB (log-uniform) in 1 to 20
    /// files, a fifth wanting 2 replicas, three fifths 3, a fifth 5.
    fn default() -> Self {
        Spec { donors: 200, capacity: (CAPACITY_LO, CAPACITY_HI), datasets: 500, seed: 1, policy: Policy { lost_after_ms: 3 * ROUND_MS, ..Policy::default() } }
    }
}

#[derive(Debug, Clone)]
struct Donor {
    id: String,
    capacity: u64,
    /// Datasets it holds (honest) or claims (Sybil).
    held: Vec<String>,
    /// Files on its disk: file number → size.
    files: BTreeMap<u32, u64>,
    /// Their bytes.
    used: u64,
    /// Datasets it holds a ticket for (it was told to add them).
    tickets: Vec<String>,
    sybil: bool,
    alive: bool,
}

/// How a successor took its predecessor's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Succession {
    pub predecessor: String,
    pub successor: String,
    /// Bytes the successor adds to its predecessor.
    pub added: u64,
    /// The predecessor's holders when the successor came.
    pub holders: usize,
    /// Of those, the ones that hold the successor after the rounds.
    pub moved: usize,
    /// Bytes those fetched for it.
    pub fetched: u64,
}

impl Succession {
    /// Bytes fetched per byte the successor adds, per holder that moved.
    pub fn fetched_ratio(&self) -> f64 {
        self.fetched as f64 / (self.added * self.moved as u64).max(1) as f64
    }
}

/// How a dataset fared under Sybils' claims over many futures of one fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SybilOutcome {
    pub futures: u64,
    /// Futures in which honest donors still held it as often as its count says.
    pub kept: u64,
    /// The fewest honest holders in any future.
    pub lowest: usize,
}

/// `futures` futures of `base` (seeds 0..futures, spread over the machine's cores): 50 Sybils
/// claim `dataset` (`with_tickets`: each with a valid ticket from the start) while 1 % of
/// honest donors die each round and as many join, for 20 rounds.
pub fn sybil_futures(base: &World, dataset: &str, with_tickets: bool, futures: u64) -> SybilOutcome {
    let wanted = base.replicas_wanted(dataset) as usize;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let results: Vec<usize> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..futures)
                        .step_by(threads as usize)
                        .map(|seed| {
                            let mut w = base.clone();
                            w.reseed(seed);
                            w.add_sybils(50, dataset, with_tickets);
                            for _ in 0..20 {
                                w.die_and_replace(0.01);
                                w.round();
                            }
                            w.honest_holders(dataset)
                        })
                        .collect::<Vec<usize>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a simulated future does not panic")).collect()
    });
    SybilOutcome { futures, kept: results.iter().filter(|&&h| h >= wanted).count() as u64, lowest: results.iter().copied().min().unwrap_or(0) }
}

/// What one round moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Bytes honest donors held when the round began.
    pub held: u64,
    /// Bytes they fetched.
    pub fetched: u64,
    /// Bytes they deleted.
    pub deleted: u64,
}

impl RoundStats {
    /// Bytes moved (fetched and deleted) per byte held.
    pub fn churn(&self) -> f64 {
        if self.held == 0 {
            return 0.0;
        }
        (self.fetched + self.deleted) as f64 / self.held as f64
    }
}

#[derive(Clone)]
pub struct World {
    pub placement: Placement,
    datasets: Vec<Dataset>,
    by_name: HashMap<String, usize>,
    donors: Vec<Donor>,
    rng: Rng64,
    policy: Policy,
    capacity: (u64, u64),
    now_ms: u64,
    next_donor: usize,
    next_file: usize,
    /// Bytes fetched per (donor, dataset) since the world began.
    fetched: HashMap<(String, String), u64>,
}

impl World {
    pub fn new(spec: &Spec) -> Self {
        let mut rng = Rng64::seed_from_u64(spec.seed);
        let mut next_file = 0;
        let mut datasets = Vec::with_capacity(spec.datasets);
        for i in 0..spec.datasets {
            let bytes = log_uniform(&mut rng, GB, 100 * GB);
            let n = rng.random_range(1..=20u64);
            let files = (0..n)
                .map(|_| {
                    next_file += 1;
                    (format!("f{next_file}"), bytes / n)
                })
                .collect();
            let replicas = match rng.random_range(0..5) {
                0 => 2,
                4 => 5,
                _ => 3,
            };
            datasets.push(Dataset { name: format!("set-{i}"), files, replicas, successor_of: None });
        }
        let catalog = Catalog::new(&datasets).expect("a generated catalog is valid");
        let mut w = World {
            placement: Placement::new(spec.policy.clone(), catalog, rng.random(), 0),
            by_name: datasets.iter().enumerate().map(|(i, d)| (d.name.clone(), i)).collect(),
            datasets,
            donors: Vec::new(),
            rng,
            policy: spec.policy.clone(),
            capacity: spec.capacity,
            now_ms: 0,
            next_donor: 0,
            next_file,
            fetched: HashMap::new(),
        };
        for _ in 0..spec.donors {
            w.join();
        }
        w
    }

    /// A new honest donor with an empty disk.
    pub fn join(&mut self) {
        let capacity = log_uniform(&mut self.rng, self.capacity.0, self.capacity.1);
        self.next_donor += 1;
        self.donors.push(Donor {
            id: format!("donor-{}", self.next_donor),
            capacity,
            held: Vec::new(),
            files: BTreeMap::new(),
            used: 0,
            tickets: Vec::new(),
            sybil: false,
            alive: true,
        });
    }

    /// `n` donors that claim to hold all of `dataset` (and a large disk), hold nothing and
    /// fetch nothing they are told to, but keep the ticket when they are told to add the
    /// dataset they claim; `with_tickets`: each has one from the start (as if each had once
    /// been told to add it).
    pub fn add_sybils(&mut self, n: usize, dataset: &str, with_tickets: bool) {
        for _ in 0..n {
            self.next_donor += 1;
            let tickets = if with_tickets { vec![dataset.to_string()] } else { Vec::new() };
            self.donors.push(Donor {
                id: format!("sybil-{}", self.next_donor),
                capacity: 1000 * GB,
                held: vec![dataset.to_string()],
                files: BTreeMap::new(),
                used: 0,
                tickets,
                sybil: true,
                alive: true,
            });
        }
    }

    /// Each honest donor dies with chance `p`; as many new ones join.
    pub fn die_and_replace(&mut self, p: f64) -> usize {
        let mut died = 0;
        for i in 0..self.donors.len() {
            if self.donors[i].alive && !self.donors[i].sybil && self.rng.random_bool(p) {
                self.donors[i].alive = false;
                died += 1;
            }
        }
        for _ in 0..died {
            self.join();
        }
        died
    }

    /// One round: every live donor checks in once, in random order, and does what it is
    /// told; then the server forgets donors silent too long.
    pub fn round(&mut self) -> RoundStats {
        let mut stats = RoundStats { held: self.fill().0, ..Default::default() };
        let mut order: Vec<usize> = (0..self.donors.len()).filter(|&i| self.donors[i].alive).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, self.rng.random_range(0..=i));
        }
        // Check-ins spread over the round.
        let (start, n) = (self.now_ms, order.len().max(1) as u64);
        self.now_ms += ROUND_MS;
        for (k, i) in order.into_iter().enumerate() {
            let at = start + k as u64 * ROUND_MS / n;
            let d = &self.donors[i];
            let report = Report {
                donor: d.id.clone(),
                capacity: d.capacity,
                holdings: d.held.iter().map(|h| Holding { dataset: h.clone(), permille: 1000, vouched: d.tickets.contains(h) }).collect(),
            };
            let actions = self.placement.check_in(&report, at).expect("the simulated fleet stays in bounds");
            if !self.donors[i].sybil {
                self.act(i, &actions, &mut stats);
            } else {
                // A Sybil fetches nothing, but keeps a ticket the server hands it for what it
                // claims.
                let d = &mut self.donors[i];
                for a in &actions {
                    if let Action::Add(name) = a {
                        if d.held.contains(name) && !d.tickets.contains(name) {
                            d.tickets.push(name.clone());
                        }
                    }
                }
            }
        }
        self.placement.forget_lost(self.now_ms);
        stats
    }

    fn act(&mut self, i: usize, actions: &[Action], stats: &mut RoundStats) {
        if actions.is_empty() {
            return;
        }
        let d = &mut self.donors[i];
        for a in actions {
            match a {
                Action::Add(name) => {
                    if !d.held.contains(name) {
                        d.held.push(name.clone());
                    }
                    if !d.tickets.contains(name) {
                        d.tickets.push(name.clone());
                    }
                    let mut bytes = 0;
                    for (f, size) in &self.datasets[self.by_name[name]].files {
                        if d.files.insert(number(f), *size).is_none() {
                            bytes += size;
                        }
                    }
                    stats.fetched += bytes;
                    d.used += bytes;
                    *self.fetched.entry((d.id.clone(), name.clone())).or_insert(0) += bytes;
                }
                Action::Remove(name) => {
                    d.held.retain(|h| h != name);
                    d.tickets.retain(|h| h != name);
                }
            }
        }
        // Reconcile: files no held dataset lists go.
        let by_name = &self.by_name;
        let datasets = &self.datasets;
        let mut listed: Vec<u32> = d.held.iter().filter_map(|h| by_name.get(h)).flat_map(|&i| datasets[i].files.iter().map(|(f, _)| number(f))).collect();
        listed.sort_unstable();
        let before = d.used;
        d.files.retain(|f, _| listed.binary_search(f).is_ok());
        d.used = d.files.values().sum();
        stats.deleted += before - d.used;
    }

    /// Adds a dataset that succeeds `of`: its files and new ones of `grow` × its size. Its
    /// name and the bytes it adds.
    pub fn add_successor(&mut self, of: &str, grow: f64) -> (String, u64) {
        let base = self.datasets[self.by_name[of]].clone();
        let added_bytes = (base.files.iter().map(|f| f.1).sum::<u64>() as f64 * grow) as u64;
        let mut files = base.files.clone();
        let n = 3;
        for _ in 0..n {
            self.next_file += 1;
            files.push((format!("f{}", self.next_file), added_bytes / n));
        }
        let name = format!("{of}-next");
        self.datasets.push(Dataset { name: name.clone(), files, replicas: base.replicas, successor_of: Some(of.to_string()) });
        self.by_name.insert(name.clone(), self.datasets.len() - 1);
        self.placement.set_catalog(Catalog::new(&self.datasets).expect("a successor to a dataset of the catalog"));
        (name, added_bytes / n * n)
    }

    /// A successor `grow` × larger than `of`, then `rounds` rounds: how many of `of`'s holders
    /// took it and what they fetched for it.
    pub fn succeed(&mut self, of: &str, grow: f64, rounds: usize) -> Succession {
        let holders = self.holders_of(of);
        let (successor, added) = self.add_successor(of, grow);
        for _ in 0..rounds {
            self.round();
        }
        let now = self.holders_of(&successor);
        let moved: Vec<&String> = holders.iter().filter(|h| now.contains(h)).collect();
        let fetched = moved.iter().map(|h| self.fetched_for(h, &successor)).sum();
        Succession { predecessor: of.to_string(), successor, added, holders: holders.len(), moved: moved.len(), fetched }
    }

    /// The server loses its table: a new one over the same catalog listens for a round.
    pub fn restart_server(&mut self) {
        let policy = Policy { warmup_ms: ROUND_MS, ..self.policy.clone() };
        let seed = self.rng.random();
        self.placement = Placement::new(policy, Catalog::new(&self.datasets).expect("the catalog"), seed, self.now_ms);
    }

    /// Honest live donors that hold `dataset` whole.
    pub fn honest_holders(&self, dataset: &str) -> usize {
        let files = &self.datasets[self.by_name[dataset]].files;
        self.donors.iter().filter(|d| d.alive && !d.sybil && d.held.iter().any(|h| h == dataset) && files.iter().all(|(f, _)| d.files.contains_key(&number(f)))).count()
    }

    /// The share of datasets (the newest of each chain) that honest donors hold at least as
    /// often as their replica count says.
    pub fn at_target(&self) -> f64 {
        let newest: Vec<&Dataset> = self.datasets.iter().filter(|d| !self.datasets.iter().any(|s| s.successor_of.as_deref() == Some(d.name.as_str()))).collect();
        let mut held: HashMap<&str, u32> = HashMap::new();
        for d in self.donors.iter().filter(|d| d.alive && !d.sybil) {
            for h in &d.held {
                *held.entry(h.as_str()).or_insert(0) += 1;
            }
        }
        newest.iter().filter(|d| held.get(d.name.as_str()).copied().unwrap_or(0) >= d.replicas).count() as f64 / newest.len() as f64
    }

    /// The datasets each live honest donor holds, by donor (what the server's table should
    /// say of them).
    pub fn holdings(&self) -> BTreeMap<String, Vec<String>> {
        self.donors
            .iter()
            .filter(|d| d.alive && !d.sybil)
            .map(|d| {
                let mut h = d.held.clone();
                h.sort();
                (d.id.clone(), h)
            })
            .collect()
    }

    /// A dataset honest donors hold `n` times or more, if any (the one with the fewest such).
    pub fn dataset_held(&self, n: usize) -> Option<String> {
        self.datasets.iter().map(|d| (self.honest_holders(&d.name), d.name.clone())).filter(|(h, _)| *h >= n).min().map(|(_, name)| name)
    }

    /// The bytes `donor` fetched for `dataset`.
    pub fn fetched_for(&self, donor: &str, dataset: &str) -> u64 {
        self.fetched.get(&(donor.to_string(), dataset.to_string())).copied().unwrap_or(0)
    }

    /// The live honest donors that hold `dataset` (whole or not).
    pub fn holders_of(&self, dataset: &str) -> Vec<String> {
        self.donors.iter().filter(|d| d.alive && !d.sybil && d.held.iter().any(|h| h == dataset)).map(|d| d.id.clone()).collect()
    }

    /// Gives the world's randomness (deaths, order of check-ins, the server's draws) a new
    /// seed: one settled fleet, many futures.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng64::seed_from_u64(seed);
        self.placement.reseed(seed ^ 0x5eed);
    }

    pub fn replicas_wanted(&self, dataset: &str) -> u32 {
        self.datasets[self.by_name[dataset]].replicas
    }

    /// Bytes the catalog's replica counts need (each dataset, newest of its chain, times its
    /// count).
    pub fn need(&self) -> u64 {
        let superseded = |d: &Dataset| self.datasets.iter().any(|s| s.successor_of.as_deref() == Some(d.name.as_str()));
        self.datasets.iter().filter(|d| !superseded(d)).map(|d| d.files.iter().map(|f| f.1).sum::<u64>() * d.replicas as u64).sum()
    }

    /// Bytes and used capacity of honest live donors.
    pub fn fill(&self) -> (u64, u64) {
        let live = self.donors.iter().filter(|d| d.alive && !d.sybil);
        live.fold((0, 0), |(used, cap), d| (used + d.used, cap + d.capacity))
    }
}

/// The number of a simulated file (`f123`).
fn number(file: &str) -> u32 {
    file[1..].parse().expect("simulated files are f<number>")
}

fn log_uniform(rng: &mut Rng64, lo: u64, hi: u64) -> u64 {
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    (a + (b - a) * rng.random::<f64>()).exp() as u64
}
