//! Cloud provider access roles as Atlas's API runs them: Atlas sets a role up (its id and
//! the external id the customer's trust policy must require), the customer authorizes it
//! with the IAM role's ARN, and deauthorizes it when no feature uses it any more.

use super::events::{EVENT_ROLE_ADDED, EVENT_ROLE_DELETED};
use super::ids::atlas_id;
use super::project::{AccessRole, KmsAccess, PendingAccessRole};
use super::rules::{check_iam_role_arn, external_id_uuid};
use super::{ControlError, Root};
use crate::clock::Clock;

impl Root {
    /// Sets up an AWS access role for Atlas: its id and external id, not yet authorized.
    /// Only a Project Owner may.
    pub fn set_up_access_role(&self, acting: &str) -> Result<PendingAccessRole, ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            settings
                .project
                .require_owner(acting, "setting up a cloud provider access role")?;
            let role = PendingAccessRole {
                role_id: atlas_id(),
                atlas_assumed_role_external_id: external_id_uuid(),
                created_date: now,
            };
            settings.project.pending_roles.push(role.clone());
            Ok(role)
        })
    }

    /// Authorizes access role `role_id` (set up, or already authorized) as the IAM role
    /// `iam_role_arn`, keeping its external id. Only a Project Owner may.
    pub fn authorize_access_role(
        &self,
        acting: &str,
        role_id: &str,
        iam_role_arn: &str,
    ) -> Result<AccessRole, ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            let project = &mut settings.project;
            project.require_owner(acting, "authorizing an IAM role")?;
            if let Some(role) = project
                .access_roles
                .iter_mut()
                .find(|r| r.role_id == role_id)
            {
                role.iam_assumed_role_arn = iam_role_arn.to_string();
                return Ok(role.clone());
            }
            let Some(at) = project
                .pending_roles
                .iter()
                .position(|r| r.role_id == role_id)
            else {
                return Err(ControlError::UnknownAccessRole {
                    role_id: role_id.to_string(),
                });
            };
            let pending = project.pending_roles.remove(at);
            check_iam_role_arn(settings, iam_role_arn)?;
            let role = AccessRole {
                role_id: pending.role_id,
                iam_assumed_role_arn: iam_role_arn.to_string(),
                atlas_assumed_role_external_id: pending.atlas_assumed_role_external_id,
                authorized_date: now,
                created_date: Some(pending.created_date),
            };
            settings.project.access_roles.push(role.clone());
            settings
                .project
                .record(EVENT_ROLE_ADDED, now, None, Some(acting));
            Ok(role)
        })
    }

    /// Deauthorizes access role `role_id`, refused while the project's encryption at rest
    /// assumes it. Only a Project Owner may.
    pub fn deauthorize_access_role(&self, acting: &str, role_id: &str) -> Result<(), ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            let project = &mut settings.project;
            project.require_owner(acting, "deauthorizing an IAM role")?;
            let in_use = matches!(&project.encryption.access,
                Some(KmsAccess::Role { role_id: used }) if used == role_id);
            if in_use && project.encryption.enabled {
                return Err(ControlError::AccessRoleInUse {
                    role_id: role_id.to_string(),
                });
            }
            let before = project.access_roles.len() + project.pending_roles.len();
            project.access_roles.retain(|r| r.role_id != role_id);
            project.pending_roles.retain(|r| r.role_id != role_id);
            if project.access_roles.len() + project.pending_roles.len() == before {
                return Err(ControlError::UnknownAccessRole {
                    role_id: role_id.to_string(),
                });
            }
            project.record(EVENT_ROLE_DELETED, now, None, Some(acting));
            Ok(())
        })
    }
}
