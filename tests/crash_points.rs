//! Every crash point of every rotation kind, walked in order: for each kind (master-key
//! rotation, data-key rollover, CMK change, the rewrite into plain and into encrypted
//! stores, a restore) the command runs once per crash point N, stopping at its Nth durable
//! step or KMS call as a SIGKILL there would (see `atrest::crash`). Each time, a new root
//! is opened on what the disk holds and checked: the cluster opens (every node's keystore
//! unwraps), every record of every node opens and equals what was acknowledged, the
//! rotation either happened on a node or did not, and running the command again finishes
//! it. The walk ends at the first N the command completes without reaching.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;

use atrest::control::cluster::NodeDigest;
use atrest::control::project::DEFAULT_OWNER;
use atrest::control::{ControlError, InitOptions, Root};
use atrest::crash::{self, CrashPoint};
use atrest::kms::CreateKeyRequest;
use atrest::store::WriteBatch;

/// One node's state as the checks see it: its records (digested), whether it is
/// encrypted, and, if so, its master-key version, CMK and each database's active data key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeState {
    records: NodeDigest,
    keys: Option<NodeKeys>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeKeys {
    master_key_version: u32,
    /// Whether the node's master key is wrapped by the CMK the project started with.
    initial_cmk: bool,
    active_data_keys: BTreeMap<String, u32>,
}

/// Every node's state, read through a newly opened cluster: every record is opened.
fn nodes(root: &Root, initial_cmk: &str) -> Vec<NodeState> {
    let cluster = root.cluster(None).unwrap();
    let verified = cluster.verify().unwrap();
    let status = cluster.status().unwrap();
    verified
        .nodes
        .into_iter()
        .zip(status)
        .map(|(records, node)| NodeState {
            records,
            keys: node.keys.map(|keys| NodeKeys {
                master_key_version: keys.master_key_version,
                initial_cmk: keys.cmk_arn == initial_cmk,
                active_data_keys: keys
                    .databases
                    .iter()
                    .map(|d| (d.database.clone(), d.active_data_key))
                    .collect(),
            }),
        })
        .collect()
}

fn load(root: &Root, from: u32, n: u32) {
    let mut batch = WriteBatch::new();
    for i in from..from + n {
        batch.put("db", format!("k{i:04}"), format!("value-{i}").repeat(3));
        batch.put("other", format!("o{i:04}"), format!("other-{i}"));
    }
    root.cluster(None).unwrap().write(&batch).unwrap();
}

/// A project with an encrypted three-node cluster holding records in two databases, and
/// its CMK.
fn project(dir: &Path) -> (Root, String) {
    let root = Root::open(dir).unwrap();
    let cmk = root.init(&InitOptions::default()).unwrap().cmk;
    load(&root, 0, 30);
    (root, cmk)
}

/// A rotation kind: what to set up (once per crash point), the command, and what each
/// node may look like after a crash (`before` and `after` are the states the command
/// starts from and ends at when it runs whole).
struct Kind {
    name: &'static str,
    setup: fn(&Root) -> String,
    command: fn(&Root, &str) -> Result<(), ControlError>,
    /// Every node moves, or none does (a restore's nodes are from one point in time).
    all_or_none: bool,
}

fn rotate_master_key(root: &Root, _: &str) -> Result<(), ControlError> {
    root.rotate_master_key(None).map(|_| ())
}

fn roll_data_key(root: &Root, _: &str) -> Result<(), ControlError> {
    root.roll_data_key(None, "db").map(|_| ())
}

fn set_key(root: &Root, key: &str) -> Result<(), ControlError> {
    root.set_key(key).map(|_| ())
}

fn to_plain(root: &Root, _: &str) -> Result<(), ControlError> {
    root.set_cluster_encryption(DEFAULT_OWNER, "Cluster0", false, &mut |_, _| {})
        .map(|_| ())
}

fn to_encrypted(root: &Root, _: &str) -> Result<(), ControlError> {
    root.set_cluster_encryption(DEFAULT_OWNER, "Cluster0", true, &mut |_, _| {})
        .map(|_| ())
}

fn restore(root: &Root, snapshot: &str) -> Result<(), ControlError> {
    root.restore_snapshot(snapshot, None, None).map(|_| ())
}

fn nothing(_: &Root) -> String {
    String::new()
}

fn new_key(root: &Root) -> String {
    let admin = root.kms_client(None, None).unwrap();
    admin.create_key(CreateKeyRequest::default()).unwrap().arn
}

fn plain_cluster(root: &Root) -> String {
    to_plain(root, "").unwrap();
    String::new()
}

/// A snapshot of the records as they are, then more records written after it, so that
/// the restore changes what the nodes hold.
fn snapshot_then_more(root: &Root) -> String {
    let taken = root.create_snapshot(None, &mut |_| {}).unwrap();
    load(root, 30, 10);
    taken.id
}

const KINDS: &[Kind] = &[
    Kind {
        name: "master-key rotation",
        setup: nothing,
        command: rotate_master_key,
        all_or_none: false,
    },
    Kind {
        name: "data-key rollover",
        setup: nothing,
        command: roll_data_key,
        all_or_none: false,
    },
    Kind {
        name: "CMK change",
        setup: new_key,
        command: set_key,
        all_or_none: false,
    },
    Kind {
        name: "rewrite into plain stores",
        setup: nothing,
        command: to_plain,
        all_or_none: false,
    },
    Kind {
        name: "rewrite into encrypted stores",
        setup: plain_cluster,
        command: to_encrypted,
        all_or_none: false,
    },
    Kind {
        name: "restore",
        setup: snapshot_then_more,
        command: restore,
        all_or_none: true,
    },
];

/// Whether `node`, found after a crash, is the node `before` the command or `after` it:
/// records and keys alike (a node is rotated whole or not at all).
fn one_of(node: &NodeState, before: &NodeState, after: &NodeState) -> bool {
    let rotated = |n: &NodeState, like: &NodeState| match (&n.keys, &like.keys) {
        (Some(k), Some(l)) => {
            k.master_key_version == l.master_key_version
                && k.initial_cmk == l.initial_cmk
                && k.active_data_keys.get("db") == l.active_data_keys.get("db")
        }
        (None, None) => true,
        _ => false,
    };
    [before, after]
        .iter()
        .any(|like| node.records.databases == like.records.databases && rotated(node, like))
}

/// Runs `kind` whole once (to learn the states it goes from and to), then once per crash
/// point; returns the crash points it has, in order.
fn walk(kind: &Kind) -> Vec<CrashPoint> {
    let (before, after, points) = {
        let dir = scratch();
        let (root, cmk) = project(dir.path());
        let argument = (kind.setup)(&root);
        let before = nodes(&root, &cmk);
        let armed = crash::arm(None);
        (kind.command)(&root, &argument).unwrap();
        let points = armed.reached();
        drop(armed);
        (before, nodes(&root, &cmk), points)
    };
    assert_ne!(
        before, after,
        "{}: the command changes the nodes",
        kind.name
    );
    for step in 1..=points.len() as u64 {
        let context = format!("{} crashed at step {step} of {points:?}", kind.name);
        let dir = scratch();
        let (argument, cmk) = {
            let (root, cmk) = project(dir.path());
            let argument = (kind.setup)(&root);
            let armed = crash::arm(Some(step));
            let result = (kind.command)(&root, &argument);
            assert!(result.is_err(), "{context}: the command said it succeeded");
            assert_eq!(armed.crashed().map(|c| c.step), Some(step), "{context}");
            assert_eq!(
                armed.reached(),
                points[..step as usize],
                "{context}: the same steps in the same order as the whole run"
            );
            // What the process held in memory dies with it; its drops change nothing on
            // disk while the crash is armed.
            drop(root);
            (argument, cmk)
        };
        let root = Root::open(dir.path()).unwrap();
        let found = nodes(&root, &cmk);
        let mut moved = 0;
        for (node, state) in found.iter().enumerate() {
            assert!(
                one_of(state, &before[node], &after[node]),
                "{context}: node-{node} is neither as before nor as after:\n{state:#?}\nbefore {:#?}\nafter {:#?}",
                before[node],
                after[node]
            );
            moved += usize::from(state != &before[node]);
        }
        if kind.all_or_none {
            assert!(
                moved == 0 || moved == found.len(),
                "{context}: a restore moved {moved} of the nodes"
            );
        }
        // Finishing: the same command again completes it on every node.
        (kind.command)(&root, &argument).unwrap_or_else(|e| panic!("{context}: again: {e}"));
        let finished = nodes(&root, &cmk);
        for (node, state) in finished.iter().enumerate() {
            assert_eq!(
                state.records, after[node].records,
                "{context}: node-{node}'s records once finished"
            );
            match (&state.keys, &after[node].keys, &before[node].keys) {
                (None, None, _) => {}
                (Some(k), Some(a), Some(b)) => {
                    assert_eq!(
                        k.initial_cmk, a.initial_cmk,
                        "{context}: node-{node}'s CMK once finished"
                    );
                    assert!(
                        k.master_key_version >= a.master_key_version
                            && k.active_data_keys["db"] >= a.active_data_keys["db"]
                            && k.active_data_keys["db"] >= b.active_data_keys["db"],
                        "{context}: node-{node} once finished: {k:?}"
                    );
                }
                (Some(_), Some(_), None) => {}
                other => panic!("{context}: node-{node} once finished: {other:?}"),
            }
        }
    }
    points
}

/// Walks `kind`: at least a few crash points, each one survived.
fn walk_all_of(kind: &Kind) {
    let points = walk(kind);
    assert!(points.len() >= 3, "{}: only {points:?}", kind.name);
    eprintln!("{}: {} crash points {points:?}", kind.name, points.len());
}

// One test per kind, so that the kinds are walked in parallel (the crash plan is the
// thread's own).

#[test]
fn every_crash_point_of_a_master_key_rotation() {
    walk_all_of(&KINDS[0]);
}

#[test]
fn every_crash_point_of_a_data_key_rollover() {
    walk_all_of(&KINDS[1]);
}

#[test]
fn every_crash_point_of_a_cmk_change() {
    walk_all_of(&KINDS[2]);
}

#[test]
fn every_crash_point_of_a_rewrite_into_plain_stores() {
    walk_all_of(&KINDS[3]);
}

#[test]
fn every_crash_point_of_a_rewrite_into_encrypted_stores() {
    walk_all_of(&KINDS[4]);
}

#[test]
fn every_crash_point_of_a_restore() {
    walk_all_of(&KINDS[5]);
}

/// A directory for one run: in memory (tmpfs) where the machine has one, since the walk
/// opens a few hundred roots and what it checks is the order of steps, not the disk.
fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm),
        _ => tempfile::tempdir(),
    }
    .unwrap()
}
