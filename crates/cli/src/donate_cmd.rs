//! `swarmboot donate`: give disk space to a boot server's datasets (issue 20; the seed's
//! "elephant" daemon), until SIGTERM. The loop is `swarmboot_donor::donate`; this reads the
//! flags, or the `SWARMBOOT_DONATE_*` environment the `swarmboot-donate` service takes from
//! `/etc/default/swarmboot-donate`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Where the service reads its settings (named in the errors a service user sees).
const DEFAULTS_FILE: &str = "/etc/default/swarmboot-donate";

#[derive(Args)]
pub struct DonateArgs {
    /// The boot server, `http://host:port`.
    #[arg(long, env = "SWARMBOOT_DONATE_SERVER")]
    server: Option<String>,
    /// The space to give: bytes, or with K, M, G or T (powers of 1024: `100G` is 100 GiB).
    #[arg(long, env = "SWARMBOOT_DONATE_SPACE")]
    space: Option<String>,
    /// Where the datasets go (created; nothing outside it is touched).
    #[arg(long, env = "SWARMBOOT_DONATE_DIR")]
    dir: Option<PathBuf>,
    /// The server's public key: 64 hex digits, or a file holding them (`swarmboot key show`
    /// on the server prints it).
    #[arg(long, env = "SWARMBOOT_DONATE_SERVER_KEY")]
    server_key: Option<String>,
    /// Listen for peers here.
    #[arg(long, env = "SWARMBOOT_DONATE_LISTEN", default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// Stop after this many check-ins (default: run until stopped).
    #[arg(long)]
    rounds: Option<u64>,
}

/// `100G` → 107374182400.
pub fn parse_space(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().with_context(|| format!("--space {text}: a number of bytes, or with K, M, G or T"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => anyhow::bail!("--space {text}: the unit is K, M, G or T"),
    };
    n.checked_mul(1u64 << shift).with_context(|| format!("--space {text}: too large"))
}

/// A setting from its flag or variable, or an error that names both (empty counts as unset).
fn setting<T: Clone>(value: &Option<T>, empty: impl Fn(&T) -> bool, flag: &str, var: &str) -> anyhow::Result<T> {
    value.clone().filter(|v| !empty(v)).with_context(|| format!("swarmboot donate needs --{flag} (the service reads {var} from {DEFAULTS_FILE})"))
}

pub fn run(a: DonateArgs) -> anyhow::Result<()> {
    let server = setting(&a.server, |s| s.trim().is_empty(), "server", "SWARMBOOT_DONATE_SERVER")?;
    let space = parse_space(&setting(&a.space, |s| s.trim().is_empty(), "space", "SWARMBOOT_DONATE_SPACE")?)?;
    let dir = setting(&a.dir, |d| d.as_os_str().is_empty(), "dir", "SWARMBOOT_DONATE_DIR")?;
    let server_key = crate::fetch_cmd::parse_key(&setting(&a.server_key, |s| s.trim().is_empty(), "server-key", "SWARMBOOT_DONATE_SERVER_KEY")?)?;
    let settings = swarmboot_donor::Settings { server, server_key, space, dir, listen: a.listen, rounds: a.rounds, booted: None };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        tokio::spawn(async move {
            let _ = tx.send(crate::torrent_cmd::until_signal().await);
        });
        let stop = async move {
            if let Ok(Err(e)) = rx.await {
                tracing::warn!("cannot wait for signals ({e}): stopping");
            }
        };
        swarmboot_donor::donate(&settings, stop).await.context("donating")
    })
}

#[cfg(test)]
mod tests {
    use super::parse_space;

    #[test]
    fn space_reads_in_powers_of_1024() {
        assert_eq!(parse_space("100G").unwrap(), 100 << 30);
        assert_eq!(parse_space("512").unwrap(), 512);
        assert_eq!(parse_space("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_space("10 m").unwrap(), 10 << 20);
        assert!(parse_space("lots").is_err() && parse_space("5X").is_err() && parse_space("99999999999T").is_err());
    }
}
