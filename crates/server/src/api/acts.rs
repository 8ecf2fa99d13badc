//! What the audit log says about custodians' acts (docs/audit.md, "Who did what"): the
//! custodian behind a share, unlock or signature, and how an approval ended.

use tresor_crypto::identity::CustodianPublicKey;
use tresor_wire::approvals::{Approval, ApprovalSignature, ApprovalState};

use crate::audit::{ApprovalRef, CustodianRef};

/// The log's reference to `custodian`.
pub(crate) fn custodian(custodian: &CustodianPublicKey) -> CustodianRef {
    CustodianRef {
        name: custodian.name().to_owned(),
        fingerprint: custodian.fingerprint(),
    }
}

/// The custodian who signed as `name` in `approval` (its approval or its rejection).
pub(crate) fn signer(approval: &Approval, name: &str) -> Option<CustodianRef> {
    approval
        .signatures
        .iter()
        .chain(&approval.rejections)
        .find(|s| s.custodian == name)
        .map(signed)
}

fn signed(signature: &ApprovalSignature) -> CustodianRef {
    CustodianRef {
        name: signature.custodian.clone(),
        fingerprint: signature.fingerprint.clone(),
    }
}

/// How `approval` ended, or `None` while it is still open (pending, or merely past its time:
/// an expiry happens without a request, so no request's line could record it).
pub(crate) fn settled(approval: &Approval) -> Option<ApprovalRef> {
    let (state, result) = match &approval.state {
        ApprovalState::Pending | ApprovalState::Expired { .. } => return None,
        ApprovalState::Executed { outcome, .. } => ("executed", outcome.clone()),
        ApprovalState::Failed { error, .. } => ("failed", error.clone()),
        ApprovalState::Rejected { .. } => ("rejected", String::new()),
        ApprovalState::Cancelled { by, .. } => ("cancelled", format!("cancelled by {by}")),
    };
    Some(ApprovalRef {
        id: approval.id.clone(),
        operation: approval.request.operation().to_owned(),
        target: approval.request.target(),
        requested_by: approval.requested_by.clone(),
        state: state.to_owned(),
        signers: approval.signatures.iter().map(signed).collect(),
        rejected_by: approval.rejections.iter().map(signed).collect(),
        result,
    })
}
