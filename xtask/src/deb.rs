//! The Debian package: `cargo xtask deb` builds it with `dpkg-buildpackage -b -us -uc`
//! (rustup's cargo; crates fetched first, so the build is offline), and `cargo xtask
//! deb-test` (part of `cargo xtask test`) lints it and install-tests it in a clean Debian 12
//! root made with debootstrap: files in place, `swarmboot --version`, the unit verified and its
//! exposure score, the service user and state directory, a fresh install that serves nothing,
//! an upgrade to a newer version that keeps state and config, and a purge that leaves nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context};

use crate::host::{cargo, ensure_packages, run, workspace_root};

/// The highest `systemd-analyze security` exposure the unit may have.
const MAX_EXPOSURE: f64 = 2.0;

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed: {}\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The binary packages one build makes.
pub struct Debs {
    /// The server, CLI, stub init and builder.
    pub server: PathBuf,
    /// The LTSP plugin.
    pub ltsp: PathBuf,
}

/// Builds the packages (moved to `target/deb/`).
pub fn build() -> anyhow::Result<Debs> {
    ensure_packages()?;
    // Where debian/rules builds it (a no-op there when `cargo xtask test` built it already).
    crate::host::build_stub_init_in(&crate::host::build_cache("deb"))?;
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["fetch", "--locked"]))?;
    let version = output(Command::new("dpkg-parsechangelog").current_dir(&root).args(["-S", "Version"]))?.trim().to_string();
    let mut cmd = Command::new("dpkg-buildpackage");
    // noddebs: no -dbgsym package; cargo's LD_LIBRARY_PATH (set for `cargo xtask`) would
    // mislead dpkg-shlibdeps.
    // The release build in a target directory kept across runs (its dependencies compiled once
    // per machine); debian/rules takes CARGO_TARGET_DIR from the environment.
    cmd.current_dir(&root).args(["-b", "-us", "-uc"]).env("DEB_BUILD_OPTIONS", "noddebs").env("CARGO_TARGET_DIR", crate::host::build_cache("deb")).env_remove("LD_LIBRARY_PATH");
    if let Ok(c) = std::env::var("CARGO") {
        cmd.env("CARGO", c);
    }
    run(&mut cmd)?;
    let parent = root.parent().context("the repository has a parent directory")?;
    let out = root.join("target/deb");
    std::fs::create_dir_all(&out)?;
    for name in [
        format!("swarmboot_{version}_amd64.deb"),
        format!("swarmboot-ltsp_{version}_all.deb"),
        format!("swarmboot_{version}_amd64.buildinfo"),
        format!("swarmboot_{version}_amd64.changes"),
    ] {
        let from = parent.join(&name);
        ensure!(from.exists(), "dpkg-buildpackage made no {name} in {}", parent.display());
        std::fs::rename(&from, out.join(&name)).or_else(|_| std::fs::copy(&from, out.join(&name)).map(|_| ()).and_then(|_| std::fs::remove_file(&from)))?;
    }
    let debs = Debs { server: out.join(format!("swarmboot_{version}_amd64.deb")), ltsp: out.join(format!("swarmboot-ltsp_{version}_all.deb")) };
    for d in [&debs.server, &debs.ltsp] {
        println!("{} ({} bytes)", d.display(), std::fs::metadata(d)?.len());
    }
    Ok(debs)
}

/// What a Debian 12 server has besides minbase that the unit checks need: systemd (its
/// targets, `systemd-analyze --root`), procps (`/bin/kill` for ExecReload), man-db (the unit's
/// Documentation= pages).
const ROOT_INCLUDES: &str = "systemd,procps,man-db";

/// A clean Debian 12 root (debootstrap minbase + [`ROOT_INCLUDES`]), made once and kept as a
/// tarball in the cache.
fn clean_root(into: &Path) -> anyhow::Result<()> {
    let cache = crate::host::cache_dir().join(format!("debootstrap-bookworm-minbase-{}.tar", ROOT_INCLUDES.replace(',', "-")));
    if !cache.exists() {
        let tmp = into.with_extension("bootstrap");
        let _ = std::fs::remove_dir_all(&tmp);
        run(Command::new("debootstrap").args(["--variant=minbase", &format!("--include={ROOT_INCLUDES}"), "bookworm"]).arg(&tmp).arg("http://deb.debian.org/debian"))?;
        let part = cache.with_extension("part");
        run(Command::new("tar").arg("-C").arg(&tmp).arg("-cf").arg(&part).arg("."))?;
        std::fs::rename(&part, &cache)?;
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(into)?;
    run(Command::new("tar").arg("-C").arg(into).arg("-xf").arg(&cache))
}

/// A root to install into, with /proc mounted and DNS, unmounted and removed on drop.
struct Chroot {
    root: PathBuf,
}

impl Chroot {
    fn new(root: PathBuf) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(&root);
        clean_root(&root)?;
        std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).context("DNS for apt in the root")?;
        // Services are not started in a root without systemd anyway; say so as Debian does.
        std::fs::write(root.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n")?;
        run(Command::new("chmod").arg("755").arg(root.join("usr/sbin/policy-rc.d")))?;
        run(Command::new("mount").args(["-t", "proc", "proc"]).arg(root.join("proc")))?;
        Ok(Chroot { root })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("chroot");
        c.arg(&self.root).args(args).env("DEBIAN_FRONTEND", "noninteractive").env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env_remove("SWARMBOOT_LOG");
        c
    }

    fn sh(&self, script: &str) -> anyhow::Result<String> {
        output(&mut self.cmd(&["sh", "-ec", script]))
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// Every path in the root, except what apt, dpkg and logs change on any install.
    fn files(&self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let list = self.sh("find / -xdev -path /proc -prune -o -print")?;
        // /run is a tmpfs on a running system (adduser and systemd leave lock and stamp files).
        let noise = ["/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/", "/var/log/", "/tmp/", "/root/", "/run/", "/var/lib/systemd/deb-systemd-helper-masked"];
        Ok(list
            .lines()
            .filter(|l| !noise.iter().any(|n| l.starts_with(n)))
            .filter(|l| !matches!(*l, "/etc/passwd-" | "/etc/group-" | "/etc/shadow-" | "/etc/gshadow-" | "/etc/subuid-" | "/etc/subgid-" | "/etc/ld.so.cache"))
            .map(str::to_string)
            .collect())
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.root.join("proc")).status();
        if std::env::var_os("SWARMBOOT_KEEP_LAB").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The LTSP plugin with Debian's `ltsp`: `ltsp swarmboot` publishes a tiny image from
/// /srv/ltsp/images (with the vmlinuz/initrd.img `ltsp kernel` would have extracted) into the
/// catalog, once; `ltsp ipxe` gets the swarmboot entry (and the default, from ltsp.conf);
/// `ltsp swarmboot pick` without a terminal points at `swarmboot assign`.
fn ltsp_test(c: &Chroot, debs: &Debs) -> anyhow::Result<()> {
    std::fs::copy(&debs.server, c.path("/tmp/swarmboot.deb"))?;
    std::fs::copy(&debs.ltsp, c.path("/tmp/swarmboot-ltsp.deb"))?;
    c.sh("apt-get install -y -qq --no-install-recommends ltsp squashfs-tools /tmp/swarmboot.deb /tmp/swarmboot-ltsp.deb >/dev/null")?;
    ensure!(c.path("/usr/share/ltsp/server/swarmboot/55-swarmboot.sh").exists(), "the applet is not installed");
    c.sh("mkdir -p /tmp/tree/sbin /srv/ltsp/images /srv/tftp/ltsp/test && echo '#!/bin/sh' > /tmp/tree/sbin/init \
          && mksquashfs /tmp/tree /srv/ltsp/images/test.img -quiet -noappend >/dev/null \
          && head -c 300000 /dev/urandom > /srv/tftp/ltsp/test/vmlinuz && head -c 200000 /dev/urandom > /srv/tftp/ltsp/test/initrd.img")?;
    let without = c.cmd(&["ltsp", "swarmboot"]).output()?;
    let said = String::from_utf8_lossy(&without.stderr);
    ensure!(!without.status.success() && said.contains("run ltsp initrd first"), "ltsp swarmboot before ltsp initrd: {said}");
    c.sh("ltsp initrd >/dev/null 2>&1")?;
    let published = c.sh("ltsp swarmboot 2>&1")?;
    ensure!(published.contains("added test@1") && published.contains("ltsp "), "ltsp swarmboot (kernel, initrd, rootfs and ltsp.img): {published}");
    let again = c.sh("ltsp swarmboot test 2>&1")?;
    ensure!(again.contains("unchanged: test@1"), "ltsp swarmboot a second time: {again}");
    // A new user on the server: `ltsp initrd` makes a new ltsp.img, the next publish a new
    // version with the same root filesystem.
    c.sh("useradd --create-home lab-user && ltsp initrd >/dev/null 2>&1")?;
    let republished = c.sh("ltsp swarmboot test 2>&1")?;
    ensure!(republished.contains("added test@2"), "ltsp swarmboot after ltsp initrd: {republished}");
    let rootfs = |said: &str| said.lines().find(|l| l.trim_start().starts_with("rootfs")).map(str::to_string);
    ensure!(rootfs(&published).is_some() && rootfs(&published) == rootfs(&republished), "the root filesystem changed between versions:\n{published}\n{republished}");
    let list = c.sh("swarmboot image list")?;
    ensure!(list.contains("test"), "the catalog has no test image: {list}");
    println!("ltsp swarmboot: {}", published.lines().filter(|l| l.contains("Publishing") || l.contains("added")).collect::<Vec<_>>().join(" / "));

    c.sh("ltsp ipxe >/dev/null 2>&1")?;
    let menu = c.sh("cat /srv/tftp/ltsp/ltsp.ipxe")?;
    ensure!(
        menu.contains("item --key w swarmboot") && menu.contains("\n:swarmboot\n") && menu.contains("chain --replace --autofree http://${srv}:8080/boot.ipxe?mac=${net0/mac}"),
        "ltsp ipxe did not add the entry:\n{menu}"
    );
    // No other entry's labels may fall through into ours.
    let lines: Vec<&str> = menu.lines().collect();
    let at = lines.iter().position(|l| *l == ":swarmboot").expect("checked above");
    let before = lines[..at].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
    ensure!(!before.starts_with(':') && (before.contains("goto") || before.contains("boot")), "the swarmboot label follows {before:?}: another entry would fall into it\n{menu}");
    std::fs::create_dir_all(c.path("/etc/ltsp"))?;
    std::fs::write(c.path("/etc/ltsp/ltsp.conf"), "[server]\nSWARMBOOT_DEFAULT=1\n")?;
    c.sh("ltsp ipxe >/dev/null 2>&1")?;
    let menu = c.sh("cat /srv/tftp/ltsp/ltsp.ipxe")?;
    ensure!(menu.matches("item --key w swarmboot").count() == 1, "a second ltsp ipxe added the entry again:\n{menu}");
    ensure!(menu.contains("set img swarmboot # SWARMBOOT_DEFAULT\ngoto ${mac} || goto start"), "SWARMBOOT_DEFAULT=1 did not make it the default:\n{menu}");
    let added: Vec<&str> = menu.lines().filter(|l| l.contains("swarmboot") || l.contains("/boot.ipxe?")).collect();
    println!("ltsp.ipxe lines added:\n  {}", added.join("\n  "));

    let pick = c.cmd(&["ltsp", "swarmboot", "pick"]).stdin(std::process::Stdio::null()).output()?;
    let said = String::from_utf8_lossy(&pick.stderr);
    ensure!(!pick.status.success() && said.contains("swarmboot assign"), "ltsp swarmboot pick without a terminal: {said}");
    Ok(())
}

/// `deb` with its control file's Version changed (a newer package of the same files, for the
/// upgrade test).
fn with_version(deb: &Path, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let tree = dir.join("repack");
    let _ = std::fs::remove_dir_all(&tree);
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree))?;
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control)?;
    let text: String = text.lines().map(|l| if l.starts_with("Version: ") { format!("Version: {version}\n") } else { format!("{l}\n") }).collect();
    std::fs::write(&control, text)?;
    let out = dir.join(format!("swarmboot_{version}_amd64.deb"));
    run(Command::new("dpkg-deb").args(["--root-owner-group", "-b"]).arg(&tree).arg(&out))?;
    std::fs::remove_dir_all(&tree)?;
    Ok(out)
}

/// The exposure figure of `systemd-analyze security` ("→ Overall exposure level for
/// swarmboot.service: 1.9 OK").
fn exposure(report: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.contains("Overall exposure level"))?;
    line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
}

/// Builds, lints and install-tests the package; prints what it found.
pub fn test() -> anyhow::Result<()> {
    let debs = build()?;
    let deb = &debs.server;
    let root = workspace_root();
    let work = root.join("target/deb-test");
    std::fs::create_dir_all(&work)?;

    // lintian: errors fail the test; warnings are printed (and justified in the closing note).
    let lint = Command::new("lintian").args(["--no-tag-display-limit", "--display-info"]).arg(deb).arg(&debs.ltsp).output()?;
    let lint_text = String::from_utf8_lossy(&lint.stdout).into_owned();
    println!("lintian:\n{}", if lint_text.trim().is_empty() { "(nothing)".to_string() } else { lint_text.clone() });
    let errors: Vec<&str> = lint_text.lines().filter(|l| l.starts_with("E: ")).collect();
    ensure!(errors.is_empty(), "lintian reports errors:\n{}", errors.join("\n"));
    if !lint.status.success() {
        bail!("lintian failed: {}\n{}", lint.status, String::from_utf8_lossy(&lint.stderr));
    }

    let c = Chroot::new(work.join("root"))?;
    // The package's dependencies first, so the purge check compares against a root that has them.
    c.sh("apt-get update -qq && apt-get install -y -qq --no-install-recommends ipxe adduser >/dev/null")?;
    let before = c.files()?;
    std::fs::copy(deb, c.path("/tmp/swarmboot.deb"))?;
    c.sh("apt-get install -y -qq --no-install-recommends /tmp/swarmboot.deb >/dev/null")?;

    for f in [
        "/usr/sbin/swarmboot",
        "/usr/lib/swarmboot/swarmboot-init",
        "/usr/lib/swarmboot/swarmboot-node",
        "/etc/swarmboot/swarmboot.toml",
        "/lib/systemd/system/swarmboot.service",
        "/usr/share/man/man8/swarmboot.8.gz",
        "/usr/share/man/man5/swarmboot.toml.5.gz",
        "/usr/share/doc/swarmboot/copyright",
        "/etc/systemd/system/multi-user.target.wants/swarmboot.service",
        "/lib/systemd/system/swarmboot-donate.service",
        "/etc/default/swarmboot-donate",
    ] {
        ensure!(c.path(f).symlink_metadata().is_ok(), "{f} is not installed");
    }
    // Upgrades restart the service (leases are in SQLite, written before each reply, so a
    // restart loses none); a first install starts it. No systemd runs in this root to watch.
    let postinst = c.sh("cat /var/lib/dpkg/info/swarmboot.postinst")?;
    ensure!(postinst.contains("_dh_action=restart") && postinst.contains("deb-systemd-helper enable"), "postinst does not enable the unit and restart it on upgrade:\n{postinst}");
    let conffiles = c.sh("cat /var/lib/dpkg/info/swarmboot.conffiles")?;
    ensure!(conffiles.contains("/etc/swarmboot/swarmboot.toml"), "the config is not a conffile: {conffiles}");
    let version = c.sh("swarmboot --version")?;
    ensure!(version.starts_with("swarmboot "), "swarmboot --version: {version}");
    let state = c.sh("stat -c '%U:%G %a' /var/lib/swarmboot")?;
    ensure!(state.trim() == "swarmboot:swarmboot 750", "/var/lib/swarmboot is {state}");
    // A fresh install serves nothing and says what to configure (as the service would log it).
    let check = c.sh("swarmboot check-config")?;
    ensure!(check.contains("not configured yet") && check.contains("swarmboot setup"), "check-config on a fresh install: {check}");
    let serve = c.sh("setpriv --reuid=swarmboot --regid=swarmboot --clear-groups swarmboot serve 2>&1")?;
    ensure!(serve.contains("not configured yet"), "swarmboot serve on a fresh install: {serve}");
    println!("fresh install: {}", check.trim());

    // The unit: verified, and its exposure, by the root's own systemd (offline) and man.
    let verify = c.cmd(&["systemd-analyze", "verify", "/lib/systemd/system/swarmboot.service"]).output()?;
    let verify_text = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    ensure!(verify.status.success() && !verify_text.contains("swarmboot.service"), "systemd-analyze verify: {}\n{verify_text}", verify.status);
    let security = output(&mut c.cmd(&["systemd-analyze", "security", "--offline=true", "--no-pager", "/lib/systemd/system/swarmboot.service"]))?;
    let score = exposure(&security).with_context(|| format!("no exposure level in:\n{security}"))?;
    println!("systemd-analyze verify: clean\n{}", security.lines().filter(|l| l.starts_with('✗') || l.contains("Overall")).collect::<Vec<_>>().join("\n"));
    ensure!(score <= MAX_EXPOSURE, "exposure {score} is above {MAX_EXPOSURE}");

    // The donor service: installed, not enabled (it needs a server first), clean, as tight,
    // and unconfigured it says which setting is missing and where it goes.
    ensure!(c.path("/etc/systemd/system/multi-user.target.wants/swarmboot-donate.service").symlink_metadata().is_err(), "swarmboot-donate is enabled before it is configured");
    ensure!(conffiles.contains("/etc/default/swarmboot-donate"), "/etc/default/swarmboot-donate is not a conffile: {conffiles}");
    let verify = c.cmd(&["systemd-analyze", "verify", "/lib/systemd/system/swarmboot-donate.service"]).output()?;
    let verify_text = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    ensure!(verify.status.success() && !verify_text.contains("swarmboot-donate.service"), "systemd-analyze verify swarmboot-donate: {}\n{verify_text}", verify.status);
    let security = output(&mut c.cmd(&["systemd-analyze", "security", "--offline=true", "--no-pager", "/lib/systemd/system/swarmboot-donate.service"]))?;
    let donate_score = exposure(&security).with_context(|| format!("no exposure level in:\n{security}"))?;
    ensure!(donate_score <= MAX_EXPOSURE, "swarmboot-donate's exposure {donate_score} is above {MAX_EXPOSURE}");
    let unconfigured = c.sh("set -a; . /etc/default/swarmboot-donate; SWARMBOOT_DONATE_DIR=/tmp/donated swarmboot donate 2>&1 || true")?;
    ensure!(unconfigured.contains("SWARMBOOT_DONATE_SERVER") && unconfigured.contains("/etc/default/swarmboot-donate"), "swarmboot donate unconfigured: {unconfigured}");
    println!("swarmboot-donate.service: installed, not enabled, verify clean, exposure {donate_score}; unconfigured: {}", unconfigured.trim());

    // State and a changed config survive an upgrade to a newer version.
    c.sh("swarmboot key show >/dev/null && swarmboot image list >/dev/null && echo '# edited by the admin' >> /etc/swarmboot/swarmboot.toml")?;
    let owner = c.sh("stat -c %U /var/lib/swarmboot/signing.key")?;
    ensure!(owner.trim() == "swarmboot", "the key root's CLI made belongs to {owner}: the service could not read it");
    let state_before = c.sh("cd /var/lib/swarmboot && find . -type f | sort | xargs sha256sum")?;
    let newer = with_version(deb, &format!("{}+upgrade1", version.split_whitespace().nth(1).unwrap_or("0.1.0")), &work)?;
    std::fs::copy(&newer, c.path("/tmp/swarmboot-newer.deb"))?;
    c.sh("apt-get install -y -qq --no-install-recommends /tmp/swarmboot-newer.deb >/dev/null")?;
    let installed = c.sh("dpkg-query -W -f '${Version}' swarmboot")?;
    ensure!(installed.ends_with("+upgrade1"), "after the upgrade dpkg says {installed}");
    ensure!(c.sh("cd /var/lib/swarmboot && find . -type f | sort | xargs sha256sum")? == state_before, "the state changed in the upgrade");
    ensure!(c.sh("tail -1 /etc/swarmboot/swarmboot.toml")?.trim() == "# edited by the admin", "the admin's config edit was lost");
    println!("upgrade to {installed}: state and the edited config kept");

    // Remove keeps state; purge leaves nothing.
    c.sh("apt-get remove -y -qq swarmboot >/dev/null")?;
    ensure!(c.path("/var/lib/swarmboot/signing.key").exists(), "remove deleted the state");
    c.sh("apt-get purge -y -qq swarmboot >/dev/null")?;
    let after = c.files()?;
    let left: Vec<&String> = after.difference(&before).collect();
    let gone: Vec<&String> = before.difference(&after).collect();
    ensure!(left.is_empty(), "purge left: {left:?}");
    ensure!(gone.is_empty(), "install and purge removed: {gone:?}");
    ensure!(c.sh("getent passwd swarmboot || true")?.trim().is_empty(), "the swarmboot user is left");
    println!("remove kept the state; purge left nothing ({} paths compared)", after.len());

    ltsp_test(&c, &debs)?;
    println!("package: OK — lintian {} error(s), {} warning(s); exposure {score}", errors.len(), lint_text.lines().filter(|l| l.starts_with("W: ")).count());
    Ok(())
}
