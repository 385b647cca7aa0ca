//! The fleet's stage rules, scripted: (time, what the server saw) → stages, boots, refusals.

use std::net::Ipv4Addr;

use swarmboot_fleet::{Binding, DhcpClient, Fleet, FleetConfig, Mac, Refused, Reported, Reporter, Seen, Selection, SortKey, Stage, StageReport};

const A: Mac = Mac([0x52, 0x54, 0, 0, 0, 0xa]);
const B: Mac = Mac([0x52, 0x54, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const HOUR: u64 = 3_600_000;

fn dhcp(mac: Mac, client: DhcpClient, ip: Ipv4Addr, now: u64) -> Seen<'static> {
    Seen::Dhcp { mac, client, leased: Some((ip, now + HOUR)), hostname: None }
}

fn report(mac: Mac, stage: Reported, by: Reporter, have: u64) -> StageReport {
    StageReport { mac, stage, by, image: "elchos".into(), version: 2, have, total: 100, from_peers: 60, from_seed: 20, from_http: 5, uploaded: 7, peers: 3 }
}

/// A whole swarm boot: firmware DHCP, TFTP, iPXE DHCP and script, stub DHCP, fetching,
/// handover, running; the stages and their times in the boot's history.
fn boot(f: &mut Fleet, mac: Mac, ip: Ipv4Addr, t: u64) {
    f.observe(t, dhcp(mac, DhcpClient::Firmware, ip, t));
    f.observe(t + 1, Seen::Tftp { ip });
    f.observe(t + 2, dhcp(mac, DhcpClient::Ipxe, ip, t + 2));
    f.observe(t + 3, Seen::Script { mac, ip, arch: "x86_64", image: Some(("elchos", 2)) });
    f.observe(t + 4, dhcp(mac, DhcpClient::Stub, ip, t + 4));
    f.report(t + 5, ip, &report(mac, Reported::Fetching, Reporter::Stub, 40)).unwrap();
    f.report(t + 6, ip, &report(mac, Reported::Fetching, Reporter::Stub, 100)).unwrap();
    f.report(t + 7, ip, &report(mac, Reported::Handover, Reporter::Stub, 100)).unwrap();
    f.report(t + 8, ip, &report(mac, Reported::Seeding, Reporter::Stub, 100)).unwrap();
    f.report(t + 9, ip, &report(mac, Reported::Running, Reporter::System, 100)).unwrap();
}

#[test]
fn a_swarm_boot_passes_through_every_stage_once_with_its_times() {
    let mut f = Fleet::new(FleetConfig::default());
    boot(&mut f, A, IP_A, 1000);
    let m = f.get(&A).unwrap();
    assert_eq!(m.stage, Stage::Running);
    assert_eq!(m.since_ms, 1009);
    let b = m.boot().unwrap();
    assert_eq!(b.stages, [(Stage::Dhcp, 1000), (Stage::Ipxe, 1001), (Stage::Stub, 1004), (Stage::Fetching, 1005), (Stage::Handover, 1007), (Stage::Running, 1009)]);
    assert_eq!(m.image().unwrap().to_string(), "elchos@2");
    assert_eq!((b.progress.have, b.progress.total, b.progress.from_peers, b.progress.from_server, b.progress.percent()), (100, 100, 40, 25, 100));
    assert_eq!((m.arch.as_deref(), m.ip(), m.uploaded, m.boots.len()), (Some("x86_64"), Some(IP_A), 7, 1));
    // Every stage change is an event; the first began the boot.
    let ev: Vec<_> = f.events_after(0, 100).map(|e| (e.stage, e.new_boot)).collect();
    assert_eq!(ev.len(), 6);
    assert_eq!(ev[0], (Stage::Dhcp, true));
    assert!(ev[1..].iter().all(|(_, new)| !new));
    assert_eq!(f.events_after(4, 100).count(), 2);
}

#[test]
fn firmware_or_ipxe_after_the_boot_got_past_them_begin_a_new_boot_and_old_boots_are_dropped() {
    let cfg = FleetConfig { boots_kept: 3, ..Default::default() };
    let mut f = Fleet::new(cfg);
    for i in 0..5 {
        boot(&mut f, A, IP_A, 1000 * (i + 1));
    }
    let m = f.get(&A).unwrap();
    assert_eq!(m.boots.len(), 3);
    assert_eq!(m.boots[0].started_ms, 3000);
    // An iPXE ROM machine: its first DHCP is iPXE's; that too begins a boot.
    f.observe(9000, dhcp(A, DhcpClient::Ipxe, IP_A, 9000));
    let m = f.get(&A).unwrap();
    assert_eq!((m.stage, m.boots.len(), m.boot().unwrap().started_ms), (Stage::Ipxe, 3, 9000));
    assert_eq!(m.uploaded, 0, "a new boot has uploaded nothing yet");
    // Firmware after iPXE (the machine reset while in iPXE): a new boot too.
    f.observe(9500, dhcp(A, DhcpClient::Firmware, IP_A, 9500));
    assert_eq!(f.get(&A).unwrap().boot().unwrap().started_ms, 9500);
}

#[test]
fn stale_events_do_not_move_a_boot_back() {
    let mut f = Fleet::new(FleetConfig::default());
    boot(&mut f, A, IP_A, 1000);
    // The stub's lease renewed, a late fetching report, the booted system's own DHCP.
    f.observe(2000, dhcp(A, DhcpClient::Stub, IP_A, 2000));
    f.report(2001, IP_A, &report(A, Reported::Fetching, Reporter::Stub, 50)).unwrap();
    f.observe(2002, dhcp(A, DhcpClient::Os, IP_A, 2002));
    let m = f.get(&A).unwrap();
    assert_eq!((m.stage, m.since_ms, m.last_seen_ms, m.boots.len()), (Stage::Running, 1009, 2002, 1));
    assert_eq!(m.boot().unwrap().stages.len(), 6);
}

#[test]
fn silence_makes_a_machine_lost_and_a_word_brings_it_back_where_its_boot_was() {
    let cfg = FleetConfig::default();
    let (lost_after, silent) = (cfg.lost_after_ms, cfg.silent_lost_after_ms);
    let mut f = Fleet::new(cfg);
    boot(&mut f, A, IP_A, 1000);
    // B got no further than iPXE: firmware does not report, so it gets longer.
    f.observe(1000, dhcp(B, DhcpClient::Ipxe, IP_B, 1000));
    f.tick(1009 + lost_after);
    assert_eq!(f.get(&A).unwrap().stage, Stage::Running);
    f.tick(1010 + lost_after);
    assert_eq!(f.get(&A).unwrap().stage, Stage::Lost);
    assert_eq!(f.get(&B).unwrap().stage, Stage::Ipxe);
    f.tick(1001 + silent);
    assert_eq!(f.get(&B).unwrap().stage, Stage::Lost);
    // A's seeder is heard again (a network outage): running, in the same boot.
    let t = 2000 + silent;
    f.report(t, IP_A, &report(A, Reported::Seeding, Reporter::System, 100)).unwrap();
    let m = f.get(&A).unwrap();
    assert_eq!((m.stage, m.boots.len()), (Stage::Running, 1));
    assert_eq!(m.boot().unwrap().stages.iter().map(|s| s.0).collect::<Vec<_>>()[5..], [Stage::Running, Stage::Lost, Stage::Running]);
    // A leaving check-in: lost at once.
    f.check_in(t + 1, IP_A, A, "elchos@2", 9, true).unwrap();
    assert_eq!(f.get(&A).unwrap().stage, Stage::Lost);
}

#[test]
fn stuck_is_a_transient_stage_held_too_long() {
    let cfg = FleetConfig { stuck_after_ms: 1000, ..Default::default() };
    let mut f = Fleet::new(cfg.clone());
    f.observe(0, dhcp(A, DhcpClient::Ipxe, IP_A, 0));
    boot(&mut f, B, IP_B, 0);
    assert!(!f.get(&A).unwrap().is_stuck(1000, &cfg));
    assert!(f.get(&A).unwrap().is_stuck(1001, &cfg));
    assert!(!f.get(&B).unwrap().is_stuck(1_000_000, &cfg), "running is not stuck");
    let stuck = f.select(1001, &Selection { stuck_only: true, ..Default::default() });
    assert_eq!(stuck.iter().map(|m| m.mac).collect::<Vec<_>>(), [A]);
}

#[test]
fn a_report_binds_to_the_mac_and_its_lease() {
    let mut f = Fleet::new(FleetConfig::default());
    f.observe(0, dhcp(A, DhcpClient::Stub, IP_A, 0));
    f.observe(0, dhcp(B, DhcpClient::Stub, IP_B, 0));
    // B reports for A from B's address, and A from another address: both refused.
    assert_eq!(f.report(1, IP_B, &report(A, Reported::Fetching, Reporter::Stub, 1)), Err(Refused::AddressOfAnother { from: IP_B, mac: A, holder: B }));
    let elsewhere = Ipv4Addr::new(10, 0, 0, 99);
    assert_eq!(f.report(1, elsewhere, &report(A, Reported::Fetching, Reporter::Stub, 1)), Err(Refused::NotItsAddress { from: elsewhere, mac: A, leased: IP_A }));
    assert_eq!(f.check_in(1, IP_B, A, "elchos@2", 0, false), Err(Refused::AddressOfAnother { from: IP_B, mac: A, holder: B }));
    assert_eq!(f.get(&A).unwrap().stage, Stage::Stub, "a refused report changes nothing");
    assert_eq!((f.counters().reports, f.counters().reports_refused), (2, 2));
    // From its own lease: taken.
    f.report(2, IP_A, &report(A, Reported::Fetching, Reporter::Stub, 1)).unwrap();
    // A MAC the server never leased to (proxy mode, a server restart): the latest address it
    // came from, which binds nothing.
    let c = Mac([2, 0, 0, 0, 0, 0xc]);
    f.report(3, elsewhere, &report(c, Reported::Seeding, Reporter::System, 100)).unwrap();
    assert_eq!(f.get(&c).unwrap().address, Some(Binding::Seen { ip: elsewhere }));
    assert_eq!(f.get(&c).unwrap().stage, Stage::Running, "a booted system's seeder the server knew nothing of");
    f.report(4, Ipv4Addr::new(10, 0, 0, 98), &report(c, Reported::Seeding, Reporter::System, 100)).unwrap();
    // A lease that ended binds no longer.
    f.observe(5, Seen::Released { mac: A, ip: IP_A });
    f.report(6, elsewhere, &report(A, Reported::Fetching, Reporter::Stub, 2)).unwrap();
    f.observe(7, Seen::Dhcp { mac: B, client: DhcpClient::Stub, leased: Some((IP_B, 8)), hostname: None });
    f.report(8, IP_B, &report(A, Reported::Fetching, Reporter::Stub, 3)).unwrap();
}

#[test]
fn in_proxy_mode_the_script_request_gives_the_address_and_the_tftp_read_finds_the_machine() {
    let mut f = Fleet::new(FleetConfig::default());
    f.observe(0, Seen::Dhcp { mac: A, client: DhcpClient::Firmware, leased: None, hostname: Some("pc-01\u{7}") });
    f.observe(1, Seen::Tftp { ip: IP_A });
    assert_eq!(f.get(&A).unwrap().stage, Stage::Dhcp, "the address is not known yet");
    f.observe(2, Seen::Script { mac: A, ip: IP_A, arch: "x86_64", image: None });
    let m = f.get(&A).unwrap();
    assert_eq!((m.stage, m.ip(), m.hostname.as_deref()), (Stage::Ipxe, Some(IP_A), Some("pc-01")));
    assert_eq!(m.image(), None, "no image to boot");
    f.observe(50, Seen::Request { ip: IP_A });
    assert_eq!(f.get(&A).unwrap().last_seen_ms, 50);
}

#[test]
fn the_table_is_bounded_and_a_new_machine_takes_the_place_of_the_one_lost_longest() {
    let cfg = FleetConfig { max_machines: 3, lost_after_ms: 10, ..Default::default() };
    let mut f = Fleet::new(cfg);
    let mac = |i: u8| Mac([2, 0, 0, 0, 0, i]);
    for i in 0..3 {
        f.report(u64::from(i), Ipv4Addr::new(10, 0, 1, i), &report(mac(i), Reported::Fetching, Reporter::Stub, 1)).unwrap();
    }
    assert_eq!(f.report(5, Ipv4Addr::new(10, 0, 1, 9), &report(mac(9), Reported::Fetching, Reporter::Stub, 1)), Err(Refused::Full(3)));
    f.observe(5, Seen::Dhcp { mac: mac(9), client: DhcpClient::Firmware, leased: None, hostname: None });
    assert_eq!((f.len(), f.counters().full), (3, 2), "the report and the DHCP request both found it full");
    f.report(15, Ipv4Addr::new(10, 0, 1, 2), &report(mac(2), Reported::Fetching, Reporter::Stub, 2)).unwrap();
    f.tick(13);
    f.tick(15);
    assert_eq!(f.get(&mac(0)).unwrap().stage, Stage::Lost);
    f.report(16, Ipv4Addr::new(10, 0, 1, 9), &report(mac(9), Reported::Fetching, Reporter::Stub, 1)).unwrap();
    assert!(f.get(&mac(0)).is_none(), "lost longest: forgotten");
    assert!(f.get(&mac(1)).is_some() && f.get(&mac(9)).is_some());
    // Thousands of stage flips keep a boot's history and the event log bounded.
    let cfg = FleetConfig { lost_after_ms: 0, events_kept: 50, ..Default::default() };
    let mut f = Fleet::new(cfg);
    for t in 0..10_000u64 {
        f.report(t * 2, IP_A, &report(A, Reported::Seeding, Reporter::System, 100)).unwrap();
        f.tick(t * 2 + 1);
    }
    assert_eq!(f.get(&A).unwrap().boot().unwrap().stages.len(), swarmboot_fleet::fleet::MAX_STAGES_PER_BOOT);
    assert_eq!(f.events_after(0, usize::MAX).count(), 50);
    assert_eq!(f.events_after(0, 1).next().unwrap().id, f.last_event() - 49);
}

#[test]
fn selections_filter_and_sort() {
    let mut f = Fleet::new(FleetConfig::default());
    boot(&mut f, A, IP_A, 1000);
    f.observe(500, Seen::Dhcp { mac: B, client: DhcpClient::Ipxe, leased: Some((IP_B, HOUR)), hostname: Some("Lab-PC-7") });
    let macs = |sel: Selection| f.select(2000, &sel).iter().map(|m| m.mac).collect::<Vec<_>>();
    assert_eq!(macs(Selection::default()), [A, B]);
    assert_eq!(macs(Selection { descending: true, ..Default::default() }), [B, A]);
    assert_eq!(macs(Selection { sort: SortKey::Since, ..Default::default() }), [B, A]);
    assert_eq!(macs(Selection { stage: Some(Stage::Running), ..Default::default() }), [A]);
    assert_eq!(macs(Selection { image: Some("elchos".into()), ..Default::default() }), [A]);
    assert_eq!(macs(Selection { text: Some("lab-pc 10.0.0.11".into()), ..Default::default() }), [B]);
    assert_eq!(macs(Selection { text: Some("elchos@2".into()), ..Default::default() }), [A]);
    assert_eq!(macs(Selection { limit: Some(1), sort: SortKey::Ip, descending: true, ..Default::default() }), [B]);
    assert_eq!(SortKey::parse("last_seen"), Some(SortKey::LastSeen));
    assert!(SortKey::NAMES.iter().all(|n| SortKey::parse(n).is_some()));
    assert_eq!(Stage::ALL.iter().map(|s| Stage::parse(s.as_str())).collect::<Option<Vec<_>>>().unwrap(), Stage::ALL);
    assert_eq!(f.by_stage().iter().map(|(_, n)| n).sum::<usize>(), 2);
}

#[test]
fn restored_leases_bind_and_show_lost_until_heard_from() {
    let mut f = Fleet::new(FleetConfig::default());
    f.restore_lease(100, A, IP_A, 100 + HOUR, Some("pc-a"));
    f.restore_lease(100, B, IP_B, 50, None);
    assert!(f.get(&B).is_none(), "an expired lease is not restored");
    assert_eq!(f.get(&A).unwrap().stage, Stage::Lost);
    assert!(f.report(101, IP_B, &report(A, Reported::Seeding, Reporter::Stub, 100)).is_err());
    f.report(102, IP_A, &report(A, Reported::Seeding, Reporter::Stub, 100)).unwrap();
    assert_eq!(f.get(&A).unwrap().stage, Stage::Handover, "the stub's worker seeds from the handover on");
    f.report(103, IP_A, &report(A, Reported::Running, Reporter::System, 100)).unwrap();
    assert_eq!(f.get(&A).unwrap().stage, Stage::Running);
}

#[test]
fn the_views_say_how_long_each_stage_took_and_count_every_machine() {
    use swarmboot_fleet::{FleetView, MachineView};
    let cfg = FleetConfig { stuck_after_ms: 100, ..Default::default() };
    let mut f = Fleet::new(cfg);
    boot(&mut f, A, IP_A, 1000);
    boot(&mut f, A, IP_A, 5000);
    f.observe(5000, Seen::Dhcp { mac: B, client: DhcpClient::Ipxe, leased: None, hostname: Some("<b>") });
    let v = FleetView::of(&f, 6000, &Selection { stage: Some(Stage::Running), ..Default::default() });
    assert_eq!((v.matched, v.machines.len(), v.stuck), (1, 1, 1));
    assert_eq!(v.by_stage.iter().map(|c| (c.stage.as_str(), c.machines)).filter(|c| c.1 > 0).collect::<Vec<_>>(), [("ipxe", 1), ("running", 1)]);
    let row = &v.machines[0];
    assert_eq!(
        (row.mac.as_str(), row.stage.as_str(), row.image.as_deref(), row.percent, row.address_from.as_deref()),
        ("52:54:00:00:00:0a", "running", Some("elchos@2"), 100, Some("lease"))
    );
    let m = MachineView::of(f.get(&A).unwrap(), 6000, &f);
    assert_eq!(m.boots.len(), 2);
    assert_eq!(m.boots[0].started_ms, 5000, "newest first");
    let spans: Vec<_> = m.boots[1].stages.iter().map(|s| (s.stage.as_str(), s.for_ms)).collect();
    assert_eq!(spans, [("dhcp", 1), ("ipxe", 3), ("stub", 1), ("fetching", 2), ("handover", 2), ("running", 3991)], "the old boot ran until the new one began");
    assert_eq!(m.boots[0].stages.last().unwrap().for_ms, 991, "the current stage lasts until now");
    // The JSON reads back.
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<FleetView>(&json).unwrap(), v);
}

#[test]
fn a_machine_reports_from_any_address_our_dhcp_leases_it() {
    // The stub got one address, the booted system's DHCP client (another client id) a
    // second: the kernel may send from either.
    let mut f = Fleet::new(FleetConfig::default());
    let system_ip = Ipv4Addr::new(10, 0, 0, 12);
    f.observe(0, dhcp(A, DhcpClient::Stub, IP_A, 0));
    f.observe(1, dhcp(A, DhcpClient::Os, system_ip, 1));
    f.report(2, IP_A, &report(A, Reported::Seeding, Reporter::System, 100)).unwrap();
    f.report(3, system_ip, &report(A, Reported::Running, Reporter::System, 100)).unwrap();
    assert_eq!(f.get(&A).unwrap().address, Some(Binding::Lease { ip: system_ip, until_ms: 1 + HOUR }), "the latest lease is the one shown");
    let elsewhere = Ipv4Addr::new(10, 0, 0, 99);
    assert_eq!(f.report(4, elsewhere, &report(A, Reported::Seeding, Reporter::System, 1)), Err(Refused::NotItsAddress { from: elsewhere, mac: A, leased: system_ip }));
    // The stub's address goes to B: no longer A's.
    f.observe(5, dhcp(B, DhcpClient::Firmware, IP_A, 5));
    assert_eq!(f.report(6, IP_A, &report(A, Reported::Seeding, Reporter::System, 1)), Err(Refused::AddressOfAnother { from: IP_A, mac: A, holder: B }));
    assert_eq!(f.get(&A).unwrap().leases, [(system_ip, 1 + HOUR)]);
    // Bounded: a machine that takes many addresses keeps the newest.
    for i in 0..20u8 {
        f.observe(10 + u64::from(i), dhcp(A, DhcpClient::Os, Ipv4Addr::new(10, 0, 1, i), 10 + u64::from(i)));
    }
    let leases = &f.get(&A).unwrap().leases;
    assert_eq!(leases.len(), swarmboot_fleet::fleet::MAX_LEASES);
    assert!(leases.iter().all(|(ip, _)| ip.octets()[3] >= 12), "{leases:?}");
    assert!(
        matches!(f.report(40, Ipv4Addr::new(10, 0, 1, 3), &report(A, Reported::Seeding, Reporter::System, 1)), Err(Refused::NotItsAddress { .. })),
        "an address dropped from its list is no longer its own"
    );
}
