//! `swarmboot assign MAC|GROUP|default IMAGE` (and `--unset`), the picker's and `node command
//! … boot`'s writes: the change itself is `swarmboot_config::Assignments` (the same one the
//! dashboard makes); this shell checks the image exists, writes the assignments file in the
//! state directory and asks the running server to reload (SIGHUP to the pid in its state
//! directory).

use std::path::Path;

use anyhow::{bail, Context};
pub use swarmboot_config::Target;
use swarmboot_config::{Assignments, Config};

/// What happened to the running server after a change.
pub fn reload_server(state_dir: &Path) -> String {
    let pid_file = state_dir.join(swarmboot_server::PID_FILE);
    let pid = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok());
    let Some(pid) = pid else {
        return "no server is running (no pid file): the change applies when it starts".into();
    };
    let gone = || format!("no server is running (pid {pid} in {} is gone): the change applies when it starts", pid_file.display());
    // The process is pinned first (a pidfd names that process, never a later one with the
    // same pid), then checked to be the server, then signalled through the pidfd: a pid
    // reused between the check and the signal gets nothing.
    let Some(process) = rustix::process::Pid::from_raw(pid).and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()) else {
        return gone();
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if !words.first().is_some_and(|w| w.ends_with(b"swarmboot")) || !words.iter().any(|w| *w == b"serve") {
        return gone();
    }
    match rustix::process::pidfd_send_signal(&process, rustix::process::Signal::HUP) {
        Ok(()) => format!("the server (pid {pid}) reloads its config"),
        Err(e) => format!("could not tell the server (pid {pid}) to reload ({e}): run `systemctl reload swarmboot`"),
    }
}

/// Checks, writes and reloads: what `assign` and the picker do.
pub fn apply(config_path: &Path, target: &Target, image: &str) -> anyhow::Result<String> {
    let cfg = Config::load(config_path)?;
    let catalog = swarmboot_image::Catalog::new(&cfg.server.state_dir);
    let names = catalog.names().context("reading the image catalog")?;
    if !names.iter().any(|n| n == image) {
        bail!("there is no image {image}; images: {}", if names.is_empty() { "none (add one with `swarmboot image add`)".into() } else { names.join(", ") });
    }
    let mut assignments = Assignments::load(&cfg.server.state_dir)?;
    let said = assignments.set(&cfg, target, image)?;
    cfg.image_rules(&assignments).context("the assignments do not make valid rules (nothing written)")?;
    assignments.save(&cfg.server.state_dir).with_context(|| format!("writing the assignments in {}", cfg.server.state_dir.display()))?;
    Ok(format!("{said}; {}", reload_server(&cfg.server.state_dir)))
}

/// `swarmboot assign --unset TARGET`: the target boots what the config says again.
pub fn unset(config_path: &Path, target: &Target) -> anyhow::Result<String> {
    let cfg = Config::load(config_path)?;
    let mut assignments = Assignments::load(&cfg.server.state_dir)?;
    let Some(said) = assignments.unset(&cfg, target)? else {
        return Ok(format!("{target} has no assignment: it boots what the config says"));
    };
    assignments.save(&cfg.server.state_dir).with_context(|| format!("writing the assignments in {}", cfg.server.state_dir.display()))?;
    Ok(format!("{said}; {}", reload_server(&cfg.server.state_dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid file naming a process that is not the server (here: this test, which would die of
    /// SIGHUP) or no process at all signals nothing.
    #[test]
    fn a_pid_file_naming_another_process_or_none_signals_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join(swarmboot_server::PID_FILE);
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        assert!(reload_server(dir.path()).starts_with("no server is running"), "this process is not swarmboot serve");
        std::fs::write(&pid_file, "999999999\n").unwrap();
        assert!(reload_server(dir.path()).starts_with("no server is running"));
        std::fs::remove_file(&pid_file).unwrap();
        assert!(reload_server(dir.path()).contains("no pid file"));
    }
}
