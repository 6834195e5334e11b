//! One node's storage engine: RocksDB underneath, every value sealed (or, for a node
//! without encryption at rest, stored as given).
//!
//! Record keys stay in plaintext so that they sort; values are sealed before RocksDB sees
//! them, so no SST file, WAL or memtable flush holds a plaintext value.
//!
//! | file | owns |
//! |---|---|
//! | `encrypted` | [`Store`]: the encrypted node, its keystore, seal on put, open on get and scan |
//! | `plain` | [`PlainStore`]: a node without encryption at rest |
//! | `node` | [`Node`]: either kind, behind one interface |
//! | `batch` | [`WriteBatch`] |
//! | `engine` | RocksDB's options, store markers, the cursor every scan uses |
//! | `snapshot` | snapshot archives, [`SnapshotStorage`] (a directory, an S3 bucket), restore |

mod batch;
mod encrypted;
mod engine;
mod node;
mod plain;
mod scan;
mod sealer;
mod snapshot;
mod writes;

/// When data keys roll over; see [`crate::keys::DataKeyLimits`].
pub use crate::keys::DataKeyLimits;
pub use batch::WriteBatch;
pub use encrypted::Store;
pub use engine::{
    column_family_options, rocksdb_options, DEFAULT_BLOCK_CACHE_BYTES, HOLDER_FILE,
    MAX_TOTAL_WAL_BYTES,
};
pub use node::{Node, NodeScan};
pub use plain::{is_plain_store, PlainScan, PlainStore};
pub use scan::Scan;
pub use snapshot::{
    check_snapshot_key, list_snapshots, restore_snapshot, snapshot_header, snapshot_info,
    stage_restore, valid_snapshot_id, verify_snapshot, DamagedSnapshot, LocalDirStorage,
    PendingSnapshot, RestoreTarget, SnapshotError, SnapshotInfo, SnapshotListing, SnapshotStorage,
};
pub use snapshot::{BadS3Location, S3Location, CREATES_LOCK};
#[cfg(feature = "aws")]
pub use snapshot::{S3Failure, S3Storage};

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{days, SharedClock, SystemClock};
use crate::crypto::Backend;
use crate::keys::{KeysError, StoreId};
use crate::kms::KmsError;

const MAX_DATABASE_NAME: usize = 64;
/// Names no data operation may use: the keystore's column family and the store markers.
const RESERVED_PREFIX: &str = "atrest.";

#[derive(Debug, thiserror::Error)]
/// Errors of the store: each names the store, database or key concerned.
// Each variant is documented; its fields are named for what they hold.
#[allow(missing_docs)]
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
    #[error("{path} holds no atrest store (Store::create makes one)")]
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
    #[error("{path}: {source}")]
    /// The store's directory cannot be made or changed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store at {path} is open in {holder}; a store is open in one place at a time: close it there, or wait for it")]
    /// Another process (or another handle in this one) has the store open.
    InUse { path: PathBuf, holder: String },
    #[error("the store at {path} is damaged and was not opened, so nothing in it is silently lost: {detail}; rebuild it from a healthy replica or restore it from a snapshot")]
    /// A write-ahead log or table that does not read back whole (RocksDB's detail names
    /// the file).
    Damaged { path: PathBuf, detail: String },
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
    /// Bytes of RocksDB block cache, shared by the node's databases; it holds stored
    /// (encrypted) blocks, so records are decrypted on every read whether cached or not.
    /// Up to 1 GiB it is RocksDB's hyper clock cache, above it RocksDB's LRU cache; 0
    /// caches nothing.
    pub block_cache_bytes: usize,
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
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
        }
    }
}

/// Atlas's master-key rotation period.
pub const DEFAULT_MASTER_KEY_ROTATION_DAYS: u64 = 90;

/// What [`Store::tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreTick {
    /// The new master-key version, if the master key was due and rotated.
    pub master_key_rotated_to: Option<u32>,
    /// Databases whose data key was due by age and rolled over.
    pub data_keys_rolled: Vec<String>,
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

impl KeyRange {
    /// The range as a start and an end bound; a prefix ends before the first key that
    /// does not start with it.
    pub fn bounds(self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        match self {
            KeyRange::All => (Bound::Unbounded, Bound::Unbounded),
            KeyRange::Prefix(p) => {
                let end = prefix_successor(&p).map_or(Bound::Unbounded, Bound::Excluded);
                (Bound::Included(p), end)
            }
            KeyRange::Range { start, end } => (start, end),
        }
    }
}

/// The least key greater than every key starting with `prefix`; `None` when every byte of
/// it is 0xff (no such key).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix.get(..=last)?.to_vec();
    if let Some(b) = end.last_mut() {
        *b += 1;
    }
    Some(end)
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
    if name.starts_with(RESERVED_PREFIX) {
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

/// Refuses the reserved names only: the cheap check of the read path, where a name that
/// was never written to simply holds nothing.
fn refuse_reserved(name: &str) -> Result<(), StoreError> {
    if name.starts_with(RESERVED_PREFIX) {
        return validate_database_name(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn reserved_names_are_refused() {
        assert!(validate_database_name("atrest.keystore").is_err());
        assert!(refuse_reserved("atrest.keystore").is_err());
        assert!(refuse_reserved("users").is_ok());
    }
}
