//! Assigning images from the dashboard's images page and `POST /api/v1/assign`: the same
//! change `swarmboot assign` makes (`swarmboot_config::Assignments`, written to the state
//! directory's `assignments.toml`), made by the running server, whose boot rules are replaced
//! at once (no reload needed; what else the config on disk says waits for one, as with SIGHUP).
//! Who may do it is `crate::admin`'s to say, before this is called.

use std::sync::Mutex;

use swarmboot_config::{AssignError, Assignments, Config, ConfigError, Target};

use crate::state::{AppState, BootConfig};

/// One writer at a time within the server (the CLI writes the same file, whole, by rename).
static WRITING: Mutex<()> = Mutex::new(());

/// Why an assignment was not made; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AssignFailure {
    #[error("there is no image {image}; images: {known}")]
    NoImage { image: String, known: String },
    #[error(transparent)]
    Refused(#[from] AssignError),
    #[error("the config on disk does not load, so nothing was assigned (fix it; `swarmboot check-config`): {0}")]
    Config(ConfigError),
    #[error("the assignments file: {0}")]
    Assignments(ConfigError),
    #[error("the image catalog cannot be read: {0}")]
    Catalog(String),
    #[error("cannot write the assignments in the state directory: {0}")]
    Write(std::io::Error),
}

impl AssignFailure {
    /// The operator's mistake (400) or the server's trouble (500).
    pub fn is_request_error(&self) -> bool {
        matches!(self, AssignFailure::NoImage { .. } | AssignFailure::Refused(_))
    }
}

/// `target` boots `image` (`None`: what the config says again); what changed, in words.
pub fn assign(s: &AppState, target: &Target, image: Option<&str>) -> Result<String, AssignFailure> {
    let _writing = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = Config::load(&s.facts.config).map_err(AssignFailure::Config)?;
    let mut assignments = Assignments::load(&s.facts.state_dir).map_err(AssignFailure::Assignments)?;
    let said = match image {
        Some(image) => {
            let names = s.catalog.names().map_err(|e| AssignFailure::Catalog(e.to_string()))?;
            if !names.iter().any(|n| n == image) {
                return Err(AssignFailure::NoImage { image: image.into(), known: if names.is_empty() { "none".into() } else { names.join(", ") } });
            }
            assignments.set(&cfg, target, image)?
        }
        None => match assignments.unset(&cfg, target)? {
            Some(said) => said,
            None => return Ok(format!("{target} has no assignment: it boots what the config says")),
        },
    };
    let rules = cfg.image_rules(&assignments).map_err(AssignFailure::Assignments)?;
    assignments.save(&s.facts.state_dir).map_err(AssignFailure::Write)?;
    *s.boot.write().expect("boot config lock") = BootConfig { rules, base_url: cfg.base_url() };
    Ok(said)
}

/// One line of who boots what, as the images page and `/api/v1/assignments` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AssignmentView {
    /// As `swarmboot assign` takes it: `default`, a group's name or glob, a MAC.
    pub target: String,
    /// `default`, `group` or `mac`.
    pub kind: &'static str,
    /// What it boots; `null`: nothing (no default image).
    pub image: Option<String>,
    /// Set by `swarmboot assign`, the picker or the dashboard (else by the config).
    pub assigned: bool,
    /// A group's MAC glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
}

/// The default, the groups and every MAC with a rule or an assignment, from the config on
/// disk and the assignments file.
pub fn assignments_view(s: &AppState) -> Result<Vec<AssignmentView>, String> {
    let cfg = Config::load(&s.facts.config).map_err(|e| e.to_string())?;
    let a = Assignments::load(&s.facts.state_dir).map_err(|e| e.to_string())?;
    Ok(cfg
        .assigned(&a)
        .into_iter()
        .map(|l| AssignmentView {
            target: l.target.word().to_string(),
            kind: match l.target {
                Target::Default => "default",
                Target::Group(_) => "group",
                Target::Mac(_) => "mac",
            },
            image: l.image,
            assigned: l.by_tool,
            glob: l.glob,
        })
        .collect())
}
