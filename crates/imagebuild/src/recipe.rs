//! What a root holds, as data; the mmdebstrap command line for it.

/// A file written into the root after the packages are installed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RootFile {
    /// Absolute path in the root.
    pub path: String,
    pub mode: u32,
    pub content: String,
}

impl RootFile {
    pub fn new(path: &str, mode: u32, content: impl Into<String>) -> Self {
        RootFile { path: path.into(), mode, content: content.into() }
    }
}

/// A file of this machine copied into the root (a binary the image runs, like the node agent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RootCopy {
    pub from: std::path::PathBuf,
    /// Absolute path in the root.
    pub path: String,
    pub mode: u32,
}

/// A Debian root to build.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipe {
    /// What it is (`elchos`), for messages and the manifest.
    pub name: String,
    /// The Debian release (`bookworm`).
    pub suite: String,
    /// The apt source: a mirror URL, a `deb …` line, or a file of sources; `None`: mmdebstrap's
    /// default (the release's mirror with its updates and security suites).
    pub mirror: Option<String>,
    /// The recipe's packages (`--variant=minbase` brings the essential ones).
    pub packages: Vec<String>,
    /// More packages asked for (`--include`).
    pub include: Vec<String>,
    pub files: Vec<RootFile>,
    /// Files copied in from this machine, after `files`.
    pub copies: Vec<RootCopy>,
    /// Units enabled with `systemctl --root`.
    pub enable: Vec<String>,
    /// Shell commands run with the root as `$1`, after the files and units.
    pub commands: Vec<String>,
    /// What the squashfs leaves out (mksquashfs wildcards, relative to the root).
    pub exclude: Vec<String>,
}

/// The apt option that retries a failed download (it also stays in the root's
/// `/etc/apt/apt.conf.d/99mmdebstrap`, harmless there).
pub const APT_RETRIES: &str = "Acquire::Retries \"5\"";

impl Recipe {
    /// mmdebstrap's arguments to build the recipe's packages into `target` (a directory).
    pub fn mmdebstrap_args(&self, target: &str) -> Vec<String> {
        let mut packages: Vec<&str> = self.packages.iter().chain(&self.include).map(String::as_str).collect();
        packages.dedup();
        // apt retries a download the mirror dropped (one dropped file failed a CI run); not
        // `--quiet`: apt's own error lines are what the build's error shows.
        let mut args = vec!["--variant=minbase".to_string(), format!("--aptopt={APT_RETRIES}"), format!("--include={}", packages.join(","))];
        args.push(self.suite.clone());
        args.push(target.to_string());
        if let Some(m) = &self.mirror {
            args.push(m.clone());
        }
        args
    }

    /// A fingerprint of everything that makes the root what it is (a cache key).
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ("recipe v1", self).hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Problems with what a person asked for, by option: a package name that is not one.
    pub fn check(&self) -> Result<(), String> {
        for p in &self.include {
            let ok = !p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
                && p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            if !ok {
                return Err(format!("--include {p:?} is not a Debian package name (lower-case letters, digits, + - .)"));
            }
        }
        if self.suite.is_empty() || !self.suite.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(format!("suite {:?} is not a Debian release name (like bookworm)", self.suite));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            name: "t".into(),
            suite: "bookworm".into(),
            mirror: None,
            packages: vec!["systemd".into(), "udev".into()],
            include: vec!["htop".into()],
            files: vec![],
            copies: vec![],
            enable: vec![],
            commands: vec![],
            exclude: vec![],
        }
    }

    #[test]
    fn mmdebstrap_gets_the_packages_the_release_the_target_and_the_mirror_if_any() {
        let r = recipe();
        assert_eq!(r.mmdebstrap_args("/w/root"), ["--variant=minbase", "--aptopt=Acquire::Retries \"5\"", "--include=systemd,udev,htop", "bookworm", "/w/root"]);
        let m = Recipe { mirror: Some("http://mirror.lan/debian".into()), ..recipe() };
        assert_eq!(m.mmdebstrap_args("/w/root").last().map(String::as_str), Some("http://mirror.lan/debian"));
        assert_ne!(m.fingerprint(), r.fingerprint(), "another mirror is another root");
    }

    #[test]
    fn what_a_person_typed_is_checked() {
        assert_eq!(recipe().check(), Ok(()));
        let bad = Recipe { include: vec!["htop; rm -rf /".into()], ..recipe() };
        assert!(bad.check().unwrap_err().contains("--include \"htop; rm -rf /\" is not a Debian package name"));
        let bad = Recipe { suite: "../x".into(), ..recipe() };
        assert!(bad.check().unwrap_err().contains("suite \"../x\""));
    }
}
