use std::net::Ipv4Addr;

use super::*;

const EXAMPLE: &str = r#"
[server]
interface = "br0"
address   = "10.77.0.1"
state_dir = "/var/lib/swarmboot"
[dhcp]
mode       = "authoritative"
pool       = ["10.77.0.100-10.77.0.199"]
lease_time = "12h"
router     = "10.77.0.1"
dns        = ["10.77.0.1"]
[[dhcp.reservation]]
mac = "52:54:00:00:00:01"
ip  = "10.77.0.10"
hostname = "lab-01"
[[dhcp.subnet]]
network = "10.78.0.0/24"
pool    = ["10.78.0.100-10.78.0.199"]
router  = "10.78.0.1"
[http]
listen = "0.0.0.0:8080"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn settings_err(text: &str, prefix: u8) -> String {
    parse(text).unwrap().dhcp_settings(prefix).unwrap_err().to_string()
}

#[test]
fn the_documented_example_parses_into_core_settings() {
    let cfg = parse(EXAMPLE).unwrap();
    let s = cfg.dhcp_settings(24).unwrap();
    assert_eq!(s.mode, Mode::Authoritative);
    assert_eq!(s.server_ip, Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(s.subnets.len(), 2);
    assert_eq!(s.subnets[0].network, Ipv4Addr::new(10, 77, 0, 0));
    assert_eq!(s.subnets[0].lease_secs, 12 * 3600);
    assert_eq!(s.subnets[1].routers, vec![Ipv4Addr::new(10, 78, 0, 1)]);
    assert_eq!(s.subnets[1].dns, vec![Ipv4Addr::new(10, 77, 0, 1)], "relayed subnets inherit dns");
    assert_eq!(s.reservations[0].hostname.as_deref(), Some("lab-01"));
    assert_eq!(s.boot.http_port, 8080);
    assert_eq!((s.boot.http_base.as_deref(), s.boot.script_path.as_str()), (None, "/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}"), "the boot script's route");
    assert_eq!(swarmboot_dhcp::BootSettings::default().script_path, swarmboot_urls::Urls::new("").boot_script(), "the DHCP core's default is the contract's path");
}

/// `[http] public_url` reaches the DHCP core: machines are handed the URL they reach the
/// server by, for the boot script as for everything after it.
#[test]
fn the_public_url_goes_to_dhcp_too() {
    let cfg = parse("[server]\ninterface = \"eth1\"\naddress = \"192.168.5.1/24\"\n[http]\npublic_url = \"http://boot.lab:80\"\n").unwrap();
    let s = cfg.dhcp_settings(24).unwrap();
    assert_eq!(s.boot.http_base.as_deref(), Some("http://boot.lab:80"));
    assert_eq!(cfg.base_url(), "http://boot.lab:80");
}

#[test]
fn defaults_hand_out_nothing() {
    let cfg = parse("[server]\ninterface = \"eth1\"\naddress = \"192.168.5.1/24\"\n").unwrap();
    assert_eq!(cfg.dhcp.mode, DhcpMode::Off);
    assert_eq!(cfg.server.state_dir, PathBuf::from("/var/lib/swarmboot"));
    assert_eq!(cfg.configured_prefix(), Some(24));
    assert_eq!(cfg.dhcp_settings(24).unwrap().mode, Mode::Off);
}

#[test]
fn unknown_keys_are_named() {
    let e = err("[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\n[dhcp]\nleasetime = \"1h\"\n");
    assert!(e.contains("unknown field `leasetime`"), "{e}");
    let e = err("[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\n[dhpc]\n");
    assert!(e.contains("unknown field `dhpc`"), "{e}");
}

#[test]
fn bad_values_say_what_was_expected() {
    let base = "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\n[dhcp]\n";
    let e = err(&format!("{base}lease_time = \"12 fortnights\"\n"));
    assert!(e.contains("lease_time") && e.contains("not a duration"), "{e}");
    let e = err(&format!("{base}pool = [\"10.77.0.100..10.77.0.199\"]\n"));
    assert!(e.contains("pool") && e.contains("not an address range"), "{e}");
    let e = err(&format!("{base}pool = [\"10.77.0.199-10.77.0.100\"]\n"));
    assert!(e.contains("runs backwards"), "{e}");
    let e = err(&format!("{base}mode = \"sometimes\"\n"));
    assert!(e.contains("mode") && e.contains("authoritative"), "{e}");
    let e = err(&format!("{base}[[dhcp.reservation]]\nmac = \"52:54:00\"\nip = \"10.77.0.10\"\nextra = 1\n"));
    assert!(e.contains("extra") || e.contains("52:54:00"), "{e}");
    let e = err("[server]\ninterface = \"br0\"\naddress = \"10.77.0.300\"\n");
    assert!(e.contains("address") && e.contains("not an IPv4 address"), "{e}");
    let e = err(&format!("{base}lease_time = \"2s\"\n"));
    assert!(e.contains("dhcp.lease_time: 2 s is too short"), "{e}");
    let e = err(&format!("{base}mode = \"authoritative\"\n"));
    assert!(e.contains("dhcp.pool: mode is \"authoritative\" but there is no pool"), "{e}");
}

#[test]
fn pool_outside_the_interface_subnet_is_refused() {
    let text = EXAMPLE.replace("10.77.0.100-10.77.0.199", "10.77.1.100-10.77.1.199");
    let e = settings_err(&text, 24);
    assert!(e.contains("dhcp.pool[0]: 10.77.1.100-10.77.1.199 is outside the interface's subnet 10.77.0.0/24"), "{e}");
    // With the prefix in server.address it is caught at parse time.
    let text = text.replace("address   = \"10.77.0.1\"", "address   = \"10.77.0.1/24\"");
    assert!(err(&text).contains("outside the interface's subnet"));
}

#[test]
fn overlapping_pools_are_refused() {
    let text = EXAMPLE.replace("[\"10.77.0.100-10.77.0.199\"]", "[\"10.77.0.100-10.77.0.199\", \"10.77.0.150-10.77.0.160\"]");
    let e = err(&text);
    assert!(e.contains("dhcp.pool[1]: 10.77.0.150-10.77.0.160 overlaps dhcp.pool[0]"), "{e}");
}

#[test]
fn relayed_subnet_checks() {
    let text = EXAMPLE.replace("10.78.0.100-10.78.0.199", "10.79.0.100-10.79.0.199");
    assert!(err(&text).contains("dhcp.subnet[0].pool[0]: 10.79.0.100-10.79.0.199 is outside its subnet 10.78.0.0/24"));
    let text = EXAMPLE.replace("network = \"10.78.0.0/24\"", "network = \"10.78.0.5/24\"");
    assert!(err(&text).contains("host bits set"));
    let text = EXAMPLE.replace("network = \"10.78.0.0/24\"", "network = \"10.77.0.0/16\"");
    let e = settings_err(&text.replace("10.78.0.1\"", "10.77.9.1\"").replace("10.78.0.1", "10.77.9.1"), 24);
    assert!(e.contains("overlaps the server's own network"), "{e}");
}

#[test]
fn reservations_are_checked() {
    let dup = EXAMPLE.replace("[[dhcp.subnet]]", "[[dhcp.reservation]]\nmac = \"52:54:00:00:00:02\"\nip = \"10.77.0.10\"\n[[dhcp.subnet]]");
    assert!(err(&dup).contains("dhcp.reservation[1].ip: 10.77.0.10 is already reserved by dhcp.reservation[0]"));
    let away = EXAMPLE.replace("ip  = \"10.77.0.10\"", "ip  = \"172.16.0.10\"");
    assert!(settings_err(&away, 24).contains("dhcp.reservation[0].ip: 172.16.0.10 is in no served subnet"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = EXAMPLE.replace("lease_time = \"12h\"", "lease_time = \"1s\"").replace("router     = \"10.77.0.1\"", "router     = \"10.99.0.1\"");
    let e = err(&text.replace("address   = \"10.77.0.1\"", "address   = \"10.77.0.1/24\""));
    assert!(e.contains("dhcp.lease_time") && e.contains("dhcp.router: 10.99.0.1 is outside"), "{e}");
}

/// The config the package installs: valid, not configured, DHCP off.
#[test]
fn the_installed_config_serves_nothing_until_an_interface_is_named() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/swarmboot.toml");
    let cfg = Config::load(&path).unwrap();
    assert!(!cfg.is_configured());
    assert_eq!(cfg.dhcp.mode, DhcpMode::Off);
}

/// Its `#key = value` lines, uncommented (and `mode = "off"` dropped for the `#mode` line
/// below it), are a working authoritative config: the notes in the file are true.
#[test]
fn the_installed_configs_commented_settings_are_a_valid_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/swarmboot.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut uncommented = String::new();
    for line in text.lines() {
        if line.starts_with("mode       = \"off\"") {
            continue;
        }
        let is_setting = line.strip_prefix('#').is_some_and(|r| r.starts_with(|c: char| c.is_ascii_lowercase() || c == '['));
        uncommented.push_str(if is_setting { &line[1..] } else { line });
        uncommented.push('\n');
    }
    let cfg = parse(&uncommented).unwrap();
    assert!(cfg.is_configured());
    assert_eq!(cfg.dhcp.mode, DhcpMode::Authoritative);
    cfg.dhcp_settings(24).unwrap();
    assert_eq!(cfg.image_rules(&Default::default()).unwrap().image_for("52:54:00:01:02:03"), Some("elchos"));
}

#[test]
fn without_an_interface_only_dhcp_off_is_accepted_and_an_address_goes_with_an_interface() {
    assert!(!parse("[server]\n").unwrap().is_configured());
    let e = err("[dhcp]\nmode = \"proxy\"\n");
    assert!(e.contains("server.interface") && e.contains("dhcp.mode = \"proxy\" needs the interface"), "{e}");
    let e = err("[server]\ninterface = \"br0\"\n");
    assert!(e.contains("server.address: is required with server.interface"), "{e}");
}

#[test]
fn boot_rules_are_read_and_bad_globs_named() {
    let text = format!("{EXAMPLE}[boot]\ndefault_image = \"elchos\"\n[[boot.client]]\nmac = \"52:54:00:*\"\nimage = \"vm\"\n");
    let rules = parse(&text).unwrap().image_rules(&Default::default()).unwrap();
    assert_eq!(rules.image_for("52:54:00:01:02:03"), Some("vm"));
    assert_eq!(rules.image_for("02:00:00:01:02:03"), Some("elchos"));
    let e = err(&text.replace("52:54:00:*", "52:54:[00"));
    assert!(e.contains("boot.client[0].mac"), "{e}");
}

#[test]
fn the_build_mirror_is_a_url_or_a_sources_file() {
    let parse = |build: &str| Config::parse(&format!("[build]\n{build}\n"), Path::new("t.toml"));
    assert!(parse("").unwrap().build.mirror.is_none(), "unset: mmdebstrap's default");
    for ok in ["mirror = \"http://10.0.0.1:3142/debian\"", "mirror = \"file:///srv/mirror/debian\"", "mirror = \"/etc/hostname\""] {
        assert!(parse(ok).is_ok(), "{ok}");
    }
    for bad in ["mirror = \"deb.example/debian\"", "mirror = \"http://\"", "mirror = \"/no/such/sources\"", "mirror = \"http://a b\""] {
        match parse(bad) {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert!(problems.iter().any(|p| p.key == "build.mirror" && p.message.contains("must be a mirror URL")), "{bad}: {problems:?}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn connection_caps_are_checked_by_key() {
    let base = "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\n";
    let cfg = parse(base).unwrap();
    assert_eq!((cfg.http.max_connections, cfg.http.max_connections_per_client, cfg.http.header_timeout.0), (4096, 32, 10));
    assert_eq!((cfg.tftp.max_transfers, cfg.tftp.max_transfers_per_client, cfg.tftp.max_timeout.0), (1024, 64, 5));
    assert_eq!((cfg.swarm.max_peer_connections, cfg.swarm.max_peer_connections_per_client), (2048, 16));
    let e = err(&format!("{base}[http]\nmax_connections = 10\nmax_connections_per_client = 20\n"));
    assert!(e.contains("http.max_connections_per_client: 20 must be at least 1 and at most http.max_connections (10)"), "{e}");
    let e = err(&format!("{base}[tftp]\nmax_transfers = 0\nmax_timeout = \"300s\"\n"));
    assert!(e.contains("tftp.max_transfers: 0 is out of range") && e.contains("tftp.max_timeout: 300 s is out of range"), "{e}");
    let e = err(&format!("{base}[swarm]\nmax_peer_connections_per_client = 0\n"));
    assert!(e.contains("swarm.max_peer_connections_per_client: 0 must be at least 1"), "{e}");
}

#[test]
fn a_tftp_root_that_holds_the_state_dir_is_refused() {
    let base = "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"/var/lib/swarmboot\"\n[tftp]\n";
    for root in ["/", "/var", "/var/lib/swarmboot", "/srv/../var/lib", "/var/lib/swarmboot/."] {
        let e = err(&format!("{base}root = \"{root}\"\n"));
        assert!(e.contains("tftp.root") && e.contains("signing key"), "{root}: {e}");
    }
    for root in ["/srv/tftp", "/var/lib/swarmboot/tftp", "/var/lib/swarmboot-tftp"] {
        assert!(parse(&format!("{base}root = \"{root}\"\n")).is_ok(), "{root}");
    }
}

#[test]
fn node_check_in_settings_have_defaults_and_are_checked_by_key() {
    let base = "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\n";
    let n = parse(base).unwrap().nodes;
    assert_eq!((n.checkin_interval.0, n.missed_before_lost, n.command_ttl.0), (30, 3, 600));
    let e = err(&format!("{base}[nodes]\ncheckin_interval = \"0s\"\nmissed_before_lost = 0\ncommand_ttl = \"30d\"\n"));
    for key in ["nodes.checkin_interval: 0 s is out of range", "nodes.missed_before_lost: 0 is out of range", "nodes.command_ttl: 2592000 s is out of range"] {
        assert!(e.contains(key), "{key}: {e}");
    }
    let installed = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/swarmboot.toml")).unwrap().nodes;
    assert_eq!((installed.checkin_interval.0, installed.missed_before_lost, installed.command_ttl.0), (30, 3, 600), "the installed file says the defaults");
}

#[test]
fn the_adc_hub_is_off_by_default_and_checked_by_key() {
    let base = "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\n";
    let a = parse(base).unwrap().adc;
    assert_eq!((a.enable, a.listen.to_string(), a.max_users, a.hub_name.as_str()), (false, "0.0.0.0:1511".into(), 1000, "swarmboot"));
    let on = parse(&format!("{base}[adc]\nenable = true\nlisten = \"10.77.0.1:1511\"\n")).unwrap().adc;
    assert!(on.enable && on.listen.to_string() == "10.77.0.1:1511");
    let e = err(&format!("{base}[adc]\nmax_users = 0\nhub_name = \"a\\\"b\"\nlisten = \"0.0.0.0:0\"\n"));
    for key in ["adc.max_users: 0 is out of range", "adc.hub_name: ", "adc.listen: port 0"] {
        assert!(e.contains(key), "{key}: {e}");
    }
    let installed = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/swarmboot.toml")).unwrap().adc;
    assert!(!installed.enable && installed.listen.port() == 1511 && installed.max_users == 1000, "the installed file says the defaults");
}
