//! Custodian identities: an X25519 key pair (shares and custody keys are sealed to it) and an
//! Ed25519 key pair (approvals are signed with it).
//!
//! The public half (`NAME.pub`) is JSON that operators pass around. The secret half
//! (`NAME.key`) holds both secrets encrypted with AES-256-GCM-SIV under
//! Argon2id(passphrase, random salt); the public keys are bound into the AAD so neither half can
//! be swapped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::passphrase::{self, Argon2Params, SALT_LEN};
use crate::sealed_box::{BoxPublicKey, BoxSecretKey, SealedBoxError};
use crate::sign::{SigningKey, VerifyingKey};
use crate::{AeadKey, LengthPrefixed, random, sealed_box};

const PUBLIC_TYPE: &str = "tresor-custodian-public-v1";
const IDENTITY_TYPE: &str = "tresor-custodian-identity-v1";
const IDENTITY_AAD_LABEL: &[u8] = b"tresor-custodian-identity-v1";

/// Why an identity could not be read, opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The file is not a Tresor custodian file of the expected kind.
    #[error("not a Tresor custodian {kind} file: {reason}")]
    Format {
        /// "public key" or "identity".
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The passphrase does not open the identity (or the file was altered).
    #[error("wrong passphrase, or the identity file was altered")]
    WrongPassphrase,
    /// The passphrase could not be used.
    #[error(transparent)]
    Passphrase(#[from] passphrase::PassphraseError),
    /// A custodian name is invalid.
    #[error("invalid custodian name `{0}`: use 1–64 of A-Z a-z 0-9 . _ - @")]
    BadName(String),
    /// A custodian's principal is not a SPIFFE ID.
    #[error(
        "invalid custodian principal `{0}`: use the spiffe:// URI of the custodian's client certificate"
    )]
    BadPrincipal(String),
}

/// A custodian's public identity.
#[derive(Clone, PartialEq, Eq)]
pub struct CustodianPublicKey {
    name: String,
    x25519: BoxPublicKey,
    ed25519: VerifyingKey,
    principal: Option<String>,
}

impl std::fmt::Debug for CustodianPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CustodianPublicKey({}, {})",
            self.name,
            self.fingerprint()
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    x25519: String,
    ed25519: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
}

impl CustodianPublicKey {
    /// The custodian's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A stable fingerprint of both public keys (128 bits), for people to compare out of band.
    pub fn fingerprint(&self) -> String {
        crate::fingerprint(&[self.x25519.as_bytes(), self.ed25519.as_bytes()])
    }

    /// The principal (SPIFFE ID of the client certificate) this custodian acts as, if bound:
    /// the vault then accepts this custodian's shares, unlocks and signatures only from a
    /// connection authenticated as that principal.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The X25519 key that shares and custody keys are sealed to.
    pub fn box_key(&self) -> &BoxPublicKey {
        &self.x25519
    }

    /// The Ed25519 key that checks this custodian's signatures.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.ed25519
    }

    /// Seals `plaintext` so that only this custodian's identity opens it (see
    /// [`CustodianIdentity::open`]).
    pub fn seal(
        &self,
        purpose: &str,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealedBoxError> {
        sealed_box::seal(&self.x25519, purpose, context, plaintext)
    }

    /// True if `signature` is this custodian's signature over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.ed25519.verify(message, signature)
    }

    /// Parses the JSON of a `.pub` file.
    pub fn from_json(text: &str) -> Result<Self, IdentityError> {
        let file: PublicFile = serde_json::from_str(text).map_err(|e| IdentityError::Format {
            kind: "public key",
            reason: e.to_string(),
        })?;
        Self::from_file(file)
    }

    fn from_file(file: PublicFile) -> Result<Self, IdentityError> {
        let bad = |reason: String| IdentityError::Format {
            kind: "public key",
            reason,
        };
        if file.kind != PUBLIC_TYPE {
            return Err(bad(format!(
                "type is `{}`, expected `{PUBLIC_TYPE}`",
                file.kind
            )));
        }
        validate_name(&file.name)?;
        if let Some(principal) = &file.principal {
            validate_principal(principal)?;
        }
        let x25519 = BoxPublicKey::from_bytes(
            decode_32(&file.x25519).ok_or_else(|| bad("x25519 is not 32 base64 bytes".into()))?,
        )
        .map_err(|_| bad("x25519 key is a low-order point".into()))?;
        let ed25519 = decode_32(&file.ed25519)
            .and_then(|b| VerifyingKey::from_bytes(&b))
            .ok_or_else(|| bad("ed25519 is not a valid public key".into()))?;
        Ok(CustodianPublicKey {
            name: file.name,
            x25519,
            ed25519,
            principal: file.principal,
        })
    }

    /// The JSON of a `.pub` file.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.to_file()).expect("serializes") + "\n"
    }

    fn to_file(&self) -> PublicFile {
        PublicFile {
            kind: PUBLIC_TYPE.into(),
            name: self.name.clone(),
            x25519: STANDARD.encode(self.x25519.as_bytes()),
            ed25519: STANDARD.encode(self.ed25519.as_bytes()),
            principal: self.principal.clone(),
        }
    }
}

impl Serialize for CustodianPublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_file().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CustodianPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_file(PublicFile::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A custodian's secret identity, unlocked in memory.
pub struct CustodianIdentity {
    public: CustodianPublicKey,
    x25519: BoxSecretKey,
    ed25519: SigningKey,
}

impl std::fmt::Debug for CustodianIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustodianIdentity({:?}, [REDACTED])", self.public)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    #[serde(rename = "type")]
    kind: String,
    public: CustodianPublicKey,
    kdf: KdfFile,
    /// nonce ‖ AES-256-GCM-SIV(x25519 secret ‖ ed25519 secret) ‖ tag
    secret: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfFile {
    algorithm: String,
    #[serde(flatten)]
    params: Argon2Params,
    salt: String,
}

impl CustodianIdentity {
    /// A new identity with fresh keys, not bound to a principal.
    pub fn generate(name: &str) -> Result<Self, IdentityError> {
        Self::make(name, None)
    }

    /// A new identity with fresh keys, bound to `principal` (the SPIFFE ID of the client
    /// certificate its custodian uses): the vault accepts its acts only from that principal.
    pub fn generate_for(name: &str, principal: &str) -> Result<Self, IdentityError> {
        validate_principal(principal)?;
        Self::make(name, Some(principal.to_owned()))
    }

    fn make(name: &str, principal: Option<String>) -> Result<Self, IdentityError> {
        validate_name(name)?;
        let x25519 = BoxSecretKey::generate();
        let ed25519 = SigningKey::generate();
        let public = CustodianPublicKey {
            name: name.to_owned(),
            x25519: *x25519.public(),
            ed25519: ed25519.verifying_key(),
            principal,
        };
        Ok(CustodianIdentity {
            public,
            x25519,
            ed25519,
        })
    }

    /// The public half.
    pub fn public(&self) -> &CustodianPublicKey {
        &self.public
    }

    /// The custodian's name.
    pub fn name(&self) -> &str {
        &self.public.name
    }

    /// Opens a box sealed to this custodian for `purpose` and `context`.
    pub fn open(
        &self,
        purpose: &str,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealedBoxError> {
        self.x25519.open(purpose, context, sealed)
    }

    /// This custodian's signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; crate::sign::SIGNATURE_LEN] {
        self.ed25519.sign(message)
    }

    /// The encrypted identity file, with Argon2id at the recommended cost.
    pub fn to_encrypted_json(&self, passphrase: &[u8]) -> Result<String, IdentityError> {
        self.to_encrypted_json_with(passphrase, Argon2Params::RECOMMENDED)
    }

    /// The encrypted identity file with explicit Argon2id costs (tests use cheap ones).
    pub fn to_encrypted_json_with(
        &self,
        passphrase: &[u8],
        params: Argon2Params,
    ) -> Result<String, IdentityError> {
        let salt: [u8; SALT_LEN] = random::array();
        let key = passphrase::derive(passphrase, &salt, params)?;
        let mut secrets = Zeroizing::new([0u8; 64]);
        secrets[..32].copy_from_slice(self.x25519.expose_bytes());
        secrets[32..].copy_from_slice(self.ed25519.to_bytes().as_slice());
        let sealed =
            AeadKey::new(&key).seal(identity_aad(&self.public).as_slice(), secrets.as_slice());
        let file = IdentityFile {
            kind: IDENTITY_TYPE.into(),
            public: self.public.clone(),
            kdf: KdfFile {
                algorithm: "argon2id".into(),
                params,
                salt: STANDARD.encode(salt),
            },
            secret: STANDARD.encode(sealed),
        };
        Ok(serde_json::to_string_pretty(&file).expect("serializes") + "\n")
    }

    /// Opens an identity file with its passphrase.
    pub fn from_encrypted_json(text: &str, passphrase: &[u8]) -> Result<Self, IdentityError> {
        let bad = |reason: String| IdentityError::Format {
            kind: "identity",
            reason,
        };
        let file: IdentityFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.kind != IDENTITY_TYPE {
            return Err(bad(format!(
                "type is `{}`, expected `{IDENTITY_TYPE}`",
                file.kind
            )));
        }
        if file.kdf.algorithm != "argon2id" {
            return Err(bad(format!(
                "unsupported key derivation `{}`",
                file.kdf.algorithm
            )));
        }
        let salt: [u8; SALT_LEN] = STANDARD
            .decode(&file.kdf.salt)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("salt is not 16 base64 bytes".into()))?;
        let sealed = STANDARD
            .decode(&file.secret)
            .map_err(|_| bad("secret is not base64".into()))?;
        let key = passphrase::derive(passphrase, &salt, file.kdf.params)?;
        let secrets = AeadKey::new(&key)
            .open(identity_aad(&file.public).as_slice(), &sealed)
            .map_err(|_| IdentityError::WrongPassphrase)?;
        if secrets.len() != 64 {
            return Err(bad("secret has the wrong length".into()));
        }
        let x25519 =
            BoxSecretKey::from_bytes(&<[u8; 32]>::try_from(&secrets[..32]).expect("32 bytes"));
        let ed25519 = SigningKey::from_slice(&secrets[32..]).expect("32 bytes");
        if *x25519.public() != file.public.x25519 || ed25519.verifying_key() != file.public.ed25519
        {
            return Err(bad("secret keys do not match the public keys".into()));
        }
        Ok(CustodianIdentity {
            public: file.public,
            x25519,
            ed25519,
        })
    }
}

/// Binds the public half into the secret half: name, both keys and, when bound, the principal
/// (appended only then, so files written before principals existed still open).
fn identity_aad(public: &CustodianPublicKey) -> LengthPrefixed {
    let aad = LengthPrefixed::new()
        .bytes(IDENTITY_AAD_LABEL)
        .bytes(public.name.as_bytes())
        .bytes(public.x25519.as_bytes())
        .bytes(public.ed25519.as_bytes());
    match &public.principal {
        Some(principal) => aad.bytes(principal.as_bytes()),
        None => aad,
    }
}

/// A principal a custodian can be bound to: a `spiffe://` URI of printable ASCII (the server
/// checks the full SPIFFE rules when it compares it with a certificate).
fn validate_principal(principal: &str) -> Result<(), IdentityError> {
    let ok = principal.len() <= 2048
        && principal.starts_with("spiffe://")
        && principal.len() > "spiffe://".len()
        && principal.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadPrincipal(
            principal.chars().take(64).collect(),
        ))
    }
}

fn validate_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName(name.chars().take(64).collect()))
    }
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params {
        memory_kib: 19 * 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn public_file_round_trip_and_validation() {
        let id = CustodianIdentity::generate("alice").unwrap();
        let parsed = CustodianPublicKey::from_json(&id.public().to_json()).unwrap();
        assert_eq!(&parsed, id.public());
        assert!(CustodianPublicKey::from_json("{}").is_err());
        let zero_key = id.public().to_json().replace(
            &STANDARD.encode(id.public().x25519.as_bytes()),
            &STANDARD.encode([0u8; 32]),
        );
        assert!(
            CustodianPublicKey::from_json(&zero_key)
                .unwrap_err()
                .to_string()
                .contains("low-order")
        );
        assert!(CustodianIdentity::generate("bad name").is_err());
    }

    #[test]
    fn identity_file_opens_only_with_its_passphrase() {
        let id = CustodianIdentity::generate("bob").unwrap();
        let file = id.to_encrypted_json_with(b"pass phrase", FAST).unwrap();
        assert!(!file.contains(&STANDARD.encode(id.x25519.expose_bytes())));
        let opened = CustodianIdentity::from_encrypted_json(&file, b"pass phrase").unwrap();
        assert_eq!(opened.public(), id.public());
        assert_eq!(opened.x25519.expose_bytes(), id.x25519.expose_bytes());
        assert!(matches!(
            CustodianIdentity::from_encrypted_json(&file, b"pass phrasf"),
            Err(IdentityError::WrongPassphrase)
        ));
    }

    #[test]
    fn fingerprints_are_128_bits() {
        let id = CustodianIdentity::generate("alice").unwrap();
        let fingerprint = id.public().fingerprint();
        assert_eq!(fingerprint.len(), 16 * 3 - 1, "{fingerprint}");
        assert_eq!(fingerprint.split(':').count(), 16);
    }

    #[test]
    fn a_bound_principal_is_part_of_both_halves() {
        let principal = "spiffe://example.org/custodian/alice";
        let id = CustodianIdentity::generate_for("alice", principal).unwrap();
        assert_eq!(id.public().principal(), Some(principal));
        let parsed = CustodianPublicKey::from_json(&id.public().to_json()).unwrap();
        assert_eq!(parsed.principal(), Some(principal));
        let file = id.to_encrypted_json_with(b"pw", FAST).unwrap();
        let opened = CustodianIdentity::from_encrypted_json(&file, b"pw").unwrap();
        assert_eq!(opened.public().principal(), Some(principal));
        // Rebinding the file to another principal breaks the AAD.
        let moved = file.replace(principal, "spiffe://example.org/custodian/mallory");
        assert!(matches!(
            CustodianIdentity::from_encrypted_json(&moved, b"pw"),
            Err(IdentityError::WrongPassphrase)
        ));
        // Dropping the binding too.
        let mut value: serde_json::Value = serde_json::from_str(&file).unwrap();
        value["public"].as_object_mut().unwrap().remove("principal");
        assert!(matches!(
            CustodianIdentity::from_encrypted_json(&value.to_string(), b"pw"),
            Err(IdentityError::WrongPassphrase)
        ));
        for bad in [
            "alice",
            "https://example.org/x",
            "spiffe://",
            "spiffe://a b",
        ] {
            assert!(
                matches!(
                    CustodianIdentity::generate_for("alice", bad),
                    Err(IdentityError::BadPrincipal(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn swapped_public_half_is_refused() {
        let a = CustodianIdentity::generate("a").unwrap();
        let b = CustodianIdentity::generate("a").unwrap();
        let file = a.to_encrypted_json_with(b"pw", FAST).unwrap();
        let a_pub = serde_json::to_value(a.public()).unwrap();
        let b_pub = serde_json::to_value(b.public()).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&file).unwrap();
        assert_eq!(value["public"], a_pub);
        value["public"] = b_pub;
        assert!(matches!(
            CustodianIdentity::from_encrypted_json(&value.to_string(), b"pw"),
            Err(IdentityError::WrongPassphrase)
        ));
    }
}
