//! For an endpoint's tests beside it: the API in process, without TLS, over an unsealed vault
//! with one tenant, called by a principal an operator rule allows everything.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tresor_core::{SledStore, TenantSpec, Vault, VaultOptions};
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::custody::InitRequest;

use super::{ApiState, Caller, handle};
use crate::config::Limits;
use crate::policy::{PolicyHandle, PolicySet};
use crate::services::Services;

/// The tenant every test API has.
pub(crate) const TENANT: &str = "t";
/// The principal allowed everything.
pub(crate) const ADMIN: &str = "spiffe://test/admin";
/// A principal allowed `encrypt` and `decrypt` on `t`'s keys, and nothing else.
pub(crate) const APP: &str = "spiffe://test/app";

/// A principal allowed only `transform-encode` on `t`'s roles (issue 16).
pub(crate) const ENCODER: &str = "spiffe://test/encoder";

/// A vault in `dir`, initialised with one custodian, `alice` (returned), and sealed.
pub(crate) fn initialised_vault(dir: &std::path::Path) -> (Vault, CustodianIdentity) {
    let store = SledStore::open(dir).unwrap();
    let vault = Vault::open(Arc::new(store), VaultOptions::new("test")).unwrap();
    let custodian = CustodianIdentity::generate("alice").unwrap();
    vault
        .init(&InitRequest {
            custodians: vec![custodian.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    (vault, custodian)
}

/// Unseals a vault of [`initialised_vault`] with its custodian's share.
pub(crate) fn unseal(vault: &Vault, custodian: &CustodianIdentity) {
    let share = vault
        .sealed_share("alice")
        .unwrap()
        .open(custodian)
        .unwrap();
    vault.unseal(vec![share]).unwrap();
}

/// An API and its vault's directory.
pub(crate) struct TestApi {
    state: Arc<ApiState>,
    _dir: TempDir,
}

impl TestApi {
    pub(crate) fn new() -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let (vault, custodian) = initialised_vault(dir.path());
        unseal(&vault, &custodian);
        vault.create_tenant(TENANT, &TenantSpec::default()).unwrap();
        let policies = PolicySet::from_files(
            crate::operations(),
            &[(
                "test.toml",
                format!(
                    "[[operator]]\nprincipals = [\"{ADMIN}\"]\noperations = [\"*\"]\n\n\
                     [[grant]]\nprincipals = [\"{APP}\"]\ntenant = \"{TENANT}\"\nkeys = [\"*\"]\n\
                     operations = [\"encrypt\", \"decrypt\"]\n\n\
                     [[grant]]\nprincipals = [\"{ENCODER}\"]\ntenant = \"{TENANT}\"\nkeys = [\"*\"]\n\
                     operations = [\"transform-encode\"]\n"
                ),
            )],
        )
        .unwrap();
        let state = ApiState::new(
            Services::new(vault, 3600),
            Arc::new(PolicyHandle::new(policies)),
            Limits::default(),
            None,
        );
        TestApi {
            state: Arc::new(state),
            _dir: dir,
        }
    }

    /// The state the calls go to.
    pub(crate) fn state(&self) -> &ApiState {
        &self.state
    }

    /// The vault behind the API.
    pub(crate) fn vault(&self) -> &Vault {
        &self.state.services.vault
    }

    /// `method` `/v1/path` with a JSON body (`Null`: none), as `principal`: the status and the
    /// JSON answer (`Null` when empty).
    pub(crate) async fn call_as(
        &self,
        principal: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = match body {
            Value::Null => Bytes::new(),
            body => Bytes::from(serde_json::to_vec(&body).unwrap()),
        };
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("/v1/{path}"))
            .header(hyper::header::HOST, "tresor.test")
            .body(Full::new(body))
            .unwrap();
        let address: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let caller = Arc::new(Caller::new(principal.to_owned(), address));
        let response = handle(self.state.clone(), caller, request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, value)
    }

    /// Like [`TestApi::call_as`], as [`ADMIN`].
    pub(crate) async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(ADMIN, method, path, body).await
    }
}
