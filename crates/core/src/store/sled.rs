//! The embedded default backend: sled on local disk.
//!
//! sled 0.34 is a log-structured store: a deleted value stays in old log segments until they are
//! reused, and it only reaches disk on `flush`. So this backend
//! - flushes after every commit (a commit that returned is on disk);
//! - keeps the database in a generation directory named by a `CURRENT` file, and implements
//!   [`Store::purge_stale`] by copying the live entries into a fresh generation, switching
//!   `CURRENT` atomically and deleting the old directory. A crash at any point leaves `CURRENT`
//!   naming a complete generation; leftovers are removed on the next open.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::{Batch, Store, StoreError};

const CURRENT: &str = "CURRENT";

/// A [`Store`] in a directory on local disk.
pub struct SledStore {
    root: PathBuf,
    state: RwLock<Generation>,
}

struct Generation {
    number: u64,
    db: sled::Db,
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
        let number = match fs::read_to_string(root.join(CURRENT)) {
            Ok(text) => parse_generation(text.trim()).ok_or_else(|| {
                StoreError::Backend(format!("{}: `{CURRENT}` is corrupt", root.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_current(&root, 1)?;
                1
            }
            Err(e) => return Err(io_error(&root.join(CURRENT), e)),
        };
        remove_other_generations(&root, number)?;
        let db = open_db(&root.join(generation_dir(number)))?;
        Ok(SledStore {
            root,
            state: RwLock::new(Generation { number, db }),
        })
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Generation> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .read()
            .db
            .get(key)
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read()
            .db
            .scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = entry.map_err(backend)?;
                let key = String::from_utf8(k.to_vec())
                    .map_err(|_| StoreError::Backend("stored key is not UTF-8".into()))?;
                Ok((key, v.to_vec()))
            })
            .collect()
    }

    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let generation = self.read();
        let db = &generation.db;
        let result = db.transaction(|tx| {
            for (key, expected) in &batch.expectations {
                let actual = tx.get(key)?;
                if actual.as_deref() != expected.as_deref() {
                    return Err(ConflictableTransactionError::Abort(key.clone()));
                }
            }
            for (key, value) in &batch.writes {
                match value {
                    Some(value) => tx.insert(key.as_bytes(), value.as_slice())?,
                    None => tx.remove(key.as_bytes())?,
                };
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(key)) => return Err(StoreError::Conflict { key }),
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
        }
        db.flush().map_err(backend)?;
        Ok(())
    }

    fn purge_stale(&self) -> Result<(), StoreError> {
        let mut generation = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = generation.number + 1;
        let next_dir = self.root.join(generation_dir(next));
        if next_dir.exists() {
            fs::remove_dir_all(&next_dir).map_err(|e| io_error(&next_dir, e))?;
        }
        let fresh = open_db(&next_dir)?;
        for entry in generation.db.iter() {
            let (k, v) = entry.map_err(backend)?;
            fresh.insert(k, v).map_err(backend)?;
        }
        fresh.flush().map_err(backend)?;
        sync_dir(&next_dir)?;
        write_current(&self.root, next)?;
        let old = std::mem::replace(
            &mut *generation,
            Generation {
                number: next,
                db: fresh,
            },
        );
        let old_dir = self.root.join(generation_dir(old.number));
        drop(old);
        fs::remove_dir_all(&old_dir).map_err(|e| io_error(&old_dir, e))?;
        sync_dir(&self.root)
    }
}

/// Opens the sled database in `dir`. sled drops its file lock from background threads a moment
/// after the last handle goes away, so a reopen in the same process (a restart in tests, or
/// `tresor dev` restarting its server) waits up to two seconds for the lock before giving up;
/// another process holding it is reported as such.
fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Backend(format!(
                        "{}: the store is in use by another process (its lock is held)",
                        dir.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(StoreError::Backend(format!("{}: {e}", dir.display()))),
        }
    }
}

fn generation_dir(number: u64) -> String {
    format!("gen-{number:06}")
}

fn parse_generation(name: &str) -> Option<u64> {
    name.strip_prefix("gen-")?.parse().ok()
}

/// Atomically points `CURRENT` at `number`: write a temporary file, sync it, rename, sync the dir.
fn write_current(root: &Path, number: u64) -> Result<(), StoreError> {
    let tmp = root.join("CURRENT.tmp");
    let mut file = fs::File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
    file.write_all(generation_dir(number).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp, e))?;
    fs::rename(&tmp, root.join(CURRENT)).map_err(|e| io_error(&tmp, e))?;
    sync_dir(root)
}

fn remove_other_generations(root: &Path, keep: u64) -> Result<(), StoreError> {
    for entry in fs::read_dir(root).map_err(|e| io_error(root, e))? {
        let entry = entry.map_err(|e| io_error(root, e))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(parse_generation) else {
            continue;
        };
        if number != keep {
            fs::remove_dir_all(entry.path()).map_err(|e| io_error(&entry.path(), e))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}
