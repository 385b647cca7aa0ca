//! Seeding an image that was fetched and verified before, from its directory (the layout
//! [`fetch`](crate::fetch) writes), without downloading or hashing it again: what the stub's
//! seeder does after a kexec carried the image into the new kernel's initramfs.
//!
//! Opening is synchronous and opens every file, so a caller can open, fork, and let the
//! image's own init delete the directory (Debian's `run-init` empties the initramfs): the
//! open descriptors keep the bytes.

use std::path::{Path, PathBuf};

use swarmboot_peerwire::Bitfield;
use swarmboot_swarm::engine::{random_peer_id, Engine, PeerListener};
use swarmboot_swarm::storage::FileStorage;
use swarmboot_torrent::Metainfo;

use crate::{check_torrent, engine_config, verify_manifest, FetchConfig, FetchError, FetchProgress, Fetched, Seeds, SignedManifest};

/// A fetched image's directory, its manifest re-checked against the trusted keys and every
/// file open.
pub struct VerifiedImage {
    manifest: SignedManifest,
    dir: PathBuf,
    files: Vec<(Metainfo, FileStorage)>,
    peer_id: [u8; 20],
}

impl VerifiedImage {
    /// Opens `dir`: `manifest.signed` must open with `cfg.trusted` and name `cfg.image`; each
    /// file of the roles in `cfg.roles` (every file when `None`) with a torrent needs `<sha256>.torrent` (checked against the signed info hash) and
    /// `<sha256>` of the signed size. The bytes themselves are trusted: they were checked
    /// piece by piece and by SHA-256 when they were fetched.
    pub fn open(dir: &Path, cfg: &FetchConfig) -> Result<VerifiedImage, FetchError> {
        let io = |path: PathBuf| move |source| FetchError::Io { path, source };
        let env_path = dir.join("manifest.signed");
        let envelope = std::fs::read(&env_path).map_err(io(env_path))?;
        let manifest = verify_manifest(&envelope, cfg)?;
        let mut files = Vec::new();
        let wanted = |role| cfg.roles.as_ref().is_none_or(|r| r.contains(&role));
        for (entry, _) in manifest.manifest.distinct_files(wanted).into_iter().filter(|(f, _)| f.info_hash.is_some()) {
            let t = dir.join(format!("{}.torrent", entry.sha256));
            let meta = check_torrent(&std::fs::read(&t).map_err(io(t))?, entry)?;
            let data = dir.join(&entry.sha256);
            let len = std::fs::metadata(&data).map_err(io(data.clone()))?.len();
            if len != entry.size {
                return Err(FetchError::Io { path: data, source: std::io::Error::other(format!("{len} bytes, the signed manifest says {}", entry.size)) });
            }
            let storage = FileStorage::open_existing(&meta, dir).map_err(io(data))?;
            files.push((meta, storage));
        }
        Ok(VerifiedImage { manifest, dir: dir.to_path_buf(), files, peer_id: random_peer_id() })
    }

    pub fn manifest(&self) -> &SignedManifest {
        &self.manifest
    }

    /// Bytes of the files opened (each once).
    pub fn files_size(&self) -> u64 {
        self.files.iter().map(|(m, _)| m.total_length()).sum()
    }

    /// Seeds every file (all pieces present) on `listener`, announcing to `cfg.server`'s
    /// tracker, until [`Fetched::shutdown`].
    pub async fn seed(self, listener: PeerListener, cfg: &FetchConfig) -> Result<Fetched, FetchError> {
        let mut engines = Vec::new();
        let total = self.files_size();
        for (meta, storage) in self.files {
            let have = Bitfield::full(meta.pieces.len() as u32);
            engines.push(Engine::start_on(&listener, &meta, storage, have, engine_config(cfg, &meta, self.peer_id)).await?);
        }
        let progress = FetchProgress { bytes_have: total, total, ..Default::default() };
        Ok(Fetched { manifest: self.manifest, out: self.dir, progress, seeds: Seeds { progress, engines, listener: Some(listener) } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_image::{FileEntry, Manifest, Role};
    use swarmboot_manifest::SigningKey;

    /// A fetched-image directory for `data` as the rootfs, signed by a key made in `keys`.
    fn fetched_dir(dir: &Path, keys: &Path, data: &[u8]) -> (FetchConfig, String) {
        use sha2::Digest;
        let key = SigningKey::load_or_create(keys).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(data));
        let (meta, torrent) = Metainfo::single_file(&sha, data, 16384, None, true);
        let m = Manifest {
            name: "elchos".into(),
            version: 3,
            created: 0,
            predecessor: None,
            cmdline: String::new(),
            files: vec![FileEntry { role: Role::Rootfs, size: data.len() as u64, sha256: sha.clone(), info_hash: Some(hex::encode(meta.info_hash)) }],
            build: None,
        };
        std::fs::write(dir.join("manifest.signed"), swarmboot_manifest::seal(&key, toml::to_string(&m).unwrap().as_bytes())).unwrap();
        std::fs::write(dir.join(format!("{sha}.torrent")), torrent).unwrap();
        std::fs::write(dir.join(&sha), data).unwrap();
        (FetchConfig::new("http://127.0.0.1:1", "elchos", dir, vec![key.public()]), sha)
    }

    #[test]
    fn a_fetched_directory_opens_and_every_piece_counts_as_present() {
        let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (cfg, _) = fetched_dir(dir.path(), keys.path(), &data);
        let image = VerifiedImage::open(dir.path(), &cfg).unwrap();
        assert_eq!(image.manifest().manifest.version, 3);
        assert_eq!(image.files.len(), 1);
        assert_eq!(image.files[0].0.pieces.len(), 7, "100 000 bytes in 16 KiB pieces");
    }

    #[test]
    fn only_the_roles_asked_for_are_opened() {
        let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut cfg, sha) = fetched_dir(dir.path(), keys.path(), &[9u8; 40_000]);
        cfg.roles = Some(vec![Role::Kernel]);
        let image = VerifiedImage::open(dir.path(), &cfg).unwrap();
        assert_eq!((image.files.len(), image.files_size()), (0, 0), "the rootfs is not among the roles asked for");
        cfg.roles = Some(vec![Role::Rootfs]);
        std::fs::remove_file(dir.path().join(&sha)).unwrap();
        assert!(VerifiedImage::open(dir.path(), &cfg).is_err(), "a role asked for must be there");
    }

    #[test]
    fn a_foreign_key_a_bad_torrent_or_a_short_file_is_refused() {
        let (dir, keys, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let data = vec![5u8; 50_000];
        let (mut cfg, sha) = fetched_dir(dir.path(), keys.path(), &data);
        let good = cfg.trusted.clone();

        cfg.trusted = vec![SigningKey::load_or_create(other.path()).unwrap().public()];
        assert!(matches!(VerifiedImage::open(dir.path(), &cfg), Err(FetchError::Untrusted { .. })));
        cfg.trusted = good;

        let torrent = dir.path().join(format!("{sha}.torrent"));
        let (_, foreign) = Metainfo::single_file(&sha, &vec![6u8; 50_000], 16384, None, true);
        let kept = std::fs::read(&torrent).unwrap();
        std::fs::write(&torrent, foreign).unwrap();
        assert!(matches!(VerifiedImage::open(dir.path(), &cfg), Err(FetchError::BadTorrent { .. })));
        std::fs::write(&torrent, kept).unwrap();

        std::fs::write(dir.path().join(&sha), &data[..40_000]).unwrap();
        let e = VerifiedImage::open(dir.path(), &cfg).err().expect("a short file is refused");
        assert!(e.to_string().contains("40000 bytes, the signed manifest says 50000"), "{e}");
    }
}
