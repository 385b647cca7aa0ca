//! `swarmboot-init`: PID 1 of the stub initramfs (see `pid1`), and for a moment PID 1 of a
//! kexec'd image it carried along (see `carried`). Run as any other PID it is a
//! tool for tests and debugging:
//!
//! `swarmboot-init fetch --cmdline "swarmboot.server=… swarmboot.image=…" --out DIR
//! [--interface IF] [--key-file F]` runs the worker alone — bring the interface up, DHCP,
//! apply the lease, fetch and verify the image, print `READY`, seed until SIGTERM — so the
//! network and fetch path is tested in a namespace without booting a machine.
//!
//! `swarmboot-init seed NOTE` is `swarmboot-seed.service` in the booted system (see
//! `seeder`): it takes over seeding from the stub's worker. `swarmboot-init booted NAME@V
//! [SERVER]` is `swarmboot-booted.service`: it says in the kernel log, and to the server
//! (`stage_reports`), that the image reached multi-user.target.

mod carried;
mod console;
mod drivers;
mod kexec;
mod ltsp_install;
mod net;
mod pid1;
mod preseeded;
mod rootfs;
mod seeder;
mod stage_reports;
mod worker;

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: swarmboot-init (as PID 1 of the stub)\n       swarmboot-init fetch --cmdline LINE --out DIR [--interface IF] [--key-file F]\n       swarmboot-init seed NOTE   (swarmboot-seed.service)\n       swarmboot-init booted NAME@VERSION [SERVER]   (swarmboot-booted.service)");
    std::process::exit(2)
}

fn main() {
    let filter = std::env::var("SWARMBOOT_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_writer(std::io::stderr).with_ansi(false).init();
    if carried::is_carried() {
        carried::run();
    }
    if std::process::id() == 1 {
        pid1::run();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let (Some("booted"), Some(image), 2 | 3) = (args.first().map(String::as_str), args.get(1), args.len()) {
        if let Err(e) = seeder::booted(image, args.get(2).map(String::as_str)) {
            console::say(format!("{e:#}"));
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    if let (Some("seed"), Some(note), 2) = (args.first().map(String::as_str), args.get(1), args.len()) {
        if let Err(e) = seeder::run(std::path::Path::new(note)) {
            console::say(format!("{e:#}"));
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    if args.first().map(String::as_str) != Some("fetch") {
        usage();
    }
    let (mut line, mut out, mut interface, mut key_file) = (None, None, None, None);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--cmdline" => line = Some(v),
            "--out" => out = Some(PathBuf::from(v)),
            "--interface" => interface = Some(v),
            "--key-file" => key_file = Some(v),
            _ => usage(),
        }
    }
    let (Some(line), Some(out)) = (line, out) else { usage() };
    let stub = match swarmboot_init::cmdline::parse(&line) {
        Ok(s) => s,
        Err(e) => {
            console::say(e);
            std::process::exit(1)
        }
    };
    let mut given = Vec::new();
    if let Some(f) = key_file {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        match swarmboot_manifest::PublicKey::from_key_file(&text) {
            Ok(k) => given.push(k),
            Err(_) => {
                console::say(format!("{f}: no public key in it"));
                std::process::exit(1)
            }
        }
    }
    let trusted = match pid1::trusted_keys(&stub, given) {
        Ok(keys) => keys,
        Err(e) => {
            console::say(format!("{e} (or pass --key-file)"));
            std::process::exit(1)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let wa = worker::WorkerArgs { stub, trusted, out, interface, donated_disk: false };
    let r = rt.block_on(async move {
        tokio::select! {
            r = worker::run(wa, |_| println!("READY")) => r,
            _ = async {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                term.recv().await
            } => Ok(()),
        }
    });
    if let Err(e) = r {
        console::say(format!("{e:#}"));
        std::process::exit(1);
    }
}
