//! HTTP boot path with curl: the iPXE script per MAC, image files with HEAD and Range, the TFTP
//! files over HTTP, replacing an image mid-boot, and SIGHUP.

use std::time::Duration;

use nix::sys::signal::Signal;
use swarmboot_lab::{require_root, Lan, Netns, ScratchDir, Server};

struct HttpLab {
    dir: ScratchDir,
    lan: Lan,
    server: Server,
}

fn config(dir: &ScratchDir, default_image: &str) -> String {
    format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [boot]\ndefault_image = \"{default_image}\"\n[[boot.client]]\nmac = \"52:54:00:aa:*\"\nimage = \"other\"\n\
         [tftp]\nenabled = false\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    )
}

fn http_lab(tag: &str) -> HttpLab {
    let dir = ScratchDir::new(tag).unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let server = Server::start(&lan.server, dir.path(), &config(&dir, "demo"), 8080).unwrap();
    let h = lan.add_host(None).unwrap();
    lan.host(h).ip(&["addr", "add", "10.77.0.5/24", "dev", "eth0"]).unwrap();
    HttpLab { dir, lan, server }
}

impl HttpLab {
    fn client(&self) -> &Netns {
        self.lan.host(0)
    }
    fn curl(&self, args: &[&str]) -> String {
        let out = self.client().command("curl").args(["-sS", "--fail"]).args(args).output().unwrap();
        assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn script(&self, mac: &str) -> String {
        self.curl(&[&format!("http://10.77.0.1:8080/boot.ipxe?mac={mac}&arch=x86_64&uuid=u")])
    }
    fn add_image(&self, name: &str, kernel: &[u8], initrd: &[u8]) {
        let k = self.dir.path().join(format!("{name}-kernel"));
        let i = self.dir.path().join(format!("{name}-initrd"));
        std::fs::write(&k, kernel).unwrap();
        std::fs::write(&i, initrd).unwrap();
        self.server.cli(&["image", "add", name, "--kernel", k.to_str().unwrap(), "--initrd", i.to_str().unwrap(), "--cmdline", "console=ttyS0"]).unwrap();
    }
}

fn blob_urls(script: &str) -> Vec<String> {
    script.split_whitespace().filter(|w| w.contains("/blob/")).map(String::from).collect()
}

#[test]
fn scripts_follow_the_rules_and_files_serve_with_range_and_head() {
    if !require_root("scripts_follow_the_rules_and_files_serve_with_range_and_head") {
        return;
    }
    let lab = http_lab("http-boot");
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    lab.add_image("demo", &kernel, b"initrd one");

    let s = lab.script("02:00:00:00:00:01");
    assert!(s.starts_with("#!ipxe") && s.contains("boots demo version 1"), "{s}");
    let urls = blob_urls(&s);
    assert_eq!(urls.len(), 2, "{s}");
    assert!(s.contains("initrd=initrd.img console=ttyS0"));

    // The per-MAC rule names an image that does not exist yet: a message and a retry.
    let s = lab.script("52:54:00:AA:00:01");
    assert!(s.contains("no image to boot for 52:54:00:AA:00:01: the catalog has no image other"), "{s}");
    assert!(s.contains("chain --replace"));
    lab.add_image("other", b"other kernel", b"other initrd");
    assert!(lab.script("52:54:00:aa:00:01").contains("boots other version 1"));

    // HEAD and Range on an image file.
    let head = lab.curl(&["-I", &urls[0]]);
    assert!(head.to_ascii_lowercase().contains("content-length: 100000"), "{head}");
    let out = lab.client().command("curl").args(["-sS", "--fail", "-r", "1000-1009", &urls[0]]).output().unwrap();
    assert_eq!(out.stdout, kernel[1000..1010].to_vec());
    // Unknown and malformed hashes are 404s.
    let bad = lab.client().command("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.77.0.1:8080/blob/..%2f..%2fetc%2fpasswd"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "404");
    assert_eq!(lab.server.metric("swarmboot_http_boot_scripts_without_image_total").unwrap(), 1);
}

#[test]
fn replacing_an_image_does_not_break_a_machine_mid_boot() {
    if !require_root("replacing_an_image_does_not_break_a_machine_mid_boot") {
        return;
    }
    let lab = http_lab("http-replace");
    lab.add_image("demo", b"kernel v1", b"initrd v1");
    let v1 = blob_urls(&lab.script("02:00:00:00:00:02"));
    // A machine got v1's script; now the operator adds v2.
    lab.add_image("demo", b"kernel v2", b"initrd v2");
    assert_eq!(lab.curl(&[&v1[0]]), "kernel v1", "v1's kernel still serves");
    assert_eq!(lab.curl(&[&v1[1]]), "initrd v1");
    let s2 = lab.script("02:00:00:00:00:02");
    assert!(s2.contains("version 2"));
    assert_eq!(lab.curl(&[&blob_urls(&s2)[0]]), "kernel v2");
    // gc with a grace period keeps v1's files; without one they go.
    lab.server.cli(&["image", "gc", "--keep", "1", "--grace", "1h"]).unwrap();
    assert_eq!(lab.curl(&[&v1[0]]), "kernel v1");
    lab.server.cli(&["image", "gc", "--keep", "1", "--grace", "0s"]).unwrap();
    let gone = lab.client().command("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &v1[0]]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&gone.stdout), "404");
}

#[test]
fn sighup_reloads_boot_rules() {
    if !require_root("sighup_reloads_boot_rules") {
        return;
    }
    let lab = http_lab("http-hup");
    lab.add_image("demo", b"k", b"i");
    lab.add_image("elchos", b"k2", b"i2");
    assert!(lab.script("02:00:00:00:00:03").contains("boots demo"));
    std::fs::write(&lab.server.config, config(&lab.dir, "elchos")).unwrap();
    lab.server.signal(Signal::SIGHUP).unwrap();
    swarmboot_lab::wait_for_line(lab.server.log_path(), "config reloaded", Duration::from_secs(10)).unwrap();
    assert!(lab.script("02:00:00:00:00:03").contains("boots elchos"));
    // A broken config is refused and the running one kept.
    std::fs::write(&lab.server.config, "[server]\nthis is not toml").unwrap();
    lab.server.signal(Signal::SIGHUP).unwrap();
    swarmboot_lab::wait_for_line(lab.server.log_path(), "config NOT reloaded", Duration::from_secs(10)).unwrap();
    assert!(lab.script("02:00:00:00:00:03").contains("boots elchos"));
}

/// `swarmboot key show`: the key is made on first use (mode 0600), the same key is shown on
/// every later call, and the printed public key verifies what the key signs.
#[test]
fn key_show_creates_the_key_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = ScratchDir::new("key-show").unwrap();
    let cfg = dir.path().join("swarmboot.toml");
    std::fs::write(&cfg, config(&dir, "demo")).unwrap();
    let show = || {
        let out = std::process::Command::new(swarmboot_lab::bin("swarmboot")).args(["key", "show", "--config"]).arg(&cfg).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = show();
    assert_eq!(show(), first);
    let hex = first.lines().find_map(|l| l.strip_prefix("public key  ")).expect("a public key line");
    let public = swarmboot_manifest::PublicKey::from_hex(hex).unwrap();
    assert!(first.contains(&format!("fingerprint {}", public.fingerprint())), "{first}");
    let key_file = dir.path().join("state").join(swarmboot_manifest::keys::KEY_FILE);
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let key = swarmboot_manifest::SigningKey::load_or_create(&dir.path().join("state")).unwrap();
    assert_eq!(public.verify(b"manifest", &key.sign(b"manifest")), Ok(()));
    // `swarmboot key show > server.pub` makes a key file `fetch --key` takes; so does the bare key.
    for (name, text) in [("shown.pub", first.clone()), ("bare.pub", format!("{hex}\n"))] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(swarmboot_lab::bin("swarmboot"))
            .args(["fetch", "--server", "http://127.0.0.1:9", "--image", "elchos", "--out"])
            .arg(dir.path().join("out"))
            .arg("--key")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("cannot get http://127.0.0.1:9/manifest/elchos") && !err.contains("--key"),
            "{name}: the key is taken, the server is not there:\n{err}"
        );
    }
}

/// `image add NAME --rootfs ROOT.squashfs` alone takes the newest kernel in the root that
/// has an initramfs of its release (mksquashfs makes the root), says which, and stores those
/// files; a root without one is refused with what to pass instead, and nothing is added.
#[test]
fn an_image_added_by_its_root_alone_takes_its_newest_kernel() {
    let dir = ScratchDir::new("rootfs-kernel").unwrap();
    let cfg = dir.path().join("swarmboot.toml");
    std::fs::write(&cfg, config(&dir, "demo")).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    for (name, bytes) in [
        ("vmlinuz-6.1.0-9-amd64", b"kernel 9".as_slice()),
        ("initrd.img-6.1.0-9-amd64", b"initrd 9"),
        ("vmlinuz-6.1.0-10-amd64", b"kernel 10"),
        ("initrd.img-6.1.0-10-amd64", b"initrd 10"),
        ("vmlinuz-6.1.0-11-amd64", b"kernel 11, no initramfs"),
    ] {
        std::fs::write(root.join("boot").join(name), bytes).unwrap();
    }
    let squash = |from: &std::path::Path, to: &std::path::Path| {
        let out = std::process::Command::new("mksquashfs").arg(from).arg(to).args(["-noappend", "-quiet", "-no-progress"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let sq = dir.path().join("root.squashfs");
    squash(&root, &sq);
    let swarmboot = |args: &[&str]| std::process::Command::new(swarmboot_lab::bin("swarmboot")).args(args).arg("--config").arg(&cfg).output().unwrap();
    let out = swarmboot(&["image", "add", "deb", "--rootfs", sq.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("took kernel 6.1.0-10-amd64 from ") && said.contains("/boot/vmlinuz-6.1.0-10-amd64 and /boot/initrd.img-6.1.0-10-amd64"), "{said}");
    let list: serde_json::Value = serde_json::from_slice(&swarmboot(&["image", "list", "--json"]).stdout).unwrap();
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    let files = &list[0]["files"];
    assert_eq!(files[0]["sha256"], sha(b"kernel 10"), "{list}");
    assert_eq!(files[1]["sha256"], sha(b"initrd 10"), "{list}");
    assert_eq!(files[2]["role"], "rootfs", "{list}");

    std::fs::remove_file(root.join("boot/initrd.img-6.1.0-10-amd64")).unwrap();
    std::fs::remove_file(root.join("boot/initrd.img-6.1.0-9-amd64")).unwrap();
    squash(&root, &sq);
    let out = swarmboot(&["image", "add", "deb", "--rootfs", sq.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no kernel to take from") && err.contains("give the image's kernel and initramfs with --kernel and --initrd"), "{err}");
    let list: serde_json::Value = serde_json::from_slice(&swarmboot(&["image", "list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "nothing added: {list}");
}

/// `/torrent/<sha256>.torrent` serves the store's torrent of an image file with the server's
/// tracker URL added; its info hash is the one in the manifest (the info bytes are untouched).
#[test]
fn torrents_of_image_files_serve_with_the_servers_tracker() {
    if !require_root("torrents_of_image_files_serve_with_the_servers_tracker") {
        return;
    }
    let lab = http_lab("http-torrent");
    lab.add_image("demo", &vec![3u8; 300_000], b"initrd");
    let list: serde_json::Value = serde_json::from_str(&lab.server.cli(&["image", "list", "--json"]).unwrap()).unwrap();
    let kernel = &list[0]["files"][0];
    let sha = kernel["sha256"].as_str().unwrap();
    let out = lab.client().command("curl").args(["-sS", "--fail", &format!("http://10.77.0.1:8080/torrent/{sha}.torrent")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = swarmboot_torrent::Metainfo::parse(&out.stdout).unwrap();
    assert_eq!(m.announce.as_deref(), Some("http://10.77.0.1:8080/announce"));
    assert_eq!(Some(hex::encode(m.info_hash).as_str()), kernel["info_hash"].as_str());
    assert_eq!((m.name.as_str(), m.total_length(), m.private), (sha, 300_000, true));
    for bad in ["nothex.torrent".to_string(), sha.to_string(), format!("{}.torrent", "0".repeat(64))] {
        let code = lab.client().command("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://10.77.0.1:8080/torrent/{bad}")]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&code.stdout), "404", "{bad}");
    }
}
