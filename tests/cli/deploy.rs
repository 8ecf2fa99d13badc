//! Issue 12, point 6: deploy/tresor.service is a valid systemd unit. `systemd-analyze verify`
//! checks a copy whose ExecStart points at the binary under test (verify refuses a unit whose
//! command does not exist). Under CI (`CI=true`) a missing systemd-analyze fails the test
//! (.ci/run installs it); elsewhere the test says so and passes.

use std::process::Command;

use crate::common::dev::TRESOR;

const UNIT: &str = include_str!("../../deploy/tresor.service");
const EXEC_START: &str = "ExecStart=/usr/local/bin/tresor server --config /etc/tresor/tresor.toml";

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    assert!(UNIT.contains(EXEC_START), "the unit's ExecStart changed");
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "systemd-analyze is missing: CI must verify deploy/tresor.service (apt-get install systemd)"
        );
        eprintln!(
            "SKIPPED: systemd-analyze is not installed, deploy/tresor.service was not verified (apt-get install systemd)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("tresor.service");
    let copy = UNIT.replace(
        "ExecStart=/usr/local/bin/tresor ",
        &format!("ExecStart={TRESOR} "),
    );
    std::fs::write(&unit, &copy).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown or misspelt settings are only warnings; they must not pass unnoticed.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tresor.service"))
        .collect();
    assert!(about_unit.is_empty(), "{stderr}");

    // The check has teeth: a misspelt setting is reported.
    std::fs::write(&unit, copy.replace("UMask=", "UMsak=")).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("UMsak"),
        "{output:?}"
    );
}

/// The configuration and policy docs/deployment.md tells operators to write are valid, grant
/// the first ceremony what it needs, and put data and audit log where the unit lets the
/// service write.
#[test]
fn the_deployment_guide_configuration_and_policies_are_valid() {
    use tresor_server::policy::{AccessRequest, PolicySet};

    let guide = include_str!("../../docs/deployment.md");
    let blocks: Vec<&str> = guide
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let config = blocks
        .iter()
        .find(|b| b.contains("environment ="))
        .expect("a tresor.toml block");
    let config = tresor_server::config::Config::parse(config, std::path::Path::new("/etc/tresor"))
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    assert_eq!(
        config.tls.key,
        std::path::Path::new("/etc/tresor/tls/server-key.pem")
    );
    assert!(config.storage.path.starts_with("/var/lib/tresor/"));
    assert!(
        UNIT.contains("\nStateDirectory=tresor\n") && UNIT.contains("\nLogsDirectory=tresor\n")
    );
    let tresor_server::config::AuditSetting::File(audit) = &config.audit else {
        panic!("the guide disables the audit log")
    };
    assert!(audit.path.starts_with("/var/log/tresor/"));
    assert!(
        audit
            .to_audit_config()
            .signing_key
            .starts_with("/var/lib/tresor/")
    );

    let policy = blocks
        .iter()
        .find(|b| b.contains("[[operator]]"))
        .expect("a policy block");
    let operations = tresor_server::operations();
    let set = PolicySet::from_files(operations, &[("operations.toml", policy)]).unwrap();
    for (principal, operation) in [
        ("spiffe://prod.example/ops/jane", "init"),
        ("spiffe://prod.example/custodians/alice", "unseal"),
        ("spiffe://prod.example/monitoring", "metrics"),
    ] {
        let request = AccessRequest {
            principal,
            operation: operations.parse(operation).unwrap(),
            tenant: None,
            key: None,
            source: Some("10.0.0.7".parse().unwrap()),
        };
        assert!(
            set.authorize(&request).is_allowed(),
            "{principal} {operation}"
        );
    }
}
