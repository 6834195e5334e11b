//! `atrest bench`: db_bench-style workloads on an encrypted store and, in the same run,
//! on plain RocksDB opened with the same options, so the cost of encryption is a ratio
//! measured under the same machine noise.
//!
//! Owns the workloads (sequential puts, batched overwrites, random gets, a full scan),
//! the key-rotation and snapshot figures, and the peak memory of the run. Values are
//! random bytes, so compression favours neither side. Both sides use the same API shape:
//! gets and scans return owned values (`get_cf`, `iterator_cf` on the plaintext side),
//! because decryption needs a buffer of its own where plain RocksDB could pin its cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use serde::Serialize;

use crate::clock::SystemClock;
use crate::kms::{Caller, CreateKeyRequest, KmsError, LocalKms};
use crate::store::{
    restore_snapshot, rocksdb_options, KeyRange, LocalDirStorage, RestoreTarget, SnapshotError,
    Store, StoreError, StoreOptions, WriteBatch,
};

const DATABASE: &str = "bench";
const BATCH: u64 = 1000;

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The encrypted store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plaintext RocksDB baseline failed.
    #[error("the plaintext RocksDB baseline failed: {0}")]
    Baseline(#[from] rocksdb::Error),
    /// The embedded KMS failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// A snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The scratch directory could not be used.
    #[error("scratch directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Reads did not return what was written: a bug, not a measurement.
    #[error("{0}")]
    Mismatch(String),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Records per workload.
    pub count: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Scratch directory; everything in it is removed afterwards.
    pub dir: PathBuf,
}

/// Operations and bytes per second of one side of a workload.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rate {
    /// Operations (records) per second.
    pub ops_per_sec: f64,
    /// Value bytes per second, in MB (10^6).
    pub mb_per_sec: f64,
}

/// One workload on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// db_bench's name for it.
    pub name: &'static str,
    /// Plain RocksDB.
    pub plaintext: Rate,
    /// The encrypted store.
    pub encrypted: Rate,
    /// encrypted ÷ plaintext throughput.
    pub ratio: f64,
}

/// Everything `atrest bench` reports.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Records per workload.
    pub count: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// The AES-GCM backend of the encrypted side.
    pub backend: String,
    /// The workloads, in the order run.
    pub workloads: Vec<Workload>,
    /// Milliseconds for one master-key rotation with `count` records stored (median of 5).
    pub master_key_rotation_ms: f64,
    /// Snapshot file size in MB.
    pub snapshot_mb: f64,
    /// Snapshot creation, MB of snapshot file per second.
    pub snapshot_create_mb_per_sec: f64,
    /// Restore, MB of snapshot file per second.
    pub snapshot_restore_mb_per_sec: f64,
    /// The process's peak resident memory (VmHWM), in MB.
    pub peak_rss_mb: f64,
}

fn rate(ops: u64, value_size: usize, elapsed: Duration) -> Rate {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Rate {
        ops_per_sec: ops as f64 / secs,
        mb_per_sec: ops as f64 * value_size as f64 / secs / 1e6,
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("key{:013}", i % 10_000_000_000_000).as_bytes());
    k
}

fn timed<T>(f: &mut dyn FnMut() -> Result<T, BenchError>) -> Result<(T, Duration), BenchError> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}

/// The peak resident set of this process, from /proc (0 where there is none).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs every workload; `progress` hears the name of each as it starts.
pub fn run(
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { path, source }
    };
    std::fs::create_dir_all(&options.dir).map_err(io(&options.dir))?;
    let result = run_in(options, progress);
    let _ = std::fs::remove_dir_all(&options.dir);
    result
}

fn run_in(
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let (n, size) = (options.count, options.value_size);
    let plain = rocksdb::DB::open_cf(&rocksdb_options(), options.dir.join("plain"), [DATABASE])?;
    let plain_cf = plain
        .cf_handle(DATABASE)
        .ok_or_else(|| BenchError::Mismatch("no column family".into()))?;
    let kms = LocalKms::in_memory(Arc::new(SystemClock));
    let client = kms.client(Caller::account_root("111122223333", "us-east-1")?);
    let cmk = client.create_key(CreateKeyRequest::default())?.arn;
    let kms: Arc<dyn crate::kms::Kms> = Arc::new(client);
    let store_options = StoreOptions::default();
    let store = Store::create(
        options.dir.join("encrypted"),
        kms.clone(),
        &cmk,
        store_options.clone(),
    )?;
    // Keys and values are made before the clock starts (values: a pool of random ones,
    // used in turn), so the timed loops do nothing but store work.
    let pool: Vec<Vec<u8>> = (0..1024)
        .map(|_| {
            let mut v = vec![0u8; size];
            rand::rng().fill_bytes(&mut v);
            v
        })
        .collect();
    let value = |i: u64| pool.get((i % 1024) as usize).map_or(&[][..], Vec::as_slice);
    let keys: Vec<[u8; 16]> = (0..n).map(key).collect();
    let key = |i: u64| keys.get(i as usize).copied().unwrap_or_default();
    // Each run starts on an idle machine (no flush or compaction of earlier writes in the
    // background), and each workload runs plain, encrypted, encrypted, plain, so that
    // neither side always runs first or last.
    let quiesce = || -> Result<(), BenchError> {
        plain.flush_cf(plain_cf)?;
        plain.compact_range_cf(plain_cf, None::<&[u8]>, None::<&[u8]>);
        store.flush()?;
        store.compact()?;
        Ok(())
    };
    let mut workloads = Vec::new();
    let mut abba = |name: &'static str,
                    plain_run: &mut dyn FnMut() -> Result<u64, BenchError>,
                    encrypted_run: &mut dyn FnMut() -> Result<u64, BenchError>|
     -> Result<(), BenchError> {
        progress(name);
        let (mut plain_time, mut encrypted_time) = (Duration::ZERO, Duration::ZERO);
        for plain_turn in [true, false, false, true] {
            quiesce()?;
            let run: &mut dyn FnMut() -> Result<u64, BenchError> =
                if plain_turn { plain_run } else { encrypted_run };
            let (done, took) = timed(run)?;
            if done != n {
                return Err(BenchError::Mismatch(format!(
                    "{name} handled {done} of {n} records"
                )));
            }
            *(if plain_turn {
                &mut plain_time
            } else {
                &mut encrypted_time
            }) += took;
        }
        let (p, e) = (
            rate(2 * n, size, plain_time),
            rate(2 * n, size, encrypted_time),
        );
        workloads.push(Workload {
            name,
            plaintext: p,
            encrypted: e,
            ratio: e.ops_per_sec / p.ops_per_sec,
        });
        Ok(())
    };

    abba(
        "fillseq",
        &mut || {
            for i in 0..n {
                plain.put_cf(plain_cf, key(i), value(i))?;
            }
            Ok(n)
        },
        &mut || {
            for i in 0..n {
                store.put(DATABASE, &key(i), value(i))?;
            }
            Ok(n)
        },
    )?;
    abba(
        "overwritebatch",
        &mut || {
            for start in (0..n).step_by(BATCH as usize) {
                let mut batch = rocksdb::WriteBatch::default();
                for i in start..(start + BATCH).min(n) {
                    batch.put_cf(plain_cf, key(i), value(i + 7));
                }
                plain.write(batch)?;
            }
            Ok(n)
        },
        &mut || {
            for start in (0..n).step_by(BATCH as usize) {
                let mut batch = WriteBatch::new();
                for i in start..(start + BATCH).min(n) {
                    batch.put(DATABASE, key(i), value(i + 7));
                }
                store.write(&batch)?;
            }
            Ok(n)
        },
    )?;
    let order: Vec<u64> = (0..n).map(|_| rand::rng().random_range(0..n)).collect();
    abba(
        "readrandom",
        &mut || {
            let mut found = 0u64;
            for &i in &order {
                found += u64::from(
                    plain
                        .get_cf(plain_cf, key(i))?
                        .is_some_and(|v| v.len() == size),
                );
            }
            Ok(found)
        },
        &mut || {
            let mut found = 0u64;
            for &i in &order {
                found += u64::from(
                    store
                        .get(DATABASE, &key(i))?
                        .is_some_and(|v| v.len() == size),
                );
            }
            Ok(found)
        },
    )?;
    abba(
        "readseq",
        &mut || {
            let mut count = 0u64;
            for item in plain.iterator_cf(plain_cf, rocksdb::IteratorMode::Start) {
                count += u64::from(item?.1.len() == size);
            }
            Ok(count)
        },
        &mut || {
            let mut count = 0u64;
            for record in store.scan(DATABASE, KeyRange::All)? {
                count += u64::from(record?.1.len() == size);
            }
            Ok(count)
        },
    )?;

    progress("master-key rotation");
    let mut rotations = Vec::new();
    for _ in 0..5 {
        let ((), took) = timed(&mut || Ok(store.rotate_master_key().map(|_| ())?))?;
        rotations.push(took.as_secs_f64() * 1000.0);
    }
    rotations.sort_by(f64::total_cmp);

    progress("snapshot create and restore");
    let storage =
        LocalDirStorage::new(options.dir.join("snapshots")).map_err(|e| BenchError::Io {
            path: options.dir.join("snapshots"),
            source: e,
        })?;
    let (snapshot, create) = timed(&mut || Ok(store.create_snapshot(&storage, &mut |_| {})?))?;
    let snapshot_mb = snapshot.size as f64 / 1e6;
    let restored_path = options.dir.join("restored");
    let (restored, restore) = timed(&mut || {
        let target = RestoreTarget {
            path: &restored_path,
            kms: kms.clone(),
            cmk: &cmk,
            region: "us-east-1",
            options: store_options.clone(),
        };
        Ok(restore_snapshot(
            &storage,
            &snapshot.id,
            kms.clone(),
            target,
        )?)
    })?;
    drop(restored);

    Ok(BenchReport {
        count: n,
        value_size: size,
        backend: store_options.backend.to_string(),
        workloads,
        master_key_rotation_ms: rotations
            .get(rotations.len() / 2)
            .copied()
            .unwrap_or_default(),
        snapshot_mb,
        snapshot_create_mb_per_sec: snapshot_mb / create.as_secs_f64().max(1e-9),
        snapshot_restore_mb_per_sec: snapshot_mb / restore.as_secs_f64().max(1e-9),
        peak_rss_mb: peak_rss_mb(),
    })
}
