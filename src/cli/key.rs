//! `tresor key create|show|list|rotate|config|trim|delete TENANT/KEY`.

use clap::{Args, Subcommand};
use serde_json::Value;
use tresor_client::{Configured, CreateKeyOptions};
use tresor_wire::duration::parse_seconds;
use tresor_wire::keys::KeyConfigUpdate;

use super::connection::{ConnectionArgs, tenant_key};
use super::output::{self, Format};

#[derive(Args)]
pub(crate) struct Common {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key.
    Create {
        /// TENANT/KEY
        path: String,
        /// A key per context (context then required on every call).
        #[arg(long)]
        derived: bool,
        /// Deterministic encryption for equality lookups (implies --derived).
        #[arg(long)]
        convergent: bool,
        /// Allow exporting the key material (waits for custodian approval).
        #[arg(long)]
        exportable: bool,
        /// Rotate automatically, e.g. 30d (at least 1h).
        #[arg(long, value_parser = duration)]
        auto_rotate_period: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Describe a key.
    Show {
        /// TENANT/KEY
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// List a tenant's keys.
    List {
        tenant: String,
        #[command(flatten)]
        common: Common,
    },
    /// Add a new version used by new ciphertexts.
    Rotate {
        /// TENANT/KEY
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// Change a key's configuration.
    Config {
        /// TENANT/KEY
        path: String,
        #[arg(long)]
        min_decryption_version: Option<u32>,
        #[arg(long)]
        min_encryption_version: Option<u32>,
        #[arg(long)]
        deletion_allowed: Option<bool>,
        #[arg(long)]
        exportable: Option<bool>,
        #[arg(long, value_parser = duration)]
        auto_rotate_period: Option<u64>,
        /// Time between an approved deletion and destruction (default 7d, at most 30d; 0
        /// needs custodian approval).
        #[arg(long, value_parser = duration)]
        deletion_window: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Destroy versions below a minimum (destroying one waits for custodian approval).
    Trim {
        /// TENANT/KEY
        path: String,
        #[arg(long)]
        min_available_version: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a key (needs deletion_allowed), once custodians approve. The key is then unusable
    /// for its deletion window (default 7 days) and destroyed when it ends; `cancel-deletion`
    /// restores it until then.
    Delete {
        /// TENANT/KEY
        path: String,
        /// Window instead of the key's deletion_window (0 destroys at once once approved; at
        /// most 30d).
        #[arg(long, value_parser = duration)]
        deletion_window: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Count the ciphertexts per key version in a JSON Lines or CSV file or a PostgreSQL table
    /// column (--pg), changing nothing: when no count is left below a version,
    /// `min_decryption_version` can be raised to it.
    Census {
        /// TENANT/KEY
        path: String,
        #[command(flatten)]
        source: super::rewrap_args::SourceArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Restore a key whose deletion waits for its window to end (runs once custodians approve).
    CancelDeletion {
        /// TENANT/KEY
        path: String,
        #[command(flatten)]
        common: Common,
    },
}

/// A `--…` duration option: seconds, or a number with a unit (`90m`, `12h`, `30d`).
pub(crate) fn duration(text: &str) -> Result<u64, String> {
    parse_seconds(text)
        .ok_or_else(|| format!("`{text}` is not a duration (e.g. 3600, 90m, 12h, 30d)"))
}

pub(crate) async fn run(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            path,
            derived,
            convergent,
            exportable,
            auto_rotate_period,
            common,
        } => {
            let (tenant, key) = tenant_key(&path)?;
            let options = CreateKeyOptions {
                derived: derived || convergent,
                convergent_encryption: convergent,
                exportable,
                auto_rotate_period: auto_rotate_period.unwrap_or(0),
            };
            match common
                .connection
                .client()?
                .create_key(tenant, key, &options)
                .await?
            {
                Configured::Applied(data) => output::print(common.format, &data, describe),
                Configured::PendingApproval(approval) => {
                    output::print(common.format, approval.as_ref(), super::operator::pending)
                }
            }
        }
        KeyCommand::Show { path, common } => {
            let (tenant, key) = tenant_key(&path)?;
            let data = common.connection.client()?.read_key(tenant, key).await?;
            output::print(common.format, &data, describe)
        }
        KeyCommand::List { tenant, common } => {
            let keys = common.connection.client()?.list_keys(&tenant).await?;
            output::print(common.format, &keys, |k| k.join("\n"))
        }
        KeyCommand::Rotate { path, common } => {
            let (tenant, key) = tenant_key(&path)?;
            let data = common.connection.client()?.rotate_key(tenant, key).await?;
            output::print(common.format, &data, describe)
        }
        KeyCommand::Config {
            path,
            min_decryption_version,
            min_encryption_version,
            deletion_allowed,
            exportable,
            auto_rotate_period,
            deletion_window,
            common,
        } => {
            let (tenant, key) = tenant_key(&path)?;
            let update = KeyConfigUpdate {
                min_decryption_version,
                min_encryption_version,
                deletion_allowed,
                exportable,
                auto_rotate_period,
                deletion_window,
            };
            match common
                .connection
                .client()?
                .configure_key(tenant, key, &update)
                .await?
            {
                Configured::Applied(data) => output::print(common.format, &data, describe),
                Configured::PendingApproval(approval) => {
                    output::print(common.format, approval.as_ref(), super::operator::pending)
                }
            }
        }
        KeyCommand::Trim {
            path,
            min_available_version,
            common,
        } => {
            let (tenant, key) = tenant_key(&path)?;
            match common
                .connection
                .client()?
                .trim_key(tenant, key, min_available_version)
                .await?
            {
                Configured::Applied(data) => output::print(common.format, &data, describe),
                Configured::PendingApproval(approval) => {
                    output::print(common.format, approval.as_ref(), super::operator::pending)
                }
            }
        }
        KeyCommand::Delete {
            path,
            deletion_window,
            common,
        } => {
            let (tenant, key) = tenant_key(&path)?;
            let client = common.connection.client()?;
            let approval = match deletion_window {
                Some(seconds) => client.delete_key_within(tenant, key, seconds).await?,
                None => client.delete_key(tenant, key).await?,
            };
            output::print(common.format, &approval, super::operator::pending)
        }
        KeyCommand::Census {
            path,
            source,
            common,
        } => {
            let (tenant, key) = tenant_key(&path)?;
            let census = match source.pg_table.pg {
                Some(_) => {
                    super::rewrap_table::census(tenant, key, &source, &common.connection).await?
                }
                None => {
                    super::rewrap_file::census(tenant, key, &source, &common.connection).await?
                }
            };
            println!("{census}");
            Ok(())
        }
        KeyCommand::CancelDeletion { path, common } => {
            let (tenant, key) = tenant_key(&path)?;
            let client = common.connection.client()?;
            let approval = client.cancel_key_deletion(tenant, key).await?;
            output::print(common.format, &approval, super::operator::pending)
        }
    }
}

fn describe(key: &Value) -> String {
    let versions: Vec<String> = key["keys"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    format!(
        "key: {}/{}\nlatest version: {}\nversions that decrypt: {}\nmin decryption version: {}\nmin encryption version: {}\nmin available version: {}\nderived: {}  convergent: {}  exportable: {}  deletion allowed: {}\nauto rotate period: {}",
        key["tenant"].as_str().unwrap_or(""),
        key["name"].as_str().unwrap_or(""),
        key["latest_version"],
        versions.join(", "),
        key["min_decryption_version"],
        key["min_encryption_version"],
        key["min_available_version"],
        key["derived"],
        key["convergent_encryption"].as_bool().unwrap_or(false),
        key["exportable"],
        key["deletion_allowed"],
        tresor_wire::duration::format_seconds(key["auto_rotate_period"].as_u64().unwrap_or(0)),
    )
}
