//! `swarmboot token show`: the admin token the dashboard's actions need (made in the state
//! directory, 0600, if there is none yet).

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use swarmboot_config::Config;

#[derive(Subcommand)]
pub enum TokenAction {
    /// Print the admin token (sign in to the dashboard with it, or send it as
    /// `Authorization: Bearer TOKEN`).
    Show,
}

pub fn run(path: &Path, action: TokenAction) -> anyhow::Result<()> {
    let TokenAction::Show = action;
    let cfg = Config::load(path)?;
    let dir = &cfg.server.state_dir;
    let token =
        swarmboot_server::admin::AdminToken::load_or_create(dir).with_context(|| format!("the admin token in {}: run this as root or as the server's user", dir.display()))?;
    println!("{}", token.as_str());
    eprintln!("(in {}; whoever has it can assign images and command nodes through the dashboard)", dir.join(swarmboot_server::admin::TOKEN_FILE).display());
    Ok(())
}
