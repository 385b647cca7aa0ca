//! How manifests (images' and datasets') are kept on disk: the names they may have, the one
//! lock every change to the catalog holds, the signature beside each, and the errors of
//! reading and writing them.

use std::path::{Path, PathBuf};

use swarmboot_manifest::SigningKey;

/// The lock file in the state directory.
pub(crate) const CATALOG_LOCK: &str = "catalog.lock";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("`{0}` cannot name an image or a dataset: use 1 to 64 of a-z A-Z 0-9 . _ - , not starting with . or -")]
    BadName(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("manifest {path} is invalid: {message}")]
    BadManifest { path: PathBuf, message: String },
    #[error("no image {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    BadFiles(&'static str),
    #[error("no version {version} of image {name}")]
    NoSuchVersion { name: String, version: u32 },
    #[error("{path} does not match its signature ({reason}): it was changed after it was signed; add the image again to make a new signed version")]
    BadSignature { path: PathBuf, reason: String },
}

pub(crate) fn check_name(name: &str) -> Result<(), CatalogError> {
    let ok = (1..=64).contains(&name.len()) && !name.starts_with(['.', '-']) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadName(name.into()))
    }
}

/// Waits for, and holds until dropped, the right to change the catalog (images and datasets):
/// `gc` never removes a file an add has stored but not yet named in a manifest.
pub(crate) fn exclusive(lock: &Path) -> Result<std::fs::File, CatalogError> {
    let dir = lock.parent().expect("in the state directory");
    swarmboot_durable::create_dir_all(dir).map_err(|source| CatalogError::Write { path: dir.to_path_buf(), source })?;
    swarmboot_durable::lock_exclusive(lock).map_err(|source| CatalogError::Write { path: lock.to_path_buf(), source })
}

/// A manifest file's bytes, and the same under their signature (`swarmboot_manifest` envelope).
pub(crate) struct Signed {
    pub body: Vec<u8>,
    pub envelope: Vec<u8>,
}

/// `path`'s bytes and their signed envelope: the signature beside it (`.sig`) checked, or made
/// when missing; `None` when there is no such file.
pub(crate) fn sign_beside(path: &Path, key: &SigningKey) -> Result<Option<Signed>, CatalogError> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CatalogError::Read { path: path.to_path_buf(), source }),
    };
    let sig_path = path.with_extension("sig");
    let envelope = match std::fs::read(&sig_path) {
        Ok(mut header) => {
            header.extend_from_slice(&body);
            if let Err(e) = swarmboot_manifest::open(&header, &[key.public()]) {
                return Err(CatalogError::BadSignature { path: path.to_path_buf(), reason: e.to_string() });
            }
            header
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let envelope = swarmboot_manifest::seal(key, &body);
            let header_len = envelope.len() - body.len();
            swarmboot_durable::replace(&sig_path, &envelope[..header_len], 0o640).map_err(|source| CatalogError::Write { path: sig_path.clone(), source })?;
            envelope
        }
        Err(source) => return Err(CatalogError::Read { path: sig_path, source }),
    };
    Ok(Some(Signed { body, envelope }))
}

/// What changes when a `*.toml` in `dir` is added, removed or rewritten, cheaply (names, sizes
/// and times, not contents), each name prefixed with `prefix`: a reader compares it before
/// reading them all again.
pub(crate) fn toml_stamp(dir: &Path, prefix: &str) -> Vec<(String, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<(String, u64, i64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let m = e.metadata().ok()?;
            name.ends_with(".toml").then(|| (format!("{prefix}{name}"), m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000))
        })
        .collect();
    out.sort();
    out
}
