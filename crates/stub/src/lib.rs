//! The stub builder: the initramfs swarm-mode machines boot with the server's kernel. It holds
//! `/init` (the static `swarmboot-init`), `/etc/swarmboot/server.pub` (the key manifests must
//! be signed with), `/etc/swarmboot/kernel.toml` (which kernel it is for: an image with that
//! kernel is switch_root'ed into without fetching its kernel and initramfs), and the kernel
//! modules for common NICs, for squashfs, overlay and loop, and for the usual disks and ext4
//! (files pre-seeded on a donated disk) with everything they depend on,
//! plus `modules.alias`/`modules.dep` cut down to them; newc cpio, gzip-compressed.
//!
//! What it does not do: register the stub (that is `Catalog::set_stub`) or build the init
//! (cargo does; `cargo xtask stub-init`).

pub use swarmboot_init::cpio;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use swarmboot_init::handover::StubKernel;
use swarmboot_init::kmod::ModuleIndex;
use swarmboot_manifest::PublicKey;

use crate::cpio::{CpioWriter, CHAR_DEV, EXEC, FILE};

/// NIC drivers the stub carries (virtio for VMs, the Intel/Realtek/Broadcom families of lab
/// and office PCs and servers), what switch_root into a squashfs needs, and what reads files
/// pre-seeded on a donated disk (`swarmboot_init::donated`: the usual disk controllers, ext4).
pub const DEFAULT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "e1000",
    "e1000e",
    "igb",
    "igc",
    "ixgbe",
    "i40e",
    "r8169",
    "tg3",
    "bnx2",
    "bnxt_en",
    "atlantic",
    "fs-squashfs",
    "fs-overlay",
    "loop",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "nvme",
    "sd_mod",
    swarmboot_init::donated::DONATED_FS_MODULES[0],
    swarmboot_init::donated::DONATED_FS_MODULES[1],
];

#[derive(Debug, thiserror::Error)]
pub enum StubError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a bzImage kernel with a version string")]
    NotAKernel(PathBuf),
    #[error("{0} is dynamically linked and would not run as the stub's init: build it static (cargo xtask stub-init, target x86_64-unknown-linux-musl)")]
    DynamicInit(PathBuf),
    #[error("{dir} has no modules.dep for kernel {release}: install that kernel's modules (linux-image-{release}) or pass --modules-dir")]
    NoModules { dir: PathBuf, release: String },
    #[error("module {path}: cannot decompress it ({reason})")]
    BadModule { path: PathBuf, reason: String },
    #[error("writing the initramfs: {0}")]
    Write(#[from] std::io::Error),
}

pub struct StubInputs {
    pub kernel: PathBuf,
    /// `/lib/modules/<release>` by default.
    pub modules_dir: Option<PathBuf>,
    pub init: PathBuf,
    pub key: PublicKey,
    /// Modules (names or aliases) beyond [`DEFAULT_MODULES`].
    pub extra_modules: Vec<String>,
}

#[derive(Debug)]
pub struct BuiltStub {
    /// The gzip-compressed initramfs.
    pub initrd: Vec<u8>,
    pub release: String,
    /// Module files carried, relative to the modules directory.
    pub modules: Vec<String>,
    pub uncompressed: usize,
}

fn read(path: &Path) -> Result<Vec<u8>, StubError> {
    std::fs::read(path).map_err(|source| StubError::Read { path: path.to_path_buf(), source })
}

/// Module file suffixes after `.ko` that kmod knows, and their compression.
const COMPRESSED_SUFFIXES: &[(&str, Compression)] = &[(".xz", Compression::Xz), (".zst", Compression::Zstd), (".gz", Compression::Gzip)];

#[derive(Debug, Clone, Copy)]
enum Compression {
    Xz,
    Zstd,
    Gzip,
}

/// `name` and `bytes` of a module file, decompressed (`x.ko.xz` → `x.ko`) if compressed.
fn uncompressed(name: &str, bytes: Vec<u8>) -> Result<(String, Vec<u8>), StubError> {
    let Some((suffix, how)) = COMPRESSED_SUFFIXES.iter().find(|(s, _)| name.ends_with(&format!(".ko{s}"))) else {
        return Ok((name.to_string(), bytes));
    };
    let bad = |e: String| StubError::BadModule { path: PathBuf::from(name), reason: e };
    let mut out = Vec::new();
    match how {
        Compression::Xz => lzma_rs::xz_decompress(&mut bytes.as_slice(), &mut out).map_err(|e| bad(format!("xz: {e}")))?,
        Compression::Zstd => {
            let mut d = ruzstd::decoding::StreamingDecoder::new(bytes.as_slice()).map_err(|e| bad(format!("zstd: {e}")))?;
            std::io::Read::read_to_end(&mut d, &mut out).map_err(|e| bad(format!("zstd: {e}")))?;
        }
        Compression::Gzip => {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes.as_slice()), &mut out).map_err(|e| bad(format!("gzip: {e}")))?;
        }
    }
    Ok((name.trim_end_matches(suffix).to_string(), out))
}

/// The newest kernel in /boot (`/boot/vmlinuz-*`, by name): what `stub build` uses when
/// no `--kernel` is given.
pub fn newest_kernel() -> Option<PathBuf> {
    let names: Vec<String> = std::fs::read_dir("/boot").ok()?.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect();
    newest_vmlinuz(&names).map(|n| Path::new("/boot").join(n))
}

/// The `vmlinuz-<release>` of the newest release among `names`, releases compared as Debian
/// numbers them (`6.1.0-10` after `6.1.0-9`), not as strings.
fn newest_vmlinuz(names: &[String]) -> Option<&String> {
    names.iter().filter_map(|n| n.strip_prefix("vmlinuz-").map(|r| (n, r))).max_by(|(_, a), (_, b)| swarmboot_imagebuild::kernel::release_cmp(a, b)).map(|(n, _)| n)
}

pub fn build(inputs: &StubInputs) -> Result<BuiltStub, StubError> {
    let kernel = read(&inputs.kernel)?;
    let version = swarmboot_init::kernel::bzimage_version(&kernel).ok_or_else(|| StubError::NotAKernel(inputs.kernel.clone()))?;
    let release = version.split_whitespace().next().unwrap_or_default().to_string();
    let note = StubKernel { sha256: hex::encode(Sha256::digest(&kernel)), version: version.clone() };
    let init = read(&inputs.init)?;
    if cpio::is_dynamic_elf(&init) {
        return Err(StubError::DynamicInit(inputs.init.clone()));
    }
    let dir = inputs.modules_dir.clone().unwrap_or_else(|| Path::new("/lib/modules").join(&release));
    let dep = std::fs::read_to_string(dir.join("modules.dep")).map_err(|_| StubError::NoModules { dir: dir.clone(), release: release.clone() })?;
    let alias = std::fs::read_to_string(dir.join("modules.alias")).unwrap_or_default();
    let index = ModuleIndex::parse(&alias, &dep);
    let wanted: Vec<&str> = DEFAULT_MODULES.iter().copied().chain(inputs.extra_modules.iter().map(String::as_str)).collect();
    let modules = index.closure(wanted);
    let (sub_alias, sub_dep) = index.subset(&modules);
    // Compressed modules go in uncompressed: the stub's kernel may not decompress them
    // (Debian 12's has no CONFIG_MODULE_DECOMPRESS), and the initramfs is gzipped anyway.
    let sub_dep = COMPRESSED_SUFFIXES.iter().fold(sub_dep, |d, (suffix, _)| d.replace(&format!(".ko{suffix}"), ".ko"));

    let mut raw = Vec::new();
    {
        let mut c = CpioWriter::new(&mut raw);
        for d in ["dev", "proc", "sys", "run", "etc", "etc/swarmboot", "lib", "lib/modules"] {
            c.dir(d)?;
        }
        c.entry("dev/console", CHAR_DEV, &[], (5, 1))?;
        c.entry("init", EXEC, &init, (0, 0))?;
        c.entry("etc/swarmboot/server.pub", FILE, format!("{}\n", inputs.key.to_hex()).as_bytes(), (0, 0))?;
        let note = toml::to_string(&note).expect("two strings serialize");
        c.entry(swarmboot_init::handover::STUB_KERNEL.trim_start_matches('/'), FILE, note.as_bytes(), (0, 0))?;
        let base = format!("lib/modules/{release}");
        c.entry_with_parents(&format!("{base}/modules.alias"), FILE, sub_alias.as_bytes())?;
        c.entry(&format!("{base}/modules.dep"), FILE, sub_dep.as_bytes(), (0, 0))?;
        for m in &modules {
            let (full, bytes) = uncompressed(&format!("{base}/{m}"), read(&dir.join(m))?)?;
            c.entry_with_parents(&full, FILE, &bytes)?;
        }
        c.finish()?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw)?;
    Ok(BuiltStub { initrd: gz.finish()?, release, modules, uncompressed: raw.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_kernel_is_by_release_not_by_string() {
        let names: Vec<String> = ["config-6.1.0-10-amd64", "vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "initrd.img-6.1.0-10-amd64"].map(String::from).into();
        assert_eq!(newest_vmlinuz(&names).map(String::as_str), Some("vmlinuz-6.1.0-10-amd64"), "a string sort picks -9");
        assert_eq!(newest_vmlinuz(&["System.map".to_string()]), None);
    }
}
