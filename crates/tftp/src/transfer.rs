//! One read transfer: option negotiation, windows of DATA blocks, acknowledgements, retries.

use std::time::{Duration, Instant};

use crate::packet::{self, parse_reply, Reply, RequestOptions};

/// What the server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block size granted (a client asking for more gets this).
    pub max_blksize: u16,
    /// Largest window granted.
    pub max_windowsize: u16,
    /// Retransmission timeout when the client does not ask for one.
    pub default_timeout: Duration,
    /// Longest timeout granted: a client asking for more (up to 255 s, RFC 2349) is not
    /// granted the option, so a spoofed request cannot hold a socket for retries × 255 s.
    pub max_timeout: Duration,
    /// Retransmissions of the same packet(s) before giving up.
    pub max_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_blksize: 1468, max_windowsize: 64, default_timeout: Duration::from_secs(1), max_timeout: Duration::from_secs(5), max_retries: 5 }
    }
}

/// A packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A ready-made packet (OACK or ERROR).
    Packet(Vec<u8>),
    /// DATA: block number `wire` carrying `len` bytes of the file from `offset`. The shell reads
    /// them and prefixes [`packet::write_data_header`].
    Data { wire: u16, offset: u64, len: usize },
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEnd {
    /// The client acknowledged the last block.
    Complete,
    /// The client sent ERROR with this code (e.g. 8 after a UEFI `tsize` probe).
    ClientError(u16),
    /// No acknowledgement after every retry.
    TimedOut,
}

/// The result of one input: packets to send, and whether the transfer is over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub send: Vec<Outgoing>,
    pub end: Option<TransferEnd>,
}

/// One read transfer of a file of known size.
#[derive(Debug, Clone)]
pub struct Transfer {
    size: u64,
    blksize: u64,
    window: u64,
    timeout: Duration,
    max_retries: u32,
    /// Number of DATA blocks (the last is shorter than `blksize`, possibly empty).
    blocks: u64,
    /// Highest block (1-based, absolute) the client acknowledged.
    acked: u64,
    /// Highest block sent.
    sent: u64,
    /// The OACK was sent and its ACK 0 has not arrived.
    oack: Option<Vec<u8>>,
    deadline: Instant,
    retries: u32,
    end: Option<TransferEnd>,
}

impl Transfer {
    /// Starts a transfer of a `size`-byte file for a request with `options`.
    pub fn start(options: &RequestOptions, size: u64, now: Instant, limits: &Limits) -> (Transfer, Step) {
        let mut acked_opts: Vec<(&str, String)> = Vec::new();
        let mut blksize = 512u64;
        if let Some(b) = options.blksize {
            blksize = u64::from(b.min(limits.max_blksize).max(8));
            acked_opts.push(("blksize", blksize.to_string()));
        }
        if options.tsize {
            acked_opts.push(("tsize", size.to_string()));
        }
        let mut timeout = limits.default_timeout;
        if let Some(t) = options.timeout_secs.filter(|&t| Duration::from_secs(u64::from(t)) <= limits.max_timeout) {
            timeout = Duration::from_secs(u64::from(t));
            acked_opts.push(("timeout", t.to_string()));
        }
        let mut window = 1u64;
        if let Some(w) = options.windowsize {
            window = u64::from(w.min(limits.max_windowsize).max(1));
            acked_opts.push(("windowsize", window.to_string()));
        }
        let mut t = Transfer {
            size,
            blksize,
            window,
            timeout,
            max_retries: limits.max_retries,
            blocks: size / blksize + 1,
            acked: 0,
            sent: 0,
            oack: None,
            deadline: now + timeout,
            retries: 0,
            end: None,
        };
        let step = if acked_opts.is_empty() {
            t.send_window(now)
        } else {
            let oack = packet::encode_oack(&acked_opts);
            t.oack = Some(oack.clone());
            t.deadline = now + timeout;
            Step { send: vec![Outgoing::Packet(oack)], end: None }
        };
        (t, step)
    }

    pub fn blksize(&self) -> usize {
        self.blksize as usize
    }
    pub fn window(&self) -> u64 {
        self.window
    }
    /// When [`Transfer::on_timeout`] must be called, unless a packet comes first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.end.is_none().then_some(self.deadline)
    }

    /// A datagram from the client's address and port.
    pub fn on_packet(&mut self, now: Instant, bytes: &[u8]) -> Step {
        if self.end.is_some() {
            return Step::default();
        }
        match parse_reply(bytes) {
            Err(_) => Step::default(), // a stray or malformed datagram changes nothing
            Ok(Reply::Error(code)) => self.finish(TransferEnd::ClientError(code)),
            Ok(Reply::Ack(n)) if self.oack.is_some() => {
                if n != 0 {
                    return Step::default();
                }
                self.oack = None;
                self.send_window(now)
            }
            Ok(Reply::Ack(n)) => {
                // The absolute block this ACK names: the one at or below `sent` with this
                // 16-bit number (block numbers roll over after 65535).
                let back = u64::from((self.sent as u16).wrapping_sub(n));
                let Some(a) = self.sent.checked_sub(back) else {
                    return Step::default();
                };
                if a <= self.acked {
                    return Step::default(); // duplicate or stale: never resend on it
                }
                self.acked = a;
                self.retries = 0;
                if a == self.blocks {
                    return self.finish(TransferEnd::Complete);
                }
                // A full window acknowledged: the next one. A partial one: the client lost a
                // block; resend from the one after its ACK (RFC 7440).
                self.send_window(now)
            }
        }
    }

    /// Time passed; retransmit or give up when the deadline is reached.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        if self.end.is_some() || now < self.deadline {
            return Step::default();
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            return self.finish(TransferEnd::TimedOut);
        }
        if let Some(oack) = &self.oack {
            self.deadline = now + self.timeout;
            return Step { send: vec![Outgoing::Packet(oack.clone())], end: None };
        }
        self.send_window(now)
    }

    fn finish(&mut self, end: TransferEnd) -> Step {
        self.end = Some(end);
        Step { send: vec![], end: Some(end) }
    }

    /// Blocks `acked + 1 ..= acked + window` (at most to the last).
    fn send_window(&mut self, now: Instant) -> Step {
        let first = self.acked + 1;
        let last = (self.acked + self.window).min(self.blocks);
        let send = (first..=last)
            .map(|b| {
                let offset = (b - 1) * self.blksize;
                let len = self.blksize.min(self.size.saturating_sub(offset)) as usize;
                Outgoing::Data { wire: b as u16, offset, len }
            })
            .collect();
        self.sent = self.sent.max(last);
        self.deadline = now + self.timeout;
        Step { send, end: None }
    }
}
