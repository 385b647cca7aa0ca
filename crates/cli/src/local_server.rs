//! The running server on this host, as the CLI reaches it: its loopback URL (reading there
//! needs no token, whatever `[http] dashboard` says) and a JSON GET.

use std::time::Duration;

use anyhow::Context;
use swarmboot_config::Config;

/// Where the CLI reaches the running server on this host.
pub fn url(cfg: &Config) -> String {
    let addr = cfg.http.listen_addrs(cfg.server.address.ip)[0];
    let ip = if addr.ip().is_unspecified() { std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST) } else { addr.ip() };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// GETs `url` and reads its JSON.
pub fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = rt.block_on(swarmboot_fetch::http::get(url, None, 64 << 20, Duration::from_secs(10))).map_err(|e| match e {
        swarmboot_fetch::http::HttpError::Status { status } => anyhow::anyhow!("the server answered {status} to {url}"),
        e => anyhow::Error::new(e).context(format!("cannot reach the running server at {url} (is `swarmboot serve` running?)")),
    })?;
    serde_json::from_slice(&body).with_context(|| format!("the server's answer to {url}"))
}
