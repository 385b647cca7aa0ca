//! `swarmboot search WORDS…`: the fleet's files whose names and paths match, from the running
//! server's `/api/v1/search` (on this host, or `--server URL` from anywhere on the boot
//! network): each hit with its size and the nodes that have it, with their HTTP and FTP URLs.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use swarmboot_config::Config;

use crate::terminal_text::printable;

#[derive(Args)]
pub struct SearchArgs {
    /// Words (each matches the start of a word in a name or path) and filters: size>700M,
    /// size<2G, type:video|audio|image|document|archive|disk-image, ext:iso, in:movies/old.
    #[arg(required = true, num_args = 1..)]
    words: Vec<String>,
    /// The boot server (`http://SERVER:8080`); default: the one this host runs.
    #[arg(long)]
    server: Option<String>,
    /// At most this many hits.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(config: &Path, a: SearchArgs) -> anyhow::Result<()> {
    let base = match &a.server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => crate::local_server::url(&Config::load(config).context("no --server given, so the server on this host (its config)")?),
    };
    let text = a.words.join(" ");
    let url = format!("{base}{}?q={}&limit={}", swarmboot_urls::routes::SEARCH, swarmboot_urls::escape(text.as_bytes()), a.limit);
    let v: Value = crate::local_server::get_json(&url)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let hits = v["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no file on the live nodes matches {}", printable(&text));
        return Ok(());
    }
    for h in &hits {
        let dir = h["kind"] == "dir";
        let size = h["size"].as_u64().unwrap_or(0);
        println!("{}{}  {}", printable(h["path"].as_str().unwrap_or("?")), if dir { "/" } else { "" }, if dir { String::new() } else { size_text(size) });
        for s in h["source_urls"].as_array().into_iter().flatten() {
            let urls: Vec<String> = s["urls"].as_array().into_iter().flatten().filter_map(|u| u.as_str()).map(printable).collect();
            println!("    {}  {}", printable(s["node"].as_str().unwrap_or("?")), urls.join("  "));
        }
    }
    if v["more"] == true {
        println!("(more hits than {}: narrow the search or raise --limit)", a.limit);
    }
    Ok(())
}

/// `size` in the largest unit that keeps it at least 1 (B, KiB, MiB, GiB, TiB).
fn size_text(size: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = size as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{size} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
