//! swarmboot's configuration file (`/etc/swarmboot/swarmboot.toml`): the serde schema, its
//! defaults, and validation whose messages name the key and the problem.
//!
//! Main type: [`Config`]. [`Config::parse`] refuses unknown keys and malformed values;
//! [`Config::dhcp_settings`] checks the DHCP section against the served network and builds the
//! DHCP core's [`swarmboot_dhcp::Settings`].
//!
//! Modules: `schema` (the sections and their defaults), `values` (types parsed from strings:
//! addresses, networks, pools, `Seconds`, MACs), `validation` (every [`Problem`], by key);
//! this file loads, parses and builds what other crates need from it.
//!
//! `assignments`: which image a target boots as the tools set it (`<state_dir>/assignments.toml`,
//! layered over `[boot]`; [`Config::image_rules`] builds the layered rules).
//!
//! What it does not do: read network interfaces (the server passes the interface's prefix in)
//! or open files other than the config and the assignments file.

mod assignments;
mod schema;
mod validation;
mod values;

use std::path::{Path, PathBuf};

use swarmboot_dhcp::{BootSettings, Mode, Reservation, Settings, Subnet};

use crate::values::masked;

pub use assignments::*;
pub use schema::*;
pub use validation::Problem;
pub use values::*;

pub const DEFAULT_PATH: &str = "/etc/swarmboot/swarmboot.toml";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::parse(&text, path)
    }

    /// Parses `text` (read from `path`) and checks everything that does not depend on the host.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax { path: path.into(), message: e.to_string() })?;
        cfg.path = path.into();
        let problems = cfg.problems(None);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: path.into(), problems });
        }
        Ok(cfg)
    }

    /// The base of every URL a machine is given after its boot script.
    pub fn base_url(&self) -> String {
        self.http.public_url.clone().unwrap_or_else(|| format!("http://{}:{}", self.server.address.ip, self.http.port()))
    }

    /// The prefix length of the served network, from `server.address` if it has one.
    pub fn configured_prefix(&self) -> Option<u8> {
        self.server.address.prefix_len
    }

    /// The DHCP core's settings, given the prefix length of the server's network (from
    /// `server.address` or read from the interface).
    pub fn dhcp_settings(&self, prefix_len: u8) -> Result<Settings, ConfigError> {
        let problems = self.problems(Some(prefix_len));
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: self.path.clone(), problems });
        }
        let d = &self.dhcp;
        let mut subnets = vec![Subnet {
            network: masked(self.server.address.ip, prefix_len),
            prefix_len,
            pools: d.pool.iter().map(|p| p.0).collect(),
            routers: d.router.into_iter().collect(),
            dns: d.dns.clone(),
            domain: d.domain.clone(),
            lease_secs: d.lease_time.0,
        }];
        for s in &d.subnet {
            subnets.push(Subnet {
                network: s.network.network,
                prefix_len: s.network.prefix_len,
                pools: s.pool.iter().map(|p| p.0).collect(),
                routers: s.router.into_iter().collect(),
                dns: s.dns.clone().unwrap_or_else(|| d.dns.clone()),
                domain: d.domain.clone(),
                lease_secs: s.lease_time.unwrap_or(d.lease_time).0,
            });
        }
        let settings = Settings {
            mode: match d.mode {
                DhcpMode::Off => Mode::Off,
                DhcpMode::Authoritative => Mode::Authoritative,
                DhcpMode::Proxy => Mode::Proxy,
            },
            server_ip: self.server.address.ip,
            subnets,
            reservations: d.reservation.iter().map(|r| Reservation { hwaddr: r.mac.0.clone(), ip: r.ip, hostname: r.hostname.clone() }).collect(),
            decline_secs: d.decline_time.0,
            offer_secs: 60,
            max_leases_per_machine: swarmboot_dhcp::DEFAULT_MAX_LEASES_PER_MACHINE,
            boot: BootSettings {
                http_base: self.http.public_url.clone(),
                http_port: self.http.port(),
                script_path: swarmboot_urls::Urls::new("").boot_script(),
                bios_file: self.boot.bios_file.clone(),
                efi_x64_file: self.boot.efi_x64_file.clone(),
                ..BootSettings::default()
            },
        };
        // Everything `validate` checks was checked above with key names; this is the core's
        // own guard.
        settings.validate().map_err(|e| ConfigError::Invalid { path: self.path.clone(), problems: vec![Problem { key: "dhcp".into(), message: e.to_string() }] })?;
        Ok(settings)
    }

    /// Whether the config names an interface to serve on. A fresh install's does not: the
    /// server then starts, says what to configure, and serves nothing (a DHCP server that
    /// answers on a network it was not meant for is an incident).
    pub fn is_configured(&self) -> bool {
        !self.server.interface.is_empty()
    }
}

#[cfg(test)]
mod tests;
