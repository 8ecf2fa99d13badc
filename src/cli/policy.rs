//! `tresor policy check DIR` and `tresor policy explain`: local tools, no server needed.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use tresor_server::policy::{self, AccessRequest, Operation, PolicyError, PolicySet};

use super::output::{self, Format};

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate every policy file in DIR; errors name file, line and reason.
    Check { dir: PathBuf },
    /// Would this principal be allowed this operation, and which rule decides?
    Explain {
        /// Policy directory.
        #[arg(long)]
        dir: PathBuf,
        /// The principal (e.g. spiffe://prod.example/payments-api).
        #[arg(long)]
        principal: String,
        /// The operation (encrypt, decrypt, tenant-create, …).
        #[arg(long)]
        operation: String,
        /// TENANT or TENANT/KEY (omit for vault-wide operations).
        #[arg(long)]
        path: Option<String>,
        /// Source address of the request.
        #[arg(long)]
        source: Option<IpAddr>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Invalid files: every problem on its own line on stderr, `file:line:column: reason`, as a
/// compiler prints them (docs/policies.md); the exit status says the check failed.
fn one_per_line(error: PolicyError) -> anyhow::Error {
    match error {
        PolicyError::Invalid(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            super::Exit(1).into()
        }
        other => other.into(),
    }
}

pub(crate) fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { dir } => {
            let report =
                policy::check_dir(tresor_server::operations(), &dir).map_err(one_per_line)?;
            super::output::line(&report.to_string())
        }
        PolicyCommand::Explain {
            dir,
            principal,
            operation,
            path,
            source,
            format,
        } => {
            let operations = tresor_server::operations();
            let operation: Operation = operations
                .parse(&operation)
                .with_context(|| format!("operations are: {}", operations.names().join(", ")))?;
            let (tenant, key) = match path.as_deref() {
                None => (None, None),
                Some(path) => match path.split_once('/') {
                    Some((tenant, key)) => (Some(tenant), Some(key)),
                    None => (Some(path), None),
                },
            };
            let set = PolicySet::load_dir(operations, &dir).map_err(one_per_line)?;
            let explanation = set.explain(&AccessRequest {
                principal: &principal,
                operation,
                tenant,
                key,
                source,
            });
            let allowed = explanation.decision.is_allowed();
            output::print(
                format,
                &serde_json::json!({ "allowed": allowed, "explanation": explanation.to_string() }),
                |_| explanation.to_string(),
            )?;
            if allowed {
                Ok(())
            } else {
                anyhow::bail!("denied")
            }
        }
    }
}
