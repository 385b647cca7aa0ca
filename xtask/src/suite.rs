//! `cargo xtask test`, what CI runs: packages, the binaries and the stub's static init, the
//! fuzz smoke, `cargo test --workspace` (with the paths the lab tests need in its
//! environment), then the package test. One summary line over every test binary at the end.

use std::process::Command;

use anyhow::{bail, Context};

use crate::host::{build_stub_init, cargo, ensure_packages, ensure_rqbit, is_root, run, workspace_root};

pub fn test(fuzz_secs: u32) -> anyhow::Result<()> {
    ensure_packages()?;
    let rqbit = ensure_rqbit()?;
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["build", "--workspace", "--bins"]))?;
    let init = build_stub_init()?;
    if fuzz_secs > 0 {
        // (target, seed inputs, longest input): the DHCP core gets the full time, the tracker
        // a third of it.
        for (target, seeds, max_len, secs) in
            [("dhcp_handle", "crates/dhcp/testdata", 1500, fuzz_secs), ("tracker_announce", "crates/tracker/testdata", 4096, fuzz_secs.div_ceil(3))]
        {
            let corpus = root.join("fuzz/corpus").join(target);
            std::fs::create_dir_all(&corpus)?;
            run(fuzz_command()?.current_dir(&root).args(["run", target]).arg(&corpus).arg(root.join(seeds)).args([
                "--",
                &format!("-max_total_time={secs}"),
                &format!("-max_len={max_len}"),
                "-print_final_stats=1",
            ]))
            .with_context(|| format!("fuzz smoke of {target} (a crash input is in fuzz/artifacts/{target}/)"))?;
        }
    }
    run_tests(cargo().current_dir(&root).args(["test", "--workspace"]).env("SWARMBOOT_RQBIT", &rqbit).env("SWARMBOOT_INIT", &init))?;
    if is_root() {
        crate::deb::test()
    } else if std::env::var_os("SWARMBOOT_SKIP_LAB").is_some() {
        println!("package test skipped: SWARMBOOT_SKIP_LAB is set (it needs root for debootstrap and chroot)");
        Ok(())
    } else {
        bail!("the package test needs root (debootstrap, chroot); run as root, or set SWARMBOOT_SKIP_LAB=1 to skip it on purpose")
    }
}

/// Runs `cargo test`, passing its output through, and ends with one summary line over every
/// test binary (`tests: N passed, N failed`), so the last line speaks for the whole suite
/// rather than for the last binary (often a doc-test run with nothing in it).
fn run_tests(cmd: &mut Command) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    eprintln!("+ {cmd:?}");
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| rest.split(';').find_map(|part| part.trim().strip_suffix(word).and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok()));
            passed += count(" passed").unwrap_or(0);
            failed += count(" failed").unwrap_or(0);
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `cargo fuzz` needs a nightly compiler for its sanitizer flags: the nightly toolchain if
/// rustup has one, else the stable one with RUSTC_BOOTSTRAP=1.
fn fuzz_command() -> anyhow::Result<Command> {
    let has = |args: &[&str]| Command::new("cargo").args(args).output().map(|o| o.status.success()).unwrap_or(false);
    if !has(&["fuzz", "--version"]) {
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let mut c = Command::new("cargo");
    if has(&["+nightly", "--version"]) {
        c.arg("+nightly");
    } else {
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    c.arg("fuzz");
    Ok(c)
}
