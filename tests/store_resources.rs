//! What a store holds on to: its write-ahead logs (a store closed cleanly needs nothing
//! from them, and those a running store keeps stay bounded although its keystore is seldom
//! written) and its block cache (which holds tables up to its capacity).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atrest::clock::SystemClock;
use atrest::kms::{Caller, CreateKeyRequest, Kms, LocalKms};
use atrest::store::{KeyRange, Store, StoreOptions, WriteBatch, MAX_TOTAL_WAL_BYTES};
use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel};

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    kms: Arc<dyn Kms>,
    cmk: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::in_memory(Arc::new(SystemClock));
        let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
        Fixture {
            path: dir.path().join("node0"),
            _dir: dir,
            kms: Arc::new(client),
            cmk,
        }
    }

    fn create(&self) -> Store {
        self.create_with(StoreOptions::default())
    }

    fn create_with(&self, options: StoreOptions) -> Store {
        Store::create(&self.path, self.kms.clone(), &self.cmk, options).unwrap()
    }

    fn open(&self) -> Store {
        self.open_with(StoreOptions::default())
    }

    fn open_with(&self, options: StoreOptions) -> Store {
        Store::open(&self.path, self.kms.clone(), &self.cmk, options).unwrap()
    }
}

fn count(store: &Store, database: &str) -> usize {
    store.scan(database, KeyRange::All).unwrap().count()
}

/// The files under `dir` named `*.extension`.
fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect()
}

/// The write-ahead logs under `dir`.
fn wals(dir: &Path) -> Vec<PathBuf> {
    files(dir, "log")
}

fn bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A store closed cleanly needs nothing from its logs: cutting them short or deleting
/// them while it is closed loses nothing. (Damage to the log a crash leaves is
/// `tests/crash.rs`'s.)
#[test]
fn a_log_cut_short_or_deleted_while_closed_loses_nothing() {
    let f = Fixture::new();
    let store = f.create();
    for i in 0..5001u32 {
        store.put("db", &i.to_be_bytes(), b"acknowledged").unwrap();
    }
    drop(store);
    for wal in wals(&f.path) {
        let len = std::fs::metadata(&wal).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&wal)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
    let store = f.open();
    assert_eq!(count(&store, "db"), 5001);
    store.put("db", b"after", b"reopen").unwrap();
    drop(store);
    for wal in wals(&f.path) {
        std::fs::remove_file(wal).unwrap();
    }
    let store = f.open();
    assert_eq!(count(&store, "db"), 5002);
}

/// RocksDB keeps every log from the oldest write any column family has not flushed. The
/// keystore's family is written at creation and then seldom, so unbounded it would pin
/// every log written since (RocksDB's own bound grows with the number of databases:
/// 1.5 GiB for one). A store bounds them at [`MAX_TOTAL_WAL_BYTES`], which a flush under
/// way may overrun a while: three times that written never leaves twice it, and all of
/// it reads back after a reopen.
#[test]
fn the_logs_kept_stay_bounded_however_seldom_the_keystore_is_written() {
    const KEYS: u32 = 50_000;
    const WRITTEN: u64 = 3 * MAX_TOTAL_WAL_BYTES;
    let f = Fixture::new();
    let store = f.create();
    let value = vec![0x5a; 4096];
    let batches = WRITTEN / (100 * value.len() as u64);
    let mut most = 0;
    for round in 0..batches as u32 {
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            batch.put("db", ((round * 100 + i) % KEYS).to_be_bytes(), &value);
        }
        store.write(&batch).unwrap();
        if round % 16 == 0 {
            most = most.max(bytes(&wals(&f.path)));
        }
    }
    most = most.max(bytes(&wals(&f.path)));
    assert!(
        most < 2 * MAX_TOTAL_WAL_BYTES,
        "{} MiB of logs kept after {} MiB written",
        most >> 20,
        WRITTEN >> 20
    );
    drop(store);
    let store = f.open();
    assert_eq!(count(&store, "db"), KEYS as usize);
}

/// A store whose tables nearly fill its block cache reads them all a second time without
/// reading a block from its files: the cache holds what its capacity says. (RocksDB's LRU
/// cache, in shards of 512 KiB that each evict on their own, misses here in the shards the
/// blocks happen to fill most; an encrypted store's records, 33 bytes longer than their
/// values, reach such a size before their plaintext does.)
#[test]
fn tables_near_the_block_cache_size_are_read_twice_from_it_alone() {
    const CACHE: u64 = 8 << 20;
    // 50,000 records of 100 bytes: tables of 88% of the cache.
    const ROUNDS: u32 = 50;
    let f = Fixture::new();
    let store = f.create_with(StoreOptions {
        block_cache_bytes: CACHE as usize,
        ..StoreOptions::default()
    });
    let value = [0x5a; 100];
    for round in 0..ROUNDS {
        let mut batch = WriteBatch::new();
        for i in 0..1000 {
            batch.put("db", (round * 1000 + i).to_be_bytes(), value);
        }
        store.write(&batch).unwrap();
    }
    store.flush().unwrap();
    store.compact().unwrap();
    let tables = bytes(&files(&f.path, "sst"));
    assert!(
        (CACHE * 4 / 5..CACHE * 23 / 25).contains(&tables),
        "{tables} bytes of tables for a cache of {CACHE}"
    );
    let read_all = || {
        let mut records = 0;
        store
            .visit("db", KeyRange::All, |_, _| {
                records += 1;
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(records, ROUNDS as usize * 1000);
    };
    read_all();
    rocksdb::perf::set_perf_stats(PerfStatsLevel::EnableCount);
    let mut perf = PerfContext::default();
    perf.reset();
    read_all();
    let blocks_read = perf.metric(PerfMetric::BlockReadCount);
    let blocks_cached = perf.metric(PerfMetric::BlockCacheHitCount);
    assert_eq!(
        blocks_read, 0,
        "{blocks_read} blocks read from the files, {blocks_cached} found in the cache"
    );
    assert!(blocks_cached > 0);
}

/// A block cache of any size serves every read: of no bytes or fewer than one block it
/// caches nothing, and one too large for any machine, meant as no bound, is not made
/// whole at the store's open.
#[test]
fn a_block_cache_of_any_size_serves_every_read() {
    for cache in [0, 1, 4096, 1 << 30, (1 << 30) + 1, usize::MAX] {
        let f = Fixture::new();
        let options = StoreOptions {
            block_cache_bytes: cache,
            ..StoreOptions::default()
        };
        let store = f.create_with(options.clone());
        for i in 0..2000u32 {
            store.put("db", &i.to_be_bytes(), &[0x5a; 100]).unwrap();
        }
        store.flush().unwrap();
        assert_eq!(
            store.get("db", &7u32.to_be_bytes()).unwrap().as_deref(),
            Some(&[0x5a; 100][..])
        );
        assert_eq!(count(&store, "db"), 2000, "a cache of {cache} bytes");
        drop(store);
        let store = f.open_with(options);
        assert_eq!(
            count(&store, "db"),
            2000,
            "a cache of {cache} bytes, reopened"
        );
    }
}
