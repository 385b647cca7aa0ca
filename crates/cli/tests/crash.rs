//! `swarmboot image add` killed at every step (a crash point per write, `SWARMBOOT_CRASH_AT`):
//! after each crash the catalog is consistent — every version it lists is signed and has all
//! its files, whole, in the store — and the next `image add` succeeds. `image gc` then
//! clears what the crash left without touching a file a version names.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use swarmboot_image::Catalog;

const POINTS: &[&str] = &["store:copied", "store:placed", "replace:torrent", "catalog:stored", "publish:toml", "catalog:published", "replace:sig"];

fn swarmboot(config: &Path, args: &[&str], crash_at: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarmboot"));
    c.args(args).arg("--config").arg(config);
    if let Some(p) = crash_at {
        c.env("SWARMBOOT_CRASH_AT", p);
    }
    c.output().unwrap()
}

/// Every version is signed (its envelope opens under the key) and names files that are in
/// the store with the SHA-256 it says.
fn consistent(state: &Path) -> usize {
    let catalog = Catalog::new(state);
    let key = swarmboot_manifest::SigningKey::load_or_create(state).unwrap();
    let all = catalog.all().unwrap();
    for m in &all {
        let (_, envelope) = catalog.signed(&m.name, m.version, &key).unwrap().expect("listed, so there");
        swarmboot_manifest::open(&envelope, &[key.public()]).unwrap();
        for f in &m.files {
            let path = catalog.store().path_of(&f.sha256).unwrap();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}@{}: {}: {e}", m.name, m.version, path.display()));
            assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}@{} {:?}", m.name, m.version, f.role);
            assert!(catalog.store().torrent(&f.sha256).unwrap().is_some() || catalog.store().ensure_torrent(&f.sha256).unwrap().is_some());
        }
    }
    all.len()
}

#[test]
fn image_add_killed_at_every_step_leaves_a_consistent_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("swarmboot.toml");
    std::fs::write(&config, format!("[server]\nstate_dir = \"{}\"\n", state.display())).unwrap();
    let write = |name: &str, salt: u8, len: usize| {
        let p = dir.path().join(name);
        std::fs::write(&p, (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect::<Vec<u8>>()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (k, i) = (write("kernel", 1, 300_000), write("initrd", 2, 100_000));
    let r0 = write("rootfs0", 0, 700_000);
    let out = swarmboot(&config, &["image", "add", "img", "--kernel", &k, "--initrd", &i, "--rootfs", &r0], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut versions = consistent(&state);
    for (n, point) in POINTS.iter().enumerate() {
        // A root filesystem not stored yet, so every step of the add runs.
        let r = write(&format!("rootfs{}", n + 1), 10 + n as u8, 700_000);
        let crashed = swarmboot(&config, &["image", "add", "img", "--kernel", &k, "--initrd", &i, "--rootfs", &r], Some(point));
        assert_eq!(crashed.status.signal(), Some(6), "{point}: the crash point was reached (SIGABRT): {:?} {}", crashed.status, String::from_utf8_lossy(&crashed.stderr));
        let after_crash = consistent(&state);
        assert!(after_crash == versions || after_crash == versions + 1, "{point}: {versions} versions before, {after_crash} after the crash");
        let list = swarmboot(&config, &["image", "list", "--json"], None);
        assert!(list.status.success(), "{point}: image list: {}", String::from_utf8_lossy(&list.stderr));
        let again = swarmboot(&config, &["image", "add", "img", "--kernel", &k, "--initrd", &i, "--rootfs", &r], None);
        assert!(again.status.success(), "{point}: the next add: {}", String::from_utf8_lossy(&again.stderr));
        versions = consistent(&state);
        assert_eq!(versions, after_crash + 1, "{point}");
    }
    // What an older version left when killed between claiming N.toml and writing it (an empty
    // file: its next add looped for ever) or half way through (a part of a manifest): neither
    // is a version, neither blocks the next add, whose number is past both.
    let images = state.join("images/img");
    std::fs::write(images.join(format!("{}.toml", versions + 1)), b"").unwrap();
    std::fs::write(images.join(format!("{}.toml", versions + 2)), b"name = \"img\"\nversion = ").unwrap();
    let r = write("rootfs-late", 99, 700_000);
    let late = swarmboot(&config, &["image", "add", "img", "--kernel", &k, "--initrd", &i, "--rootfs", &r], None);
    assert!(late.status.success(), "{}", String::from_utf8_lossy(&late.stderr));
    assert!(String::from_utf8_lossy(&late.stdout).contains(&format!("added img@{}", versions + 3)), "{}", String::from_utf8_lossy(&late.stdout));
    assert_eq!(consistent(&state), versions + 1);
    versions += 1;
    // The listing shows the versions and names both leftovers, with why.
    let list = swarmboot(&config, &["image", "list"], None);
    let said = String::from_utf8_lossy(&list.stderr);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&format!("{versions} image version(s)")), "{}", String::from_utf8_lossy(&list.stdout));
    for (n, why) in [(versions, "empty"), (versions + 1, "")] {
        let path = images.join(format!("{n}.toml"));
        assert!(said.contains(&format!("note: {} is not a manifest ({why}", path.display())), "{n}.toml: {said}");
    }
    // gc clears what the crashes left, and keeps every file a version names.
    let gc = swarmboot(&config, &["image", "gc", "--keep", "100", "--grace", "0s"], None);
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    assert_eq!(consistent(&state), versions);
    let leftovers: Vec<_> = std::fs::read_dir(state.join("store/tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
