//! Signed image manifests. So far: [`keys`] — the server's ed25519 key pair (created on first
//! use in `state_dir`), signing, and verification against a public key the client was given.
//! The manifest format and its signature envelope come with the rest of issue 5.
//!
//! Not here: network, trust decisions on behalf of the caller (the caller names the key).

pub mod keys;

pub use keys::{KeyError, PublicKey, SignatureError, SigningKey};
