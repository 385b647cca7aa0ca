//! Donors (issue 20): a donor's signed check-in (`POST /api/v1/donor`), its tickets checked
//! against the server's key, the decision by `swarmboot_placement`, the answer signed for that
//! donor and that check-in; and a dataset's signed manifest (`GET /dataset/NAME`) for donors
//! to fetch by. The catalog placed is the datasets and every image version as a dataset
//! (`NAME@V`, `swarmboot_image::image_datasets`): a machine's donor that says it booted a
//! version is told to take the next one where it has room.
//!
//! The table is in memory: after a restart the placement only listens for as long as a donor
//! may stay silent before it is lost, so every donor has checked in once before anything is
//! decided (the table is rebuilt from check-ins, as a replica of the server would).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use swarmboot_checkin::donation::{self, DonationError, DonorReply, SignedDonorReply, Ticketed};
use swarmboot_image::datasets::{DatasetManifest, Datasets};
use swarmboot_image::image_datasets::{image_datasets, parse_image_dataset, signed_image_dataset};
use swarmboot_manifest::SigningKey;
use swarmboot_placement::{Action, Catalog, Dataset, Holding, Placement, Policy, Refusal, Report};
use tracing::{info, warn};

/// How often the datasets' manifests are looked at for changes (by their names, sizes and
/// times; read again only when those change).
const CATALOG_CHECK_MS: u64 = 10_000;

#[derive(Debug, Default)]
pub struct DonorStats {
    pub checkins: AtomicU64,
    /// Unreadable or not signed by the key they name.
    pub bad: AtomicU64,
    /// Replayed (a counter not above the last), or refused by the table's bounds.
    pub refused: AtomicU64,
    /// Holdings shown without a valid ticket (kept, not counted).
    pub unvouched: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum DonorFailure {
    #[error(transparent)]
    Unreadable(#[from] DonationError),
    #[error("check-in {counter} is not above the last one taken from this donor ({last}): a replay, or the donor's clock went back")]
    Replayed { counter: u64, last: u64 },
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// A dataset as `/api/v1/datasets` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatasetView {
    pub name: String,
    pub files: usize,
    pub bytes: u64,
    /// Donors it should have.
    pub replicas: u32,
    /// Donors that hold it with their ticket, or were told to add it.
    pub holders: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successor_of: Option<String>,
    /// The dataset that replaces it on donors, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

struct Table {
    placement: Placement,
    /// What the API shows of each dataset (no holders), as of the last reading.
    views: Vec<DatasetView>,
    /// The manifests' stamp the placement's catalog was made from, and when it was looked at.
    stamp: Vec<(String, u64, i64)>,
    checked_ms: u64,
    /// The last counter taken from each donor in the table.
    counters: HashMap<String, u64>,
}

pub struct Donors {
    datasets: Datasets,
    images: swarmboot_image::Catalog,
    key: Arc<SigningKey>,
    interval_secs: u64,
    table: Mutex<Table>,
    pub stats: DonorStats,
}

/// The placement's view of the catalog's datasets (a successor whose predecessor is gone
/// stands on its own).
fn placement_catalog(all: &[DatasetManifest]) -> Catalog {
    let names: std::collections::HashSet<&str> = all.iter().map(|d| d.name.as_str()).collect();
    let sets: Vec<Dataset> = all
        .iter()
        .map(|d| Dataset {
            name: d.name.clone(),
            files: d.files.iter().map(|f| (f.sha256.clone(), f.size)).collect(),
            replicas: d.replicas,
            successor_of: d.successor_of.clone().filter(|p| names.contains(p.as_str())),
        })
        .collect();
    Catalog::new(&sets).unwrap_or_else(|e| {
        warn!("the datasets cannot be placed as they are ({e}): none is placed until that is mended");
        Catalog::default()
    })
}

/// The datasets, then every image version as a dataset.
fn everything(datasets: &Datasets, images: &swarmboot_image::Catalog) -> Result<Vec<DatasetManifest>, swarmboot_image::CatalogError> {
    let mut all = datasets.all()?;
    all.extend(image_datasets(images)?);
    Ok(all)
}

/// What changes when a dataset or an image version comes or goes.
fn stamp(datasets: &Datasets, images: &swarmboot_image::Catalog) -> Vec<(String, u64, i64)> {
    let mut s = datasets.stamp();
    s.extend(images.stamp().into_iter().map(|(n, len, t)| (format!("images/{n}"), len, t)));
    s
}

fn views_of(all: &[DatasetManifest]) -> Vec<DatasetView> {
    all.iter()
        .map(|d| DatasetView {
            name: d.name.clone(),
            files: d.files.len(),
            bytes: d.bytes(),
            replicas: d.replicas,
            holders: 0,
            successor_of: d.successor_of.clone(),
            replaced_by: None,
        })
        .collect()
}

impl Donors {
    /// Donors checking in every `interval_secs`, lost after `missed` missed check-ins.
    pub fn new(state_dir: &std::path::Path, key: Arc<SigningKey>, interval_secs: u64, missed: u32, seed: u64, now_ms: u64) -> Self {
        let (datasets, images) = (Datasets::new(state_dir), swarmboot_image::Catalog::new(state_dir));
        let lost_after_ms = interval_secs.saturating_mul(1000).saturating_mul(missed.max(1) as u64);
        let policy = Policy { warmup_ms: lost_after_ms, lost_after_ms, ..Policy::default() };
        let stamp = stamp(&datasets, &images);
        let all = everything(&datasets, &images).unwrap_or_else(|e| {
            warn!("the datasets cannot be read ({e}): none is placed until they can");
            Vec::new()
        });
        let placement = Placement::new(policy, placement_catalog(&all), seed, now_ms);
        let table = Table { placement, views: views_of(&all), stamp, checked_ms: now_ms, counters: HashMap::new() };
        Donors { datasets, images, key, interval_secs, table: Mutex::new(table), stats: DonorStats::default() }
    }

    fn refresh(&self, t: &mut Table, now_ms: u64) {
        if now_ms.saturating_sub(t.checked_ms) < CATALOG_CHECK_MS {
            return;
        }
        t.checked_ms = now_ms;
        let stamp = stamp(&self.datasets, &self.images);
        if stamp == t.stamp {
            return;
        }
        match everything(&self.datasets, &self.images) {
            Ok(all) => {
                info!(datasets = all.len(), "the datasets changed: placing the new catalog");
                t.placement.set_catalog(placement_catalog(&all));
                t.views = views_of(&all);
                t.stamp = stamp;
            }
            Err(e) => warn!("the datasets cannot be read ({e}): the last catalog stays"),
        }
    }

    /// A donor's check-in (body and signature as sent): the signed answer.
    pub fn check_in(&self, body: &[u8], signature: Option<&str>, now_ms: u64) -> Result<SignedDonorReply, DonorFailure> {
        let (c, _) = donation::open(body, signature).inspect_err(|_| {
            self.stats.bad.fetch_add(1, Ordering::Relaxed);
        })?;
        let server = self.key.public();
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut t, now_ms);
        if let Some(&last) = t.counters.get(&c.donor_key) {
            if c.counter <= last {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return Err(DonorFailure::Replayed { counter: c.counter, last });
            }
        }
        let holdings: Vec<Holding> = c
            .holdings
            .iter()
            .map(|h| {
                let vouched = h.ticket.as_deref().is_some_and(|ticket| donation::ticket_valid(&server, &c.donor_key, &h.dataset, ticket));
                if !vouched {
                    self.stats.unvouched.fetch_add(1, Ordering::Relaxed);
                }
                Holding { dataset: h.dataset.clone(), permille: h.permille, vouched }
            })
            .collect();
        let actions = t.placement.check_in(&Report { donor: c.donor_key.clone(), capacity: c.capacity, holdings }, now_ms).inspect_err(|_| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        })?;
        t.counters.insert(c.donor_key.clone(), c.counter);
        for gone in t.placement.forget_lost(now_ms) {
            t.counters.remove(&gone);
        }
        drop(t);
        self.stats.checkins.fetch_add(1, Ordering::Relaxed);
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for a in actions {
            match a {
                Action::Add(dataset) => add.push(Ticketed { ticket: donation::ticket(&self.key, &c.donor_key, &dataset), dataset }),
                Action::Remove(dataset) => remove.push(dataset),
            }
        }
        let reply = DonorReply { donor_key: c.donor_key, counter: c.counter, interval_secs: self.interval_secs, add, remove };
        Ok(donation::sign_reply(&self.key, &reply))
    }

    /// Donors that hold each dataset (with a ticket) or were told to add it, by name.
    pub fn replicas(&self) -> Vec<(String, u32)> {
        self.view(crate::fleet::now_ms()).into_iter().map(|v| (v.name, v.holders)).collect()
    }

    /// Every dataset with its holders, by name (the catalog looked at again if it is due).
    pub fn view(&self, now_ms: u64) -> Vec<DatasetView> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut t, now_ms);
        let catalog = t.placement.catalog();
        t.views
            .iter()
            .map(|v| DatasetView {
                holders: t.placement.replicas(&v.name).unwrap_or(0),
                replaced_by: catalog.newest(&v.name).filter(|n| *n != v.name).map(str::to_string),
                ..v.clone()
            })
            .collect()
    }

    /// Donors in the table.
    pub fn donors(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).placement.donors()
    }

    /// Dataset `name`'s signed manifest envelope.
    pub fn manifest(&self, name: &str) -> Result<Option<Vec<u8>>, swarmboot_image::CatalogError> {
        let signed = match parse_image_dataset(name) {
            Some(_) => signed_image_dataset(&self.images, name, &self.key)?,
            None => self.datasets.signed(name, &self.key)?,
        };
        Ok(signed.map(|(_, envelope)| envelope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_checkin::donation::{DonorCheckIn, DonorHolding};

    struct Fixture {
        _dir: tempfile::TempDir,
        donors: Donors,
        server: Arc<SigningKey>,
    }

    /// A state directory with datasets `a` (2 replicas) and `b` (1), 10 bytes each; donors
    /// checking in every 60 s, lost after 3 missed, no warm-up left at `now_ms` = 200 000.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let server = Arc::new(SigningKey::load_or_create(&state).unwrap());
        let d = Datasets::new(&state);
        for (name, replicas) in [("a", 2), ("b", 1)] {
            let f = dir.path().join(name);
            std::fs::write(&f, format!("{name} content")).unwrap();
            d.add(name, &[(format!("{name}.bin"), f)], replicas, None, 1, &server).unwrap();
        }
        let donors = Donors::new(&state, server.clone(), 60, 3, 7, 0);
        Fixture { _dir: dir, donors, server }
    }

    fn send(f: &Fixture, donor: &SigningKey, counter: u64, holdings: Vec<DonorHolding>, now_ms: u64) -> Result<DonorReply, DonorFailure> {
        let c = DonorCheckIn { donor_key: donor.public().to_hex(), counter, capacity: 1000, holdings };
        let (body, sig) = donation::seal(donor, &c);
        let signed = f.donors.check_in(&body, Some(&sig), now_ms)?;
        Ok(donation::open_reply(&signed, &f.server.public(), &c.donor_key, counter).expect("a reply signed for this check-in"))
    }

    #[test]
    fn a_donor_gets_datasets_with_tickets_that_count_when_shown_and_replays_are_refused() {
        let f = fixture();
        let donor = SigningKey::from_seed([1; 32]);
        let during_warm_up = send(&f, &donor, 1, vec![], 1000).unwrap();
        assert!(during_warm_up.add.is_empty(), "a fresh table only listens");
        let r = send(&f, &donor, 2, vec![], 200_000).unwrap();
        let mut added: Vec<&str> = r.add.iter().map(|t| t.dataset.as_str()).collect();
        added.sort();
        assert_eq!(added, ["a", "b"]);
        assert_eq!(r.interval_secs, 60);
        let held: Vec<DonorHolding> = r.add.iter().map(|t| DonorHolding { dataset: t.dataset.clone(), permille: 1000, ticket: Some(t.ticket.clone()) }).collect();
        let again = send(&f, &donor, 3, held.clone(), 260_000).unwrap();
        assert!(again.add.is_empty() && again.remove.is_empty(), "{again:?}");
        assert_eq!(f.donors.replicas(), [("a".to_string(), 1), ("b".to_string(), 1)]);
        assert!(matches!(send(&f, &donor, 3, held, 270_000), Err(DonorFailure::Replayed { counter: 3, last: 3 })));

        // A second donor that claims `a` with the first one's ticket: kept, not counted.
        let sybil = SigningKey::from_seed([2; 32]);
        let stolen = vec![DonorHolding { dataset: "a".into(), permille: 1000, ticket: Some(donation::ticket(&f.server, &donor.public().to_hex(), "a")) }];
        let r = send(&f, &sybil, 1, stolen, 280_000).unwrap();
        assert!(r.remove.is_empty());
        assert_eq!(f.donors.replicas()[0], ("a".to_string(), 1), "a claim without its own ticket counts for nothing");
        assert!(f.donors.stats.unvouched.load(Ordering::Relaxed) >= 1);
        assert_eq!(f.donors.donors(), 2);
    }

    /// The table is only in memory: a server started again over the same state directory
    /// listens to one round of check-ins (each donor showing what it holds, with its tickets)
    /// and has the table the last one had — every dataset held as often, and nobody told to
    /// add or drop anything.
    #[test]
    fn a_restarted_server_has_the_same_table_after_one_round_of_check_ins() {
        let f = fixture();
        let donors: Vec<SigningKey> = (10..14).map(|i| SigningKey::from_seed([i; 32])).collect();
        let mut held: Vec<Vec<DonorHolding>> = vec![Vec::new(); donors.len()];
        let mut counter = 0;
        // Rounds until the table settles: each donor takes what it is told to.
        for round in 0..5u64 {
            counter += 1;
            for (d, h) in donors.iter().zip(held.iter_mut()) {
                let r = send(&f, d, counter, h.clone(), 200_000 + round * 60_000).unwrap();
                h.retain(|x| !r.remove.contains(&x.dataset));
                h.extend(r.add.iter().map(|t| DonorHolding { dataset: t.dataset.clone(), permille: 1000, ticket: Some(t.ticket.clone()) }));
            }
        }
        let before = f.donors.replicas();
        // (Room to spare: a dataset may be held more often than it asks.)
        assert!(before.len() == 2 && before[0].1 >= 2 && before[1].1 >= 1, "the datasets at their counts at least: {before:?}");

        // Started again: the table is empty; one round in its warm-up, one after.
        let restarted = Donors::new(&f._dir.path().join("state"), f.server.clone(), 60, 3, 99, 1_000_000);
        assert_eq!(restarted.replicas().iter().map(|(_, n)| n).sum::<u32>(), 0, "an empty table");
        let again = Fixture { _dir: tempfile::tempdir().unwrap(), donors: restarted, server: f.server.clone() };
        for (round, now) in [1_000_000u64, 1_000_000 + 180_000].into_iter().enumerate() {
            counter += 1;
            for (d, h) in donors.iter().zip(&held) {
                let r = send(&again, d, counter, h.clone(), now).unwrap();
                assert!(r.add.is_empty() && r.remove.is_empty(), "round {round} after the restart: {r:?}");
            }
        }
        assert_eq!(again.donors.replicas(), before, "the same holders as before the restart");
        assert_eq!(again.donors.donors(), donors.len());
    }

    #[test]
    fn a_machine_that_booted_an_image_is_told_to_take_its_next_version() {
        let f = fixture();
        let state = f._dir.path().join("state");
        let images = swarmboot_image::Catalog::new(&state);
        let file = |n: &str, body: &str| {
            let p = f._dir.path().join(n);
            std::fs::write(&p, body).unwrap();
            p
        };
        use swarmboot_image::Role;
        let (kernel, root1, root2) = (file("vmlinuz", "kernel"), file("root1", "root one"), file("root2", "root two"));
        images.add("elchos", &[(Role::Kernel, &kernel), (Role::Rootfs, &root1)], "", 1, &f.server).unwrap();
        let machine = SigningKey::from_seed([5; 32]);
        let booted = || vec![DonorHolding { dataset: "elchos@1".into(), permille: 1000, ticket: None }];
        send(&f, &machine, 1, booted(), 200_000).unwrap();
        // Version 2 comes: once the catalog is looked at again, the machine is told to take it.
        images.add("elchos", &[(Role::Kernel, &kernel), (Role::Rootfs, &root2)], "", 2, &f.server).unwrap();
        let r = send(&f, &machine, 2, booted(), 200_000 + CATALOG_CHECK_MS).unwrap();
        assert!(r.add.iter().any(|t| t.dataset == "elchos@2"), "{r:?}");
        let view = f.donors.view(200_000 + CATALOG_CHECK_MS);
        let two = view.iter().find(|v| v.name == "elchos@2").unwrap();
        assert_eq!((two.successor_of.as_deref(), two.files, two.holders), (Some("elchos@1"), 2, 1), "{two:?}");
        // Its manifest, as a dataset, signed by the server.
        let envelope = f.donors.manifest("elchos@2").unwrap().unwrap();
        let (body, _) = swarmboot_manifest::open(&envelope, &[f.server.public()]).unwrap();
        assert!(std::str::from_utf8(body).unwrap().contains("name = \"elchos@2\""));
        assert!(f.donors.manifest("elchos@3").unwrap().is_none());
    }

    #[test]
    fn unreadable_check_ins_are_counted_and_a_removed_dataset_is_dropped() {
        let f = fixture();
        assert!(matches!(f.donors.check_in(b"{}", Some("00"), 1), Err(DonorFailure::Unreadable(_))));
        assert!(matches!(f.donors.check_in(b"{}", None, 1), Err(DonorFailure::Unreadable(DonationError::Unsigned))));
        assert_eq!(f.donors.stats.bad.load(Ordering::Relaxed), 2);
        let donor = SigningKey::from_seed([3; 32]);
        let r = send(&f, &donor, 1, vec![DonorHolding { dataset: "gone".into(), permille: 500, ticket: None }], 200_000).unwrap();
        assert_eq!(r.remove, ["gone"]);
        // The manifest a donor fetches by is the signed one.
        let envelope = f.donors.manifest("a").unwrap().unwrap();
        assert!(swarmboot_manifest::open(&envelope, &[f.server.public()]).is_ok());
        assert!(f.donors.manifest("nope").unwrap().is_none());
    }
}
