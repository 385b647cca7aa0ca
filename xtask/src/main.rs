//! `cargo xtask <task>`: the project's set-up, test, demo and benchmark steps, in Rust.
//!
//! - `test`: installs what the suite needs (Debian packages, cargo-fuzz, the musl target),
//!   builds (the stub's static init too), runs a short fuzz smoke and then every test, lab tests
//!   included. `.ci/run` calls this.
//! - `stub-init`: builds the stub's static `swarmboot-init`.
//! - `fuzz --secs N`: every cargo-fuzz target (each parser of network or disk bytes) for N s.
//! - `demo`: a lab with a swarmboot server and VMs PXE-booting from it, shown live, torn down.
//! - `bench-dhcp`: perfdhcp against swarmboot, dnsmasq and Kea, same rate ladder, ratios.
//! - `bench-tftp`: a 20 MB file from swarmboot, tftpd-hpa and dnsmasq; throughput, ratios.
//! - `bench-boot`: VM power-on → marker, swarmboot (HTTP) vs dnsmasq (TFTP only).
//! - `bench-sha1`: SHA-1 piece verification MB/s vs coreutils sha1sum.
//! - `bench-placement`: datasets on donated space, simulated: replicas, churn, Sybils,
//!   successors, a rebuilt table.
//! - `bench-node`: the node agent's HTTP share vs nginx and python3 http.server (4
//!   downloaders), its RSS and CPU at rest with FTP and ADC on.
//! - `bench-namespace`: N simulated nodes index 1M files; 1 % changes; search p99 beside grep;
//!   `swarmboot mount` read throughput beside curl, bytes moved by random reads.
//! - `bench-fleet`: the dashboard under N simulated machines (DHCP leases, announces, stage
//!   reports): page and API p50/p99 vs the same with no machine, server RSS and CPU.
//! - `bench-stub`: N VMs boot one image at once, swarm mode vs direct: time to marker,
//!   server bytes per VM.
//! - `bench-upgrade`: N elchOS VMs with donated disks boot at once (nothing pre-seeded), take
//!   three datasets and a successor of one onto their disks (bytes moved vs the new file), then
//!   the next version, and reboot at once: the server's seed bytes of each storm.
//! - `bench-sim`: the storm simulator beside the lab's storm (p99 and server bytes side by
//!   side), then fleets of 20–2000 machines in rooms behind uplinks: p99 ÷ bound, server
//!   bytes and room uplink bytes ÷ image.
//! - `bench-storm`: N clients fetch one file at once over tc-shaped links: swarmboot serve +
//!   fetch, our engine alone, aria2c, plain HTTP; p50/p99/max, server bytes ÷ SIZE, p99 ÷ bound.

mod bench_boot;
mod bench_dhcp;
mod bench_fleet;
mod bench_namespace;
mod bench_node;
mod bench_placement;
mod bench_sha1;
mod bench_sim;
mod bench_storm;
mod bench_stub;
mod bench_tftp;
mod bench_upgrade;
mod deb;
mod demo;
mod host;
mod suite;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is needed, build, fuzz briefly, run every test (as CI does).
    Test {
        /// Seconds of fuzzing per target in the smoke run.
        #[arg(long, default_value_t = 40)]
        fuzz_secs: u32,
    },
    /// Fuzz every parser that reads network or disk bytes, each for `--secs`.
    Fuzz {
        #[arg(long, default_value_t = 600)]
        secs: u32,
    },
    /// Start a lab, PXE-boot VMs from swarmboot, show their consoles, tear it down.
    Demo {
        /// VMs to boot (alternately BIOS and UEFI).
        #[arg(long, default_value_t = 2)]
        vms: usize,
    },
    /// perfdhcp drives swarmboot, dnsmasq and Kea in turn; prints best leases/s and ratios.
    BenchDhcp {
        /// Offered exchange rates (per second), tried in order for each server.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000,6000,8000,10000,12000,14000,16000")]
        rates: Vec<u32>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 5)]
        period: u32,
    },
    /// VM power-on → marker: swarmboot (TFTP for iPXE, then HTTP) vs dnsmasq (TFTP only).
    BenchBoot {
        /// Boots per server (the median counts).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// SHA-1 piece verification throughput vs coreutils sha1sum.
    BenchSha1,
    /// Datasets on donated space, simulated: replicas reached, churn, Sybils, successors, a
    /// table rebuilt from check-ins, over several fleets of 200 donors × 500 datasets.
    BenchPlacement {
        #[arg(long, default_value_t = 5)]
        fleets: u64,
        /// Futures of one fleet under the Sybils' claims.
        #[arg(long, default_value_t = 1000)]
        futures: u64,
    },
    /// Build the stub's static init (target/x86_64-unknown-linux-musl/stub/swarmboot-init).
    StubInit,
    /// Build the Debian package (`dpkg-buildpackage -b -us -uc` with rustup's cargo, crates
    /// fetched first) into target/deb/.
    Deb,
    /// Build the package, lint it, and install-test it in a clean Debian 12 root (debootstrap):
    /// files, the unit and its exposure score, upgrade, purge. Part of `test`.
    DebTest,
    /// N elchOS VMs with donated disks: a first boot at once (nothing pre-seeded); three
    /// datasets wanting 2 replicas placed on their disks, then a successor of one (bytes its
    /// holders download vs the new file); then the next version added, pre-seeded onto their
    /// disks, and all rebooted at once. The server's seed bytes and uplink bytes of each storm.
    BenchUpgrade {
        #[arg(long, default_value_t = 4)]
        vms: usize,
        /// The server uplink's rate (tc syntax).
        #[arg(long, default_value = "1gbit")]
        rate: String,
    },
    /// N VMs boot one image at once, swarm mode vs direct mode: time to marker, server bytes.
    BenchStub {
        #[arg(long, default_value_t = 3)]
        vms: usize,
        /// MiB of incompressible data in the image's initramfs.
        #[arg(long, default_value_t = 64)]
        size_mib: usize,
        /// The server uplink's rate (tc syntax).
        #[arg(long, default_value = "100mbit")]
        rate: String,
        /// `synthetic` (an image of SIZE MiB of noise, to a marker) or `elchos` (elchOS, built
        /// once into the cache, to multi-user.target; swarm vs HTTP only).
        #[arg(long, default_value = "synthetic")]
        image: String,
    },
    /// The storm simulator against the lab's storm (same run), then fleets of 20 to 2000
    /// machines in rooms of 40 behind 1 Gbit/s uplinks.
    BenchSim {
        /// Clients of the lab storm it is checked against.
        #[arg(long, default_value_t = 20)]
        lab_clients: usize,
        /// Every port's rate in the lab storm (tc syntax).
        #[arg(long, default_value = "100mbit")]
        lab_rate: String,
        #[arg(long, default_value_t = 64)]
        size_mib: usize,
        #[arg(long, value_delimiter = ',', default_value = "20,100,400,800,2000")]
        machines: Vec<usize>,
        /// Share of machines that power off mid-download.
        #[arg(long, default_value_t = 0.01)]
        die: f64,
        /// Only the fleets (no lab, no root).
        #[arg(long)]
        no_lab: bool,
    },
    /// Boot storm: N clients fetch one file at once over shaped links. Modes: ours (engine
    /// alone), fetch (swarmboot serve + swarmboot fetch), aria2, aria2-served, http.
    BenchStorm {
        #[arg(long, default_value_t = 20)]
        clients: usize,
        #[arg(long, default_value_t = 64)]
        size_mib: usize,
        /// Every link's rate (tc syntax).
        #[arg(long, default_value = "100mbit")]
        rate: String,
        #[arg(long, value_delimiter = ',', default_value = "fetch,aria2,http")]
        modes: Vec<String>,
        /// Piece size of the torrent.
        #[arg(long, default_value_t = 256)]
        piece_kib: u32,
        /// Our server seed's super-seed slots (peers served at once).
        #[arg(long, default_value_t = 4)]
        server_slots: usize,
        /// Upload slots of our clients (`swarmboot fetch`'s default).
        #[arg(long, default_value_t = 12)]
        client_slots: usize,
        /// Repetitions of every mode.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// The node agent: its HTTP share to 4 downloaders vs nginx and python3 http.server, its
    /// memory and CPU at rest with FTP and ADC on (release build).
    BenchNode {
        /// MiB of the shared file.
        #[arg(long, default_value_t = 256)]
        size_mib: usize,
        /// Rounds per server (the median counts).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The fleet dashboard under N simulated machines (real DHCP leases, announces and stage
    /// reports every 10 s): page and API p50/p99 against the same requests with no machine,
    /// server RSS and CPU (release build).
    BenchFleet {
        #[arg(long, default_value_t = 1000)]
        machines: usize,
        /// Seconds the dashboard is measured under the load.
        #[arg(long, default_value_t = 60)]
        secs: u64,
    },
    /// The namespace: N simulated nodes index F files in all (time, bytes, server RSS), then
    /// 1 % changes; search p50/p99 beside grep over the same paths; a real node's file read
    /// through `swarmboot mount` beside curl, and the bytes 100 random 4 KiB reads move.
    BenchNamespace {
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        #[arg(long, default_value_t = 1_000_000)]
        files: usize,
        /// The file read through the mount, in MiB.
        #[arg(long, default_value_t = 256)]
        mount_mib: u64,
    },
    /// A 20 MB file over TFTP from swarmboot, tftpd-hpa and dnsmasq; throughput and ratios.
    BenchTftp {
        /// Fetches per server and client (the median counts).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.task {
        Task::Test { fuzz_secs } => suite::test(fuzz_secs),
        Task::Fuzz { secs } => host::ensure_packages().and_then(|_| suite::fuzz(secs)),
        Task::Demo { vms } => demo::run(vms),
        Task::BenchDhcp { rates, period } => bench_dhcp::run(&rates, period),
        Task::BenchTftp { runs } => bench_tftp::run(runs),
        Task::BenchNode { size_mib, runs } => bench_node::run(size_mib, runs),
        Task::BenchFleet { machines, secs } => bench_fleet::run(machines, secs),
        Task::BenchNamespace { nodes, files, mount_mib } => bench_namespace::run(nodes, files, mount_mib),
        Task::BenchBoot { runs } => bench_boot::run(runs),
        Task::BenchSha1 => bench_sha1::run(),
        Task::BenchPlacement { fleets, futures } => bench_placement::run(fleets, futures),
        Task::BenchSim { lab_clients, lab_rate, size_mib, machines, die, no_lab } => bench_sim::run(bench_sim::SimArgs { lab_clients, lab_rate, size_mib, machines, die, no_lab }),
        Task::BenchStub { vms, size_mib, rate, image } => bench_stub::run(bench_stub::StubBenchArgs { vms, size_mib, rate, image }),
        Task::BenchUpgrade { vms, rate } => bench_upgrade::run(bench_upgrade::UpgradeBenchArgs { vms, rate }),
        Task::Deb => deb::build().map(|_| ()),
        Task::DebTest => deb::test(),
        Task::StubInit => host::ensure_packages().and_then(|_| host::build_stub_init()).map(|p| println!("{}", p.display())),
        Task::BenchStorm { clients, size_mib, rate, modes, piece_kib, server_slots, client_slots, runs } => {
            bench_storm::run(bench_storm::StormArgs { clients, size_mib, rate, modes, piece_kib, server_slots, client_slots, runs })
        }
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
