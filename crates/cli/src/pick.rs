//! `swarmboot pick`: a keyboard-only terminal picker (ratatui) that assigns an image to the
//! default, a group or one machine, for an 80×24 terminal over SSH. The picker's state and
//! key handling ([`Picker`]) are plain code, tested without a terminal; writing goes through
//! `assign::apply`, the same path as `swarmboot assign`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use swarmboot_config::Config;

use crate::assign::{self, Target};

pub const KEYS_HELP: &str = "Keys: Tab or ←/→ switch between images and machines; ↑/↓ (or k/j) choose; Enter assigns the chosen \
image to the chosen machines (asks first: y or Enter to confirm, n or Esc to cancel); r reloads the lists; ? shows the keys; q or Esc quits.";

#[derive(clap::Args)]
#[command(after_help = KEYS_HELP)]
pub struct PickArgs {}

/// One image as the picker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub name: String,
    pub version: u32,
    pub bytes: u64,
    /// Machines in its swarm now (from the server's tracker); `None`: the server did not answer.
    pub nodes: Option<u32>,
}

/// Machines an image can be assigned to, with what they boot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    pub target: Target,
    pub label: String,
    pub detail: String,
    pub boots: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Images,
    Targets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Up,
    Down,
    Switch,
    Enter,
    Yes,
    No,
    Reload,
    Help,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    Reload,
    /// The user confirmed: write it.
    Assign(Target, String),
}

/// The picker's state.
#[derive(Debug, Clone)]
pub struct Picker {
    pub images: Vec<ImageRow>,
    pub targets: Vec<TargetRow>,
    pub focus: Pane,
    pub image: usize,
    pub target: usize,
    /// Waiting for y/n on this assignment.
    pub confirm: Option<(Target, String)>,
    pub help: bool,
    pub status: String,
}

impl Picker {
    pub fn new(images: Vec<ImageRow>, targets: Vec<TargetRow>) -> Self {
        Picker {
            images,
            targets,
            focus: Pane::Images,
            image: 0,
            target: 0,
            confirm: None,
            help: false,
            status: "Choose an image, then the machines; Enter assigns. ? for keys.".into(),
        }
    }

    pub fn on_key(&mut self, key: Key) -> Action {
        if self.help {
            self.help = false;
            return Action::None;
        }
        if let Some((target, image)) = self.confirm.clone() {
            return match key {
                Key::Yes | Key::Enter => {
                    self.confirm = None;
                    Action::Assign(target, image)
                }
                Key::No | Key::Quit => {
                    self.confirm = None;
                    self.status = "Cancelled: nothing changed.".into();
                    Action::None
                }
                _ => Action::None,
            };
        }
        match key {
            Key::Quit => Action::Quit,
            Key::Help => {
                self.help = true;
                Action::None
            }
            Key::Reload => Action::Reload,
            Key::Switch => {
                self.focus = if self.focus == Pane::Images { Pane::Targets } else { Pane::Images };
                Action::None
            }
            Key::Up | Key::Down => {
                let (sel, len) = match self.focus {
                    Pane::Images => (&mut self.image, self.images.len()),
                    Pane::Targets => (&mut self.target, self.targets.len()),
                };
                if len > 0 {
                    *sel = if key == Key::Up { sel.saturating_sub(1) } else { (*sel + 1).min(len - 1) };
                }
                Action::None
            }
            Key::Enter => {
                match (self.images.get(self.image), self.targets.get(self.target)) {
                    (Some(i), Some(t)) => self.confirm = Some((t.target.clone(), i.name.clone())),
                    (None, _) => self.status = "There are no images: add one with `swarmboot image add`.".into(),
                    (_, None) => self.status = "There is nothing to assign to.".into(),
                }
                Action::None
            }
            Key::Yes | Key::No => Action::None,
        }
    }
}

fn key_of(code: KeyCode, mods: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Up | KeyCode::Char('k') => Key::Up,
        KeyCode::Down | KeyCode::Char('j') => Key::Down,
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Left | KeyCode::Right => Key::Switch,
        KeyCode::Enter => Key::Enter,
        KeyCode::Char('y') | KeyCode::Char('Y') => Key::Yes,
        KeyCode::Char('n') | KeyCode::Char('N') => Key::No,
        KeyCode::Char('r') => Key::Reload,
        KeyCode::Char('?') | KeyCode::F(1) => Key::Help,
        KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => Key::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
        _ => return None,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// Draws the picker into `area` (80×24 fits: two tables side by side, a status line).
pub fn draw(f: &mut ratatui::Frame, p: &Picker) {
    let [title, body, status] = Layout::vertical([Constraint::Length(1), Constraint::Min(5), Constraint::Length(2)]).areas(f.area());
    f.render_widget(Paragraph::new("swarmboot pick — which image which machines boot").style(Style::new().add_modifier(Modifier::BOLD)), title);
    let [left, right] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
    let focused = |pane: Pane| if p.focus == pane { Style::new().add_modifier(Modifier::BOLD) } else { Style::new().add_modifier(Modifier::DIM) };
    let selected = Style::new().add_modifier(Modifier::REVERSED);

    let rows = p.images.iter().map(|i| {
        Row::new(vec![Cell::from(i.name.clone()), Cell::from(format!("@{}", i.version)), Cell::from(mib(i.bytes)), Cell::from(i.nodes.map_or("-".into(), |n| n.to_string()))])
    });
    let images = Table::new(rows, [Constraint::Min(8), Constraint::Length(4), Constraint::Length(10), Constraint::Length(5)])
        .header(Row::new(vec!["image", "ver", "size", "nodes"]).style(Style::new().add_modifier(Modifier::UNDERLINED)))
        .block(Block::new().borders(Borders::ALL).title(" Images ").border_style(focused(Pane::Images)))
        .row_highlight_style(selected)
        .highlight_symbol(">");
    let mut st = TableState::default().with_selected((!p.images.is_empty()).then_some(p.image));
    f.render_stateful_widget(images, left, &mut st);

    let rows = p.targets.iter().map(|t| Row::new(vec![Cell::from(t.label.clone()), Cell::from(t.detail.clone()), Cell::from(t.boots.clone())]));
    let targets = Table::new(rows, [Constraint::Length(17), Constraint::Min(6), Constraint::Length(10)])
        .header(Row::new(vec!["machines", "", "boots"]).style(Style::new().add_modifier(Modifier::UNDERLINED)))
        .block(Block::new().borders(Borders::ALL).title(" Machines ").border_style(focused(Pane::Targets)))
        .row_highlight_style(selected)
        .highlight_symbol(">");
    let mut st = TableState::default().with_selected((!p.targets.is_empty()).then_some(p.target));
    f.render_stateful_widget(targets, right, &mut st);

    f.render_widget(Paragraph::new(p.status.as_str()).wrap(Wrap { trim: true }), status);

    let popup = |f: &mut ratatui::Frame, text: String, title: &str| {
        let a = f.area();
        let w = a.width.min(64);
        let r = Rect { x: a.x + (a.width - w) / 2, y: a.y + a.height / 2 - 4, width: w, height: 8.min(a.height) };
        f.render_widget(Clear, r);
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(Block::new().borders(Borders::ALL).title(title.to_string())), r);
    };
    if let Some((target, image)) = &p.confirm {
        popup(f, format!("Assign {image} to {target}?\n\nThe assignment is written (as `swarmboot assign` does) and the server reloaded.\n\ny: yes   n: no"), " Confirm ");
    } else if p.help {
        popup(f, KEYS_HELP.to_string(), " Keys ");
    }
}

/// The lists, from the config and its assignments, the catalog, the leases, and the running
/// server's `/api/v1/images` (how many machines are in each image's swarm).
fn load(config_path: &Path) -> anyhow::Result<(Vec<ImageRow>, Vec<TargetRow>)> {
    let cfg = Config::load(config_path)?;
    let catalog = swarmboot_image::Catalog::new(&cfg.server.state_dir);
    let in_swarm = swarm_sizes(&cfg);
    let mut images = Vec::new();
    for name in catalog.names()? {
        if let Some(m) = catalog.latest(&name)? {
            let bytes = m.files.iter().map(|f| f.size).sum();
            let nodes = in_swarm.as_ref().map(|n| n.get(&name).copied().unwrap_or(0));
            images.push(ImageRow { name, version: m.version, bytes, nodes });
        }
    }
    let assignments = swarmboot_config::Assignments::load(&cfg.server.state_dir)?;
    let rules = cfg.image_rules(&assignments)?;
    let boots = |mac: &str| rules.image_for(mac).unwrap_or("(nothing)").to_string();
    let mut targets = Vec::new();
    let mut macs = BTreeSet::new();
    for line in cfg.assigned(&assignments) {
        let by = if line.by_tool { " (assigned)" } else { "" };
        let image = line.image.clone().unwrap_or_else(|| "(nothing)".into());
        match &line.target {
            Target::Default => targets.push(TargetRow { target: Target::Default, label: "default".into(), detail: format!("all others{by}"), boots: image }),
            Target::Group(label) => {
                let detail = if line.glob.as_deref() == Some(label.as_str()) { "group".to_string() } else { line.glob.clone().unwrap_or_default() };
                targets.push(TargetRow { target: line.target.clone(), label: label.clone(), detail: format!("{detail}{by}"), boots: image })
            }
            Target::Mac(mac) => {
                macs.insert((mac.clone(), String::new()));
            }
        }
    }
    // Machines the DHCP server knows (authoritative mode).
    let leases = swarmboot_server::lease_store::LeaseStore::open_read_only(&cfg.server.state_dir).and_then(|s| s.load()).unwrap_or_default();
    for l in leases.iter().filter(|l| l.state.as_str() == "bound") {
        let mac = l.hwaddr.to_string().to_ascii_lowercase();
        macs.retain(|(m, _)| *m != mac);
        macs.insert((mac, l.ip.to_string()));
    }
    for (mac, ip) in macs {
        targets.push(TargetRow { target: Target::Mac(mac.clone()), boots: boots(&mac), label: mac, detail: ip });
    }
    Ok((images, targets))
}

/// `/api/v1/images` as the picker reads it.
#[derive(serde::Deserialize)]
struct ImageAnswer {
    name: String,
    latest: u32,
    versions: Vec<VersionAnswer>,
}
#[derive(serde::Deserialize)]
struct VersionAnswer {
    version: u32,
    files: Vec<FileAnswer>,
}
#[derive(serde::Deserialize)]
struct FileAnswer {
    role: String,
    seeds: u32,
    fetching: u32,
}

/// Machines in each image's swarm (its latest root image, else its first file: seeds and
/// fetchers, as the server's tracker counts them, without the server's own seed); `None`: the
/// server did not answer.
fn swarm_sizes(cfg: &Config) -> Option<std::collections::HashMap<String, u32>> {
    let url = format!("{}{}", crate::local_server::url(cfg), swarmboot_urls::routes::IMAGES);
    let images: Vec<ImageAnswer> = crate::local_server::get_json(&url).ok()?;
    Some(
        images
            .into_iter()
            .map(|i| {
                let files = i.versions.into_iter().find(|v| v.version == i.latest).map(|v| v.files).unwrap_or_default();
                let file = files.iter().find(|f| f.role == "rootfs").or(files.first());
                let n = file.map_or(0, |f| (f.seeds + f.fetching).saturating_sub(u32::from(cfg.swarm.seed)));
                (i.name, n)
            })
            .collect(),
    )
}

pub fn run(config: &Path, _args: PickArgs) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!("swarmboot pick needs a terminal; without one use `swarmboot assign MAC|GROUP|default IMAGE` (and `swarmboot image list`)");
    }
    let (images, targets) = load(config)?;
    let mut picker = Picker::new(images, targets);
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        loop {
            terminal.draw(|f| draw(f, &picker))?;
            let Event::Key(k) = event::read()? else { continue };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let Some(key) = key_of(k.code, k.modifiers) else { continue };
            match picker.on_key(key) {
                Action::None => {}
                Action::Quit => return Ok(()),
                Action::Reload => {
                    let (images, targets) = load(config)?;
                    (picker.images, picker.targets) = (images, targets);
                    picker.image = picker.image.min(picker.images.len().saturating_sub(1));
                    picker.target = picker.target.min(picker.targets.len().saturating_sub(1));
                    picker.status = "Lists reloaded.".into();
                }
                Action::Assign(target, image) => {
                    picker.status = match assign::apply(config, &target, &image) {
                        Ok(said) => format!("Done: {said}."),
                        Err(e) => format!("Not changed: {e:#}"),
                    };
                    if let Ok((images, targets)) = load(config) {
                        (picker.images, picker.targets) = (images, targets);
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result.context("the picker")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picker() -> Picker {
        let images =
            vec![ImageRow { name: "elchos".into(), version: 2, bytes: 50 << 20, nodes: Some(3) }, ImageRow { name: "kiosk".into(), version: 1, bytes: 9 << 20, nodes: None }];
        let targets = vec![
            TargetRow { target: Target::Default, label: "default".into(), detail: String::new(), boots: "elchos".into() },
            TargetRow { target: Target::Group("lab-a".into()), label: "lab-a".into(), detail: "52:54:00:*".into(), boots: "elchos".into() },
            TargetRow { target: Target::Mac("52:54:00:00:00:07".into()), label: "52:54:00:00:00:07".into(), detail: "10.77.0.128".into(), boots: "elchos".into() },
        ];
        Picker::new(images, targets)
    }

    #[test]
    fn choose_an_image_and_a_machine_then_confirm() {
        let mut p = picker();
        assert_eq!(p.on_key(Key::Down), Action::None);
        assert_eq!(p.image, 1);
        assert_eq!(p.on_key(Key::Down), Action::None);
        assert_eq!(p.image, 1, "stays on the last row");
        p.on_key(Key::Switch);
        p.on_key(Key::Down);
        p.on_key(Key::Down);
        assert_eq!((p.focus, p.target), (Pane::Targets, 2));
        assert_eq!(p.on_key(Key::Enter), Action::None, "asks first");
        assert_eq!(p.confirm, Some((Target::Mac("52:54:00:00:00:07".into()), "kiosk".into())));
        assert_eq!(p.on_key(Key::Down), Action::None, "other keys wait for an answer");
        assert_eq!(p.on_key(Key::Yes), Action::Assign(Target::Mac("52:54:00:00:00:07".into()), "kiosk".into()));
        assert!(p.confirm.is_none());
    }

    #[test]
    fn cancel_help_and_quit() {
        let mut p = picker();
        p.on_key(Key::Enter);
        assert_eq!(p.on_key(Key::No), Action::None);
        assert!(p.confirm.is_none() && p.status.contains("nothing changed"));
        p.on_key(Key::Help);
        assert!(p.help);
        assert_eq!(p.on_key(Key::Quit), Action::None, "the first key closes the help");
        assert_eq!(p.on_key(Key::Quit), Action::Quit);
        let mut empty = Picker::new(vec![], vec![]);
        assert_eq!(empty.on_key(Key::Enter), Action::None);
        assert!(empty.status.contains("no images"));
    }

    /// What an 80×24 terminal shows, checked on ratatui's test backend.
    #[test]
    fn fits_an_80_by_24_terminal() {
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
        let mut p = picker();
        t.draw(|f| draw(f, &p)).unwrap();
        let screen: String = t.backend().buffer().content().iter().map(|c| c.symbol()).collect::<Vec<_>>().chunks(80).map(|l| l.concat()).collect::<Vec<_>>().join("\n");
        for needle in ["Images", "Machines", "elchos", "@2", "50.0 MiB", "kiosk", "lab-a", "52:54:00:00:00:07", "default"] {
            assert!(screen.contains(needle), "{needle} missing:\n{screen}");
        }
        p.on_key(Key::Enter);
        t.draw(|f| draw(f, &p)).unwrap();
        let screen: String = t.backend().buffer().content().iter().map(|c| c.symbol()).collect();
        assert!(screen.contains("Assign elchos to the default?"), "{screen}");
    }
}
