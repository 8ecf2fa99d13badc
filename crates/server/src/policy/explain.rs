//! `tresor policy explain`: a decision with its reasons.

use std::fmt;
use std::net::IpAddr;

use super::{AccessRequest, Decision, DenyReason, Operation, PolicySet, RuleId, RuleInfo, Scope};

/// A decision and why: the deciding rule, or the rules that almost matched.
/// [`Display`](fmt::Display) gives the text `tresor policy explain` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The principal asked about.
    pub principal: String,
    /// The operation asked about.
    pub operation: Operation,
    /// The tenant asked about.
    pub tenant: Option<String>,
    /// The key asked about.
    pub key: Option<String>,
    /// The source address asked about.
    pub source: Option<IpAddr>,
    /// What [`PolicySet::authorize`] decides.
    pub decision: Decision,
    /// For an allow, the allowing rule; for a source refusal, the first rule that would have
    /// allowed the request from another address.
    pub rule: Option<RuleInfo>,
    /// For a deny: every rule whose principals match but that does not allow the request,
    /// each with what failed. Empty for an allow.
    pub near_misses: Vec<NearMiss>,
}

/// A rule that names the principal but does not allow the request.
#[derive(Debug, Clone, PartialEq)]
pub struct NearMiss {
    /// The rule.
    pub rule: RuleId,
    /// Its description.
    pub info: RuleInfo,
    /// Every part of the request it does not cover.
    pub mismatches: Vec<Mismatch>,
}

/// The part of a request a rule does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The rule does not grant the operation.
    Operation(Operation),
    /// The grant is for another tenant (or the operation is vault-wide, which no grant covers).
    Tenant {
        /// The grant's tenant.
        granted: String,
    },
    /// None of the grant's key patterns matches the key.
    Key {
        /// The grant's key patterns, comma-separated; empty if it has none.
        patterns: String,
    },
    /// The source address is outside the rule's `allowed_cidrs`, or unknown.
    Source {
        /// The rule's networks, comma-separated.
        allowed: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Operation(op) => write!(f, "operations do not include `{op}`"),
            Mismatch::Tenant { granted } => write!(f, "tenant is `{granted}`"),
            Mismatch::Key { patterns } if patterns.is_empty() => {
                f.write_str("grants no keys (no `keys`)")
            }
            Mismatch::Key { patterns } => write!(f, "key matches none of keys={patterns}"),
            Mismatch::Source { allowed } => {
                write!(f, "source is outside allowed_cidrs={allowed}")
            }
        }
    }
}

impl PolicySet {
    /// Decides `request` as [`PolicySet::authorize`] does, and says why.
    pub fn explain(&self, request: &AccessRequest<'_>) -> Explanation {
        let decision = self.authorize(request);
        let rule = match decision {
            Decision::Allow(id) | Decision::Deny(DenyReason::SourceNotAllowed { rule: id }) => {
                Some(self.rule(&id).clone())
            }
            Decision::Deny(_) => None,
        };
        let mut near_misses = Vec::new();
        if !decision.is_allowed() && request.is_complete() {
            let source = request.source.map(|a| a.to_canonical());
            for (i, rule) in self.rules.iter().enumerate() {
                if !rule.principal_matches(request.principal) {
                    continue;
                }
                let mut mismatches = Vec::new();
                let granted = self.vocabulary.bit(request.operation);
                if !granted.is_some_and(|bit| rule.ops.contains(bit)) {
                    mismatches.push(Mismatch::Operation(request.operation));
                }
                // A vault-wide operation is already an operation mismatch for a grant.
                if request.operation.scope() != Scope::Vault && !rule.tenant_covers(request) {
                    let granted = rule.tenant.as_deref().unwrap_or_default().to_owned();
                    mismatches.push(Mismatch::Tenant { granted });
                }
                if !rule.key_covers(request) {
                    let patterns = rule.keys.as_deref().unwrap_or_default();
                    let patterns: Vec<&str> = patterns.iter().map(|g| g.as_str()).collect();
                    mismatches.push(Mismatch::Key {
                        patterns: patterns.join(","),
                    });
                }
                if !rule.source_allowed(source) {
                    let allowed = rule.cidrs.as_deref().unwrap_or_default();
                    let allowed: Vec<String> = allowed.iter().map(|c| c.to_string()).collect();
                    mismatches.push(Mismatch::Source {
                        allowed: allowed.join(","),
                    });
                }
                let id = RuleId(i as u32);
                near_misses.push(NearMiss {
                    rule: id,
                    info: self.rule(&id).clone(),
                    mismatches,
                });
            }
        }
        Explanation {
            principal: request.principal.to_owned(),
            operation: request.operation,
            tenant: request.tenant.map(str::to_owned),
            key: request.key.map(str::to_owned),
            source: request.source,
            decision,
            rule,
            near_misses,
        }
    }
}

impl Explanation {
    /// `tenant/key`, `tenant`, or `the vault`, as the operation's scope reads it.
    fn path(&self) -> String {
        match (self.operation.scope(), &self.tenant, &self.key) {
            (Scope::Vault, _, _) => "the vault".into(),
            (Scope::Key, Some(t), Some(k)) => format!("{t}/{k}"),
            (_, Some(t), _) => t.clone(),
            (_, None, _) => "(no tenant)".into(),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.operation;
        match (self.decision, &self.rule) {
            (Decision::Allow(_), Some(rule)) => return write!(f, "allow: {rule}"),
            (Decision::Deny(DenyReason::IncompleteRequest), _) => {
                let needs = match op.scope() {
                    Scope::Key => "a tenant and a key (TENANT/KEY)",
                    _ => "a tenant",
                };
                return write!(f, "deny: `{op}` needs {needs}");
            }
            (Decision::Deny(DenyReason::SourceNotAllowed { .. }), Some(rule)) => {
                let source = self
                    .source
                    .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                write!(
                    f,
                    "deny: source address {source} is outside the allowed_cidrs of every rule that grants `{op}` on {} to {}\n  first such rule: {rule}",
                    self.path(),
                    self.principal
                )?;
            }
            _ => write!(
                f,
                "deny: no rule grants `{op}` on {} to {}",
                self.path(),
                self.principal
            )?,
        }
        if self.near_misses.is_empty() {
            write!(f, "\n  no rule names principal {}", self.principal)?;
        }
        for miss in &self.near_misses {
            let failed: Vec<String> = miss.mismatches.iter().map(|m| m.to_string()).collect();
            write!(f, "\n  near miss: {}\n    {}", miss.info, failed.join("; "))?;
        }
        Ok(())
    }
}
