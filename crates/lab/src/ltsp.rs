//! An LTSP server set up the way LTSP's documentation sets one up, with Debian's `ltsp`, for
//! the LTSP plugin's lab tests.
//!
//! Built once and cached ([`ltsp_build`]): a server root (mmdebstrap: `ltsp`, `dnsmasq`,
//! `ipxe`, `openssh-server`, `squashfs-tools`) holding a client chroot at `/srv/ltsp/IMAGE`
//! (mmdebstrap: systemd, a kernel, `ltsp`, `openssh-client`, `sshfs`), then `ltsp image IMAGE`
//! (which runs `ltsp kernel` too). Each test gets its own copy-on-write view of that root
//! ([`LtspServer`]: an overlay mount) with swarmboot installed where its packages put it, and
//! runs LTSP's commands, `dnsmasq` (configured by `ltsp dnsmasq`), `sshd` and `swarmboot serve`
//! chrooted into it in the lab's server namespace, on LTSP's default subnet 192.168.67.0/24.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::netns::run;
use crate::{Lan, Proc};

/// The client image's name (`/srv/ltsp/IMAGE`, `/srv/ltsp/images/IMAGE.img`).
pub const IMAGE: &str = "bookworm";
/// The server's address, LTSP's default for its internal network.
pub const SERVER_CIDR: &str = "192.168.67.1/24";
/// The client's root password, for the tests' console login.
pub const ROOT_PASSWORD: &str = "swarmboot";
/// `ltsp image` locks root in the image (its cleanup empties the accounts); `ltsp.conf(5)`'s
/// way to allow a console root login: a `[clients]` `POST_INIT_` command that calls a
/// section setting the hash (of [`ROOT_PASSWORD`]). Put `ROOT_LOGIN_CLIENTS` into `[clients]`
/// and `ROOT_LOGIN_SECTION` at the end.
pub const ROOT_LOGIN_CLIENTS: &str = "POST_INIT_SET_ROOT_HASH=\"section_set_root_hash\"\n";
pub const ROOT_LOGIN_SECTION: &str =
    "[set_root_hash]\nsed 's|^root:[^:]*:|root:$6$swarmbootlab$OS.4q3XV8l/ZUfCELtLKKsxzol2URkHoTRhb4hjboCxxmTUWvB.XHYuXqxgTHGEmcFK0ZFcKFg2XKE/NTv13F.:|' -i /etc/shadow\n";

const SERVER_PACKAGES: &[&str] = &["ltsp", "dnsmasq", "ipxe", "openssh-server", "squashfs-tools", "cpio", "iproute2", "procps", "busybox"];
const CLIENT_PACKAGES: &[&str] =
    &["systemd", "systemd-sysv", "udev", "dbus", "linux-image-amd64", "ltsp", "openssh-client", "sshfs", "iproute2", "procps", "busybox", "kmod", "login", "passwd"];
/// `ADD_IMAGE_EXCLUDES` of the lab's ltsp.conf: what a VM on virtio does not need, so the
/// image is smaller (LTSP's own excludes still apply).
const IMAGE_EXCLUDES: &[&str] = &[
    "usr/lib/modules/*/kernel/drivers/gpu",
    "usr/lib/modules/*/kernel/drivers/media",
    "usr/lib/modules/*/kernel/drivers/net/wireless",
    "usr/lib/modules/*/kernel/drivers/net/ethernet",
    "usr/lib/modules/*/kernel/drivers/infiniband",
    "usr/lib/modules/*/kernel/drivers/staging",
    "usr/lib/modules/*/kernel/drivers/scsi",
    "usr/lib/modules/*/kernel/drivers/usb",
    "usr/lib/modules/*/kernel/drivers/bluetooth",
    "usr/lib/modules/*/kernel/drivers/isdn",
    "usr/lib/modules/*/kernel/sound",
    "usr/lib/modules/*/kernel/net/wireless",
    "usr/lib/modules/*/kernel/net/mac80211",
    "usr/lib/firmware/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/locale/*",
];

/// The cached server root, its client chroot and image.
#[derive(Debug, Clone)]
pub struct LtspBuild {
    /// The server's root filesystem (read-only from here on: tests mount an overlay on it).
    pub root: PathBuf,
}

impl LtspBuild {
    /// The client's kernel release (`ltsp kernel` extracted that kernel).
    pub fn client_modules(&self) -> anyhow::Result<(String, String)> {
        let boot = self.root.join("srv/ltsp").join(IMAGE).join("boot");
        let mut found: Vec<String> = std::fs::read_dir(&boot)?.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("vmlinuz-").map(str::to_string)).collect();
        found.sort();
        let release = found.pop().with_context(|| format!("no kernel in {}", boot.display()))?;
        Ok((format!("/srv/ltsp/{IMAGE}/boot/vmlinuz-{release}"), format!("/srv/ltsp/{IMAGE}/usr/lib/modules/{release}")))
    }
}

fn fingerprint() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ("ltsp lab v1", SERVER_PACKAGES, CLIENT_PACKAGES, IMAGE_EXCLUDES, IMAGE, std::env::var("SWARMBOOT_DEBIAN_MIRROR").ok()).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The LTSP server root: built on first use (a few minutes), then taken from the cache.
pub fn ltsp_build() -> anyhow::Result<LtspBuild> {
    static BUILT: std::sync::Mutex<Option<LtspBuild>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = built.as_ref() {
        return Ok(b.clone());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let dir = home.join(".cache/swarmboot").join(format!("ltsp-{}", fingerprint()));
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::File::create(dir.join("lock"))?;
    let _locked = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", dir.display()))?;
    let root = dir.join("root");
    if !dir.join("done").exists() {
        let started = std::time::Instant::now();
        build(&root).context("building the LTSP lab's server root (the apt mirror must be reachable)")?;
        let img = std::fs::metadata(root.join("srv/ltsp/images").join(format!("{IMAGE}.img")))?.len();
        eprintln!("lab: built the LTSP server, its client chroot and image ({} MiB) in {:.0} s into {}", img >> 20, started.elapsed().as_secs_f64(), dir.display());
        std::fs::write(dir.join("done"), "")?;
    }
    let b = LtspBuild { root };
    *built = Some(b.clone());
    Ok(b)
}

fn mmdebstrap(packages: &[&str], target: &Path) -> anyhow::Result<()> {
    // As image builds do: niced, so the lab tests beside it keep their servers answering.
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        swarmboot_imagebuild::BUILD_NICENESS,
        "mmdebstrap",
        "--variant=minbase",
        &format!("--aptopt={}", swarmboot_imagebuild::APT_RETRIES),
        &format!("--include={}", packages.join(",")),
        "bookworm",
    ])
    .arg(target);
    if let Ok(m) = std::env::var("SWARMBOOT_DEBIAN_MIRROR") {
        cmd.arg(m);
    }
    run(&mut cmd).map(|_| ())
}

fn build(root: &Path) -> anyhow::Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    eprintln!("lab: LTSP server root: mmdebstrap {}", SERVER_PACKAGES.join(" "));
    mmdebstrap(SERVER_PACKAGES, root)?;
    let chroot = root.join("srv/ltsp").join(IMAGE);
    std::fs::create_dir_all(root.join("srv/ltsp"))?;
    eprintln!("lab: LTSP client chroot /srv/ltsp/{IMAGE}: mmdebstrap {}", CLIENT_PACKAGES.join(" "));
    mmdebstrap(CLIENT_PACKAGES, &chroot)?;
    std::fs::write(chroot.join("etc/hostname"), "ltsp\n")?;
    std::fs::create_dir_all(root.join("etc/ltsp"))?;
    std::fs::write(root.join("etc/ltsp/lab-image.excludes"), IMAGE_EXCLUDES.join("\n") + "\n")?;
    std::fs::write(root.join("etc/ltsp/ltsp.conf"), "[server]\nADD_IMAGE_EXCLUDES=/etc/ltsp/lab-image.excludes\n")?;
    eprintln!("lab: ltsp image {IMAGE} (and ltsp kernel)");
    in_root(root, None, &format!("nice -n {} ltsp image {IMAGE} 2>&1", swarmboot_imagebuild::BUILD_NICENESS))?;
    std::fs::remove_file(root.join("etc/ltsp/ltsp.conf"))?;
    for f in [format!("srv/ltsp/images/{IMAGE}.img"), format!("srv/tftp/ltsp/{IMAGE}/vmlinuz"), format!("srv/tftp/ltsp/{IMAGE}/initrd.img")] {
        anyhow::ensure!(root.join(&f).exists(), "ltsp image did not make /{f}");
    }
    Ok(())
}

/// `sh -c script` chrooted into `root` with /proc, /sys and /dev mounted in a mount namespace
/// of its own (in network namespace `ns`, if given); its output.
fn in_root(root: &Path, ns: Option<&str>, script: &str) -> anyhow::Result<String> {
    let out = root_command(root, ns, script).output().context("cannot run unshare/chroot")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("on the LTSP server, `{script}` failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    Ok(stdout.into_owned())
}

fn root_command(root: &Path, ns: Option<&str>, script: &str) -> Command {
    let r = root.display();
    let setup = format!("mount -t proc proc {r}/proc && mount -t sysfs sys {r}/sys && mount --rbind /dev {r}/dev && mkdir -p {r}/run/sshd && exec chroot {r} sh -c \"$0\"");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c"]);
            c
        }
        None => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"]);
            c
        }
    };
    // Nothing of the test's environment (paths on this machine) goes into the server's.
    cmd.args([&setup, script]).env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").env("LC_ALL", "C.UTF-8").env("HOME", "/root");
    cmd
}

/// A test's LTSP server: an overlay over the cached root (writes go to the test's scratch
/// directory), swarmboot installed into it as its packages would, and its daemons running in
/// the LAN's server namespace.
pub struct LtspServer {
    pub root: PathBuf,
    ns: String,
    dir: PathBuf,
    daemons: Vec<Proc>,
    serve: Option<Proc>,
    serves: u32,
}

/// swarmboot's configuration on the LTSP server: LTSP's dnsmasq does DHCP and TFTP.
pub const SWARMBOOT_TOML: &str = "[server]\ninterface = \"br0\"\naddress = \"192.168.67.1\"\nstate_dir = \"/var/lib/swarmboot\"\n\
    [dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[boot]\ndefault_image = \"bookworm\"\nmode = \"swarm\"\n[http]\nlisten = \"0.0.0.0:8080\"\n";

impl LtspServer {
    /// Mounts the test's view of `build` under `dir`, installs swarmboot (its binaries, the
    /// stub's init and the LTSP plugin) with [`SWARMBOOT_TOML`] plus `swarmboot_extra`, and
    /// writes `ltsp_conf` as `/etc/ltsp/ltsp.conf`. Nothing runs yet.
    pub fn prepare(build: &LtspBuild, lan: &Lan, dir: &Path, ltsp_conf: &str, swarmboot_extra: &str) -> anyhow::Result<Self> {
        let (upper, work, root) = (dir.join("ltsp-upper"), dir.join("ltsp-work"), dir.join("ltsp-root"));
        for d in [&upper, &work, &root] {
            std::fs::create_dir_all(d)?;
        }
        let opts = format!("lowerdir={},upperdir={},workdir={}", build.root.display(), upper.display(), work.display());
        run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&root))?;
        let server = LtspServer { root, ns: lan.server.name().to_string(), dir: dir.to_path_buf(), daemons: Vec::new(), serve: None, serves: 0 };
        let put = |from: &Path, to: &str, mode: u32| -> anyhow::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let dest = server.root.join(to.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().expect("a file under the root"))?;
            std::fs::copy(from, &dest).with_context(|| format!("{} → {}", from.display(), dest.display()))?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
            Ok(())
        };
        put(&crate::bin("swarmboot"), "/usr/bin/swarmboot", 0o755)?;
        put(&stub_init()?, "/usr/lib/swarmboot/swarmboot-init", 0o755)?;
        let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ltsp-plugin/server");
        put(&plugin.join("swarmboot/55-swarmboot.sh"), "/usr/share/ltsp/server/swarmboot/55-swarmboot.sh", 0o644)?;
        put(&plugin.join("ipxe/56-swarmboot-menu.sh"), "/usr/share/ltsp/server/ipxe/56-swarmboot-menu.sh", 0o644)?;
        std::fs::create_dir_all(server.root.join("etc/swarmboot"))?;
        std::fs::write(server.root.join("etc/swarmboot/swarmboot.toml"), format!("{SWARMBOOT_TOML}{swarmboot_extra}"))?;
        std::fs::write(server.root.join("etc/ltsp/ltsp.conf"), ltsp_conf)?;
        Ok(server)
    }

    /// `sh -c script` on the server (chrooted, in its namespace); its output. Fails with the
    /// script's output when it fails.
    pub fn sh(&self, script: &str) -> anyhow::Result<String> {
        in_root(&self.root, Some(&self.ns), script)
    }

    /// Starts LTSP's dnsmasq (as `ltsp dnsmasq` configured it) and sshd.
    pub fn start_daemons(&mut self) -> anyhow::Result<()> {
        let dnsmasq = root_command(
            &self.root,
            Some(&self.ns),
            "exec dnsmasq --keep-in-foreground --log-facility=- --conf-file=/dev/null --conf-dir=/etc/dnsmasq.d,.dpkg-dist,.dpkg-old,.dpkg-new --pid-file=/run/lab-dnsmasq.pid",
        );
        let sshd = root_command(&self.root, Some(&self.ns), "exec /usr/sbin/sshd -D -e");
        for (name, mut cmd) in [("dnsmasq", dnsmasq), ("sshd", sshd)] {
            let log = self.dir.join(format!("{name}.log"));
            let mut p = Proc::spawn(name, &mut cmd, &log)?;
            std::thread::sleep(Duration::from_millis(500));
            if p.exited() {
                bail!("{name} exited at start:\n{}", p.output());
            }
            self.daemons.push(p);
        }
        Ok(())
    }

    /// Starts (or restarts) `swarmboot serve` on the server; returns once it is ready.
    pub fn serve(&mut self) -> anyhow::Result<()> {
        if let Some(mut p) = self.serve.take() {
            p.stop(Duration::from_secs(5));
        }
        let mut cmd = root_command(&self.root, Some(&self.ns), "SWARMBOOT_LOG=debug exec swarmboot serve --config /etc/swarmboot/swarmboot.toml");
        let log = self.dir.join(format!("serve-{}.log", self.serves));
        self.serves += 1;
        let mut p = Proc::spawn("swarmboot serve", &mut cmd, &log)?;
        for _ in 0..600 {
            if p.output().contains("swarmboot ready") {
                self.serve = Some(p);
                return Ok(());
            }
            if p.exited() {
                bail!("swarmboot serve exited at start:\n{}", p.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("swarmboot serve was not ready in 30 s:\n{}", p.output())
    }

    /// One counter from the server's `/metrics`.
    pub fn metric(&self, name: &str) -> anyhow::Result<u64> {
        crate::server::metric(&self.ns, 8080, name)
    }

    /// What `swarmboot serve` logged since it last started.
    pub fn serve_log(&self) -> String {
        self.serve.as_ref().map(Proc::output).unwrap_or_default()
    }
}

impl Drop for LtspServer {
    fn drop(&mut self) {
        if let Some(mut p) = self.serve.take() {
            p.stop(Duration::from_secs(5));
        }
        for mut p in self.daemons.drain(..) {
            p.stop(Duration::from_secs(5));
        }
        let _ = Command::new("umount").arg("--lazy").arg(&self.root).output();
    }
}

/// The static `swarmboot-init` the stub is built with: `$SWARMBOOT_INIT`, else `cargo xtask
/// stub-init`'s output beside the workspace's binaries.
pub fn stub_init() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SWARMBOOT_INIT") {
        return Ok(PathBuf::from(p));
    }
    let p = crate::bin("swarmboot").parent().expect("a directory").join("../x86_64-unknown-linux-musl/stub/swarmboot-init");
    anyhow::ensure!(p.exists(), "no static swarmboot-init at {}: run `cargo xtask stub-init` or set SWARMBOOT_INIT", p.display());
    Ok(p)
}
