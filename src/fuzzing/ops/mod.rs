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

pub use control::run_control;
use scratch::{Scratch, Template};

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
#[derive(Arbitrary, Clone, Debug)]
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

/// The seed of every run's KMS: each draws the same first CMK, so the store the template
/// holds (its master key wrapped under that CMK) opens in every run.
const KMS_SEED: u64 = 0x00a7_5e57;

/// What a store-level run starts from: a clock, a KMS (seeded, with faults injectable),
/// the store options, and the first CMK.
struct Start {
    clock: Arc<ManualClock>,
    local: Arc<LocalKms>,
    admin: LocalKmsClient,
    faulty: Arc<FaultyKms>,
    options: StoreOptions,
    first: String,
}

impl Start {
    fn new() -> Result<Self, String> {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let local = LocalKms::in_memory_with(clock.clone(), Entropy::Seeded(KMS_SEED));
        let caller =
            Caller::account_root("111122223333", "us-east-1").map_err(|e| e.to_string())?;
        let admin = local.client(caller);
        let faulty = Arc::new(FaultyKms::new(Arc::new(admin.clone())));
        let options = StoreOptions {
            clock: clock.clone(),
            data_key_limits: DataKeyLimits {
                max_uses: 5,
                reservation: 2,
                max_age: Some(days(30)),
            },
            master_key_rotation: Some(days(90)),
            ..StoreOptions::default()
        };
        let first = new_cmk(&admin).map_err(|e| e.to_string())?;
        Ok(Start {
            clock,
            local,
            admin,
            faulty,
            options,
            first,
        })
    }
}

fn new_cmk(admin: &LocalKmsClient) -> Result<String, KmsError> {
    admin.create_key(CreateKeyRequest::default()).map(|m| m.arn)
}

/// A new store with a column family for each of the three databases, as every run starts:
/// made once per process (creating a RocksDB and its column families costs more than most
/// sequences), then written out for each run.
fn store_template() -> Result<&'static Template, String> {
    static TEMPLATE: std::sync::OnceLock<Result<Template, String>> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let start = Start::new()?;
            let scratch = Scratch::new("ops-template");
            let store = Store::create(
                scratch.0.join("store"),
                start.faulty.clone(),
                &start.first,
                start.options.clone(),
            )
            .map_err(|e| format!("create: {e}"))?;
            for db in Db::ALL {
                store
                    .put(db.name(), b"template", b"")
                    .and_then(|()| store.delete(db.name(), b"template"))
                    .map_err(|e| e.to_string())?;
            }
            drop(store);
            Template::capture(&scratch.0).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `ops` against the store and the model; `Err` describes the first divergence.
pub fn run(ops: &[Op]) -> Result<(), String> {
    let scratch = Scratch::new("ops");
    let dir = scratch.0.clone();
    let Start {
        clock,
        local,
        admin,
        faulty,
        options,
        first,
    } = Start::new()?;
    store_template()?
        .write_to(&dir)
        .map_err(|e| format!("writing the template: {e}"))?;
    let store_path = dir.join("store");
    let mut store = Some(
        Store::open(&store_path, faulty.clone(), &first, options.clone())
            .map_err(|e| format!("open: {e}"))?,
    );
    let storage = LocalDirStorage::new(dir.join("snapshots")).map_err(|e| e.to_string())?;
    let mut model = Model {
        data: BTreeMap::new(),
        open: true,
        cmk: first.clone(),
        cmks: vec![(first, true)],
        on_demand: HashMap::new(),
        snapshots: Vec::new(),
        faults: None,
        master_created: clock.now(),
    };

    for (step, op) in ops.iter().enumerate() {
        let fail = |what: String| format!("step {step} {op:?}: {what}");
        // Operations on records need an open store; the model knows whether it is.
        let needs_store = matches!(
            op,
            Op::Put { .. }
                | Op::Delete { .. }
                | Op::Batch(_)
                | Op::Get { .. }
                | Op::Scan { .. }
                | Op::RotateMaster
                | Op::RotateCmk
                | Op::Snapshot
                | Op::RollDataKey { .. }
        );
        if needs_store && !model.open {
            continue;
        }
        match op {
            Op::Put { db, key, value } => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                s.put(db.name(), &record_key(*key), value)
                    .map_err(|e| fail(e.to_string()))?;
                apply_write(&mut model.data, op);
            }
            Op::Delete { db, key } => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                s.delete(db.name(), &record_key(*key))
                    .map_err(|e| fail(e.to_string()))?;
                apply_write(&mut model.data, op);
            }
            Op::Batch(entries) => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                s.write(&write_batch(entries))
                    .map_err(|e| fail(e.to_string()))?;
                apply_write(&mut model.data, op);
            }
            Op::Get { db, key } => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                let got = s
                    .get(db.name(), &record_key(*key))
                    .map_err(|e| fail(e.to_string()))?;
                if got.as_ref() != model.data.get(&(*db, *key)) {
                    return Err(fail(format!(
                        "read {got:?}, model has {:?}",
                        model.data.get(&(*db, *key))
                    )));
                }
            }
            Op::Scan { db, first } => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                let range = match first {
                    Some(b) => KeyRange::Prefix(vec![b'k', *b]),
                    None => KeyRange::All,
                };
                let got: Vec<(Vec<u8>, Vec<u8>)> = s
                    .scan(db.name(), range)
                    .map_err(|e| fail(e.to_string()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| fail(e.to_string()))?;
                let want = model_records(&model.data, *db, *first);
                if got != want {
                    return Err(fail(format!(
                        "scan gave {} records, model has {}",
                        got.len(),
                        want.len()
                    )));
                }
            }
            Op::Reopen => {
                store = None;
                let expect = match model.take_fault() {
                    Some(kind) => Expect::Fault(kind),
                    None if !model.enabled(&model.cmk) => Expect::Disabled(model.cmk.clone()),
                    None => Expect::Ok,
                };
                match (
                    Store::open(&store_path, faulty.clone(), &model.cmk, options.clone()),
                    &expect,
                ) {
                    (Ok(s), Expect::Ok) => {
                        store = Some(s);
                        model.open = true;
                    }
                    (Ok(_), _) => {
                        return Err(fail("opened, but the model predicts an error".into()))
                    }
                    (Err(e), _) => {
                        check_kms_error(step, op, &expect, e.kms_error(), &e.to_string())?;
                        model.open = false;
                    }
                }
            }
            Op::RotateMaster | Op::RotateCmk => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                let target = if matches!(op, Op::RotateCmk) {
                    let cmk = new_cmk(&admin).map_err(|e| fail(e.to_string()))?;
                    model.cmks.push((cmk.clone(), true));
                    cmk
                } else {
                    model.cmk.clone()
                };
                let expect = match model.take_fault() {
                    Some(kind) => Expect::Fault(kind),
                    None if !model.enabled(&target) => Expect::Disabled(target.clone()),
                    None => Expect::Ok,
                };
                let result = match op {
                    Op::RotateCmk => s.rewrap_master_key(&target),
                    _ => s.rotate_master_key().map(|_| ()),
                };
                match (result, &expect) {
                    (Ok(()), Expect::Ok) => {
                        if matches!(op, Op::RotateMaster) {
                            model.master_created = clock.now();
                        }
                        model.cmk = target;
                    }
                    (Ok(()), _) => {
                        return Err(fail("rotated, but the model predicts an error".into()))
                    }
                    (Err(e), _) => {
                        check_kms_error(step, op, &expect, e.kms_error(), &e.to_string())?
                    }
                }
            }
            Op::RotateKeyOnDemand => {
                let count = model.on_demand.entry(model.cmk.clone()).or_default();
                let enabled = model.cmks.iter().any(|(k, on)| *k == model.cmk && *on);
                match (
                    admin.rotate_key_on_demand(&model.cmk),
                    enabled,
                    *count >= 10,
                ) {
                    (Ok(_), true, false) => *count += 1,
                    (Err(KmsError::Disabled(_)), false, _)
                    | (Err(KmsError::LimitExceeded(_)), true, true) => {}
                    (r, _, _) => return Err(fail(format!("RotateKeyOnDemand gave {r:?}"))),
                }
            }
            Op::DisableCmk { which } | Op::EnableCmk { which } => {
                let index = *which as usize % model.cmks.len();
                let cmk = model.cmks[index].0.clone();
                let enable = matches!(op, Op::EnableCmk { .. });
                let result = if enable {
                    admin.enable_key(&cmk)
                } else {
                    admin.disable_key(&cmk)
                };
                result.map_err(|e| fail(e.to_string()))?;
                model.cmks[index].1 = enable;
            }
            Op::Tick { days: n } => {
                clock.advance(days(u64::from(*n)));
                local.tick().map_err(|e| fail(e.to_string()))?;
                if let (true, Some(s)) = (model.open, store.as_ref()) {
                    let due = clock.now().since(model.master_created) >= days(90);
                    let expect = match due.then(|| model.take_fault()) {
                        None => Expect::Ok,
                        Some(Some(kind)) => Expect::Fault(kind),
                        Some(None) if !model.enabled(&model.cmk) => {
                            Expect::Disabled(model.cmk.clone())
                        }
                        Some(None) => Expect::Ok,
                    };
                    match (s.tick(), &expect) {
                        (Ok(report), Expect::Ok) => {
                            if report.master_key_rotated_to.is_some() != due {
                                return Err(fail(format!("tick rotated: {report:?}, due: {due}")));
                            }
                            if due {
                                model.master_created = clock.now();
                            }
                        }
                        (Ok(_), _) => {
                            return Err(fail(
                                "tick succeeded, but the model predicts an error".into(),
                            ))
                        }
                        (Err(e), _) => {
                            check_kms_error(step, op, &expect, e.kms_error(), &e.to_string())?
                        }
                    }
                }
            }
            Op::Snapshot => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                let expect = match model.take_fault() {
                    Some(kind) => Expect::Fault(kind),
                    None if !model.enabled(&model.cmk) => Expect::Disabled(model.cmk.clone()),
                    None => Expect::Ok,
                };
                match (s.create_snapshot(&storage, &mut |_| {}), &expect) {
                    (Ok(info), Expect::Ok) => {
                        if info.cmk_arn != model.cmk {
                            return Err(fail(format!(
                                "snapshot under {}, model says {}",
                                info.cmk_arn, model.cmk
                            )));
                        }
                        model.snapshots.push(ModelSnapshot {
                            id: info.id,
                            records: model.data.clone(),
                            cmk: model.cmk.clone(),
                        });
                    }
                    (Ok(_), _) => {
                        return Err(fail(
                            "snapshot taken, but the model predicts an error".into(),
                        ))
                    }
                    (Err(e), _) => {
                        check_kms_error(step, op, &expect, e.kms_error(), &e.to_string())?
                    }
                }
            }
            Op::Restore { which } => {
                if model.snapshots.is_empty() {
                    continue;
                }
                let chosen = &model.snapshots[*which as usize % model.snapshots.len()];
                let (id, data, snapshot_cmk) = (
                    chosen.id.clone(),
                    chosen.records.clone(),
                    chosen.cmk.clone(),
                );
                store = None;
                model.open = false;
                let expect = match model.take_fault() {
                    Some(kind) => Expect::Fault(kind),
                    None if !model.enabled(&snapshot_cmk) => Expect::Disabled(snapshot_cmk.clone()),
                    // The snapshot's CMK opens the staged copy (more calls) before the
                    // target's CMK re-keys it.
                    None => match model.take_fault() {
                        Some(kind) => Expect::Fault(kind),
                        None if !model.enabled(&model.cmk) => Expect::Disabled(model.cmk.clone()),
                        None => Expect::Ok,
                    },
                };
                let target = RestoreTarget {
                    path: &store_path,
                    kms: faulty.clone(),
                    cmk: &model.cmk,
                    region: "us-east-1",
                    options: options.clone(),
                };
                match (
                    restore_snapshot(&storage, &id, faulty.clone(), target),
                    &expect,
                ) {
                    (Ok(s), Expect::Ok) => {
                        store = Some(s);
                        model.open = true;
                        model.data = data;
                        model.master_created = clock.now();
                    }
                    (Ok(_), _) => {
                        return Err(fail("restored, but the model predicts an error".into()))
                    }
                    (Err(SnapshotError::CmkDisabled { cmk, .. }), Expect::Disabled(want))
                        if cmk == *want => {}
                    (Err(e), _) => {
                        check_kms_error(step, op, &expect, e.kms_error(), &e.to_string())?
                    }
                }
            }
            Op::RollDataKey { db } => {
                let s = store.as_ref().ok_or_else(|| fail("no store".into()))?;
                s.roll_data_key(db.name())
                    .map_err(|e| fail(e.to_string()))?;
            }
            Op::Fault { calls, kind } => {
                let calls = u64::from(calls % 4 + 1);
                faulty.fail_next(calls, kind.fault());
                model.faults = Some((calls, *kind));
            }
            Op::ValidityCheck => {}
        }
        // After every step, every readable value equals the model's.
        if let (true, Some(s)) = (model.open, store.as_ref()) {
            matches_model(&model.data, |db| {
                s.scan(db, KeyRange::All)
                    .map_err(|e| e.to_string())?
                    .collect::<Result<_, StoreError>>()
                    .map_err(|e| e.to_string())
            })
            .map_err(fail)?;
        }
    }
    drop(store);
    drop(scratch);
    Ok(())
}
