//! Child processes that are stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A child process with its output in a log file; SIGTERM then SIGKILL by PID on drop.
pub struct Proc {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).spawn().with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        Ok(Proc { child: Some(child), name: name.into(), log: log.into() })
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0))
    }

    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        kill(self.pid(), sig).with_context(|| format!("cannot signal {} ({})", self.name, self.pid()))
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// The log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// Waits until a whole line of `path` (one its writer has ended with a newline) contains
/// `needle`; returns that line. A line still being written is not looked at: a caller that
/// checks the rest of the line must not see half of it. Fails at `timeout` with the file's tail.
pub fn wait_for_line(path: &Path, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    wait_for_line_after(path, 0, needle, timeout)
}

/// [`wait_for_line`] in what the file holds past its first `offset` bytes.
pub fn wait_for_line_after(path: &Path, offset: usize, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        // Lossy: a VM's console may carry bytes that are not UTF-8 (firmware output).
        let bytes = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(bytes.get(offset..).unwrap_or_default()).into_owned();
        if let Some(l) = whole_lines(&text).map(without_escapes).find(|l| l.contains(needle)) {
            return Ok(l);
        }
        if Instant::now() > deadline {
            let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            bail!("no line with {needle:?} in {} after {timeout:?}; last lines:\n{}", path.display(), tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `line` without terminal escape sequences (`ESC [ … letter`: systemd colours its status
/// lines on a console), so needles match the text a person reads.
pub fn without_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for e in chars.by_ref() {
                    if e.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The lines of `text` that are complete: everything up to its last newline.
fn whole_lines(text: &str) -> std::str::Lines<'_> {
    text[..text.rfind('\n').map_or(0, |i| i + 1)].lines()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_do_not_hide_text() {
        assert_eq!(
            without_escapes("[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mmulti-user.target\x1b[0m - Multi-User System."),
            "[  OK  ] Reached target multi-user.target - Multi-User System."
        );
        assert_eq!(without_escapes("plain"), "plain");
    }

    #[test]
    fn a_line_still_being_written_is_not_matched() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console");
        std::fs::write(&log, "booting\nswarmboot: REFUSING TO BOOT: refu").unwrap();
        assert!(wait_for_line(&log, "REFUSING", Duration::ZERO).is_err());
        std::fs::write(&log, "booting\nswarmboot: REFUSING TO BOOT: refused\r\nmore").unwrap();
        assert_eq!(wait_for_line(&log, "REFUSING", Duration::ZERO).unwrap(), "swarmboot: REFUSING TO BOOT: refused");
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_hide_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console");
        std::fs::write(&log, b"\xff\xfe firmware\nswarmboot ready\n").unwrap();
        assert_eq!(wait_for_line(&log, "ready", Duration::ZERO).unwrap(), "swarmboot ready");
    }
}
