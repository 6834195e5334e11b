//! Snapshots: encrypted under the CMK current when taken, never re-encrypted; restore
//! needs that CMK; tampering anywhere is detected; nothing readable is in the file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use atrest::clock::days;
use atrest::control::{ControlError, InitOptions, Retention, Root};
use atrest::kms::{
    Caller, CreateKeyRequest, Decrypted, Encrypted, EncryptionContext, GeneratedDataKey,
    KeyMetadata, Kms, KmsError, LocalKms, LocalKmsClient,
};
use atrest::store::{
    restore_snapshot, verify_snapshot, KeyRange, LocalDirStorage, RestoreTarget, SnapshotError,
    SnapshotStorage, Store, StoreOptions,
};

fn init(dir: &Path, region: &str) -> Root {
    let root = Root::open(dir).unwrap();
    root.init(&InitOptions {
        region: region.to_string(),
        ..InitOptions::default()
    })
    .unwrap();
    root
}

fn put(root: &Root, key: &str, value: &str) {
    root.cluster(None)
        .unwrap()
        .put("db", key.as_bytes(), value.as_bytes())
        .unwrap();
}

/// The value under `key`, after checking that every node holds the same records.
fn get(root: &Root, key: &str) -> Option<String> {
    let cluster = root.cluster(None).unwrap();
    let verified = cluster.verify().unwrap();
    assert!(verified.consistent, "{verified}");
    cluster
        .get("db", key.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

fn node0_keys(root: &Root) -> atrest::keys::KeystoreStatus {
    let nodes = root.cluster(None).unwrap().status().unwrap();
    nodes.into_iter().next().unwrap().keys.unwrap()
}

fn snapshot_error(result: Result<atrest::store::SnapshotInfo, ControlError>) -> SnapshotError {
    match result {
        Err(ControlError::Snapshot(e)) => e,
        Err(e) => panic!("expected a snapshot error, got {e}"),
        Ok(_) => panic!("expected a snapshot error, got success"),
    }
}

#[test]
fn snapshots_stay_under_the_cmk_current_when_taken() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(dir.path(), "us-east-1");
    let a = root.settings().unwrap().unwrap().cmk;
    let kms = root.kms_client(None, None).unwrap();
    put(&root, "k1", "first");
    let s1 = root.create_snapshot(None, &mut |_| {}).unwrap();
    assert_eq!(s1.cmk_arn, a);
    assert_eq!(s1.cmk_region, "us-east-1");
    let b = kms.create_key(CreateKeyRequest::default()).unwrap().arn;
    root.set_key(&b).unwrap();
    put(&root, "k2", "second");
    let s2 = root.create_snapshot(None, &mut |_| {}).unwrap();
    assert_eq!(s2.cmk_arn, b);
    assert_eq!(
        root.snapshots()
            .unwrap()
            .snapshots
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>(),
        vec![s1.id.clone(), s2.id.clone()]
    );

    kms.disable_key(&a).unwrap();
    let err = snapshot_error(root.restore_snapshot(&s1.id, None, None));
    assert!(
        matches!(&err, SnapshotError::CmkDisabled { cmk, .. } if *cmk == a),
        "{err}"
    );
    assert!(
        err.to_string().contains(&a) && err.to_string().contains("EnableKey"),
        "{err}"
    );
    assert_eq!(
        get(&root, "k2").as_deref(),
        Some("second"),
        "a failed restore touched the store"
    );
    root.restore_snapshot(&s2.id, None, None).unwrap();
    assert_eq!(get(&root, "k2").as_deref(), Some("second"));
    kms.enable_key(&a).unwrap();
    root.restore_snapshot(&s1.id, None, None).unwrap();
    assert_eq!(get(&root, "k1").as_deref(), Some("first"));
    assert_eq!(
        get(&root, "k2"),
        None,
        "restored the state at the first snapshot"
    );
    // The restored node is re-keyed under the project's current CMK.
    for node in root.cluster(None).unwrap().status().unwrap() {
        assert_eq!(node.keys.unwrap().cmk_arn, b);
    }

    let usage = root.key_usage(&a).unwrap();
    assert_eq!(
        usage
            .snapshots
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec![s1.id.as_str()]
    );
    assert!(usage.stores.is_empty());
    assert!(!usage.safe_to_delete);
    let refused = root
        .schedule_key_deletion(&kms, &a, Some(7), false)
        .unwrap_err();
    assert!(
        matches!(&refused, ControlError::KeyInUse { snapshots, .. } if *snapshots == vec![s1.id.clone()]),
        "{refused}"
    );
    assert!(!root.key_usage(&b).unwrap().safe_to_delete);

    assert_eq!(
        root.set_retention(
            Retention {
                keep: Some(1),
                max_age_days: None
            },
            false
        )
        .unwrap(),
        vec![s1.id.clone()]
    );
    let usage = root.key_usage(&a).unwrap();
    assert!(usage.snapshots.is_empty() && usage.safe_to_delete);
    root.schedule_key_deletion(&kms, &a, Some(7), false)
        .unwrap();
}

#[test]
fn a_deleted_cmk_leaves_its_snapshots_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(dir.path(), "us-east-1");
    let a = root.settings().unwrap().unwrap().cmk;
    let kms = root.kms_client(None, None).unwrap();
    put(&root, "k", "v");
    let s1 = root.create_snapshot(None, &mut |_| {}).unwrap();
    let b = kms.create_key(CreateKeyRequest::default()).unwrap().arn;
    root.set_key(&b).unwrap();
    root.schedule_key_deletion(&kms, &a, Some(7), true).unwrap();
    let err = snapshot_error(root.restore_snapshot(&s1.id, None, None));
    assert!(
        err.kms_error()
            .is_some_and(|e| matches!(e, KmsError::InvalidState(_))),
        "{err}"
    );
    root.advance_clock(days(8)).unwrap();
    let err = snapshot_error(root.restore_snapshot(&s1.id, None, None));
    assert!(
        matches!(err, SnapshotError::CredentialsNotPresent { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("encryption credentials for this snapshot are not present"),
        "{err}"
    );
    assert_eq!(get(&root, "k").as_deref(), Some("v"));
    // Retention by age.
    root.advance_clock(days(30)).unwrap();
    assert_eq!(
        root.tick().unwrap().snapshots_deleted,
        Vec::<String>::new(),
        "no policy yet"
    );
    root.set_retention(
        Retention {
            keep: None,
            max_age_days: Some(30),
        },
        false,
    )
    .unwrap();
    assert!(root.snapshots().unwrap().snapshots.is_empty());
}

#[test]
fn restore_into_another_project_only_in_the_same_region() {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let source = init(dirs[0].path(), "us-east-1");
    let same_region = init(dirs[1].path(), "us-east-1");
    let other_region = init(dirs[2].path(), "eu-west-1");
    for i in 0..100 {
        put(&source, &format!("k{i:03}"), &format!("v{i}"));
    }
    let before = node0_keys(&source);
    let snap = source.create_snapshot(None, &mut |_| {}).unwrap();
    source
        .restore_snapshot(&snap.id, Some(dirs[1].path()), None)
        .unwrap();
    let status = node0_keys(&same_region);
    let clone = same_region.cluster(None).unwrap();
    assert_eq!(status.cmk_arn, same_region.settings().unwrap().unwrap().cmk);
    assert_eq!(status.master_key_version, before.master_key_version + 1);
    assert_eq!(
        status.databases[0].data_keys,
        before.databases[0].data_keys + 1,
        "a fresh data key for new writes"
    );
    assert_ne!(
        status.databases[0].active_data_key,
        before.databases[0].active_data_key
    );
    assert!(
        clone.verify().unwrap().consistent,
        "every node of the clone"
    );
    let records = clone.records("db", KeyRange::All).unwrap();
    assert_eq!(records.len(), 100);
    clone.put("db", b"new", b"write").unwrap();
    drop(clone);
    // Into a new project: initialised like the source, then restored.
    let fresh = tempfile::tempdir().unwrap();
    source
        .restore_snapshot(&snap.id, Some(&fresh.path().join("new")), None)
        .unwrap();
    let new_root = Root::open(fresh.path().join("new")).unwrap();
    assert_eq!(get(&new_root, "k099").as_deref(), Some("v99"));
    let err = snapshot_error(source.restore_snapshot(&snap.id, Some(dirs[2].path()), None));
    assert!(matches!(err, SnapshotError::WrongRegion { .. }), "{err}");
    assert_eq!(get(&other_region, "k000"), None);
}

/// Passes calls through, remembering every plaintext handed to Encrypt (master keys,
/// snapshot keys), so a test can look for them on disk.
#[derive(Debug)]
struct Recording {
    inner: LocalKmsClient,
    plaintexts: Mutex<Vec<Vec<u8>>>,
}

impl Kms for Recording {
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.inner.describe_key(key_id)
    }
    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError> {
        self.plaintexts.lock().unwrap().push(plaintext.to_vec());
        self.inner.encrypt(key_id, plaintext, context)
    }
    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError> {
        Kms::decrypt(&self.inner, key_id, blob, context)
    }
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        Kms::generate_data_key(&self.inner, key_id, context)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    kms: Arc<Recording>,
    cmk: String,
    storage: LocalDirStorage,
    id: String,
}

const MARKER: &[u8] = b"SNAPSHOT-PLAINTEXT-MARKER-51f0";

/// A store of about 600 KB (ten 64 KiB chunks), and one snapshot of it.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalKms::in_memory(Arc::new(atrest::clock::SystemClock));
    let client = local.client(Caller::account_root("111122223333", "us-east-1").unwrap());
    let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
    let kms = Arc::new(Recording {
        inner: client,
        plaintexts: Mutex::new(Vec::new()),
    });
    let store = Store::create(
        dir.path().join("store"),
        kms.clone(),
        &cmk,
        StoreOptions::default(),
    )
    .unwrap();
    for i in 0..600u32 {
        let mut value = MARKER.to_vec();
        value.extend((0..1000).map(|j| ((i * 31 + j) % 251) as u8));
        store
            .put("db", format!("record-key-{i:04}").as_bytes(), &value)
            .unwrap();
    }
    store.rotate_master_key().unwrap();
    let storage = LocalDirStorage::new(dir.path().join("snapshots")).unwrap();
    let mut last = 0;
    let id = store
        .create_snapshot(&storage, &mut |done| last = done)
        .unwrap()
        .id;
    assert!(last > 500_000, "progress reported {last} bytes");
    Fixture {
        dir,
        kms,
        cmk,
        storage,
        id,
    }
}

impl Fixture {
    fn path(&self) -> std::path::PathBuf {
        self.dir
            .path()
            .join("snapshots")
            .join(format!("{}.atrsnap", self.id))
    }

    /// Byte offsets where chunks begin (at their length prefix), and the file's end.
    fn chunk_boundaries(&self, bytes: &[u8]) -> Vec<usize> {
        let header = 13 + u32::from_be_bytes(bytes[9..13].try_into().unwrap()) as usize;
        let mut at = header;
        let mut boundaries = vec![header];
        while at < bytes.len() {
            at += 4 + u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            boundaries.push(at);
        }
        boundaries
    }

    fn restore_to(&self, target: &Path) -> Result<Store, SnapshotError> {
        let to = RestoreTarget {
            path: target,
            kms: self.kms.clone(),
            cmk: &self.cmk,
            region: "us-east-1",
            options: StoreOptions::default(),
        };
        restore_snapshot(&self.storage, &self.id, self.kms.clone(), to)
    }

    fn verify_with(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        std::fs::write(self.path(), bytes).unwrap();
        verify_snapshot(&self.storage, &self.id, self.kms.as_ref(), &mut |_| {}).map(|_| ())
    }
}

#[test]
fn every_flip_truncation_and_swap_is_detected() {
    let f = fixture();
    let good = std::fs::read(f.path()).unwrap();
    f.verify_with(&good).unwrap();
    let boundaries = f.chunk_boundaries(&good);
    assert!(
        boundaries.len() >= 10,
        "expected many chunks, got {}",
        boundaries.len() - 1
    );
    let header_len = boundaries[0];

    let mut positions: Vec<usize> = (0..header_len).collect();
    for &b in &boundaries[..boundaries.len() - 1] {
        positions.extend(b.saturating_sub(2)..(b + 6).min(good.len()));
    }
    positions.extend((0..good.len()).step_by(997));
    positions.push(good.len() - 1);
    for &at in &positions {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        assert!(
            f.verify_with(&bad).is_err(),
            "a flipped byte at {at} went unnoticed"
        );
    }
    for &b in &boundaries {
        for cut in [b.saturating_sub(1), b, b + 1, b + 4] {
            if cut < good.len() {
                let err = f.verify_with(&good[..cut]).unwrap_err();
                assert!(!err.to_string().is_empty(), "truncation at {cut}");
            }
        }
    }
    let (c1, c2, c3) = (boundaries[1], boundaries[2], boundaries[3]);
    let mut swapped = good[..c1].to_vec();
    swapped.extend_from_slice(&good[c2..c3]);
    swapped.extend_from_slice(&good[c1..c2]);
    swapped.extend_from_slice(&good[c3..]);
    let err = f.verify_with(&swapped).unwrap_err();
    assert!(err.to_string().contains("does not authenticate"), "{err}");
    let mut dropped = good[..c1].to_vec();
    dropped.extend_from_slice(&good[c2..]);
    assert!(f.verify_with(&dropped).is_err());
    let mut appended = good.clone();
    appended.extend_from_slice(&good[c1..c2]);
    assert!(f.verify_with(&appended).is_err());

    // A corrupt snapshot is never restored over a store: the target stays as it was.
    let mut bad = good.clone();
    bad[boundaries[5] + 100] ^= 1;
    std::fs::write(f.path(), &bad).unwrap();
    let target = f.dir.path().join("store");
    let result = f.restore_to(&target);
    assert!(matches!(result, Err(SnapshotError::Corrupt { .. })));
    let store = Store::open(&target, f.kms.clone(), &f.cmk, StoreOptions::default()).unwrap();
    assert_eq!(store.scan("db", KeyRange::All).unwrap().count(), 600);
}

#[test]
fn a_snapshot_file_holds_no_plaintext_and_no_unwrapped_key() {
    let f = fixture();
    let bytes = std::fs::read(f.path()).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(MARKER), "a plaintext value is in the snapshot");
    assert!(
        !contains(b"record-key-0042"),
        "a record key is in the snapshot"
    );
    let keys = f.kms.plaintexts.lock().unwrap().clone();
    assert!(
        keys.len() >= 3,
        "master keys v1 and v2 and the snapshot key went through Encrypt"
    );
    for key in &keys {
        assert!(!contains(key), "an unwrapped key is in the snapshot");
    }
    // The restored store reads back everything.
    let target = f.dir.path().join("restored");
    let store = f.restore_to(&target).unwrap();
    let records: Vec<_> = store
        .scan("db", KeyRange::All)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 600);
    assert!(records.iter().all(|(_, v)| v.starts_with(MARKER)));
    assert_eq!(f.storage.list().unwrap(), vec![f.id.clone()]);
}

#[test]
fn a_restore_interrupted_mid_swap_is_finished_at_the_next_open() {
    let f = fixture();
    // A complete restore, then the state a crash between the two renames leaves: the old
    // store moved aside, the restored one not yet moved in.
    let restored = f.dir.path().join("elsewhere");
    drop(f.restore_to(&restored).unwrap());
    let store = f.dir.path().join("store");
    std::fs::rename(&store, f.dir.path().join(".store.aside-0123")).unwrap();
    std::fs::rename(&restored, f.dir.path().join(".store.ready-0123")).unwrap();
    let reopened = Store::open(&store, f.kms.clone(), &f.cmk, StoreOptions::default()).unwrap();
    assert_eq!(reopened.scan("db", KeyRange::All).unwrap().count(), 600);
    assert!(!f.dir.path().join(".store.aside-0123").exists());
    assert!(!f.dir.path().join(".store.ready-0123").exists());
}

#[test]
fn junk_and_leftovers_in_the_snapshot_directory_block_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(dir.path(), "us-east-1");
    put(&root, "k", "v");
    let real = root.create_snapshot(None, &mut |_| {}).unwrap();
    assert!(real.authenticated, "its creator knows what it wrote");
    let snapshots = dir.path().join("snapshots");
    std::fs::write(snapshots.join("empty.atrsnap"), b"").unwrap();
    std::fs::write(snapshots.join("noise.atrsnap"), [0x5a; 300]).unwrap();
    // What killed creates leave: a partial file, and a checkpoint beside each node.
    std::fs::write(snapshots.join(".killed.atrsnap.partial"), [1; 64]).unwrap();
    let nodes = root.cluster(None).unwrap().node_paths().to_vec();
    let checkpoint = nodes[0].with_file_name(format!(
        ".{}.snapshot-killed",
        nodes[0].file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir(&checkpoint).unwrap();
    std::fs::write(checkpoint.join("000001.sst"), [2; 64]).unwrap();

    let listing = root.snapshots().unwrap();
    assert_eq!(listing.snapshots.len(), 1);
    assert_eq!(listing.snapshots[0].id, real.id);
    assert!(
        !listing.snapshots[0].authenticated,
        "a listing shows what headers claim"
    );
    let damaged: Vec<&str> = listing.damaged.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(damaged, ["empty", "noise"]);
    assert!(
        listing.damaged[0].reason.contains("shorter than a header"),
        "{:?}",
        listing.damaged
    );
    assert!(!snapshots.join(".killed.atrsnap.partial").exists());

    // Maintenance goes on around the damaged files: retention, usage, key deletion.
    root.set_retention(
        Retention {
            keep: Some(1),
            max_age_days: None,
        },
        false,
    )
    .unwrap();
    root.tick().unwrap();
    let cmk = root.settings().unwrap().unwrap().cmk;
    let usage = root.key_usage(&cmk).unwrap();
    assert_eq!(usage.snapshots.len(), 1);
    assert_eq!(usage.damaged_snapshots, ["empty", "noise"]);
    let kms = root.kms_client(None, None).unwrap();
    let unused = kms.create_key(CreateKeyRequest::default()).unwrap().arn;
    root.schedule_key_deletion(&kms, &unused, Some(7), false)
        .unwrap();

    root.delete_snapshot("empty").unwrap();
    root.delete_snapshot("noise").unwrap();
    assert!(matches!(
        root.delete_snapshot("noise"),
        Err(ControlError::Snapshot(SnapshotError::NotFound { .. }))
    ));
    assert!(matches!(
        root.delete_snapshot("../atrest"),
        Err(ControlError::Snapshot(SnapshotError::NotFound { .. }))
    ));
    assert!(root.snapshots().unwrap().damaged.is_empty());

    // The next open of the node removes the checkpoint its killed create left.
    drop(root);
    let root = Root::open(dir.path()).unwrap();
    assert_eq!(get(&root, "k").as_deref(), Some("v"));
    assert!(!checkpoint.exists());
    let verified = root.verify_snapshot(&real.id).unwrap();
    assert!(verified.authenticated);
}

#[test]
fn a_retention_that_keeps_nothing_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(dir.path(), "us-east-1");
    put(&root, "k", "v");
    let taken = root.create_snapshot(None, &mut |_| {}).unwrap();
    for nothing in [
        Retention {
            keep: Some(0),
            max_age_days: None,
        },
        Retention {
            keep: None,
            max_age_days: Some(0),
        },
    ] {
        assert!(matches!(
            root.set_retention(nothing, false),
            Err(ControlError::RetentionKeepsNothing)
        ));
    }
    assert_eq!(root.snapshots().unwrap().snapshots.len(), 1);
    let deleted = root
        .set_retention(
            Retention {
                keep: Some(0),
                max_age_days: None,
            },
            true,
        )
        .unwrap();
    assert_eq!(deleted, [taken.id]);
}
