//! The transfer state machine, scripted against an in-memory client with a fake clock.

use std::time::{Duration, Instant};

use swarmboot_tftp::packet::{encode_error, ErrorCode};
use swarmboot_tftp::*;

fn ack(n: u16) -> Vec<u8> {
    let mut v = vec![0, 4];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

fn data_blocks(step: &Step) -> Vec<(u16, u64, usize)> {
    step.send
        .iter()
        .filter_map(|s| match s {
            Outgoing::Data { wire, offset, len } => Some((*wire, *offset, *len)),
            _ => None,
        })
        .collect()
}

/// Runs a whole transfer with a client that drops the packets `lose` says to, and returns the
/// bytes it assembled (from a file whose byte i is i % 251) and how many DATA packets were sent.
fn run(size: u64, opts: RequestOptions, lose: impl Fn(u64) -> bool) -> (Vec<u8>, u64, TransferEnd) {
    let file: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut now = Instant::now();
    let (mut t, mut step) = Transfer::start(&opts, size, now, &Limits::default());
    let mut got: Vec<u8> = Vec::new();
    let mut expect: u64 = 1; // next absolute block the client wants
    let mut sent_packets = 0u64;
    let window = opts.windowsize.map(u64::from).unwrap_or(1);
    for _ in 0..1_000_000 {
        if let Some(end) = step.end {
            return (got, sent_packets, end);
        }
        let mut replies = Vec::new();
        let mut in_window = 0;
        for s in &step.send {
            sent_packets += 1;
            match s {
                Outgoing::Packet(p) if p[1] == 6 => replies.push(ack(0)),
                Outgoing::Packet(_) => {}
                Outgoing::Data { wire, offset, len } => {
                    if lose(sent_packets) {
                        continue;
                    }
                    in_window += 1;
                    if *wire == expect as u16 {
                        got.extend_from_slice(&file[*offset as usize..*offset as usize + len]);
                        expect += 1;
                        let last = *len < t.blksize();
                        if last || in_window % window == 0 {
                            replies.push(ack((expect - 1) as u16));
                        }
                    } else {
                        // Out of order: ACK what we have (RFC 7440 asks the sender to resume).
                        replies.push(ack((expect - 1) as u16));
                    }
                }
            }
        }
        step = Step::default();
        for r in replies {
            let s = t.on_packet(now, &r);
            step.send.extend(s.send);
            step.end = step.end.or(s.end);
        }
        if step.send.is_empty() && step.end.is_none() {
            now = t.poll_timeout().unwrap();
            step = t.on_timeout(now);
        }
    }
    panic!("transfer did not end");
}

fn expected(size: u64) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

#[test]
fn plain_transfer_without_options() {
    let (got, sent, end) = run(1300, RequestOptions::default(), |_| false);
    assert_eq!((got, end), (expected(1300), TransferEnd::Complete));
    assert_eq!(sent, 3, "512 + 512 + 276");
}

#[test]
fn exact_multiple_of_block_size_ends_with_an_empty_block() {
    let (got, sent, end) = run(1024, RequestOptions::default(), |_| false);
    assert_eq!((got, end), (expected(1024), TransferEnd::Complete));
    assert_eq!(sent, 3);
    let (got, _, _) = run(0, RequestOptions::default(), |_| false);
    assert!(got.is_empty());
}

#[test]
fn options_are_negotiated_in_an_oack() {
    let now = Instant::now();
    let opts = RequestOptions { blksize: Some(9000), tsize: true, timeout_secs: Some(3), windowsize: Some(200) };
    let (t, step) = Transfer::start(&opts, 123_456, now, &Limits::default());
    let Outgoing::Packet(p) = &step.send[0] else { panic!() };
    assert_eq!(p, &swarmboot_tftp::packet::encode_oack(&[("blksize", "1468".into()), ("tsize", "123456".into()), ("timeout", "3".into()), ("windowsize", "64".into())]));
    assert_eq!((t.blksize(), t.window()), (1468, 64));
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(3)));
}

/// A request for `timeout 255` (a spoofed RRQ that would hold a socket for retries × 255 s) is
/// not granted the option: the OACK leaves it out, the default timeout applies, and the
/// transfer gives up within retries × that.
#[test]
fn a_timeout_above_the_maximum_is_not_granted() {
    let now = Instant::now();
    let limits = Limits::default();
    let opts = RequestOptions { blksize: Some(1468), tsize: false, timeout_secs: Some(255), windowsize: None };
    let (mut t, step) = Transfer::start(&opts, 10_000, now, &limits);
    let Outgoing::Packet(p) = &step.send[0] else { panic!() };
    assert_eq!(p, &swarmboot_tftp::packet::encode_oack(&[("blksize", "1468".into())]));
    assert_eq!(t.poll_timeout(), Some(now + limits.default_timeout));
    let mut at = now;
    while let Some(deadline) = t.poll_timeout() {
        at = deadline;
        if t.on_timeout(at).end.is_some() {
            break;
        }
    }
    assert!(at - now <= limits.default_timeout * (limits.max_retries + 1), "gave up after {:?}", at - now);
    let (t, _) = Transfer::start(&RequestOptions { timeout_secs: Some(5), ..opts }, 10_000, now, &limits);
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(5)), "up to the maximum it is granted");
}

#[test]
fn big_blocks_and_windows_with_rollover() {
    // 70 000 blocks of 8 bytes: the block number rolls over past 65535.
    let opts = RequestOptions { blksize: Some(8), windowsize: Some(16), ..Default::default() };
    let (got, sent, end) = run(560_000, opts, |_| false);
    assert_eq!((got.len(), end), (560_000, TransferEnd::Complete));
    assert_eq!(got, expected(560_000));
    assert_eq!(sent, 70_001 + 1, "every block once, plus the OACK");
}

#[test]
fn lost_packets_are_resent_and_the_file_still_arrives_intact() {
    for window in [1u16, 8] {
        let opts = RequestOptions { blksize: Some(1468), windowsize: Some(window), tsize: true, ..Default::default() };
        let (got, _, end) = run(200_000, opts, |n| n % 7 == 3);
        assert_eq!(end, TransferEnd::Complete, "window {window}");
        assert_eq!(got, expected(200_000), "window {window}");
    }
}

#[test]
fn a_client_error_ends_the_transfer_at_once() {
    // UEFI firmware probes tsize, then sends ERROR 8 instead of ACK 0.
    let now = Instant::now();
    let opts = RequestOptions { tsize: true, ..Default::default() };
    let (mut t, _) = Transfer::start(&opts, 1000, now, &Limits::default());
    let step = t.on_packet(now, &encode_error(ErrorCode::OptionsRefused, "tsize only"));
    assert_eq!(step, Step { send: vec![], end: Some(TransferEnd::ClientError(8)) });
    assert_eq!(t.poll_timeout(), None, "no more retransmissions");
    assert_eq!(t.on_timeout(now + Duration::from_secs(60)), Step::default());
}

#[test]
fn retries_are_bounded() {
    let mut now = Instant::now();
    let (mut t, _) = Transfer::start(&RequestOptions::default(), 5000, now, &Limits::default());
    let mut resends = 0;
    loop {
        now = t.poll_timeout().unwrap();
        let s = t.on_timeout(now);
        if s.end == Some(TransferEnd::TimedOut) {
            break;
        }
        assert_eq!(data_blocks(&s), vec![(1, 0, 512)]);
        resends += 1;
    }
    assert_eq!(resends, Limits::default().max_retries);
}

#[test]
fn duplicate_and_stray_acks_never_cause_resends() {
    let now = Instant::now();
    let (mut t, first) = Transfer::start(&RequestOptions::default(), 5000, now, &Limits::default());
    assert_eq!(data_blocks(&first), vec![(1, 0, 512)]);
    assert_eq!(data_blocks(&t.on_packet(now, &ack(1))), vec![(2, 512, 512)]);
    assert_eq!(t.on_packet(now, &ack(1)), Step::default(), "duplicate ACK: Sorcerer's Apprentice");
    assert_eq!(t.on_packet(now, &ack(9)), Step::default(), "ACK of a block never sent");
    assert_eq!(t.on_packet(now, &[0, 4, 0]), Step::default(), "malformed");
    assert_eq!(t.on_packet(now, &[0, 3, 0, 1, 1]), Step::default(), "DATA from the client");
    // An early timeout call does nothing.
    assert_eq!(t.on_timeout(now), Step::default());
}

#[test]
fn an_ack_mid_window_resumes_after_it() {
    let now = Instant::now();
    let opts = RequestOptions { windowsize: Some(4), ..Default::default() };
    let (mut t, _) = Transfer::start(&opts, 10_000, now, &Limits::default());
    assert_eq!(data_blocks(&t.on_packet(now, &ack(0))).iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    // Block 3 was lost: the client acknowledges 2.
    assert_eq!(data_blocks(&t.on_packet(now, &ack(2))).iter().map(|b| b.0).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
}
