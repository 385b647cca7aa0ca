//! The `swarmboot` command. `main` only parses arguments and dispatches; each subcommand is a
//! short function over the library crates. Errors are reported here, with their context chain.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use swarmboot_config::{Config, DEFAULT_PATH};

mod assign;
mod config_file;
mod dataset_cmd;
mod donate_cmd;
mod fetch_cmd;
mod image_build;
mod image_cmd;
mod key_cmd;
mod leases_cmd;
mod local_server;
mod mount_cmd;
mod node_cmd;
mod pick;
mod rootfs_kernel;
mod search_cmd;
mod serve_cmd;
mod setup;
mod state_owner;
mod status_cmd;
mod stub_cmd;
mod terminal_text;
mod token_cmd;
mod torrent_cmd;

#[derive(Parser)]
#[command(name = "swarmboot", version, about = "Netboot a fleet from one server: DHCP, TFTP, HTTP and a BitTorrent swarm")]
struct Cli {
    /// The configuration file (every command that reads or edits it).
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the boot server (DHCP, TFTP, HTTP, the tracker and the seed of every image file) until SIGTERM.
    Serve,
    /// Check a config file and say what it would do; exit 1 with every problem found if it is bad.
    CheckConfig,
    /// Manage boot images (kernel, initrd, root filesystem) in the catalog.
    Image {
        #[command(subcommand)]
        action: image_cmd::ImageAction,
    },
    /// Datasets: sets of files placed on donors' space (elchOS data disks, `swarmboot donate`
    /// hosts), each held by as many donors as it asks for.
    Dataset {
        #[command(subcommand)]
        action: dataset_cmd::DatasetAction,
    },
    /// Give disk space to a boot server's datasets: check in, fetch what the server says
    /// through the swarm, seed it, drop what it says, until stopped (a systemd service on any
    /// Linux host).
    Donate(donate_cmd::DonateArgs),
    /// The server's signing key (created on first use in the state directory).
    Key {
        #[command(subcommand)]
        action: key_cmd::KeyAction,
    },
    /// Fetch an image from a boot server through the swarm: signed manifest, every file
    /// verified; with --seed, keep seeding it.
    Fetch(fetch_cmd::FetchArgs),
    /// Choose which image machines boot: one MAC, a group (a named `[[boot.client]]` rule or its
    /// MAC glob), or the default. Written to `assignments.toml` in the state directory (layered
    /// over the config's `[boot]`, as the dashboard's images page does) and the running server
    /// reloaded.
    Assign {
        /// `default`, a MAC address (52:54:00:12:34:56), or a group.
        target: String,
        /// An image in the catalog.
        #[arg(required_unless_present = "unset")]
        image: Option<String>,
        /// Remove the target's assignment: it boots what the config says again.
        #[arg(long, conflicts_with = "image")]
        unset: bool,
    },
    /// Pick which image machines boot, in the terminal (keyboard only, fits 80×24; see --help
    /// for the keys). Without a terminal use `swarmboot assign`.
    Pick(pick::PickArgs),
    /// Configure a fresh install: pick the boot network's interface, see whether a DHCP server
    /// answers there (one DHCPDISCOVER), write proxy or authoritative mode into the config.
    Setup(setup::SetupArgs),
    /// The stub initramfs that swarm-mode machines boot.
    Stub {
        #[command(subcommand)]
        action: stub_cmd::StubAction,
    },
    /// Create, seed and download torrents with swarmboot's swarm engine.
    Torrent {
        #[command(subcommand)]
        action: torrent_cmd::TorrentAction,
    },
    /// The elchOS nodes that check in with this server.
    Node {
        #[command(subcommand)]
        action: node_cmd::NodeAction,
    },
    /// The fleet at a glance, from the running server: each machine's stage (dhcp, ipxe, stub,
    /// fetching, handover, running, lost), for how long, its image and address.
    Status(status_cmd::StatusArgs),
    /// Search the files elchOS nodes share: words and filters (size>700M, type:video, ext:iso,
    /// in:movies); each hit with the nodes that have it and their HTTP/FTP URLs.
    Search(search_cmd::SearchArgs),
    /// Mount the fleet's files read-only (FUSE): listings from the server's index, bytes by
    /// ranges from the nodes that hold them. Runs until interrupted.
    Mount(mount_cmd::MountArgs),
    /// The admin token the dashboard's actions need.
    Token {
        #[command(subcommand)]
        action: token_cmd::TokenAction,
    },
    /// List DHCP leases from the lease database.
    Leases {
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
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
    let touches_state = matches!(
        cli.command,
        Command::Assign { .. }
            | Command::Pick(_)
            | Command::Leases { .. }
            | Command::Node { .. }
            | Command::Image { .. }
            | Command::Dataset { .. }
            | Command::Stub { .. }
            | Command::Key { .. }
            | Command::Token { .. }
    );
    let config = cli.config;
    // Root's changes in a state directory the service owns take the owner's identity, so a
    // link the service planted there leads nowhere it could not write itself.
    if touches_state {
        if let Ok(cfg) = Config::load(&config) {
            if let Err(e) = swarmboot_durable::write_as_owner_of(&cfg.server.state_dir) {
                eprintln!("swarmboot: error: cannot write into {} as its owner: {e}", cfg.server.state_dir.display());
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let result = match cli.command {
        Command::Serve => serve_cmd::serve(&config),
        Command::Setup(args) => setup::run(&config, args),
        Command::Pick(args) => pick::run(&config, args),
        Command::Assign { target, image, unset } => match image {
            Some(image) if !unset => assign::apply(&config, &assign::Target::parse(&target), &image),
            _ => assign::unset(&config, &assign::Target::parse(&target)),
        }
        .map(|said| println!("{said}")),
        Command::CheckConfig => serve_cmd::check_config(&config),
        Command::Leases { json } => leases_cmd::run(&config, json),
        Command::Node { action } => node_cmd::run(&config, action),
        Command::Image { action } => image_cmd::run(&config, action),
        Command::Dataset { action } => dataset_cmd::run(&config, action),
        Command::Donate(args) => donate_cmd::run(args),
        Command::Torrent { action } => torrent_cmd::run(action),
        Command::Fetch(args) => fetch_cmd::run(args),
        Command::Stub { action } => stub_cmd::run(&config, action),
        Command::Key { action } => key_cmd::run(&config, action),
        Command::Status(args) => status_cmd::run(&config, args),
        Command::Search(args) => search_cmd::run(&config, args),
        Command::Mount(args) => mount_cmd::run(args),
        Command::Token { action } => token_cmd::run(&config, action),
    };
    if let Some(cfg) = touches_state.then(|| Config::load(&config).ok()).flatten() {
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
