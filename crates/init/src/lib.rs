//! The stub's init, as a library of sans-IO parts plus the PID-1 program (`main.rs`).
//!
//! - [`cmdline`]: `swarmboot.server=`, `swarmboot.image=`, `swarmboot.key=` … from
//!   `/proc/cmdline`, with messages that say what is missing.
//! - [`kmod`]: which kernel modules a device needs (`modalias` against `modules.alias`, glob
//!   patterns) and in which order to load them (`modules.dep`); the stub builder uses the same
//!   index to pick what goes into the initramfs.
//! - [`kernel`]: whether the image's kernel is the running one (bzImage header vs
//!   `/proc/version`).
//! - [`handover`]: before fetching, whether the stub will switch_root with its own kernel (so
//!   it fetches the root filesystem only), and the RAM the image needs.
//!
//! - [`netlink`]: the rtnetlink messages for link up, rename, address and default route.
//! - [`nic_name`]: the name the booted system's udev would give the NIC (`ens3`), which the
//!   stub gives it before bringing it up.
//! - [`cpio`]: the newc archive writer (the stub builder's initramfs, the archive a kexec
//!   carries the image in) and reader (LTSP's `ltsp.img`).
//! - [`carry`]: what a kexec carries into the image's kernel so the stub's seeder runs on
//!   there: the archive's layout, the note the seeder reads, the new command line.
//! - [`ipconfig`]: the lease file klibc's ipconfig leaves in `/run` (LTSP's init reads it).
//! - [`ltsp`]: LTSP images: what of LTSP's `ltsp.img` goes into the root and which links,
//!   as LTSP's initramfs hook installs it, and how LTSP's init learns its server.
//! - [`trust`]: which keys the stub trusts (the built-in ones, never one the command line
//!   adds) and whether the kernel command line it hands over with is the signed one.
//! - [`donated`]: the donated disk (`ELCHOS-DATA`) where a machine pre-seeded the version
//!   it reboots into: its label in an ext4 superblock, where its donor keeps a file.
//! - [`seed_service`]: the seeder as `swarmboot-seed.service` of the booted system: the note,
//!   the runtime unit, where the stub leaves them.
//!
//! Not here: anything that touches the system (that is `main.rs` and its modules).

pub mod carry;
pub mod cmdline;
pub mod cpio;
pub mod donated;
pub mod handover;
pub mod ipconfig;
pub mod kernel;
pub mod kmod;
pub mod ltsp;
pub mod netlink;
pub mod nic_name;
pub mod seed_service;
pub mod trust;
