//! Boot images are datasets too (issue 20): version V of image NAME is the dataset `NAME@V`
//! (`@` is in no name a person gives a dataset), made of the image's files (each named by its
//! role), succeeding the image's previous version. The server places them like any dataset:
//! the newest version of each image on [`IMAGE_REPLICAS`] donor besides the server's own seed
//! — and a machine that booted version V says so in its donor's check-in, so the server tells
//! it to take the next version wherever it has room (the placement's successor rule), fetching
//! only the files it lacks. Their manifests are made from the image manifests and signed when
//! asked for; nothing is stored for them.

use swarmboot_manifest::SigningKey;

use crate::catalog::{Catalog, Manifest};
use crate::datasets::{DatasetFile, DatasetManifest};
use crate::manifest_files::{check_name, CatalogError};

/// How many donors hold the newest version of each image besides the server (machines that
/// booted the version before take it on top, as its successor).
pub const IMAGE_REPLICAS: u32 = 1;

/// `elchos@2`.
pub fn image_dataset_name(image: &str, version: u32) -> String {
    format!("{image}@{version}")
}

/// `elchos@2` → (`elchos`, 2); `None` for any other name (a version is written without
/// leading zeros).
pub fn parse_image_dataset(name: &str) -> Option<(&str, u32)> {
    let (image, v) = name.split_once('@')?;
    check_name(image).ok()?;
    let version: u32 = v.parse().ok()?;
    (version.to_string() == v).then_some((image, version))
}

/// Version `m` of an image as a dataset succeeding `previous` (the version before it); `None`
/// for a version with a file that has no torrent (added before files had them): donors fetch
/// by torrent.
pub fn image_dataset(m: &Manifest, previous: Option<u32>) -> Option<DatasetManifest> {
    let files = m
        .distinct_files(|_| true)
        .into_iter()
        .map(|(f, roles)| {
            Some(DatasetFile { path: roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join("+"), size: f.size, sha256: f.sha256.clone(), info_hash: f.info_hash.clone()? })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(DatasetManifest {
        name: image_dataset_name(&m.name, m.version),
        created: m.created,
        replicas: IMAGE_REPLICAS,
        successor_of: previous.map(|p| image_dataset_name(&m.name, p)),
        files,
    })
}

/// Every version of every image in `images` as a dataset, each succeeding the version before.
pub fn image_datasets(images: &Catalog) -> Result<Vec<DatasetManifest>, CatalogError> {
    let mut out = Vec::new();
    for name in images.names()? {
        let mut previous = None;
        for m in images.versions(&name)? {
            if let Some(d) = image_dataset(&m, previous) {
                out.push(d);
                previous = Some(m.version);
            }
        }
    }
    Ok(out)
}

/// Dataset `NAME@V`'s manifest and its envelope, signed now with `key` (`None`: no such
/// image version, or not an image dataset's name).
pub fn signed_image_dataset(images: &Catalog, name: &str, key: &SigningKey) -> Result<Option<(DatasetManifest, Vec<u8>)>, CatalogError> {
    let Some((image, version)) = parse_image_dataset(name) else { return Ok(None) };
    let versions = images.versions(image)?;
    let Some(at) = versions.iter().position(|m| m.version == version) else { return Ok(None) };
    let Some(d) = image_dataset(&versions[at], at.checked_sub(1).map(|p| versions[p].version)) else { return Ok(None) };
    let body = toml::to_string(&d).map_err(|e| CatalogError::BadManifest { path: name.into(), message: e.to_string() })?;
    let envelope = swarmboot_manifest::seal(key, body.as_bytes());
    Ok(Some((d, envelope)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Role;

    #[test]
    fn image_versions_are_datasets_that_succeed_each_other() {
        let d = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed([4; 32]);
        let images = Catalog::new(d.path());
        let file = |n: &str, body: &str| {
            let p = d.path().join(n);
            std::fs::write(&p, body).unwrap();
            p
        };
        let (kernel, root1, root2) = (file("vmlinuz", "kernel"), file("root1", "root one"), file("root2", "root two!"));
        images.add("elchos", &[(Role::Kernel, &kernel), (Role::Initrd, &kernel), (Role::Rootfs, &root1)], "", 100, &key).unwrap();
        let before = images.stamp();
        images.add("elchos", &[(Role::Kernel, &kernel), (Role::Initrd, &kernel), (Role::Rootfs, &root2)], "", 200, &key).unwrap();
        assert_ne!(images.stamp(), before, "a new version changes the stamp");
        let all = image_datasets(&images).unwrap();
        assert_eq!(all.iter().map(|d| (d.name.as_str(), d.successor_of.as_deref())).collect::<Vec<_>>(), [("elchos@1", None), ("elchos@2", Some("elchos@1"))]);
        // One file for the kernel and initrd they share; the new version adds only its root.
        let two = &all[1];
        assert_eq!(two.files.iter().map(|f| (f.path.as_str(), f.size)).collect::<Vec<_>>(), [("kernel+initrd", 6), ("rootfs", 9)]);
        assert_eq!(two.files[0].sha256, all[0].files[0].sha256);
        assert_eq!((two.created, two.replicas), (200, IMAGE_REPLICAS));
        // Signed as asked for, under the server's key, only for names of image versions.
        let (m, envelope) = signed_image_dataset(&images, "elchos@2", &key).unwrap().unwrap();
        let (body, _) = swarmboot_manifest::open(&envelope, &[key.public()]).unwrap();
        assert_eq!(toml::from_str::<DatasetManifest>(std::str::from_utf8(body).unwrap()).unwrap(), m);
        for name in ["elchos@3", "elchos@02", "elchos", "other@1", "../x@1", "elchos@-1"] {
            assert!(signed_image_dataset(&images, name, &key).unwrap().is_none(), "{name}");
        }
        assert_eq!(parse_image_dataset("elchos@2"), Some(("elchos", 2)));
    }
}
