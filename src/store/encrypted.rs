//! The encrypted node store: RocksDB underneath, every value sealed under its database's
//! data key, the keystore in a reserved column family changed only by one synced write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::batch::BatchOp;
use super::engine::{
    create_with_marker, open_existing, read_applied, stamp_applied, Db, KEYSTORE_CF,
};
use super::scan::open_record;
use super::sealer::{InFlight, SealJob, SealerSlot, PARALLEL_MIN_PUTS};
use super::{
    display_key, refuse_reserved, validate_database_name, StoreError, StoreOptions, StoreTick,
    WriteBatch,
};
use crate::clock::Timestamp;
use crate::crash::CrashPoint;
use crate::durable::recover_dir;
use crate::keys::{
    DataKey, KeysError, Keystore, KeystoreStatus, NodeIdentity, SealError, SealStep, StoreId,
};
use crate::kms::Kms;

const KEYSTORE_KEY: &[u8] = b"keystore";

thread_local! {
    /// Associated data is built per record; one buffer per thread, never freed.
    static AAD_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// A put's sealed record, which RocksDB copies: one buffer per thread, reused.
    static SEALED_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer larger than this is not kept for the next put.
const KEPT_SCRATCH_BYTES: usize = 1 << 20;

/// Runs `f` with this thread's empty sealed-record buffer (a fresh one if it is in use).
fn with_sealed_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SEALED_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut sealed) => {
            sealed.clear();
            let result = f(&mut sealed);
            if sealed.capacity() > KEPT_SCRATCH_BYTES {
                *sealed = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// An open node store. Share it between threads with `Arc`.
pub struct Store {
    pub(super) db: Db,
    id: StoreId,
    pub(super) path: PathBuf,
    pub(super) kms: Arc<dyn Kms>,
    keystore: RwLock<Arc<Keystore>>,
    /// Serializes keystore changes; readers never wait on it. Lock order: this mutex,
    /// then `keystore` for the instant of the swap.
    keystore_writer: Mutex<()>,
    options: StoreOptions,
    write_options: rocksdb::WriteOptions,
    /// The second thread that seals half of each large batch.
    sealer: SealerSlot,
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
        Arc::clone(&self.keystore.read().unwrap_or_else(|p| p.into_inner()))
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
    fn column_family(
        &self,
        database: &str,
    ) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>, StoreError> {
        self.db
            .cf_handle(database)
            .ok_or_else(|| self.missing_family(database))
    }

    fn missing_family(&self, database: &str) -> StoreError {
        StoreError::Keys(KeysError::Corrupt {
            store: self.id(),
            reason: format!("database {database:?} has a data key but no column family"),
        })
    }

    fn ensure_column_family(&self, database: &str) -> Result<(), StoreError> {
        if self.db.cf_handle(database).is_none() {
            self.db.crash_point(CrashPoint::RecordWrite)?;
            self.db
                .create_family(database)
                .map_err(|e| self.rocks_error(e))?;
        }
        Ok(())
    }

    /// The data key for one more seal in `database`, following the keystore's
    /// [`SealStep`]s: reservations and rollovers are persisted (one synced write each)
    /// before a key seals under them; a database gets its column family with its first key.
    fn key_for_seal(&self, database: &str) -> Result<Arc<DataKey>, StoreError> {
        let limits = self.options.data_key_limits;
        loop {
            if let SealStep::Seal(key) = self
                .keystore()
                .seal_step(database, &limits, || self.now())?
            {
                return Ok(key);
            }
            let _writer = self.lock_keystore_writer();
            // Another writer may have persisted what was needed meanwhile: decide again.
            if let SealStep::Persist(next) = self
                .keystore()
                .seal_step(database, &limits, || self.now())?
            {
                validate_database_name(database)?;
                self.ensure_column_family(database)?;
                self.install_keystore(next)?;
            }
        }
    }

    /// Seals `value` for `record_key` in `database` with `cached` (the database's key as a
    /// batch last used it), replacing it whenever its reservation is spent; appends the
    /// sealed record to `out`.
    fn seal(
        &self,
        cached: &mut Option<Arc<DataKey>>,
        database: &str,
        record_key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        loop {
            if let Some(key) = cached.as_ref() {
                match key.seal_record_into(self.id, database, record_key, value, aad, out) {
                    Ok(()) => return Ok(()),
                    Err(SealError::ReservationSpent { .. }) => {}
                    Err(SealError::Crypto(e)) => {
                        return Err(StoreError::Corrupt {
                            database: database.to_string(),
                            key: display_key(record_key),
                            reason: format!("sealing failed: {e}"),
                        })
                    }
                }
            }
            *cached = Some(self.key_for_seal(database)?);
        }
    }

    /// Seals `value` under `database`'s active data key and stores it under `key`.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        with_sealed_scratch(|sealed| {
            AAD_SCRATCH
                .with_borrow_mut(|aad| self.seal(&mut None, database, key, value, aad, sealed))?;
            let cf = self.column_family(database)?;
            self.db.crash_point(CrashPoint::RecordWrite)?;
            self.db
                .put_cf_opt(&cf, key, &*sealed, &self.write_options)
                .map_err(|e| self.rocks_error(e))
        })
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
        let keystore = self.keystore();
        let mut value = Vec::new();
        AAD_SCRATCH.with_borrow_mut(|aad| {
            open_record(
                &keystore, &mut None, database, key, &stored, aad, &mut value,
            )
        })?;
        Ok(Some(value))
    }

    /// Deletes `key` from `database`; deleting what is absent is not an error.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        validate_database_name(database)?;
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db
            .delete_cf_opt(&cf, key, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// Applies every put and delete of `batch`, in any number of databases, atomically.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.write_batch(batch, None)
    }

    /// Applies `batch` as cluster write `sequence`: the sequence lands atomically with
    /// the data, so a node that missed a write is seen to be behind.
    pub fn write_at(&self, batch: &WriteBatch, sequence: u64) -> Result<(), StoreError> {
        self.write_batch(batch, Some(sequence))
    }

    /// The last cluster write this store applied (0: none).
    pub fn applied(&self) -> Result<u64, StoreError> {
        read_applied(&self.db, KEYSTORE_CF, &self.path)
    }

    fn write_batch(&self, batch: &WriteBatch, sequence: Option<u64>) -> Result<(), StoreError> {
        for database in batch.databases() {
            validate_database_name(database)?;
        }
        // Each database's data key and column family, resolved once per batch; a key is
        // looked up again only when its reserved uses run out.
        let mut keys: Vec<Option<Arc<DataKey>>> = vec![None; batch.databases().len()];
        let mut families: Vec<_> = batch
            .databases()
            .iter()
            .map(|d| self.db.cf_handle(d))
            .collect();
        let mut ahead = self.seal_ahead(batch, &mut keys)?;
        let mut sealed = Vec::new();
        let mut rocks_batch = rocksdb::WriteBatch::default();
        AAD_SCRATCH.with_borrow_mut(|aad| {
            for (index, op) in batch.ops().iter().enumerate() {
                let (database, key, value) = match op {
                    BatchOp::Put {
                        database,
                        key,
                        value,
                    } => (*database, key, value),
                    // A delete in a database that never existed deletes nothing.
                    BatchOp::Delete { database, key } => {
                        if let Some(Some(cf)) = families.get(*database) {
                            rocks_batch.delete_cf(cf, key);
                        }
                        continue;
                    }
                };
                let (Some(name), Some(cached), Some(family)) = (
                    batch.databases().get(database),
                    keys.get_mut(database),
                    families.get_mut(database),
                ) else {
                    continue;
                };
                let from_helper = match ahead.as_mut() {
                    Some((split, in_flight)) if index >= *split => {
                        in_flight.job().and_then(SealJob::take)
                    }
                    _ => None,
                };
                let record = match from_helper {
                    Some(record) => record,
                    None => {
                        sealed.clear();
                        self.seal(cached, name, key, value, aad, &mut sealed)?;
                        &sealed
                    }
                };
                if family.is_none() {
                    *family = Some(self.column_family(name)?);
                }
                let cf = family.as_ref().ok_or_else(|| self.missing_family(name))?;
                rocks_batch.put_cf(cf, key, record);
            }
            Ok::<(), StoreError>(())
        })?;
        if let Some(sequence) = sequence {
            stamp_applied(
                &mut rocks_batch,
                &self.db,
                KEYSTORE_CF,
                sequence,
                &self.path,
            )?;
        }
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db
            .write_opt(rocks_batch, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// Hands the second half of a large `batch`'s puts to the store's second thread to
    /// seal while this one seals the first; returns where that half starts. Only where
    /// every database's key, resolved here into `keys` (in database order, as the batch
    /// first names them), has reserved uses enough for all the batch's puts.
    fn seal_ahead(
        &self,
        batch: &WriteBatch,
        keys: &mut [Option<Arc<DataKey>>],
    ) -> Result<Option<(usize, InFlight<'_>)>, StoreError> {
        let mut puts = vec![0u64; keys.len()];
        for op in batch.ops() {
            if let BatchOp::Put { database, .. } = op {
                if let Some(n) = puts.get_mut(*database) {
                    *n += 1;
                }
            }
        }
        // A seeded thread keeps its nonces to itself, so that a replay seals the same bytes.
        if puts.iter().sum::<u64>() < PARALLEL_MIN_PUTS as u64 || crate::crypto::is_thread_seeded()
        {
            return Ok(None);
        }
        for (index, name) in batch.databases().iter().enumerate() {
            if let (Some(slot @ None), Some(1..)) = (keys.get_mut(index), puts.get(index)) {
                *slot = Some(self.key_for_seal(name)?);
            }
        }
        let covered = keys.iter().zip(&puts).all(|(key, &needed)| {
            needed == 0
                || key
                    .as_ref()
                    .is_some_and(|k| k.reserved_uses().saturating_sub(k.uses()) >= needed)
        });
        let Some(mut sealer) = covered.then(|| self.sealer.borrow()).flatten() else {
            return Ok(None);
        };
        let split = batch.ops().len() / 2;
        let job = sealer.job();
        job.prepare(self.id, batch.databases(), keys);
        for op in batch.ops().get(split..).unwrap_or_default() {
            if let BatchOp::Put {
                database,
                key,
                value,
            } = op
            {
                job.push(*database, key, value);
            }
        }
        Ok(InFlight::send(&self.sealer, sealer).map(|in_flight| (split, in_flight)))
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
