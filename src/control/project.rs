//! Atlas's project: the persisted control state and the rules Atlas checks on it.
//!
//! Owns the project (id, owner), its users and their roles, the cloud provider access
//! roles authorized for Atlas, the encryption-at-rest configuration, each cluster's
//! settings, the validity-check state, alerts, and the changes queued while the project's
//! clusters are shut down. Everything here is data and pure checks; calling the KMS and
//! opening stores is the root's (`control::Root`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alert_configs::{AlertConfig, ATLAS_ALERTS};
use super::api_keys::ApiKey;
use super::events::Event;
use super::ids::atlas_id;
use super::private_endpoints::PrivateEndpoint;
use super::restore_jobs::RestoreJob;
use super::ControlError;
use crate::clock::Timestamp;

/// The user `init` makes the project's owner.
pub const DEFAULT_OWNER: &str = "owner";
/// The cluster `init` creates, and the one data commands use by default.
pub const DEFAULT_CLUSTER: &str = "Cluster0";
/// Nodes per cluster unless told otherwise: Atlas's three-member replica set.
pub const DEFAULT_NODES: u32 = 3;
/// Minutes between validity checks unless configured: Atlas checks every 15.
pub const DEFAULT_CHECK_INTERVAL_MINUTES: u64 = 15;
/// Days after a CMK is set before the rotation reminder fires: Atlas's 90.
pub const DEFAULT_ROTATION_REMINDER_DAYS: u64 = 90;

/// A role a user holds in the project, by Atlas's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProjectRole {
    /// Project Owner: may configure encryption at rest and enable it on clusters.
    #[serde(rename = "GROUP_OWNER")]
    Owner,
    /// Project Cluster Manager: may create and change clusters, not their encryption.
    #[serde(rename = "GROUP_CLUSTER_MANAGER")]
    ClusterManager,
    /// Project Read Only: may read the project's settings, change nothing.
    #[serde(rename = "GROUP_READ_ONLY")]
    ReadOnly,
}

impl ProjectRole {
    /// Atlas's name.
    pub fn atlas_name(self) -> &'static str {
        match self {
            ProjectRole::Owner => "GROUP_OWNER",
            ProjectRole::ClusterManager => "GROUP_CLUSTER_MANAGER",
            ProjectRole::ReadOnly => "GROUP_READ_ONLY",
        }
    }
}

/// A user of the project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's name.
    pub username: String,
    /// The user's role in the project.
    pub role: ProjectRole,
}

/// An IAM role authorized for Atlas to assume (Atlas's cloud provider access role).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRole {
    /// Atlas's id for the role (24 hex digits), which the encryption config names.
    pub role_id: String,
    /// The customer's IAM role.
    pub iam_assumed_role_arn: String,
    /// The external id the role's trust policy requires of Atlas.
    pub atlas_assumed_role_external_id: String,
    /// When it was authorized.
    pub authorized_date: Timestamp,
    /// When Atlas set it up (before it was authorized); unknown for roles authorized in
    /// one step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<Timestamp>,
}

/// An AWS IAM access role Atlas has set up (its id and the external id the customer's
/// trust policy must require) but has not been authorized to assume yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAccessRole {
    /// Atlas's id for the role (24 hex digits).
    pub role_id: String,
    /// The external id the role's trust policy must require of Atlas.
    pub atlas_assumed_role_external_id: String,
    /// When it was set up.
    pub created_date: Timestamp,
}

/// How Atlas reaches the customer's KMS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KmsAccess {
    /// Role-based: assume this access role. Cannot be switched back to credentials.
    Role {
        /// The access role's id.
        role_id: String,
    },
    /// Legacy: an IAM user's access key (its secret is kept apart, owner-only, never in the
    /// settings).
    Credentials {
        /// The access key id.
        access_key_id: String,
    },
}

/// What `init` records as the credentials of a project that calls its KMS as the root's
/// principal (embedded) or with the AWS credential chain: no access key of its own.
pub const CREDENTIAL_CHAIN: &str = "from the AWS credential chain";

impl KmsAccess {
    /// Whom this access calls the KMS as, in `project`.
    pub fn caller<'a>(&'a self, project: &'a ProjectState) -> KmsCaller<'a> {
        match self {
            KmsAccess::Role { role_id } => project
                .access_role(role_id)
                .map_or(KmsCaller::Ambient, KmsCaller::Role),
            KmsAccess::Credentials { access_key_id } if access_key_id == CREDENTIAL_CHAIN => {
                KmsCaller::Ambient
            }
            KmsAccess::Credentials { access_key_id } => KmsCaller::AccessKey(access_key_id),
        }
    }
}

/// Whom a project's KMS calls are made as.
#[derive(Clone, Copy, Debug)]
pub enum KmsCaller<'a> {
    /// The root's principal (embedded KMS), or the AWS credential chain.
    Ambient,
    /// An authorized IAM role, assumed with its external id.
    Role(&'a AccessRole),
    /// A legacy IAM user's access key.
    AccessKey(&'a str),
}

/// The project's encryption-at-rest configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfig {
    /// Whether the project has a usable configuration.
    pub enabled: bool,
    /// How the KMS is reached.
    pub access: Option<KmsAccess>,
    /// Atlas's private-networking switch; recorded and shown, nothing else here.
    pub require_private_networking: bool,
    /// The last validity check's verdict.
    pub valid: bool,
    /// When the current CMK was set: the rotation reminder counts from here.
    pub cmk_set_at: Timestamp,
    /// Whether the reminder for the current CMK has fired.
    pub rotation_reminded: bool,
}

/// Cloud backups (snapshots), legacy backups, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backup {
    /// Cloud Backups: what encryption at rest requires.
    Cloud,
    /// Legacy backups: refused with encryption at rest.
    Legacy,
    /// No backups.
    None,
}

/// What `cluster create` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The cluster's name.
    pub name: String,
    /// Atlas's instance size, `M10` or larger for encryption at rest.
    pub tier: String,
    /// Nodes (replica set members).
    pub nodes: u32,
    /// Backup kind.
    pub backup: Backup,
    /// A serverless instance.
    pub serverless: bool,
    /// Encryption at rest with the project's CMK.
    pub encrypt: bool,
}

/// A cluster's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// What it was created with; `encrypt` follows enable/disable-encryption.
    pub spec: ClusterSpec,
    /// A rolling rewrite that has not reached every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_to_encrypted: Option<bool>,
}

/// A project alert, as Atlas names its event types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Atlas's event type name.
    pub event_type_name: String,
    /// When it fired.
    pub created: Timestamp,
    /// What happened and what to do.
    pub text: String,
    /// The alert configuration that raised it, for the alerts Atlas raises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_config_id: Option<String>,
    /// Acknowledged through Atlas's API: until when, why, by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
}

/// An alert's acknowledgement: Atlas sends no more notifications of it until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    /// When it lapses.
    pub until: Timestamp,
    /// What the acknowledger wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who acknowledged it: a member or an API key's public half.
    pub by: String,
}

/// A configuration change made while the clusters were shut down, applied by the next
/// good validity check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum QueuedChange {
    /// `cluster create`.
    CreateCluster {
        /// The new cluster.
        spec: ClusterSpec,
    },
    /// `cluster enable-encryption`.
    EnableEncryption {
        /// The cluster.
        cluster: String,
    },
    /// `cluster disable-encryption`.
    DisableEncryption {
        /// The cluster.
        cluster: String,
    },
    /// `rotate master`.
    RotateMasterKey {
        /// The cluster.
        cluster: String,
    },
}

impl QueuedChange {
    /// The cluster the change is for.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            QueuedChange::CreateCluster { spec } => Some(&spec.name),
            QueuedChange::EnableEncryption { cluster }
            | QueuedChange::DisableEncryption { cluster }
            | QueuedChange::RotateMasterKey { cluster } => Some(cluster),
        }
    }
}

/// Validity checks: when, and the clusters' state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validity {
    /// Minutes of Clock time between checks on `tick`.
    pub interval_minutes: u64,
    /// When the last check ran.
    pub last_check: Option<Timestamp>,
    /// Why the project's encrypted clusters are shut down, if they are.
    pub shut_down: Option<String>,
    /// Since when the KMS has been unreachable, if it is.
    pub unreachable_since: Option<Timestamp>,
}

/// The project's whole control state, saved in the root's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectState {
    /// Atlas's project id (24 hex digits).
    pub id: String,
    /// The project's name.
    pub name: String,
    /// The user who created it.
    pub owner: String,
    /// Users and their roles.
    pub users: Vec<User>,
    /// IAM roles authorized for Atlas.
    pub access_roles: Vec<AccessRole>,
    /// Access roles set up and waiting to be authorized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_roles: Vec<PendingAccessRole>,
    /// Programmatic API keys and their roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    /// Private endpoints to the KMS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_endpoints: Vec<PrivateEndpoint>,
    /// Restores asked for through Atlas's API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_jobs: Vec<RestoreJob>,
    /// What happened, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// When the project was created (unknown for roots made before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Encryption at rest.
    pub encryption: EncryptionConfig,
    /// Clusters by name.
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// Validity checks.
    pub validity: Validity,
    /// Alerts, oldest first.
    pub alerts: Vec<Alert>,
    /// Changes waiting for the clusters to come back.
    pub queue: Vec<QueuedChange>,
    /// Days after a CMK is set before AWS_ENCRYPTION_KEY_NEEDS_ROTATION fires, as long as
    /// the project keeps Atlas's default alert configurations.
    pub rotation_reminder_days: u64,
    /// The alert configurations, once one was changed (`None`: Atlas's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_configs: Option<Vec<AlertConfig>>,
}

impl ProjectState {
    /// A project owned by `owner`, with encryption not yet configured.
    pub fn new(name: &str, owner: &str, now: Timestamp) -> Self {
        ProjectState {
            id: atlas_id(),
            name: name.to_string(),
            owner: owner.to_string(),
            users: vec![User {
                username: owner.to_string(),
                role: ProjectRole::Owner,
            }],
            access_roles: Vec::new(),
            pending_roles: Vec::new(),
            api_keys: Vec::new(),
            private_endpoints: Vec::new(),
            restore_jobs: Vec::new(),
            events: Vec::new(),
            created: Some(now),
            encryption: EncryptionConfig {
                enabled: false,
                access: None,
                require_private_networking: false,
                valid: false,
                cmk_set_at: now,
                rotation_reminded: false,
            },
            clusters: BTreeMap::new(),
            validity: Validity {
                interval_minutes: DEFAULT_CHECK_INTERVAL_MINUTES,
                last_check: None,
                shut_down: None,
                unreachable_since: None,
            },
            alerts: Vec::new(),
            queue: Vec::new(),
            rotation_reminder_days: DEFAULT_ROTATION_REMINDER_DAYS,
            alert_configs: None,
        }
    }

    /// The role of `user`, a member or the public half of an API key.
    pub fn role_of(&self, user: &str) -> Result<ProjectRole, ControlError> {
        let users = self.users.iter().map(|u| (u.username.as_str(), u.role));
        let keys = self
            .api_keys
            .iter()
            .map(|k| (k.public_key.as_str(), k.role));
        users
            .chain(keys)
            .find(|(name, _)| *name == user)
            .map(|(_, role)| role)
            .ok_or_else(|| ControlError::UnknownUser {
                user: user.to_string(),
                users: self.users.iter().map(|u| u.username.clone()).collect(),
            })
    }

    /// Refuses a Project Read Only `user` (and a stranger): `action` says what was refused.
    pub fn require_writer(&self, user: &str, action: &str) -> Result<(), ControlError> {
        match self.role_of(user)? {
            ProjectRole::ReadOnly => Err(ControlError::ReadOnlyRole {
                user: user.to_string(),
                action: action.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses unless `user` is a Project Owner: `action` says what was refused.
    pub fn require_owner(&self, user: &str, action: &str) -> Result<(), ControlError> {
        match self.role_of(user)? {
            ProjectRole::Owner => Ok(()),
            role => Err(ControlError::NotProjectOwner {
                user: user.to_string(),
                role: role.atlas_name(),
                action: action.to_string(),
            }),
        }
    }

    /// The access role with this id.
    pub fn access_role(&self, role_id: &str) -> Result<&AccessRole, ControlError> {
        self.access_roles
            .iter()
            .find(|r| r.role_id == role_id)
            .ok_or_else(|| ControlError::UnknownAccessRole {
                role_id: role_id.to_string(),
            })
    }

    /// The IAM role (ARN, external id) the KMS is called as, in role-based access.
    pub fn kms_role(&self) -> Option<&AccessRole> {
        match self.kms_caller() {
            KmsCaller::Role(role) => Some(role),
            _ => None,
        }
    }

    /// Whom the project's KMS calls are made as.
    pub fn kms_caller(&self) -> KmsCaller<'_> {
        self.encryption
            .access
            .as_ref()
            .map_or(KmsCaller::Ambient, |access| access.caller(self))
    }

    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Result<&ClusterConfig, ControlError> {
        self.clusters
            .get(name)
            .ok_or_else(|| ControlError::UnknownCluster {
                name: name.to_string(),
                clusters: self.clusters.keys().cloned().collect(),
            })
    }

    /// Cluster `name`, to change it.
    pub fn cluster_mut(&mut self, name: &str) -> Result<&mut ClusterConfig, ControlError> {
        let clusters: Vec<String> = self.clusters.keys().cloned().collect();
        self.clusters
            .get_mut(name)
            .ok_or_else(|| ControlError::UnknownCluster {
                name: name.to_string(),
                clusters,
            })
    }

    /// The clusters that use encryption at rest (or are being rewritten to it).
    pub fn encrypted_clusters(&self) -> Vec<String> {
        self.clusters
            .values()
            .filter(|c| c.spec.encrypt || c.rewrite_to_encrypted.is_some())
            .map(|c| c.spec.name.clone())
            .collect()
    }

    /// Records an alert, unless it is one of Atlas's and no enabled configuration raises
    /// it.
    pub fn raise(&mut self, event_type_name: &str, created: Timestamp, text: String) {
        let alert_config_id = match ATLAS_ALERTS.contains(&event_type_name) {
            true => match self.raising_config(event_type_name) {
                Some(config) => Some(config.id),
                None => return,
            },
            false => None,
        };
        self.alerts.push(Alert {
            event_type_name: event_type_name.to_string(),
            created,
            text,
            alert_config_id,
            acknowledged: None,
        });
    }
}
