//! Issue 16: `tresor anonymize` against `tresor dev`, with examples/payroll-rules.toml on a
//! generated 20,000-row payroll extract (`tresor sample-payroll`): row count and columns as the
//! rules say, no input value of a transformed column in the output, `--min-k` failing with no
//! file, bad rows per `on_error`, JSON Lines, unnamed columns refused, and an interrupted run
//! leaving no file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::common::dev::{DevProcess, TRESOR};
use crate::common::process::Bounded;

const RULES: &str = include_str!("../../examples/payroll-rules.toml");

/// The example rules on tenant `dev`.
fn rules(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let path = dir.join(format!("rules-{}.toml", rand_suffix()));
    let text = edit(RULES.replace("tenant = \"payroll\"", "tenant = \"dev\""));
    std::fs::write(&path, text).unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The role and transformations the example rules use, as docs/anonymize.md sets them up.
async fn set_up(dev: &DevProcess) {
    let client = dev.client();
    let post = |path: &str, body: Value| {
        let client = &client;
        let path = format!("dev/transform/{path}");
        async move {
            client
                .call(Method::POST, &path, Some(&body))
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    };
    post(
        "template/employee-id",
        json!({"type": "regex", "pattern": "EMP-(\\d{4})-(\\d{4})", "alphabet": "builtin/numeric"}),
    )
    .await;
    for (name, kind, template) in [
        ("employee-id-fpe", "fpe", "employee-id"),
        ("iban-fpe", "fpe", "builtin/iban"),
        ("bsn-pseudonym", "pseudonym", "builtin/bsn"),
        ("email-pseudonym", "pseudonym", "builtin/email"),
    ] {
        post(
            &format!("transformation/{name}"),
            json!({"type": kind, "template": template, "allowed_roles": ["analytics"]}),
        )
        .await;
    }
    post(
        "role/analytics",
        json!({"transformations": ["employee-id-fpe", "iban-fpe", "bsn-pseudonym", "email-pseudonym"]}),
    )
    .await;
}

fn tresor(dev: &DevProcess, args: &[&str]) -> std::process::Output {
    Command::new(TRESOR)
        .args(args)
        .envs(dev.env.iter().map(|(n, v)| (n, v)))
        .stdin(Stdio::null())
        .bounded_output()
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut reader = tresor::anonymize::csv::Reader::new(text.as_bytes());
    let mut rows = Vec::new();
    while let Some(r) = reader.record() {
        rows.push(r.unwrap());
    }
    rows
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymize_a_20000_row_payroll_extract() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevProcess::start(&dir.path().join("dev"));
    set_up(&dev).await;
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let input = work.join("payroll.csv");
    let out = tresor(
        &dev,
        &[
            "sample-payroll",
            "--rows",
            "20000",
            "--seed",
            "16",
            "--out",
            input.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output = work.join("analyst.csv");
    let rules = rules(&work, |t| t);
    let run = tresor(
        &dev,
        &[
            "anonymize",
            "--rules",
            rules.to_str().unwrap(),
            "--in",
            input.to_str().unwrap(),
            "--out",
            output.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["rows_in"], 20000);
    assert_eq!(summary["rows_out"], 20000);
    assert_eq!(summary["dropped"], json!(["name"]));
    let k = &summary["k_anonymity"];
    assert_eq!(
        k["quasi_identifiers"],
        json!(["birth_date", "job_title", "postcode"])
    );
    assert_eq!(k["rows"], 20000);

    let before = csv_rows(&input);
    let after = csv_rows(&output);
    assert_eq!(after.len(), 20001);
    let header: Vec<&str> = after[0].iter().map(String::as_str).collect();
    assert_eq!(
        header,
        [
            "employee_id",
            "bsn",
            "iban",
            "email",
            "phone",
            "birth_date",
            "postcode",
            "job_title",
            "salary"
        ]
    );
    let input_header = &before[0];
    let col = |name: &str| input_header.iter().position(|h| h == name).unwrap();
    let out_col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // Every transformed column: the row's input value appears nowhere in its output row.
    let transformed = [
        "employee_id",
        "name",
        "bsn",
        "iban",
        "email",
        "phone",
        "birth_date",
        "postcode",
        "salary",
    ];
    for (i, (row_in, row_out)) in before.iter().zip(&after).enumerate().skip(1) {
        for column in transformed {
            let value = &row_in[col(column)];
            assert!(
                !row_out.iter().any(|cell| cell.contains(value.as_str())),
                "row {i}: the input {column} appears in the output"
            );
        }
        // Formats kept.
        assert!(row_out[out_col("iban")].starts_with("NL"));
        assert_eq!(row_out[out_col("iban")].len(), 18);
        assert!(row_out[out_col("email")].ends_with("@example.com"));
        assert_eq!(row_out[out_col("birth_date")].len(), 4);
        assert_eq!(row_out[out_col("job_title")], row_in[col("job_title")]);
    }
    // And the long identifiers (names, e-mail addresses) are in no cell of the whole file.
    // (Short numeric ones can coincide with another person's by chance: FF1 maps a domain onto
    // itself, so a 9-digit output can equal someone else's BSN without leaking anything.)
    let cells: std::collections::HashSet<&str> =
        after.iter().flatten().map(String::as_str).collect();
    for row in before.iter().skip(1) {
        for column in ["name", "email"] {
            assert!(
                !cells.contains(row[col(column)].as_str()),
                "an input {column} is in the output"
            );
        }
    }
    // --min-k above what the extract reaches: fails, writes nothing.
    let strict = work.join("strict.csv");
    let run = tresor(
        &dev,
        &[
            "anonymize",
            "--rules",
            rules.to_str().unwrap(),
            "--in",
            input.to_str().unwrap(),
            "--out",
            strict.to_str().unwrap(),
            "--min-k",
            "1000",
        ],
    );
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("--min-k 1000") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert!(!strict.exists());
    assert_eq!(
        files_in(&work),
        [
            "analyst.csv",
            "payroll.csv",
            rules.file_name().unwrap().to_str().unwrap()
        ]
    );

    // Interrupted (SIGTERM) once its partial file exists: no output file, no partial file.
    let interrupted = work.join("interrupted.csv");
    let mut child = Command::new(TRESOR)
        .args([
            "anonymize",
            "--rules",
            rules.to_str().unwrap(),
            "--in",
            input.to_str().unwrap(),
            "--out",
            interrupted.to_str().unwrap(),
            "--batch",
            "1",
            "--connections",
            "1",
        ])
        .envs(dev.env.iter().map(|(n, v)| (n, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !files_in(&work)
        .iter()
        .any(|f| f.starts_with(".interrupted.csv.partial-"))
    {
        assert!(Instant::now() < deadline, "no partial file appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));
    assert!(!interrupted.exists());
    assert!(
        !files_in(&work).iter().any(|f| f.contains("interrupted")),
        "{:?}",
        files_in(&work)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_follow_on_error_and_unnamed_columns_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevProcess::start(&dir.path().join("dev"));
    set_up(&dev).await;
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let input = work.join("payroll.csv");
    let out = tresor(
        &dev,
        &[
            "sample-payroll",
            "--rows",
            "20",
            "--out",
            input.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    // Row 3's IBAN fails its check digits; line 7 is a broken record (a bare quote).
    let mut lines: Vec<String> = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines[3] = lines[3]
        .replacen(",NL", ",NL0", 1)
        .replacen(",NL0", ",NL", 1);
    let fields: Vec<&str> = lines[3].split(',').collect();
    let bad_iban = format!("{}{}", &fields[3][..4], "TRSA0000000000");
    lines[3] = lines[3].replace(fields[3], &bad_iban);
    lines[6] = "EMP-0005-1234,Eva \"the\" Mulder".to_owned();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let run = |on_error: &str, name: &str| {
        let rules = rules(&work, |t| {
            t.replace("on_error = \"fail\"", &format!("on_error = \"{on_error}\""))
        });
        let output = work.join(name);
        let r = tresor(
            &dev,
            &[
                "anonymize",
                "--rules",
                rules.to_str().unwrap(),
                "--in",
                input.to_str().unwrap(),
                "--out",
                output.to_str().unwrap(),
                "--format",
                "json",
            ],
        );
        (r, output)
    };
    let (r, output) = run("fail", "fail.csv");
    assert!(!r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("iban"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&bad_iban),
        "the value is never repeated: {stderr}"
    );
    assert!(!output.exists());

    let (r, output) = run("skip", "skip.csv");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let s: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(
        (
            s["rows_in"].as_u64(),
            s["rows_out"].as_u64(),
            s["skipped"].as_u64()
        ),
        (Some(20), Some(18), Some(2))
    );
    assert_eq!(s["errors"], json!({"<record>": 1, "iban": 1}));
    assert_eq!(csv_rows(&output).len(), 19);

    let (r, output) = run("mark", "mark.csv");
    assert!(r.status.success());
    let s: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(
        (s["rows_out"].as_u64(), s["marked"].as_u64()),
        (Some(20), Some(2))
    );
    let rows = csv_rows(&output);
    assert_eq!(rows[3][2], "#ERROR");
    assert!(rows[6].iter().all(|c| c == "#ERROR"));

    // A column the rules do not name is refused, unless `default` says what to do.
    let rules_path = rules(&work, |t| {
        t.replace("[columns.name]\naction = \"drop\"\n", "")
    });
    let strict = work.join("strict.csv");
    let r = tresor(
        &dev,
        &[
            "anonymize",
            "--rules",
            rules_path.to_str().unwrap(),
            "--in",
            input.to_str().unwrap(),
            "--out",
            strict.to_str().unwrap(),
        ],
    );
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("do not name column(s) name"));
    assert!(!strict.exists());
    let rules_path = rules(&work, |t| {
        t.replace("[columns.name]\naction = \"drop\"\n", "")
            .replace(
                "on_error = \"fail\"",
                "on_error = \"skip\"\ndefault = \"drop\"",
            )
    });
    let r = tresor(
        &dev,
        &[
            "anonymize",
            "--rules",
            rules_path.to_str().unwrap(),
            "--in",
            input.to_str().unwrap(),
            "--out",
            strict.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!csv_rows(&strict)[0].contains(&"name".to_owned()));

    // JSON Lines in, JSON Lines out.
    let jsonl = work.join("people.jsonl");
    std::fs::write(
        &jsonl,
        "{\"name\":\"Eva Mulder\",\"bsn\":\"111222333\",\"birth_date\":\"1980-07-31\",\"salary\":45250.5,\"job_title\":\"Clerk\",\"email\":\"eva.mulder@example.com\",\"employee_id\":\"EMP-0001-0002\",\"iban\":\"NL91ABNA0417164300\",\"phone\":\"+31 6 1234 5678\",\"postcode\":\"1011 AB\"}\n",
    )
    .unwrap();
    let jsonl_out = work.join("people.out.jsonl");
    let rules_path = rules(&work, |t| t);
    let r = tresor(
        &dev,
        &[
            "anonymize",
            "--rules",
            rules_path.to_str().unwrap(),
            "--in",
            jsonl.to_str().unwrap(),
            "--out",
            jsonl_out.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let row: Value =
        serde_json::from_str(std::fs::read_to_string(&jsonl_out).unwrap().trim()).unwrap();
    assert!(row.get("name").is_none());
    assert_eq!(row["birth_date"], "1980");
    assert_eq!(row["salary"], "40000-49999");
    assert_eq!(row["job_title"], "Clerk");
    assert_eq!(row["phone"], "*************78");
    assert_ne!(row["bsn"], "111222333");
    assert!(row["iban"].as_str().unwrap().starts_with("NL"));
}
