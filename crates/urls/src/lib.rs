//! The contract between the boot server's HTTP listener and everything that asks it: iPXE
//! (the boot script), the stub and `swarmboot fetch` (manifests, torrents, blobs, the
//! tracker), BitTorrent clients (magnet links), the CLI (the tracker's scrape, operators'
//! orders), elchOS nodes (their check-ins). [`Urls`]
//! renders every URL a client is given or builds, [`routes`] are the patterns the server's
//! router is built from, and [`Route::of`] reads a path back (the test below renders every
//! route and routes it back). A route changes here or nowhere.
//!
//! What it does not do: any I/O, or check that a name or hash exists.

/// The patterns the server's router matches (axum's syntax).
pub mod routes {
    pub const BOOT_SCRIPT: &str = "/boot.ipxe";
    pub const MANIFEST_LATEST: &str = "/manifest/{name}";
    pub const MANIFEST_VERSION: &str = "/manifest/{name}/{version}";
    pub const BLOB: &str = "/blob/{sha256}";
    /// `{name}` is `<sha256>.torrent`.
    pub const TORRENT: &str = "/torrent/{name}";
    pub const MAGNET: &str = "/magnet/{sha256}";
    /// The signed SHA-256 of each piece of a stored file (`swarmboot_manifest::piece_hashes`).
    pub const PIECE_SHA256: &str = "/pieces/{sha256}";
    pub const ANNOUNCE: &str = "/announce";
    pub const SCRAPE: &str = "/scrape";
    pub const TFTP: &str = "/tftp/{*name}";
    pub const CHECKIN: &str = "/api/v1/checkin";
    /// A donor's check-in (`swarmboot_checkin::donation`).
    pub const DONOR: &str = "/api/v1/donor";
    /// A dataset's signed manifest.
    pub const DATASET: &str = "/dataset/{name}";
    pub const ORDERS: &str = "/api/v1/orders";
    pub const REPORT: &str = "/api/v1/report";
    /// The namespace: nodes' index batches, the merged tree, search.
    pub const INDEX: &str = "/api/v1/index";
    pub const TREE_ROOT: &str = "/api/v1/tree";
    pub const TREE: &str = "/api/v1/tree/{*path}";
    pub const SEARCH: &str = "/api/v1/search";
    /// The namespace over WebDAV, and as dashboard pages.
    pub const DAV_ROOT: &str = "/dav";
    pub const DAV: &str = "/dav/{*path}";
    pub const FILES_ROOT: &str = "/files";
    pub const FILES: &str = "/files/{*path}";
    pub const SEARCH_PAGE: &str = "/search";
    pub const FLEET: &str = "/api/v1/fleet";
    pub const MACHINE: &str = "/api/v1/machines/{mac}";
    pub const EVENTS: &str = "/api/v1/events";
    pub const IMAGES: &str = "/api/v1/images";
    pub const IMAGES_PAGE: &str = "/images";
    pub const SWARMS: &str = "/api/v1/swarms";
    pub const DATASETS: &str = "/api/v1/datasets";
    /// Who boots what (GET), and changing it (POST, the admin's).
    pub const ASSIGNMENTS: &str = "/api/v1/assignments";
    pub const ASSIGN: &str = "/api/v1/assign";
    pub const IMAGES_ASSIGN: &str = "/images/assign";
    pub const LEASES: &str = "/api/v1/leases";
    pub const SERVER: &str = "/api/v1/server";
    pub const SERVER_PAGE: &str = "/server";
    pub const OPENAPI: &str = "/api/v1/openapi.json";
    /// The dashboard's pages and their assets.
    pub const DASHBOARD: &str = "/";
    pub const MACHINE_PAGE: &str = "/machines/{mac}";
    pub const MACHINE_COMMAND: &str = "/machines/{mac}/command";
    pub const LOGIN: &str = "/login";
    pub const LOGOUT: &str = "/logout";
    pub const ASSET: &str = "/assets/{name}";
}

/// The settings iPXE expands itself in the boot script's URL: who is asking.
pub const BOOT_SCRIPT_QUERY: &str = "mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}";

/// The query parameter of a manifest request that carries the client's nonce.
pub const MANIFEST_NONCE: &str = "nonce";

/// `bytes` as a URL query value (or path part): RFC 3986's unreserved characters as they are,
/// every other byte as `%XX` (binary info hashes included).
pub fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Every URL of a server reached at `base` (`http://10.77.0.1:8080`, or `[http] public_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    base: String,
}

impl Urls {
    /// `base` without a trailing slash (one is dropped). An empty base gives paths alone.
    pub fn new(base: &str) -> Urls {
        Urls { base: base.trim_end_matches('/').to_string() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The boot script, with the settings iPXE fills in ([`BOOT_SCRIPT_QUERY`]).
    pub fn boot_script(&self) -> String {
        format!("{}{}?{BOOT_SCRIPT_QUERY}", self.base, routes::BOOT_SCRIPT)
    }

    /// An image's signed manifest: `version`, or the latest.
    pub fn manifest(&self, name: &str, version: Option<u32>) -> String {
        match version {
            Some(v) => format!("{}/manifest/{name}/{v}", self.base),
            None => format!("{}/manifest/{name}", self.base),
        }
    }

    /// [`Urls::manifest`], asking the server to vouch that it is the latest now: the reply
    /// carries a freshness statement bound to `nonce` (32 hex digits; see
    /// `swarmboot_manifest::freshness`).
    pub fn manifest_fresh(&self, name: &str, version: Option<u32>, nonce: &str) -> String {
        format!("{}?{MANIFEST_NONCE}={nonce}", self.manifest(name, version))
    }

    /// A stored file by its SHA-256 (HTTP Range works).
    pub fn blob(&self, sha256: &str) -> String {
        format!("{}/blob/{sha256}", self.base)
    }

    /// The torrent of a stored file.
    pub fn torrent(&self, sha256: &str) -> String {
        format!("{}/torrent/{sha256}.torrent", self.base)
    }

    /// The signed SHA-256 of each piece of a stored file.
    pub fn piece_sha256(&self, sha256: &str) -> String {
        format!("{}/pieces/{sha256}", self.base)
    }

    /// The magnet link of a stored file (as text).
    pub fn magnet(&self, sha256: &str) -> String {
        format!("{}/magnet/{sha256}", self.base)
    }

    /// The tracker's announce URL.
    pub fn announce(&self) -> String {
        format!("{}{}", self.base, routes::ANNOUNCE)
    }

    /// The tracker's scrape URL, for `query` (already escaped: `info_hash=%12…`).
    pub fn scrape(&self, query: &str) -> String {
        format!("{}{}?{query}", self.base, routes::SCRAPE)
    }

    /// A file of the TFTP root or Debian's iPXE directory over HTTP (UEFI HTTP boot).
    pub fn tftp(&self, name: &str) -> String {
        format!("{}/tftp/{name}", self.base)
    }

    /// Where an elchOS node POSTs its check-in.
    pub fn checkin(&self) -> String {
        format!("{}{}", self.base, routes::CHECKIN)
    }

    /// Where a donor POSTs its check-in.
    pub fn donor(&self) -> String {
        format!("{}{}", self.base, routes::DONOR)
    }

    /// Dataset `name`'s signed manifest.
    pub fn dataset(&self, name: &str) -> String {
        format!("{}/dataset/{name}", self.base)
    }

    /// Where an elchOS node POSTs its index batches.
    pub fn index(&self) -> String {
        format!("{}{}", self.base, routes::INDEX)
    }

    /// Where `swarmboot node command` POSTs an operator's order.
    pub fn orders(&self) -> String {
        format!("{}{}", self.base, routes::ORDERS)
    }

    /// Where the stub and a booted system's seeder POST their stage reports.
    pub fn report(&self) -> String {
        format!("{}{}", self.base, routes::REPORT)
    }

    /// The fleet table as JSON (`query`: already escaped, may be empty).
    pub fn fleet(&self, query: &str) -> String {
        if query.is_empty() {
            format!("{}{}", self.base, routes::FLEET)
        } else {
            format!("{}{}?{query}", self.base, routes::FLEET)
        }
    }

    /// One machine as JSON: its boots, and what its agent says.
    pub fn machine(&self, mac: &str) -> String {
        format!("{}/api/v1/machines/{mac}", self.base)
    }

    /// Stage changes after event `after`.
    pub fn events(&self, after: u64) -> String {
        format!("{}{}?after={after}", self.base, routes::EVENTS)
    }
}

/// Which route a path is, with what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    BootScript,
    Manifest { name: String, version: Option<u32> },
    Blob { sha256: String },
    Torrent { sha256: String },
    Magnet { sha256: String },
    Announce,
    Scrape,
    Tftp { name: String },
    CheckIn,
    Donor,
    Dataset { name: String },
    Orders,
    Report,
    Fleet,
    Machine { mac: String },
    Events,
}

impl Route {
    /// The route of `path` (the query, if any, is ignored); `None` for a path no route has.
    pub fn of(path: &str) -> Option<Route> {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let one = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(match parts.as_slice() {
            ["boot.ipxe"] => Route::BootScript,
            ["manifest", name] => Route::Manifest { name: one(name)?, version: None },
            ["manifest", name, v] => Route::Manifest { name: one(name)?, version: Some(v.parse().ok()?) },
            ["blob", sha] => Route::Blob { sha256: one(sha)? },
            ["torrent", name] => Route::Torrent { sha256: one(name.strip_suffix(".torrent")?)? },
            ["magnet", sha] => Route::Magnet { sha256: one(sha)? },
            ["announce"] => Route::Announce,
            ["scrape"] => Route::Scrape,
            ["tftp", rest @ ..] if !rest.is_empty() && rest.iter().all(|p| !p.is_empty()) => Route::Tftp { name: rest.join("/") },
            ["api", "v1", "checkin"] => Route::CheckIn,
            ["api", "v1", "donor"] => Route::Donor,
            ["dataset", name] => Route::Dataset { name: one(name)? },
            ["api", "v1", "orders"] => Route::Orders,
            ["api", "v1", "report"] => Route::Report,
            ["api", "v1", "fleet"] => Route::Fleet,
            ["api", "v1", "machines", mac] => Route::Machine { mac: one(mac)? },
            ["api", "v1", "events"] => Route::Events,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route rendered for a base, then read back from the path: the same route.
    #[test]
    fn every_route_renders_and_routes_back() {
        let u = Urls::new("http://10.77.0.1:8080/");
        assert_eq!(u.base(), "http://10.77.0.1:8080", "a trailing slash is dropped");
        let sha = "ab".repeat(32);
        let path = |url: String| url.strip_prefix(u.base()).expect("under the base").to_string();
        let cases = [
            (u.boot_script(), Route::BootScript),
            (u.manifest("elchos", None), Route::Manifest { name: "elchos".into(), version: None }),
            (u.manifest("elchos", Some(3)), Route::Manifest { name: "elchos".into(), version: Some(3) }),
            (u.blob(&sha), Route::Blob { sha256: sha.clone() }),
            (u.torrent(&sha), Route::Torrent { sha256: sha.clone() }),
            (u.magnet(&sha), Route::Magnet { sha256: sha.clone() }),
            (u.announce(), Route::Announce),
            (u.scrape("info_hash=%12%34"), Route::Scrape),
            (u.tftp("arm64/snponly.efi"), Route::Tftp { name: "arm64/snponly.efi".into() }),
            (u.checkin(), Route::CheckIn),
            (u.donor(), Route::Donor),
            (u.dataset("books-10"), Route::Dataset { name: "books-10".into() }),
            (u.orders(), Route::Orders),
            (u.report(), Route::Report),
            (u.fleet(""), Route::Fleet),
            (u.fleet("stage=running"), Route::Fleet),
            (u.machine("52:54:00:00:00:01"), Route::Machine { mac: "52:54:00:00:00:01".into() }),
            (u.events(7), Route::Events),
        ];
        for (url, route) in cases {
            assert_eq!(Route::of(&path(url.clone())), Some(route), "{url}");
        }
        assert_eq!(u.boot_script(), "http://10.77.0.1:8080/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}");
        assert_eq!(Urls::new("").boot_script(), "/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}", "the path alone");
    }

    /// The router's patterns are the rendered paths with their parameters named.
    #[test]
    fn the_patterns_match_what_is_rendered() {
        let u = Urls::new("");
        let sha = "cd".repeat(32);
        let filled = |pattern: &str, pairs: &[(&str, &str)]| pairs.iter().fold(pattern.to_string(), |p, (k, v)| p.replace(&format!("{{{k}}}"), v));
        assert_eq!(u.boot_script().split('?').next().unwrap(), routes::BOOT_SCRIPT);
        assert_eq!(u.manifest("x", None), filled(routes::MANIFEST_LATEST, &[("name", "x")]));
        assert_eq!(u.manifest("x", Some(2)), filled(routes::MANIFEST_VERSION, &[("name", "x"), ("version", "2")]));
        assert_eq!(u.blob(&sha), filled(routes::BLOB, &[("sha256", &sha)]));
        assert_eq!(u.torrent(&sha), filled(routes::TORRENT, &[("name", &format!("{sha}.torrent"))]));
        assert_eq!(u.magnet(&sha), filled(routes::MAGNET, &[("sha256", &sha)]));
        assert_eq!(u.piece_sha256(&sha), filled(routes::PIECE_SHA256, &[("sha256", &sha)]));
        assert_eq!(u.announce(), routes::ANNOUNCE);
        assert_eq!(u.scrape("q").split('?').next().unwrap(), routes::SCRAPE);
        assert_eq!(u.tftp("a/b"), filled(routes::TFTP, &[("*name", "a/b")]));
        assert_eq!(u.checkin(), routes::CHECKIN);
        assert_eq!(u.orders(), routes::ORDERS);
        assert_eq!(u.report(), routes::REPORT);
        assert_eq!(u.fleet(""), routes::FLEET);
        assert_eq!(u.machine("m"), filled(routes::MACHINE, &[("mac", "m")]));
        assert_eq!(u.events(0).split('?').next().unwrap(), routes::EVENTS);
    }

    #[test]
    fn query_values_are_escaped_but_unreserved_characters() {
        assert_eq!(escape(b"lab pc&x=1/~a.b-c_d"), "lab%20pc%26x%3D1%2F~a.b-c_d");
        assert_eq!(escape(&[0x00, 0xff, b'A']), "%00%FFA");
        assert_eq!(escape("é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn paths_no_route_has_are_none() {
        for p in ["", "/", "/blob/", "/manifest/x/latest", "/torrent/abc", "/tftp/", "/tftp//x", "/boot.ipxe/x", "blob/ab", "/metrics"] {
            assert_eq!(Route::of(p), None, "{p:?}");
        }
    }
}
