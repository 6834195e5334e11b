//! An operation language for the whole engine (writes, reads, reopen, every rotation,
//! CMK state changes, emulator time, snapshots and restores, injected KMS faults), run
//! against the real store and against a plain in-memory model. After every step every
//! readable value must equal the model's, and every error must be one the model predicts.
//!
//! Two runners share the language. [`run`] drives one node's store and checks every
//! rotation, snapshot and restore; [`run_control`] drives Atlas's control plane (a root,
//! its project and a cluster) and checks validity checks, shutdown, queued changes and
//! recovery, with the operations that mean something there. The property tests
//! (`tests/model.rs`) and the `operations` and `control` fuzz targets turn arbitrary bytes
//! into a `Vec<Op>` with the `arbitrary` crate and call them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};

use crate::clock::{days, Clock, ManualClock, Timestamp};
use crate::kms::{
    Caller, CreateKeyRequest, Entropy, Fault, FaultyKms, KmsError, LocalKms, LocalKmsClient,
};
use crate::store::{
    restore_snapshot, DataKeyLimits, KeyRange, KeyValue, LocalDirStorage, RestoreTarget,
    SnapshotError, Store, StoreError, StoreOptions, WriteBatch,
};

mod control;
mod scratch;
mod store;

pub use control::run_control;
use scratch::{Scratch, Template};
pub use store::run;

/// The seed of each run's own random bytes (keys, nonces, ids: see
/// [`crate::crypto::seed_thread`]), so that a run replays byte for byte.
const RUN_SEED: u64 = 0x0a7e_5eed;
/// The seed of the per-process templates' random bytes: a template is the same in every
/// process, and making it draws nothing from the run that asked for it.
const TEMPLATE_SEED: u64 = 0x7e3b_1a7e;

/// One of three databases.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Db {
    /// "alpha"
    A,
    /// "beta"
    B,
    /// "gamma"
    C,
}

impl Db {
    const ALL: [Db; 3] = [Db::A, Db::B, Db::C];

    fn name(self) -> &'static str {
        match self {
            Db::A => "alpha",
            Db::B => "beta",
            Db::C => "gamma",
        }
    }
}

/// The KMS faults the language can inject.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// ServiceUnavailable.
    Unavailable,
    /// Throttling.
    Throttled,
    /// AccessDenied.
    AccessDenied,
    /// An error atrest has no name for.
    Unrecognized,
}

impl FaultKind {
    fn fault(self) -> Fault {
        match self {
            FaultKind::Unavailable => Fault::Unavailable,
            FaultKind::Throttled => Fault::Throttled,
            FaultKind::AccessDenied => Fault::AccessDenied,
            FaultKind::Unrecognized => Fault::Unrecognized,
        }
    }

    fn matches(self, e: &KmsError) -> bool {
        matches!(
            (self, e),
            (FaultKind::Unavailable, KmsError::Unavailable(_))
                | (FaultKind::Throttled, KmsError::Throttled(_))
                | (FaultKind::AccessDenied, KmsError::AccessDenied(_))
                | (FaultKind::Unrecognized, KmsError::Unrecognized(_))
        )
    }
}

/// One step. Keys are one byte, so operations collide on the same records often.
#[derive(Clone, Debug)]
pub enum Op {
    /// Store `value` under `key`.
    Put { db: Db, key: u8, value: Vec<u8> },
    /// Delete `key`.
    Delete { db: Db, key: u8 },
    /// Puts (`Some`) and deletes (`None`) applied atomically.
    Batch(Vec<(Db, u8, Option<Vec<u8>>)>),
    /// Read `key`.
    Get { db: Db, key: u8 },
    /// Scan a database, or the keys of one first byte.
    Scan { db: Db, first: Option<u8> },
    /// Close the store and open it again.
    Reopen,
    /// Master-key rotation.
    RotateMaster,
    /// CMK rotation to a new key.
    RotateCmk,
    /// New key material for the current CMK, in the KMS.
    RotateKeyOnDemand,
    /// Disable one of the CMKs created so far.
    DisableCmk { which: u8 },
    /// Enable one of the CMKs created so far.
    EnableCmk { which: u8 },
    /// Move time forward by `days` (0–255) and run what is due.
    Tick { days: u8 },
    /// Take a snapshot.
    Snapshot,
    /// Restore one of the snapshots taken so far.
    Restore { which: u8 },
    /// New data key for a database.
    RollDataKey { db: Db },
    /// Fail the next `calls` (1–4) KMS calls.
    Fault { calls: u8, kind: FaultKind },
    /// Atlas's validity check (control level; the store-level runner skips it).
    ValidityCheck,
    /// The next operation stops at its `at % 8 + 1`th durable step or KMS call, as a kill
    /// there would (see [`crate::crash`]); the store (or the root) is then opened again
    /// and must hold the records, keys and project state from before that operation or
    /// from after it.
    Crash { at: u8 },
}

/// Makes one kind of operation from fuzzer bytes.
type MakeOp = fn(&mut Unstructured<'_>) -> arbitrary::Result<Op>;

/// Each kind of operation and how often it comes up, out of the weights' sum. Data
/// operations come up most and those that close or replace a RocksDB (reopen, snapshot,
/// restore, a crash) least, as storage engines weight their own metamorphic tests: a
/// sequence then carries data across its rotations and restarts, and a second of fuzzing
/// runs more steps (opening a RocksDB costs as much as a hundred data operations).
const OP_WEIGHTS: [(u32, MakeOp); 18] = [
    (12, |u| {
        Ok(Op::Put {
            db: u.arbitrary()?,
            key: u.arbitrary()?,
            value: u.arbitrary()?,
        })
    }),
    (4, |u| {
        Ok(Op::Delete {
            db: u.arbitrary()?,
            key: u.arbitrary()?,
        })
    }),
    (6, |u| Ok(Op::Batch(u.arbitrary()?))),
    (8, |u| {
        Ok(Op::Get {
            db: u.arbitrary()?,
            key: u.arbitrary()?,
        })
    }),
    (4, |u| {
        Ok(Op::Scan {
            db: u.arbitrary()?,
            first: u.arbitrary()?,
        })
    }),
    (3, |_| Ok(Op::RotateMaster)),
    (3, |_| Ok(Op::RotateCmk)),
    (2, |_| Ok(Op::RotateKeyOnDemand)),
    (2, |u| {
        Ok(Op::DisableCmk {
            which: u.arbitrary()?,
        })
    }),
    (2, |u| {
        Ok(Op::EnableCmk {
            which: u.arbitrary()?,
        })
    }),
    (3, |u| {
        Ok(Op::Tick {
            days: u.arbitrary()?,
        })
    }),
    (2, |u| Ok(Op::RollDataKey { db: u.arbitrary()? })),
    (3, |u| {
        Ok(Op::Fault {
            calls: u.arbitrary()?,
            kind: u.arbitrary()?,
        })
    }),
    (2, |_| Ok(Op::ValidityCheck)),
    (1, |_| Ok(Op::Reopen)),
    (2, |_| Ok(Op::Snapshot)),
    (1, |u| {
        Ok(Op::Restore {
            which: u.arbitrary()?,
        })
    }),
    (2, |u| Ok(Op::Crash { at: u.arbitrary()? })),
];

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let total: u32 = OP_WEIGHTS.iter().map(|(weight, _)| weight).sum();
        let mut pick = u.int_in_range(0..=total - 1)?;
        for (weight, make) in OP_WEIGHTS {
            if pick < weight {
                return make(u);
            }
            pick -= weight;
        }
        Err(arbitrary::Error::IncorrectFormat)
    }
}

/// `ops` as Rust source: a `vec![...]` of operations that a test can paste and hand to
/// [`run`] or [`run_control`] (with `Op`, `Db` and `FaultKind` in scope).
pub fn to_rust(ops: &[Op]) -> String {
    let bytes = |v: &[u8]| format!("vec!{v:?}");
    let db = |d: &Db| format!("Db::{d:?}");
    let op = |op: &Op| match op {
        Op::Put { db: d, key, value } => {
            format!(
                "Op::Put {{ db: {}, key: {key}, value: {} }}",
                db(d),
                bytes(value)
            )
        }
        Op::Delete { db: d, key } => format!("Op::Delete {{ db: {}, key: {key} }}", db(d)),
        Op::Get { db: d, key } => format!("Op::Get {{ db: {}, key: {key} }}", db(d)),
        Op::Scan { db: d, first } => format!("Op::Scan {{ db: {}, first: {first:?} }}", db(d)),
        Op::RollDataKey { db: d } => format!("Op::RollDataKey {{ db: {} }}", db(d)),
        Op::Batch(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(d, key, value)| {
                    let value = value
                        .as_ref()
                        .map_or("None".to_string(), |v| format!("Some({})", bytes(v)));
                    format!("({}, {key}, {value})", db(d))
                })
                .collect();
            format!("Op::Batch(vec![{}])", entries.join(", "))
        }
        Op::Fault { calls, kind } => {
            format!("Op::Fault {{ calls: {calls}, kind: FaultKind::{kind:?} }}")
        }
        other => format!("Op::{other:?}"),
    };
    let lines: Vec<String> = ops.iter().map(|o| format!("    {},\n", op(o))).collect();
    format!("vec![\n{}]", lines.concat())
}

/// Decodes operations from arbitrary bytes (at most `max` of them).
pub fn decode(data: &[u8], max: usize) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < max && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

fn record_key(key: u8) -> Vec<u8> {
    vec![b'k', key, b'.']
}

/// The batch `entries` describe: puts (`Some`) and deletes (`None`).
fn write_batch(entries: &[(Db, u8, Option<Vec<u8>>)]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (db, key, value) in entries {
        match value {
            Some(v) => batch.put(db.name(), record_key(*key), v.as_slice()),
            None => batch.delete(db.name(), record_key(*key)),
        };
    }
    batch
}

/// The model's side of a write that succeeded: Put, Delete or Batch.
fn apply_write(data: &mut Records, op: &Op) {
    let mut apply = |db: Db, key: u8, value: Option<&Vec<u8>>| match value {
        Some(v) => data.insert((db, key), v.clone()),
        None => data.remove(&(db, key)),
    };
    match op {
        Op::Put { db, key, value } => {
            apply(*db, *key, Some(value));
        }
        Op::Delete { db, key } => {
            apply(*db, *key, None);
        }
        Op::Batch(entries) => {
            for (db, key, value) in entries {
                apply(*db, *key, value.as_ref());
            }
        }
        _ => {}
    }
}

/// The model's records of `db` (only keys starting with `first`, if given), in the order
/// a scan returns them.
fn model_records(data: &Records, db: Db, first: Option<u8>) -> Vec<KeyValue> {
    data.iter()
        .filter(|((d, k), _)| *d == db && first.is_none_or(|b| b == *k))
        .map(|((_, k), v)| (record_key(*k), v.clone()))
        .collect()
}

/// Every database, read back with `read`, holds exactly the model's records.
fn matches_model(
    data: &Records,
    mut read: impl FnMut(&str) -> Result<Vec<KeyValue>, String>,
) -> Result<(), String> {
    for db in Db::ALL {
        let got = read(db.name())?;
        let want = model_records(data, db, None);
        if got != want {
            return Err(format!(
                "{} holds {} records, the model {}",
                db.name(),
                got.len(),
                want.len()
            ));
        }
    }
    Ok(())
}

/// Every record the model holds.
type Records = BTreeMap<(Db, u8), Vec<u8>>;

/// A snapshot as the model remembers it: id, records, CMK.
#[derive(Clone)]
struct ModelSnapshot {
    id: String,
    records: Records,
    cmk: String,
}

/// The model: what the store must hold and which calls must fail.
struct Model {
    data: Records,
    open: bool,
    /// The CMK wrapping the store's master key.
    cmk: String,
    /// Every CMK created, and whether it is enabled.
    cmks: Vec<(String, bool)>,
    on_demand: HashMap<String, u32>,
    snapshots: Vec<ModelSnapshot>,
    faults: Option<(u64, FaultKind)>,
    master_created: Timestamp,
}

impl Model {
    fn enabled(&self, cmk: &str) -> bool {
        self.cmks.iter().any(|(k, on)| k == cmk && *on)
    }

    /// The fault the next KMS call will hit, consuming it.
    fn take_fault(&mut self) -> Option<FaultKind> {
        let (left, kind) = self.faults?;
        self.faults = (left > 1).then_some((left - 1, kind));
        Some(kind)
    }
}

/// Disables or enables the `which`th CMK created so far, in the KMS and in `cmks` (each
/// CMK and whether it is enabled): what `DisableCmk` and `EnableCmk` do in both runners.
fn switch_cmk(
    admin: &LocalKmsClient,
    cmks: &mut [(String, bool)],
    which: u8,
    enable: bool,
) -> Result<(), String> {
    let count = cmks.len().max(1);
    let Some((cmk, enabled)) = cmks.get_mut(usize::from(which) % count) else {
        return Ok(());
    };
    if enable {
        admin.enable_key(cmk)
    } else {
        admin.disable_key(cmk)
    }
    .map_err(|e| e.to_string())?;
    *enabled = enable;
    Ok(())
}

/// An outcome the model predicts for a KMS-using operation.
enum Expect {
    Ok,
    Fault(FaultKind),
    Disabled(String),
}

fn check_kms_error(
    step: usize,
    op: &Op,
    expect: &Expect,
    err: Option<&KmsError>,
    shown: &str,
) -> Result<(), String> {
    let ok = match (expect, err) {
        (Expect::Fault(kind), Some(e)) => kind.matches(e),
        (Expect::Disabled(cmk), Some(KmsError::Disabled(m))) => m.contains(cmk.as_str()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("step {step} {op:?}: unexpected error {shown}"))
    }
}
