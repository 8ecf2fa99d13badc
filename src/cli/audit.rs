//! `tresor audit verify FILE… --key AUDIT.pub` (offline) and `tresor audit hash VALUE` (asks the
//! vault for the audit form of a known value, to search the log for it).

use std::path::PathBuf;

use anyhow::bail;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use super::connection::ConnectionArgs;
use super::output::{self, Format};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain and checkpoint signatures of audit log files (oldest first).
    Verify {
        /// Log files: rotated ones first (audit.log.000001, …), then the current one.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The audit public key (`audit.pub`, also in `tresor status --format json`).
        #[arg(long, value_name = "AUDIT.pub")]
        key: PathBuf,
        /// Accept a log that is still being written (lines after the last checkpoint), or whose
        /// later files are not given.
        #[arg(long)]
        allow_open: bool,
        /// Accept a first file that does not start at the beginning of the log (sequence 0),
        /// to check only the newer files of a rotated log.
        #[arg(long)]
        allow_partial_start: bool,
    },
    /// The audit HMAC of a value, to search the log for lines about it.
    Hash {
        /// The value (a ciphertext, HMAC input, context or associated data) as given to the API.
        value: String,
        /// The value is base64 already (contexts and associated data are sent base64).
        #[arg(long)]
        base64: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

pub(crate) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            files,
            key,
            allow_open,
            allow_partial_start,
        } => {
            let options = tresor_server::audit::VerifyOptions {
                allow_open_end: allow_open,
                allow_partial_start,
            };
            let report = tresor_server::audit::verify_files(&files, &key, options)?;
            output::line(&report.to_string())
        }
        AuditCommand::Hash {
            value,
            base64,
            connection,
            format,
        } => {
            let input = if base64 {
                if STANDARD.decode(&value).is_err() {
                    bail!("the value is not base64");
                }
                value
            } else {
                STANDARD.encode(value.as_bytes())
            };
            let data: serde_json::Value = connection
                .client()?
                .data(
                    Method::POST,
                    "sys/audit/hash",
                    Some(&json!({ "input": input })),
                )
                .await?;
            output::print(format, &data, |d| {
                d["hmac"].as_str().unwrap_or_default().to_owned()
            })
        }
    }
}
