//! Image manifests and their versions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use swarmboot_manifest::SigningKey;

use crate::manifest_files::{check_name, exclusive, sign_beside, Signed, CATALOG_LOCK};
use crate::store::Store;

pub use crate::manifest_files::CatalogError;

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Kernel,
    Initrd,
    Rootfs,
    /// LTSP's `ltsp.img` (`ltsp initrd`: LTSP's client code, `ltsp.conf`, the server's users
    /// and SSH host keys), applied to the root filesystem before LTSP's init runs, as LTSP's
    /// own initramfs hook does. Only beside a root filesystem.
    Ltsp,
}

impl Role {
    /// The name in manifests, and of the file a fetched image links under it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Kernel => "kernel",
            Role::Initrd => "initrd",
            Role::Rootfs => "rootfs",
            Role::Ltsp => "ltsp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub role: Role,
    pub size: u64,
    pub sha256: String,
    /// Info hash (hex) of the store's torrent of this file (absent in manifests written
    /// before the store made torrents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_hash: Option<String>,
}

/// One version of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<u32>,
    #[serde(default)]
    pub cmdline: String,
    pub files: Vec<FileEntry>,
    /// How the image was built, for images `swarmboot image build` made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildInputs>,
}

/// The inputs of an image `swarmboot image build` made, signed with its manifest, so it can be
/// made again and audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildInputs {
    /// What was built (`elchos`).
    pub recipe: String,
    /// The Debian release.
    pub suite: String,
    /// The apt source (empty: mmdebstrap's default, the release with its updates and security).
    pub mirror: String,
    /// Packages asked for beyond the recipe's (`--include`).
    pub include: Vec<String>,
    /// Every package in the image, `name=version`, sorted.
    pub packages: Vec<String>,
}

impl Manifest {
    pub fn file(&self, role: Role) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.role == role)
    }

    /// Each distinct file (two roles may share one, by SHA-256) among those of the roles
    /// `wanted` accepts, in manifest order, with the wanted roles it serves.
    pub fn distinct_files(&self, wanted: impl Fn(Role) -> bool) -> Vec<(&FileEntry, Vec<Role>)> {
        let mut out: Vec<(&FileEntry, Vec<Role>)> = Vec::new();
        for f in self.files.iter().filter(|f| wanted(f.role)) {
            match out.iter_mut().find(|(d, _)| d.sha256 == f.sha256) {
                Some((_, roles)) => roles.push(f.role),
                None => out.push((f, vec![f.role])),
            }
        }
        out
    }
}

/// The registered stub: the kernel machines boot in swarm mode and the initramfs with
/// `swarmboot-init` that fetches their image (`<state_dir>/stub.toml`; both files live in the
/// store like image files, so they are served from `/blob/<sha256>` and kept by `gc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubRecord {
    pub kernel_sha256: String,
    pub initrd_sha256: String,
    /// The kernel's release (`6.1.0-28-amd64`).
    pub release: String,
    pub initrd_size: u64,
    /// Seconds since the Unix epoch.
    pub built: u64,
}

/// What [`Catalog::gc`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub versions: Vec<(String, u32)>,
    pub blobs: usize,
    pub bytes: u64,
}

/// The catalog under a state directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    images: PathBuf,
    store: Store,
    stub: PathBuf,
    /// Held by whoever changes the catalog (add, remove, gc), so gc never removes a file an
    /// add has stored but not yet named in a manifest.
    lock: PathBuf,
}

/// Each role once; LTSP's `ltsp.img` only beside a root filesystem it is applied to.
fn check_files(files: &[(Role, &Path)]) -> Result<(), CatalogError> {
    let has = |r: Role| files.iter().filter(|(role, _)| *role == r).count();
    if [Role::Kernel, Role::Initrd, Role::Rootfs, Role::Ltsp].into_iter().any(|r| has(r) > 1) {
        return Err(CatalogError::BadFiles("an image has at most one file of each role (kernel, initrd, rootfs, ltsp)"));
    }
    if has(Role::Ltsp) == 1 && has(Role::Rootfs) == 0 {
        return Err(CatalogError::BadFiles("LTSP's ltsp.img is applied to a root filesystem: give the image's --rootfs too"));
    }
    Ok(())
}

/// An `N.toml` in an image's directory that is not a manifest, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenManifest {
    pub path: PathBuf,
    pub why: String,
}

impl Catalog {
    pub fn new(state_dir: &Path) -> Self {
        Catalog { images: state_dir.join("images"), store: Store::new(state_dir.join("store")), stub: state_dir.join("stub.toml"), lock: state_dir.join(CATALOG_LOCK) }
    }

    /// Waits for, and holds until dropped, the right to change the catalog (datasets too).
    fn exclusive(&self) -> Result<std::fs::File, CatalogError> {
        exclusive(&self.lock)
    }

    /// The highest version number any file of `name` claims, readable or not (a version
    /// number is never given out twice, even if its manifest was left broken).
    fn highest_claimed(&self, name: &str) -> Result<Option<u32>, CatalogError> {
        let dir = self.images.join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut top = None;
        for e in rd {
            let path = e.map_err(|source| CatalogError::Read { path: dir.clone(), source })?.path();
            if let Some(v) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".toml")).and_then(|n| n.parse::<u32>().ok()) {
                top = top.max(Some(v));
            }
        }
        Ok(top)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Adds a version of `name` made of these files: version 1, or the latest + 1, signed with
    /// `key` (`VERSION.sig` beside `VERSION.toml`).
    pub fn add(&self, name: &str, files: &[(Role, &Path)], cmdline: &str, now: u64, key: &SigningKey) -> Result<Manifest, CatalogError> {
        self.add_unless_same(name, files, cmdline, now, key, false, None).map(|(m, _)| m)
    }

    /// Like [`Catalog::add`], for an image `swarmboot image build` made: `build` goes into the
    /// signed manifest.
    pub fn add_built(&self, name: &str, files: &[(Role, &Path)], cmdline: &str, now: u64, key: &SigningKey, build: BuildInputs) -> Result<Manifest, CatalogError> {
        self.add_unless_same(name, files, cmdline, now, key, false, Some(build)).map(|(m, _)| m)
    }

    /// Like [`Catalog::add`], but when the latest version has the same files (by SHA-256) and
    /// command line it is returned instead of a new one (`false`: nothing added). For tools
    /// that publish on every run (the LTSP plugin).
    pub fn add_if_changed(&self, name: &str, files: &[(Role, &Path)], cmdline: &str, now: u64, key: &SigningKey) -> Result<(Manifest, bool), CatalogError> {
        self.add_unless_same(name, files, cmdline, now, key, true, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_unless_same(
        &self,
        name: &str,
        files: &[(Role, &Path)],
        cmdline: &str,
        now: u64,
        key: &SigningKey,
        unless_same: bool,
        build: Option<BuildInputs>,
    ) -> Result<(Manifest, bool), CatalogError> {
        check_name(name)?;
        check_files(files)?;
        let _held = self.exclusive()?;
        let mut entries = Vec::new();
        for (role, path) in files {
            let (sha256, size) = self.store.put(path).map_err(|source| CatalogError::Read { path: path.to_path_buf(), source })?;
            let torrent = self.store.torrent(&sha256).map_err(|source| CatalogError::Read { path: path.to_path_buf(), source })?;
            let info_hash = torrent.map(|(m, _)| hex::encode(m.info_hash));
            entries.push(FileEntry { role: *role, size, sha256, info_hash });
        }
        if unless_same {
            if let Some(latest) = self.latest(name)? {
                if latest.cmdline == cmdline && latest.files == entries {
                    return Ok((latest, false));
                }
            }
        }
        let dir = self.images.join(name);
        swarmboot_durable::create_dir_all(&dir).map_err(|source| CatalogError::Write { path: dir.clone(), source })?;
        // Claim the next version number and fill it in one step (written whole under a
        // temporary name, then linked: a reader never sees it part-written, and two adds
        // cannot both get it).
        swarmboot_durable::crash_point("catalog:stored");
        loop {
            let latest = self.versions(name)?.last().map(|m| m.version);
            let version = self.highest_claimed(name)?.map_or(1, |v| v + 1);
            let m = Manifest { name: name.into(), version, created: now, predecessor: latest, cmdline: cmdline.into(), files: entries.clone(), build: build.clone() };
            let path = dir.join(format!("{version}.toml"));
            let text = toml::to_string(&m).expect("a manifest serializes");
            if swarmboot_durable::publish_new(&path, text.as_bytes(), 0o640).map_err(|source| CatalogError::Write { path: path.clone(), source })? {
                swarmboot_durable::crash_point("catalog:published");
                self.signed(name, version, key)?;
                return Ok((m, true));
            }
        }
    }

    /// Every version of `name`, oldest first (empty if there is no such image).
    pub fn versions(&self, name: &str) -> Result<Vec<Manifest>, CatalogError> {
        Ok(self.scan(name)?.0)
    }

    /// `name`'s versions, oldest first, and its `N.toml` files that are not manifests (left
    /// part-written by a crash of an older version, which wrote in place, or edited by hand),
    /// each with why. Those are not versions: the others stay usable.
    fn scan(&self, name: &str) -> Result<(Vec<Manifest>, Vec<BrokenManifest>), CatalogError> {
        check_name(name)?;
        let dir = self.images.join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok((vec![], vec![]));
        };
        let (mut out, mut broken) = (Vec::new(), Vec::new());
        for e in rd {
            let path = e.map_err(|source| CatalogError::Read { path: dir.clone(), source })?.path();
            let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".toml")) else {
                continue;
            };
            if stem.parse::<u32>().is_err() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Read { path: path.clone(), source })?;
            match toml::from_str::<Manifest>(&text) {
                Ok(m) => out.push(m),
                Err(_) if text.trim().is_empty() => broken.push(BrokenManifest { path, why: "empty".into() }),
                Err(e) => broken.push(BrokenManifest { path, why: e.message().to_string() }),
            }
        }
        out.sort_by_key(|m| m.version);
        broken.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, broken))
    }

    /// Every `N.toml` in the catalog that is not a manifest, with why (see [`Catalog::versions`]).
    pub fn broken_manifests(&self) -> Result<Vec<BrokenManifest>, CatalogError> {
        let mut out = Vec::new();
        for n in self.names()? {
            out.extend(self.scan(&n)?.1);
        }
        Ok(out)
    }

    pub fn latest(&self, name: &str) -> Result<Option<Manifest>, CatalogError> {
        Ok(self.versions(name)?.pop())
    }

    pub fn get(&self, name: &str, version: u32) -> Result<Option<Manifest>, CatalogError> {
        Ok(self.versions(name)?.into_iter().find(|m| m.version == version))
    }

    /// Version `version` of `name` as a signed envelope (`swarmboot_manifest::envelope`): the
    /// manifest's bytes exactly as stored, under the signature made when it was added. A
    /// version added before manifests were signed is signed now, once (`VERSION.sig` is
    /// written). A manifest that no longer matches its signature is an error, never served.
    pub fn signed(&self, name: &str, version: u32, key: &SigningKey) -> Result<Option<(Manifest, Vec<u8>)>, CatalogError> {
        check_name(name)?;
        let path = self.images.join(name).join(format!("{version}.toml"));
        let Some(Signed { body, envelope }) = sign_beside(&path, key)? else { return Ok(None) };
        let m: Manifest = std::str::from_utf8(&body)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str(t).map_err(|e| e.to_string()))
            .map_err(|message| CatalogError::BadManifest { path: path.clone(), message })?;
        Ok(Some((m, envelope)))
    }

    pub fn set_stub(&self, kernel: &Path, initrd: &Path, release: &str, now: u64) -> Result<StubRecord, CatalogError> {
        let (kernel_sha256, _) = self.store.put(kernel).map_err(|source| CatalogError::Read { path: kernel.to_path_buf(), source })?;
        let (initrd_sha256, initrd_size) = self.store.put(initrd).map_err(|source| CatalogError::Read { path: initrd.to_path_buf(), source })?;
        let rec = StubRecord { kernel_sha256, initrd_sha256, release: release.to_string(), initrd_size, built: now };
        swarmboot_durable::replace(&self.stub, toml::to_string(&rec).expect("serializes").as_bytes(), 0o640)
            .map_err(|source| CatalogError::Write { path: self.stub.clone(), source })?;
        Ok(rec)
    }

    /// The registered stub, if one was built.
    pub fn stub(&self) -> Result<Option<StubRecord>, CatalogError> {
        match std::fs::read_to_string(&self.stub) {
            Ok(text) => toml::from_str(&text).map(Some).map_err(|e| CatalogError::BadManifest { path: self.stub.clone(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CatalogError::Read { path: self.stub.clone(), source }),
        }
    }

    /// Names of all images.
    /// What changes when a version of any image is added or removed (see
    /// [`crate::datasets::Datasets::stamp`]).
    pub fn stamp(&self) -> Vec<(String, u64, i64)> {
        self.names().unwrap_or_default().iter().flat_map(|n| crate::manifest_files::toml_stamp(&self.images.join(n), &format!("{n}/"))).collect()
    }

    pub fn names(&self) -> Result<Vec<String>, CatalogError> {
        let Ok(rd) = std::fs::read_dir(&self.images) else {
            return Ok(vec![]);
        };
        let mut names: Vec<String> =
            rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| check_name(n).is_ok()).collect();
        names.sort();
        Ok(names)
    }

    /// Every version of every image.
    pub fn all(&self) -> Result<Vec<Manifest>, CatalogError> {
        let mut out = Vec::new();
        for n in self.names()? {
            out.extend(self.versions(&n)?);
        }
        Ok(out)
    }

    /// The files machines fetch through the swarm: every image version's and every dataset's,
    /// by SHA-256, with their sizes.
    pub fn served_files(&self) -> Result<std::collections::BTreeMap<String, u64>, CatalogError> {
        let mut files: std::collections::BTreeMap<String, u64> = self.all()?.into_iter().flat_map(|m| m.files.into_iter().map(|f| (f.sha256, f.size))).collect();
        let datasets = crate::datasets::Datasets::new(self.lock.parent().expect("in the state directory"));
        files.extend(datasets.all()?.into_iter().flat_map(|d| d.files.into_iter().map(|f| (f.sha256, f.size))));
        Ok(files)
    }

    /// Removes one version, or (with `None`) the whole image. Files stay in the store until
    /// [`Catalog::gc`].
    pub fn remove(&self, name: &str, version: Option<u32>) -> Result<Vec<Manifest>, CatalogError> {
        let _held = self.exclusive()?;
        self.remove_held(name, version)
    }

    fn remove_held(&self, name: &str, version: Option<u32>) -> Result<Vec<Manifest>, CatalogError> {
        let versions = self.versions(name)?;
        if versions.is_empty() {
            return Err(CatalogError::NoSuchImage(name.into()));
        }
        let gone: Vec<Manifest> = match version {
            Some(v) => {
                let m = versions.into_iter().find(|m| m.version == v).ok_or(CatalogError::NoSuchVersion { name: name.into(), version: v })?;
                vec![m]
            }
            None => versions,
        };
        for m in &gone {
            let path = self.images.join(name).join(format!("{}.toml", m.version));
            swarmboot_durable::remove_file(&path).map_err(|source| CatalogError::Write { path: path.clone(), source })?;
            let _ = swarmboot_durable::remove_file(&path.with_extension("sig"));
        }
        let _ = swarmboot_durable::remove_dir(&self.images.join(name)); // only if now empty
        Ok(gone)
    }

    /// Removes old versions and unreferenced files. A version goes when it is not among the
    /// `keep` newest of its image and its successor was added at least `grace_secs` ago (so a
    /// machine that started on it has had time to finish). Then every stored file no remaining
    /// version references goes.
    pub fn gc(&self, keep: usize, grace_secs: u64, now: u64) -> Result<GcReport, CatalogError> {
        let _held = self.exclusive()?;
        let mut report = GcReport::default();
        for name in self.names()? {
            let versions = self.versions(&name)?;
            let n = versions.len();
            for (i, m) in versions.iter().enumerate() {
                let superseded_at = versions.get(i + 1).map(|s| s.created);
                let old_enough = superseded_at.is_some_and(|t| now.saturating_sub(t) >= grace_secs);
                if i + keep < n && old_enough {
                    self.remove_held(&name, Some(m.version))?;
                    report.versions.push((name.clone(), m.version));
                }
            }
        }
        let mut referenced: HashSet<String> = self.served_files()?.into_keys().collect();
        if let Some(stub) = self.stub()? {
            referenced.extend([stub.kernel_sha256, stub.initrd_sha256]);
        }
        let store_err = |source| CatalogError::Write { path: self.store.root().to_path_buf(), source };
        // What crashed writers left (no writer runs while the lock is held).
        let mut dirs = vec![self.store.root().join("tmp")];
        dirs.extend(self.names()?.into_iter().map(|n| self.images.join(n)));
        for dir in dirs {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.file_name().to_str().is_some_and(swarmboot_durable::is_temporary) {
                    report.bytes += e.metadata().map_or(0, |m| m.len());
                    let _ = swarmboot_durable::remove_file(&e.path());
                }
            }
        }
        for h in self.store.hashes().map_err(store_err)? {
            if !referenced.contains(&h) {
                let size = self.store.path_of(&h).and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
                self.store.remove(&h).map_err(store_err)?;
                report.blobs += 1;
                report.bytes += size;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    fn files(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
        let k = dir.join(format!("k-{tag}"));
        let i = dir.join(format!("i-{tag}"));
        std::fs::write(&k, format!("kernel {tag}")).unwrap();
        std::fs::write(&i, "shared initrd").unwrap();
        (k, i)
    }

    #[test]
    fn versions_chain_and_share_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(&dir.path().join("state"));
        let k = key();
        let (k1, i1) = files(dir.path(), "1");
        let (k2, i2) = files(dir.path(), "2");
        let v1 = c.add("elchos", &[(Role::Kernel, &k1), (Role::Initrd, &i1)], "quiet", 100, &k).unwrap();
        let v2 = c.add("elchos", &[(Role::Kernel, &k2), (Role::Initrd, &i2)], "quiet", 200, &k).unwrap();
        assert_eq!((v1.version, v1.predecessor), (1, None));
        assert_eq!((v2.version, v2.predecessor), (2, Some(1)));
        assert_eq!(v1.file(Role::Initrd), v2.file(Role::Initrd));
        let initrd = v1.file(Role::Initrd).unwrap();
        let (m, _) = c.store().torrent(&initrd.sha256).unwrap().unwrap();
        assert_eq!(initrd.info_hash.as_deref(), Some(hex::encode(m.info_hash).as_str()), "one file, one torrent, in both versions");
        assert_eq!(c.store().hashes().unwrap().len(), 3, "the shared initrd is stored once");
        assert_eq!(c.latest("elchos").unwrap().unwrap(), v2);
        assert_eq!(c.get("elchos", 1).unwrap().unwrap(), v1);
        assert_eq!(c.names().unwrap(), vec!["elchos".to_string()]);
        let text = std::fs::read_to_string(dir.path().join("state/images/elchos/2.toml")).unwrap();
        assert!(text.contains("predecessor = 1") && text.contains("role = \"kernel\""), "{text}");
    }

    /// Publishing the same files and command line again adds nothing; a changed file or
    /// command line adds a version.
    #[test]
    fn add_if_changed_adds_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(&dir.path().join("state"));
        let k = key();
        let (k1, i1) = files(dir.path(), "1");
        let (v1, new) = c.add_if_changed("ltsp", &[(Role::Kernel, &k1), (Role::Initrd, &i1)], "quiet", 100, &k).unwrap();
        assert!(new && v1.version == 1);
        let (same, new) = c.add_if_changed("ltsp", &[(Role::Kernel, &k1), (Role::Initrd, &i1)], "quiet", 200, &k).unwrap();
        assert!(!new && same == v1, "unchanged: the latest is returned");
        let (v2, new) = c.add_if_changed("ltsp", &[(Role::Kernel, &k1), (Role::Initrd, &i1)], "quiet splash", 300, &k).unwrap();
        assert!(new && v2.version == 2, "a new command line is a new version");
        let (k3, _) = files(dir.path(), "3");
        let (v3, new) = c.add_if_changed("ltsp", &[(Role::Kernel, &k3), (Role::Initrd, &i1)], "quiet splash", 400, &k).unwrap();
        assert!(new && v3.version == 3 && v3.predecessor == Some(2));
    }

    /// LTSP republished after `ltsp initrd` (new users): a new version whose root filesystem
    /// is the same entry (same SHA-256 and torrent, so machines seeding it serve the new
    /// version too), stored once. An `ltsp.img` needs a root to apply to; each role once.
    #[test]
    fn a_new_ltsp_img_is_a_new_version_with_the_same_root() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(&dir.path().join("state"));
        let k = key();
        let (k1, i1) = files(dir.path(), "1");
        let root = dir.path().join("root.img");
        std::fs::write(&root, vec![7u8; 300_000]).unwrap();
        let (l1, l2) = (dir.path().join("ltsp1.img"), dir.path().join("ltsp2.img"));
        std::fs::write(&l1, "passwd without alice").unwrap();
        std::fs::write(&l2, "passwd with alice").unwrap();
        let with = |l: &Path| [(Role::Kernel, k1.clone()), (Role::Initrd, i1.clone()), (Role::Rootfs, root.clone()), (Role::Ltsp, l.to_path_buf())];
        let (f1, f2) = (with(&l1), with(&l2));
        fn borrowed(f: &[(Role, PathBuf)]) -> Vec<(Role, &Path)> {
            f.iter().map(|(r, p)| (*r, p.as_path())).collect()
        }
        let (v1, _) = c.add_if_changed("bookworm", &borrowed(&f1), "", 100, &k).unwrap();
        let (same, new) = c.add_if_changed("bookworm", &borrowed(&f1), "", 150, &k).unwrap();
        assert!(!new && same == v1);
        let (v2, new) = c.add_if_changed("bookworm", &borrowed(&f2), "", 200, &k).unwrap();
        assert!(new && v2.version == 2);
        assert_eq!(v2.file(Role::Rootfs), v1.file(Role::Rootfs), "the root is the same entry, torrent included");
        assert!(v2.file(Role::Rootfs).unwrap().info_hash.is_some());
        assert_ne!(v2.file(Role::Ltsp), v1.file(Role::Ltsp));
        let roots = c.store().hashes().unwrap().into_iter().filter(|h| std::fs::metadata(c.store().path_of(h).unwrap()).unwrap().len() == 300_000).count();
        assert_eq!(roots, 1, "the root is stored once");

        let alone = c.add("bookworm", &[(Role::Kernel, &k1), (Role::Initrd, &i1), (Role::Ltsp, &l1)], "", 300, &k).unwrap_err();
        assert!(alone.to_string().contains("give the image's --rootfs too"), "{alone}");
        let twice = c.add("bookworm", &[(Role::Kernel, &k1), (Role::Initrd, &i1), (Role::Kernel, &k1)], "", 300, &k).unwrap_err();
        assert!(twice.to_string().contains("at most one file of each role"), "{twice}");
    }

    #[test]
    fn distinct_files_count_a_shared_file_once_with_its_roles() {
        let e = |role, sha: &str, size| FileEntry { role, size, sha256: sha.repeat(64), info_hash: None };
        let m = Manifest {
            name: "x".into(),
            version: 1,
            created: 0,
            predecessor: None,
            cmdline: String::new(),
            files: vec![e(Role::Kernel, "a", 1), e(Role::Initrd, "b", 2), e(Role::Rootfs, "b", 2), e(Role::Ltsp, "c", 3)],
            build: None,
        };
        let all: Vec<(u64, Vec<Role>)> = m.distinct_files(|_| true).into_iter().map(|(f, r)| (f.size, r)).collect();
        assert_eq!(all, [(1, vec![Role::Kernel]), (2, vec![Role::Initrd, Role::Rootfs]), (3, vec![Role::Ltsp])]);
        let root: Vec<(u64, Vec<Role>)> = m.distinct_files(|r| r == Role::Rootfs).into_iter().map(|(f, r)| (f.size, r)).collect();
        assert_eq!(root, [(2, vec![Role::Rootfs])]);
    }

    /// Versions are signed when added; the envelope carries the stored bytes; a version from
    /// before signing is signed on first use; a manifest edited on disk is refused.
    #[test]
    fn versions_are_signed_and_edits_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(&dir.path().join("state"));
        let k = key();
        let (k1, i1) = files(dir.path(), "1");
        let m = c.add("elchos", &[(Role::Kernel, &k1), (Role::Initrd, &i1)], "quiet", 100, &k).unwrap();
        let toml_path = dir.path().join("state/images/elchos/1.toml");
        let sig_path = toml_path.with_extension("sig");
        assert!(sig_path.exists(), "signed when added");
        let (got, envelope) = c.signed("elchos", 1, &k).unwrap().unwrap();
        assert_eq!(got, m);
        let (body, by) = swarmboot_manifest::open(&envelope, &[k.public()]).unwrap();
        assert_eq!((body, by), (std::fs::read(&toml_path).unwrap().as_slice(), k.public()));
        assert!(c.signed("elchos", 2, &k).unwrap().is_none());
        // A manifest written before signing existed gets its signature on first use.
        std::fs::remove_file(&sig_path).unwrap();
        let (_, again) = c.signed("elchos", 1, &k).unwrap().unwrap();
        assert!(sig_path.exists());
        assert!(swarmboot_manifest::open(&again, &[k.public()]).is_ok());
        // Someone edits the stored manifest: the server refuses to serve it.
        let text = std::fs::read_to_string(&toml_path).unwrap().replace("quiet", "init=/bin/sh");
        std::fs::write(&toml_path, text).unwrap();
        assert!(matches!(c.signed("elchos", 1, &k), Err(CatalogError::BadSignature { .. })));
        c.remove("elchos", Some(1)).unwrap();
        assert!(!sig_path.exists(), "the signature goes with its version");
    }

    #[test]
    fn remove_keeps_files_until_gc_and_gc_honours_keep_and_grace() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(&dir.path().join("state"));
        let signer = key();
        for (t, now) in [("1", 100), ("2", 200), ("3", 300)] {
            let (k, i) = files(dir.path(), t);
            c.add("img", &[(Role::Kernel, &k), (Role::Initrd, &i)], "", now, &signer).unwrap();
        }
        // keep 1, but version 2 was superseded (at 300) only 50 s before "now": it stays.
        let r = c.gc(1, 100, 350).unwrap();
        assert_eq!(r.versions, vec![("img".to_string(), 1)]);
        assert_eq!(r.blobs, 1, "kernel 1 went; the shared initrd stays");
        let r = c.gc(1, 100, 400).unwrap();
        assert_eq!(r.versions, vec![("img".to_string(), 2)]);
        assert_eq!(c.versions("img").unwrap().len(), 1);
        c.remove("img", None).unwrap();
        assert_eq!(c.store().hashes().unwrap().len(), 2, "files stay until gc");
        let (sk, si) = (dir.path().join("stub-kernel"), dir.path().join("stub-initrd"));
        std::fs::write(&sk, "stub kernel").unwrap();
        std::fs::write(&si, "stub initrd").unwrap();
        let stub = c.set_stub(&sk, &si, "6.1.0-1-amd64", 450).unwrap();
        assert_eq!(c.stub().unwrap(), Some(stub), "registered");
        assert_eq!(c.gc(1, 0, 500).unwrap().blobs, 2, "the image's files go, the stub's stay");
        assert_eq!(c.store().hashes().unwrap().len(), 2);
        assert!(c.names().unwrap().is_empty());
    }

    #[test]
    fn names_and_missing_things_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(dir.path());
        for bad in ["", "../x", "a/b", ".hidden", "-x", &"a".repeat(65)] {
            assert!(matches!(c.versions(bad), Err(CatalogError::BadName(_))), "{bad:?}");
        }
        assert!(matches!(c.remove("nope", None), Err(CatalogError::NoSuchImage(_))));
        let (k, i) = files(dir.path(), "x");
        let signer = key();
        c.add("ok", &[(Role::Kernel, &k), (Role::Initrd, &i)], "", 1, &signer).unwrap();
        assert!(matches!(c.remove("ok", Some(9)), Err(CatalogError::NoSuchVersion { .. })));
        assert!(matches!(c.add("ok", &[(Role::Kernel, &dir.path().join("missing"))], "", 2, &signer), Err(CatalogError::Read { .. })));
    }
}
