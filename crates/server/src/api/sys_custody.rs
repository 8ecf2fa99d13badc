//! The custodians' routes under `sys/`: init, fetching and submitting unseal shares, seal,
//! level-3 tenant custody (fetch the sealed custody key, unlock, lock), and the dual-controlled
//! root rotation, rekey and custodian change, which only create approvals.
//!
//! Shares and custody keys travel sealed both ways: to the custodian's X25519 key when fetched,
//! to the vault's current unseal key when submitted. Neither is readable in a request or
//! response body, not even inside TLS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::params::{self, Int};
use super::reply::{ApiError, Reply};
use super::{Caller, blocking};
use crate::approvals::Approvals;
use tresor_core::Vault;
use tresor_crypto::identity::CustodianPublicKey;
use tresor_wire::approvals::Dangerous;
use tresor_wire::custody::InitRequest;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InitBody {
    #[serde(default)]
    custodians: Vec<CustodianPublicKey>,
    threshold: Option<Int>,
    /// Four eyes (default: on wherever n − 1 ≥ k).
    #[serde(default)]
    four_eyes: Option<params::Flag>,
}

fn custody_request(
    custodians: Vec<CustodianPublicKey>,
    threshold: Option<Int>,
    four_eyes: Option<params::Flag>,
) -> Result<InitRequest, ApiError> {
    let threshold = match threshold {
        None => return Err(ApiError::bad_request("missing threshold")),
        Some(Int(t)) => {
            u8::try_from(t).map_err(|_| ApiError::bad_request(format!("invalid threshold: {t}")))?
        }
    };
    let request = InitRequest {
        custodians,
        threshold,
        four_eyes: four_eyes.map(|f| f.0),
    };
    tresor_core::validate_custody(&request).map_err(ApiError::from)?;
    Ok(request)
}

/// POST `sys/init`: the custodians' public keys and the threshold.
pub(crate) fn init(vault: &Vault, body: &[u8]) -> Result<Reply, ApiError> {
    let body: InitBody = params::body(body)?;
    let request = custody_request(body.custodians, body.threshold, body.four_eyes)?;
    let status = blocking(|| vault.init(&request)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&status))
}

/// GET `sys/unseal-share/:custodian`: that custodian's share, sealed to their own key.
pub(crate) fn unseal_share(vault: &Vault, custodian: &str) -> Result<Reply, ApiError> {
    let share = blocking(|| vault.sealed_share(custodian)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&share))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    custodian: String,
    /// The share sealed to the vault's current unseal key, base64.
    sealed_share: String,
    /// This custodian accepts a known gap at the end of the audit log.
    #[serde(default)]
    accept_audit_gap: bool,
}

/// POST `sys/unseal`: one custodian's share, sealed to the current unseal key.
pub(crate) fn unseal(vault: &Vault, caller: &Caller, body: &[u8]) -> Result<Reply, ApiError> {
    let body: Submission = params::body(body)?;
    let sealed = STANDARD
        .decode(&body.sealed_share)
        .map_err(|_| ApiError::bad_request("invalid sealed_share: not base64"))?;
    let progress = blocking(|| {
        vault.submit_sealed_share(
            &body.custodian,
            &caller.principal,
            &sealed,
            body.accept_audit_gap,
        )
    })
    .map_err(ApiError::from_native)?;
    Ok(Reply::data(&progress))
}

/// POST `sys/seal`.
pub(crate) fn seal(vault: &Vault) -> Result<Reply, ApiError> {
    vault.seal();
    Ok(Reply::no_content())
}

#[derive(Serialize)]
struct CustodyBox {
    vault_id: String,
    tenant: String,
    custodian: String,
    sealed_custody_key: String,
    unseal_key: String,
}

/// GET `sys/tenants/:name/custody/:custodian`: the tenant's custody key sealed to that
/// custodian, and the key to seal it back to.
pub(crate) fn custody_box(vault: &Vault, tenant: &str, custodian: &str) -> Result<Reply, ApiError> {
    let sealed =
        blocking(|| vault.tenant_custody_box(tenant, custodian)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&CustodyBox {
        vault_id: vault.vault_id()?,
        tenant: tenant.to_owned(),
        custodian: custodian.to_owned(),
        sealed_custody_key: sealed,
        unseal_key: STANDARD.encode(vault.unseal_public_key()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    custodian: String,
    /// The custody key sealed to the vault's current unseal key, base64.
    sealed_custody_key: String,
}

/// POST `sys/tenants/:name/unlock`.
pub(crate) fn unlock(
    vault: &Vault,
    caller: &Caller,
    tenant: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: UnlockBody = params::body(body)?;
    let sealed = STANDARD
        .decode(&body.sealed_custody_key)
        .map_err(|_| ApiError::bad_request("invalid sealed_custody_key: not base64"))?;
    let info = blocking(|| {
        vault.unlock_tenant_sealed(tenant, &body.custodian, &caller.principal, &sealed)
    })
    .map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}

/// POST `sys/tenants/:name/lock`.
pub(crate) fn lock(vault: &Vault, tenant: &str) -> Result<Reply, ApiError> {
    blocking(|| vault.lock_tenant(tenant)).map_err(ApiError::from_native)?;
    Ok(Reply::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustodiansBody {
    custodians: Vec<CustodianPublicKey>,
    /// The new threshold (default: unchanged).
    #[serde(default)]
    threshold: Option<Int>,
}

/// POST `sys/tenants/:name/custodians`: needs approval.
pub(crate) fn change_custodians(
    vault: &Vault,
    approvals: &Approvals,
    caller: &Caller,
    tenant: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: CustodiansBody = params::body(body)?;
    if body.custodians.is_empty() {
        return Err(ApiError::bad_request(
            "a level-3 tenant needs at least one custodian of its own",
        ));
    }
    let info = blocking(|| vault.tenant_info(tenant)).map_err(ApiError::from_native)?;
    if info.level != 3 {
        return Err(ApiError::bad_request(format!(
            "`{tenant}` is not a level-3 tenant: it has no custodians of its own"
        )));
    }
    // The change re-wraps the tenant's KEK, which only an unlocked tenant has: refuse now
    // rather than after custodians have signed something that cannot run.
    if info.locked {
        return Err(tresor_core::Error::TenantLocked(tenant.to_owned()).into());
    }
    let threshold = body
        .threshold
        .map(|Int(t)| {
            u8::try_from(t).map_err(|_| ApiError::bad_request(format!("invalid threshold: {t}")))
        })
        .transpose()?;
    // Only the tenant's own custodians decide who they are.
    propose_to(
        approvals,
        caller,
        Dangerous::ChangeTenantCustodians {
            tenant: tenant.to_owned(),
            custodians: body.custodians,
            threshold,
        },
        Some(tenant),
    )
}

/// POST `sys/rotate-root`: needs approval.
pub(crate) fn rotate_root(approvals: &Approvals, caller: &Caller) -> Result<Reply, ApiError> {
    propose(approvals, caller, Dangerous::RotateRoot)
}

/// POST `sys/rekey`: new custodians and/or threshold; needs approval.
pub(crate) fn rekey(
    approvals: &Approvals,
    caller: &Caller,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: InitBody = params::body(body)?;
    let request = custody_request(body.custodians, body.threshold, body.four_eyes)?;
    propose(
        approvals,
        caller,
        Dangerous::Rekey {
            custodians: request.custodians,
            threshold: request.threshold,
            four_eyes: request.four_eyes,
        },
    )
}

/// Records a dangerous operation as pending approval and answers 202 with the approval.
pub(crate) fn propose(
    approvals: &Approvals,
    caller: &Caller,
    request: Dangerous,
) -> Result<Reply, ApiError> {
    propose_to(approvals, caller, request, None)
}

/// As [`propose`], for the custodians of level-3 tenant `tenant` (`None`: the vault's).
pub(crate) fn propose_to(
    approvals: &Approvals,
    caller: &Caller,
    request: Dangerous,
    tenant: Option<&str>,
) -> Result<Reply, ApiError> {
    let approval = blocking(|| approvals.propose_to(request, &caller.principal, tenant))
        .map_err(ApiError::from_native)?;
    Ok(pending(approval))
}

/// The 202 answer for an approval now pending.
fn pending(approval: tresor_wire::approvals::Approval) -> Reply {
    let message = format!(
        "needs approval by {} custodian(s) before it runs: tresor approval approve {} --identity CUSTODIAN.key",
        approval.required, approval.id
    );
    Reply::with_status(StatusCode::ACCEPTED, &approval).warn(message)
}
