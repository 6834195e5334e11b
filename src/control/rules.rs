//! Atlas's rules for encryption at rest, each a check with its own error: who may act, which
//! key and role a project may use, which clusters may use it.

use super::events::{
    EVENT_CLUSTER_UPDATE_COMPLETED, EVENT_CONFIGURATION_UPDATED, EVENT_ROLE_ADDED,
};
use super::ids::{atlas_id, uuid_string};
use super::project::{
    AccessRole, Backup, ClusterSpec, KmsAccess, KmsCaller, ProjectRole, QueuedChange, User,
};
use super::state::Settings;
use super::{Applied, ControlError, Root};
use crate::clock::{Clock, Timestamp};
use crate::crash::{reach, CrashPoint};
use crate::kms::{Caller, EncryptionContext, KeySpec, KeyUsage as KmsKeyUsage, Kms, KmsError};

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

impl Root {
    /// Adds `username` with `role`; only a Project Owner may.
    pub fn add_user(
        &self,
        acting: &str,
        username: &str,
        role: ProjectRole,
    ) -> Result<(), ControlError> {
        check_user_name(username)?;
        self.transact(|settings| {
            settings.project.require_owner(acting, "adding a user")?;
            settings.project.users.retain(|u| u.username != username);
            settings.project.users.push(User {
                username: username.to_string(),
                role,
            });
            Ok(())
        })
    }

    /// Authorizes `iam_role_arn` for Atlas to assume, with `external_id` (generated when
    /// `None`, as Atlas generates it); only a Project Owner may.
    pub fn authorize_role(
        &self,
        acting: &str,
        iam_role_arn: &str,
        external_id: Option<String>,
    ) -> Result<AccessRole, ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            settings
                .project
                .require_owner(acting, "authorizing an IAM role")?;
            authorize(settings, iam_role_arn, external_id, now)
        })
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
        self.transact(|settings| {
            self.configure_encryption_in(
                settings,
                acting,
                cmk,
                access,
                require_private_networking,
            )?;
            Ok(settings.clone())
        })
    }

    pub(super) fn configure_encryption_in(
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
        let mut secret = None;
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
                secret = Some(secret_access_key);
                KmsAccess::Credentials { access_key_id }
            }
        };
        let caller = access.caller(&settings.project);
        if let (KmsCaller::AccessKey(id), Some(secret)) = (caller, secret.as_deref()) {
            if settings.kms.is_local() {
                // The embedded account knows its access keys: the pair must be one.
                self.kms.access_key_principal(id, Some(secret))?;
            } else {
                self.save_secret(id, secret)?;
            }
        }
        let kms = self.kms_for(settings, caller)?;
        let principal = self.kms_principal(settings, caller)?;
        let arn = verify_key(kms.as_ref(), cmk, &principal, &settings.account)?;
        let in_use = settings.project.encrypted_clusters();
        if !settings.cmk.is_empty() && arn != settings.cmk && !in_use.is_empty() {
            return Err(ControlError::NotProjectKey {
                expected: settings.cmk.clone(),
                given: arn,
            });
        }
        if arn != settings.cmk {
            settings.project.encryption.cmk_set_at = self.clock.now();
            settings.project.encryption.rotation_reminded = false;
        }
        settings.cmk = arn;
        let now = self.clock.now();
        settings
            .project
            .record(EVENT_CONFIGURATION_UPDATED, now, None, Some(acting));
        let encryption = &mut settings.project.encryption;
        encryption.enabled = true;
        encryption.access = Some(access);
        encryption.require_private_networking = require_private_networking;
        encryption.valid = true;
        Ok(())
    }

    /// Turns the project's encryption at rest off; refused while a cluster uses it.
    pub fn disable_project_encryption(&self, acting: &str) -> Result<(), ControlError> {
        self.transact(|settings| {
            settings
                .project
                .require_owner(acting, "disabling encryption at rest")?;
            let clusters = settings.project.encrypted_clusters();
            if !clusters.is_empty() {
                return Err(ControlError::EncryptionInUse { clusters });
            }
            settings.project.encryption.enabled = false;
            Ok(())
        })
    }

    /// `cluster create`: a new cluster of `spec.nodes` nodes. With `spec.encrypt`, Atlas's
    /// rules apply (M10+, not serverless, no legacy backups, the project configured, a
    /// Project Owner asking). Queued while the project's clusters are shut down.
    pub fn create_cluster(
        &self,
        acting: &str,
        spec: ClusterSpec,
    ) -> Result<Applied<()>, ControlError> {
        check_cluster_shape(&spec)?;
        let settings = self.require_settings()?;
        settings
            .project
            .require_writer(acting, "creating a cluster")?;
        check_cluster_is_new(&settings, &spec.name)?;
        if spec.encrypt {
            check_cluster_may_use(&settings, &spec)?;
            settings
                .project
                .require_owner(acting, "enabling encryption at rest on a cluster")?;
        }
        self.submit(QueuedChange::CreateCluster { spec }, &mut |_, _| {})
            .map(|applied| applied.map(|_| ()))
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
        let settings = self.require_settings()?;
        let config = settings.project.cluster(cluster)?;
        let action = if encrypt { "enabling" } else { "disabling" };
        settings
            .project
            .require_owner(acting, &format!("{action} encryption at rest on a cluster"))?;
        let cluster = cluster.to_string();
        let change = if encrypt {
            let spec = ClusterSpec {
                encrypt: true,
                ..config.spec.clone()
            };
            check_cluster_may_use(&settings, &spec)?;
            QueuedChange::EnableEncryption { cluster }
        } else {
            QueuedChange::DisableEncryption { cluster }
        };
        self.submit(change, progress)
            .map(|applied| applied.map(|_| ()))
    }
}

impl Root {
    /// Changes cluster `name`'s instance size and backup kind, under the same rules as a
    /// new cluster of that shape (an encrypted cluster stays M10 or larger, with Cloud
    /// Backups). A Project Read Only member may not.
    pub fn update_cluster(
        &self,
        acting: &str,
        name: &str,
        tier: Option<&str>,
        backup: Option<Backup>,
    ) -> Result<ClusterSpec, ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            settings
                .project
                .require_writer(acting, "changing a cluster")?;
            let mut spec = settings.project.cluster(name)?.spec.clone();
            if let Some(tier) = tier {
                spec.tier = tier.to_string();
            }
            if let Some(backup) = backup {
                spec.backup = backup;
            }
            check_cluster_shape(&spec)?;
            if spec.encrypt {
                check_cluster_may_encrypt(&spec)?;
            }
            let config = settings.project.cluster_mut(name)?;
            if config.spec != spec {
                config.spec = spec.clone();
                settings.project.record(
                    EVENT_CLUSTER_UPDATE_COMPLETED,
                    now,
                    Some(name),
                    Some(acting),
                );
            }
            Ok(spec)
        })
    }
}

/// A cluster name not taken by a cluster or by one waiting in the queue.
pub(super) fn check_cluster_is_new(settings: &Settings, name: &str) -> Result<(), ControlError> {
    let queued = settings
        .project
        .queue
        .iter()
        .any(|c| matches!(c, QueuedChange::CreateCluster { spec } if spec.name == name));
    if settings.project.clusters.contains_key(name) || queued {
        return Err(ControlError::ClusterExists {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A user name Atlas would accept: 1 to 256 printable characters, no spaces.
fn check_user_name(name: &str) -> Result<(), ControlError> {
    let printable = name.chars().all(|c| c.is_ascii_graphic());
    if name.is_empty() || name.len() > 256 || !printable {
        return Err(ControlError::BadUserName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Atlas's rules for `spec` to use the project's encryption at rest: its shape, and the
/// project configured.
pub(super) fn check_cluster_may_use(
    settings: &Settings,
    spec: &ClusterSpec,
) -> Result<(), ControlError> {
    check_cluster_may_encrypt(spec)?;
    if !settings.project.encryption.enabled {
        return Err(ControlError::ProjectNotConfigured);
    }
    Ok(())
}

/// The structural limits every cluster has, encrypted or not.
pub(super) fn check_cluster_shape(spec: &ClusterSpec) -> Result<(), ControlError> {
    check_cluster_name(&spec.name)?;
    tier_size(&spec.tier)?;
    if !(1..=50).contains(&spec.nodes) {
        return Err(ControlError::BadNodeCount { nodes: spec.nodes });
    }
    Ok(())
}

pub(super) fn authorize(
    settings: &mut Settings,
    iam_role_arn: &str,
    external_id: Option<String>,
    now: Timestamp,
) -> Result<AccessRole, ControlError> {
    check_iam_role_arn(settings, iam_role_arn)?;
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
        created_date: None,
    };
    settings.project.access_roles.push(role.clone());
    settings.project.record(EVENT_ROLE_ADDED, now, None, None);
    Ok(role)
}

/// An IAM role's ARN, `arn:aws:iam::ACCOUNT:role/NAME`.
pub(super) fn check_iam_role_arn(settings: &Settings, arn: &str) -> Result<(), ControlError> {
    let caller = Caller::new(arn, &settings.region)?;
    if !caller.principal().contains(":role/") {
        return Err(KmsError::Validation(format!(
            "{arn} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ))
        .into());
    }
    Ok(())
}

pub(super) fn external_id_uuid() -> String {
    let mut b = [0u8; 16];
    crate::crypto::fill_random(&mut b);
    uuid_string(&b)
}

/// Atlas's checks of a CMK, made as `principal`: it resolves (another account's key only
/// by full ARN), is symmetric, and DescribeKey, Encrypt and Decrypt are allowed. Its ARN.
pub(super) fn verify_key(
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
    let blob = reach(CrashPoint::KmsEncrypt)
        .map_err(KmsError::from)
        .and_then(|()| kms.encrypt(&metadata.arn, b"atrest key check", &context))
        .map_err(|e| missing("kms:Encrypt", e))?;
    reach(CrashPoint::KmsDecrypt)
        .map_err(KmsError::from)
        .and_then(|()| kms.decrypt(&metadata.arn, &blob.ciphertext_blob, &context))
        .map_err(|e| missing("kms:Decrypt", e))?;
    Ok(metadata.arn)
}

pub(super) fn check_context() -> EncryptionContext {
    [("atrest".to_string(), "validity-check".to_string())].into()
}

/// Atlas's rules for a cluster that uses encryption at rest.
pub fn check_cluster_may_encrypt(spec: &ClusterSpec) -> Result<(), ControlError> {
    let size = tier_size(&spec.tier)?;
    if size < 10 {
        return Err(ControlError::TierTooSmall {
            cluster: spec.name.clone(),
            tier: spec.tier.clone(),
        });
    }
    if spec.serverless {
        return Err(ControlError::ServerlessUnsupported {
            cluster: spec.name.clone(),
        });
    }
    if spec.backup == Backup::Legacy {
        return Err(ControlError::LegacyBackup {
            cluster: spec.name.clone(),
        });
    }
    Ok(())
}

/// The number of an `M<n>` tier.
pub fn tier_size(tier: &str) -> Result<u32, ControlError> {
    tier.strip_prefix('M')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ControlError::BadTier {
            tier: tier.to_string(),
        })
}

/// A cluster name Atlas accepts: 1 to 64 of letters, digits and `-`, starting with a letter
/// or digit.
pub fn check_cluster_name(name: &str) -> Result<(), ControlError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ControlError::BadClusterName {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tier: &str) -> ClusterSpec {
        ClusterSpec {
            name: "c".into(),
            tier: tier.into(),
            nodes: 3,
            backup: Backup::Cloud,
            serverless: false,
            encrypt: true,
        }
    }

    #[test]
    fn tiers_below_m10_serverless_and_legacy_backups_are_refused() {
        for tier in ["M0", "M2", "M5"] {
            let err = check_cluster_may_encrypt(&spec(tier)).unwrap_err();
            assert!(err.to_string().contains(tier), "{err}");
        }
        for tier in ["M10", "M30", "M700"] {
            check_cluster_may_encrypt(&spec(tier)).unwrap();
        }
        assert!(matches!(
            check_cluster_may_encrypt(&spec("X1")),
            Err(ControlError::BadTier { .. })
        ));
        let serverless = ClusterSpec {
            serverless: true,
            ..spec("M10")
        };
        assert!(matches!(
            check_cluster_may_encrypt(&serverless),
            Err(ControlError::ServerlessUnsupported { .. })
        ));
        let legacy = ClusterSpec {
            backup: Backup::Legacy,
            ..spec("M10")
        };
        assert!(matches!(
            check_cluster_may_encrypt(&legacy),
            Err(ControlError::LegacyBackup { .. })
        ));
        let no_backup = ClusterSpec {
            backup: Backup::None,
            ..spec("M10")
        };
        check_cluster_may_encrypt(&no_backup).unwrap();
    }
}
