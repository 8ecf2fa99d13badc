//! A data key's unwrapped versions and the operations on them (docs/format.md, sections 2 to 4).
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

use tresor_crypto::aead::OVERHEAD;
use tresor_crypto::mac::{self, Sha2};
use tresor_crypto::{AeadKey, LengthPrefixed, NONCE_LEN, SecretKey, derive_key, hmac_sha256};
use zeroize::Zeroizing;

use super::ciphertext::{self, Origin};
use super::config::{HmacAlgorithm, KeyConfig};
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

/// A `tresor:v<N>:…` text (a ciphertext or an HMAC token) and the key version N that made it,
/// so that no caller has to parse the text again to learn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The key version.
    pub version: u32,
    /// `tresor:v<N>:<base64>`.
    pub text: String,
}

impl std::fmt::Display for Versioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Versioned {
    fn new(version: u32, payload: &[u8]) -> Self {
        Versioned {
            version,
            text: ciphertext::format(version, payload),
        }
    }
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
    /// Imported from Vault/OpenBao (docs/format.md, "Vault and OpenBao"): decrypts `vault:`
    /// ciphertexts, never encrypts.
    imported: bool,
    material: SecretKey,
    /// The encryption key of a non-derived key; derived keys make one per context. Kept as its
    /// 32 bytes, not expanded: an expanded `AeadKey` is 960 bytes (the `aes` crate keeps both
    /// its AES-NI and its software key schedule), most of a cached key's memory, and expanding
    /// costs about 0.2 µs per request, once per version for a whole batch (see [`Sealer`];
    /// docs/benchmarks.md, "Batch and per-key memory").
    encryption_key: Option<SecretKey>,
    hmac_key: SecretKey,
}

/// A ring's versions, ascending, in a vector of exactly their number. Not a `BTreeMap`: its
/// nodes hold room for eleven entries, and a `VersionKeys` is about 1 KB (the AES-GCM-SIV key
/// schedule inline), so a one-version ring cost 11 KB and 100,000 cached keys over 1 GB
/// (docs/benchmarks.md, "Scale (issue 18)"). Rings have few versions; a binary search finds one.
struct Versions(Box<[(u32, VersionKeys)]>);

impl Versions {
    fn new(mut versions: Vec<(u32, VersionKeys)>) -> Self {
        versions.sort_by_key(|(v, _)| *v);
        Versions(versions.into_boxed_slice())
    }

    fn get(&self, version: &u32) -> Option<&VersionKeys> {
        self.0
            .binary_search_by_key(version, |(v, _)| *v)
            .ok()
            .map(|at| &self.0[at].1)
    }

    fn iter(&self) -> impl Iterator<Item = (&u32, &VersionKeys)> + '_ {
        self.0.iter().map(|(v, keys)| (v, keys))
    }

    /// The versions from `from` up.
    fn range(
        &self,
        from: std::ops::RangeFrom<u32>,
    ) -> impl Iterator<Item = (&u32, &VersionKeys)> + '_ {
        let start = self.0.partition_point(|(v, _)| *v < from.start);
        self.0[start..].iter().map(|(v, keys)| (v, keys))
    }
}

impl std::ops::Index<&u32> for Versions {
    type Output = VersionKeys;

    fn index(&self, version: &u32) -> &VersionKeys {
        self.get(version).expect("a version of the ring")
    }
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
    /// Where the key's name starts in `aad_prefix` (its last field): the ring keeps its
    /// identity only there, rather than in three more strings per cached key.
    name_at: usize,
    pub(crate) config: KeyConfig,
    pub(crate) latest_version: u32,
    versions: Versions,
    /// LP(label) ‖ LP(environment) ‖ LP(tenant) ‖ LP(key): the fixed start of every AAD.
    aad_prefix: Box<[u8]>,
}

impl KeyRing {
    /// Builds a ring from unwrapped version materials.
    pub(crate) fn new(
        identity: KeyIdentity,
        config: KeyConfig,
        latest_version: u32,
        materials: impl IntoIterator<Item = (u32, SecretKey)>,
        imported: &std::collections::BTreeSet<u32>,
    ) -> Self {
        let versions = materials
            .into_iter()
            .map(|(version, material)| {
                let imported = imported.contains(&version);
                let encryption_key = (!config.derived && !imported).then(|| {
                    derive_key(
                        &material,
                        LengthPrefixed::new().bytes(ENCRYPT_LABEL).as_slice(),
                    )
                });
                let hmac_key = derive_key(
                    &material,
                    LengthPrefixed::new().bytes(HMAC_LABEL).as_slice(),
                );
                (
                    version,
                    VersionKeys {
                        imported,
                        material,
                        encryption_key,
                        hmac_key,
                    },
                )
            })
            .collect();
        let versions = Versions::new(versions);
        let aad_prefix = LengthPrefixed::new()
            .bytes(CIPHERTEXT_LABEL)
            .bytes(identity.environment.as_bytes())
            .bytes(identity.tenant.as_bytes())
            .bytes(identity.name.as_bytes())
            .into_vec()
            .into_boxed_slice();
        let name_at = aad_prefix.len() - identity.name.len();
        KeyRing {
            name_at,
            config,
            latest_version,
            versions,
            aad_prefix,
        }
    }

    pub(crate) fn encrypt(&self, request: &EncryptRequest<'_>) -> Result<Versioned, Error> {
        Sealer::new(self).encrypt(request)
    }

    /// Encrypts many plaintexts; one result per item, in order. Each version's cipher is
    /// expanded once for the whole batch, and the AAD and payload buffers are reused.
    pub(crate) fn encrypt_many(
        &self,
        requests: &[EncryptRequest<'_>],
    ) -> Vec<Result<Versioned, Error>> {
        let mut sealer = Sealer::new(self);
        requests.iter().map(|r| sealer.encrypt(r)).collect()
    }

    pub(crate) fn decrypt(
        &self,
        request: &DecryptRequest<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        Sealer::new(self).decrypt(request)
    }

    /// Decrypts many ciphertexts; one result per item, in order (each version's cipher expanded
    /// once, as in [`KeyRing::encrypt_many`]).
    pub(crate) fn decrypt_many(
        &self,
        requests: &[DecryptRequest<'_>],
    ) -> Vec<Result<Zeroizing<Vec<u8>>, Error>> {
        let mut sealer = Sealer::new(self);
        requests.iter().map(|r| sealer.decrypt(r)).collect()
    }

    /// Rewraps many ciphertexts; one result per item, in order (see [`KeyRing::rewrap`]).
    pub(crate) fn rewrap_many(
        &self,
        requests: &[DecryptRequest<'_>],
        key_version: Option<u32>,
    ) -> Vec<Result<Versioned, Error>> {
        let mut sealer = Sealer::new(self);
        requests
            .iter()
            .map(|request| sealer.rewrap(request, key_version))
            .collect()
    }

    /// Decrypts and encrypts again with `key_version` (default: the latest).
    pub(crate) fn rewrap(
        &self,
        request: &DecryptRequest<'_>,
        key_version: Option<u32>,
    ) -> Result<Versioned, Error> {
        Sealer::new(self).rewrap(request, key_version)
    }

    /// A fresh random key of `bits` bits and its ciphertext under this key.
    pub(crate) fn datakey(
        &self,
        bits: u32,
        context: Option<&[u8]>,
        associated_data: Option<&[u8]>,
    ) -> Result<(Zeroizing<Vec<u8>>, Versioned), Error> {
        if !matches!(bits, 128 | 256 | 512) {
            return Err(Error::invalid(
                "bits",
                format!("{bits} is not supported: use 128, 256 or 512"),
            ));
        }
        let mut key = Zeroizing::new(vec![0u8; bits as usize / 8]);
        tresor_crypto::random::fill(&mut key);
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
    ) -> Result<Versioned, Error> {
        let version = self.encryption_version(key_version)?;
        let tag = compute_hmac(self.versions[&version].hmac_key.expose(), algorithm, input);
        Ok(Versioned::new(version, &tag))
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
        Ok(mac::ct_eq(&expected, &tag))
    }

    /// Every version's material, retired ones too (a key moved to another vault keeps all it
    /// holds).
    pub(crate) fn materials(&self) -> impl Iterator<Item = (u32, &SecretKey)> + '_ {
        self.versions.iter().map(|(v, keys)| (*v, &keys.material))
    }

    /// For export, each version at or above `min_decryption_version` (as in Vault, a retired
    /// version is not handed out): its material (`EncryptionKey`, the input of every derivation
    /// above) or its derived HMAC key (`HmacKey`).
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
        match self.versions.get(&version) {
            None => Err(Error::invalid(
                field,
                format!("version {version} has been destroyed"),
            )),
            Some(keys) if keys.imported => Err(Error::invalid(
                field,
                format!(
                    "version {version} was imported from Vault/OpenBao: it only decrypts (and rewraps to a Tresor version)"
                ),
            )),
            Some(_) => Ok(version),
        }
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

    /// True when the newest version was imported: encrypting first needs a Tresor version
    /// after it (see `Vault::encrypting_ring`).
    pub(crate) fn latest_is_imported(&self) -> bool {
        self.versions
            .get(&self.latest_version)
            .is_some_and(|keys| keys.imported)
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
                    self.name()
                ),
            )),
            (false, Some(_)) => Err(Error::invalid(
                "context",
                format!(
                    "given, but key `{}` is not derived; it would have no effect",
                    self.name()
                ),
            )),
            (_, context) => Ok(context.unwrap_or_default()),
        }
    }

    /// The key's name.
    fn name(&self) -> &str {
        std::str::from_utf8(&self.aad_prefix[self.name_at..]).expect("written from a `str`")
    }

    #[cfg(test)]
    fn aad(&self, version: u32, context: &[u8], associated_data: &[u8]) -> LengthPrefixed {
        let mut aad = LengthPrefixed::with_capacity(
            self.aad_prefix.len() + 12 + context.len() + associated_data.len(),
        );
        self.aad_into(&mut aad, version, context, associated_data);
        aad
    }

    /// Writes the AAD into `aad`, which is wiped first (its buffer is reused).
    fn aad_into(
        &self,
        aad: &mut LengthPrefixed,
        version: u32,
        context: &[u8],
        associated_data: &[u8],
    ) {
        // Wiped before it grows: a reallocation moves only zeros, so no earlier context or
        // associated data is left in freed memory.
        aad.clear();
        aad.reserve(self.aad_prefix.len() + 12 + context.len() + associated_data.len());
        aad.extend_raw(&self.aad_prefix);
        aad.extend_raw(&version.to_be_bytes());
        aad.push_bytes(context);
        aad.push_bytes(associated_data);
    }
}

/// Serves one request or a batch with one ring: the ciphers of non-derived versions are
/// expanded on first use and kept for the request only (the ring keeps 32-byte keys), and the
/// AAD and payload buffers are reused from item to item.
struct Sealer<'r> {
    ring: &'r KeyRing,
    /// The expanded cipher of the first non-derived version used (a request almost always
    /// uses one), inline: a single request allocates nothing for it.
    first: Option<(u32, AeadKey)>,
    /// Those of any other versions the batch uses.
    others: Vec<(u32, AeadKey)>,
    aad: LengthPrefixed,
    payload: Vec<u8>,
}

impl<'r> Sealer<'r> {
    fn new(ring: &'r KeyRing) -> Self {
        Sealer {
            ring,
            first: None,
            others: Vec::new(),
            aad: LengthPrefixed::new(),
            payload: Vec::new(),
        }
    }

    /// The expanded cipher of non-derived `version`, whose encryption key is `key`.
    fn cipher(&mut self, version: u32, key: &SecretKey) -> &AeadKey {
        let (first, _) = self
            .first
            .get_or_insert_with(|| (version, AeadKey::new(key)));
        if *first == version {
            return &self.first.as_ref().expect("just set").1;
        }
        let at = match self.others.iter().position(|(v, _)| *v == version) {
            Some(at) => at,
            None => {
                self.others.push((version, AeadKey::new(key)));
                self.others.len() - 1
            }
        };
        &self.others[at].1
    }

    fn encrypt(&mut self, request: &EncryptRequest<'_>) -> Result<Versioned, Error> {
        let ring = self.ring;
        let version = ring.encryption_version(request.key_version)?;
        let context = ring.context(request.context)?;
        let keys = &ring.versions[&version];
        let associated_data = request.associated_data.unwrap_or_default();
        ring.aad_into(&mut self.aad, version, context, associated_data);
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        match (&keys.encryption_key, ring.config.convergent_encryption) {
            (Some(key), _) => {
                let aad = std::mem::take(&mut self.aad);
                self.cipher(version, key).seal_into(
                    aad.as_slice(),
                    request.plaintext,
                    &mut payload,
                );
                self.aad = aad;
            }
            (None, false) => derived_cipher(keys, context).seal_into(
                self.aad.as_slice(),
                request.plaintext,
                &mut payload,
            ),
            (None, true) => {
                let aad = self.aad.as_slice();
                let nonce_key = derive_key(
                    &keys.material,
                    LengthPrefixed::new()
                        .bytes(CONVERGENT_NONCE_LABEL)
                        .bytes(context)
                        .as_slice(),
                );
                let digest = hmac_sha256(nonce_key.expose(), &[aad, request.plaintext]);
                let nonce: [u8; NONCE_LEN] = digest[..NONCE_LEN].try_into().expect("12 bytes");
                derived_cipher(keys, context).seal_with_nonce_into(
                    &nonce,
                    aad,
                    request.plaintext,
                    &mut payload,
                )
            }
        }
        let sealed = Versioned::new(version, &payload);
        self.payload = payload;
        Ok(sealed)
    }

    fn rewrap(
        &mut self,
        request: &DecryptRequest<'_>,
        key_version: Option<u32>,
    ) -> Result<Versioned, Error> {
        let plaintext = self.decrypt(request)?;
        self.encrypt(&EncryptRequest {
            plaintext: &plaintext,
            context: request.context,
            associated_data: request.associated_data,
            key_version,
        })
    }

    fn decrypt(&mut self, request: &DecryptRequest<'_>) -> Result<Zeroizing<Vec<u8>>, Error> {
        let ring = self.ring;
        let (origin, version, payload) = ciphertext::parse_any(request.ciphertext)?;
        let context = ring.context(request.context)?;
        let keys = ring.decryption_version(version)?;
        match (origin, keys.imported) {
            (Origin::Tresor, false) => {}
            (Origin::Vault, true) => {
                return open_vault(keys, context, request.associated_data, &payload);
            }
            (_, imported) => {
                return Err(CiphertextError::WrongOrigin { version, imported }.into());
            }
        }
        if payload.len() < OVERHEAD {
            return Err(CiphertextError::TooShort(payload.len()).into());
        }
        let associated_data = request.associated_data.unwrap_or_default();
        ring.aad_into(&mut self.aad, version, context, associated_data);
        let aad = std::mem::take(&mut self.aad);
        let opened = match &keys.encryption_key {
            Some(key) => self.cipher(version, key).open(aad.as_slice(), &payload),
            None => derived_cipher(keys, context).open(aad.as_slice(), &payload),
        };
        self.aad = aad;
        opened.map_err(|_| CiphertextError::Authentication.into())
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

/// Opens a Vault `aes256-gcm96` payload under an imported version: the version key itself, or
/// for derived keys HKDF-SHA256(version key, no salt, info = context) (Vault's `hkdf_sha256`).
fn open_vault(
    keys: &VersionKeys,
    context: &[u8],
    associated_data: Option<&[u8]>,
    payload: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    use tresor_crypto::byok::{ByokError, vault_gcm_open};
    let derived;
    let key = if context.is_empty() {
        &keys.material
    } else {
        derived = derive_key(&keys.material, context);
        &derived
    };
    vault_gcm_open(key, payload, associated_data.unwrap_or_default()).map_err(|e| match e {
        ByokError::TooShort(n) => CiphertextError::TooShort(n).into(),
        _ => CiphertextError::Authentication.into(),
    })
}

fn compute_hmac(key: &[u8], algorithm: HmacAlgorithm, input: &[u8]) -> Vec<u8> {
    let hash = match algorithm {
        HmacAlgorithm::Sha2_224 => Sha2::Sha224,
        HmacAlgorithm::Sha2_256 => Sha2::Sha256,
        HmacAlgorithm::Sha2_384 => Sha2::Sha384,
        HmacAlgorithm::Sha2_512 => Sha2::Sha512,
    };
    mac::hmac(hash, key, input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(latest: u32, spec: crate::keys::KeySpec) -> KeyRing {
        KeyRing::new(
            KeyIdentity {
                environment: "test".into(),
                tenant: "t".into(),
                name: "k".into(),
            },
            spec.into_config().unwrap(),
            latest,
            (1..=latest).map(|v| (v, SecretKey::random())),
            &Default::default(),
        )
    }

    /// Issue 18: a cached ring keeps 32-byte keys, not expanded ciphers (960 bytes each), so
    /// 100,000 cached keys fit in 200 MB (docs/benchmarks.md, "Batch and per-key memory").
    #[test]
    fn a_version_keeps_no_expanded_cipher() {
        assert!(std::mem::size_of::<AeadKey>() > 256, "the cost avoided");
        assert!(
            std::mem::size_of::<VersionKeys>() <= 40,
            "{} bytes",
            std::mem::size_of::<VersionKeys>()
        );
    }

    /// A batch that names several versions is served with each version's own cipher (one
    /// expanded per version for the batch), item by item: a refused item fails alone, and
    /// every ciphertext opens only with its own AAD, singly and in a batch.
    #[test]
    fn a_batch_uses_each_items_version() {
        let ring = ring(3, Default::default());
        let versions = [None, Some(1), Some(2), Some(1), Some(4), Some(3)];
        let requests: Vec<EncryptRequest<'_>> = versions
            .iter()
            .map(|&key_version| EncryptRequest {
                plaintext: b"item",
                associated_data: Some(b"ad"),
                key_version,
                ..Default::default()
            })
            .collect();
        let sealed = ring.encrypt_many(&requests);
        let made: Vec<Option<u32>> = sealed
            .iter()
            .map(|r| r.as_ref().ok().map(|v| v.version))
            .collect();
        assert_eq!(made, [Some(3), Some(1), Some(2), Some(1), None, Some(3)]);
        let texts: Vec<&str> = sealed
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|v| v.text.as_str())
            .collect();
        let open = |associated_data: Option<&'static [u8]>| -> Vec<DecryptRequest<'_>> {
            texts
                .iter()
                .map(|&ciphertext| DecryptRequest {
                    ciphertext,
                    context: None,
                    associated_data,
                })
                .collect()
        };
        for opened in ring.decrypt_many(&open(Some(b"ad"))) {
            assert_eq!(opened.unwrap().as_slice(), b"item");
        }
        assert!(ring.decrypt_many(&open(None)).iter().all(Result::is_err));
        for text in &texts {
            let single = DecryptRequest {
                ciphertext: text,
                context: None,
                associated_data: Some(b"ad"),
            };
            assert_eq!(ring.decrypt(&single).unwrap().as_slice(), b"item");
        }
        // A tampered item fails alone; rewrapped items move to the latest version.
        let mut tampered = texts[1].to_owned();
        tampered.replace_range(12..13, if &tampered[12..13] == "A" { "B" } else { "A" });
        let mut requests = open(Some(b"ad"));
        requests[1].ciphertext = &tampered;
        let rewrapped = ring.rewrap_many(&requests, None);
        assert!(rewrapped[1].is_err());
        for (i, result) in rewrapped.iter().enumerate().filter(|(i, _)| *i != 1) {
            assert_eq!(result.as_ref().unwrap().version, 3, "item {i}");
        }
    }

    /// Derived keys make a cipher per context, in a batch too: an item opens only under its
    /// own context.
    #[test]
    fn a_derived_batch_binds_each_items_context() {
        let ring = ring(
            1,
            crate::keys::KeySpec {
                derived: true,
                ..Default::default()
            },
        );
        let contexts: [&[u8]; 3] = [b"a", b"b", b"a"];
        let requests: Vec<EncryptRequest<'_>> = contexts
            .iter()
            .map(|&context| EncryptRequest {
                plaintext: b"item",
                context: Some(context),
                ..Default::default()
            })
            .collect();
        let sealed = ring.encrypt_many(&requests);
        for (result, context) in sealed.iter().zip(contexts) {
            let text = &result.as_ref().unwrap().text;
            let open = |context: &[u8]| {
                ring.decrypt(&DecryptRequest {
                    ciphertext: text,
                    context: Some(context),
                    associated_data: None,
                })
            };
            assert_eq!(open(context).unwrap().as_slice(), b"item");
            assert!(open(if context == b"a" { b"b" } else { b"a" }).is_err());
        }
    }
}

/// The worked examples of docs/format.md, byte for byte: every value asserted here must appear
/// verbatim in that file (docs/format_example.py recomputes the same values independently).
#[cfg(test)]
mod format_vectors {
    use super::*;
    use crate::keys::KeySpec;

    const FORMAT_MD: &str = include_str!("../../../../docs/format.md");

    /// Asserts that `value` is what the code computes and that docs/format.md shows it.
    fn documented(computed: &str, value: &str) {
        assert_eq!(computed, value);
        assert!(
            FORMAT_MD.contains(value),
            "docs/format.md does not show `{value}`"
        );
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn ring(key: &str, spec: KeySpec, version: u32, material: &str) -> KeyRing {
        KeyRing::new(
            KeyIdentity {
                environment: "production".into(),
                tenant: "payments".into(),
                name: key.into(),
            },
            spec.into_config().unwrap(),
            version,
            [(version, SecretKey::from_slice(&hex(material)).unwrap())],
            &Default::default(),
        )
    }

    /// [`KeyRing::encrypt`] for a non-derived key, with the nonce given instead of drawn at
    /// random: the same version choice, AAD and cipher, so the output is reproducible.
    fn encrypt_with_nonce(
        ring: &KeyRing,
        request: &EncryptRequest<'_>,
        nonce: &[u8; NONCE_LEN],
    ) -> String {
        let version = ring.encryption_version(request.key_version).unwrap();
        let context = ring.context(request.context).unwrap();
        let aad = ring.aad(
            version,
            context,
            request.associated_data.unwrap_or_default(),
        );
        let key = ring.versions[&version]
            .encryption_key
            .as_ref()
            .expect("not derived");
        let cipher = AeadKey::new(key);
        let mut payload = Vec::new();
        cipher.seal_with_nonce_into(nonce, aad.as_slice(), request.plaintext, &mut payload);
        ciphertext::format(version, &payload)
    }

    const MATERIAL_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const MATERIAL_B: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

    #[test]
    fn example_a_plain_key_with_associated_data() {
        let ring = ring("card-pan", KeySpec::default(), 2, MATERIAL_A);
        let material = SecretKey::from_slice(&hex(MATERIAL_A)).unwrap();
        documented(
            &to_hex(&hmac_sha256(&[0; 32], &[material.expose()])),
            "46bd320605c5a6b6163ab70bc6345b92a5f908e79fe58979c23ebb47d1a5e307",
        );
        let info = LengthPrefixed::new().bytes(ENCRYPT_LABEL);
        documented(
            &to_hex(info.as_slice()),
            "00000011747265736f722d656e63727970742d7631",
        );
        documented(
            &to_hex(derive_key(&material, info.as_slice()).expose()),
            "f24e1997d5da933810cf2221d045e4abef89974d961054680f80e76dacc57b97",
        );
        documented(
            &to_hex(ring.aad(2, b"", b"order-4711").as_slice()),
            "0000000c747265736f722d63742d76310000000a70726f64756374696f6e000000087061796d656e747300000008636172642d70616e00000002000000000000000a6f726465722d34373131",
        );
        let request = EncryptRequest {
            plaintext: b"4111 1111 1111 1111",
            associated_data: Some(b"order-4711"),
            ..Default::default()
        };
        let text = encrypt_with_nonce(
            &ring,
            &request,
            &hex("a0a1a2a3a4a5a6a7a8a9aaab").try_into().unwrap(),
        );
        documented(
            &to_hex(&ciphertext::parse(&text).unwrap().1),
            "a0a1a2a3a4a5a6a7a8a9aaab3a1158c83561a96072d88c717e5c8ab54f2c7ef517d4e5d7dc25d29a822321100e44f0",
        );
        documented(
            &text,
            "tresor:v2:oKGio6SlpqeoqaqrOhFYyDVhqWBy2IxxflyKtU8sfvUX1OXX3CXSmoIjIRAORPA=",
        );
        // The real decryption path accepts the documented ciphertext, and only with its
        // associated data.
        let decrypt = |associated_data: Option<&'static [u8]>| {
            ring.decrypt(&DecryptRequest {
                ciphertext: &text,
                context: None,
                associated_data,
            })
        };
        assert_eq!(
            decrypt(Some(b"order-4711")).unwrap().as_slice(),
            b"4111 1111 1111 1111"
        );
        assert!(decrypt(None).is_err());
        // The real encryption path differs only in its random nonce.
        let random = ring.encrypt(&request).unwrap();
        assert_eq!(random.version, 2);
        assert_eq!(random.text.len(), text.len());
        assert!(random.text.starts_with("tresor:v2:"));
    }

    #[test]
    fn hmac_token() {
        let ring = ring("card-pan", KeySpec::default(), 2, MATERIAL_A);
        documented(
            &to_hex(LengthPrefixed::new().bytes(HMAC_LABEL).as_slice()),
            "0000000e747265736f722d686d61632d7631",
        );
        let (_, hmac_key) = ring.export(ExportKind::HmacKey).next().unwrap();
        documented(
            &to_hex(hmac_key.expose()),
            "b998390496453ac5511a3babb66103ddc3b71dea4d6d9c17fb7a01ae45a7eadd",
        );
        documented(
            &to_hex(&hmac_sha256(hmac_key.expose(), &[b"4111 1111 1111 1111"])),
            "336b599436086f96cdcc2c3e9b5bc6a61256c99d207ba69c3bfed5be49bcb0bc",
        );
        let token = ring
            .hmac(b"4111 1111 1111 1111", HmacAlgorithm::Sha2_256, None)
            .unwrap()
            .text;
        documented(
            &token,
            "tresor:v2:M2tZlDYIb5bNzCw+m1vGphJWyZ0ge6acO/7Vvkm8sLw=",
        );
        assert!(
            ring.verify_hmac(b"4111 1111 1111 1111", &token, HmacAlgorithm::Sha2_256)
                .unwrap()
        );
    }

    #[test]
    fn example_b_derived_convergent_key() {
        let spec = KeySpec {
            derived: true,
            convergent_encryption: true,
            ..Default::default()
        };
        let ring = ring("customer-email", spec, 1, MATERIAL_B);
        let material = SecretKey::from_slice(&hex(MATERIAL_B)).unwrap();
        documented(
            &to_hex(&hmac_sha256(&[0; 32], &[material.expose()])),
            "9724f70a32773a1840904e49bb789f73e0023efea2db9f987f43fc932319b1cb",
        );
        let context: &[u8] = b"customers.email";
        let plaintext: &[u8] = b"alice@example.com";

        let derive_info = LengthPrefixed::new().bytes(DERIVE_LABEL).bytes(context);
        documented(
            &to_hex(derive_info.as_slice()),
            "00000010747265736f722d6465726976652d76310000000f637573746f6d6572732e656d61696c",
        );
        documented(
            &to_hex(derive_key(&material, derive_info.as_slice()).expose()),
            "47e835fe6b01450660b3bb6ea2e4825f5e19b07b91571aae4566b07a17eec93e",
        );
        let nonce_info = LengthPrefixed::new()
            .bytes(CONVERGENT_NONCE_LABEL)
            .bytes(context);
        documented(
            &to_hex(nonce_info.as_slice()),
            "0000001a747265736f722d636f6e76657267656e742d6e6f6e63652d76310000000f637573746f6d6572732e656d61696c",
        );
        let nonce_key = derive_key(&material, nonce_info.as_slice());
        documented(
            &to_hex(nonce_key.expose()),
            "ca2fb132d94e6ef1d7eb15c767cd9cfa9b02efebc64783877da3546773658504",
        );
        let aad = ring.aad(1, context, b"");
        documented(
            &to_hex(aad.as_slice()),
            "0000000c747265736f722d63742d76310000000a70726f64756374696f6e000000087061796d656e74730000000e637573746f6d65722d656d61696c000000010000000f637573746f6d6572732e656d61696c00000000",
        );
        documented(
            &to_hex(&hmac_sha256(
                nonce_key.expose(),
                &[aad.as_slice(), plaintext],
            )),
            "3791640e762fa2d69fc14c0b36c655d3017c3568f17d237d133d1c9fbdd0cda0",
        );

        let request = EncryptRequest {
            plaintext,
            context: Some(context),
            ..Default::default()
        };
        let text = ring.encrypt(&request).unwrap().text;
        documented(
            &to_hex(&ciphertext::parse(&text).unwrap().1),
            "3791640e762fa2d69fc14c0bfef8174c9360420d3ba8e9fa4d0a585d86eed5cace13773a1a168bbdaec1af4f7c",
        );
        documented(
            &text,
            "tresor:v1:N5FkDnYvotafwUwL/vgXTJNgQg07qOn6TQpYXYbu1crOE3c6GhaLva7Br098",
        );
        assert_eq!(ring.encrypt(&request).unwrap().text, text, "deterministic");
        let opened = ring
            .decrypt(&DecryptRequest {
                ciphertext: &text,
                context: Some(context),
                associated_data: None,
            })
            .unwrap();
        assert_eq!(opened.as_slice(), plaintext);
    }
}
