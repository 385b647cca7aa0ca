//! Root's `swarmboot image add` (as the LTSP plugin runs it) on a state directory the service
//! owns, after the service swapped the image's directory for a link to a directory of
//! root's: the add fails and says where, and root's directory is untouched. Without the
//! owner's identity, root wrote the next version's manifest and signature into it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const NOBODY: u32 = 65534;

fn swarmboot(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmboot")).args(args).arg("--config").arg(config).output().unwrap()
}

#[test]
fn image_add_as_root_does_not_write_through_a_directory_the_service_swapped_for_a_link() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("SWARMBOOT_SKIP_LAB").is_some(), "needs root (the LTSP plugin's user); set SWARMBOOT_SKIP_LAB=1 to skip on purpose");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let config = d.path().join("swarmboot.toml");
    std::fs::write(&config, format!("[server]\nstate_dir = \"{}\"\n", state.display())).unwrap();
    let file = |name: &str, len: usize, salt: u8| {
        let p = d.path().join(name);
        std::fs::write(&p, (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(salt)).collect::<Vec<u8>>()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (k, i) = (file("kernel", 200_000, 1), file("initrd", 50_000, 2));
    // /boot/vmlinuz-* is root's alone: root reads it as root, whoever it writes as.
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = swarmboot(&config, &["image", "add", "img", "--kernel", &k, "--initrd", &i, "--rootfs", &file("rootfs1", 300_000, 3)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for p in ["images/img/1.toml", "images/img/1.sig", "catalog.lock", "signing.key", "store"] {
        assert_eq!(std::fs::symlink_metadata(state.join(p)).unwrap().uid(), NOBODY, "{p} is the owner's");
    }

    // The service swaps images/img for a link to a directory of root's.
    let victim = d.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), b"root's").unwrap();
    std::fs::rename(state.join("images/img"), state.join("images/img.moved")).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("images/img")).unwrap();
    let out = swarmboot(&config, &["image", "add", "img", "--kernel", &k, "--initrd", &i, "--rootfs", &file("rootfs2", 300_000, 4)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(stderr.contains("images/img") && stderr.contains("ermission denied"), "says where and why: {stderr}");
    let names: Vec<_> = std::fs::read_dir(&victim).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["keep"], "nothing written into root's directory");
}
