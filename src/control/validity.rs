//! Validity checks and what follows from them: a shutdown of the encrypted clusters when the
//! key goes bad, recovery when it is good again, and the queue of changes made meanwhile.

use serde::Serialize;

use std::fmt;

use super::events::{
    EVENT_CLUSTER_CREATED, EVENT_CLUSTER_UPDATE_COMPLETED, EVENT_KEY_INVALID, EVENT_KEY_VALID,
};
use super::project::QueuedChange;
use super::rules::check_context;
use super::state::Settings;
use super::{ControlError, Root, ALERT_KEY_INVALID, ALERT_KMS_UNREACHABLE};
use crate::clock::{Clock, Timestamp};
use crate::crash::{reach, CrashPoint};
use crate::kms::{KeyState, Kms, KmsError};

/// A change that was made now, or queued because the project's clusters are shut down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "result")]
pub enum Applied<T> {
    /// Done.
    Done(T),
    /// Waiting in the queue for the next good validity check.
    Queued,
}

/// The verdict of a validity check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "result"
)]
pub enum CheckOutcome {
    /// Encryption at rest is not configured: nothing to check.
    NotConfigured,
    /// DescribeKey, Encrypt and Decrypt succeeded as the role.
    Valid {
        /// Clusters brought back from a shutdown.
        restored: Vec<String>,
        /// Queued changes applied.
        applied: usize,
    },
    /// The key is unusable: the encrypted clusters are shut down.
    Invalid {
        /// Why.
        reason: String,
        /// The clusters shut down.
        shut_down: Vec<String>,
    },
    /// No verdict on the key: the KMS could not be reached, throttled the check, or failed
    /// in a way that says nothing about the key. An alert, nothing shut down.
    Inconclusive {
        /// Why.
        reason: String,
    },
}

impl<T> Applied<T> {
    /// The same outcome with the result of a done change mapped by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Applied<U> {
        match self {
            Applied::Done(t) => Applied::Done(f(t)),
            Applied::Queued => Applied::Queued,
        }
    }
}

impl fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckOutcome::NotConfigured => {
                write!(f, "encryption at rest is not configured; nothing to check")
            }
            CheckOutcome::Valid { restored, applied } if restored.is_empty() => write!(
                f,
                "valid: DescribeKey, Encrypt and Decrypt succeeded ({applied} queued change(s) applied)"
            ),
            CheckOutcome::Valid { restored, applied } => write!(
                f,
                "valid again: clusters {restored:?} are back (every node's master key unwrapped again); {applied} queued change(s) applied"
            ),
            CheckOutcome::Invalid { reason, shut_down } => write!(
                f,
                "INVALID: {reason}; clusters {shut_down:?} are shut down, nothing is lost"
            ),
            CheckOutcome::Inconclusive { reason } => write!(
                f,
                "no verdict on the key: {reason}; alert raised, nothing shut down"
            ),
        }
    }
}

impl Root {
    /// The validity check (Atlas's "Try Again"): DescribeKey, then an Encrypt/Decrypt round
    /// trip, as the project's role. A disabled, deleted or no-longer-authorized key shuts the
    /// encrypted clusters down and raises an alert; a KMS that cannot be reached, or fails
    /// in a way that says nothing about the key, raises an alert and shuts nothing down; a
    /// good check brings the clusters back and applies the
    /// changes queued meanwhile. A failure that says nothing about the key (the root's
    /// settings unreadable, a KMS backend this build lacks) is an error of the check, and
    /// changes nothing.
    pub fn check(&self) -> Result<CheckOutcome, ControlError> {
        let settings = self.require_settings()?;
        let now = self.clock.now();
        if !settings.project.encryption.enabled {
            self.transact(|s| {
                s.project.validity.last_check = Some(now);
                Ok(())
            })?;
            return Ok(CheckOutcome::NotConfigured);
        }
        let key = settings.cmk.clone();
        let verdict = match self.kms_for(&settings, settings.project.kms_caller()) {
            Ok(kms) => round_trip(kms.as_ref(), &key),
            // Reaching the KMS as the role failed (credentials, STS): a verdict on access.
            Err(ControlError::Kms(e)) => Err(e),
            Err(other) => return Err(other),
        };
        let (outcome, queue) = self.transact(|s| Ok(record_verdict(s, &key, verdict, now)))?;
        self.apply_queue(queue)?;
        Ok(outcome)
    }

    /// Whether the project's key passes the validity check's calls right now, as Atlas's
    /// API computes `valid`: nothing is recorded and nothing shut down (that is the next
    /// [`Root::check`]'s). A KMS that gives no verdict on the key leaves the last check's.
    pub fn key_is_valid(&self) -> Result<bool, ControlError> {
        let settings = self.require_settings()?;
        let encryption = &settings.project.encryption;
        if !encryption.enabled {
            return Ok(false);
        }
        let verdict = match self.kms_for(&settings, settings.project.kms_caller()) {
            Ok(kms) => round_trip(kms.as_ref(), &settings.cmk),
            Err(ControlError::Kms(e)) => Err(e),
            Err(other) => return Err(other),
        };
        Ok(match verdict {
            Ok(()) => true,
            Err(e) if !e.is_verdict_on_key() => encryption.valid,
            Err(_) => false,
        })
    }

    /// Queues `change` while the project's clusters are shut down; else applies it now.
    pub(super) fn submit(
        &self,
        change: QueuedChange,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<Applied<Vec<u32>>, ControlError> {
        let queued = self.transact(|s| {
            let down = s.project.validity.shut_down.is_some();
            if down {
                s.project.queue.push(change.clone());
            }
            Ok(down)
        })?;
        if queued {
            return Ok(Applied::Queued);
        }
        self.apply(change, progress).map(Applied::Done)
    }

    /// Applies the queued changes, in order, each leaving the saved queue only once it is
    /// done: a failure, or a crash, leaves it and those after it queued for the next check.
    fn apply_queue(&self, queue: Vec<QueuedChange>) -> Result<(), ControlError> {
        for change in queue {
            self.apply(change.clone(), &mut |_, _| {})?;
            self.transact(|s| {
                if let Some(at) = s.project.queue.iter().position(|c| *c == change) {
                    s.project.queue.remove(at);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Runs one change; for a master-key rotation, the new version of each node.
    fn apply(
        &self,
        change: QueuedChange,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<Vec<u32>, ControlError> {
        let event = match &change {
            QueuedChange::CreateCluster { spec } => {
                Some((EVENT_CLUSTER_CREATED, spec.name.clone()))
            }
            QueuedChange::EnableEncryption { cluster }
            | QueuedChange::DisableEncryption { cluster } => {
                Some((EVENT_CLUSTER_UPDATE_COMPLETED, cluster.clone()))
            }
            QueuedChange::RotateMasterKey { .. } => None,
        };
        let done = match change {
            QueuedChange::CreateCluster { spec } => self.build_cluster(spec).map(|()| Vec::new()),
            QueuedChange::EnableEncryption { cluster } => {
                self.rewrite(&cluster, true, progress).map(|()| Vec::new())
            }
            QueuedChange::DisableEncryption { cluster } => {
                self.rewrite(&cluster, false, progress).map(|()| Vec::new())
            }
            QueuedChange::RotateMasterKey { cluster } => self.rotate_now(&cluster),
        }?;
        if let Some((event, cluster)) = event {
            let now = self.clock.now();
            self.transact(|s| {
                s.project.record(event, now, Some(&cluster), None);
                Ok(())
            })?;
        }
        Ok(done)
    }
}

/// Records the verdict on `key` in the project: validity, shutdown or recovery, alerts.
/// Returns the outcome, and the queued changes to apply now that the clusters are back
/// (they stay queued until each is done).
fn record_verdict(
    settings: &mut Settings,
    key: &str,
    verdict: Result<(), KmsError>,
    now: Timestamp,
) -> (CheckOutcome, Vec<QueuedChange>) {
    let encrypted = settings.project.encrypted_clusters();
    let project = &mut settings.project;
    project.validity.last_check = Some(now);
    if settings.cmk != key {
        // The project moved to another key while this check ran: the verdict is not its.
        let reason = format!(
            "the project's key changed to {} during the check",
            settings.cmk
        );
        return (CheckOutcome::Inconclusive { reason }, Vec::new());
    }
    match verdict {
        Ok(()) => {
            if !project.encryption.valid || project.validity.shut_down.is_some() {
                project.record(EVENT_KEY_VALID, now, None, None);
            }
            project.encryption.valid = true;
            project.validity.unreachable_since = None;
            let was_down = project.validity.shut_down.take().is_some();
            let queue = project.queue.clone();
            let outcome = CheckOutcome::Valid {
                restored: if was_down { encrypted } else { Vec::new() },
                applied: queue.len(),
            };
            (outcome, queue)
        }
        Err(e) if !e.is_verdict_on_key() => {
            if project.validity.unreachable_since.is_none() {
                project.validity.unreachable_since = Some(now);
                let failed = if e.is_retryable() {
                    "could not reach the KMS"
                } else {
                    "failed without a verdict on the key"
                };
                project.raise(
                    ALERT_KMS_UNREACHABLE,
                    now,
                    format!("the validity check of {key} {failed} ({e}); nothing was shut down, the check runs again every {} minutes", project.validity.interval_minutes),
                );
            }
            let outcome = CheckOutcome::Inconclusive {
                reason: e.to_string(),
            };
            (outcome, Vec::new())
        }
        Err(e) => {
            if project.encryption.valid {
                project.record(EVENT_KEY_INVALID, now, None, None);
            }
            project.encryption.valid = false;
            project.validity.unreachable_since = None;
            let reason = e.to_string();
            if project.validity.shut_down.is_none() {
                project.raise(
                    ALERT_KEY_INVALID,
                    now,
                    format!("{key} failed its validity check ({reason}); encrypted clusters {encrypted:?} are shut down, nothing is lost: fix the key, then run the validity check again"),
                );
            }
            project.validity.shut_down = Some(reason.clone());
            let outcome = CheckOutcome::Invalid {
                reason,
                shut_down: encrypted,
            };
            (outcome, Vec::new())
        }
    }
}

/// The validity check's calls: DescribeKey (the key must be Enabled), Encrypt, Decrypt.
pub(super) fn round_trip(kms: &dyn Kms, key: &str) -> Result<(), KmsError> {
    let metadata = kms.describe_key(key)?;
    match metadata.key_state {
        KeyState::Enabled => {}
        KeyState::Disabled => {
            return Err(KmsError::Disabled(format!("{} is disabled.", metadata.arn)))
        }
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => {
            return Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                metadata.arn
            )))
        }
        KeyState::PendingImport => {
            return Err(KmsError::InvalidState(format!(
                "{} is pending import.",
                metadata.arn
            )))
        }
    }
    let context = check_context();
    reach(CrashPoint::KmsEncrypt)?;
    let blob = kms.encrypt(key, b"atrest validity check", &context)?;
    reach(CrashPoint::KmsDecrypt)?;
    kms.decrypt(key, &blob.ciphertext_blob, &context)?;
    Ok(())
}
