//! `tresor dev`, the real binary, as a child process: started in a directory, ready once it has
//! printed its `export` lines, stopped with SIGTERM (then SIGKILL) when dropped.

use super::process::Bounded;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tresor_client::{Client, ClientSettings};

/// The binary under test.
pub const TRESOR: &str = env!("CARGO_BIN_EXE_tresor");

/// A running `tresor dev`.
pub struct DevProcess {
    child: Child,
    /// What it printed on stdout up to and including its last `export` line.
    pub stdout: Vec<String>,
    /// The `export NAME=VALUE` pairs among them (`TRESOR_*` and `VAULT_*`).
    pub env: Vec<(String, String)>,
    stderr: Arc<Mutex<String>>,
}

impl DevProcess {
    /// Starts `tresor dev --dir DIR` on a free loopback port with `RUST_LOG=warn`.
    pub fn start(dir: &Path) -> DevProcess {
        DevProcess::start_logging(dir, "warn")
    }

    /// Starts it with `RUST_LOG=rust_log` and waits (up to 60 s) until it is ready.
    pub fn start_logging(dir: &Path, rust_log: &str) -> DevProcess {
        let mut child = Command::new(TRESOR)
            .args(["dev", "--dir"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tresor dev starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = lock(&sink);
                text.push_str(&line);
                text.push('\n');
            }
        });
        let (lines, received) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Keep draining after the test stops listening, so a later line never meets a
            // closed pipe.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut dev = DevProcess {
            child,
            stdout: Vec::new(),
            env: Vec::new(),
            stderr,
        };
        while !dev.env.iter().any(|(name, _)| name == "VAULT_CLIENT_KEY") {
            let Ok(line) = received.recv_timeout(Duration::from_secs(60)) else {
                panic!(
                    "tresor dev did not come up; stdout: {:?}; stderr: {}",
                    dev.stdout,
                    dev.stderr()
                );
            };
            if let Some((name, value)) =
                line.strip_prefix("export ").and_then(|l| l.split_once('='))
            {
                dev.env.push((name.to_owned(), value.to_owned()));
            }
            dev.stdout.push(line);
        }
        dev
    }

    /// The value it exported as `name`.
    pub fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("tresor dev exported no {name}: {:?}", self.stdout))
    }

    /// A client with the exported `TRESOR_*` settings.
    pub fn client(&self) -> Client {
        Client::new(&ClientSettings {
            addr: self.var("TRESOR_ADDR"),
            ca_cert: PathBuf::from(self.var("TRESOR_CACERT")),
            client_cert: PathBuf::from(self.var("TRESOR_CLIENT_CERT")),
            client_key: PathBuf::from(self.var("TRESOR_CLIENT_KEY")),
        })
        .unwrap()
    }

    /// Runs `tresor ARGS` with its exported variables; its stdout, or a panic naming the
    /// command and its stderr.
    pub fn run(&self, args: &[&str]) -> String {
        let output = Command::new(TRESOR)
            .args(args)
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .bounded_output();
        assert!(
            output.status.success(),
            "tresor {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Everything it has written to stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// SIGTERM, then waits up to `patience` for it to finish its requests, seal and exit;
    /// SIGKILL after that. The exit status, or `None` if it had to be killed.
    pub fn terminate(&mut self, patience: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// SIGKILL, as a crash: no shutdown checkpoint, no seal.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it (SIGTERM, SIGKILL after 10 s).
    pub fn stop(mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

/// The text behind `m`, even if a panicking thread held it.
fn lock(m: &Mutex<String>) -> MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
