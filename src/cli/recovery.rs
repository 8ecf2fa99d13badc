//! `tresor operator backup` and `tresor operator restore` (docs/recovery.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use tresor_server::audit::{AuditEvent, AuditLog, Outcome, VerifyOptions};
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
    // The server answers once the copy is taken: on a terminal, a spinner meanwhile.
    let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let spinner = indicatif::ProgressBar::new_spinner()
            .with_message("taking a consistent copy of the whole store (the vault keeps serving)");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        spinner
    });
    let file = connection.client()?.backup().await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let file = file?;
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

/// The tenants of `backup` that `audit_log` (the vault's own log files, oldest first, checked
/// with `audit_key`) shows shredded after the backup's audit checkpoint.
fn shredded_since(
    backup: &backup::Backup,
    audit_log: &[PathBuf],
    audit_key: Option<&Path>,
) -> anyhow::Result<Vec<String>> {
    if audit_log.is_empty() {
        return Ok(Vec::new());
    }
    let key = audit_key.context("--audit-log needs --audit-key (the log's audit.pub)")?;
    tresor_server::audit::verify_files(
        audit_log,
        key,
        VerifyOptions {
            allow_open_end: true,
            allow_partial_start: true,
        },
    )
    .context(
        "the audit log given with --audit-log does not verify, so it cannot say what was shredded",
    )?;
    let after: u64 = backup
        .header
        .audit_checkpoint
        .as_deref()
        .and_then(|c| c.split(':').next())
        .and_then(|seq| seq.parse().ok())
        .unwrap_or(0);
    let mut shredded = Vec::new();
    for file in audit_log {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for line in text.lines() {
            let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let approval = &line["approval"];
            if line["operation"] == "approval-executed"
                && approval["operation"] == "shred-tenant"
                && line["seq"].as_u64().is_some_and(|seq| seq > after)
            {
                if let Some(tenant) = approval["target"].as_str() {
                    if backup.header.tenants.iter().any(|t| t == tenant)
                        && !shredded.iter().any(|t| t == tenant)
                    {
                        shredded.push(tenant.to_owned());
                    }
                }
            }
        }
    }
    Ok(shredded)
}

pub(crate) fn restore(
    file: &Path,
    config_path: &Path,
    nodes: &[String],
    audit_log: &[PathBuf],
    audit_key: Option<&Path>,
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
    let shredded = shredded_since(&backup, audit_log, audit_key)?;
    let store = tresor_server::server::open_store(&config)?.as_store();
    tresor_core::restore_into(store.as_ref(), &backup.records, &shredded).with_context(|| {
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
                "restored from {}: vault {}, taken {} by node {}, store generation {}, {} records, tenants [{}], audit checkpoint {}, shredded after it (shredded again at the next unseal) [{}]",
                file.display(),
                header.vault_id,
                tresor_wire::time::rfc3339(header.taken_at, 0),
                backup.node_fingerprint(),
                header.store.generation,
                header.records,
                header.tenants.join(", "),
                header.audit_checkpoint.as_deref().unwrap_or("none"),
                shredded.join(", ")
            ),
            store: Some(header.store),
            ..AuditEvent::default()
        })?;
        log.close()?;
    }
    if !shredded.is_empty() {
        eprintln!(
            "shredded after the backup was taken, and shredded again at the next unseal: {}",
            shredded.join(", ")
        );
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
