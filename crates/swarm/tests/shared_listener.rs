//! One `PeerListener` serving two torrents on one port (the server seeding its whole store):
//! leechers of either torrent are routed to the right engine; a handshake for a torrent not
//! served there is closed. Loopback only.

use std::net::SocketAddr;
use std::time::Duration;

use swarmboot_peerwire::Bitfield;
use swarmboot_swarm::engine::{Engine, EngineConfig, EngineError, PeerListener};
use swarmboot_swarm::storage::FileStorage;
use swarmboot_swarm::SwarmConfig;
use swarmboot_torrent::Metainfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn data(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_add(salt).wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn config(meta: &Metainfo, id: u8, peers: Vec<SocketAddr>) -> EngineConfig {
    EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        bind_device: None,
        tracker: None,
        peers,
        max_announce_interval: Duration::from_secs(5),
        swarm: SwarmConfig::new(meta, [id; 20]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_two_torrents() {
    let dir = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (data(3_000_000, 1), data(1_234_567, 2));
    let (a, _) = Metainfo::single_file("a", &a_data, 256 * 1024, None, true);
    let (b, _) = Metainfo::single_file("b", &b_data, 64 * 1024, None, true);
    let seed_dir = dir.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::write(seed_dir.join("a"), &a_data).unwrap();
    std::fs::write(seed_dir.join("b"), &b_data).unwrap();

    let listener = PeerListener::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let port = listener.local_addr();
    let mut seeds = Vec::new();
    for meta in [&a, &b] {
        let mut store = FileStorage::open_existing(meta, &seed_dir).unwrap();
        let have = store.verify(meta).unwrap();
        assert!(have.is_complete());
        let mut cfg = config(meta, 1, vec![]);
        cfg.swarm.super_seed = true;
        seeds.push(Engine::start_on(&listener, meta, store, have, cfg).await.unwrap());
    }
    assert_eq!(listener.torrents(), 2);
    assert!(seeds.iter().all(|e| e.local_addr() == port), "both on the listener's port");
    let store = FileStorage::open_existing(&a, &seed_dir).unwrap();
    let again = Engine::start_on(&listener, &a, store, Bitfield::new(a.pieces.len() as u32), config(&a, 1, vec![])).await;
    assert!(matches!(again, Err(EngineError::AlreadyServed(_))), "one engine per torrent per port");

    // A handshake for a torrent this port does not serve: closed without a reply.
    let mut stray = tokio::net::TcpStream::connect(port).await.unwrap();
    let mut hs = b"\x13BitTorrent protocol".to_vec();
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(&[0xee; 20]);
    hs.extend_from_slice(&[9; 20]);
    stray.write_all(&hs).await.unwrap();
    let mut buf = [0u8; 68];
    let n = tokio::time::timeout(Duration::from_secs(5), stray.read(&mut buf)).await.expect("closed, not left hanging").unwrap_or(0);
    assert_eq!(n, 0, "no handshake back for an unknown torrent");

    // A leecher of each torrent, both dialing the one port.
    let mut leechers = Vec::new();
    for (meta, id) in [(&a, 2u8), (&b, 3u8)] {
        let out = dir.path().join(format!("leech{id}"));
        let store = FileStorage::create(meta, &out).unwrap();
        let e = Engine::start(meta, store, Bitfield::new(meta.pieces.len() as u32), config(meta, id, vec![port])).await.unwrap();
        leechers.push((e, out.join(&meta.name)));
    }
    for (e, _) in &leechers {
        tokio::time::timeout(Duration::from_secs(60), e.wait_complete()).await.expect("download completes");
    }
    assert_eq!(std::fs::read(&leechers[0].1).unwrap(), a_data);
    assert_eq!(std::fs::read(&leechers[1].1).unwrap(), b_data);
    let uploaded: Vec<u64> = seeds.iter().map(|s| s.progress().totals.uploaded).collect();
    assert_eq!(uploaded, vec![a_data.len() as u64, b_data.len() as u64], "each seed sent its own torrent, once");
    for (e, _) in &leechers {
        e.shutdown().await;
    }
    seeds[0].shutdown().await;
    assert_eq!(listener.torrents(), 1, "a stopped engine leaves the port");
    seeds[1].shutdown().await;
}
