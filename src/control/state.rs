//! The root's saved shapes: `atrest.json` (settings and the project's control state) and
//! `clock.json` (emulator time), and how they are read and written.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::project::ProjectState;
use super::ControlError;
use crate::clock::Timestamp;
use crate::durable::write_atomic;
use crate::keys::MAX_DATA_KEY_USES;
use crate::store::{DataKeyLimits, S3Location, DEFAULT_MASTER_KEY_ROTATION_DAYS};

/// The settings file's format version this atrest reads and writes.
const SETTINGS_FORMAT: u32 = 2;

impl Settings {
    /// The format version this atrest reads and writes.
    pub const FORMAT: u32 = SETTINGS_FORMAT;
}

/// Settings of a root, saved in `atrest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    /// The settings file's format version.
    pub format: u32,
    /// The AWS account of the project's keys.
    pub account: String,
    /// The region of the project (and of its KMS endpoint).
    pub region: String,
    /// The IAM principal atrest calls the KMS as when no access role is in use.
    pub principal: String,
    /// The project's CMK, as its ARN.
    pub cmk: String,
    #[serde(default, skip_serializing_if = "KmsSettings::is_local")]
    /// Which KMS holds the CMK.
    pub kms: KmsSettings,
    /// A CMK rotation that has started and not yet reached every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmk_rotation: Option<CmkRotation>,
    #[serde(flatten)]
    /// How often keys below the CMK are replaced.
    pub rotation: RotationSettings,
    #[serde(default)]
    /// Which snapshots to keep.
    pub snapshot_retention: Retention,
    #[serde(default, skip_serializing_if = "SnapshotSettings::is_local")]
    /// Where snapshots live.
    pub snapshots: SnapshotSettings,
    /// The Atlas project: users, roles, encryption config, clusters, checks, alerts.
    pub project: ProjectState,
}

/// Which KMS holds the project's CMK.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KmsSettings {
    /// The root's embedded LocalKms.
    #[default]
    Local,
    /// AWS KMS, or an endpoint speaking its protocol, through the AWS SDK.
    Aws(AwsSettings),
}

/// Where AwsKms calls. Credentials come from the usual chain (environment, profile, SSO,
/// ...), or from the project's access role; none is stored in the root.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AwsSettings {
    /// An endpoint URL instead of AWS's; also used for STS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl KmsSettings {
    pub(super) fn is_local(&self) -> bool {
        *self == KmsSettings::Local
    }

    pub(super) fn endpoint(&self) -> String {
        match self {
            KmsSettings::Local => "embedded".into(),
            KmsSettings::Aws(aws) => aws.endpoint.clone().unwrap_or_else(|| "AWS".into()),
        }
    }
}

/// Where a root's snapshots live.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SnapshotSettings {
    /// `ROOT/snapshots/`.
    #[default]
    Local,
    /// An S3 bucket (or an S3-compatible store) in the project's region, through the AWS
    /// SDK with credentials from the usual chain; none is stored in the root.
    S3(S3Settings),
}

impl SnapshotSettings {
    fn is_local(&self) -> bool {
        *self == SnapshotSettings::Local
    }
}

/// Where in S3 a root's snapshots live.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket and key prefix.
    #[serde(flatten)]
    pub location: S3Location,
    /// An endpoint URL instead of AWS's (moto, MinIO, ...); addressed path-style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl std::fmt::Display for SnapshotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotSettings::Local => write!(f, "local"),
            SnapshotSettings::S3(s3) => match &s3.endpoint {
                Some(endpoint) => write!(f, "{} (endpoint {endpoint})", s3.location),
                None => write!(f, "{}", s3.location),
            },
        }
    }
}

/// Which snapshots to keep; applied by `snapshot retention` and by `tick`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many, the newest.
    pub keep: Option<usize>,
    /// Delete snapshots older than this many days.
    pub max_age_days: Option<u64>,
}

impl Retention {
    /// Whether the policy deletes every snapshot it meets (keep 0, or a maximum age of 0
    /// days).
    pub fn keeps_nothing(&self) -> bool {
        self.keep == Some(0) || self.max_age_days == Some(0)
    }
}

/// A CMK rotation under way: both keys must stay usable until it is done.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CmkRotation {
    /// The CMK being replaced.
    pub from: String,
    /// The CMK replacing it.
    pub to: String,
    /// When the rotation started.
    pub started: Timestamp,
}

/// How often keys below the CMK are replaced.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RotationSettings {
    /// Automatic master-key rotation period; 0 turns it off. Atlas uses 90.
    pub master_key_rotation_days: u64,
    /// Seals per data key before a new one takes over.
    pub data_key_max_uses: u64,
    /// Age in days after which a data key is replaced; `None`: no age limit.
    #[serde(default)]
    pub data_key_max_age_days: Option<u64>,
}

impl Default for RotationSettings {
    fn default() -> Self {
        RotationSettings {
            master_key_rotation_days: DEFAULT_MASTER_KEY_ROTATION_DAYS,
            data_key_max_uses: DataKeyLimits::default().max_uses,
            data_key_max_age_days: None,
        }
    }
}

/// `clock.json`: how far emulator time runs ahead of real time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct ClockFile {
    pub(super) offset_ms: u64,
}

/// The settings at `path`, or `None` before `init`.
pub(super) fn read_settings(path: &Path) -> Result<Option<Settings>, ControlError> {
    let Some(bytes) = read_bytes(path)? else {
        return Ok(None);
    };
    let wrong_format = |found: u64| ControlError::SettingsFormat {
        path: path.to_path_buf(),
        found: u32::try_from(found).unwrap_or(u32::MAX),
        expected: SETTINGS_FORMAT,
    };
    // Parsed once; only a file that does not parse is read again, for its format alone,
    // so that another version's file is named as such rather than as corrupt.
    let settings: Settings = match serde_json::from_slice(&bytes) {
        Ok(settings) => settings,
        Err(source) => {
            #[derive(Deserialize)]
            struct FormatOnly {
                format: Option<u64>,
            }
            return Err(match serde_json::from_slice::<FormatOnly>(&bytes) {
                Ok(FormatOnly {
                    format: Some(found),
                }) if found != u64::from(SETTINGS_FORMAT) => wrong_format(found),
                _ => ControlError::SettingsCorrupt {
                    path: path.to_path_buf(),
                    source,
                },
            });
        }
    };
    if settings.format != SETTINGS_FORMAT {
        return Err(wrong_format(u64::from(settings.format)));
    }
    settings
        .check()
        .map_err(|reason| ControlError::InvalidSettings {
            path: path.to_path_buf(),
            reason,
        })?;
    Ok(Some(settings))
}

impl Settings {
    /// The limits every reader relies on, checked once at load: an edit by hand that
    /// breaks one is an error naming it, never a panic or a silent no-op later.
    fn check(&self) -> Result<(), String> {
        for (name, config) in &self.project.clusters {
            if !(1..=50).contains(&config.spec.nodes) {
                return Err(format!(
                    "cluster {name} has {} nodes; a cluster has 1 to 50",
                    config.spec.nodes
                ));
            }
        }
        if self.project.validity.interval_minutes == 0 {
            return Err("the validity check interval is 0 minutes; it is at least 1".into());
        }
        if self.rotation.data_key_max_uses == 0
            || self.rotation.data_key_max_uses > MAX_DATA_KEY_USES
        {
            return Err(format!(
                "data keys may be used {} times; the limit is 1 to 2^32 (random 96-bit nonces)",
                self.rotation.data_key_max_uses
            ));
        }
        Ok(())
    }
}

/// The bytes at `path`, or `None` when there is no file.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, ControlError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ControlError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, ControlError> {
    let Some(bytes) = read_bytes(path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ControlError::SettingsCorrupt {
            path: path.to_path_buf(),
            source,
        })
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ControlError> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|source| ControlError::SettingsCorrupt {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, &bytes).map_err(|source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    })
}
