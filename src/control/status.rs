//! The project as Atlas's API shows it, and a cluster's nodes and keys as `status` shows them.

use std::fmt;

use serde::Serialize;

use super::cluster::NodeStatus;
use super::ids::atlas_region;
use super::project::{AccessRole, ClusterConfig, KmsAccess, QueuedChange, User, DEFAULT_CLUSTER};
use super::state::CmkRotation;
use super::{ControlError, Root};
use crate::clock::Timestamp;
use crate::kms::KeyMetadata;

/// A cluster as `atrest status` shows it: every node's store and keys, the project's CMK
/// as the KMS describes it, and a CMK rotation under way.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// Each node, node-0 first.
    pub nodes: Vec<NodeStatus>,
    /// The project's CMK, when a node is encrypted.
    pub cmk: Option<KeyMetadata>,
    /// A CMK rotation that has not reached every node yet.
    pub cmk_rotation: Option<CmkRotation>,
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

impl Root {
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

    /// Cluster `name` (the default cluster when `None`): its nodes and keys, the CMK, and
    /// a CMK rotation in progress.
    pub fn cluster_status(&self, name: Option<&str>) -> Result<ClusterStatus, ControlError> {
        let name = name.unwrap_or(DEFAULT_CLUSTER);
        let nodes = self.cluster(Some(name))?.status()?;
        let settings = self.require_settings()?;
        let cmk = match nodes.iter().any(|n| n.encrypted) {
            true => Some(self.kms()?.describe_key(&settings.cmk)?),
            false => None,
        };
        Ok(ClusterStatus {
            cluster: name.to_string(),
            nodes,
            cmk,
            cmk_rotation: settings.cmk_rotation,
        })
    }
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster     {}, {} node(s)",
            self.cluster,
            self.nodes.len()
        )?;
        if let Some(cmk) = &self.cmk {
            write!(f, "\nCMK         {}  [{}]", cmk.arn, cmk.key_state)?;
        }
        if let Some(r) = &self.cmk_rotation {
            write!(
                f,
                "\n            CMK rotation in progress since {} from {} to {}: keep both keys enabled until rotating to {} again finishes it",
                r.started, r.from, r.to, r.to
            )?;
        }
        for node in &self.nodes {
            let Some(status) = &node.keys else {
                write!(
                    f,
                    "\n{:<11} not encrypted ({})",
                    node.node,
                    node.path.display()
                )?;
                continue;
            };
            let next = status
                .master_key_next_rotation
                .map_or("automatic rotation off".to_string(), |t| {
                    format!("next rotation due {t}")
                });
            write!(
                f,
                "\n{:<11} store {}, master key version {}, created {}, {next}",
                node.node, status.store_id, status.master_key_version, status.master_key_created
            )?;
            for db in &status.databases {
                write!(
                    f,
                    "\n            database {:<16} data key {} active since {} ({} days, {} uses); {} key(s), oldest from {}",
                    db.database, db.active_data_key, db.active_since, db.active_age_days, db.active_uses, db.data_keys, db.oldest_data_key_created
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for ProjectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kms = &self.encryption_at_rest.aws_kms;
        let access = match (&kms.role_id, &kms.access_key_id) {
            (Some(role), _) => format!("role {role}"),
            (_, Some(key)) => format!("credentials {key}"),
            _ => "no access configured".into(),
        };
        write!(
            f,
            "project     {} ({}), region {}, owner {}",
            self.name, self.id, self.region, self.owner
        )?;
        write!(
            f,
            "\nencryption  enabled {}, valid {}, CMK {}, {access}",
            kms.enabled,
            kms.valid,
            match kms.customer_master_key_id.as_str() {
                "" => "none yet",
                cmk => cmk,
            }
        )?;
        for user in &self.users {
            write!(
                f,
                "\nuser        {} ({})",
                user.username,
                user.role.atlas_name()
            )?;
        }
        for role in &self.cloud_provider_access_roles {
            write!(
                f,
                "\nIAM role    {} {} (external id {})",
                role.role_id, role.iam_assumed_role_arn, role.atlas_assumed_role_external_id
            )?;
        }
        for c in &self.clusters {
            let serverless = if c.spec.serverless {
                ", serverless"
            } else {
                ""
            };
            let encrypted = if c.spec.encrypt {
                "encrypted"
            } else {
                "not encrypted"
            };
            write!(
                f,
                "\ncluster     {} {} {} node(s), backup {:?}{serverless}, {encrypted}",
                c.spec.name, c.spec.tier, c.spec.nodes, c.spec.backup
            )?;
        }
        if let Some(reason) = &self.shut_down {
            write!(f, "\nSHUT DOWN   {reason}")?;
        }
        for change in &self.queued_changes {
            write!(f, "\nqueued      {change:?}")?;
        }
        Ok(())
    }
}
