//! Creating a project: its owner, access role, CMK, encryption at rest and first cluster.

use zeroize::Zeroizing;

use super::backup_storage::check_reachable;
use super::project::{
    Backup, ClusterConfig, ClusterSpec, ProjectState, CREDENTIAL_CHAIN, DEFAULT_CLUSTER,
    DEFAULT_NODES, DEFAULT_OWNER,
};
use super::rules::{authorize, check_cluster_shape};
use super::state::{KmsSettings, Retention, RotationSettings, Settings, SnapshotSettings};
use super::{AccessRequest, ControlError, Root};
use crate::clock::Clock;
use crate::keys::MAX_DATA_KEY_USES;
use crate::kms::{Caller, CreateKeyRequest, KeyMetadata, KmsError, LocalKmsClient};

/// The AWS account `init` uses unless told otherwise.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The AWS region `init` uses unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The alias `init` gives the project's first CMK.
pub const DEFAULT_CMK_ALIAS: &str = "alias/atrest-default";
/// The IAM role `init` authorizes for Atlas in the embedded KMS's account.
pub const DEFAULT_ROLE_NAME: &str = "atlas-kms";

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
    /// Where snapshots live.
    pub snapshots: SnapshotSettings,
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
            snapshots: SnapshotSettings::Local,
        }
    }
}

impl Root {
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
        if options.rotation.data_key_max_uses == 0
            || options.rotation.data_key_max_uses > MAX_DATA_KEY_USES
        {
            return Err(ControlError::DataKeyUsesOutOfRange {
                uses: options.rotation.data_key_max_uses,
                max: MAX_DATA_KEY_USES,
            });
        }
        if options.snapshots != SnapshotSettings::Local {
            check_reachable(
                self.storage_for(&options.snapshots, &options.region)?
                    .as_ref(),
            )?;
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
            format: Settings::FORMAT,
            account: options.account.clone(),
            region: options.region.clone(),
            principal,
            cmk: String::new(),
            kms: options.kms.clone(),
            cmk_rotation: None,
            rotation: options.rotation,
            snapshot_retention: Retention::default(),
            snapshots: options.snapshots.clone(),
            project: ProjectState::new("atrest", DEFAULT_OWNER, now),
        };
        let access = match role {
            Some((arn, external_id)) => {
                let role = authorize(&mut settings, &arn, external_id, now)?;
                AccessRequest::Role(role.role_id)
            }
            None => AccessRequest::Credentials {
                access_key_id: CREDENTIAL_CHAIN.into(),
                secret_access_key: Zeroizing::new("(chain)".into()),
            },
        };
        self.configure_encryption_in(&mut settings, DEFAULT_OWNER, &cmk, access, false)?;
        let spec = ClusterSpec {
            name: DEFAULT_CLUSTER.into(),
            tier: "M10".into(),
            nodes: options.nodes,
            backup: Backup::Cloud,
            serverless: false,
            encrypt: true,
        };
        check_cluster_shape(&spec)?;
        let locks = self.lock_new_cluster(&spec)?;
        self.create_nodes(&settings, &spec)?;
        drop(locks);
        settings.project.clusters.insert(
            spec.name.clone(),
            ClusterConfig {
                spec,
                rewrite_to_encrypted: None,
            },
        );
        let _lock = self.lock()?;
        if self.settings()?.is_some() {
            return Err(ControlError::AlreadyInitialised {
                path: self.dir.clone(),
            });
        }
        self.save(&settings)?;
        Ok(settings)
    }
}

fn default_cmk(client: &LocalKmsClient) -> Result<KeyMetadata, ControlError> {
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
