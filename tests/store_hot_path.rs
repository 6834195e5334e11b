//! The store's fast paths give the same answers as the plain ones: long scans decrypted
//! on a second thread, lent values (`Store::visit`), and large batches sealed on two
//! threads, including when a reservation runs out or a key rolls over mid-batch and when
//! several writers' batches race for the uses reserved, and when a record deep in a scan
//! is corrupt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::sync::Arc;

use atrest::clock::SystemClock;
use atrest::kms::{Caller, CreateKeyRequest, Kms, LocalKms};
use atrest::store::{DataKeyLimits, KeyRange, Store, StoreError, StoreOptions, WriteBatch};

/// Reservations of 300 uses, far fewer than a 1,000-put batch makes, and a new key every
/// 2,500 seals.
const TIGHT: DataKeyLimits = DataKeyLimits {
    max_uses: 2_500,
    reservation: 300,
    max_age: None,
};

fn open(dir: &Path, limits: DataKeyLimits) -> Store {
    let kms = LocalKms::in_memory(Arc::new(SystemClock));
    let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
    let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
    let kms: Arc<dyn Kms> = Arc::new(client);
    let options = StoreOptions {
        data_key_limits: limits,
        ..StoreOptions::default()
    };
    Store::create(dir.join("node-0"), kms, &cmk, options).unwrap()
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

/// A value of a length that varies from record to record (0 to 299 bytes).
fn value(i: u32, round: u32) -> Vec<u8> {
    let len = (i * 37 + round) % 300;
    (0..len)
        .map(|b| (b as u8).wrapping_add(i as u8) ^ round as u8)
        .collect()
}

/// Writes `n` records to `database` in batches of 1000, each batch also deleting every
/// 7th key of the previous one; returns what the database then holds.
fn fill(store: &Store, database: &str, n: u32, round: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut expected = BTreeMap::new();
    for start in (0..n).step_by(1000) {
        let mut batch = WriteBatch::new();
        for i in start..(start + 1000).min(n) {
            batch.put(database, key(i), value(i, round));
            expected.insert(key(i), value(i, round));
            if i >= 1000 && i % 7 == 0 {
                batch.delete(database, key(i - 1000));
                expected.remove(&key(i - 1000));
            }
        }
        store.write(&batch).unwrap();
    }
    expected
}

fn scanned(store: &Store, database: &str, range: KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .scan(database, range)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn visited(store: &Store, database: &str, range: KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut seen = Vec::new();
    store
        .visit(database, range, |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })
        .unwrap();
    seen
}

#[test]
fn long_scans_and_visits_return_every_record_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), DataKeyLimits::default());
    let expected = fill(&store, "users", 20_000, 1);
    let all: Vec<_> = expected.clone().into_iter().collect();
    assert_eq!(scanned(&store, "users", KeyRange::All), all);
    assert_eq!(visited(&store, "users", KeyRange::All), all);
    let range = KeyRange::Range {
        start: Bound::Included(key(3_000)),
        end: Bound::Excluded(key(17_500)),
    };
    let middle: Vec<_> = expected
        .range(key(3_000)..key(17_500))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(scanned(&store, "users", range.clone()), middle);
    assert_eq!(visited(&store, "users", range), middle);
    // Records reach the store's files flushed, and read back the same from there.
    store.flush().unwrap();
    store.compact().unwrap();
    assert_eq!(scanned(&store, "users", KeyRange::All), all);

    // A scan dropped part-way, with batches still at the second thread, ends cleanly, and
    // a visit stops where it is told.
    let mut scan = store.scan("users", KeyRange::All).unwrap();
    let first: Vec<_> = scan.by_ref().take(5_000).map(Result::unwrap).collect();
    assert_eq!(first, all[..5_000]);
    drop(scan);
    let mut count = 0;
    store
        .visit("users", KeyRange::All, |_, _| {
            count += 1;
            if count == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(count, 10);
    assert!(scanned(&store, "nobody", KeyRange::All).is_empty());
}

/// Flips one byte of the stored value of `record` through RocksDB itself.
fn corrupt(path: &Path, database: &str, record: &[u8]) {
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, cfs).unwrap();
    let cf = db.cf_handle(database).unwrap();
    let mut stored = db.get_cf(cf, record).unwrap().unwrap();
    let last = stored.len() - 1;
    stored[last] ^= 1;
    db.put_cf(cf, record, &stored).unwrap();
}

#[test]
fn a_corrupt_record_stops_a_long_scan_exactly_there() {
    // Record 100 falls in a scan's first batch (decrypted by the caller's thread), record
    // 7,000 in a later one (decrypted by the second thread).
    for bad in [100u32, 7_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), DataKeyLimits::default());
        let mut batch = WriteBatch::new();
        for i in 0..10_000 {
            batch.put("users", key(i), value(i, 0));
        }
        store.write(&batch).unwrap();
        let path = store.path().to_path_buf();
        let (kms, cmk) = (store.kms().clone(), store.keystore().cmk_arn().to_string());
        drop(store);
        corrupt(&path, "users", &key(bad));
        let store = Store::open(&path, kms, &cmk, StoreOptions::default()).unwrap();

        let results: Vec<_> = store.scan("users", KeyRange::All).unwrap().collect();
        assert_eq!(results.len(), bad as usize + 1, "records, then the error");
        for (i, result) in results[..bad as usize].iter().enumerate() {
            let (k, v) = result.as_ref().unwrap();
            assert_eq!((k, v), (&key(i as u32), &value(i as u32, 0)));
        }
        match results.last().unwrap() {
            Err(StoreError::Corrupt {
                database,
                key: named,
                ..
            }) => {
                assert_eq!(database, "users");
                assert!(named.contains(&format!("k{bad:08}")), "{named}");
            }
            other => panic!("expected the corrupt record, got {other:?}"),
        }

        let mut visits = 0;
        let err = store
            .visit("users", KeyRange::All, |_, _| {
                visits += 1;
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(visits, bad);
    }
}

#[test]
fn large_batches_read_back_whatever_their_keys_reservations_do() {
    // Reservations of 300 uses: each 1000-put batch outgrows what is reserved, so both of
    // its sealing threads claim what is left and the writing thread persists more as it
    // goes; keys roll over every 2,500 seals, so some batches span two keys.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), TIGHT);
    let first = fill(&store, "a", 6_000, 1);
    assert!(
        store.keystore().data_keys().count() >= 3,
        "keys rolled over"
    );
    assert_eq!(
        scanned(&store, "a", KeyRange::All),
        first.into_iter().collect::<Vec<_>>()
    );

    // Generous reservations: batches across two databases sealed on two threads.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), DataKeyLimits::default());
    let mut expected: BTreeMap<(String, Vec<u8>), Vec<u8>> = BTreeMap::new();
    for round in 0..3 {
        let mut batch = WriteBatch::new();
        for i in 0..1_000 {
            let database = if i % 3 == 0 { "b" } else { "c" };
            batch.put(database, key(i), value(i, round));
            expected.insert((database.to_string(), key(i)), value(i, round));
            if i % 11 == 0 {
                batch.delete("c", key(i + 1));
                expected.remove(&("c".to_string(), key(i + 1)));
            }
        }
        store.write(&batch).unwrap();
    }
    for database in ["b", "c"] {
        let want: Vec<_> = expected
            .iter()
            .filter(|((d, _), _)| d == database)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(scanned(&store, database, KeyRange::All), want, "{database}");
        for (k, v) in &want {
            assert_eq!(store.get(database, k).unwrap().as_ref(), Some(v));
        }
    }
    let uses: u64 = store.keystore().data_keys().map(|k| k.uses()).sum();
    assert!(uses >= 3_000, "every seal is counted: {uses}");
}

#[test]
fn concurrent_large_batches_never_seal_past_what_is_reserved() {
    // Four writers share two databases and one sealing thread (a batch that finds it busy
    // seals alone), with reservations far smaller than a batch: claims race, fall short
    // and are renewed while keys roll over.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), TIGHT);
    std::thread::scope(|scope| {
        for writer in 0..4u32 {
            let store = &store;
            scope.spawn(move || {
                for round in 0..4u32 {
                    let mut batch = WriteBatch::new();
                    for i in 0..1_000 {
                        let n = writer * 10_000 + round * 1_000 + i;
                        batch.put(if i % 2 == 0 { "d" } else { "e" }, key(n), value(n, 1));
                    }
                    store.write(&batch).unwrap();
                }
            });
        }
    });
    for (database, parity) in [("d", 0), ("e", 1)] {
        let want: Vec<_> = (0..4u32)
            .flat_map(|writer| (0..4_000u32).map(move |j| writer * 10_000 + j))
            .filter(|n| n % 2 == parity)
            .map(|n| (key(n), value(n, 1)))
            .collect();
        assert_eq!(scanned(&store, database, KeyRange::All), want, "{database}");
    }
    let keystore = store.keystore();
    let keys: Vec<_> = keystore.data_keys().collect();
    assert!(keys.len() >= 8, "keys rolled over: {}", keys.len());
    for key in &keys {
        assert!(
            key.uses() <= key.reserved_uses() && key.reserved_uses() <= TIGHT.max_uses,
            "key {} sealed {} of {} reserved",
            key.id(),
            key.uses(),
            key.reserved_uses()
        );
    }
    assert!(keys.iter().map(|k| k.uses()).sum::<u64>() >= 16_000);
}
