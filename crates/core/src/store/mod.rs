//! Storage: a small key/value [`Store`] trait and its backends (what they hold: docs/format.md,
//! section 6).
//!
//! The store is untrusted: apart from the seal configuration (which holds only public keys,
//! sealed shares and check values) every value written through the vault is sealed by the
//! [`barrier`](crate::barrier) before it reaches a backend.

mod sled;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

pub use self::sled::SledStore;

/// A key/value store with atomic, durable batches.
///
/// Keys are `/`-separated paths; values are opaque bytes. Every method that changes data
/// returns only once the change is durable, because a key version must be on disk before any
/// ciphertext uses it.
pub trait Store: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Applies `batch` atomically and durably: either every expectation holds and every write
    /// lands, or nothing changes and [`StoreError::Conflict`] names the first key that differed.
    fn commit(&self, batch: Batch) -> Result<(), StoreError>;

    /// Rewrites the backend's files so that no deleted or overwritten value survives in them.
    /// Called after destroying keys, so crypto-shredding leaves no copy of the old bytes in the
    /// data directory.
    fn purge_stale(&self) -> Result<(), StoreError>;

    /// Writes one value.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.commit(Batch::new().put(key, value.to_vec()))
    }

    /// Deletes one value (a no-op if absent).
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.commit(Batch::new().delete(key))
    }
}

/// A set of expectations and writes applied together by [`Store::commit`].
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub(crate) expectations: Vec<(String, Option<Vec<u8>>)>,
    pub(crate) writes: Vec<(String, Option<Vec<u8>>)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the value at `key` to be `value` (`None`: absent) when the batch is applied.
    pub fn expect(mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> Self {
        self.expectations.push((key.into(), value));
        self
    }

    /// Sets `key` to `value`.
    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.writes.push((key.into(), Some(value)));
        self
    }

    /// Removes `key`.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.writes.push((key.into(), None));
        self
    }

    /// Adds an expectation in place (see [`Batch::expect`]).
    pub fn push_expect(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) {
        self.expectations.push((key.into(), value));
    }

    /// Adds a write in place.
    pub fn push_put(&mut self, key: impl Into<String>, value: Vec<u8>) {
        self.writes.push((key.into(), Some(value)));
    }

    /// Adds a removal in place.
    pub fn push_delete(&mut self, key: impl Into<String>) {
        self.writes.push((key.into(), None));
    }

    /// The writes, in order: each path and its new value (`None`: removed).
    pub fn writes(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.writes
            .iter()
            .map(|(path, value)| (path.as_str(), value.as_deref()))
    }

    /// The expectations, in order: each path and the value it must hold (`None`: absent).
    pub fn expectations(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.expectations
            .iter()
            .map(|(path, value)| (path.as_str(), value.as_deref()))
    }

    /// True when the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An expectation of a [`Batch`] did not hold: someone else changed `key` first.
    #[error("storage conflict: `{key}` was changed concurrently")]
    Conflict {
        /// The first key whose value differed from the expectation.
        key: String,
    },
    /// The backend failed (I/O, corruption detected by the backend, lock held by another process).
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// Bytes held in a record (base64 in its JSON), zeroized on drop.
///
/// Decoding borrows the string from the (zeroizing) plaintext buffer and decodes straight into a
/// zeroizing buffer, so no stray copy of key material is left in freed memory.
#[derive(Clone)]
pub struct StoredBytes(pub Zeroizing<Vec<u8>>);

impl StoredBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        StoredBytes(Zeroizing::new(bytes))
    }
}

impl Serialize for StoredBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(STANDARD.encode(self.0.as_slice()));
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for StoredBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <&'de str>::deserialize(deserializer)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
        STANDARD
            .decode_vec(text, &mut bytes)
            .map_err(serde::de::Error::custom)?;
        Ok(StoredBytes(bytes))
    }
}
