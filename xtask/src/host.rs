//! Preparing this machine (Debian packages, cargo tools) and the `test` task.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Debian packages the lab, the tests and the benchmarks use.
pub const PACKAGES: &[&str] = &[
    "iproute2",
    // busybox-static, not busybox: the two replace each other, and the test initramfs needs the
    // static binary (udhcpc depends on either).
    "busybox-static",
    "udhcpc",
    "isc-dhcp-client",
    "dnsmasq-base",
    "kea-admin",
    "kea-dhcp4-server",
    "curl",
    "tftp-hpa",
    "tftpd-hpa",
    "atftp",
    "ipxe",
    "ipxe-qemu",
    "qemu-system-x86",
    "ovmf",
    "linux-image-amd64",
    "transmission-cli",
    "aria2",
    "opentracker",
    // The stub: a static swarmboot-init (musl-gcc for any C a crate builds) and the test root
    // filesystems (mksquashfs).
    "musl-tools",
    "squashfs-tools",
    // The stub builder's test with compressed kernel modules.
    "xz-utils",
    "zstd",
    // The Debian package: its build, lint and install test (a debootstrap root).
    "debhelper",
    "dpkg-dev",
    "lintian",
    "debootstrap",
    // Real Debian systems as images (the lab's Debian root, `swarmboot image build`).
    "mmdebstrap",
    // Faults in the lab: a bridge that drops frames at random (this kernel has no netem).
    "nftables",
    // elchOS nodes' disks in the lab, made and filled without mounting (`lab::disks`).
    "dosfstools",
    "mtools",
    // A blank GPT partition for a node to format as donated space (sfdisk).
    "fdisk",
    "ntfs-3g",
    // md RAID1 members the lab writes are checked with mdadm --examine.
    "mdadm",
    // The ADC hub `swarmboot serve` runs with `[adc] enable = true`.
    "uhub",
    // The ADC client elchOS nodes run, and the tests' ADC client that searches and downloads.
    "eiskaltdcpp-daemon",
    // Pages the project serves, looked at in a real browser (headless).
    "chromium",
    // …and driven over WebDriver where a page is watched while it changes (the dashboard).
    "chromium-driver",
    // A WebDAV client, for the namespace served over WebDAV.
    "cadaver",
];

/// The stub's init is a static binary for this target.
pub const STUB_TARGET: &str = "x86_64-unknown-linux-musl";

/// The rqbit (librqbit's command-line client) the interoperability tests run against.
pub const RQBIT_VERSION: &str = "9.1.0";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Installs missing Debian packages. Services they ship are not started (a policy-rc.d is in
/// place during the install), so installing Kea does not start a DHCP server on this host.
pub fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages {missing:?}: run as root, or install them");
    }
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(policy, "#!/bin/sh\n# swarmboot xtask: no service starts during package install\nexit 101\n")?;
        run(Command::new("chmod").args(["755", "/usr/sbin/policy-rc.d"]))?;
    }
    let result = run(Command::new("apt-get").args(["update", "-qq"]))
        .and_then(|_| run(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive")));
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    result
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `~/.cache/swarmboot`: what is slow to make and never changes (rqbit, a debootstrap root).
pub fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let dir = home.join(".cache/swarmboot");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// `~/.cache/swarmboot/build-<name>`: a cargo target directory kept across runs and clones
/// (the sanitizer build of the fuzz targets, the package's release build): the dependencies
/// are compiled once per machine, the workspace's own crates each time (cargo rebuilds what
/// changed, a fresh clone's sources included).
pub fn build_cache(name: &str) -> PathBuf {
    cache_dir().join(format!("build-{name}"))
}

/// rqbit, built once into `~/.cache/swarmboot/rqbit-<version>-cli` (Debian has no package):
/// starts building it in the background if it is not built yet (see [`Background`]); the
/// binary's path, there once the install is waited for. Only its command-line client with
/// TLS: the tests run `rqbit download --disable-http-api`, so its default web UI, Postgres
/// session store and Prometheus exporter are not built.
pub fn start_rqbit_install() -> anyhow::Result<(Background, PathBuf)> {
    let root = cache_dir().join(format!("rqbit-{RQBIT_VERSION}-cli"));
    let exe = root.join("bin/rqbit");
    if exe.exists() {
        return Ok((Background::done(), exe));
    }
    let install = Background::start(
        "the install of rqbit (for the interoperability tests)",
        "install-rqbit",
        false,
        cargo().args(["install", "rqbit", "--locked", "--no-default-features", "--features", "default-tls", "--version", RQBIT_VERSION, "--root"]).arg(&root),
    )?;
    Ok((install, exe))
}

/// Starts installing cargo-fuzz in the background if cargo has no `fuzz` command yet.
pub fn start_cargo_fuzz_install() -> anyhow::Result<Background> {
    if has_cargo_command(&["fuzz", "--version"]) {
        return Ok(Background::done());
    }
    Background::start("the install of cargo-fuzz", "install-cargo-fuzz", false, cargo().args(["install", "cargo-fuzz", "--locked"]))
}

pub fn has_cargo_command(args: &[&str]) -> bool {
    Command::new("cargo").args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

/// A step running in the background while the rest goes on: on a fresh machine rqbit and
/// cargo-fuzz are minutes of compiling, and the apt install beside them mostly waits on the
/// mirror and on dpkg; the package test (niced) uses what the lab tests leave of the cores.
/// Its output goes to a log in the cache directory: the whole log is shown when it ends if
/// `shown`, else its last lines if it fails.
pub struct Background {
    running: Option<BackgroundChild>,
}

struct BackgroundChild {
    child: std::process::Child,
    log: PathBuf,
    what: String,
    shown: bool,
    started: std::time::Instant,
}

impl Background {
    pub fn done() -> Self {
        Background { running: None }
    }

    /// Starts `cmd`, its output into `~/.cache/swarmboot/background-<log_name>.log`.
    pub fn start(what: &str, log_name: &str, shown: bool, cmd: &mut Command) -> anyhow::Result<Self> {
        let log = cache_dir().join(format!("background-{log_name}.log"));
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        eprintln!("+ {cmd:?} (in the background, output in {})", log.display());
        let child = cmd.stdout(out.try_clone()?).stderr(out).spawn().with_context(|| format!("cannot run {cmd:?}"))?;
        Ok(Background { running: Some(BackgroundChild { child, log, what: what.to_string(), shown, started: std::time::Instant::now() }) })
    }

    /// Waits for it to end; says how long it ran and how long it was waited for.
    pub fn wait(self) -> anyhow::Result<()> {
        let Some(BackgroundChild { mut child, log, what, shown, started }) = self.running else { return Ok(()) };
        let waiting = std::time::Instant::now();
        let status = child.wait()?;
        println!("xtask: {what} ran {:.0} s in the background, waited for {:.0} s", started.elapsed().as_secs_f64(), waiting.elapsed().as_secs_f64());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if shown {
            println!("{text}");
        }
        if !status.success() {
            if !shown {
                let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
                eprintln!("{}", tail.join("\n"));
            }
            bail!("{what} failed ({status}); its whole output is in {}", log.display());
        }
        Ok(())
    }
}

/// root's password in the elchOS the demo and the benchmark build: `elchos`
/// (`openssl passwd -6 -salt swarmbootdemo elchos`).
pub const ELCHOS_ROOT_HASH: &str = "$6$swarmbootdemo$NOB0msDwzQzOVtkt7fvtiRDpUry3P66VmpYhb0ON82j9xja9pzSsP6U8jX/4J/EykMVmOYJSbyXYHZfgNJBF60";

/// A state directory whose catalog holds elchOS (`swarmboot image build elchos`, root's
/// password [`ELCHOS_ROOT_HASH`]), built once per recipe into
/// `~/.cache/swarmboot/elchos-<recipe>-<agent>`, and copied (hard links: stored files never change)
/// to `into` for a server of the demo or a benchmark.
pub fn elchos_state(into: &Path) -> anyhow::Result<()> {
    use swarmboot_imagebuild::elchos::{recipe, ElchosOptions};
    let r = recipe(&ElchosOptions { root_password_hash: Some(ELCHOS_ROOT_HASH.into()), ..Default::default() });
    // The node agent goes into the image too: a new agent, a new build.
    let agent = std::fs::read(swarmboot_lab::bin("swarmboot-node")).context("the node agent (cargo build --workspace --bins)")?;
    let agent_sum = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        agent.hash(&mut h);
        h.finish()
    };
    let state = cache_dir().join(format!("elchos-{}-{agent_sum:016x}", r.fingerprint()));
    let done = state.join("built");
    if done.exists() {
        println!("== elchOS was built before, from the same recipe: {}", state.display());
    } else {
        std::fs::create_dir_all(&state)?;
        let cfg = state.join("build.toml");
        std::fs::write(&cfg, format!("[server]\nstate_dir = \"{}\"\n", state.display()))?;
        println!("== swarmboot image build elchos (Debian 12 by mmdebstrap, once per recipe; a few minutes)");
        run(Command::new(swarmboot_lab::bin("swarmboot")).args(["image", "build", "elchos", "--root-password-hash", ELCHOS_ROOT_HASH, "--config"]).arg(&cfg))?;
        std::fs::write(&done, "")?;
    }
    std::fs::create_dir_all(into)?;
    run(Command::new("cp").arg("-al").arg(state.join("images")).arg(state.join("store")).arg(state.join("signing.key")).arg(into))
}

/// Builds the static `swarmboot-init` (rustup's musl target, Debian's musl-gcc; cargo profile
/// `stub`) where `swarmboot stub build` finds it beside the workspace's binaries; its path.
pub fn build_stub_init() -> anyhow::Result<PathBuf> {
    build_stub_init_in(&workspace_root().join("target"))
}

/// [`build_stub_init`] in another cargo target directory: the package's (`build_cache("deb")`,
/// where `debian/rules` builds it with the same profile and flags, so the package build
/// finds it built).
pub fn build_stub_init_in(target_dir: &Path) -> anyhow::Result<PathBuf> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output().context("rustup")?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == STUB_TARGET) {
        run(Command::new("rustup").args(["target", "add", STUB_TARGET]))?;
    }
    run(cargo()
        .current_dir(workspace_root())
        .args(["build", "--profile", "stub", "--target", STUB_TARGET, "-p", "swarmboot-init", "--target-dir"])
        .arg(target_dir)
        .env("CC_x86_64_unknown_linux_musl", "musl-gcc"))?;
    Ok(target_dir.join(STUB_TARGET).join("stub/swarmboot-init"))
}

/// What every benchmark does first: packages, a release build of the server (what is
/// measured), the lab using it with `log_filter`; false if the lab cannot run (no root, skip
/// asked for).
pub fn prepare_bench(name: &str, log_filter: &str) -> anyhow::Result<bool> {
    ensure_packages()?;
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["build", "--release", "-p", "swarmboot-cli", "-p", "swarmboot-node"]))?;
    std::env::set_var("SWARMBOOT_BIN_DIR", root.join("target/release"));
    std::env::set_var("SWARMBOOT_LOG", log_filter);
    Ok(swarmboot_lab::require_root(name))
}

/// A benchmarked server (ours, or another program), kept alive for as long as it is held.
pub enum Running {
    Swarmboot(#[allow(dead_code)] swarmboot_lab::Server),
    Other(#[allow(dead_code)] swarmboot_lab::Proc),
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: i32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time a process's threads have run, in nanoseconds (`/proc/PID/task/*/schedstat`).
pub fn cpu_ns(pid: i32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?.split_whitespace().next()?.parse::<u64>().ok()).sum())
}
