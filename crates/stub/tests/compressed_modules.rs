//! A kernel whose modules are compressed (`.ko.xz`, `.ko.zst`, `.ko.gz`, as Debian 13 and
//! others ship them): the stub carries them uncompressed, byte-identical to the originals,
//! with a modules.dep that names the `.ko` files.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use swarmboot_stub::{build, StubInputs};

/// (name, data) of every regular file in a newc archive.
fn entries(mut a: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let hex = |b: &[u8]| usize::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    loop {
        assert_eq!(&a[..6], b"070701");
        let mode = hex(&a[14..22]);
        let size = hex(&a[54..62]);
        let namesize = hex(&a[94..102]);
        let name = String::from_utf8(a[110..110 + namesize - 1].to_vec()).unwrap();
        let data_at = (at + 110 + namesize).next_multiple_of(4) - at;
        let data = a[data_at..data_at + size].to_vec();
        if name == "TRAILER!!!" {
            return out;
        }
        if mode & 0o170000 == 0o100000 {
            out.push((name, data));
        }
        let next = (at + data_at + size).next_multiple_of(4) - at;
        a = &a[next..];
        at += next;
    }
}

#[test]
fn compressed_modules_go_in_uncompressed() {
    let kernel = swarmboot_stub::newest_kernel().expect("a Debian kernel in /boot (linux-image-amd64)");
    let release = kernel.file_name().unwrap().to_str().unwrap().trim_start_matches("vmlinuz-").to_string();
    let real = Path::new("/lib/modules").join(&release);
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join(&release);
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::copy(real.join("modules.alias"), fake.join("modules.alias")).unwrap();
    // Every module compressed, cycling through the three kinds.
    let dep = std::fs::read_to_string(real.join("modules.dep")).unwrap();
    let tools = [("xz", ".xz"), ("zstd", ".zst"), ("gzip", ".gz")];
    let suffix_of = |path: &str| tools[path.len() % 3].1;
    let mut new_dep = String::new();
    let mut originals = std::collections::HashMap::new();
    for line in dep.lines() {
        let (m, deps) = line.split_once(':').unwrap();
        let renamed: Vec<String> = deps.split_whitespace().map(|d| format!("{d}{}", suffix_of(d))).collect();
        new_dep.push_str(&format!("{m}{}: {}\n", suffix_of(m), renamed.join(" ")));
        if ["virtio_net.ko", "net_failover.ko", "failover.ko", "squashfs.ko", "overlay.ko", "e1000.ko"].iter().any(|n| m.ends_with(&format!("/{n}"))) {
            originals.insert(m.to_string(), std::fs::read(real.join(m)).unwrap());
        }
    }
    std::fs::write(fake.join("modules.dep"), new_dep.as_bytes()).unwrap();
    // Only the files the stub takes need to exist.
    let index = swarmboot_init::kmod::ModuleIndex::parse(&std::fs::read_to_string(real.join("modules.alias")).unwrap(), &dep);
    let wanted = index.closure(swarmboot_stub::DEFAULT_MODULES.iter().copied());
    for line in new_dep.lines() {
        let m = line.split_once(':').unwrap().0;
        let plain = m.rsplit_once(".ko").unwrap().0.to_string() + ".ko";
        if !wanted.contains(&plain) {
            continue;
        }
        let src = real.join(&plain);
        let dest = fake.join(m);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let tool = tools.iter().find(|(_, s)| m.ends_with(s)).unwrap().0;
        let out = Command::new(tool).arg("-c").arg(&src).output().unwrap();
        assert!(out.status.success(), "{tool}");
        std::fs::write(dest, out.stdout).unwrap();
    }
    let key = swarmboot_manifest::SigningKey::load_or_create(dir.path()).unwrap().public();
    let built = build(&StubInputs { kernel, modules_dir: Some(fake), init: "/bin/busybox".into(), key, extra_modules: vec![] }).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(built.initrd.as_slice()).read_to_end(&mut raw).unwrap();
    let files = entries(&raw);
    let modules: Vec<&(String, Vec<u8>)> = files.iter().filter(|(n, _)| n.contains("/kernel/")).collect();
    assert!(modules.len() > 10, "{} modules", modules.len());
    for (name, data) in &modules {
        assert!(name.ends_with(".ko"), "{name} is carried uncompressed");
        assert!(data.starts_with(b"\x7fELF"), "{name} is an ELF object");
    }
    for (path, original) in &originals {
        let (_, data) = modules.iter().find(|(n, _)| n.ends_with(path.as_str())).unwrap_or_else(|| panic!("{path} in the stub"));
        assert_eq!(data, original, "{path} byte-identical after decompression");
    }
    let dep = files.iter().find(|(n, _)| n.ends_with("/modules.dep")).unwrap();
    let dep = String::from_utf8_lossy(&dep.1);
    assert!(dep.contains("virtio_net.ko: ") && !dep.contains(".xz") && !dep.contains(".zst") && !dep.contains(".gz"), "{dep}");
}

/// The stub names the kernel it was built for (SHA-256 of the file, header version), so its
/// init can tell, from the signed manifest alone, that an image's kernel is its own.
#[test]
fn the_stub_names_the_kernel_it_is_for() {
    use sha2::Digest;
    let kernel = swarmboot_stub::newest_kernel().expect("a Debian kernel in /boot (linux-image-amd64)");
    let dir = tempfile::tempdir().unwrap();
    let key = swarmboot_manifest::SigningKey::load_or_create(dir.path()).unwrap().public();
    let built = build(&StubInputs { kernel: kernel.clone(), modules_dir: None, init: "/bin/busybox".into(), key, extra_modules: vec![] }).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(built.initrd.as_slice()).read_to_end(&mut raw).unwrap();
    let files = entries(&raw);
    let (_, note) = files.iter().find(|(n, _)| format!("/{n}") == swarmboot_init::handover::STUB_KERNEL).expect("the kernel note in the stub");
    let note: swarmboot_init::handover::StubKernel = toml::from_str(std::str::from_utf8(note).unwrap()).unwrap();
    let bytes = std::fs::read(&kernel).unwrap();
    assert_eq!(note.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(Some(note.version.clone()), swarmboot_init::kernel::bzimage_version(&bytes));
    assert!(note.version.starts_with(&built.release), "{note:?}");
}
