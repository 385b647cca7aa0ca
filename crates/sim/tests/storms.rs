//! Small storms through the simulator: they end, every machine gets the image, nobody beats
//! the physical bound, rooms behind uplinks count what crosses them, dead machines do not
//! hold the others, and the same seed gives the same storm.

use std::time::Duration;

use swarmboot_sim::{run, StormSpec};

fn small(machines: usize) -> StormSpec {
    StormSpec { image_bytes: 4 << 20, ..StormSpec::lab(machines) }
}

#[test]
fn every_machine_finishes_and_none_beats_the_bound() {
    let spec = small(6);
    let r = run(&spec, |_, _| {}).unwrap();
    assert_eq!(r.died, 0);
    assert!(r.times.iter().all(Option::is_some), "{:?}", r.times);
    let bound = spec.bound();
    let first = r.quantile(0.0);
    assert!(first >= bound, "a machine finished in {first:.3} s, under the bound {bound:.3} s");
    assert!(r.quantile(1.0) < 3.0 * bound + spec.start_spread.as_secs_f64(), "{:?} (bound {bound:.3})", r.times);
    assert!(r.server_bytes >= spec.image_bytes as u64, "the server sent at least one image: {}", r.server_bytes);
    eprintln!("6 machines, 4 MiB: times {:?}, server {:.2} images", r.times, r.server_bytes as f64 / spec.image_bytes as f64);
}

#[test]
fn the_same_seed_gives_the_same_storm() {
    let spec = small(4);
    let (a, b) = (run(&spec, |_, _| {}).unwrap(), run(&spec, |_, _| {}).unwrap());
    assert_eq!((a.times, a.server_bytes), (b.times, b.server_bytes));
}

/// Two rooms of 40 behind their uplinks: what crosses them is counted, and it adds up (bytes
/// into the rooms are the server's, outside both, and what left the other room); each room
/// takes in at least its first copy and at most what its machines downloaded.
#[test]
fn rooms_behind_uplinks_count_what_crosses_them() {
    let spec = StormSpec { image_bytes: 2 << 20, ..StormSpec::campus(80) };
    let r = run(&spec, |_, _| {}).unwrap();
    assert_eq!(r.room_uplink.len(), 2);
    let into: u64 = r.room_uplink.iter().map(|&(i, _)| i).sum();
    let out_of: u64 = r.room_uplink.iter().map(|&(_, o)| o).sum();
    // Into the rooms: all the server sent, and what left the other room; out of the rooms
    // also goes what machines send the server (requests, their haves): a few bytes.
    assert!(into >= r.server_bytes && into - r.server_bytes <= out_of, "in {into}, out {out_of}, server {}", r.server_bytes);
    assert!(out_of - (into - r.server_bytes) < into / 100, "machines sent the server more than messages: in {into}, out {out_of}");
    for (i, &(into, _)) in r.room_uplink.iter().enumerate() {
        let images = into as f64 / spec.image_bytes as f64;
        assert!((1.0..=40.0 * 1.1).contains(&images), "room {i} took in {images:.2} images");
        eprintln!("room {i} took in {images:.2} images");
    }
    assert!(r.times.iter().all(Option::is_some));
}

/// A tenth of the machines power off mid-download: the rest still finish.
#[test]
fn dead_machines_do_not_hold_the_others() {
    let spec = StormSpec { die_fraction: 0.1, start_spread: Duration::from_millis(50), ..small(10) };
    let r = run(&spec, |_, _| {}).unwrap();
    assert_eq!(r.died, 1);
    assert_eq!(r.times.iter().filter(|t| t.is_none()).count(), 1);
}
