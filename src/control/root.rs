//! An open root: its directory layout, its settings and how they change, its emulator
//! clock, the KMS clients its project uses, and opening its clusters.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use zeroize::Zeroizing;

use super::backup::recover_restore;
use super::cluster::{recover_node, Cluster, Gate, NodeLocks, NodeOpener};
use super::init::{DEFAULT_ACCOUNT, DEFAULT_REGION};
use super::organization::home_of;
use super::project::{Alert, ClusterConfig, KmsCaller, DEFAULT_CLUSTER};
use super::state::{
    read_json, read_settings, write_json, AwsSettings, ClockFile, KmsSettings, Settings,
    SnapshotSettings,
};
use super::{ControlError, ALERT_NODE_REBUILT};
use crate::clock::{days, Clock, OffsetClock, SharedClock, SystemClock, Timestamp};
use crate::durable::{write_atomic, FileLock};
use crate::kms::{Caller, Kms, LocalKms, LocalKmsClient};
use crate::store::{DataKeyLimits, SnapshotStorage, StoreOptions};

/// The lock every change to the root's state holds.
const LOCK_FILE: &str = "atrest.lock";
/// The settings and the project's control state.
const SETTINGS_FILE: &str = "atrest.json";
/// Emulator time: the offset added to the base clock.
const CLOCK_FILE: &str = "clock.json";
/// The secrets of legacy access keys, for AWS calls.
const CREDENTIALS_FILE: &str = "credentials.json";

/// An AwsKms and the role it assumes (`None`: the credential chain as is).
/// The AWS client of one caller (`KmsCaller`), kept for the process.
type AwsClient = (String, Arc<dyn Kms>);

/// An open root. Commands that only use the KMS work before `init`.
pub struct Root {
    pub(super) dir: PathBuf,
    /// Where the embedded KMS and the emulator clock live: this root's directory, or its
    /// organization's home when it is one of its projects.
    pub(super) shared: PathBuf,
    pub(super) clock: Arc<OffsetClock>,
    pub(super) kms: Arc<LocalKms>,
    /// The AWS client and the role it assumes, made on first use: it resolves credentials
    /// once per process.
    aws: Mutex<Option<AwsClient>>,
    /// The S3 snapshot storage and the settings it was made for, made on first use.
    pub(super) s3: Mutex<Option<(SnapshotSettings, Arc<dyn SnapshotStorage>)>>,
    pub(super) gate: Arc<Gate>,
    pub(super) wrap: Option<KmsWrapper>,
    /// The clusters this root has open, shared by every caller: a node's store is open in
    /// one place at a time.
    open_clusters: Mutex<BTreeMap<String, Weak<Cluster>>>,
    /// Whether opening a cluster another process holds waits for it, or is refused.
    wait_for_clusters: AtomicBool,
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
    /// Opens the root at `dir`, creating the directory and an empty KMS if absent. Its
    /// emulator time is real time plus the root's saved offset.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ControlError> {
        Self::open_with_clock(dir, Arc::new(SystemClock))
    }

    /// Opens the root at `dir` on `base` time (plus the root's saved offset): the one
    /// clock its KMS, its clusters' stores and its schedules all read. A test passes a
    /// [`ManualClock`](crate::clock::ManualClock) and moves everything by days at once.
    pub fn open_with_clock(dir: impl AsRef<Path>, base: SharedClock) -> Result<Self, ControlError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| ControlError::Io {
            path: dir.clone(),
            source,
        })?;
        let shared = home_of(&dir)?.unwrap_or_else(|| dir.clone());
        let offset = match read_json::<ClockFile>(&shared.join(CLOCK_FILE))? {
            Some(c) => Duration::from_millis(c.offset_ms),
            None => Duration::ZERO,
        };
        let clock = Arc::new(OffsetClock::over(base, offset));
        let kms = LocalKms::open(shared.join("kms"), clock.clone() as SharedClock)?;
        Root::with_parts(dir, shared, clock, kms, None)
    }

    pub(super) fn with_parts(
        dir: PathBuf,
        shared: PathBuf,
        clock: Arc<OffsetClock>,
        kms: Arc<LocalKms>,
        wrap: Option<KmsWrapper>,
    ) -> Result<Self, ControlError> {
        let gate = Arc::new(Gate::watching(dir.join(SETTINGS_FILE)));
        let root = Root {
            dir,
            shared,
            clock,
            kms,
            aws: Mutex::new(None),
            s3: Mutex::new(None),
            gate,
            wrap,
            open_clusters: Mutex::new(BTreeMap::new()),
            wait_for_clusters: AtomicBool::new(false),
        };
        if let Some(settings) = root.settings()? {
            root.gate.sync(&settings);
        }
        Ok(root)
    }

    /// When `wait`, opening a cluster that another process holds waits until it lets go;
    /// by default it is refused with an error naming the holder.
    pub fn wait_for_clusters(&self, wait: bool) {
        self.wait_for_clusters.store(wait, Ordering::SeqCst);
    }

    pub(super) fn waits_for_clusters(&self) -> bool {
        self.wait_for_clusters.load(Ordering::SeqCst)
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root's emulator clock.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// How far emulator time is ahead of its base clock (real time, unless the root was
    /// opened with another).
    pub fn clock_offset(&self) -> Duration {
        self.clock.offset()
    }

    /// Moves emulator time forward by `by`, for this root and every later command.
    /// A project of an organization moves the whole organization's clock.
    pub fn advance_clock(&self, by: Duration) -> Result<(), ControlError> {
        let path = self.shared.join(LOCK_FILE);
        let _lock = FileLock::acquire(&path).map_err(|source| ControlError::Io { path, source })?;
        let saved = read_json::<ClockFile>(&self.shared.join(CLOCK_FILE))?.unwrap_or_default();
        let offset = Duration::from_millis(saved.offset_ms).saturating_add(by);
        let base = self.clock.base().now();
        if base.saturating_add(offset) > Timestamp::LATEST {
            return Err(ControlError::ClockOutOfRange {
                latest: Timestamp::LATEST,
            });
        }
        let file = ClockFile {
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
        };
        write_json(&self.shared.join(CLOCK_FILE), &file)?;
        // One clock object for the KMS and every open store: all of them move at once.
        self.clock.set_offset(offset);
        Ok(())
    }

    /// Catches up with emulator time another process moved (`clock advance`, another
    /// server): a long-running process calls this before each request, so its clock is
    /// never behind the root's.
    pub fn sync_clock(&self) -> Result<(), ControlError> {
        if let Some(saved) = read_json::<ClockFile>(&self.shared.join(CLOCK_FILE))? {
            let saved = Duration::from_millis(saved.offset_ms);
            if saved > self.clock.offset() {
                self.clock.set_offset(saved);
            }
        }
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
        read_settings(&self.settings_path())
    }

    pub(super) fn settings_path(&self) -> PathBuf {
        self.dir.join(SETTINGS_FILE)
    }

    pub(super) fn clusters_dir(&self) -> PathBuf {
        self.dir.join("clusters")
    }

    pub(super) fn node_paths(&self, cluster: &str, nodes: u32) -> Vec<PathBuf> {
        (0..nodes)
            .map(|k| self.clusters_dir().join(cluster).join(format!("node-{k}")))
            .collect()
    }

    /// The settings of an initialised root; `NotInitialised` before `init`.
    pub fn require_settings(&self) -> Result<Settings, ControlError> {
        self.settings()?
            .ok_or_else(|| ControlError::NotInitialised {
                path: self.dir.clone(),
            })
    }

    pub(super) fn save(&self, settings: &Settings) -> Result<(), ControlError> {
        write_json(&self.settings_path(), settings)?;
        self.gate.sync(settings);
        Ok(())
    }

    /// Holds the root's lock: one read-change-write of its state at a time, across every
    /// process sharing the root.
    pub(super) fn lock(&self) -> Result<FileLock, ControlError> {
        let path = self.dir.join(LOCK_FILE);
        FileLock::acquire(&path).map_err(|source| ControlError::Io { path, source })
    }

    /// The one way settings change: under the root's lock, read them, let `change` edit
    /// them, and write them back only if it succeeds (an error leaves the file as it was).
    /// Long operations run their slow part between two transactions, never holding a copy
    /// across it.
    pub(crate) fn transact<T>(
        &self,
        change: impl FnOnce(&mut Settings) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let _lock = self.lock()?;
        let before = self.require_settings()?;
        let mut settings = before.clone();
        let out = change(&mut settings)?;
        if settings != before {
            self.save(&settings)?;
        }
        Ok(out)
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
            Some(settings) => self.kms_for(&settings, settings.project.kms_caller()),
            None => Ok(Arc::new(self.kms_client(None, None)?)),
        }
    }

    pub(super) fn kms_for(
        &self,
        settings: &Settings,
        caller: KmsCaller<'_>,
    ) -> Result<Arc<dyn Kms>, ControlError> {
        let kms = self.unwrapped_kms_for(settings, caller)?;
        Ok(match &self.wrap {
            Some(wrap) => wrap(kms),
            None => kms,
        })
    }

    fn unwrapped_kms_for(
        &self,
        settings: &Settings,
        caller: KmsCaller<'_>,
    ) -> Result<Arc<dyn Kms>, ControlError> {
        match &settings.kms {
            KmsSettings::Local => {
                let principal = self.kms_principal(settings, caller)?;
                Ok(Arc::new(
                    self.kms.client(Caller::new(&principal, &settings.region)?),
                ))
            }
            KmsSettings::Aws(aws) => {
                let identity = match caller {
                    KmsCaller::Ambient => "the credential chain".to_string(),
                    KmsCaller::Role(role) => role.iam_assumed_role_arn.clone(),
                    KmsCaller::AccessKey(id) => id.to_string(),
                };
                let mut cached = self.aws.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((cached_identity, kms)) = cached.as_ref() {
                    if *cached_identity == identity {
                        return Ok(kms.clone());
                    }
                }
                let credentials = match caller {
                    KmsCaller::AccessKey(id) => Some(self.saved_secret(id)?),
                    _ => None,
                };
                let kms = connect_aws(aws, &settings.region, caller, credentials)?;
                *cached = Some((identity, kms.clone()));
                Ok(kms)
            }
        }
    }

    /// Who `caller` is, as key policies and messages name it: the role, the principal an
    /// embedded access key belongs to, or the root's principal.
    pub(super) fn kms_principal(
        &self,
        settings: &Settings,
        caller: KmsCaller<'_>,
    ) -> Result<String, ControlError> {
        Ok(match caller {
            KmsCaller::Ambient => settings.principal.clone(),
            KmsCaller::Role(role) => role.iam_assumed_role_arn.clone(),
            KmsCaller::AccessKey(id) if settings.kms.is_local() => {
                self.kms.access_key_principal(id, None)?
            }
            KmsCaller::AccessKey(id) => format!("the IAM user of access key {id}"),
        })
    }

    /// Keeps the secret of the project's legacy access key `id` for AWS calls: in
    /// `ROOT/credentials.json`, owner-only, never in the settings.
    pub(super) fn save_secret(&self, id: &str, secret: &str) -> Result<(), ControlError> {
        self.change_secrets(|saved| {
            saved.insert(id.to_string(), Zeroizing::new(secret.to_string()));
        })
    }

    /// Drops the secret kept under `id`. Like [`Root::save_secret`], under the settings
    /// lock (its callers change the settings in the same step).
    pub(super) fn forget_secret(&self, id: &str) -> Result<(), ControlError> {
        self.change_secrets(|saved| {
            saved.remove(id);
        })
    }

    fn change_secrets(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Zeroizing<String>>),
    ) -> Result<(), ControlError> {
        let mut saved = self.saved_secrets()?;
        change(&mut saved);
        let plain: BTreeMap<&str, &str> = saved
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bytes = Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default());
        let path = self.dir.join(CREDENTIALS_FILE);
        write_atomic(&path, &bytes).map_err(|source| ControlError::Io { path, source })
    }

    pub(super) fn saved_secret(&self, id: &str) -> Result<Zeroizing<String>, ControlError> {
        self.saved_secrets()?
            .remove(id)
            .ok_or_else(|| ControlError::MissingSecret {
                access_key_id: id.to_string(),
            })
    }

    fn saved_secrets(&self) -> Result<BTreeMap<String, Zeroizing<String>>, ControlError> {
        let path = self.dir.join(CREDENTIALS_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => return Err(ControlError::Io { path, source }),
        };
        let saved: BTreeMap<String, String> = serde_json::from_slice(&bytes)
            .map_err(|source| ControlError::SettingsCorrupt { path, source })?;
        Ok(saved
            .into_iter()
            .map(|(id, secret)| (id, Zeroizing::new(secret)))
            .collect())
    }

    pub(super) fn store_options(&self, settings: &Settings) -> StoreOptions {
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

    pub(super) fn opener(&self, settings: &Settings) -> Result<NodeOpener, ControlError> {
        let mut cmks = vec![settings.cmk.clone()];
        if let Some(r) = &settings.cmk_rotation {
            cmks.extend([r.to.clone(), r.from.clone()]);
        }
        Ok(NodeOpener {
            kms: self.kms_for(settings, settings.project.kms_caller())?,
            cmks,
            options: self.store_options(settings),
        })
    }

    /// Opens cluster `name` (the default cluster when `None`). While the project's key is
    /// invalid, an encrypted cluster refuses, saying why.
    pub fn cluster(&self, name: Option<&str>) -> Result<Arc<Cluster>, ControlError> {
        let settings = self.require_settings()?;
        let config = settings.project.cluster(name.unwrap_or(DEFAULT_CLUSTER))?;
        self.open_cluster(&settings, config)
    }

    /// The cluster `config` describes: the one this root already has open, brought up to
    /// date with `settings`, or newly opened.
    fn open_cluster(
        &self,
        settings: &Settings,
        config: &ClusterConfig,
    ) -> Result<Arc<Cluster>, ControlError> {
        let spec = &config.spec;
        let encrypted = spec.encrypt || config.rewrite_to_encrypted.is_some();
        let opener = self.opener(settings)?;
        let mut open = self.open_clusters.lock().unwrap_or_else(|p| p.into_inner());
        let nodes = usize::try_from(spec.nodes).unwrap_or(usize::MAX);
        if let Some(cluster) = open.get(&spec.name).and_then(Weak::upgrade) {
            if cluster.node_count() == nodes {
                cluster.refresh(encrypted, opener)?;
                drop(open);
                self.report_rebuilt(&cluster)?;
                return Ok(cluster);
            }
        }
        let paths = self.node_paths(&spec.name, spec.nodes);
        let locks = NodeLocks::take(&paths, self.wait_for_clusters.load(Ordering::SeqCst))?;
        recover_restore(&self.clusters_dir().join(&spec.name), &paths)?;
        for path in &paths {
            recover_node(path)?;
        }
        let cluster = Arc::new(Cluster::open(
            &spec.name,
            encrypted,
            paths,
            opener,
            self.gate.clone(),
            locks,
        )?);
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(spec.name.clone(), Arc::downgrade(&cluster));
        drop(open);
        self.report_rebuilt(&cluster)?;
        Ok(cluster)
    }

    /// Raises an alert for each node of `cluster` rebuilt from a replica.
    fn report_rebuilt(&self, cluster: &Cluster) -> Result<(), ControlError> {
        let rebuilt = cluster.take_rebuilt();
        if rebuilt.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        self.transact(|s| {
            for node in &rebuilt {
                s.project.raise(
                    ALERT_NODE_REBUILT,
                    now,
                    format!(
                        "cluster {} {}: {}; rebuilt from a healthy replica, nothing lost",
                        cluster.name(),
                        node.node,
                        node.reason
                    ),
                );
            }
            Ok(())
        })
    }

    /// Every alert, oldest first.
    pub fn alerts(&self) -> Result<Vec<Alert>, ControlError> {
        Ok(self.require_settings()?.project.alerts)
    }
}

#[cfg(feature = "aws")]
pub(super) fn connect_aws(
    aws: &AwsSettings,
    region: &str,
    caller: KmsCaller<'_>,
    secret: Option<Zeroizing<String>>,
) -> Result<Arc<dyn Kms>, ControlError> {
    use crate::kms::{AssumeRole, AwsKms, AwsKmsConfig, StaticCredentials};
    let mut config = AwsKmsConfig::new(region);
    config.endpoint = aws.endpoint.clone();
    match (caller, secret) {
        (KmsCaller::Role(role), _) => {
            config.assume_role = Some(AssumeRole {
                role_arn: role.iam_assumed_role_arn.clone(),
                external_id: Some(role.atlas_assumed_role_external_id.clone()),
                session_name: "atrest".into(),
            })
        }
        (KmsCaller::AccessKey(id), Some(secret)) => {
            config.credentials = Some(StaticCredentials {
                access_key_id: id.to_string(),
                secret_access_key: secret,
                session_token: None,
            })
        }
        _ => {}
    }
    Ok(Arc::new(AwsKms::connect(config)?))
}

#[cfg(not(feature = "aws"))]
pub(super) fn connect_aws(
    _: &AwsSettings,
    _: &str,
    _: KmsCaller<'_>,
    _: Option<Zeroizing<String>>,
) -> Result<Arc<dyn Kms>, ControlError> {
    Err(ControlError::AwsNotBuilt)
}
