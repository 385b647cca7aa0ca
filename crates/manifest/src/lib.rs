//! Signed image manifests: [`keys`] — the server's ed25519 key pair (created on first use in
//! `state_dir`), signing, and verification against a public key the client was given — and
//! [`envelope`] — the signed form a client downloads (`seal` on the server, `open` on the
//! client, which says *why* it refuses: tampered, untrusted key, malformed) — and [`freshness`]
//! — the server's signed word, bound to a client's nonce, that a manifest is the latest — and
//! [`piece_hashes`] — the SHA-256 of each piece of a file, signed, so pieces are checked by
//! SHA-256 as they arrive.
//!
//! Not here: network, the manifest's fields (`swarmboot-image`'s `Manifest`), trust decisions on
//! behalf of the caller (the caller names the keys it trusts).

pub mod envelope;
pub mod freshness;
pub mod keys;
pub mod piece_hashes;

pub use envelope::{open, seal, OpenError};
pub use keys::{KeyError, PublicKey, SignatureError, SigningKey};
