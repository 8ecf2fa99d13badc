//! Pinned-certificate rotation manifests: the manifests and their verification, the API and the CLI.
//!
//! One test binary per concern (docs/architecture.md, "Tests"); each module was once its own
//! binary. Helpers shared by every binary live in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod cli;
mod manifests;
