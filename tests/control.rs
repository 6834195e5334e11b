//! Atlas's control plane: the project, its rules, clusters of N nodes, validity checks
//! that shut clusters down and bring them back, alerts. Through the public API only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use atrest::clock::days;
use atrest::control::project::{Backup, ClusterSpec, ProjectRole, DEFAULT_OWNER};
use atrest::control::{
    AccessRequest, Applied, CheckOutcome, ControlError, InitOptions, Root, ALERT_KEY_INVALID,
    ALERT_MASTER_KEY_ROTATED, ALERT_NEEDS_ROTATION,
};
use atrest::kms::{Caller, CreateKeyRequest, KeySpec, KeyUsage, LocalKmsClient};
use atrest::store::{KeyRange, Store, StoreOptions, WriteBatch};

const ACCOUNT: &str = "111122223333";
const ROLE: &str = "arn:aws:iam::111122223333:role/atlas-kms";

fn project() -> (tempfile::TempDir, Root, LocalKmsClient) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    root.init(&InitOptions::default()).unwrap();
    let kms = root.kms_client(None, None).unwrap();
    (dir, root, kms)
}

/// A key policy that trusts the account but denies the project's role `action`.
fn denying_the_role(action: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": ROLE}, "Action": action, "Resource": "*"}
        ]
    })
    .to_string()
}

fn spec(name: &str, tier: &str, encrypt: bool) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        tier: tier.into(),
        nodes: 3,
        backup: Backup::Cloud,
        serverless: false,
        encrypt,
    }
}

fn cmk(root: &Root) -> String {
    root.settings().unwrap().unwrap().cmk
}

fn load(root: &Root, cluster: &str, n: u32) {
    let mut batch = WriteBatch::new();
    for i in 0..n {
        batch.put("db", format!("k{i:05}"), format!("secret-value-{i}"));
    }
    root.cluster(Some(cluster)).unwrap().write(&batch).unwrap();
}

/// How many records of `db` each encrypted node holds, every one of them opened.
fn records_per_node(cluster: &atrest::control::cluster::Cluster) -> Vec<usize> {
    cluster
        .each_store(|store| {
            store
                .scan("db", KeyRange::All)?
                .collect::<Result<Vec<_>, _>>()
                .map(|records| records.len())
        })
        .unwrap()
}

/// The cluster's records, after checking that every node holds the same ones.
fn records(root: &Root, cluster: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cluster = root.cluster(Some(cluster)).unwrap();
    let verified = cluster.verify().unwrap();
    assert!(verified.consistent, "{verified}");
    cluster.records("db", KeyRange::All).unwrap()
}

#[test]
fn init_makes_an_atlas_project_with_a_three_node_encrypted_cluster() {
    let (_dir, root, kms) = project();
    let status = serde_json::to_value(root.project_status().unwrap()).unwrap();
    let aws_kms = &status["encryptionAtRest"]["awsKms"];
    assert_eq!(aws_kms["enabled"], true);
    assert_eq!(aws_kms["valid"], true);
    assert_eq!(aws_kms["customerMasterKeyID"], cmk(&root).as_str());
    assert_eq!(aws_kms["region"], "US_EAST_1");
    assert_eq!(aws_kms["requirePrivateNetworking"], false);
    let role_id = aws_kms["roleId"].as_str().unwrap();
    assert_eq!(status["cloudProviderAccessRoles"][0]["roleId"], role_id);
    assert_eq!(
        status["cloudProviderAccessRoles"][0]["iamAssumedRoleArn"],
        ROLE
    );
    assert_eq!(status["users"][0]["role"], "GROUP_OWNER");
    assert_eq!(status["id"].as_str().unwrap().len(), 24);

    // Three nodes, each its own store and master key, all under the one CMK; a write
    // reaches every node.
    root.cluster(None).unwrap().put("db", b"k", b"v").unwrap();
    let cluster = root.cluster(None).unwrap();
    let nodes = cluster.status().unwrap();
    assert_eq!(nodes.len(), 3);
    let ids: std::collections::BTreeSet<String> = nodes
        .iter()
        .map(|n| n.keys.as_ref().unwrap().store_id.to_string())
        .collect();
    assert_eq!(ids.len(), 3, "each node is its own store");
    let paths = cluster.node_paths().to_vec();
    drop(cluster);
    let role_kms = Arc::new(
        kms.service()
            .client(Caller::new(ROLE, "us-east-1").unwrap()),
    );
    for path in paths {
        let node = Store::open(
            &path,
            role_kms.clone(),
            &cmk(&root),
            StoreOptions::default(),
        )
        .unwrap();
        assert_eq!(node.get("db", b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(node.status().cmk_arn, cmk(&root));
    }
}

#[test]
fn atlas_refuses_clusters_it_cannot_encrypt() {
    let (_dir, root, _kms) = project();
    for tier in ["M0", "M2", "M5"] {
        let err = root
            .create_cluster(DEFAULT_OWNER, spec("small", tier, true))
            .unwrap_err();
        assert!(matches!(err, ControlError::TierTooSmall { .. }), "{err}");
        assert!(err.to_string().contains(tier), "{err}");
    }
    let serverless = ClusterSpec {
        serverless: true,
        ..spec("sl", "M10", true)
    };
    assert!(matches!(
        root.create_cluster(DEFAULT_OWNER, serverless),
        Err(ControlError::ServerlessUnsupported { .. })
    ));
    let legacy = ClusterSpec {
        backup: Backup::Legacy,
        ..spec("lg", "M10", true)
    };
    assert!(matches!(
        root.create_cluster(DEFAULT_OWNER, legacy),
        Err(ControlError::LegacyBackup { .. })
    ));
    // Unencrypted, the same clusters are fine; enabling encryption later is refused.
    root.create_cluster(DEFAULT_OWNER, spec("small", "M5", false))
        .unwrap();
    assert!(matches!(
        root.set_cluster_encryption(DEFAULT_OWNER, "small", true, &mut |_, _| {}),
        Err(ControlError::TierTooSmall { .. })
    ));
    root.create_cluster(DEFAULT_OWNER, spec("big", "M30", true))
        .unwrap();
    assert!(matches!(
        root.create_cluster(DEFAULT_OWNER, spec("big", "M30", true)),
        Err(ControlError::ClusterExists { .. })
    ));
}

#[test]
fn only_a_project_owner_turns_encryption_on() {
    let (_dir, root, _kms) = project();
    root.add_user(DEFAULT_OWNER, "dev", ProjectRole::ClusterManager)
        .unwrap();
    assert!(matches!(
        root.add_user("dev", "eve", ProjectRole::Owner),
        Err(ControlError::NotProjectOwner { .. })
    ));
    root.create_cluster("dev", spec("plain", "M10", false))
        .unwrap();
    let err = root
        .create_cluster("dev", spec("enc", "M10", true))
        .unwrap_err();
    assert!(matches!(err, ControlError::NotProjectOwner { .. }), "{err}");
    assert!(err.to_string().contains("GROUP_CLUSTER_MANAGER"), "{err}");
    assert!(matches!(
        root.set_cluster_encryption("dev", "plain", true, &mut |_, _| {}),
        Err(ControlError::NotProjectOwner { .. })
    ));
    assert!(matches!(
        root.create_cluster("mallory", spec("x", "M10", false)),
        Err(ControlError::UnknownUser { .. })
    ));
    root.set_cluster_encryption(DEFAULT_OWNER, "plain", true, &mut |_, _| {})
        .unwrap();
}

#[test]
fn the_key_must_be_symmetric_and_usable_by_the_role() {
    let (_dir, root, kms) = project();
    let role_id = root
        .project_status()
        .unwrap()
        .encryption_at_rest
        .aws_kms
        .role_id
        .unwrap();
    let rsa = kms
        .create_key(CreateKeyRequest {
            key_spec: KeySpec::Rsa2048,
            key_usage: Some(KeyUsage::SignVerify),
            ..Default::default()
        })
        .unwrap();
    let err = root.set_key(&rsa.arn).unwrap_err();
    assert!(matches!(err, ControlError::NotSymmetric { .. }), "{err}");
    for action in ["kms:DescribeKey", "kms:Encrypt", "kms:Decrypt"] {
        let key = kms
            .create_key(CreateKeyRequest {
                policy: Some(denying_the_role(action)),
                ..Default::default()
            })
            .unwrap();
        let err = root.set_key(&key.arn).unwrap_err();
        match &err {
            ControlError::MissingPermission {
                action: missing,
                principal,
                ..
            } => {
                assert_eq!((*missing, principal.as_str()), (action, ROLE));
            }
            other => panic!("{action}: {other}"),
        }
        assert!(err.to_string().contains(action), "{err}");
    }
    // The same key and role for every cluster: a different key is a CMK rotation.
    let other = kms.create_key(CreateKeyRequest::default()).unwrap();
    let err = root
        .configure_encryption(
            DEFAULT_OWNER,
            &other.arn,
            AccessRequest::Role(role_id.clone()),
            false,
        )
        .unwrap_err();
    assert!(matches!(err, ControlError::NotProjectKey { .. }), "{err}");
    // Role-based access cannot go back to credentials.
    let err = root
        .configure_encryption(
            DEFAULT_OWNER,
            &cmk(&root),
            AccessRequest::Credentials {
                access_key_id: "AKIAOLD".into(),
                secret_access_key: zeroize::Zeroizing::new("secret".into()),
            },
            false,
        )
        .unwrap_err();
    assert!(matches!(err, ControlError::CredentialsAfterRole), "{err}");
    // Reconfiguring with the same key and role (private networking on) is fine.
    root.configure_encryption(
        DEFAULT_OWNER,
        &cmk(&root),
        AccessRequest::Role(role_id),
        true,
    )
    .unwrap();
    assert!(
        root.project_status()
            .unwrap()
            .encryption_at_rest
            .aws_kms
            .require_private_networking
    );
}

#[test]
fn another_accounts_key_needs_its_full_arn() {
    let (_dir, root, kms) = project();
    let other = kms
        .service()
        .client(Caller::account_root("444455556666", "us-east-1").unwrap());
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["444455556666", ACCOUNT]},
                       "Action": "kms:*", "Resource": "*"}]
    });
    let key = other
        .create_key(CreateKeyRequest {
            policy: Some(policy.to_string()),
            ..Default::default()
        })
        .unwrap();
    let err = root.set_key(&key.key_id).unwrap_err();
    assert!(matches!(err, ControlError::NeedsFullArn { .. }), "{err}");
    assert!(err.to_string().contains("full key ARN"), "{err}");
    root.cluster(None).unwrap().put("db", b"k", b"v").unwrap();
    root.set_key(&key.arn).unwrap();
    assert_eq!(cmk(&root), key.arn);
    assert_eq!(
        root.cluster(None)
            .unwrap()
            .get("db", b"k")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn enabling_and_disabling_encryption_rewrites_every_node_and_loses_nothing() {
    let (dir, root, _kms) = project();
    root.create_cluster(DEFAULT_OWNER, spec("app", "M10", false))
        .unwrap();
    load(&root, "app", 2500);
    let before = records(&root, "app");
    assert_eq!(before.len(), 2500);
    let on_disk = |needle: &[u8]| {
        let mut found = false;
        for entry in common::files_under(&dir.path().join("clusters/app")) {
            found |= std::fs::read(entry)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle);
        }
        found
    };
    root.cluster(Some("app")).unwrap().flush().unwrap();
    assert!(
        on_disk(b"secret-value-1234"),
        "a plain cluster stores values as given"
    );

    let mut seen = Vec::new();
    let done = root
        .set_cluster_encryption(DEFAULT_OWNER, "app", true, &mut |node, records| {
            seen.push((node, records))
        })
        .unwrap();
    assert_eq!(done, Applied::Done(()));
    assert_eq!(
        seen.iter().filter(|(_, r)| *r == 2500).count(),
        3,
        "each node copied all records"
    );
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "node by node");
    let cluster = root.cluster(Some("app")).unwrap();
    assert!(cluster.status().unwrap().iter().all(|n| n.encrypted));
    cluster.flush().unwrap();
    drop(cluster);
    assert_eq!(records(&root, "app"), before);
    assert!(
        !on_disk(b"secret-value-1234"),
        "no plaintext left after enabling"
    );

    // The project's encryption cannot be turned off under its clusters.
    assert!(matches!(
        root.disable_project_encryption(DEFAULT_OWNER),
        Err(ControlError::EncryptionInUse { .. })
    ));
    root.set_cluster_encryption(DEFAULT_OWNER, "app", false, &mut |_, _| {})
        .unwrap();
    assert_eq!(records(&root, "app"), before);
    assert!(root
        .cluster(Some("app"))
        .unwrap()
        .status()
        .unwrap()
        .iter()
        .all(|n| !n.encrypted));
    root.set_cluster_encryption(DEFAULT_OWNER, "Cluster0", false, &mut |_, _| {})
        .unwrap();
    root.disable_project_encryption(DEFAULT_OWNER).unwrap();
    let err = root
        .create_cluster(DEFAULT_OWNER, spec("late", "M10", true))
        .unwrap_err();
    assert!(matches!(err, ControlError::ProjectNotConfigured), "{err}");
}

#[test]
fn a_disabled_key_shuts_clusters_down_and_the_next_good_check_brings_them_back() {
    let (_dir, root, kms) = project();
    root.create_cluster(DEFAULT_OWNER, spec("plain", "M10", false))
        .unwrap();
    load(&root, "Cluster0", 100);
    let before = records(&root, "Cluster0");
    let open = root.cluster(None).unwrap();
    assert!(matches!(root.check().unwrap(), CheckOutcome::Valid { .. }));

    kms.disable_key(&cmk(&root)).unwrap();
    match root.check().unwrap() {
        CheckOutcome::Invalid { reason, shut_down } => {
            assert!(reason.contains("DisabledException"), "{reason}");
            assert_eq!(shut_down, vec!["Cluster0".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    // Every read and write fails, naming the key and the reason; the cluster already open too.
    for err in [
        open.get("db", b"k00001").unwrap_err(),
        open.put("db", b"x", b"y").unwrap_err(),
        root.cluster(None).unwrap_err(),
    ] {
        assert!(matches!(err, ControlError::ShutDown { .. }), "{err}");
        assert!(
            err.to_string().contains(&cmk(&root)) && err.to_string().contains("DisabledException"),
            "{err}"
        );
    }
    // Unencrypted clusters keep serving.
    root.cluster(Some("plain"))
        .unwrap()
        .put("db", b"p", b"q")
        .unwrap();
    assert!(
        !root
            .project_status()
            .unwrap()
            .encryption_at_rest
            .aws_kms
            .valid
    );
    let alerts = root.alerts().unwrap();
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.event_type_name == ALERT_KEY_INVALID)
            .count(),
        1
    );
    root.check().unwrap();
    assert_eq!(
        root.alerts()
            .unwrap()
            .iter()
            .filter(|a| a.event_type_name == ALERT_KEY_INVALID)
            .count(),
        1,
        "one alert per outage"
    );

    // Configuration changes are queued.
    assert_eq!(
        root.create_cluster(DEFAULT_OWNER, spec("queued", "M10", true))
            .unwrap(),
        Applied::Queued
    );
    assert_eq!(root.rotate_master_key(None).unwrap(), Applied::Queued);
    assert_eq!(root.project_status().unwrap().queued_changes.len(), 2);
    assert!(matches!(
        root.cluster(Some("queued")),
        Err(ControlError::UnknownCluster { .. })
    ));

    kms.enable_key(&cmk(&root)).unwrap();
    match root.check().unwrap() {
        CheckOutcome::Valid { restored, applied } => {
            assert_eq!(restored, vec!["Cluster0".to_string()]);
            assert_eq!(applied, 2);
        }
        other => panic!("{other:?}"),
    }
    // The open cluster unwraps its master keys again and serves; nothing was lost.
    assert_eq!(open.records("db", KeyRange::All).unwrap(), before);
    assert!(open
        .status()
        .unwrap()
        .iter()
        .all(|n| n.keys.as_ref().unwrap().master_key_version == 2));
    drop(open);
    root.cluster(Some("queued"))
        .unwrap()
        .put("db", b"a", b"b")
        .unwrap();
    assert!(root.project_status().unwrap().queued_changes.is_empty());
    assert!(root
        .alerts()
        .unwrap()
        .iter()
        .any(|a| a.event_type_name == ALERT_MASTER_KEY_ROTATED));
}

#[test]
fn deleted_or_unauthorized_keys_fail_the_check_too() {
    let (_dir, root, kms) = project();
    let key = cmk(&root);
    kms.put_key_policy(&key, &denying_the_role("kms:Decrypt"))
        .unwrap();
    match root.check().unwrap() {
        CheckOutcome::Invalid { reason, .. } => {
            assert!(reason.contains("AccessDenied"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    kms.put_key_policy(
        &key,
        &atrest::kms::KeyPolicy::default_for(ACCOUNT).to_json(),
    )
    .unwrap();
    assert!(matches!(root.check().unwrap(), CheckOutcome::Valid { .. }));
    kms.schedule_key_deletion(&key, Some(7)).unwrap();
    match root.check().unwrap() {
        CheckOutcome::Invalid { reason, .. } => {
            assert!(reason.contains("pending deletion"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_a_verdict_on_the_key_shuts_clusters_down() {
    use atrest::kms::{Fault, FaultyKms, Kms};
    let dir = tempfile::tempdir().unwrap();
    let mut root = Root::open(dir.path()).unwrap();
    root.init(&InitOptions::default()).unwrap();
    load(&root, "Cluster0", 10);
    let admin = root.kms_client(None, None).unwrap();
    let faults = Arc::new(FaultyKms::new(Arc::new(admin)));
    let schedule = faults.clone();
    root.wrap_kms(Arc::new(move |inner: Arc<dyn Kms>| -> Arc<dyn Kms> {
        Arc::new(schedule.sharing_schedule(inner))
    }));
    for fault in [Fault::Unavailable, Fault::Throttled, Fault::Unrecognized] {
        faults.fail_next(1, fault);
        match root.check().unwrap() {
            CheckOutcome::Inconclusive { reason } => {
                assert!(reason.contains("injected fault"), "{reason}")
            }
            other => panic!("{fault:?}: {other:?}"),
        }
        assert_eq!(records(&root, "Cluster0").len(), 10, "{fault:?}");
    }
    faults.fail_next(1, Fault::AccessDenied);
    assert!(matches!(
        root.check().unwrap(),
        CheckOutcome::Invalid { .. }
    ));
    assert!(matches!(
        root.cluster(None),
        Err(ControlError::ShutDown { .. })
    ));
    assert!(matches!(root.check().unwrap(), CheckOutcome::Valid { .. }));
    assert_eq!(records(&root, "Cluster0").len(), 10);
}

#[test]
fn tick_checks_every_fifteen_minutes_or_as_configured() {
    let (_dir, root, kms) = project();
    assert!(
        root.tick().unwrap().check.is_some(),
        "the first tick checks"
    );
    root.advance_clock(Duration::from_secs(10 * 60)).unwrap();
    assert!(root.tick().unwrap().check.is_none(), "10 minutes: not due");
    kms.disable_key(&cmk(&root)).unwrap();
    root.advance_clock(Duration::from_secs(6 * 60)).unwrap();
    let kms = root.kms_client(None, None).unwrap();
    assert!(matches!(
        root.tick().unwrap().check,
        Some(CheckOutcome::Invalid { .. })
    ));
    kms.enable_key(&cmk(&root)).unwrap();
    root.set_schedules(Some(60), None).unwrap();
    root.advance_clock(Duration::from_secs(30 * 60)).unwrap();
    assert!(root.tick().unwrap().check.is_none(), "every 60 minutes now");
    assert!(root.cluster(None).is_err(), "still shut down until a check");
    root.advance_clock(Duration::from_secs(31 * 60)).unwrap();
    assert!(matches!(
        root.tick().unwrap().check,
        Some(CheckOutcome::Valid { .. })
    ));
    root.cluster(None).unwrap();
}

/// Whether this tick raised the CMK rotation reminder.
fn tick_reminds(root: &Root) -> bool {
    let alerts = root.tick().unwrap().alerts;
    alerts
        .iter()
        .any(|a| a.event_type_name == ALERT_NEEDS_ROTATION)
}

#[test]
fn the_rotation_reminder_fires_after_the_period_and_resets_with_the_cmk() {
    let (_dir, root, kms) = project();
    root.set_schedules(None, Some(30)).unwrap();
    root.advance_clock(days(29)).unwrap();
    assert!(!tick_reminds(&root));
    root.advance_clock(days(2)).unwrap();
    let reminder = root.alerts().unwrap().len();
    assert!(tick_reminds(&root));
    let text = &root.alerts().unwrap()[reminder].text;
    assert!(text.contains(&cmk(&root)), "{text}");
    assert!(!tick_reminds(&root), "once per CMK");
    drop(kms);
    let kms = root.kms_client(None, None).unwrap();
    let next = kms.create_key(CreateKeyRequest::default()).unwrap();
    root.set_key(&next.arn).unwrap();
    root.advance_clock(days(29)).unwrap();
    assert!(
        !tick_reminds(&root),
        "the count starts again at the new CMK"
    );
    root.advance_clock(days(2)).unwrap();
    assert!(tick_reminds(&root));
    // Day 91: each node's master key rotates on its own, and says so.
    root.advance_clock(days(29)).unwrap();
    let rotated = root
        .tick()
        .unwrap()
        .alerts
        .into_iter()
        .filter(|a| a.event_type_name == ALERT_MASTER_KEY_ROTATED)
        .count();
    assert_eq!(rotated, 3, "one per node of Cluster0");
}

#[test]
fn tick_goes_on_when_a_node_cannot_unwrap_its_master_key() {
    let (_dir, root, kms) = project();
    root.tick().unwrap();
    kms.disable_key(&cmk(&root)).unwrap();
    root.advance_clock(Duration::from_secs(60)).unwrap();
    let tick = root.tick().unwrap();
    assert!(tick.check.is_none(), "not due yet");
    assert_eq!(tick.clusters_down.len(), 1, "{tick:?}");
    assert!(
        tick.clusters_down[0].contains("DisabledException"),
        "{tick:?}"
    );
}

#[test]
fn reads_are_served_by_the_other_nodes_while_one_is_rewritten() {
    let (_dir, root, _kms) = project();
    root.create_cluster(DEFAULT_OWNER, spec("app", "M10", false))
        .unwrap();
    load(&root, "app", 10);
    let cluster = Arc::new(root.cluster(Some("app")).unwrap());
    let (paused_tx, paused_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let rewriting = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            let mut paused = false;
            cluster
                .rewrite(true, &mut |_, _| {
                    if !paused {
                        paused = true;
                        paused_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                    }
                })
                .unwrap();
        })
    };
    // node-0 is held by the rewrite, paused mid-copy; a read still gets an answer.
    paused_rx.recv().unwrap();
    let (read_tx, read_rx) = std::sync::mpsc::channel();
    let reader = cluster.clone();
    std::thread::spawn(move || read_tx.send(reader.get("db", b"k00003").unwrap()).unwrap());
    let read = read_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a read waited for the node being rewritten");
    assert_eq!(read.as_deref(), Some(&b"secret-value-3"[..]));
    go_tx.send(()).unwrap();
    rewriting.join().unwrap();
    assert!(cluster.status().unwrap().iter().all(|n| n.encrypted));
}

#[test]
fn settings_changes_from_many_handles_are_never_lost() {
    let (dir, root, _) = project();
    // Four handles on one root, as four processes would hold it, each adding users.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let root = Root::open(&path).unwrap();
                for i in 0..10 {
                    root.add_user(
                        DEFAULT_OWNER,
                        &format!("user-{w}-{i}"),
                        ProjectRole::ClusterManager,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let users = root.project_status().unwrap().users;
    assert_eq!(users.len(), 1 + 40, "every acknowledged add_user is kept");
}

#[test]
fn a_rewrite_does_not_undo_changes_made_while_it_ran() {
    let (dir, root, _) = project();
    root.create_cluster(DEFAULT_OWNER, spec("app", "M10", false))
        .unwrap();
    load(&root, "app", 3000);
    let path = dir.path().to_path_buf();
    let mut added = false;
    root.set_cluster_encryption(DEFAULT_OWNER, "app", true, &mut |_, _| {
        if !added {
            // Another handle changes the project while the rewrite is copying.
            Root::open(&path)
                .unwrap()
                .add_user(DEFAULT_OWNER, "dev", ProjectRole::ClusterManager)
                .unwrap();
            added = true;
        }
    })
    .unwrap();
    let status = root.project_status().unwrap();
    assert!(status.users.iter().any(|u| u.username == "dev"));
    assert!(status
        .clusters
        .iter()
        .any(|c| c.spec.name == "app" && c.spec.encrypt));
    // Every node, not only the one reads come from, holds every record, and each opens.
    let per_node = records_per_node(&root.cluster(Some("app")).unwrap());
    assert_eq!(per_node, vec![3000; 3]);
}

#[test]
fn a_shutdown_recorded_by_another_process_is_seen_by_an_open_cluster() {
    let (dir, root, kms) = project();
    let cluster = root.cluster(None).unwrap();
    cluster.put("db", b"k", b"v").unwrap();
    // Another process (another root on the same directory) disables the key and checks.
    let other = Root::open(dir.path()).unwrap();
    kms.disable_key(&cmk(&root)).unwrap();
    assert!(matches!(
        other.check().unwrap(),
        CheckOutcome::Invalid { .. }
    ));
    let err = cluster.get("db", b"k").unwrap_err();
    assert!(matches!(err, ControlError::ShutDown { .. }), "{err}");
    // And its recovery too: the same open cluster serves again, nothing lost.
    kms.enable_key(&cmk(&root)).unwrap();
    assert!(matches!(other.check().unwrap(), CheckOutcome::Valid { .. }));
    assert_eq!(cluster.get("db", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_node_that_missed_a_write_is_rebuilt_when_the_cluster_opens() {
    let (dir, root, _) = project();
    let cluster = root.cluster(None).unwrap();
    load(&root, "Cluster0", 100);
    assert!(cluster.verify().unwrap().consistent);
    drop(cluster);
    // The state a crash between nodes leaves: node-0 has a write the others never got.
    {
        let node0 = dir.path().join("clusters/Cluster0/node-0");
        let store = Store::open(
            &node0,
            root.kms().unwrap(),
            &cmk(&root),
            StoreOptions::default(),
        )
        .unwrap();
        let mut batch = WriteBatch::new();
        batch.put("db", "only-on-node-0", "v");
        store
            .write_at(&batch, store.applied().unwrap() + 1)
            .unwrap();
    }
    let cluster = Root::open(dir.path()).unwrap().cluster(None).unwrap();
    let verified = cluster.verify().unwrap();
    assert!(verified.consistent, "{verified}");
    for node in &verified.nodes {
        assert_eq!(node.databases["db"].records, 101, "{verified}");
    }
    let alerts = root.alerts().unwrap();
    let rebuilt: Vec<_> = alerts
        .iter()
        .filter(|a| a.event_type_name == atrest::control::ALERT_NODE_REBUILT)
        .collect();
    assert_eq!(rebuilt.len(), 2, "{alerts:?}");
    assert!(rebuilt.iter().all(|a| a.text.contains("behind")));
}

#[test]
fn a_set_key_during_a_rewrite_is_refused_cleanly_and_finishes_after() {
    let (dir, root, kms) = project();
    root.create_cluster(DEFAULT_OWNER, spec("app", "M10", false))
        .unwrap();
    load(&root, "app", 3000);
    let new_cmk = kms.create_key(CreateKeyRequest::default()).unwrap().arn;
    let path = dir.path().to_path_buf();
    let mut refused = None;
    root.set_cluster_encryption(DEFAULT_OWNER, "app", true, &mut |_, _| {
        if refused.is_none() {
            // Another process points the project at a new CMK while the rewrite holds the
            // cluster: refused with the holder's name, nothing half-done written back.
            refused = Some(Root::open(&path).unwrap().set_key(&new_cmk));
        }
    })
    .unwrap();
    let err = refused.unwrap().unwrap_err();
    assert!(err.to_string().contains("is open in"), "{err}");
    // The rewrite kept the rotation the other process recorded; finishing it completes it.
    let settings = root.settings().unwrap().unwrap();
    assert_eq!(settings.cmk_rotation.map(|r| r.to), Some(new_cmk.clone()));
    assert_eq!(root.set_key(&new_cmk).unwrap().cmk, new_cmk);
    assert_eq!(records(&root, "app").len(), 3000);
    for node in root.cluster(Some("app")).unwrap().status().unwrap() {
        assert_eq!(node.keys.unwrap().cmk_arn, new_cmk);
    }
}

/// A multi-Region key's replica in the project's region is a CMK like any other there
/// (the failover Atlas documents: point the project at the replica); the primary, in
/// another region, is not.
#[test]
fn a_multi_region_replica_in_the_projects_region_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    root.init(&InitOptions {
        region: "eu-west-1".into(),
        ..InitOptions::default()
    })
    .unwrap();
    let east = root.kms_client(None, Some("us-east-1")).unwrap();
    let primary = east
        .create_key(CreateKeyRequest {
            multi_region: true,
            ..Default::default()
        })
        .unwrap();
    let err = root.set_key(&primary.arn).unwrap_err();
    assert!(err.to_string().contains("us-east-1"), "{err}");
    let replica = east
        .replicate_key(&primary.key_id, "eu-west-1", Default::default())
        .unwrap();
    let settings = root.set_key(&replica.metadata.arn).unwrap();
    assert_eq!(settings.cmk, replica.metadata.arn);
    root.create_cluster(DEFAULT_OWNER, spec("failover", "M10", true))
        .unwrap();
    load(&root, "failover", 10);
    assert_eq!(records(&root, "failover").len(), 10);
}

#[test]
fn a_settings_file_of_another_format_is_named_as_such_not_as_corrupt() {
    let (dir, _root, _kms) = project();
    let path = dir.path().join("atrest.json");
    let mut settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let format = settings["format"].as_u64().unwrap();
    let reopen = || Root::open(dir.path()).and_then(|root| root.settings());
    // Another version's file, whether or not the rest of it still parses as this one's.
    settings["format"] = (format + 1).into();
    std::fs::write(&path, serde_json::to_vec(&settings).unwrap()).unwrap();
    let err = reopen().unwrap_err();
    assert!(
        matches!(err, ControlError::SettingsFormat { found, .. } if u64::from(found) == format + 1),
        "{err}"
    );
    settings["project"] = "a shape this version does not know".into();
    std::fs::write(&path, serde_json::to_vec(&settings).unwrap()).unwrap();
    let err = reopen().unwrap_err();
    assert!(matches!(err, ControlError::SettingsFormat { .. }), "{err}");
    // This version's format, damaged: corrupt.
    settings["format"] = format.into();
    std::fs::write(&path, serde_json::to_vec(&settings).unwrap()).unwrap();
    let err = reopen().unwrap_err();
    assert!(matches!(err, ControlError::SettingsCorrupt { .. }), "{err}");
}
