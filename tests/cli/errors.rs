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
