//! The image picker and `swarmboot assign` against a running server: a machine got an address,
//! the admin assigns it another image, and the boot script the server renders for that MAC
//! names the new image (the server reloaded; no restart). Assignments go to the state
//! directory's `assignments.toml`; the admin's config is left as it was.

use std::path::Path;
use std::time::Duration;

use swarmboot_lab::clients::Udhcpc;
use swarmboot_lab::initramfs::{debian_kernel, write_test_initramfs};
use swarmboot_lab::{require_root, Lan, ScratchDir, Server};

use swarmboot_lab::tmux::Tmux;

const MAC: &str = "52:54:00:0f:00:01";

/// A server with images `elchos` (the default) and `kiosk`, and one machine with a lease.
fn pick_lab(tag: &str) -> (ScratchDir, Lan, Server, Udhcpc) {
    let dir = ScratchDir::new(tag).unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "# the admin's notes\n[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\n\
         [boot]\ndefault_image = \"elchos\"\nmode = \"direct\"\n[[boot.client]]\nname = \"lab-a\"\nmac = \"02:00:00:*\"\nimage = \"elchos\"\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    let kernel = debian_kernel().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    write_test_initramfs(&initrd, Path::new("/bin/busybox")).unwrap();
    for name in ["elchos", "kiosk"] {
        server.cli(&["image", "add", name, "--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap(), "--cmdline", &format!("marker={name}")]).unwrap();
    }
    let h = lan.add_host(Some(MAC)).unwrap();
    let client = Udhcpc::start(lan.host(h), dir.path(), "m", &[]).unwrap();
    client.wait("bound", 0, Duration::from_secs(20)).unwrap();
    (dir, lan, server, client)
}

fn boot_script(lan: &Lan, mac: &str) -> String {
    let out = lan.server.command("curl").args(["-sS", "--max-time", "10", &format!("http://10.77.0.1:8080/boot.ipxe?mac={mac}&arch=x86_64")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The boot script for `mac` once it contains `needle` (the server reloads on SIGHUP, a
/// moment after `assign` returns), or the last one after 5 s.
fn boot_script_once_it_says(lan: &Lan, mac: &str, needle: &str) -> String {
    let mut script = String::new();
    for _ in 0..50 {
        script = boot_script(lan, mac);
        if script.contains(needle) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    script
}

/// In tmux (80×24): the picker lists both images and the machine with its lease; ↓ picks
/// kiosk, Tab and ↓ the machine, Enter and y assign it; the server reloads; the machine's
/// boot script names kiosk; other machines still get elchos.
#[test]
fn the_picker_assigns_an_image_to_a_machine() {
    if !require_root("the_picker_assigns_an_image_to_a_machine") {
        return;
    }
    let (dir, lan, server, _client) = pick_lab("pick");
    let config_before = std::fs::read_to_string(&server.config).unwrap();
    assert!(boot_script(&lan, MAC).contains("boots elchos version 1"));
    let bin = swarmboot_lab::bin("swarmboot");
    let socket = format!("sb-pick-{}", std::process::id());
    // In the server's namespace, as on the server itself: the picker asks its tracker how many
    // machines are in each image's swarm.
    let t =
        Tmux::start(&socket, &format!("TERM=xterm ip netns exec {} {} pick --config {}; echo PICK-EXIT $?; sleep 60", lan.server.name(), bin.display(), server.config.display()));
    let screen = t.wait_for("Machines");
    assert!(screen.lines().any(|l| l.contains(">elchos") && l.contains(" MiB    0 ")), "the tracker answered: 0 machines in the swarm (the server's seed not counted):\n{screen}");
    for needle in ["elchos", "kiosk", MAC, "10.77.0.1", "lab-a", "default"] {
        assert!(screen.contains(needle), "{needle} not on the screen:\n{screen}");
    }
    eprintln!("the picker, as the admin sees it:\n{screen}");
    // Images: elchos, kiosk. Machines: default, lab-a, the MAC.
    t.keys(&["Down", "Tab", "Down", "Down", "Enter"]);
    let screen = t.wait_for("Confirm");
    assert!(screen.contains(&format!("Assign kiosk to {MAC}?")), "{screen}");
    t.keys(&["y"]);
    let screen = t.wait_for("Done:");
    let words = screen.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("{MAC}: elchos → kiosk")) && words.contains("reloads its config"), "{screen}");
    eprintln!("{screen}");
    t.keys(&["q"]);
    t.wait_for("PICK-EXIT 0");

    let script = boot_script_once_it_says(&lan, MAC, "boots kiosk");
    assert!(script.contains("boots kiosk version 1"), "{script}");
    assert!(boot_script(&lan, "52:54:00:0f:00:02").contains("boots elchos"), "others keep the default");
    assert!(server.log().contains("config reloaded"), "reloaded, not restarted");
    assert_eq!(std::fs::read_to_string(&server.config).unwrap(), config_before, "the admin's config is not touched");
    let assigned = std::fs::read_to_string(dir.path().join("state/assignments.toml")).unwrap();
    assert!(assigned.contains(&format!("\"{MAC}\" = \"kiosk\"")), "{assigned}");
    drop(dir);
}

/// `swarmboot assign` without a terminal: a group, the default and an unknown image; `pick`
/// without a terminal points at it.
#[test]
fn assign_sets_groups_and_the_default_and_pick_needs_a_terminal() {
    if !require_root("assign_sets_groups_and_the_default_and_pick_needs_a_terminal") {
        return;
    }
    let (_dir, lan, server, _client) = pick_lab("assign");
    let said = server.cli(&["assign", "default", "kiosk"]).unwrap();
    assert!(said.contains("default image: elchos → kiosk") && said.contains("reloads its config"), "{said}");
    let said = server.cli(&["assign", "lab-a", "kiosk"]).unwrap();
    assert!(said.contains("group lab-a: elchos → kiosk"), "{said}");
    let script = boot_script_once_it_says(&lan, MAC, "boots kiosk");
    assert!(script.contains("boots kiosk"), "the default changed: {script}");
    assert!(boot_script(&lan, "02:00:00:00:00:01").contains("boots kiosk"), "the group changed");
    // Handed back to the config: the default is elchos again, the group still kiosk.
    let said = server.cli(&["assign", "--unset", "default"]).unwrap();
    assert!(said.contains("the default: kiosk → elchos (as the config says)"), "{said}");
    let script = boot_script_once_it_says(&lan, MAC, "boots elchos");
    assert!(script.contains("boots elchos"), "the default is the config's again: {script}");
    assert!(boot_script(&lan, "02:00:00:00:00:01").contains("boots kiosk"), "the group keeps its assignment");
    let e = server.cli(&["assign", MAC, "nosuch"]).unwrap_err().to_string();
    assert!(e.contains("there is no image nosuch; images: elchos, kiosk"), "{e}");
    let out = std::process::Command::new(swarmboot_lab::bin("swarmboot")).args(["pick", "--config"]).arg(&server.config).stdin(std::process::Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("swarmboot assign MAC|GROUP|default IMAGE"), "{err}");
}
