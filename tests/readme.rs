//! README's "Try it" works as written: `tresor dev` starts, the exported variables are set,
//! and the fenced command block runs with `sh -e` against the built binary; then `tresor dev`
//! with the same directory comes back unsealed with the same data.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRESOR: &str = env!("CARGO_BIN_EXE_tresor");

/// The text behind `m`, even if a panicking thread held it.
fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running `tresor dev`, stopped (SIGTERM, then SIGKILL) when dropped.
struct Dev {
    child: Child,
    /// The `export NAME=VALUE` pairs it printed.
    env: Vec<(String, String)>,
    stderr: Arc<Mutex<String>>,
}

impl Dev {
    fn start(dir: &Path) -> Dev {
        let mut child = Command::new(TRESOR)
            .args(["dev", "--dir"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tresor dev starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = lock(&sink);
                text.push_str(&line);
                text.push('\n');
            }
        });
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Keep draining after the test stops listening: closing the pipe would make
            // `tresor dev` fail its next write (EPIPE) and exit under the test.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut dev = Dev {
            child,
            env: Vec::new(),
            stderr,
        };
        let mut seen = Vec::new();
        while dev.env.len() < 8 {
            match received.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some((name, value)) =
                        line.strip_prefix("export ").and_then(|l| l.split_once('='))
                    {
                        dev.env.push((name.to_owned(), value.to_owned()));
                    }
                    seen.push(line);
                }
                Err(_) => panic!(
                    "tresor dev printed no export lines; stdout: {seen:?}; stderr: {}",
                    lock(&dev.stderr)
                ),
            }
        }
        let names: Vec<&str> = dev.env.iter().map(|(n, _)| n.as_str()).collect();
        for wanted in [
            "TRESOR_ADDR",
            "TRESOR_CACERT",
            "TRESOR_CLIENT_CERT",
            "TRESOR_CLIENT_KEY",
            "VAULT_ADDR",
            "VAULT_CACERT",
            "VAULT_CLIENT_CERT",
            "VAULT_CLIENT_KEY",
        ] {
            assert!(names.contains(&wanted), "{wanted} not exported: {seen:?}");
        }
        dev
    }

    /// Runs `script` with `sh -e`, the exported variables and `tresor` on the PATH; returns
    /// stdout, or panics with everything on failure.
    fn sh(&self, script: &str) -> String {
        let bin_dir = Path::new(TRESOR).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new("sh")
            .args(["-e", "-c", script])
            .env("PATH", path)
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "script failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}\nserver stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            lock(&self.stderr)
        );
        stdout
    }

    /// SIGTERM and wait (the server finishes requests and seals); SIGKILL after 10 s.
    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The fenced `sh` blocks of README's "## Try it" section.
fn try_it_blocks() -> Vec<String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## Try it\n")
        .nth(1)
        .expect("README has a `## Try it` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn readme_try_it_runs_as_written_and_dev_restarts_with_its_data() {
    let blocks = try_it_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "expected the `tresor dev` block and the commands: {blocks:?}"
    );
    assert!(blocks[0].trim().starts_with("tresor dev"), "{}", blocks[0]);
    let commands = &blocks[1];
    for expected in [
        "tresor key create dev/card-pan",
        "tresor encrypt dev/card-pan 'hello'",
    ] {
        assert!(commands.contains(expected), "README lost `{expected}`");
    }

    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path());
    let out = dev.sh(commands);
    let lines: Vec<&str> = out.lines().collect();
    let ciphertext = lines
        .iter()
        .find(|l| l.starts_with("tresor:v1:"))
        .unwrap_or_else(|| panic!("no v1 ciphertext echoed:\n{out}"))
        .to_string();
    assert!(
        lines.iter().any(|l| l.starts_with("tresor:v2:")),
        "no rewrap to v2:\n{out}"
    );
    assert!(out.contains("sealed: false"), "status:\n{out}");
    // `tresor bench`: every request answered, and the ceiling measured beside the vault.
    assert!(
        out.contains("2000 ok, 0 errors") && out.contains("vault/ceiling:"),
        "bench:\n{out}"
    );
    // The last command decrypts the v1 ciphertext after the rotation.
    assert!(
        out.trim_end().ends_with("hello"),
        "decrypt did not print the plaintext last:\n{out}"
    );

    // Same directory again: the same vault, unsealed, with the key and its two versions.
    dev.stop();
    let dev = Dev::start(dir.path());
    let out = dev.sh(&format!(
        "tresor decrypt dev/card-pan '{ciphertext}'; echo; tresor key show dev/card-pan --format json"
    ));
    assert!(out.starts_with("hello\n"), "{out}");
    let key: serde_json::Value = serde_json::from_str(out.split_once('\n').unwrap().1).unwrap();
    assert_eq!(key["latest_version"], 2, "{key}");
    dev.stop();
}
