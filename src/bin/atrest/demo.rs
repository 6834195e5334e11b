//! `atrest demo`: the whole story on the embedded default, in a fresh temporary root:
//! project, clusters, rotation, snapshots, CMK rotation, a key disabled and re-enabled,
//! 91 days of emulator time. Every step that should be refused is checked to be refused,
//! so the demo fails loudly if atrest ever turns lax.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use atrest::clock::days;
use atrest::control::cluster::Cluster;
use atrest::control::project::{Backup, ClusterSpec, DEFAULT_OWNER};
use atrest::control::{Applied, InitOptions, Root, ALERT_NEEDS_ROTATION, DEFAULT_CMK_ALIAS};
use atrest::kms::{CreateKeyRequest, EncryptionContext};
use atrest::store::{KeyRange, KeyValue, WriteBatch};

use crate::{CliResult, Failure};

fn step(title: &str) {
    println!("\n== {title}");
}

fn refused<T>(what: &str, result: Result<T, impl std::fmt::Display>, expected: &str) -> CliResult {
    match result {
        Err(e) if e.to_string().contains(expected) => {
            println!("   {what}: refused, as it must be: {e}");
            Ok(())
        }
        Err(e) => Err(format!("demo: {what} failed with {e}, expected {expected}").into()),
        Ok(_) => {
            Err(format!("demo: {what} succeeded, but atrest must refuse it with {expected}").into())
        }
    }
}

fn demo_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("atrest-demo-{}-{nanos}", std::process::id()))
}

/// Counts the files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> std::io::Result<(usize, usize)> {
    let (mut searched, mut found) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let (s, f) = files_containing(&path, needle)?;
            searched += s;
            found += f;
        } else {
            searched += 1;
            let bytes = std::fs::read(&path)?;
            found += usize::from(bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
    Ok((searched, found))
}

pub fn run(keep: bool) -> CliResult {
    let dir = demo_dir();
    println!("atrest demo in {}", dir.display());
    let result = walk(&dir);
    if keep {
        println!(
            "\nkept {}: try `atrest --root {} status`",
            dir.display(),
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn walk(dir: &Path) -> CliResult {
    let root = Root::open(dir)?;
    step("1. init: an embedded strict KMS, a CMK, an Atlas project with encryption at rest, cluster Cluster0");
    let settings = root.init(&InitOptions::default())?;
    let project = root.project_status()?;
    println!("   CMK {} ({DEFAULT_CMK_ALIAS})", settings.cmk);
    println!(
        "   project {}: awsKms enabled={}, valid={}, roleId={}",
        project.id,
        project.encryption_at_rest.aws_kms.enabled,
        project.encryption_at_rest.aws_kms.valid,
        project
            .encryption_at_rest
            .aws_kms
            .role_id
            .as_deref()
            .unwrap_or("-")
    );
    let kms = root.kms_client(None, None)?;

    step("2. the KMS is strict where other emulators are lax");
    let context: EncryptionContext = [("purpose".to_string(), "demo".to_string())].into();
    let blob = kms
        .encrypt(DEFAULT_CMK_ALIAS, b"a secret", &context)?
        .ciphertext_blob;
    refused(
        "decrypt with another encryption context",
        kms.decrypt(Some(DEFAULT_CMK_ALIAS), &blob, &EncryptionContext::new()),
        "InvalidCiphertextException",
    )?;
    let scratch = kms.create_key(CreateKeyRequest::default())?;
    refused(
        "decrypt naming the wrong key",
        kms.decrypt(Some(&scratch.key_id), &blob, &context),
        "IncorrectKeyException",
    )?;
    kms.disable_key(&scratch.key_id)?;
    refused(
        "encrypt with a disabled key",
        kms.encrypt(&scratch.key_id, b"x", &context),
        "DisabledException",
    )?;

    step("3. Atlas's rules: refused clusters");
    for (tier, backup, serverless, why) in [
        ("M5", Backup::Cloud, false, "M10 or larger"),
        ("M10", Backup::Legacy, false, "Cloud Backups"),
        ("M10", Backup::Cloud, true, "serverless"),
    ] {
        refused(
            &format!(
                "an encrypted {tier} cluster ({backup:?} backups{})",
                if serverless { ", serverless" } else { "" }
            ),
            root.create_cluster(
                DEFAULT_OWNER,
                ClusterSpec {
                    name: "refused".into(),
                    tier: tier.into(),
                    nodes: 3,
                    backup,
                    serverless,
                    encrypt: true,
                },
            ),
            why,
        )?;
    }

    step("4. cluster create shop: M10, 3 nodes, encrypted; load data on every node");
    root.create_cluster(
        DEFAULT_OWNER,
        ClusterSpec {
            name: "shop".into(),
            tier: "M10".into(),
            nodes: 3,
            backup: Backup::Cloud,
            serverless: false,
            encrypt: true,
        },
    )?;
    let cluster = root.cluster(Some("shop"))?;
    let marker = "demo-plaintext-marker-7f3a";
    let mut batch = WriteBatch::new();
    for i in 0..1000 {
        batch.put(
            "orders",
            format!("order:{i:04}"),
            format!("pizza {i} {marker}"),
        );
    }
    cluster.write(&batch)?;
    cluster.flush()?;
    let (searched, found) = files_containing(dir, marker.as_bytes())
        .map_err(|e| format!("demo: search failed: {e}"))?;
    if found > 0 {
        return Err(format!("demo: the plaintext marker is on disk in {found} file(s)").into());
    }
    println!("   1000 orders on 3 nodes; the plaintext marker is in none of the {searched} files under the root");
    let before = read_all(&cluster)?;

    step("5. rotate the master key, node by node: data untouched");
    let sst_before = sst_files(dir)?;
    drop(cluster);
    let versions = match root.rotate_master_key(Some("shop"))? {
        Applied::Done(v) => v,
        Applied::Queued => return Err("demo: rotation was queued".to_string().into()),
    };
    let cluster = root.cluster(Some("shop"))?;
    let sst_after = sst_files(dir)?;
    if !sst_before.iter().all(|f| sst_after.contains(f)) || read_all(&cluster)? != before {
        return Err("demo: master-key rotation rewrote data".to_string().into());
    }
    println!("   master keys now at versions {versions:?}; all {} SST files still there, byte-identical; every record the same", sst_before.len());
    drop(cluster);

    step("6. snapshot (under the current CMK), rotate the CMK, snapshot again");
    let first = root.create_snapshot(Some("shop"), &mut |_| {})?;
    println!("   snapshot {} under {}", first.id, first.cmk_arn);
    let old_cmk = settings.cmk.clone();
    let new_cmk = kms.create_key(CreateKeyRequest {
        description: "rotated CMK".into(),
        ..Default::default()
    })?;
    root.set_key(&new_cmk.key_id)?;
    println!(
        "   project CMK is now {} (every node's master key re-wrapped)",
        new_cmk.arn
    );
    let second = root.create_snapshot(Some("shop"), &mut |_| {})?;
    println!("   snapshot {} under {}", second.id, second.cmk_arn);

    step("7. disable the old CMK: the cluster keeps working; the old snapshot will not restore");
    kms.disable_key(&old_cmk)?;
    root.check()?;
    let cluster = root.cluster(Some("shop"))?;
    println!(
        "   order:0001 -> {:?}",
        text(cluster.get("orders", b"order:0001")?)
    );
    drop(cluster);
    refused(
        "restore the snapshot taken under the disabled key",
        root.restore_snapshot(&first.id, None, Some("shop")),
        "which is disabled",
    )?;
    refused(
        "delete the old CMK while a snapshot depends on it",
        root.schedule_key_deletion(&kms, &old_cmk, Some(7), false),
        "still protects data",
    )?;

    step("8. disable the current CMK, then the validity check: the cluster shuts down");
    kms.disable_key(&new_cmk.key_id)?;
    println!("   check: {}", root.check()?);
    refused("read from shop", root.cluster(Some("shop")), "shut down")?;
    let queued = root.rotate_master_key(Some("shop"))?;
    println!("   a master-key rotation asked for meanwhile: {queued:?}");

    step("9. enable it again, then check: every node back, nothing lost, the queue applied");
    kms.enable_key(&new_cmk.key_id)?;
    println!("   check: {}", root.check()?);
    let cluster = root.cluster(Some("shop"))?;
    if read_all(&cluster)? != before {
        return Err("demo: records changed across the shutdown"
            .to_string()
            .into());
    }
    println!("   all 1000 orders read back unchanged");
    drop(cluster);

    step("10. 91 days later: automatic master-key rotation, and the CMK rotation reminder");
    root.advance_clock(days(91))?;
    let tick = root.tick()?;
    if tick.master_keys_rotated.is_empty() {
        return Err("demo: no master key rotated after 91 days"
            .to_string()
            .into());
    }
    for (cluster, node, version) in &tick.master_keys_rotated {
        println!("   {cluster} {node}: master key rotated to version {version}");
    }
    let reminder = tick
        .alerts
        .iter()
        .find(|a| a.event_type_name == ALERT_NEEDS_ROTATION)
        .ok_or_else(|| Failure::from("demo: no rotation reminder after 91 days".to_string()))?;
    println!("   ALERT {}: {}", reminder.event_type_name, reminder.text);

    step("11. the hierarchy of shop");
    for node in root.cluster(Some("shop"))?.status()? {
        if let Some(keys) = node.keys {
            println!(
                "   {}  CMK {}  master key v{}  {} database(s)",
                node.node,
                keys.cmk_arn,
                keys.master_key_version,
                keys.databases.len()
            );
        }
    }
    println!("\ndemo finished: every check passed");
    Ok(())
}

fn text(value: Option<Vec<u8>>) -> String {
    String::from_utf8_lossy(&value.unwrap_or_default()).into_owned()
}

fn read_all(cluster: &Cluster) -> Result<Vec<KeyValue>, Failure> {
    Ok(cluster.records("orders", KeyRange::All)?)
}

/// Every SST file under `dir` with its bytes, to show rotation rewrote none.
fn sst_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, Failure> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("demo: {e}"))? {
            let path = entry.map_err(|e| format!("demo: {e}"))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "sst") {
                let bytes = std::fs::read(&path).map_err(|e| format!("demo: {e}"))?;
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    Ok(found)
}
