//! Issue 12, point 7: what operators did with curl, through the CLI against a real
//! `tresor server`: `status` exit codes and custodians, the seal state in the server's log at
//! start, `encrypt`/`decrypt --batch`, `metrics`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::common::deployment::Deployment;

#[test]
fn status_exits_like_vault_status_and_names_the_custodians() {
    let d = Deployment::new();
    let server = d.start();
    server.wait_for_log("not initialised: waiting for `tresor operator init`");
    let status = server.run_as(&d, "ops", &["status"]);
    assert_eq!(status.code(), Some(2), "{}", status.stderr);
    assert!(
        status.stdout.contains("initialized: false"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("custodians: none (not initialised: `tresor operator init`)"),
        "{}",
        status.stdout
    );

    for name in ["alice", "bob", "carol"] {
        d.custodian(name);
    }
    server.ops(
        &d,
        &[
            "operator",
            "init",
            "--custodian",
            "alice.pub",
            "--custodian",
            "bob.pub",
            "--custodian",
            "carol.pub",
            "--threshold",
            "2",
        ],
    );
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    let status = server.run_as(&d, "ops", &["status"]);
    assert_eq!(status.code(), Some(2), "sealed: {}", status.stdout);
    for line in [
        "sealed: true",
        "shares: 2 of 3",
        "custodians: alice, bob, carol",
        "submitted: 1 (alice)",
    ] {
        assert!(status.stdout.contains(line), "{line}: {}", status.stdout);
    }
    // JSON output exits the same way.
    let json = server.run_as(&d, "ops", &["status", "--format", "json"]);
    assert_eq!(json.code(), Some(2));
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        json["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );

    server.ops(&d, &["operator", "unseal", "--identity", "bob.key"]);
    let status = server.run_as(&d, "ops", &["status"]);
    assert_eq!(status.code(), Some(0), "{}", status.stderr);
    assert!(status.stdout.contains("sealed: false"), "{}", status.stdout);

    // A restart comes back sealed and says whom it waits for.
    server.stop();
    let server = d.start();
    server.wait_for_log(
        "sealed: waiting for 2 of 3 custodians (alice, bob, carol) to run `tresor operator unseal`",
    );
    let status = server.run_as(&d, "ops", &["status"]);
    assert_eq!(status.code(), Some(2));
    assert!(status.stdout.contains("submitted: 0"), "{}", status.stdout);

    // No server: an error, exit 1.
    let env = server.env_for("ops");
    server.stop();
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let unreachable = d.run_with(&["status"], &env);
    assert_eq!(unreachable.code(), Some(1), "{}", unreachable.stdout);
    assert!(
        unreachable.error_line().contains("cannot reach"),
        "{}",
        unreachable.stderr
    );
}

#[test]
fn batches_and_metrics() {
    let d = Deployment::new();
    let server = d.start_unsealed(&["alice"], 1);
    server.ops(&d, &["tenant", "create", "payments"]);
    server.ops(&d, &["key", "create", "payments/card-pan"]);

    // 2500 plaintexts, one line not JSON (refused by the CLI) and one not base64 (refused by
    // the server): three requests of at most 1000 items.
    let mut input = String::new();
    for i in 0..2500 {
        match i {
            7 => input.push_str("not json\n"),
            1500 => input.push_str("{\"plaintext\":\"!!!\",\"reference\":\"bad\"}\n"),
            _ => input.push_str(&format!(
                "{{\"plaintext\":\"{}\",\"reference\":\"r{i}\"}}\n",
                STANDARD.encode(format!("card {i}"))
            )),
        }
    }
    d.write("plain.jsonl", &input);
    let encrypted = server.run_as(
        &d,
        "ops",
        &["encrypt", "payments/card-pan", "--batch", "plain.jsonl"],
    );
    assert_eq!(encrypted.code(), Some(1), "{}", encrypted.stderr);
    assert_eq!(
        encrypted.error_line(),
        "tresor: error: 2 of 2500 item(s) failed; their output lines say why"
    );
    let lines: Vec<Value> = encrypted
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2500);
    assert!(
        lines[7]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 8: not JSON"),
        "{}",
        lines[7]
    );
    assert!(lines[1500]["error"].is_string(), "{}", lines[1500]);
    assert_eq!(lines[1500]["reference"], "bad");
    assert_eq!(lines[0]["reference"], "r0");
    assert_eq!(lines[0]["key_version"], 1);
    assert!(
        lines[2499]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("tresor:v1:")
    );

    // The output is decrypt's input (stdin here); the failed lines fail again.
    let mut decrypt = d.command(&["decrypt", "payments/card-pan", "--batch", "-"]);
    for (name, value) in server.env_for("ops") {
        decrypt.env(name, value);
    }
    decrypt.stdin(std::process::Stdio::piped());
    decrypt.stdout(std::process::Stdio::piped());
    decrypt.stderr(std::process::Stdio::piped());
    let mut child = decrypt.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = encrypted.stdout.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(feed.as_bytes()).unwrap();
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let decrypted: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decrypted.len(), 2500);
    assert_eq!(
        STANDARD
            .decode(decrypted[2499]["plaintext"].as_str().unwrap())
            .unwrap(),
        b"card 2499"
    );
    assert_eq!(decrypted[0]["reference"], "r0");
    assert!(
        decrypted[7]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 8: no `ciphertext` string"),
        "{}",
        decrypted[7]
    );

    // `tresor metrics`: the Prometheus text, or a summary (which counts the batched requests).
    let text = server.ops(&d, &["metrics"]);
    assert!(
        text.contains("# TYPE tresor_requests_total counter"),
        "{text}"
    );
    let summary = server.ops(&d, &["metrics", "--summary"]);
    assert!(summary.starts_with("sealed: no\nrequests: "), "{summary}");
    assert!(summary.contains("audit write failures: 0"), "{summary}");
    let json: Value =
        serde_json::from_str(&server.ops(&d, &["metrics", "--format", "json"])).unwrap();
    assert_eq!(json["requests_by_operation"]["encrypt"], 3, "{json}");
    assert_eq!(json["requests_by_operation"]["decrypt"], 3, "{json}");
    assert_eq!(json["sealed"], false);
    server.stop();
}
