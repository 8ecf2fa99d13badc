//! Issue 12, point 8: errors that point at the fix, each asserted as the operator sees it (one
//! `tresor: error:` line from the real binary).

use std::time::Duration;

use tresor_server::tls::pki::{ClientCertSpec, DevCa};

use crate::common::deployment::{Deployment, ServerProcess};

const DAY: Duration = Duration::from_secs(86_400);

/// The deployment's CA, taken up from the files `tresor pki ca` wrote, for certificates
/// `tresor pki` refuses to make.
fn ca(d: &Deployment) -> DevCa {
    let read = |name: &str| std::fs::read_to_string(d.path(name)).unwrap();
    DevCa::from_pem(&read("ca.pem"), &read("ca-key.pem")).unwrap()
}

/// Runs `tresor tenant list` as `name` and returns its one error line.
fn refused(server: &ServerProcess, d: &Deployment, name: &str) -> String {
    let run = server.run_as(d, name, &["tenant", "list"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    run.error_line()
}

#[test]
fn a_refused_client_certificate_gets_a_hint_not_a_dropped_connection() {
    let d = Deployment::new();
    let server = d.start();

    // Chains to the client CA but has no SPIFFE URI SAN: refused in the handshake with an
    // alert, which the CLI explains from the certificate itself.
    let cn_only = ca(&d)
        .issue_client_with(&ClientCertSpec::common_name("batch-job", DAY))
        .unwrap();
    d.write("cn-only.pem", &cn_only.cert_pem);
    d.write("cn-only-key.pem", &cn_only.key_pem);
    let error = refused(&server, &d, "cn-only");
    assert!(
        error.starts_with("tresor: error: the server refused this certificate (")
            && error.contains("cn-only.pem): it has no SPIFFE URI SAN"),
        "{error}"
    );
    // The server logs, counts and audits the refusal with its reason.
    let log = server.wait_for_log("reason=\"no_principal\"");
    assert!(
        log.contains("client certificate refused: the certificate has no SPIFFE URI SAN"),
        "{log}"
    );

    // A server certificate presented as a client certificate.
    let error = refused(&server, &d, "server");
    assert!(
        error.contains("it is not a client certificate (its extended key usage lacks clientAuth)"),
        "{error}"
    );

    // A certificate from another CA.
    d.ok(&["pki", "ca", "--out", "other-ca"]);
    d.ok(&[
        "pki",
        "client",
        "spiffe://ops.tresor.test/stranger",
        "--ca",
        "other-ca.pem",
    ]);
    let error = refused(&server, &d, "stranger");
    assert!(
        error.contains("it is not issued by a CA in the server's [tls] client_ca"),
        "{error}"
    );

    // A revoked one.
    d.issue("leaver");
    d.ok(&["pki", "crl", "--revoke", "leaver.pem"]);
    server.signal("HUP");
    server.wait_for_log("reloaded TLS");
    let error = refused(&server, &d, "leaver");
    assert!(
        error.contains("leaver.pem): it is revoked (a CRL in the server's [tls] crls lists it)"),
        "{error}"
    );
    server.stop();
}

#[test]
fn policy_check_prints_one_problem_per_line_and_names_single_brackets() {
    let d = Deployment::new();
    std::fs::create_dir(d.path("broken")).unwrap();
    d.write(
        "broken/payments.toml",
        "[[grant]]\nprincipals = [\"spiffe://prod.example/payments-api\"]\ntenant = \"payments\"\n\
         operations = [\"tenant-create\"]\nkeys = [\"*\"]\nallowed_cidrs = [\"10.1.0.0/8\"]\n",
    );
    d.write(
        "broken/single.toml",
        "[grant]\nprincipals = [\"spiffe://prod.example/x\"]\ntenant = \"payments\"\n\
         operations = [\"encrypt\"]\nkeys = [\"*\"]\n",
    );
    let run = d.run(&["policy", "check", "broken"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "broken/payments.toml:4:15: `tenant-create` is a vault-wide operation: only [[operator]] rules can grant vault-wide operations",
            "broken/payments.toml:6:18: `10.1.0.0/8` has host bits set: the network is 10.0.0.0/8",
            "broken/single.toml:1:1: `[grant]` needs double brackets: rules are arrays of tables, write [[grant]] or [[operator]] (one per rule)",
        ],
        "{}",
        run.stderr
    );
    // A valid directory: the summary on stdout.
    let ok = d.run(&["policy", "check", "policies"]);
    assert!(
        ok.status.success() && ok.stdout.starts_with("ok: 1 file(s)"),
        "{ok:?}"
    );
}

#[test]
fn identity_and_passphrase_mistakes_say_what_to_do() {
    let d = Deployment::new();
    d.custodian("alice");

    // No terminal and no passphrase.
    for args in [
        &["operator", "unseal", "--identity", "alice.key"][..],
        &["custodian", "keygen", "--name", "bob", "--out", "bob"][..],
    ] {
        let run = crate::common::deployment::run(d.command(args));
        assert_eq!(run.code(), Some(1), "{}", run.stderr);
        let error = run.error_line();
        assert!(
            error.ends_with("set TRESOR_PASSPHRASE or --passphrase-file"),
            "{args:?}: {error}"
        );
    }
    assert!(!d.path("bob.key").exists() && !d.path("bob.pub").exists());

    // The public half given as --identity: said before any passphrase is needed.
    let run = crate::common::deployment::run(d.command(&[
        "operator",
        "unseal",
        "--identity",
        "alice.pub",
    ]));
    assert_eq!(
        run.error_line(),
        "tresor: error: alice.pub is the public half of custodian alice's identity; --identity needs the secret half, alice.key (written beside it by `tresor custodian keygen`)"
    );
    // And the secret half given where the public half belongs.
    let run = d.run(&[
        "operator",
        "init",
        "--custodian",
        "alice.key",
        "--threshold",
        "1",
    ]);
    assert!(
        run.error_line().contains(
            "alice.key is a custodian's secret identity file; --custodian takes the public half, alice.pub"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_file_is_reported_once() {
    let d = Deployment::new();
    let cases: [&[&str]; 4] = [
        &[
            "status",
            "--cacert",
            "ca.pem",
            "--client-cert",
            "missing.pem",
            "--client-key",
            "ops-key.pem",
        ],
        &["policy", "check", "missing-dir"],
        &["operator", "unseal", "--identity", "missing.key"],
        &["server", "--config", "missing.toml"],
    ];
    for args in cases {
        let run = d.run(args);
        assert_eq!(run.code(), Some(1), "{args:?}: {}", run.stderr);
        let error = run.error_line();
        assert_eq!(
            error.matches("No such file or directory").count(),
            1,
            "{args:?}: {error}"
        );
        assert!(error.contains("missing"), "{args:?}: {error}");
    }
}

#[test]
fn deleting_a_key_speaks_of_the_key() {
    let d = Deployment::new();
    let server = d.start_unsealed(&["alice"], 1);
    server.ops(&d, &["tenant", "create", "payments"]);
    server.ops(&d, &["key", "create", "payments/card-pan"]);
    for (key, expected) in [
        ("payments/nope", "error deleting key nope: not found"),
        (
            "payments/card-pan",
            "error deleting key card-pan: deletion is not allowed for this key (set deletion_allowed first)",
        ),
    ] {
        let run = server.run_as(&d, "ops", &["key", "delete", key]);
        let error = run.error_line();
        assert!(
            error.ends_with(expected) && !error.contains("policy"),
            "{error}"
        );
    }
    server.stop();
}

/// docs/configuration.md documents each key under the table it belongs in: every key it lists
/// with a literal default is accepted there by the server (the `[approvals]` table was once
/// documented under `[unseal]`).
#[test]
fn configuration_md_documents_each_key_under_its_table() {
    let doc = include_str!("../../docs/configuration.md");
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## `[") {
            let name = heading.split(']').next().unwrap().to_owned();
            assert!(!heading.contains(" and "), "one table per heading: {line}");
            tables.push((name, Vec::new()));
        } else if let (Some((_, rows)), Some(row)) = (tables.last_mut(), line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_end_matches('`');
            let default = cells[1].split(' ').next().unwrap();
            if let Some(value) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
                let literal = value.parse::<u64>().is_ok()
                    || matches!(value, "true" | "false" | "[]")
                    || (value.len() > 1 && value.starts_with('"') && value.ends_with('"'));
                if literal {
                    rows.push(format!("{key} = {value}"));
                }
            }
        }
    }
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "tls",
            "storage",
            "node",
            "policies",
            "limits",
            "log",
            "unseal",
            "approvals",
            "audit"
        ]
    );
    let required = |table: &str| match table {
        "tls" => "cert = \"s.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n",
        "storage" => "path = \"data\"\n",
        "policies" => "dir = \"policies\"\n",
        "audit" => "path = \"audit.log\"\n",
        _ => "",
    };
    let mut text = String::from("environment = \"test\"\n");
    for (table, rows) in &tables {
        text.push_str(&format!("[{table}]\n{}", required(table)));
        for row in rows {
            if !required(table).contains(row.split(" = ").next().unwrap()) {
                text.push_str(row);
                text.push('\n');
            }
        }
    }
    tresor_server::config::Config::parse(&text, std::path::Path::new("/etc/tresor"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(text.contains("[approvals]\nttl = \"1h\""), "{text}");
}

#[test]
fn a_server_that_never_answers_fails_the_call_after_the_client_timeout() {
    let d = Deployment::new();
    // Accepts connections and reads nothing: not even a TLS handshake comes back.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("https://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || silent.accept().map(|(stream, _)| stream));
    let file = |name: &str| d.path(name).display().to_string();
    let env = [
        ("TRESOR_ADDR", addr.as_str()),
        ("TRESOR_CACERT", &file("ca.pem")),
        ("TRESOR_CLIENT_CERT", &file("ops.pem")),
        ("TRESOR_CLIENT_KEY", &file("ops-key.pem")),
        ("TRESOR_CLIENT_TIMEOUT", "1"),
    ];
    let run = d.run_with(&["tenant", "list"], &env);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert_eq!(
        run.error_line(),
        format!("tresor: error: no answer from {addr} within 1 s (the client's timeout)")
    );
    assert!(held.join().unwrap().is_ok(), "the client never connected");

    let zero = d.run_with(&["tenant", "list", "--client-timeout", "0"], &env);
    assert_eq!(zero.code(), Some(2), "{}", zero.stderr);
    assert!(zero.stderr.contains("--client-timeout"), "{}", zero.stderr);
}
