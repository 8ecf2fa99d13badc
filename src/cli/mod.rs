//! Command-line interface (README.md, docs/custody.md, docs/pinning.md). One binary: `tresor server` and `tresor dev` run the
//! vault; every other command is a client of a running vault (or, for `policy` and `pki`, a local
//! tool).
//! Errors print one line on stderr and exit non-zero (`policy check`: one line per problem;
//! `status`: 2 while sealed); `--format json` gives scripts JSON.

// Issue 16.
mod anonymize;
mod audit;
mod batch;
mod bench;
mod connection;
mod crypto;
mod dev;
mod hints;
mod identity;
mod key;
mod metrics;
mod operator;
mod output;
mod pins;
mod pki;
mod policy;
mod recovery;
mod rewrap_args;
mod rewrap_file;
mod rewrap_request;
mod rewrap_table;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::connection::ConnectionArgs;
use self::output::Format;

/// Tresor: a key vault with per-tenant envelope encryption over mutual TLS.
#[derive(Parser)]
#[command(name = "tresor", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local vault for development: dev CA and certificates, a custodian, tenant `dev`.
    Dev(dev::DevArgs),
    /// Run the vault service.
    Server {
        /// Configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Seal state, custodians, version and environment of a running vault. Exits 0 when
    /// unsealed, 2 when sealed (or not initialised), 1 on error, like `vault status`.
    Status {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The server's Prometheus metrics (`/v1/sys/metrics`), or a summary of them.
    Metrics(metrics::MetricsArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Manage keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Encrypt a plaintext (argument or stdin).
    Encrypt(crypto::EncryptArgs),
    /// Decrypt a ciphertext (argument or stdin); the plaintext goes to stdout.
    Decrypt(crypto::DecryptArgs),
    /// Re-encrypt a ciphertext under the key's latest version.
    Rewrap(crypto::RewrapArgs),
    /// Generate a data key wrapped under a key.
    Datakey(crypto::DatakeyArgs),
    /// Compute an HMAC token (a stable pseudonym) of an input.
    Hmac(crypto::HmacArgs),
    /// Validate and explain policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Custodian identities.
    #[command(subcommand)]
    Custodian(operator::CustodianCommand),
    /// Custodian ceremonies: init, unseal, seal, rotate-root, rekey.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Pending dangerous operations: list and approve.
    #[command(subcommand)]
    Approval(operator::ApprovalCommand),
    /// Verify the audit trail; compute the audit form of a value.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Pinned-certificate rotation manifests: apps, pinned keys, exports, verification.
    #[command(subcommand)]
    Pins(pins::PinsCommand),
    /// Load test a running vault (and, with --baseline, a bare mTLS server for comparison).
    Bench(Box<bench::BenchArgs>),
    /// A small CA for teams without a PKI: CA, server and client certificates, CRLs.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Turn a production extract (CSV, JSON Lines) into an analyst's extract with the vault's
    /// transforms, per the rules; with a k-anonymity report (docs/anonymize.md).
    Anonymize(Box<anonymize::AnonymizeArgs>),
    /// Write a synthetic payroll extract (invented people) for trying `tresor anonymize`.
    SamplePayroll(anonymize::SamplePayrollArgs),
}

/// Parses the command line, runs the command, and turns any error into one line on stderr.
/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(Exit(code)) => ExitCode::from(*code),
            None => fail(e),
        },
    }
}

/// Ends the process with this status, the command having said everything itself (no
/// `tresor: error:` line is added).
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// "2 (alice, bob)": how many custodians have submitted in this round, and who.
fn submitted(status: &serde_json::Value) -> String {
    let names: Vec<&str> = status["submitted"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "0".to_owned()
    } else {
        format!("{} ({})", names.len(), names.join(", "))
    }
}

/// The custodians' names, or why there are none yet.
fn custodians(status: &serde_json::Value) -> String {
    let names: Vec<&str> = status["custodians"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "none (not initialised: `tresor operator init`)".to_owned()
    } else {
        names.join(", ")
    }
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("tresor: error: {}", hints::message(&error));
    ExitCode::FAILURE
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => dev::run(args).await,
        Command::Server { config } => {
            let config = tresor_server::config::Config::load(&config)?;
            output::init_logging(&config.log.level, config.log.format);
            tresor_server::server::run(config).await?;
            Ok(())
        }
        Command::Status { connection, format } => {
            let client = connection.client()?;
            let status = client.seal_status().await?;
            output::print(format, &status, |s| {
                format!(
                    "initialized: {}\nsealed: {}\nenvironment: {}\nversion: {}\nshares: {} of {}\ncustodians: {}\nsubmitted: {}",
                    s["initialized"],
                    s["sealed"],
                    s["environment"].as_str().unwrap_or(""),
                    s["version"].as_str().unwrap_or(""),
                    s["t"],
                    s["n"],
                    custodians(s),
                    submitted(s)
                )
            })?;
            // `vault status`: 0 unsealed, 2 sealed, 1 error (scripts and health checks rely on it).
            if status["initialized"] == true && status["sealed"] == false {
                Ok(())
            } else {
                Err(Exit(2).into())
            }
        }
        Command::Metrics(args) => metrics::run(args).await,
        Command::Tenant(command) => tenant::run(command).await,
        Command::Key(command) => key::run(command).await,
        Command::Encrypt(args) => crypto::encrypt(args).await,
        Command::Decrypt(args) => crypto::decrypt(args).await,
        Command::Rewrap(args) => crypto::rewrap(args).await,
        Command::Datakey(args) => crypto::datakey(args).await,
        Command::Hmac(args) => crypto::hmac(args).await,
        Command::Policy(command) => policy::run(command),
        Command::Custodian(command) => operator::custodian(command),
        Command::Operator(command) => operator::operator(command).await,
        Command::Approval(command) => operator::approval(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Pins(command) => pins::run(command).await,
        Command::Bench(args) => bench::run(*args).await,
        Command::Pki(command) => pki::run(command),
        Command::Anonymize(args) => anonymize::run(*args).await,
        Command::SamplePayroll(args) => anonymize::sample_payroll(args),
    }
}

/// Writes a private key or other secret as a file only its owner can read. The mode is set on
/// the open file too: `O_CREAT`'s mode applies only to a new file, and an existing
/// world-readable one must not receive a private key.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let context = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(context)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(context)?;
    file.write_all(bytes).with_context(context)
}

/// Writes a new file with `mode`; an existing file is refused, never overwritten.
pub(crate) fn write_new(path: &std::path::Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let context = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(context)?;
    file.write_all(bytes).with_context(context)?;
    file.sync_all().with_context(context)
}

/// Replaces `path` with `bytes` (mode 0644) atomically: readers see the old file or the new
/// one, never half of it.
pub(crate) fn replace_public(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let temporary = path.with_file_name(name);
    let _ = std::fs::remove_file(&temporary);
    write_new(&temporary, bytes, 0o644)?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    /// Clap checks its definitions only when a command is parsed; this checks every command
    /// (a clash such as two `--version` arguments would otherwise surface at run time).
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn a_secret_written_over_a_readable_file_becomes_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
    }
}
