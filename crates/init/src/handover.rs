//! How the stub will start the image, decided before anything is fetched, and what that
//! takes: which of the image's files, how much RAM.
//!
//! The stub builder leaves a note about the kernel it built the stub for
//! ([`STUB_KERNEL`]: its SHA-256 and header version). When the signed manifest names that very
//! kernel file, the image has a root filesystem and that kernel is the one running, the stub
//! will switch_root with the kernel it runs and its own modules: it fetches the root filesystem
//! only ([`Plan::RootfsOnly`]) and the image's kernel and initramfs stay on the server and its
//! peers. An image with a root filesystem and another kernel ([`Plan::KernelAndRootfs`]): its
//! kernel and root filesystem; the stub (switch_root, when the fetched kernel's header says it
//! is the running one) or its init carried into the kexec'd kernel mounts the root, so the
//! image's own initramfs, which knows nothing of swarmboot, is never needed. An image without a
//! root filesystem ([`Plan::Everything`]): its kernel and initramfs, kexec'd.

use serde::{Deserialize, Serialize};
use swarmboot_image::{Manifest, Role};

use crate::kernel;

/// Where the stub builder writes the [`StubKernel`] note in the stub's initramfs.
pub const STUB_KERNEL: &str = "/etc/swarmboot/kernel.toml";

/// The kernel a stub was built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubKernel {
    /// SHA-256 (hex) of the bzImage file, as manifests name files.
    pub sha256: String,
    /// The version string in its header (`6.1.0-56-amd64 (…) #1 SMP … (2026-11-16)`).
    pub version: String,
}

impl StubKernel {
    /// The note in the running stub (`None` outside one, or in stubs built before there was one).
    pub fn installed() -> Option<StubKernel> {
        toml::from_str(&std::fs::read_to_string(STUB_KERNEL).ok()?).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The image's kernel is the stub's own, running now: fetch the root filesystem, switch_root.
    RootfsOnly,
    /// Another kernel and a root filesystem: fetch both; the root is mounted by the stub (the
    /// same kernel after all) or by its init carried into the kexec'd kernel.
    KernelAndRootfs,
    /// No root filesystem: fetch every file, kexec the kernel with the image's initramfs.
    Everything,
}

impl Plan {
    /// `stub`: the note the stub builder left (`None` for stubs built before there was one);
    /// `proc_version`: `/proc/version`.
    pub fn decide(m: &Manifest, stub: Option<&StubKernel>, proc_version: &str) -> Plan {
        match (stub, m.file(Role::Kernel), m.file(Role::Rootfs)) {
            (Some(s), Some(k), Some(_)) if k.sha256 == s.sha256 && kernel::is_running(proc_version, &s.version) => Plan::RootfsOnly,
            (_, Some(_), Some(_)) => Plan::KernelAndRootfs,
            _ => Plan::Everything,
        }
    }

    /// The roles to fetch (LTSP's `ltsp.img` too, when the image has one: it is applied to the
    /// root).
    pub fn roles(self, m: &Manifest) -> Vec<Role> {
        let ltsp = m.file(Role::Ltsp).map(|_| Role::Ltsp);
        match self {
            Plan::RootfsOnly => [Some(Role::Rootfs), ltsp].into_iter().flatten().collect(),
            Plan::KernelAndRootfs => [Some(Role::Kernel), Some(Role::Rootfs), ltsp].into_iter().flatten().collect(),
            Plan::Everything => m.files.iter().map(|f| f.role).collect(),
        }
    }
}

/// RAM an image needs before it is fetched, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamNeed {
    /// The files on the stub's tmpfs (each distinct file once).
    pub files: u64,
    /// The kernel's own copy of the image's kernel and initramfs while kexec loads them (0 when
    /// the stub will switch_root).
    pub load: u64,
    /// Room for the booted system to start.
    pub margin: u64,
}

impl RamNeed {
    pub fn total(&self) -> u64 {
        self.files + self.load + self.margin
    }
}

/// What `plan` needs: [`Plan::RootfsOnly`] the root filesystem; [`Plan::KernelAndRootfs`]
/// the kernel and the root filesystem, and the kexec load of both (the root filesystem goes
/// into the kexec'd kernel in the archive that carries the image); [`Plan::Everything`] every
/// file and the kexec load of the kernel and initramfs. Counted whenever the image's kernel is
/// not the stub's, since only the fetched header tells more.
pub fn ram_needed(m: &Manifest, plan: Plan, margin: u64) -> RamNeed {
    let roles = plan.roles(m);
    let files = m.distinct_files(|r| roles.contains(&r)).iter().map(|(f, _)| f.size).sum();
    let loaded: &[Role] = match plan {
        Plan::RootfsOnly => &[],
        Plan::KernelAndRootfs => &[Role::Kernel, Role::Rootfs, Role::Ltsp],
        Plan::Everything => &[Role::Kernel, Role::Initrd],
    };
    let load = loaded.iter().filter_map(|r| m.file(*r)).map(|f| f.size).sum();
    RamNeed { files, load, margin }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_image::FileEntry;

    const PROC: &str = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)\n";
    const HEADER: &str = "6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)";

    fn file(role: Role, sha: &str, size: u64) -> FileEntry {
        FileEntry { role, size, sha256: sha.repeat(64 / sha.len()), info_hash: None }
    }

    fn manifest(files: Vec<FileEntry>) -> Manifest {
        Manifest { name: "elchos".into(), version: 1, created: 0, predecessor: None, cmdline: String::new(), files, build: None }
    }

    fn stub(sha: &str) -> StubKernel {
        StubKernel { sha256: sha.repeat(64 / sha.len()), version: HEADER.into() }
    }

    #[test]
    fn only_the_stubs_own_running_kernel_with_a_root_filesystem_skips_the_kernel_and_initramfs() {
        let full = manifest(vec![file(Role::Kernel, "aa", 8 << 20), file(Role::Initrd, "bb", 30 << 20), file(Role::Rootfs, "cc", 200 << 20)]);
        let margin = 64 << 20;
        assert_eq!(Plan::decide(&full, Some(&stub("aa")), PROC), Plan::RootfsOnly);
        assert_eq!(Plan::RootfsOnly.roles(&full), vec![Role::Rootfs]);
        assert_eq!(ram_needed(&full, Plan::RootfsOnly, margin), RamNeed { files: 200 << 20, load: 0, margin });
        assert_eq!(ram_needed(&full, Plan::RootfsOnly, margin).total(), 264 << 20);

        // Another kernel file (even of the same version), another running kernel, no note from
        // the builder: the kernel and the root filesystem, and the kexec load of both (the root
        // goes into the new kernel in the carried archive); never the image's initramfs.
        let with_root = RamNeed { files: 208 << 20, load: 208 << 20, margin };
        assert_eq!(Plan::decide(&full, Some(&stub("dd")), PROC), Plan::KernelAndRootfs);
        assert_eq!(Plan::decide(&full, Some(&stub("aa")), &PROC.replace("6.1.192-2", "6.1.191-1")), Plan::KernelAndRootfs);
        assert_eq!(Plan::decide(&full, None, PROC), Plan::KernelAndRootfs);
        assert_eq!(ram_needed(&full, Plan::KernelAndRootfs, margin), with_root);
        assert_eq!(Plan::KernelAndRootfs.roles(&full), vec![Role::Kernel, Role::Rootfs]);
        // No root filesystem: every file, and the kexec load of kernel and initramfs.
        let no_root = manifest(vec![file(Role::Kernel, "aa", 8 << 20), file(Role::Initrd, "bb", 30 << 20)]);
        assert_eq!(Plan::decide(&no_root, Some(&stub("aa")), PROC), Plan::Everything);
        assert_eq!(Plan::Everything.roles(&no_root), vec![Role::Kernel, Role::Initrd]);
        assert_eq!(ram_needed(&no_root, Plan::Everything, margin), RamNeed { files: 38 << 20, load: 38 << 20, margin });

        // A file two roles share is on the tmpfs once.
        let shared = manifest(vec![file(Role::Kernel, "aa", 8 << 20), file(Role::Initrd, "bb", 30 << 20), file(Role::Rootfs, "bb", 30 << 20)]);
        assert_eq!(ram_needed(&shared, Plan::Everything, margin).files, 38 << 20);
    }

    /// An LTSP image's `ltsp.img` comes with its root on either path (and into the new kernel
    /// with it); its kernel and initramfs stay behind as for any image.
    #[test]
    fn an_ltsp_image_brings_its_ltsp_img_along_with_the_root() {
        let ltsp = manifest(vec![file(Role::Kernel, "aa", 8 << 20), file(Role::Initrd, "bb", 30 << 20), file(Role::Rootfs, "cc", 200 << 20), file(Role::Ltsp, "dd", 1 << 20)]);
        let margin = 64 << 20;
        assert_eq!(Plan::decide(&ltsp, Some(&stub("aa")), PROC), Plan::RootfsOnly);
        assert_eq!(Plan::RootfsOnly.roles(&ltsp), vec![Role::Rootfs, Role::Ltsp]);
        assert_eq!(ram_needed(&ltsp, Plan::RootfsOnly, margin), RamNeed { files: 201 << 20, load: 0, margin });
        assert_eq!(Plan::decide(&ltsp, Some(&stub("ee")), PROC), Plan::KernelAndRootfs);
        assert_eq!(Plan::KernelAndRootfs.roles(&ltsp), vec![Role::Kernel, Role::Rootfs, Role::Ltsp]);
        assert_eq!(ram_needed(&ltsp, Plan::KernelAndRootfs, margin), RamNeed { files: 209 << 20, load: 209 << 20, margin });
    }

    #[test]
    fn the_builders_note_reads_back() {
        let s = stub("ab");
        let text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<StubKernel>(&text).unwrap(), s);
        assert!(toml::from_str::<StubKernel>("sha256 = \"ab\"\n").is_err(), "both fields");
    }
}
