//! Torrent files made by a real client (transmission-create) parse here with the info hash
//! transmission-show reports, and every piece verifies against the file.

use std::process::Command;

use swarmboot_lab::ScratchDir;
use swarmboot_torrent::Metainfo;

#[test]
fn transmission_made_torrents_parse_with_the_same_info_hash() {
    let dir = ScratchDir::new("torrent").unwrap();
    let data: Vec<u8> = (0..1_000_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let file = dir.path().join("image.bin");
    std::fs::write(&file, &data).unwrap();
    let torrent = dir.path().join("image.torrent");
    let out = Command::new("transmission-create")
        .args(["-p", "-s", "32", "-t", "http://10.77.0.1:8080/announce", "-o"])
        .arg(&torrent)
        .arg(&file)
        .output()
        .expect("transmission-create (Debian package transmission-cli)");
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8(Command::new("transmission-show").arg(&torrent).output().unwrap().stdout).unwrap();
    let their_hash = shown.lines().find_map(|l| l.trim().strip_prefix("Hash: ")).expect("a Hash line").to_string();

    let m = Metainfo::parse(&std::fs::read(&torrent).unwrap()).unwrap();
    let ours = hex::encode(m.info_hash);
    assert_eq!(ours, their_hash);
    assert!(m.private, "-p makes a private torrent (BEP 27)");
    assert_eq!((m.name.as_str(), m.total_length(), m.piece_length), ("image.bin", 1_000_003, 32 * 1024));
    for i in 0..m.pieces.len() as u32 {
        let start = i as usize * m.piece_length as usize;
        assert!(m.verify(i, &data[start..start + m.piece_len(i) as usize]), "piece {i}");
    }
    // And a torrent we make reads back the same in transmission-show.
    let (ours_m, bytes) = Metainfo::single_file("image.bin", &data, 32 * 1024, Some("http://10.77.0.1:8080/announce"), true);
    std::fs::write(dir.path().join("ours.torrent"), bytes).unwrap();
    let shown = String::from_utf8(Command::new("transmission-show").arg(dir.path().join("ours.torrent")).output().unwrap().stdout).unwrap();
    assert!(shown.contains(&format!("Hash: {their_hash}")), "{shown}");
    assert_eq!(ours_m.info_hash, m.info_hash, "same content, same piece size, same flags: same info hash");
}

/// `image add` makes a private torrent beside every stored file; `image list --json` shows its
/// info hash, and transmission-show reads the torrent with that same hash, name and size.
#[test]
fn stored_image_files_get_torrents_real_clients_read() {
    let dir = ScratchDir::new("image-torrents").unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("swarmboot.toml");
    std::fs::write(&cfg, format!("[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nstate_dir = \"{}\"\n", state.display())).unwrap();
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initrd");
    std::fs::write(&kernel, vec![7u8; 600_000]).unwrap();
    std::fs::write(&initrd, b"tiny initrd").unwrap();
    let sb = swarmboot_lab::bin("swarmboot");
    let run = |args: &[&str]| {
        let out = Command::new(&sb).args(args).arg("--config").arg(&cfg).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["image", "add", "demo", "--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap()]);
    let list: serde_json::Value = serde_json::from_str(&run(&["image", "list", "--json"])).unwrap();
    let files = list[0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let sha = f["sha256"].as_str().unwrap();
        let info_hash = f["info_hash"].as_str().expect("an info hash per file");
        let torrent = state.join("store").join(&sha[..2]).join(&sha[..4]).join(format!("{sha}.torrent"));
        let shown = String::from_utf8(Command::new("transmission-show").arg(&torrent).output().unwrap().stdout).unwrap();
        assert!(shown.contains(&format!("Hash: {info_hash}")), "{shown}");
        assert!(shown.contains(&format!("Name: {sha}")), "{shown}");
        assert!(shown.contains("Privacy: Private torrent"), "{shown}");
    }
}
