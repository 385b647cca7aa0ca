//! The `swarmboot` command. `main` only parses arguments and dispatches; each subcommand is a
//! short function over the library crates. Errors are reported here, with their context chain.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use swarmboot_config::{Config, DEFAULT_PATH};
use swarmboot_dhcp::{Lease, Mode};
use swarmboot_server::lease_store::LeaseStore;

mod assign;
mod config_file;
mod fetch_cmd;
mod image_build;
mod pick;
mod rootfs_kernel;
mod setup;
mod state_owner;
mod stub_cmd;
mod torrent_cmd;

#[derive(Parser)]
#[command(name = "swarmboot", version, about = "Netboot a fleet from one server: DHCP, TFTP, HTTP and a BitTorrent swarm")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the boot server (DHCP, TFTP, HTTP, the tracker and the seed of every image file) until SIGTERM.
    Serve {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Check a config file and say what it would do; exit 1 with every problem found if it is bad.
    CheckConfig {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Manage boot images (kernel, initrd, root filesystem) in the catalog.
    Image {
        #[arg(long, default_value = DEFAULT_PATH, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: ImageAction,
    },
    /// The server's signing key (created on first use in the state directory).
    Key {
        #[arg(long, default_value = DEFAULT_PATH, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Fetch an image from a boot server through the swarm: signed manifest, every file
    /// verified; with --seed, keep seeding it.
    Fetch(fetch_cmd::FetchArgs),
    /// Choose which image machines boot: one MAC, a group (a named `[[boot.client]]` rule or its
    /// MAC glob), or the default; the config is edited in place and the running server reloaded.
    Assign {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// `default`, a MAC address (52:54:00:12:34:56), or a group.
        target: String,
        /// An image in the catalog.
        image: String,
    },
    /// Pick which image machines boot, in the terminal (keyboard only, fits 80×24; see --help
    /// for the keys). Without a terminal use `swarmboot assign`.
    Pick(pick::PickArgs),
    /// Configure a fresh install: pick the boot network's interface, see whether a DHCP server
    /// answers there (one DHCPDISCOVER), write proxy or authoritative mode into the config.
    Setup(setup::SetupArgs),
    /// The stub initramfs that swarm-mode machines boot.
    Stub {
        #[arg(long, default_value = DEFAULT_PATH, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: stub_cmd::StubAction,
    },
    /// Create, seed and download torrents with swarmboot's swarm engine.
    Torrent {
        #[command(subcommand)]
        action: torrent_cmd::TorrentAction,
    },
    /// List DHCP leases from the lease database.
    Leases {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Print the public key (give it to clients: `--key`) and its fingerprint.
    Show,
}

#[derive(Subcommand)]
enum ImageAction {
    /// Add NAME (version 1, or the next version of an existing image).
    Add {
        name: String,
        /// The image's kernel (default with --rootfs: the newest /boot/vmlinuz-* in the root that
        /// has an initramfs).
        #[arg(long, requires = "initrd")]
        kernel: Option<PathBuf>,
        /// The image's initramfs (default with --rootfs: /boot/initrd.img-* of that kernel).
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// A squashfs root filesystem.
        #[arg(long, required_unless_present = "kernel")]
        rootfs: Option<PathBuf>,
        /// LTSP's ltsp.img (`ltsp initrd`), applied to the root before LTSP's init runs, as LTSP's
        /// own boot does (`ltsp swarmboot` passes it).
        #[arg(long, requires = "rootfs")]
        ltsp: Option<PathBuf>,
        /// Kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Add nothing when the latest version has the same files and command line.
        #[arg(long)]
        if_changed: bool,
    },
    /// Build an image from Debian (mmdebstrap from `[build] mirror`, squashfs) and add it as the
    /// next version: `elchos`, the default image. Its inputs go into the signed manifest.
    Build {
        /// What to build: elchos.
        recipe: String,
        /// Add it under this name (default: elchos).
        #[arg(long)]
        name: Option<String>,
        /// One more package (repeatable).
        #[arg(long = "include", value_name = "PACKAGE")]
        include: Vec<String>,
        /// root's password as a crypt(3) hash (`openssl passwd -6`, `mkpasswd -m sha-512`);
        /// without it and without keys root cannot log in.
        #[arg(long, value_name = "HASH")]
        root_password_hash: Option<String>,
        /// A file of SSH public keys that may log in as root.
        #[arg(long, value_name = "FILE")]
        authorized_keys: Option<PathBuf>,
        /// Where to build (default: <state_dir>/build); removed afterwards.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
    /// List images and their versions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove NAME (all versions) or NAME@VERSION. Files stay until `image gc`.
    Rm { name: String },
    /// Remove old versions and files nothing references.
    Gc {
        /// Versions of each image to keep, newest first.
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Keep a version until its successor is at least this old (machines still booting it).
        #[arg(long, default_value = "1h")]
        grace: humantime::Duration,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SWARMBOOT_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Commands that write into the state directory, for handing root's files back afterwards.
    let touches_state = match &cli.command {
        Command::Leases { config, .. } | Command::Image { config, .. } | Command::Stub { config, .. } | Command::Key { config, .. } => Some(config.clone()),
        _ => None,
    };
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Setup(args) => setup::run(args),
        Command::Pick(args) => pick::run(args),
        Command::Assign { config, target, image } => assign::apply(&config, &assign::Target::parse(&target), &image).map(|said| println!("{said}")),
        Command::CheckConfig { config } => check_config(config),
        Command::Leases { config, json } => leases(config, json),
        Command::Image { config, action } => image(config, action),
        Command::Torrent { action } => torrent_cmd::run(action),
        Command::Fetch(args) => fetch_cmd::run(args),
        Command::Stub { config, action } => stub_cmd::run(&config, action),
        Command::Key { config, action: KeyAction::Show } => key_show(config),
    };
    if let Some(cfg) = touches_state.and_then(|p| Config::load(&p).ok()) {
        if let Err(e) = state_owner::hand_back(&cfg.server.state_dir) {
            eprintln!("swarmboot: warning: cannot give {} back to its owner: {e}", cfg.server.state_dir.display());
        }
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmboot: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// What an installed but unconfigured server says (in its log and `check-config`).
fn not_configured(path: &std::path::Path) -> String {
    format!(
        "{}: not configured yet, so swarmboot serves nothing (no DHCP, TFTP, HTTP or seed): name the boot network's interface and this server's address on it ([server] interface, address) and choose [dhcp] mode, e.g. with `swarmboot setup`; then `systemctl restart swarmboot`",
        path.display()
    )
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
    if !cfg.is_configured() {
        tracing::warn!("{}", not_configured(&path));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(swarmboot_server::run(cfg))
}

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
    if !cfg.is_configured() {
        println!("{}", not_configured(&path));
        return Ok(());
    }
    let prefix = match swarmboot_server::served_prefix(&cfg) {
        Ok(p) => p,
        Err(e) => {
            println!("{}: note: {e:#}; checking against a /24 instead", path.display());
            24
        }
    };
    let s = cfg.dhcp_settings(prefix)?;
    let addresses: u64 = s.subnets.iter().flat_map(|n| &n.pools).map(|p| p.len()).sum();
    let mode = match s.mode {
        Mode::Off => "off (hands out nothing)",
        Mode::Authoritative => "authoritative",
        Mode::Proxy => "proxy (boot information for PXE clients only)",
    };
    println!("{}: OK", path.display());
    println!("  interface {} address {}/{prefix}", cfg.server.interface, s.server_ip);
    println!("  dhcp {mode}: {addresses} addresses in {} subnet(s), {} reservation(s)", s.subnets.len(), s.reservations.len());
    println!("  http {}; state in {}", cfg.http.listen, cfg.server.state_dir.display());
    let w = &cfg.swarm;
    println!(
        "  swarm: tracker {}; seed {}",
        if w.tracker { format!("at {}", swarmboot_urls::Urls::new(&format!("http://{}:{}", s.server_ip, cfg.http.listen.port())).announce()) } else { "off".into() },
        if w.seed { format!("on {} (bound to {}), {} upload slots", w.listen, cfg.server.interface, w.upload_slots) } else { "off".into() }
    );
    Ok(())
}

fn key_show(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
    let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
    let public = key.public();
    println!("public key  {}", public.to_hex());
    println!("fingerprint {}", public.fingerprint());
    println!("(private key in {})", cfg.server.state_dir.join(swarmboot_manifest::keys::KEY_FILE).display());
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn image(path: PathBuf, action: ImageAction) -> anyhow::Result<()> {
    use swarmboot_image::{Catalog, Role};
    let cfg = Config::load(&path)?;
    let catalog = Catalog::new(&cfg.server.state_dir);
    match action {
        ImageAction::Add { name, kernel, initrd, rootfs, ltsp, cmdline, if_changed } => {
            let found;
            let (kernel, initrd) = match (&kernel, &initrd, &rootfs) {
                (Some(k), Some(i), _) => (k.as_path(), i.as_path()),
                (_, _, Some(r)) => {
                    found = rootfs_kernel::from_squashfs(r, &cfg.server.state_dir)?;
                    println!("took kernel {release} from {}: /boot/vmlinuz-{release} and /boot/initrd.img-{release}", r.display(), release = found.release);
                    (found.kernel.as_path(), found.initrd.as_path())
                }
                _ => anyhow::bail!("give the image's files: --kernel K --initrd I, or --rootfs R (its newest kernel is taken)"),
            };
            let mut files = vec![(Role::Kernel, kernel), (Role::Initrd, initrd)];
            if let Some(r) = &rootfs {
                files.push((Role::Rootfs, r.as_path()));
            }
            if let Some(l) = &ltsp {
                files.push((Role::Ltsp, l.as_path()));
            }
            let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
            let (m, new) =
                if if_changed { catalog.add_if_changed(&name, &files, &cmdline, unix_now(), &key)? } else { (catalog.add(&name, &files, &cmdline, unix_now(), &key)?, true) };
            if !new {
                println!("unchanged: {}@{} has these files and command line; nothing added", m.name, m.version);
                return Ok(());
            }
            println!("added {}@{}{}, signed by {}", m.name, m.version, m.predecessor.map(|p| format!(" (successor of @{p})")).unwrap_or_default(), key.public().fingerprint());
            for f in &m.files {
                println!("  {:<7} {:>12} bytes  sha256 {}", format!("{:?}", f.role).to_lowercase(), f.size, f.sha256);
            }
        }
        ImageAction::Build { recipe, name, include, root_password_hash, authorized_keys, work_dir } => {
            image_build::run(&cfg, &catalog, image_build::BuildArgs { recipe, name, include, root_password_hash, authorized_keys, work_dir }, unix_now())?;
        }
        ImageAction::List { json } => {
            let all = catalog.all()?;
            if json {
                // Paths on this server (the catalog does not know where it is reached).
                let paths = swarmboot_urls::Urls::new("");
                let rows: Vec<_> = all
                    .iter()
                    .map(|m| {
                        serde_json::json!({"name": m.name, "version": m.version, "created": m.created, "predecessor": m.predecessor, "cmdline": m.cmdline,
                        "manifest": paths.manifest(&m.name, Some(m.version)),
                        "files": m.files.iter().map(|f| serde_json::json!({"role": format!("{:?}", f.role).to_lowercase(), "size": f.size, "sha256": f.sha256, "info_hash": f.info_hash,
                            "blob": paths.blob(&f.sha256), "torrent": paths.torrent(&f.sha256), "magnet": paths.magnet(&f.sha256)})).collect::<Vec<_>>()})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("{:<20} {:>7} {:>12}  CMDLINE", "IMAGE", "VERSION", "SIZE");
            for m in &all {
                let size: u64 = m.files.iter().map(|f| f.size).sum();
                println!("{:<20} {:>7} {:>12}  {}", m.name, m.version, size, m.cmdline);
            }
            println!("{} image version(s)", all.len());
        }
        ImageAction::Rm { name } => {
            let (name, version) = match name.split_once('@') {
                Some((n, v)) => (n.to_string(), Some(v.parse::<u32>().with_context(|| format!("`{v}` is not a version number"))?)),
                None => (name, None),
            };
            for m in catalog.remove(&name, version)? {
                println!("removed {}@{}", m.name, m.version);
            }
        }
        ImageAction::Gc { keep, grace } => {
            let r = catalog.gc(keep.max(1), grace.as_secs(), unix_now())?;
            for (n, v) in &r.versions {
                println!("removed {n}@{v}");
            }
            println!("removed {} file(s), {} bytes", r.blobs, r.bytes);
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct LeaseRow {
    ip: Ipv4Addr,
    mac: String,
    hostname: Option<String>,
    state: &'static str,
    expires: u64,
    /// Seconds from now; negative when already past.
    expires_in: i64,
}

fn leases(path: PathBuf, json: bool) -> anyhow::Result<()> {
    let cfg = Config::load(&path)?;
    let store = LeaseStore::open_read_only(&cfg.server.state_dir).context("no lease database yet: has `swarmboot serve` run with [dhcp] mode on?")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let rows: Vec<LeaseRow> = store
        .load()?
        .into_iter()
        .map(|l: Lease| LeaseRow {
            ip: l.ip,
            mac: l.hwaddr.to_string(),
            hostname: l.hostname,
            state: l.state.as_str(),
            expires: l.expires,
            expires_in: l.expires as i64 - now as i64,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<16} {:<18} {:<9} {:>10}  HOSTNAME", "IP", "MAC", "STATE", "EXPIRES IN");
    for r in &rows {
        let when = if r.expires_in >= 0 { format!("{}s", r.expires_in) } else { "expired".into() };
        println!("{:<16} {:<18} {:<9} {:>10}  {}", r.ip, r.mac, r.state, when, r.hostname.as_deref().unwrap_or("-"));
    }
    println!("{} lease record(s)", rows.len());
    Ok(())
}
