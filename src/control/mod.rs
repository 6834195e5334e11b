//! The atrest root: one directory holding an Atlas project, its KMS and its clusters.
//!
//! Owns the layout of the root, the settings every command shares, and Atlas's control
//! plane over them: the project's encryption-at-rest configuration and the rules it must
//! pass ([`project`]), clusters of N nodes ([`cluster`]), validity checks that shut the
//! encrypted clusters down when the key goes bad and bring them back when it is good,
//! alerts, snapshots and the emulator clock, so that the CLI and an embedding program
//! open the same things the same way.
//!
//! ```text
//! ROOT/atrest.json                 settings and the project's control state
//! ROOT/clock.json                  emulator time: offset added to real time
//! ROOT/kms/                        LocalKms state (the emulated HSM; owner-only), unless
//!                                  the settings point at AWS KMS or another endpoint
//! ROOT/clusters/NAME/node-K/       each node's RocksDB
//! ROOT/snapshots/                  snapshot files, ID.atrsnap
//! ```

pub mod cluster;
pub mod project;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{days, Clock, OffsetClock, SharedClock, Timestamp};
use crate::durable::write_atomic;
use crate::kms::{
    Caller, CreateKeyRequest, EncryptionContext, KeySpec, KeyState, KeyUsage as KmsKeyUsage, Kms,
    KmsError, LocalKms, LocalKmsClient,
};
use crate::store::{
    list_snapshots, restore_snapshot, snapshot_info, verify_snapshot, DataKeyLimits,
    LocalDirStorage, RestoreTarget, SnapshotError, SnapshotInfo, SnapshotStorage, StoreError,
    StoreOptions, DEFAULT_MASTER_KEY_ROTATION_DAYS,
};

use cluster::{recover_node, Cluster, Gate, NodeOpener, ShutDown};
use project::{
    atlas_id, atlas_region, check_cluster_may_encrypt, check_cluster_name, AccessRole, Alert,
    ClusterConfig, ClusterSpec, KmsAccess, ProjectRole, ProjectState, QueuedChange, User,
    DEFAULT_CLUSTER, DEFAULT_NODES, DEFAULT_OWNER,
};

/// The AWS account `init` uses unless told otherwise.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The AWS region `init` uses unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The alias `init` gives the project's first CMK.
pub const DEFAULT_CMK_ALIAS: &str = "alias/atrest-default";
/// The IAM role `init` authorizes for Atlas in the embedded KMS's account.
pub const DEFAULT_ROLE_NAME: &str = "atlas-kms";
const SETTINGS_FORMAT: u32 = 2;
/// Alert event types, as Atlas names them.
pub const ALERT_NEEDS_ROTATION: &str = "AWS_ENCRYPTION_KEY_NEEDS_ROTATION";
/// The validity check found the key unusable; the encrypted clusters are shut down.
pub const ALERT_KEY_INVALID: &str = "AWS_ENCRYPTION_KEY_INVALID";
/// The validity check could not reach the KMS; nothing was shut down.
pub const ALERT_KMS_UNREACHABLE: &str = "AWS_KMS_UNREACHABLE";
/// A node's master key was rotated.
pub const ALERT_MASTER_KEY_ROTATED: &str = "ENCRYPTION_MASTER_KEY_ROTATED";

#[derive(Debug, thiserror::Error)]
/// Errors of the atrest root: each says what is wrong and what to do.
pub enum ControlError {
    #[error(transparent)]
    /// A KMS call failed.
    Kms(#[from] KmsError),
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
    #[error("{path} is not initialised: run `atrest --root {path} init` first")]
    /// The root has no settings yet.
    NotInitialised { path: PathBuf },
    #[error(
        "{path} is already initialised (its project and clusters exist); use it, or choose another --root"
    )]
    /// `init` was run on a root that already has a project.
    AlreadyInitialised { path: PathBuf },
    #[error("{clusters} exists but {path}/atrest.json does not: an earlier init was interrupted; remove {clusters} and run init again")]
    /// Clusters without settings: an `init` that stopped halfway.
    InterruptedInit { path: PathBuf, clusters: PathBuf },
    #[error("{path} was made by an earlier atrest (settings format {found}, this one reads {expected}); initialise a new root")]
    /// Settings of another format.
    SettingsFormat {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(transparent)]
    /// A snapshot operation failed.
    Snapshot(#[from] SnapshotError),
    #[error("{key} still protects data: snapshots {snapshots:?}, stores {stores:?}; deleting it would make them unreadable for good (pass --force to delete anyway)")]
    /// A CMK is still needed by snapshots or stores.
    KeyInUse {
        key: String,
        snapshots: Vec<String>,
        stores: Vec<String>,
    },
    #[error("a CMK rotation to {to} is in progress; finish it with `atrest project set-key --key {to}` first")]
    /// Another CMK rotation must finish first.
    RotationInProgress { to: String },
    #[error("this root's CMK is in AWS KMS ({endpoint}): `atrest kms` calls only the embedded KMS; manage the key with the AWS CLI or SDK there")]
    /// A LocalKms call on a root whose project uses AwsKms.
    NotLocalKms { endpoint: String },
    #[error(
        "with --kms aws, name the project's CMK with --cmk (a key id, alias or ARN in the region)"
    )]
    /// `init --kms aws` without a CMK.
    CmkRequired,
    #[error("this atrest was built without the `aws` feature; rebuild with it to use AWS KMS")]
    /// The root's settings need a backend this build lacks.
    AwsNotBuilt,
    #[error("{path} is unreadable: {reason}")]
    /// A settings file or directory of the root is unusable.
    Settings { path: PathBuf, reason: String },
    #[error("user {user:?} is not in the project (users: {users:?}); add them with `atrest project add-user`")]
    /// The acting user is not a member.
    UnknownUser { user: String, users: Vec<String> },
    #[error("{action} needs the Project Owner role; {user} is {role}")]
    /// A Project Owner action by someone else.
    NotProjectOwner {
        user: String,
        role: &'static str,
        action: String,
    },
    #[error("no cloud provider access role {role_id}; authorize one with `atrest project authorize-role --iam-role-arn ARN`")]
    /// The encryption config names an unknown access role.
    UnknownAccessRole { role_id: String },
    #[error("no cluster {name:?} (clusters: {clusters:?})")]
    /// No such cluster.
    UnknownCluster { name: String, clusters: Vec<String> },
    #[error("cluster {name:?} exists already")]
    /// The cluster name is taken.
    ClusterExists { name: String },
    #[error(
        "{name:?} is not a cluster name: 1 to 64 letters, digits and '-', not starting with '-'"
    )]
    /// A cluster name Atlas would refuse.
    BadClusterName { name: String },
    #[error("{tier:?} is not an Atlas instance size like M10, M30 or M700")]
    /// A tier that is not `M<n>`.
    BadTier { tier: String },
    #[error("a cluster has 1 to 50 nodes, not {nodes}")]
    /// A node count out of range.
    BadNodeCount { nodes: u32 },
    #[error("cluster {cluster} is {tier}: encryption at rest with customer key management needs M10 or larger")]
    /// M0, M2, M5.
    TierTooSmall { cluster: String, tier: String },
    #[error("cluster {cluster} is a serverless instance: they do not support encryption at rest with customer key management")]
    /// Serverless.
    ServerlessUnsupported { cluster: String },
    #[error("cluster {cluster} uses legacy backups: encryption at rest with customer key management needs Cloud Backups (--backup cloud)")]
    /// Legacy backups.
    LegacyBackup { cluster: String },
    #[error("the project's encryption at rest is not configured: run `atrest project encryption enable --cmk KEY --role-id ID` first")]
    /// A cluster asked for encryption before the project has it.
    ProjectNotConfigured,
    #[error("{key} is {spec}/{usage}: encryption at rest needs a symmetric key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)")]
    /// An asymmetric or HMAC key.
    NotSymmetric {
        key: String,
        spec: String,
        usage: String,
    },
    #[error("{principal} may not call {action} on {key}: grant it kms:DescribeKey, kms:Encrypt and kms:Decrypt in the key policy ({source})")]
    /// The role lacks one of the three permissions Atlas needs.
    MissingPermission {
        principal: String,
        key: String,
        action: &'static str,
        source: KmsError,
    },
    #[error("key {key} is not in account {account}: a key in another account must be given by its full key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) ({source})")]
    /// A bare key id or alias that does not resolve in the role's account.
    NeedsFullArn {
        key: String,
        account: String,
        source: KmsError,
    },
    #[error("every cluster of a project uses the project's key and role ({expected}); {given} is not it")]
    /// A cluster asked for another key or role than the project's.
    NotProjectKey { expected: String, given: String },
    #[error("the project uses role-based access; switching back to credentials (access key id and secret) cannot be done")]
    /// Credentials after a role.
    CredentialsAfterRole,
    #[error("give both --access-key-id and --secret-access-key")]
    /// An access key without its secret.
    IncompleteCredentials,
    #[error("clusters {clusters:?} still use the project's encryption at rest: disable it on them first (`atrest cluster disable-encryption NAME`)")]
    /// The project's encryption cannot be turned off under its clusters.
    EncryptionInUse { clusters: Vec<String> },
    #[error("cluster {cluster} is shut down: the project's key {key} failed its validity check ({reason}). Nothing is lost; fix the key, then run `atrest check` (Atlas's Try Again)")]
    /// The project's encrypted clusters are shut down.
    ShutDown {
        cluster: String,
        key: String,
        reason: String,
    },
    #[error("cluster {cluster} is not encrypted: atrest snapshots (Cloud Backups) are taken of encrypted clusters")]
    /// A snapshot of a plain cluster.
    NotEncrypted { cluster: String },
}

impl ControlError {
    /// The KMS error underneath, if any: its hint says what to do.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            ControlError::Kms(e) => Some(e),
            ControlError::Store(e) => e.kms_error(),
            ControlError::Snapshot(e) => e.kms_error(),
            ControlError::MissingPermission { source, .. }
            | ControlError::NeedsFullArn { source, .. } => Some(source),
            _ => None,
        }
    }
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
    fn is_local(&self) -> bool {
        *self == KmsSettings::Local
    }

    fn endpoint(&self) -> String {
        match self {
            KmsSettings::Local => "embedded".into(),
            KmsSettings::Aws(aws) => aws.endpoint.clone().unwrap_or_else(|| "AWS".into()),
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

/// Who depends on a CMK, and so whether it can be deleted without losing data.
#[derive(Clone, Debug, Serialize)]
pub struct KeyUsage {
    /// The key's ARN.
    pub key_arn: String,
    /// Snapshots encrypted under the key: deleting it makes them unrestorable.
    pub snapshots: Vec<SnapshotInfo>,
    /// Node stores whose master key the key wraps.
    pub stores: Vec<String>,
    /// A CMK rotation that still needs the key.
    pub rotation_in_progress: bool,
    /// True when nothing depends on the key.
    pub safe_to_delete: bool,
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

/// What `init` creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitOptions {
    /// The AWS account the keys belong to.
    pub account: String,
    /// The project's region.
    pub region: String,
    /// Rotation periods and limits.
    pub rotation: RotationSettings,
    /// Which KMS holds the CMK.
    pub kms: KmsSettings,
    /// The project's CMK (id, alias or ARN). Required with AWS KMS; with the embedded KMS,
    /// `None` creates one with alias `alias/atrest-default`.
    pub cmk: Option<String>,
    /// The IAM role Atlas assumes to call the KMS, and its external id. With the
    /// embedded KMS, `None` authorizes `role/atlas-kms` of the account; with AWS KMS,
    /// `None` uses the credential chain as is (credentials-based access).
    pub role: Option<(String, Option<String>)>,
    /// Nodes of the default cluster.
    pub nodes: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            account: DEFAULT_ACCOUNT.to_string(),
            region: DEFAULT_REGION.to_string(),
            rotation: RotationSettings::default(),
            kms: KmsSettings::Local,
            cmk: None,
            role: None,
            nodes: DEFAULT_NODES,
        }
    }
}

/// A change that was made now, or queued because the project's clusters are shut down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "result")]
pub enum Applied<T> {
    /// Done.
    Done(T),
    /// Waiting in the queue for the next good validity check.
    Queued,
}

/// How Atlas reaches the key, as `project encryption enable` is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessRequest {
    /// A cloud provider access role, by its role id.
    Role(String),
    /// Legacy credentials. The secret is required, checked for presence, never stored.
    Credentials {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: zeroize::Zeroizing<String>,
    },
}

/// The verdict of a validity check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
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
    /// The KMS could not be reached: an alert, nothing shut down.
    Unreachable {
        /// Why.
        reason: String,
    },
}

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

/// The project as `atrest project status --json` shows it, in Atlas's shape.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// Atlas's project id.
    pub id: String,
    /// The project's name.
    pub name: String,
    /// The project's region.
    pub region: String,
    /// The user who owns it.
    pub owner: String,
    /// Users and roles.
    pub users: Vec<User>,
    /// Authorized IAM roles.
    pub cloud_provider_access_roles: Vec<AccessRole>,
    /// Encryption at rest, as Atlas's API returns it.
    pub encryption_at_rest: EncryptionAtRestView,
    /// Clusters.
    pub clusters: Vec<ClusterConfig>,
    /// Why the encrypted clusters are shut down, if they are.
    pub shut_down: Option<String>,
    /// Changes queued for the next good check.
    pub queued_changes: Vec<QueuedChange>,
    /// When the last validity check ran.
    pub last_validity_check: Option<Timestamp>,
}

/// `encryptionAtRest` in Atlas's API.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionAtRestView {
    /// The AWS KMS configuration.
    pub aws_kms: AwsKmsView,
}

/// `awsKms` in Atlas's API.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsKmsView {
    /// Whether the project uses it.
    pub enabled: bool,
    #[serde(rename = "customerMasterKeyID")]
    /// The CMK.
    pub customer_master_key_id: String,
    /// The CMK's region, as Atlas writes it (US_EAST_1).
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The access role, in role-based access.
    pub role_id: Option<String>,
    #[serde(rename = "accessKeyID", skip_serializing_if = "Option::is_none")]
    /// The access key id, in credentials-based access.
    pub access_key_id: Option<String>,
    /// The last validity check's verdict.
    pub valid: bool,
    /// Atlas's private-networking switch.
    pub require_private_networking: bool,
}

/// An AwsKms and the role it assumes (`None`: the credential chain as is).
type AwsClient = (Option<String>, Arc<dyn Kms>);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClockFile {
    offset_ms: u64,
}

/// An open root. Commands that only use the KMS work before `init`.
pub struct Root {
    dir: PathBuf,
    clock: Arc<OffsetClock>,
    kms: Arc<LocalKms>,
    /// The AWS client and the role it assumes, made on first use: it resolves credentials
    /// once per process.
    aws: Mutex<Option<AwsClient>>,
    gate: Arc<Gate>,
    wrap: Option<KmsWrapper>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("dir", &self.dir)
            .field("clock_offset", &self.clock.offset())
            .finish_non_exhaustive()
    }
}

/// Wraps the project's KMS client: fault injection, metrics.
pub type KmsWrapper = Arc<dyn Fn(Arc<dyn Kms>) -> Arc<dyn Kms> + Send + Sync>;

impl Root {
    /// Opens the root at `dir`, creating the directory and an empty KMS if absent.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ControlError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| ControlError::Settings {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let offset = match read_json::<ClockFile>(&dir.join("clock.json"))? {
            Some(c) => Duration::from_millis(c.offset_ms),
            None => Duration::ZERO,
        };
        let clock = Arc::new(OffsetClock::new(offset));
        let kms = LocalKms::open(dir.join("kms"), clock.clone() as SharedClock)?;
        let root = Root {
            dir,
            clock,
            kms,
            aws: Mutex::new(None),
            gate: Arc::new(Gate::default()),
            wrap: None,
        };
        if let Some(settings) = root.settings()? {
            root.sync_gate(&settings);
        }
        Ok(root)
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root's emulator clock.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// How far emulator time is ahead of real time.
    pub fn clock_offset(&self) -> Duration {
        self.clock.offset()
    }

    /// Moves emulator time forward by `by`, for this root and every later command.
    pub fn advance_clock(&mut self, by: Duration) -> Result<(), ControlError> {
        let offset = self.clock.offset().saturating_add(by);
        let file = ClockFile {
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
        };
        write_json(&self.dir.join("clock.json"), &file)?;
        self.clock = Arc::new(OffsetClock::new(offset));
        self.kms = LocalKms::open(self.dir.join("kms"), self.clock.clone() as SharedClock)?;
        Ok(())
    }

    /// Passes every KMS client the project's clusters and checks use through `wrap`
    /// (for instance a [`FaultyKms`](crate::kms::FaultyKms), to rehearse outages).
    pub fn wrap_kms(&mut self, wrap: KmsWrapper) {
        self.wrap = Some(wrap);
    }

    /// The root's embedded KMS.
    pub fn local_kms(&self) -> &Arc<LocalKms> {
        &self.kms
    }

    /// The settings, or `None` before `init`.
    pub fn settings(&self) -> Result<Option<Settings>, ControlError> {
        let path = self.settings_path();
        let Some(value) = read_json::<serde_json::Value>(&path)? else {
            return Ok(None);
        };
        if let Some(format) = value.get("format").and_then(|f| f.as_u64()) {
            if format != u64::from(SETTINGS_FORMAT) {
                return Err(ControlError::SettingsFormat {
                    path,
                    found: u32::try_from(format).unwrap_or(u32::MAX),
                    expected: SETTINGS_FORMAT,
                });
            }
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| ControlError::Settings {
                path,
                reason: e.to_string(),
            })
    }

    fn settings_path(&self) -> PathBuf {
        self.dir.join("atrest.json")
    }

    fn clusters_dir(&self) -> PathBuf {
        self.dir.join("clusters")
    }

    fn node_paths(&self, cluster: &str, nodes: u32) -> Vec<PathBuf> {
        (0..nodes)
            .map(|k| self.clusters_dir().join(cluster).join(format!("node-{k}")))
            .collect()
    }

    fn require_settings(&self) -> Result<Settings, ControlError> {
        self.settings()?
            .ok_or_else(|| ControlError::NotInitialised {
                path: self.dir.clone(),
            })
    }

    fn save(&self, settings: &Settings) -> Result<(), ControlError> {
        write_json(&self.settings_path(), settings)?;
        self.sync_gate(settings);
        Ok(())
    }

    fn sync_gate(&self, settings: &Settings) {
        self.gate.set(
            settings
                .project
                .validity
                .shut_down
                .as_ref()
                .map(|reason| ShutDown {
                    key: settings.cmk.clone(),
                    reason: reason.clone(),
                }),
        );
    }

    /// A client of the embedded KMS as `principal` (an IAM ARN) or, by default, as the
    /// root's principal (the account root before `init`). Refused when the project's CMK is
    /// in AWS KMS.
    pub fn kms_client(
        &self,
        principal: Option<&str>,
        region: Option<&str>,
    ) -> Result<LocalKmsClient, ControlError> {
        let settings = self.settings()?;
        if let Some(s) = settings.as_ref().filter(|s| !s.kms.is_local()) {
            return Err(ControlError::NotLocalKms {
                endpoint: s.kms.endpoint(),
            });
        }
        let region = region
            .or(settings.as_ref().map(|s| s.region.as_str()))
            .unwrap_or(DEFAULT_REGION);
        let caller = match (principal, &settings) {
            (Some(p), _) => Caller::new(p, region)?,
            (None, Some(s)) => Caller::new(&s.principal, region)?,
            (None, None) => Caller::account_root(DEFAULT_ACCOUNT, region)?,
        };
        Ok(self.kms.client(caller))
    }

    /// The project's KMS, as its clusters call it: as the project's access role when it
    /// uses one, else as the root's principal (embedded) or the credential chain (AWS).
    /// Before `init`, the embedded one as the account root.
    pub fn kms(&self) -> Result<Arc<dyn Kms>, ControlError> {
        match self.settings()? {
            Some(settings) => self.kms_for(&settings, settings.project.kms_role()),
            None => Ok(Arc::new(self.kms_client(None, None)?)),
        }
    }

    fn kms_for(
        &self,
        settings: &Settings,
        role: Option<&AccessRole>,
    ) -> Result<Arc<dyn Kms>, ControlError> {
        let kms = self.unwrapped_kms_for(settings, role)?;
        Ok(match &self.wrap {
            Some(wrap) => wrap(kms),
            None => kms,
        })
    }

    fn unwrapped_kms_for(
        &self,
        settings: &Settings,
        role: Option<&AccessRole>,
    ) -> Result<Arc<dyn Kms>, ControlError> {
        match &settings.kms {
            KmsSettings::Local => {
                let principal = role.map_or(settings.principal.as_str(), |r| {
                    r.iam_assumed_role_arn.as_str()
                });
                Ok(Arc::new(
                    self.kms.client(Caller::new(principal, &settings.region)?),
                ))
            }
            KmsSettings::Aws(aws) => {
                let role_arn = role.map(|r| r.iam_assumed_role_arn.clone());
                let mut cached = self.aws.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((cached_role, kms)) = cached.as_ref() {
                    if *cached_role == role_arn {
                        return Ok(kms.clone());
                    }
                }
                let kms = connect_aws(aws, &settings.region, role)?;
                *cached = Some((role_arn, kms.clone()));
                Ok(kms)
            }
        }
    }

    /// Creates the project: its owner, the access role, the CMK (by default a new one in
    /// the embedded KMS, alias `alias/atrest-default`), encryption at rest configured and
    /// checked as Atlas checks it, and the default cluster `Cluster0` (M10, Cloud Backups,
    /// encrypted, `options.nodes` nodes).
    pub fn init(&self, options: &InitOptions) -> Result<Settings, ControlError> {
        if self.settings()?.is_some() {
            return Err(ControlError::AlreadyInitialised {
                path: self.dir.clone(),
            });
        }
        if self.clusters_dir().exists() {
            return Err(ControlError::InterruptedInit {
                path: self.dir.clone(),
                clusters: self.clusters_dir(),
            });
        }
        let now = self.clock.now();
        let (principal, cmk, role) = match &options.kms {
            KmsSettings::Local => {
                let root = Caller::account_root(&options.account, &options.region)?;
                let client = self.kms.client(root.clone());
                let cmk = match &options.cmk {
                    Some(key) => key.clone(),
                    None => default_cmk(&client)?.arn,
                };
                let role = options.role.clone().unwrap_or_else(|| {
                    (
                        format!("arn:aws:iam::{}:role/{DEFAULT_ROLE_NAME}", options.account),
                        None,
                    )
                });
                (root.principal().to_string(), cmk, Some(role))
            }
            KmsSettings::Aws(_) => {
                let cmk = options.cmk.clone().ok_or(ControlError::CmkRequired)?;
                let principal = "the AWS credential chain".to_string();
                (principal, cmk, options.role.clone())
            }
        };
        let mut settings = Settings {
            format: SETTINGS_FORMAT,
            account: options.account.clone(),
            region: options.region.clone(),
            principal,
            cmk: String::new(),
            kms: options.kms.clone(),
            cmk_rotation: None,
            rotation: options.rotation,
            snapshot_retention: Retention::default(),
            project: ProjectState::new("atrest", DEFAULT_OWNER, now),
        };
        let access = match role {
            Some((arn, external_id)) => {
                let role = authorize(&mut settings, &arn, external_id, now)?;
                AccessRequest::Role(role.role_id)
            }
            None => AccessRequest::Credentials {
                access_key_id: "from the AWS credential chain".into(),
                secret_access_key: zeroize::Zeroizing::new("(chain)".into()),
            },
        };
        self.configure_encryption_in(&mut settings, DEFAULT_OWNER, &cmk, access, false)?;
        let spec = ClusterSpec {
            name: DEFAULT_CLUSTER.into(),
            tier: "M10".into(),
            nodes: options.nodes,
            backup: project::Backup::Cloud,
            serverless: false,
            encrypt: true,
        };
        check_cluster_shape(&spec)?;
        self.build_cluster(&settings, &spec)?;
        settings.project.clusters.insert(
            spec.name.clone(),
            ClusterConfig {
                spec,
                rewrite_to_encrypted: None,
            },
        );
        self.save(&settings)?;
        Ok(settings)
    }

    fn store_options(&self, settings: &Settings) -> StoreOptions {
        let rotation = settings.rotation;
        StoreOptions {
            clock: self.clock(),
            master_key_rotation: Some(rotation.master_key_rotation_days)
                .filter(|d| *d > 0)
                .map(days),
            data_key_limits: DataKeyLimits {
                max_uses: rotation.data_key_max_uses.max(1),
                max_age: rotation.data_key_max_age_days.map(days),
                ..DataKeyLimits::default()
            },
            ..StoreOptions::default()
        }
    }

    fn opener(&self, settings: &Settings) -> Result<NodeOpener, ControlError> {
        let mut cmks = vec![settings.cmk.clone()];
        if let Some(r) = &settings.cmk_rotation {
            cmks.extend([r.to.clone(), r.from.clone()]);
        }
        Ok(NodeOpener {
            kms: self.kms_for(settings, settings.project.kms_role())?,
            cmks,
            options: self.store_options(settings),
        })
    }

    fn build_cluster(&self, settings: &Settings, spec: &ClusterSpec) -> Result<(), ControlError> {
        let opener = self.opener(settings)?;
        for (index, path) in self.node_paths(&spec.name, spec.nodes).iter().enumerate() {
            drop(opener.create(&spec.name, index, path, spec.encrypt)?);
        }
        Ok(())
    }

    /// Opens cluster `name` (the default cluster when `None`). While the project's key is
    /// invalid, an encrypted cluster refuses, saying why.
    pub fn cluster(&self, name: Option<&str>) -> Result<Cluster, ControlError> {
        let settings = self.require_settings()?;
        let config = settings.project.cluster(name.unwrap_or(DEFAULT_CLUSTER))?;
        self.open_cluster(&settings, config)
    }

    fn open_cluster(
        &self,
        settings: &Settings,
        config: &ClusterConfig,
    ) -> Result<Cluster, ControlError> {
        let spec = &config.spec;
        let paths = self.node_paths(&spec.name, spec.nodes);
        for path in &paths {
            recover_node(path)?;
        }
        let encrypted = spec.encrypt || config.rewrite_to_encrypted.is_some();
        Cluster::open(
            &spec.name,
            encrypted,
            paths,
            self.opener(settings)?,
            self.gate.clone(),
        )
    }

    /// The project as Atlas's API shows it.
    pub fn project_status(&self) -> Result<ProjectStatus, ControlError> {
        let settings = self.require_settings()?;
        let p = &settings.project;
        let (role_id, access_key_id) = match &p.encryption.access {
            Some(KmsAccess::Role { role_id }) => (Some(role_id.clone()), None),
            Some(KmsAccess::Credentials { access_key_id }) => (None, Some(access_key_id.clone())),
            None => (None, None),
        };
        Ok(ProjectStatus {
            id: p.id.clone(),
            name: p.name.clone(),
            region: atlas_region(&settings.region),
            owner: p.owner.clone(),
            users: p.users.clone(),
            cloud_provider_access_roles: p.access_roles.clone(),
            encryption_at_rest: EncryptionAtRestView {
                aws_kms: AwsKmsView {
                    enabled: p.encryption.enabled,
                    customer_master_key_id: settings.cmk.clone(),
                    region: atlas_region(&settings.region),
                    role_id,
                    access_key_id,
                    valid: p.encryption.valid,
                    require_private_networking: p.encryption.require_private_networking,
                },
            },
            clusters: p.clusters.values().cloned().collect(),
            shut_down: p.validity.shut_down.clone(),
            queued_changes: p.queue.clone(),
            last_validity_check: p.validity.last_check,
        })
    }

    /// Adds `username` with `role`; only a Project Owner may.
    pub fn add_user(
        &self,
        acting: &str,
        username: &str,
        role: ProjectRole,
    ) -> Result<(), ControlError> {
        let mut settings = self.require_settings()?;
        settings.project.require_owner(acting, "adding a user")?;
        settings.project.users.retain(|u| u.username != username);
        settings.project.users.push(User {
            username: username.to_string(),
            role,
        });
        self.save(&settings)
    }

    /// Authorizes `iam_role_arn` for Atlas to assume, with `external_id` (generated when
    /// `None`, as Atlas generates it); only a Project Owner may.
    pub fn authorize_role(
        &self,
        acting: &str,
        iam_role_arn: &str,
        external_id: Option<String>,
    ) -> Result<AccessRole, ControlError> {
        let mut settings = self.require_settings()?;
        settings
            .project
            .require_owner(acting, "authorizing an IAM role")?;
        let role = authorize(&mut settings, iam_role_arn, external_id, self.clock.now())?;
        self.save(&settings)?;
        Ok(role)
    }

    /// Configures the project's encryption at rest with `cmk`, reached through `access`.
    /// Atlas's checks: Project Owner; a symmetric key; DescribeKey, Encrypt and Decrypt
    /// allowed to the role; another account's key only by full ARN; no way back from a
    /// role to credentials. A different CMK while clusters use encryption is a CMK
    /// rotation: use [`Root::set_key`].
    pub fn configure_encryption(
        &self,
        acting: &str,
        cmk: &str,
        access: AccessRequest,
        require_private_networking: bool,
    ) -> Result<Settings, ControlError> {
        let mut settings = self.require_settings()?;
        self.configure_encryption_in(
            &mut settings,
            acting,
            cmk,
            access,
            require_private_networking,
        )?;
        self.save(&settings)?;
        Ok(settings)
    }

    fn configure_encryption_in(
        &self,
        settings: &mut Settings,
        acting: &str,
        cmk: &str,
        access: AccessRequest,
        require_private_networking: bool,
    ) -> Result<(), ControlError> {
        settings
            .project
            .require_owner(acting, "configuring encryption at rest")?;
        let access = match access {
            AccessRequest::Role(role_id) => {
                settings.project.access_role(&role_id)?;
                KmsAccess::Role { role_id }
            }
            AccessRequest::Credentials {
                access_key_id,
                secret_access_key,
            } => {
                if matches!(
                    settings.project.encryption.access,
                    Some(KmsAccess::Role { .. })
                ) {
                    return Err(ControlError::CredentialsAfterRole);
                }
                if access_key_id.is_empty() || secret_access_key.is_empty() {
                    return Err(ControlError::IncompleteCredentials);
                }
                KmsAccess::Credentials { access_key_id }
            }
        };
        let role = match &access {
            KmsAccess::Role { role_id } => Some(settings.project.access_role(role_id)?.clone()),
            KmsAccess::Credentials { .. } => None,
        };
        let kms = self.kms_for(settings, role.as_ref())?;
        let principal = role.as_ref().map_or(settings.principal.clone(), |r| {
            r.iam_assumed_role_arn.clone()
        });
        let arn = verify_key(kms.as_ref(), cmk, &principal, &settings.account)?;
        let in_use = settings.project.encrypted_clusters();
        if !settings.cmk.is_empty() && arn != settings.cmk && !in_use.is_empty() {
            return Err(ControlError::NotProjectKey {
                expected: settings.cmk.clone(),
                given: format!("{arn} (rotate the project's CMK with `atrest project set-key`)"),
            });
        }
        if arn != settings.cmk {
            settings.project.encryption.cmk_set_at = self.clock.now();
            settings.project.encryption.rotation_reminded = false;
        }
        settings.cmk = arn;
        let encryption = &mut settings.project.encryption;
        encryption.enabled = true;
        encryption.access = Some(access);
        encryption.require_private_networking = require_private_networking;
        encryption.valid = true;
        Ok(())
    }

    /// Turns the project's encryption at rest off; refused while a cluster uses it.
    pub fn disable_project_encryption(&self, acting: &str) -> Result<(), ControlError> {
        let mut settings = self.require_settings()?;
        settings
            .project
            .require_owner(acting, "disabling encryption at rest")?;
        let clusters = settings.project.encrypted_clusters();
        if !clusters.is_empty() {
            return Err(ControlError::EncryptionInUse { clusters });
        }
        settings.project.encryption.enabled = false;
        self.save(&settings)
    }

    /// Sets how often `tick` runs the validity check and when the rotation reminder fires.
    pub fn set_schedules(
        &self,
        check_interval_minutes: Option<u64>,
        rotation_reminder_days: Option<u64>,
    ) -> Result<(), ControlError> {
        let mut settings = self.require_settings()?;
        if let Some(m) = check_interval_minutes {
            settings.project.validity.interval_minutes = m.max(1);
        }
        if let Some(d) = rotation_reminder_days {
            settings.project.rotation_reminder_days = d;
        }
        self.save(&settings)
    }

    /// `cluster create`: a new cluster of `spec.nodes` nodes. With `spec.encrypt`, Atlas's
    /// rules apply (M10+, not serverless, no legacy backups, the project configured, a
    /// Project Owner asking). Queued while the project's clusters are shut down.
    pub fn create_cluster(
        &self,
        acting: &str,
        spec: ClusterSpec,
    ) -> Result<Applied<()>, ControlError> {
        let mut settings = self.require_settings()?;
        settings.project.role_of(acting)?;
        check_cluster_shape(&spec)?;
        if settings.project.clusters.contains_key(&spec.name)
            || settings.project.queue.iter().any(
                |c| matches!(c, QueuedChange::CreateCluster { spec: s } if s.name == spec.name),
            )
        {
            return Err(ControlError::ClusterExists { name: spec.name });
        }
        if spec.encrypt {
            check_cluster_may_use(&settings, &spec)?;
            settings
                .project
                .require_owner(acting, "enabling encryption at rest on a cluster")?;
        }
        if settings.project.validity.shut_down.is_some() {
            settings
                .project
                .queue
                .push(QueuedChange::CreateCluster { spec });
            self.save(&settings)?;
            return Ok(Applied::Queued);
        }
        self.apply(
            &mut settings,
            QueuedChange::CreateCluster { spec },
            &mut |_, _| {},
        )?;
        Ok(Applied::Done(()))
    }

    /// `cluster enable-encryption` / `disable-encryption`: a rolling rewrite of every node
    /// into encrypted (or plain) stores; nothing is lost. `progress(node, records)`.
    /// Queued while the project's clusters are shut down.
    pub fn set_cluster_encryption(
        &self,
        acting: &str,
        cluster: &str,
        encrypt: bool,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<Applied<()>, ControlError> {
        let mut settings = self.require_settings()?;
        let config = settings.project.cluster(cluster)?.clone();
        let action = if encrypt { "enabling" } else { "disabling" };
        settings
            .project
            .require_owner(acting, &format!("{action} encryption at rest on a cluster"))?;
        if encrypt {
            let spec = ClusterSpec {
                encrypt: true,
                ..config.spec.clone()
            };
            check_cluster_may_use(&settings, &spec)?;
        }
        let change = if encrypt {
            QueuedChange::EnableEncryption {
                cluster: cluster.to_string(),
            }
        } else {
            QueuedChange::DisableEncryption {
                cluster: cluster.to_string(),
            }
        };
        if settings.project.validity.shut_down.is_some() {
            settings.project.queue.push(change);
            self.save(&settings)?;
            return Ok(Applied::Queued);
        }
        self.apply(&mut settings, change, progress)?;
        Ok(Applied::Done(()))
    }

    /// Rolling master-key rotation of `cluster`'s nodes (the default cluster when `None`).
    /// Queued while the project's clusters are shut down.
    pub fn rotate_master_key(
        &self,
        cluster: Option<&str>,
    ) -> Result<Applied<Vec<u32>>, ControlError> {
        let mut settings = self.require_settings()?;
        let name = cluster.unwrap_or(DEFAULT_CLUSTER).to_string();
        settings.project.cluster(&name)?;
        if settings.project.validity.shut_down.is_some() {
            settings
                .project
                .queue
                .push(QueuedChange::RotateMasterKey { cluster: name });
            self.save(&settings)?;
            return Ok(Applied::Queued);
        }
        let versions = self.rotate_now(&mut settings, &name)?;
        self.save(&settings)?;
        Ok(Applied::Done(versions))
    }

    fn rotate_now(&self, settings: &mut Settings, cluster: &str) -> Result<Vec<u32>, ControlError> {
        let config = settings.project.cluster(cluster)?.clone();
        let versions = self.open_cluster(settings, &config)?.rotate_master_key()?;
        let now = self.clock.now();
        for (node, version) in versions.iter().enumerate() {
            settings.project.raise(
                ALERT_MASTER_KEY_ROTATED,
                now,
                format!("cluster {cluster} node-{node}: master key rotated to version {version} (on demand); no record rewritten"),
            );
        }
        Ok(versions)
    }

    fn apply(
        &self,
        settings: &mut Settings,
        change: QueuedChange,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<(), ControlError> {
        match change {
            QueuedChange::CreateCluster { spec } => {
                self.build_cluster(settings, &spec)?;
                settings.project.clusters.insert(
                    spec.name.clone(),
                    ClusterConfig {
                        spec,
                        rewrite_to_encrypted: None,
                    },
                );
            }
            QueuedChange::EnableEncryption { cluster } => {
                self.rewrite(settings, &cluster, true, progress)?;
            }
            QueuedChange::DisableEncryption { cluster } => {
                self.rewrite(settings, &cluster, false, progress)?;
            }
            QueuedChange::RotateMasterKey { cluster } => {
                self.rotate_now(settings, &cluster)?;
            }
        }
        self.save(settings)
    }

    fn rewrite(
        &self,
        settings: &mut Settings,
        cluster: &str,
        encrypt: bool,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<(), ControlError> {
        let mut config = settings.project.cluster(cluster)?.clone();
        config.rewrite_to_encrypted = Some(encrypt);
        settings
            .project
            .clusters
            .insert(cluster.to_string(), config.clone());
        self.save(settings)?;
        self.open_cluster(settings, &config)?
            .rewrite(encrypt, progress)?;
        config.spec.encrypt = encrypt;
        config.rewrite_to_encrypted = None;
        settings
            .project
            .clusters
            .insert(cluster.to_string(), config);
        Ok(())
    }

    /// CMK rotation: points the project at `key` (id, alias or ARN), checked as
    /// `configure_encryption` checks a key, and re-wraps every encrypted node's master key
    /// under it, cluster by cluster, node by node. The old key must stay enabled until this
    /// returns; if it is interrupted, running it again with the same key finishes it. The
    /// rotation reminder starts counting again. Refused while the clusters are shut down:
    /// re-wrapping needs the master keys, which only the current CMK unwraps.
    pub fn set_key(&self, key: &str) -> Result<Settings, ControlError> {
        let mut settings = self.require_settings()?;
        if let Some(reason) = &settings.project.validity.shut_down {
            return Err(ControlError::ShutDown {
                cluster: settings.project.encrypted_clusters().join(", "),
                key: settings.cmk.clone(),
                reason: reason.clone(),
            });
        }
        let role = settings.project.kms_role().cloned();
        let kms = self.kms_for(&settings, role.as_ref())?;
        let principal = role.as_ref().map_or(settings.principal.clone(), |r| {
            r.iam_assumed_role_arn.clone()
        });
        let target = verify_key(kms.as_ref(), key, &principal, &settings.account)?;
        if let Some(rotation) = &settings.cmk_rotation {
            if rotation.to != target {
                return Err(ControlError::RotationInProgress {
                    to: rotation.to.clone(),
                });
            }
        } else if target == settings.cmk {
            return Ok(settings);
        } else {
            settings.cmk_rotation = Some(CmkRotation {
                from: settings.cmk.clone(),
                to: target.clone(),
                started: self.clock.now(),
            });
            self.save(&settings)?;
        }
        let configs: Vec<ClusterConfig> = settings.project.clusters.values().cloned().collect();
        for config in &configs {
            self.open_cluster(&settings, config)?.each_store(|store| {
                if store.keystore().cmk_arn() != target {
                    store.rewrap_master_key(&target)?;
                }
                Ok(())
            })?;
        }
        settings.cmk = target;
        settings.cmk_rotation = None;
        settings.project.encryption.cmk_set_at = self.clock.now();
        settings.project.encryption.rotation_reminded = false;
        self.save(&settings)?;
        Ok(settings)
    }

    /// The validity check (Atlas's "Try Again"): DescribeKey, then an Encrypt/Decrypt round
    /// trip, as the project's role. A disabled, deleted or no-longer-authorized key shuts the
    /// encrypted clusters down and raises an alert; a KMS that cannot be reached raises an
    /// alert and shuts nothing down; a good check brings the clusters back and applies the
    /// changes queued meanwhile.
    pub fn check(&self) -> Result<CheckOutcome, ControlError> {
        let mut settings = self.require_settings()?;
        let outcome = self.check_in(&mut settings)?;
        self.save(&settings)?;
        Ok(outcome)
    }

    fn check_in(&self, settings: &mut Settings) -> Result<CheckOutcome, ControlError> {
        let now = self.clock.now();
        settings.project.validity.last_check = Some(now);
        if !settings.project.encryption.enabled {
            return Ok(CheckOutcome::NotConfigured);
        }
        let key = settings.cmk.clone();
        let verdict = self
            .kms_for(settings, settings.project.kms_role())
            .map_err(|e| match e {
                ControlError::Kms(k) => k,
                other => KmsError::Internal(other.to_string()),
            })
            .and_then(|kms| round_trip(kms.as_ref(), &key));
        let encrypted = settings.project.encrypted_clusters();
        let project = &mut settings.project;
        match verdict {
            Ok(()) => {
                project.encryption.valid = true;
                project.validity.unreachable_since = None;
                let was_down = project.validity.shut_down.take().is_some();
                let queue = std::mem::take(&mut project.queue);
                self.sync_gate(settings);
                let applied = queue.len();
                let mut pending = queue.into_iter();
                while let Some(change) = pending.next() {
                    if let Err(e) = self.apply(settings, change.clone(), &mut |_, _| {}) {
                        settings.project.queue = std::iter::once(change).chain(pending).collect();
                        self.save(settings)?;
                        return Err(e);
                    }
                }
                Ok(CheckOutcome::Valid {
                    restored: if was_down { encrypted } else { Vec::new() },
                    applied,
                })
            }
            Err(e) if e.is_retryable() => {
                if project.validity.unreachable_since.is_none() {
                    project.validity.unreachable_since = Some(now);
                    project.raise(
                        ALERT_KMS_UNREACHABLE,
                        now,
                        format!("the validity check of {key} could not reach the KMS ({e}); nothing was shut down, the check runs again every {} minutes", project.validity.interval_minutes),
                    );
                }
                Ok(CheckOutcome::Unreachable {
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                project.encryption.valid = false;
                project.validity.unreachable_since = None;
                let reason = e.to_string();
                if project.validity.shut_down.is_none() {
                    project.raise(
                        ALERT_KEY_INVALID,
                        now,
                        format!("{key} failed its validity check ({reason}); encrypted clusters {encrypted:?} are shut down, nothing is lost: fix the key and run `atrest check`"),
                    );
                }
                project.validity.shut_down = Some(reason.clone());
                self.sync_gate(settings);
                Ok(CheckOutcome::Invalid {
                    reason,
                    shut_down: encrypted,
                })
            }
        }
    }

    /// Runs what emulator time has made due: KMS deletions and material rotations, the
    /// validity check (every `interval_minutes`), each node's master-key rotation and
    /// data-key rollover, the CMK rotation reminder, and snapshot retention.
    pub fn tick(&self) -> Result<RootTick, ControlError> {
        let settings = self.settings()?;
        let embedded = settings.as_ref().is_none_or(|s| s.kms.is_local());
        let mut report = RootTick {
            kms_events: if embedded { self.kms.tick()? } else { 0 },
            ..RootTick::default()
        };
        let Some(mut settings) = settings else {
            return Ok(report);
        };
        let now = self.clock.now();
        let alerts_before = settings.project.alerts.len();
        let interval = Duration::from_secs(settings.project.validity.interval_minutes * 60);
        let due = settings
            .project
            .validity
            .last_check
            .is_none_or(|last| now.since(last) >= interval);
        if due {
            report.check = Some(self.check_in(&mut settings)?);
        }
        if settings.project.validity.shut_down.is_none() {
            let configs: Vec<ClusterConfig> = settings.project.clusters.values().cloned().collect();
            for config in &configs {
                let name = &config.spec.name;
                let ticks = match self.open_cluster(&settings, config) {
                    Ok(cluster) => cluster.tick(),
                    Err(e) => Err(e),
                };
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
                    if let Some(version) = tick.master_key_rotated_to {
                        settings.project.raise(
                            ALERT_MASTER_KEY_ROTATED,
                            now,
                            format!("cluster {name} node-{node}: master key rotated to version {version} (automatic, every {} days); no record rewritten", settings.rotation.master_key_rotation_days),
                        );
                        report.master_keys_rotated.push((
                            name.clone(),
                            format!("node-{node}"),
                            version,
                        ));
                    }
                    for db in tick.data_keys_rolled {
                        report
                            .data_keys_rolled
                            .push((name.clone(), format!("node-{node}"), db));
                    }
                }
            }
        }
        let encryption = &settings.project.encryption;
        let reminder = days(settings.project.rotation_reminder_days);
        if encryption.enabled
            && !encryption.rotation_reminded
            && now.since(encryption.cmk_set_at) >= reminder
        {
            let text = format!(
                "the project's CMK {} was set {}, {} days ago: rotate it (`atrest project set-key --key NEW`)",
                settings.cmk,
                encryption.cmk_set_at,
                now.since(encryption.cmk_set_at).as_secs() / 86_400
            );
            settings.project.encryption.rotation_reminded = true;
            settings.project.raise(ALERT_NEEDS_ROTATION, now, text);
        }
        report.alerts = settings.project.alerts[alerts_before..].to_vec();
        self.save(&settings)?;
        report.snapshots_deleted = self.apply_retention(settings.snapshot_retention)?;
        Ok(report)
    }

    /// Every alert, oldest first.
    pub fn alerts(&self) -> Result<Vec<Alert>, ControlError> {
        Ok(self.require_settings()?.project.alerts)
    }
}

impl Root {
    /// Where this root's snapshot files live.
    pub fn snapshot_storage(&self) -> Result<LocalDirStorage, ControlError> {
        let dir = self.dir.join("snapshots");
        LocalDirStorage::new(&dir).map_err(|e| ControlError::Settings {
            path: dir,
            reason: e.to_string(),
        })
    }

    /// Takes a snapshot of `cluster` (the default when `None`), encrypted under the CMK
    /// current now. Snapshots are Cloud Backups of encrypted clusters.
    pub fn create_snapshot(
        &self,
        cluster: Option<&str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, ControlError> {
        let cluster = self.cluster(cluster)?;
        let storage = self.snapshot_storage()?;
        // One node's checkpoint is the cluster's: every node holds the same records.
        match cluster.first_store(|store| store.create_snapshot(&storage, progress))? {
            Some(taken) => Ok(taken?),
            None => Err(ControlError::NotEncrypted {
                cluster: cluster.name().to_string(),
            }),
        }
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, ControlError> {
        Ok(list_snapshots(&self.snapshot_storage()?)?)
    }

    /// Deletes snapshot `id`.
    pub fn delete_snapshot(&self, id: &str) -> Result<(), ControlError> {
        let storage = self.snapshot_storage()?;
        snapshot_info(&storage, id)?;
        storage.delete(id).map_err(|e| ControlError::Settings {
            path: self.dir.join("snapshots"),
            reason: e.to_string(),
        })
    }

    /// Decrypts and checks every byte of a snapshot without restoring it.
    pub fn verify_snapshot(&self, id: &str) -> Result<SnapshotInfo, ControlError> {
        Ok(verify_snapshot(
            &self.snapshot_storage()?,
            id,
            &*self.kms()?,
        )?)
    }

    /// Saves `retention` as the root's policy and applies it now.
    pub fn set_retention(&self, retention: Retention) -> Result<Vec<String>, ControlError> {
        let mut settings = self.require_settings()?;
        settings.snapshot_retention = retention;
        self.save(&settings)?;
        self.apply_retention(retention)
    }

    /// Deletes the snapshots `retention` does not keep; returns their ids.
    pub fn apply_retention(&self, retention: Retention) -> Result<Vec<String>, ControlError> {
        let now = self.clock.now();
        let all = self.snapshots()?;
        let newest_first: Vec<&SnapshotInfo> = all.iter().rev().collect();
        let mut deleted = Vec::new();
        for (rank, snapshot) in newest_first.into_iter().enumerate() {
            let too_many = retention.keep.is_some_and(|keep| rank >= keep);
            let too_old = retention
                .max_age_days
                .is_some_and(|d| now.since(snapshot.created) > days(d));
            if too_many || too_old {
                self.delete_snapshot(&snapshot.id)?;
                deleted.push(snapshot.id.clone());
            }
        }
        Ok(deleted)
    }

    /// Which snapshots and node stores depend on `key` (id, alias or ARN).
    pub fn key_usage(&self, key: &str) -> Result<KeyUsage, ControlError> {
        let arn = self.kms()?.describe_key(key)?.arn;
        let snapshots: Vec<SnapshotInfo> = self
            .snapshots()?
            .into_iter()
            .filter(|s| s.cmk_arn == arn)
            .collect();
        let settings = self.settings()?;
        let mut stores = Vec::new();
        if let Some(s) = settings.as_ref().filter(|s| s.cmk == arn) {
            for name in s.project.encrypted_clusters() {
                let config = s.project.cluster(&name)?;
                for path in self.node_paths(&name, config.spec.nodes) {
                    stores.push(path.display().to_string());
                }
            }
        }
        let rotation_in_progress = settings
            .and_then(|s| s.cmk_rotation)
            .is_some_and(|r| r.from == arn || r.to == arn);
        let safe_to_delete = snapshots.is_empty() && stores.is_empty() && !rotation_in_progress;
        Ok(KeyUsage {
            key_arn: arn,
            snapshots,
            stores,
            rotation_in_progress,
            safe_to_delete,
        })
    }

    /// ScheduleKeyDeletion, refused while snapshots or stores depend on the key unless
    /// `force`: deleting it would make them unreadable for good.
    pub fn schedule_key_deletion(
        &self,
        client: &LocalKmsClient,
        key: &str,
        window_days: Option<u32>,
        force: bool,
    ) -> Result<Timestamp, ControlError> {
        if !force {
            let usage = self.key_usage(key)?;
            if !usage.safe_to_delete {
                return Err(ControlError::KeyInUse {
                    key: usage.key_arn,
                    snapshots: usage.snapshots.into_iter().map(|s| s.id).collect(),
                    stores: usage.stores,
                });
            }
        }
        Ok(client.schedule_key_deletion(key, window_days)?)
    }

    /// Restores snapshot `id` into every node of `cluster` (the default when `None`) of
    /// this root, or of the root at `target`: another project, which must be in the
    /// snapshot's region, or a new one (an uninitialised directory), initialised like this
    /// one. The snapshot's CMK must be enabled; each restored node gets a new master key
    /// under the target's CMK.
    pub fn restore_snapshot(
        &self,
        id: &str,
        target: Option<&Path>,
        cluster: Option<&str>,
    ) -> Result<SnapshotInfo, ControlError> {
        let storage = self.snapshot_storage()?;
        let info = snapshot_info(&storage, id)?;
        let snapshot_kms = self.kms()?;
        let other;
        let target_root = match target {
            Some(dir) if fs::canonicalize(dir).ok() != fs::canonicalize(&self.dir).ok() => {
                other = Root::open(dir)?;
                if other.settings()?.is_none() {
                    // A new project, like this one: same account, region, KMS and policies.
                    let mine = self.require_settings()?;
                    let role = mine.project.kms_role().map(|r| {
                        (
                            r.iam_assumed_role_arn.clone(),
                            Some(r.atlas_assumed_role_external_id.clone()),
                        )
                    });
                    let shared_cmk = (!mine.kms.is_local()).then_some(mine.cmk.clone());
                    let nodes = mine
                        .project
                        .cluster(DEFAULT_CLUSTER)
                        .map_or(DEFAULT_NODES, |c| c.spec.nodes);
                    other.init(&InitOptions {
                        account: mine.account,
                        region: mine.region,
                        rotation: mine.rotation,
                        kms: mine.kms,
                        cmk: shared_cmk,
                        role,
                        nodes,
                    })?;
                }
                &other
            }
            _ => self,
        };
        let settings = target_root.require_settings()?;
        let config = settings
            .project
            .cluster(cluster.unwrap_or(DEFAULT_CLUSTER))?;
        if !config.spec.encrypt {
            return Err(ControlError::NotEncrypted {
                cluster: config.spec.name.clone(),
            });
        }
        if let Some(down) = &settings.project.validity.shut_down {
            return Err(ControlError::ShutDown {
                cluster: config.spec.name.clone(),
                key: settings.cmk.clone(),
                reason: down.clone(),
            });
        }
        let target_kms = target_root.kms_for(&settings, settings.project.kms_role())?;
        let base = target_root.store_options(&settings);
        for (node, path) in target_root
            .node_paths(&config.spec.name, config.spec.nodes)
            .iter()
            .enumerate()
        {
            drop(restore_snapshot(
                &storage,
                id,
                snapshot_kms.clone(),
                RestoreTarget {
                    path,
                    kms: target_kms.clone(),
                    cmk: &settings.cmk,
                    region: &settings.region,
                    options: StoreOptions {
                        cluster: config.spec.name.clone(),
                        node: format!("node-{node}"),
                        ..base.clone()
                    },
                },
            )?);
        }
        Ok(info)
    }
}

/// Atlas's rules for `spec` to use the project's encryption at rest: its shape, and the
/// project configured.
fn check_cluster_may_use(settings: &Settings, spec: &ClusterSpec) -> Result<(), ControlError> {
    check_cluster_may_encrypt(spec)?;
    if !settings.project.encryption.enabled {
        return Err(ControlError::ProjectNotConfigured);
    }
    Ok(())
}

/// The structural limits every cluster has, encrypted or not.
fn check_cluster_shape(spec: &ClusterSpec) -> Result<(), ControlError> {
    check_cluster_name(&spec.name)?;
    project::tier_size(&spec.tier)?;
    if !(1..=50).contains(&spec.nodes) {
        return Err(ControlError::BadNodeCount { nodes: spec.nodes });
    }
    Ok(())
}

fn authorize(
    settings: &mut Settings,
    iam_role_arn: &str,
    external_id: Option<String>,
    now: Timestamp,
) -> Result<AccessRole, ControlError> {
    let caller = Caller::new(iam_role_arn, &settings.region)?;
    if !caller.principal().contains(":role/") {
        return Err(KmsError::Validation(format!(
            "{iam_role_arn} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ))
        .into());
    }
    if let Some(existing) = settings
        .project
        .access_roles
        .iter()
        .find(|r| r.iam_assumed_role_arn == iam_role_arn)
    {
        return Ok(existing.clone());
    }
    let role = AccessRole {
        role_id: atlas_id(),
        iam_assumed_role_arn: iam_role_arn.to_string(),
        atlas_assumed_role_external_id: external_id.unwrap_or_else(external_id_uuid),
        authorized_date: now,
    };
    settings.project.access_roles.push(role.clone());
    Ok(role)
}

fn external_id_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Atlas's checks of a CMK, made as `principal`: it resolves (another account's key only
/// by full ARN), is symmetric, and DescribeKey, Encrypt and Decrypt are allowed. Its ARN.
fn verify_key(
    kms: &dyn Kms,
    key: &str,
    principal: &str,
    account: &str,
) -> Result<String, ControlError> {
    let missing = |action: &'static str, e: KmsError| match e {
        KmsError::AccessDenied(_) => ControlError::MissingPermission {
            principal: principal.to_string(),
            key: key.to_string(),
            action,
            source: e,
        },
        other => other.into(),
    };
    let metadata = kms.describe_key(key).map_err(|e| match e {
        KmsError::NotFound(_) if !key.starts_with("arn:") => ControlError::NeedsFullArn {
            key: key.to_string(),
            account: account.to_string(),
            source: e,
        },
        other => missing("kms:DescribeKey", other),
    })?;
    if metadata.key_spec != KeySpec::SymmetricDefault
        || metadata.key_usage != KmsKeyUsage::EncryptDecrypt
    {
        return Err(ControlError::NotSymmetric {
            key: metadata.arn,
            spec: metadata.key_spec.to_string(),
            usage: format!("{:?}", metadata.key_usage),
        });
    }
    let context = check_context();
    let blob = kms
        .encrypt(&metadata.arn, b"atrest key check", &context)
        .map_err(|e| missing("kms:Encrypt", e))?;
    kms.decrypt(&metadata.arn, &blob.ciphertext_blob, &context)
        .map_err(|e| missing("kms:Decrypt", e))?;
    Ok(metadata.arn)
}

fn check_context() -> EncryptionContext {
    [("atrest".to_string(), "validity-check".to_string())].into()
}

/// The validity check's calls: DescribeKey (the key must be Enabled), Encrypt, Decrypt.
fn round_trip(kms: &dyn Kms, key: &str) -> Result<(), KmsError> {
    let metadata = kms.describe_key(key)?;
    match metadata.key_state {
        KeyState::Enabled => {}
        KeyState::Disabled => {
            return Err(KmsError::Disabled(format!("{} is disabled.", metadata.arn)))
        }
        KeyState::PendingDeletion => {
            return Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                metadata.arn
            )))
        }
    }
    let context = check_context();
    let blob = kms.encrypt(key, b"atrest validity check", &context)?;
    kms.decrypt(key, &blob.ciphertext_blob, &context)?;
    Ok(())
}

fn default_cmk(client: &LocalKmsClient) -> Result<crate::kms::KeyMetadata, ControlError> {
    match client.describe_key(DEFAULT_CMK_ALIAS) {
        Ok(existing) => Ok(existing),
        Err(KmsError::NotFound(_)) => {
            let created = client.create_key(CreateKeyRequest {
                description: "atrest customer master key".into(),
                ..Default::default()
            })?;
            client.create_alias(DEFAULT_CMK_ALIAS, &created.key_id)?;
            Ok(created)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(feature = "aws")]
fn connect_aws(
    aws: &AwsSettings,
    region: &str,
    role: Option<&AccessRole>,
) -> Result<Arc<dyn Kms>, ControlError> {
    use crate::kms::{AssumeRole, AwsKms, AwsKmsConfig};
    let mut config = AwsKmsConfig::new(region);
    config.endpoint = aws.endpoint.clone();
    config.assume_role = role.map(|role| AssumeRole {
        role_arn: role.iam_assumed_role_arn.clone(),
        external_id: Some(role.atlas_assumed_role_external_id.clone()),
        session_name: "atrest".into(),
    });
    Ok(Arc::new(AwsKms::connect(config)?))
}

#[cfg(not(feature = "aws"))]
fn connect_aws(
    _: &AwsSettings,
    _: &str,
    _: Option<&AccessRole>,
) -> Result<Arc<dyn Kms>, ControlError> {
    Err(ControlError::AwsNotBuilt)
}
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ControlError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ControlError::Settings {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ControlError::Settings {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ControlError> {
    let settings_error = |reason: String| ControlError::Settings {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| settings_error(e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| settings_error(e.to_string()))
}
