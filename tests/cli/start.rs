//! Issue 12, point 9: a failed start changes nothing. `tresor server` checks its configuration,
//! TLS files, policies and listen address before it opens (or creates) the data directory, and
//! a store it created is removed again if the start fails after all.

use crate::common::deployment::Deployment;

/// Every file under `dir` with the SHA-256 of its contents, for before/after comparisons.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    use sha2::Digest;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
            let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
            files.push((path.clone(), hex));
        }
    }
    files.sort();
    files
}

#[test]
fn a_server_that_stops_on_its_configuration_leaves_no_store_behind() {
    let d = Deployment::new();
    let config = std::fs::read_to_string(d.path("tresor.toml")).unwrap();

    // A missing policy directory: refused before the data directory or the audit log exist.
    std::fs::rename(d.path("policies"), d.path("policies.off")).unwrap();
    let (status, stderr) = d.start_fails();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("tresor: error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        error.contains("cannot read policy directory")
            && error.matches("No such file or directory").count() == 1,
        "{error}"
    );
    assert!(!d.path("data").exists(), "a store was created");
    assert!(!d.path("audit").exists(), "an audit log was created");
    std::fs::rename(d.path("policies.off"), d.path("policies")).unwrap();

    // The audit log cannot be opened (its directory is a file), which is found only after the
    // store is opened: the store the start created is removed again, with the directories it
    // made for it.
    d.write("audit", "not a directory");
    d.write(
        "tresor.toml",
        &config.replace("path = \"data\"", "path = \"state/data\""),
    );
    let (status, stderr) = d.start_fails();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tresor: error: "), "{stderr}");
    assert!(
        !d.path("state").exists(),
        "the new store was left behind: {stderr}"
    );
    std::fs::remove_file(d.path("audit")).unwrap();
    d.write("tresor.toml", &config);

    // Corrected, it starts; stopped and broken again, it changes nothing it had written.
    let server = d.start_unsealed(&["alice"], 1);
    server.ops(&d, &["tenant", "create", "payments"]);
    server.stop();
    let data = snapshot(&d.path("data"));
    let audit = snapshot(&d.path("audit"));
    d.write("policies/ops.toml", "[grant]\nprincipals = [\"x\"]\n");
    let (status, stderr) = d.start_fails();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs double brackets"), "{stderr}");
    assert_eq!(snapshot(&d.path("data")), data, "the store changed");
    assert_eq!(snapshot(&d.path("audit")), audit, "the audit log changed");
    // An existing store is never removed, even when the start fails after opening it (sled
    // may tidy its files on open; the data stays).
    d.write(
        "policies/ops.toml",
        &format!(
            "[[operator]]\nprincipals = [\"{}\"]\noperations = [\"*\"]\n",
            crate::common::deployment::principal("ops")
        ),
    );
    std::fs::rename(d.path("audit"), d.path("audit.kept")).unwrap();
    d.write("audit", "not a directory");
    let (status, stderr) = d.start_fails();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        d.path("data/CURRENT").exists(),
        "the existing store was removed"
    );
    std::fs::remove_file(d.path("audit")).unwrap();
    std::fs::rename(d.path("audit.kept"), d.path("audit")).unwrap();
    let server = d.start();
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    assert_eq!(server.ops(&d, &["tenant", "list"]).trim(), "payments");
    server.stop();
}
