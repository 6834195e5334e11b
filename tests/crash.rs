//! Crash safety: a child process writes and rotates keys; the parent kills it with SIGKILL
//! at random points, reopens, and checks that every acknowledged write reads back and
//! that the keystore is whole. `ATREST_CRASH_CYCLES` sets the number of kills (default 100).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atrest::clock::SystemClock;
use atrest::kms::{Caller, CreateKeyRequest, LocalKms, LocalKmsClient};
use atrest::store::{DataKeyLimits, KeyRange, Store, StoreError, StoreOptions, WriteBatch};
use rand::Rng;

const DATABASES: u32 = 3;

fn client(dir: &Path) -> LocalKmsClient {
    LocalKms::open(dir.join("kms"), Arc::new(SystemClock))
        .unwrap()
        .client(Caller::account_root("111122223333", "us-east-1").unwrap())
}

fn options() -> StoreOptions {
    StoreOptions {
        data_key_limits: DataKeyLimits {
            max_uses: 20,
            reservation: 7,
            max_age: None,
        },
        master_key_rotation: None,
        ..StoreOptions::default()
    }
}

/// Opens the store under whichever of the two CMKs wraps it now.
fn open(dir: &Path, cmk: &str) -> Store {
    let kms = Arc::new(client(dir));
    match Store::open(dir.join("store"), kms.clone(), cmk, options()) {
        Err(StoreError::WrongCmk { expected, .. }) => {
            Store::open(dir.join("store"), kms, &expected, options()).unwrap()
        }
        other => other.unwrap(),
    }
}

fn value(i: u32) -> Vec<u8> {
    format!("value {i} ")
        .repeat(1 + (i % 7) as usize)
        .into_bytes()
}

fn database(i: u32) -> String {
    format!("db{}", i % DATABASES)
}

/// The child: writes keys from START on, acknowledging each on stdout once `put` or
/// `write` has returned, and rotates keys of every kind as it goes, until killed.
#[test]
#[ignore = "the crash harness's child process, run by sigkill_never_loses_an_acknowledged_write"]
fn crash_child() {
    let dir = std::env::var("ATREST_CRASH_DIR").expect("run by the crash harness");
    let dir = Path::new(&dir);
    let cmks = [
        std::env::var("ATREST_CRASH_CMK_A").unwrap(),
        std::env::var("ATREST_CRASH_CMK_B").unwrap(),
    ];
    let scratch = std::env::var("ATREST_CRASH_SCRATCH").unwrap();
    let start: u32 = std::env::var("ATREST_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let kms = client(dir);
    let store = if dir.join("store").exists() {
        open(dir, &cmks[0])
    } else {
        Store::create(
            dir.join("store"),
            Arc::new(kms.clone()),
            &cmks[0],
            options(),
        )
        .unwrap()
    };
    let stdout = std::io::stdout();
    for i in start.. {
        if i % 5 == 4 {
            let mut batch = WriteBatch::new();
            batch.put(&database(i), i.to_be_bytes(), value(i)).put(
                "mirror",
                i.to_be_bytes(),
                value(i),
            );
            store.write(&batch).unwrap();
        } else {
            store
                .put(&database(i), &i.to_be_bytes(), &value(i))
                .unwrap();
        }
        writeln!(stdout.lock(), "ack {i}").unwrap();
        stdout.lock().flush().unwrap();
        if i % 13 == 0 {
            store.rotate_master_key().unwrap();
        }
        if i % 29 == 0 {
            let other = if store.status().cmk_arn == cmks[0] {
                &cmks[1]
            } else {
                &cmks[0]
            };
            store.rewrap_master_key(other).unwrap();
        }
        if i % 17 == 0 {
            store.roll_data_key(&database(i)).unwrap();
        }
        if i % 31 == 0 {
            // A KMS state-file write, so that kills land in those too.
            if kms
                .get_key_rotation_status(&scratch)
                .unwrap()
                .key_rotation_enabled
            {
                kms.disable_key_rotation(&scratch).unwrap();
            } else {
                kms.enable_key_rotation(&scratch, None).unwrap();
            }
        }
    }
}

/// Reads acknowledgements until `wanted` have come, then kills the child; returns every
/// acknowledgement it printed before it died.
fn run_child_until_killed(
    dir: &Path,
    cmks: &[String; 2],
    scratch: &str,
    start: u32,
    wanted: usize,
) -> Vec<u32> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("ATREST_CRASH_DIR", dir)
        .env("ATREST_CRASH_CMK_A", &cmks[0])
        .env("ATREST_CRASH_CMK_B", &cmks[1])
        .env("ATREST_CRASH_SCRATCH", scratch)
        .env("ATREST_CRASH_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    while acks.len() < wanted {
        match lines.next() {
            Some(line) => {
                if let Some(n) = line.unwrap().strip_prefix("ack ") {
                    acks.push(n.parse().unwrap());
                }
            }
            None => {
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                panic!(
                    "the child died on its own after {} acks: {stderr}",
                    acks.len()
                );
            }
        }
    }
    std::thread::sleep(Duration::from_micros(rand::rng().random_range(0..3000)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("ack ") {
            acks.push(n.parse().unwrap());
        }
    }
    acks
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let cycles: usize = std::env::var("ATREST_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let kms = client(dir.path());
    let cmks = [
        kms.create_key(CreateKeyRequest::default()).unwrap().arn,
        kms.create_key(CreateKeyRequest::default()).unwrap().arn,
    ];
    let scratch = kms.create_key(CreateKeyRequest::default()).unwrap().arn;
    let mut acked = BTreeSet::new();
    let mut next = 0;
    for cycle in 0..cycles {
        let wanted = rand::rng().random_range(1..80);
        let acks = run_child_until_killed(dir.path(), &cmks, &scratch, next, wanted);
        assert!(acks.len() >= wanted, "cycle {cycle}");
        next = acks.iter().max().unwrap() + 1;
        acked.extend(acks);

        let store = open(dir.path(), &cmks[0]);
        for &i in &acked {
            let got = store
                .get(&database(i), &i.to_be_bytes())
                .unwrap_or_else(|e| panic!("cycle {cycle}, key {i}: {e}"));
            assert_eq!(
                got,
                Some(value(i)),
                "cycle {cycle}: acknowledged write {i} was lost"
            );
            if i % 5 == 4 {
                assert_eq!(
                    store.get("mirror", &i.to_be_bytes()).unwrap(),
                    Some(value(i)),
                    "cycle {cycle}: half a batch"
                );
            }
        }
        // The keystore is whole: every record of every database opens with a key it holds.
        for db in store.databases() {
            for record in store.scan(&db, KeyRange::All).unwrap() {
                record.unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
            }
        }
        let status = store.status();
        assert!(status.cmk_arn == cmks[0] || status.cmk_arn == cmks[1]);
    }
    eprintln!(
        "crash harness: {cycles} SIGKILL cycles, {} acknowledged writes, none lost",
        acked.len()
    );
}

/// The second child: writes 5,001 records to the store at `ATREST_WAL_DIR/store`, or to
/// the cluster of the root at `ATREST_WAL_ROOT`, then dies without closing anything, as a
/// crash would: the records are in the write-ahead logs only.
#[test]
#[ignore = "a child of the damaged-WAL tests"]
fn wal_child() {
    let records = |put: &mut dyn FnMut(u32)| (0..5001u32).for_each(put);
    if let Ok(root) = std::env::var("ATREST_WAL_ROOT") {
        let cluster = atrest::control::Root::open(&root)
            .unwrap()
            .cluster(None)
            .unwrap();
        records(&mut |i| {
            cluster
                .put("db", &i.to_be_bytes(), b"acknowledged")
                .unwrap()
        });
        // Before the cluster goes out of scope, where closing it would flush.
        std::process::abort();
    } else {
        let dir = std::env::var("ATREST_WAL_DIR").expect("run by a damaged-WAL test");
        let dir = Path::new(&dir);
        let cmk = std::env::var("ATREST_WAL_CMK").unwrap();
        let store = Store::create(
            dir.join("store"),
            Arc::new(client(dir)),
            &cmk,
            StoreOptions::default(),
        )
        .unwrap();
        records(&mut |i| store.put("db", &i.to_be_bytes(), b"acknowledged").unwrap());
        std::process::abort();
    }
}

fn run_wal_child(env: (&str, &Path), cmk: Option<&str>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--ignored", "--exact", "wal_child", "--test-threads", "1"])
        .env(env.0, env.1);
    if let Some(cmk) = cmk {
        command.env("ATREST_WAL_CMK", cmk);
    }
    let out = command.output().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(6),
        "the child must write everything, then abort: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Flips one bit in the middle of the largest write-ahead log under `dir`.
fn flip_a_bit_in_the_wal(dir: &Path) {
    let wal = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a WAL");
    let mut bytes = std::fs::read(&wal).unwrap();
    assert!(
        bytes.len() > 100_000,
        "the crash left its records in the log"
    );
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&wal, bytes).unwrap();
}

#[test]
fn a_damaged_wal_after_a_crash_is_an_error_never_a_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cmk = client(dir.path())
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .arn;
    run_wal_child(("ATREST_WAL_DIR", dir.path()), Some(&cmk));
    flip_a_bit_in_the_wal(&dir.path().join("store"));
    let err = Store::open(
        dir.path().join("store"),
        Arc::new(client(dir.path())),
        &cmk,
        StoreOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    // It names the damaged log and how far the store is whole.
    let text = err.to_string();
    assert!(text.contains("damaged") && text.contains(".log"), "{err}");
    assert!(text.contains("whole up to RocksDB sequence"), "{err}");
}

#[test]
fn a_node_with_a_damaged_wal_after_a_crash_is_rebuilt_from_a_healthy_replica() {
    use atrest::control::{InitOptions, Root, ALERT_NODE_REBUILT};
    let dir = tempfile::tempdir().unwrap();
    Root::open(dir.path())
        .unwrap()
        .init(&InitOptions::default())
        .unwrap();
    run_wal_child(("ATREST_WAL_ROOT", dir.path()), None);
    flip_a_bit_in_the_wal(&dir.path().join("clusters/Cluster0/node-0"));

    let root = Root::open(dir.path()).unwrap();
    let cluster = root.cluster(None).unwrap();
    let verified = cluster.verify().unwrap();
    assert!(verified.consistent, "{verified}");
    // Every node, the rebuilt one included, holds every acknowledged record.
    for node in &verified.nodes {
        assert_eq!(node.databases["db"].records, 5001, "{verified}");
    }
    let alerts = root.alerts().unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.event_type_name == ALERT_NODE_REBUILT && a.text.contains("node-0")),
        "{alerts:?}"
    );
}
