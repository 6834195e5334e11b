//! The encrypted store through its public API: round trips, confidentiality on disk,
//! tamper detection, and the CMK's hold over the data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use atrest::clock::{ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateKeyRequest, Decrypted, Encrypted, EncryptionContext, GeneratedDataKey,
    KeyMetadata, Kms, KmsError, LocalKms, LocalKmsClient,
};
use atrest::store::{KeyRange, Store, StoreError, StoreOptions, WriteBatch};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    client: LocalKmsClient,
    cmk: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let kms = LocalKms::in_memory(clock);
        let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
        let path = dir.path().join("node0");
        Fixture {
            _dir: dir,
            path,
            client,
            cmk,
        }
    }

    fn kms(&self) -> Arc<dyn Kms> {
        Arc::new(self.client.clone())
    }

    fn create(&self) -> Store {
        Store::create(&self.path, self.kms(), &self.cmk, StoreOptions::default()).unwrap()
    }

    fn open(&self) -> Result<Store, StoreError> {
        Store::open(&self.path, self.kms(), &self.cmk, StoreOptions::default())
    }
}

fn scan_all(store: &Store, db: &str, range: KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.scan(db, range).unwrap().map(Result::unwrap).collect()
}

#[test]
fn values_round_trip_and_survive_reopen() {
    let f = Fixture::new();
    let store = f.create();
    store.put("users", b"alice", b"admin").unwrap();
    store.put("users", b"bob", b"").unwrap();
    store.put("orders", b"1", b"pizza").unwrap();
    assert_eq!(
        store.get("users", b"alice").unwrap().as_deref(),
        Some(&b"admin"[..])
    );
    assert_eq!(
        store.get("users", b"bob").unwrap().as_deref(),
        Some(&b""[..])
    );
    assert_eq!(store.get("users", b"carol").unwrap(), None);
    assert_eq!(store.get("nowhere", b"alice").unwrap(), None);
    store.delete("users", b"alice").unwrap();
    store.delete("nowhere", b"alice").unwrap();
    assert_eq!(store.get("users", b"alice").unwrap(), None);
    let id = store.id();
    drop(store);
    let store = f.open().unwrap();
    assert_eq!(store.id(), id);
    assert_eq!(
        store.databases(),
        vec!["orders".to_string(), "users".to_string()]
    );
    assert_eq!(
        store.get("orders", b"1").unwrap().as_deref(),
        Some(&b"pizza"[..])
    );
    assert_eq!(store.get("users", b"alice").unwrap(), None);
    let status = store.status();
    assert_eq!(status.cmk_arn, f.cmk);
    assert_eq!(status.master_key_version, 1);
    assert_eq!(status.databases.len(), 2);
}

#[test]
fn a_hundred_thousand_records_of_every_size() {
    let f = Fixture::new();
    let store = f.create();
    let size = |i: usize| match i % 1000 {
        0 => 65_536,
        1 => 65_535,
        2 => 0,
        3 => 1,
        4 => 4096,
        _ => (i * 7919) % 2048,
    };
    let value = |i: usize| -> Vec<u8> { (0..size(i)).map(|j| (i + j) as u8).collect() };
    for chunk in (0..100_000).collect::<Vec<_>>().chunks(1000) {
        let mut batch = WriteBatch::new();
        for &i in chunk {
            batch.put("bulk", format!("k{i:06}"), value(i));
        }
        store.write(&batch).unwrap();
    }
    store.flush().unwrap();
    drop(store);
    let store = f.open().unwrap();
    let mut count = 0;
    for (n, record) in store.scan("bulk", KeyRange::All).unwrap().enumerate() {
        let (k, v) = record.unwrap();
        assert_eq!(k, format!("k{n:06}").into_bytes());
        assert_eq!(v, value(n), "record {n}");
        count += 1;
    }
    assert_eq!(count, 100_000);
    assert_eq!(
        store.get("bulk", b"k099000").unwrap().unwrap().len(),
        65_536
    );
}

#[test]
fn scans_follow_key_order_prefixes_and_ranges() {
    let f = Fixture::new();
    let store = f.create();
    for k in ["b", "a", "ab", "abc", "b1", "c"] {
        store
            .put("db", k.as_bytes(), k.to_uppercase().as_bytes())
            .unwrap();
    }
    let keys = |records: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<String> {
        records
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(v, k.to_ascii_uppercase());
                String::from_utf8(k).unwrap()
            })
            .collect()
    };
    assert_eq!(
        keys(scan_all(&store, "db", KeyRange::All)),
        ["a", "ab", "abc", "b", "b1", "c"]
    );
    assert_eq!(
        keys(scan_all(&store, "db", KeyRange::Prefix(b"ab".to_vec()))),
        ["ab", "abc"]
    );
    let range = |start, end| KeyRange::Range { start, end };
    assert_eq!(
        keys(scan_all(
            &store,
            "db",
            range(
                Bound::Included(b"ab".to_vec()),
                Bound::Excluded(b"b1".to_vec())
            )
        )),
        ["ab", "abc", "b"]
    );
    assert_eq!(
        keys(scan_all(
            &store,
            "db",
            range(
                Bound::Excluded(b"ab".to_vec()),
                Bound::Included(b"b1".to_vec())
            )
        )),
        ["abc", "b", "b1"]
    );
    assert!(scan_all(&store, "missing", KeyRange::All).is_empty());
}

#[test]
fn a_batch_spans_databases_atomically() {
    let f = Fixture::new();
    let store = f.create();
    store.put("a", b"gone", b"x").unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put("a", "k", "1")
        .put("b", "k", "2")
        .delete("a", "gone")
        .delete("never", "k");
    store.write(&batch).unwrap();
    assert_eq!(store.get("a", b"k").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get("b", b"k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get("a", b"gone").unwrap(), None);
    let mut bad = WriteBatch::new();
    bad.put("a", "k2", "x").put("bad name!", "k", "v");
    assert!(matches!(
        store.write(&bad),
        Err(StoreError::InvalidDatabaseName { .. })
    ));
    assert_eq!(
        store.get("a", b"k2").unwrap(),
        None,
        "a refused batch wrote part of itself"
    );
    assert!(matches!(
        store.put("atrest.keystore", b"k", b"v"),
        Err(StoreError::InvalidDatabaseName { .. })
    ));
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[test]
fn no_plaintext_value_reaches_any_file() {
    let f = Fixture::new();
    let store = f.create();
    let marker = b"PLAINTEXT-MARKER-c0ffee-do-not-leak";
    for i in 0..10_000u32 {
        let mut value = format!("{i}:").into_bytes();
        value.extend_from_slice(marker);
        store
            .put(
                if i % 2 == 0 { "even" } else { "odd" },
                &i.to_be_bytes(),
                &value,
            )
            .unwrap();
    }
    // In the WAL before a flush, in SST files after flush and compaction.
    assert_eq!(files_containing(&f.path, marker), Vec::<String>::new());
    store.flush().unwrap();
    store.compact().unwrap();
    assert_eq!(files_containing(&f.path, marker), Vec::<String>::new());
    drop(store);
    assert_eq!(files_containing(&f.path, marker), Vec::<String>::new());
    // The search can find things: record keys are stored in plaintext, as documented.
    let key_needle = 9_999u32.to_be_bytes();
    assert!(!files_containing(&f.path, &key_needle).is_empty());
}

/// Opens the store's RocksDB directly, as an attacker with the disk would.
fn with_raw_db(path: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, cfs).unwrap();
    f(&db);
}

#[test]
fn a_flipped_byte_is_a_corrupt_error_naming_database_and_key() {
    let f = Fixture::new();
    let store = f.create();
    store.put("accounts", b"acct-42", b"balance=100").unwrap();
    store.put("accounts", b"acct-43", b"balance=7").unwrap();
    drop(store);
    let stored_len = {
        let mut len = 0;
        with_raw_db(&f.path, |db| {
            let cf = db.cf_handle("accounts").unwrap();
            len = db.get_cf(cf, b"acct-42").unwrap().unwrap().len();
        });
        len
    };
    for position in 0..stored_len {
        with_raw_db(&f.path, |db| {
            let cf = db.cf_handle("accounts").unwrap();
            let mut value = db.get_cf(cf, b"acct-42").unwrap().unwrap();
            value[position] ^= 0x20;
            db.put_cf(cf, b"acct-42", &value).unwrap();
        });
        let store = f.open().unwrap();
        let err = store.get("accounts", b"acct-42").unwrap_err();
        match &err {
            StoreError::Corrupt { database, key, .. } => {
                assert_eq!(database, "accounts");
                assert_eq!(key, "\"acct-42\"");
            }
            other => panic!("byte {position}: expected Corrupt, got {other}"),
        }
        assert!(err.to_string().contains("acct-42"), "{err}");
        // The neighbour is untouched; a scan reports the corrupt record instead of skipping it.
        assert_eq!(
            store.get("accounts", b"acct-43").unwrap().as_deref(),
            Some(&b"balance=7"[..])
        );
        let results: Vec<_> = store.scan("accounts", KeyRange::All).unwrap().collect();
        assert!(matches!(results[0], Err(StoreError::Corrupt { .. })));
        drop(store);
        with_raw_db(&f.path, |db| {
            let cf = db.cf_handle("accounts").unwrap();
            let mut value = db.get_cf(cf, b"acct-42").unwrap().unwrap();
            value[position] ^= 0x20;
            db.put_cf(cf, b"acct-42", &value).unwrap();
        });
    }
    assert_eq!(
        f.open()
            .unwrap()
            .get("accounts", b"acct-42")
            .unwrap()
            .as_deref(),
        Some(&b"balance=100"[..])
    );
}

#[test]
fn a_value_moved_to_another_key_database_or_store_does_not_open() {
    let f = Fixture::new();
    let store = f.create();
    store.put("a", b"k1", b"secret").unwrap();
    store.put("a", b"k2", b"other").unwrap();
    store.put("b", b"k1", b"b-value").unwrap();
    drop(store);
    let other = Fixture::new();
    let other_store = other.create();
    other_store.put("a", b"k1", b"theirs").unwrap();
    drop(other_store);
    let mut sealed = Vec::new();
    with_raw_db(&f.path, |db| {
        let a = db.cf_handle("a").unwrap();
        sealed = db.get_cf(a, b"k1").unwrap().unwrap();
        db.put_cf(a, b"k2", &sealed).unwrap();
        let b = db.cf_handle("b").unwrap();
        db.put_cf(b, b"k1", &sealed).unwrap();
    });
    with_raw_db(&other.path, |db| {
        db.put_cf(db.cf_handle("a").unwrap(), b"k1", &sealed)
            .unwrap()
    });
    let store = f.open().unwrap();
    assert_eq!(
        store.get("a", b"k1").unwrap().as_deref(),
        Some(&b"secret"[..])
    );
    assert!(
        matches!(store.get("a", b"k2"), Err(StoreError::Corrupt { .. })),
        "moved to another key"
    );
    assert!(
        matches!(store.get("b", b"k1"), Err(StoreError::Corrupt { .. })),
        "moved to another database"
    );
    let other_store = other.open().unwrap();
    assert!(
        matches!(other_store.get("a", b"k1"), Err(StoreError::Corrupt { .. })),
        "moved to another store"
    );
}

#[test]
fn a_disabled_cmk_refuses_open_and_enable_brings_the_data_back() {
    let f = Fixture::new();
    let store = f.create();
    store.put("db", b"k", b"v").unwrap();
    drop(store);
    f.client.disable_key(&f.cmk).unwrap();
    let err = f.open().unwrap_err();
    assert!(
        matches!(err.kms_error(), Some(KmsError::Disabled(_))),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&f.cmk) && message.contains("DisabledException"),
        "{message}"
    );
    f.client.enable_key(&f.cmk).unwrap();
    assert_eq!(
        f.open().unwrap().get("db", b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn the_wrong_cmk_is_refused_by_name() {
    let f = Fixture::new();
    drop(f.create());
    let other = f.client.create_key(CreateKeyRequest::default()).unwrap();
    let err = Store::open(&f.path, f.kms(), &other.key_id, StoreOptions::default()).unwrap_err();
    match &err {
        StoreError::WrongCmk {
            expected, given, ..
        } => {
            assert_eq!(expected, &f.cmk);
            assert_eq!(given, &other.arn);
        }
        e => panic!("expected WrongCmk, got {e}"),
    }
    // An alias of the right key is the right key.
    f.client.create_alias("alias/node-cmk", &f.cmk).unwrap();
    Store::open(&f.path, f.kms(), "alias/node-cmk", StoreOptions::default()).unwrap();
}

/// A KMS that cannot be reached.
#[derive(Debug)]
struct DeadKms;

impl Kms for DeadKms {
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        Err(KmsError::Unavailable(format!(
            "connection refused calling DescribeKey on {key_id}"
        )))
    }
    fn encrypt(&self, _: &str, _: &[u8], _: &EncryptionContext) -> Result<Encrypted, KmsError> {
        Err(KmsError::Unavailable("connection refused".into()))
    }
    fn decrypt(&self, _: &str, _: &[u8], _: &EncryptionContext) -> Result<Decrypted, KmsError> {
        Err(KmsError::Unavailable("connection refused".into()))
    }
    fn generate_data_key(
        &self,
        _: &str,
        _: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        Err(KmsError::Unavailable("connection refused".into()))
    }
}

#[test]
fn a_dead_kms_is_a_clear_retryable_error_and_loses_nothing() {
    let f = Fixture::new();
    let store = f.create();
    store.put("db", b"k", b"v").unwrap();
    drop(store);
    let err = Store::open(&f.path, Arc::new(DeadKms), &f.cmk, StoreOptions::default()).unwrap_err();
    assert!(err.kms_error().is_some_and(KmsError::is_retryable), "{err}");
    assert!(err.to_string().contains(&f.cmk), "{err}");
    let err = Store::create(
        f.path.with_file_name("fresh"),
        Arc::new(DeadKms),
        &f.cmk,
        StoreOptions::default(),
    )
    .unwrap_err();
    assert!(err.kms_error().is_some_and(KmsError::is_retryable), "{err}");
    assert_eq!(
        f.open().unwrap().get("db", b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn create_and_open_refuse_the_wrong_directory() {
    let f = Fixture::new();
    assert!(matches!(f.open(), Err(StoreError::NotAStore { .. })));
    drop(f.create());
    assert!(matches!(
        Store::create(&f.path, f.kms(), &f.cmk, StoreOptions::default()),
        Err(StoreError::AlreadyExists { .. })
    ));
}

#[test]
fn many_threads_share_one_store() {
    let f = Fixture::new();
    let store = Arc::new(f.create());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let db = format!("db{}", i % 3);
                    let key = format!("{t}-{i}");
                    store.put(&db, key.as_bytes(), key.as_bytes()).unwrap();
                    assert_eq!(
                        store.get(&db, key.as_bytes()).unwrap().unwrap(),
                        key.as_bytes()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.databases().len(), 3);
    let total: usize = (0..3)
        .map(|d| scan_all(&store, &format!("db{d}"), KeyRange::All).len())
        .sum();
    assert_eq!(total, 2000);
}

/// Every stored byte of the run below (each column family's records, the keystore's
/// among them), made on a thread seeded with `seed`, or on an unseeded one.
fn stored_bytes_of_a_run(seed: Option<u64>) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let _seeded = seed.map(atrest::crypto::seed_thread);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock.clone());
    let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
    let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
    let options = StoreOptions {
        clock,
        ..StoreOptions::default()
    };
    let path = dir.path().join("node-0");
    let store = Store::create(&path, Arc::new(client), &cmk, options).unwrap();
    store.put("a", b"k", b"v").unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..300u32 {
        batch.put(
            if i % 2 == 0 { "a" } else { "b" },
            i.to_be_bytes(),
            [7u8; 40],
        );
    }
    store.write(&batch).unwrap();
    store.rotate_master_key().unwrap();
    store.roll_data_key("b").unwrap();
    store.put("b", b"after", b"roll").unwrap();
    drop(store);
    let mut bytes = Vec::new();
    with_raw_db(&path, |db| {
        for name in rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap() {
            let cf = db.cf_handle(&name).unwrap();
            for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
                let (k, v) = item.unwrap();
                bytes.push((name.clone(), k.to_vec(), v.to_vec()));
            }
        }
    });
    bytes
}

#[test]
fn a_seeded_thread_replays_every_stored_byte() {
    let first = stored_bytes_of_a_run(Some(7));
    assert!(first.len() > 300, "{} records", first.len());
    assert_eq!(first, stored_bytes_of_a_run(Some(7)), "the same seed");
    assert_ne!(first, stored_bytes_of_a_run(Some(8)), "another seed");
    assert_ne!(first, stored_bytes_of_a_run(None), "unseeded: fresh keys");
}
