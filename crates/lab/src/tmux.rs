//! A terminal for programs that ask (`swarmboot setup`, `swarmboot pick`): a tmux session
//! with its own server socket, 80x24, driven by send-keys and read by capture-pane; the tmux
//! server is killed on drop.

use std::process::Command;
use std::time::Duration;

/// A tmux session (its own server socket, 80×24), killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` (a shell command line) in a new session on socket `socket`.
    pub fn start(socket: &str, command: &str) -> Tmux {
        let ok = Command::new("tmux").args(["-L", socket, "new-session", "-d", "-x", "80", "-y", "24", command]).status().unwrap();
        assert!(ok.success(), "tmux new-session");
        Tmux { socket: socket.into() }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once it shows `needle` (panics after 20 s, showing the screen).
    pub fn wait_for(&self, needle: &str) -> String {
        for _ in 0..200 {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no {needle:?} on the screen:\n{}", self.screen());
    }

    /// tmux send-keys: key names (`Down`, `Enter`) or text.
    pub fn keys(&self, keys: &[&str]) {
        assert!(Command::new("tmux").args(["-L", &self.socket, "send-keys"]).args(keys).status().unwrap().success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}
