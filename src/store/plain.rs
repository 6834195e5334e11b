//! A node without encryption at rest: the same RocksDB layout (a column family per
//! database), values as given.
//!
//! Atlas clusters start unencrypted unless asked; enabling encryption rewrites a node from
//! this store into an encrypted [`Store`](super::Store), disabling rewrites it back. A
//! marker column family tells the two apart, so neither opens the other by mistake.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use rocksdb::Options;

use super::{
    create_with_marker, open_existing, validate_database_name, BatchOp, Db, KeyRange, KeyValue,
    StoreError, WriteBatch,
};

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
        let db = create_with_marker(&path, PLAIN_MARKER_CF)?;
        Ok(PlainStore { db, path })
    }

    /// Opens the unencrypted store at `path`; an encrypted one is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_existing(&path, PLAIN_MARKER_CF)?;
        Ok(PlainStore { db, path })
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
            self.db
                .create_cf(database, &Options::default())
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
        self.db
            .put_cf(&cf, key, value)
            .map_err(|e| self.rocks_error(e))
    }

    /// The value under `key`, if any.
    pub fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(None);
        };
        self.db.get_cf(&cf, key).map_err(|e| self.rocks_error(e))
    }

    /// Removes `key`.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        self.db.delete_cf(&cf, key).map_err(|e| self.rocks_error(e))
    }

    /// Applies `batch` atomically.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let families = batch
            .databases
            .iter()
            .map(|d| self.column_family(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                BatchOp::Put {
                    database,
                    key,
                    value,
                } => rocks_batch.put_cf(&families[*database], key, value),
                BatchOp::Delete { database, key } => {
                    rocks_batch.delete_cf(&families[*database], key)
                }
            }
        }
        self.db.write(rocks_batch).map_err(|e| self.rocks_error(e))
    }

    /// The records of `database` in `range`, in key order.
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<Vec<KeyValue>, StoreError> {
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(Vec::new());
        };
        let (start, end, prefix) = match range {
            KeyRange::All => (Bound::Unbounded, Bound::Unbounded, None),
            KeyRange::Prefix(p) => (Bound::Included(p.clone()), Bound::Unbounded, Some(p)),
            KeyRange::Range { start, end } => (start, end, None),
        };
        let mut iter = self.db.raw_iterator_cf(&cf);
        match &start {
            Bound::Unbounded => iter.seek_to_first(),
            Bound::Included(s) | Bound::Excluded(s) => iter.seek(s),
        }
        let mut records = Vec::new();
        while let Some((key, value)) = iter.item() {
            let after_start = !matches!(&start, Bound::Excluded(s) if key == s.as_slice());
            let before_end = match &end {
                Bound::Unbounded => true,
                Bound::Included(e) => key <= e.as_slice(),
                Bound::Excluded(e) => key < e.as_slice(),
            } && prefix.as_ref().is_none_or(|p| key.starts_with(p));
            if !before_end {
                break;
            }
            if after_start {
                records.push((key.to_vec(), value.to_vec()));
            }
            iter.next();
        }
        iter.status().map_err(|e| self.rocks_error(e))?;
        Ok(records)
    }

    /// Calls `f` with every record of `database`, in key order, without collecting them.
    pub fn for_each(
        &self,
        database: &str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        let mut iter = self.db.raw_iterator_cf(&cf);
        iter.seek_to_first();
        while let Some((key, value)) = iter.item() {
            f(key, value)?;
            iter.next();
        }
        iter.status().map_err(|e| self.rocks_error(e))
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
