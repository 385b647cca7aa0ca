//! What machines tell the fleet: any report body is parsed or refused with a reason, and any
//! sequence of reports, DHCP and TFTP sightings and ticks keeps the fleet within its bounds;
//! never a panic.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use swarmboot_fleet::{DhcpClient, Fleet, FleetConfig, Mac, Seen, StageReport};

fuzz_target!(|data: &[u8]| {
    let _ = StageReport::parse(data);
    let cfg = FleetConfig { max_machines: 8, boots_kept: 2, events_kept: 16, lost_after_ms: 50, silent_lost_after_ms: 100, ..Default::default() };
    let mut f = Fleet::new(cfg);
    let mut now = 0u64;
    for chunk in data.chunks(4) {
        let [op, a, b, c] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0), *chunk.get(3).unwrap_or(&0)];
        let mac = Mac([2, 0, 0, 0, 0, a % 16]);
        let ip = Ipv4Addr::new(10, 0, 0, b % 16);
        now += u64::from(c);
        match op % 6 {
            0 => {
                let client = [DhcpClient::Firmware, DhcpClient::Ipxe, DhcpClient::Stub, DhcpClient::Os][usize::from(c % 4)];
                f.observe(now, Seen::Dhcp { mac, client, leased: (c % 2 == 0).then_some((ip, now + u64::from(b))), hostname: Some("h") });
            }
            1 => f.observe(now, Seen::Tftp { ip }),
            2 => f.observe(now, Seen::Script { mac, ip, arch: "x86_64", image: Some(("img", u32::from(c))) }),
            3 => f.observe(now, Seen::Released { mac, ip }),
            4 => {
                if let Ok(r) = StageReport::parse(format!("{{\"mac\":\"{mac}\",\"stage\":\"{}\",\"by\":\"{}\",\"image\":\"img\",\"version\":{c},\"have\":{b},\"total\":255}}", ["fetching", "handover", "seeding", "running"][usize::from(c % 4)], if c % 4 == 3 { "system" } else { "stub" }).as_bytes()) {
                    let _ = f.report(now, ip, &r);
                }
            }
            _ => f.tick(now),
        }
        assert!(f.len() <= 8);
        for m in f.machines() {
            assert!(m.boots.len() <= 2 && m.leases.len() <= swarmboot_fleet::fleet::MAX_LEASES);
            assert!(m.boots.iter().all(|b| b.stages.len() <= swarmboot_fleet::fleet::MAX_STAGES_PER_BOOT));
        }
        assert!(f.events_after(0, usize::MAX).count() <= 16);
    }
});
