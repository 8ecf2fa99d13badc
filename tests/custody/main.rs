//! The custodians' ceremonies over the real server and CLI: unseal, dual control, tenant custody.
//!
//! One test binary per concern (docs/architecture.md, "Tests"); each module was once its own
//! binary. Helpers shared by every binary live in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod control;
mod people;
mod transfer;
mod trust;
mod unseal;
