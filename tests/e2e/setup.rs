//! A fresh install: `swarmboot setup` on the boot network's interface, with and without another
//! DHCP server there; the server as the packaged service runs it (an unprivileged user with only
//! CAP_NET_BIND_SERVICE) handing out an address and serving iPXE over TFTP; and an unconfigured
//! server that serves nothing.

use std::path::Path;
use std::time::Duration;

use swarmboot_lab::clients::Udhcpc;
use swarmboot_lab::tmux::Tmux;
use swarmboot_lab::{require_root, Lan, Proc, ScratchDir};

fn setup(lan: &Lan, config: &Path) -> String {
    let out = lan.server.command(swarmboot_lab::bin("swarmboot")).args(["setup", "--yes", "--interface", "br0", "--probe-secs", "2", "--config"]).arg(config).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "setup failed: {text}");
    text
}

fn installed_config(dir: &Path) -> std::path::PathBuf {
    let installed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/swarmboot.toml")).unwrap();
    let config = dir.join("swarmboot.toml");
    std::fs::write(&config, installed.replace("state_dir = \"/var/lib/swarmboot\"", &format!("state_dir = \"{}\"", dir.join("state").display()))).unwrap();
    config
}

/// No other DHCP server: setup proposes authoritative mode with the upper half of br0's /24.
/// Another one (dnsmasq on a host) answers the DHCPDISCOVER: setup writes proxy mode.
#[test]
fn setup_writes_authoritative_alone_and_proxy_beside_another_dhcp_server() {
    if !require_root("setup_writes_authoritative_alone_and_proxy_beside_another_dhcp_server") {
        return;
    }
    let dir = ScratchDir::new("setup").unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let config = installed_config(dir.path());

    let said = setup(&lan, &config);
    assert!(said.contains("none answered"), "{said}");
    let cfg = swarmboot_config::Config::load(&config).unwrap();
    assert!(cfg.is_configured() && cfg.server.interface == "br0");
    assert_eq!(cfg.dhcp.mode, swarmboot_config::DhcpMode::Authoritative);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("pool = [\"10.77.0.128-10.77.0.254\"]") && text.contains("address = \"10.77.0.1/24\""), "{text}");
    assert!(text.contains("# swarmboot configuration"), "the file's notes are kept");
    eprintln!("{said}");

    let d = lan.add_host(None).unwrap();
    lan.host(d).ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]).unwrap();
    let mut cmd = lan.host(d).command("dnsmasq");
    cmd.args(["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping", "--dhcp-range=10.77.0.50,10.77.0.60,1h"])
        .arg(format!("--dhcp-leasefile={}", dir.path().join("dnsmasq.leases").display()))
        .arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()));
    let dnsmasq = Proc::spawn("dnsmasq", &mut cmd, &dir.path().join("dnsmasq.log")).unwrap();
    swarmboot_lab::wait_for_line(&dnsmasq.log, "DHCP, IP range", Duration::from_secs(10)).unwrap();
    let said = setup(&lan, &config);
    // dnsmasq picks the address it offers from a hash of the MAC: any of its range.
    let offered = said.split("answered by 10.77.0.2 (offered ").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or_else(|| panic!("no answer from dnsmasq: {said}"));
    let offered: std::net::Ipv4Addr = offered.parse().unwrap_or_else(|e| panic!("offered {offered:?}: {e}: {said}"));
    assert!((std::net::Ipv4Addr::new(10, 77, 0, 50)..=std::net::Ipv4Addr::new(10, 77, 0, 60)).contains(&offered), "an address from dnsmasq's range: {said}");
    let cfg = swarmboot_config::Config::load(&config).unwrap();
    assert_eq!(cfg.dhcp.mode, swarmboot_config::DhcpMode::Proxy);
    assert!(cfg.dhcp.pool.is_empty(), "proxy mode hands out nothing");
    eprintln!("{said}");
}

/// The server as the service runs it: user nobody, CAP_NET_BIND_SERVICE only (setpriv, as
/// systemd's User= and AmbientCapabilities= would): a udhcpc client gets an address and
/// curl fetches `undionly.kpxe` over TFTP. And with the installed config it serves nothing:
/// it says so and exits 0.
#[test]
fn the_server_runs_unprivileged_and_unconfigured_serves_nothing() {
    if !require_root("the_server_runs_unprivileged_and_unconfigured_serves_nothing") {
        return;
    }
    let dir = ScratchDir::new("unpriv").unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let config = installed_config(dir.path());
    let unprivileged = |lan: &Lan| {
        let mut c = lan.server.command("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+net_bind_service",
            "--ambient-caps=-all,+net_bind_service",
            "--bounding-set=-all,+net_bind_service",
            "--",
        ]);
        c.arg(swarmboot_lab::bin("swarmboot")).args(["serve", "--config"]).arg(&config).env("SWARMBOOT_LOG", "info");
        c
    };
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::os::unix::fs::chown(dir.path().join("state"), Some(65534), Some(65534)).unwrap();
    // Nobody must be able to reach the config through the scratch directory.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let out = unprivileged(&lan).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("not configured yet, so swarmboot serves nothing"), "{}: {log}", out.status);

    setup(&lan, &config);
    let mut server = Proc::spawn("swarmboot serve (unprivileged)", &mut unprivileged(&lan), &dir.path().join("server.log")).unwrap();
    swarmboot_lab::wait_for_line(&server.log, "swarmboot ready", Duration::from_secs(20)).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap_or("").to_string();
    assert!(field("Uid:").contains("65534") && field("CapEff:").ends_with("0000000000000400"), "runs as nobody with CAP_NET_BIND_SERVICE only:\n{status}");

    let h = lan.add_host(Some("52:54:00:0e:00:01")).unwrap();
    let client = Udhcpc::start(lan.host(h), dir.path(), "c", &[]).unwrap();
    let bound = client.wait("bound", 0, Duration::from_secs(20)).unwrap();
    let ip: std::net::Ipv4Addr = bound.ip().parse().unwrap();
    assert!((std::net::Ipv4Addr::new(10, 77, 0, 128)..=std::net::Ipv4Addr::new(10, 77, 0, 254)).contains(&ip), "an address from setup's pool: {ip}");
    let got = dir.path().join("undionly.kpxe");
    let out = lan.host(h).command("curl").args(["-sS", "--max-time", "20", "-o"]).arg(&got).arg("tftp://10.77.0.1/undionly.kpxe").output().unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read("/usr/lib/ipxe/undionly.kpxe").unwrap());
    assert!(!server.exited(), "{}", server.output());
    server.stop(Duration::from_secs(5));
}

/// On a terminal setup asks which interface and whether to write; without one (and without
/// --yes) it refuses and says how to run it from a script.
#[test]
fn setup_asks_on_a_terminal_and_refuses_without_one() {
    if !require_root("setup_asks_on_a_terminal_and_refuses_without_one") {
        return;
    }
    let dir = ScratchDir::new("setup-tty").unwrap();
    let lan = Lan::new("10.77.0.1/24").unwrap();
    let config = installed_config(dir.path());
    let bin = swarmboot_lab::bin("swarmboot");

    let out = lan.server.command(&bin).args(["setup", "--config"]).arg(&config).stdin(std::process::Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no terminal to ask on") && err.contains("--yes"), "{err}");

    let socket = format!("sb-setup-{}", std::process::id());
    let cmd = format!("ip netns exec {} {} setup --probe-secs 1 --config {}; echo SETUP-EXIT $?; sleep 60", lan.server.name(), bin.display(), config.display());
    let t = Tmux::start(&socket, &cmd);
    let screen = t.wait_for("Which interface faces the machines that should boot?");
    assert!(screen.contains("br0") && screen.contains("10.77.0.1/24"), "{screen}");
    t.keys(&["br0", "Enter"]);
    let screen = t.wait_for("[y/N]");
    assert!(screen.contains("none answered") && screen.contains("mode = \"authoritative\", pool 10.77.0.128-10.77.0.254"), "{screen}");
    t.keys(&["y", "Enter"]);
    let screen = t.wait_for("SETUP-EXIT");
    assert!(screen.contains("Wrote ") && screen.contains("SETUP-EXIT 0"), "{screen}");
    eprintln!("{screen}");
    let cfg = swarmboot_config::Config::load(&config).unwrap();
    assert_eq!((cfg.server.interface.as_str(), cfg.dhcp.mode), ("br0", swarmboot_config::DhcpMode::Authoritative));
}
