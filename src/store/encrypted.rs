//! The encrypted node store: RocksDB underneath, every value sealed under its database's
//! data key, the keystore in a reserved column family changed only by one synced write.
//! Opening, reading and key management live here; writing in `writes`, scans in `scan`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::engine::{create_with_marker, open_existing, read_applied, Db, KEYSTORE_CF};
use super::scan::open_record;
use super::sealer::SealerSlot;
use super::{refuse_reserved, validate_database_name, StoreError, StoreOptions, StoreTick};
use crate::clock::Timestamp;
use crate::crash::CrashPoint;
use crate::durable::recover_dir;
use crate::keys::{KeysError, Keystore, KeystoreStatus, NodeIdentity, StoreId};
use crate::kms::Kms;

const KEYSTORE_KEY: &[u8] = b"keystore";

thread_local! {
    /// Associated data is built per record; one buffer per thread, never freed.
    pub(super) static AAD_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An open node store. Share it between threads with `Arc`.
pub struct Store {
    pub(super) db: Db,
    pub(super) id: StoreId,
    pub(super) path: PathBuf,
    pub(super) kms: Arc<dyn Kms>,
    keystore: RwLock<Arc<Keystore>>,
    /// Serializes keystore changes; readers never wait on it. Lock order: this mutex,
    /// then `keystore` for the instant of the swap.
    keystore_writer: Mutex<()>,
    pub(super) options: StoreOptions,
    pub(super) write_options: rocksdb::WriteOptions,
    /// The second thread that seals half of each large batch.
    pub(super) sealer: SealerSlot,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("keystore", &self.keystore())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Creates a new store at `path` (absent or empty), with a master key wrapped by `cmk`
    /// (key id, ARN, alias name or alias ARN).
    pub fn create(
        path: impl AsRef<Path>,
        kms: Arc<dyn Kms>,
        cmk: &str,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.join("CURRENT").exists() {
            return Err(StoreError::AlreadyExists { path });
        }
        let identity = NodeIdentity {
            cluster: options.cluster.clone(),
            node: options.node.clone(),
        };
        let keystore = Keystore::create(
            kms.as_ref(),
            cmk,
            identity,
            options.backend,
            options.clock.now(),
        )?;
        let db = create_with_marker(&path, KEYSTORE_CF, options.block_cache_bytes)?;
        let store = Store::assemble(db, path, kms, keystore, options);
        store.persist_keystore(&store.keystore())?;
        Ok(store)
    }

    /// Opens an existing store. `cmk` must name the key that wraps its master key; the
    /// store's data is readable only if that key is enabled and the caller may decrypt.
    pub fn open(
        path: impl AsRef<Path>,
        kms: Arc<dyn Kms>,
        cmk: &str,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        recover_dir(&path).map_err(|e| StoreError::RestoreRecovery {
            path: path.clone(),
            source: e,
        })?;
        let db = open_existing(&path, KEYSTORE_CF, options.block_cache_bytes)?;
        super::snapshot::remove_abandoned_checkpoints(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let rocks = |source| StoreError::RocksDb {
            path: path.clone(),
            source,
        };
        let bytes = {
            let cf = db
                .cf_handle(KEYSTORE_CF)
                .ok_or_else(|| StoreError::NotAStore { path: path.clone() })?;
            db.get_cf(&cf, KEYSTORE_KEY)
                .map_err(rocks)?
                .ok_or_else(|| StoreError::NotAStore { path: path.clone() })?
        };
        let given = kms
            .describe_key(cmk)
            .map_err(|source| StoreError::CmkUnusable {
                cmk: cmk.to_string(),
                source,
            })?;
        let keystore = Keystore::unwrap(&bytes, kms.as_ref(), options.backend)?;
        if keystore.cmk_arn() != given.arn {
            return Err(StoreError::WrongCmk {
                store: keystore.store_id(),
                expected: keystore.cmk_arn().to_string(),
                given: given.arn,
            });
        }
        let store = Store::assemble(db, path, kms, keystore, options);
        if store.keystore().needs_upgrade() {
            let _writer = store.lock_keystore_writer();
            let upgraded = store.keystore().upgraded(store.kms.as_ref())?;
            store.install_keystore(upgraded)?;
        }
        Ok(store)
    }

    fn assemble(
        db: Db,
        path: PathBuf,
        kms: Arc<dyn Kms>,
        keystore: Keystore,
        options: StoreOptions,
    ) -> Self {
        let mut write_options = rocksdb::WriteOptions::default();
        write_options.set_sync(options.sync_writes);
        Store {
            db,
            id: keystore.store_id(),
            path,
            kms,
            keystore: RwLock::new(Arc::new(keystore)),
            keystore_writer: Mutex::new(()),
            options,
            write_options,
            sealer: SealerSlot::default(),
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's identity, bound into every record.
    pub fn id(&self) -> StoreId {
        self.id
    }

    /// The KMS this store calls (once at open, and when keys rotate).
    pub fn kms(&self) -> &Arc<dyn Kms> {
        &self.kms
    }

    /// The current keystore. Cheap: an `Arc` clone.
    pub fn keystore(&self) -> Arc<Keystore> {
        Arc::clone(&self.borrow_keystore())
    }

    /// The current keystore under its read lock, for one point operation's lookups (no
    /// count of the `Arc` touched); held for no more than that operation's seal or open.
    pub(super) fn borrow_keystore(&self) -> RwLockReadGuard<'_, Arc<Keystore>> {
        self.keystore.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The key hierarchy, safe to print: CMK, master key, data keys per database.
    pub fn status(&self) -> KeystoreStatus {
        let keystore = self.keystore();
        let mut status = keystore.status(self.now());
        status.master_key_next_rotation = self
            .options
            .master_key_rotation
            .map(|period| keystore.master_key_created().saturating_add(period));
        status
    }

    pub(super) fn now(&self) -> Timestamp {
        self.options.clock.now()
    }

    pub(super) fn lock_keystore_writer(&self) -> MutexGuard<'_, ()> {
        self.keystore_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Master-key rotation: a new master key wrapped by the store's CMK, every data key
    /// re-wrapped, one synced keystore write. No record is read or rewritten. Returns the
    /// new master-key version.
    pub fn rotate_master_key(&self) -> Result<u32, StoreError> {
        let _writer = self.lock_keystore_writer();
        let next = self
            .keystore()
            .with_new_master_key(self.kms.as_ref(), self.now())?;
        let version = next.master_key_version();
        self.install_keystore(next)?;
        Ok(version)
    }

    /// CMK rotation: the master key re-wrapped under `cmk` (key id, ARN or alias), after
    /// checking that `cmk` decrypts what it wrapped. The old CMK is not needed afterwards.
    pub fn rewrap_master_key(&self, cmk: &str) -> Result<(), StoreError> {
        let _writer = self.lock_keystore_writer();
        let next = self.keystore().with_cmk(self.kms.as_ref(), cmk)?;
        self.install_keystore(next)
    }

    /// Gives `database` a new active data key now; the old one keeps decrypting.
    pub fn roll_data_key(&self, database: &str) -> Result<u32, StoreError> {
        validate_database_name(database)?;
        let _writer = self.lock_keystore_writer();
        self.ensure_column_family(database)?;
        let next = self.keystore().with_new_data_key(
            database,
            self.options.data_key_limits.first_reservation(),
            self.now(),
        )?;
        let id = next.active_data_key(database).map_or(0, |k| k.id());
        self.install_keystore(next)?;
        Ok(id)
    }

    /// Runs what the clock has made due: master-key rotation, data-key rollover by age.
    pub fn tick(&self) -> Result<StoreTick, StoreError> {
        let mut report = StoreTick::default();
        let now = self.now();
        let keystore = self.keystore();
        if self
            .options
            .master_key_rotation
            .is_some_and(|p| now.since(keystore.master_key_created()) >= p)
        {
            report.master_key_rotated_to = Some(self.rotate_master_key()?);
        }
        if let Some(max_age) = self.options.data_key_limits.max_age {
            for database in keystore.databases() {
                if keystore
                    .active_data_key(database)
                    .is_some_and(|k| now.since(k.created()) >= max_age)
                {
                    self.roll_data_key(database)?;
                    report.data_keys_rolled.push(database.to_string());
                }
            }
        }
        Ok(report)
    }

    /// Every database that has been written to, in name order.
    pub fn databases(&self) -> Vec<String> {
        self.keystore()
            .databases()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    pub(super) fn rocks_error(&self, source: rocksdb::Error) -> StoreError {
        StoreError::RocksDb {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `keystore` in one synced write. Callers hold `keystore_writer`.
    pub(super) fn persist_keystore(&self, keystore: &Keystore) -> Result<(), StoreError> {
        let cf = self
            .db
            .cf_handle(KEYSTORE_CF)
            .ok_or_else(|| StoreError::NotAStore {
                path: self.path.clone(),
            })?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(&cf, KEYSTORE_KEY, keystore.encode());
        let mut synced = rocksdb::WriteOptions::default();
        synced.set_sync(true);
        self.db.crash_point(CrashPoint::KeystoreWrite)?;
        self.db
            .write_opt(batch, &synced)
            .map_err(|e| self.rocks_error(e))
    }

    /// Persists `next` and makes it current. Callers hold `keystore_writer`.
    pub(super) fn install_keystore(&self, next: Keystore) -> Result<(), StoreError> {
        self.persist_keystore(&next)?;
        *self.keystore.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// The column family of a database that has a data key, hence a column family.
    pub(super) fn column_family(
        &self,
        database: &str,
    ) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>, StoreError> {
        self.db
            .cf_handle(database)
            .ok_or_else(|| self.missing_family(database))
    }

    pub(super) fn missing_family(&self, database: &str) -> StoreError {
        StoreError::Keys(KeysError::Corrupt {
            store: self.id(),
            reason: format!("database {database:?} has a data key but no column family"),
        })
    }

    pub(super) fn ensure_column_family(&self, database: &str) -> Result<(), StoreError> {
        if self.db.cf_handle(database).is_none() {
            self.db.crash_point(CrashPoint::RecordWrite)?;
            self.db
                .create_family(database)
                .map_err(|e| self.rocks_error(e))?;
        }
        Ok(())
    }

    /// The value under `key`, or `None`; a database never written to holds nothing.
    pub fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        refuse_reserved(database)?;
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(None);
        };
        let Some(stored) = self
            .db
            .get_pinned_cf(&cf, key)
            .map_err(|e| self.rocks_error(e))?
        else {
            return Ok(None);
        };
        let mut value = Vec::new();
        AAD_SCRATCH.with_borrow_mut(|aad| {
            open_record(
                &self.borrow_keystore(),
                &mut None,
                database,
                key,
                &stored,
                aad,
                &mut value,
            )
        })?;
        Ok(Some(value))
    }

    /// The last cluster write this store applied (0: none).
    pub fn applied(&self) -> Result<u64, StoreError> {
        read_applied(&self.db, KEYSTORE_CF, &self.path)
    }

    /// The column families of every database, and the keystore's.
    fn column_families(&self) -> impl Iterator<Item = Arc<rocksdb::BoundColumnFamily<'_>>> {
        let names = self.databases();
        names
            .into_iter()
            .chain([KEYSTORE_CF.to_string()])
            .filter_map(|name| self.db.cf_handle(&name))
    }

    /// Flushes memtables to SST files.
    pub fn flush(&self) -> Result<(), StoreError> {
        for cf in self.column_families() {
            self.db.flush_cf(&cf).map_err(|e| self.rocks_error(e))?;
        }
        self.db.flush_wal(true).map_err(|e| self.rocks_error(e))
    }

    /// Compacts every database fully.
    pub fn compact(&self) -> Result<(), StoreError> {
        for cf in self.column_families() {
            self.db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }
}
