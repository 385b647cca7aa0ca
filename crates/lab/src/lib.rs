//! The lab: throwaway network namespaces joined by a bridge, hosts on veth pairs, and the
//! processes run in them, for swarmboot's end-to-end tests, demo and benchmarks.
//!
//! Main types: [`Lan`] (a server namespace with bridge `br0`, plus hosts), [`Netns`], [`Proc`]
//! (a child process killed by PID on drop) and [`Server`] (`swarmboot serve` in the lab).
//! Everything is named uniquely per process, so lab tests run in parallel, and removed on drop,
//! also when a test panics.
//!
//! What it does not do: send traffic anywhere but into the namespaces it made.

pub mod bittorrent;
pub mod browser;
pub mod clients;
pub mod debian;
pub mod disks;
pub mod hostile;
pub mod initramfs;
pub mod ltsp;
mod netns;
pub mod probe;
mod proc;
pub mod qemu;
mod server;
pub mod stub_console;
pub mod tmux;
pub mod webdriver;

pub use netns::{Lan, Netns};
pub use proc::{wait_for_line, wait_for_line_after, without_escapes, Proc};
pub use server::Server;

use std::path::PathBuf;

/// Whether a lab test can run. Lab tests need root (namespaces, bridges). Without it they fail
/// loudly, unless a person set `SWARMBOOT_SKIP_LAB=1` on purpose, which skips them with a notice.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("SWARMBOOT_SKIP_LAB").as_deref() == Ok("1") {
        eprintln!("SKIPPED lab test {test}: not root and SWARMBOOT_SKIP_LAB=1");
        return false;
    }
    panic!("lab test {test} needs root (network namespaces); run as root, or set SWARMBOOT_SKIP_LAB=1 to skip lab tests on purpose");
}

/// Path of a workspace binary (`swarmboot`, ...): `$SWARMBOOT_BIN_DIR/NAME`, else the cargo
/// target directory's debug build. `cargo xtask test` builds them before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("SWARMBOOT_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("debug")
        }
    };
    let p = dir.join(name);
    assert!(p.exists(), "{} not found: build it first (cargo build --workspace --bins), or set SWARMBOOT_BIN_DIR", p.display());
    p
}

/// A fresh scratch directory under the system temp dir, removed on drop.
pub struct ScratchDir(PathBuf, std::cell::Cell<bool>);

impl ScratchDir {
    pub fn new(tag: &str) -> std::io::Result<Self> {
        let p = std::env::temp_dir().join(format!("swarmboot-lab-{tag}-{}-{}", std::process::id(), netns::unique()));
        std::fs::create_dir_all(&p)?;
        Ok(ScratchDir(p, std::cell::Cell::new(false)))
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
    /// Leaves the directory in place when dropped (to look at after a failure).
    pub fn keep(&self) {
        self.1.set(true);
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("SWARMBOOT_KEEP_LAB").is_none() && !self.1.get() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A cheap seeded generator (xorshift64): the same numbers for the same seed, for test data
/// and benchmark trees that are the same every run. Not for anything secret.
pub struct Seeded(u64);

impl Seeded {
    /// A generator from `seed` (0 is mixed so that it still moves).
    pub fn new(seed: u64) -> Self {
        Seeded(0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One of `from` (not empty).
    pub fn pick<'a, T: ?Sized>(&mut self, from: &[&'a T]) -> &'a T {
        from[(self.next_u64() % from.len() as u64) as usize]
    }
}

/// `len` incompressible bytes, the same for the same `salt`: test images whose size on the
/// wire is their size on disk.
pub fn noise(len: usize, salt: u64) -> Vec<u8> {
    let mut rng = Seeded::new(salt);
    (0..len).map(|_| (rng.next_u64() >> 24) as u8).collect()
}
