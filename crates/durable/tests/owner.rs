//! Root writing into a directory the service owns, after `write_as_owner_of`: its own files
//! are made (and owned by the owner), and a directory the service swapped for a link to a
//! root-only place leads nowhere: every change there is refused, its target stays as it was.
//! Its own process (one test): the owner, once named, holds for the whole process.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use swarmboot_durable::{create_dir_all, create_temp_in, lock_exclusive, publish_new, remove_file, replace, write_as_owner_of};

const NOBODY: u32 = 65534;

#[test]
fn roots_changes_take_the_owners_identity_and_a_planted_directory_link_leads_nowhere() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("SWARMBOOT_SKIP_LAB").is_some(), "needs root (to own files as another user); set SWARMBOOT_SKIP_LAB=1 to skip on purpose");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // Root's directory, which the service must not be able to reach through root.
    let victim = d.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), b"root's file").unwrap();
    assert_eq!(write_as_owner_of(&state).unwrap(), None, "a root-owned state directory: nothing changes");
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    assert_eq!(write_as_owner_of(&state).unwrap(), Some(NOBODY));

    // Root's own writes work and are the owner's from the start.
    let own = state.join("images/own");
    create_dir_all(&own).unwrap();
    assert!(publish_new(&own.join("1.toml"), b"manifest", 0o640).unwrap());
    replace(&own.join("1.sig"), b"signature", 0o640).unwrap();
    let _lock = lock_exclusive(&state.join("catalog.lock")).unwrap();
    for p in ["images", "images/own", "images/own/1.toml", "images/own/1.sig", "catalog.lock"] {
        assert_eq!(std::fs::symlink_metadata(state.join(p)).unwrap().uid(), NOBODY, "{p}");
    }

    // The service swaps a directory for a link to root's.
    symlink(&victim, state.join("images/planted")).unwrap();
    let through = state.join("images/planted");
    let denied = |r: std::io::Result<()>, what: &str| assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied, "{what}");
    denied(publish_new(&through.join("2.toml"), b"x", 0o640).map(|_| ()), "publish_new");
    denied(replace(&through.join("2.sig"), b"x", 0o640), "replace");
    denied(create_dir_all(&through.join("ab/abcd")), "create_dir_all");
    denied(create_temp_in(&through, 0o640).map(|_| ()), "create_temp_in");
    denied(remove_file(&through.join("keep")), "remove_file");
    let names: Vec<_> = std::fs::read_dir(&victim).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["keep"], "nothing made in root's directory");
    assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"root's file");

    // And root is root again between the calls: it writes its own directory itself.
    std::fs::write(victim.join("after"), b"root again").unwrap();
    assert_eq!(std::fs::metadata(victim.join("after")).unwrap().uid(), 0);
}
