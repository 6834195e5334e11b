//! The control plane against its model: validity checks, shutdown, the queue, recovery.

use super::*;

/// What the control plane must show: the cluster's records, whether it is shut down,
/// the changes queued, the master-key version of its node.
#[derive(Clone)]
struct ControlModel {
    data: Records,
    shut_down: bool,
    queued: u32,
    master_version: u32,
    cmk: String,
    cmks: Vec<(String, bool)>,
    /// A CMK rotation recorded but not finished: retried by the next RotateCmk.
    rotating_to: Option<String>,
    faults: Option<(u64, FaultKind)>,
}

impl ControlModel {
    fn enabled(&self, cmk: &str) -> bool {
        self.cmks.iter().any(|(k, on)| k == cmk && *on)
    }

    fn take_fault(&mut self) -> Option<FaultKind> {
        let (left, kind) = self.faults?;
        self.faults = (left > 1).then_some((left - 1, kind));
        Some(kind)
    }

    /// What asking the root for the cluster must give: it is shut down; or, if it is
    /// `held` open already, it is simply handed out; or its node is opened, unwrapping its
    /// master key through the (faulty) KMS under the project's CMK.
    fn expect_cluster(&mut self, held: bool) -> ControlExpect {
        match (self.shut_down, held) {
            (true, _) => ControlExpect::ShutDown,
            (false, true) => ControlExpect::Kms(Expect::Ok),
            (false, false) => self.expect_open(),
        }
    }

    /// What opening the cluster must give: it is shut down; or its node unwraps its
    /// master key through the (faulty) KMS under the project's CMK.
    fn expect_open(&mut self) -> ControlExpect {
        if self.shut_down {
            return ControlExpect::ShutDown;
        }
        match self.take_fault() {
            Some(kind) => ControlExpect::Kms(Expect::Fault(kind)),
            None if !self.enabled(&self.cmk) => {
                ControlExpect::Kms(Expect::Disabled(self.cmk.clone()))
            }
            None => ControlExpect::Kms(Expect::Ok),
        }
    }
}

enum ControlExpect {
    ShutDown,
    Kms(Expect),
}

/// Checks that `result` is what `expect` says; `Ok(Some(value))` when it succeeded.
fn control_outcome<T>(
    step: usize,
    op: &Op,
    expect: &ControlExpect,
    result: Result<T, crate::control::ControlError>,
) -> Result<Option<T>, String> {
    use crate::control::ControlError;
    match (result, expect) {
        (Ok(v), ControlExpect::Kms(Expect::Ok)) => Ok(Some(v)),
        (Ok(_), _) => Err(format!(
            "step {step} {op:?}: succeeded, but the model predicts an error"
        )),
        (Err(ControlError::ShutDown { .. }), ControlExpect::ShutDown) => Ok(None),
        (Err(e), ControlExpect::Kms(kms)) => {
            check_kms_error(step, op, kms, e.kms_error(), &e.to_string()).map(|()| None)
        }
        (Err(e), ControlExpect::ShutDown) => {
            Err(format!("step {step} {op:?}: expected a shutdown, got {e}"))
        }
    }
}

/// A root with a project and a single-node encrypted cluster whose three databases have
/// their column families, as every run starts: made once per process, written out for each.
fn root_template() -> Result<&'static Template, String> {
    use crate::control::{InitOptions, Root};

    static TEMPLATE: scratch::Once = scratch::Once::new();
    Template::once(&TEMPLATE, "control-template", |dir| {
        let root = Root::open(dir).map_err(|e| e.to_string())?;
        root.init(&InitOptions {
            nodes: 1,
            ..InitOptions::default()
        })
        .map_err(|e| format!("init: {e}"))?;
        let cluster = root.cluster(None).map_err(|e| e.to_string())?;
        for db in Db::ALL {
            cluster
                .put(db.name(), b"template", b"")
                .and_then(|()| cluster.delete(db.name(), b"template"))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// The root at `dir`, as a process opens it, its KMS calls through `faulty`'s schedule.
fn open_root(
    dir: &std::path::Path,
    faulty: &Arc<FaultyKms>,
) -> Result<crate::control::Root, String> {
    let mut root = crate::control::Root::open(dir).map_err(|e| e.to_string())?;
    let schedule = faulty.clone();
    root.wrap_kms(Arc::new(move |inner| {
        Arc::new(schedule.sharing_schedule(inner))
    }));
    Ok(root)
}

/// The model once `op`, stopped by a crash, left the root as `root` (opened again) finds
/// it: the project and the node are as they were `before` the operation or as it would
/// have left them (`during`: the model as the operation had advanced it), and each is
/// taken as found. A new process has no injected faults. With the model, the cluster it
/// opened to look, if it could, for the run to keep as it keeps any it opened.
fn after_crash(
    root: &crate::control::Root,
    faulty: &FaultyKms,
    before: ControlModel,
    during: ControlModel,
    op: &Op,
) -> Result<(ControlModel, Option<Arc<crate::control::cluster::Cluster>>), String> {
    faulty.heal();
    let settings = root.require_settings().map_err(|e| e.to_string())?;
    let mut model = ControlModel {
        faults: None,
        cmks: during.cmks.clone(),
        ..before.clone()
    };
    // Shutdown and the queue move only with a validity check or a queued rotation.
    model.shut_down = settings.project.validity.shut_down.is_some();
    if model.shut_down != before.shut_down && !matches!(op, Op::ValidityCheck) {
        return Err(format!(
            "shut down {} after a crash, {} before",
            model.shut_down, before.shut_down
        ));
    }
    model.queued = u32::try_from(settings.project.queue.len()).unwrap_or(u32::MAX);
    if model.queued > before.queued + 1 {
        return Err(format!(
            "{} changes queued after a crash, {} before",
            model.queued, before.queued
        ));
    }
    // The project names the old CMK or the new one; a rotation it recorded is retried.
    let target = during.rotating_to.clone();
    if settings.cmk != before.cmk && Some(&settings.cmk) != target.as_ref() {
        return Err(format!(
            "the project names {} after a crash, {} before",
            settings.cmk, before.cmk
        ));
    }
    model.cmk = settings.cmk.clone();
    model.rotating_to = match (&settings.cmk_rotation, target) {
        (Some(rotation), _) => Some(rotation.to.clone()),
        (None, Some(t)) if t != model.cmk => Some(t),
        _ => None,
    };
    if model.shut_down || !model.enabled(&model.cmk) {
        return Ok((model, None));
    }
    // The node: every record opens, and they are those from before the operation or
    // those it was writing; its master key was rotated or not (a queued rotation applied
    // by a check, or asked for).
    let cluster = root
        .cluster(None)
        .map_err(|e| format!("the cluster does not open: {e}"))?;
    let mut found = Records::new();
    for db in Db::ALL {
        for (key, value) in cluster
            .records(db.name(), KeyRange::All)
            .map_err(|e| e.to_string())?
        {
            let [b'k', k, b'.'] = key[..] else {
                return Err(format!("a record under a key no operation writes: {key:?}"));
            };
            found.insert((db, k), value);
        }
    }
    let mut after = before.data.clone();
    apply_write(&mut after, op);
    if found != before.data && found != after {
        return Err(format!(
            "{} records, neither the {} from before nor the {} after",
            found.len(),
            before.data.len(),
            after.len()
        ));
    }
    model.data = found;
    let version = cluster
        .first_store(|s| s.status().master_key_version)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if version < before.master_version || version > before.master_version + before.queued + 1 {
        return Err(format!(
            "master key version {version} after a crash, {} before",
            before.master_version
        ));
    }
    model.master_version = version;
    Ok((model, Some(cluster)))
}

/// Runs `ops` against a root (project, CMK, one single-node encrypted cluster, KMS faults
/// injected through [`Root::wrap_kms`](crate::control::Root::wrap_kms)) and the model:
/// validity checks must shut the cluster down exactly when the key is unusable (disabled,
/// or access denied), leave it up when the KMS is unreachable, queue master-key rotations
/// meanwhile and apply them at the next good check; every record must survive. A crash
/// (`Op::Crash`) stops the next operation at a durable step or KMS call; the root is then
/// opened again as a new process would, and must hold the project and the node as they
/// were before that operation or as it would have left them. `Err` describes the first
/// divergence.
pub fn run_control(ops: &[Op]) -> Result<(), String> {
    use crate::control::{Applied, CheckOutcome, Root};
    use crate::crash;

    let _seeded = crate::crypto::seed_thread(RUN_SEED);
    let scratch = Scratch::new("control");
    root_template()?
        .write_to(&scratch.0)
        .map_err(|e| format!("writing the template: {e}"))?;
    let admin = Root::open(&scratch.0)
        .and_then(|root| root.kms_client(None, None))
        .map_err(|e| e.to_string())?;
    let faulty = Arc::new(FaultyKms::new(Arc::new(admin.clone())));
    let mut root = open_root(&scratch.0, &faulty)?;
    let first = root
        .settings()
        .map_err(|e| e.to_string())?
        .map(|s| s.cmk)
        .unwrap_or_default();
    let mut model = ControlModel {
        data: BTreeMap::new(),
        shut_down: false,
        queued: 0,
        master_version: 1,
        cmk: first.clone(),
        cmks: vec![(first, true)],
        rotating_to: None,
        faults: None,
    };

    // The cluster stays open between steps, as a program using it keeps it (opening a
    // node costs more than most steps); `Reopen` closes it.
    let mut held = None;
    let mut pending_crash = None;
    for (step, op) in ops.iter().enumerate() {
        let fail = |what: String| format!("step {step} {op:?}: {what}");
        if let Op::Crash { at } = op {
            pending_crash = Some(u64::from(at % 8) + 1);
            continue;
        }
        let before = pending_crash.map(|_| model.clone());
        let armed = pending_crash.take().map(|at| crash::arm(Some(at)));
        let outcome = (|| -> Result<(), String> {
            match op {
                Op::Put { .. }
                | Op::Delete { .. }
                | Op::Batch(_)
                | Op::Get { .. }
                | Op::Scan { .. }
                | Op::Reopen
                | Op::RollDataKey { .. } => {
                    if matches!(op, Op::Reopen) {
                        held = None;
                    }
                    let expect = model.expect_cluster(held.is_some());
                    let Some(cluster) = control_outcome(step, op, &expect, root.cluster(None))?
                    else {
                        return Ok(());
                    };
                    held = Some(cluster.clone());
                    let result = match op {
                        Op::Put { db, key, value } => {
                            cluster.put(db.name(), &record_key(*key), value)
                        }
                        Op::Delete { db, key } => cluster.delete(db.name(), &record_key(*key)),
                        Op::Batch(entries) => cluster.write(&write_batch(entries)),
                        Op::RollDataKey { db } => cluster
                            .each_store(|store| store.roll_data_key(db.name()))
                            .map(|_| ()),
                        _ => Ok(()),
                    };
                    result.map_err(|e| fail(e.to_string()))?;
                    apply_write(&mut model.data, op);
                }
                Op::RotateMaster => {
                    let expect = if model.shut_down {
                        ControlExpect::Kms(Expect::Ok)
                    } else {
                        model.expect_open()
                    };
                    match control_outcome(step, op, &expect, root.rotate_master_key(None))? {
                        Some(Applied::Queued) if model.shut_down => model.queued += 1,
                        Some(Applied::Done(_)) if !model.shut_down => model.master_version += 1,
                        Some(other) => return Err(fail(format!("gave {other:?}"))),
                        None => {}
                    }
                }
                Op::RotateCmk => {
                    let target = match &model.rotating_to {
                        Some(t) => t.clone(),
                        None => {
                            let created = admin
                                .create_key(CreateKeyRequest::default())
                                .map_err(|e| fail(e.to_string()))?;
                            model.cmks.push((created.arn.clone(), true));
                            created.arn
                        }
                    };
                    // The new key is checked as the role (DescribeKey, Encrypt, Decrypt), then
                    // the node's master key is unwrapped under the old one and re-wrapped.
                    let expect = if model.shut_down {
                        ControlExpect::ShutDown
                    } else {
                        match model.take_fault() {
                            Some(kind) => ControlExpect::Kms(Expect::Fault(kind)),
                            None if !model.enabled(&target) => {
                                ControlExpect::Kms(Expect::Disabled(target.clone()))
                            }
                            None => {
                                model.rotating_to = Some(target.clone());
                                model.expect_cluster(held.is_some())
                            }
                        }
                    };
                    if control_outcome(step, op, &expect, root.set_key(&target))?.is_some() {
                        model.cmk = target;
                        model.rotating_to = None;
                    }
                }
                Op::DisableCmk { which } | Op::EnableCmk { which } => {
                    let enable = matches!(op, Op::EnableCmk { .. });
                    switch_cmk(&admin, &mut model.cmks, *which, enable).map_err(fail)?;
                }
                Op::Fault { calls, kind } => {
                    let calls = u64::from(calls % 4 + 1);
                    faulty.fail_next(calls, kind.fault());
                    model.faults = Some((calls, *kind));
                }
                Op::ValidityCheck => {
                    let outcome = root.check().map_err(|e| fail(e.to_string()))?;
                    let fault = model.take_fault();
                    match (fault, &outcome) {
                        (
                            Some(
                                FaultKind::Unavailable
                                | FaultKind::Throttled
                                | FaultKind::Unrecognized,
                            ),
                            CheckOutcome::Inconclusive { .. },
                        ) => {}
                        (Some(FaultKind::AccessDenied), CheckOutcome::Invalid { .. }) => {
                            model.shut_down = true
                        }
                        (None, CheckOutcome::Invalid { reason, .. })
                            if !model.enabled(&model.cmk) =>
                        {
                            if !reason.contains(&model.cmk) {
                                return Err(fail(format!(
                                    "the reason does not name the key: {reason}"
                                )));
                            }
                            model.shut_down = true;
                        }
                        (None, CheckOutcome::Valid { applied, restored })
                            if model.enabled(&model.cmk) =>
                        {
                            if *applied != model.queued as usize
                                || restored.is_empty() == model.shut_down
                            {
                                return Err(fail(format!(
                                    "{outcome:?}, model: {} queued, shut down {}",
                                    model.queued, model.shut_down
                                )));
                            }
                            model.master_version += model.queued;
                            model.queued = 0;
                            model.shut_down = false;
                        }
                        _ => {
                            return Err(fail(format!(
                                "check gave {outcome:?}, fault {fault:?}, key enabled {}",
                                model.enabled(&model.cmk)
                            )))
                        }
                    }
                }
                Op::RotateKeyOnDemand
                | Op::Tick { .. }
                | Op::Snapshot
                | Op::Restore { .. }
                | Op::Crash { .. } => {}
            }
            Ok(())
        })();
        match (armed.as_ref().and_then(crash::Armed::crashed), before) {
            (Some(crashed), Some(before)) => {
                // What the process held dies with it; nothing it drops reaches the disk.
                drop(held.take());
                drop(root);
                drop(armed);
                root = open_root(&scratch.0, &faulty).map_err(&fail)?;
                (model, held) = after_crash(&root, &faulty, before, model, op)
                    .map_err(|e| fail(format!("after {crashed}: {e}")))?;
            }
            _ => {
                drop(armed);
                outcome?;
            }
        }
        // After every step: what can be read equals the model, or the shutdown says why.
        if model.faults.is_none() && (model.shut_down || model.enabled(&model.cmk)) {
            match root.cluster(None) {
                Err(crate::control::ControlError::ShutDown { .. }) if model.shut_down => {}
                Err(e) => return Err(fail(format!("reading back: {e}"))),
                Ok(_) if model.shut_down => {
                    return Err(fail(
                        "the cluster opened while the model says it is shut down".into(),
                    ))
                }
                Ok(cluster) => {
                    matches_model(&model.data, |db| {
                        cluster
                            .records(db, KeyRange::All)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(fail)?;
                    let version = cluster
                        .first_store(|s| s.status().master_key_version)
                        .map_err(|e| fail(e.to_string()))?;
                    if version != Some(model.master_version) {
                        return Err(fail(format!(
                            "master key {version:?}, model {}",
                            model.master_version
                        )));
                    }
                    held = Some(cluster);
                }
            }
        }
    }
    drop(held);
    drop(root);
    drop(scratch);
    Ok(())
}
