//! The fetch client: what the stub's init and `swarmboot fetch` run to get an image.
//!
//! 1. GET `<server>/manifest/<name>[/<version>]?nonce=<random>`, open the signed envelope with
//!    the keys the caller trusts (never a key the network offers), check it names the image
//!    asked for, and that the server's signed freshness statement for this nonce vouches for it
//!    as the latest (or as the version asked for by number): [`check_fresh`].
//! 2. For each file, GET `<server>/torrent/<sha256>.torrent` and check that its info hash is
//!    the one the *signed* manifest lists (so every piece hash is vouched for by the signature),
//!    its name is the SHA-256 and its length the manifest's size; and GET
//!    `<server>/pieces/<sha256>`, the SHA-256 of each piece signed with the manifest's key
//!    (`swarmboot_manifest::piece_hashes`), taken when it names this file, torrent and piece
//!    layout. Nothing is written before the manifest and every torrent passed.
//! 3. Download every file (or those of [`FetchConfig::roles`]) at once through the swarm (one
//!    engine per file, all on one `PeerListener`, announcing to the server's tracker). If no
//!    byte arrives for `stall_timeout`, or less than `min_swarm_rate` over a whole
//!    `stall_timeout` ([`stall::StallWatch`] decides), fetch the missing
//!    pieces from `<server>/blob/<sha256>`
//!    with HTTP Range (a few MiB per request, whole pieces, each checked like a peer's and
//!    handed to the engine, which shares it) — so a boot never hangs on the swarm. Pieces are
//!    checked as they arrive: by their signed SHA-256, or (no list: an older server) by the
//!    torrent's SHA-1.
//! 4. A file without the signed list is checked whole against the manifest's SHA-256 (a
//!    file with it was, piece by piece, as it came); link each under its role name
//!    (`kernel`, `initrd`, `rootfs`, `ltsp`), write `manifest.signed` beside them.
//!
//! [`fetch`] is those steps in order: `plan`, `fetch_torrents`, `write_torrents`,
//! `start_engines`, `drive` (the loop), `finish`.
//!
//! With [`Fetched`] the engines keep seeding until [`Fetched::shutdown`].
//!
//! Layout of `out`: `<sha256>` (the data, named as in its torrent), `<sha256>.torrent`,
//! `kernel`/`initrd`/`rootfs`/`ltsp` (hard links), `manifest.signed` (the envelope as received).
//! [`VerifiedImage`] seeds such a directory again (after a kexec carried it into another
//! kernel) without fetching or hashing it.

pub mod http;
pub mod stall;
mod verified;

pub use verified::VerifiedImage;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use swarmboot_image::{FileEntry, Manifest, Role};
use swarmboot_manifest::freshness::{self, Nonce};
use swarmboot_manifest::piece_hashes;
use swarmboot_manifest::{OpenError, PublicKey};
use swarmboot_swarm::engine::{random_peer_id, Engine, EngineConfig, EngineError, PeerListener};
use swarmboot_swarm::storage::FileStorage;
use swarmboot_swarm::SwarmConfig;
use swarmboot_torrent::Metainfo;
use swarmboot_urls::Urls;
use tracing::{info, warn};

use crate::stall::{Next, Stall, StallWatch};

pub use http::HttpError;

/// What to fetch, from where, trusting which keys.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The boot server's base URL, `http://host:port`.
    pub server: String,
    pub image: String,
    /// `None`: the latest version.
    pub version: Option<u32>,
    pub out: PathBuf,
    /// Keys a manifest may be signed with.
    pub trusted: Vec<PublicKey>,
    /// Where our engines listen for peers (port 0: any).
    pub listen: SocketAddr,
    /// Bind the swarm's sockets to this interface.
    pub bind_device: Option<String>,
    /// No new byte from the swarm for this long: fetch the missing pieces over HTTP.
    pub stall_timeout: Duration,
    /// Less than this many bytes per second from the swarm over a whole `stall_timeout`:
    /// fetch the missing pieces over HTTP too (a trickle is a stall).
    pub min_swarm_rate: u64,
    /// `false`: HTTP only (no swarm at all).
    pub use_swarm: bool,
    /// Peers we upload to at once.
    pub upload_slots: usize,
    /// Only the files with these roles (`None`: every file of the image). The stub leaves out
    /// the kernel and initramfs when it will switch_root with its own kernel.
    pub roles: Option<Vec<Role>>,
}

/// Peers a fetching machine uploads to at once. 12 beat 8 both in the simulator (20 machines
/// at 100 Mbit/s, 5 seeds: mean p99 1.25 × bound against 1.49 ×) and in the lab's storm (p99
/// 8.4 s against 10.0–10.6 s, two runs each); 16 was between them in the lab (8.8 s).
pub const UPLOAD_SLOTS: usize = 12;

impl FetchConfig {
    pub fn new(server: &str, image: &str, out: &Path, trusted: Vec<PublicKey>) -> Self {
        FetchConfig {
            server: server.trim_end_matches('/').to_string(),
            image: image.to_string(),
            version: None,
            out: out.to_path_buf(),
            trusted,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            bind_device: None,
            stall_timeout: Duration::from_secs(10),
            min_swarm_rate: 512 << 10,
            use_swarm: true,
            upload_slots: UPLOAD_SLOTS,
            roles: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot get {url}: {source}")]
    Http { url: String, source: HttpError },
    #[error("the server has no image {0}")]
    NoSuchImage(String),
    #[error("refusing the manifest of {image}: {source}")]
    Untrusted { image: String, source: OpenError },
    #[error("the signed manifest is not a valid manifest: {0}")]
    BadManifest(String),
    #[error("refusing the manifest of {image}: the server did not vouch for it as fresh: {reason}")]
    NotFresh { image: String, reason: String },
    #[error("refusing {image}@{offered}: the server's signed answer to this request says the latest {image} is version {latest}, so version {offered} is an older manifest replayed by someone between this machine and the server")]
    Stale { image: String, offered: u32, latest: u32 },
    #[error("the signed manifest is for {got}, not {wanted}: refusing it")]
    WrongImage { wanted: String, got: String },
    #[error("the torrent of {role} ({sha256}) is not valid: {reason}")]
    BadTorrent { role: String, sha256: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{role} ({path}) does not match the SHA-256 in the signed manifest after download: deleted")]
    Sha256Mismatch { role: String, path: PathBuf },
    #[error("the server sent bytes for {role} that do not match the signed piece hashes ({reason})")]
    BadHttpData { role: String, reason: String },
    #[error("swarm: {0}")]
    Engine(#[from] EngineError),
}

/// Progress of the whole image, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FetchProgress {
    pub bytes_have: u64,
    pub total: u64,
    /// Bytes already in the files when the fetch began whose pieces verified (a resumed
    /// fetch, files copied in beforehand): what the fetch did not have to get.
    pub resumed: u64,
    /// Payload bytes received from peers (duplicates included).
    pub from_peers: u64,
    /// Of those, from the boot server's own seed (peers at the server's address; sampled, so
    /// a connection that came and went between samples counts what was seen of it).
    pub from_server_seed: u64,
    /// Bytes received over HTTP (Range fallback, or files without a torrent).
    pub from_http: u64,
    pub uploaded: u64,
    /// Pieces from peers that failed their hash check (those peers are dropped).
    pub hash_failures: u64,
    pub peers: usize,
    /// Peers sending to us now.
    pub sources: usize,
    pub elapsed: Duration,
    /// Fetching over HTTP because the swarm stalled.
    pub fallback: bool,
}

impl FetchProgress {
    /// The progress line both the CLI and the stub's console show, given the current rate:
    /// `[#####...............]  27% 11.7/42.7 MiB 11.0 MB/s 9 peers (7 sending) ETA 3s`.
    pub fn line(&self, rate: f64) -> String {
        let pct = self.bytes_have * 100 / self.total.max(1);
        let filled = (pct / 5) as usize;
        let eta = if rate > 0.0 { format!("{:.0}s", (self.total - self.bytes_have) as f64 / rate) } else { "-".into() };
        format!(
            "[{}{}] {pct:3}% {:.1}/{:.1} MiB {:.1} MB/s {} peers ({} sending) ETA {eta}{}",
            "#".repeat(filled),
            ".".repeat(20 - filled),
            self.bytes_have as f64 / 1048576.0,
            self.total as f64 / 1048576.0,
            rate / 1e6,
            self.peers,
            self.sources,
            if self.fallback { " [swarm stalled: HTTP]" } else { "" }
        )
    }
}

/// The verified manifest.
#[derive(Debug, Clone)]
pub struct SignedManifest {
    pub manifest: Manifest,
    pub envelope: Vec<u8>,
    pub signer: PublicKey,
}

/// GETs and verifies the manifest (nothing written): its signature, that it is the image
/// asked for, and that the server vouched for it as fresh in answer to this request (see
/// [`check_fresh`]).
pub async fn fetch_manifest(cfg: &FetchConfig) -> Result<SignedManifest, FetchError> {
    let nonce = Nonce::random().map_err(io_error(Path::new("/dev/urandom")))?;
    let url = Urls::new(&cfg.server).manifest_fresh(&cfg.image, cfg.version, &nonce.to_hex());
    let (envelope, headers) = match http::get_with_headers(&url, None, 1 << 20, Duration::from_secs(30)).await {
        Ok(reply) => reply,
        Err(e) if e.is_not_found() => {
            let what = cfg.version.map_or(cfg.image.clone(), |v| format!("{}@{v}", cfg.image));
            return Err(FetchError::NoSuchImage(what));
        }
        Err(source) => return Err(FetchError::Http { url, source }),
    };
    let signed = verify_manifest(&envelope, cfg)?;
    let statement = headers.get(freshness::HEADER).and_then(|v| v.to_str().ok());
    check_fresh(&signed, statement, nonce, cfg)?;
    Ok(signed)
}

/// The freshness policy (a man in the middle must not be able to answer with an older,
/// validly signed manifest): the reply's statement must be signed by a trusted key, carry our
/// `nonce`, and name this manifest (image, version, SHA-256 of the envelope). Asked for the
/// latest (`cfg.version` is `None`), the manifest must be the version the statement says is
/// the latest now; asked for a version by number (an operator's choice, never the stub's: its
/// command line is not authenticated), an older one is accepted and logged.
pub fn check_fresh(signed: &SignedManifest, statement: Option<&str>, nonce: Nonce, cfg: &FetchConfig) -> Result<(), FetchError> {
    let m = &signed.manifest;
    let refuse = |reason: String| FetchError::NotFresh { image: format!("{}@{}", m.name, m.version), reason };
    let f = freshness::check(statement, &cfg.trusted).map_err(|e| refuse(e.to_string()))?;
    if f.nonce != nonce {
        return Err(refuse("it answers another request (its nonce is not the one this request sent): a replayed answer".into()));
    }
    if f.image != m.name || f.served != m.version {
        return Err(refuse(format!("it vouches for {}@{}", f.image, f.served)));
    }
    if f.manifest_sha256 != freshness::envelope_sha256(&signed.envelope) {
        return Err(refuse("it names another manifest (SHA-256) than the one in the reply".into()));
    }
    match cfg.version {
        None if f.latest != f.served => Err(FetchError::Stale { image: m.name.clone(), offered: f.served, latest: f.latest }),
        Some(v) if f.latest > v => {
            warn!(image = %m.name, version = v, latest = f.latest, "fetching an older version than the latest, as asked");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Opens an envelope with the trusted keys and checks that it is the image (and version) asked for.
pub fn verify_manifest(envelope: &[u8], cfg: &FetchConfig) -> Result<SignedManifest, FetchError> {
    let (body, signer) = swarmboot_manifest::open(envelope, &cfg.trusted).map_err(|source| FetchError::Untrusted { image: cfg.image.clone(), source })?;
    let text = std::str::from_utf8(body).map_err(|e| FetchError::BadManifest(e.to_string()))?;
    let manifest: Manifest = toml::from_str(text).map_err(|e| FetchError::BadManifest(e.to_string()))?;
    let wanted = cfg.version.map_or(cfg.image.clone(), |v| format!("{}@{v}", cfg.image));
    if manifest.name != cfg.image || cfg.version.is_some_and(|v| v != manifest.version) {
        return Err(FetchError::WrongImage { wanted, got: format!("{}@{}", manifest.name, manifest.version) });
    }
    for f in &manifest.files {
        if !swarmboot_image::is_sha256_hex(&f.sha256) {
            return Err(FetchError::BadManifest(format!("`{}` is not a SHA-256", f.sha256)));
        }
    }
    Ok(SignedManifest { manifest, envelope: envelope.to_vec(), signer })
}

/// Checks a torrent from the network against the signed file entry.
pub fn check_torrent(bytes: &[u8], entry: &FileEntry) -> Result<Metainfo, FetchError> {
    check_wanted_torrent(bytes, &Wanted::of(entry, Path::new("")))
}

/// One file to fetch, as a signed manifest (an image's or a dataset's) names it: its SHA-256,
/// size and the info hash of its torrent; what it is (for messages) and the directory its
/// bytes go to (`dir/<sha256>`, its torrent beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub sha256: String,
    pub size: u64,
    pub info_hash: Option<String>,
    /// `rootfs`, or a dataset's file name.
    pub what: String,
    pub dir: PathBuf,
}

impl Wanted {
    /// An image file, into `dir`.
    pub fn of(entry: &FileEntry, dir: &Path) -> Self {
        Wanted { sha256: entry.sha256.clone(), size: entry.size, info_hash: entry.info_hash.clone(), what: entry.role.as_str().into(), dir: dir.to_path_buf() }
    }

    /// Where its bytes are.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.sha256)
    }
}

/// [`check_torrent`] for any file a signed manifest names.
pub fn check_wanted_torrent(bytes: &[u8], entry: &Wanted) -> Result<Metainfo, FetchError> {
    let bad = |reason: String| FetchError::BadTorrent { role: entry.what.clone(), sha256: entry.sha256.clone(), reason };
    let meta = Metainfo::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let want = entry.info_hash.as_deref().unwrap_or("");
    if hex::encode(meta.info_hash) != want {
        return Err(bad(format!("its info hash {} is not the one the signed manifest lists ({want})", hex::encode(meta.info_hash))));
    }
    // The info hash matched a signed one, so the rest is what the server signed; still, the
    // layout must be the one file named by its hash, or it would be written elsewhere.
    if meta.name != entry.sha256 || meta.files.len() != 1 || !meta.files[0].path.is_empty() || meta.total_length() != entry.size {
        return Err(bad("it is not one file named by its SHA-256 with the manifest's size".into()));
    }
    Ok(meta)
}

struct Job {
    entry: Wanted,
    roles: Vec<Role>,
    path: PathBuf,
    meta: Option<Metainfo>,
    /// The torrent's bytes as the server sent them (kept beside the data).
    torrent: Vec<u8>,
    /// The SHA-256 of each piece, signed: pieces are checked by it, and the file needs no
    /// check of its own at the end.
    piece_sha256: Option<Arc<Vec<[u8; 32]>>>,
    engine: Option<Engine>,
}

/// A fetched image; its engines seed until [`Fetched::shutdown`].
pub struct Fetched {
    pub manifest: SignedManifest,
    pub out: PathBuf,
    pub progress: FetchProgress,
    seeds: Seeds,
}

impl Fetched {
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.seeds.listen_addr()
    }

    pub fn uploaded(&self) -> u64 {
        self.seeds.uploaded()
    }

    pub fn torrents_and_peers(&self) -> (usize, usize) {
        self.seeds.torrents_and_peers()
    }

    pub async fn shutdown(&self) {
        self.seeds.shutdown().await
    }
}

/// Fetched files (an image's or a dataset's) seeding until [`Seeds::shutdown`].
pub struct Seeds {
    pub progress: FetchProgress,
    engines: Vec<Engine>,
    listener: Option<PeerListener>,
}

impl Seeds {
    /// The address peers reach our seeds at, if the swarm was used.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(PeerListener::local_addr)
    }

    /// Counters now (uploads grow while seeding).
    pub fn uploaded(&self) -> u64 {
        self.engines.iter().map(|e| e.progress().totals.uploaded).sum()
    }

    /// Torrents seeded, and peers connected over all of them.
    pub fn torrents_and_peers(&self) -> (usize, usize) {
        (self.engines.len(), self.engines.iter().map(|e| e.progress().peers).sum())
    }

    /// Stops seeding (tells the tracker).
    pub async fn shutdown(&self) {
        for e in &self.engines {
            e.shutdown().await;
        }
        if let Some(l) = &self.listener {
            l.close();
        }
    }
}

const HTTP_CHUNK: u64 = 4 << 20;

/// How each file's engine runs: announcing to the server's tracker every few seconds.
fn engine_config(cfg: &FetchConfig, meta: &Metainfo, peer_id: [u8; 20]) -> EngineConfig {
    let mut swarm = SwarmConfig::new(meta, peer_id);
    swarm.upload_slots = cfg.upload_slots;
    EngineConfig {
        listen: cfg.listen,
        bind_device: cfg.bind_device.clone(),
        tracker: Some(Urls::new(&cfg.server).announce()),
        peers: vec![],
        max_announce_interval: Duration::from_secs(5),
        swarm,
    }
}

/// Fetches the image: see the crate docs. `report` is called about twice a second.
pub async fn fetch(cfg: &FetchConfig, report: impl FnMut(&FetchProgress)) -> Result<Fetched, FetchError> {
    let signed = fetch_manifest(cfg).await?;
    fetch_signed(cfg, signed, report).await
}

/// [`fetch`] with the manifest already fetched and verified by [`fetch_manifest`] (the stub
/// reads it first, to see what it needs).
pub async fn fetch_signed(cfg: &FetchConfig, signed: SignedManifest, report: impl FnMut(&FetchProgress)) -> Result<Fetched, FetchError> {
    info!(image = %signed.manifest.name, version = signed.manifest.version, signer = %signed.signer.fingerprint(), "manifest verified");
    let (jobs, seeds) = fetch_jobs(cfg, plan(cfg, &signed.manifest), None, report).await?;
    for job in jobs.values() {
        for role in &job.roles {
            let link = cfg.out.join(role.as_str());
            let _ = std::fs::remove_file(&link);
            std::fs::hard_link(&job.path, &link).map_err(io_error(&link))?;
        }
    }
    let env_path = cfg.out.join("manifest.signed");
    std::fs::write(&env_path, &signed.envelope).map_err(io_error(&env_path))?;
    let p = seeds.progress;
    info!(bytes = p.total, from_peers = p.from_peers, from_http = p.from_http, secs = p.elapsed.as_secs_f64(), "image fetched and verified");
    Ok(Fetched { manifest: signed, out: cfg.out.clone(), progress: seeds.progress, seeds })
}

/// Fetches `files` (a dataset's: each into its own directory, as `dir/<sha256>` with its
/// torrent beside it) as [`fetch`] fetches an image's: through the swarm, the missing pieces
/// over HTTP Range when it stalls, every piece checked against the torrent whose info hash the
/// caller's signed manifest gave, every file by SHA-256. A file already whole is only checked.
/// They keep seeding on `listener` (shared by every fetch of the caller's, which stays its
/// to close) until [`Seeds::shutdown`].
pub async fn fetch_files(cfg: &FetchConfig, listener: &PeerListener, files: Vec<Wanted>, report: impl FnMut(&FetchProgress)) -> Result<Seeds, FetchError> {
    let jobs =
        files.into_iter().map(|f| (f.sha256.clone(), Job { path: f.path(), entry: f, roles: vec![], meta: None, torrent: vec![], piece_sha256: None, engine: None })).collect();
    Ok(fetch_jobs(cfg, jobs, Some(listener), report).await?.1)
}

/// The steps every fetch takes: torrents, engines, the swarm (and HTTP), SHA-256.
async fn fetch_jobs(
    cfg: &FetchConfig,
    mut jobs: BTreeMap<String, Job>,
    shared: Option<&PeerListener>,
    mut report: impl FnMut(&FetchProgress),
) -> Result<(BTreeMap<String, Job>, Seeds), FetchError> {
    let started = Instant::now();
    if cfg.use_swarm {
        fetch_torrents(cfg, &mut jobs).await?;
    }
    write_torrents(cfg, &jobs)?;
    let mut progress = FetchProgress { total: jobs.values().map(|j| j.entry.size).sum(), ..Default::default() };
    let listener = start_engines(cfg, &mut jobs, shared).await?;
    progress.resumed = jobs.values().filter_map(|j| j.engine.as_ref()).map(|e| e.progress().bytes_have).sum();
    // Files without a torrent (manifests from before torrents): over HTTP, whole.
    for job in jobs.values().filter(|j| j.engine.is_none()) {
        http_whole_file(cfg, job, &mut progress).await?;
    }
    drive(cfg, &jobs, &mut progress, &mut report, started).await?;
    check_sha256(&jobs, started).await?;
    progress.elapsed = started.elapsed();
    let engines = jobs.values_mut().filter_map(|j| j.engine.take()).collect();
    Ok((jobs, Seeds { progress, engines, listener }))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io { path, source }
}

/// One job per distinct file (two roles may share one), of the roles asked for.
fn plan(cfg: &FetchConfig, m: &Manifest) -> BTreeMap<String, Job> {
    m.distinct_files(|role| cfg.roles.as_ref().is_none_or(|r| r.contains(&role)))
        .into_iter()
        .map(|(f, roles)| {
            (f.sha256.clone(), Job { entry: Wanted::of(f, &cfg.out), roles, path: cfg.out.join(&f.sha256), meta: None, torrent: vec![], piece_sha256: None, engine: None })
        })
        .collect()
}

/// Every file's torrent, checked against the signed info hash, before anything is written.
async fn fetch_torrents(cfg: &FetchConfig, jobs: &mut BTreeMap<String, Job>) -> Result<(), FetchError> {
    for job in jobs.values_mut().filter(|j| j.entry.info_hash.is_some()) {
        let url = Urls::new(&cfg.server).torrent(&job.entry.sha256);
        let bytes = http::get(&url, None, 4 << 20, Duration::from_secs(30)).await.map_err(|source| FetchError::Http { url, source })?;
        let meta = check_wanted_torrent(&bytes, &job.entry)?;
        job.piece_sha256 = fetch_piece_sha256(cfg, &job.entry, &meta).await.map(Arc::new);
        job.meta = Some(meta);
        job.torrent = bytes.to_vec();
    }
    Ok(())
}

/// The signed SHA-256 of each piece of `entry`, if the server has it and it names this file,
/// this torrent and its pieces. Anything else (an older server, a list that does not open or
/// fit) costs only time: the file is then checked whole at the end.
async fn fetch_piece_sha256(cfg: &FetchConfig, entry: &Wanted, meta: &Metainfo) -> Option<Vec<[u8; 32]>> {
    let url = Urls::new(&cfg.server).piece_sha256(&entry.sha256);
    let bytes = match http::get(&url, None, piece_hashes::MAX_LEN, Duration::from_secs(30)).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            info!(file = %entry.what, "the server has no SHA-256 list of its pieces: checking the whole file at the end");
            return None;
        }
        Err(e) => {
            warn!(file = %entry.what, %url, "no SHA-256 list of its pieces ({e}): checking the whole file at the end");
            return None;
        }
    };
    let refused = |why: String| {
        warn!(file = %entry.what, "refusing the SHA-256 list of its pieces ({why}): checking the whole file at the end");
        None
    };
    let list = match piece_hashes::open(&bytes, &cfg.trusted) {
        Ok(l) => l,
        Err(e) => return refused(e.to_string()),
    };
    if hex::encode(list.file_sha256) != entry.sha256 || list.info_hash != meta.info_hash {
        return refused("it names another file or torrent".into());
    }
    if list.piece_length != meta.piece_length || list.hashes.len() != meta.pieces.len() {
        return refused(format!("{} pieces of {} bytes, the torrent has {} of {}", list.hashes.len(), list.piece_length, meta.pieces.len(), meta.piece_length));
    }
    Some(list.hashes)
}

fn write_torrents(cfg: &FetchConfig, jobs: &BTreeMap<String, Job>) -> Result<(), FetchError> {
    std::fs::create_dir_all(&cfg.out).map_err(io_error(&cfg.out))?;
    for job in jobs.values().filter(|j| j.meta.is_some()) {
        std::fs::create_dir_all(&job.entry.dir).map_err(io_error(&job.entry.dir))?;
        let path = job.entry.dir.join(format!("{}.torrent", job.entry.sha256));
        std::fs::write(&path, &job.torrent).map_err(io_error(&path))?;
    }
    Ok(())
}

/// One engine per file with a torrent, all on one listener: `shared`, or one of their own
/// (returned; none without a torrent).
async fn start_engines(cfg: &FetchConfig, jobs: &mut BTreeMap<String, Job>, shared: Option<&PeerListener>) -> Result<Option<PeerListener>, FetchError> {
    let own = if shared.is_none() && jobs.values().any(|j| j.meta.is_some()) { Some(PeerListener::bind(cfg.listen, cfg.bind_device.as_deref())?) } else { None };
    let peer_id = random_peer_id();
    for job in jobs.values_mut() {
        let Some(meta) = &job.meta else { continue };
        let listener = shared.or(own.as_ref()).expect("bound when a file has a torrent");
        let (storage, have) = {
            let meta = meta.clone();
            let out = job.entry.dir.clone();
            let sha256 = job.piece_sha256.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                let mut storage = FileStorage::create(&meta, &out)?;
                // Files created just now hold nothing: no hashing; otherwise resume.
                let have = match sha256 {
                    _ if storage.is_fresh() => swarmboot_peerwire::Bitfield::new(meta.pieces.len() as u32),
                    Some(list) => storage.verify_by_sha256(&meta, &list)?,
                    None => storage.verify(&meta)?,
                };
                Ok((storage, have))
            })
            .await
            .expect("not cancelled")
            .map_err(io_error(&job.path))?
        };
        let mut ecfg = engine_config(cfg, meta, peer_id);
        ecfg.swarm.piece_sha256 = job.piece_sha256.clone();
        job.engine = Some(Engine::start_on(listener, meta, storage, have, ecfg).await?);
    }
    Ok(own)
}

/// Until every piece is here: the engines' progress twice a second, and the missing pieces
/// over HTTP whenever [`stall::StallWatch`] says the swarm stalled.
async fn drive(cfg: &FetchConfig, jobs: &BTreeMap<String, Job>, progress: &mut FetchProgress, report: &mut impl FnMut(&FetchProgress), started: Instant) -> Result<(), FetchError> {
    let mut watch = StallWatch::new(Instant::now(), cfg.stall_timeout, cfg.min_swarm_rate);
    let server_ip: Option<std::net::IpAddr> = cfg.server.strip_prefix("http://").and_then(|r| r.split(['/', ':']).next()).and_then(|h| h.parse().ok());
    // Most seen from each connection to the server's address: (file, connection) → bytes.
    let mut from_server: std::collections::HashMap<(usize, String), u64> = std::collections::HashMap::new();
    loop {
        for (i, job) in jobs.values().enumerate() {
            for r in job.engine.iter().flat_map(Engine::peers) {
                if Some(r.addr.ip()) == server_ip {
                    let seen = from_server.entry((i, format!("{:?}", r.stats.key))).or_default();
                    *seen = (*seen).max(r.stats.downloaded);
                }
            }
        }
        let mut have = 0;
        let (mut peers, mut sources, mut from_peers, mut uploaded, mut hash_failures) = (0, 0, 0, 0, 0);
        for job in jobs.values() {
            match &job.engine {
                Some(e) => {
                    let p = e.progress();
                    have += p.bytes_have;
                    peers += p.peers;
                    sources += p.sources;
                    from_peers += p.totals.downloaded;
                    uploaded += p.totals.uploaded;
                    hash_failures += p.totals.hash_failures;
                }
                None => have += job.entry.size,
            }
        }
        *progress = FetchProgress {
            bytes_have: have,
            from_peers,
            from_server_seed: from_server.values().sum(),
            uploaded,
            hash_failures,
            peers,
            sources,
            elapsed: started.elapsed(),
            ..*progress
        };
        report(progress);
        match watch.observe(Instant::now(), have, progress.total) {
            Next::Done => return Ok(()),
            Next::Wait => tokio::time::sleep(Duration::from_millis(500)).await,
            Next::FetchOverHttp(why) => {
                match why {
                    Stall::Quiet => warn!(stalled_for = ?cfg.stall_timeout, "the swarm stalled: fetching the missing pieces over HTTP"),
                    Stall::Slow { bytes_per_sec } => {
                        warn!(bytes_per_sec, min = cfg.min_swarm_rate, over = ?cfg.stall_timeout, "the swarm is too slow: fetching the missing pieces over HTTP")
                    }
                }
                progress.fallback = true;
                for job in jobs.values() {
                    if let Some(engine) = &job.engine {
                        http_fill(cfg, job, engine, progress, report, started).await?;
                    }
                }
                watch.refilled(Instant::now());
            }
        }
    }
}

/// Every file without a signed SHA-256 list of its pieces against its SHA-256 (a file that
/// does not match is deleted); the others were checked piece by piece.
async fn check_sha256(jobs: &BTreeMap<String, Job>, started: Instant) -> Result<(), FetchError> {
    let whole: Vec<&Job> = jobs.values().filter(|j| j.piece_sha256.is_none() || j.engine.is_none()).collect();
    if whole.is_empty() {
        info!(secs = started.elapsed().as_secs_f64(), "every piece verified by its signed SHA-256");
        return Ok(());
    }
    info!(secs = started.elapsed().as_secs_f64(), files = whole.len(), "every piece verified; checking the SHA-256 of each file without a signed list of its pieces");
    for job in whole {
        let path = job.path.clone();
        let ok = tokio::task::spawn_blocking(move || sha256_of(&path)).await.expect("not cancelled").map_err(io_error(&job.path))? == job.entry.sha256;
        if !ok {
            let _ = std::fs::remove_file(&job.path);
            return Err(FetchError::Sha256Mismatch { role: job.entry.what.clone(), path: job.path.clone() });
        }
    }
    Ok(())
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

fn blob_url(cfg: &FetchConfig, sha: &str) -> String {
    Urls::new(&cfg.server).blob(sha)
}

/// The pieces the engine lacks, over HTTP Range: runs of missing pieces of at most
/// [`HTTP_CHUNK`] bytes per request; each piece is checked by the engine.
async fn http_fill(
    cfg: &FetchConfig,
    job: &Job,
    engine: &Engine,
    progress: &mut FetchProgress,
    report: &mut impl FnMut(&FetchProgress),
    started: Instant,
) -> Result<(), FetchError> {
    let meta = job.meta.as_ref().expect("an engine has a torrent");
    let plen = u64::from(meta.piece_length);
    let per_request = (HTTP_CHUNK / plen).max(1) as u32;
    let n = meta.pieces.len() as u32;
    let url = blob_url(cfg, &job.entry.sha256);
    let mut i = 0;
    while i < n {
        let have = engine.have();
        if have.has(i) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < n && j - i < per_request && !have.has(j) {
            j += 1;
        }
        let (start, end) = (u64::from(i) * plen, (u64::from(j) * plen).min(meta.total_length()));
        let bytes = http::get(&url, Some((start, end)), (end - start) as usize, Duration::from_secs(60)).await.map_err(|source| FetchError::Http { url: url.clone(), source })?;
        progress.from_http += bytes.len() as u64;
        for p in i..j {
            let a = (u64::from(p - i) * plen) as usize;
            let b = (a + meta.piece_len(p) as usize).min(bytes.len());
            engine.add_piece(p, &bytes[a..b]).map_err(|e| FetchError::BadHttpData { role: job.entry.what.clone(), reason: e.to_string() })?;
        }
        progress.elapsed = started.elapsed();
        report(progress);
        i = j;
    }
    Ok(())
}

/// A file with no torrent: the whole file over HTTP, in ranges, into `<out>/<sha256>`.
async fn http_whole_file(cfg: &FetchConfig, job: &Job, progress: &mut FetchProgress) -> Result<(), FetchError> {
    use std::io::Write;
    let url = blob_url(cfg, &job.entry.sha256);
    let tmp = job.path.with_extension("part");
    let mut f = std::fs::File::create(&tmp).map_err(|source| FetchError::Io { path: tmp.clone(), source })?;
    let mut at = 0;
    while at < job.entry.size {
        let end = (at + HTTP_CHUNK).min(job.entry.size);
        let bytes = http::get(&url, Some((at, end)), (end - at) as usize, Duration::from_secs(60)).await.map_err(|source| FetchError::Http { url: url.clone(), source })?;
        f.write_all(&bytes).map_err(|source| FetchError::Io { path: tmp.clone(), source })?;
        progress.from_http += bytes.len() as u64;
        at = end;
    }
    drop(f);
    std::fs::rename(&tmp, &job.path).map_err(|source| FetchError::Io { path: job.path.clone(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_manifest::SigningKey;

    fn key() -> SigningKey {
        SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    fn manifest(name: &str, version: u32, files: Vec<FileEntry>) -> Vec<u8> {
        let m = Manifest { name: name.into(), version, created: 1, predecessor: None, cmdline: String::new(), files, build: None };
        toml::to_string(&m).unwrap().into_bytes()
    }

    fn entry(data: &[u8], name: &str) -> (FileEntry, Vec<u8>) {
        let sha = hex::encode(Sha256::digest(data));
        let (meta, bytes) = Metainfo::single_file(if name.is_empty() { &sha } else { name }, data, 16384, None, true);
        (FileEntry { role: Role::Rootfs, size: data.len() as u64, sha256: sha, info_hash: Some(hex::encode(meta.info_hash)) }, bytes)
    }

    fn cfg(trusted: Vec<PublicKey>, version: Option<u32>) -> FetchConfig {
        let mut c = FetchConfig::new("http://127.0.0.1:1", "elchos", Path::new("/nonexistent"), trusted);
        c.version = version;
        c
    }

    #[test]
    fn only_a_statement_for_this_nonce_and_this_manifest_vouches_for_it() {
        use swarmboot_manifest::freshness::{vouch, Freshness};
        let k = key();
        let (e, _) = entry(b"root", "");
        let v1 = verify_manifest(&swarmboot_manifest::seal(&k, &manifest("elchos", 1, vec![e.clone()])), &cfg(vec![k.public()], None)).unwrap();
        let nonce = Nonce::from_bytes([1; 16]);
        let statement = |f: Freshness| vouch(&k, &f);
        let fresh = |latest| Freshness { nonce, image: "elchos".into(), served: 1, latest, manifest_sha256: freshness::envelope_sha256(&v1.envelope) };
        let latest = cfg(vec![k.public()], None);
        assert!(check_fresh(&v1, Some(&statement(fresh(1))), nonce, &latest).is_ok());
        // Version 1 offered while the server says 3 is the latest: a replay, both named.
        let err = check_fresh(&v1, Some(&statement(fresh(3))), nonce, &latest).unwrap_err();
        assert!(matches!(err, FetchError::Stale { offered: 1, latest: 3, .. }), "{err}");
        assert!(err.to_string().contains("refusing elchos@1") && err.to_string().contains("the latest elchos is version 3"), "{err}");
        // Asked for version 1 by number: accepted.
        assert!(check_fresh(&v1, Some(&statement(fresh(3))), nonce, &cfg(vec![k.public()], Some(1))).is_ok());
        // Every other mismatch is refused, and says what.
        let refusals = [
            (None, "no signed freshness statement"),
            (Some(statement(Freshness { nonce: Nonce::from_bytes([2; 16]), ..fresh(1) })), "its nonce is not the one this request sent"),
            (Some(statement(Freshness { served: 2, ..fresh(2) })), "it vouches for elchos@2"),
            (Some(statement(Freshness { image: "other".into(), ..fresh(1) })), "it vouches for other@1"),
            (Some(statement(Freshness { manifest_sha256: [0; 32], ..fresh(1) })), "names another manifest"),
            (Some(vouch(&key(), &fresh(1))), "not signed by a key you trust"),
        ];
        for (st, says) in refusals {
            let err = check_fresh(&v1, st.as_deref(), nonce, &latest).unwrap_err();
            assert!(matches!(err, FetchError::NotFresh { .. }) && err.to_string().contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn manifests_are_checked_for_signature_name_and_version() {
        let k = key();
        let (e, _) = entry(b"root", "");
        let env = swarmboot_manifest::seal(&k, &manifest("elchos", 3, vec![e.clone()]));
        let got = verify_manifest(&env, &cfg(vec![k.public()], None)).unwrap();
        assert_eq!((got.manifest.version, got.manifest.files.clone(), got.signer), (3, vec![e.clone()], k.public()));
        assert!(verify_manifest(&env, &cfg(vec![k.public()], Some(3))).is_ok());
        let err = verify_manifest(&env, &cfg(vec![k.public()], Some(2))).unwrap_err();
        assert!(matches!(&err, FetchError::WrongImage { wanted, got } if wanted == "elchos@2" && got == "elchos@3"), "{err}");
        // A valid manifest of another image (replayed under this name) is refused.
        let other = swarmboot_manifest::seal(&k, &manifest("evil", 1, vec![e.clone()]));
        assert!(matches!(verify_manifest(&other, &cfg(vec![k.public()], None)), Err(FetchError::WrongImage { .. })));
        // Wrong key and tampering say which.
        let stranger = key();
        let err = verify_manifest(&env, &cfg(vec![stranger.public()], None)).unwrap_err();
        assert!(err.to_string().contains("not a key you trust"), "{err}");
        let mut tampered = env.clone();
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        let err = verify_manifest(&tampered, &cfg(vec![k.public()], None)).unwrap_err();
        assert!(err.to_string().contains("altered after it was signed"), "{err}");
        // Signed garbage is still garbage.
        let junk = swarmboot_manifest::seal(&k, b"name = 5");
        assert!(matches!(verify_manifest(&junk, &cfg(vec![k.public()], None)), Err(FetchError::BadManifest(_))));
        let bad_sha = FileEntry { sha256: "../../etc/passwd".into(), ..e };
        let env = swarmboot_manifest::seal(&k, &manifest("elchos", 1, vec![bad_sha]));
        assert!(matches!(verify_manifest(&env, &cfg(vec![k.public()], None)), Err(FetchError::BadManifest(_))));
    }

    #[test]
    fn torrents_must_be_the_signed_ones() {
        let (e, bytes) = entry(&[7u8; 50_000], "");
        assert_eq!(hex::encode(check_torrent(&bytes, &e).unwrap().info_hash), e.info_hash.clone().unwrap());
        // Another file's torrent, a corrupt one, one the manifest has no hash for.
        let (_, other) = entry(&[8u8; 50_000], "");
        let err = check_torrent(&other, &e).unwrap_err();
        assert!(err.to_string().contains("is not the one the signed manifest lists"), "{err}");
        let mut corrupt = bytes.clone();
        corrupt.truncate(bytes.len() - 5);
        assert!(matches!(check_torrent(&corrupt, &e), Err(FetchError::BadTorrent { .. })));
        assert!(check_torrent(&bytes, &FileEntry { info_hash: None, ..e.clone() }).is_err());
        // Signed, but named so it would be written somewhere else: refused.
        let (renamed, bytes) = entry(&[7u8; 50_000], "kernel");
        let err = check_torrent(&bytes, &renamed).unwrap_err();
        assert!(err.to_string().contains("one file named by its SHA-256"), "{err}");
    }
}
