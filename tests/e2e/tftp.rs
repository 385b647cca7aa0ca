//! TFTP with real clients: tftp-hpa, busybox tftp (blksize 1468), curl (tsize, blksize); path
//! traversal refused; many transfers at once.

use std::path::Path;
use std::process::Output;

use swarmboot_lab::{require_root, Lan, Netns, ScratchDir, Server};

/// A LAN whose server runs TFTP only (DHCP off), with a prepared root, and one client host at
/// 10.77.0.5. Bind fields in declaration order so the server drops first.
struct TftpLab {
    dir: ScratchDir,
    lan: Lan,
    server: Server,
}

fn tftp_lab(tag: &str) -> TftpLab {
    let dir = ScratchDir::new(tag).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    // Deterministic, incompressible-looking content.
    let mut x: u32 = 12345;
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("sub/exact.bin"), &big[..1468 * 3]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("escape")).unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let config = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[tftp]\nroot = \"{}\"\n[http]\nlisten = \"127.0.0.1:8080\"\n",
        dir.path().join("state").display(),
        root.display()
    );
    let server = Server::start(&lan.server, dir.path(), &config, 8080).unwrap();
    let h = lan.add_host(None).unwrap();
    lan.host(h).ip(&["addr", "add", "10.77.0.5/24", "dev", "eth0"]).unwrap();
    TftpLab { dir, lan, server }
}

impl TftpLab {
    fn client(&self) -> &Netns {
        self.lan.host(0)
    }
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
    fn out(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.client().command(program).args(args).output().unwrap()
    }
}

fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

#[test]
fn real_clients_fetch_byte_identical_files() {
    if !require_root("real_clients_fetch_byte_identical_files") {
        return;
    }
    let lab = tftp_lab("tftp-clients");
    let (root, o) = (lab.root(), |n: &str| lab.out(n));

    // tftp-hpa: plain RFC 1350 (512-byte blocks; this client has no options).
    let r = lab.run("tftp", &["-m", "binary", "10.77.0.1", "-c", "get", "big.bin", o("hpa.bin").to_str().unwrap()]);
    assert!(same(&root.join("big.bin"), &o("hpa.bin")), "tftp-hpa: {r:?}");

    // busybox tftp with blksize 1468.
    let r = lab.run("busybox", &["tftp", "-g", "-b", "1468", "-r", "big.bin", "-l", o("bb.bin").to_str().unwrap(), "10.77.0.1"]);
    assert!(r.status.success() && same(&root.join("big.bin"), &o("bb.bin")), "busybox tftp: {r:?}");

    // curl: tsize and blksize 1468; a file that is an exact multiple of the block size.
    for (name, local) in [("big.bin", "curl.bin"), ("sub/exact.bin", "exact.bin")] {
        let url = format!("tftp://10.77.0.1/{name}");
        let r = lab.run("curl", &["-sS", "--tftp-blksize", "1468", "-o", o(local).to_str().unwrap(), &url]);
        assert!(r.status.success() && same(&root.join(name), &o(local)), "curl {name}: {r:?}");
    }

    // Debian's iPXE, found through the iPXE directory.
    let r = lab.run("curl", &["-sS", "-o", o("undionly.kpxe").to_str().unwrap(), "tftp://10.77.0.1/undionly.kpxe"]);
    assert!(r.status.success() && same(Path::new("/usr/lib/ipxe/undionly.kpxe"), &o("undionly.kpxe")), "{r:?}");

    assert_eq!(lab.server.metric("swarmboot_tftp_completed_total").unwrap(), 5);
    assert_eq!(lab.server.metric("swarmboot_tftp_timeouts_total").unwrap(), 0);
}

#[test]
fn every_traversal_attempt_is_refused() {
    if !require_root("every_traversal_attempt_is_refused") {
        return;
    }
    let lab = tftp_lab("tftp-traversal");
    let attempts =
        ["../../../../etc/passwd", "sub/../../../etc/passwd", "escape", "..%5c..%5c..%5cetc%5cpasswd", "/etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "sub", "big.bin%00.txt"];
    for (i, a) in attempts.iter().enumerate() {
        let out = lab.out(&format!("t{i}"));
        let url = format!("tftp://10.77.0.1/{a}");
        let r = lab.run("curl", &["-sS", "--path-as-is", "-o", out.to_str().unwrap(), &url]);
        assert!(!r.status.success(), "{a} was served: {r:?}");
        let got = std::fs::read(&out).unwrap_or_default();
        assert!(got.is_empty(), "{a}: received {} bytes", got.len());
    }
    let r = lab.run("tftp", &["-m", "binary", "10.77.0.1", "-c", "get", "../../etc/passwd", lab.out("hpa").to_str().unwrap()]);
    assert!(std::fs::read(lab.out("hpa")).unwrap_or_default().is_empty(), "tftp-hpa traversal: {r:?}");
    let refused = lab.server.metric("swarmboot_tftp_refused_total").unwrap();
    assert!(refused >= attempts.len() as u64, "refused {refused}");
    assert_eq!(lab.server.metric("swarmboot_tftp_completed_total").unwrap(), 0);
}

#[test]
fn many_transfers_at_once_all_complete() {
    if !require_root("many_transfers_at_once_all_complete") {
        return;
    }
    let lab = tftp_lab("tftp-many");
    let n = 60; // more than dnsmasq's default cap of 50
    let children: Vec<_> = (0..n)
        .map(|i| lab.client().command("curl").args(["-sS", "--tftp-blksize", "1468", "-o"]).arg(lab.out(&format!("m{i}"))).arg("tftp://10.77.0.1/big.bin").spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    for i in 0..n {
        assert!(same(&lab.root().join("big.bin"), &lab.out(&format!("m{i}"))), "copy {i}");
    }
    assert_eq!(lab.server.metric("swarmboot_tftp_completed_total").unwrap(), n);
}
