//! `swarmboot stub build|show`: the initramfs swarm-mode machines boot.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use swarmboot_config::Config;
use swarmboot_image::Catalog;

#[derive(Subcommand)]
pub enum StubAction {
    /// Build the stub initramfs (swarmboot-init, the server's key, NIC and squashfs/overlay
    /// modules for the kernel) and register it with the server.
    Build {
        /// The kernel machines boot in swarm mode (default: the newest /boot/vmlinuz-*).
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// The static swarmboot-init (default: $SWARMBOOT_INIT, /usr/lib/swarmboot/swarmboot-init,
        /// or the one `cargo xtask stub-init` built).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Where the kernel's modules are (default: /lib/modules/<its release>).
        #[arg(long)]
        modules_dir: Option<PathBuf>,
        /// More modules (names or aliases) to carry. Repeatable.
        #[arg(long = "module")]
        modules: Vec<String>,
    },
    /// Show the registered stub.
    Show,
}

fn find_init() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SWARMBOOT_INIT") {
        return Some(PathBuf::from(p));
    }
    let exe_dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let candidates = [
        PathBuf::from("/usr/lib/swarmboot/swarmboot-init"),
        exe_dir.join("../x86_64-unknown-linux-musl/stub/swarmboot-init"),
        exe_dir.join("../../x86_64-unknown-linux-musl/stub/swarmboot-init"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

pub fn run(config: &Path, action: StubAction) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let catalog = Catalog::new(&cfg.server.state_dir);
    match action {
        StubAction::Show => match catalog.stub()? {
            Some(s) => {
                println!("stub for kernel {}: kernel sha256 {}, initramfs {} bytes sha256 {}, built {}", s.release, s.kernel_sha256, s.initrd_size, s.initrd_sha256, s.built)
            }
            None => println!("no stub built yet: run `swarmboot stub build`"),
        },
        StubAction::Build { kernel, init, modules_dir, modules } => {
            let kernel = kernel.or_else(swarmboot_stub::newest_kernel).context("no kernel in /boot: pass --kernel (Debian: apt install linux-image-amd64)")?;
            let init = init.or_else(find_init).context("no static swarmboot-init found: pass --init, set SWARMBOOT_INIT, or build it with `cargo xtask stub-init`")?;
            let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
            let inputs = swarmboot_stub::StubInputs { kernel: kernel.clone(), modules_dir, init: init.clone(), key: key.public(), extra_modules: modules };
            let built = swarmboot_stub::build(&inputs)?;
            // Root's own temporary file (a random name, created exclusively), never a name in
            // the state directory the service could have planted a link at.
            let mut tmp = tempfile::Builder::new().prefix("swarmboot-stub-initrd-").tempfile().context("a temporary file for the stub's initramfs")?;
            std::io::Write::write_all(&mut tmp, &built.initrd).with_context(|| format!("writing {}", tmp.path().display()))?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let rec = catalog.set_stub(&kernel, tmp.path(), &built.release, now)?;
            let init_size = std::fs::metadata(&init).map(|m| m.len()).unwrap_or(0);
            println!(
                "stub for kernel {} ({}): initramfs {:.2} MB ({:.2} MB unpacked: init {:.2} MB, {} module files), key {}",
                built.release,
                kernel.display(),
                built.initrd.len() as f64 / 1e6,
                built.uncompressed as f64 / 1e6,
                init_size as f64 / 1e6,
                built.modules.len(),
                key.public().fingerprint()
            );
            println!("registered: kernel sha256 {}, initramfs sha256 {}", rec.kernel_sha256, rec.initrd_sha256);
            if built.initrd.len() > 8_000_000 {
                println!("note: larger than the 8 MB goal");
            }
            println!("machines boot it when [boot] mode = \"swarm\" (or a [[boot.client]] rule says so)");
        }
    }
    Ok(())
}
