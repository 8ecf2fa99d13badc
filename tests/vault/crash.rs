//! kill -9 drill: "a key version is durable before any ciphertext uses it".
//!
//! The test re-executes its own binary as a child that loops over rotate key / encrypt / rotate
//! tenant KEK / encrypt / create-and-delete a scratch key (which rewrites the whole store) /
//! encrypt, and prints each result only after the call returned. The parent reads those lines,
//! kills the child with SIGKILL at a random point, reopens the directory, unseals, and checks
//! that every printed ciphertext still decrypts and no announced rotation was lost. Then it
//! starts the next child on the same directory.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tresor_core::KeySpec;
use tresor_core::TenantSpec;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::custody::InitRequest;
use tresor_wire::keys::KeyConfigUpdate;

/// Set (to the drill's directory) only in the child.
const CHILD_DIR: &str = "TRESOR_CRASH_DRILL_DIR";
const CHILD_TEST: &str = "crash::crash_drill_child";
const PASSPHRASE: &[u8] = b"drill passphrase";
const TENANT: &str = "drill";
const KEY: &str = "k";
const ROUNDS: usize = 4;

fn open(dir: &Path) -> Vault {
    let store = Arc::new(crate::common::open_store(&dir.join("data")));
    Vault::open(store, VaultOptions::new("test")).expect("open vault")
}

fn unseal(vault: &Vault, identity: &CustodianIdentity) {
    let share = vault
        .sealed_share(identity.name())
        .unwrap()
        .open(identity)
        .unwrap();
    vault.unseal(vec![share]).unwrap();
}

fn identity(dir: &Path) -> CustodianIdentity {
    let file = std::fs::read_to_string(dir.join("custodian.key")).unwrap();
    CustodianIdentity::from_encrypted_json(&file, PASSPHRASE).unwrap()
}

/// What the child announced, each line only after the call returned.
#[derive(Default)]
struct Acknowledged {
    ciphertexts: Vec<(String, String)>,
    key_version: u32,
    kek_version: u32,
    purges: usize,
}

impl Acknowledged {
    /// Takes one complete line; returns true if it was a ciphertext.
    fn take(&mut self, line: &str) -> bool {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some("CT"), Some(ciphertext), Some(plaintext)) => {
                self.ciphertexts
                    .push((ciphertext.to_owned(), plaintext.to_owned()));
                return true;
            }
            (Some("ROTATED"), Some(version), None) => {
                self.key_version = self.key_version.max(version.parse().unwrap());
            }
            (Some("KEK"), Some(version), None) => {
                self.kek_version = self.kek_version.max(version.parse().unwrap());
            }
            (Some("PURGED"), None, None) => self.purges += 1,
            _ => {} // the test harness's own output
        }
        false
    }
}

#[test]
fn kill_9_never_loses_an_acknowledged_key_version() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // One custodian whose identity the children read from an encrypted identity file.
    let custodian = CustodianIdentity::generate("drill-custodian").unwrap();
    std::fs::write(
        dir.join("custodian.key"),
        custodian.to_encrypted_json(PASSPHRASE).unwrap(),
    )
    .unwrap();
    {
        let vault = open(dir);
        vault
            .init(&InitRequest {
                custodians: vec![custodian.public().clone()],
                threshold: 1,
                four_eyes: None,
            })
            .unwrap();
        unseal(&vault, &custodian);
        vault.create_tenant(TENANT, &TenantSpec::default()).unwrap();
        vault.create_key(TENANT, KEY, KeySpec::default()).unwrap();
    }

    let mut acknowledged = Acknowledged::default();
    for round in 0..ROUNDS {
        let target = rand::random_range(3..40usize);
        let lines = run_child_until_killed(dir, target, &mut acknowledged);
        let vault = open(dir);
        assert!(vault.is_sealed());
        unseal(&vault, &custodian);
        for (ciphertext, plaintext) in &acknowledged.ciphertexts {
            let decrypted =
                crate::common::decrypt(&vault, TENANT, KEY, ciphertext).unwrap_or_else(|e| {
                    panic!("round {round}: acknowledged {ciphertext} lost after kill -9: {e}")
                });
            assert_eq!(decrypted, plaintext.as_bytes());
        }
        let info = vault.key_info(TENANT, KEY).unwrap();
        assert!(
            info.latest_version >= acknowledged.key_version,
            "round {round}: rotation to v{} was acknowledged, found v{}",
            acknowledged.key_version,
            info.latest_version
        );
        let tenant = vault.tenant_info(TENANT).unwrap();
        assert!(
            tenant.kek_version >= acknowledged.kek_version,
            "round {round}: KEK v{} was acknowledged, found v{}",
            acknowledged.kek_version,
            tenant.kek_version
        );
        eprintln!(
            "round {round}: killed after {lines} lines; {} ciphertexts, key v{}, KEK v{}, {} purges verified",
            acknowledged.ciphertexts.len(),
            info.latest_version,
            tenant.kek_version,
            acknowledged.purges
        );
    }
    assert!(acknowledged.ciphertexts.len() >= ROUNDS * 3);
    assert!(acknowledged.key_version > 1 && acknowledged.kek_version > 1);
}

/// Runs one child on `dir`, kills it once it has printed `target` ciphertexts (plus a random
/// moment), and records every complete line it printed. Returns the number of lines.
fn run_child_until_killed(dir: &Path, target: usize, acknowledged: &mut Acknowledged) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD_TEST,
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = 0;
    let mut lines = 0;
    let mut line = String::new();
    while seen < target {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!(
                "the child stopped by itself ({:?}) after {seen} ciphertexts:\n{stderr}",
                child.wait()
            );
        }
        lines += 1;
        if acknowledged.take(&line) {
            seen += 1;
        }
    }
    std::thread::sleep(Duration::from_micros(rand::random_range(0..3000)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines the child printed before it died are acknowledged too; a last partial line is not.
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 || !line.ends_with('\n') {
            break;
        }
        lines += 1;
        acknowledged.take(&line);
    }
    lines
}

/// The child's side of the drill. Ignored unless the parent runs it with `CHILD_DIR` set.
#[test]
#[ignore = "child process of kill_9_never_loses_an_acknowledged_key_version"]
fn crash_drill_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else {
        return;
    };
    let custodian = identity(&dir);
    let vault = open(&dir);
    unseal(&vault, &custodian);
    let pid = std::process::id();
    for i in 0u64.. {
        match i % 6 {
            0 => {
                let info = vault.rotate_key(TENANT, KEY).unwrap();
                println!("ROTATED {}", info.latest_version);
            }
            2 => {
                let info = vault.rotate_tenant_kek(TENANT).unwrap();
                println!("KEK {}", info.kek_version);
            }
            4 => {
                // Destroying a key rewrites the whole store into a new generation.
                let scratch = format!("scratch-{pid}-{i}");
                vault
                    .create_key(TENANT, &scratch, KeySpec::default())
                    .unwrap();
                vault
                    .configure_key(
                        TENANT,
                        &scratch,
                        &KeyConfigUpdate {
                            deletion_allowed: Some(true),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                vault.delete_key(TENANT, &scratch).unwrap();
                println!("PURGED");
            }
            _ => {
                let plaintext = format!("pt-{pid}-{i}");
                let ciphertext = vault
                    .encrypt(
                        TENANT,
                        KEY,
                        &tresor_core::EncryptRequest {
                            plaintext: plaintext.as_bytes(),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                println!("CT {ciphertext} {plaintext}");
            }
        }
    }
}
