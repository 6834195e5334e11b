//! Key rotation at every level: master key (without rewriting data), CMK, KMS key
//! material, and data-key rollover by count and by age. Time moves by ManualClock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atrest::clock::{days, Clock, ManualClock, Timestamp};
use atrest::kms::{Caller, CreateKeyRequest, Fault, FaultyKms, KmsError, LocalKms, LocalKmsClient};
use atrest::store::{DataKeyLimits, KeyRange, Store, StoreOptions, WriteBatch};

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: Arc<ManualClock>,
    client: LocalKmsClient,
    cmk: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let kms = LocalKms::in_memory(clock.clone());
        let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
        Fixture {
            path: dir.path().join("node"),
            _dir: dir,
            clock,
            client,
            cmk,
        }
    }

    fn options(&self) -> StoreOptions {
        StoreOptions {
            clock: self.clock.clone(),
            ..StoreOptions::default()
        }
    }

    fn create(&self, options: StoreOptions) -> Store {
        Store::create(
            &self.path,
            Arc::new(self.client.clone()),
            &self.cmk,
            options,
        )
        .unwrap()
    }

    fn open(&self, cmk: &str, options: StoreOptions) -> Store {
        Store::open(&self.path, Arc::new(self.client.clone()), cmk, options).unwrap()
    }
}

fn value(i: u32) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(1024, (i % 251) as u8);
    v
}

fn check_all(store: &Store, db: &str, n: u32) {
    let mut count = 0;
    for (i, record) in store.scan(db, KeyRange::All).unwrap().enumerate() {
        let (k, v) = record.unwrap();
        assert_eq!(k, (i as u32).to_be_bytes());
        assert_eq!(v, value(i as u32));
        count += 1;
    }
    assert_eq!(count, n);
}

/// Every file under `dir`, with its contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn master_key_rotation_rewrites_no_data() {
    let f = Fixture::new();
    let store = f.create(f.options());
    const N: u32 = 20_000;
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut batch = WriteBatch::new();
        for &i in chunk {
            batch.put("data", i.to_be_bytes(), value(i));
        }
        store.write(&batch).unwrap();
    }
    for db in 0..40 {
        store.put(&format!("db{db}"), b"k", b"v").unwrap();
    }
    store.flush().unwrap();
    store.compact().unwrap();
    let before = files(&f.path);
    let sst_before: BTreeMap<_, _> = before.iter().filter(|(n, _)| n.ends_with(".sst")).collect();
    let data_bytes: usize = sst_before.values().map(|v| v.len()).sum();
    assert!(
        data_bytes > 10 * 1024 * 1024,
        "the test needs real data on disk ({data_bytes} bytes)"
    );
    let keystore_len = store.keystore().encode().len();

    assert_eq!(store.rotate_master_key().unwrap(), 2);

    let after = files(&f.path);
    let sst_after: BTreeMap<_, _> = after.iter().filter(|(n, _)| n.ends_with(".sst")).collect();
    assert_eq!(
        sst_before, sst_after,
        "SST files changed: records were rewritten"
    );
    let size = |m: &BTreeMap<String, Vec<u8>>| m.values().map(|v| v.len()).sum::<usize>();
    let written = size(&after).saturating_sub(size(&before));
    assert!(
        written <= 2 * keystore_len + 4096,
        "rotation wrote {written} bytes for a {keystore_len}-byte keystore over {data_bytes} bytes of data"
    );
    check_all(&store, "data", N);
    drop(store);
    let store = f.open(&f.cmk, f.options());
    assert_eq!(store.status().master_key_version, 2);
    check_all(&store, "data", N);
    assert_eq!(store.get("db39", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn the_master_key_rotates_every_90_days_even_across_restarts() {
    let f = Fixture::new();
    let store = f.create(f.options());
    store.put("db", &0u32.to_be_bytes(), &value(0)).unwrap();
    let created = store.status().master_key_created;
    assert_eq!(
        store.status().master_key_next_rotation,
        Some(created.saturating_add(days(90)))
    );
    f.clock.advance(days(89));
    assert_eq!(store.tick().unwrap().master_key_rotated_to, None);
    drop(store);
    // The schedule comes from the persisted creation time, not from a timer that a
    // restart would lose.
    f.clock.advance(days(2));
    let store = f.open(&f.cmk, f.options());
    assert_eq!(store.tick().unwrap().master_key_rotated_to, Some(2));
    assert_eq!(store.tick().unwrap().master_key_rotated_to, None);
    assert_eq!(store.status().master_key_created, f.clock.now());
    check_all(&store, "db", 1);
    let never = StoreOptions {
        master_key_rotation: None,
        ..f.options()
    };
    drop(store);
    f.clock.advance(days(1000));
    let store = f.open(&f.cmk, never);
    assert_eq!(store.tick().unwrap().master_key_rotated_to, None);
    assert_eq!(store.status().master_key_next_rotation, None);
}

#[test]
fn cmk_rotation_rewraps_and_frees_the_old_key() {
    let f = Fixture::new();
    let store = f.create(f.options());
    store.put("db", &0u32.to_be_bytes(), &value(0)).unwrap();
    let new_cmk = f.client.create_key(CreateKeyRequest::default()).unwrap();
    f.client
        .create_alias("alias/new-cmk", &new_cmk.key_id)
        .unwrap();
    store.rewrap_master_key("alias/new-cmk").unwrap();
    let status = store.status();
    assert_eq!(status.cmk_arn, new_cmk.arn);
    assert_eq!(
        status.master_key_version, 1,
        "a CMK rotation re-wraps the same master key"
    );
    drop(store);
    // The old CMK is no longer needed: disable it, delete it.
    f.client.disable_key(&f.cmk).unwrap();
    f.client.schedule_key_deletion(&f.cmk, Some(7)).unwrap();
    f.clock.advance(days(8));
    f.client.service().tick().unwrap();
    assert!(f.client.describe_key(&f.cmk).is_err());
    let store = f.open(&new_cmk.arn, f.options());
    check_all(&store, "db", 1);
    // Opening with the old key's name is refused by name.
    drop(store);
    assert!(Store::open(&f.path, Arc::new(f.client.clone()), &f.cmk, f.options()).is_err());
}

#[test]
fn a_cmk_the_caller_cannot_decrypt_with_is_refused_before_use() {
    let f = Fixture::new();
    let store = f.create(f.options());
    store.put("db", &0u32.to_be_bytes(), &value(0)).unwrap();
    let me = f.client.caller().principal().to_string();
    let policy = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{me}"}},"Action":["kms:Encrypt","kms:DescribeKey","kms:PutKeyPolicy"],"Resource":"*"}}]}}"#
    );
    let encrypt_only = f
        .client
        .create_key(CreateKeyRequest {
            policy: Some(policy),
            ..Default::default()
        })
        .unwrap();
    let err = store.rewrap_master_key(&encrypt_only.arn).unwrap_err();
    assert!(
        matches!(err.kms_error(), Some(KmsError::AccessDenied(_))),
        "{err}"
    );
    assert_eq!(
        store.status().cmk_arn,
        f.cmk,
        "a refused rotation changed the keystore"
    );
    drop(store);
    check_all(&f.open(&f.cmk, f.options()), "db", 1);
}

#[test]
fn kms_side_material_rotation_changes_nothing_in_atrest() {
    let f = Fixture::new();
    let store = f.create(f.options());
    store.put("db", &0u32.to_be_bytes(), &value(0)).unwrap();
    drop(store);
    f.client.rotate_key_on_demand(&f.cmk).unwrap();
    f.client.enable_key_rotation(&f.cmk, Some(90)).unwrap();
    f.clock.advance(days(400));
    f.client.service().tick().unwrap();
    assert_eq!(f.client.list_key_rotations(&f.cmk).unwrap().len(), 5);
    let store = f.open(&f.cmk, f.options());
    check_all(&store, "db", 1);
    // A master key wrapped under the newest material opens too.
    store.rotate_master_key().unwrap();
    store.put("db", &1u32.to_be_bytes(), &value(1)).unwrap();
    drop(store);
    check_all(&f.open(&f.cmk, f.options()), "db", 2);
}

#[test]
fn data_keys_roll_over_by_count_and_only_ever_over_count() {
    let f = Fixture::new();
    let limits = DataKeyLimits {
        max_uses: 10,
        reservation: 3,
        max_age: None,
    };
    let options = StoreOptions {
        data_key_limits: limits,
        ..f.options()
    };
    let store = f.create(options.clone());
    for i in 0..35u32 {
        store.put("db", &i.to_be_bytes(), &value(i)).unwrap();
    }
    let status = store.status();
    let db = &status.databases[0];
    assert_eq!(db.data_keys, 4, "35 seals at 10 per key");
    assert!(db.active_uses <= 10);
    for key in store.keystore().data_keys() {
        assert!(
            key.reserved_uses() <= 10,
            "data key {} reserved {}",
            key.id(),
            key.reserved_uses()
        );
        assert!(
            key.uses() <= 11,
            "data key {} counted {} seals",
            key.id(),
            key.uses()
        );
    }
    let uses_before = db.active_uses;
    drop(store);
    let store = f.open(&f.cmk, options.clone());
    let after = store.status().databases[0].active_uses;
    assert!(
        after >= uses_before,
        "a reopen under-counted: {after} < {uses_before}"
    );
    check_all(&store, "db", 35);
    let mut batch = WriteBatch::new();
    for i in 35..60u32 {
        batch.put("db", i.to_be_bytes(), value(i));
    }
    store.write(&batch).unwrap();
    check_all(&store, "db", 60);
    assert!(store.status().databases[0].data_keys >= 6);
}

#[test]
fn data_keys_roll_over_by_age() {
    let f = Fixture::new();
    let limits = DataKeyLimits {
        max_age: Some(days(30)),
        ..DataKeyLimits::default()
    };
    let options = StoreOptions {
        data_key_limits: limits,
        ..f.options()
    };
    let store = f.create(options);
    store.put("old", &0u32.to_be_bytes(), &value(0)).unwrap();
    f.clock.advance(days(29));
    assert!(store.tick().unwrap().data_keys_rolled.is_empty());
    f.clock.advance(days(2));
    assert_eq!(
        store.tick().unwrap().data_keys_rolled,
        vec!["old".to_string()]
    );
    store.put("old", &1u32.to_be_bytes(), &value(1)).unwrap();
    let status = store.status();
    assert_eq!(status.databases[0].data_keys, 2);
    assert_eq!(status.databases[0].active_age_days, 0);
    assert!(status.databases[0].oldest_data_key_created < status.databases[0].active_since);
    check_all(&store, "old", 2);
    assert_eq!(store.roll_data_key("old").unwrap(), 3);
}

#[test]
fn a_kms_outage_during_rotation_changes_nothing_and_reads_go_on() {
    let f = Fixture::new();
    let kms = Arc::new(FaultyKms::new(Arc::new(f.client.clone())));
    let store = Store::create(&f.path, kms.clone(), &f.cmk, f.options()).unwrap();
    store.put("db", &0u32.to_be_bytes(), &value(0)).unwrap();
    kms.fail_randomly(1.0, Fault::Unavailable, 1);
    let err = store.rotate_master_key().unwrap_err();
    assert!(err.kms_error().is_some_and(KmsError::is_retryable), "{err}");
    f.clock.advance(days(91));
    assert!(store.tick().is_err());
    // Records need no KMS call: the store keeps serving while the KMS is down.
    store.put("db", &1u32.to_be_bytes(), &value(1)).unwrap();
    check_all(&store, "db", 2);
    assert_eq!(store.status().master_key_version, 1);
    kms.heal();
    assert_eq!(store.tick().unwrap().master_key_rotated_to, Some(2));
    drop(store);
    check_all(&f.open(&f.cmk, f.options()), "db", 2);
}

#[test]
fn an_interrupted_cmk_rotation_shows_and_finishes_on_retry() {
    use atrest::control::{ControlError, InitOptions, Root};
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    let settings = root.init(&InitOptions::default()).unwrap();
    root.cluster(None)
        .unwrap()
        .put("db", &0u32.to_be_bytes(), &value(0))
        .unwrap();
    let kms = root.kms_client(None, None).unwrap();
    let me = kms.caller().principal().to_string();
    let no_decrypt = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{me}"}},"Action":["kms:Encrypt","kms:DescribeKey","kms:PutKeyPolicy"],"Resource":"*"}}]}}"#
    );
    let b = kms
        .create_key(CreateKeyRequest {
            policy: Some(no_decrypt),
            ..Default::default()
        })
        .unwrap();
    // A key the project's role cannot decrypt with is refused before anything changes,
    // naming the missing permission.
    let err = root.set_key(&b.key_id).unwrap_err();
    assert!(
        matches!(
            &err,
            ControlError::MissingPermission {
                action: "kms:Decrypt",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(root.settings().unwrap().unwrap().cmk_rotation, None);
    kms.put_key_policy(
        &b.key_id,
        &atrest::kms::KeyPolicy::default_for("111122223333").to_json(),
    )
    .unwrap();
    // A node held open elsewhere stops the rotation after it was recorded.
    let node0 = root.cluster(None).unwrap().node_paths()[0].clone();
    let holder = Store::open(
        &node0,
        Arc::new(kms.clone()),
        &settings.cmk,
        StoreOptions::default(),
    )
    .unwrap();
    assert!(root.set_key(&b.key_id).is_err());
    let pending = root.settings().unwrap().unwrap();
    assert_eq!(pending.cmk, settings.cmk);
    let rotation = pending
        .cmk_rotation
        .expect("the rotation shows as in progress");
    assert_eq!(
        (rotation.from.as_str(), rotation.to.as_str()),
        (settings.cmk.as_str(), b.arn.as_str())
    );
    drop(holder);
    check_all_cluster(&root.cluster(None).unwrap(), "db", 1);
    // Another key cannot be started meanwhile.
    let c = kms.create_key(CreateKeyRequest::default()).unwrap();
    assert!(matches!(
        root.set_key(&c.key_id),
        Err(ControlError::RotationInProgress { .. })
    ));
    // The same command finishes the rotation; the old key is then free.
    let done = root.set_key(&b.arn).unwrap();
    assert_eq!(done.cmk, b.arn);
    assert_eq!(done.cmk_rotation, None);
    kms.disable_key(&settings.cmk).unwrap();
    let cluster = root.cluster(None).unwrap();
    for node in cluster.status().unwrap() {
        assert_eq!(node.keys.unwrap().cmk_arn, b.arn);
    }
    check_all_cluster(&cluster, "db", 1);
}

fn check_all_cluster(cluster: &atrest::control::cluster::Cluster, db: &str, n: u32) {
    let verified = cluster.verify().unwrap();
    assert!(
        verified.consistent,
        "every node holds the same records: {verified}"
    );
    for i in 0..n {
        assert_eq!(
            cluster.get(db, &i.to_be_bytes()).unwrap(),
            Some(value(i)),
            "record {i}"
        );
    }
}
