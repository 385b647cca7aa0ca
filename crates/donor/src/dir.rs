//! A donor's directory: everything a donor keeps, under it and nowhere else.
//!
//! - `signing.key`: the donor's identity (made once, 0600);
//! - `store/ab/abcd/<sha256>` and `<sha256>.torrent`: the files of the datasets it holds, each
//!   once however many datasets list it (the server's own layout); `<sha256>.verified` once the
//!   fetch checked it whole (a file being fetched already has its full size);
//! - `datasets/NAME.signed`: a dataset's manifest as the server signed it; `NAME.ticket`: the
//!   ticket that came with the order to add it;
//! - `NAME.toml`: the seed's `ab/abcd/<sha256>=name` map, for people looking at the disk;
//! - `view/NAME/<path>`: each held dataset under its files' own names, hard links to the store
//!   (what a node shares into the namespace; no second copy).
//!
//! Reconciling deletes only files in `store/` that are named by a SHA-256 (or its torrent) and
//! that no held dataset lists, and the views of datasets no longer held; it never follows a link.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use swarmboot_checkin::donation::{is_dataset_name, DonorHolding};
use swarmboot_fetch::Wanted;
use swarmboot_image::datasets::DatasetManifest;
use swarmboot_manifest::{PublicKey, SigningKey};

use crate::DonorError;

/// A dataset the donor holds: its signed manifest and ticket.
#[derive(Debug, Clone)]
pub struct Held {
    pub manifest: DatasetManifest,
    pub ticket: Option<String>,
}

pub struct DonorDir {
    root: PathBuf,
}

/// Beside a store file the fetch verified whole.
const VERIFIED: &str = ".verified";

fn io(what: impl std::fmt::Display, path: &Path) -> impl FnOnce(std::io::Error) -> DonorError {
    let what = format!("{what} {}", path.display());
    move |source| DonorError::Io { what, source }
}

impl DonorDir {
    /// Opens (and makes) the directory and its parts.
    pub fn open(root: &Path) -> Result<Self, DonorError> {
        for d in [root.to_path_buf(), root.join("store"), root.join("datasets"), root.join("view")] {
            std::fs::create_dir_all(&d).map_err(io("creating", &d))?;
        }
        Ok(DonorDir { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `view/`: the held datasets under their files' names.
    pub fn view(&self) -> PathBuf {
        self.root.join("view")
    }

    /// The donor's key (made on first use).
    pub fn key(&self) -> Result<SigningKey, DonorError> {
        SigningKey::load_or_create(&self.root).map_err(|e| DonorError::Key { dir: self.root.clone(), reason: e.to_string() })
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
                Err(e) => tracing::warn!(dataset = name, "not held: {e}"),
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        out
    }

    fn read_signed(&self, name: &str, server: &PublicKey) -> Result<DatasetManifest, DonorError> {
        let path = self.signed_path(name);
        let envelope = std::fs::read(&path).map_err(io("reading", &path))?;
        open_manifest(&envelope, server, name)
    }

    /// Records dataset `name` as held: its signed manifest (checked) and ticket, and the name
    /// map beside the store.
    pub fn record(&self, name: &str, envelope: &[u8], ticket: &str, server: &PublicKey) -> Result<DatasetManifest, DonorError> {
        let m = open_manifest(envelope, server, name)?;
        let dir = self.root.join("datasets");
        let write = |path: PathBuf, bytes: &[u8], mode| swarmboot_durable::replace(&path, bytes, mode).map_err(io("writing", &path));
        write(dir.join(format!("{name}.ticket")), ticket.as_bytes(), 0o600)?;
        write(self.signed_path(name), envelope, 0o600)?;
        write(self.root.join(format!("{name}.toml")), m.name_map().as_bytes(), 0o644)?;
        Ok(m)
    }

    /// Drops dataset `name` (its files go at the next reconcile, unless another held dataset
    /// lists them).
    pub fn forget(&self, name: &str) -> Result<(), DonorError> {
        if !is_dataset_name(name) {
            return Err(DonorError::Manifest(format!("{name:?} cannot name a dataset")));
        }
        for p in [self.signed_path(name), self.root.join("datasets").join(format!("{name}.ticket")), self.root.join(format!("{name}.toml"))] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", &p)(e)),
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

    /// Whether the store holds `sha256` at its signed size, verified whole by the fetch.
    fn present(&self, sha256: &str, size: u64) -> Option<std::fs::Metadata> {
        let dir = self.file_dir(sha256);
        std::fs::symlink_metadata(dir.join(format!("{sha256}{VERIFIED}"))).ok().filter(|m| m.is_file())?;
        std::fs::symlink_metadata(dir.join(sha256)).ok().filter(|m| m.is_file() && m.len() == size)
    }

    /// Notes that the fetch verified `sha256` whole (every piece and its SHA-256).
    pub fn mark_verified(&self, sha256: &str) -> Result<(), DonorError> {
        if !swarmboot_image::is_sha256_hex(sha256) {
            return Err(DonorError::Manifest(format!("{sha256:?} is not a SHA-256")));
        }
        let path = self.file_dir(sha256).join(format!("{sha256}{VERIFIED}"));
        swarmboot_durable::replace(&path, b"", 0o644).map_err(io("writing", &path))
    }

    /// What the donor says it holds: per mille of each dataset's bytes present at their
    /// signed size, with its ticket.
    pub fn holdings(&self, held: &[Held]) -> Vec<DonorHolding> {
        held.iter()
            .map(|h| {
                let total: u64 = h.manifest.bytes().max(1);
                let mut seen = HashSet::new();
                let present: u64 = h.manifest.files.iter().filter(|f| seen.insert(f.sha256.as_str())).filter(|f| self.present(&f.sha256, f.size).is_some()).map(|f| f.size).sum();
                DonorHolding { dataset: h.manifest.name.clone(), permille: (present.saturating_mul(1000) / total).min(1000) as u16, ticket: h.ticket.clone() }
            })
            .collect()
    }

    /// Brings `view/` in line with what is held: each present file linked under
    /// `view/NAME/<path>` (a hard link to the store), the views of datasets not held removed.
    /// Each stored file's modification time is set to when the earliest held dataset listing
    /// it was made, so every donor shows the same file with the same time (and a namespace
    /// that compares files by size and time, without hashes, sees one file held by many).
    /// Returns the links made.
    pub fn update_view(&self, held: &[Held]) -> Result<usize, DonorError> {
        let mut made_at: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for h in held {
            for f in &h.manifest.files {
                let t = made_at.entry(f.sha256.as_str()).or_insert(h.manifest.created);
                *t = (*t).min(h.manifest.created);
            }
        }
        for (sha, created) in &made_at {
            let path = self.file_dir(sha).join(sha);
            let want = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*created);
            if let Some(m) = std::fs::symlink_metadata(&path).ok().filter(|m| m.is_file()) {
                if m.modified().ok() != Some(want) {
                    std::fs::File::open(&path).and_then(|f| f.set_modified(want)).map_err(io("setting the time of", &path))?;
                }
            }
        }
        let view = self.view();
        let names: HashSet<&str> = held.iter().map(|h| h.manifest.name.as_str()).collect();
        for e in std::fs::read_dir(&view).map_err(io("reading", &view))?.flatten() {
            let keep = e.file_name().to_str().is_some_and(|n| names.contains(n)) && e.file_type().is_ok_and(|t| t.is_dir());
            if !keep {
                let p = e.path();
                // remove_dir_all never follows a link; a plain file or link is removed itself.
                let r = if e.file_type().is_ok_and(|t| t.is_dir()) { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                r.map_err(io("removing", &p))?;
            }
        }
        let mut made = 0;
        for h in held {
            for f in &h.manifest.files {
                let Some(stored) = self.present(&f.sha256, f.size) else { continue };
                let at = view.join(&h.manifest.name).join(&f.path);
                if std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_file() && m.ino() == stored.ino() && m.dev() == stored.dev()) {
                    continue;
                }
                if let Some(parent) = at.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                }
                match std::fs::remove_file(&at) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", &at)(e)),
                    _ => {}
                }
                std::fs::hard_link(self.file_dir(&f.sha256).join(&f.sha256), &at).map_err(io("linking", &at))?;
                made += 1;
            }
        }
        Ok(made)
    }

    /// Deletes the views of datasets not held, then the files in `store/` no held dataset
    /// lists (and their torrents); what went from the store.
    pub fn reconcile(&self, held: &[Held]) -> Result<(usize, u64), DonorError> {
        self.update_view(held)?;
        let listed: HashSet<&str> = held.iter().flat_map(|h| h.manifest.files.iter().map(|f| f.sha256.as_str())).collect();
        let (mut files, mut bytes) = (0, 0);
        let store = self.root.join("store");
        for a in read_dirs(&store)? {
            for b in read_dirs(&a)? {
                for e in std::fs::read_dir(&b).map_err(io("reading", &b))?.flatten() {
                    let name = e.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let sha = name.strip_suffix(".torrent").or_else(|| name.strip_suffix(VERIFIED)).unwrap_or(name);
                    let ours = swarmboot_image::is_sha256_hex(sha) && b.ends_with(Path::new(&sha[..2]).join(&sha[..4]));
                    if !ours || listed.contains(sha) {
                        continue;
                    }
                    let meta = e.metadata().map_err(io("reading", &e.path()))?;
                    if meta.is_file() {
                        std::fs::remove_file(e.path()).map_err(io("removing", &e.path()))?;
                        let the_file = name == sha;
                        files += usize::from(the_file);
                        bytes += if the_file { meta.len() } else { 0 };
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
fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>, DonorError> {
    Ok(std::fs::read_dir(dir).map_err(io("reading", dir))?.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect())
}

/// A dataset manifest from its envelope: signed by `server`, named `name`, every file's hash a
/// SHA-256 and every name a path that stays inside the dataset.
pub fn open_manifest(envelope: &[u8], server: &PublicKey, name: &str) -> Result<DatasetManifest, DonorError> {
    let bad = |why: String| DonorError::Manifest(format!("dataset {name}: {why}"));
    let (body, _) = swarmboot_manifest::open(envelope, &[*server]).map_err(|e| bad(format!("the manifest is not signed by the server's key ({e})")))?;
    let text = std::str::from_utf8(body).map_err(|_| bad("the signed manifest is not UTF-8".into()))?;
    let m: DatasetManifest = toml::from_str(text).map_err(|e| bad(format!("the signed manifest does not read: {e}")))?;
    if m.name != name {
        return Err(bad(format!("the server sent the manifest of {}", m.name)));
    }
    for f in &m.files {
        if !swarmboot_image::is_sha256_hex(&f.sha256) {
            return Err(bad(format!("{:?} is not a SHA-256", f.sha256)));
        }
        swarmboot_namespace::entry::check_path(&f.path).map_err(|e| bad(format!("{:?}: {e}", f.path)))?;
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
        // Full size but not yet verified (as during a fetch): not held yet, not in the view.
        assert!(donor.holdings(&donor.held(&server.public())).iter().all(|h| h.permille == 0));
        for m in [&a, &b] {
            for w in donor.wanted(m) {
                donor.mark_verified(&w.sha256).unwrap();
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
        // The view: each dataset under its files' names, hard links to the store.
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("theirs"), "theirs").unwrap();
        std::os::unix::fs::symlink(&outside, donor.view().join("planted")).unwrap();
        assert_eq!(donor.update_view(&held).unwrap(), 0, "linked by the reconcile, already in line");
        assert!(donor.view().join("planted").symlink_metadata().is_err() && outside.join("theirs").exists(), "a planted link is removed, never followed");
        let one = a.files.iter().find(|f| f.path == "one.txt").unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&donor.view().join("a/one.txt")), ino(&donor.file_dir(&one.sha256).join(&one.sha256)));
        assert_eq!(std::fs::read_to_string(donor.view().join("b/three.txt")).unwrap(), "three");
        // Every donor shows a file with the time its earliest dataset was made.
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().mtime();
        assert_eq!((mtime(&donor.view().join("a/one.txt")), mtime(&donor.view().join("b/two.txt"))), (a.created as i64, a.created.min(b.created) as i64));
        // Dropping `a`: its own file goes, the one `b` shares stays.
        donor.forget("a").unwrap();
        let held = donor.held(&server.public());
        assert_eq!(donor.reconcile(&held).unwrap(), (1, 3));
        assert!(!donor.view().join("a").exists() && donor.view().join("b/two.txt").exists(), "the view follows what is held");
        let two = a.files.iter().find(|f| f.path == "two.txt").unwrap();
        assert!(donor.file_dir(&two.sha256).join(&two.sha256).exists(), "shared with b");
        donor.key().unwrap();
        assert!(d.path().join("donor/keep-me").exists() && d.path().join("donor/signing.key").exists(), "nothing outside the store is touched");
        assert!(donor.forget("../x").is_err());
    }
}
