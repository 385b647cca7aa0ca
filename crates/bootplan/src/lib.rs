//! What a machine boots, and the iPXE script that boots it. Pure functions: the server reads
//! the config and the catalog and passes them in.
//!
//! - [`ImageRules`]: `[boot] default_image` and `[[boot.client]]` MAC globs (first match wins)
//!   → an image name.
//! - [`BootPlan::from_manifest`]: an image version → kernel and initrd URLs (content-addressed,
//!   `/blob/<sha256>`, so a machine that started on version n keeps getting version n's files
//!   after version n+1 is added) and the kernel command line.
//! - [`decide`]: the boot policy in one function: rules, the latest manifest and the stub →
//!   a [`BootPlan`] (swarm or direct) or why there is none ([`NoImage`]).
//! - [`render`]: a [`BootPlan`], or the reason there is none, → the iPXE script, from the
//!   templates in `ipxe/`.
//!
//! What it does not do: read files, talk HTTP, or know about DHCP.

use globset::{GlobBuilder, GlobMatcher};
use swarmboot_image::{Manifest, Role, StubRecord};
use swarmboot_urls::Urls;

/// How a machine gets its image: through the swarm (the stub kernel and initramfs, whose init
/// fetches the image from peers), or directly (iPXE loads the image's kernel and initrd over
/// HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootMode {
    #[default]
    Swarm,
    Direct,
}

/// One `[[boot.client]]` rule.
#[derive(Debug, Clone)]
pub struct ClientRule {
    pub mac_glob: String,
    matcher: GlobMatcher,
    pub image: String,
    /// `None`: the default mode.
    pub mode: Option<BootMode>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{glob}` is not a MAC pattern: {message}")]
pub struct BadGlob {
    pub glob: String,
    pub message: String,
}

impl ClientRule {
    pub fn new(mac_glob: &str, image: &str) -> Result<Self, BadGlob> {
        let matcher = GlobBuilder::new(&mac_glob.to_ascii_lowercase())
            .literal_separator(false)
            .build()
            .map_err(|e| BadGlob { glob: mac_glob.into(), message: e.to_string() })?
            .compile_matcher();
        Ok(ClientRule { mac_glob: mac_glob.into(), matcher, image: image.into(), mode: None })
    }

    pub fn with_mode(mut self, mode: Option<BootMode>) -> Self {
        self.mode = mode;
        self
    }
}

/// Which image a machine boots.
#[derive(Debug, Clone, Default)]
pub struct ImageRules {
    pub default_image: Option<String>,
    pub default_mode: BootMode,
    pub clients: Vec<ClientRule>,
}

impl ImageRules {
    /// The image for `mac` (`52:54:00:12:34:56`, any case): the first matching rule's, else the
    /// default.
    pub fn image_for(&self, mac: &str) -> Option<&str> {
        let mac = mac.to_ascii_lowercase();
        self.clients.iter().find(|r| r.matcher.is_match(&mac)).map(|r| r.image.as_str()).or(self.default_image.as_deref())
    }

    /// How `mac` boots: the first matching rule's mode if it has one, else the default.
    pub fn mode_for(&self, mac: &str) -> BootMode {
        let mac = mac.to_ascii_lowercase();
        self.clients.iter().find(|r| r.matcher.is_match(&mac)).and_then(|r| r.mode).unwrap_or(self.default_mode)
    }
}

/// Everything a boot script needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    pub image: String,
    pub version: u32,
    pub kernel_sha256: String,
    pub initrd_sha256: String,
    pub cmdline: String,
    pub mode: BootMode,
}

/// Why a manifest cannot be booted directly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("image {image} version {version} has no {role} file")]
    MissingFile { image: String, version: u32, role: &'static str },
}

impl BootPlan {
    pub fn from_manifest(m: &Manifest) -> Result<Self, PlanError> {
        let sha = |role, label| m.file(role).map(|f| f.sha256.clone()).ok_or(PlanError::MissingFile { image: m.name.clone(), version: m.version, role: label });
        Ok(BootPlan {
            image: m.name.clone(),
            version: m.version,
            kernel_sha256: sha(Role::Kernel, "kernel")?,
            initrd_sha256: sha(Role::Initrd, "initrd")?,
            cmdline: m.cmdline.clone(),
            mode: BootMode::Direct,
        })
    }

    /// Through the swarm: the stub's kernel and initramfs, with the image's command line (the
    /// stub's kernel runs the image when it is the same kernel) and the stub's arguments —
    /// where the server is, which version to fetch, the key its manifest must be signed with.
    pub fn swarm(m: &Manifest, stub: &StubRecord, base: &str, key_hex: &str) -> Self {
        let cmdline = format!("{} swarmboot.server={base} swarmboot.image={}@{} swarmboot.key={key_hex}", m.cmdline, m.name, m.version);
        BootPlan {
            image: m.name.clone(),
            version: m.version,
            kernel_sha256: stub.kernel_sha256.clone(),
            initrd_sha256: stub.initrd_sha256.clone(),
            cmdline: cmdline.trim_start().to_string(),
            mode: BootMode::Swarm,
        }
    }
}

/// Why a machine gets no image: said in its boot script (which retries) and in the log.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct NoImage(pub String);

/// What [`decide`] decided: the plan (or why there is none), and what the server should warn
/// about even though the machine boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub plan: Result<BootPlan, NoImage>,
    pub warning: Option<String>,
}

/// Where a swarm-mode machine finds the server: its HTTP base URL and the public key (hex) its
/// manifests must be signed with.
#[derive(Debug, Clone, Copy)]
pub struct SwarmServer<'a> {
    pub base: &'a str,
    pub key_hex: &'a str,
}

/// The boot policy, in one place: which image `mac` boots (the rules), which version (the
/// latest, from `latest`, which reads the catalog), and how — through the swarm with the
/// registered `stub`, or directly when the rules say so or no stub is built yet (with a
/// warning). The caller gathers the inputs and renders the result; nothing here reads a file.
pub fn decide(
    rules: &ImageRules,
    mac: &str,
    latest: impl FnOnce(&str) -> Result<Option<Manifest>, String>,
    stub: Result<Option<StubRecord>, String>,
    server: SwarmServer<'_>,
) -> Decision {
    let no = |reason: String| Decision { plan: Err(NoImage(reason)), warning: None };
    let Some(name) = rules.image_for(mac) else {
        return no("no [boot] default_image, and no [[boot.client]] rule matches".into());
    };
    let m = match latest(name) {
        Ok(Some(m)) => m,
        Ok(None) if name == "elchos" => return no("the catalog has no image elchos (swarmboot image build elchos makes it)".into()),
        Ok(None) => return no(format!("the catalog has no image {name}")),
        Err(e) => return no(e),
    };
    let direct = |m: &Manifest| BootPlan::from_manifest(m).map_err(|e| NoImage(e.to_string()));
    match (rules.mode_for(mac), stub) {
        (BootMode::Swarm, Ok(Some(stub))) => Decision { plan: Ok(BootPlan::swarm(&m, &stub, server.base, server.key_hex)), warning: None },
        (BootMode::Swarm, Ok(None)) => Decision { plan: direct(&m), warning: Some("swarm mode, but no stub is built (swarmboot stub build): booting directly".into()) },
        (BootMode::Swarm, Err(e)) => no(e),
        (BootMode::Direct, _) => Decision { plan: direct(&m), warning: None },
    }
}

/// Who is asking, as iPXE told us in the script URL's query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asker {
    pub mac: String,
    pub arch: String,
    pub uuid: String,
}

const BOOT_TEMPLATE: &str = include_str!("../../../ipxe/boot.ipxe");
const NO_IMAGE_TEMPLATE: &str = include_str!("../../../ipxe/no-image.ipxe");

/// Characters iPXE would treat specially in a script line; values are checked to be plain.
fn plain(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').filter(|c| !matches!(c, '$' | '{' | '}' | '#' | '|' | '&' | '\\')).collect()
}

/// The script for `asker`: boot `plan`, or explain `no_image` and retry. `base` is the server's
/// HTTP root, like `http://10.77.0.1:8080`.
pub fn render(plan: Result<&BootPlan, &str>, asker: &Asker, base: &str) -> String {
    let urls = Urls::new(base);
    let mut vars: Vec<(&str, String)> = vec![("mac", plain(&asker.mac)), ("script_url", urls.boot_script())];
    let template = match plan {
        Ok(p) => {
            vars.extend([
                ("image", plain(&p.image)),
                ("version", p.version.to_string()),
                ("kernel_url", urls.blob(&p.kernel_sha256)),
                ("initrd_url", urls.blob(&p.initrd_sha256)),
                ("cmdline", plain(&p.cmdline)),
                ("how", if p.mode == BootMode::Swarm { "through the swarm (stub)".into() } else { "directly".to_string() }),
            ]);
            BOOT_TEMPLATE
        }
        Err(reason) => {
            vars.push(("reason", plain(reason)));
            NO_IMAGE_TEMPLATE
        }
    };
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), &v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_image::FileEntry;

    fn rules() -> ImageRules {
        ImageRules {
            default_image: Some("elchos".into()),
            default_mode: BootMode::Swarm,
            clients: vec![ClientRule::new("52:54:00:00:00:0?", "lab").unwrap().with_mode(Some(BootMode::Direct)), ClientRule::new("52:54:00:*", "vm").unwrap()],
        }
    }

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let r = rules();
        assert_eq!(r.image_for("52:54:00:00:00:01"), Some("lab"));
        assert_eq!(r.image_for("52:54:00:AB:00:01"), Some("vm"), "MACs match in any case");
        assert_eq!(r.image_for("02:00:00:00:00:01"), Some("elchos"));
        assert_eq!(ImageRules::default().image_for("02:00:00:00:00:01"), None);
        assert_eq!((r.mode_for("52:54:00:00:00:01"), r.mode_for("52:54:00:ab:00:01"), r.mode_for("02:00:00:00:00:01")), (BootMode::Direct, BootMode::Swarm, BootMode::Swarm));
        assert!(ClientRule::new("52:54:[", "x").is_err());
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "elchos".into(),
            version: 3,
            created: 1,
            predecessor: Some(2),
            cmdline: "console=ttyS0 quiet".into(),
            files: vec![
                FileEntry { role: Role::Kernel, size: 1, sha256: "a".repeat(64), info_hash: None },
                FileEntry { role: Role::Initrd, size: 1, sha256: "b".repeat(64), info_hash: None },
            ],
            build: None,
        }
    }

    #[test]
    fn the_script_boots_the_versions_own_files() {
        let plan = BootPlan::from_manifest(&manifest()).unwrap();
        let asker = Asker { mac: "52:54:00:00:00:01".into(), ..Default::default() };
        let s = render(Ok(&plan), &asker, "http://10.77.0.1:8080");
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains(&format!("kernel http://10.77.0.1:8080/blob/{} initrd=initrd.img console=ttyS0 quiet || goto retry", "a".repeat(64))), "{s}");
        assert!(s.contains(&format!("initrd --name initrd.img http://10.77.0.1:8080/blob/{}", "b".repeat(64))));
        assert!(s.contains("52:54:00:00:00:01 boots elchos version 3 directly"));
        assert!(!s.contains("{{"), "every placeholder filled: {s}");
    }

    #[test]
    fn swarm_mode_boots_the_stub_with_the_images_arguments() {
        let stub = StubRecord { kernel_sha256: "c".repeat(64), initrd_sha256: "d".repeat(64), release: "6.1.0-1-amd64".into(), initrd_size: 1, built: 1 };
        let plan = BootPlan::swarm(&manifest(), &stub, "http://10.77.0.1:8080", &"e".repeat(64));
        let s = render(Ok(&plan), &Asker { mac: "52:54:00:00:00:01".into(), ..Default::default() }, "http://10.77.0.1:8080");
        let line = format!(
            "kernel http://10.77.0.1:8080/blob/{} initrd=initrd.img console=ttyS0 quiet swarmboot.server=http://10.77.0.1:8080 swarmboot.image=elchos@3 swarmboot.key={} || goto retry",
            "c".repeat(64),
            "e".repeat(64)
        );
        assert!(s.contains(&line), "{s}");
        assert!(s.contains(&format!("initrd --name initrd.img http://10.77.0.1:8080/blob/{}", "d".repeat(64))));
        assert!(s.contains("boots elchos version 3 through the swarm"));
    }

    /// Every branch of the policy: rules → image → latest version → swarm with the stub, or
    /// directly (by rule, or with a warning while no stub is built), or why nothing boots.
    #[test]
    fn the_boot_policy_decides_image_version_and_mode() {
        let stub = StubRecord { kernel_sha256: "c".repeat(64), initrd_sha256: "d".repeat(64), release: "6.1.0-1-amd64".into(), initrd_size: 1, built: 1 };
        let key = "e".repeat(64);
        let server = SwarmServer { base: "http://10.77.0.1:8080", key_hex: &key };
        let named = |want: &'static str| move |name: &str| -> Result<Option<Manifest>, String> { Ok((name == want).then(|| Manifest { name: name.into(), ..manifest() })) };
        let r = rules();

        let swarm = decide(&r, "02:00:00:00:00:01", named("elchos"), Ok(Some(stub.clone())), server);
        assert_eq!(swarm, Decision { plan: Ok(BootPlan::swarm(&manifest(), &stub, server.base, &key)), warning: None });
        let no_stub = decide(&r, "02:00:00:00:00:01", named("elchos"), Ok(None), server);
        assert_eq!(no_stub.plan, BootPlan::from_manifest(&manifest()).map_err(|e| NoImage(e.to_string())));
        assert!(no_stub.warning.unwrap().contains("no stub is built (swarmboot stub build): booting directly"));
        let direct = decide(&r, "52:54:00:00:00:01", named("lab"), Ok(Some(stub.clone())), server);
        assert_eq!((direct.plan.unwrap().mode, direct.warning), (BootMode::Direct, None), "a direct rule wins over the stub");

        let no_rule = decide(&ImageRules::default(), "02:00:00:00:00:01", named("elchos"), Ok(Some(stub.clone())), server);
        assert_eq!(no_rule.plan, Err(NoImage("no [boot] default_image, and no [[boot.client]] rule matches".into())));
        let no_elchos = decide(&r, "02:00:00:00:00:01", named("lab"), Ok(Some(stub.clone())), server);
        assert_eq!(no_elchos.plan, Err(NoImage("the catalog has no image elchos (swarmboot image build elchos makes it)".into())));
        let no_vm = decide(&r, "52:54:00:ab:00:01", named("lab"), Ok(Some(stub.clone())), server);
        assert_eq!(no_vm.plan, Err(NoImage("the catalog has no image vm".into())));
        let unreadable = decide(&r, "02:00:00:00:00:01", |_: &str| Err("manifest elchos/3.toml is invalid".to_string()), Ok(Some(stub.clone())), server);
        assert_eq!(unreadable.plan, Err(NoImage("manifest elchos/3.toml is invalid".into())));
        let bad_stub = decide(&r, "02:00:00:00:00:01", named("elchos"), Err("stub.toml is invalid".into()), server);
        assert_eq!(bad_stub.plan, Err(NoImage("stub.toml is invalid".into())));
    }

    #[test]
    fn no_image_explains_and_retries() {
        let s = render(Err("no image named lab"), &Asker { mac: "02:00:00:00:00:09".into(), ..Default::default() }, "http://s:8080");
        assert!(s.contains("no image to boot for 02:00:00:00:00:09: no image named lab"));
        assert!(s.contains("chain --replace --autofree http://s:8080/boot.ipxe?mac=${net0/mac}&arch=${buildarch}&uuid=${uuid}"));
        assert!(!s.contains("{{"));
    }

    #[test]
    fn hostile_values_cannot_inject_script() {
        let s = render(Err("x"), &Asker { mac: "a\nshell\n${x}".into(), ..Default::default() }, "http://s");
        assert!(!s.contains("\nshell"), "{s}");
        assert!(s.contains("ashellx"));
        let mut m = manifest();
        m.files.retain(|f| f.role != Role::Initrd);
        assert_eq!(BootPlan::from_manifest(&m), Err(PlanError::MissingFile { image: "elchos".into(), version: 3, role: "initrd" }));
    }
}
