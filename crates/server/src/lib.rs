//! The Tresor server: mutual TLS in front, the Vault-compatible HTTP API, policy, audit and
//! metrics on every request, and the services that live beside the vault core (pins,
//! approvals). docs/architecture.md draws how they fit together.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tresor_server::config::Config::load("tresor.toml".as_ref())?;
//! // Checks TLS files, policies and the listen address before it opens (or creates) the store.
//! let handle = tresor_server::server::open_and_start(config).await?;
//! tresor_server::server::wait_for_signals(&handle).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anchor;
mod api;
pub mod approvals;
pub mod audit;
pub mod coherence;
pub mod config;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod pins;
pub mod policy;
pub mod scheduled_deletion;
pub mod server;
pub mod services;
pub mod tls;
// Issue 16: Vault Transform (format-preserving transforms) per tenant.
pub mod transform;

/// The operations this server's API declares: what its policies may name (see
/// [`policy::Vocabulary`]).
pub fn operations() -> &'static policy::Vocabulary {
    api::vocabulary()
}
