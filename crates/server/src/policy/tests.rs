//! Tests of whole policy sets: loading, errors, decisions, explanations, reloads.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;

const PAYMENTS: &str = r#"# Payments services.

[[grant]]
principals = ["spiffe://prod.example/payments-api", "spiffe://prod.example/batch-*"]
tenant = "payments"
keys = ["card-*", "iban"]
operations = ["encrypt", "decrypt", "rewrap", "datakey", "hmac"]
allowed_cidrs = ["10.0.0.0/8", "2001:db8::/32"]
rate_limit = { requests_per_second = 200, burst = 400 }

[[grant]]
principals = ["spiffe://prod.example/payments-admin"]
tenant = "payments"
keys = ["**"]
operations = ["*"]

[[operator]]
principals = ["spiffe://prod.example/ops/*"]
operations = ["tenant-create", "tenant-list", "seal", "metrics", "read", "list"]
"#;

/// The server's operations: policies here are checked as the server checks them.
fn operations() -> &'static Vocabulary {
    crate::operations()
}

fn op(name: &str) -> Operation {
    operations().parse(name).unwrap()
}

fn set(files: &[(&str, &str)]) -> PolicySet {
    match PolicySet::from_files(operations(), files) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    }
}

fn payments() -> PolicySet {
    set(&[("policies/payments.toml", PAYMENTS)])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn req<'a>(
    principal: &'a str,
    operation: Operation,
    tenant: Option<&'a str>,
    key: Option<&'a str>,
) -> AccessRequest<'a> {
    AccessRequest {
        principal,
        operation,
        tenant,
        key,
        source: Some(ip("10.1.2.3")),
    }
}

const API: &str = "spiffe://prod.example/payments-api";
const ADMIN: &str = "spiffe://prod.example/payments-admin";
const OPS: &str = "spiffe://prod.example/ops/alice";

/// The one diagnostic of an invalid single file.
fn error(text: &str) -> Diagnostic {
    match PolicySet::from_files(operations(), &[("p.toml", text)]) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(PolicyError::Invalid(d)) => {
            assert_eq!(d.len(), 1, "{d:#?}");
            d.into_iter().next().unwrap()
        }
        Err(e) => panic!("{e}"),
    }
}

fn assert_error(text: &str, line: usize, column: usize, reason: &str) {
    let d = error(text);
    assert_eq!(d.file, "p.toml");
    assert!(
        d.reason.contains(reason),
        "reason {:?} lacks {reason:?}",
        d.reason
    );
    assert_eq!(
        (d.line, d.column),
        (line, column),
        "position of {:?}",
        d.reason
    );
    let shown = d.to_string();
    assert!(
        shown.starts_with(&format!("p.toml:{line}:{column}: ")),
        "{shown}"
    );
}

#[test]
fn parses_rules_in_file_order_with_positions() {
    let set = payments();
    assert_eq!(set.len(), 3);
    assert_eq!(set.files(), ["policies/payments.toml"]);
    let rules: Vec<_> = set.rules().map(|(_, info)| info.clone()).collect();
    assert_eq!(rules[0].line, 3);
    assert_eq!(rules[0].kind, RuleKind::Grant);
    assert_eq!(rules[0].ordinal, 1);
    assert_eq!(
        rules[0].rate_limit,
        Some(RateLimit {
            requests_per_second: 200.0,
            burst: 400
        })
    );
    assert_eq!(
        rules[0].to_string(),
        "policies/payments.toml:3 [[grant]] #1 \
         principals=spiffe://prod.example/payments-api,spiffe://prod.example/batch-* \
         tenant=payments keys=card-*,iban operations=encrypt,decrypt,rewrap,datakey,hmac \
         allowed_cidrs=10.0.0.0/8,2001:db8::/32 rate_limit=200/s,burst=400"
    );
    assert_eq!((rules[1].line, rules[1].ordinal), (11, 2));
    assert_eq!(rules[1].rate_limit, None);
    assert_eq!(rules[2].kind, RuleKind::Operator);
    assert_eq!((rules[2].line, rules[2].ordinal), (17, 1));
    assert!(rules[2].to_string().starts_with(
        "policies/payments.toml:17 [[operator]] #1 principals=spiffe://prod.example/ops/* operations=tenant-create"
    ));
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
}

#[test]
fn operators_and_grants_interleave_in_file_order() {
    let set = set(&[(
        "a.toml",
        r#"
[[operator]]
principals = ["p"]
operations = ["encrypt"]

[[grant]]
principals = ["p"]
tenant = "t"
keys = ["*"]
operations = ["encrypt"]
"#,
    )]);
    let kinds: Vec<_> = set.rules().map(|(_, i)| (i.kind, i.line)).collect();
    assert_eq!(kinds, [(RuleKind::Operator, 2), (RuleKind::Grant, 6)]);
    let d = set.authorize(&req("p", op("encrypt"), Some("t"), Some("k")));
    assert_eq!(
        d,
        Decision::Allow(RuleId(0)),
        "the first rule in file order"
    );
}

#[test]
fn rate_limit_burst_defaults_to_one_second() {
    let text = r#"
[[operator]]
principals = ["p"]
operations = ["metrics"]
rate_limit = { requests_per_second = 2.5 }

[[operator]]
principals = ["q"]
operations = ["metrics"]
rate_limit = { requests_per_second = 0.01 }
"#;
    let set = set(&[("a.toml", text)]);
    let limits: Vec<_> = set.rules().map(|(_, i)| i.rate_limit.unwrap()).collect();
    assert_eq!(limits[0].burst, 3);
    assert_eq!(limits[0].requests_per_second, 2.5);
    assert_eq!(limits[1].burst, 1);
}

#[test]
fn every_error_names_its_position() {
    let head = "[[grant]]\nprincipals = [\"p\"]\ntenant = \"t\"\nkeys = [\"*\"]\n";
    let with = |rest: &str| format!("{head}{rest}");

    // TOML's own errors.
    assert_error("[[grant]\n", 1, 9, "");
    assert_error(
        &with("operations = [\"encrypt\"\n"),
        5,
        24,
        "unclosed array",
    );
    // Unknown fields, at every level.
    assert_error(
        "[[grants]]\nprincipals = [\"p\"]\n",
        1,
        3,
        "unknown field `grants`",
    );
    assert_error(
        &with("operations = [\"encrypt\"]\nkey = [\"x\"]\n"),
        6,
        1,
        "unknown field `key`",
    );
    assert_error(
        &with("operations = [\"encrypt\"]\nrate_limit = { rps = 1 }\n"),
        6,
        16,
        "unknown field `rps`",
    );
    assert_error(
        "[[operator]]\nprincipals = [\"p\"]\ntenant = \"t\"\noperations = [\"seal\"]\n",
        3,
        1,
        "unknown field `tenant`, expected one of `principals`, `operations`, `allowed_cidrs`, `rate_limit` ([[operator]] rules span every tenant",
    );
    // A single table instead of an array of tables.
    assert_error(
        "[grant]\nprincipals = [\"p\"]\n",
        1,
        1,
        "write [[grant]] or [[operator]]",
    );
    // Missing required fields.
    assert_error(
        "\n[[grant]]\nprincipals = [\"p\"]\noperations = [\"list\"]\n",
        2,
        1,
        "missing field `tenant` (a [[grant]] names exactly one tenant",
    );
    assert_error(
        "[[operator]]\nprincipals = [\"p\"]\n",
        1,
        1,
        "missing field `operations`",
    );
    // Wrong types.
    assert_error(&with("operations = \"encrypt\"\n"), 5, 14, "invalid type");
    // Operations.
    assert_error(
        &with("operations = [\"encrypt\", \"encypt\"]\n"),
        5,
        26,
        "unknown operation `encypt`; the operations are \"*\" and create, read,",
    );
    assert_error(
        &with("operations = [\"encrypt\", \"tenant-create\"]\n"),
        5,
        26,
        "`tenant-create` is a vault-wide operation: only [[operator]] rules can grant vault-wide operations",
    );
    assert_error(&with("operations = []\n"), 5, 14, "operations is empty");
    // Tenants.
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"pay*\"\noperations = [\"list\"]\n",
        3,
        10,
        "a grant names exactly one tenant, without globs",
    );
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"Payments\"\noperations = [\"list\"]\n",
        3,
        10,
        "is not a valid tenant name",
    );
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"sys\"\noperations = [\"list\"]\n",
        3,
        10,
        "reserved",
    );
    // Keys.
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"t\"\noperations = [\"list\", \"decrypt\"]\n",
        4,
        23,
        "operation `decrypt` is key-scoped, so this grant needs `keys`",
    );
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"t\"\noperations = [\"*\"]\n",
        4,
        15,
        "includes key-scoped operations, so this grant needs `keys`",
    );
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"t\"\nkeys = []\noperations = [\"encrypt\"]\n",
        4,
        8,
        "keys is empty",
    );
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"t\"\nkeys = [\"a\", \"card pan\"]\noperations = [\"encrypt\"]\n",
        4,
        14,
        "contains ' '",
    );
    assert_error(
        "[[grant]]\nprincipals = [\"p\"]\ntenant = \"t\"\nkeys = [\"\"]\noperations = [\"encrypt\"]\n",
        4,
        9,
        "empty pattern",
    );
    // Principals.
    assert_error(
        "[[operator]]\nprincipals = []\noperations = [\"seal\"]\n",
        2,
        14,
        "principals is empty",
    );
    assert_error(
        "[[operator]]\nprincipals = [\"a\", \"spiffe://x/***\"]\noperations = [\"seal\"]\n",
        2,
        20,
        "three or more `*`",
    );
    assert_error(
        "[[operator]]\nprincipals = [\" spiffe://x/a\"]\noperations = [\"seal\"]\n",
        2,
        15,
        "has leading or trailing white space",
    );
    assert_error(
        "[[operator]]\nprincipals = [\"a\\tb\"]\noperations = [\"seal\"]\n",
        2,
        15,
        "contains the control character '\\t'",
    );
    // CIDRs.
    assert_error(
        &with("operations = [\"encrypt\"]\nallowed_cidrs = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"),
        6,
        32,
        "the prefix length must be 0 to 32",
    );
    assert_error(
        &with("operations = [\"encrypt\"]\nallowed_cidrs = [\"10.1.0.0/8\"]\n"),
        6,
        18,
        "host bits set: the network is 10.0.0.0/8",
    );
    assert_error(
        &with("operations = [\"encrypt\"]\nallowed_cidrs = [\"intranet\"]\n"),
        6,
        18,
        "not an IP address",
    );
    assert_error(
        &with("operations = [\"encrypt\"]\nallowed_cidrs = []\n"),
        6,
        17,
        "allowed_cidrs is empty",
    );
    // Rate limits.
    for (value, col) in [("0", 38), ("-5", 38), ("nan", 38), ("inf", 38)] {
        assert_error(
            &with(&format!(
                "operations = [\"encrypt\"]\nrate_limit = {{ requests_per_second = {value} }}\n"
            )),
            6,
            col,
            "requests_per_second must be between",
        );
    }
    for value in ["0", "-1", "99999999999"] {
        assert_error(
            &with(&format!(
                "operations = [\"encrypt\"]\nrate_limit = {{ requests_per_second = 1, burst = {value} }}\n"
            )),
            6,
            49,
            "burst must be between 1 and",
        );
    }
    assert_error(
        &with("operations = [\"encrypt\"]\nrate_limit = { burst = 1 }\n"),
        6,
        14,
        "missing field `requests_per_second`",
    );
}

#[test]
fn all_problems_are_reported_across_files() {
    let err = PolicySet::from_files(operations(), &[
        (
            "a.toml",
            "[[grant]]\nprincipals = []\ntenant = \"A\"\nkeys = [\"*\"]\noperations = [\"seal\"]\n",
        ),
        (
            "b.toml",
            "[[operator]]\nprincipals = [\"p\"]\noperations = [\"x\"]\n",
        ),
        ("c.toml", "not toml"),
    ])
    .unwrap_err();
    let lines: Vec<String> = err.diagnostics().iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines[0].starts_with("a.toml:2:14: principals is empty"));
    assert!(lines[1].starts_with("a.toml:3:10: "));
    assert!(lines[2].starts_with("a.toml:5:15: `seal` is a vault-wide operation"));
    assert!(lines[3].starts_with("b.toml:3:15: unknown operation `x`"));
    assert!(lines[4].starts_with("c.toml:1:"));
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn deny_by_default() {
    let empty = PolicySet::default();
    assert!(empty.is_empty());
    for op in operations().iter() {
        let r = req(OPS, op, Some("payments"), Some("card-pan"));
        assert_eq!(
            empty.authorize(&r),
            Decision::Deny(DenyReason::NoMatchingRule)
        );
    }
    let set = payments();
    // Unknown principal.
    let r = req(
        "spiffe://prod.example/other",
        op("encrypt"),
        Some("payments"),
        Some("card-pan"),
    );
    assert_eq!(
        set.authorize(&r),
        Decision::Deny(DenyReason::NoMatchingRule)
    );
    // Known principal, operation not granted.
    let r = req(API, op("export"), Some("payments"), Some("card-pan"));
    assert_eq!(
        set.authorize(&r),
        Decision::Deny(DenyReason::NoMatchingRule)
    );
    // Known principal, key outside its globs.
    let r = req(API, op("encrypt"), Some("payments"), Some("ssn"));
    assert_eq!(
        set.authorize(&r),
        Decision::Deny(DenyReason::NoMatchingRule)
    );
    // A principal glob does not reach into sub-paths.
    let r = req(
        "spiffe://prod.example/batch-1/x",
        op("encrypt"),
        Some("payments"),
        Some("card-pan"),
    );
    assert_eq!(
        set.authorize(&r),
        Decision::Deny(DenyReason::NoMatchingRule)
    );
    let r = req(
        "spiffe://prod.example/batch-1",
        op("encrypt"),
        Some("payments"),
        Some("card-pan"),
    );
    assert_eq!(set.authorize(&r), Decision::Allow(RuleId(0)));
}

#[test]
fn grants_never_span_tenants() {
    let set = payments();
    for op in operations().iter() {
        for (tenant, key) in [
            ("billing", "card-pan"),
            ("payments2", "iban"),
            ("Payments", "iban"),
        ] {
            for who in [API, ADMIN] {
                let r = req(who, op, Some(tenant), Some(key));
                assert!(!set.authorize(&r).is_allowed(), "{who} {op} {tenant}/{key}");
            }
        }
        // The same on the granted tenant is allowed where the grant says so.
        let r = req(ADMIN, op, Some("payments"), Some("anything"));
        assert_eq!(
            set.authorize(&r).is_allowed(),
            op.scope() != Scope::Vault,
            "{op}"
        );
    }
}

#[test]
fn tenant_scoped_operations_need_only_the_tenant() {
    let text = r#"
[[grant]]
principals = ["app"]
tenant = "t"
keys = ["k-*"]
operations = ["list", "encrypt", "tenant-read"]
"#;
    let set = set(&[("a.toml", text)]);
    let r = req("app", op("list"), Some("t"), None);
    assert_eq!(
        set.authorize(&r),
        Decision::Allow(RuleId(0)),
        "list despite key globs"
    );
    let r = req("app", op("tenant-read"), Some("t"), None);
    assert!(set.authorize(&r).is_allowed());
    let r = req("app", op("list"), Some("u"), None);
    assert!(!set.authorize(&r).is_allowed());
    // A grant without keys may still grant tenant-scoped operations.
    let set2 = PolicySet::from_files(
        operations(),
        &[(
            "b.toml",
            "[[grant]]\nprincipals = [\"app\"]\ntenant = \"t\"\noperations = [\"list\"]\n",
        )],
    )
    .unwrap();
    assert!(
        set2.authorize(&req("app", op("list"), Some("t"), None))
            .is_allowed()
    );
    assert!(
        !set2
            .authorize(&req("app", op("read"), Some("t"), Some("k")))
            .is_allowed()
    );
}

#[test]
fn incomplete_requests_are_refused() {
    let set = payments();
    let incomplete = Decision::Deny(DenyReason::IncompleteRequest);
    assert_eq!(
        set.authorize(&req(ADMIN, op("encrypt"), Some("payments"), None)),
        incomplete
    );
    assert_eq!(
        set.authorize(&req(ADMIN, op("encrypt"), None, Some("k"))),
        incomplete
    );
    assert_eq!(
        set.authorize(&req(ADMIN, op("list"), None, None)),
        incomplete
    );
    assert_eq!(
        set.authorize(&req(OPS, op("read"), None, Some("k"))),
        incomplete
    );
    // Vault-scoped operations need neither.
    assert!(
        set.authorize(&req(OPS, op("seal"), None, None))
            .is_allowed()
    );
}

#[test]
fn operators_span_tenants_and_the_vault() {
    let set = payments();
    for tenant in ["payments", "billing", "anything"] {
        let r = req(OPS, op("read"), Some(tenant), Some("whatever.key"));
        assert_eq!(set.authorize(&r), Decision::Allow(RuleId(2)));
        let r = req(OPS, op("list"), Some(tenant), None);
        assert_eq!(set.authorize(&r), Decision::Allow(RuleId(2)));
        // Only the operations listed.
        let r = req(OPS, op("decrypt"), Some(tenant), Some("k"));
        assert!(!set.authorize(&r).is_allowed());
    }
    for op in [
        op("tenant-create"),
        op("tenant-list"),
        op("seal"),
        op("metrics"),
    ] {
        assert_eq!(
            set.authorize(&req(OPS, op, None, None)),
            Decision::Allow(RuleId(2))
        );
    }
    assert!(
        !set.authorize(&req(OPS, op("unseal"), None, None))
            .is_allowed()
    );
    // The grant holders get no vault operation.
    for op in operations().iter().filter(|o| o.scope() == Scope::Vault) {
        assert!(
            !set.authorize(&req(ADMIN, op, Some("payments"), None))
                .is_allowed()
        );
    }
}

#[test]
fn operator_star_is_everything() {
    let set = set(&[(
        "admin.toml",
        "[[operator]]\nprincipals = [\"spiffe://dev.tresor.local/admin\"]\noperations = [\"*\"]\n",
    )]);
    for op in operations().iter() {
        let r = req(
            "spiffe://dev.tresor.local/admin",
            op,
            Some("dev"),
            Some("k"),
        );
        assert!(set.authorize(&r).is_allowed(), "{op}");
    }
}

#[test]
fn source_addresses() {
    let set = payments();
    let mut r = req(API, op("encrypt"), Some("payments"), Some("card-pan"));
    for allowed in [
        "10.0.0.1",
        "10.255.255.255",
        "2001:db8::5",
        "::ffff:10.9.8.7",
    ] {
        r.source = Some(ip(allowed));
        assert_eq!(set.authorize(&r), Decision::Allow(RuleId(0)), "{allowed}");
    }
    for refused in ["11.0.0.1", "192.168.1.1", "2001:db9::1", "::1"] {
        r.source = Some(ip(refused));
        assert_eq!(
            set.authorize(&r),
            Decision::Deny(DenyReason::SourceNotAllowed { rule: RuleId(0) }),
            "{refused}"
        );
    }
    r.source = None;
    assert_eq!(
        set.authorize(&r),
        Decision::Deny(DenyReason::SourceNotAllowed { rule: RuleId(0) }),
        "an unknown source is outside every range"
    );
    // Rules without allowed_cidrs accept any source, or none.
    let mut r = req(ADMIN, op("encrypt"), Some("payments"), Some("card-pan"));
    r.source = None;
    assert!(set.authorize(&r).is_allowed());
    r.source = Some(ip("203.0.113.9"));
    assert!(set.authorize(&r).is_allowed());
}

#[test]
fn a_later_rule_can_allow_what_an_earlier_one_refuses_by_source() {
    let text = r#"
[[grant]]
principals = ["app"]
tenant = "t"
keys = ["*"]
operations = ["encrypt"]
allowed_cidrs = ["10.0.0.0/8"]

[[grant]]
principals = ["app"]
tenant = "t"
keys = ["*"]
operations = ["encrypt"]
allowed_cidrs = ["192.168.0.0/16"]
"#;
    let set = set(&[("a.toml", text)]);
    let mut r = req("app", op("encrypt"), Some("t"), Some("k"));
    r.source = Some(ip("192.168.1.1"));
    assert_eq!(set.authorize(&r), Decision::Allow(RuleId(1)));
    r.source = Some(ip("172.16.0.1"));
    assert_eq!(
        set.authorize(&r),
        Decision::Deny(DenyReason::SourceNotAllowed { rule: RuleId(0) })
    );
}

#[test]
fn explain_names_the_rule() {
    let set = payments();
    let e = set.explain(&req(API, op("encrypt"), Some("payments"), Some("card-pan")));
    assert_eq!(e.decision, Decision::Allow(RuleId(0)));
    assert!(e.near_misses.is_empty());
    let text = e.to_string();
    assert!(
        text.starts_with("allow: policies/payments.toml:3 [[grant]] #1 principals=spiffe://prod.example/payments-api,"),
        "{text}"
    );
    assert!(
        text.contains(" tenant=payments keys=card-*,iban operations=encrypt,"),
        "{text}"
    );
}

#[test]
fn explain_lists_near_misses() {
    let set = payments();
    let e = set.explain(&req(API, op("export"), Some("billing"), Some("ssn")));
    assert_eq!(e.decision, Decision::Deny(DenyReason::NoMatchingRule));
    assert_eq!(e.near_misses.len(), 1);
    assert_eq!(
        e.near_misses[0].mismatches,
        [
            Mismatch::Operation(op("export")),
            Mismatch::Tenant {
                granted: "payments".into()
            },
            Mismatch::Key {
                patterns: "card-*,iban".into()
            },
        ]
    );
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "deny: no rule grants `export` on billing/ssn to spiffe://prod.example/payments-api"
    );
    assert!(
        lines[1].starts_with("  near miss: policies/payments.toml:3 [[grant]] #1 "),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "    operations do not include `export`; tenant is `payments`; key matches none of keys=card-*,iban"
    );

    // Only the part that fails is named.
    let e = set.explain(&req(API, op("encrypt"), Some("billing"), Some("card-pan")));
    assert_eq!(
        e.near_misses[0].mismatches,
        [Mismatch::Tenant {
            granted: "payments".into()
        }]
    );

    // Operators: every rule naming the principal is a near miss.
    let e = set.explain(&req(OPS, op("unseal"), None, None));
    let text = e.to_string();
    assert!(
        text.starts_with(
            "deny: no rule grants `unseal` on the vault to spiffe://prod.example/ops/alice\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  near miss: policies/payments.toml:17 [[operator]] #1 "),
        "{text}"
    );
    assert!(
        text.ends_with("    operations do not include `unseal`"),
        "{text}"
    );

    // A stranger.
    let e = set.explain(&req(
        "spiffe://x/y",
        op("encrypt"),
        Some("payments"),
        Some("iban"),
    ));
    assert!(e.near_misses.is_empty());
    assert_eq!(
        e.to_string(),
        "deny: no rule grants `encrypt` on payments/iban to spiffe://x/y\n  no rule names principal spiffe://x/y"
    );
}

#[test]
fn explain_source_refusals() {
    let set = payments();
    let mut r = req(API, op("decrypt"), Some("payments"), Some("iban"));
    r.source = Some(ip("192.0.2.1"));
    let e = set.explain(&r);
    assert_eq!(
        e.decision,
        Decision::Deny(DenyReason::SourceNotAllowed { rule: RuleId(0) })
    );
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "deny: source address 192.0.2.1 is outside the allowed_cidrs of every rule that grants `decrypt` on payments/iban to spiffe://prod.example/payments-api"
    );
    assert!(lines[1].starts_with("  first such rule: policies/payments.toml:3 [[grant]] #1 "));
    assert!(lines[2].starts_with("  near miss: policies/payments.toml:3 "));
    assert_eq!(
        lines[3],
        "    source is outside allowed_cidrs=10.0.0.0/8,2001:db8::/32"
    );

    let e = set.explain(&req(API, op("decrypt"), None, Some("iban")));
    assert_eq!(
        e.to_string(),
        "deny: `decrypt` needs a tenant and a key (TENANT/KEY)"
    );
}

#[test]
fn rate_limits_come_with_the_set() {
    let set = payments();
    let limiter = set.rate_limiter();
    assert_eq!(limiter.limit(RuleId(0)).unwrap().burst, 400);
    assert_eq!(limiter.limit(RuleId(1)), None);
    let t = Instant::now();
    for _ in 0..400 {
        assert!(limiter.check(RuleId(0), API, t).is_ok());
    }
    assert_eq!(
        limiter.check(RuleId(0), API, t),
        Err(RetryAfter(Duration::from_millis(5)))
    );
    // Another principal matching the same rule has its own bucket.
    assert!(
        limiter
            .check(RuleId(0), "spiffe://prod.example/batch-1", t)
            .is_ok()
    );
    // Unlimited rules pass.
    for _ in 0..1000 {
        assert!(limiter.check(RuleId(1), ADMIN, t).is_ok());
    }
}

mod dir {
    use std::fs;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    const OPERATOR: &str = "[[operator]]\nprincipals = [\"ops\"]\noperations = [\"seal\"]\n";
    const GRANT: &str =
        "[[grant]]\nprincipals = [\"ops\"]\ntenant = \"t\"\noperations = [\"list\"]\n";

    #[test]
    fn loads_toml_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.toml", OPERATOR);
        write(dir.path(), "a.toml", GRANT);
        write(dir.path(), "c.example.toml", "this is not even toml");
        write(dir.path(), ".hidden.toml", "nor this");
        write(dir.path(), "notes.txt", "nor this");
        write(dir.path(), "a.toml~", "nor this");
        fs::create_dir(dir.path().join("d.toml")).unwrap();
        let set = PolicySet::load_dir(operations(), dir.path()).unwrap();
        let a = dir.path().join("a.toml").display().to_string();
        let b = dir.path().join("b.toml").display().to_string();
        assert_eq!(set.files(), [a.clone(), b.clone()]);
        let infos: Vec<_> = set.rules().map(|(_, i)| i.file.clone()).collect();
        assert_eq!(infos, [a, b]);
        assert!(set.warnings().is_empty());

        let report = check_dir(operations(), dir.path()).unwrap();
        assert_eq!(
            (report.grants, report.operators, report.rate_limited),
            (1, 1, 0)
        );
        assert_eq!(report.skipped_examples.len(), 1);
        let text = report.to_string();
        assert!(text.starts_with("ok: 2 file(s), 1 grant(s), 1 operator rule(s), 0 rate-limited\nskipped example file "), "{text}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = PolicySet::load_dir(operations(), &missing).unwrap_err();
        assert!(matches!(err, PolicyError::ReadDir { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
        write(dir.path(), "file", "");
        assert!(PolicySet::load_dir(operations(), &dir.path().join("file")).is_err());
        assert!(check_dir(operations(), &missing).is_err());
    }

    #[test]
    fn an_empty_directory_denies_everything_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "only.example.toml", OPERATOR);
        let set = PolicySet::load_dir(operations(), dir.path()).unwrap();
        assert!(set.is_empty());
        assert!(
            !set.authorize(&req("ops", op("seal"), None, None))
                .is_allowed()
        );
        assert_eq!(set.warnings().len(), 1);
        assert!(set.warnings()[0].message.contains("no policy files"));
        let report = check_dir(operations(), dir.path()).unwrap();
        assert!(report.to_string().contains("warning: "), "{report}");
    }

    #[test]
    fn diagnostics_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.toml",
            "[[operator]]\nprincipals = [\"ops\"]\noperations = [\"sael\"]\n",
        );
        let err = PolicySet::load_dir(operations(), dir.path()).unwrap_err();
        let expected = format!(
            "{}:3:15: unknown operation `sael`",
            dir.path().join("a.toml").display()
        );
        assert!(err.to_string().starts_with(&expected), "{err}");
        assert!(check_dir(operations(), dir.path()).is_err());
    }

    #[test]
    fn unreadable_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.toml"), b"\xff\xfe").unwrap();
        let err = PolicySet::load_dir(operations(), dir.path()).unwrap_err();
        assert!(matches!(err, PolicyError::ReadFile { .. }), "{err}");
    }

    #[test]
    fn check_warns_about_wide_open_rules_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", "# nothing yet\n");
        write(
            dir.path(),
            "b.toml",
            "\n[[operator]]\nprincipals = [\"**\"]\noperations = [\"*\"]\n",
        );
        write(
            dir.path(),
            "c.toml",
            "[[grant]]\nprincipals = [\"**\"]\ntenant = \"t\"\nkeys = [\"*\"]\noperations = [\"*\"]\n",
        );
        let report = check_dir(operations(), dir.path()).unwrap();
        let warnings: Vec<String> = report.warnings.iter().map(|w| w.to_string()).collect();
        let path = |n: &str| dir.path().join(n).display().to_string();
        assert_eq!(
            warnings,
            [
                format!(
                    "{}: warning: no [[grant]] or [[operator]] rules in this file",
                    path("a.toml")
                ),
                format!(
                    "{}:2: warning: [[operator]] #1 grants every operation on every tenant and the vault to every principal (\"**\")",
                    path("b.toml")
                ),
                format!(
                    "{}:1: warning: [[grant]] #1 grants every operation of its tenant to every principal (\"**\")",
                    path("c.toml")
                ),
            ]
        );
    }

    #[test]
    fn reload_swaps_only_a_valid_set() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.toml",
            "[[operator]]\nprincipals = [\"ops\"]\noperations = [\"seal\"]\nrate_limit = { requests_per_second = 1 }\n",
        );
        let handle = PolicyHandle::load_dir(operations(), dir.path()).unwrap();
        let seal = req("ops", op("seal"), None, None);
        let metrics = req("ops", op("metrics"), None, None);
        let old = handle.current();
        let Decision::Allow(rule) = old.authorize(&seal) else {
            panic!()
        };
        let t = Instant::now();
        assert!(old.rate_limiter().check(rule, "ops", t).is_ok());
        assert!(old.rate_limiter().check(rule, "ops", t).is_err());

        // A broken file: refused, the old set stays.
        write(
            dir.path(),
            "b.toml",
            "[[operator]]\nprincipals = [\"ops\"]\noperations = [\"metrics\", \"bogus\"]\n",
        );
        let err = handle.reload(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("unknown operation `bogus`"),
            "{err}"
        );
        assert!(Arc::ptr_eq(&old, &handle.current()));
        assert!(handle.current().authorize(&seal).is_allowed());
        assert!(!handle.current().authorize(&metrics).is_allowed());
        // A vanished directory: refused too.
        assert!(handle.reload(&dir.path().join("gone")).is_err());
        assert!(Arc::ptr_eq(&old, &handle.current()));

        // Fixed: swapped in, with fresh buckets.
        write(
            dir.path(),
            "b.toml",
            "[[operator]]\nprincipals = [\"ops\"]\noperations = [\"metrics\"]\n",
        );
        handle.reload(dir.path()).unwrap();
        let new = handle.current();
        assert!(!Arc::ptr_eq(&old, &new));
        assert!(new.authorize(&metrics).is_allowed());
        let Decision::Allow(rule) = new.authorize(&seal) else {
            panic!()
        };
        assert!(
            new.rate_limiter().check(rule, "ops", t).is_ok(),
            "fresh bucket"
        );
        // The old snapshot keeps working for requests that hold it.
        assert!(old.authorize(&seal).is_allowed());
    }
}

#[test]
fn subject_cn_principals_may_contain_spaces() {
    let set = set(&[(
        "a.toml",
        "[[grant]]\nprincipals = [\"Payments Batch *\"]\ntenant = \"t\"\noperations = [\"list\"]\n",
    )]);
    let r = req("Payments Batch 7", op("list"), Some("t"), None);
    assert!(set.authorize(&r).is_allowed());
}

#[test]
fn the_shipped_policy_files_are_valid() {
    let files = [
        (
            "policies/admin.toml",
            include_str!("../../../../policies/admin.toml"),
        ),
        (
            "policies/payments.example.toml",
            include_str!("../../../../policies/payments.example.toml"),
        ),
        (
            "policies/custodians.example.toml",
            include_str!("../../../../policies/custodians.example.toml"),
        ),
    ];
    for (name, text) in files {
        let set = set(&[(name, text)]);
        assert!(!set.is_empty(), "{name}");
        assert!(set.warnings().is_empty(), "{name}: {:?}", set.warnings());
    }
    let admin = set(&files[..1]);
    for op in operations().iter() {
        let r = req(
            "spiffe://dev.tresor.local/admin",
            op,
            Some("dev"),
            Some("k"),
        );
        assert!(admin.authorize(&r).is_allowed(), "{op}");
        let r = req(
            "spiffe://dev.tresor.local/other",
            op,
            Some("dev"),
            Some("k"),
        );
        assert!(!admin.authorize(&r).is_allowed(), "{op}");
    }
}

#[test]
fn the_digest_names_the_files_and_their_contents_not_their_directory() {
    let a = "[[operator]]\nprincipals = [\"spiffe://t/ops\"]\noperations = [\"*\"]\n";
    let b = "[[operator]]\nprincipals = [\"spiffe://t/other\"]\noperations = [\"*\"]\n";
    let digest = |files: &[(&str, &str)]| {
        PolicySet::from_files(operations(), files)
            .unwrap()
            .digest()
            .to_owned()
    };
    let one = digest(&[("/etc/tresor/policies/ops.toml", a)]);
    assert_eq!(one.len(), 64);
    assert_eq!(one, digest(&[("/srv/node-b/policies/ops.toml", a)]));
    assert_ne!(one, digest(&[("/etc/tresor/policies/ops.toml", b)]));
    assert_ne!(one, digest(&[("/etc/tresor/policies/other.toml", a)]));
    assert_ne!(
        digest(&[("x.toml", a), ("y.toml", b)]),
        digest(&[("x.toml", b), ("y.toml", a)])
    );
    // Length prefixes: moving bytes between name and contents changes the hash.
    assert_ne!(digest(&[("a.toml", a)]), digest(&[("a.tom", a)]));
    assert_ne!(one, PolicySet::default().digest());
}

#[test]
fn tenants_a_principal_may_see() {
    let set = payments();
    let api = "spiffe://prod.example/payments-api";
    assert!(set.may_see_tenant(api, "payments", Some(ip("10.1.2.3"))));
    // Its grant's CIDRs apply, and its grant is for one tenant.
    assert!(!set.may_see_tenant(api, "payments", Some(ip("192.168.1.1"))));
    assert!(!set.may_see_tenant(api, "payments", None));
    assert!(!set.may_see_tenant(api, "hr", Some(ip("10.1.2.3"))));
    // An operator with a key-scoped operation sees every tenant.
    assert!(set.may_see_tenant("spiffe://prod.example/ops/a", "hr", None));
    assert!(!set.may_see_tenant("spiffe://prod.example/stranger", "payments", None));
    // Vault-scoped operations alone show no tenant.
    let sealer = set_of(
        r#"
[[operator]]
principals = ["spiffe://prod.example/sealer"]
operations = ["seal", "tenant-list"]
"#,
    );
    assert!(!sealer.may_see_tenant("spiffe://prod.example/sealer", "payments", None));
}

fn set_of(toml: &str) -> PolicySet {
    set(&[("policies/one.toml", toml)])
}
