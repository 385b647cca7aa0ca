//! What the stub and a booted system's seeder report (`POST /api/v1/report`, JSON): the stage,
//! the image, and where the bytes came from. Hostile input: bounded in size, every field
//! checked, unknown fields ignored (a newer stub may say more).

use serde::{Deserialize, Serialize};

use crate::mac::Mac;

/// The longest report body the server reads.
pub const MAX_REPORT_LEN: usize = 2048;
/// How often a machine reports while it fetches (seconds between reports), at least.
pub const FETCH_REPORT_SECS: u64 = 2;
/// How often a booted machine's seeder reports, unless the server's reply says otherwise.
pub const DEFAULT_INTERVAL_SECS: u64 = 30;

/// The stage a machine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reported {
    /// The stub is fetching the image (`have` of `total` bytes).
    Fetching,
    /// The stub has the whole image, verified, and is handing over (switch_root or kexec).
    Handover,
    /// The image's files are seeded to other machines (after the handover), every interval.
    Seeding,
    /// The booted system is up (its `swarmboot-booted` unit: multi-user.target reached).
    Running,
}

/// Who reports: the stub's own processes (its worker, the seeder a kexec carries), or the
/// booted system's seeder service, which only runs once the system is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reporter {
    Stub,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageReport {
    pub mac: Mac,
    pub stage: Reported,
    pub by: Reporter,
    pub image: String,
    pub version: u32,
    /// Bytes of the image the machine has, of `total`.
    #[serde(default)]
    pub have: u64,
    #[serde(default)]
    pub total: u64,
    /// Payload bytes from peers, the server's seed included.
    #[serde(default)]
    pub from_peers: u64,
    /// Of those, from the server's seed.
    #[serde(default)]
    pub from_seed: u64,
    /// Bytes over HTTP from the server (a stalled swarm's fallback).
    #[serde(default)]
    pub from_http: u64,
    /// Payload bytes this machine uploaded to others since it booted.
    #[serde(default)]
    pub uploaded: u64,
    #[serde(default)]
    pub peers: u32,
}

/// The server's answer: when to report next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportReply {
    pub interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("a report is at most {MAX_REPORT_LEN} bytes; this one is {0}")]
    TooLong(usize),
    #[error("not a report: {0}")]
    Malformed(String),
    #[error("report field {field}: {message}")]
    Invalid { field: &'static str, message: String },
}

/// Whether `name` is an image name as the catalog allows them.
pub fn is_image_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && !name.starts_with(['.', '-']) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl StageReport {
    /// Reads and checks a report body.
    pub fn parse(body: &[u8]) -> Result<StageReport, ReportError> {
        if body.len() > MAX_REPORT_LEN {
            return Err(ReportError::TooLong(body.len()));
        }
        let r: StageReport = serde_json::from_slice(body).map_err(|e| ReportError::Malformed(e.to_string().chars().take(200).collect()))?;
        let invalid = |field, message: &str| Err(ReportError::Invalid { field, message: message.into() });
        if !is_image_name(&r.image) {
            return invalid("image", "not an image name (1 to 64 of a-z A-Z 0-9 . _ -)");
        }
        if r.have > r.total {
            return invalid("have", "more than total");
        }
        if r.from_seed > r.from_peers {
            return invalid("from_seed", "more than from_peers");
        }
        match (r.stage, r.by) {
            (Reported::Fetching | Reported::Handover, Reporter::System) => return invalid("stage", "a booted system does not fetch or hand over its own image"),
            (Reported::Running, Reporter::Stub) => return invalid("stage", "only the booted system says it is running"),
            _ => {}
        }
        Ok(r)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a report serializes")
    }
}

impl ReportReply {
    /// The interval a client uses: the server's, held to 5 s … 1 hour.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.interval_secs.clamp(5, 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StageReport {
        StageReport {
            mac: "52:54:00:00:00:01".parse().unwrap(),
            stage: Reported::Fetching,
            by: Reporter::Stub,
            image: "elchos".into(),
            version: 3,
            have: 10,
            total: 100,
            from_peers: 8,
            from_seed: 2,
            from_http: 2,
            uploaded: 0,
            peers: 4,
        }
    }

    #[test]
    fn a_report_round_trips_and_bad_ones_name_the_field() {
        let r = report();
        assert_eq!(StageReport::parse(&r.to_json()).unwrap(), r);
        let field = |r: StageReport| match StageReport::parse(&r.to_json()) {
            Err(ReportError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(StageReport { image: "../etc".into(), ..report() }), "image");
        assert_eq!(field(StageReport { image: "x".repeat(65), ..report() }), "image");
        assert_eq!(field(StageReport { have: 101, ..report() }), "have");
        assert_eq!(field(StageReport { from_seed: 9, ..report() }), "from_seed");
        assert_eq!(field(StageReport { by: Reporter::System, ..report() }), "stage");
        assert_eq!(field(StageReport { stage: Reported::Running, ..report() }), "stage");
    }

    #[test]
    fn hostile_bodies_are_refused_not_panicked_on() {
        assert!(matches!(StageReport::parse(&vec![b' '; MAX_REPORT_LEN + 1]), Err(ReportError::TooLong(_))));
        for body in [
            &b""[..],
            b"{",
            b"null",
            b"{\"mac\":\"zz\"}",
            b"{\"mac\":\"52:54:00:00:00:01\",\"stage\":\"booting\",\"by\":\"stub\",\"image\":\"a\",\"version\":1}",
            b"{\"mac\":\"52:54:00:00:00:01\",\"stage\":\"seeding\",\"by\":\"stub\",\"image\":\"a\",\"version\":-1}",
        ] {
            assert!(matches!(StageReport::parse(body), Err(ReportError::Malformed(_))), "{:?}", String::from_utf8_lossy(body));
        }
        // Fields a newer stub adds are ignored; counters it leaves out are zero.
        let r = StageReport::parse(b"{\"mac\":\"52:54:00:00:00:01\",\"stage\":\"seeding\",\"by\":\"system\",\"image\":\"a\",\"version\":1,\"later\":[1,2]}").unwrap();
        assert_eq!((r.uploaded, r.peers), (0, 0));
    }

    #[test]
    fn the_interval_is_held_within_bounds() {
        assert_eq!(ReportReply { interval_secs: 0 }.interval().as_secs(), 5);
        assert_eq!(ReportReply { interval_secs: 30 }.interval().as_secs(), 30);
        assert_eq!(ReportReply { interval_secs: u64::MAX }.interval().as_secs(), 3600);
    }
}
