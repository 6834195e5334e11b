//! A node without encryption at rest: the same RocksDB layout (a column family per
//! database), values as given.
//!
//! Atlas clusters start unencrypted unless asked; enabling encryption rewrites a node from
//! this store into an encrypted [`Store`](super::Store), disabling rewrites it back. A
//! marker column family tells the two apart, so neither opens the other by mistake.

use std::path::{Path, PathBuf};

use rocksdb::Options;

use super::batch::BatchOp;
use super::engine::{
    create_with_marker, open_existing, read_applied, stamp_applied, Cursor, Db,
    DEFAULT_BLOCK_CACHE_BYTES,
};
use super::{validate_database_name, KeyRange, KeyValue, StoreError, WriteBatch};
use crate::crash::CrashPoint;

const PLAIN_MARKER_CF: &str = "atrest.plain";

/// An open unencrypted node store.
pub struct PlainStore {
    db: Db,
    path: PathBuf,
}

impl std::fmt::Debug for PlainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainStore({})", self.path.display())
    }
}

impl PlainStore {
    /// Creates an empty store at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.join("CURRENT").exists() {
            return Err(StoreError::AlreadyExists { path });
        }
        let db = create_with_marker(&path, PLAIN_MARKER_CF, DEFAULT_BLOCK_CACHE_BYTES)?;
        Ok(PlainStore { db, path })
    }

    /// Opens the unencrypted store at `path`; an encrypted one is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_existing(&path, PLAIN_MARKER_CF, DEFAULT_BLOCK_CACHE_BYTES)?;
        Ok(PlainStore { db, path })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rocks_error(&self, source: rocksdb::Error) -> StoreError {
        StoreError::RocksDb {
            path: self.path.clone(),
            source,
        }
    }

    fn column_family(
        &self,
        database: &str,
    ) -> Result<std::sync::Arc<rocksdb::BoundColumnFamily<'_>>, StoreError> {
        validate_database_name(database)?;
        if self.db.cf_handle(database).is_none() {
            self.db.crash_point(CrashPoint::RecordWrite)?;
            self.db
                .create_family(database)
                .map_err(|e| self.rocks_error(e))?;
        }
        self.db
            .cf_handle(database)
            .ok_or_else(|| StoreError::NotAStore {
                path: self.path.clone(),
            })
    }

    /// The databases that hold (or held) records.
    pub fn databases(&self) -> Result<Vec<String>, StoreError> {
        let mut names =
            Db::list_cf(&Options::default(), &self.path).map_err(|e| self.rocks_error(e))?;
        names.retain(|n| validate_database_name(n).is_ok());
        Ok(names)
    }

    /// Stores `value` under `key` in `database`.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let cf = self.column_family(database)?;
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db
            .put_cf(&cf, key, value)
            .map_err(|e| self.rocks_error(e))
    }

    /// The value under `key`, if any.
    pub fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        validate_database_name(database)?;
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(None);
        };
        self.db.get_cf(&cf, key).map_err(|e| self.rocks_error(e))
    }

    /// Removes `key`.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        validate_database_name(database)?;
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db.delete_cf(&cf, key).map_err(|e| self.rocks_error(e))
    }

    /// Applies `batch` atomically.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.write_batch(batch, None)
    }

    /// Applies `batch` as cluster write `sequence`, recorded with it.
    pub fn write_at(&self, batch: &WriteBatch, sequence: u64) -> Result<(), StoreError> {
        self.write_batch(batch, Some(sequence))
    }

    /// The last cluster write this store applied (0: none).
    pub fn applied(&self) -> Result<u64, StoreError> {
        read_applied(&self.db, PLAIN_MARKER_CF, &self.path)
    }

    fn write_batch(&self, batch: &WriteBatch, sequence: Option<u64>) -> Result<(), StoreError> {
        let families = batch
            .databases()
            .iter()
            .map(|d| self.column_family(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                BatchOp::Put {
                    database,
                    key,
                    value,
                } => {
                    if let Some(cf) = families.get(database) {
                        rocks_batch.put_cf(cf, key, value);
                    }
                }
                BatchOp::Delete { database, key } => {
                    if let Some(cf) = families.get(database) {
                        rocks_batch.delete_cf(cf, key);
                    }
                }
            }
        }
        if let Some(sequence) = sequence {
            stamp_applied(
                &mut rocks_batch,
                &self.db,
                PLAIN_MARKER_CF,
                sequence,
                &self.path,
            )?;
        }
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db.write(rocks_batch).map_err(|e| self.rocks_error(e))
    }

    /// The records of `database` in `range`, in key order, read as they are visited.
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<PlainScan<'_>, StoreError> {
        validate_database_name(database)?;
        let cursor = match self.db.cf_handle(database) {
            Some(cf) => Cursor::new(&self.db, &cf, range),
            None => Cursor::empty(),
        };
        Ok(PlainScan {
            cursor,
            path: &self.path,
        })
    }

    /// Flushes memtables and the WAL.
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in self.databases()? {
            if let Some(cf) = self.db.cf_handle(&name) {
                self.db.flush_cf(&cf).map_err(|e| self.rocks_error(e))?;
            }
        }
        self.db.flush_wal(true).map_err(|e| self.rocks_error(e))
    }
}

/// An iterator over a plain store's records, in key order. Stops at the first error,
/// which it yields.
pub struct PlainScan<'a> {
    cursor: Cursor<'a>,
    path: &'a Path,
}

impl Iterator for PlainScan<'_> {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.cursor
            .next_with(self.path, |key, value| Ok((key.to_vec(), value.to_vec())))
    }
}

/// Whether the store at `path` is an unencrypted one (else it is encrypted, or absent).
pub fn is_plain_store(path: &Path) -> Result<bool, StoreError> {
    if !path.join("CURRENT").exists() {
        return Ok(false);
    }
    let families =
        Db::list_cf(&Options::default(), path).map_err(|source| StoreError::RocksDb {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(families.iter().any(|f| f == PLAIN_MARKER_CF))
}
