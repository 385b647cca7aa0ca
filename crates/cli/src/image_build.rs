//! `swarmboot image build elchos`: the image built from Debian on this server
//! (`swarmboot_imagebuild`) and added to the catalog as the next version, its build inputs
//! (release, apt source, every package with its version) in the signed manifest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use swarmboot_config::Config;
use swarmboot_image::{BuildInputs, Catalog, Role};
use swarmboot_imagebuild::elchos::{self, ElchosOptions};

pub struct BuildArgs {
    pub recipe: String,
    pub name: Option<String>,
    pub include: Vec<String>,
    pub root_password_hash: Option<String>,
    pub authorized_keys: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
}

/// Removes the build's directory when the build is over (the store has copies of its files).
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The node agent elchOS carries: `$SWARMBOOT_NODE`, the one beside this binary (a build
/// tree: the agent built with it), or the package's.
fn find_agent() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SWARMBOOT_NODE") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe().ok()?.with_file_name("swarmboot-node");
    [beside, PathBuf::from("/usr/lib/swarmboot/swarmboot-node")].into_iter().find(|p| p.is_file())
}

pub fn run(cfg: &Config, catalog: &Catalog, a: BuildArgs, now: u64) -> anyhow::Result<()> {
    if a.recipe != "elchos" {
        bail!("no recipe {:?}: swarmboot builds elchos (swarmboot image build elchos); add other images with swarmboot image add", a.recipe);
    }
    if let Some(h) = &a.root_password_hash {
        if !elchos::is_crypt_hash(h) {
            bail!("--root-password-hash takes a crypt(3) hash like `openssl passwd -6` prints ($6$…), not a password");
        }
    }
    let authorized_keys = match &a.authorized_keys {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("--authorized-keys {}", f.display()))?),
        None => None,
    };
    let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
    let binary = find_agent()
        .context("the node agent (swarmboot-node) is missing: it is installed with swarmboot in /usr/lib/swarmboot (reinstall the package), or set SWARMBOOT_NODE to it")?;
    let agent = elchos::Agent { binary, server_key: format!("public key {}", key.public().to_hex()) };
    let opts =
        ElchosOptions { mirror: cfg.build.mirror.clone(), include: a.include.clone(), root_password_hash: a.root_password_hash.clone(), authorized_keys, agent: Some(agent) };
    let recipe = elchos::recipe(&opts);
    recipe.check().map_err(anyhow::Error::msg)?;
    let name = a.name.clone().unwrap_or_else(|| "elchos".into());
    // Not under the state directory: the service owns it and could swap the build's directory
    // for a link while root builds in it. A fresh directory root made, in /var/tmp (sticky: no
    // one else can rename it), unless --work-dir says otherwise.
    let base = match &a.work_dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new().prefix("swarmboot-build-").tempdir_in("/var/tmp").context("making a build directory in /var/tmp (or pass --work-dir)")?.keep(),
    };
    let work = WorkDir(base.join(format!("{name}-{}", std::process::id())));
    let _base = a.work_dir.is_none().then(|| WorkDir(base.clone()));
    let started = Instant::now();
    let built = swarmboot_imagebuild::build(&recipe, &work.0, |step| println!("{name}: {step}")).with_context(|| format!("building {name}"))?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let inputs = BuildInputs {
        recipe: recipe.name.clone(),
        suite: recipe.suite.clone(),
        mirror: recipe.mirror.clone().unwrap_or_default(),
        include: recipe.include.clone(),
        packages: built.packages.clone(),
    };
    let files = [(Role::Kernel, built.kernel.as_path()), (Role::Initrd, built.initrd.as_path()), (Role::Rootfs, built.squashfs.as_path())];
    let m = catalog.add_built(&name, &files, elchos::CMDLINE, now, &key, inputs)?;
    println!(
        "built {}@{} in {:.0} s (root {:.0} s, squashfs {:.0} s): squashfs {} MiB, kernel {}, {} packages; signed by {}",
        m.name,
        m.version,
        started.elapsed().as_secs_f64(),
        built.root_secs,
        built.squashfs_secs,
        (size(&built.squashfs) + (1 << 19)) >> 20,
        built.release,
        built.packages.len(),
        key.public().fingerprint()
    );
    if cfg.boot.default_image.as_deref() == Some(name.as_str()) {
        println!("machines without a [[boot.client]] rule boot it ([boot] default_image)");
    }
    Ok(())
}
