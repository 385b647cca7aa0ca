//! Nothing to link: the end-to-end tests are in `e2e/main.rs` and its modules.
