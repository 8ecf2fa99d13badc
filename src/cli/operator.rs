//! `tresor custodian keygen`, `tresor operator init|unseal|seal|rotate-root|rekey` and
//! `tresor approval list|approve`: the key custodians' ceremonies (docs/custody.md).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use tresor_wire::approvals::Approval;

use super::connection::ConnectionArgs;
use super::identity::{
    IdentityArgs, PassphraseArgs, keygen, nodes_file, pin_node, read_public_keys,
};
use super::output::{self, Format};

#[derive(Subcommand)]
pub(crate) enum CustodianCommand {
    /// Make a custodian identity: PREFIX.pub to hand out, PREFIX.key to keep.
    Keygen {
        /// The custodian's name (as the vault will call them).
        #[arg(long)]
        name: String,
        /// The SPIFFE ID of the custodian's own client certificate: the vault then accepts this
        /// custodian's shares, unlocks and signatures only from that certificate.
        #[arg(long, value_name = "SPIFFE-ID")]
        principal: Option<String>,
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
        /// Four eyes: the custodian who asks for a dangerous operation does not count among its
        /// approvers (default: on wherever there are more custodians than the threshold).
        #[arg(long, value_name = "true|false")]
        four_eyes: Option<bool>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Pin a vault node's fingerprint for a custodian (NAME.nodes beside NAME.key): unseal and
    /// tenant unlock seal nothing to a node that is not pinned.
    TrustNode {
        /// The node's fingerprint, as `tresor operator init` or `tresor status` prints it
        /// (check it with the operators over another channel).
        fingerprint: String,
        /// The custodian's identity file (only its location is used).
        #[arg(long, value_name = "FILE.key")]
        identity: PathBuf,
    },
    /// Submit this custodian's unseal share.
    Unseal {
        #[command(flatten)]
        identity: IdentityArgs,
        /// Accept a known loss at the end of the vault's audit log (it refuses to unseal when
        /// its log lost lines while it was down); every custodian of this unseal must. Audited.
        #[arg(long)]
        accept_audit_gap: bool,
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
    /// Ask for a node's enrolment for peer unseal (runs once k custodians approve): after a
    /// restart it then gets the root key from an unsealed node, without custodians.
    EnrolNode {
        /// The node's identity fingerprint (its NODE.pub, or `tresor status` on that node).
        fingerprint: String,
        /// Where the node serves (https://host:port), shown to the custodians who approve.
        #[arg(long, value_name = "URL")]
        address: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Ask for a node's removal from peer unseal (runs once k custodians approve).
    RemoveNode {
        /// The node's identity fingerprint.
        fingerprint: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List the nodes enrolled for peer unseal.
    Nodes {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Take a backup of the whole store while the vault serves: one file, signed by the node,
    /// useless without k custodians (docs/recovery.md).
    Backup {
        /// Where to write it (refused if it exists; written owner-only).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Restore a backup into the empty store a configuration names; the vault then starts
    /// sealed and the backup's custodians unseal it (docs/recovery.md).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The configuration of the vault to restore into: its [storage] must be empty.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The fingerprint of the node that took the backup, as the custodians pinned it at
        /// init (repeat for several nodes): a file signed by any other node is refused.
        #[arg(long = "node", value_name = "FINGERPRINT", required = true)]
        nodes: Vec<String>,
        /// The vault's audit log files (oldest first): tenants they show shredded after the
        /// backup was taken are shredded again at the next unseal.
        #[arg(long = "audit-log", value_name = "FILE")]
        audit_log: Vec<PathBuf>,
        /// The audit log's public key (audit.pub), to verify it.
        #[arg(long, value_name = "FILE")]
        audit_key: Option<PathBuf>,
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
    /// Show an approval and reject it with your identity: once so many custodians reject that
    /// the threshold can no longer be met, it ends and never runs.
    Reject {
        id: String,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Withdraw an approval you asked for.
    Cancel {
        id: String,
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
            principal,
            out,
            passphrase,
        } => {
            let (public, secret, fingerprint) =
                keygen(&name, principal.as_deref(), &out, &passphrase)?;
            output::line(&format!(
                "wrote {} (give it to the operators) and {} (keep it, with its passphrase)\nfingerprint of {name}: {fingerprint} (compare it with what the operators see)",
                public.display(),
                secret.display()
            ))
        }
    }
}

pub(crate) async fn operator(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Init {
            custodians: files,
            threshold,
            four_eyes,
            connection,
            format,
        } => {
            let custodians = read_public_keys(&files)?;
            let status = connection
                .client()?
                .init(&custodians, threshold, four_eyes)
                .await?;
            // Pin the node that answered beside each custodian's .pub: custodians seal their
            // shares only to an unseal key this node signs.
            let fingerprint = node_fingerprint(&status)?;
            let mut pinned = Vec::new();
            for file in &files {
                let nodes = nodes_file(file);
                pin_node(&nodes, &fingerprint, &format!("vault {}", status.vault_id))?;
                pinned.push(nodes.display().to_string());
            }
            output::print(format, &status, |s| {
                format!(
                    "initialised vault {}: {}-of-{} among {}; it is sealed until {} custodian(s) run `tresor operator unseal`\n\
                     node fingerprint: {fingerprint}\n\
                     pinned in {}: give each custodian their .nodes file with their .key",
                    s.vault_id,
                    s.threshold,
                    s.shares,
                    s.custodians
                        .iter()
                        .zip(&s.custodian_fingerprints)
                        .map(|(name, fingerprint)| format!("{name} ({fingerprint})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    s.threshold,
                    pinned.join(", ")
                )
            })
        }
        OperatorCommand::TrustNode {
            fingerprint,
            identity,
        } => {
            let nodes = nodes_file(&identity);
            let added = pin_node(&nodes, &fingerprint, "pinned with trust-node")?;
            output::line(&if added {
                format!("pinned {fingerprint} in {}", nodes.display())
            } else {
                format!("{fingerprint} was pinned in {} already", nodes.display())
            })
        }
        OperatorCommand::Unseal {
            identity,
            accept_audit_gap,
            connection,
            format,
        } => {
            let pinned_from = identity.clone();
            let identity = identity.open()?;
            let pinned = pinned_from.pinned_nodes()?;
            let client = connection.client()?;
            let progress = if accept_audit_gap {
                client
                    .unseal_accepting_audit_gap(&identity, &pinned)
                    .await?
            } else {
                client.unseal_with(&identity, &pinned).await?
            };
            // On stderr, so scripts reading `unsealed` keep working: the custodians compare
            // it with what they last saw (docs/custody.md, "Rollback").
            if !progress.shredded.is_empty() {
                eprintln!(
                    "shredded again, as the restore found them shredded after the backup: {}",
                    progress.shredded.join(", ")
                );
            }
            if let Some(store) = progress.store.filter(|_| !progress.sealed) {
                eprintln!(
                    "store generation {}, last written {}",
                    store.generation,
                    tresor_wire::time::rfc3339(store.last_write, 0)
                );
            }
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
        OperatorCommand::EnrolNode {
            fingerprint,
            address,
            connection,
            format,
        } => {
            let approval = connection
                .client()?
                .enrol_node(&fingerprint, &address)
                .await?;
            output::print(format, &approval, pending)
        }
        OperatorCommand::RemoveNode {
            fingerprint,
            connection,
            format,
        } => {
            let approval = connection.client()?.remove_node(&fingerprint).await?;
            output::print(format, &approval, pending)
        }
        OperatorCommand::Nodes { connection, format } => {
            let nodes = connection.client()?.nodes().await?;
            output::print(format, &nodes, |nodes| {
                if nodes.is_empty() {
                    return "no node is enrolled for peer unseal".to_owned();
                }
                nodes
                    .iter()
                    .map(|n| {
                        format!(
                            "{}  {}  enrolled {}",
                            n.fingerprint,
                            n.address,
                            tresor_wire::time::rfc3339(n.enrolled_at, 0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        OperatorCommand::Backup {
            out,
            connection,
            format,
        } => super::recovery::backup(&out, &connection, format).await,
        OperatorCommand::Restore {
            file,
            config,
            nodes,
            audit_log,
            audit_key,
            format,
        } => super::recovery::restore(
            &file,
            &config,
            &nodes,
            &audit_log,
            audit_key.as_deref(),
            format,
        ),
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
        ApprovalCommand::Reject {
            id,
            identity,
            connection,
            format,
        } => {
            let client = connection.client()?;
            let approval = client.approval(&id).await?;
            eprintln!("{}", describe(&approval));
            let identity = identity.open()?;
            let outcome = client.reject_with(&approval, &identity).await?;
            output::print(format, &outcome, |o| {
                let counted = if o.counted {
                    "rejection recorded"
                } else {
                    "your rejection does not count (you decided already, or the operation removes you)"
                };
                match &o.approval.state {
                    tresor_wire::approvals::ApprovalState::Rejected { .. } => {
                        format!("{counted}: the approval is rejected and will not run")
                    }
                    _ => format!(
                        "{counted}: {} rejection(s) so far",
                        o.approval.rejections.len()
                    ),
                }
            })
        }
        ApprovalCommand::Cancel {
            id,
            connection,
            format,
        } => {
            let approval = connection.client()?.cancel_approval(&id).await?;
            output::print(format, &approval, |a| {
                format!("approval {} cancelled: it will not run", a.id)
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
                    tresor_wire::approvals::ApprovalState::Rejected { .. } => {
                        format!("{counted}: the custodians rejected it; it will not run")
                    }
                    tresor_wire::approvals::ApprovalState::Cancelled { by, .. } => {
                        format!("{counted}: {by} cancelled it; it will not run")
                    }
                }
            })
        }
    }
}

/// The fingerprint of the node that signed `status`'s unseal key.
fn node_fingerprint(status: &tresor_wire::custody::SealStatus) -> anyhow::Result<String> {
    use base64::Engine;
    let key = status
        .node_key
        .as_deref()
        .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
        .and_then(|k| tresor_crypto::sign::VerifyingKey::from_slice(&k));
    match key {
        Some(key) => Ok(key.fingerprint()),
        None => bail!(
            "the vault answered without a node identity key, so custodians could not tell it from an impostor: give the server a [node] identity_key (docs/custody.md)"
        ),
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
    let names = |list: &[tresor_wire::approvals::ApprovalSignature]| {
        if list.is_empty() {
            "none yet".to_owned()
        } else {
            list.iter()
                .map(|s| format!("{} ({})", s.custodian, s.fingerprint))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let state = match &approval.state {
        tresor_wire::approvals::ApprovalState::Pending => "pending".to_owned(),
        tresor_wire::approvals::ApprovalState::Expired { .. } => {
            "EXPIRED: it can no longer be signed; ask again".to_owned()
        }
        tresor_wire::approvals::ApprovalState::Executed { outcome, .. } => {
            format!("done: {outcome}")
        }
        tresor_wire::approvals::ApprovalState::Failed { error, .. } => format!("failed: {error}"),
        tresor_wire::approvals::ApprovalState::Rejected { .. } => {
            "REJECTED by its custodians: it will not run".to_owned()
        }
        tresor_wire::approvals::ApprovalState::Cancelled { by, .. } => {
            format!("CANCELLED by {by}: it will not run")
        }
    };
    format!(
        "approval {} ({state})\n  what: {}\n  asked by: {}{}\n  signatures: {} of {} ({})\n  rejections: {}\n  expires: {}",
        approval.id,
        approval.request.describe(),
        approval.requested_by,
        if approval.four_eyes {
            " (four eyes: its custodian's own approval does not count)"
        } else {
            ""
        },
        approval.signatures.len(),
        approval.required,
        names(&approval.signatures),
        names(&approval.rejections),
        tresor_wire::time::rfc3339(approval.expires_at, 0)
    )
}
