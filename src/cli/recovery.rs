//! `tresor operator backup` and `tresor operator restore` (docs/recovery.md).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use tresor_server::audit::{AuditEvent, AuditLog, Outcome};
use tresor_server::config::{AuditSetting, Config};
use tresor_wire::backup;

use super::connection::ConnectionArgs;
use super::output::{self, Format};

/// What a backup or restore did.
#[derive(Serialize)]
struct Summary<'a> {
    file: &'a Path,
    vault_id: String,
    environment: String,
    store_generation: u64,
    records: u64,
    tenants: Vec<String>,
    bytes: usize,
    seconds: f64,
    node: String,
}

impl Summary<'_> {
    fn of<'a>(
        file: &'a Path,
        backup: &backup::Backup,
        bytes: usize,
        started: Instant,
    ) -> Summary<'a> {
        Summary {
            file,
            vault_id: backup.header.vault_id.clone(),
            environment: backup.header.environment.clone(),
            store_generation: backup.header.store.generation,
            records: backup.header.records,
            tenants: backup.header.tenants.clone(),
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            node: backup.node_fingerprint(),
        }
    }
}

pub(crate) async fn backup(
    out: &Path,
    connection: &ConnectionArgs,
    format: Format,
) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{} exists already: a backup never overwrites a file",
            out.display()
        );
    }
    let started = Instant::now();
    let file = connection.client()?.backup().await?;
    // Read back as a restore would: a file that does not verify is not written.
    let taken = backup::read(&file).context("the server's backup does not verify")?;
    super::write_private(out, &file)?;
    let summary = Summary::of(out, &taken, file.len(), started);
    output::print(format, &summary, |s| {
        format!(
            "wrote {}: vault {} ({}), store generation {}, {} records, {} tenants, {} bytes in {:.1} s, signed by node {}",
            s.file.display(),
            s.vault_id,
            s.environment,
            s.store_generation,
            s.records,
            s.tenants.len(),
            s.bytes,
            s.seconds,
            s.node
        )
    })
}

pub(crate) fn restore(
    file: &Path,
    config_path: &Path,
    nodes: &[String],
    format: Format,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let backup = backup::read(&bytes).with_context(|| format!("{} is refused", file.display()))?;
    backup
        .check_node(nodes)
        .with_context(|| format!("{} is refused", file.display()))?;
    let config = Config::load(config_path)?;
    if config.environment != backup.header.environment {
        bail!(
            "the backup is of environment `{}`, {} serves `{}`: the environment is bound into every ciphertext and into the seal configuration, so restore into a configuration whose environment is `{}`",
            backup.header.environment,
            config_path.display(),
            config.environment,
            backup.header.environment
        );
    }
    let store = tresor_server::server::open_store(&config)?;
    tresor_core::restore_into(store.as_ref(), &backup.records).with_context(|| {
        format!(
            "nothing was restored into {}",
            config.storage.path.display()
        )
    })?;
    drop(store);
    // The restored vault's audit log says where its data came from.
    if let AuditSetting::File(audit) = &config.audit {
        let log = AuditLog::open(audit.to_audit_config())?;
        let header = &backup.header;
        log.record(&AuditEvent {
            principal: "tresor:restore".to_owned(),
            source: "-".to_owned(),
            operation: "restored".to_owned(),
            outcome: Some(Outcome::Ok),
            reason: format!(
                "restored from {}: vault {}, taken {} by node {}, store generation {}, {} records, tenants [{}], audit checkpoint {}",
                file.display(),
                header.vault_id,
                tresor_wire::time::rfc3339(header.taken_at, 0),
                backup.node_fingerprint(),
                header.store.generation,
                header.records,
                header.tenants.join(", "),
                header.audit_checkpoint.as_deref().unwrap_or("none")
            ),
            store: Some(header.store),
            ..AuditEvent::default()
        })?;
        log.close()?;
    }
    let summary = Summary::of(file, &backup, bytes.len(), started);
    output::print(format, &summary, |s| {
        format!(
            "restored vault {} ({}) into {}: store generation {}, {} records, {} tenants; it starts sealed: the custodians of the backup unseal it",
            s.vault_id,
            s.environment,
            config.storage.path.display(),
            s.store_generation,
            s.records,
            s.tenants.len()
        )
    })
}
