//! Running a recipe: mmdebstrap, files, units, commands, the package list, the kernel,
//! mksquashfs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::recipe::Recipe;

/// A built root.
#[derive(Debug, Clone)]
pub struct Built {
    /// The root directory.
    pub root: PathBuf,
    pub squashfs: PathBuf,
    /// `/boot/vmlinuz-<release>` and `/boot/initrd.img-<release>` in the root.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub release: String,
    /// Every installed package, `name=version`, sorted.
    pub packages: Vec<String>,
    /// Seconds spent in mmdebstrap and the customizing, and in mksquashfs.
    pub root_secs: f64,
    pub squashfs_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Recipe(String),
    #[error("cannot run {program}: {source} (it comes with the Debian package {package})")]
    Missing { program: &'static str, package: &'static str, source: std::io::Error },
    #[error("{what} failed ({status}); its last lines:\n{output}")]
    Failed { what: String, status: String, output: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the built root has no kernel to boot: {0} (is linux-image-amd64 among its packages?)")]
    NoKernel(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io { path: path.to_path_buf(), source }
}

/// Runs `cmd`; its output is kept for the error.
/// How much lower than the caller's a build step's CPU priority is: a build on the boot
/// server (apt, dpkg, mksquashfs with zstd on every core) must leave the server answering
/// DHCP, check-ins and peers. (Under load a nice-0 mksquashfs held a lab server's check-in
/// answers back by 10 s.)
pub const BUILD_NICENESS: &str = "10";

/// Whether `program` is on `PATH` (the step runs under `nice`, which would report it missing
/// only by its exit status).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn run(cmd: &mut Command, what: &str, program: &'static str, package: &'static str) -> Result<Vec<u8>, BuildError> {
    if !on_path(program) {
        return Err(BuildError::Missing { program, package, source: std::io::Error::from(std::io::ErrorKind::NotFound) });
    }
    let mut niced = Command::new("nice");
    niced.args(["-n", BUILD_NICENESS]).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => niced.env(k, v),
            None => niced.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        niced.current_dir(d);
    }
    let out = niced.output().map_err(|source| BuildError::Missing { program: "nice", package: "coreutils", source })?;
    if !out.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(BuildError::Failed { what: what.to_string(), status: out.status.to_string(), output: telling_lines(&text) });
    }
    Ok(out.stdout)
}

/// What of a failed command's output goes into the error: apt's error and warning lines
/// (`E:`, `W:`, `Err:`; they come long before the end) and the last 20 lines.
fn telling_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tail_from = lines.len().saturating_sub(20);
    let mut kept: Vec<&str> = lines[..tail_from].iter().copied().filter(|l| ["E:", "W:", "Err:"].iter().any(|p| l.starts_with(p))).take(20).collect();
    kept.extend(&lines[tail_from..]);
    kept.join("\n")
}

/// Builds `recipe` in `work` (its `root/` and `root.squashfs` are replaced); `say` hears each
/// step.
pub fn build(recipe: &Recipe, work: &Path, mut say: impl FnMut(&str)) -> Result<Built, BuildError> {
    recipe.check().map_err(BuildError::Recipe)?;
    std::fs::create_dir_all(work).map_err(io(work))?;
    let root = work.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(io(&root))?;
    }
    let started = Instant::now();
    say(&format!(
        "mmdebstrap: Debian {} from {}, {} packages and what they need",
        recipe.suite,
        recipe.mirror.as_deref().unwrap_or("the default mirror (with updates and security)"),
        recipe.packages.len() + recipe.include.len()
    ));
    let root_str = root.to_str().ok_or_else(|| BuildError::Recipe(format!("{} is not UTF-8", root.display())))?;
    run(Command::new("mmdebstrap").args(recipe.mmdebstrap_args(root_str)), "mmdebstrap", "mmdebstrap", "mmdebstrap")?;

    for f in &recipe.files {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(f.path.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&path, &f.content).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode)).map_err(io(&path))?;
    }
    for c in &recipe.copies {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(c.path.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::copy(&c.from, &path).map_err(io(&c.from))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(c.mode)).map_err(io(&path))?;
    }
    if !recipe.enable.is_empty() {
        run(Command::new("systemctl").arg(format!("--root={root_str}")).arg("enable").args(&recipe.enable), "systemctl enable", "systemctl", "systemd")?;
    }
    for c in &recipe.commands {
        run(Command::new("sh").args(["-c", c, "sh", root_str]), c, "sh", "dash")?;
    }
    let listing = run(Command::new("chroot").arg(&root).args(["dpkg-query", "-W", "-f", "${Package}=${Version}\\n"]), "listing the packages", "chroot", "coreutils")?;
    let mut packages: Vec<String> = String::from_utf8_lossy(&listing).lines().map(str::to_string).collect();
    packages.sort();
    let boot: Vec<String> = std::fs::read_dir(root.join("boot")).map_err(io(&root.join("boot")))?.flatten().map(|e| format!("/boot/{}", e.file_name().to_string_lossy())).collect();
    let release = crate::kernel::newest_release(boot.iter().map(String::as_str)).map_err(BuildError::NoKernel)?;
    let root_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let squashfs = work.join("root.squashfs");
    let exclude = work.join("exclude.txt");
    std::fs::write(&exclude, recipe.exclude.join("\n") + "\n").map_err(io(&exclude))?;
    say(&format!("mksquashfs (zstd), leaving out {} paths", recipe.exclude.len()));
    run(
        Command::new("mksquashfs")
            .arg(&root)
            .arg(&squashfs)
            .args(["-noappend", "-quiet", "-no-progress", "-no-xattrs", "-comp", "zstd", "-Xcompression-level", "15", "-wildcards", "-ef"])
            .arg(&exclude),
        "mksquashfs",
        "mksquashfs",
        "squashfs-tools",
    )?;
    Ok(Built {
        kernel: root.join(format!("boot/vmlinuz-{release}")),
        initrd: root.join(format!("boot/initrd.img-{release}")),
        release,
        root,
        squashfs,
        packages,
        root_secs,
        squashfs_secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::telling_lines;

    #[test]
    fn a_failed_commands_error_keeps_apts_errors_and_its_last_lines() {
        let mut text = String::from("Get:1 http://deb.debian.org/debian bookworm InRelease\nErr:7 http://deb.debian.org/debian bookworm/main amd64 less\n  Connection timed out\nE: Failed to fetch less_590-2.1_amd64.deb\n");
        for i in 0..40 {
            text += &format!("progress {i}\n");
        }
        let kept = telling_lines(&text);
        assert_eq!(kept.lines().next(), Some("Err:7 http://deb.debian.org/debian bookworm/main amd64 less"));
        assert!(kept.contains("E: Failed to fetch less_590-2.1_amd64.deb"));
        assert!(!kept.contains("Get:1") && !kept.contains("progress 19\n"));
        assert!(kept.ends_with("progress 39"));
        assert_eq!(kept.lines().count(), 2 + 20);
    }
}
