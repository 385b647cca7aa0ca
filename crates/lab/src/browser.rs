//! Debian's chromium, headless, for the pages the project serves: the DOM after scripts ran,
//! and a screenshot to look at. Started as the workplace's machines need it (no sandbox as
//! root, no background networking: the machine's network is closed), in a namespace when
//! given one, with a fresh profile each time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::Netns;

fn chromium(ns: Option<&Netns>, profile: &Path) -> Command {
    let mut cmd = match ns {
        Some(ns) => ns.command("chromium"),
        None => Command::new("chromium"),
    };
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// The page's DOM as chromium has it after loading `url`.
pub fn dom(ns: Option<&Netns>, url: &str) -> anyhow::Result<String> {
    let profile = tempfile::tempdir()?;
    let out = chromium(ns, profile.path()).arg("--dump-dom").arg(url).output().context("running chromium (apt install chromium)")?;
    anyhow::ensure!(out.status.success(), "chromium --dump-dom {url}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A screenshot of `url` (`width`×`height`) as a PNG at `png`.
pub fn screenshot(ns: Option<&Netns>, url: &str, png: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    let profile = tempfile::tempdir()?;
    let out = chromium(ns, profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(url)
        .output()
        .context("running chromium (apt install chromium)")?;
    anyhow::ensure!(out.status.success() && png.exists(), "chromium --screenshot {url}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Where tests leave screenshots for people to look at: `target/lab-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("lab-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir
}
