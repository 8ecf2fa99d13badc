//! Policy files: the TOML shape, its validation, and compilation into rules.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::cidr::Cidr;
use super::error::{Diagnostic, position};
use super::glob::Glob;
use super::operation::{Scope, Vocabulary};
use super::rate::{MAX_BURST, MAX_RATE, MIN_RATE, RateLimit};
use super::{OpSet, Rule, RuleInfo, RuleKind};

type List = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    grant: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    operator: Vec<Spanned<RawOperator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    principals: List,
    tenant: Spanned<String>,
    keys: Option<List>,
    operations: List,
    allowed_cidrs: Option<List>,
    rate_limit: Option<Spanned<RawRateLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    principals: List,
    operations: List,
    allowed_cidrs: Option<List>,
    rate_limit: Option<Spanned<RawRateLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests_per_second: Spanned<f64>,
    burst: Option<Spanned<i64>>,
}

/// A rule compiled from one file, before it is numbered in the set.
pub(crate) struct Parsed {
    pub(crate) rule: Rule,
    pub(crate) info: RuleInfo,
    /// Whether it grants every operation of its kind to `**`.
    pub(crate) grants_everything_to_everyone: bool,
}

/// Collects diagnostics for one file.
struct Ctx<'a> {
    vocabulary: &'a Vocabulary,
    file: &'a str,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(&mut self, span: Range<usize>, reason: impl Into<String>) {
        let (line, column) = position(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            reason: reason.into(),
        });
    }
}

/// Parses and validates one file. Rules come back in file order.
pub(crate) fn parse_file(
    vocabulary: &Vocabulary,
    file: &str,
    text: &str,
) -> Result<Vec<Parsed>, Vec<Diagnostic>> {
    let mut ctx = Ctx {
        vocabulary,
        file,
        text,
        diagnostics: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut reason = e.message().trim_end().to_owned();
            let at = text.get(span.clone()).unwrap_or("");
            let single = ["grant", "operator"]
                .into_iter()
                .find(|kind| at.starts_with('[') && at[1..].starts_with(kind));
            if let Some(kind) = single {
                if reason.contains("expected a sequence") {
                    // serde's "invalid type: map, expected a sequence" says nothing to a person.
                    reason = format!(
                        "`[{kind}]` needs double brackets: rules are arrays of tables, write [[grant]] or [[operator]] (one per rule)"
                    );
                }
            } else if (reason.starts_with("unknown field `tenant`")
                || reason.starts_with("unknown field `keys`"))
                && !reason.contains("`tenant`, `keys`")
            {
                reason.push_str(
                    " ([[operator]] rules span every tenant and key; a [[grant]] names one tenant and its keys)",
                );
            } else if reason == "missing field `tenant`" {
                reason.push_str(
                    " (a [[grant]] names exactly one tenant; only [[operator]] rules span tenants)",
                );
            }
            ctx.error(span, reason);
            return Err(ctx.diagnostics);
        }
    };

    let mut rules = Vec::new();
    for (n, grant) in raw.grant.into_iter().enumerate() {
        let span = grant.span();
        if let Some(parsed) = compile_grant(&mut ctx, n + 1, span.clone(), grant.into_inner()) {
            rules.push((span.start, parsed));
        }
    }
    for (n, operator) in raw.operator.into_iter().enumerate() {
        let span = operator.span();
        if let Some(parsed) = compile_operator(&mut ctx, n + 1, span.clone(), operator.into_inner())
        {
            rules.push((span.start, parsed));
        }
    }
    if !ctx.diagnostics.is_empty() {
        ctx.diagnostics.sort_by_key(|d| (d.line, d.column));
        return Err(ctx.diagnostics);
    }
    rules.sort_by_key(|(start, _)| *start);
    Ok(rules.into_iter().map(|(_, p)| p).collect())
}

fn compile_grant(
    ctx: &mut Ctx<'_>,
    ordinal: usize,
    header: Range<usize>,
    raw: RawGrant,
) -> Option<Parsed> {
    let errors_before = ctx.diagnostics.len();
    let principals = principals(ctx, &raw.principals);

    let tenant = raw.tenant.get_ref();
    if tenant.contains('*') {
        ctx.error(
            raw.tenant.span(),
            format!(
                "tenant `{tenant}`: a grant names exactly one tenant, without globs; use one [[grant]] per tenant, or an [[operator]] rule to span tenants"
            ),
        );
    } else if let Err(e) = tresor_core::keys::validate_tenant_name(tenant) {
        let reason = match e {
            tresor_core::Error::InvalidInput { reason, .. } => reason,
            other => other.to_string(),
        };
        ctx.error(raw.tenant.span(), reason);
    }

    let (ops, star_everything) = operations(ctx, &raw.operations, RuleKind::Grant);

    let keys = match &raw.keys {
        Some(list) => {
            if list.get_ref().is_empty() {
                ctx.error(
                    list.span(),
                    "keys is empty: it would grant no key; write keys = [\"*\"] for every key of the tenant",
                );
            }
            let mut globs = Vec::new();
            for item in list.get_ref() {
                let pattern = item.get_ref();
                if let Some(bad) = pattern
                    .chars()
                    .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')))
                {
                    ctx.error(
                        item.span(),
                        format!(
                            "key pattern `{pattern}` contains {bad:?}: key names use A-Z a-z 0-9 . _ - and patterns add `*`"
                        ),
                    );
                    continue;
                }
                match Glob::new(pattern) {
                    Ok(g) => globs.push(g),
                    Err(reason) => ctx.error(item.span(), format!("key pattern: {reason}")),
                }
            }
            Some(globs.into_boxed_slice())
        }
        None => {
            // Key-scoped operations need keys: point at the first one that asks for them.
            let needs_keys = raw.operations.get_ref().iter().find(|item| {
                item.get_ref() == "*"
                    || ctx
                        .vocabulary
                        .parse(item.get_ref())
                        .is_ok_and(|op| op.scope() == Scope::Key)
            });
            if let Some(item) = needs_keys {
                let what = if item.get_ref() == "*" {
                    "operations = [\"*\"] includes key-scoped operations".to_owned()
                } else {
                    format!("operation `{}` is key-scoped", item.get_ref())
                };
                ctx.error(
                    item.span(),
                    format!(
                        "{what}, so this grant needs `keys` (keys = [\"*\"] means every key of the tenant)"
                    ),
                );
            }
            None
        }
    };

    let cidrs = allowed_cidrs(ctx, raw.allowed_cidrs.as_ref());
    let rate_limit = rate_limit(ctx, raw.rate_limit.as_ref());

    if ctx.diagnostics.len() > errors_before {
        return None;
    }
    let mut description = format!(
        "principals={} tenant={tenant}",
        joined(raw.principals.get_ref())
    );
    if let Some(keys) = &raw.keys {
        description.push_str(&format!(" keys={}", joined(keys.get_ref())));
    }
    describe_rest(
        &mut description,
        &raw.operations,
        cidrs.as_deref(),
        rate_limit,
    );
    let (line, _) = position(ctx.text, header.start);
    let everyone = principals.iter().any(|g| g.as_str() == "**");
    Some(Parsed {
        rule: Rule {
            kind: RuleKind::Grant,
            principals: principals.into_boxed_slice(),
            tenant: Some(tenant.as_str().into()),
            keys,
            ops,
            cidrs,
        },
        info: RuleInfo {
            file: ctx.file.to_owned(),
            line,
            kind: RuleKind::Grant,
            ordinal,
            description,
            rate_limit,
        },
        grants_everything_to_everyone: everyone && star_everything,
    })
}

fn compile_operator(
    ctx: &mut Ctx<'_>,
    ordinal: usize,
    header: Range<usize>,
    raw: RawOperator,
) -> Option<Parsed> {
    let errors_before = ctx.diagnostics.len();
    let principals = principals(ctx, &raw.principals);
    let (ops, star_everything) = operations(ctx, &raw.operations, RuleKind::Operator);
    let cidrs = allowed_cidrs(ctx, raw.allowed_cidrs.as_ref());
    let rate_limit = rate_limit(ctx, raw.rate_limit.as_ref());
    if ctx.diagnostics.len() > errors_before {
        return None;
    }
    let mut description = format!("principals={}", joined(raw.principals.get_ref()));
    describe_rest(
        &mut description,
        &raw.operations,
        cidrs.as_deref(),
        rate_limit,
    );
    let (line, _) = position(ctx.text, header.start);
    let everyone = principals.iter().any(|g| g.as_str() == "**");
    Some(Parsed {
        rule: Rule {
            kind: RuleKind::Operator,
            principals: principals.into_boxed_slice(),
            tenant: None,
            keys: None,
            ops,
            cidrs,
        },
        info: RuleInfo {
            file: ctx.file.to_owned(),
            line,
            kind: RuleKind::Operator,
            ordinal,
            description,
            rate_limit,
        },
        grants_everything_to_everyone: everyone && star_everything,
    })
}

fn principals(ctx: &mut Ctx<'_>, list: &List) -> Vec<Glob> {
    if list.get_ref().is_empty() {
        ctx.error(
            list.span(),
            "principals is empty: a rule must name at least one principal",
        );
    }
    let mut globs = Vec::new();
    for item in list.get_ref() {
        let pattern = item.get_ref();
        // Inner spaces are allowed: a subject-CN principal may contain them.
        if let Some(bad) = pattern.chars().find(|c| c.is_control()) {
            ctx.error(
                item.span(),
                format!(
                    "principal pattern `{}` contains the control character {bad:?}",
                    pattern.escape_debug()
                ),
            );
            continue;
        }
        if pattern.trim() != pattern {
            ctx.error(
                item.span(),
                format!("principal pattern `{pattern}` has leading or trailing white space"),
            );
            continue;
        }
        match Glob::new(pattern) {
            Ok(g) => globs.push(g),
            Err(reason) => ctx.error(item.span(), format!("principal pattern: {reason}")),
        }
    }
    globs
}

/// The operation set, and whether `"*"` was among the names.
fn operations(ctx: &mut Ctx<'_>, list: &List, kind: RuleKind) -> (OpSet, bool) {
    if list.get_ref().is_empty() {
        ctx.error(
            list.span(),
            "operations is empty: a rule must grant at least one operation",
        );
    }
    let mut ops = OpSet::EMPTY;
    let mut star = false;
    for item in list.get_ref() {
        let name = item.get_ref();
        if name == "*" {
            star = true;
            ops = ops.union(match kind {
                RuleKind::Grant => OpSet::grantable(ctx.vocabulary),
                RuleKind::Operator => OpSet::all(ctx.vocabulary),
            });
            continue;
        }
        match ctx.vocabulary.parse(name) {
            Ok(op) if kind == RuleKind::Grant && op.scope() == Scope::Vault => ctx.error(
                item.span(),
                format!(
                    "`{op}` is a vault-wide operation: only [[operator]] rules can grant vault-wide operations"
                ),
            ),
            Ok(op) => ops = ops.with(ctx.vocabulary.bit(op).expect("parsed by the vocabulary")),
            Err(e) => {
                let known = ctx.vocabulary.names();
                ctx.error(
                    item.span(),
                    format!("{e}; the operations are \"*\" and {}", known.join(", ")),
                );
            }
        }
    }
    (ops, star)
}

fn allowed_cidrs(ctx: &mut Ctx<'_>, list: Option<&List>) -> Option<Box<[Cidr]>> {
    let list = list?;
    if list.get_ref().is_empty() {
        ctx.error(
            list.span(),
            "allowed_cidrs is empty: it would refuse every source; leave it out to allow any source address",
        );
    }
    let mut cidrs = Vec::new();
    for item in list.get_ref() {
        match item.get_ref().parse::<Cidr>() {
            Ok(c) => cidrs.push(c),
            Err(reason) => ctx.error(item.span(), reason),
        }
    }
    Some(cidrs.into_boxed_slice())
}

fn rate_limit(ctx: &mut Ctx<'_>, raw: Option<&Spanned<RawRateLimit>>) -> Option<RateLimit> {
    let raw = raw?.get_ref();
    let rps = *raw.requests_per_second.get_ref();
    let mut ok = true;
    if !(MIN_RATE..=MAX_RATE).contains(&rps) {
        ctx.error(
            raw.requests_per_second.span(),
            format!("requests_per_second must be between {MIN_RATE} and {MAX_RATE}, not {rps}"),
        );
        ok = false;
    }
    let burst = match &raw.burst {
        Some(b) => match u32::try_from(*b.get_ref()) {
            Ok(n) if (1..=MAX_BURST).contains(&n) => n,
            _ => {
                ctx.error(
                    b.span(),
                    format!(
                        "burst must be between 1 and {MAX_BURST}, not {}",
                        b.get_ref()
                    ),
                );
                ok = false;
                1
            }
        },
        // One second's worth, at least one request.
        None if ok => (rps.ceil() as u32).clamp(1, MAX_BURST),
        None => 1,
    };
    ok.then_some(RateLimit {
        requests_per_second: rps,
        burst,
    })
}

fn joined(list: &[Spanned<String>]) -> String {
    let items: Vec<&str> = list.iter().map(|s| s.get_ref().as_str()).collect();
    items.join(",")
}

fn describe_rest(
    description: &mut String,
    operations: &List,
    cidrs: Option<&[Cidr]>,
    rate_limit: Option<RateLimit>,
) {
    description.push_str(&format!(" operations={}", joined(operations.get_ref())));
    if let Some(cidrs) = cidrs {
        let cidrs: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
        description.push_str(&format!(" allowed_cidrs={}", cidrs.join(",")));
    }
    if let Some(limit) = rate_limit {
        description.push_str(&format!(
            " rate_limit={}/s,burst={}",
            limit.requests_per_second, limit.burst
        ));
    }
}
