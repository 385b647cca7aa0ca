//! When the node checks in, and what it does with the server's reply (sans-IO: times in,
//! decisions out; the agent's shell sends, runs commands and reboots).
//!
//! The first check-in goes at once, then one every interval the server names (30 s until it
//! has named one; bounded to 1 s … 1 day). A failed check-in is tried again sooner (after at
//! most 10 s). Commands in a reply pass the [`Gate`] (the server key that came with the image);
//! `reboot` is acknowledged first: the node sends one more check-in, marked leaving, carrying
//! the ack, and reboots when it is answered or failed — so the server knows, and lets the
//! node's key go at once rather than after three missed check-ins.

use std::time::{Duration, Instant};

use swarmboot_checkin::command::{Action, Command, Gate};
use swarmboot_checkin::report::{CheckIn, CheckInReply};
use swarmboot_manifest::PublicKey;

/// Until the server names an interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// A failed check-in is tried again after at most this.
pub const RETRY: Duration = Duration::from_secs(10);

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing until then.
    Wait(Instant),
    /// Assemble a check-in ([`CheckInLoop::prepare`]) and send it.
    CheckIn,
    /// Reboot the machine (the command was acknowledged).
    Reboot,
}

/// The last check-in's fate, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Unix seconds.
    pub at: u64,
    pub problem: Option<String>,
}

#[derive(Debug)]
pub struct CheckInLoop {
    gate: Gate,
    counter: u64,
    interval: Duration,
    due: Instant,
    last: Option<Outcome>,
    /// A reboot was let through: the leaving check-in goes next, then the reboot.
    rebooting: bool,
    /// The leaving check-in was sent (answered or not, the reboot follows).
    left: bool,
}

impl CheckInLoop {
    /// `server`: the key from the image; `node_key`: the fingerprint of this boot's key.
    pub fn new(server: PublicKey, mac: &str, node_key: &str, now: Instant) -> Self {
        CheckInLoop { gate: Gate::new(server, mac, node_key), counter: 0, interval: DEFAULT_INTERVAL, due: now, last: None, rebooting: false, left: false }
    }

    pub fn poll(&self, now: Instant) -> Next {
        if self.left {
            Next::Reboot
        } else if self.rebooting || now >= self.due {
            Next::CheckIn
        } else {
            Next::Wait(self.due)
        }
    }

    /// Fills in what the loop owns: the counter, the acknowledgements, whether the node leaves.
    pub fn prepare(&mut self, report: &mut CheckIn) {
        self.counter += 1;
        report.counter = self.counter;
        report.acks = self.gate.pending_acks().to_vec();
        report.leaving = self.rebooting;
    }

    /// The server answered at `now` (unix `unix`): the commands to run now, in order (a reboot
    /// is not among them: [`Next::Reboot`] comes after the leaving check-in).
    pub fn on_reply(&mut self, now: Instant, unix: u64, reply: &CheckInReply) -> Vec<Command> {
        self.gate.acknowledged(reply.acks_taken);
        self.last = Some(Outcome { at: unix, problem: None });
        self.interval = Duration::from_secs(reply.interval_secs.clamp(1, 86_400));
        self.due = now + self.interval;
        if self.rebooting {
            self.left = true;
            return vec![];
        }
        let mut run = Vec::new();
        for signed in &reply.commands {
            let Ok(c) = self.gate.admit(signed, unix) else { continue };
            if c.action == Action::Reboot {
                self.gate.done(c.seq, Ok(()));
                self.rebooting = true;
                // Nothing after a reboot runs; later commands wait for the next boot's key
                // (and are refused there: they were signed for this one).
                break;
            }
            run.push(c);
        }
        run
    }

    /// The check-in failed at `now` (unix `unix`): why, for the page; tried again soon.
    pub fn on_failure(&mut self, now: Instant, unix: u64, problem: String) {
        self.last = Some(Outcome { at: unix, problem: Some(problem) });
        if self.rebooting {
            self.left = true;
        }
        self.due = now + self.interval.min(RETRY);
    }

    /// How a command from [`CheckInLoop::on_reply`] went (acknowledged in the next check-in).
    pub fn done(&mut self, seq: u64, outcome: Result<(), String>) {
        self.gate.done(seq, outcome);
    }

    pub fn last(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_checkin::command::SignedCommand;
    use swarmboot_checkin::report::Seeding;
    use swarmboot_manifest::SigningKey;

    const MAC: &str = "52:54:00:aa:bb:01";

    fn report() -> CheckIn {
        CheckIn {
            mac: MAC.into(),
            node_key: String::new(),
            counter: 0,
            image: "elchos@1".into(),
            uptime_secs: 0,
            leaving: false,
            disks: vec![],
            shares: vec![],
            served: vec![],
            seeding: Seeding::default(),
            acks: vec![],
        }
    }

    fn reply(interval: u64, acks_taken: usize, commands: Vec<SignedCommand>) -> CheckInReply {
        CheckInReply { interval_secs: interval, acks_taken, commands, adc_port: None }
    }

    fn command(server: &SigningKey, node: &str, seq: u64, action: Action) -> SignedCommand {
        SignedCommand::sign(server, &Command { seq, mac: MAC.into(), node_key: node.into(), issued: 0, expires: 10_000, action })
    }

    #[test]
    fn check_ins_keep_the_servers_pace_and_retry_sooner_after_a_failure() {
        let server = SigningKey::from_seed([1; 32]);
        let t0 = Instant::now();
        let mut l = CheckInLoop::new(server.public(), MAC, "node", t0);
        assert_eq!(l.poll(t0), Next::CheckIn, "the first goes at once");
        let mut r = report();
        l.prepare(&mut r);
        assert_eq!((r.counter, r.leaving), (1, false));
        assert!(l.on_reply(t0, 100, &reply(5, 0, vec![])).is_empty());
        assert_eq!(l.poll(t0 + Duration::from_secs(4)), Next::Wait(t0 + Duration::from_secs(5)));
        assert_eq!(l.poll(t0 + Duration::from_secs(5)), Next::CheckIn);
        // A server that says 0 s or a year is held to 1 s … 1 day.
        l.on_reply(t0, 100, &reply(0, 0, vec![]));
        assert_eq!(l.interval(), Duration::from_secs(1));
        l.on_reply(t0, 100, &reply(365 * 86_400, 0, vec![]));
        assert_eq!(l.interval(), Duration::from_secs(86_400));
        l.on_failure(t0, 200, "connection refused".into());
        assert_eq!(l.poll(t0), Next::Wait(t0 + RETRY));
        assert_eq!(l.last().unwrap().problem.as_deref(), Some("connection refused"));
        let mut r = report();
        l.prepare(&mut r);
        assert_eq!(r.counter, 2, "the counter grows with every check-in sent");
    }

    #[test]
    fn commands_run_once_and_their_acks_ride_the_next_check_in() {
        let server = SigningKey::from_seed([1; 32]);
        let t0 = Instant::now();
        let mut l = CheckInLoop::new(server.public(), MAC, "node", t0);
        let forged = command(&SigningKey::from_seed([2; 32]), "node", 1, Action::Reboot);
        let run = l.on_reply(t0, 100, &reply(30, 0, vec![command(&server, "node", 1, Action::RescanDisks), forged]));
        assert_eq!(run.iter().map(|c| c.action.clone()).collect::<Vec<_>>(), [Action::RescanDisks]);
        l.done(1, Ok(()));
        let mut r = report();
        l.prepare(&mut r);
        let outcomes: Vec<&str> = r.acks.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        assert!(outcomes[0].starts_with("refused: not signed") && outcomes[1] == "done", "{outcomes:?}");
        // The server took both: the next check-in carries none; the same command again is refused.
        assert!(l.on_reply(t0, 101, &reply(30, 2, vec![command(&server, "node", 1, Action::RescanDisks)])).is_empty());
        let mut r = report();
        l.prepare(&mut r);
        assert_eq!(r.acks.len(), 1, "only the refusal of the repeat");
    }

    #[test]
    fn a_reboot_is_acknowledged_in_a_leaving_check_in_first() {
        let server = SigningKey::from_seed([1; 32]);
        let t0 = Instant::now();
        let mut l = CheckInLoop::new(server.public(), MAC, "node", t0);
        let run = l.on_reply(t0, 100, &reply(30, 0, vec![command(&server, "node", 4, Action::Reboot), command(&server, "node", 5, Action::RescanDisks)]));
        assert!(run.is_empty(), "nothing runs after a reboot");
        assert_eq!(l.poll(t0), Next::CheckIn, "at once, not in 30 s");
        let mut r = report();
        l.prepare(&mut r);
        assert!(r.leaving);
        assert_eq!((r.acks[0].seq, r.acks[0].outcome.as_str()), (Some(4), "done"));
        l.on_reply(t0, 101, &reply(30, 1, vec![]));
        assert_eq!(l.poll(t0), Next::Reboot);
        // If the server cannot be reached, the node reboots anyway (the command was genuine).
        let mut l = CheckInLoop::new(server.public(), MAC, "node", t0);
        l.on_reply(t0, 100, &reply(30, 0, vec![command(&server, "node", 4, Action::Reboot)]));
        l.prepare(&mut report());
        l.on_failure(t0, 101, "timed out".into());
        assert_eq!(l.poll(t0), Next::Reboot);
    }
}
