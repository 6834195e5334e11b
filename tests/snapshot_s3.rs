//! Snapshots in S3, against moto's S3 server (from PyPI; `.ci/bootstrap` installs it,
//! `.ci/run` starts it): taken on one root and listed, verified and restored by another
//! from the bucket alone; retention and `keys usage` on the bucket; and the faults
//! (throttling, 5xx, an endpoint gone mid-upload, a killed create, a broken download, an
//! altered or truncated object), each through a proxy that injects it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atrest::control::{
    AwsSettings, ControlError, InitOptions, KmsSettings, Retention, Root, S3Settings,
    SnapshotSettings,
};
use atrest::kms::{AwsKms, AwsKmsConfig, StaticCredentials};
use atrest::store::{KeyRange, S3Location, SnapshotError};
use aws_sdk_s3::primitives::ByteStream;
use common::peers::Moto;
use common::s3_proxy::{Fault, FaultyS3};
use zeroize::Zeroizing;

const REGION: &str = "us-east-1";

/// moto accepts any credentials; the chain finds these (the CLI children inherit them).
fn moto_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
}

/// The test's own view of the bucket, straight to moto.
struct Bucket {
    name: String,
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
}

impl Bucket {
    fn create(moto: &Moto) -> Bucket {
        moto_credentials();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let endpoint = moto.url.clone();
        let config = runtime.block_on(async move {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(REGION))
                .endpoint_url(endpoint)
                .load()
                .await
        });
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let name = format!("atrest-{:016x}", rand::random::<u64>());
        runtime
            .block_on(client.create_bucket().bucket(&name).send())
            .unwrap();
        Bucket {
            name,
            client,
            runtime,
        }
    }

    fn keys(&self) -> Vec<String> {
        let out = self
            .runtime
            .block_on(self.client.list_objects_v2().bucket(&self.name).send())
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    fn upload_ids(&self) -> Vec<String> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .list_multipart_uploads()
                    .bucket(&self.name)
                    .send(),
            )
            .unwrap();
        out.uploads()
            .iter()
            .filter_map(|u| u.upload_id().map(str::to_string))
            .collect()
    }

    fn uploads(&self) -> usize {
        self.upload_ids().len()
    }

    fn start_upload(&self, key: &str) -> String {
        let out = self
            .runtime
            .block_on(
                self.client
                    .create_multipart_upload()
                    .bucket(&self.name)
                    .key(key)
                    .send(),
            )
            .unwrap();
        out.upload_id().unwrap().to_string()
    }

    fn get(&self, key: &str) -> (Vec<u8>, std::collections::HashMap<String, String>) {
        let out = self
            .runtime
            .block_on(self.client.get_object().bucket(&self.name).key(key).send())
            .unwrap();
        let metadata = out.metadata().cloned().unwrap_or_default();
        let bytes = self
            .runtime
            .block_on(out.body.collect())
            .unwrap()
            .into_bytes()
            .to_vec();
        (bytes, metadata)
    }

    fn put(&self, key: &str, bytes: Vec<u8>) {
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.name)
                    .key(key)
                    .body(ByteStream::from(bytes))
                    .send(),
            )
            .unwrap();
    }
}

/// A CMK in moto's KMS, which both roots call: a snapshot opens wherever its CMK does.
fn moto_cmk(moto: &Moto) -> String {
    let mut config = AwsKmsConfig::new(REGION);
    config.endpoint = Some(moto.url.clone());
    config.credentials = Some(StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: Zeroizing::new("testing".into()),
        session_token: None,
    });
    AwsKms::connect(config)
        .unwrap()
        .create_key("atrest snapshots in S3")
        .unwrap()
        .arn
}

fn s3_settings(bucket: &Bucket, prefix: &str, endpoint: &str) -> SnapshotSettings {
    SnapshotSettings::S3(S3Settings {
        location: S3Location {
            bucket: bucket.name.clone(),
            prefix: prefix.into(),
        },
        endpoint: Some(endpoint.into()),
    })
}

fn init(dir: &Path, moto: &Moto, cmk: &str, snapshots: SnapshotSettings) -> Root {
    let root = Root::open(dir).unwrap();
    root.init(&InitOptions {
        kms: KmsSettings::Aws(AwsSettings {
            endpoint: Some(moto.url.clone()),
        }),
        cmk: Some(cmk.into()),
        snapshots,
        ..InitOptions::default()
    })
    .unwrap();
    root
}

/// Every record of `db`, after checking that every node holds the same ones.
fn records(root: &Root) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cluster = root.cluster(None).unwrap();
    let verified = cluster.verify().unwrap();
    assert!(verified.consistent, "{verified}");
    cluster.records("db", KeyRange::All).unwrap()
}

fn fill(root: &Root, count: u64, value_size: usize) {
    root.cluster(None)
        .unwrap()
        .load("db", count, value_size, &mut |_| {})
        .unwrap();
}

fn snapshot_error(result: Result<impl std::fmt::Debug, ControlError>) -> SnapshotError {
    match result.unwrap_err() {
        ControlError::Snapshot(e) => e,
        other => panic!("expected a snapshot error, got {other}"),
    }
}

fn cli(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ATREST_ROOT")
        .output()
        .unwrap()
}

fn cli_json(root: &Path, args: &[&str]) -> serde_json::Value {
    let out = cli(root, args);
    assert!(
        out.status.success(),
        "atrest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_snapshot_taken_on_one_root_is_listed_verified_and_restored_by_another() {
    let moto = Moto::start();
    let bucket = Bucket::create(&moto);
    let cmk = moto_cmk(&moto);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = init(
        a_dir.path(),
        &moto,
        &cmk,
        s3_settings(&bucket, "team/backups", &moto.url),
    );
    // 24 MB of random values: a multipart upload of four parts.
    fill(&a, 24_000, 1024);
    let before = records(&a);

    let taken = cli_json(a_dir.path(), &["snapshot", "create", "--json"]);
    let id = taken["id"].as_str().unwrap().to_string();
    let key = format!("team/backups/{id}.atrsnap");
    assert_eq!(taken["location"], format!("s3://{}/{key}", bucket.name));
    assert!(taken["size"].as_u64().unwrap() > 24_000 * 1024, "{taken}");
    assert!(taken["seconds"].as_f64().is_some(), "{taken}");
    assert_eq!(bucket.keys(), vec![key.clone()]);
    assert_eq!(bucket.uploads(), 0);
    let (bytes, metadata) = bucket.get(&key);
    assert_eq!(bytes.len() as u64, taken["size"].as_u64().unwrap());
    assert_eq!(metadata["atrest-cmk-arn"], cmk);
    assert_eq!(metadata["atrest-cmk-region"], REGION);
    drop(a);

    // Another root, another machine as far as it knows: only the bucket and the KMS in
    // common.
    // (Through the CLI, the prefix written with a trailing slash.)
    cli_json(
        b_dir.path(),
        &[
            "init",
            "--kms",
            "aws",
            "--endpoint",
            &moto.url,
            "--cmk",
            &cmk,
            "--snapshots",
            &format!("s3://{}/team/backups/", bucket.name),
            "--s3-endpoint",
            &moto.url,
            "--json",
        ],
    );
    let b = Root::open(b_dir.path()).unwrap();
    let listed = b.snapshots().unwrap();
    assert_eq!(listed.snapshots.len(), 1);
    assert_eq!(listed.snapshots[0].id, id);
    assert_eq!(listed.snapshots[0].cmk_arn, cmk);
    let verified = b.verify_snapshot(&id).unwrap();
    assert!(verified.authenticated);
    let usage = b.key_usage(&cmk).unwrap();
    assert_eq!(
        usage.snapshots.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&id]
    );
    assert!(!usage.safe_to_delete);

    let mut read = 0;
    b.restore_snapshot_with_progress(&id, None, None, &mut |n| read = n)
        .unwrap();
    assert_eq!(
        read,
        4 * bytes.len() as u64,
        "downloaded once, then read by each of 3 nodes from disk"
    );
    assert!(!b_dir
        .path()
        .join("snapshots")
        .join(format!(".fetched-{id}"))
        .exists());
    assert_eq!(records(&b), before, "every node of B holds A's records");

    // Into a fresh root from the same bucket, through the CLI.
    let fresh = tempfile::tempdir().unwrap();
    let target = fresh.path().join("new");
    let restored = cli_json(
        b_dir.path(),
        &[
            "snapshot",
            "restore",
            &id,
            "--to",
            target.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(restored["authenticated"], true);
    assert_eq!(records(&Root::open(&target).unwrap()), before);

    // B's own snapshot lands beside A's; the CLI lists both and deletes B's.
    let second = b.create_snapshot(None, &mut |_| {}).unwrap();
    let listed = cli_json(b_dir.path(), &["snapshot", "list", "--json"]);
    let locations: Vec<&str> = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["location"].as_str().unwrap())
        .collect();
    assert_eq!(locations.len(), 2);
    assert!(
        locations.contains(&second.location.as_str()),
        "{locations:?}"
    );
    assert!(cli(b_dir.path(), &["snapshot", "delete", &second.id])
        .status
        .success());
    assert_eq!(bucket.keys(), vec![key.clone()]);

    // Retention on B deletes the object in the bucket, so A sees it gone too.
    let deleted = b
        .set_retention(
            Retention {
                keep: Some(0),
                max_age_days: None,
            },
            true,
        )
        .unwrap();
    assert_eq!(deleted, vec![id]);
    assert!(bucket.keys().is_empty());
    let a = Root::open(a_dir.path()).unwrap();
    assert!(a.snapshots().unwrap().snapshots.is_empty());
    assert!(a.key_usage(&cmk).unwrap().snapshots.is_empty());
}

#[test]
fn an_existing_root_moves_its_snapshots_to_s3_and_back() {
    let moto = Moto::start();
    let bucket = Bucket::create(&moto);
    let cmk = moto_cmk(&moto);
    let dir = tempfile::tempdir().unwrap();
    let root = init(dir.path(), &moto, &cmk, SnapshotSettings::Local);
    fill(&root, 500, 100);
    let local = root.create_snapshot(None, &mut |_| {}).unwrap();
    assert!(local.location.ends_with(".atrsnap") && local.location.starts_with('/'));

    let out = cli_json(
        dir.path(),
        &[
            "project",
            "backup",
            "--storage",
            &format!("s3://{}/moved", bucket.name),
            "--s3-endpoint",
            &moto.url,
            "--json",
        ],
    );
    assert_eq!(out["moved"], serde_json::json!([local.id]));
    assert_eq!(bucket.keys(), vec![format!("moved/{}.atrsnap", local.id)]);
    assert!(!dir
        .path()
        .join("snapshots")
        .join(format!("{}.atrsnap", local.id))
        .exists());
    let root = Root::open(dir.path()).unwrap();
    let verified = root.verify_snapshot(&local.id).unwrap();
    assert_eq!(verified.size, local.size);
    assert!(verified.location.starts_with("s3://"));

    root.set_snapshot_storage(SnapshotSettings::Local, &mut |_, _| {})
        .unwrap();
    assert!(bucket.keys().is_empty());
    root.verify_snapshot(&local.id).unwrap();

    // A bucket that is not there is refused before anything moves.
    let missing = SnapshotSettings::S3(S3Settings {
        location: "s3://no-such-bucket-here".parse().unwrap(),
        endpoint: Some(moto.url.clone()),
    });
    let err = root
        .set_snapshot_storage(missing, &mut |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    assert_eq!(root.snapshots().unwrap().snapshots.len(), 1);
    let out = cli(
        dir.path(),
        &[
            "project",
            "backup",
            "--storage",
            "s3://no-such-bucket-here/x",
            "--s3-endpoint",
            &moto.url,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("NoSuchBucket") && stderr.contains("check the bucket"),
        "{stderr}"
    );
}

/// A root holding `records` values of 1 KiB, whose snapshots go to moto's S3 through the
/// fault-injecting proxy, under the prefix `p`.
struct Behind {
    _moto: Moto,
    bucket: Bucket,
    proxy: FaultyS3,
    dir: tempfile::TempDir,
    root: Root,
}

fn behind_proxy(records: u64) -> Behind {
    let moto = Moto::start();
    let bucket = Bucket::create(&moto);
    let cmk = moto_cmk(&moto);
    let proxy = FaultyS3::start(&moto.url);
    let dir = tempfile::tempdir().unwrap();
    let settings = s3_settings(&bucket, "p", &proxy.url);
    let root = init(dir.path(), &moto, &cmk, settings);
    fill(&root, records, 1024);
    Behind {
        _moto: moto,
        bucket,
        proxy,
        dir,
        root,
    }
}

#[test]
fn throttling_and_server_errors_are_retried_a_bounded_number_of_times() {
    let Behind {
        _moto,
        bucket,
        proxy,
        dir: _dir,
        root,
    } = behind_proxy(10_000);

    // Two answers of each kind, then through: the snapshot is made.
    let failed = Arc::new(AtomicUsize::new(0));
    let f = failed.clone();
    proxy.set_rule(move |seen| {
        if seen.is_upload_part() {
            match f.fetch_add(1, Ordering::SeqCst) {
                0 => return Fault::Reply(503, "SlowDown"),
                1 => return Fault::Reply(500, "InternalError"),
                _ => {}
            }
        }
        Fault::Pass
    });
    let taken = root.create_snapshot(None, &mut |_| {}).unwrap();
    root.verify_snapshot(&taken.id).unwrap();

    // Always failing: the create gives up after a few attempts, with S3's words, and
    // leaves nothing behind.
    proxy.set_rule(|seen| {
        if seen.is_upload_part() {
            Fault::Reply(503, "SlowDown")
        } else {
            Fault::Pass
        }
    });
    let throttled = || {
        proxy.count(
            |line| line.contains("partNumber=1&"),
            Fault::Reply(503, "SlowDown"),
        )
    };
    let before = throttled();
    let started = Instant::now();
    let err = root
        .create_snapshot(None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SlowDown") && err.contains("UploadPart"),
        "{err}"
    );
    assert_eq!(throttled() - before, 4, "4 attempts in all");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(bucket.uploads(), 0, "the failed create aborted its upload");
    assert_eq!(root.snapshots().unwrap().snapshots.len(), 1);
}

#[test]
fn an_endpoint_gone_mid_upload_leaves_no_snapshot_and_the_next_run_no_upload() {
    let Behind {
        _moto,
        bucket,
        proxy,
        dir: _dir,
        root,
    } = behind_proxy(10_000);

    // After the first part, every connection is dropped: the abort cannot get through
    // either.
    let parts = Arc::new(AtomicUsize::new(0));
    let p = parts.clone();
    proxy.set_rule(move |seen| {
        let gone = p.load(Ordering::SeqCst) >= 1;
        if seen.is_upload_part() {
            p.fetch_add(1, Ordering::SeqCst);
        }
        if gone {
            Fault::Drop
        } else {
            Fault::Pass
        }
    });
    let err = root
        .create_snapshot(None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("UploadPart"), "{err}");
    assert!(bucket.keys().is_empty(), "nothing lists as complete");
    assert_eq!(bucket.uploads(), 1, "the upload outlived its create");

    proxy.set_rule(|_| Fault::Pass);
    assert!(root.snapshots().unwrap().snapshots.is_empty());
    assert_eq!(bucket.uploads(), 0, "the next run aborted it");
}

#[test]
fn a_killed_create_leaves_no_snapshot_and_the_next_run_no_upload() {
    let Behind {
        _moto,
        bucket,
        proxy,
        dir,
        root,
    } = behind_proxy(10_000);
    drop(root);

    // The second part never gets an answer; the process is killed while it waits.
    proxy.set_rule(|seen| {
        if seen.is_upload_part() && seen.target.contains("partNumber=2") {
            Fault::Hang
        } else {
            Fault::Pass
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(dir.path())
        .args(["snapshot", "create"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.count(|line| line.contains("partNumber=2"), Fault::Hang) == 0 {
        assert!(Instant::now() < deadline, "the create never reached part 2");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the create ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(bucket.keys().is_empty(), "nothing lists as complete");
    assert_eq!(bucket.uploads(), 1);

    // Another machine's upload in progress under the same prefix is not this root's to end.
    let theirs = bucket.start_upload("p/0123456789abcdef.atrsnap");
    proxy.set_rule(|_| Fault::Pass);
    let listed = cli_json(dir.path(), &["snapshot", "list", "--json"]);
    assert_eq!(listed["snapshots"], serde_json::json!([]));
    assert_eq!(
        bucket.upload_ids(),
        vec![theirs],
        "the next run aborted the killed create's upload, and only that one"
    );
}

#[test]
fn a_broken_download_resumes_and_a_damaged_object_fails_without_touching_the_target() {
    let Behind {
        _moto,
        bucket,
        proxy,
        dir: _dir,
        root,
    } = behind_proxy(3_000);
    let taken = root.create_snapshot(None, &mut |_| {}).unwrap();
    let before = records(&root);

    // Three answers cut short mid-body: the reader resumes where each broke off.
    let cuts = Arc::new(AtomicUsize::new(0));
    let c = cuts.clone();
    proxy.set_rule(move |seen| {
        if seen.is_get() && seen.target.contains(".atrsnap") && c.fetch_add(1, Ordering::SeqCst) < 3
        {
            Fault::CutBodyAfter(100_000)
        } else {
            Fault::Pass
        }
    });
    root.verify_snapshot(&taken.id).unwrap();
    assert!(cuts.load(Ordering::SeqCst) >= 3);
    proxy.set_rule(|_| Fault::Pass);

    let key = format!("p/{}.atrsnap", taken.id);
    let (bytes, _) = bucket.get(&key);
    let mut altered = bytes.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 1;
    bucket.put(&key, altered);
    let err = snapshot_error(root.verify_snapshot(&taken.id));
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    let err = snapshot_error(root.restore_snapshot(&taken.id, None, None));
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    assert_eq!(records(&root), before, "every node untouched");

    bucket.put(&key, bytes[..bytes.len() / 3].to_vec());
    let err = snapshot_error(root.verify_snapshot(&taken.id));
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    let err = snapshot_error(root.restore_snapshot(&taken.id, None, None));
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    assert_eq!(records(&root), before, "every node untouched");
}
