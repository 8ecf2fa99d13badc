//! A deployment from zero, as docs/deployment.md and docs/pki.md describe it, with the real
//! binary only: `tresor pki` makes the CA, the server certificate and client certificates (no
//! hand-written certificates, no openssl), a `tresor.toml` and policy files are written, and
//! `tresor server --config tresor.toml` runs as a child process. Its CLI calls run as
//! subprocesses too.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::dev::TRESOR;
use super::process::{COMMAND_DEADLINE, output_within};

/// The trust domain of the deployment's principals.
pub const TRUST_DOMAIN: &str = "spiffe://ops.tresor.test";
/// The passphrase of every custodian identity made here.
pub const PASSPHRASE: &str = "deployment test passphrase";

/// `spiffe://ops.tresor.test/<name>`.
pub fn principal(name: &str) -> String {
    format!("{TRUST_DOMAIN}/{name}")
}

/// What a `tresor` subprocess did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The one `tresor: error:` line on stderr (panics unless there is exactly one).
    pub fn error_line(&self) -> String {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("tresor: error: "))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "one error line expected: {:?}",
            self.stderr
        );
        errors[0].to_owned()
    }
}

/// The files of a deployment: CA, server certificate, an `ops` client certificate, policies,
/// `tresor.toml`.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// `tresor pki ca`, `tresor pki server localhost 127.0.0.1`, `tresor pki client` for
    /// `ops`, an empty CRL (`tresor pki crl`), a policy granting `ops` everything, and a
    /// `tresor.toml` listening on a free loopback port.
    pub fn new() -> Deployment {
        let deployment = Deployment {
            dir: tempfile::tempdir().unwrap(),
        };
        deployment.ok(&["pki", "ca", "--name", "Tresor deployment test CA"]);
        deployment.ok(&["pki", "server", "localhost", "127.0.0.1"]);
        deployment.issue("ops");
        deployment.ok(&["pki", "crl"]);
        std::fs::create_dir(deployment.path("policies")).unwrap();
        deployment.write(
            "policies/ops.toml",
            &format!(
                "[[operator]]\nprincipals = [\"{}\"]\noperations = [\"*\"]\n",
                principal("ops")
            ),
        );
        deployment.write(
            "tresor.toml",
            "listen = \"127.0.0.1:0\"\nenvironment = \"production\"\n\n\
             [tls]\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"ca.pem\"\n\
             crls = [\"crl.pem\"]\n\n[storage]\npath = \"data\"\n\n[policies]\ndir = \"policies\"\n\n\
             [audit]\npath = \"audit/audit.log\"\n",
        );
        deployment
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    /// The permission bits of a file.
    pub fn mode(&self, name: &str) -> u32 {
        std::fs::metadata(self.path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    /// `tresor pki client spiffe://ops.tresor.test/<name>`: writes `<name>.pem` and
    /// `<name>-key.pem`.
    pub fn issue(&self, name: &str) {
        self.ok(&["pki", "client", &principal(name)]);
    }

    /// `tresor custodian keygen --name <name> --out <name>` with [`PASSPHRASE`].
    pub fn custodian(&self, name: &str) {
        self.ok(&["custodian", "keygen", "--name", name, "--out", name]);
    }

    /// Runs `tresor ARGS` in the directory, without a server address (for local commands).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// `tresor ARGS` in the directory, with no `TRESOR_*` variable set and stdin empty (no
    /// terminal).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(TRESOR);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("TRESOR_ADDR")
            .env_remove("TRESOR_CACERT")
            .env_remove("TRESOR_CLIENT_CERT")
            .env_remove("TRESOR_CLIENT_KEY")
            .env_remove("TRESOR_PASSPHRASE")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    /// Runs `tresor ARGS` in the directory with extra environment. TRESOR_PASSPHRASE is set to
    /// [`PASSPHRASE`] unless `env` says otherwise; stdin is empty (no terminal).
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        run(self.command_with(args, env))
    }

    /// The command [`Deployment::run_with`] runs.
    fn command_with(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = self.command(args);
        command.env("TRESOR_PASSPHRASE", PASSPHRASE);
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// Makes custodians `names`, starts the server, initialises it `threshold`-of-n with them
    /// (as `ops`) and unseals it with the first `threshold`.
    pub fn start_unsealed(&self, names: &[&str], threshold: u8) -> ServerProcess {
        let mut init = vec!["operator".to_owned(), "init".to_owned()];
        for name in names {
            self.custodian(name);
            init.extend(["--custodian".to_owned(), format!("{name}.pub")]);
        }
        init.extend(["--threshold".to_owned(), threshold.to_string()]);
        let server = self.start();
        let init: Vec<&str> = init.iter().map(String::as_str).collect();
        server.ops(self, &init);
        for name in &names[..usize::from(threshold)] {
            server.ops(
                self,
                &["operator", "unseal", "--identity", &format!("{name}.key")],
            );
        }
        server
    }

    /// Runs and expects success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(run.status.success(), "tresor {args:?}: {}", run.stderr);
        run.stdout
    }

    /// `tresor server --config tresor.toml`, started and listening.
    pub fn start(&self) -> ServerProcess {
        ServerProcess::start(self.dir.path(), &self.path("tresor.toml"), &[])
            .unwrap_or_else(|(status, stderr)| panic!("tresor server exited ({status}): {stderr}"))
    }

    /// A client of `server` with the certificate `<name>.pem`.
    pub fn client(&self, server: &ServerProcess, name: &str) -> tresor_client::Client {
        tresor_client::Client::new(&tresor_client::ClientSettings {
            addr: server.url.clone(),
            ca_cert: self.path("ca.pem"),
            client_cert: self.path(&format!("{name}.pem")),
            client_key: self.path(&format!("{name}-key.pem")),
        })
        .unwrap()
    }

    /// `tresor server --config <file>` (a file in the deployment's directory), started and
    /// listening: one node of several.
    pub fn start_with(&self, file: &str) -> ServerProcess {
        ServerProcess::start(self.dir.path(), &self.path(file), &[])
            .unwrap_or_else(|(status, stderr)| panic!("tresor server exited ({status}): {stderr}"))
    }

    /// As [`Deployment::start_with`], with another `tresor` binary (an older release): the
    /// server if it starts, else its exit status and stderr.
    pub fn try_start_binary(
        &self,
        binary: &Path,
        file: &str,
    ) -> Result<ServerProcess, (ExitStatus, String)> {
        ServerProcess::start_binary(binary, self.dir.path(), &self.path(file), &[])
    }

    /// `tresor server --config tresor.toml` with `env` added to its environment: the server
    /// if it starts, else its exit status and stderr.
    pub fn try_start_env(
        &self,
        env: &[(&str, &str)],
    ) -> Result<ServerProcess, (ExitStatus, String)> {
        ServerProcess::start(self.dir.path(), &self.path("tresor.toml"), env)
    }

    /// `tresor server --config tresor.toml` when it is expected not to start: exit status and
    /// stderr.
    pub fn start_fails(&self) -> (ExitStatus, String) {
        match ServerProcess::start(self.dir.path(), &self.path("tresor.toml"), &[]) {
            Ok(server) => panic!("tresor server started: {}", server.stderr()),
            Err(failure) => failure,
        }
    }
}

/// Runs `command` to completion (within [`COMMAND_DEADLINE`]).
pub fn run(command: Command) -> Run {
    run_noting(command, String::new)
}

/// Runs `command` to completion; if it hangs past [`COMMAND_DEADLINE`], the test fails with
/// what it printed and with `context()` (a server's log, say).
fn run_noting(mut command: Command, context: impl FnOnce() -> String) -> Run {
    let output = output_within(&mut command, COMMAND_DEADLINE).unwrap_or_else(|t| {
        panic!(
            "{command:?} did not finish within {:?}; killed.\nstdout:\n{}\nstderr:\n{}\n{}",
            t.after,
            t.stdout,
            t.stderr,
            context()
        )
    });
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment::new()
    }
}

/// A running `tresor server`; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    dir: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts the server with RUST_LOG=info and waits (up to 60 s) for its `listening` line; if
    /// it exits first, its status and stderr.
    fn start(
        dir: &Path,
        config: &Path,
        env: &[(&str, &str)],
    ) -> Result<ServerProcess, (ExitStatus, String)> {
        ServerProcess::start_binary(Path::new(TRESOR), dir, config, env)
    }

    /// As [`ServerProcess::start`], running `binary`.
    fn start_binary(
        binary: &Path,
        dir: &Path,
        config: &Path,
        env: &[(&str, &str)],
    ) -> Result<ServerProcess, (ExitStatus, String)> {
        let mut child = Command::new(binary)
            .args(["server", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tresor server starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(address) = text
                .lines()
                .find(|l| l.contains("listening"))
                .and_then(|l| l.split("address=").nth(1))
            {
                let address = address.split_whitespace().next().unwrap().to_owned();
                return Ok(ServerProcess {
                    child,
                    url: format!("https://{address}"),
                    dir: dir.to_owned(),
                    stderr,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let text = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                return Err((status, text));
            }
            assert!(
                Instant::now() < deadline,
                "tresor server did not start listening: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it has logged so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits (up to 10 s) until its log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_logged(needle, 1)
    }

    /// Waits (up to 10 s) until its log contains `needle` at least `times` times.
    pub fn wait_for_logged(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr();
            if text.matches(needle).count() >= times {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the log: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`HUP`, `TERM`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The `TRESOR_*` variables for the client certificate `<name>.pem`.
    pub fn env_for(&self, name: &str) -> Vec<(String, String)> {
        let file = |f: String| self.dir.join(f).display().to_string();
        vec![
            ("TRESOR_ADDR".into(), self.url.clone()),
            ("TRESOR_CACERT".into(), file("ca.pem".into())),
            ("TRESOR_CLIENT_CERT".into(), file(format!("{name}.pem"))),
            ("TRESOR_CLIENT_KEY".into(), file(format!("{name}-key.pem"))),
        ]
    }

    /// Runs `tresor ARGS` in `deployment` as client `<as_name>` (files `<as_name>.pem`).
    pub fn run_as(&self, deployment: &Deployment, as_name: &str, args: &[&str]) -> Run {
        let env = self.env_for(as_name);
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        run_noting(deployment.command_with(args, &env), || {
            format!("server log:\n{}", self.stderr())
        })
    }

    /// As [`ServerProcess::run_as`] for `ops`, expecting success; stdout.
    pub fn ops(&self, deployment: &Deployment, args: &[&str]) -> String {
        let run = self.run_as(deployment, "ops", args);
        assert!(
            run.status.success(),
            "tresor {args:?}: {}\nserver log:\n{}",
            run.stderr,
            self.stderr()
        );
        run.stdout
    }

    /// SIGTERM, then waits (up to 15 s, then SIGKILL) for it to exit.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
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
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}
