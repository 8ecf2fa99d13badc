//! Helpers for the audit trail tests: reading the log, running the real `tresor audit verify`
//! and `tresor audit hash`, editing copies of a log field by field, searching files and captured
//! logs for secrets in their usual encodings, capturing the server's tracing output, and reading
//! the Prometheus text of `GET /v1/sys/metrics`.

use super::process::Bounded;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::Value;

use super::server::{ADMIN, TestServer};

/// The lines of an audit log file (without newlines).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines of an audit log file, parsed.
pub fn entries(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// What the `tresor` binary did.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `tresor` binary with `args`.
pub fn tresor(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(args)
        .env_remove("RUST_LOG")
        .bounded_output();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `tresor audit verify FILES… --key KEY [extra…]`.
pub fn verify(files: &[PathBuf], key: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["audit".into(), "verify".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.push("--key".into());
    args.push(key.display().to_string());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tresor(&args)
}

/// Asserts that `verify` succeeded and returns its report line.
pub fn assert_verifies(files: &[PathBuf], key: &Path, extra: &[&str]) -> String {
    let run = verify(files, key, extra);
    assert!(
        run.ok && run.stdout.starts_with("OK: "),
        "verify failed on {files:?}: {run:?}"
    );
    run.stdout
}

/// Asserts that `verify` failed, naming `file` and line `line` (1-based), and returns stderr.
pub fn assert_names_line(files: &[PathBuf], key: &Path, file: &Path, line: usize) -> String {
    let run = verify(files, key, &[]);
    let expected = format!("{}:{line}: ", file.display());
    assert!(
        !run.ok && run.stderr.contains(&expected),
        "verify should fail naming {expected}: {run:?}"
    );
    run.stderr
}

/// `tresor audit hash VALUE` against `server`, as [`ADMIN`]; the HMAC it prints.
pub fn audit_hash(server: &TestServer, value: &str, base64: bool) -> String {
    let files = server.issue(ADMIN);
    let ca = server.path("ca.pem");
    let mut args = vec![
        "audit".to_owned(),
        "hash".to_owned(),
        value.to_owned(),
        "--addr".to_owned(),
        server.url.clone(),
        "--cacert".to_owned(),
        ca.display().to_string(),
        "--client-cert".to_owned(),
        files.cert.display().to_string(),
        "--client-key".to_owned(),
        files.key.display().to_string(),
    ];
    if base64 {
        args.push("--base64".to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = tresor(&args);
    assert!(run.ok, "tresor audit hash failed: {run:?}");
    let hmac = run.stdout.trim().to_owned();
    assert_eq!(hmac.len(), 32, "128 bits in hex: {run:?}");
    hmac
}

/// The top-level fields of a flat JSON object line: each name and the byte range of its value
/// text. Values are strings, numbers, booleans, null or arrays of those.
pub fn fields(line: &str) -> Vec<(String, Range<usize>)> {
    let bytes = line.as_bytes();
    assert_eq!(bytes.first(), Some(&b'{'), "{line}");
    let mut out = Vec::new();
    let mut at = 1;
    while at < bytes.len() && bytes[at] != b'}' {
        let name_end = string_end(bytes, at);
        let name = line[at + 1..name_end - 1].to_owned();
        assert_eq!(bytes[name_end], b':', "{line}");
        let start = name_end + 1;
        let end = value_end(bytes, start);
        out.push((name, start..end));
        at = if bytes[end] == b',' { end + 1 } else { end };
    }
    out
}

/// The index after the closing quote of the string starting at `at`.
fn string_end(bytes: &[u8], at: usize) -> usize {
    assert_eq!(bytes[at], b'"');
    let mut i = at + 1;
    while bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

fn value_end(bytes: &[u8], at: usize) -> usize {
    match bytes[at] {
        b'"' => string_end(bytes, at),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match bytes[i] {
                    b'"' => {
                        i = string_end(bytes, i);
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while !matches!(bytes[i], b',' | b'}') {
                i += 1;
            }
            i
        }
    }
}

/// A different value of the same kind: a number plus one, a string or array with its first
/// character changed to another of the same class (hex stays hex, digits stay digits), a
/// boolean negated, an object's first value altered likewise.
pub fn altered(value: &str) -> String {
    if value.starts_with('{') {
        let (_, range) = fields(value)
            .into_iter()
            .next()
            .expect("a non-empty object");
        return format!(
            "{}{}{}",
            &value[..range.start],
            altered(&value[range.clone()]),
            &value[range.end..]
        );
    }
    let change = |c: char| match c {
        '0'..='8' | 'a'..='y' | 'A'..='Y' => char::from(c as u8 + 1),
        '9' => '8',
        'z' => 'y',
        'Z' => 'Y',
        _ => 'x',
    };
    if let Some(rest) = value.strip_prefix("[\"") {
        let mut chars = rest.chars();
        let first = chars.next().unwrap();
        return format!("[\"{}{}", change(first), chars.as_str());
    }
    if let Some(rest) = value.strip_prefix('"') {
        let mut chars = rest.chars();
        return match chars.next().unwrap() {
            '"' => "\"x\"".to_owned(),
            first => format!("\"{}{}", change(first), chars.as_str()),
        };
    }
    match value {
        "true" => "false".into(),
        "false" => "true".into(),
        "null" => "0".into(),
        number => (number.parse::<u64>().unwrap() + 1).to_string(),
    }
}

/// Every single-field edit of `line`: each value altered, and each field removed. Returns a
/// description and the edited line.
pub fn field_edits(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, range) in fields(line) {
        let value = &line[range.clone()];
        out.push((
            format!("{name}: {value} → altered"),
            format!(
                "{}{}{}",
                &line[..range.start],
                altered(value),
                &line[range.end..]
            ),
        ));
        // The field with its separating comma.
        let key_start = line[..range.start].rfind(&format!("\"{name}\":")).unwrap();
        let removed = if line.as_bytes()[range.end] == b',' {
            format!("{}{}", &line[..key_start], &line[range.end + 1..])
        } else {
            format!(
                "{}{}",
                line[..key_start].trim_end_matches(','),
                &line[range.end..]
            )
        };
        out.push((format!("{name} removed"), removed));
    }
    out
}

/// Writes `lines` as a log file (each with its newline).
pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// A secret in the forms it could leak as: raw, base64 (standard, URL-safe, unpadded) and hex
/// (lower and upper case).
pub fn encodings(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("raw".into(), secret.to_vec()),
        ("base64".into(), STANDARD.encode(secret).into_bytes()),
        (
            "base64 unpadded".into(),
            STANDARD_NO_PAD.encode(secret).into_bytes(),
        ),
        ("base64url".into(), URL_SAFE.encode(secret).into_bytes()),
        (
            "base64url unpadded".into(),
            URL_SAFE_NO_PAD.encode(secret).into_bytes(),
        ),
        ("hex".into(), hex.clone().into_bytes()),
        ("HEX".into(), hex.to_uppercase().into_bytes()),
    ]
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Where any of `secrets` (named) appears in any encoding in any of `haystacks` (named):
/// `(haystack, secret, encoding)` for each hit.
pub fn leaks(
    haystacks: &[(String, Vec<u8>)],
    secrets: &[(String, Vec<u8>)],
) -> Vec<(String, String, String)> {
    let mut hits = Vec::new();
    for (secret_name, secret) in secrets {
        for (encoding, needle) in encodings(secret) {
            for (haystack_name, haystack) in haystacks {
                if haystack
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
                {
                    hits.push((haystack_name.clone(), secret_name.clone(), encoding.clone()));
                }
            }
        }
    }
    hits
}

/// The tracing output of this test process (every test in it), text and JSON, from the first
/// call on. The server logs through `tracing`; this is what its operators would see.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            use tracing_subscriber::layer::SubscriberExt;
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let text = buffer.clone();
            let json = buffer.clone();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::EnvFilter::new("trace"))
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(move || Capture(text.clone())),
                )
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(move || Capture(json.clone())),
                );
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            buffer
        })
        .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /v1/sys/metrics` as [`ADMIN`]: status and text.
pub async fn metrics_text(server: &TestServer) -> (StatusCode, String) {
    let mut conn = server.http1_as(ADMIN).await;
    conn.sender.ready().await.unwrap();
    let request = Request::builder()
        .method("GET")
        .uri("/v1/sys/metrics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = conn.sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Prometheus text as `series → value` (`name{labels}` exactly as written). Every non-comment
/// line must be a sample; `# TYPE` lines must name a known type.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let kind = rest.split_whitespace().nth(1).unwrap_or_default();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "series twice: {line}"
        );
    }
    out
}

/// The metrics, parsed.
pub async fn metrics(server: &TestServer) -> BTreeMap<String, f64> {
    let (status, text) = metrics_text(server).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    parse_metrics(&text)
}

/// The value of `series` (0 when absent).
pub fn metric(metrics: &BTreeMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

/// `tresor_requests_total{operation="OP",status="S"}`.
pub fn requests(metrics: &BTreeMap<String, f64>, operation: &str, status: u16) -> f64 {
    metric(
        metrics,
        &format!("tresor_requests_total{{operation=\"{operation}\",status=\"{status}\"}}"),
    )
}

/// SHA-256 of a line, lowercase hex: what the next line's `prev` holds.
pub fn line_hash(line: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(line.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `line` with the value text of `name` replaced by `value` (JSON text, e.g. `"\"abc\""`).
pub fn with_field(line: &str, name: &str, value: &str) -> String {
    let (_, range) = fields(line)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name} in {line}"));
    format!("{}{value}{}", &line[..range.start], &line[range.end..])
}

/// A forger's audit key: a fixed Ed25519 key that is not the vault's.
pub fn forger_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

/// Writes the public half of `key` as an `audit.pub` file.
pub fn write_public_key(path: &Path, key: &ed25519_dalek::SigningKey) {
    use base64::Engine;
    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes());
    std::fs::write(
        path,
        format!("{{\"type\":\"tresor-audit-public-key-v1\",\"key\":\"{public}\"}}\n"),
    )
    .unwrap();
}

/// A checkpoint line re-signed with `key` as docs/audit.md describes it: Ed25519 over
/// `LP("tresor-audit-checkpoint-v2") ‖ LP(the line without its signature field)`, the `key`
/// field naming the new key.
pub fn resign(line: &str, key: &ed25519_dalek::SigningKey) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::Signer;
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    let line = with_field(line, "key", &format!("\"{public}\""));
    let at = line
        .rfind(",\"signature\":\"")
        .expect("a signed checkpoint");
    let unsigned = format!("{}}}", &line[..at]);
    let mut message = Vec::new();
    for part in [
        b"tresor-audit-checkpoint-v2".as_slice(),
        unsigned.as_bytes(),
    ] {
        message.extend_from_slice(&(part.len() as u32).to_be_bytes());
        message.extend_from_slice(part);
    }
    let signature = STANDARD.encode(key.sign(&message).to_bytes());
    format!("{},\"signature\":\"{signature}\"}}", &line[..at])
}

/// Re-chains `lines` from `from` on (each `prev` the hash of the line before, as edited) and
/// re-signs every checkpoint from there with `key`: what a forger without the vault's key
/// would have to do to hide an edit.
pub fn rechain(lines: &mut [String], from: usize, key: &ed25519_dalek::SigningKey) {
    if from == 0 && lines[0].contains("\"type\":\"checkpoint\"") {
        lines[0] = resign(&lines[0], key);
    }
    for i in from.max(1)..lines.len() {
        let prev = line_hash(&lines[i - 1]);
        let mut line = with_field(&lines[i], "prev", &format!("\"{prev}\""));
        if line.contains("\"type\":\"checkpoint\"") {
            line = resign(&line, key);
        }
        lines[i] = line;
    }
}

/// A symbolic link at `link` to `target`, replacing whatever is at `link` in one rename; returns
/// once the audit writer has had time to see it (`until_the_log_path_is_checked`).
pub fn swap_symlink(target: &Path, link: &Path) {
    let temporary = link.with_extension("swap");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).unwrap();
    std::fs::rename(&temporary, link).unwrap();
    until_the_log_path_is_checked();
}

/// Waits until the audit writer checks its path before its next write (it does so once per
/// `PATH_CHECK_INTERVAL`, docs/audit.md "Rotation"), so that a file moved or swapped at the
/// path is seen by the next request.
pub fn until_the_log_path_is_checked() {
    std::thread::sleep(
        tresor_server::audit::PATH_CHECK_INTERVAL + std::time::Duration::from_millis(20),
    );
}
