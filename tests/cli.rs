//! The `atrest` binary, as a user drives it: stores, rotation, snapshots, the control
//! plane, and what survives a kill. The `kms` commands are in `cli_kms.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use cli::{atrest, fails, json, kills, ok, run_and_kill};

#[test]
fn store_commands_and_the_cmk_hold_over_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fails(root, &["get", "db", "k"], "not initialised");
    let settings = json(root, &["init"]);
    let cmk = settings["cmk"].as_str().unwrap().to_string();
    fails(root, &["init"], "already initialised");
    ok(root, &["put", "shop", "order:1", "pizza"]);
    ok(root, &["put", "shop", "order:2", "pasta"]);
    ok(root, &["put", "shop", "user:1", "alice"]);
    assert_eq!(ok(root, &["get", "shop", "order:2"]).trim(), "pasta");
    assert_eq!(
        ok(root, &["scan", "shop", "--prefix", "order:"]),
        "order:1\tpizza\norder:2\tpasta\n"
    );
    ok(root, &["delete", "shop", "order:1"]);
    fails(root, &["get", "shop", "order:1"], "no key");
    assert!(ok(
        root,
        &["load", "bulk", "--count", "2500", "--value-size", "100"]
    )
    .contains("loaded 2500 records"));
    let status = json(root, &["status"]);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "Cluster0 has Atlas's three nodes");
    for node in nodes {
        assert_eq!(node["keys"]["cmk_arn"], cmk.as_str());
        assert_eq!(node["keys"]["master_key_version"], 1);
        assert_eq!(node["keys"]["databases"].as_array().unwrap().len(), 2);
    }
    assert_eq!(status["cmk"]["KeyState"], "Enabled");
    assert!(ok(root, &["status"]).contains("master key version 1"));

    ok(root, &["kms", "disable-key", "--key-id", &cmk]);
    let stderr = fails(root, &["get", "shop", "user:1"], "DisabledException");
    assert!(
        stderr.contains(&cmk) && stderr.contains("hint:"),
        "{stderr}"
    );
    ok(root, &["kms", "enable-key", "--key-id", &cmk]);
    assert_eq!(ok(root, &["get", "shop", "user:1"]).trim(), "alice");
}

#[test]
fn rotation_commands_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let old_cmk = json(root, &["init", "--master-key-rotation-days", "90"])["cmk"]
        .as_str()
        .unwrap()
        .to_string();
    ok(root, &["put", "shop", "k", "v"]);
    assert!(ok(root, &["rotate", "master"]).contains("versions [2, 2, 2]"));
    assert!(ok(root, &["status"]).contains("master key version 2"));
    let new_cmk = json(root, &["kms", "create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let settings = json(root, &["project", "set-key", "--key", &new_cmk]);
    assert_eq!(settings["cmk"], new_cmk.as_str());
    let status = json(root, &["status"]);
    assert_eq!(status["nodes"][2]["keys"]["cmk_arn"], new_cmk.as_str());
    assert_eq!(status["cmk_rotation"], Value::Null);
    ok(root, &["kms", "disable-key", "--key-id", &old_cmk]);
    assert_eq!(ok(root, &["get", "shop", "k"]).trim(), "v");
    ok(root, &["clock", "advance", "91d"]);
    let tick = ok(root, &["tick"]);
    assert!(
        tick.contains("node-2: master key rotated to version 3"),
        "{tick}"
    );
    assert!(
        tick.contains("AWS_ENCRYPTION_KEY_NEEDS_ROTATION"),
        "91 days after set-key: {tick}"
    );
    assert!(!ok(root, &["tick"]).contains("master key rotated"));
    let rolled = json(root, &["rotate", "data-key", "shop"]);
    assert_eq!(rolled["active_data_keys"], serde_json::json!([2, 2, 2]));
    assert_eq!(ok(root, &["get", "shop", "k"]).trim(), "v");
}

#[test]
fn snapshot_commands_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cmk = json(root, &["init"])["cmk"].as_str().unwrap().to_string();
    ok(root, &["put", "shop", "k", "before"]);
    let snap = json(root, &["snapshot", "create"]);
    let id = snap["id"].as_str().unwrap().to_string();
    assert_eq!(snap["cmk_arn"], cmk.as_str());
    assert!(ok(root, &["snapshot", "list"]).contains(&id));
    assert!(ok(root, &["snapshot", "verify", &id]).contains("is whole"));
    let usage = json(root, &["keys", "usage", &cmk]);
    assert_eq!(usage["snapshots"][0]["id"], id.as_str());
    assert_eq!(usage["safe_to_delete"], false);
    let stderr = fails(
        root,
        &["kms", "schedule-key-deletion", "--key-id", &cmk],
        "still protects data",
    );
    assert!(stderr.contains(&id), "{stderr}");
    ok(root, &["put", "shop", "k", "after"]);
    ok(root, &["snapshot", "restore", &id]);
    assert_eq!(ok(root, &["get", "shop", "k"]).trim(), "before");
    ok(root, &["kms", "disable-key", "--key-id", &cmk]);
    fails(root, &["snapshot", "restore", &id], "re-enable it");
    ok(root, &["kms", "enable-key", "--key-id", &cmk]);
    fails(
        root,
        &["snapshot", "retention", "--keep", "0"],
        "would delete every snapshot",
    );
    assert!(ok(root, &["snapshot", "list"]).contains(&id));
    let retention = json(root, &["snapshot", "retention", "--keep", "0", "--force"]);
    assert_eq!(retention["deleted"][0], id.as_str());
    fails(root, &["snapshot", "verify", &id], "no snapshot");
}

#[test]
fn an_interrupted_init_says_what_to_remove() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    std::fs::remove_file(root.join("atrest.json")).unwrap();
    let stderr = fails(root, &["init"], "interrupted");
    assert!(stderr.contains("clusters"), "{stderr}");
    std::fs::remove_dir_all(root.join("clusters")).unwrap();
    ok(root, &["init"]);
    ok(root, &["put", "db", "k", "v"]);
}

#[test]
fn bench_runs_both_sides_and_reports_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("bench");
    let report_dir = dir.path().join("report");
    let report = json(
        dir.path(),
        &[
            "bench",
            "--count",
            "3000",
            "--value-size",
            "100,1024",
            "--dir",
            scratch.to_str().unwrap(),
            "--report",
            report_dir.to_str().unwrap(),
        ],
    );
    let sizes = report["sizes"].as_array().unwrap();
    assert_eq!(
        sizes
            .iter()
            .map(|s| s["value_size"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [100, 1024]
    );
    for size in sizes {
        let names: Vec<&str> = size["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "fillseq",
                "overwritebatch",
                "readrandom",
                "readrandom-2threads",
                "readseq",
                "readrandom-uncached"
            ]
        );
        for w in size["workloads"].as_array().unwrap() {
            assert!(w["ratio"].as_f64().unwrap() > 0.0, "{w}");
            assert!(w["cpu_ratio"].as_f64().unwrap() >= 0.0, "{w}");
            assert!(w["plaintext"]["ops_per_sec"].as_f64().unwrap() > 0.0, "{w}");
            let cycles = w["cycles"].as_u64().unwrap();
            assert!((1..=20).contains(&cycles), "{w}");
        }
        let readrandom = &size["workloads"][2];
        for side in readrandom["latency"].as_array().unwrap() {
            assert!(side["p50_us"].as_f64().unwrap() > 0.0, "{readrandom}");
            assert!(side["p999_us"].as_f64() >= side["p50_us"].as_f64());
        }
        assert!(size["workloads"][1]["latency"].is_null());
        assert!(size["snapshot_mb"].as_f64().unwrap() > 0.0);
    }
    let page = std::fs::read_to_string(report_dir.join("index.html")).unwrap();
    for needle in [
        "<svg",
        "100 B values",
        "1024 B values",
        "readrandom-uncached",
    ] {
        assert!(page.contains(needle), "{needle} in the report");
    }
    assert!(!scratch.exists(), "the scratch directory was left behind");
}

#[test]
fn the_control_plane_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cmk = json(root, &["init", "--nodes", "2"])["cmk"]
        .as_str()
        .unwrap()
        .to_string();
    let project = json(root, &["project", "status"]);
    let aws_kms = &project["encryptionAtRest"]["awsKms"];
    for field in [
        "enabled",
        "customerMasterKeyID",
        "region",
        "roleId",
        "valid",
        "requirePrivateNetworking",
    ] {
        assert!(!aws_kms[field].is_null(), "awsKms.{field} in {aws_kms}");
    }
    assert_eq!(aws_kms["customerMasterKeyID"], cmk.as_str());
    fails(
        root,
        &["cluster", "create", "tiny", "--tier", "M2", "--encrypt"],
        "M2",
    );
    ok(
        root,
        &["cluster", "create", "app", "--tier", "M10", "--nodes", "3"],
    );
    ok(root, &["--cluster", "app", "put", "db", "k", "v"]);
    ok(
        root,
        &["project", "add-user", "dev", "--role", "cluster-manager"],
    );
    fails(
        root,
        &["--user", "dev", "cluster", "enable-encryption", "app"],
        "Project Owner",
    );
    assert!(ok(root, &["cluster", "enable-encryption", "app"]).contains("nothing lost"));
    let status = json(root, &["cluster", "status", "app"]);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
    assert!(status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["encrypted"] == true));
    assert_eq!(
        ok(root, &["--cluster", "app", "get", "db", "k"]).trim(),
        "v"
    );

    ok(root, &["kms", "disable-key", "--key-id", &cmk]);
    assert!(ok(root, &["check"]).contains("INVALID"));
    let stderr = fails(root, &["--cluster", "app", "get", "db", "k"], "shut down");
    assert!(
        stderr.contains(&cmk) && stderr.contains("atrest check"),
        "{stderr}"
    );
    assert!(ok(root, &["rotate", "master"]).contains("queued"));
    assert!(ok(root, &["alerts"]).contains("AWS_ENCRYPTION_KEY_INVALID"));
    assert_eq!(
        json(root, &["project", "status"])["encryptionAtRest"]["awsKms"]["valid"],
        false
    );
    ok(root, &["kms", "enable-key", "--key-id", &cmk]);
    assert!(ok(root, &["check"]).contains("1 queued change(s) applied"));
    assert_eq!(
        ok(root, &["--cluster", "app", "get", "db", "k"]).trim(),
        "v"
    );
    assert!(ok(root, &["status"]).contains("master key version 2"));
}

#[test]
fn a_killed_rolling_rewrite_resumes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--nodes", "1"]);
    ok(root, &["cluster", "create", "app", "--nodes", "2"]);
    ok(
        root,
        &[
            "--cluster",
            "app",
            "load",
            "db",
            "--count",
            "20000",
            "--value-size",
            "64",
        ],
    );
    let count = |root: &Path| {
        ok(root, &["--json", "--cluster", "app", "scan", "db"])
            .lines()
            .count()
    };
    assert_eq!(count(root), 20000);
    let mut killed = 0;
    for (i, command) in ["enable-encryption", "disable-encryption"]
        .iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        if run_and_kill(root, &["cluster", command, "app"], 20 + 40 * i as u64) {
            killed += 1;
        }
        // Whatever state it died in, every record is there, on every node it reaches.
        assert_eq!(count(root), 20000, "after a {command} killed at step {i}");
        let verified = json(root, &["cluster", "verify", "app"]);
        assert_eq!(
            verified["consistent"], true,
            "every node, after step {i}: {verified}"
        );
    }
    assert!(
        killed > 0,
        "no rewrite was interrupted; the kill times need adjusting"
    );
    ok(root, &["cluster", "enable-encryption", "app"]);
    let status = json(root, &["cluster", "status", "app"]);
    assert!(status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["encrypted"] == true));
    assert_eq!(count(root), 20000);
}

#[test]
fn a_killed_restore_leaves_every_node_at_one_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    let load = |count: &str| {
        ok(
            root,
            &["load", "db", "--count", count, "--value-size", "64"],
        )
    };
    load("3000");
    let id = json(root, &["snapshot", "create"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    load("6000");
    // Each node's record count, after checking that every node holds the same records.
    let records = || {
        let verified = json(root, &["cluster", "verify"]);
        assert_eq!(verified["consistent"], true, "{verified}");
        verified["nodes"][0]["databases"]["db"]["records"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(records(), 6000);
    let mut killed = 0;
    for i in 0..kills(8) {
        if run_and_kill(root, &["snapshot", "restore", &id], 30 + 60 * (i % 8)) {
            killed += 1;
        }
        // Whatever point it died at, the nodes agree: all restored, or none.
        match records() {
            3000 => {
                load("6000");
            }
            6000 => {}
            other => panic!("a node holds {other} records after a restore killed at step {i}"),
        }
    }
    assert!(
        killed > 0,
        "no restore was interrupted; the kill times need adjusting"
    );
    eprintln!("restore harness: {killed} SIGKILLs, every node consistent after each");
    ok(root, &["snapshot", "restore", &id]);
    assert_eq!(records(), 3000);
}

#[test]
fn concurrent_cli_processes_share_a_root_without_losing_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--nodes", "1"]);
    // Four processes at once, each adding users one command at a time.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let root = root.to_path_buf();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let name = format!("dev-{w}-{i}");
                    ok(
                        &root,
                        &["project", "add-user", &name, "--role", "cluster-manager"],
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let status = json(root, &["project", "status"]);
    assert_eq!(
        status["users"].as_array().unwrap().len(),
        1 + 20,
        "{status}"
    );
}

#[test]
fn a_restore_beside_a_running_load_is_refused_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    ok(root, &["put", "db", "k", "v"]);
    let id = json(root, &["snapshot", "create"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut load = Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(root)
        .args(["load", "db", "--count", "400000", "--value-size", "64"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let refused = atrest(root, &["snapshot", "restore", &id]);
    let still_loading = load.try_wait().unwrap().is_none();
    assert!(load.wait().unwrap().success(), "the load finished");
    if still_loading {
        assert!(
            !refused.status.success(),
            "a restore ran under a running load"
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("is open in"), "{stderr}");
    }
    let verified = json(root, &["cluster", "verify"]);
    assert_eq!(verified["consistent"], true, "{verified}");
}

#[test]
fn a_killed_cluster_create_never_blocks_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--nodes", "1"]);
    let mut killed = 0;
    for i in 0..kills(6) {
        let name = format!("app{i}");
        let create = [
            "cluster",
            "create",
            &name,
            "--tier",
            "M10",
            "--nodes",
            "3",
            "--encrypt",
        ];
        if run_and_kill(root, &create, 10 + 25 * (i % 6)) {
            killed += 1;
        }
        // The name is free, or the cluster was made whole: either way it is usable.
        let again = atrest(root, &create);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(
            again.status.success() || stderr.contains("exists already"),
            "{stderr}"
        );
        ok(root, &["--cluster", &name, "put", "db", "k", "v"]);
        let verified = json(root, &["cluster", "verify", &name]);
        assert_eq!(verified["consistent"], true, "{verified}");
    }
    assert!(
        killed > 0,
        "no create was interrupted; the kill times need adjusting"
    );
    eprintln!("create harness: {killed} SIGKILLs, every name usable after each");
}

#[test]
fn hostile_inputs_are_clear_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--nodes", "1"]);
    let refused = |args: &[&str], expected: &str| {
        let stderr = fails(root, args, expected);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    };
    // The keystore's column family is out of reach of every data command.
    refused(&["delete", "atrest.keystore", "keystore"], "reserved");
    refused(&["get", "atrest.keystore", "keystore"], "reserved");
    refused(&["scan", "atrest.keystore"], "reserved");
    ok(root, &["put", "db", "k", "v"]);
    assert_eq!(ok(root, &["get", "db", "k"]).trim(), "v");
    // Emulator time stays printable; sizes stay allocatable.
    refused(&["clock", "advance", "3000000d"], "cannot move past");
    for command in [
        &["clock", "show"][..],
        &["status"],
        &["alerts"],
        &["snapshot", "list"],
    ] {
        ok(root, command);
    }
    refused(
        &[
            "load",
            "db",
            "--count",
            "1",
            "--value-size",
            "18446744073709551615",
        ],
        "too large",
    );
    // The nonce bound of random 96-bit nonces is enforced.
    let fresh = tempfile::tempdir().unwrap();
    let stderr = fails(
        fresh.path(),
        &["init", "--data-key-max-uses", "99999999999"],
        "not 99999999999",
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Settings edited by hand into nonsense are an error naming the limit.
    let settings_path = root.join("atrest.json");
    let edited = std::fs::read_to_string(&settings_path)
        .unwrap()
        .replace("\"nodes\": 1", "\"nodes\": 0");
    std::fs::write(&settings_path, edited).unwrap();
    refused(&["put", "db", "k", "v"], "1 to 50");
    refused(&["get", "db", "k"], "1 to 50");
}

#[test]
fn binary_values_go_in_and_come_out_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    let input = root.join("value.bin");
    std::fs::write(&input, &bytes).unwrap();
    ok(
        root,
        &["put", "db", "blob", "--value-file", input.to_str().unwrap()],
    );
    ok(root, &["put", "db", "text", "plain"]);
    fails(root, &["put", "db", "none"], "<VALUE>");

    let output = root.join("out.bin");
    ok(
        root,
        &["get", "db", "blob", "--output", output.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&output).unwrap(), bytes);
    fails(root, &["get", "db", "blob"], "--base64");
    let encoded = ok(root, &["get", "db", "blob", "--base64"]);
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    assert_eq!(engine.decode(encoded.trim()).unwrap(), bytes);
    let as_json = json(root, &["get", "db", "blob"]);
    assert_eq!(
        engine
            .decode(as_json["value_base64"].as_str().unwrap())
            .unwrap(),
        bytes
    );
    assert_eq!(json(root, &["get", "db", "text"])["value"], "plain");

    fails(root, &["scan", "db"], "--base64");
    let lines = ok(root, &["scan", "db", "--base64"]);
    let first: Vec<&str> = lines.lines().next().unwrap().split('\t').collect();
    assert_eq!(engine.decode(first[0]).unwrap(), b"blob");
    assert_eq!(engine.decode(first[1]).unwrap(), bytes);
    assert_eq!(ok(root, &["scan", "db", "--prefix", "t"]), "text\tplain\n");
}
