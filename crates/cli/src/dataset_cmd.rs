//! `swarmboot dataset add|list|show|rm`: the datasets donors hold, from the command line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use swarmboot_config::Config;
use swarmboot_image::datasets::{DatasetManifest, Datasets};

#[derive(Subcommand)]
pub enum DatasetAction {
    /// Add dataset NAME made of PATHs: a file goes in under its name, a directory's files
    /// under their paths inside it. Files are stored once (shared with images and other
    /// datasets) and seeded; donors start fetching at their next check-in.
    Add {
        name: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The dataset it replaces on donors wherever there is room for what it adds.
        #[arg(long, value_name = "NAME")]
        successor_of: Option<String>,
        /// How many donors should hold it.
        #[arg(long, default_value_t = 2)]
        replicas: u32,
    },
    /// List the datasets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One dataset's files, and where each is in a donor's store.
    Show { name: String },
    /// Remove NAME: donors drop it at their next check-in; its files stay until `image gc`.
    Rm { name: String },
}

/// The files of `paths` with their names in the dataset; symbolic links are refused (a
/// dataset holds what is there, not what a link points at).
fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().into_string().map_err(|n| anyhow::anyhow!("{} is not UTF-8: rename it to add it", dir.join(n).display()))?;
            let inner = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let kind = e.file_type()?;
            if kind.is_dir() {
                walk(&e.path(), &inner, out)?;
            } else if kind.is_file() {
                out.push((inner, e.path()));
            } else {
                bail!("{} is not a regular file or directory (a link?): a dataset holds files", e.path().display());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::symlink_metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            walk(p, "", &mut out)?;
        } else if meta.is_file() {
            let name = p.file_name().and_then(|n| n.to_str()).with_context(|| format!("{} has no UTF-8 file name", p.display()))?;
            out.push((name.to_string(), p.clone()));
        } else {
            bail!("{} is not a regular file or directory (a link?): a dataset holds files", p.display());
        }
    }
    Ok(out)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// `books-10 (3 files, 6 B, 2 replicas), successor of books-9`.
fn summary(m: &DatasetManifest) -> String {
    let of = m.successor_of.as_deref().map(|p| format!(", successor of {p}")).unwrap_or_default();
    format!("{} ({} files, {}, {} replicas){of}", m.name, m.files.len(), size(m.bytes()), m.replicas)
}

pub fn run(path: &Path, action: DatasetAction) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let datasets = Datasets::new(&cfg.server.state_dir);
    match action {
        DatasetAction::Add { name, paths, successor_of, replicas } => {
            let files = collect(&paths)?;
            let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
            let m = datasets.add(&name, &files, replicas, successor_of.as_deref(), crate::image_cmd::unix_now(), &key)?;
            println!("added dataset {}, signed by {}", summary(&m), key.public().fingerprint());
        }
        DatasetAction::List { json } => {
            let all = datasets.all()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all.iter().map(|m| serde_json::json!({"name": m.name, "created": m.created, "replicas": m.replicas, "successor_of": m.successor_of, "files": m.files.len(), "bytes": m.bytes()})).collect::<Vec<_>>())?);
                return Ok(());
            }
            println!("{:<24} {:>7} {:>11} {:>8}  SUCCESSOR OF", "DATASET", "FILES", "SIZE", "REPLICAS");
            for m in &all {
                println!("{:<24} {:>7} {:>11} {:>8}  {}", m.name, m.files.len(), size(m.bytes()), m.replicas, m.successor_of.as_deref().unwrap_or("-"));
            }
            println!("{} dataset(s)", all.len());
        }
        DatasetAction::Show { name } => {
            let m = datasets.get(&name)?.with_context(|| format!("no dataset {name} (swarmboot dataset list shows them)"))?;
            println!("dataset {}", summary(&m));
            print!("{}", m.name_map());
        }
        DatasetAction::Rm { name } => {
            let m = datasets.remove(&name)?;
            println!("removed dataset {} ({} files stay in the store until `swarmboot image gc`)", m.name, m.files.len());
        }
    }
    Ok(())
}
