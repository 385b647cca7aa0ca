//! Kernel modules without kmod: which modules a device asks for and in which order to load
//! them, from the text of `modules.alias` and `modules.dep` (depmod's output). Sans-IO.
//!
//! A device says what it is in `/sys/bus/*/devices/*/modalias` (`pci:v00001AF4d00001000…`);
//! `modules.alias` maps glob patterns over that string to module names; `modules.dep` lists
//! each module's file and every module it needs (transitively), and loading goes
//! dependencies-first. Module names treat `-` and `_` alike, as the kernel does.

use std::collections::{HashMap, HashSet};

/// One module file and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Relative to `/lib/modules/<release>/`.
    pub path: String,
    pub deps: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    aliases: Vec<(String, String)>,
    modules: HashMap<String, ModuleFile>,
}

/// `virtio-net`, `virtio_net.ko`, `kernel/x/virtio_net.ko.xz` → `virtio_net`.
pub fn module_name(path_or_name: &str) -> String {
    let file = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleIndex {
    pub fn parse(modules_alias: &str, modules_dep: &str) -> Self {
        let aliases = modules_alias
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("alias")).then_some(())?;
                Some((w.next()?.to_string(), module_name(w.next()?)))
            })
            .collect();
        let modules = modules_dep
            .lines()
            .filter_map(|l| {
                let (path, deps) = l.split_once(':')?;
                let path = path.trim().to_string();
                let deps = deps.split_whitespace().map(str::to_string).collect();
                Some((module_name(&path), ModuleFile { path, deps }))
            })
            .collect();
        ModuleIndex { aliases, modules }
    }

    pub fn module(&self, name: &str) -> Option<&ModuleFile> {
        self.modules.get(&module_name(name))
    }

    /// Modules whose alias patterns match `modalias` (or that are named so), in alias-file order,
    /// without repeats; only modules that `modules.dep` knows.
    pub fn modules_for(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.modules.contains_key(&module_name(modalias)) {
            out.push(module_name(modalias));
        }
        for (pattern, module) in &self.aliases {
            if fnmatch(pattern, modalias) && !out.contains(module) && self.modules.contains_key(module) {
                out.push(module.clone());
            }
        }
        out
    }

    /// The files to load for `module`, dependencies first, each once (`None`: unknown module).
    pub fn load_order(&self, module: &str) -> Option<Vec<String>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        self.visit(&module_name(module), &mut order, &mut seen)?;
        Some(order)
    }

    fn visit(&self, name: &str, order: &mut Vec<String>, seen: &mut HashSet<String>) -> Option<()> {
        if !seen.insert(name.to_string()) {
            return Some(());
        }
        let m = self.modules.get(name)?;
        // depmod lists a module's needs so that the last one needs nothing of the others.
        for d in m.deps.iter().rev() {
            self.visit(&module_name(d), order, seen)?;
        }
        order.push(m.path.clone());
        Some(())
    }

    /// Every module whose name or alias matches any of `wanted` (names like `e1000`, or alias
    /// patterns' subjects like `fs-squashfs`), with all their dependencies: what the stub builder
    /// copies. Sorted, each once.
    pub fn closure<'a>(&self, wanted: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut files = HashSet::new();
        for w in wanted {
            for m in self.modules_for(w) {
                if let Some(order) = self.load_order(&m) {
                    files.extend(order);
                }
            }
        }
        let mut v: Vec<String> = files.into_iter().collect();
        v.sort();
        v
    }

    /// The `modules.alias` and `modules.dep` lines for just these module files (for the stub's
    /// initramfs).
    pub fn subset(&self, files: &[String]) -> (String, String) {
        let names: HashSet<String> = files.iter().map(|f| module_name(f)).collect();
        let mut alias = String::new();
        for (pattern, module) in &self.aliases {
            if names.contains(module) {
                alias.push_str(&format!("alias {pattern} {module}\n"));
            }
        }
        let mut dep = String::new();
        for f in files {
            if let Some(m) = self.modules.get(&module_name(f)) {
                dep.push_str(&format!("{}: {}\n", m.path, m.deps.join(" ")));
            }
        }
        (alias, dep)
    }
}

/// Shell-style glob match (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`), as modules.alias uses.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` class at `p[at]`: whether `c` is in it and where the pattern continues (`None`:
/// no closing bracket, so `[` is a literal).
fn class(p: &[char], at: usize, c: char) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
        first = false;
    }
    (i < p.len()).then_some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias fs-squashfs squashfs
alias fs-overlay overlay
alias block-major-7-* loop
";
    const DEP: &str = "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/fs/squashfs/squashfs.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/block/loop.ko:
";

    #[test]
    fn devices_find_their_modules_and_dependencies_load_first() {
        let idx = ModuleIndex::parse(ALIAS, DEP);
        assert_eq!(idx.modules_for("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"), vec!["virtio_pci"]);
        assert_eq!(idx.modules_for("virtio:d00000001v00001AF4"), vec!["virtio_net"]);
        assert_eq!(idx.modules_for("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"), vec!["e1000"]);
        assert!(idx.modules_for("pci:v000010ECd00008168sv0sd0bc02sc00i00").is_empty());
        assert_eq!(idx.modules_for("fs-squashfs"), vec!["squashfs"]);
        assert_eq!(idx.modules_for("block-major-7-0"), vec!["loop"]);
        assert_eq!(idx.modules_for("virtio-net"), vec!["virtio_net"], "a module's own name, - or _");
        let order = idx.load_order("virtio_net").unwrap();
        let pos = |m: &str| order.iter().position(|p| module_name(p) == m).unwrap();
        assert_eq!(order.len(), 5);
        assert!(pos("virtio_ring") < pos("virtio") && pos("virtio") < pos("virtio_net"));
        assert!(pos("failover") < pos("net_failover") && pos("net_failover") < pos("virtio_net"));
        assert_eq!(idx.load_order("nope"), None);
    }

    #[test]
    fn closure_and_subset_are_what_the_stub_carries() {
        let idx = ModuleIndex::parse(ALIAS, DEP);
        let files = idx.closure(["virtio_net", "virtio_pci", "fs-squashfs", "nonexistent"]);
        assert_eq!(files.len(), 9);
        let (alias, dep) = idx.subset(&files);
        assert!(alias.contains("alias virtio:d00000001v* virtio_net\n") && !alias.contains("e1000"), "{alias}");
        let small = ModuleIndex::parse(&alias, &dep);
        assert_eq!(small.load_order("virtio_net"), idx.load_order("virtio_net"), "the subset resolves the same");
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true),
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF5d00001000sv00001AF4sd00000001bc02sc00i00", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("a*", "", false),
            ("usb:v*p*d*dc*dsc*dp*ic02isc06ip00in*", "usb:v0BDAp8153d3000dc00dsc00dp00ic02isc06ip00in00", true),
            ("x[0-9]y", "x5y", true),
            ("x[!0-9]y", "x5y", false),
            ("x[ab]y", "xcy", false),
            ("x[", "x[", true),
            ("*d00001000*", "pci:v00001AF4d00001000sv0", true),
        ] {
            assert_eq!(fnmatch(p, t), want, "{p} vs {t}");
        }
    }
}
