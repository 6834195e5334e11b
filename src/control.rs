//! The atrest root: one directory holding a project's KMS, its settings and its stores.
//!
//! Owns the layout of the root and the settings every command shares (the caller's
//! account, region and principal; the project's CMK; the emulator clock's offset), so
//! that the CLI and an embedding program open the same things the same way.
//!
//! ```text
//! ROOT/atrest.json   settings (format, account, region, principal, CMK)
//! ROOT/clock.json    emulator time: offset added to real time
//! ROOT/kms/          LocalKms state (the emulated HSM; owner-only), unless the
//!                    settings point at AWS KMS (or another endpoint of its protocol)
//! ROOT/store/        the node's RocksDB
//! ROOT/snapshots/    snapshot files, ID.atrsnap
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{days, Clock, OffsetClock, SharedClock, Timestamp};
use crate::durable::write_atomic;
use crate::kms::{Caller, CreateKeyRequest, Kms, KmsError, LocalKms, LocalKmsClient};
use crate::store::{
    list_snapshots, restore_snapshot, snapshot_info, verify_snapshot, DataKeyLimits,
    LocalDirStorage, RestoreTarget, SnapshotError, SnapshotInfo, SnapshotStorage, Store,
    StoreError, StoreOptions, StoreTick, DEFAULT_MASTER_KEY_ROTATION_DAYS,
};

/// The AWS account `init` uses unless told otherwise.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The AWS region `init` uses unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The alias `init` gives the project's first CMK.
pub const DEFAULT_CMK_ALIAS: &str = "alias/atrest-default";
const SETTINGS_FORMAT: u32 = 1;

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
        "{path} is already initialised (its store and CMK exist); use it, or choose another --root"
    )]
    /// `init` was run on a root that already has a store.
    AlreadyInitialised { path: PathBuf },
    #[error("{store} exists but {path}/atrest.json does not: an earlier init was interrupted; remove {store} and run init again")]
    /// A store without settings: an `init` that stopped halfway.
    InterruptedInit { path: PathBuf, store: PathBuf },
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
}

impl ControlError {
    /// The KMS error underneath, if any: its hint says what to do.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            ControlError::Kms(e) => Some(e),
            ControlError::Store(e) => e.kms_error(),
            ControlError::Snapshot(e) => e.kms_error(),
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
    /// The IAM principal atrest calls the KMS as.
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
/// ...); none is stored in the root.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AwsSettings {
    /// An endpoint URL instead of AWS's; also used for STS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The role to assume before calling KMS, as Atlas assumes the customer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
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
    /// Stores whose master key the key wraps.
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
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            account: DEFAULT_ACCOUNT.to_string(),
            region: DEFAULT_REGION.to_string(),
            rotation: RotationSettings::default(),
            kms: KmsSettings::Local,
            cmk: None,
        }
    }
}

/// What [`Root::tick`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RootTick {
    /// KMS events applied: key deletions and material rotations.
    pub kms_events: usize,
    /// `None` before `init`.
    pub store: Option<StoreTick>,
    /// Snapshots deleted by retention.
    pub snapshots_deleted: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClockFile {
    offset_ms: u64,
}

/// An open root. Commands that only use the KMS work before `init`.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
    clock: Arc<OffsetClock>,
    kms: Arc<LocalKms>,
    /// The AWS client, made on first use: it resolves credentials once per process.
    aws: Mutex<Option<Arc<dyn Kms>>>,
}

impl Root {
    /// Opens the root at `dir`, creating the directory and an empty KMS if absent.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ControlError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| ControlError::Settings {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let clock_path = dir.join("clock.json");
        let offset = match read_json::<ClockFile>(&clock_path)? {
            Some(c) => Duration::from_millis(c.offset_ms),
            None => Duration::ZERO,
        };
        let clock = Arc::new(OffsetClock::new(offset));
        let kms = LocalKms::open(dir.join("kms"), clock.clone() as SharedClock)?;
        Ok(Root {
            dir,
            clock,
            kms,
            aws: Mutex::new(None),
        })
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

    /// The root's embedded KMS.
    pub fn local_kms(&self) -> &Arc<LocalKms> {
        &self.kms
    }

    /// The settings, or `None` before `init`.
    pub fn settings(&self) -> Result<Option<Settings>, ControlError> {
        read_json(&self.settings_path())
    }

    fn settings_path(&self) -> PathBuf {
        self.dir.join("atrest.json")
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn require_settings(&self) -> Result<Settings, ControlError> {
        self.settings()?
            .ok_or_else(|| ControlError::NotInitialised {
                path: self.dir.clone(),
            })
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

    /// The project's KMS, as the store calls it: the embedded one as the root's principal,
    /// or AwsKms. Before `init`, the embedded one as the account root.
    pub fn kms(&self) -> Result<Arc<dyn Kms>, ControlError> {
        match self.settings()? {
            Some(settings) => self.kms_for(&settings),
            None => Ok(Arc::new(self.kms_client(None, None)?)),
        }
    }

    fn kms_for(&self, settings: &Settings) -> Result<Arc<dyn Kms>, ControlError> {
        match &settings.kms {
            KmsSettings::Local => Ok(Arc::new(
                self.kms
                    .client(Caller::new(&settings.principal, &settings.region)?),
            )),
            KmsSettings::Aws(aws) => {
                let mut cached = self.aws.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(kms) = cached.as_ref() {
                    return Ok(kms.clone());
                }
                let kms = connect_aws(aws, &settings.region)?;
                *cached = Some(kms.clone());
                Ok(kms)
            }
        }
    }

    /// Points the project at its CMK and creates the node's store. With the embedded KMS and
    /// no CMK given, creates one (alias `alias/atrest-default`).
    pub fn init(&self, options: &InitOptions) -> Result<Settings, ControlError> {
        if self.settings()?.is_some() {
            return Err(ControlError::AlreadyInitialised {
                path: self.dir.clone(),
            });
        }
        if self.store_path().exists() {
            return Err(ControlError::InterruptedInit {
                path: self.dir.clone(),
                store: self.store_path(),
            });
        }
        let (kms, principal, cmk): (Arc<dyn Kms>, String, _) = match &options.kms {
            KmsSettings::Local => {
                let caller = Caller::account_root(&options.account, &options.region)?;
                let client = self.kms.client(caller.clone());
                let cmk = match &options.cmk {
                    Some(key) => client.describe_key(key)?,
                    None => default_cmk(&client)?,
                };
                (Arc::new(client), caller.principal().to_string(), cmk)
            }
            KmsSettings::Aws(aws) => {
                let key = options.cmk.as_deref().ok_or(ControlError::CmkRequired)?;
                let kms = connect_aws(aws, &options.region)?;
                let cmk = kms.describe_key(key)?;
                *self.aws.lock().unwrap_or_else(|p| p.into_inner()) = Some(kms.clone());
                let principal = aws
                    .role_arn
                    .clone()
                    .unwrap_or_else(|| "the AWS credential chain".into());
                (kms, principal, cmk)
            }
        };
        let settings = Settings {
            format: SETTINGS_FORMAT,
            account: if cmk.account.is_empty() {
                options.account.clone()
            } else {
                cmk.account.clone()
            },
            region: options.region.clone(),
            principal,
            cmk: cmk.arn,
            kms: options.kms.clone(),
            cmk_rotation: None,
            rotation: options.rotation,
            snapshot_retention: Retention::default(),
        };
        drop(Store::create(
            self.store_path(),
            kms,
            &settings.cmk,
            self.store_options(&settings),
        )?);
        write_json(&self.settings_path(), &settings)?;
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

    /// Opens the node's store under the project's CMK. While a CMK rotation is under
    /// way, the node may be wrapped by either key; both are accepted.
    pub fn open_store(&self) -> Result<Store, ControlError> {
        let settings = self.require_settings()?;
        let kms = self.kms_for(&settings)?;
        let options = self.store_options(&settings);
        match Store::open(
            self.store_path(),
            kms.clone(),
            &settings.cmk,
            options.clone(),
        ) {
            Err(StoreError::WrongCmk { expected, .. })
                if settings
                    .cmk_rotation
                    .as_ref()
                    .is_some_and(|r| r.to == expected || r.from == expected) =>
            {
                Ok(Store::open(self.store_path(), kms, &expected, options)?)
            }
            other => Ok(other?),
        }
    }

    /// CMK rotation: points the project at `key` (id, alias or ARN) and re-wraps the
    /// node's master key under it. The old key must stay enabled until this returns; if
    /// it is interrupted, running it again with the same key finishes it.
    pub fn set_key(&self, key: &str) -> Result<Settings, ControlError> {
        let mut settings = self.require_settings()?;
        let target = self.kms_for(&settings)?.describe_key(key)?.arn;
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
            write_json(&self.settings_path(), &settings)?;
        }
        let store = self.open_store()?;
        if store.keystore().cmk_arn() != target {
            store.rewrap_master_key(&target)?;
        }
        settings.cmk = target;
        settings.cmk_rotation = None;
        write_json(&self.settings_path(), &settings)?;
        Ok(settings)
    }

    /// Runs what emulator time has made due: KMS deletions and material rotations, then
    /// the store's master-key rotation and data-key rollover.
    pub fn tick(&self) -> Result<RootTick, ControlError> {
        let settings = self.settings()?;
        let embedded = settings.as_ref().is_none_or(|s| s.kms.is_local());
        let kms_events = if embedded { self.kms.tick()? } else { 0 };
        let Some(settings) = settings else {
            return Ok(RootTick {
                kms_events,
                ..RootTick::default()
            });
        };
        let store = Some(self.open_store()?.tick()?);
        let snapshots_deleted = self.apply_retention(settings.snapshot_retention)?;
        Ok(RootTick {
            kms_events,
            store,
            snapshots_deleted,
        })
    }

    /// Where this root's snapshot files live.
    pub fn snapshot_storage(&self) -> Result<LocalDirStorage, ControlError> {
        let dir = self.dir.join("snapshots");
        LocalDirStorage::new(&dir).map_err(|e| ControlError::Settings {
            path: dir,
            reason: e.to_string(),
        })
    }

    /// Takes a snapshot of the node, encrypted under its current CMK.
    pub fn create_snapshot(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, ControlError> {
        Ok(self
            .open_store()?
            .create_snapshot(&self.snapshot_storage()?, progress)?)
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
        write_json(&self.settings_path(), &settings)?;
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

    /// Which snapshots and stores depend on `key` (id, alias or ARN).
    pub fn key_usage(&self, key: &str) -> Result<KeyUsage, ControlError> {
        let arn = self.kms()?.describe_key(key)?.arn;
        let snapshots: Vec<SnapshotInfo> = self
            .snapshots()?
            .into_iter()
            .filter(|s| s.cmk_arn == arn)
            .collect();
        let settings = self.settings()?;
        let mut stores = Vec::new();
        if settings.as_ref().is_some_and(|s| s.cmk == arn) {
            stores.push(self.store_path().display().to_string());
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

    /// Restores snapshot `id` into this root's store, or into the store of the root at
    /// `target`: another project, which must be in the snapshot's region, or a new one
    /// (an uninitialised directory), initialised like this one. The snapshot's
    /// CMK must be enabled; the restored node is re-keyed under the target's CMK.
    pub fn restore_snapshot(
        &self,
        id: &str,
        target: Option<&Path>,
    ) -> Result<SnapshotInfo, ControlError> {
        let storage = self.snapshot_storage()?;
        let info = snapshot_info(&storage, id)?;
        let snapshot_kms = self.kms()?;
        let other;
        let target_root = match target {
            Some(dir) if fs::canonicalize(dir).ok() != fs::canonicalize(&self.dir).ok() => {
                other = Root::open(dir)?;
                if other.settings()?.is_none() {
                    // A new project, like this one: same account, region and policies.
                    let mine = self.require_settings()?;
                    let shared_cmk = (!mine.kms.is_local()).then_some(mine.cmk);
                    other.init(&InitOptions {
                        account: mine.account,
                        region: mine.region,
                        rotation: mine.rotation,
                        kms: mine.kms,
                        cmk: shared_cmk,
                    })?;
                }
                &other
            }
            _ => self,
        };
        let settings = target_root.require_settings()?;
        let options = target_root.store_options(&settings);
        let path = target_root.store_path();
        let store = restore_snapshot(
            &storage,
            id,
            snapshot_kms,
            RestoreTarget {
                path: &path,
                kms: target_root.kms_for(&settings)?,
                cmk: &settings.cmk,
                region: &settings.region,
                options,
            },
        )?;
        drop(store);
        Ok(info)
    }
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
fn connect_aws(aws: &AwsSettings, region: &str) -> Result<Arc<dyn Kms>, ControlError> {
    use crate::kms::{AssumeRole, AwsKms, AwsKmsConfig};
    let mut config = AwsKmsConfig::new(region);
    config.endpoint = aws.endpoint.clone();
    config.assume_role = aws.role_arn.as_ref().map(|role_arn| AssumeRole {
        role_arn: role_arn.clone(),
        external_id: aws.external_id.clone(),
        session_name: "atrest".into(),
    });
    Ok(Arc::new(AwsKms::connect(config)?))
}

#[cfg(not(feature = "aws"))]
fn connect_aws(_: &AwsSettings, _: &str) -> Result<Arc<dyn Kms>, ControlError> {
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
