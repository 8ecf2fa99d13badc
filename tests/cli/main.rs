//! The `tresor` command as users run it: the README walkthrough and the load tool.
//!
//! One test binary per concern (docs/architecture.md, "Tests"); each module was once its own
//! binary. Helpers shared by every binary live in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

// Issue 16: tresor anonymize.
mod anonymize;
mod bench;
mod deploy;
mod errors;
mod operations;
mod pki;
mod postgres;
mod readme;
mod recovery;
mod rewrap;
// Issue 17: tresor rewrap --pg.
mod rewrap_table;
mod scale;
mod start;
