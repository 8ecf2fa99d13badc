//! The node identity key: a long-term Ed25519 key per server node, in an owner-only file beside
//! the configuration (outside the data directory and the database, so whoever can write the
//! store cannot replace it). It is usable while the vault is sealed: it signs the per-boot
//! unseal key in every seal status, and custodians, who pinned its fingerprint at init, seal
//! their shares and custody keys only to an unseal key it signed (docs/custody.md).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_crypto::sign::SigningKey;
use zeroize::Zeroizing;

const FILE_TYPE: &str = "tresor-node-identity-v1";

/// Why the node identity key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeIdentityError {
    /// The file cannot be read or written.
    #[error("node identity key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a node identity key.
    #[error("node identity key {0}: not a Tresor node identity file")]
    Format(String),
    /// Others can read it.
    #[error(
        "node identity key {0} is readable by group or others (mode {1:o}): make it owner-only (chmod 600), or anyone on this machine can impersonate the vault to its custodians"
    )]
    Exposed(String, u32),
}

/// Loads the node identity key from `path`, or creates it (mode 0600) if the file does not
/// exist; its public half is written beside it as `.pub`.
pub fn load_or_create(path: &Path) -> Result<SigningKey, NodeIdentityError> {
    let io = |source| NodeIdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) => {
            let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(NodeIdentityError::Exposed(path.display().to_string(), mode));
            }
            parse(&text).ok_or_else(|| NodeIdentityError::Format(path.display().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate();
            let seed = Zeroizing::new(STANDARD.encode(key.to_bytes().as_slice()));
            let text = Zeroizing::new(format!(
                "{{\"type\":\"{FILE_TYPE}\",\"seed\":\"{}\"}}\n",
                seed.as_str()
            ));
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            fs::write(
                path.with_extension("pub"),
                format!(
                    "{{\"type\":\"tresor-node-public-v1\",\"key\":\"{}\",\"fingerprint\":\"{}\"}}\n",
                    STANDARD.encode(key.verifying_key().as_bytes()),
                    key.verifying_key().fingerprint()
                ),
            )
            .map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

fn parse(text: &str) -> Option<SigningKey> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != FILE_TYPE {
        return None;
    }
    let seed = Zeroizing::new(STANDARD.decode(value.get("seed")?.as_str()?).ok()?);
    SigningKey::from_slice(&seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_owner_only_and_reloaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&path).unwrap();
        assert_eq!(again.verifying_key(), key.verifying_key());
        let public = fs::read_to_string(path.with_extension("pub")).unwrap();
        assert!(public.contains(&key.verifying_key().fingerprint()));
        assert!(!public.contains(&STANDARD.encode(key.to_bytes().as_slice())));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(NodeIdentityError::Exposed(_, 0o644))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "{}").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(NodeIdentityError::Format(_))
        ));
    }
}
