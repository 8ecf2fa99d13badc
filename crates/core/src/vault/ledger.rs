//! The ledger: what catches a record put back (docs/custody.md, "Rollback"; docs/format.md,
//! "The ledger").
//!
//! The barrier binds a record to its path, not to its age: an older sealed copy of a record (a
//! deleted key, a trimmed version, a shredded tenant's KEK, an earlier custodian set of a
//! level-3 tenant) opens as well as the newest. The ledger is the vault's authenticated memory
//! of which copy is current. Every barrier-sealed record's path and the hash of its sealed bytes
//! are kept in one of 256 leaves (`core/ledger/<hh>`, bucketed by the path's hash), and the
//! hashes of the leaves in a root (`core/ledger`) with a generation that every commit raises and
//! the time of the last write. Leaves and root are themselves sealed by the barrier, so only
//! the root key can make them.
//!
//! Every commit through the vault updates the ledger in the same atomic batch (compare-and-swap
//! on the root, retried when another writer moved it). Every read is checked against it: a
//! record whose bytes are not the ones the ledger holds, a record the ledger says was deleted,
//! or a ledger older than one this process has seen, is refused with [`Error::Rollback`]. What
//! the ledger cannot tell is a whole store put back together (every record, leaf and root from
//! one earlier moment, which is what restoring a backup is): that is shown at unseal as the
//! store's generation and time of last write, for the server to compare with its audit log.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tresor_crypto::{hex, sha256};

use crate::barrier::Barrier;
use crate::keys::records::{
    self, ROOT_CHECK_PATH, SEAL_CONFIG_PATH, SHRED_ON_UNSEAL_PATH, STORE_FORMAT_PATH,
};
use crate::store::{Batch, Store, StoreError};
use crate::{Error, StoreGeneration};

/// The ledger's root record.
pub(crate) const ROOT_PATH: &str = "core/ledger";
/// Its leaves: `core/ledger/00` … `core/ledger/ff`.
const LEAF_PREFIX: &str = "core/ledger/";
const LEAVES: usize = 256;
/// How many times a commit is retried when other writers keep moving the root.
const RETRIES: usize = 64;

/// Whether the ledger vouches for the record at `path`. Not for the records outside the barrier
/// (the seal configuration and the format, public and authenticated otherwise), the root check
/// (which the root key itself proves), or the ledger's own records.
pub(crate) fn covers(path: &str) -> bool {
    !(path == SEAL_CONFIG_PATH
        || path == STORE_FORMAT_PATH
        || path == ROOT_CHECK_PATH
        || path == SHRED_ON_UNSEAL_PATH
        || path == ROOT_PATH
        || path.starts_with(LEAF_PREFIX))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Root {
    /// Raised by every commit.
    generation: u64,
    /// When the last commit was made (Unix seconds).
    last_write: u64,
    /// For each leaf, the hex SHA-256 of its sealed bytes ("" while it holds nothing).
    leaves: Vec<String>,
}

/// One leaf: each path in its bucket and the first 128 bits (hex) of the SHA-256 of the sealed
/// bytes stored there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Leaf {
    records: BTreeMap<String, String>,
}

/// The ledger as this process last read or wrote it.
pub(crate) struct Ledger {
    root: Root,
    leaves: HashMap<usize, Leaf>,
}

fn bucket(path: &str) -> usize {
    usize::from(sha256(&[path.as_bytes()])[0])
}

fn leaf_path(bucket: usize) -> String {
    format!("{LEAF_PREFIX}{bucket:02x}")
}

fn record_hash(raw: &[u8]) -> String {
    hex(&sha256(&[raw])[..16])
}

fn leaf_hash(raw: &[u8]) -> String {
    hex(&sha256(&[raw]))
}

fn rollback(path: &str, reason: impl Into<String>) -> Error {
    Error::Rollback {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl Ledger {
    /// An empty ledger (a new vault), at generation 1.
    pub(crate) fn empty(now: u64) -> Ledger {
        Ledger {
            root: Root {
                generation: 1,
                last_write: now,
                leaves: vec![String::new(); LEAVES],
            },
            leaves: HashMap::new(),
        }
    }

    /// The ledger as stored, opened with `barrier`; `None` if the store has none.
    pub(crate) fn load(store: &dyn Store, barrier: &Barrier) -> Result<Option<Ledger>, Error> {
        Ok(load_root(store, barrier)?.map(|(root, _)| Ledger {
            root,
            leaves: HashMap::new(),
        }))
    }

    /// A ledger of everything `store` holds now, trusted as it stands: for a store written
    /// before the ledger existed (its first unseal after the upgrade), and after a root
    /// rotation re-sealed every record. Returns the ledger and the writes that store it.
    pub(crate) fn of_contents(
        store: &dyn Store,
        barrier: &Barrier,
        records: &[(String, Vec<u8>)],
        generation: u64,
        now: u64,
    ) -> Result<(Ledger, Batch), Error> {
        let mut ledger = Ledger {
            root: Root {
                generation,
                last_write: now,
                leaves: vec![String::new(); LEAVES],
            },
            leaves: HashMap::new(),
        };
        for (path, raw) in records.iter().filter(|(path, _)| covers(path)) {
            ledger
                .leaves
                .entry(bucket(path))
                .or_default()
                .records
                .insert(path.clone(), record_hash(raw));
        }
        let mut batch = Batch::new();
        // Leaves left over from an earlier ledger go: every leaf is rewritten or removed.
        for (path, _) in store.scan_prefix(LEAF_PREFIX)? {
            batch.push_delete(path);
        }
        for (&at, leaf) in &ledger.leaves {
            let path = leaf_path(at);
            let sealed = barrier.seal(&path, &records::encode(leaf));
            ledger.root.leaves[at] = leaf_hash(&sealed);
            batch.push_put(path, sealed);
        }
        batch.push_put(
            ROOT_PATH,
            barrier.seal(ROOT_PATH, &records::encode(&ledger.root)),
        );
        Ok((ledger, batch))
    }

    /// The writes that store this (new, empty) ledger.
    pub(crate) fn root_write(&self, barrier: &Barrier) -> (String, Vec<u8>) {
        (
            ROOT_PATH.to_owned(),
            barrier.seal(ROOT_PATH, &records::encode(&self.root)),
        )
    }

    /// The store's generation as it stands in the store now.
    pub(crate) fn current(
        &mut self,
        store: &dyn Store,
        barrier: &Barrier,
    ) -> Result<StoreGeneration, Error> {
        self.refresh(store, barrier)?;
        Ok(self.generation())
    }

    /// The store's generation and time of last write.
    pub(crate) fn generation(&self) -> StoreGeneration {
        StoreGeneration {
            generation: self.root.generation,
            last_write: self.root.last_write,
        }
    }

    /// Checks that `raw` (or its absence) is what the ledger holds for `path`, reading the
    /// ledger afresh from the store when it disagrees with what this process knew (another
    /// writer may have moved on).
    pub(crate) fn check(
        &mut self,
        store: &dyn Store,
        barrier: &Barrier,
        path: &str,
        raw: Option<&[u8]>,
    ) -> Result<(), Error> {
        if !covers(path) {
            return Ok(());
        }
        let want = raw.map(record_hash);
        let at = bucket(path);
        if let Some(leaf) = self.leaves.get(&at) {
            if leaf.records.get(path) == want.as_ref() {
                return Ok(());
            }
        }
        self.refresh(store, barrier)?;
        let found = self.leaf(store, barrier, at)?.records.get(path);
        if found == want.as_ref() {
            return Ok(());
        }
        if store.get(path)?.as_deref() != raw {
            // The record changed since the caller read it (another writer, on this node or
            // another): the caller's copy is merely stale, not put back. A conflict, which
            // readers retry and writers report like any lost compare-and-swap.
            return Err(Error::Store(StoreError::Conflict {
                key: path.to_owned(),
            }));
        }
        match (found, want) {
            (_, None) => Err(rollback(
                path,
                "the record is missing from the store although the vault never deleted it",
            )),
            (None, Some(_)) => Err(rollback(
                path,
                "the store holds a record that the vault deleted: an old copy was put back",
            )),
            (Some(_), Some(_)) => Err(rollback(
                path,
                "this is not the record the vault last wrote: an older copy was put back",
            )),
        }
    }

    /// Adds to `batch` the ledger's update for its writes, expecting the root as this process
    /// last read it; returns the ledger as it will be once the batch is committed.
    fn updated(
        &mut self,
        store: &dyn Store,
        barrier: &Barrier,
        batch: &mut Batch,
        now: u64,
    ) -> Result<Ledger, Error> {
        let (root, root_raw) =
            load_root(store, barrier)?.ok_or_else(|| rollback(ROOT_PATH, "the ledger is gone"))?;
        self.accept_root(root)?;
        let mut next = Ledger {
            root: Root {
                generation: self.root.generation + 1,
                last_write: now,
                leaves: self.root.leaves.clone(),
            },
            leaves: HashMap::new(),
        };
        let writes: Vec<(String, Option<String>)> = batch
            .writes()
            .filter(|(path, _)| covers(path))
            .map(|(path, value)| (path.to_owned(), value.map(record_hash)))
            .collect();
        for (path, hash) in writes {
            let at = bucket(&path);
            let leaf = match next.leaves.entry(at) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(self.leaf(store, barrier, at)?.clone())
                }
            };
            match hash {
                Some(hash) => leaf.records.insert(path, hash),
                None => leaf.records.remove(&path),
            };
        }
        for (&at, leaf) in &next.leaves {
            let path = leaf_path(at);
            if leaf.records.is_empty() {
                next.root.leaves[at] = String::new();
                batch.push_delete(path);
            } else {
                let sealed = barrier.seal(&path, &records::encode(leaf));
                next.root.leaves[at] = leaf_hash(&sealed);
                batch.push_put(path, sealed);
            }
        }
        batch.push_expect(ROOT_PATH, Some(root_raw));
        batch.push_put(
            ROOT_PATH,
            barrier.seal(ROOT_PATH, &records::encode(&next.root)),
        );
        Ok(next)
    }

    /// Takes `root` as the current one, unless it is older than one already seen.
    fn accept_root(&mut self, root: Root) -> Result<(), Error> {
        if root.generation < self.root.generation {
            return Err(rollback(
                ROOT_PATH,
                format!(
                    "the ledger went back from generation {} to {}: an older copy was put back",
                    self.root.generation, root.generation
                ),
            ));
        }
        if root.generation > self.root.generation || root.leaves != self.root.leaves {
            self.leaves
                .retain(|&at, _| root.leaves.get(at) == self.root.leaves.get(at));
        }
        self.root = root;
        Ok(())
    }

    fn refresh(&mut self, store: &dyn Store, barrier: &Barrier) -> Result<(), Error> {
        let (root, _) =
            load_root(store, barrier)?.ok_or_else(|| rollback(ROOT_PATH, "the ledger is gone"))?;
        self.accept_root(root)
    }

    /// Leaf `at`, loaded (and checked against the root) on first use.
    fn leaf(&mut self, store: &dyn Store, barrier: &Barrier, at: usize) -> Result<&Leaf, Error> {
        if !self.leaves.contains_key(&at) {
            let path = leaf_path(at);
            let expected = &self.root.leaves[at];
            let leaf = match store.get(&path)? {
                None if expected.is_empty() => Leaf::default(),
                None => {
                    if root_moved_on(store, barrier, self.root.generation)? {
                        return Err(Error::Store(StoreError::Conflict {
                            key: ROOT_PATH.to_owned(),
                        }));
                    }
                    return Err(rollback(&path, "a leaf of the ledger is missing"));
                }
                Some(raw) => {
                    if leaf_hash(&raw) != *expected {
                        // Another writer may have committed between our read of the root and
                        // of this leaf: then the root has moved on, and the caller retries.
                        if root_moved_on(store, barrier, self.root.generation)? {
                            return Err(Error::Store(StoreError::Conflict {
                                key: ROOT_PATH.to_owned(),
                            }));
                        }
                        return Err(rollback(
                            &path,
                            "this leaf of the ledger is not the one its root names: an older copy was put back",
                        ));
                    }
                    records::decode(&path, &barrier.open(&path, &raw)?)?
                }
            };
            self.leaves.insert(at, leaf);
        }
        Ok(&self.leaves[&at])
    }
}

/// Whether the stored root is newer than `generation` (another writer committed meanwhile).
fn root_moved_on(store: &dyn Store, barrier: &Barrier, generation: u64) -> Result<bool, Error> {
    Ok(load_root(store, barrier)?.is_some_and(|(root, _)| root.generation > generation))
}

fn load_root(store: &dyn Store, barrier: &Barrier) -> Result<Option<(Root, Vec<u8>)>, Error> {
    let Some(raw) = store.get(ROOT_PATH)? else {
        return Ok(None);
    };
    let root: Root = records::decode(ROOT_PATH, &barrier.open(ROOT_PATH, &raw)?)?;
    if root.leaves.len() != LEAVES {
        return Err(Error::Integrity {
            path: ROOT_PATH.to_owned(),
        });
    }
    Ok(Some((root, raw)))
}

/// Commits `batch` with the ledger's update, retrying while other writers move the ledger's
/// root first (a conflict on the caller's own expectations is returned as it is).
pub(crate) fn commit(
    ledger: &std::sync::Mutex<Ledger>,
    store: &dyn Store,
    barrier: &Barrier,
    batch: Batch,
    now: u64,
) -> Result<(), Error> {
    if !batch.writes().any(|(path, _)| covers(path)) {
        return Ok(store.commit(batch)?);
    }
    for _ in 0..RETRIES {
        let mut current = super::lock(ledger);
        let mut full = batch.clone();
        let next = match current.updated(store, barrier, &mut full, now) {
            Err(Error::Store(StoreError::Conflict { key })) if key == ROOT_PATH => continue,
            other => other?,
        };
        match store.commit(full) {
            Ok(()) => {
                let mut leaves = std::mem::take(&mut current.leaves);
                leaves.extend(next.leaves);
                *current = Ledger {
                    root: next.root,
                    leaves,
                };
                return Ok(());
            }
            Err(StoreError::Conflict { key }) if key == ROOT_PATH => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Store(StoreError::Conflict {
        key: ROOT_PATH.to_owned(),
    }))
}
