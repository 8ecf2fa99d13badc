//! Child processes with a deadline: a hung `tresor` fails its test with what it printed, instead
//! of holding the whole run until CI's own limit.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one `tresor` command may take in a test. Generous: the tests run unoptimised,
/// two at a time, on two cores, and some commands derive slow passphrase hashes.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(180);

/// Why a command did not finish: it ran past its deadline (and was killed), with what it had
/// printed by then.
#[derive(Debug)]
pub struct TimedOut {
    pub after: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to completion like [`Command::output`], killing it after `deadline`.
pub fn output_within(command: &mut Command, deadline: Duration) -> Result<Output, TimedOut> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join();
    let stderr = stderr.join();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(TimedOut {
            after: deadline,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
    }
}

/// [`output_within`] with [`COMMAND_DEADLINE`]; a command that runs past it fails the test with
/// the command line and what it printed.
pub fn output(command: &mut Command) -> Output {
    output_within(command, COMMAND_DEADLINE).unwrap_or_else(|t| {
        panic!(
            "{command:?} did not finish within {:?}; killed.\nstdout:\n{}\nstderr:\n{}",
            t.after, t.stdout, t.stderr
        )
    })
}

/// `Command::output()` with [`COMMAND_DEADLINE`], for chains like
/// `Command::new(..).args(..).bounded_output()`.
pub trait Bounded {
    /// See [`output`].
    fn bounded_output(&mut self) -> Output;
}

impl Bounded for Command {
    fn bounded_output(&mut self) -> Output {
        output(self)
    }
}

/// Reads a pipe to its end on a thread. A process the command left behind may hold the pipe
/// open, so the reader is waited for only briefly once the command itself has exited.
struct Drain(mpsc::Receiver<Vec<u8>>);

impl Drain {
    fn join(self) -> Vec<u8> {
        self.0
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> Drain {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = send.send(bytes);
    });
    Drain(receive)
}
