//! The `tresor` command: the server (`tresor server`, `tresor dev`), the client CLI for
//! services, scripts and custodians, and the load tool (`tresor bench`). Everything it does
//! lives in the workspace's crates (docs/architecture.md); this crate parses arguments, prints
//! and measures.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anonymize;
pub mod bench;
pub mod cli;
