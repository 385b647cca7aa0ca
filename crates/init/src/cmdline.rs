//! The kernel command line the server's boot script gives the stub.
//!
//! `swarmboot.server=http://10.0.0.1:8080 swarmboot.image=elchos[@3] swarmboot.key=<hex>`
//! plus optional `swarmboot.stall=<seconds>` (swarm stall before HTTP) and
//! `swarmboot.swarm=0` (every byte over HTTP from the server, no peers, no seeding: a machine
//! kept out of the swarm, and the benchmark's baseline). Values may be double-quoted. Everything else on the
//! line is the kernel's or the image's business and is passed on untouched.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubArgs {
    pub server: String,
    pub image: String,
    pub version: Option<u32>,
    /// The key from the command line; `None`: use the key built into the stub.
    pub key: Option<String>,
    pub stall: Duration,
    /// `false` (`swarmboot.swarm=0`): HTTP only, nothing seeded.
    pub swarm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("the kernel command line has no {0}= (the server's boot script sets it; was the stub booted by hand?)")]
    Missing(&'static str),
    #[error("{key}={value:?}: {why}")]
    Bad { key: &'static str, value: String, why: &'static str },
}

/// Splits a command line into words, honouring double quotes as the kernel does.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The value of `key=` (the last one wins, as for the kernel's own parameters).
pub fn value<'a>(words: &'a [String], key: &str) -> Option<&'a str> {
    words.iter().rev().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The init an image's root filesystem starts with: the kernel's `init=` (before any `--`,
/// after which the words are init's), else `/sbin/init`.
pub fn root_init(line: &str) -> String {
    let w = words(line);
    let kernel_part = &w[..w.iter().position(|x| x == "--").unwrap_or(w.len())];
    value(kernel_part, "init").unwrap_or("/sbin/init").to_string()
}

pub fn parse(line: &str) -> Result<StubArgs, CmdlineError> {
    let w = words(line);
    let server = value(&w, "swarmboot.server").ok_or(CmdlineError::Missing("swarmboot.server"))?;
    if !server.starts_with("http://") || server.len() <= "http://".len() {
        return Err(CmdlineError::Bad { key: "swarmboot.server", value: server.into(), why: "must be an http:// URL" });
    }
    let image = value(&w, "swarmboot.image").ok_or(CmdlineError::Missing("swarmboot.image"))?;
    let (image, version) = match image.split_once('@') {
        Some((n, v)) => {
            (n, Some(v.parse::<u32>().map_err(|_| CmdlineError::Bad { key: "swarmboot.image", value: image.into(), why: "the part after @ must be a version number" })?))
        }
        None => (image, None),
    };
    if image.is_empty() {
        return Err(CmdlineError::Bad { key: "swarmboot.image", value: image.into(), why: "is empty" });
    }
    let key = value(&w, "swarmboot.key").map(str::to_string);
    let stall = match value(&w, "swarmboot.stall") {
        Some(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| CmdlineError::Bad { key: "swarmboot.stall", value: s.into(), why: "must be whole seconds" })?),
        None => Duration::from_secs(10),
    };
    let swarm = match value(&w, "swarmboot.swarm") {
        None | Some("1") => true,
        Some("0") => false,
        Some(v) => return Err(CmdlineError::Bad { key: "swarmboot.swarm", value: v.into(), why: "must be 0 (HTTP only) or 1" }),
    };
    Ok(StubArgs { server: server.trim_end_matches('/').to_string(), image: image.to_string(), version, key, stall, swarm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_boot_script_writes() {
        let a = parse("BOOT_IMAGE=stub console=ttyS0 swarmboot.server=http://10.77.0.1:8080/ swarmboot.image=elchos@3 swarmboot.key=ab12 quiet").unwrap();
        assert_eq!(
            a,
            StubArgs { server: "http://10.77.0.1:8080".into(), image: "elchos".into(), version: Some(3), key: Some("ab12".into()), stall: Duration::from_secs(10), swarm: true }
        );
        let a = parse("swarmboot.server=http://s swarmboot.image=x swarmboot.stall=3 swarmboot.image=y").unwrap();
        assert_eq!((a.image.as_str(), a.version, a.key, a.stall), ("y", None, None, Duration::from_secs(3)), "the last one wins");
    }

    #[test]
    fn says_what_is_missing_or_wrong() {
        assert_eq!(parse("console=ttyS0"), Err(CmdlineError::Missing("swarmboot.server")));
        assert_eq!(parse("swarmboot.server=http://s"), Err(CmdlineError::Missing("swarmboot.image")));
        assert!(matches!(parse("swarmboot.server=ftp://s swarmboot.image=x"), Err(CmdlineError::Bad { key: "swarmboot.server", .. })));
        assert!(matches!(parse("swarmboot.server=http://s swarmboot.image=x@latest"), Err(CmdlineError::Bad { key: "swarmboot.image", .. })));
        assert!(matches!(parse("swarmboot.server=http://s swarmboot.image=x swarmboot.stall=1s"), Err(CmdlineError::Bad { key: "swarmboot.stall", .. })));
        assert!(!parse("swarmboot.server=http://s swarmboot.image=x swarmboot.swarm=0").unwrap().swarm);
        assert!(matches!(parse("swarmboot.server=http://s swarmboot.image=x swarmboot.swarm=no"), Err(CmdlineError::Bad { key: "swarmboot.swarm", .. })));
        let e = parse("").unwrap_err().to_string();
        assert!(e.contains("swarmboot.server="), "{e}");
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(words(r#"a "b c" d="e f"  g"#), vec!["a", "b c", "d=e f", "g"]);
        assert_eq!(words("  "), Vec::<String>::new());
        assert_eq!(words(r#"x="""#), vec!["x="]);
    }
}
