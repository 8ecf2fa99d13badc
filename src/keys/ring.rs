//! A data key's unwrapped versions and the operations on them (DESIGN.md §3).
//!
//! ```text
//! ciphertext = "tresor:v" N ":" base64(nonce ‖ AES-256-GCM-SIV ciphertext ‖ tag)
//! aad        = LP("tresor-ct-v1") ‖ LP(environment) ‖ LP(tenant) ‖ LP(key) ‖ u32(N)
//!              ‖ LP(context) ‖ LP(associated_data)
//! key        = HKDF(material_N, LP("tresor-encrypt-v1"))                     not derived
//!            = HKDF(material_N, LP("tresor-derive-v1") ‖ LP(context))        derived
//! nonce      = random                                                        not convergent
//!            = HMAC(HKDF(material_N, LP("tresor-convergent-nonce-v1") ‖ LP(context)),
//!                   aad ‖ plaintext)[..12]                                   convergent
//! hmac token = "tresor:v" N ":" base64(HMAC-SHA2(HKDF(material_N, LP("tresor-hmac-v1")), input))
//! ```
//! docs/format.md walks through an example byte by byte.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::ciphertext;
use super::config::{HmacAlgorithm, KeyConfig};
use crate::crypto::aead::OVERHEAD;
use crate::crypto::{AeadKey, LengthPrefixed, NONCE_LEN, SecretKey, derive_key, hmac_sha256};
use crate::{CiphertextError, Error};

const CIPHERTEXT_LABEL: &[u8] = b"tresor-ct-v1";
const ENCRYPT_LABEL: &[u8] = b"tresor-encrypt-v1";
const DERIVE_LABEL: &[u8] = b"tresor-derive-v1";
const CONVERGENT_NONCE_LABEL: &[u8] = b"tresor-convergent-nonce-v1";
const HMAC_LABEL: &[u8] = b"tresor-hmac-v1";

/// A plaintext to encrypt.
#[derive(Clone, Copy, Default)]
pub struct EncryptRequest<'a> {
    /// The bytes to encrypt.
    pub plaintext: &'a [u8],
    /// Derivation context; required for derived keys, refused for others.
    pub context: Option<&'a [u8]>,
    /// Bound to the ciphertext but not encrypted; the same value is needed to decrypt.
    pub associated_data: Option<&'a [u8]>,
    /// Encrypt with this version instead of the latest.
    pub key_version: Option<u32>,
}

/// A ciphertext to decrypt.
#[derive(Clone, Copy, Default)]
pub struct DecryptRequest<'a> {
    /// `tresor:v<N>:<base64>`.
    pub ciphertext: &'a str,
    /// The context given at encryption.
    pub context: Option<&'a [u8]>,
    /// The associated data given at encryption.
    pub associated_data: Option<&'a [u8]>,
}

/// One version's keys, derived once when the ring is loaded.
struct VersionKeys {
    material: SecretKey,
    /// The encryption key of a non-derived key; derived keys make one per context.
    cipher: Option<AeadKey>,
    hmac_key: SecretKey,
}

/// The tenant, key and environment a ring belongs to: bound into every ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyIdentity {
    pub(crate) environment: String,
    pub(crate) tenant: String,
    pub(crate) name: String,
}

/// A data key with its versions unwrapped, ready to serve.
pub(crate) struct KeyRing {
    pub(crate) identity: KeyIdentity,
    pub(crate) config: KeyConfig,
    pub(crate) latest_version: u32,
    versions: BTreeMap<u32, VersionKeys>,
    /// LP(label) ‖ LP(environment) ‖ LP(tenant) ‖ LP(key): the fixed start of every AAD.
    aad_prefix: Vec<u8>,
}

impl KeyRing {
    /// Builds a ring from unwrapped version materials.
    pub(crate) fn new(
        identity: KeyIdentity,
        config: KeyConfig,
        latest_version: u32,
        materials: impl IntoIterator<Item = (u32, SecretKey)>,
    ) -> Self {
        let versions = materials
            .into_iter()
            .map(|(version, material)| {
                let cipher = (!config.derived).then(|| {
                    AeadKey::new(&derive_key(
                        &material,
                        LengthPrefixed::new().bytes(ENCRYPT_LABEL).as_slice(),
                    ))
                });
                let hmac_key = derive_key(
                    &material,
                    LengthPrefixed::new().bytes(HMAC_LABEL).as_slice(),
                );
                (
                    version,
                    VersionKeys {
                        material,
                        cipher,
                        hmac_key,
                    },
                )
            })
            .collect();
        let aad_prefix = LengthPrefixed::new()
            .bytes(CIPHERTEXT_LABEL)
            .bytes(identity.environment.as_bytes())
            .bytes(identity.tenant.as_bytes())
            .bytes(identity.name.as_bytes())
            .into_vec();
        KeyRing {
            identity,
            config,
            latest_version,
            versions,
            aad_prefix,
        }
    }

    pub(crate) fn encrypt(&self, request: &EncryptRequest<'_>) -> Result<String, Error> {
        let version = self.encryption_version(request.key_version)?;
        let context = self.context(request.context)?;
        let keys = &self.versions[&version];
        let aad = self.aad(
            version,
            context,
            request.associated_data.unwrap_or_default(),
        );
        let mut payload = Vec::with_capacity(OVERHEAD + request.plaintext.len());
        match (&keys.cipher, self.config.convergent_encryption) {
            (Some(cipher), _) => cipher.seal_into(aad.as_slice(), request.plaintext, &mut payload),
            (None, false) => derived_cipher(keys, context).seal_into(
                aad.as_slice(),
                request.plaintext,
                &mut payload,
            ),
            (None, true) => {
                let nonce_key = derive_key(
                    &keys.material,
                    LengthPrefixed::new()
                        .bytes(CONVERGENT_NONCE_LABEL)
                        .bytes(context)
                        .as_slice(),
                );
                let digest = hmac_sha256(nonce_key.expose(), &[aad.as_slice(), request.plaintext]);
                let nonce: [u8; NONCE_LEN] = digest[..NONCE_LEN].try_into().expect("12 bytes");
                derived_cipher(keys, context).seal_with_nonce_into(
                    &nonce,
                    aad.as_slice(),
                    request.plaintext,
                    &mut payload,
                )
            }
        }
        Ok(ciphertext::format(version, &payload))
    }

    pub(crate) fn decrypt(
        &self,
        request: &DecryptRequest<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (version, payload) = ciphertext::parse(request.ciphertext)?;
        let context = self.context(request.context)?;
        let keys = self.decryption_version(version)?;
        if payload.len() < OVERHEAD {
            return Err(CiphertextError::TooShort(payload.len()).into());
        }
        let aad = self.aad(
            version,
            context,
            request.associated_data.unwrap_or_default(),
        );
        let opened = match &keys.cipher {
            Some(cipher) => cipher.open(aad.as_slice(), &payload),
            None => derived_cipher(keys, context).open(aad.as_slice(), &payload),
        };
        opened.map_err(|_| CiphertextError::Authentication.into())
    }

    /// Decrypts and encrypts again with `key_version` (default: the latest).
    pub(crate) fn rewrap(
        &self,
        request: &DecryptRequest<'_>,
        key_version: Option<u32>,
    ) -> Result<String, Error> {
        let plaintext = self.decrypt(request)?;
        self.encrypt(&EncryptRequest {
            plaintext: &plaintext,
            context: request.context,
            associated_data: request.associated_data,
            key_version,
        })
    }

    /// A fresh random key of `bits` bits and its ciphertext under this key.
    pub(crate) fn datakey(
        &self,
        bits: u32,
        context: Option<&[u8]>,
        associated_data: Option<&[u8]>,
    ) -> Result<(Zeroizing<Vec<u8>>, String), Error> {
        if !matches!(bits, 128 | 256 | 512) {
            return Err(Error::invalid(
                "bits",
                format!("{bits} is not supported: use 128, 256 or 512"),
            ));
        }
        let mut key = Zeroizing::new(vec![0u8; bits as usize / 8]);
        crate::crypto::random::fill(&mut key);
        let ciphertext = self.encrypt(&EncryptRequest {
            plaintext: &key,
            context,
            associated_data,
            key_version: None,
        })?;
        Ok((key, ciphertext))
    }

    pub(crate) fn hmac(
        &self,
        input: &[u8],
        algorithm: HmacAlgorithm,
        key_version: Option<u32>,
    ) -> Result<String, Error> {
        let version = self.encryption_version(key_version)?;
        let tag = compute_hmac(self.versions[&version].hmac_key.expose(), algorithm, input);
        Ok(ciphertext::format(version, &tag))
    }

    /// True if `token` is the HMAC of `input`. A malformed token or an unusable version is an error.
    pub(crate) fn verify_hmac(
        &self,
        input: &[u8],
        token: &str,
        algorithm: HmacAlgorithm,
    ) -> Result<bool, Error> {
        let (version, tag) = ciphertext::parse(token)?;
        let keys = self.decryption_version(version)?;
        let expected = compute_hmac(keys.hmac_key.expose(), algorithm, input);
        Ok(expected.ct_eq(&tag).into())
    }

    /// Raw material of each version at or above `min_decryption_version`, for export: as in
    /// Vault, a version retired by `min_decryption_version` is not handed out.
    pub(crate) fn export(&self, kind: ExportKind) -> impl Iterator<Item = (u32, &SecretKey)> + '_ {
        let retired_below = self.config.min_decryption_version;
        self.versions.range(retired_below..).map(move |(v, keys)| {
            let key = match kind {
                ExportKind::EncryptionKey => &keys.material,
                ExportKind::HmacKey => &keys.hmac_key,
            };
            (*v, key)
        })
    }

    fn encryption_version(&self, requested: Option<u32>) -> Result<u32, Error> {
        let version = requested.filter(|v| *v != 0).unwrap_or(self.latest_version);
        let field = "key_version";
        if version > self.latest_version {
            return Err(Error::invalid(
                field,
                format!(
                    "version {version} does not exist (latest is {})",
                    self.latest_version
                ),
            ));
        }
        if version < self.config.min_encryption_version {
            return Err(Error::invalid(
                field,
                format!(
                    "version {version} is below min_encryption_version {}",
                    self.config.min_encryption_version
                ),
            ));
        }
        if version < self.config.min_decryption_version {
            return Err(Error::invalid(
                field,
                format!(
                    "version {version} is below min_decryption_version {}: its ciphertexts could not be decrypted",
                    self.config.min_decryption_version
                ),
            ));
        }
        if !self.versions.contains_key(&version) {
            return Err(Error::invalid(
                field,
                format!("version {version} has been destroyed"),
            ));
        }
        Ok(version)
    }

    fn decryption_version(&self, version: u32) -> Result<&VersionKeys, Error> {
        if version > self.latest_version {
            return Err(CiphertextError::UnknownVersion {
                version,
                latest: self.latest_version,
            }
            .into());
        }
        if version < self.config.min_decryption_version {
            return Err(CiphertextError::BelowMinDecryption {
                version,
                min_decryption: self.config.min_decryption_version,
            }
            .into());
        }
        self.versions.get(&version).ok_or_else(|| {
            CiphertextError::Trimmed {
                version,
                min_available: self.config.min_available_version,
            }
            .into()
        })
    }

    /// The effective context: empty for non-derived keys. Giving a context to a non-derived key
    /// is refused: silently ignoring it would let a caller believe the ciphertext is bound to it.
    fn context<'a>(&self, context: Option<&'a [u8]>) -> Result<&'a [u8], Error> {
        let context = context.filter(|c| !c.is_empty());
        match (self.config.derived, context) {
            (true, None) => Err(Error::invalid(
                "context",
                format!(
                    "missing: key `{}` is derived, so every operation needs a context",
                    self.identity.name
                ),
            )),
            (false, Some(_)) => Err(Error::invalid(
                "context",
                format!(
                    "given, but key `{}` is not derived; it would have no effect",
                    self.identity.name
                ),
            )),
            (_, context) => Ok(context.unwrap_or_default()),
        }
    }

    fn aad(&self, version: u32, context: &[u8], associated_data: &[u8]) -> LengthPrefixed {
        let mut aad = LengthPrefixed::with_capacity(
            self.aad_prefix.len() + 12 + context.len() + associated_data.len(),
        );
        aad.extend_raw(&self.aad_prefix);
        let mut aad = aad.u32(version);
        aad.push_bytes(context);
        aad.push_bytes(associated_data);
        aad
    }
}

/// What `export` hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// Each version's key material (the input of every derivation above).
    EncryptionKey,
    /// Each version's HMAC key.
    HmacKey,
}

fn derived_cipher(keys: &VersionKeys, context: &[u8]) -> AeadKey {
    AeadKey::new(&derive_key(
        &keys.material,
        LengthPrefixed::new()
            .bytes(DERIVE_LABEL)
            .bytes(context)
            .as_slice(),
    ))
}

fn compute_hmac(key: &[u8], algorithm: HmacAlgorithm, input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        HmacAlgorithm::Sha2_224 => run::<Hmac<sha2::Sha224>>(key, input),
        HmacAlgorithm::Sha2_256 => run::<Hmac<sha2::Sha256>>(key, input),
        HmacAlgorithm::Sha2_384 => run::<Hmac<sha2::Sha384>>(key, input),
        HmacAlgorithm::Sha2_512 => run::<Hmac<sha2::Sha512>>(key, input),
    }
}
