//! The agent's disks, the I/O around [`swarmboot_node::disks`]: each pass reads
//! `/sys/class/block` and `blkid -p`, assembles md arrays read-only, mounts what the plan says
//! to share, drops the mounts of disks that went away, and reports every device. A disk
//! plugged in while the agent runs is found by the next pass.
//!
//! Before anything reads a filesystem the block device itself is made read-only
//! (`blockdev --setro`, the `BLKROSET` ioctl): a second fence behind the read-only, no-replay
//! mount (filesystems refuse a writable mount or a journal replay on it). A device that could
//! not be made read-only is not mounted. A mount or an assembly that failed
//! is not tried again until the operator's `rescan-disks` (a damaged disk is not hammered
//! every pass). Blocking: run it on a blocking thread.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use swarmboot_checkin::report::Disk;
use swarmboot_node::disks::{self, Device, Kind, Plan, RaidSet};
use swarmboot_node::probe;
use tracing::{info, warn};

struct Mounted {
    name: String,
    at: String,
    fd: Arc<OwnedFd>,
}

/// Donated space in use: the device, mounted writable at [`disks::DONATED_AT`].
struct DonatedMount {
    device: String,
    /// The donor's `view/`, shared as [`disks::DATASETS_SHARE`].
    view: Arc<OwnedFd>,
}

/// What one pass found.
pub struct Pass {
    pub disks: Vec<Disk>,
    /// Share name → (mount point, the directory opened).
    pub shares: BTreeMap<String, (String, Arc<OwnedFd>)>,
    /// Donated space is mounted (at [`disks::DONATED_AT`]) and its donor's directory is
    /// [`disks::DONOR_DIR`]: the filesystem's size in bytes.
    pub donated: Option<u64>,
}

pub struct Disks {
    class_block: PathBuf,
    /// By device path.
    mounted: BTreeMap<String, Mounted>,
    /// Device path (or array UUID) → why its mount (or assembly) failed.
    failed: BTreeMap<String, String>,
    donated: Option<DonatedMount>,
}

impl Disks {
    /// Starts clean: what an earlier run of the agent left mounted under /srv/elchos is
    /// detached (this run mounts afresh and knows what it mounted).
    pub fn new() -> Self {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let donated = disks::mounts_under(&info, "/srv").into_iter().filter(|p| p == disks::DONATED_AT);
        for at in disks::mounts_under(&info, disks::SHARE_ROOT).into_iter().chain(donated) {
            match rustix::mount::unmount(at.as_str(), UnmountFlags::DETACH) {
                Ok(()) => info!(%at, "detached a mount an earlier run left"),
                Err(e) => warn!(%at, error = %e, "cannot detach a mount an earlier run left"),
            }
        }
        Disks { class_block: "/sys/class/block".into(), mounted: BTreeMap::new(), failed: BTreeMap::new(), donated: None }
    }

    /// Forgets failures, so the next pass tries those devices again (`rescan-disks`).
    pub fn forget_failures(&mut self) {
        self.failed.clear();
    }

    fn devices(&self) -> Vec<Device> {
        let entries = match probe::block_devices(&self.class_block) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "cannot read {}", self.class_block.display());
                return vec![];
            }
        };
        entries
            .iter()
            .map(|e| {
                if matches!(e.kind, Kind::Virtual | Kind::Floppy) || e.size == 0 {
                    return probe::with_blkid(e, "");
                }
                // -p: a low-level probe of the device itself (reads only; no cache written).
                let out = Command::new("blkid").args(["-p", "-o", "export"]).arg(format!("/dev/{}", e.name)).output();
                probe::with_blkid(e, &out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default())
            })
            .collect()
    }

    pub fn pass(&mut self) -> Pass {
        let mut devices = self.devices();
        let sets: Vec<RaidSet> = disks::raid_sets(&devices).into_iter().filter(|s| !self.failed.contains_key(&s.uuid)).collect();
        if !sets.is_empty() {
            for set in &sets {
                if let Err(why) = assemble(set) {
                    warn!(uuid = %set.uuid, %why, "md array not assembled");
                    self.failed.insert(set.uuid.clone(), why);
                }
            }
            devices = self.devices();
        }
        let present: BTreeSet<&str> = devices.iter().map(|d| d.path.as_str()).collect();
        let gone: Vec<String> = self.mounted.keys().filter(|k| !present.contains(k.as_str())).cloned().collect();
        if self.donated.as_ref().is_some_and(|m| !present.contains(m.device.as_str())) {
            self.donated = None;
            warn!(at = disks::DONATED_AT, "the donated disk went away: unmounted");
            if let Err(e) = rustix::mount::unmount(disks::DONATED_AT, UnmountFlags::DETACH) {
                warn!(at = disks::DONATED_AT, error = %e, "cannot unmount");
            }
        }
        for dev in gone {
            if let Some(m) = self.mounted.remove(&dev) {
                info!(device = %dev, at = %m.at, "the disk went away: unmounted");
                if let Err(e) = rustix::mount::unmount(m.at.as_str(), UnmountFlags::DETACH) {
                    warn!(at = %m.at, error = %e, "cannot unmount");
                }
            }
        }
        let kept = self.mounted.iter().map(|(dev, m)| (dev.clone(), m.name.clone())).collect();
        let mut report = Vec::new();
        for (d, p) in disks::plan(&devices, &kept) {
            let outcome = match &p {
                Plan::Share(m) => Some(match self.mounted.get(&d.path) {
                    Some(_) => Ok(used(&m.at)),
                    None => match self.failed.get(&d.path) {
                        Some(why) => Err(why.clone()),
                        None => match mount(&d, m) {
                            Ok(fd) => {
                                info!(device = %d.path, at = %m.at, fstype = m.fstype, "mounted read-only");
                                self.mounted.insert(d.path.clone(), Mounted { name: m.name.clone(), at: m.at.clone(), fd: Arc::new(fd) });
                                Ok(used(&m.at))
                            }
                            Err(why) => {
                                warn!(device = %d.path, %why, "not mounted");
                                self.failed.insert(d.path.clone(), why.clone());
                                Err(why)
                            }
                        },
                    },
                }),
                Plan::Donate(how) => Some(match &self.donated {
                    Some(m) if m.device == d.path => Ok(used(disks::DONATED_AT)),
                    _ => match self.failed.get(&d.path) {
                        Some(why) => Err(why.clone()),
                        None => match donate(&d, how) {
                            Ok(view) => {
                                info!(device = %d.path, at = disks::DONATED_AT, formatted = how.format, "donated space mounted writable for datasets");
                                self.donated = Some(DonatedMount { device: d.path.clone(), view: Arc::new(view) });
                                Ok(used(disks::DONATED_AT))
                            }
                            Err(why) => {
                                warn!(device = %d.path, %why, "donated space not in use");
                                self.failed.insert(d.path.clone(), why.clone());
                                Err(why)
                            }
                        },
                    },
                }),
                Plan::Skip(_) => None,
            };
            let mut disk = disks::report(&d, &p, outcome);
            if let (Some(uuid), Some("linux_raid_member")) = (&d.uuid, d.fstype.as_deref()) {
                if let Some(why) = self.failed.get(uuid) {
                    disk.why_not = Some(format!("part of an md RAID array that did not assemble: {why}"));
                }
            }
            report.push(disk);
        }
        let mut shares: BTreeMap<String, (String, Arc<OwnedFd>)> = self.mounted.values().map(|m| (m.name.clone(), (m.at.clone(), m.fd.clone()))).collect();
        if let Some(m) = &self.donated {
            shares.insert(disks::DATASETS_SHARE.into(), (format!("{}/view", disks::DONOR_DIR), m.view.clone()));
        }
        let donated = self.donated.as_ref().map(|_| size(disks::DONATED_AT));
        Pass { disks: report, shares, donated }
    }
}

/// `BLKROSET` on a device, by util-linux's `blockdev` (the workspace has no unsafe ioctls).
fn set_read_only(dev: &str) -> Result<(), String> {
    let out = Command::new("blockdev").args(["--setro", dev]).output().map_err(|e| format!("cannot run blockdev: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("cannot make {dev} read-only (blockdev --setro: {}); not touched", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn mount(d: &Device, m: &disks::Mount) -> Result<OwnedFd, String> {
    set_read_only(&d.path)?;
    std::fs::create_dir_all(&m.at).map_err(|e| format!("cannot make {}: {e}", m.at))?;
    if m.fstype == disks::NTFS_3G {
        // FUSE: ntfs-3g serves the mount from its own process, read-only; other users (the
        // FTP server's) may read it.
        let options = format!("{},allow_other", disks::MOUNT_FLAGS);
        let out = Command::new("ntfs-3g").args(["-o", &options]).arg(&d.path).arg(&m.at).output().map_err(|e| format!("cannot run ntfs-3g: {e}"))?;
        if !out.status.success() {
            return Err(format!("ntfs-3g {}: {}", d.path, String::from_utf8_lossy(&out.stderr).trim()));
        }
    } else {
        let flags = MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NOATIME;
        let data = CString::new(m.options).map_err(|_| "bad mount options".to_string())?;
        rustix::mount::mount(d.path.as_str(), m.at.as_str(), m.fstype, flags, data.as_c_str()).map_err(|e| format!("mount -t {} {}: {e}", m.fstype, d.path))?;
    }
    rustix::fs::open(m.at.as_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| format!("cannot open {}: {e}", m.at))
}

/// Donated space: a blank partition named `ELCHOS-DATA` formatted (ext4, labelled so), then
/// mounted writable at [`disks::DONATED_AT`] (never executable, setuid or a device node); the
/// donor's `view/` made and opened for the datasets share.
fn donate(d: &Device, how: &disks::Donation) -> Result<OwnedFd, String> {
    if how.format {
        // The plan saw no filesystem; look once more right before writing.
        let probe = Command::new("blkid").args(["-p", "-o", "export"]).arg(&d.path).output().map_err(|e| format!("cannot run blkid: {e}"))?;
        if String::from_utf8_lossy(&probe.stdout).lines().any(|l| l.starts_with("TYPE=")) {
            return Err(format!("{} holds a filesystem now: not formatted", d.path));
        }
        let out = Command::new(format!("mkfs.{}", disks::DONATED_FS))
            .args(["-q", "-L", disks::DONATED_LABEL, "-m", "0"])
            .arg(&d.path)
            .output()
            .map_err(|e| format!("cannot run mkfs.{}: {e}", disks::DONATED_FS))?;
        if !out.status.success() {
            return Err(format!("mkfs.{} {}: {}", disks::DONATED_FS, d.path, String::from_utf8_lossy(&out.stderr).trim()));
        }
        info!(device = %d.path, "formatted the blank partition named {} ({})", disks::DONATED_LABEL, disks::DONATED_FS);
    }
    std::fs::create_dir_all(disks::DONATED_AT).map_err(|e| format!("cannot make {}: {e}", disks::DONATED_AT))?;
    let flags = MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NOATIME;
    rustix::mount::mount(d.path.as_str(), disks::DONATED_AT, how.fstype, flags, c"").map_err(|e| format!("mount -t {} {}: {e}", how.fstype, d.path))?;
    let view = format!("{}/view", disks::DONOR_DIR);
    std::fs::create_dir_all(&view).map_err(|e| format!("cannot make {view}: {e}"))?;
    rustix::fs::open(view.as_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| format!("cannot open {view}: {e}"))
}

/// Size in bytes of the filesystem mounted at `at`.
fn size(at: &str) -> u64 {
    rustix::fs::statvfs(at).map(|s| s.f_blocks.saturating_mul(s.f_frsize)).unwrap_or(0)
}

/// Bytes in use on the filesystem mounted at `at`.
fn used(at: &str) -> u64 {
    rustix::fs::statvfs(at).map(|s| s.f_blocks.saturating_sub(s.f_bfree).saturating_mul(s.f_frsize)).unwrap_or(0)
}

/// `mdadm --assemble --readonly` with the members named (never a scan that could pick up more),
/// every member made read-only first.
fn assemble(set: &RaidSet) -> Result<(), String> {
    for m in &set.members {
        set_read_only(m)?;
    }
    let short: String = set.uuid.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    let out = Command::new("mdadm")
        .args(["--assemble", "--readonly", "--run"])
        .arg(format!("/dev/md/elchos-{short}"))
        .args(&set.members)
        .output()
        .map_err(|e| format!("cannot run mdadm: {e}"))?;
    if out.status.success() {
        info!(uuid = %set.uuid, members = ?set.members, "md array assembled read-only");
        Ok(())
    } else {
        Err(format!("mdadm --assemble: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}
