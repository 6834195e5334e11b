//! The store's hot path beside plain RocksDB opened with the same options, in the same
//! run: single puts, batches, random gets and scans of 100 B and 1 KiB values; and
//! master-key rotation at 10 thousand and 1 million records, to show that its cost does
//! not grow with the data; snapshot creation and restore throughput.
//! Run: `cargo bench --bench store`.

// A benchmark may panic on failure; criterion's macros generate undocumented functions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::sync::Arc;

use atrest::clock::SystemClock;
use atrest::kms::{Caller, CreateKeyRequest, LocalKms};
use atrest::store::{
    restore_snapshot, rocksdb_options, KeyRange, LocalDirStorage, RestoreTarget, Store,
    StoreOptions, WriteBatch,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::{Rng, RngCore};

const RECORDS: u64 = 50_000;
const DB: &str = "bench";

struct Sides {
    _dir: tempfile::TempDir,
    plain: rocksdb::DB,
    store: Store,
}

/// `n` keys of existing records, made before the clock starts.
fn random_keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| key(rand::rng().random_range(0..RECORDS)))
        .collect()
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:013}").into_bytes()
}

fn random_value(size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    rand::rng().fill_bytes(&mut v);
    v
}

fn sides(records: u64, size: usize) -> Sides {
    let dir = tempfile::tempdir().unwrap();
    let plain = rocksdb::DB::open_cf(&rocksdb_options(), dir.path().join("plain"), [DB]).unwrap();
    let kms = LocalKms::in_memory(Arc::new(SystemClock));
    let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
    let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
    let store = Store::create(
        dir.path().join("encrypted"),
        Arc::new(client),
        &cmk,
        StoreOptions::default(),
    )
    .unwrap();
    let value = random_value(size);
    for start in (0..records).step_by(1000) {
        let mut plain_batch = rocksdb::WriteBatch::default();
        let mut batch = WriteBatch::new();
        for i in start..(start + 1000).min(records) {
            plain_batch.put_cf(plain.cf_handle(DB).unwrap(), key(i), &value);
            batch.put(DB, key(i), value.as_slice());
        }
        plain.write(plain_batch).unwrap();
        store.write(&batch).unwrap();
    }
    plain.flush_cf(plain.cf_handle(DB).unwrap()).unwrap();
    store.flush().unwrap();
    Sides {
        _dir: dir,
        plain,
        store,
    }
}

fn point_operations(c: &mut Criterion) {
    for size in [100usize, 1024] {
        let s = sides(RECORDS, size);
        let cf = s.plain.cf_handle(DB).unwrap();
        let value = random_value(size);
        let mut group = c.benchmark_group(format!("store {size} B"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("put/plaintext", |b| {
            b.iter(|| {
                s.plain
                    .put_cf(
                        cf,
                        key(rand::rng().random_range(0..RECORDS)),
                        black_box(&value),
                    )
                    .unwrap()
            })
        });
        group.bench_function("put/encrypted", |b| {
            b.iter(|| {
                s.store
                    .put(
                        DB,
                        &key(rand::rng().random_range(0..RECORDS)),
                        black_box(&value),
                    )
                    .unwrap()
            })
        });
        group.bench_function("get/plaintext", |b| {
            b.iter(|| {
                s.plain
                    .get_cf(cf, key(rand::rng().random_range(0..RECORDS)))
                    .unwrap()
                    .unwrap()
            })
        });
        group.bench_function("get/encrypted", |b| {
            b.iter(|| {
                s.store
                    .get(DB, &key(rand::rng().random_range(0..RECORDS)))
                    .unwrap()
                    .unwrap()
            })
        });
        group.throughput(Throughput::Elements(100));
        group.bench_function("batch100/plaintext", |b| {
            b.iter_batched(
                || random_keys(100),
                |keys| {
                    let mut batch = rocksdb::WriteBatch::default();
                    for k in keys {
                        batch.put_cf(cf, k, &value);
                    }
                    s.plain.write(batch).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("batch100/encrypted", |b| {
            b.iter_batched(
                || random_keys(100),
                |keys| {
                    let mut batch = WriteBatch::new();
                    for k in keys {
                        batch.put(DB, k, value.as_slice());
                    }
                    s.store.write(&batch).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.throughput(Throughput::Elements(RECORDS));
        group.sample_size(10);
        group.bench_function("scan/plaintext", |b| {
            b.iter(|| {
                s.plain
                    .iterator_cf(cf, rocksdb::IteratorMode::Start)
                    .map(|r| r.unwrap().1.len())
                    .sum::<usize>()
            })
        });
        group.bench_function("scan/encrypted", |b| {
            b.iter(|| {
                s.store
                    .scan(DB, KeyRange::All)
                    .unwrap()
                    .map(|r| r.unwrap().1.len())
                    .sum::<usize>()
            })
        });
        group.finish();
    }
}

fn rotation(c: &mut Criterion) {
    let mut group = c.benchmark_group("master-key rotation");
    group.sample_size(20);
    for records in [10_000u64, 1_000_000] {
        let s = sides(records, 100);
        group.bench_with_input(BenchmarkId::from_parameter(records), &records, |b, _| {
            b.iter(|| s.store.rotate_master_key().unwrap())
        });
    }
    group.finish();
}

fn snapshots(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    let s = sides(RECORDS, 1024);
    let storage = LocalDirStorage::new(s._dir.path().join("snapshots")).unwrap();
    let probe = s.store.create_snapshot(&storage, &mut |_| {}).unwrap();
    group.throughput(Throughput::Bytes(probe.size));
    group.bench_function("create", |b| {
        b.iter(|| s.store.create_snapshot(&storage, &mut |_| {}).unwrap())
    });
    let kms = Arc::clone(s.store.kms());
    let cmk = s.store.status().cmk_arn;
    let target = s._dir.path().join("restored");
    group.bench_function("restore", |b| {
        b.iter(|| {
            let to = RestoreTarget {
                path: &target,
                kms: kms.clone(),
                cmk: &cmk,
                region: "us-east-1",
                options: StoreOptions::default(),
            };
            restore_snapshot(&storage, &probe.id, kms.clone(), to).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, point_operations, rotation, snapshots);
criterion_main!(benches);
