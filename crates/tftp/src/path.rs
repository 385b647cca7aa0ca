//! Requested file names → safe relative paths. Refused: NUL and control bytes, backslashes,
//! `..` components, names that are not UTF-8. A leading `/` is taken relative to the root (many
//! firmwares send `/undionly.kpxe`). Symlinks are the shell's to check (it resolves the final
//! path and refuses one outside the root).

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("empty file name")]
    Empty,
    #[error("file name is not UTF-8")]
    NotUtf8,
    #[error("file name contains a control byte")]
    ControlByte,
    #[error("file name contains a backslash")]
    Backslash,
    #[error("file name climbs out of the root with ..")]
    ParentComponent,
}

/// The components of a safe relative path, joined with `/`.
pub fn resolve(name: &[u8]) -> Result<String, BadPath> {
    let s = std::str::from_utf8(name).map_err(|_| BadPath::NotUtf8)?;
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(BadPath::ControlByte);
    }
    if s.contains('\\') {
        return Err(BadPath::Backslash);
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(BadPath::ParentComponent),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(BadPath::Empty);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert_eq!(resolve(b"undionly.kpxe").unwrap(), "undionly.kpxe");
        assert_eq!(resolve(b"/undionly.kpxe").unwrap(), "undionly.kpxe");
        assert_eq!(resolve(b"//a/./b//c").unwrap(), "a/b/c");
        assert_eq!(resolve(b"a..b/c..").unwrap(), "a..b/c..");
    }

    #[test]
    fn traversal_and_oddities_are_refused() {
        assert_eq!(resolve(b"../etc/passwd"), Err(BadPath::ParentComponent));
        assert_eq!(resolve(b"/a/../../etc/passwd"), Err(BadPath::ParentComponent));
        assert_eq!(resolve(b"a/.."), Err(BadPath::ParentComponent));
        assert_eq!(resolve(b"..\\..\\boot.ini"), Err(BadPath::Backslash));
        assert_eq!(resolve(b"a\\b"), Err(BadPath::Backslash));
        assert_eq!(resolve(b"a\0b"), Err(BadPath::ControlByte));
        assert_eq!(resolve(b"a\nb"), Err(BadPath::ControlByte));
        assert_eq!(resolve(b"\xff\xfe"), Err(BadPath::NotUtf8));
        assert_eq!(resolve(b""), Err(BadPath::Empty));
        assert_eq!(resolve(b"/"), Err(BadPath::Empty));
        assert_eq!(resolve(b"./."), Err(BadPath::Empty));
    }
}
