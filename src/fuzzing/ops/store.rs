//! The store-level runner: one node's store against the model, every rotation, snapshot
//! and restore checked, and crashes at chosen steps survived.

use super::*;
use crate::crash;

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
            // A run's few records need no more; a cache this small is one shard, which
            // RocksDB builds in a fraction of the default 32 MiB's 64 at every open.
            block_cache_bytes: 1 << 20,
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
    static TEMPLATE: scratch::Once = scratch::Once::new();
    Template::once(&TEMPLATE, "ops-template", |dir| {
        let start = Start::new()?;
        let store = Store::create(
            dir.join("store"),
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
        Ok(())
    })
}

/// Runs `ops` against the store and the model; `Err` describes the first divergence.
pub fn run(ops: &[Op]) -> Result<(), String> {
    let _seeded = crate::crypto::seed_thread(RUN_SEED);
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
    let mut pending_crash = None;
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
        if let Op::Crash { at } = op {
            pending_crash = Some(u64::from(at % 8) + 1);
            continue;
        }
        if needs_store && !model.open {
            continue;
        }
        let before = pending_crash.map(|_| model.data.clone());
        let armed = pending_crash.take().map(|at| crash::arm(Some(at)));
        let outcome = (|| -> Result<(), String> {
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
                    let enable = matches!(op, Op::EnableCmk { .. });
                    switch_cmk(&admin, &mut model.cmks, *which, enable).map_err(fail)?;
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
                                    return Err(fail(format!(
                                        "tick rotated: {report:?}, due: {due}"
                                    )));
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
                        return Ok(());
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
                        None if !model.enabled(&snapshot_cmk) => {
                            Expect::Disabled(snapshot_cmk.clone())
                        }
                        // The snapshot's CMK opens the staged copy (more calls) before the
                        // target's CMK re-keys it.
                        None => match model.take_fault() {
                            Some(kind) => Expect::Fault(kind),
                            None if !model.enabled(&model.cmk) => {
                                Expect::Disabled(model.cmk.clone())
                            }
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
                Op::ValidityCheck | Op::Crash { .. } => {}
            }
            Ok(())
        })();
        match (armed.as_ref().and_then(crash::Armed::crashed), before) {
            (Some(crashed), Some(before)) => {
                // What the process held dies with it; nothing it drops reaches the disk.
                drop(store.take());
                drop(armed);
                store = reopen_after_crash(&mut model, &faulty, &store_path, &options, before, op)
                    .map_err(|e| fail(format!("after {crashed}: {e}")))?;
            }
            _ => {
                drop(armed);
                outcome?;
            }
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

/// After a crash in the middle of `op`: opens the store again as the next process would
/// (under the CMK it names, which is the model's or the one a CMK rotation was moving to)
/// and checks that it holds the records from `before` the operation or those it was
/// writing or restoring, then makes the model what the store is. `None` when the model
/// predicts that the store cannot open (its CMK is disabled).
fn reopen_after_crash(
    model: &mut Model,
    faulty: &Arc<FaultyKms>,
    path: &std::path::Path,
    options: &StoreOptions,
    before: Records,
    op: &Op,
) -> Result<Option<Store>, String> {
    faulty.heal();
    model.faults = None;
    let open = |cmk: &str| Store::open(path, faulty.clone(), cmk, options.clone());
    let store = match open(&model.cmk) {
        Err(StoreError::WrongCmk { expected, .. })
            if model.cmks.iter().any(|(k, _)| *k == expected) =>
        {
            model.cmk = expected;
            open(&model.cmk)
        }
        other => other,
    };
    let store = match store {
        Ok(store) => store,
        Err(e)
            if !model.enabled(&model.cmk)
                && matches!(e.kms_error(), Some(KmsError::Disabled(_))) =>
        {
            model.open = false;
            return Ok(None);
        }
        Err(e) => return Err(format!("the store does not open: {e}")),
    };
    let status = store.status();
    if status.cmk_arn != model.cmk {
        return Err(format!(
            "opened under {}, wrapped by {}",
            model.cmk, status.cmk_arn
        ));
    }
    model.master_created = status.master_key_created;
    model.open = true;
    let mut found = Records::new();
    for db in Db::ALL {
        let records = store
            .scan(db.name(), KeyRange::All)
            .map_err(|e| e.to_string())?
            .collect::<Result<Vec<KeyValue>, _>>()
            .map_err(|e| e.to_string())?;
        for (key, value) in records {
            let [b'k', k, b'.'] = key[..] else {
                return Err(format!("a record under a key no operation writes: {key:?}"));
            };
            found.insert((db, k), value);
        }
    }
    let mut after = before.clone();
    apply_write(&mut after, op);
    let restored = match op {
        Op::Restore { which } if !model.snapshots.is_empty() => model
            .snapshots
            .get(*which as usize % model.snapshots.len())
            .map(|s| s.records.clone()),
        _ => None,
    };
    if found == before || found == after || Some(&found) == restored.as_ref() {
        model.data = found;
        Ok(Some(store))
    } else {
        Err(format!(
            "the store holds {} records, neither the {} from before nor the {} after",
            found.len(),
            before.len(),
            after.len()
        ))
    }
}
