//! `tresor rewrap --input` and `tresor key census` (issue 17, point 3) with the real binary
//! against a real server: 20,000 JSON Lines rows over three versions all end on the latest,
//! an interruption in the middle resumes without redoing or missing a row, `--dry-run` and
//! `census` count what is there; a CSV file keeps every other cell byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tresor_client::CryptoOptions;

use crate::common::dev::TRESOR;
use crate::common::process::Bounded;
use crate::common::server::{ADMIN, TestServer};

const ROWS: usize = 20_000;

/// The `tresor` command as a client of a test server (also tests/cli/rewrap_table.rs).
pub(crate) struct Cli {
    pub(crate) env: Vec<(String, PathBuf)>,
    pub(crate) url: String,
}

impl Cli {
    /// The command with the server's address and the client's files set.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(TRESOR);
        command.args(args).env("TRESOR_ADDR", &self.url);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.bounded_output())
            .await
            .unwrap()
    }

    pub(crate) async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "tresor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_rewrapped_to_the_latest_version_and_an_interruption_resumes() {
    let server = TestServer::new().await;
    let files = server.issue(ADMIN);
    let cli = Cli {
        env: vec![
            ("TRESOR_CACERT".into(), server.path("ca.pem")),
            ("TRESOR_CLIENT_CERT".into(), files.cert.clone()),
            ("TRESOR_CLIENT_KEY".into(), files.key.clone()),
        ],
        url: server.url.clone(),
    };
    let admin = server.admin();
    admin
        .create_key("dev", "k", &Default::default())
        .await
        .unwrap();

    // 8,000 rows under v1, 7,000 under v2, 5,000 under v3; then v4 is the latest.
    let plaintexts: Vec<String> = (0..ROWS).map(|i| format!("value-{i}")).collect();
    let mut ciphertexts = Vec::with_capacity(ROWS);
    for (range, rotate_after) in [(0..8000, true), (8000..15000, true), (15000..ROWS, true)] {
        for chunk in plaintexts[range].chunks(1000) {
            let items: Vec<&[u8]> = chunk.iter().map(|p| p.as_bytes()).collect();
            for sealed in admin
                .encrypt_batch("dev", "k", &items, &CryptoOptions::default())
                .await
                .unwrap()
            {
                ciphertexts.push(sealed.unwrap().ciphertext);
            }
        }
        if rotate_after {
            admin.rotate_key("dev", "k").await.unwrap();
        }
    }
    let input = server.path("values.jsonl");
    let mut text = String::new();
    for (i, ct) in ciphertexts.iter().enumerate() {
        text.push_str(&format!(
            "{{\"id\": {i}, \"ct\": \"{ct}\", \"note\": \"kept\"}}\n"
        ));
    }
    std::fs::write(&input, &text).unwrap();
    let (input_s, output) = (input.to_str().unwrap(), server.path("rewrapped.jsonl"));
    let output_s = output.to_str().unwrap();

    // Dry run and census: counts per version, nothing changed or written.
    let census = cli
        .json(&[
            "rewrap",
            "dev/k",
            "--input",
            input_s,
            "--field",
            "ct",
            "--dry-run",
        ])
        .await;
    assert_eq!(census["latest_version"], 4);
    assert_eq!(
        census["versions"],
        serde_json::json!({"tresor:v1": 8000, "tresor:v2": 7000, "tresor:v3": 5000})
    );
    assert_eq!(census["to_rewrap"], ROWS);
    assert_eq!(
        cli.json(&[
            "key", "census", "dev/k", "--input", input_s, "--field", "ct"
        ])
        .await,
        census
    );
    assert!(!output.exists());

    // Interrupted after 7,500 rows.
    let args = [
        "rewrap",
        "dev/k",
        "--input",
        input_s,
        "--field",
        "ct",
        "--output",
        output_s,
        "--batch-size",
        "500",
        "--connections",
        "3",
    ];
    let mut interrupted = args.to_vec();
    interrupted.extend(["--stop-after", "7500"]);
    let out = cli.run(&interrupted).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let first = lines(&output);
    assert_eq!(first.len(), 7500);
    // Again without --resume: refused, nothing touched.
    let out = cli.run(&args).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{out:?}"
    );
    assert_eq!(lines(&output), first);
    // A torn last line (a crash mid-write) is dropped and redone.
    std::fs::write(&output, format!("{}\n{{\"id\": 75", first.join("\n"))).unwrap();

    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let summary = cli.json(&resumed).await;
    assert_eq!(summary["resumed_from"], 7500, "{summary}");
    assert_eq!(summary["rows"], ROWS);
    assert_eq!(summary["rewrapped"], ROWS - 7500, "nothing redone");
    assert_eq!(summary["errors"], 0);

    let all = lines(&output);
    assert_eq!(all.len(), ROWS);
    assert_eq!(
        all[..7500],
        first[..],
        "the rows before the interruption stay as written"
    );
    for (i, line) in all.iter().enumerate() {
        let row: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["id"], i, "every row once, in order");
        assert_eq!(row["note"], "kept");
        assert!(
            row["ct"].as_str().unwrap().starts_with("tresor:v4:"),
            "{line}"
        );
    }
    for i in (0..ROWS).step_by(997) {
        let row: Value = serde_json::from_str(&all[i]).unwrap();
        let plaintext = admin
            .decrypt(
                "dev",
                "k",
                row["ct"].as_str().unwrap(),
                &CryptoOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(plaintext.as_slice(), plaintexts[i].as_bytes());
    }
    let after = cli
        .json(&[
            "key", "census", "dev/k", "--input", output_s, "--field", "ct",
        ])
        .await;
    assert_eq!(after["versions"], serde_json::json!({"tresor:v4": ROWS}));
    assert_eq!(after["to_rewrap"], 0);

    // CSV: only the named column changes; a malformed value is kept and reported.
    let csv_in = server.path("values.csv");
    let mut csv = String::from("id,\"label, quoted\",secret\n");
    for (i, ct) in ciphertexts.iter().take(300).enumerate() {
        csv.push_str(&format!("{i},\"row \"\"{i}\"\"\",{ct}\n"));
    }
    csv.push_str("300,broken,not-a-ciphertext\n");
    std::fs::write(&csv_in, &csv).unwrap();
    let csv_out = server.path("rewrapped.csv");
    let out = cli
        .run(&[
            "rewrap",
            "dev/k",
            "--input",
            csv_in.to_str().unwrap(),
            "--column",
            "secret",
            "--output",
            csv_out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "an error row fails the run: {out:?}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&summary["rewrapped"], &summary["errors"]),
        (&300.into(), &1.into())
    );
    assert_eq!(summary["error_rows"][0]["row"], 301);
    let rows = lines(&csv_out);
    assert_eq!(rows[0], "id,\"label, quoted\",secret");
    assert_eq!(rows[301], "300,broken,not-a-ciphertext");
    for (i, row) in rows[1..301].iter().enumerate() {
        let prefix = format!("{i},\"row \"\"{i}\"\"\",tresor:v4:");
        assert!(row.starts_with(&prefix), "{row}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_delete_and_cancel_deletion_from_the_command_line() {
    let server = TestServer::new().await;
    let files = server.issue(ADMIN);
    let cli = Cli {
        env: vec![
            ("TRESOR_CACERT".into(), server.path("ca.pem")),
            ("TRESOR_CLIENT_CERT".into(), files.cert.clone()),
            ("TRESOR_CLIENT_KEY".into(), files.key.clone()),
        ],
        url: server.url.clone(),
    };
    let admin = server.admin();
    admin
        .create_key("dev", "k", &Default::default())
        .await
        .unwrap();
    let key = |args: &[&str]| {
        let mut all = vec!["key"];
        all.extend_from_slice(args);
        all.extend(["--format", "json"]);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.json(&args).await
        }
    };
    run(key(&[
        "config",
        "dev/k",
        "--deletion-allowed",
        "true",
        "--deletion-window",
        "3d",
    ]))
    .await;
    let approval = run(key(&["delete", "dev/k"])).await;
    assert_eq!(approval["request"]["operation"], "delete-key", "{approval}");
    server.approve(approval["id"].as_str().unwrap()).await;
    let read = admin.read_key("dev", "k").await.unwrap();
    assert_eq!(read["state"], "pending-deletion");
    let approval = run(key(&["cancel-deletion", "dev/k"])).await;
    assert_eq!(approval["request"]["operation"], "cancel-key-deletion");
    server.approve(approval["id"].as_str().unwrap()).await;
    assert_eq!(admin.read_key("dev", "k").await.unwrap()["state"], "active");
    // --deletion-window 0 is in what custodians sign.
    let approval = run(key(&["delete", "dev/k", "--deletion-window", "0"])).await;
    assert_eq!(approval["request"]["deletion_window"], 0);
    server.approve(approval["id"].as_str().unwrap()).await;
    assert!(admin.read_key("dev", "k").await.is_err());

    // A tenant's own window, set at creation.
    let tenant = cli
        .json(&[
            "tenant",
            "create",
            "t2",
            "--deletion-window",
            "2d",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(tenant["deletion_window"], 2 * 86_400, "{tenant}");
    let out = cli
        .run(&["tenant", "create", "t3", "--deletion-window", "31d"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("longer than 30 days"),
        "{out:?}"
    );
    server.shutdown().await;
}
