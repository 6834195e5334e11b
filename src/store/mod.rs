//! One node's encrypted storage engine: RocksDB underneath, every value sealed.
//!
//! Owns the RocksDB instance of a node: one column family per database, the keystore in
//! a reserved column family (`atrest.keystore`, changed only by one synced write), and the
//! record path (seal on put, open on get and scan). Record keys stay in plaintext so that
//! they sort; values are sealed before RocksDB sees them, so no SST file, WAL or memtable
//! flush holds a plaintext value.

mod plain;
mod snapshot;

pub use plain::{is_plain_store, PlainStore};
pub use snapshot::{
    list_snapshots, restore_snapshot, snapshot_info, verify_snapshot, LocalDirStorage,
    PendingSnapshot, RestoreTarget, SnapshotError, SnapshotInfo, SnapshotStorage,
};

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rocksdb::{
    ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, DBWithThreadMode, MultiThreaded, Options,
};

use crate::clock::{days, SharedClock, SystemClock, Timestamp};
use crate::crypto::Backend;
use crate::format::Record;
use crate::keys::{DataKey, KeysError, Keystore, KeystoreStatus, NodeIdentity, StoreId};
use crate::kms::{Kms, KmsError};

type Db = DBWithThreadMode<MultiThreaded>;

const KEYSTORE_CF: &str = "atrest.keystore";
const KEYSTORE_KEY: &[u8] = b"keystore";
const MAX_DATABASE_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
/// Errors of the store: each names the store, database or key concerned.
pub enum StoreError {
    #[error("{0}")]
    /// The keystore or a KMS call on the master key failed.
    Keys(#[from] KeysError),
    #[error("CMK {given} is not the key of store {store}: its master key is wrapped by {expected}; open it with that key")]
    /// The CMK given is not the one wrapping the store's master key.
    WrongCmk {
        store: StoreId,
        expected: String,
        given: String,
    },
    #[error("cannot describe CMK {cmk}: {source}")]
    /// DescribeKey on the CMK given failed.
    CmkUnusable { cmk: String, source: KmsError },
    #[error("record {key} in database {database:?} cannot be read: {reason}")]
    /// A stored value does not open: altered, moved, or unknown data key.
    Corrupt {
        database: String,
        key: String,
        reason: String,
    },
    #[error("{path} holds no atrest store (create one with Store::create or `atrest init`)")]
    /// No store at the path.
    NotAStore { path: PathBuf },
    #[error("{path} already holds a store; open it instead")]
    /// A store exists at the path already.
    AlreadyExists { path: PathBuf },
    #[error("database name {name:?} is not valid: {reason}")]
    /// A database name outside the allowed alphabet or length.
    InvalidDatabaseName { name: String, reason: &'static str },
    /// A restore that died halfway could not be finished.
    #[error("{path}: finishing an interrupted restore failed: {source}; move the .NAME.restored-ID directory beside it to {path} by hand")]
    RestoreRecovery {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("RocksDB failed at {path}: {source}")]
    /// RocksDB reported an error.
    RocksDb {
        path: PathBuf,
        source: rocksdb::Error,
    },
}

impl StoreError {
    /// The KMS error underneath, if a KMS call failed: its hint says what to do.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            StoreError::Keys(e) => e.kms_error(),
            StoreError::CmkUnusable { source, .. } => Some(source),
            _ => None,
        }
    }
}

thread_local! {
    /// Associated data is built per record; one buffer per thread, never freed.
    static AAD_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The node's cluster (used at creation; afterwards the keystore's).
    pub cluster: String,
    /// The node's name (used at creation; afterwards the keystore's).
    pub node: String,
    /// The AES-GCM implementation.
    pub backend: Backend,
    /// The clock for key ages and rotation schedules.
    pub clock: SharedClock,
    /// fsync the WAL on every write. Off, as in RocksDB: a process crash loses nothing,
    /// a power loss may lose the last writes. Keystore changes are always synced.
    pub sync_writes: bool,
    /// Rotate the master key when it is this old (checked by [`Store::tick`]); `None`
    /// turns automatic rotation off. Atlas rotates every 90 days.
    pub master_key_rotation: Option<Duration>,
    /// When data keys roll over.
    pub data_key_limits: DataKeyLimits,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cluster: "cluster0".into(),
            node: "node-0".into(),
            backend: Backend::default(),
            clock: Arc::new(SystemClock),
            sync_writes: false,
            master_key_rotation: Some(days(DEFAULT_MASTER_KEY_ROTATION_DAYS)),
            data_key_limits: DataKeyLimits::default(),
        }
    }
}

/// Atlas's master-key rotation period.
pub const DEFAULT_MASTER_KEY_ROTATION_DAYS: u64 = 90;

/// When a database's active data key is replaced by a new one for new writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataKeyLimits {
    /// Seals per key. Random 96-bit nonces are safe for about 2^32 seals; the default,
    /// 2^30, stays well clear.
    pub max_uses: u64,
    /// Seals reserved per synced keystore write. A crash forgets at most one reservation,
    /// so counts only ever over-count.
    pub reservation: u64,
    /// Replace a key this old (checked by [`Store::tick`] and at each reservation).
    pub max_age: Option<Duration>,
}

impl Default for DataKeyLimits {
    fn default() -> Self {
        DataKeyLimits {
            max_uses: 1 << 30,
            reservation: 1 << 20,
            max_age: None,
        }
    }
}

impl DataKeyLimits {
    fn first_reservation(&self) -> u64 {
        self.reservation.clamp(1, self.max_uses.max(1))
    }
}

/// What [`Store::tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreTick {
    /// The new master-key version, if the master key was due and rotated.
    pub master_key_rotated_to: Option<u32>,
    /// Databases whose data key was due by age and rolled over.
    pub data_keys_rolled: Vec<String>,
}

/// An open node store. Share it between threads with `Arc`.
pub struct Store {
    db: Db,
    id: StoreId,
    path: PathBuf,
    kms: Arc<dyn Kms>,
    keystore: RwLock<Arc<Keystore>>,
    /// Serializes keystore changes; readers never wait on it. Lock order: this mutex,
    /// then `keystore` for the instant of the swap.
    keystore_writer: Mutex<()>,
    options: StoreOptions,
    write_options: rocksdb::WriteOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("keystore", &self.keystore())
            .finish_non_exhaustive()
    }
}

/// A record: its key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Which keys a scan visits, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// Every key.
    All,
    /// Keys starting with these bytes.
    Prefix(Vec<u8>),
    /// Keys between two bounds.
    Range {
        /// Where the range starts.
        start: Bound<Vec<u8>>,
        /// Where it ends.
        end: Bound<Vec<u8>>,
    },
}

/// Puts and deletes across databases, applied atomically by [`Store::write`].
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Each database once; operations refer to it by index.
    databases: Vec<String>,
    ops: Vec<BatchOp>,
}

#[derive(Clone, Debug)]
enum BatchOp {
    Put {
        database: usize,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        database: usize,
        key: Vec<u8>,
    },
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn database_index(&mut self, database: &str) -> usize {
        match self.databases.iter().position(|d| d == database) {
            Some(i) => i,
            None => {
                self.databases.push(database.to_string());
                self.databases.len() - 1
            }
        }
    }

    /// Adds a put of `value` under `key` in `database`.
    pub fn put(
        &mut self,
        database: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        let database = self.database_index(database);
        self.ops.push(BatchOp::Put {
            database,
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a delete of `key` in `database`.
    pub fn delete(&mut self, database: &str, key: impl Into<Vec<u8>>) -> &mut Self {
        let database = self.database_index(database);
        self.ops.push(BatchOp::Delete {
            database,
            key: key.into(),
        });
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A database name: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with `atrest.`.
pub fn validate_database_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| {
        Err(StoreError::InvalidDatabaseName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_DATABASE_NAME {
        return invalid("it must be 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return invalid("it may hold only letters, digits, '_', '-' and '.'");
    }
    if name.starts_with("atrest.") {
        return invalid("names starting with 'atrest.' are reserved");
    }
    Ok(())
}

/// Shows a record key in an error: as text when it is printable, else as hex.
fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => format!(
            "0x{}",
            key.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// Creates a RocksDB at `path` holding only the column family `marker`, which says what
/// kind of store it is (see [`open_existing`]).
fn create_with_marker(path: &Path, marker: &str) -> Result<Db, StoreError> {
    Db::open_cf_descriptors(
        &rocksdb_options(),
        path,
        [ColumnFamilyDescriptor::new(marker, Options::default())],
    )
    .map_err(|source| StoreError::RocksDb {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens the RocksDB at `path` with all its column families, if one of them is `marker`
/// (the keystore's, or the unencrypted store's): else it is not a store of that kind.
fn open_existing(path: &Path, marker: &str) -> Result<Db, StoreError> {
    let not_a_store = || StoreError::NotAStore {
        path: path.to_path_buf(),
    };
    if !path.join("CURRENT").exists() {
        return Err(not_a_store());
    }
    let rocks = |source| StoreError::RocksDb {
        path: path.to_path_buf(),
        source,
    };
    let families = Db::list_cf(&Options::default(), path).map_err(rocks)?;
    if !families.iter().any(|f| f == marker) {
        return Err(not_a_store());
    }
    Db::open_cf_descriptors(
        &rocksdb_options(),
        path,
        families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default())),
    )
    .map_err(rocks)
}

/// The RocksDB options of every store; a plaintext baseline opened with them measures
/// exactly what encryption adds.
pub fn rocksdb_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts
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
        let db = create_with_marker(&path, KEYSTORE_CF)?;
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
        snapshot::finish_interrupted_restore(&path).map_err(|e| StoreError::RestoreRecovery {
            path: path.clone(),
            source: e,
        })?;
        let db = open_existing(&path, KEYSTORE_CF)?;
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
        Ok(Store::assemble(db, path, kms, keystore, options))
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

    fn now(&self) -> Timestamp {
        self.options.clock.now()
    }

    fn lock_keystore_writer(&self) -> MutexGuard<'_, ()> {
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

    fn rocks_error(&self, source: rocksdb::Error) -> StoreError {
        StoreError::RocksDb {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `keystore` in one synced write. Callers hold `keystore_writer`.
    fn persist_keystore(&self, keystore: &Keystore) -> Result<(), StoreError> {
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
        self.db
            .write_opt(batch, &synced)
            .map_err(|e| self.rocks_error(e))
    }

    /// Persists `next` and makes it current. Callers hold `keystore_writer`.
    fn install_keystore(&self, next: Keystore) -> Result<(), StoreError> {
        self.persist_keystore(&next)?;
        *self.keystore.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// The active data key of `database`, creating the database (its column family and
    /// first data key) on first write.
    fn data_key_for_write(&self, database: &str) -> Result<Arc<DataKey>, StoreError> {
        if let Some(key) = self.keystore().active_data_key(database) {
            return Ok(Arc::clone(key));
        }
        validate_database_name(database)?;
        let _writer = self.lock_keystore_writer();
        let current = self.keystore();
        if let Some(key) = current.active_data_key(database) {
            return Ok(Arc::clone(key));
        }
        self.ensure_column_family(database)?;
        let next = current.with_new_data_key(
            database,
            self.options.data_key_limits.first_reservation(),
            self.now(),
        )?;
        let key = next
            .active_data_key(database)
            .map(Arc::clone)
            .ok_or_else(|| {
                StoreError::Keys(KeysError::Corrupt {
                    store: current.store_id(),
                    reason: "a new data key vanished".into(),
                })
            })?;
        self.install_keystore(next)?;
        Ok(key)
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
            self.db
                .create_cf(database, &Options::default())
                .map_err(|e| self.rocks_error(e))?;
        }
        Ok(())
    }

    /// The data key for one more seal in `database`, counted. When the count passes what
    /// the keystore has reserved, reserves more, or rolls over to a new key at the limit.
    fn data_key_for_seal(&self, database: &str) -> Result<Arc<DataKey>, StoreError> {
        self.count_seal(database, self.data_key_for_write(database)?)
    }

    /// Counts one seal with `key`, the active key of `database` as last seen; returns the
    /// key to seal with (another one if `key` reached its limit meanwhile).
    fn count_seal(
        &self,
        database: &str,
        mut key: Arc<DataKey>,
    ) -> Result<Arc<DataKey>, StoreError> {
        loop {
            let count = key.record_use();
            if count <= key.reserved_uses() {
                return Ok(key);
            }
            if let Some(reserved) = self.reserve_use(database, key.id(), count)? {
                return Ok(reserved);
            }
            key = self.data_key_for_write(database)?;
        }
    }

    /// Makes seal number `count` of data key `id` allowed by the persisted keystore and
    /// returns the key; or, at the key's limits, rolls `database` over to a new key and
    /// returns `None` (the count is spent: counts only ever over-count).
    fn reserve_use(
        &self,
        database: &str,
        id: u32,
        count: u64,
    ) -> Result<Option<Arc<DataKey>>, StoreError> {
        let _writer = self.lock_keystore_writer();
        let current = self.keystore();
        let Some(active) = current.active_data_key(database) else {
            return Ok(None);
        };
        if active.id() != id {
            return Ok(None); // another writer rolled over meanwhile
        }
        if count <= active.reserved_uses() {
            return Ok(Some(Arc::clone(active))); // another writer reserved meanwhile
        }
        let limits = self.options.data_key_limits;
        let now = self.now();
        let too_old = limits
            .max_age
            .is_some_and(|age| now.since(active.created()) >= age);
        if count > limits.max_uses || too_old {
            self.install_keystore(current.with_new_data_key(
                database,
                limits.first_reservation(),
                now,
            )?)?;
            return Ok(None);
        }
        let ceiling = active
            .reserved_uses()
            .saturating_add(limits.reservation.max(1))
            .max(count)
            .min(limits.max_uses);
        let next = current.with_reserved_uses(id, ceiling);
        let reserved = next.active_data_key(database).map(Arc::clone);
        self.install_keystore(next)?;
        Ok(reserved)
    }

    fn seal(
        &self,
        key: &DataKey,
        database: &str,
        record_key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        key.seal_record(self.id, database, record_key, value, aad)
            .map_err(|e| StoreError::Corrupt {
                database: database.to_string(),
                key: display_key(record_key),
                reason: format!("sealing failed: {e}"),
            })
    }

    /// Opens one stored value, checking that it belongs to this store, database and key.
    fn open_value(
        keystore: &Keystore,
        cached: &mut Option<Arc<DataKey>>,
        database: &str,
        record_key: &[u8],
        stored: &[u8],
        aad: &mut Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            database: database.to_string(),
            key: display_key(record_key),
            reason,
        };
        let record = Record::decode(stored).map_err(|e| corrupt(e.to_string()))?;
        // A scan meets the same key record after record: look it up, and check that it
        // belongs to this database, only when it changes.
        if cached.as_ref().is_none_or(|k| k.id() != record.data_key_id) {
            let key = keystore.data_key(record.data_key_id).ok_or_else(|| {
                corrupt(format!(
                    "it names data key {}, which this store does not hold (was it copied from another store?)",
                    record.data_key_id
                ))
            })?;
            if key.database() != database {
                return Err(corrupt(format!(
                    "it names data key {} of database {:?} (was it copied from another database?)",
                    key.id(),
                    key.database()
                )));
            }
            *cached = Some(Arc::clone(key));
        }
        let key = cached
            .as_ref()
            .ok_or_else(|| corrupt("no data key".into()))?;
        key.open_record(keystore.store_id(), database, record_key, &record, aad).map_err(|_| {
            corrupt("it does not authenticate: the stored bytes were altered, or moved from another key, database or store".into())
        })
    }

    /// Seals `value` under `database`'s active data key and stores it under `key`.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let data_key = self.data_key_for_seal(database)?;
        let sealed =
            AAD_SCRATCH.with_borrow_mut(|aad| self.seal(&data_key, database, key, value, aad))?;
        let cf = self.column_family(database)?;
        self.db
            .put_cf_opt(&cf, key, sealed, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// The value under `key`, or `None`; a database never written to holds nothing.
    pub fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
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
        AAD_SCRATCH
            .with_borrow_mut(|aad| {
                Store::open_value(&keystore, &mut None, database, key, &stored, aad)
            })
            .map(Some)
    }

    /// Deletes `key` from `database`; deleting what is absent is not an error.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        self.db
            .delete_cf_opt(&cf, key, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// Applies every put and delete of `batch`, in any number of databases, atomically.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        for database in &batch.databases {
            validate_database_name(database)?;
        }
        // Each database's data key and column family, resolved once per batch; a key is
        // looked up again only when its reserved uses run out.
        let mut keys: Vec<Option<Arc<DataKey>>> = vec![None; batch.databases.len()];
        let mut families = Vec::with_capacity(batch.databases.len());
        for database in &batch.databases {
            families.push(self.db.cf_handle(database));
        }
        let mut rocks_batch = rocksdb::WriteBatch::default();
        AAD_SCRATCH.with_borrow_mut(|aad| {
            for op in &batch.ops {
                match op {
                    BatchOp::Put {
                        database: index,
                        key,
                        value,
                    } => {
                        let database = &batch.databases[*index];
                        let data_key = match keys[*index].take() {
                            Some(k) => self.count_seal(database, k)?,
                            None => self.data_key_for_seal(database)?,
                        };
                        keys[*index] = Some(Arc::clone(&data_key));
                        if families[*index].is_none() {
                            families[*index] = Some(self.column_family(database)?);
                        }
                        let cf = families[*index]
                            .as_ref()
                            .ok_or_else(|| self.missing_family(database))?;
                        rocks_batch.put_cf(
                            cf,
                            key,
                            self.seal(&data_key, database, key, value, aad)?,
                        );
                    }
                    // A delete in a database that never existed deletes nothing.
                    BatchOp::Delete {
                        database: index,
                        key,
                    } => {
                        if let Some(cf) = &families[*index] {
                            rocks_batch.delete_cf(cf, key);
                        }
                    }
                }
            }
            Ok::<(), StoreError>(())
        })?;
        self.db
            .write_opt(rocks_batch, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// The records of `database` in `range`, in key order, each decrypted as it is read.
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<Scan<'_>, StoreError> {
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(Scan {
                iter: None,
                database: database.to_string(),
                keystore: self.keystore(),
                cached: None,
                aad: Vec::new(),
                end: Bound::Unbounded,
                prefix: None,
                failed: false,
            });
        };
        let mut iter = self
            .db
            .raw_iterator_cf_opt(&cf, rocksdb::ReadOptions::default());
        let (start, end, prefix) = match range {
            KeyRange::All => (Bound::Unbounded, Bound::Unbounded, None),
            KeyRange::Prefix(p) => (Bound::Included(p.clone()), Bound::Unbounded, Some(p)),
            KeyRange::Range { start, end } => (start, end, None),
        };
        match &start {
            Bound::Unbounded => iter.seek_to_first(),
            Bound::Included(s) => iter.seek(s),
            Bound::Excluded(s) => {
                iter.seek(s);
                if iter.key() == Some(s.as_slice()) {
                    iter.next();
                }
            }
        }
        Ok(Scan {
            iter: Some(iter),
            database: database.to_string(),
            keystore: self.keystore(),
            cached: None,
            aad: Vec::with_capacity(128),
            end,
            prefix,
            failed: false,
        })
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

/// An iterator over decrypted records. Stops at the first error, which it yields.
pub struct Scan<'a> {
    iter: Option<DBRawIteratorWithThreadMode<'a, Db>>,
    database: String,
    keystore: Arc<Keystore>,
    cached: Option<Arc<DataKey>>,
    aad: Vec<u8>,
    end: Bound<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    failed: bool,
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let iter = self.iter.as_mut()?;
        let Some((key, stored)) = iter.item() else {
            if let Err(e) = iter.status() {
                self.failed = true;
                return Some(Err(StoreError::RocksDb {
                    path: PathBuf::new(),
                    source: e,
                }));
            }
            return None;
        };
        let in_range = match &self.end {
            Bound::Unbounded => true,
            Bound::Included(end) => key <= end.as_slice(),
            Bound::Excluded(end) => key < end.as_slice(),
        } && self.prefix.as_ref().is_none_or(|p| key.starts_with(p));
        if !in_range {
            self.iter = None;
            return None;
        }
        let result = Store::open_value(
            &self.keystore,
            &mut self.cached,
            &self.database,
            key,
            stored,
            &mut self.aad,
        )
        .map(|value| (key.to_vec(), value));
        self.failed = result.is_err();
        iter.next();
        Some(result)
    }
}
