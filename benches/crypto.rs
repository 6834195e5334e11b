//! AES-256-GCM: atrest's record seal/open (envelope header, associated data, random
//! nonce, allocation) beside the raw backend call on the same bytes, for both backends,
//! so the cost of atrest's own layer is visible. Run: `cargo bench --bench crypto`.

// A benchmark may panic on failure; criterion's macros generate undocumented functions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::sync::Arc;

use atrest::clock::{Clock, SystemClock};
use atrest::crypto::{Aead, Backend, Nonce, SecretKey, TAG_LEN};
use atrest::format::Record;
use atrest::keys::{DataKey, Keystore, NodeIdentity};
use atrest::kms::{Caller, CreateKeyRequest, LocalKms};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [usize; 6] = [64, 256, 1024, 4096, 16 * 1024, 64 * 1024];

/// A real data key, made the way a store makes one.
fn data_key(backend: Backend) -> (Keystore, Arc<DataKey>) {
    let kms = LocalKms::in_memory(Arc::new(SystemClock));
    let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
    let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
    let identity = NodeIdentity {
        cluster: "bench".into(),
        node: "node-0".into(),
    };
    let keystore = Keystore::create(&client, &cmk, identity, backend, SystemClock.now())
        .unwrap()
        .with_new_data_key("bench", 1 << 30, SystemClock.now())
        .unwrap();
    let key = Arc::clone(keystore.active_data_key("bench").unwrap());
    (keystore, key)
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    for &backend in Backend::available() {
        let (keystore, key) = data_key(backend);
        let raw = Aead::new(&SecretKey::generate(), backend).unwrap();
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let value = vec![0x5a; size];
            let mut buf = vec![0u8; size + TAG_LEN];
            let nonce = Nonce([7; 12]);
            group.bench_with_input(
                BenchmarkId::new(format!("{backend} raw"), size),
                &size,
                |b, _| {
                    b.iter(|| {
                        raw.seal_in_place(&nonce, b"aad", black_box(&mut buf))
                            .unwrap()
                    })
                },
            );
            let mut aad = Vec::new();
            group.bench_with_input(
                BenchmarkId::new(format!("{backend} record"), size),
                &size,
                |b, _| {
                    b.iter(|| {
                        key.seal_record(
                            keystore.store_id(),
                            "bench",
                            b"user:42",
                            black_box(&value),
                            &mut aad,
                        )
                        .unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    for &backend in Backend::available() {
        let (keystore, key) = data_key(backend);
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let mut aad = Vec::new();
            let sealed = key
                .seal_record(
                    keystore.store_id(),
                    "bench",
                    b"user:42",
                    &vec![0x5a; size],
                    &mut aad,
                )
                .unwrap();
            // The raw call opens the same sizes under its own key (a data key's cipher is
            // crate-private: every seal with it is counted).
            let raw = Aead::new(&SecretKey::generate(), backend).unwrap();
            let nonce = Nonce([7; 12]);
            let raw_sealed = raw.seal(&nonce, b"aad", &vec![0x5a; size]).unwrap();
            group.bench_with_input(
                BenchmarkId::new(format!("{backend} raw"), size),
                &size,
                |b, _| {
                    // The copy to open in place is made outside the timing: this is the
                    // cipher alone.
                    b.iter_batched_ref(
                        || raw_sealed.clone(),
                        |buf| raw.open_in_place(&nonce, b"aad", black_box(buf)).unwrap(),
                        criterion::BatchSize::SmallInput,
                    )
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{backend} record"), size),
                &size,
                |b, _| {
                    b.iter(|| {
                        let record = Record::decode(black_box(&sealed)).unwrap();
                        key.open_record(keystore.store_id(), "bench", b"user:42", &record, &mut aad)
                            .unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
