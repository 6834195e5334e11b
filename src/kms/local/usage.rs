//! GetKeyLastUsage: the last successful cryptographic operation with each key, which is how
//! a user learns whether an old CMK is still in use before deleting it.
//!
//! Recording a use must not cost a state-file write per Encrypt, so uses are kept in
//! memory and written with the next change to the state, or once the oldest unwritten one
//! is a minute old on the emulator clock, or when the LocalKms is dropped. In one process
//! the answer is exact; another process sees a use within that minute (AWS's own
//! tracking is eventually consistent too).

use super::*;

/// How long a use may wait in memory before a call writes it out.
const WRITE_AFTER_MS: u64 = 60_000;

/// A key's last use, as the state file keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(super) struct StoredUsage {
    pub(super) operation: String,
    pub(super) at: Timestamp,
}

/// Uses not yet in the state file, by key id.
#[derive(Default)]
pub(super) struct PendingUses(Mutex<BTreeMap<String, StoredUsage>>);

impl PendingUses {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredUsage>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn record(&self, key_id: &str, operation: &str, at: Timestamp) {
        self.lock().insert(
            key_id.to_string(),
            StoredUsage {
                operation: operation.to_string(),
                at,
            },
        );
    }

    /// Whether a use has waited long enough to be written by the call at `now`.
    pub(super) fn due(&self, now: Timestamp) -> bool {
        self.lock()
            .values()
            .any(|u| now.as_millis().saturating_sub(u.at.as_millis()) >= WRITE_AFTER_MS)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Moves every pending use into `state` (a later use of a key replaces an earlier).
    pub(super) fn drain_into(&self, state: &mut State) {
        for (id, usage) in std::mem::take(&mut *self.lock()) {
            if let Some(key) = state.keys.get_mut(&id) {
                if key.last_usage.as_ref().is_none_or(|u| u.at <= usage.at) {
                    key.last_usage = Some(usage);
                }
            }
        }
    }

    /// The newer of `stored` and this process's pending use of `key_id`.
    fn newest(&self, key_id: &str, stored: Option<&StoredUsage>) -> Option<StoredUsage> {
        let pending = self.lock().get(key_id).cloned();
        match (stored, pending) {
            (Some(s), Some(p)) if s.at > p.at => Some(s.clone()),
            (_, Some(p)) => Some(p),
            (s, None) => s.cloned(),
        }
    }
}

/// What GetKeyLastUsage answers, with AWS's member names.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct KeyLastUsageReport {
    /// The key's ARN.
    pub key_id: String,
    /// The last successful cryptographic operation, absent if none since tracking began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_last_usage: Option<KeyLastUsage>,
    /// When tracking began: LocalKms tracks every key from its creation.
    #[serde(serialize_with = "epoch_seconds")]
    pub tracking_start_date: Timestamp,
    /// When the key was made.
    #[serde(serialize_with = "epoch_seconds")]
    pub key_creation_date: Timestamp,
}

/// One use of a key.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct KeyLastUsage {
    /// The operation (`Encrypt`, `Decrypt`, `GenerateDataKey`, `ReEncrypt`, ...).
    pub operation: String,
    /// When.
    #[serde(serialize_with = "epoch_seconds")]
    pub timestamp: Timestamp,
}

impl LocalKmsClient {
    /// GetKeyLastUsage: the key's last successful cryptographic operation.
    pub fn get_key_last_usage(&self, key_id: &str) -> Result<KeyLastUsageReport, KmsError> {
        self.kms.read(|state, _| {
            let key =
                state.authorized(&self.caller, key_id, MANAGE, "kms:GetKeyLastUsage", None)?;
            let usage = self
                .kms
                .uses
                .newest(&key.storage_key(), key.last_usage.as_ref());
            Ok(KeyLastUsageReport {
                key_id: key.arn(),
                key_last_usage: usage.map(|u| KeyLastUsage {
                    operation: u.operation,
                    timestamp: u.at,
                }),
                tracking_start_date: key.created,
                key_creation_date: key.created,
            })
        })
    }

    /// Notes a successful cryptographic operation with `key` (not for dry runs).
    pub(super) fn used(&self, key: &KeyRecord, operation: &str, at: Timestamp) {
        if !self.dry_run {
            self.kms.uses.record(&key.storage_key(), operation, at);
        }
    }
}
