//! The fleet as `/api/v1/fleet` and `/api/v1/machines/MAC` show it (JSON; `swarmboot status`
//! reads the same types back). Computed fields (stuck, percent, seconds in each stage) are
//! filled in here, once, so every reader agrees.

use serde::{Deserialize, Serialize};

use crate::fleet::{Binding, Boot, Fleet, Machine, Selection};

/// One machine's row in the fleet table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub mac: String,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    /// `lease` (our DHCP leased it), `seen` (it came from there), or none.
    pub address_from: Option<String>,
    pub arch: Option<String>,
    /// `name@version` it boots or runs.
    pub image: Option<String>,
    pub stage: String,
    pub since_ms: u64,
    pub last_seen_ms: u64,
    /// In a stage it should pass through for longer than the fleet allows.
    pub stuck: bool,
    /// The image fetch of the current boot: percent, and where the bytes came from.
    pub percent: u8,
    pub have: u64,
    pub total: u64,
    pub from_peers: u64,
    pub from_server: u64,
    pub peers: u32,
    pub uploaded: u64,
    /// The elchOS agent checks in for it.
    pub agent: bool,
}

impl Row {
    pub fn of(m: &Machine, now_ms: u64, fleet: &Fleet) -> Row {
        let p = m.boot().map(|b| b.progress).unwrap_or_default();
        Row {
            mac: m.mac.to_string(),
            hostname: m.hostname.clone(),
            ip: m.ip().map(|i| i.to_string()),
            address_from: m.address.map(|b| match b {
                Binding::Lease { .. } => "lease".to_string(),
                Binding::Seen { .. } => "seen".to_string(),
            }),
            arch: m.arch.clone(),
            image: m.image().map(|i| i.to_string()),
            stage: m.stage.as_str().to_string(),
            since_ms: m.since_ms,
            last_seen_ms: m.last_seen_ms,
            stuck: m.is_stuck(now_ms, fleet.config()),
            percent: p.percent(),
            have: p.have,
            total: p.total,
            from_peers: p.from_peers,
            from_server: p.from_server,
            peers: p.peers,
            uploaded: m.uploaded,
            agent: m.agent,
        }
    }
}

/// `/api/v1/fleet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    pub now_ms: u64,
    /// Every machine the server knows, by stage (the selection does not change these).
    pub by_stage: Vec<StageCount>,
    pub stuck: usize,
    /// The newest event's id: `/api/v1/events?after=` it gives what changed since.
    pub last_event: u64,
    /// Machines the selection picked, before its limit.
    pub matched: usize,
    pub machines: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageCount {
    pub stage: String,
    pub machines: usize,
}

impl FleetView {
    pub fn of(fleet: &Fleet, now_ms: u64, sel: &Selection) -> FleetView {
        let unlimited = Selection { limit: None, ..sel.clone() };
        let picked = fleet.select(now_ms, &unlimited);
        let matched = picked.len();
        let machines = picked.into_iter().take(sel.limit.unwrap_or(usize::MAX)).map(|m| Row::of(m, now_ms, fleet)).collect();
        FleetView {
            now_ms,
            by_stage: fleet.by_stage().iter().map(|(s, n)| StageCount { stage: s.as_str().to_string(), machines: *n }).collect(),
            stuck: fleet.machines().filter(|m| m.is_stuck(now_ms, fleet.config())).count(),
            last_event: fleet.last_event(),
            matched,
            machines,
        }
    }
}

/// A stage of one boot: when it began and how long it lasted (to the next stage, or to now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpan {
    pub stage: String,
    pub at_ms: u64,
    pub for_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootView {
    pub started_ms: u64,
    pub image: Option<String>,
    pub stages: Vec<StageSpan>,
    pub have: u64,
    pub total: u64,
    pub from_peers: u64,
    pub from_server: u64,
}

impl BootView {
    /// `ends_ms`: when the next boot began, or now for the current one.
    pub fn of(b: &Boot, ends_ms: u64) -> BootView {
        let stages = b
            .stages
            .iter()
            .enumerate()
            .map(|(i, (s, at))| {
                let next = b.stages.get(i + 1).map_or(ends_ms, |n| n.1);
                StageSpan { stage: s.as_str().to_string(), at_ms: *at, for_ms: next.saturating_sub(*at) }
            })
            .collect();
        BootView {
            started_ms: b.started_ms,
            image: b.image.as_ref().map(|i| i.to_string()),
            stages,
            have: b.progress.have,
            total: b.progress.total,
            from_peers: b.progress.from_peers,
            from_server: b.progress.from_server,
        }
    }
}

/// `/api/v1/machines/MAC`: the row, the boots (newest first), and what the elchOS agent
/// last said (`node`, filled in by the server from its registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineView {
    pub machine: Row,
    pub boots: Vec<BootView>,
    pub node: Option<serde_json::Value>,
    /// The swarms it is in, as the server's tracker heard it (filled in by the server).
    pub swarms: Option<serde_json::Value>,
    /// Its addresses: where it was seen and every live lease.
    #[serde(skip)]
    pub addresses: Vec<std::net::Ipv4Addr>,
}

impl MachineView {
    pub fn of(m: &Machine, now_ms: u64, fleet: &Fleet) -> MachineView {
        let mut boots = Vec::with_capacity(m.boots.len());
        let mut ends = now_ms;
        for b in m.boots.iter().rev() {
            boots.push(BootView::of(b, ends));
            ends = b.started_ms;
        }
        let mut addresses: Vec<std::net::Ipv4Addr> = m.ip().into_iter().chain(m.live_leases(now_ms)).collect();
        addresses.sort_unstable();
        addresses.dedup();
        MachineView { machine: Row::of(m, now_ms, fleet), boots, node: None, swarms: None, addresses }
    }
}
