//! Loading the stub's kernel modules for the hardware it finds: every
//! `/sys/bus/*/devices/*/modalias` against the bundled `modules.alias`, in rounds (a bus
//! driver such as virtio_pci makes new devices appear), each module after its dependencies,
//! with finit_module(2).

use std::collections::HashSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use swarmboot_init::kmod::{module_name, ModuleIndex};

use crate::console::say;

pub struct Drivers {
    root: PathBuf,
    index: ModuleIndex,
    loaded: HashSet<String>,
}

impl Drivers {
    /// The index under `/lib/modules/<running release>` (empty if the stub has none).
    pub fn open() -> Drivers {
        Drivers::open_in(Path::new("/"))
    }

    /// The index under `<root>/lib/modules/<running release>`: an image's own modules for the
    /// kernel it runs (the image's root mounted at `root`).
    pub fn open_in(root: &Path) -> Drivers {
        let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().to_string()).unwrap_or_default();
        let root = root.join("lib/modules").join(release);
        let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
        let index = ModuleIndex::parse(&read("modules.alias"), &read("modules.dep"));
        let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default().lines().filter_map(|l| l.split_whitespace().next()).map(module_name).collect();
        Drivers { root, index, loaded }
    }

    /// Loads `module` (a name or an alias such as `fs-squashfs`) and what it needs; false if
    /// the stub has no such module (it may be built in).
    pub fn load(&mut self, module: &str) -> bool {
        let names = self.index.modules_for(module);
        let mut any = false;
        for name in names {
            let Some(order) = self.index.load_order(&name) else { continue };
            for file in order {
                let m = module_name(&file);
                if self.loaded.contains(&m) {
                    continue;
                }
                match self.insert(&self.root.join(&file)) {
                    Ok(()) => {
                        tracing::info!(module = %m, "loaded");
                        any = true;
                    }
                    Err(nix::errno::Errno::EEXIST) => {}
                    // One of several for an alias that does not fit this machine (crc32c_intel
                    // on a CPU without SSE4.2, beside crc32c_generic): not worth a console line.
                    Err(nix::errno::Errno::ENODEV) => tracing::info!(module = %m, "no device for it here"),
                    Err(e) => say(format!("cannot load module {m}: {e}")),
                }
                self.loaded.insert(m);
            }
        }
        any
    }

    fn insert(&self, file: &Path) -> nix::Result<()> {
        let f = std::fs::File::open(file).map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        nix::kmod::finit_module(&f, &CString::default(), nix::kmod::ModuleInitFlags::empty())
    }

    /// Rounds of: every device's modalias → modules, until a round loads nothing new.
    pub fn load_for_devices(&mut self) {
        for _ in 0..6 {
            let mut any = false;
            for alias in modaliases() {
                any |= self.load(&alias);
            }
            if !any {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(300)); // new devices settle
        }
    }
}

fn modaliases() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(buses) = std::fs::read_dir("/sys/bus") else { return out };
    for bus in buses.flatten() {
        let Ok(devs) = std::fs::read_dir(bus.path().join("devices")) else { continue };
        for d in devs.flatten() {
            if let Ok(a) = std::fs::read_to_string(d.path().join("modalias")) {
                out.push(a.trim().to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
