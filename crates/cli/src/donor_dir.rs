//! A donor's directory (`swarmboot donate --dir DIR`): everything a donor keeps, under DIR and
//! nowhere else.
//!
//! - `signing.key`: the donor's identity (made once, 0600);
//! - `store/ab/abcd/<sha256>` and `<sha256>.torrent`: the files of the datasets it holds, each
//!   once however many datasets list it (the server's own layout);
//! - `datasets/NAME.signed`: a dataset's manifest as the server signed it; `NAME.ticket`: the
//!   ticket that came with the order to add it;
//! - `NAME.toml`: the seed's `ab/abcd/<sha256>=name` map, for people looking at the disk.
//!
//! Reconciling deletes only files in `store/` that are named by a SHA-256 (or its torrent) and
//! that no held dataset lists; it never follows a link.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use swarmboot_checkin::donation::{is_dataset_name, DonorHolding};
use swarmboot_fetch::Wanted;
use swarmboot_image::datasets::DatasetManifest;
use swarmboot_manifest::{PublicKey, SigningKey};

/// A dataset the donor holds: its signed manifest and ticket.
#[derive(Debug, Clone)]
pub struct Held {
    pub manifest: DatasetManifest,
    pub ticket: Option<String>,
}

pub struct DonorDir {
    root: PathBuf,
}

impl DonorDir {
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        for d in [root.to_path_buf(), root.join("store"), root.join("datasets")] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(DonorDir { root: root.to_path_buf() })
    }

    /// The donor's key (made on first use).
    pub fn key(&self) -> anyhow::Result<SigningKey> {
        SigningKey::load_or_create(&self.root).with_context(|| format!("the donor key in {}", self.root.display()))
    }

    fn signed_path(&self, name: &str) -> PathBuf {
        self.root.join("datasets").join(format!("{name}.signed"))
    }

    /// Where a file goes: `store/ab/abcd/`.
    pub fn file_dir(&self, sha256: &str) -> PathBuf {
        self.root.join("store").join(&sha256[..2]).join(&sha256[..4])
    }

    /// The datasets held: each `datasets/NAME.signed` that opens with `server`'s key and names
    /// NAME (anything else there is left out, and said).
    pub fn held(&self, server: &PublicKey) -> Vec<Held> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.root.join("datasets")) else { return out };
        for e in rd.flatten() {
            let file = e.file_name();
            let Some(name) = file.to_str().and_then(|n| n.strip_suffix(".signed")) else { continue };
            match self.read_signed(name, server) {
                Ok(manifest) => {
                    let ticket = std::fs::read_to_string(self.root.join("datasets").join(format!("{name}.ticket"))).ok().map(|t| t.trim().to_string());
                    out.push(Held { manifest, ticket });
                }
                Err(e) => tracing::warn!(dataset = name, "not held: {e:#}"),
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        out
    }

    fn read_signed(&self, name: &str, server: &PublicKey) -> anyhow::Result<DatasetManifest> {
        let envelope = std::fs::read(self.signed_path(name))?;
        open_manifest(&envelope, server, name)
    }

    /// Records dataset `name` as held: its signed manifest (checked) and ticket, and the name
    /// map beside the store.
    pub fn record(&self, name: &str, envelope: &[u8], ticket: &str, server: &PublicKey) -> anyhow::Result<DatasetManifest> {
        let m = open_manifest(envelope, server, name)?;
        let dir = self.root.join("datasets");
        swarmboot_durable::replace(&dir.join(format!("{name}.ticket")), ticket.as_bytes(), 0o600)?;
        swarmboot_durable::replace(&self.signed_path(name), envelope, 0o600)?;
        swarmboot_durable::replace(&self.root.join(format!("{name}.toml")), m.name_map().as_bytes(), 0o644)?;
        Ok(m)
    }

    /// Drops dataset `name` (its files go at the next reconcile, unless another held dataset
    /// lists them).
    pub fn forget(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(is_dataset_name(name), "{name:?} cannot name a dataset");
        for p in [self.signed_path(name), self.root.join("datasets").join(format!("{name}.ticket")), self.root.join(format!("{name}.toml"))] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).with_context(|| format!("removing {}", p.display())),
                _ => {}
            }
        }
        Ok(())
    }

    /// The files of `m`, for the fetch.
    pub fn wanted(&self, m: &DatasetManifest) -> Vec<Wanted> {
        let mut seen = HashSet::new();
        m.files
            .iter()
            .filter(|f| seen.insert(f.sha256.clone()))
            .map(|f| Wanted { sha256: f.sha256.clone(), size: f.size, info_hash: Some(f.info_hash.clone()), what: format!("{}/{}", m.name, f.path), dir: self.file_dir(&f.sha256) })
            .collect()
    }

    /// What the donor says it holds: per mille of each dataset's bytes present at their
    /// signed size (checked by SHA-256 when they were fetched), with its ticket.
    pub fn holdings(&self, held: &[Held]) -> Vec<DonorHolding> {
        held.iter()
            .map(|h| {
                let total: u64 = h.manifest.bytes().max(1);
                let mut seen = HashSet::new();
                let present: u64 = h
                    .manifest
                    .files
                    .iter()
                    .filter(|f| seen.insert(f.sha256.as_str()))
                    .filter(|f| std::fs::symlink_metadata(self.file_dir(&f.sha256).join(&f.sha256)).is_ok_and(|m| m.is_file() && m.len() == f.size))
                    .map(|f| f.size)
                    .sum();
                DonorHolding { dataset: h.manifest.name.clone(), permille: (present.saturating_mul(1000) / total).min(1000) as u16, ticket: h.ticket.clone() }
            })
            .collect()
    }

    /// Deletes the files in `store/` no held dataset lists (and their torrents); what went.
    pub fn reconcile(&self, held: &[Held]) -> anyhow::Result<(usize, u64)> {
        let listed: HashSet<&str> = held.iter().flat_map(|h| h.manifest.files.iter().map(|f| f.sha256.as_str())).collect();
        let (mut files, mut bytes) = (0, 0);
        let store = self.root.join("store");
        for a in read_dirs(&store)? {
            for b in read_dirs(&a)? {
                for e in std::fs::read_dir(&b).with_context(|| format!("reading {}", b.display()))?.flatten() {
                    let name = e.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let sha = name.strip_suffix(".torrent").unwrap_or(name);
                    let ours = swarmboot_image::is_sha256_hex(sha) && b.ends_with(Path::new(&sha[..2]).join(&sha[..4]));
                    if !ours || listed.contains(sha) {
                        continue;
                    }
                    let meta = e.metadata()?;
                    if meta.is_file() {
                        std::fs::remove_file(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
                        files += usize::from(!name.ends_with(".torrent"));
                        bytes += if name.ends_with(".torrent") { 0 } else { meta.len() };
                    }
                }
                let _ = std::fs::remove_dir(&b); // only if now empty
            }
            let _ = std::fs::remove_dir(&a);
        }
        Ok((files, bytes))
    }
}

/// The directories (not links) in `dir`.
fn read_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect())
}

/// A dataset manifest from its envelope: signed by `server`, named `name`, every file's hash a
/// SHA-256 and every name a path that stays inside the dataset.
pub fn open_manifest(envelope: &[u8], server: &PublicKey, name: &str) -> anyhow::Result<DatasetManifest> {
    let (body, _) = swarmboot_manifest::open(envelope, &[*server]).context("the dataset's manifest is not signed by the server's key")?;
    let m: DatasetManifest = toml::from_str(std::str::from_utf8(body)?).context("the signed dataset manifest does not read")?;
    anyhow::ensure!(m.name == name, "the server sent the manifest of {} for {name}", m.name);
    for f in &m.files {
        anyhow::ensure!(swarmboot_image::is_sha256_hex(&f.sha256), "{:?} is not a SHA-256", f.sha256);
        swarmboot_namespace::entry::check_path(&f.path).map_err(|e| anyhow::anyhow!("{:?}: {e}", f.path))?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_image::datasets::Datasets;

    #[test]
    fn a_donor_keeps_its_datasets_under_its_directory_and_deletes_only_unlisted_store_files() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("server");
        let server = SigningKey::load_or_create(&state).unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let file = |n: &str, body: &str| {
            let p = src.join(n);
            std::fs::write(&p, body).unwrap();
            (n.to_string(), p)
        };
        let catalog = Datasets::new(&state);
        let a = catalog.add("a", &[file("one.txt", "one"), file("two.txt", "two")], 1, None, 1, &server).unwrap();
        let b = catalog.add("b", &[file("two.txt", "two"), file("three.txt", "three")], 1, None, 1, &server).unwrap();
        let envelope = |n: &str| catalog.signed(n, &server).unwrap().unwrap().1;

        let donor = DonorDir::open(&d.path().join("donor")).unwrap();
        donor.record("a", &envelope("a"), "ticket-a", &server.public()).unwrap();
        donor.record("b", &envelope("b"), "ticket-b", &server.public()).unwrap();
        assert!(donor.record("b", &envelope("a"), "t", &server.public()).is_err(), "a manifest under another name");
        let stranger = SigningKey::from_seed([3; 32]);
        assert!(donor.record("a", &swarmboot_manifest::seal(&stranger, b"name = \"a\""), "t", &server.public()).is_err(), "not the server's");
        // As the fetch would: every file at its place.
        for m in [&a, &b] {
            for w in donor.wanted(m) {
                std::fs::create_dir_all(&w.dir).unwrap();
                let body = std::fs::read(src.join(&m.files.iter().find(|f| f.sha256 == w.sha256).unwrap().path)).unwrap();
                std::fs::write(w.path(), body).unwrap();
            }
        }
        let held = donor.held(&server.public());
        assert_eq!(held.iter().map(|h| h.manifest.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let holdings = donor.holdings(&held);
        assert_eq!((holdings[0].permille, holdings[0].ticket.as_deref()), (1000, Some("ticket-a")));
        assert!(std::fs::read_to_string(d.path().join("donor/a.toml")).unwrap().contains("=one.txt"));
        // A stray file in the store, one outside it, a link: only the stray store file goes.
        let stray = "ab".repeat(32);
        let stray_dir = donor.file_dir(&stray);
        std::fs::create_dir_all(&stray_dir).unwrap();
        std::fs::write(stray_dir.join(&stray), "stray").unwrap();
        std::fs::write(d.path().join("donor/keep-me"), "mine").unwrap();
        assert_eq!(donor.reconcile(&held).unwrap(), (1, 5));
        // Dropping `a`: its own file goes, the one `b` shares stays.
        donor.forget("a").unwrap();
        let held = donor.held(&server.public());
        assert_eq!(donor.reconcile(&held).unwrap(), (1, 3));
        let two = a.files.iter().find(|f| f.path == "two.txt").unwrap();
        assert!(donor.file_dir(&two.sha256).join(&two.sha256).exists(), "shared with b");
        donor.key().unwrap();
        assert!(d.path().join("donor/keep-me").exists() && d.path().join("donor/signing.key").exists(), "nothing outside the store is touched");
        assert!(donor.forget("../x").is_err());
    }
}
