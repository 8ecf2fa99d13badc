//! `tresor custodian keygen`, `tresor operator init|unseal|seal|rotate-root|rekey` and
//! `tresor approval list|approve`: the key custodians' ceremonies (docs/custody.md).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use tresor_wire::approvals::Approval;

use super::connection::ConnectionArgs;
use super::identity::{IdentityArgs, PassphraseArgs, keygen, read_public_keys};
use super::output::{self, Format};

#[derive(Subcommand)]
pub(crate) enum CustodianCommand {
    /// Make a custodian identity: PREFIX.pub to hand out, PREFIX.key to keep.
    Keygen {
        /// The custodian's name (as the vault will call them).
        #[arg(long)]
        name: String,
        /// Output prefix: writes PREFIX.pub and PREFIX.key.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum OperatorCommand {
    /// Initialise: split the root key among custodians; the vault stays sealed.
    Init {
        /// A custodian's public key file (repeat for each).
        #[arg(long = "custodian", value_name = "FILE.pub", required = true)]
        custodians: Vec<PathBuf>,
        /// Shares needed to unseal.
        #[arg(long)]
        threshold: u8,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Submit this custodian's unseal share.
    Unseal {
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Seal the vault: every key leaves memory until k custodians unseal it.
    Seal {
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Ask for a new root key (runs once k custodians approve).
    RotateRoot {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Ask for a new custodian set and/or threshold (runs once k current custodians approve).
    Rekey {
        #[arg(long = "custodian", value_name = "FILE.pub", required = true)]
        custodians: Vec<PathBuf>,
        #[arg(long)]
        threshold: u8,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub(crate) enum ApprovalCommand {
    /// Pending dangerous operations waiting for custodians.
    List {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show an approval and sign it with your identity.
    Approve {
        id: String,
        #[command(flatten)]
        identity: IdentityArgs,
        /// Sign without asking (for scripts); otherwise you confirm after reading the request.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

pub(crate) fn custodian(command: CustodianCommand) -> anyhow::Result<()> {
    match command {
        CustodianCommand::Keygen {
            name,
            out,
            passphrase,
        } => {
            let (public, secret) = keygen(&name, &out, &passphrase)?;
            output::line(&format!(
                "wrote {} (give it to the operators) and {} (keep it, with its passphrase)",
                public.display(),
                secret.display()
            ))
        }
    }
}

pub(crate) async fn operator(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Init {
            custodians,
            threshold,
            connection,
            format,
        } => {
            let custodians = read_public_keys(&custodians)?;
            let status = connection.client()?.init(&custodians, threshold).await?;
            output::print(format, &status, |s| {
                format!(
                    "initialised vault {}: {}-of-{} among {}; it is sealed until {} custodian(s) run `tresor operator unseal`",
                    s.vault_id,
                    s.threshold,
                    s.shares,
                    s.custodians.join(", "),
                    s.threshold
                )
            })
        }
        OperatorCommand::Unseal {
            identity,
            connection,
            format,
        } => {
            let identity = identity.open()?;
            let progress = connection.client()?.unseal_with(&identity).await?;
            output::print(format, &progress, |p| {
                if p.sealed {
                    format!(
                        "share accepted: {} of {} ({}); still sealed",
                        p.submitted.len(),
                        p.threshold,
                        p.submitted.join(", ")
                    )
                } else {
                    "unsealed".to_owned()
                }
            })
        }
        OperatorCommand::Seal { connection } => {
            connection.client()?.seal().await?;
            output::line("sealed")
        }
        OperatorCommand::RotateRoot { connection, format } => {
            let approval = connection.client()?.rotate_root().await?;
            output::print(format, &approval, pending)
        }
        OperatorCommand::Rekey {
            custodians,
            threshold,
            connection,
            format,
        } => {
            let custodians = read_public_keys(&custodians)?;
            let approval = connection.client()?.rekey(&custodians, threshold).await?;
            output::print(format, &approval, pending)
        }
    }
}

pub(crate) async fn approval(command: ApprovalCommand) -> anyhow::Result<()> {
    match command {
        ApprovalCommand::List { connection, format } => {
            let approvals = connection.client()?.approvals().await?;
            output::print(format, &approvals, |list| {
                if list.is_empty() {
                    return "no pending or expired approvals".to_owned();
                }
                list.iter().map(describe).collect::<Vec<_>>().join("\n\n")
            })
        }
        ApprovalCommand::Approve {
            id,
            identity,
            yes,
            connection,
            format,
        } => {
            let client = connection.client()?;
            let approval = client.approval(&id).await?;
            eprintln!("{}", describe(&approval));
            if approval.state != tresor_wire::approvals::ApprovalState::Pending {
                bail!(
                    "approval {} cannot be signed: it is no longer pending (see above)",
                    approval.id
                );
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "refusing to sign without confirmation: run on a terminal, or add --yes after reading the request above"
                    );
                }
                let expected = &approval.id[approval.id.len() - 4..];
                eprint!(
                    "Type the last 4 characters of the id ({}…) to sign: ",
                    &approval.id[..approval.id.len() - 4]
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if answer.trim() != expected {
                    bail!("not signed");
                }
            }
            let identity = identity.open()?;
            let outcome = client.approve_with(&approval, &identity).await?;
            output::print(format, &outcome, |o| {
                let a = &o.approval;
                let counted = if o.counted {
                    "signature accepted"
                } else {
                    "you had signed already (a custodian counts once)"
                };
                match &a.state {
                    tresor_wire::approvals::ApprovalState::Pending => {
                        format!(
                            "{counted}: {} of {} signatures",
                            a.signatures.len(),
                            a.required
                        )
                    }
                    tresor_wire::approvals::ApprovalState::Executed { outcome, .. } => {
                        format!("{counted}: done: {outcome}")
                    }
                    tresor_wire::approvals::ApprovalState::Failed { error, .. } => {
                        format!("{counted}: the operation failed: {error}")
                    }
                    tresor_wire::approvals::ApprovalState::Expired { .. } => {
                        format!("{counted}: but the approval has expired; ask again")
                    }
                }
            })
        }
    }
}

pub(crate) fn pending(approval: &Approval) -> String {
    format!(
        "needs approval by {} custodian(s): each runs `tresor approval approve {} --identity CUSTODIAN.key`\n{}",
        approval.required,
        approval.id,
        approval.request.describe()
    )
}

fn describe(approval: &Approval) -> String {
    let signed: Vec<&str> = approval
        .signatures
        .iter()
        .map(|s| s.custodian.as_str())
        .collect();
    let state = match &approval.state {
        tresor_wire::approvals::ApprovalState::Pending => "pending".to_owned(),
        tresor_wire::approvals::ApprovalState::Expired { .. } => {
            "EXPIRED: it can no longer be signed; ask again".to_owned()
        }
        tresor_wire::approvals::ApprovalState::Executed { outcome, .. } => {
            format!("done: {outcome}")
        }
        tresor_wire::approvals::ApprovalState::Failed { error, .. } => format!("failed: {error}"),
    };
    format!(
        "approval {} ({state})\n  what: {}\n  asked by: {}\n  signatures: {} of {} ({})\n  expires: {} (Unix time)",
        approval.id,
        approval.request.describe(),
        approval.requested_by,
        approval.signatures.len(),
        approval.required,
        if signed.is_empty() {
            "none yet".to_owned()
        } else {
            signed.join(", ")
        },
        approval.expires_at
    )
}
