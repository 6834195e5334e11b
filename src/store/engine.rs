//! RocksDB as every node store uses it: the options, a database marked by the column
//! family that says what kind of store it is, closed with nothing left in its log, and a
//! cursor over a key range.

use std::ops::{Bound, Deref};
use std::path::Path;

use rocksdb::{
    AsColumnFamilyRef, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, DBWithThreadMode,
    MultiThreaded, Options,
};

use super::{KeyRange, StoreError};
use crate::crash::{reach, CrashPoint};

/// A crash point (see [`crate::crash`]) on the store at `path`, as a store error.
fn crash_point(path: &Path, point: CrashPoint) -> Result<(), StoreError> {
    reach(point).map_err(|crashed| StoreError::Io {
        path: path.to_path_buf(),
        source: crashed.into(),
    })
}

type Rocks = DBWithThreadMode<MultiThreaded>;

/// A node's RocksDB. Closing it flushes every column family first, so that a store closed
/// cleanly needs nothing from its write-ahead log: a log cut short or deleted while the
/// store is closed then loses nothing (RocksDB cannot tell such a cut from the torn last
/// record a crash leaves, which it must tolerate). A simulated crash ([`crate::crash`])
/// closes it without flushing, as a killed process would.
pub(super) struct Db {
    rocks: Rocks,
    /// The block cache every column family of this store shares, new ones too.
    cache: rocksdb::Cache,
    /// The column families open, so that closing flushes them without reading the
    /// MANIFEST again to list them.
    families: std::sync::Mutex<Vec<String>>,
}

impl Db {
    fn new(rocks: Rocks, cache: rocksdb::Cache, families: Vec<String>) -> Self {
        Db {
            rocks,
            cache,
            families: std::sync::Mutex::new(families),
        }
    }

    /// Creates a column family with the store's options.
    pub(super) fn create_family(&self, name: &str) -> Result<(), rocksdb::Error> {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        self.rocks
            .create_cf(name, &family_options_with(&self.cache))?;
        families.push(name.to_string());
        Ok(())
    }

    /// Reached before every change to this RocksDB (see [`crate::crash`]).
    pub(super) fn crash_point(&self, point: CrashPoint) -> Result<(), StoreError> {
        crash_point(self.rocks.path(), point)
    }

    /// The column families of the RocksDB at `path`, open or not.
    pub(super) fn list_cf(opts: &Options, path: &Path) -> Result<Vec<String>, rocksdb::Error> {
        Rocks::list_cf(opts, path)
    }
}

impl Deref for Db {
    type Target = Rocks;
    fn deref(&self) -> &Rocks {
        &self.rocks
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // A killed process flushes nothing: the next open replays the log, as it must.
        if crate::crash::has_crashed() {
            return;
        }
        // Best effort: a flush that fails leaves the records in the log, as a crash would.
        // One flush of every column family: one wait for the background job, not one each.
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let handles: Vec<_> = families
            .iter()
            .filter_map(|name| self.rocks.cf_handle(name))
            .collect();
        let handles: Vec<_> = handles.iter().collect();
        let _ = self
            .rocks
            .flush_cfs_opt(&handles, &rocksdb::FlushOptions::default());
    }
}

/// The encrypted store's marker, and the home of its keystore.
pub(super) const KEYSTORE_CF: &str = "atrest.keystore";

/// Creates a RocksDB at `path` holding only the column family `marker`, which says what
/// kind of store it is (see [`open_existing`]); its column families share a block cache
/// of `block_cache_bytes`.
pub(super) fn create_with_marker(
    path: &Path,
    marker: &str,
    block_cache_bytes: usize,
) -> Result<Db, StoreError> {
    crash_point(path, CrashPoint::StoreCreate)?;
    // Record keys are plaintext: the store's directory is its owner's alone.
    std::fs::create_dir_all(path)
        .and_then(|()| {
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        })
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let cache = block_cache(block_cache_bytes);
    let rocks = Rocks::open_cf_descriptors(
        &rocksdb_options(),
        path,
        [ColumnFamilyDescriptor::new(
            marker,
            family_options_with(&cache),
        )],
    )
    .map_err(|source| opening_failed(path, marker, source))?;
    record_holder(path);
    let families = vec![
        rocksdb::DEFAULT_COLUMN_FAMILY_NAME.to_string(),
        marker.to_string(),
    ];
    Ok(Db::new(rocks, cache, families))
}

/// Who has a store open, beside RocksDB's own lock: what a second opener is told.
pub const HOLDER_FILE: &str = "atrest.holder";

/// Notes this process as the store's holder. Best effort: the lock itself is RocksDB's.
fn record_holder(path: &Path) {
    let program = std::env::args().next().unwrap_or_default();
    let _ = std::fs::write(
        path.join(HOLDER_FILE),
        format!("process {} ({program})", std::process::id()),
    );
}

/// RocksDB's error, or, when another opener holds the store's lock, who that is; for
/// damage, which file and what is still whole.
fn opening_failed(path: &Path, marker: &str, source: rocksdb::Error) -> StoreError {
    let text = source.to_string();
    if text.contains("LOCK") && (text.contains("lock") || text.contains("Resource")) {
        let holder = std::fs::read_to_string(path.join(HOLDER_FILE))
            .unwrap_or_else(|_| "another opener".into());
        return StoreError::InUse {
            path: path.to_path_buf(),
            holder,
        };
    }
    if source.kind() == rocksdb::ErrorKind::Corruption {
        return StoreError::Damaged {
            path: path.to_path_buf(),
            detail: format!("{text}{}", damage_report(path, marker)),
        };
    }
    StoreError::RocksDb {
        path: path.to_path_buf(),
        source,
    }
}

/// What RocksDB's own log names as damaged, and what the store holds whole up to the
/// damage: read from a read-only open that recovers up to the first bad record (nothing
/// is written, the store stays as it is).
fn damage_report(path: &Path, marker: &str) -> String {
    let mut report = String::new();
    let info_log = std::fs::read_to_string(path.join("LOG")).unwrap_or_default();
    let mut files: Vec<&str> = info_log
        .lines()
        .filter_map(|line| line.split_once(": dropping ").map(|(before, _)| before))
        .filter_map(|before| before.rsplit(' ').next())
        .collect();
    files.dedup();
    if !files.is_empty() {
        report.push_str(&format!(" in {}", files.join(", ")));
    }
    let mut opts = rocksdb_options();
    opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    let families = Db::list_cf(&Options::default(), path).unwrap_or_default();
    if let Ok(whole) = Rocks::open_cf_for_read_only(&opts, path, &families, false) {
        report.push_str(&format!(
            "; it holds every write whole up to RocksDB sequence {}",
            whole.latest_sequence_number()
        ));
        if let Ok(applied @ 1..) = read_applied(&whole, marker, path) {
            report.push_str(&format!(" (cluster write {applied})"));
        }
    }
    report
}

/// Opens the RocksDB at `path` with all its column families, if one of them is `marker`
/// (the keystore's, or the unencrypted store's): else it is not a store of that kind.
/// The column families share a block cache of `block_cache_bytes`.
pub(super) fn open_existing(
    path: &Path,
    marker: &str,
    block_cache_bytes: usize,
) -> Result<Db, StoreError> {
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
    let cache = block_cache(block_cache_bytes);
    let rocks = Rocks::open_cf_descriptors(
        &rocksdb_options(),
        path,
        families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, family_options_with(&cache))),
    )
    .map_err(|source| opening_failed(path, marker, source))?;
    record_holder(path);
    Ok(Db::new(rocks, cache, families))
}

/// A node store's block cache unless told otherwise: RocksDB's own default size, shared
/// by every database of the node instead of one such cache each.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 32 << 20;

/// The options of every column family of a store: tables read through one block cache of
/// `block_cache_bytes` shared by all of them (a plaintext baseline given the same
/// measures exactly what encryption adds).
pub fn column_family_options(block_cache_bytes: usize) -> Options {
    family_options_with(&block_cache(block_cache_bytes))
}

/// The charge the block cache's table is sized for: RocksDB's default block of 4 KiB (the
/// estimate RocksDB advises; its self-sizing variant is experimental).
const BLOCK_BYTES: usize = 4 << 10;

/// The largest block cache that is a clock cache. RocksDB allocates a clock cache's table
/// whole when it makes the cache, 64 bytes a slot for every 2.9 KiB of capacity: 32 MiB at
/// this size, and for a capacity meant as no bound (`usize::MAX`) more than any machine
/// holds, which RocksDB answers by aborting the process.
const CLOCK_CACHE_MAX_BYTES: usize = 1 << 30;

/// A node's block cache: up to [`CLOCK_CACHE_MAX_BYTES`], RocksDB's hyper clock cache. Its
/// LRU cache splits a 32 MiB cache into 64 shards of 512 KiB, each evicting on its own, so
/// data near the cache's size already misses in the shards it fills unevenly (an encrypted
/// store's records are 33 bytes longer than their plaintext and reach that size first); the
/// clock cache holds what its capacity says, and finds a block without a lock. Past that
/// size the LRU cache's 64 shards hold 16 MiB or more each, and fill evenly. A clock cache
/// of no bytes would be a table of 2^63 slots (RocksDB 10.4), so none is one byte: it
/// caches nothing either.
fn block_cache(bytes: usize) -> rocksdb::Cache {
    if bytes > CLOCK_CACHE_MAX_BYTES {
        rocksdb::Cache::new_lru_cache(bytes)
    } else {
        rocksdb::Cache::new_hyper_clock_cache(bytes.max(1), BLOCK_BYTES)
    }
}

fn family_options_with(cache: &rocksdb::Cache) -> Options {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts
}

/// The write-ahead logs a store keeps: twice what one busy database's two memtables
/// (64 MiB each, RocksDB's default) log, so a busy database is never flushed early for it.
pub const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

/// The RocksDB options of every store; a plaintext baseline opened with them measures
/// exactly what encryption adds.
pub fn rocksdb_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // RocksDB starts a new info log at every open; keep a few, not one per open forever.
    opts.set_keep_log_file_num(3);
    // A damaged write-ahead log is an error at open, never a silent loss of the records
    // after the damage (RocksDB's default recovery stops at the first bad record, quietly).
    // Only a torn last record is tolerated: the write a crash interrupted, never
    // acknowledged. The MANIFEST tracks the WALs, so a missing one is noticed too.
    opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    opts.set_track_and_verify_wals_in_manifest(true);
    opts.set_max_background_jobs(2);
    // RocksDB keeps every log from the oldest write a column family has not flushed, and
    // the keystore's family is written at creation and then seldom: unbounded, it pins
    // every log since (RocksDB's own bound is 4 times all memtables, 1.5 GiB for a store
    // of one database), all of it replayed at the next open. Past this bound RocksDB
    // flushes the families that pin the oldest log.
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    // RocksDB opens each column family's tables with this many threads, started at every
    // open whatever the number of tables: 16 by default, which for the few tables of a
    // node's databases costs more than the opening itself (a fuzz run that reopens stores
    // spent most of its time starting threads).
    opts.set_max_file_opening_threads(1);
    opts.set_log_level(rocksdb::LogLevel::Warn);
    opts
}

/// Where a node keeps the last cluster write it applied, in its marker column family.
const APPLIED_KEY: &[u8] = b"atrest.applied";

/// The last cluster write sequence the store at `db` applied (0: none).
pub(super) fn read_applied(db: &Rocks, marker: &str, path: &Path) -> Result<u64, StoreError> {
    let rocks = |source| StoreError::RocksDb {
        path: path.to_path_buf(),
        source,
    };
    let cf = db.cf_handle(marker).ok_or_else(|| StoreError::NotAStore {
        path: path.to_path_buf(),
    })?;
    let stored = db.get_cf(&cf, APPLIED_KEY).map_err(rocks)?;
    Ok(stored
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Adds "sequence `sequence` applied" to `batch`, so that it lands with the batch's data.
pub(super) fn stamp_applied(
    batch: &mut rocksdb::WriteBatch,
    db: &Db,
    marker: &str,
    sequence: u64,
    path: &Path,
) -> Result<(), StoreError> {
    let cf = db.cf_handle(marker).ok_or_else(|| StoreError::NotAStore {
        path: path.to_path_buf(),
    })?;
    batch.put_cf(&cf, APPLIED_KEY, sequence.to_be_bytes());
    Ok(())
}

/// A record as RocksDB lends it: key and stored value.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// A position in one column family, moving forward through a key range.
pub(super) struct Cursor<'a> {
    iter: Option<DBRawIteratorWithThreadMode<'a, Rocks>>,
    end: Bound<Vec<u8>>,
}

impl<'a> Cursor<'a> {
    /// A cursor on the first key of `range` in `cf`.
    pub(super) fn new(db: &'a Db, cf: &impl AsColumnFamilyRef, range: KeyRange) -> Self {
        let mut iter = db.raw_iterator_cf_opt(cf, rocksdb::ReadOptions::default());
        let (start, end) = range.bounds();
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
        Cursor {
            iter: Some(iter),
            end,
        }
    }

    /// A cursor over nothing.
    pub(super) fn empty() -> Self {
        Cursor {
            iter: None,
            end: Bound::Unbounded,
        }
    }

    /// The record under the cursor while it is in range; an error if RocksDB failed.
    fn current(&self) -> Result<Option<Entry<'_>>, rocksdb::Error> {
        let Some(iter) = &self.iter else {
            return Ok(None);
        };
        match iter.item() {
            Some((key, value)) if before(key, &self.end) => Ok(Some((key, value))),
            Some(_) => Ok(None),
            None => iter.status().map(|()| None),
        }
    }

    /// Moves to the next record.
    fn advance(&mut self) {
        if let Some(iter) = &mut self.iter {
            iter.next();
        }
    }

    /// The record under the cursor made into a result by `read` (a copy, or a decryption),
    /// then a step forward; `None` at the end of the range, and after the first error,
    /// which is returned once. What every scan's `next` is.
    pub(super) fn next_with<T>(
        &mut self,
        path: &Path,
        read: impl FnOnce(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let result = match self.current() {
            Ok(None) => return None,
            Ok(Some((key, value))) => read(key, value),
            Err(source) => Err(StoreError::RocksDb {
                path: path.to_path_buf(),
                source,
            }),
        };
        if result.is_err() {
            self.iter = None;
        } else {
            self.advance();
        }
        Some(result)
    }
}

fn before(key: &[u8], end: &Bound<Vec<u8>>) -> bool {
    match end {
        Bound::Unbounded => true,
        Bound::Included(end) => key <= end.as_slice(),
        Bound::Excluded(end) => key < end.as_slice(),
    }
}
