//! The whole engine against a plain in-memory model: random sequences of writes, reads,
//! reopens, every kind of rotation, CMK state changes, time jumps, snapshots, restores
//! and injected KMS faults. Failing inputs are kept in tests/model.proptest-regressions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use atrest::fuzzing::ops::{decode, run, run_control, Db, FaultKind, Op};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_matches_the_model(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let ops = decode(&bytes, 80);
        if let Err(divergence) = run(&ops) {
            prop_assert!(false, "{divergence}\nops: {ops:#?}");
        }
    }

    #[test]
    fn the_control_plane_matches_the_model(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let ops = decode(&bytes, 60);
        if let Err(divergence) = run_control(&ops) {
            prop_assert!(false, "{divergence}\nops: {ops:#?}");
        }
    }
}

/// Checks, shutdown, queue and recovery in one scripted walk.
#[test]
fn a_scripted_control_sequence_matches_the_model() {
    use Op::*;
    let put = |key: u8| Put {
        db: Db::A,
        key,
        value: vec![key; 3],
    };
    let ops = vec![
        put(1),
        ValidityCheck,
        DisableCmk { which: 0 },
        put(2),
        ValidityCheck,
        put(3),
        RotateMaster,
        RotateMaster,
        RotateCmk,
        Fault {
            calls: 0,
            kind: FaultKind::Unavailable,
        },
        ValidityCheck,
        EnableCmk { which: 0 },
        Fault {
            calls: 1,
            kind: FaultKind::Throttled,
        },
        ValidityCheck,
        put(4),
        ValidityCheck,
        ValidityCheck,
        Fault {
            calls: 0,
            kind: FaultKind::AccessDenied,
        },
        ValidityCheck,
        Get { db: Db::A, key: 1 },
        ValidityCheck,
        RotateCmk,
        DisableCmk { which: 0 },
        ValidityCheck,
        Reopen,
        DisableCmk { which: 1 },
        ValidityCheck,
        RotateMaster,
        EnableCmk { which: 1 },
        ValidityCheck,
        Scan {
            db: Db::A,
            first: None,
        },
    ];
    run_control(&ops).unwrap();
}

/// A scripted walk through the cases random sequences reach only sometimes.
#[test]
fn a_scripted_sequence_matches_the_model() {
    use Op::*;
    let ops = vec![
        Put {
            db: Db::A,
            key: 1,
            value: b"one".to_vec(),
        },
        Batch(vec![
            (Db::B, 2, Some(b"two".to_vec())),
            (Db::A, 1, None),
            (Db::C, 3, Some(vec![])),
        ]),
        Snapshot,
        Put {
            db: Db::A,
            key: 4,
            value: b"four".to_vec(),
        },
        RotateCmk,
        Snapshot,
        DisableCmk { which: 0 },
        Restore { which: 0 },
        Reopen,
        EnableCmk { which: 0 },
        Restore { which: 0 },
        Get { db: Db::B, key: 2 },
        Fault {
            calls: 1,
            kind: FaultKind::Unavailable,
        },
        RotateMaster,
        RotateMaster,
        Fault {
            calls: 0,
            kind: FaultKind::AccessDenied,
        },
        Reopen,
        Reopen,
        DisableCmk { which: 1 },
        Tick { days: 91 },
        EnableCmk { which: 1 },
        Tick { days: 1 },
        RotateKeyOnDemand,
        Reopen,
        Restore { which: 1 },
        RollDataKey { db: Db::C },
        Scan {
            db: Db::A,
            first: Some(4),
        },
    ];
    let mut more = ops.clone();
    for i in 0..40u8 {
        more.push(Put {
            db: Db::A,
            key: i,
            value: vec![i; i as usize],
        });
    }
    more.push(Reopen);
    run(&more).unwrap();
}

/// A 40-byte record under `key` of database A.
fn put40(key: u8) -> Op {
    Op::Put {
        db: Db::A,
        key,
        value: vec![key; 40],
    }
}

/// A batch over two databases: a put and a delete.
fn a_batch() -> Op {
    Op::Batch(vec![(Db::B, 1, Some(b"b".to_vec())), (Db::A, 1, None)])
}

/// A crash at each of the first eight steps of every operation that makes durable changes:
/// the store opens again and holds the records from before the operation or after it.
#[test]
fn a_crash_at_any_step_of_an_operation_leaves_before_or_after() {
    use Op::*;
    let put = put40;
    let interrupted = [
        put(9),
        a_batch(),
        Delete { db: Db::A, key: 2 },
        RotateMaster,
        RotateCmk,
        RollDataKey { db: Db::A },
        Snapshot,
        Restore { which: 0 },
        Tick { days: 91 },
        Reopen,
    ];
    for op in interrupted {
        for at in 0..8 {
            let ops = vec![
                put(1),
                put(2),
                Snapshot,
                put(3),
                Crash { at },
                op.clone(),
                Scan {
                    db: Db::A,
                    first: None,
                },
                put(4),
                RotateMaster,
                Reopen,
                Restore { which: 0 },
            ];
            if let Err(divergence) = run(&ops) {
                panic!("{divergence}\n{ops:?}");
            }
        }
    }
}

/// What a failing fuzz input prints is the Rust that builds its sequence, to paste here.
#[test]
fn a_sequence_prints_as_the_rust_that_builds_it() {
    let ops = vec![
        Op::Put {
            db: Db::A,
            key: 1,
            value: vec![1, 2],
        },
        Op::Batch(vec![(Db::B, 2, Some(vec![3])), (Db::C, 3, None)]),
        Op::Scan {
            db: Db::A,
            first: Some(4),
        },
        Op::Fault {
            calls: 1,
            kind: FaultKind::Throttled,
        },
        Op::Crash { at: 3 },
        Op::Tick { days: 91 },
        Op::RotateCmk,
    ];
    let printed = "vec![
    Op::Put { db: Db::A, key: 1, value: vec![1, 2] },
    Op::Batch(vec![(Db::B, 2, Some(vec![3])), (Db::C, 3, None)]),
    Op::Scan { db: Db::A, first: Some(4) },
    Op::Fault { calls: 1, kind: FaultKind::Throttled },
    Op::Crash { at: 3 },
    Op::Tick { days: 91 },
    Op::RotateCmk,
]";
    assert_eq!(atrest::fuzzing::ops::to_rust(&ops), printed);
    run(&ops).unwrap();
}

/// The control plane, crashed at each of the first eight steps of every operation that
/// makes durable changes there, up and shut down: the root opens again as a new process
/// would, holds the project and the node as before the operation or after it, and the
/// sequence goes on to a recovery.
#[test]
fn a_control_plane_crash_at_any_step_leaves_before_or_after() {
    use Op::*;
    let put = put40;
    let interrupted = [
        put(9),
        a_batch(),
        RotateMaster,
        RotateCmk,
        RollDataKey { db: Db::A },
        ValidityCheck,
        Reopen,
    ];
    for op in interrupted {
        for shut_down in [false, true] {
            for at in 0..8 {
                let mut ops = vec![put(1), put(2)];
                if shut_down {
                    ops.extend([DisableCmk { which: 0 }, ValidityCheck, RotateMaster]);
                    ops.push(EnableCmk { which: 0 });
                }
                ops.extend([
                    Crash { at },
                    op.clone(),
                    ValidityCheck,
                    Get { db: Db::A, key: 1 },
                    RotateCmk,
                    put(3),
                    Reopen,
                    Scan {
                        db: Db::A,
                        first: None,
                    },
                ]);
                if let Err(divergence) = run_control(&ops) {
                    panic!("{divergence}\n{ops:?}");
                }
            }
        }
    }
}

/// The fuzzers' bytes can name every kind of operation (their weights leave none out).
#[test]
fn every_kind_of_operation_decodes() {
    fn kind(op: &Op) -> &'static str {
        match op {
            Op::Put { .. } => "Put",
            Op::Delete { .. } => "Delete",
            Op::Batch(_) => "Batch",
            Op::Get { .. } => "Get",
            Op::Scan { .. } => "Scan",
            Op::Reopen => "Reopen",
            Op::RotateMaster => "RotateMaster",
            Op::RotateCmk => "RotateCmk",
            Op::RotateKeyOnDemand => "RotateKeyOnDemand",
            Op::DisableCmk { .. } => "DisableCmk",
            Op::EnableCmk { .. } => "EnableCmk",
            Op::Tick { .. } => "Tick",
            Op::Snapshot => "Snapshot",
            Op::Restore { .. } => "Restore",
            Op::RollDataKey { .. } => "RollDataKey",
            Op::Fault { .. } => "Fault",
            Op::ValidityCheck => "ValidityCheck",
            Op::Crash { .. } => "Crash",
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for first in 0..=255u8 {
        for second in [0u8, 255] {
            for op in decode(&[first, second, 7, 7, 7, 7], 1) {
                seen.insert(kind(&op));
            }
        }
    }
    assert_eq!(seen.len(), 18, "only {seen:?}");
}
