//! Issue 12, point 5: `tresor pki` makes every certificate a deployment needs, and
//! `tresor server` and the CLI work with them (docs/pki.md). The certificates of every test
//! here come from `tresor pki`; none is written by hand.

use crate::common::deployment::{Deployment, principal};

#[test]
fn a_deployment_from_tresor_pki_serves_the_cli() {
    let d = Deployment::new();
    // Keys owner-only, certificates readable.
    for key in ["ca-key.pem", "server-key.pem", "ops-key.pem"] {
        assert_eq!(d.mode(key), 0o600, "{key}");
    }
    for cert in ["ca.pem", "server.pem", "ops.pem", "crl.pem"] {
        assert_eq!(d.mode(cert) & 0o077, 0o044, "{cert}");
    }
    // Nothing is overwritten, and a refusal changes nothing.
    let before = std::fs::read(d.path("ops-key.pem")).unwrap();
    let refused = d.run(&["pki", "client", &principal("ops")]);
    assert_eq!(refused.code(), Some(1));
    assert!(
        refused.error_line().contains("ops.pem exists already"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read(d.path("ops-key.pem")).unwrap(), before);

    let server = d.start();
    d.custodian("alice");
    let init = server.ops(
        &d,
        &[
            "operator",
            "init",
            "--custodian",
            "alice.pub",
            "--threshold",
            "1",
        ],
    );
    assert!(init.contains("1-of-1 among alice"), "{init}");
    let unsealed = server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    assert_eq!(unsealed.trim(), "unsealed");
    server.ops(&d, &["tenant", "create", "payments"]);
    server.ops(&d, &["key", "create", "payments/card-pan"]);
    let ciphertext = server.ops(&d, &["encrypt", "payments/card-pan", "4111 1111"]);
    assert!(ciphertext.starts_with("tresor:v1:"), "{ciphertext}");
    let plaintext = server.ops(&d, &["decrypt", "payments/card-pan", ciphertext.trim()]);
    assert_eq!(plaintext, "4111 1111");

    // A client certificate issued later works at once (same CA) and stops working once the
    // CRL made by `tresor pki crl --revoke` is loaded (SIGHUP).
    d.issue("ops-two");
    assert_eq!(d.mode("ops-two-key.pem"), 0o600);
    d.write(
        "policies/ops.toml",
        &format!(
            "[[operator]]\nprincipals = [\"{}\", \"{}\"]\noperations = [\"*\"]\n",
            principal("ops"),
            principal("ops-two")
        ),
    );
    server.signal("HUP");
    server.wait_for_log("reloaded policies");
    let listed = server.run_as(&d, "ops-two", &["tenant", "list"]);
    assert!(listed.status.success(), "{}", listed.stderr);
    assert_eq!(listed.stdout.trim(), "payments");
    let crl = d.ok(&["pki", "crl", "--revoke", "ops-two.pem"]);
    assert!(crl.contains("1 revoked certificate(s)"), "{crl}");
    server.signal("HUP");
    server.wait_for_logged("reloaded TLS", 2);
    let revoked = server.run_as(&d, "ops-two", &["tenant", "list"]);
    assert_eq!(revoked.code(), Some(1), "{}", revoked.stderr);
    // The first client is not affected; the next CRL keeps the revocation.
    server.ops(&d, &["tenant", "list"]);
    let renewed = d.ok(&["pki", "crl"]);
    assert!(renewed.contains("(1 kept, 0 added)"), "{renewed}");
    server.stop();
}
