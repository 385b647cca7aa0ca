//! The stub's DHCP client against any server: any datagram is taken or ignored with a reason,
//! never a panic; a lease it binds has an address.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarmboot_dhcp::client::{ClientConfig, DhcpClient};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut c = DhcpClient::new(ClientConfig { mac: [0x52, 0x54, 0, 1, 2, 3], xid: 0x1234_5678, vendor_class: b"swarmboot".to_vec() }, now);
    let _ = c.poll_transmit(now);
    // The same datagram twice: once while selecting, once after whatever the first did.
    for (i, datagram) in [data, data].into_iter().enumerate() {
        let t = now + Duration::from_secs(i as u64);
        let _ = c.on_datagram(t, datagram);
        let _ = c.poll_transmit(t);
    }
    if let Some(l) = c.lease() {
        assert!(!l.address.is_unspecified());
    }
});
