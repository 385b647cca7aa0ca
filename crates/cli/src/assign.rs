//! Which image a machine boots: `swarmboot assign MAC|GROUP|default IMAGE` and the picker's
//! writes. [`edit`] is a plain function over the config text (comments kept); the shell checks
//! the image exists, validates, writes atomically and asks the running server to reload
//! (SIGHUP to the pid in its state directory).

use std::path::Path;

use anyhow::{bail, Context};
use swarmboot_config::Config;

/// Whose image is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `[boot] default_image`: machines no rule matches.
    Default,
    /// One machine, by MAC address (lower case, colons).
    Mac(String),
    /// A `[[boot.client]]` rule, by its `name` or its `mac` glob.
    Group(String),
}

impl Target {
    pub fn parse(s: &str) -> Target {
        if s == "default" {
            return Target::Default;
        }
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) {
            return Target::Mac(parts.join(":").to_ascii_lowercase());
        }
        Target::Group(s.to_string())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Default => write!(f, "the default"),
            Target::Mac(m) => write!(f, "{m}"),
            Target::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// `text` with `target` booting `image`, and a sentence saying what changed. A MAC without a
/// rule of its own gets one, first (first match wins, so it beats any group glob).
pub fn edit(text: &str, target: &Target, image: &str) -> anyhow::Result<(String, String)> {
    use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};
    let mut doc: DocumentMut = text.parse().context("the config is not valid TOML")?;
    if !doc.contains_key("boot") {
        doc.insert("boot", Item::Table(Table::new()));
    }
    let boot = doc["boot"].as_table_mut().context("[boot] is not a table")?;
    let said = match target {
        Target::Default => {
            let before = boot.get("default_image").and_then(|v| v.as_str()).map(str::to_string);
            boot["default_image"] = value(image);
            format!("default image: {} → {image}", before.as_deref().unwrap_or("(none)"))
        }
        Target::Mac(mac) | Target::Group(mac) => {
            if !boot.contains_key("client") {
                boot.insert("client", Item::ArrayOfTables(ArrayOfTables::new()));
            }
            let rules = boot["client"].as_array_of_tables_mut().context("boot.client is not an array of tables ([[boot.client]])")?;
            let is_mac = matches!(target, Target::Mac(_));
            let found = rules.iter_mut().position(|t| {
                let mac_of = t.get("mac").and_then(|v| v.as_str()).unwrap_or("").to_ascii_lowercase();
                let name_of = t.get("name").and_then(|v| v.as_str()).unwrap_or("");
                if is_mac {
                    mac_of == *mac
                } else {
                    name_of == mac || mac_of == mac.to_ascii_lowercase()
                }
            });
            match (found, target) {
                (Some(i), _) => {
                    let t = rules.get_mut(i).expect("found");
                    let before = t.get("image").and_then(|v| v.as_str()).unwrap_or("(none)").to_string();
                    t["image"] = value(image);
                    format!("{target}: {before} → {image}")
                }
                (None, Target::Mac(mac)) => {
                    let mut rule = Table::new();
                    rule["mac"] = value(mac.as_str());
                    rule["image"] = value(image);
                    let old: Vec<Table> = rules.iter().cloned().collect();
                    rules.clear();
                    rules.push(rule);
                    for t in old {
                        rules.push(t);
                    }
                    format!("{mac}: new rule (first) → {image}")
                }
                (None, _) => {
                    let groups: Vec<String> =
                        rules.iter().map(|t| t.get("name").and_then(|v| v.as_str()).or_else(|| t.get("mac").and_then(|v| v.as_str())).unwrap_or("?").to_string()).collect();
                    bail!(
                        "no group {mac}: groups are [[boot.client]] rules, named by `name` or their `mac` glob; this config has {}",
                        if groups.is_empty() { "none".into() } else { groups.join(", ") }
                    )
                }
            }
        }
    };
    Ok((doc.to_string(), said))
}

/// What happened to the running server after a change.
pub fn reload_server(state_dir: &Path) -> String {
    let pid_file = state_dir.join(swarmboot_server::PID_FILE);
    let pid = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok());
    let Some(pid) = pid else {
        return "no server is running (no pid file): the change applies when it starts".into();
    };
    let gone = || format!("no server is running (pid {pid} in {} is gone): the change applies when it starts", pid_file.display());
    // The process is pinned first (a pidfd names that process, never a later one with the
    // same pid), then checked to be the server, then signalled through the pidfd: a pid
    // reused between the check and the signal gets nothing.
    let Some(process) = rustix::process::Pid::from_raw(pid).and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()) else {
        return gone();
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if !words.first().is_some_and(|w| w.ends_with(b"swarmboot")) || !words.iter().any(|w| *w == b"serve") {
        return gone();
    }
    match rustix::process::pidfd_send_signal(&process, rustix::process::Signal::HUP) {
        Ok(()) => format!("the server (pid {pid}) reloads its config"),
        Err(e) => format!("could not tell the server (pid {pid}) to reload ({e}): run `systemctl reload swarmboot`"),
    }
}

/// Checks, writes and reloads: what `assign` and the picker do.
pub fn apply(config_path: &Path, target: &Target, image: &str) -> anyhow::Result<String> {
    let cfg = Config::load(config_path)?;
    let catalog = swarmboot_image::Catalog::new(&cfg.server.state_dir);
    let names = catalog.names().context("reading the image catalog")?;
    if !names.iter().any(|n| n == image) {
        bail!("there is no image {image}; images: {}", if names.is_empty() { "none (add one with `swarmboot image add`)".into() } else { names.join(", ") });
    }
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let (edited, said) = edit(&text, target, image)?;
    Config::parse(&edited, config_path).context("the edited config does not validate (nothing written)")?;
    crate::config_file::write_atomically(config_path, &edited)?;
    Ok(format!("{said}; {}", reload_server(&cfg.server.state_dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# my lab
[boot]
default_image = "elchos"   # what most machines boot

[[boot.client]]
name = "lab-a"
mac = "52:54:00:*"
image = "elchos"

[[boot.client]]
mac = "02:00:00:*"
image = "kiosk"
"#;

    fn rules(text: &str) -> Vec<(Option<String>, String, String)> {
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        cfg.boot.client.iter().map(|c| (c.name.clone(), c.mac.clone(), c.image.clone())).collect()
    }

    #[test]
    fn targets_are_told_apart() {
        assert_eq!(Target::parse("default"), Target::Default);
        assert_eq!(Target::parse("52:54:00:AB:cd:01"), Target::Mac("52:54:00:ab:cd:01".into()));
        assert_eq!(Target::parse("52-54-00-ab-cd-01"), Target::Mac("52:54:00:ab:cd:01".into()));
        assert_eq!(Target::parse("lab-a"), Target::Group("lab-a".into()));
        assert_eq!(Target::parse("52:54:00:*"), Target::Group("52:54:00:*".into()));
    }

    #[test]
    fn the_default_and_groups_change_in_place_with_comments_kept() {
        let (text, said) = edit(CONFIG, &Target::Default, "kiosk").unwrap();
        assert!(text.contains("default_image = \"kiosk\"") && text.contains("# my lab"), "{text}");
        assert_eq!(said, "default image: elchos → kiosk");
        let (text, said) = edit(CONFIG, &Target::Group("lab-a".into()), "kiosk").unwrap();
        assert_eq!(rules(&text)[0], (Some("lab-a".into()), "52:54:00:*".into(), "kiosk".into()));
        assert_eq!(said, "group lab-a: elchos → kiosk");
        let (text, _) = edit(CONFIG, &Target::Group("02:00:00:*".into()), "elchos").unwrap();
        assert_eq!(rules(&text)[1].2, "elchos", "a group by its glob");
        let e = edit(CONFIG, &Target::Group("lab-b".into()), "x").unwrap_err().to_string();
        assert!(e.contains("no group lab-b") && e.contains("lab-a, 02:00:00:*"), "{e}");
    }

    #[test]
    fn a_new_mac_gets_the_first_rule_and_a_known_one_is_changed() {
        let (text, said) = edit(CONFIG, &Target::Mac("52:54:00:00:00:07".into()), "kiosk").unwrap();
        assert_eq!(said, "52:54:00:00:00:07: new rule (first) → kiosk");
        let r = rules(&text);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], (None, "52:54:00:00:00:07".into(), "kiosk".into()), "first, so the lab-a glob does not win:\n{text}");
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.image_rules().unwrap().image_for("52:54:00:00:00:07"), Some("kiosk"));
        assert_eq!(cfg.image_rules().unwrap().image_for("52:54:00:00:00:08"), Some("elchos"));
        let (again, said) = edit(&text, &Target::Mac("52:54:00:00:00:07".into()), "elchos").unwrap();
        assert_eq!(rules(&again).len(), 3, "no second rule for the same MAC");
        assert_eq!(said, "52:54:00:00:00:07: kiosk → elchos");
        let (fresh, _) = edit("", &Target::Mac("52:54:00:00:00:09".into()), "elchos").unwrap();
        assert_eq!(rules(&fresh), vec![(None, "52:54:00:00:00:09".into(), "elchos".into())]);
    }

    /// A pid file naming a process that is not the server (here: this test, which would die of
    /// SIGHUP) or no process at all signals nothing.
    #[test]
    fn a_pid_file_naming_another_process_or_none_signals_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join(swarmboot_server::PID_FILE);
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        assert!(reload_server(dir.path()).starts_with("no server is running"), "this process is not swarmboot serve");
        std::fs::write(&pid_file, "999999999\n").unwrap();
        assert!(reload_server(dir.path()).starts_with("no server is running"));
        std::fs::remove_file(&pid_file).unwrap();
        assert!(reload_server(dir.path()).contains("no pid file"));
    }
}
