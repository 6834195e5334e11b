//! What emulator time makes due, run by `tick`: KMS events, the validity check, master-key
//! rotation and data-key rollover on every node, the CMK rotation reminder, retention.

use std::time::Duration;

use serde::Serialize;

use std::fmt;

use super::project::Alert;
use super::state::Settings;
use super::validity::CheckOutcome;
use super::{ControlError, Root, ALERT_MASTER_KEY_ROTATED, ALERT_NEEDS_ROTATION};
use crate::clock::{days, Clock, Timestamp};

/// What [`Root::tick`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RootTick {
    /// KMS events applied: key deletions and material rotations.
    pub kms_events: usize,
    /// The validity check, when one was due.
    pub check: Option<CheckOutcome>,
    /// Master keys rotated by age: (cluster, node, new version).
    pub master_keys_rotated: Vec<(String, String, u32)>,
    /// Data keys rolled over by age: (cluster, node, database).
    pub data_keys_rolled: Vec<(String, String, String)>,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// Clusters whose nodes could not open (cannot unwrap their master keys), and why.
    pub clusters_down: Vec<String>,
    /// Snapshots deleted by retention.
    pub snapshots_deleted: Vec<String>,
}

impl fmt::Display for RootTick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KMS: applied {} due event(s) (deletions, material rotations)",
            self.kms_events
        )?;
        if let Some(check) = &self.check {
            write!(f, "\nvalidity check: {check}")?;
        }
        for (cluster, node, v) in &self.master_keys_rotated {
            write!(f, "\n{cluster} {node}: master key rotated to version {v}")?;
        }
        for (cluster, node, db) in &self.data_keys_rolled {
            write!(
                f,
                "\n{cluster} {node}: database {db:?} rolled over to a new data key"
            )?;
        }
        for alert in &self.alerts {
            write!(f, "\nALERT {}: {}", alert.event_type_name, alert.text)?;
        }
        for down in &self.clusters_down {
            write!(f, "\ndown: {down}")?;
        }
        for id in &self.snapshots_deleted {
            write!(f, "\nretention: deleted snapshot {id}")?;
        }
        Ok(())
    }
}

impl Root {
    /// Sets how often `tick` runs the validity check and when the rotation reminder fires.
    pub fn set_schedules(
        &self,
        check_interval_minutes: Option<u64>,
        rotation_reminder_days: Option<u64>,
    ) -> Result<(), ControlError> {
        self.transact(|s| {
            if let Some(m) = check_interval_minutes {
                s.project.validity.interval_minutes = m.max(1);
            }
            if let Some(d) = rotation_reminder_days {
                s.project.rotation_reminder_days = d;
                // Once the project keeps its own alert configurations, the reminder's
                // period is theirs.
                for config in s.project.alert_configs.iter_mut().flatten() {
                    if config.event_type_name == ALERT_NEEDS_ROTATION {
                        config.threshold_days = Some(d.max(1));
                    }
                }
            }
            Ok(())
        })
    }

    /// Runs what emulator time has made due: KMS deletions and material rotations, the
    /// validity check (every `interval_minutes`), each node's master-key rotation and
    /// data-key rollover, the CMK rotation reminder, and snapshot retention.
    pub fn tick(&self) -> Result<RootTick, ControlError> {
        let settings = self.settings()?;
        let embedded = settings.as_ref().is_none_or(|s| s.kms.is_local());
        let mut report = RootTick {
            kms_events: if embedded {
                self.local_kms().tick()?
            } else {
                0
            },
            ..RootTick::default()
        };
        let Some(settings) = settings else {
            return Ok(report);
        };
        let now = self.clock.now();
        let alerts_before = settings.project.alerts.len();
        let interval = Duration::from_secs(
            settings
                .project
                .validity
                .interval_minutes
                .saturating_mul(60),
        );
        let due = settings
            .project
            .validity
            .last_check
            .is_none_or(|last| now.since(last) >= interval);
        if due {
            report.check = Some(self.check()?);
        }
        let settings = self.require_settings()?;
        let mut rotated = Vec::new();
        if settings.project.validity.shut_down.is_none() {
            for name in settings.project.clusters.keys() {
                let ticks = self.cluster(Some(name)).and_then(|cluster| cluster.tick());
                // A node that cannot unwrap its master key (the KMS unreachable, the key
                // disabled since the last check) is down; the validity check deals with it.
                let ticks = match ticks {
                    Err(e) if e.kms_error().is_some() => {
                        report.clusters_down.push(format!("{name}: {e}"));
                        continue;
                    }
                    other => other?,
                };
                for (node, tick) in ticks.into_iter().enumerate() {
                    let node = format!("node-{node}");
                    if let Some(version) = tick.master_key_rotated_to {
                        rotated.push((name.clone(), node.clone(), version));
                    }
                    for db in tick.data_keys_rolled {
                        report
                            .data_keys_rolled
                            .push((name.clone(), node.clone(), db));
                    }
                }
            }
        }
        let period = settings.rotation.master_key_rotation_days;
        let alerts = self.transact(|s| {
            for (cluster, node, version) in &rotated {
                s.project.raise(
                    ALERT_MASTER_KEY_ROTATED,
                    now,
                    format!("cluster {cluster} {node}: master key rotated to version {version} (automatic, every {period} days); no record rewritten"),
                );
            }
            remind_rotation(s, now);
            Ok(s.project.alerts.get(alerts_before..).unwrap_or_default().to_vec())
        })?;
        report.master_keys_rotated = rotated;
        report.alerts = alerts;
        report.snapshots_deleted = self.apply_retention(settings.snapshot_retention)?;
        Ok(report)
    }
}

/// Raises AWS_ENCRYPTION_KEY_NEEDS_ROTATION once the CMK is older than the reminder period
/// (the shortest of the enabled configurations that raise it).
fn remind_rotation(settings: &mut Settings, now: Timestamp) {
    let encryption = &settings.project.encryption;
    let age = now.since(encryption.cmk_set_at);
    let Some(period) = settings.project.reminder_days() else {
        return;
    };
    if !encryption.enabled || encryption.rotation_reminded || age < days(period) {
        return;
    }
    let text = format!(
        "the project's CMK {} was set {}, {} days ago: rotate it by pointing the project at a new CMK",
        settings.cmk,
        encryption.cmk_set_at,
        age.as_secs() / 86_400
    );
    settings.project.encryption.rotation_reminded = true;
    settings.project.raise(ALERT_NEEDS_ROTATION, now, text);
}
