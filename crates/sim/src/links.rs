//! Where bytes can go and how fast: links with a capacity each way (a machine's port, a
//! room's uplink, the server's port), and the max-min fair share of them among the
//! connections that have bytes to send — what TCP flows sharing bottlenecks settle to.
//!
//! A flow crosses its sender's up link, its receiver's down link, and, between rooms, the
//! sender's room's uplink out and the receiver's room's uplink in.

/// A link's index in [`Links`].
pub type LinkId = usize;

/// Every link and its capacity in bytes per second.
#[derive(Debug, Clone, Default)]
pub struct Links {
    caps: Vec<f64>,
}

impl Links {
    pub fn add(&mut self, bytes_per_sec: f64) -> LinkId {
        self.caps.push(bytes_per_sec);
        self.caps.len() - 1
    }

    pub fn len(&self) -> usize {
        self.caps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.caps.is_empty()
    }

    /// Max-min fair rates (bytes per second) of `flows`, each the links it crosses (at most
    /// four), by progressive filling: every unsaturated flow grows at the same pace until a
    /// link it crosses is full. `scratch` keeps allocations between calls.
    pub fn fair_rates(&self, flows: &[Path], scratch: &mut Scratch) -> Vec<f64> {
        let n = flows.len();
        let mut rate = vec![0.0; n];
        scratch.remaining.clear();
        scratch.remaining.extend_from_slice(&self.caps);
        scratch.count.clear();
        scratch.count.resize(self.caps.len(), 0);
        for f in flows {
            for &l in f.links() {
                scratch.count[l] += 1;
            }
        }
        scratch.open.clear();
        scratch.open.extend(0..n);
        while !scratch.open.is_empty() {
            let mut inc = f64::INFINITY;
            for &f in &scratch.open {
                for &l in flows[f].links() {
                    inc = inc.min(scratch.remaining[l] / scratch.count[l] as f64);
                }
            }
            if !inc.is_finite() {
                break;
            }
            for &f in &scratch.open {
                rate[f] += inc;
            }
            for (l, r) in scratch.remaining.iter_mut().enumerate() {
                *r -= inc * scratch.count[l] as f64;
            }
            // Flows through a full link stop growing; the others go on.
            let full = |l: LinkId, remaining: &[f64], caps: &[f64]| remaining[l] <= caps[l] * 1e-9;
            let (mut i, caps) = (0, &self.caps);
            while i < scratch.open.len() {
                let f = scratch.open[i];
                if flows[f].links().iter().any(|&l| full(l, &scratch.remaining, caps)) {
                    for &l in flows[f].links() {
                        scratch.count[l] -= 1;
                    }
                    scratch.open.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        }
        rate
    }
}

/// The links one flow crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    links: [LinkId; 4],
    len: u8,
}

impl Path {
    pub fn new(links: &[LinkId]) -> Self {
        assert!(!links.is_empty() && links.len() <= 4, "a flow crosses 1 to 4 links");
        let mut l = [0; 4];
        l[..links.len()].copy_from_slice(links);
        Path { links: l, len: links.len() as u8 }
    }

    pub fn links(&self) -> &[LinkId] {
        &self.links[..self.len as usize]
    }
}

/// Buffers [`Links::fair_rates`] reuses.
#[derive(Debug, Default)]
pub struct Scratch {
    remaining: Vec<f64>,
    count: Vec<usize>,
    open: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6 * y.abs().max(1.0))
    }

    #[test]
    fn flows_through_one_link_share_it_evenly() {
        let mut links = Links::default();
        let up = links.add(100.0);
        let (d1, d2) = (links.add(1000.0), links.add(1000.0));
        let r = links.fair_rates(&[Path::new(&[up, d1]), Path::new(&[up, d2])], &mut Scratch::default());
        assert!(close(&r, &[50.0, 50.0]), "{r:?}");
    }

    /// A flow held back at its receiver leaves its sender's capacity to the other flow
    /// (max-min, not an even split of every link).
    #[test]
    fn a_flow_held_back_elsewhere_leaves_its_share_to_the_others() {
        let mut links = Links::default();
        let up = links.add(100.0);
        let slow = links.add(10.0);
        let fast = links.add(1000.0);
        let r = links.fair_rates(&[Path::new(&[up, slow]), Path::new(&[up, fast])], &mut Scratch::default());
        assert!(close(&r, &[10.0, 90.0]), "{r:?}");
    }

    /// Forty flows leaving a room through its uplink: each gets a fortieth of it, however fast
    /// the machines' own ports are; a flow inside the room is not held back by the uplink.
    #[test]
    fn a_rooms_uplink_is_shared_by_what_leaves_the_room() {
        let mut links = Links::default();
        let uplink = links.add(1000.0);
        let mut flows = Vec::new();
        for _ in 0..40 {
            let (up, down) = (links.add(1000.0), links.add(1000.0));
            flows.push(Path::new(&[up, uplink, down]));
        }
        let (up, down) = (links.add(1000.0), links.add(1000.0));
        flows.push(Path::new(&[up, down]));
        let r = links.fair_rates(&flows, &mut Scratch::default());
        assert!(r[..40].iter().all(|&x| (x - 25.0).abs() < 1e-6) && (r[40] - 1000.0).abs() < 1e-6, "{r:?}");
        let total_through_uplink: f64 = r[..40].iter().sum();
        assert!((total_through_uplink - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn no_flows_no_rates() {
        let mut links = Links::default();
        links.add(1.0);
        assert!(links.fair_rates(&[], &mut Scratch::default()).is_empty());
    }
}
