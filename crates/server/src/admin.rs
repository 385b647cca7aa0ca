//! Who may read the dashboard and who may act through it.
//!
//! - The admin token: 32 random bytes (hex) in `<state_dir>/admin.token`, mode 0600, made at
//!   the server's first start or by `swarmboot token show`. A request presents it as
//!   `Authorization: Bearer TOKEN`, or as the cookie `/login` sets (HttpOnly, SameSite=Strict).
//! - Reading (`[http] dashboard`): `open` to anyone on the boot network, `token` to token
//!   holders, `off` to nobody, token or not — and always to the server itself (127.0.0.1: the
//!   CLI).
//! - Acting (assign, node commands): the token, or a request from the server itself that is not
//!   a browser's (no `Origin`, no `Sec-Fetch-*`, no cookie: the CLI). A browser acting with
//!   its cookie must also send the form's CSRF field (derived from the token, so a page from
//!   elsewhere cannot know it); SameSite=Strict keeps the cookie off cross-site requests too.
//!
//! [`may_read`] and [`may_act`] are the rules, plain functions of what the request shows.

use std::net::SocketAddr;
use std::path::Path;

use axum::http::{header, HeaderMap};

use sha2::{Digest, Sha256};

pub const TOKEN_FILE: &str = "admin.token";
/// The cookie `/login` sets.
pub const COOKIE: &str = "swarmboot_admin";

/// `[http] dashboard`.
pub use swarmboot_config::DashboardAccess;

#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// The state directory's token, made (whole, 0600) if there is none.
    pub fn load_or_create(state_dir: &Path) -> std::io::Result<AdminToken> {
        use std::io::Read;
        let path = state_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().len() == 64 && text.trim().bytes().all(|b| b.is_ascii_hexdigit()) => Ok(AdminToken(text.trim().to_ascii_lowercase())),
            Ok(_) => Err(std::io::Error::other(format!("{} is not 64 hex digits: remove it and a new token is made", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                swarmboot_durable::create_dir_all(state_dir)?;
                let mut raw = [0u8; 32];
                std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
                let token = hex::encode(raw);
                if !swarmboot_durable::publish_new(&path, format!("{token}\n").as_bytes(), 0o600)? {
                    // Another process made it first: theirs.
                    return Self::load_or_create(state_dir);
                }
                Ok(AdminToken(token))
            }
            Err(e) => Err(e),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token (in time that does not depend on where they differ).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.trim().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The CSRF field a page's forms carry for a browser holding the token's cookie.
    pub fn csrf(&self) -> String {
        hex::encode(Sha256::digest(format!("swarmboot-csrf\n{}", self.0)))
    }
}

/// What a request shows about its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asker {
    /// It came over loopback: from the server itself.
    pub loopback: bool,
    /// It came from a browser (it sent `Origin`, a `Sec-Fetch-*` header, or a cookie).
    pub browser: bool,
    /// It presented the token as a bearer header.
    pub bearer: bool,
    /// It presented the token as the cookie.
    pub cookie: bool,
    /// Its form carried the right CSRF field.
    pub csrf: bool,
}

/// Whether `a` may read pages and the read API.
pub fn may_read(access: DashboardAccess, a: &Asker) -> bool {
    match access {
        DashboardAccess::Open => true,
        DashboardAccess::Token => a.loopback || a.bearer || a.cookie,
        DashboardAccess::Off => a.loopback,
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("acting needs the admin token (`swarmboot token show` on the server): sign in at /login, or send `Authorization: Bearer TOKEN`")]
    NoToken,
    #[error("the form's CSRF field is missing or wrong: reload the page and try again")]
    BadCsrf,
}

/// Whether `a` may act (assign, node commands).
pub fn may_act(a: &Asker) -> Result<(), Refusal> {
    if a.bearer {
        return Ok(());
    }
    if a.cookie {
        return if a.csrf { Ok(()) } else { Err(Refusal::BadCsrf) };
    }
    if a.loopback && !a.browser {
        return Ok(());
    }
    Err(Refusal::NoToken)
}

/// What a request shows about its sender (the CSRF field is the action's to check).
pub fn asker(token: &AdminToken, headers: &HeaderMap, peer: SocketAddr) -> Asker {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|t| token.matches(t));
    let cookie = cookie_token(headers).is_some_and(|t| token.matches(&t));
    let browser = headers.contains_key(header::ORIGIN) || headers.contains_key(header::COOKIE) || headers.keys().any(|k| k.as_str().starts_with("sec-fetch-"));
    Asker { loopback: peer.ip().is_loopback() || crate::fleet::v4(peer.ip()).is_some_and(|i| i.is_loopback()), browser, bearer, cookie, csrf: false }
}

/// The admin token a request's cookie carries, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{}=", COOKIE)).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_follows_the_setting_and_the_server_itself_always_reads() {
        let anyone = Asker::default();
        let holder = Asker { cookie: true, ..Default::default() };
        let local = Asker { loopback: true, ..Default::default() };
        for (access, anyone_reads) in [(DashboardAccess::Open, true), (DashboardAccess::Token, false), (DashboardAccess::Off, false)] {
            assert_eq!(may_read(access, &anyone), anyone_reads, "{access:?}");
            assert!(may_read(access, &local));
        }
        assert!(may_read(DashboardAccess::Token, &holder));
        assert!(may_read(DashboardAccess::Token, &Asker { bearer: true, ..Default::default() }));
        assert!(!may_read(DashboardAccess::Off, &holder), "off is off, token or not");
        assert!(!may_read(DashboardAccess::Off, &Asker { bearer: true, ..Default::default() }));
    }

    #[test]
    fn acting_needs_the_token_and_a_browser_also_the_csrf_field() {
        assert_eq!(may_act(&Asker::default()), Err(Refusal::NoToken));
        assert_eq!(may_act(&Asker { bearer: true, ..Default::default() }), Ok(()));
        assert_eq!(may_act(&Asker { cookie: true, browser: true, ..Default::default() }), Err(Refusal::BadCsrf));
        assert_eq!(may_act(&Asker { cookie: true, browser: true, csrf: true, ..Default::default() }), Ok(()));
        // The CLI on the server acts; a browser on the server (a page from anywhere could make
        // it post to 127.0.0.1) does not, without the token.
        assert_eq!(may_act(&Asker { loopback: true, ..Default::default() }), Ok(()));
        assert_eq!(may_act(&Asker { loopback: true, browser: true, ..Default::default() }), Err(Refusal::NoToken));
        assert_eq!(may_act(&Asker { csrf: true, browser: true, ..Default::default() }), Err(Refusal::NoToken), "a CSRF field alone is no token");
    }

    #[test]
    fn the_token_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = AdminToken::load_or_create(dir.path()).unwrap();
        assert_eq!(t.as_str().len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = AdminToken::load_or_create(dir.path()).unwrap();
        assert_eq!(again.as_str(), t.as_str());
        assert!(t.matches(&format!("{}\n", t.as_str())) && !t.matches("") && !t.matches(&"0".repeat(64)));
        assert_ne!(t.csrf(), t.as_str());
        std::fs::write(dir.path().join(TOKEN_FILE), "short\n").unwrap();
        assert!(AdminToken::load_or_create(dir.path()).unwrap_err().to_string().contains("remove it"));
    }
}
