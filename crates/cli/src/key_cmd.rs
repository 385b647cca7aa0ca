//! `swarmboot key show`: the public key clients trust, and its fingerprint.

use std::path::Path;

use clap::Subcommand;
use swarmboot_config::Config;

#[derive(Subcommand)]
pub enum KeyAction {
    /// Print the public key (give it to clients: `--key`) and its fingerprint.
    Show,
}

pub fn run(path: &Path, action: KeyAction) -> anyhow::Result<()> {
    let KeyAction::Show = action;
    let cfg = Config::load(path)?;
    let key = swarmboot_manifest::SigningKey::load_or_create(&cfg.server.state_dir)?;
    let public = key.public();
    println!("public key  {}", public.to_hex());
    println!("fingerprint {}", public.fingerprint());
    println!("(private key in {})", cfg.server.state_dir.join(swarmboot_manifest::keys::KEY_FILE).display());
    Ok(())
}
