//! What the stub trusts, decided without I/O: which keys a manifest may be signed with, and
//! whether the kernel command line it runs with is the one the server signed.
//!
//! The stub's kernel command line comes from the server's boot script, fetched by iPXE over
//! plain HTTP: whoever can answer for the server (a rogue proxyDHCP, a man in the middle) can
//! write it. So nothing on it may widen what the stub trusts. The key built into the stub
//! (`swarmboot stub build` puts the server's key into its initramfs) is the only key; the
//! command line's `swarmboot.key=` may name one of the built-in keys, never add one. And
//! where the stub hands the machine over with its own kernel (switch_root), the words that
//! kernel was started with stay in force for the booted system (systemd reads them from
//! `/proc/cmdline`: `systemd.unit=`, `systemd.debug_shell`, …), so they must be the
//! manifest's, which is signed.

use swarmboot_manifest::PublicKey;

use crate::cmdline::words;

/// The keys a manifest may be signed with, and what to tell the console about the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub keys: Vec<PublicKey>,
    /// Said on the console: a `swarmboot.key=` that was not used, and why.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("this stub has no key built in (/etc/swarmboot/server.pub), and a key on the kernel command line is never trusted: build the stub with `swarmboot stub build` on the server, which puts the server's key into it")]
    NoBuiltInKey,
}

/// The keys to trust: the built-in ones, or the one of them `named` (the command line's
/// `swarmboot.key=`) names. A named key that is not built in is ignored, with a note.
pub fn trusted_keys(built_in: &[PublicKey], named: Option<&str>) -> Result<Trusted, TrustError> {
    if built_in.is_empty() {
        return Err(TrustError::NoBuiltInKey);
    }
    let all = Trusted { keys: built_in.to_vec(), note: None };
    let Some(named) = named else { return Ok(all) };
    match PublicKey::from_hex(named) {
        Ok(k) if built_in.contains(&k) => Ok(Trusted { keys: vec![k], note: None }),
        Ok(k) => Ok(Trusted {
            note: Some(format!(
                "swarmboot.key= names key {}, which is not built into this stub: ignored; trusting only the built-in key {}",
                k.fingerprint(),
                fingerprints(built_in)
            )),
            ..all
        }),
        Err(e) => Ok(Trusted { note: Some(format!("swarmboot.key= is not a key ({e}): ignored; trusting only the built-in key {}", fingerprints(built_in))), ..all }),
    }
}

fn fingerprints(keys: &[PublicKey]) -> String {
    keys.iter().map(PublicKey::fingerprint).collect::<Vec<_>>().join(", ")
}

/// Words the boot path adds that are not the image's: the stub's own `swarmboot.*`
/// arguments, and what iPXE (`initrd=`) and boot loaders (`BOOT_IMAGE=`) put there.
fn is_boot_path_word(w: &str) -> bool {
    w.starts_with("swarmboot.") || w.starts_with("initrd=") || w.starts_with("BOOT_IMAGE=")
}

/// How a running kernel command line differs from the signed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the kernel command line is not the one the server signed for this image: {}", describe(.extra, .missing))]
pub struct UnsignedCommandLine {
    /// Words it has that the signed line does not.
    pub extra: Vec<String>,
    /// Words of the signed line it lacks.
    pub missing: Vec<String>,
}

fn describe(extra: &[String], missing: &[String]) -> String {
    let mut parts = Vec::new();
    if !extra.is_empty() {
        parts.push(format!("it adds {}", extra.join(" ")));
    }
    if !missing.is_empty() {
        parts.push(format!("it lacks {}", missing.join(" ")));
    }
    if parts.is_empty() {
        parts.push("its words are in another order".into());
    }
    parts.join("; ")
}

/// Checks the command line the stub's kernel runs with (`/proc/cmdline`) against the
/// manifest's: the same words in the same order once the boot path's own words are left out.
pub fn check_command_line(running: &str, signed: &str) -> Result<(), UnsignedCommandLine> {
    let keep = |line: &str| words(line).into_iter().filter(|w| !is_boot_path_word(w)).collect::<Vec<String>>();
    let (running, signed) = (keep(running), keep(signed));
    if running == signed {
        return Ok(());
    }
    let extra = running.iter().filter(|w| !signed.contains(w)).cloned().collect();
    let missing = signed.iter().filter(|w| !running.contains(w)).cloned().collect();
    Err(UnsignedCommandLine { extra, missing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_manifest::SigningKey;

    fn key() -> PublicKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap().public()
    }

    #[test]
    fn only_built_in_keys_are_trusted() {
        let (built, other, second) = (key(), key(), key());
        // No key on the command line: the built-in ones.
        assert_eq!(trusted_keys(&[built], None).unwrap(), Trusted { keys: vec![built], note: None });
        // The command line names the built-in key: it alone.
        assert_eq!(trusted_keys(&[built, second], Some(&second.to_hex())).unwrap(), Trusted { keys: vec![second], note: None });
        // The command line names another key (a rewritten boot script): not added.
        let t = trusted_keys(&[built], Some(&other.to_hex())).unwrap();
        assert_eq!(t.keys, vec![built]);
        let note = t.note.unwrap();
        assert!(note.contains(&other.fingerprint()) && note.contains(&built.fingerprint()) && note.contains("ignored"), "{note}");
        // Junk on the command line: the same.
        let t = trusted_keys(&[built], Some("zz")).unwrap();
        assert_eq!(t.keys, vec![built]);
        assert!(t.note.unwrap().contains("not a key"));
        // No key built in: nothing is trusted, whatever the command line says.
        assert_eq!(trusted_keys(&[], Some(&other.to_hex())), Err(TrustError::NoBuiltInKey));
        assert_eq!(trusted_keys(&[], None), Err(TrustError::NoBuiltInKey));
    }

    #[test]
    fn the_running_command_line_must_be_the_signed_one() {
        let signed = "console=ttyS0 panic=-1 marker=v1 swarmboot.stall=600";
        let script = format!("initrd=initrd.img {signed} swarmboot.server=http://10.77.0.1:8080 swarmboot.image=elchos@1 swarmboot.key=ab");
        assert_eq!(check_command_line(&script, signed), Ok(()));
        assert_eq!(check_command_line(&format!("BOOT_IMAGE=/vmlinuz {script}"), signed), Ok(()));
        // A word added by whoever wrote the script: refused, named.
        let e = check_command_line(&format!("{script} systemd.debug_shell"), signed).unwrap_err();
        assert_eq!(e.extra, vec!["systemd.debug_shell".to_string()]);
        assert!(e.to_string().contains("it adds systemd.debug_shell"), "{e}");
        // A word of the signed line changed or dropped.
        let e = check_command_line(&script.replace("panic=-1", "panic=0"), signed).unwrap_err();
        assert_eq!((e.extra, e.missing), (vec!["panic=0".to_string()], vec!["panic=-1".to_string()]));
        let e = check_command_line(&script.replace(" marker=v1", ""), signed).unwrap_err();
        assert!(e.to_string().contains("it lacks marker=v1"), "{e}");
        // The same words in another order (the last `key=` wins for the kernel): refused too.
        let e = check_command_line("panic=-1 console=ttyS0 marker=v1", signed).unwrap_err();
        assert!(e.to_string().contains("another order"), "{e}");
        // Quoting is the kernel's: a quoted value is one word.
        assert_eq!(check_command_line("initrd=x a=\"b c\"", "a=\"b c\""), Ok(()));
    }
}
