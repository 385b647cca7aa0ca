//! The server's counters over the last hour, for the dashboard's small charts: a sample every
//! [`EVERY`] into a ring of [`KEPT`] (plain data and arithmetic; [`run`] takes the samples).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use swarmboot_swarm::locks::lock;
use tokio::sync::watch;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(10);
/// Samples kept: an hour.
pub const KEPT: usize = 360;

/// Images whose swarm bytes each sample keeps (the first by name).
pub const MAX_IMAGES: usize = 32;

/// What one image's swarms moved since start: the server's seed's uploads and what the machines
/// reported uploading, over all its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageBytes {
    pub name: String,
    pub seed_uploaded: u64,
    pub peers_uploaded: u64,
}

/// What one sample holds: counters (totals since start) and gauges (machines by stage now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub dhcp_received: u64,
    pub dhcp_acks: u64,
    pub tftp_requests: u64,
    pub tftp_bytes: u64,
    pub http_blob_bytes: u64,
    pub http_scripts: u64,
    pub announces: u64,
    pub seed_uploaded: u64,
    pub peers_uploaded: u64,
    pub reports: u64,
    pub machines_booting: u64,
    pub machines_running: u64,
    /// Per image (at most [`MAX_IMAGES`]); `/api/v1/swarms` shows them, not `/api/v1/server`.
    #[serde(skip)]
    pub images: Vec<ImageBytes>,
}

/// A counter or gauge of [`Sample`], by name, for charts and the API.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub name: &'static str,
    pub what: &'static str,
    /// A total since start (charted as a rate per second), or a level (charted as it is).
    pub counter: bool,
    pub bytes: bool,
    pub get: fn(&Sample) -> u64,
}

pub const SERIES: [Series; 12] = [
    Series { name: "dhcp_received", what: "DHCP requests", counter: true, bytes: false, get: |s| s.dhcp_received },
    Series { name: "dhcp_acks", what: "DHCP leases granted", counter: true, bytes: false, get: |s| s.dhcp_acks },
    Series { name: "tftp_requests", what: "TFTP reads", counter: true, bytes: false, get: |s| s.tftp_requests },
    Series { name: "tftp_bytes", what: "TFTP bytes sent", counter: true, bytes: true, get: |s| s.tftp_bytes },
    Series { name: "http_scripts", what: "boot scripts", counter: true, bytes: false, get: |s| s.http_scripts },
    Series { name: "http_blob_bytes", what: "image bytes over HTTP", counter: true, bytes: true, get: |s| s.http_blob_bytes },
    Series { name: "announces", what: "tracker announces", counter: true, bytes: false, get: |s| s.announces },
    Series { name: "seed_uploaded", what: "bytes the server's seed sent", counter: true, bytes: true, get: |s| s.seed_uploaded },
    Series { name: "peers_uploaded", what: "bytes machines sent each other", counter: true, bytes: true, get: |s| s.peers_uploaded },
    Series { name: "reports", what: "stage reports", counter: true, bytes: false, get: |s| s.reports },
    Series { name: "machines_booting", what: "machines booting", counter: false, bytes: false, get: |s| s.machines_booting },
    Series { name: "machines_running", what: "machines running", counter: false, bytes: false, get: |s| s.machines_running },
];

#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn push(&self, s: Sample) {
        let mut q = lock(&self.samples);
        if q.len() >= KEPT {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// Oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).iter().cloned().collect()
    }
}

/// `series` over `samples` as chart points: a counter as its rate per second between
/// consecutive samples (a counter that went down — a restart — counts from zero), a gauge as
/// it is. One point fewer than samples for a counter.
pub fn points(series: &Series, samples: &[Sample]) -> Vec<f64> {
    if !series.counter {
        return samples.iter().map(|s| (series.get)(s) as f64).collect();
    }
    rates(samples, series.get)
}

/// One image's swarm bytes as rates per second: (the server's seed, the machines), one point
/// fewer than samples; an image missing from a sample counts as nothing moved.
pub fn image_points(name: &str, samples: &[Sample]) -> (Vec<f64>, Vec<f64>) {
    let of = |s: &Sample| s.images.iter().find(|i| i.name == name).cloned().unwrap_or_default();
    (rates(samples, |s| of(s).seed_uploaded), rates(samples, |s| of(s).peers_uploaded))
}

/// A counter's rate per second between consecutive samples (one that went down — a restart —
/// counts from zero).
fn rates(samples: &[Sample], get: impl Fn(&Sample) -> u64) -> Vec<f64> {
    samples
        .windows(2)
        .map(|w| {
            let (a, b) = (get(&w[0]), get(&w[1]));
            let secs = (w[1].at_ms.saturating_sub(w[0].at_ms) as f64 / 1000.0).max(0.001);
            (if b >= a { b - a } else { b }) as f64 / secs
        })
        .collect()
}

/// Takes a sample every [`EVERY`] until `shutdown` (off the async workers: a sample reads the
/// catalog).
pub async fn run(history: std::sync::Arc<History>, sample: impl Fn() -> Sample + Send + Sync + 'static, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let sample = std::sync::Arc::new(sample);
    loop {
        let take = sample.clone();
        if let Ok(s) = tokio::task::spawn_blocking(move || take()).await {
            history.push(s);
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sec: u64, announces: u64, running: u64) -> Sample {
        Sample { at_ms: sec * 1000, announces, machines_running: running, ..Default::default() }
    }

    #[test]
    fn counters_chart_as_rates_and_gauges_as_levels_and_an_hour_is_kept() {
        let announces = SERIES.iter().find(|s| s.name == "announces").unwrap();
        let running = SERIES.iter().find(|s| s.name == "machines_running").unwrap();
        let samples = [at(0, 0, 1), at(10, 50, 2), at(20, 150, 2), at(30, 20, 0)];
        assert_eq!(points(announces, &samples), [5.0, 10.0, 2.0], "a restart (150 → 20) counts from zero");
        assert_eq!(points(running, &samples), [1.0, 2.0, 2.0, 0.0]);
        assert!(points(announces, &samples[..1]).is_empty());
        let h = History::default();
        for i in 0..(KEPT as u64 + 5) {
            h.push(at(i * 10, i, 0));
        }
        let kept = h.samples();
        assert_eq!((kept.len(), kept[0].announces), (KEPT, 5));
        assert!(SERIES.iter().all(|s| !s.name.is_empty()));
    }

    #[test]
    fn an_images_bytes_chart_as_rates_and_a_missing_image_as_nothing() {
        let with = |sec: u64, images: Vec<(&str, u64, u64)>| Sample {
            at_ms: sec * 1000,
            images: images.into_iter().map(|(n, s, p)| ImageBytes { name: n.into(), seed_uploaded: s, peers_uploaded: p }).collect(),
            ..Default::default()
        };
        let samples = [with(0, vec![("a", 0, 0)]), with(10, vec![("a", 1000, 100), ("b", 5, 5)]), with(20, vec![("a", 1000, 5100)])];
        assert_eq!(image_points("a", &samples), (vec![100.0, 0.0], vec![10.0, 500.0]));
        assert_eq!(image_points("b", &samples), (vec![0.5, 0.0], vec![0.5, 0.0]), "b left the catalog: from zero");
    }
}
