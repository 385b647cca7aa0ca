//! Which image a machine boots, as the tools set it: `swarmboot assign`, the picker, `node
//! command … boot IMAGE` and the dashboard's images page all make the same change, written to
//! `<state_dir>/assignments.toml` and layered over `[boot]` of the config.
//!
//! Why a file in the state directory and not the config: the dashboard's change is made by
//! the running server, which runs as the service user and may write only its state directory.
//! A config the service could write would let a compromised service point root's CLI (which
//! reads the config) at files elsewhere; and the config stays the admin's (or their config
//! management's), with comments, untouched by tools.
//!
//! Layering (what [`Config::image_rules`] builds): a MAC assigned here beats every rule; a
//! group assigned here replaces that `[[boot.client]]` rule's image (the rule, its glob and its
//! mode stay the config's); the default assigned here replaces `[boot] default_image`.
//! [`Assignments::unset`] hands a target back to the config.
//!
//! Main type: [`Assignments`]; [`Target`] names whose image is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Config, ConfigError, Problem};

/// The file, in the state directory.
pub const ASSIGNMENTS_FILE: &str = "assignments.toml";
/// Bounds on the file: it is the service's, so a compromised service could fill it, and root's
/// CLI reads it.
pub const MAX_ASSIGNMENTS_BYTES: u64 = 4 << 20;
pub const MAX_ASSIGNMENTS: usize = 50_000;

/// Whose image is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The image machines no rule matches boot (`[boot] default_image`).
    Default,
    /// One machine, by MAC address (lower case, colons).
    Mac(String),
    /// A `[[boot.client]]` rule, by its `name` or its `mac` glob.
    Group(String),
}

impl Target {
    /// `default`, a MAC (`52:54:00:AB:cd:01` or with dashes), else a group.
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

    /// As `swarmboot assign` takes it on its command line.
    pub fn word(&self) -> &str {
        match self {
            Target::Default => "default",
            Target::Mac(m) | Target::Group(m) => m,
        }
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

/// An assignment that cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignError {
    #[error("no group {name}: groups are [[boot.client]] rules, named by `name` or their `mac` glob; this config has {known}")]
    NoGroup { name: String, known: String },
    #[error("`{0}` is not an image name (letters, digits, `.`, `_`, `-`; at most 64)")]
    BadImageName(String),
    #[error("{MAX_ASSIGNMENTS} assignments already: unset some (`swarmboot assign --unset MAC`) or use a group")]
    Full,
}

/// The tools' assignments (the file's contents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignments {
    /// Replaces `[boot] default_image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_image: Option<String>,
    /// A group's label (its rule's `name`, else its `mac` glob) → image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group: BTreeMap<String, String>,
    /// MAC (lower case, colons) → image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mac: BTreeMap<String, String>,
}

/// One line of what a config and its assignments boot, for the picker and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub target: Target,
    /// What it boots (`None`: nothing, no default image).
    pub image: Option<String>,
    /// Set by a tool (in the assignments file), not by the config.
    pub by_tool: bool,
    /// For a group: its MAC glob.
    pub glob: Option<String>,
}

fn is_image_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !s.starts_with('.')
}

impl Assignments {
    /// `<state_dir>/assignments.toml`, empty when there is none.
    pub fn load(state_dir: &Path) -> Result<Assignments, ConfigError> {
        use std::io::Read;
        let path = state_dir.join(ASSIGNMENTS_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Assignments::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut text = String::new();
        file.take(MAX_ASSIGNMENTS_BYTES + 1).read_to_string(&mut text).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        if text.len() as u64 > MAX_ASSIGNMENTS_BYTES {
            return Err(ConfigError::Syntax { path, message: format!("longer than {MAX_ASSIGNMENTS_BYTES} bytes") });
        }
        Assignments::parse(&text, &path)
    }

    /// Parses the file's text and checks every name (MACs, images).
    pub fn parse(text: &str, path: &Path) -> Result<Assignments, ConfigError> {
        let a: Assignments = toml::from_str(text).map_err(|e| ConfigError::Syntax { path: path.into(), message: e.to_string() })?;
        let mut problems = Vec::new();
        if a.mac.len() + a.group.len() > MAX_ASSIGNMENTS {
            problems.push(Problem { key: "mac".into(), message: format!("more than {MAX_ASSIGNMENTS} assignments") });
        }
        for image in a.default_image.iter() {
            if !is_image_name(image) {
                problems.push(Problem { key: "default_image".into(), message: AssignError::BadImageName(image.clone()).to_string() });
            }
        }
        for (mac, image) in &a.mac {
            if Target::parse(mac) != Target::Mac(mac.clone()) {
                problems.push(Problem { key: format!("mac.\"{mac}\""), message: "not a MAC address in lower case with colons (52:54:00:12:34:56)".into() });
            }
            if !is_image_name(image) {
                problems.push(Problem { key: format!("mac.\"{mac}\""), message: AssignError::BadImageName(image.clone()).to_string() });
            }
        }
        for (group, image) in &a.group {
            if !is_image_name(image) {
                problems.push(Problem { key: format!("group.\"{group}\""), message: AssignError::BadImageName(image.clone()).to_string() });
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: path.into(), problems });
        }
        Ok(a)
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("strings and maps of strings serialize");
        format!(
            "# Which image machines boot, as `swarmboot assign`, `swarmboot pick` and the dashboard set it;\n\
             # layered over [boot] of the config (see swarmboot.toml(5)). Written by swarmboot: change it\n\
             # with `swarmboot assign` (`--unset` hands a target back to the config).\n{body}"
        )
    }

    /// Writes the file in the state directory whole (crash-safe, as the directory's owner).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<PathBuf> {
        let path = state_dir.join(ASSIGNMENTS_FILE);
        swarmboot_durable::replace(&path, self.to_text().as_bytes(), 0o640)?;
        Ok(path)
    }

    /// `target` boots `image` from now on; a sentence saying what changed. A group must be a
    /// rule of `cfg`. Whether the image exists is the caller's to check (the catalog).
    pub fn set(&mut self, cfg: &Config, target: &Target, image: &str) -> Result<String, AssignError> {
        if !is_image_name(image) {
            return Err(AssignError::BadImageName(image.into()));
        }
        let before = cfg.boot_of(self, target)?.unwrap_or_else(|| "(none)".into());
        match target {
            Target::Default => self.default_image = Some(image.into()),
            Target::Mac(mac) => {
                if !self.mac.contains_key(mac) && self.mac.len() + self.group.len() >= MAX_ASSIGNMENTS {
                    return Err(AssignError::Full);
                }
                self.mac.insert(mac.clone(), image.into());
            }
            Target::Group(_) => {
                let label = cfg.group_label(target).expect("checked by boot_of");
                if !self.group.contains_key(&label) && self.mac.len() + self.group.len() >= MAX_ASSIGNMENTS {
                    return Err(AssignError::Full);
                }
                self.group.insert(label, image.into());
            }
        }
        Ok(match target {
            Target::Default => format!("default image: {before} → {image}"),
            _ => format!("{target}: {before} → {image}"),
        })
    }

    /// `target` boots what the config says again; what changed, or `None` if it had no
    /// assignment.
    pub fn unset(&mut self, cfg: &Config, target: &Target) -> Result<Option<String>, AssignError> {
        let removed = match target {
            Target::Default => self.default_image.take(),
            Target::Mac(mac) => self.mac.remove(mac),
            Target::Group(_) => {
                let label = cfg.group_label(target)?;
                self.group.remove(&label)
            }
        };
        let Some(removed) = removed else { return Ok(None) };
        let now = cfg.boot_of(self, target)?.unwrap_or_else(|| "(none)".into());
        Ok(Some(format!("{target}: {removed} → {now} (as the config says)")))
    }
}

impl Config {
    /// The label a group target goes by in the assignments: its rule's `name`, else its glob.
    fn group_label(&self, target: &Target) -> Result<String, AssignError> {
        let Target::Group(g) = target else { unreachable!("only groups have labels") };
        let found = self.boot.client.iter().find(|c| c.name.as_deref() == Some(g.as_str()) || c.mac.eq_ignore_ascii_case(g));
        match found {
            Some(c) => Ok(c.name.clone().unwrap_or_else(|| c.mac.clone())),
            None => {
                let known: Vec<String> =
                    self.boot.client.iter().filter(|c| c.name.is_some() || c.mac.contains(['*', '?', '['])).map(|c| c.name.clone().unwrap_or_else(|| c.mac.clone())).collect();
                Err(AssignError::NoGroup { name: g.clone(), known: if known.is_empty() { "none".into() } else { known.join(", ") } })
            }
        }
    }

    /// What `target` boots with `a` layered over this config (a MAC: what that machine boots).
    pub fn boot_of(&self, a: &Assignments, target: &Target) -> Result<Option<String>, AssignError> {
        Ok(match target {
            Target::Default => a.default_image.clone().or_else(|| self.boot.default_image.clone()),
            Target::Mac(mac) => self.image_rules(a).ok().and_then(|r| r.image_for(mac).map(str::to_string)),
            Target::Group(_) => {
                let label = self.group_label(target)?;
                let rule = self.boot.client.iter().find(|c| c.name.as_ref().unwrap_or(&c.mac) == &label).expect("found by group_label");
                Some(a.group.get(&label).unwrap_or(&rule.image).clone())
            }
        })
    }

    /// The default, every group (a named rule or a glob) and every MAC with a rule or an
    /// assignment, with what each boots: the lines the picker and the dashboard show.
    pub fn assigned(&self, a: &Assignments) -> Vec<Assigned> {
        let mut out =
            vec![Assigned { target: Target::Default, image: a.default_image.clone().or_else(|| self.boot.default_image.clone()), by_tool: a.default_image.is_some(), glob: None }];
        let mut macs: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for c in &self.boot.client {
            let glob = c.mac.contains(['*', '?', '[']);
            if glob || c.name.is_some() {
                let label = c.name.clone().unwrap_or_else(|| c.mac.clone());
                let assigned = a.group.get(&label);
                out.push(Assigned { image: Some(assigned.unwrap_or(&c.image).clone()), by_tool: assigned.is_some(), target: Target::Group(label), glob: Some(c.mac.clone()) });
            } else {
                macs.entry(c.mac.to_ascii_lowercase()).or_insert((c.image.clone(), false));
            }
        }
        for (mac, image) in &a.mac {
            macs.insert(mac.clone(), (image.clone(), true));
        }
        out.extend(macs.into_iter().map(|(mac, (image, by_tool))| Assigned { target: Target::Mac(mac), image: Some(image), by_tool, glob: None }));
        out
    }

    /// `[boot]`'s image rules with the tools' assignments layered over them, for the boot
    /// planner.
    pub fn image_rules(&self, a: &Assignments) -> Result<swarmboot_bootplan::ImageRules, ConfigError> {
        use swarmboot_bootplan::{ClientRule, ImageRules};
        let mut clients = Vec::new();
        let mut problems = Vec::new();
        for (i, c) in self.boot.client.iter().enumerate() {
            let label = c.name.as_ref().unwrap_or(&c.mac);
            let image = a.group.get(label).unwrap_or(&c.image);
            match ClientRule::new(&c.mac, image) {
                Ok(r) => clients.push(r.with_mode(c.mode.map(Into::into))),
                Err(e) => problems.push(Problem { key: format!("boot.client[{i}].mac"), message: e.to_string() }),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: self.path.clone(), problems });
        }
        let config_rules = ImageRules { default_image: None, default_mode: self.boot.mode.into(), clients };
        // A MAC assigned by a tool goes first; it keeps the mode the config gives that machine.
        let mut first = Vec::with_capacity(a.mac.len());
        for (mac, image) in &a.mac {
            let rule = ClientRule::new(mac, image).map_err(|e| ConfigError::Invalid {
                path: self.server.state_dir.join(ASSIGNMENTS_FILE),
                problems: vec![Problem { key: format!("mac.\"{mac}\""), message: e.to_string() }],
            })?;
            first.push(rule.with_mode(Some(config_rules.mode_for(mac))));
        }
        first.extend(config_rules.clients);
        Ok(ImageRules { default_image: a.default_image.clone().or_else(|| self.boot.default_image.clone()), default_mode: self.boot.mode.into(), clients: first })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
interface = "br0"
address = "10.0.0.1"
state_dir = "/nonexistent"
[boot]
default_image = "elchos"
mode = "swarm"

[[boot.client]]
name = "lab-a"
mac = "52:54:00:*"
image = "elchos"
mode = "direct"

[[boot.client]]
mac = "02:00:00:*"
image = "kiosk"

[[boot.client]]
mac = "0a:00:00:00:00:01"
image = "kiosk"
"#;

    fn cfg() -> Config {
        Config::parse(CONFIG, Path::new("t.toml")).unwrap()
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
    fn the_default_and_groups_are_layered_over_the_config() {
        let cfg = cfg();
        let mut a = Assignments::default();
        assert_eq!(a.set(&cfg, &Target::Default, "kiosk").unwrap(), "default image: elchos → kiosk");
        assert_eq!(a.set(&cfg, &Target::Group("lab-a".into()), "kiosk").unwrap(), "group lab-a: elchos → kiosk");
        assert_eq!(a.set(&cfg, &Target::Group("02:00:00:*".into()), "elchos").unwrap(), "group 02:00:00:*: kiosk → elchos", "a group by its glob");
        let e = a.set(&cfg, &Target::Group("lab-b".into()), "x").unwrap_err().to_string();
        assert!(e.contains("no group lab-b") && e.contains("lab-a, 02:00:00:*"), "{e}");
        let rules = cfg.image_rules(&a).unwrap();
        assert_eq!(rules.image_for("52:54:00:00:00:01"), Some("kiosk"));
        assert_eq!(rules.mode_for("52:54:00:00:00:01"), swarmboot_bootplan::BootMode::Direct, "the rule's mode stays");
        assert_eq!(rules.image_for("02:00:00:00:00:01"), Some("elchos"));
        assert_eq!(rules.image_for("0e:00:00:00:00:01"), Some("kiosk"), "the default");
        assert_eq!(a.unset(&cfg, &Target::Default).unwrap().unwrap(), "the default: kiosk → elchos (as the config says)");
        assert_eq!(a.unset(&cfg, &Target::Default).unwrap(), None);
        assert_eq!(cfg.image_rules(&a).unwrap().image_for("0e:00:00:00:00:01"), Some("elchos"));
    }

    #[test]
    fn an_assigned_mac_beats_every_rule_and_keeps_its_mode() {
        let cfg = cfg();
        let mut a = Assignments::default();
        assert_eq!(a.set(&cfg, &Target::Mac("52:54:00:00:00:07".into()), "kiosk").unwrap(), "52:54:00:00:00:07: elchos → kiosk");
        assert_eq!(a.set(&cfg, &Target::Mac("0a:00:00:00:00:01".into()), "elchos").unwrap(), "0a:00:00:00:00:01: kiosk → elchos", "beats the config's own MAC rule");
        let rules = cfg.image_rules(&a).unwrap();
        assert_eq!(rules.image_for("52:54:00:00:00:07"), Some("kiosk"));
        assert_eq!(rules.mode_for("52:54:00:00:00:07"), swarmboot_bootplan::BootMode::Direct, "lab-a's mode");
        assert_eq!(rules.image_for("52:54:00:00:00:08"), Some("elchos"), "the rest of the group");
        assert_eq!(rules.image_for("0a:00:00:00:00:01"), Some("elchos"));
        let lines = cfg.assigned(&a);
        let mac = |m: &str| lines.iter().find(|l| l.target == Target::Mac(m.into())).cloned().unwrap();
        assert_eq!((mac("52:54:00:00:00:07").image.as_deref(), mac("52:54:00:00:00:07").by_tool), (Some("kiosk"), true));
        assert_eq!(mac("0a:00:00:00:00:01").image.as_deref(), Some("elchos"));
        assert_eq!(lines[0], Assigned { target: Target::Default, image: Some("elchos".into()), by_tool: false, glob: None });
        assert_eq!(lines.iter().filter(|l| matches!(l.target, Target::Group(_))).count(), 2);
        a.unset(&cfg, &Target::Mac("0a:00:00:00:00:01".into())).unwrap();
        assert_eq!(cfg.image_rules(&a).unwrap().image_for("0a:00:00:00:00:01"), Some("kiosk"), "the config's rule again");
    }

    #[test]
    fn the_file_round_trips_and_refuses_what_it_cannot_use() {
        let cfg = cfg();
        let mut a = Assignments::default();
        a.set(&cfg, &Target::Mac("52:54:00:00:00:07".into()), "kiosk").unwrap();
        a.set(&cfg, &Target::Group("lab-a".into()), "kiosk").unwrap();
        a.set(&cfg, &Target::Default, "elchos").unwrap();
        let text = a.to_text();
        assert!(text.starts_with("# Which image"), "{text}");
        assert_eq!(Assignments::parse(&text, Path::new("a.toml")).unwrap(), a);
        for (bad, key) in [
            ("[mac]\n\"52:54:00:00:00:0G\" = \"x\"\n", "mac.\"52:54:00:00:00:0G\""),
            ("[mac]\n\"52:54:00:00:00:01\" = \"../etc\"\n", "mac.\"52:54:00:00:00:01\""),
            ("default_image = \"\"\n", "default_image"),
            ("[group]\n\"lab-a\" = \"a b\"\n", "group.\"lab-a\""),
        ] {
            let e = Assignments::parse(bad, Path::new("a.toml")).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        assert!(Assignments::parse("colour = 1\n", Path::new("a.toml")).is_err(), "unknown keys");
        assert_eq!(a.set(&cfg, &Target::Default, "a/b"), Err(AssignError::BadImageName("a/b".into())));
    }

    #[test]
    fn a_missing_file_is_no_assignments_and_a_saved_one_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Assignments::load(dir.path()).unwrap(), Assignments::default());
        let mut a = Assignments::default();
        a.set(&cfg(), &Target::Default, "kiosk").unwrap();
        let path = a.save(dir.path()).unwrap();
        assert_eq!(path, dir.path().join(ASSIGNMENTS_FILE));
        assert_eq!(Assignments::load(dir.path()).unwrap(), a);
        std::fs::write(&path, vec![b'#'; MAX_ASSIGNMENTS_BYTES as usize + 10]).unwrap();
        assert!(Assignments::load(dir.path()).unwrap_err().to_string().contains("longer than"));
    }
}
