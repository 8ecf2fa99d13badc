//! Access policies (docs/policies.md): who may do which [`Operation`] on which tenant and key,
//! from where, and how often.
//!
//! A [`PolicySet`] is loaded from `DIR/*.toml` ([`PolicySet::load_dir`]) and denies everything
//! no rule allows. Two kinds of rule exist:
//!
//! - `[[grant]]`: principals (globs) may perform key- and tenant-scoped operations on **one**
//!   tenant, on the keys matching its globs. A grant never spans tenants and can never grant a
//!   vault-wide ([`Scope::Vault`]) operation.
//! - `[[operator]]`: the explicit operator role. Its operations apply to every tenant, every key
//!   and the vault itself.
//!
//! Either kind may restrict the source address (`allowed_cidrs`) and carry a `rate_limit`.
//! Operation names are checked against a [`Vocabulary`]: the server's is
//! [`crate::operations`], the operations its endpoints declare. docs/policies.md documents the
//! file format.
//!
//! ```
//! use tresor_server::policy::{AccessRequest, Decision, DenyReason, PolicySet};
//!
//! let operations = tresor_server::operations();
//! let set = PolicySet::from_files(operations, &[("payments.toml", r#"
//! [[grant]]
//! principals = ["spiffe://prod.example/payments-api"]
//! tenant = "payments"
//! keys = ["card-*"]
//! operations = ["encrypt", "decrypt"]
//! allowed_cidrs = ["10.0.0.0/8"]
//! "#)]).unwrap();
//!
//! let mut request = AccessRequest {
//!     principal: "spiffe://prod.example/payments-api",
//!     operation: operations.parse("encrypt").unwrap(),
//!     tenant: Some("payments"),
//!     key: Some("card-pan"),
//!     source: Some("10.1.2.3".parse().unwrap()),
//! };
//! let Decision::Allow(rule) = set.authorize(&request) else { panic!() };
//! assert_eq!(set.rule(&rule).line, 2);
//!
//! request.tenant = Some("billing");
//! assert_eq!(set.authorize(&request), Decision::Deny(DenyReason::NoMatchingRule));
//! println!("{}", set.explain(&request));
//! ```

mod cidr;
mod error;
mod explain;
mod glob;
pub mod operation;
mod parse;
mod rate;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

pub use cidr::Cidr;
pub use error::{Diagnostic, PolicyError, Warning};
pub use explain::{Explanation, Mismatch, NearMiss};
pub use operation::{InvalidVocabulary, Operation, Scope, UnknownOperation, Vocabulary};
pub use rate::{MAX_BUCKETS, MAX_BURST, MAX_RATE, MIN_RATE, RateLimit, RateLimiter, RetryAfter};

use glob::Glob;

/// Policy files whose names end like this are examples: [`PolicySet::load_dir`] skips them.
pub const EXAMPLE_SUFFIX: &str = ".example.toml";

/// One access attempt, as the server sees it after authenticating the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    /// The authenticated principal (the client certificate's SPIFFE URI).
    pub principal: &'a str,
    /// What it asks to do.
    pub operation: Operation,
    /// The tenant; required for key- and tenant-scoped operations.
    pub tenant: Option<&'a str>,
    /// The key; required for key-scoped operations.
    pub key: Option<&'a str>,
    /// The peer's address. Rules with `allowed_cidrs` refuse a request without one.
    pub source: Option<IpAddr>,
}

impl AccessRequest<'_> {
    /// Whether the request names what its operation's scope needs.
    fn is_complete(&self) -> bool {
        match self.operation.scope() {
            Scope::Key => self.tenant.is_some() && self.key.is_some(),
            Scope::Tenant => self.tenant.is_some(),
            Scope::Vault => true,
        }
    }
}

/// Identifies a rule within the [`PolicySet`] that produced it (its index in file order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub(crate) u32);

impl RuleId {
    /// The rule's position in the set, in load order.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The outcome of [`PolicySet::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this rule: the first, in load order, that allows the request. Check its rate
    /// limit next ([`PolicySet::rate_limiter`]).
    Allow(RuleId),
    /// Refused.
    Deny(DenyReason),
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No rule for this principal covers the operation on this tenant and key (deny by default).
    NoMatchingRule,
    /// Rules cover the request, but the source address is outside the `allowed_cidrs` of every
    /// one of them (or unknown). `rule` is the first such rule.
    SourceNotAllowed {
        /// The first rule that would have allowed the request from another address.
        rule: RuleId,
    },
    /// The request lacks the tenant (tenant-scoped operations) or the tenant and key
    /// (key-scoped operations) its operation needs. A server bug rather than a client's.
    IncompleteRequest,
}

/// The two kinds of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `[[grant]]`: one tenant, key globs, key- and tenant-scoped operations.
    Grant,
    /// `[[operator]]`: every tenant and the vault.
    Operator,
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleKind::Grant => "[[grant]]",
            RuleKind::Operator => "[[operator]]",
        })
    }
}

/// Where a rule comes from and what it says, for logs, audit lines and `policy explain`.
///
/// Displays as `policies/payments.toml:3 [[grant]] #1 principals=… tenant=payments keys=… operations=…`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// The file (the path under the directory for [`PolicySet::load_dir`]).
    pub file: String,
    /// 1-based line of the rule's `[[grant]]` or `[[operator]]` header.
    pub line: usize,
    /// Grant or operator.
    pub kind: RuleKind,
    /// 1-based position among the rules of its kind in its file (the `#1` in `[[grant]] #1`).
    pub ordinal: usize,
    /// One line: `principals=… [tenant=… keys=…] operations=… [allowed_cidrs=…] [rate_limit=…]`.
    pub description: String,
    /// Its rate limit, if any.
    pub rate_limit: Option<RateLimit>,
}

impl fmt::Display for RuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} #{} {}",
            self.file, self.line, self.kind, self.ordinal, self.description
        )
    }
}

/// A set of operations: one bit per operation of the set's [`Vocabulary`], by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpSet(u64);

impl OpSet {
    pub(crate) const EMPTY: OpSet = OpSet(0);

    /// What `"*"` means in an operator rule: every operation.
    pub(crate) fn all(vocabulary: &Vocabulary) -> OpSet {
        OpSet(vocabulary.bits_in(&[Scope::Key, Scope::Tenant, Scope::Vault]))
    }

    /// What `"*"` means in a grant: every key- and tenant-scoped operation.
    pub(crate) fn grantable(vocabulary: &Vocabulary) -> OpSet {
        OpSet(vocabulary.bits_in(&[Scope::Key, Scope::Tenant]))
    }

    pub(crate) fn with(self, bit: u64) -> OpSet {
        OpSet(self.0 | bit)
    }

    pub(crate) fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }

    /// Whether the set holds the operation whose bit is `bit` (see [`Vocabulary::bit`]).
    pub(crate) fn contains(self, bit: u64) -> bool {
        self.0 & bit != 0
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) kind: RuleKind,
    pub(crate) principals: Box<[Glob]>,
    /// The grant's tenant; `None` for operators.
    pub(crate) tenant: Option<Box<str>>,
    /// The grant's key globs; `None` for operators and for grants without `keys`.
    pub(crate) keys: Option<Box<[Glob]>>,
    pub(crate) ops: OpSet,
    /// `None`: any source.
    pub(crate) cidrs: Option<Box<[Cidr]>>,
}

impl Rule {
    fn principal_matches(&self, principal: &str) -> bool {
        self.principals.iter().any(|g| g.matches(principal))
    }

    /// Whether the rule's tenant covers the request (operators cover every tenant).
    fn tenant_covers(&self, request: &AccessRequest<'_>) -> bool {
        match (&self.tenant, request.operation.scope()) {
            (None, _) => true,
            (Some(_), Scope::Vault) => false,
            (Some(tenant), _) => request.tenant == Some(&**tenant),
        }
    }

    /// Whether the rule's key globs cover the request (only key-scoped operations need them).
    fn key_covers(&self, request: &AccessRequest<'_>) -> bool {
        if self.kind == RuleKind::Operator || request.operation.scope() != Scope::Key {
            return true;
        }
        match (&self.keys, request.key) {
            (Some(globs), Some(key)) => globs.iter().any(|g| g.matches(key)),
            _ => false,
        }
    }

    fn source_allowed(&self, source: Option<IpAddr>) -> bool {
        match (&self.cidrs, source) {
            (None, _) => true,
            (Some(cidrs), Some(addr)) => cidrs.iter().any(|c| c.contains(addr)),
            (Some(_), None) => false,
        }
    }
}

/// A loaded, validated set of rules. Immutable; share it as `Arc<PolicySet>` (see
/// [`PolicyHandle`]). [`PolicySet::default`] denies everything.
pub struct PolicySet {
    /// The operations its rules may name, and which bit each has in their [`OpSet`]s.
    vocabulary: &'static Vocabulary,
    rules: Vec<Rule>,
    /// For each tenant named by a grant: the indices of its grants and of every operator rule,
    /// in load order. The candidates for a key- or tenant-scoped request on that tenant.
    by_tenant: HashMap<Box<str>, Box<[u32]>>,
    /// The indices of the operator rules: the candidates for vault-wide requests and for
    /// tenants no grant names.
    operators: Box<[u32]>,
    infos: Vec<RuleInfo>,
    files: Vec<String>,
    warnings: Vec<Warning>,
    limiter: RateLimiter,
    /// SHA-256 (hex) of the files' base names and contents, in load order (see
    /// [`PolicySet::digest`]).
    digest: String,
}

fn digest_files<N: AsRef<str>, T: AsRef<str>>(files: &[(N, T)]) -> String {
    let mut parts: Vec<Vec<u8>> = vec![b"tresor-policy-set-v1".to_vec()];
    for (name, text) in files {
        let name = name.as_ref();
        let base = Path::new(name)
            .file_name()
            .map_or(name.to_owned(), |n| n.to_string_lossy().into_owned());
        for field in [base.as_bytes(), text.as_ref().as_bytes()] {
            parts.push((field.len() as u64).to_be_bytes().to_vec());
            parts.push(field.to_vec());
        }
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    tresor_crypto::hex(&tresor_crypto::sha256(&parts))
}

impl Default for PolicySet {
    fn default() -> PolicySet {
        PolicySet::build(&operation::EMPTY, Vec::new(), Vec::new(), Vec::new())
    }
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("files", &self.files)
            .field("rules", &self.infos)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Loads every `*.toml` file of `dir` in file-name order, skipping dot files and examples
    /// (names ending in [`EXAMPLE_SUFFIX`]). Symbolic links are followed. Operation names are
    /// those of `vocabulary`.
    ///
    /// A missing or unreadable directory is an error; an existing directory without policy
    /// files gives a set that denies everything (with a warning). Any invalid file fails the
    /// whole load, listing every problem found with its file, line and column.
    pub fn load_dir(vocabulary: &'static Vocabulary, dir: &Path) -> Result<PolicySet, PolicyError> {
        let listing = list_dir(dir)?;
        let mut files = Vec::with_capacity(listing.files.len());
        for path in listing.files {
            let text = fs::read_to_string(&path).map_err(|source| PolicyError::ReadFile {
                path: path.clone(),
                source,
            })?;
            files.push((path.display().to_string(), text));
        }
        let mut set = PolicySet::from_files(vocabulary, &files)?;
        if set.files.is_empty() {
            set.warnings.insert(
                0,
                Warning {
                    file: None,
                    line: None,
                    message: format!(
                        "{} holds no policy files: every request will be denied",
                        dir.display()
                    ),
                },
            );
        }
        Ok(set)
    }

    /// Builds a set from `(file name, contents)` pairs, in the order given. The names appear
    /// in diagnostics and [`RuleInfo::file`]; operation names are those of `vocabulary`.
    pub fn from_files<N: AsRef<str>, T: AsRef<str>>(
        vocabulary: &'static Vocabulary,
        files: &[(N, T)],
    ) -> Result<PolicySet, PolicyError> {
        let mut rules = Vec::new();
        let mut diagnostics = Vec::new();
        let mut warnings = Vec::new();
        let mut names = Vec::with_capacity(files.len());
        for (name, text) in files {
            let name = name.as_ref();
            names.push(name.to_owned());
            match parse::parse_file(vocabulary, name, text.as_ref()) {
                Ok(parsed) => {
                    if parsed.is_empty() {
                        warnings.push(Warning {
                            file: Some(name.to_owned()),
                            line: None,
                            message: "no [[grant]] or [[operator]] rules in this file".into(),
                        });
                    }
                    for p in &parsed {
                        if p.grants_everything_to_everyone {
                            let scope = match p.info.kind {
                                RuleKind::Grant => "of its tenant",
                                RuleKind::Operator => "on every tenant and the vault",
                            };
                            warnings.push(Warning {
                                file: Some(name.to_owned()),
                                line: Some(p.info.line),
                                message: format!(
                                    "{} #{} grants every operation {scope} to every principal (\"**\")",
                                    p.info.kind, p.info.ordinal
                                ),
                            });
                        }
                    }
                    rules.extend(parsed);
                }
                Err(mut d) => diagnostics.append(&mut d),
            }
        }
        if !diagnostics.is_empty() {
            return Err(PolicyError::Invalid(diagnostics));
        }
        if rules.len() > u32::MAX as usize {
            // Unreachable in practice; keeps RuleId's u32 honest.
            return Err(PolicyError::Invalid(vec![Diagnostic {
                file: names.last().cloned().unwrap_or_default(),
                line: 1,
                column: 1,
                reason: "too many rules".into(),
            }]));
        }
        let (rules, infos) = rules.into_iter().map(|p| (p.rule, p.info)).unzip();
        let mut set = PolicySet::build(vocabulary, rules, infos, names);
        set.warnings = warnings;
        set.digest = digest_files(files);
        Ok(set)
    }

    fn build(
        vocabulary: &'static Vocabulary,
        rules: Vec<Rule>,
        infos: Vec<RuleInfo>,
        files: Vec<String>,
    ) -> PolicySet {
        let limiter = RateLimiter::new(infos.iter().map(|i: &RuleInfo| i.rate_limit).collect());
        // Lossless: from_files refuses more than u32::MAX rules.
        let operators: Box<[u32]> = (0..rules.len() as u32)
            .filter(|&i| rules[i as usize].tenant.is_none())
            .collect();
        let mut by_tenant: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            if let Some(tenant) = &rule.tenant {
                by_tenant.entry(tenant.clone()).or_default().push(i as u32);
            }
        }
        let by_tenant = by_tenant
            .into_iter()
            .map(|(tenant, mut indices)| {
                indices.extend_from_slice(&operators);
                indices.sort_unstable();
                (tenant, indices.into_boxed_slice())
            })
            .collect();
        PolicySet {
            vocabulary,
            rules,
            by_tenant,
            operators,
            infos,
            files,
            warnings: Vec::new(),
            limiter,
            digest: digest_files::<&str, &str>(&[]),
        }
    }

    /// The hash of this set: SHA-256 (hex) over each file's base name and contents, each
    /// length-prefixed, in load order. Nodes that load the same files show the same hash
    /// (health and metrics), whatever directory they load them from, so an operator sees nodes
    /// that disagree.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Decides a request: allowed by the first rule (in load order) whose principals match,
    /// whose scope covers the operation, tenant and key, and whose `allowed_cidrs` (if any)
    /// contain the source. Never allocates.
    pub fn authorize(&self, request: &AccessRequest<'_>) -> Decision {
        if !request.is_complete() {
            return Decision::Deny(DenyReason::IncompleteRequest);
        }
        // An operation outside the vocabulary is in no rule.
        let Some(bit) = self.vocabulary.bit(request.operation) else {
            return Decision::Deny(DenyReason::NoMatchingRule);
        };
        let source = request.source.map(|a| a.to_canonical());
        // Only the rules that can cover the request's tenant: one hash lookup instead of a
        // string comparison per rule.
        let candidates = match (request.operation.scope(), request.tenant) {
            (Scope::Vault, _) | (_, None) => &self.operators,
            (_, Some(tenant)) => self.by_tenant.get(tenant).unwrap_or(&self.operators),
        };
        let mut refused = None;
        for &i in candidates.iter() {
            let rule = &self.rules[i as usize];
            // The candidates already cover the tenant.
            debug_assert!(rule.tenant_covers(request));
            if !rule.ops.contains(bit)
                || !rule.key_covers(request)
                || !rule.principal_matches(request.principal)
            {
                continue;
            }
            let id = RuleId(i);
            if rule.source_allowed(source) {
                return Decision::Allow(id);
            }
            refused.get_or_insert(id);
        }
        Decision::Deny(match refused {
            Some(rule) => DenyReason::SourceNotAllowed { rule },
            None => DenyReason::NoMatchingRule,
        })
    }

    /// Whether some grant names `tenant` (operator rules name no tenant).
    pub fn names_tenant(&self, tenant: &str) -> bool {
        self.by_tenant.contains_key(tenant)
    }

    /// Whether `principal`, from `source`, may do anything at all in `tenant`: some rule that
    /// matches it, covers the tenant and allows the source grants a tenant- or key-scoped
    /// operation (on any of its keys). What `sys/mounts` lists (README.md).
    pub fn may_see_tenant(&self, principal: &str, tenant: &str, source: Option<IpAddr>) -> bool {
        let in_tenant = OpSet(self.vocabulary.bits_in(&[Scope::Key, Scope::Tenant]));
        let source = source.map(|a| a.to_canonical());
        let candidates = self.by_tenant.get(tenant).unwrap_or(&self.operators);
        candidates.iter().any(|&i| {
            let rule = &self.rules[i as usize];
            rule.ops.0 & in_tenant.0 != 0
                && rule.principal_matches(principal)
                && rule.source_allowed(source)
        })
    }

    /// The operations the set's rules may name.
    pub fn vocabulary(&self) -> &'static Vocabulary {
        self.vocabulary
    }

    /// The rule `id` names.
    ///
    /// # Panics
    /// If `id` comes from another set with more rules; use [`PolicySet::get_rule`] when unsure.
    pub fn rule(&self, id: &RuleId) -> &RuleInfo {
        &self.infos[id.index()]
    }

    /// The rule `id` names, if this set has it.
    pub fn get_rule(&self, id: &RuleId) -> Option<&RuleInfo> {
        self.infos.get(id.index())
    }

    /// Every rule, in load order.
    pub fn rules(&self) -> impl ExactSizeIterator<Item = (RuleId, &RuleInfo)> {
        self.infos
            .iter()
            .enumerate()
            .map(|(i, info)| (RuleId(i as u32), info))
    }

    /// How many rules the set holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set has no rules (and so denies everything).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The files the set was loaded from, in load order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Things that are legal but probably unintended; log them when loading.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// This set's rate limiter. Fresh (all buckets full) for every loaded set, and keyed by
    /// this set's [`RuleId`]s.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

/// The policy files of a directory, sorted.
struct Listing {
    files: Vec<PathBuf>,
    skipped_examples: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, PolicyError> {
    let read_dir_error = |source: io::Error| PolicyError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut names: Vec<OsString> = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        names.push(entry.file_name());
    }
    names.sort();
    let mut listing = Listing {
        files: Vec::new(),
        skipped_examples: Vec::new(),
    };
    for name in names {
        let path = dir.join(&name);
        let lossy = name.to_string_lossy();
        if lossy.starts_with('.') || path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        // Follows symbolic links (Kubernetes ConfigMap volumes are made of them).
        let meta = fs::metadata(&path).map_err(|source| PolicyError::ReadFile {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            continue;
        }
        if lossy.ends_with(EXAMPLE_SUFFIX) {
            listing.skipped_examples.push(path);
        } else {
            listing.files.push(path);
        }
    }
    Ok(listing)
}

/// What `tresor policy check DIR` reports for a valid directory.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The files loaded, in load order.
    pub files: Vec<String>,
    /// Example files (`*.example.toml`) present but not loaded.
    pub skipped_examples: Vec<String>,
    /// How many `[[grant]]` rules.
    pub grants: usize,
    /// How many `[[operator]]` rules.
    pub operators: usize,
    /// How many rules carry a `rate_limit`.
    pub rate_limited: usize,
    /// Legal but suspicious things.
    pub warnings: Vec<Warning>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok: {} file(s), {} grant(s), {} operator rule(s), {} rate-limited",
            self.files.len(),
            self.grants,
            self.operators,
            self.rate_limited
        )?;
        for file in &self.skipped_examples {
            write!(f, "\nskipped example file {file}")?;
        }
        for warning in &self.warnings {
            write!(f, "\n{warning}")?;
        }
        Ok(())
    }
}

/// Validates a policy directory as [`PolicySet::load_dir`] would load it, for
/// `tresor policy check DIR`. Errors are the same as `load_dir`'s.
pub fn check_dir(vocabulary: &'static Vocabulary, dir: &Path) -> Result<CheckReport, PolicyError> {
    let set = PolicySet::load_dir(vocabulary, dir)?;
    let skipped_examples = list_dir(dir)?
        .skipped_examples
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let count = |kind| set.infos.iter().filter(|i| i.kind == kind).count();
    Ok(CheckReport {
        files: set.files.clone(),
        skipped_examples,
        grants: count(RuleKind::Grant),
        operators: count(RuleKind::Operator),
        rate_limited: set.infos.iter().filter(|i| i.rate_limit.is_some()).count(),
        warnings: set.warnings.clone(),
    })
}

/// The policy set in force, swappable at run time (SIGHUP), with its rate limiter.
///
/// Readers take an `Arc` snapshot with [`PolicyHandle::current`] and use it for the whole
/// request: [`PolicySet::authorize`], then `snapshot.rate_limiter().check(rule, …)`, so the
/// rule id and the limiter always belong to the same set.
#[derive(Debug)]
pub struct PolicyHandle {
    current: RwLock<Arc<PolicySet>>,
}

impl PolicyHandle {
    /// Starts with `set`.
    pub fn new(set: PolicySet) -> PolicyHandle {
        PolicyHandle {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// Loads `dir` ([`PolicySet::load_dir`]) and starts with it.
    pub fn load_dir(
        vocabulary: &'static Vocabulary,
        dir: &Path,
    ) -> Result<PolicyHandle, PolicyError> {
        Ok(PolicyHandle::new(PolicySet::load_dir(vocabulary, dir)?))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads `dir` again (with the vocabulary of the set in force) and, only if that succeeds,
    /// puts the new set (with fresh rate-limit buckets) in force. On error the old set stays in
    /// force and the error is returned.
    pub fn reload(&self, dir: &Path) -> Result<(), PolicyError> {
        let set = PolicySet::load_dir(self.current().vocabulary, dir)?;
        self.replace(set);
        Ok(())
    }

    /// Puts `set` in force. Requests already holding the old snapshot finish with it.
    pub fn replace(&self, set: PolicySet) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

#[cfg(test)]
mod tests;
