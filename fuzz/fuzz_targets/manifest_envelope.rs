//! What a client reads before trusting a byte: any signed-manifest envelope, freshness
//! statement and manifest body is accepted only when signed by the trusted key, or refused
//! with a reason; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmboot_manifest::freshness;
use swarmboot_manifest::PublicKey;

fuzz_target!(|data: &[u8]| {
    // RFC 8032's test key 1: nothing a fuzzer writes is signed by it.
    let key = PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
    assert!(swarmboot_manifest::open(data, &[key]).is_err());
    let _ = swarmboot_manifest::open(data, &[]);
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(freshness::check(Some(text), &[key]).is_err());
        let _ = toml::from_str::<swarmboot_image::Manifest>(text);
        let _ = PublicKey::from_key_file(text);
    }
});
