//! The audit signing key: an Ed25519 key in a file next to the log, created on first start.
//!
//! It lives outside the barrier on purpose: checkpoints must be signed while the vault is
//! sealed too (failed handshakes and refused attempts happen then). Protect the file like the
//! TLS server key; the public half is published in `sys/seal-status` and written next to it as
//! `.pub` for `tresor audit verify --key`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_crypto::sign::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

const SECRET_TYPE: &str = "tresor-audit-signing-key-v1";
const PUBLIC_TYPE: &str = "tresor-audit-public-key-v1";

/// The key that signs audit checkpoints.
pub struct AuditSigningKey {
    key: SigningKey,
}

impl std::fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditSigningKey({}, [REDACTED])", self.public_base64())
    }
}

impl AuditSigningKey {
    /// Loads the key from `path`, or creates it (mode 0600) with its `.pub` beside it.
    pub fn load_or_create(path: &Path) -> std::io::Result<AuditSigningKey> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a Tresor audit signing key", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = AuditSigningKey {
                    key: SigningKey::generate(),
                };
                let seed = Zeroizing::new(STANDARD.encode(key.key.to_bytes().as_slice()));
                let text = Zeroizing::new(format!(
                    "{{\"type\":\"{SECRET_TYPE}\",\"seed\":\"{}\"}}\n",
                    seed.as_str()
                ));
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(text.as_bytes())?;
                file.sync_all()?;
                fs::write(path.with_extension("pub"), key.public_file())?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    fn parse(text: &str) -> Option<AuditSigningKey> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        if value.get("type")?.as_str()? != SECRET_TYPE {
            return None;
        }
        let seed = Zeroizing::new(STANDARD.decode(value.get("seed")?.as_str()?).ok()?);
        Some(AuditSigningKey {
            key: SigningKey::from_slice(&seed)?,
        })
    }

    /// The public key, base64.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// The `.pub` file's contents.
    pub fn public_file(&self) -> String {
        format!(
            "{{\"type\":\"{PUBLIC_TYPE}\",\"key\":\"{}\"}}\n",
            self.public_base64()
        )
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message)
    }
}

/// Reads a `.pub` file (or a bare base64 key).
pub(crate) fn parse_public(text: &str) -> Option<VerifyingKey> {
    let text = text.trim();
    let encoded = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) if value.get("type").and_then(|t| t.as_str()) == Some(PUBLIC_TYPE) => {
            value.get("key")?.as_str()?.to_owned()
        }
        Ok(_) => return None,
        Err(_) => text.to_owned(),
    };
    let bytes: [u8; 32] = STANDARD.decode(encoded).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
}
