//! `tresor tenant create|list|show|rotate-kek|shred`.

use std::path::PathBuf;

use clap::Subcommand;
use tresor_wire::tenants::TenantInfo;

use super::connection::ConnectionArgs;
use super::identity::{IdentityArgs, read_public_keys};
use super::output::{self, Format};

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant at protection level 1, 2 (default) or 3.
    Create {
        name: String,
        /// Protection level: 1 barrier only, 2 tenant KEK, 3 tenant custody.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
        level: u8,
        /// Level 3: a custodian's public key file (repeat for several).
        #[arg(long = "custodian", value_name = "FILE.pub")]
        custodians: Vec<PathBuf>,
        /// Time between an approved shred and destruction (default 7d, at most 30d).
        #[arg(long, value_parser = super::key::duration)]
        deletion_window: Option<u64>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Describe a tenant.
    Show {
        name: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Rotate a tenant's key-encryption key (no ciphertext changes).
    RotateKek {
        name: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Unlock a level-3 tenant with one of its custodians' identity.
    Unlock {
        name: String,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Lock a level-3 tenant at once (its keys leave memory).
    Lock {
        name: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Ask to replace a level-3 tenant's custodians (runs once custodians approve).
    Custodians {
        name: String,
        #[arg(long = "custodian", value_name = "FILE.pub", required = true)]
        custodians: Vec<PathBuf>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Ask to destroy a tenant and every key in it (runs once custodians approve). The tenant
    /// is then unusable for its deletion window (default 7 days) and destroyed when it ends;
    /// `cancel-shred` restores it until then.
    Shred {
        name: String,
        /// Window instead of the tenant's (0 shreds at once once approved; at most 30d).
        #[arg(long, value_parser = super::key::duration)]
        deletion_window: Option<u64>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Restore a tenant whose shred waits for its window to end (runs once custodians approve).
    CancelShred {
        name: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

pub(crate) async fn run(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            name,
            level,
            custodians,
            deletion_window,
            connection,
            format,
        } => {
            let files = custodians;
            let custodians = read_public_keys(&files)?;
            let client = connection.client()?;
            let info = client
                .create_tenant_with_window(&name, level, &custodians, deletion_window)
                .await?;
            // As at init: the tenant's custodians pin the node that answered, beside their .pub.
            if !files.is_empty() {
                let status = client.seal_status().await?;
                let fingerprint = status
                    .get("node_key")
                    .and_then(|k| k.as_str())
                    .and_then(|k| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(k).ok()
                    })
                    .and_then(|k| tresor_crypto::sign::VerifyingKey::from_slice(&k))
                    .map(|k| k.fingerprint());
                if let Some(fingerprint) = fingerprint {
                    for file in &files {
                        super::identity::pin_node(
                            &super::identity::nodes_file(file),
                            &fingerprint,
                            &format!("tenant {name}"),
                        )?;
                    }
                }
            }
            output::print(format, &info, describe)
        }
        TenantCommand::List { connection, format } => {
            let tenants = connection.client()?.list_tenants().await?;
            output::print(format, &tenants, |t| t.join("\n"))
        }
        TenantCommand::Show {
            name,
            connection,
            format,
        } => {
            let info = connection.client()?.tenant(&name).await?;
            output::print(format, &info, describe)
        }
        TenantCommand::RotateKek {
            name,
            connection,
            format,
        } => {
            let info = connection.client()?.rotate_tenant_kek(&name).await?;
            output::print(format, &info, describe)
        }
        TenantCommand::Shred {
            name,
            deletion_window,
            connection,
            format,
        } => {
            let client = connection.client()?;
            let approval = match deletion_window {
                Some(seconds) => client.shred_tenant_within(&name, seconds).await?,
                None => client.shred_tenant(&name).await?,
            };
            output::print(format, &approval, super::operator::pending)
        }
        TenantCommand::CancelShred {
            name,
            connection,
            format,
        } => {
            let approval = connection.client()?.cancel_tenant_shred(&name).await?;
            output::print(format, &approval, super::operator::pending)
        }
        TenantCommand::Unlock {
            name,
            identity,
            connection,
            format,
        } => {
            let pinned_from = identity.clone();
            let identity = identity.open()?;
            let pinned = pinned_from.pinned_nodes()?;
            let info = connection
                .client()?
                .unlock_tenant_with(&name, &identity, &pinned)
                .await?;
            output::print(format, &info, describe)
        }
        TenantCommand::Lock { name, connection } => {
            connection.client()?.lock_tenant(&name).await?;
            output::line(&format!("tenant `{name}` locked"))
        }
        TenantCommand::Custodians {
            name,
            custodians,
            connection,
            format,
        } => {
            let custodians = read_public_keys(&custodians)?;
            let approval = connection
                .client()?
                .change_tenant_custodians(&name, &custodians)
                .await?;
            output::print(format, &approval, super::operator::pending)
        }
    }
}

fn describe(info: &TenantInfo) -> String {
    let mut text = format!(
        "tenant: {}\nlevel: {}\nkek version: {}\nkeys: {}",
        info.name, info.level, info.kek_version, info.keys
    );
    if info.level == 3 {
        text.push_str(&format!(
            "\nlocked: {}\ncustodians: {}",
            info.locked,
            info.custodians.join(", ")
        ));
    }
    text
}
