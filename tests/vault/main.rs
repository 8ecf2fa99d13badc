//! The vault core through its library API: ciphertext formats, the life cycle of keys and tenants, every operation, properties, refusals, storage, and crash drills.
//!
//! One test binary per concern (docs/architecture.md, "Tests"); each module was once its own
//! binary. Helpers shared by every binary live in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod deletion;
mod format;
mod import;
mod lifecycle;
mod operations;
mod peer;
mod pg_auth;
mod properties;
mod rejections;
mod rollback;
mod scale;
mod store;
mod upgrade;
