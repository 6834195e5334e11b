//! The workloads of one value size, each run in cycles of plain, encrypted, encrypted,
//! plain on an idle machine, so that neither side always runs first or last, until each
//! side has run long enough to measure; throughput by the wall clock, cost by the
//! process's CPU time, latency from every 16th single operation.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};

use super::{BenchError, Latency, Rate, SizeReport, Workload};
use crate::clock::SystemClock;
use crate::kms::{Caller, CreateKeyRequest, Kms, LocalKms};
use crate::store::{
    column_family_options, restore_snapshot, rocksdb_options, KeyRange, LocalDirStorage,
    RestoreTarget, Store, StoreOptions, WriteBatch, DEFAULT_BLOCK_CACHE_BYTES,
};

const DATABASE: &str = "bench";
const BATCH: u64 = 1000;
/// One operation in this many is timed on its own.
const LATENCY_SAMPLE: u64 = 16;
/// Each side of a workload runs at least this long, in whole cycles, ...
const MIN_SIDE_TIME: Duration = Duration::from_secs(1);
/// ... unless that takes more cycles than this.
const MAX_CYCLES: u32 = 20;
/// The block cache of the `-uncached` workload: far smaller than any run's data.
const SMALL_CACHE_BYTES: usize = 1 << 20;

/// The process's CPU time so far, every thread's (exited ones too), from /proc: in ticks
/// of 10 ms (Linux's USER_HZ is 100 on every architecture it reports to user space).
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let after = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("key{:013}", i % 10_000_000_000_000).as_bytes());
    k
}

/// Timings of single operations, in nanoseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    /// Runs operation `i`, timing it if it is one of the sampled ones.
    fn time<T>(&mut self, i: u64, op: impl FnOnce() -> T) -> T {
        if !i.is_multiple_of(LATENCY_SAMPLE) {
            return op();
        }
        let start = Instant::now();
        let value = op();
        self.0.push(start.elapsed().as_nanos() as u64);
        value
    }

    fn latency(mut self) -> Latency {
        self.0.sort_unstable();
        let at = |q: f64| {
            let index = ((self.0.len() as f64 * q) as usize).min(self.0.len().saturating_sub(1));
            self.0.get(index).map_or(0.0, |ns| *ns as f64 / 1000.0)
        };
        Latency {
            p50_us: at(0.5),
            p99_us: at(0.99),
            p999_us: at(0.999),
        }
    }
}

type Side<'a> = dyn FnMut(&mut Samples) -> Result<u64, BenchError> + 'a;

/// Plain RocksDB and the encrypted store, side by side, with the same options.
struct Sides {
    plain: rocksdb::DB,
    store: Store,
    kms: Arc<dyn Kms>,
    cmk: String,
    dir: std::path::PathBuf,
    store_options: StoreOptions,
}

impl Sides {
    fn open(dir: &Path) -> Result<Sides, BenchError> {
        let kms = LocalKms::in_memory(Arc::new(SystemClock));
        let client = kms.client(Caller::account_root("111122223333", "us-east-1")?);
        let cmk = client.create_key(CreateKeyRequest::default())?.arn;
        let kms: Arc<dyn Kms> = Arc::new(client);
        let store_options = StoreOptions::default();
        let store = Store::create(
            dir.join("encrypted"),
            kms.clone(),
            &cmk,
            store_options.clone(),
        )?;
        Ok(Sides {
            plain: Sides::open_plain(dir, DEFAULT_BLOCK_CACHE_BYTES)?,
            store,
            kms,
            cmk,
            dir: dir.to_path_buf(),
            store_options,
        })
    }

    fn open_plain(dir: &Path, block_cache_bytes: usize) -> Result<rocksdb::DB, BenchError> {
        Ok(rocksdb::DB::open_cf_descriptors(
            &rocksdb_options(),
            dir.join("plain"),
            [rocksdb::ColumnFamilyDescriptor::new(
                DATABASE,
                column_family_options(block_cache_bytes),
            )],
        )?)
    }

    /// Both sides closed and opened again with a block cache of `bytes`.
    fn reopen(self, bytes: usize) -> Result<Sides, BenchError> {
        let Sides {
            plain,
            store,
            kms,
            cmk,
            dir,
            mut store_options,
        } = self;
        drop((plain, store));
        store_options.block_cache_bytes = bytes;
        let store = Store::open(
            dir.join("encrypted"),
            kms.clone(),
            &cmk,
            store_options.clone(),
        )?;
        Ok(Sides {
            plain: Sides::open_plain(&dir, bytes)?,
            store,
            kms,
            cmk,
            dir,
            store_options,
        })
    }

    fn plain_cf(&self) -> Result<&rocksdb::ColumnFamily, BenchError> {
        self.plain
            .cf_handle(DATABASE)
            .ok_or_else(|| BenchError::Mismatch("no column family".into()))
    }

    /// No flush or compaction of earlier writes left to run in the background.
    fn quiesce(&self) -> Result<(), BenchError> {
        let cf = self.plain_cf()?;
        self.plain.flush_cf(cf)?;
        self.plain
            .compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        self.store.flush()?;
        self.store.compact()?;
        Ok(())
    }
}

/// One workload in cycles of plain, encrypted, encrypted, plain, each turn on an idle
/// machine and handling `n` records, until each side has run for [`MIN_SIDE_TIME`] (a turn
/// of a few tens of milliseconds is mostly noise) or [`MAX_CYCLES`] cycles are done.
fn abba(
    sides: &Sides,
    name: &'static str,
    (n, size): (u64, usize),
    sampled: bool,
    plain_run: &mut Side<'_>,
    encrypted_run: &mut Side<'_>,
) -> Result<Workload, BenchError> {
    let mut took = [Duration::ZERO; 2];
    let mut cpu = [Duration::ZERO; 2];
    let mut samples = [Samples::default(), Samples::default()];
    let mut cycles = 0;
    while cycles < MAX_CYCLES && took.iter().any(|t| *t < MIN_SIDE_TIME) {
        cycles += 1;
        for side in [0, 1, 1, 0] {
            sides.quiesce()?;
            let run: &mut Side<'_> = if side == 0 {
                &mut *plain_run
            } else {
                &mut *encrypted_run
            };
            let (cpu_before, start) = (process_cpu(), Instant::now());
            let done = run(samples
                .get_mut(side)
                .ok_or_else(|| BenchError::Mismatch("side".into()))?)?;
            let (elapsed, cpu_after) = (start.elapsed(), process_cpu());
            if done != n {
                return Err(BenchError::Mismatch(format!(
                    "{name} handled {done} of {n} records"
                )));
            }
            if let (Some(t), Some(c)) = (took.get_mut(side), cpu.get_mut(side)) {
                *t += elapsed;
                *c += cpu_after.saturating_sub(cpu_before);
            }
        }
    }
    let rate = |side: usize| {
        let secs = took.get(side).map_or(1e-9, |t| t.as_secs_f64().max(1e-9));
        let ops = 2.0 * cycles as f64 * n as f64;
        Rate {
            ops_per_sec: ops / secs,
            mb_per_sec: ops * size as f64 / secs / 1e6,
            cpu_sec: cpu.get(side).map_or(0.0, Duration::as_secs_f64),
        }
    };
    let (plaintext, encrypted) = (rate(0), rate(1));
    let [plain_samples, encrypted_samples] = samples;
    Ok(Workload {
        name,
        plaintext,
        encrypted,
        ratio: encrypted.ops_per_sec / plaintext.ops_per_sec,
        cpu_ratio: encrypted.cpu_sec / plaintext.cpu_sec.max(1e-9),
        latency: sampled.then(|| [plain_samples.latency(), encrypted_samples.latency()]),
        cycles,
    })
}

/// Random gets of `order`'s keys on `threads` threads, counting the values of `size`.
fn read_random(
    threads: usize,
    order: &[u64],
    samples: &mut Samples,
    get: &(dyn Fn(u64) -> Result<Option<usize>, BenchError> + Sync),
    size: usize,
) -> Result<u64, BenchError> {
    let chunk = order.len().div_ceil(threads.max(1));
    let results: Vec<Result<(u64, Samples), BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = order
            .chunks(chunk.max(1))
            .map(|part| {
                scope.spawn(move || {
                    let mut samples = Samples::default();
                    let mut found = 0u64;
                    for (j, &i) in part.iter().enumerate() {
                        let got = samples.time(j as u64, || get(i))?;
                        found += u64::from(got == Some(size));
                    }
                    Ok((found, samples))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut found = 0;
    for result in results {
        let (n, part) = result?;
        found += n;
        samples.0.extend(part.0);
    }
    Ok(found)
}

/// Every workload at one value size, on fresh stores in `dir`.
pub(super) fn run_size(
    n: u64,
    size: usize,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<SizeReport, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut sides = Sides::open(dir)?;
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
    let order: Vec<u64> = (0..n).map(|_| rand::rng().random_range(0..n)).collect();
    let shape = (n, size);
    let mut workloads = Vec::new();

    progress("fillseq");
    {
        let (s, cf) = (&sides, sides.plain_cf()?);
        workloads.push(abba(
            s,
            "fillseq",
            shape,
            true,
            &mut |samples| {
                for i in 0..n {
                    samples.time(i, || s.plain.put_cf(cf, key(i), value(i)))?;
                }
                Ok(n)
            },
            &mut |samples| {
                for i in 0..n {
                    samples.time(i, || s.store.put(DATABASE, &key(i), value(i)))?;
                }
                Ok(n)
            },
        )?);
        progress("overwritebatch");
        workloads.push(abba(
            s,
            "overwritebatch",
            shape,
            false,
            &mut |_| {
                for start in (0..n).step_by(BATCH as usize) {
                    let mut batch = rocksdb::WriteBatch::default();
                    for i in start..(start + BATCH).min(n) {
                        batch.put_cf(cf, key(i), value(i + 7));
                    }
                    s.plain.write(batch)?;
                }
                Ok(n)
            },
            &mut |_| {
                for start in (0..n).step_by(BATCH as usize) {
                    let mut batch = WriteBatch::new();
                    for i in start..(start + BATCH).min(n) {
                        batch.put(DATABASE, key(i), value(i + 7));
                    }
                    s.store.write(&batch)?;
                }
                Ok(n)
            },
        )?);
    }
    let reads = |name: &'static str, threads: usize, sides: &Sides| {
        let cf = sides.plain_cf()?;
        let plain_get = |i: u64| -> Result<Option<usize>, BenchError> {
            Ok(sides.plain.get_cf(cf, key(i))?.map(|v| v.len()))
        };
        let encrypted_get = |i: u64| -> Result<Option<usize>, BenchError> {
            Ok(sides.store.get(DATABASE, &key(i))?.map(|v| v.len()))
        };
        abba(
            sides,
            name,
            shape,
            true,
            &mut |samples| read_random(threads, &order, samples, &plain_get, size),
            &mut |samples| read_random(threads, &order, samples, &encrypted_get, size),
        )
    };
    progress("readrandom");
    workloads.push(reads("readrandom", 1, &sides)?);
    progress("readrandom-2threads");
    workloads.push(reads("readrandom-2threads", 2, &sides)?);
    progress("readseq");
    {
        let (s, cf) = (&sides, sides.plain_cf()?);
        workloads.push(abba(
            s,
            "readseq",
            shape,
            false,
            &mut |_| {
                let mut count = 0u64;
                for item in s.plain.iterator_cf(cf, rocksdb::IteratorMode::Start) {
                    count += u64::from(item?.1.len() == size);
                }
                Ok(count)
            },
            &mut |_| {
                let mut count = 0u64;
                for record in s.store.scan(DATABASE, KeyRange::All)? {
                    count += u64::from(record?.1.len() == size);
                }
                Ok(count)
            },
        )?);
    }
    progress("readrandom-uncached");
    sides = sides.reopen(SMALL_CACHE_BYTES)?;
    workloads.push(reads("readrandom-uncached", 1, &sides)?);

    progress("master-key rotation");
    let mut rotations = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        sides.store.rotate_master_key()?;
        rotations.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    rotations.sort_by(f64::total_cmp);

    progress("snapshot create and restore");
    let storage = LocalDirStorage::new(dir.join("snapshots")).map_err(|e| BenchError::Io {
        path: dir.join("snapshots"),
        source: e,
    })?;
    let start = Instant::now();
    let snapshot = sides.store.create_snapshot(&storage, &mut |_| {})?;
    let create = start.elapsed();
    let snapshot_mb = snapshot.size as f64 / 1e6;
    let restored_path = dir.join("restored");
    let start = Instant::now();
    let target = RestoreTarget {
        path: &restored_path,
        kms: sides.kms.clone(),
        cmk: &sides.cmk,
        region: "us-east-1",
        options: sides.store_options.clone(),
    };
    drop(restore_snapshot(
        &storage,
        &snapshot.id,
        sides.kms.clone(),
        target,
    )?);
    let restore = start.elapsed();

    Ok(SizeReport {
        value_size: size,
        workloads,
        master_key_rotation_ms: rotations
            .get(rotations.len() / 2)
            .copied()
            .unwrap_or_default(),
        snapshot_mb,
        snapshot_create_mb_per_sec: snapshot_mb / create.as_secs_f64().max(1e-9),
        snapshot_restore_mb_per_sec: snapshot_mb / restore.as_secs_f64().max(1e-9),
    })
}
