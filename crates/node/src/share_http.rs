//! The node's HTTP file sharing, as plain functions: what a request path names, opening it
//! without ever leaving its share, and the directory listing (ranges and content types are
//! `swarmboot_httpd::ranges`'). The async shell wires them to hyper.
//!
//! The disks are strangers': a share may hold a link to `/etc/shadow` or `../../..`. Paths are
//! checked as text (no `..`, no NUL, no empty or dot components) *and* opened with `openat2`
//! under `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` from the share's directory, so the kernel
//! refuses any resolution that leaves it, whatever links the disk holds; links that stay
//! inside the share work.

use std::os::fd::{AsFd, OwnedFd};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use swarmboot_httpd::html::escape;

/// Longest request path considered (longer ones are refused).
pub const MAX_PATH: usize = 4096;
/// Most path components.
pub const MAX_DEPTH: usize = 64;

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: the node's status page.
    Status,
    /// `/api/v1/status`: the same as JSON.
    StatusJson,
    /// `/<share>/<components…>` (no components: the share's top directory).
    Share { share: String, path: Vec<String> },
}

/// Why a path is refused (answered 400 or 404, never served).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("longer than {MAX_PATH} bytes or {MAX_DEPTH} components")]
    TooLong,
    #[error("not UTF-8 once decoded")]
    NotUtf8,
    #[error("a component that is empty, `.`, `..`, or holds `/`, `\\` or NUL")]
    Component,
}

/// Reads a request path (without its query): percent-decoded component by component, so an
/// encoded `/` (`%2F`) is refused rather than becoming a separator.
pub fn route(path: &str) -> Result<Route, BadPath> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.len() > MAX_PATH {
        return Err(BadPath::TooLong);
    }
    match path {
        "" | "/" => return Ok(Route::Status),
        "/api/v1/status" => return Ok(Route::StatusJson),
        _ => {}
    }
    let mut parts = Vec::new();
    // A trailing slash names a directory: no empty last component.
    for raw in path.trim_start_matches('/').strip_suffix('/').unwrap_or(path.trim_start_matches('/')).split('/') {
        if parts.len() == MAX_DEPTH {
            return Err(BadPath::TooLong);
        }
        let c = percent_decode_str(raw).decode_utf8().map_err(|_| BadPath::NotUtf8)?;
        if c.is_empty() || c == "." || c == ".." || c.contains(['/', '\\', '\0']) {
            return Err(BadPath::Component);
        }
        parts.push(c.into_owned());
    }
    let share = parts.remove(0);
    Ok(Route::Share { share, path: parts })
}

/// Opens `path` under the share directory `root` for reading; the kernel refuses a path that
/// would resolve outside it (through `..` or any link) with `EXDEV`.
pub fn open_beneath(root: impl AsFd, path: &[String]) -> std::io::Result<OwnedFd> {
    let rel = if path.is_empty() { ".".to_string() } else { path.join("/") };
    Ok(openat2(root, rel.as_str(), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK, Mode::empty(), ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS)?)
}

/// A directory entry for the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub dir: bool,
    pub size: u64,
}

/// Characters kept as they are in a link (the rest percent-encoded).
const LINK: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The listing of `/<share>/<path…>/`: directories first, then files, by name; names escaped
/// for HTML and encoded in links (a file called `<script>` or `a?b#c` stays a file).
pub fn listing_html(share: &str, path: &[String], entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    let title = escape(&format!("/{share}/{}", path.iter().map(|p| format!("{p}/")).collect::<String>()));
    let mut h = format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\n<h1>{title}</h1>\n<table>\n");
    h.push_str("<tr><td><a href=\"../\">../</a></td><td></td></tr>\n");
    for e in sorted {
        let link = utf8_percent_encode(&e.name, LINK).to_string() + if e.dir { "/" } else { "" };
        let shown = escape(&e.name) + if e.dir { "/" } else { "" };
        let size = if e.dir { String::new() } else { e.size.to_string() };
        h.push_str(&format!("<tr><td><a href=\"{link}\">{shown}</a></td><td align=\"right\">{size}</td></tr>\n"));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

/// What all downloads together may hold in read buffers at once (a chunk read and one
/// being sent each).
pub const READ_BUDGET: usize = 32 << 20;

/// How much a download reads at a time while `under_way` downloads run: large when few (each
/// read is a trip to the blocking pool), small when many, so buffers stay within
/// [`READ_BUDGET`] twice over even when every client stops reading.
pub fn read_chunk(under_way: usize) -> usize {
    (READ_BUDGET / under_way.max(1)).clamp(16 << 10, 512 << 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use swarmboot_httpd::ranges::content_type;

    fn share(s: &str, p: &[&str]) -> Route {
        Route::Share { share: s.into(), path: p.iter().map(|x| x.to_string()).collect() }
    }

    #[test]
    fn paths_name_a_share_and_never_climb_out() {
        assert_eq!(route("/"), Ok(Route::Status));
        assert_eq!(route("/api/v1/status"), Ok(Route::StatusJson));
        assert_eq!(route("/music/"), Ok(share("music", &[])));
        assert_eq!(route("/music/a%20b/c.ogg?x=1"), Ok(share("music", &["a b", "c.ogg"])));
        assert_eq!(route("/music/%C3%A4"), Ok(share("music", &["ä"])));
        for bad in ["/music/../etc/passwd", "/music/%2e%2e/x", "/music/a%2Fb", "/music//x", "/music/./x", "/..", "/music/a%5Cb", "/music/a%00"] {
            assert_eq!(route(bad), Err(BadPath::Component), "{bad}");
        }
        assert_eq!(route("/music/%ff"), Err(BadPath::NotUtf8));
        assert_eq!(route(&format!("/{}", "a/".repeat(MAX_DEPTH + 1))), Err(BadPath::TooLong));
        assert_eq!(route(&"/a".repeat(MAX_PATH)), Err(BadPath::TooLong));
    }

    #[test]
    fn links_on_the_disk_cannot_lead_out_of_the_share() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("secret");
        std::fs::write(&outside, b"the node's own").unwrap();
        let root = t.path().join("share");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file.txt"), b"shared").unwrap();
        symlink(&outside, root.join("absolute")).unwrap();
        symlink("../secret", root.join("relative")).unwrap();
        symlink("/proc/self/root/etc/hostname", root.join("magic")).unwrap();
        symlink("sub/file.txt", root.join("inside")).unwrap();
        symlink("../../secret", root.join("sub/deeper")).unwrap();
        let dir = rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let read = |p: &[&str]| -> std::io::Result<Vec<u8>> {
            let fd = open_beneath(&dir, &p.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
            let mut v = Vec::new();
            std::fs::File::from(fd).read_to_end(&mut v)?;
            Ok(v)
        };
        assert_eq!(read(&["sub", "file.txt"]).unwrap(), b"shared");
        assert_eq!(read(&["inside"]).unwrap(), b"shared", "a link that stays inside works");
        for p in [&["absolute"][..], &["relative"], &["magic"], &["sub", "deeper"], &[".."], &["sub", "..", ".."]] {
            let e = read(p).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc_exdev()), "{p:?}: {e}");
        }
    }

    fn libc_exdev() -> i32 {
        rustix::io::Errno::XDEV.raw_os_error()
    }

    #[test]
    fn content_types_and_a_listing_that_escapes_names() {
        assert_eq!(content_type("a.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("photo.PNG"), "image/png");
        assert_eq!(content_type("x.unknownext"), "application/octet-stream");
        let h = listing_html(
            "music",
            &["a<b>".into()],
            &[
                Entry { name: "z.ogg".into(), dir: false, size: 5 },
                Entry { name: "<script>alert(1)</script>".into(), dir: false, size: 1 },
                Entry { name: "a?b#c".into(), dir: true, size: 0 },
            ],
        );
        assert!(!h.contains("<script>") && h.contains("&lt;script&gt;"), "{h}");
        assert!(h.contains("href=\"a%3Fb%23c/\""), "{h}");
        assert!(h.find("a?b#c/").unwrap() < h.find("z.ogg").unwrap(), "directories first");
        assert!(h.contains("<title>/music/a&lt;b&gt;/</title>"), "{h}");
    }

    #[test]
    fn downloads_read_large_chunks_when_few_and_small_when_many() {
        assert_eq!(read_chunk(0), 512 << 10);
        assert_eq!(read_chunk(4), 512 << 10);
        assert_eq!(read_chunk(256), 128 << 10);
        assert_eq!(read_chunk(2048), 16 << 10);
        assert_eq!(read_chunk(1 << 20), 16 << 10, "never below 16 KiB");
        for n in [1, 10, 64, 65, 300, 2048] {
            assert!(n * read_chunk(n) <= READ_BUDGET.max(n * (16 << 10)), "{n}");
        }
    }
}
