//! Datasets: named sets of files the server places on donors' space (issue 20). Their files go
//! into the [`Store`] like image files (once each, shared with images and other datasets; one
//! torrent per file); each dataset's [`DatasetManifest`] is signed like an image manifest, at
//! `<state_dir>/datasets/NAME.toml` (+ `NAME.sig`).
//!
//! A dataset is not versioned: new content is a new dataset that names the one it succeeds,
//! and donors swap the old for the new fetching only the files the new one adds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swarmboot_manifest::SigningKey;

use crate::manifest_files::{check_name, exclusive, sign_beside, toml_stamp, CatalogError, Signed, CATALOG_LOCK};
use crate::store::Store;

/// Most replicas a dataset may ask for.
pub const MAX_REPLICAS: u32 = 1000;
/// Most files in one dataset.
pub const MAX_DATASET_FILES: usize = 1_000_000;

/// One file of a dataset: where it goes in the dataset and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetFile {
    /// Its name in the dataset (`Charles Dickens/Great Expectations.pdf`): relative,
    /// `/`-separated, no `.`, `..` or empty parts.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Info hash (hex) of the store's torrent of this file.
    pub info_hash: String,
}

/// One dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetManifest {
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// How many donors should hold it.
    pub replicas: u32,
    /// The dataset it replaces on donors wherever there is room for what it adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_of: Option<String>,
    pub files: Vec<DatasetFile>,
}

impl DatasetManifest {
    /// The bytes of its distinct files.
    pub fn bytes(&self) -> u64 {
        let mut seen = HashSet::new();
        self.files.iter().filter(|f| seen.insert(f.sha256.as_str())).map(|f| f.size).sum()
    }

    /// Where each file is in a store's layout and what it was called, one per line:
    /// `ab/abcd/abcdef…=Charles Dickens/Great Expectations.pdf` (a donor writes it beside its
    /// files, so a person can tell them apart).
    pub fn name_map(&self) -> String {
        self.files.iter().map(|f| format!("{}/{}/{}={}\n", &f.sha256[..2], &f.sha256[..4], f.sha256, f.path)).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("dataset {0} exists: new content is a new dataset that succeeds it (swarmboot dataset add {0}-2 PATH… --successor-of {0})")]
    Exists(String),
    #[error("no dataset {0} (swarmboot dataset list shows them)")]
    NoSuchDataset(String),
    #[error("dataset {of} already has a successor, {by}: make the new one succeed {by}")]
    HasSuccessor { of: String, by: String },
    #[error("a dataset asks for 1 to {MAX_REPLICAS} replicas, not {0}")]
    Replicas(u32),
    #[error("a dataset has 1 to {MAX_DATASET_FILES} files, not {0}")]
    Files(usize),
    #[error("{path:?} cannot be a name in a dataset ({why}): give files by paths without `.`/`..` parts or control characters")]
    BadPath { path: String, why: String },
    #[error("{0:?} is in the dataset twice: two files cannot have one name")]
    Twice(String),
}

/// The datasets under a state directory; they share the image catalog's store and lock.
#[derive(Debug, Clone)]
pub struct Datasets {
    dir: PathBuf,
    store: Store,
    lock: PathBuf,
}

impl Datasets {
    pub fn new(state_dir: &Path) -> Self {
        Datasets { dir: state_dir.join("datasets"), store: Store::new(state_dir.join("store")), lock: state_dir.join(CATALOG_LOCK) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Adds dataset `name` of `files` (its name for each, and where the file is now), signed
    /// with `key`.
    pub fn add(&self, name: &str, files: &[(String, PathBuf)], replicas: u32, successor_of: Option<&str>, now: u64, key: &SigningKey) -> Result<DatasetManifest, DatasetError> {
        check_name(name)?;
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(DatasetError::Replicas(replicas));
        }
        if files.is_empty() || files.len() > MAX_DATASET_FILES {
            return Err(DatasetError::Files(files.len()));
        }
        let mut names = HashSet::new();
        for (path, _) in files {
            swarmboot_namespace::entry::check_path(path).map_err(|e| DatasetError::BadPath { path: path.clone(), why: e.to_string() })?;
            if !names.insert(path.as_str()) {
                return Err(DatasetError::Twice(path.clone()));
            }
        }
        let _held = exclusive(&self.lock)?;
        if self.get(name)?.is_some() {
            return Err(DatasetError::Exists(name.into()));
        }
        if let Some(of) = successor_of {
            check_name(of)?;
            if self.get(of)?.is_none() {
                return Err(DatasetError::NoSuchDataset(of.into()));
            }
            if let Some(by) = self.all()?.into_iter().find(|d| d.successor_of.as_deref() == Some(of)) {
                return Err(DatasetError::HasSuccessor { of: of.into(), by: by.name });
            }
        }
        let store = &self.store;
        let mut entries = Vec::with_capacity(files.len());
        for (path, from) in files {
            let read = |source| CatalogError::Read { path: from.clone(), source };
            let (sha256, size) = store.put(from).map_err(read)?;
            let (meta, _) = store.ensure_torrent(&sha256).map_err(read)?.ok_or(CatalogError::BadFiles("a file just stored is missing from the store"))?;
            entries.push(DatasetFile { path: path.clone(), size, sha256, info_hash: hex::encode(meta.info_hash) });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let m = DatasetManifest { name: name.into(), created: now, replicas, successor_of: successor_of.map(str::to_string), files: entries };
        swarmboot_durable::create_dir_all(&self.dir).map_err(|source| CatalogError::Write { path: self.dir.clone(), source })?;
        let path = self.dir.join(format!("{name}.toml"));
        let text = toml::to_string(&m).expect("a dataset manifest serializes");
        if !swarmboot_durable::publish_new(&path, text.as_bytes(), 0o640).map_err(|source| CatalogError::Write { path: path.clone(), source })? {
            return Err(DatasetError::Exists(name.into()));
        }
        self.signed(name, key)?;
        Ok(m)
    }

    /// `name`'s manifest, if there is such a dataset.
    pub fn get(&self, name: &str) -> Result<Option<DatasetManifest>, CatalogError> {
        check_name(name)?;
        let path = self.dir.join(format!("{name}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map(Some).map_err(|e| CatalogError::BadManifest { path, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CatalogError::Read { path, source }),
        }
    }

    /// Every dataset, by name.
    pub fn all(&self) -> Result<Vec<DatasetManifest>, CatalogError> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in rd {
            let e = e.map_err(|source| CatalogError::Read { path: self.dir.clone(), source })?;
            let file = e.file_name();
            let Some(name) = file.to_str().and_then(|n| n.strip_suffix(".toml")) else { continue };
            if swarmboot_durable::is_temporary(name) || check_name(name).is_err() {
                continue;
            }
            out.extend(self.get(name)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// What changes when a dataset is added or removed, cheaply (names, sizes and times of the
    /// manifests, not their contents): a reader compares it before reading them all again.
    pub fn stamp(&self) -> Vec<(String, u64, i64)> {
        toml_stamp(&self.dir, "")
    }

    /// `name`'s manifest and its signed envelope (the signature made if missing, checked if
    /// present).
    pub fn signed(&self, name: &str, key: &SigningKey) -> Result<Option<(DatasetManifest, Vec<u8>)>, CatalogError> {
        check_name(name)?;
        let path = self.dir.join(format!("{name}.toml"));
        let Some(Signed { body, envelope }) = sign_beside(&path, key)? else { return Ok(None) };
        let m: DatasetManifest = std::str::from_utf8(&body)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str(t).map_err(|e| e.to_string()))
            .map_err(|message| CatalogError::BadManifest { path: path.clone(), message })?;
        Ok(Some((m, envelope)))
    }

    /// Removes dataset `name`: donors drop it at their next check-in; its files stay in the
    /// store until `gc`. A dataset that succeeded it stands on its own.
    pub fn remove(&self, name: &str) -> Result<DatasetManifest, DatasetError> {
        let _held = exclusive(&self.lock)?;
        let m = self.get(name)?.ok_or_else(|| DatasetError::NoSuchDataset(name.into()))?;
        let path = self.dir.join(format!("{name}.toml"));
        swarmboot_durable::remove_file(&path).map_err(|source| CatalogError::Write { path: path.clone(), source })?;
        let _ = swarmboot_durable::remove_file(&path.with_extension("sig"));
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn key() -> SigningKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    #[test]
    fn a_dataset_stores_its_files_once_and_a_successor_shares_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let d = Datasets::new(&state);
        let k = key();
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        std::fs::write(&a, "Great Expectations").unwrap();
        std::fs::write(&b, "Bleak House").unwrap();
        std::fs::write(&c, "Hard Times").unwrap();
        let nine = d.add("books-9", &[("Dickens/Great Expectations.pdf".into(), a.clone()), ("Dickens/Bleak House.pdf".into(), b.clone())], 3, None, 10, &k).unwrap();
        let files = |more: &[(&str, &PathBuf)]| -> Vec<(String, PathBuf)> { more.iter().map(|(n, p)| (n.to_string(), p.to_path_buf())).collect() };
        let ten = d
            .add("books-10", &files(&[("Dickens/Great Expectations.pdf", &a), ("Dickens/Bleak House.pdf", &b), ("Dickens/Hard Times.pdf", &c)]), 3, Some("books-9"), 20, &k)
            .unwrap();
        assert_eq!(d.store().hashes().unwrap().len(), 3, "files shared by the two datasets are stored once");
        assert_eq!(nine.bytes(), 29);
        assert_eq!(ten.successor_of.as_deref(), Some("books-9"));
        let line = ten.name_map().lines().find(|l| l.ends_with("=Dickens/Hard Times.pdf")).unwrap().to_string();
        let sha = &ten.files.iter().find(|f| f.path.ends_with("Hard Times.pdf")).unwrap().sha256;
        assert_eq!(line, format!("{}/{}/{sha}=Dickens/Hard Times.pdf", &sha[..2], &sha[..4]));
        assert_eq!(d.all().unwrap().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["books-10", "books-9"]);
        let (m, envelope) = d.signed("books-10", &k).unwrap().unwrap();
        assert_eq!(m, ten);
        assert!(swarmboot_manifest::open(&envelope, &[k.public()]).is_ok(), "signed with the server's key");
        // Its files are the catalog's too: gc keeps them while a dataset names them.
        let gc = Catalog::new(&state).gc(1, 0, 100).unwrap();
        assert_eq!(gc.blobs, 0, "no dataset file collected: {gc:?}");
        d.remove("books-9").unwrap();
        d.remove("books-10").unwrap();
        assert_eq!(Catalog::new(&state).gc(1, 0, 100).unwrap().blobs, 3);
    }

    #[test]
    fn what_cannot_be_a_dataset_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let d = Datasets::new(&dir.path().join("state"));
        let k = key();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let one = |name: &str| vec![(name.to_string(), f.clone())];
        d.add("set", &one("f"), 2, None, 1, &k).unwrap();
        assert!(matches!(d.add("set", &one("f"), 2, None, 1, &k), Err(DatasetError::Exists(_))));
        assert!(matches!(d.add("other", &one("../f"), 2, None, 1, &k), Err(DatasetError::BadPath { .. })));
        assert!(matches!(d.add("other", &[("f".into(), f.clone()), ("f".into(), f.clone())], 2, None, 1, &k), Err(DatasetError::Twice(_))));
        assert!(matches!(d.add("other", &one("f"), 0, None, 1, &k), Err(DatasetError::Replicas(0))));
        assert!(matches!(d.add("other", &[], 2, None, 1, &k), Err(DatasetError::Files(0))));
        assert!(matches!(d.add("other", &one("f"), 2, Some("nope"), 1, &k), Err(DatasetError::NoSuchDataset(_))));
        d.add("set-2", &one("f"), 2, Some("set"), 1, &k).unwrap();
        assert!(matches!(d.add("set-3", &one("f"), 2, Some("set"), 1, &k), Err(DatasetError::HasSuccessor { .. })));
        assert!(matches!(d.remove("nope"), Err(DatasetError::NoSuchDataset(_))));
        assert!(d.get("other").unwrap().is_none(), "nothing was written for the refused ones");
    }
}
