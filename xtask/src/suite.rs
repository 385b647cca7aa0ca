//! `cargo xtask test`, what CI runs: packages, the binaries and the stub's static init, the
//! fuzz smoke, `cargo test --workspace` (with the paths the lab tests need in its
//! environment), then the package test. One summary line over every test binary at the end.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::host::{
    build_cache, build_stub_init, build_stub_init_in, cargo, ensure_packages, has_cargo_command, is_root, run, start_cargo_fuzz_install, start_rqbit_install, workspace_root,
    Background,
};

pub fn test(fuzz_secs: u32) -> anyhow::Result<()> {
    // Where the time goes, printed at the end (CI has a budget).
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let mut timed = |name: &'static str, started: Instant| {
        phases.push((name, started.elapsed()));
        let list: Vec<String> = phases.iter().map(|(n, d)| format!("{n} {:.0} s", d.as_secs_f64())).collect();
        println!("xtask test phases so far: {}", list.join(", "));
    };
    // This very program runs the package test later, beside the suite: a copy of it now, as
    // the build below may replace target/debug/xtask while it runs.
    let package_tester = workspace_root().join("target/xtask-package-test");
    if is_root() {
        std::fs::create_dir_all(workspace_root().join("target"))?;
        std::fs::copy("/proc/self/exe", &package_tester).context("copying the running xtask for the package test")?;
    }
    let t = Instant::now();
    // The cargo tools compile while apt installs (both are minutes on a fresh machine).
    let (rqbit_install, rqbit) = start_rqbit_install()?;
    let fuzz_install = if fuzz_secs > 0 { start_cargo_fuzz_install()? } else { Background::done() };
    ensure_packages()?;
    timed("packages", t);
    let root = workspace_root();
    let t = Instant::now();
    run(cargo().current_dir(&root).args(["build", "--workspace", "--bins"]))?;
    // As root the package test follows: the init is built where the package's build finds it
    // built (the same profile and flags), instead of a second time there, niced, behind the
    // lab tests.
    let init = if is_root() { build_stub_init_in(&build_cache("deb"))? } else { build_stub_init()? };
    timed("build", t);
    if fuzz_secs > 0 {
        let t = Instant::now();
        fuzz_install.wait()?;
        // The smoke: the DHCP core gets the full time, the tracker a third, every other
        // parser a fifth (enough to build and run each; `cargo xtask fuzz` runs them long).
        // Each libFuzzer run is one thread: as many at once as there are cores.
        fuzz_smoke(fuzz_secs)?;
        timed("fuzz smoke", t);
    }
    rqbit_install.wait()?;
    // The package test (a release build, a debootstrap root, lintian) beside the tests, niced:
    // it takes what the lab tests leave of the cores (they often wait on VMs, timers and
    // peers) and never their share; what is left of it runs after them.
    let t = Instant::now();
    let package = if is_root() {
        Background::start("the package test", "package-test", true, Command::new("nice").args(["-n", "19"]).arg(&package_tester).arg("deb-test"))?
    } else {
        Background::done()
    };
    let mut tests = cargo();
    tests.current_dir(&root).args(["test", "--workspace"]).env("SWARMBOOT_RQBIT", &rqbit).env("SWARMBOOT_INIT", &init);
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        // A thread more than the cores: tests with VMs take turns for the cores (at most one
        // per core, see `swarmboot_lab::qemu`), the one more runs tests that mostly wait.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tests.env("RUST_TEST_THREADS", (cores + 1).to_string());
    }
    let tested = run_tests(&mut tests);
    timed("cargo test", t);
    // Its result either way: a failed test does not hide a broken package.
    let packaged = package.wait();
    if is_root() {
        timed("package (from the start of cargo test)", t);
    }
    tested?;
    if is_root() {
        packaged
    } else if std::env::var_os("SWARMBOOT_SKIP_LAB").is_some() {
        println!("package test skipped: SWARMBOOT_SKIP_LAB is set (it needs root for debootstrap and chroot)");
        Ok(())
    } else {
        bail!("the package test needs root (debootstrap, chroot); run as root, or set SWARMBOOT_SKIP_LAB=1 to skip it on purpose")
    }
}

/// A cargo-fuzz target (in `fuzz/fuzz_targets/`): seed inputs beside its corpus, the longest
/// input worth trying, and its share of the smoke time (1: all of it, 3: a third, …).
pub struct FuzzTarget {
    pub name: &'static str,
    pub seeds: Option<&'static str>,
    pub max_len: usize,
    pub share: u32,
}

/// Every parser that reads bytes from the network or from disk.
pub const FUZZ_TARGETS: &[FuzzTarget] = &[
    FuzzTarget { name: "dhcp_handle", seeds: Some("crates/dhcp/testdata"), max_len: 1500, share: 1 },
    FuzzTarget { name: "tracker_announce", seeds: Some("crates/tracker/testdata"), max_len: 4096, share: 3 },
    FuzzTarget { name: "dhcp_client", seeds: Some("crates/dhcp/testdata"), max_len: 1500, share: 5 },
    FuzzTarget { name: "peer_wire", seeds: None, max_len: 4096, share: 5 },
    FuzzTarget { name: "swarm_on_bytes", seeds: None, max_len: 4096, share: 5 },
    FuzzTarget { name: "metadata", seeds: None, max_len: 512, share: 5 },
    FuzzTarget { name: "metainfo", seeds: None, max_len: 4096, share: 5 },
    FuzzTarget { name: "announce_reply", seeds: None, max_len: 2048, share: 5 },
    FuzzTarget { name: "manifest_envelope", seeds: None, max_len: 4096, share: 5 },
    FuzzTarget { name: "tftp_packets", seeds: None, max_len: 1024, share: 5 },
    FuzzTarget { name: "init_cmdline", seeds: None, max_len: 1024, share: 5 },
    FuzzTarget { name: "fleet_reports", seeds: None, max_len: 2048, share: 5 },
];

/// `cargo xtask fuzz --secs N`: every target for N seconds, one after the other; prints each
/// target's executions and whether it found a crash (an input that crashes is kept in
/// `fuzz/artifacts/<target>/`).
pub fn fuzz(secs: u32) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for t in FUZZ_TARGETS {
        if let Err(e) = fuzz_target(t, secs) {
            eprintln!("xtask: {e:#}");
            failed.push(t.name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("crashes found by {failed:?}: see fuzz/artifacts/")
    }
}

/// The smoke run: every target built in one cargo run (both cores compile), then the runs,
/// longest first, as many at once as there are cores; each run's output is printed whole
/// when it ends (two runs' lines interleaved would be unreadable). Every target runs even
/// after one crashed; the error names each that did.
fn fuzz_smoke(secs: u32) -> anyhow::Result<()> {
    let mut build = fuzz_command()?;
    build.current_dir(workspace_root()).args(["build", "--target-dir"]).arg(build_cache("fuzz"));
    run(&mut build).context("building the fuzz targets")?;
    let mut queue: Vec<(&FuzzTarget, u32)> = FUZZ_TARGETS.iter().map(|t| (t, secs.div_ceil(t.share))).collect();
    queue.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
    let at_once = std::thread::available_parallelism().map_or(2, |n| n.get());
    let queue = std::sync::Mutex::new(queue.into_iter());
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| loop {
                let Some((t, secs)) = queue.lock().expect("no panics hold it").next() else { return };
                let outcome = fuzz_command().and_then(|mut cmd| {
                    fuzz_run_command(&mut cmd, t, secs)?;
                    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
                    // One write, so the other run's output does not cut into it.
                    let text = format!("+ {cmd:?}\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                    print!("{text}");
                    Ok(out.status.success())
                });
                if !matches!(outcome, Ok(true)) {
                    if let Err(e) = outcome {
                        eprintln!("xtask: {e:#}");
                    }
                    failed.lock().expect("no panics hold it").push(t.name);
                }
            });
        }
    });
    let failed = failed.into_inner().expect("no panics hold it");
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("the fuzz smoke failed for {failed:?}: a crash input is in fuzz/artifacts/<target>/, the run's output above")
    }
}

fn fuzz_target(t: &FuzzTarget, secs: u32) -> anyhow::Result<()> {
    let mut cmd = fuzz_command()?;
    fuzz_run_command(&mut cmd, t, secs)?;
    run(&mut cmd).with_context(|| format!("fuzzing {} (a crash input is in fuzz/artifacts/{}/)", t.name, t.name))
}

/// `cargo fuzz run` of one target for `secs` seconds, on its corpus (and seeds).
fn fuzz_run_command(cmd: &mut Command, t: &FuzzTarget, secs: u32) -> anyhow::Result<()> {
    let root = workspace_root();
    let corpus = root.join("fuzz/corpus").join(t.name);
    std::fs::create_dir_all(&corpus)?;
    cmd.current_dir(&root).args(["run", "--target-dir"]).arg(build_cache("fuzz")).arg(t.name).arg(&corpus);
    if let Some(seeds) = t.seeds {
        cmd.arg(root.join(seeds));
    }
    cmd.args(["--", &format!("-max_total_time={secs}"), &format!("-max_len={}", t.max_len), "-print_final_stats=1"]);
    Ok(())
}

/// Runs `cargo test`, passing its output through, and ends with one summary line over every
/// test binary (`tests: N passed, N failed`), so the last line speaks for the whole suite
/// rather than for the last binary (often a doc-test run with nothing in it).
fn run_tests(cmd: &mut Command) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    eprintln!("+ {cmd:?}");
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    // Each test's result line carries the seconds since its binary started (libtest prints a
    // line when a test ends: with the "running for over 60 seconds" lines and the lab's lines
    // when a test's VMs start and stop, a timeline).
    let mut binary_started = Instant::now();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        if line.starts_with("running ") {
            binary_started = Instant::now();
        }
        if (line.starts_with("test ") && line.contains(" ... ")) || line.starts_with("lab: VM turn") {
            println!("[{:>5.0} s] {line}", binary_started.elapsed().as_secs_f64());
            continue;
        }
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
    if !has_cargo_command(&["fuzz", "--version"]) {
        start_cargo_fuzz_install()?.wait()?;
    }
    let mut c = Command::new("cargo");
    if has_cargo_command(&["+nightly", "--version"]) {
        c.arg("+nightly");
    } else {
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    c.arg("fuzz");
    Ok(c)
}
