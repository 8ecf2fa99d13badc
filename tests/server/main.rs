//! The server over real mutual TLS on loopback: access control, limits, routing, third-party Vault clients, attacks, the TLS handshake, and the audit trail.
//!
//! One test binary per concern (docs/architecture.md, "Tests"); each module was once its own
//! binary. Helpers shared by every binary live in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod attacks;
mod audit;
mod bao;
mod curl;
mod deletion;
mod hvac;
mod limits;
mod openbao;
mod routes;
mod tls_handshake;
mod vault_clients;
// Issue 16: hvac's transform calls.
mod hvac_transform;
