//! Writing the config file: `setup` and `assign` edit it in place (toml_edit) and replace it
//! whole, so the running server never reads half a file on SIGHUP.

use std::path::Path;

use anyhow::Context;

/// Writes via a temporary file in the same directory and a rename (keeping the old mode).
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.setup-tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("swarmboot.toml")));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o644);
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
