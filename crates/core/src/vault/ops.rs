//! The operations callers come for: encrypt, decrypt, rewrap, datakey, hmac, export. Each
//! looks the key ring up once, so a batch pays for the lookup once.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::Vault;

/// One result per batch item, in order; the outer error is for the request as a whole.
pub type BatchResult<T> = Result<Vec<Result<T, Error>>, Error>;
use crate::CiphertextError;
use crate::Error;
use crate::keys::HmacAlgorithm;
use crate::keys::ring::KeyRing;
use crate::keys::ring::{DecryptRequest, EncryptRequest, ExportKind, Versioned};
use tresor_crypto::SecretKey;

/// A data key from [`Vault::datakey`].
pub struct DataKey {
    /// The key itself, unless only the wrapped form was asked for.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The key encrypted under the named data key: `tresor:v<N>:…`.
    pub ciphertext: Versioned,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &self.plaintext.as_ref().map(|_| "[REDACTED]"))
            .field("ciphertext", &self.ciphertext)
            .finish()
    }
}

/// True if `error` says a ciphertext names a key version this ring does not have yet: another
/// node may have rotated the key since this one cached it.
fn names_newer_version(error: &Error) -> bool {
    matches!(
        error,
        Error::Ciphertext(CiphertextError::UnknownVersion { .. })
    )
}

impl Vault {
    /// The key's ring, reloaded from the store first if `version` is newer than the cached
    /// ring's latest (a version created on another node).
    pub(super) fn ring_at_least(
        &self,
        tenant: &str,
        key: &str,
        version: Option<u32>,
    ) -> Result<Arc<KeyRing>, Error> {
        let ring = self.ring(tenant, key)?;
        match version {
            Some(version) if version > ring.latest_version => self.reloaded_ring(tenant, key),
            _ => Ok(ring),
        }
    }

    /// Redoes, on a ring reloaded from the store, the items of a batch that named a version
    /// newer than the cached ring (at most one reload per batch).
    fn retry_newer<T>(
        &self,
        tenant: &str,
        key: &str,
        results: &mut [Result<T, Error>],
        redo: impl Fn(&KeyRing, usize) -> Result<T, Error>,
    ) -> Result<(), Error> {
        if !results
            .iter()
            .any(|r| r.as_ref().err().is_some_and(names_newer_version))
        {
            return Ok(());
        }
        let ring = self.reloaded_ring(tenant, key)?;
        for (i, result) in results.iter_mut().enumerate() {
            if result.as_ref().err().is_some_and(names_newer_version) {
                *result = redo(&ring, i);
            }
        }
        Ok(())
    }

    /// Encrypts one plaintext.
    pub fn encrypt(
        &self,
        tenant: &str,
        key: &str,
        request: &EncryptRequest<'_>,
    ) -> Result<Versioned, Error> {
        self.encrypting_ring(tenant, key, request.key_version)?
            .encrypt(request)
    }

    /// Encrypts many plaintexts; one result per item, in order.
    pub fn encrypt_batch(
        &self,
        tenant: &str,
        key: &str,
        items: &[EncryptRequest<'_>],
    ) -> BatchResult<Versioned> {
        let ring = self.encrypting_ring(tenant, key, None)?;
        Ok(ring.encrypt_many(items))
    }

    /// Decrypts one ciphertext.
    pub fn decrypt(
        &self,
        tenant: &str,
        key: &str,
        request: &DecryptRequest<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let ring = self.ring(tenant, key)?;
        match ring.decrypt(request) {
            Err(e) if names_newer_version(&e) => self.reloaded_ring(tenant, key)?.decrypt(request),
            other => other,
        }
    }

    /// Decrypts many ciphertexts; one result per item, in order.
    pub fn decrypt_batch(
        &self,
        tenant: &str,
        key: &str,
        items: &[DecryptRequest<'_>],
    ) -> BatchResult<Zeroizing<Vec<u8>>> {
        let ring = self.ring(tenant, key)?;
        let mut results = ring.decrypt_many(items);
        self.retry_newer(tenant, key, &mut results, |ring, i| ring.decrypt(&items[i]))?;
        Ok(results)
    }

    /// Re-encrypts a ciphertext under `key_version` (default: the latest) without revealing it.
    pub fn rewrap(
        &self,
        tenant: &str,
        key: &str,
        request: &DecryptRequest<'_>,
        key_version: Option<u32>,
    ) -> Result<Versioned, Error> {
        let ring = self.encrypting_ring(tenant, key, key_version)?;
        match ring.rewrap(request, key_version) {
            Err(e) if names_newer_version(&e) => self
                .reloaded_ring(tenant, key)?
                .rewrap(request, key_version),
            other => other,
        }
    }

    /// Rewraps many ciphertexts; one result per item, in order.
    pub fn rewrap_batch(
        &self,
        tenant: &str,
        key: &str,
        items: &[DecryptRequest<'_>],
        key_version: Option<u32>,
    ) -> BatchResult<Versioned> {
        let ring = self.encrypting_ring(tenant, key, key_version)?;
        let mut results = ring.rewrap_many(items, key_version);
        self.retry_newer(tenant, key, &mut results, |ring, i| {
            ring.rewrap(&items[i], key_version)
        })?;
        Ok(results)
    }

    /// A fresh random key of `bits` (128, 256 or 512) wrapped under `key`, and the key itself
    /// if `with_plaintext`.
    pub fn datakey(
        &self,
        tenant: &str,
        key: &str,
        bits: u32,
        context: Option<&[u8]>,
        associated_data: Option<&[u8]>,
        with_plaintext: bool,
    ) -> Result<DataKey, Error> {
        let (plaintext, ciphertext) =
            self.encrypting_ring(tenant, key, None)?
                .datakey(bits, context, associated_data)?;
        Ok(DataKey {
            plaintext: with_plaintext.then_some(plaintext),
            ciphertext,
        })
    }

    /// HMAC of `input` under `key` (a stable, keyed pseudonym of the input).
    pub fn hmac(
        &self,
        tenant: &str,
        key: &str,
        input: &[u8],
        algorithm: HmacAlgorithm,
        key_version: Option<u32>,
    ) -> Result<Versioned, Error> {
        self.encrypting_ring(tenant, key, key_version)?
            .hmac(input, algorithm, key_version)
    }

    /// HMACs of many inputs; one result per item, in order.
    pub fn hmac_batch(
        &self,
        tenant: &str,
        key: &str,
        inputs: &[&[u8]],
        algorithm: HmacAlgorithm,
        key_version: Option<u32>,
    ) -> BatchResult<Versioned> {
        let ring = self.encrypting_ring(tenant, key, key_version)?;
        Ok(inputs
            .iter()
            .map(|input| ring.hmac(input, algorithm, key_version))
            .collect())
    }

    /// True if `token` is the HMAC of `input` under a usable version of `key`.
    pub fn verify_hmac(
        &self,
        tenant: &str,
        key: &str,
        input: &[u8],
        token: &str,
        algorithm: HmacAlgorithm,
    ) -> Result<bool, Error> {
        self.ring(tenant, key)?.verify_hmac(input, token, algorithm)
    }

    /// Verifies many (input, token) pairs; one result per item, in order.
    pub fn verify_hmac_batch(
        &self,
        tenant: &str,
        key: &str,
        items: &[(&[u8], &str)],
        algorithm: HmacAlgorithm,
    ) -> BatchResult<bool> {
        let ring = self.ring(tenant, key)?;
        Ok(items
            .iter()
            .map(|(input, token)| ring.verify_hmac(input, token, algorithm))
            .collect())
    }

    /// Key material of an exportable key: every version held, or just `version`.
    pub fn export_key(
        &self,
        tenant: &str,
        key: &str,
        kind: ExportKind,
        version: Option<u32>,
    ) -> Result<Vec<(u32, SecretKey)>, Error> {
        let ring = self.ring(tenant, key)?;
        if !ring.config.exportable {
            return Err(Error::NotPermitted(format!(
                "key `{key}` is not exportable"
            )));
        }
        let exported: Vec<(u32, SecretKey)> = ring
            .export(kind)
            .filter(|(v, _)| version.is_none_or(|wanted| wanted == *v))
            .map(|(v, k)| (v, k.clone()))
            .collect();
        if let Some(wanted) = version {
            if exported.is_empty() {
                return Err(Error::invalid(
                    "version",
                    format!(
                        "version {wanted} of key `{key}` is not held, or is below min_decryption_version"
                    ),
                ));
            }
        }
        Ok(exported)
    }
}
