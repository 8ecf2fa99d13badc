//! Backup and restore at scale (issue 14; figures in docs/benchmarks.md):
//!
//! ```sh
//! cargo run --release --example backup_scale -- 100 1000   # 100 tenants x 1,000 keys
//! ```
//!
//! Builds a vault on sled in a temporary directory, then times what `tresor operator backup`
//! and `restore` do: a consistent snapshot of the store, the signed file, reading and checking
//! it back, and writing it into an empty store, which then unseals and serves.

use std::sync::Arc;
use std::time::Instant;

use tresor_core::{
    EncryptRequest, KeySpec, SledStore, TenantSpec, Vault, VaultOptions, restore_into,
};
use tresor_crypto::identity::CustodianIdentity;
use tresor_crypto::sign::SigningKey;
use tresor_wire::backup::{self, BackupHeader};
use tresor_wire::custody::InitRequest;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("counts"))
        .collect();
    let (tenants, keys) = (
        args.first().copied().unwrap_or(10),
        args.get(1).copied().unwrap_or(100),
    );
    let dir = tempfile::tempdir()?;
    let node = Arc::new(SigningKey::generate());
    let options = VaultOptions::new("production").with_node_identity(node.clone());
    let vault = Vault::open(
        Arc::new(SledStore::open(dir.path().join("a"))?),
        options.clone(),
    )?;
    let alice = CustodianIdentity::generate("alice")?;
    vault.init(&InitRequest {
        custodians: vec![alice.public().clone()],
        threshold: 1,
        four_eyes: None,
    })?;
    vault.unseal(vec![vault.sealed_share("alice")?.open(&alice)?])?;
    let started = Instant::now();
    for t in 0..tenants {
        let tenant = format!("t{t:03}");
        vault.create_tenant(&tenant, &TenantSpec::default())?;
        for k in 0..keys {
            vault.create_key(&tenant, &format!("k{k:05}"), KeySpec::default())?;
        }
    }
    println!(
        "populated {} keys in {} tenants in {:.1} s",
        tenants * keys,
        tenants,
        started.elapsed().as_secs_f64()
    );
    let sample = vault.encrypt(
        "t000",
        "k00000",
        &EncryptRequest {
            plaintext: b"x",
            ..Default::default()
        },
    )?;

    let started = Instant::now();
    let snapshot = vault.snapshot()?;
    let header = BackupHeader {
        format: backup::FORMAT.to_owned(),
        vault_id: snapshot.vault_id.clone(),
        environment: snapshot.environment.clone(),
        store_format: snapshot.store_format,
        store: snapshot.store,
        taken_at: 0,
        custodians: snapshot.custodians.clone(),
        threshold: snapshot.threshold,
        tenants: snapshot.tenants.clone(),
        audit_checkpoint: None,
        records: snapshot.records.len() as u64,
        node_key: vault.node_signature(b"").expect("node key").0,
    };
    let file = backup::write(&header, &snapshot.records, |m| node.sign(m));
    let backup_secs = started.elapsed().as_secs_f64();
    println!(
        "backup: {} records, {:.1} MB, {:.2} s",
        snapshot.records.len(),
        file.len() as f64 / 1e6,
        backup_secs
    );

    let started = Instant::now();
    let read = backup::read(file.as_bytes())?;
    read.check_node(&[node.verifying_key().fingerprint()])?;
    let target = SledStore::open(dir.path().join("b"))?;
    restore_into(&target, &read.records, &[])?;
    drop(target);
    let restore_secs = started.elapsed().as_secs_f64();
    let restored = Vault::open(Arc::new(SledStore::open(dir.path().join("b"))?), options)?;
    restored.unseal(vec![restored.sealed_share("alice")?.open(&alice)?])?;
    let plaintext = restored.decrypt(
        "t000",
        "k00000",
        &tresor_core::DecryptRequest {
            ciphertext: &sample.text,
            ..Default::default()
        },
    )?;
    assert_eq!(plaintext.as_slice(), b"x");
    println!(
        "restore: {} records in {:.2} s (read and check {:.1} MB, write one batch); unsealed and decrypted",
        read.records.len(),
        restore_secs,
        file.len() as f64 / 1e6
    );
    Ok(())
}
