//! `swarmboot mount SERVER DIR`: the fleet's namespace as a read-only file system (FUSE) on
//! any Linux machine, elchOS nodes included. Listings come from the server's index
//! (`/api/v1/tree/…`, kept a few seconds); a file's bytes come by HTTP ranges straight from a
//! node that holds it (`swarmboot_namespace::reading`: a window that grows for sequential
//! reads, only what is asked for reads elsewhere; the next source when one fails, mid-file
//! included). Runs until interrupted, then unmounts.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};
use serde::Deserialize;
use swarmboot_namespace::reading::{Readahead, Sources};
use tracing::{info, warn};

#[derive(Args)]
pub struct MountArgs {
    /// The boot server (`http://SERVER:8080`).
    server: String,
    /// Where to mount (an empty directory).
    dir: PathBuf,
    /// Let other users read it too (root, or `user_allow_other` in /etc/fuse.conf).
    #[arg(long)]
    allow_other: bool,
}

/// How long a listing is kept before it is asked for again.
const LISTING_TTL: Duration = Duration::from_secs(5);
/// Readahead for sequential reads: from this up to [`READAHEAD_MAX`].
const READAHEAD_MIN: u64 = 128 << 10;
const READAHEAD_MAX: u64 = 8 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// `/api/v1/tree` as the mount reads it.
#[derive(Debug, Deserialize)]
struct Tree {
    entries: Vec<TreeEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct TreeEntry {
    path: String,
    name: String,
    kind: String,
    size: u64,
    mtime: i64,
    source_urls: Vec<SourceUrls>,
}

#[derive(Debug, Clone, Deserialize)]
struct SourceUrls {
    urls: Vec<String>,
}

/// One inode: a namespace path and what the index said of it.
#[derive(Debug, Clone)]
struct Node {
    path: String,
    dir: bool,
    size: u64,
    mtime: i64,
}

type Fetch = tokio::task::JoinHandle<Result<bytes::Bytes, swarmboot_fetch::http::HttpError>>;

struct Open {
    size: u64,
    sources: Sources,
    readahead: Readahead,
    /// Bytes held, in fetched pieces (start, bytes), in order and contiguous.
    held: std::collections::VecDeque<(u64, bytes::Bytes)>,
    /// The next window, being fetched while the held bytes are read: (start, end, from, fetch).
    ahead: Option<(u64, u64, String, Fetch)>,
    /// Where the reader's last read ended, and how many reads in a row began there.
    last_end: u64,
    in_a_row: u32,
}

impl Open {
    fn held_end(&self) -> u64 {
        self.held.back().map_or(0, |(s, b)| s + b.len() as u64)
    }

    /// `offset..end` from the held pieces, if they hold all of it (no copy when one piece does).
    fn copy(&self, offset: u64, end: u64) -> Option<bytes::Bytes> {
        let first = self.held.front()?.0;
        if offset < first || end > self.held_end() {
            return None;
        }
        if let Some((s, b)) = self.held.iter().find(|(s, b)| *s <= offset && end <= s + b.len() as u64) {
            return Some(b.slice((offset - s) as usize..(end - s) as usize));
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (s, b) in &self.held {
            let e = s + b.len() as u64;
            if e <= offset || *s >= end {
                continue;
            }
            out.extend_from_slice(&b[(offset.max(*s) - s) as usize..(end.min(e) - s) as usize]);
        }
        Some(out.into())
    }

    /// Drops the pieces wholly before `offset` (read already), or everything if `offset` is
    /// elsewhere.
    fn forget_before(&mut self, offset: u64) {
        if offset < self.held.front().map_or(0, |h| h.0) || offset > self.held_end() {
            self.held.clear();
            return;
        }
        while self.held.front().is_some_and(|(s, b)| s + (b.len() as u64) <= offset) {
            self.held.pop_front();
        }
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    listings: HashMap<u64, (Instant, Vec<(String, u64)>)>,
    open: HashMap<u64, Open>,
    next_fh: u64,
}

struct NamespaceFs {
    server: String,
    rt: tokio::runtime::Runtime,
    state: Mutex<State>,
    uid: u32,
    gid: u32,
}

fn escaped(path: &str) -> String {
    path.split('/').filter(|p| !p.is_empty()).map(|p| swarmboot_urls::escape(p.as_bytes())).collect::<Vec<_>>().join("/")
}

impl NamespaceFs {
    fn attr(&self, ino: u64, n: &Node) -> FileAttr {
        let t = UNIX_EPOCH + Duration::from_secs(n.mtime.max(0) as u64);
        FileAttr {
            ino: INodeNo(ino),
            size: n.size,
            blocks: n.size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: if n.dir { FileType::Directory } else { FileType::RegularFile },
            perm: if n.dir { 0o555 } else { 0o444 },
            nlink: if n.dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    /// The inode of `path`, made if new (its attributes replaced).
    fn inode(st: &mut State, n: Node) -> u64 {
        if let Some(ino) = st.by_path.get(&n.path).copied() {
            st.nodes.insert(ino, n);
            return ino;
        }
        let ino = st.nodes.len() as u64 + 2;
        st.by_path.insert(n.path.clone(), ino);
        st.nodes.insert(ino, n);
        ino
    }

    fn tree(&self, path: &str) -> anyhow::Result<Tree> {
        let url = if path.is_empty() {
            format!("{}{}", self.server, swarmboot_urls::routes::TREE_ROOT)
        } else {
            format!("{}{}/{}", self.server, swarmboot_urls::routes::TREE_ROOT, escaped(path))
        };
        let body = self.rt.block_on(swarmboot_fetch::http::get(&url, None, 64 << 20, FETCH_TIMEOUT))?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// The directory `ino`'s entries (name, inode), from the index unless asked for lately.
    fn listing(&self, ino: u64) -> Result<Vec<(String, u64)>, Errno> {
        let path = {
            let st = self.state.lock().expect("state");
            if let Some((at, l)) = st.listings.get(&ino) {
                if at.elapsed() < LISTING_TTL {
                    return Ok(l.clone());
                }
            }
            match ino {
                1 => String::new(),
                _ => st.nodes.get(&ino).filter(|n| n.dir).map(|n| n.path.clone()).ok_or(Errno::ENOTDIR)?,
            }
        };
        let tree = self.tree(&path).map_err(|e| {
            warn!(path = %path, error = %e, "listing from the server failed");
            Errno::EIO
        })?;
        let mut st = self.state.lock().expect("state");
        let entries: Vec<(String, u64)> = tree
            .entries
            .into_iter()
            .filter(|e| !e.name.is_empty() && !e.name.contains('/'))
            .map(|e| {
                let n = Node { path: e.path, dir: e.kind == "dir", size: e.size, mtime: e.mtime };
                (e.name, Self::inode(&mut st, n))
            })
            .collect();
        st.listings.insert(ino, (Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// The HTTP URLs of a file's sources, asked of the server now.
    fn sources(&self, path: &str) -> Result<(u64, Vec<String>), Errno> {
        let tree = self.tree(path).map_err(|_| Errno::ENOENT)?;
        let e = tree.entries.into_iter().next().ok_or(Errno::ENOENT)?;
        let urls = e.source_urls.iter().filter_map(|s| s.urls.iter().find(|u| u.starts_with("http://")).cloned()).collect::<Vec<_>>();
        if urls.is_empty() {
            return Err(Errno::EIO);
        }
        Ok((e.size, urls))
    }

    /// `len` bytes at `offset` of an open file: from what is held, else from the window being
    /// fetched ahead, else fetched now (from the next source when one fails); then, for a
    /// sequential reader, the next window is fetched ahead while this one is read.
    fn read_at(&self, fh: u64, offset: u64, len: u64) -> Result<bytes::Bytes, Errno> {
        {
            let mut st = self.state.lock().expect("state");
            let o = st.open.get_mut(&fh).ok_or(Errno::EBADF)?;
            o.in_a_row = if offset == o.last_end { o.in_a_row.saturating_add(1) } else { 0 };
            o.last_end = offset.saturating_add(len);
        }
        loop {
            let mut st = self.state.lock().expect("state");
            let o = st.open.get_mut(&fh).ok_or(Errno::EBADF)?;
            let end = offset.saturating_add(len).min(o.size);
            if offset >= end {
                return Ok(bytes::Bytes::new());
            }
            if let Some(bytes) = o.copy(offset, end) {
                o.forget_before(offset);
                self.fetch_ahead(o);
                return Ok(bytes);
            }
            // The window ahead, if it starts where the held bytes end and the read needs it.
            let held_end = o.held_end();
            let covers = o.held.front().is_some_and(|h| h.0 <= offset) && offset <= held_end;
            if let Some((start, stop, from, fetch)) = o.ahead.take() {
                if start == held_end && covers && end <= stop {
                    drop(st);
                    let got = self.rt.block_on(fetch).map_err(|_| Errno::EIO)?;
                    let mut st = self.state.lock().expect("state");
                    let o = st.open.get_mut(&fh).ok_or(Errno::EBADF)?;
                    match got {
                        Ok(b) => o.held.push_back((start, b)),
                        Err(e) => {
                            warn!(url = %from, at = start, error = %e, "a source failed: the next one takes over");
                            o.sources.failed(&from).ok_or(Errno::EIO)?;
                        }
                    }
                    continue;
                }
                fetch.abort();
            }
            // Fetch now: from the first byte not held.
            let first = if covers { held_end } else { offset };
            if !covers {
                o.held.clear();
            }
            let (s, e) = o.readahead.range_for(first, end - first, o.size);
            let url = o.sources.current().ok_or(Errno::EIO)?.to_string();
            drop(st);
            let got = self.rt.block_on(swarmboot_fetch::http::get(&url, Some((s, e)), (e - s) as usize, FETCH_TIMEOUT));
            let mut st = self.state.lock().expect("state");
            let o = st.open.get_mut(&fh).ok_or(Errno::EBADF)?;
            match got {
                Ok(b) => o.held.push_back((s, b)),
                Err(err) => {
                    warn!(%url, at = s, error = %err, "a source failed: the next one takes over");
                    o.sources.failed(&url).ok_or(Errno::EIO)?;
                }
            }
        }
    }

    /// Starts fetching the next window when the reader reads on where it left off (twice in
    /// a row at least) and none is under way.
    fn fetch_ahead(&self, o: &mut Open) {
        let held_end = o.held_end();
        if o.in_a_row < 2 || o.ahead.is_some() || held_end >= o.size || o.held.is_empty() {
            return;
        }
        let (s, e) = o.readahead.range_for(held_end, 1, o.size);
        if e - s <= 1 {
            // Not sequential: the readahead gave only what a read would ask.
            return;
        }
        let Some(url) = o.sources.current().map(str::to_string) else { return };
        let from = url.clone();
        let fetch = self.rt.spawn(async move { swarmboot_fetch::http::get(&url, Some((s, e)), (e - s) as usize, FETCH_TIMEOUT).await });
        o.ahead = Some((s, e, from, fetch));
    }
}

const TTL: Duration = Duration::from_secs(1);

impl Filesystem for NamespaceFs {
    /// Requests of up to 1 MiB (the kernel's page count per request follows the larger of
    /// max_write and max_readahead); the kernel reads small random reads as they are.
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str() else { return reply.error(Errno::ENOENT) };
        match self.listing(parent.0) {
            Ok(l) => match l.iter().find(|(n, _)| n == name) {
                Some((_, ino)) => {
                    let st = self.state.lock().expect("state");
                    let n = st.nodes.get(ino).cloned();
                    drop(st);
                    match n {
                        Some(n) => reply.entry(&TTL, &self.attr(*ino, &n), fuser::Generation(0)),
                        None => reply.error(Errno::ENOENT),
                    }
                }
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == 1 {
            return reply.attr(&TTL, &self.attr(1, &Node { path: String::new(), dir: true, size: 0, mtime: 0 }));
        }
        let n = self.state.lock().expect("state").nodes.get(&ino.0).cloned();
        match n {
            Some(n) => reply.attr(&TTL, &self.attr(ino.0, &n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let l = match self.listing(ino.0) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let dirs: Vec<bool> = {
            let st = self.state.lock().expect("state");
            l.iter().map(|(_, i)| st.nodes.get(i).is_some_and(|n| n.dir)).collect()
        };
        let mut all: Vec<(u64, FileType, String)> = vec![(ino.0, FileType::Directory, ".".into()), (1, FileType::Directory, "..".into())];
        all.extend(l.into_iter().zip(dirs).map(|((name, i), d)| (i, if d { FileType::Directory } else { FileType::RegularFile }, name)));
        for (k, (i, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), (k + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = self.state.lock().expect("state").nodes.get(&ino.0).filter(|n| !n.dir).map(|n| n.path.clone());
        let Some(path) = path else { return reply.error(Errno::EISDIR) };
        match self.sources(&path) {
            Ok((size, urls)) => {
                let mut st = self.state.lock().expect("state");
                st.next_fh += 1;
                let fh = st.next_fh;
                st.open.insert(
                    fh,
                    Open {
                        size,
                        sources: Sources::new(urls),
                        readahead: Readahead::new(READAHEAD_MIN, READAHEAD_MAX),
                        held: Default::default(),
                        ahead: None,
                        last_end: 0,
                        in_a_row: 0,
                    },
                );
                // Direct: reads come as the reader asks them (up to 1 MiB), not in page-cache
                // sized pieces; this file system does its own readahead and the kernel none.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, size: u32, _flags: OpenFlags, _lock: Option<LockOwner>, reply: ReplyData) {
        tracing::trace!(offset, size, "read");
        match self.read_at(fh.0, offset, u64::from(size)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    /// Nothing is written: nothing to flush.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock: LockOwner, reply: fuser::ReplyEmpty) {
        reply.ok();
    }

    fn release(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, _lock: Option<LockOwner>, _flush: bool, reply: fuser::ReplyEmpty) {
        if let Some(Open { ahead: Some((.., fetch)), .. }) = self.state.lock().expect("state").open.remove(&fh.0) {
            fetch.abort();
        }
        reply.ok();
    }
}

pub fn run(a: MountArgs) -> anyhow::Result<()> {
    let server = a.server.trim_end_matches('/').to_string();
    // Two workers: windows fetched ahead run beside the file system's own thread.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let fs = NamespaceFs { server: server.clone(), rt, state: Mutex::new(State::default()), uid: rustix::process::getuid().as_raw(), gid: rustix::process::getgid().as_raw() };
    fs.tree("").with_context(|| format!("asking {server} for the namespace (is it a swarmboot server?)"))?;
    let mut cfg = fuser::Config::default();
    // Unmounted when this process ends (SIGTERM, Ctrl-C); a process killed outright leaves a
    // dead mount for `umount DIR`.
    cfg.mount_options.extend([
        MountOption::RO,
        MountOption::FSName("swarmboot".into()),
        MountOption::Subtype("swarmboot".into()),
        MountOption::NoExec,
        MountOption::NoSuid,
        MountOption::NoDev,
    ]);
    if a.allow_other {
        cfg.acl = fuser::SessionACL::All;
    }
    let session = fuser::spawn_mount(fs, &a.dir, &cfg)
        .with_context(|| format!("mounting at {} (an empty directory; FUSE needs /dev/fuse, and fusermount3 when not root: apt install fuse3)", a.dir.display()))?;
    info!(server = %server, at = %a.dir.display(), "mounted read-only; Ctrl-C or SIGTERM unmounts");
    println!("{} mounted at {}", server, a.dir.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    drop(session);
    info!(at = %a.dir.display(), "unmounted");
    Ok(())
}
