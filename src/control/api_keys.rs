//! Programmatic API keys: who may call the Atlas Administration API that `atlas serve`
//! answers, and with which project role. A key's public half and role are project state;
//! the verifier digest authentication checks its private half against is kept with the
//! root's other secrets (owner-only), never in the settings, and the private half itself
//! nowhere. A key of the organization's home project may also hold an organization role
//! (creating projects); a project created by a key lists it as a Project Owner, its
//! verifier staying with the home's secrets.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ids::atlas_id;
use super::project::ProjectRole;
use super::{ControlError, Root};
use crate::clock::{Clock, Timestamp};

/// A programmatic API key of the project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Atlas's id for the key (24 hex digits).
    pub id: String,
    /// The public half: the user name of digest authentication.
    pub public_key: String,
    /// What the key may do in this project.
    pub role: ProjectRole,
    /// What the key may do across the organization (keys of its home project only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<OrgRole>,
    /// What the key is for.
    pub description: String,
    /// When it was created.
    pub created: Timestamp,
}

impl ApiKey {
    /// This key as another project of the organization lists it: with `role` there, from
    /// `now`, and no organization role (that stays with the home's entry).
    pub fn assigned(&self, role: ProjectRole, now: Timestamp) -> ApiKey {
        ApiKey {
            role,
            org_role: None,
            created: now,
            ..self.clone()
        }
    }
}

/// An organization role of an API key, by Atlas's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgRole {
    /// Organization Owner: creates projects.
    #[serde(rename = "ORG_OWNER")]
    Owner,
    /// Organization Project Creator: creates projects.
    #[serde(rename = "ORG_GROUP_CREATOR")]
    ProjectCreator,
    /// Organization Member: sees the organization, creates nothing.
    #[serde(rename = "ORG_MEMBER")]
    Member,
}

impl OrgRole {
    /// Atlas's name.
    pub fn atlas_name(self) -> &'static str {
        match self {
            OrgRole::Owner => "ORG_OWNER",
            OrgRole::ProjectCreator => "ORG_GROUP_CREATOR",
            OrgRole::Member => "ORG_MEMBER",
        }
    }

    /// Whether a key of this role may create projects.
    pub fn creates_projects(self) -> bool {
        matches!(self, OrgRole::Owner | OrgRole::ProjectCreator)
    }
}

/// Where a key's verifier is kept among the root's secrets.
fn secret_name(public_key: &str) -> String {
    format!("atlas-api-key/{public_key}")
}

impl Root {
    /// Adds an API key with `role` (and `org_role`, on the organization's home project
    /// only): `verifier` is what digest authentication checks the private half against
    /// (the caller's to compute; it never sees the private half again). Only a Project
    /// Owner may.
    pub fn add_api_key(
        &self,
        acting: &str,
        public_key: &str,
        (role, org_role): (ProjectRole, Option<OrgRole>),
        description: &str,
        verifier: &str,
    ) -> Result<ApiKey, ControlError> {
        if org_role.is_some() {
            self.require_organization_home()?;
        }
        let created = self.clock.now();
        self.transact(|settings| {
            let project = &mut settings.project;
            project.require_owner(acting, "creating an API key")?;
            let taken = project.api_keys.iter().any(|k| k.public_key == public_key)
                || project.users.iter().any(|u| u.username == public_key);
            if taken {
                return Err(ControlError::ApiKeyExists {
                    public_key: public_key.to_string(),
                });
            }
            let key = ApiKey {
                id: atlas_id(),
                public_key: public_key.to_string(),
                role,
                org_role,
                description: description.to_string(),
                created,
            };
            // Under the settings lock, so two processes adding keys keep both verifiers.
            self.save_secret(&secret_name(public_key), verifier)?;
            project.api_keys.push(key.clone());
            Ok(key)
        })
    }

    /// Every API key of the project (no secrets: the public halves and roles).
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, ControlError> {
        Ok(self.require_settings()?.project.api_keys)
    }

    /// Deletes API key `public_key`: it authenticates nothing from now on. Only a Project
    /// Owner may.
    pub fn delete_api_key(&self, acting: &str, public_key: &str) -> Result<(), ControlError> {
        self.transact(|settings| {
            let project = &mut settings.project;
            project.require_owner(acting, "deleting an API key")?;
            let before = project.api_keys.len();
            project.api_keys.retain(|k| k.public_key != public_key);
            if project.api_keys.len() == before {
                return Err(ControlError::UnknownApiKey {
                    public_key: public_key.to_string(),
                });
            }
            self.forget_secret(&secret_name(public_key))
        })
    }

    /// Changes API key `public_key`'s project role or description. Only a Project Owner
    /// may.
    pub fn update_api_key(
        &self,
        acting: &str,
        public_key: &str,
        role: Option<ProjectRole>,
        description: Option<&str>,
    ) -> Result<ApiKey, ControlError> {
        self.transact(|settings| {
            let project = &mut settings.project;
            project.require_owner(acting, "changing an API key")?;
            let key = project
                .api_keys
                .iter_mut()
                .find(|k| k.public_key == public_key)
                .ok_or_else(|| ControlError::UnknownApiKey {
                    public_key: public_key.to_string(),
                })?;
            if let Some(role) = role {
                key.role = role;
            }
            if let Some(description) = description {
                key.description = description.to_string();
            }
            Ok(key.clone())
        })
    }

    /// API key `public_key` and its verifier, if the project has that key and keeps its
    /// verifier (a key that created this project is verified by the organization's home).
    pub fn api_key(
        &self,
        public_key: &str,
    ) -> Result<Option<(ApiKey, Zeroizing<String>)>, ControlError> {
        let settings = self.require_settings()?;
        let Some(key) = settings
            .project
            .api_keys
            .iter()
            .find(|k| k.public_key == public_key)
        else {
            return Ok(None);
        };
        match self.saved_secret(&secret_name(public_key)) {
            Ok(verifier) => Ok(Some((key.clone(), verifier))),
            Err(ControlError::MissingSecret { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
