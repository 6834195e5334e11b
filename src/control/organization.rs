//! An organization of projects. The root a server serves is the organization's home; the
//! projects created in it (Atlas's `POST /groups`, or [`Root::create_project`]) are roots
//! of their own under `HOME/projects/ID/`, each with its settings, clusters, snapshots
//! and API keys, sharing the home's embedded KMS (the customer's one AWS account, so a
//! key serves several projects and a snapshot restores into another project) and its
//! emulator clock (one clock moves them all). `HOME/projects/ID/organization.json` says
//! where the home is, so the CLI opening a project's directory finds the same KMS.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api_keys::ApiKey;
use super::project::{ProjectRole, ProjectState, DEFAULT_OWNER};
use super::state::{read_json, write_json, Retention, Settings, SnapshotSettings};
use super::{ControlError, Root};
use crate::clock::Clock;
use crate::durable;

/// Where the organization's other projects live, under its home.
const PROJECTS_DIR: &str = "projects";
/// In a project of an organization: where its home is.
const HOME_LINK: &str = "organization.json";
/// A project directory moved aside to be deleted: no project id looks like it.
const DELETED_PREFIX: &str = "deleted-";
/// The longest project name Atlas takes.
const MAX_PROJECT_NAME: usize = 64;

/// A project of an organization, other than its home.
#[derive(Clone, Debug)]
pub struct MemberProject {
    /// Its id.
    pub id: String,
    /// Its root directory.
    pub dir: PathBuf,
    /// Its settings when listed.
    pub settings: Settings,
}

/// `organization.json`: the home, relative to the project's directory.
#[derive(Serialize, Deserialize)]
struct HomeLink {
    home: PathBuf,
}

/// The home of the project at `dir`, if it is a project of another root's organization.
pub(super) fn home_of(dir: &Path) -> Result<Option<PathBuf>, ControlError> {
    let Some(link) = read_json::<HomeLink>(&dir.join(HOME_LINK))? else {
        return Ok(None);
    };
    let home = dir.join(link.home);
    Ok(Some(fs::canonicalize(&home).unwrap_or(home)))
}

/// Atlas's project names: 1 to 64 letters, digits and `-_.(),:&@+'`.
fn check_project_name(name: &str) -> Result<(), ControlError> {
    let allowed = |c: char| c.is_alphanumeric() || "-_.(),:&@+'".contains(c);
    let length = name.chars().count();
    if length == 0 || length > MAX_PROJECT_NAME || !name.chars().all(allowed) {
        return Err(ControlError::BadProjectName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Whether `id` has the shape of a project id (24 lowercase hex digits): nothing else
/// names a directory under `projects/`.
fn is_project_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Root {
    /// The organization's home: this root's directory unless it is another's project.
    pub fn organization_home(&self) -> &Path {
        &self.shared
    }

    /// Refuses an organization-wide change on a project that is not the home.
    pub(super) fn require_organization_home(&self) -> Result<(), ControlError> {
        if self.shared == self.dir {
            return Ok(());
        }
        Err(ControlError::NotOrganizationHome {
            path: self.dir.clone(),
            home: self.shared.clone(),
        })
    }

    /// The organization's other projects, in the order of their ids (this root must be the
    /// home; a directory whose creation never finished is not one).
    pub fn member_projects(&self) -> Result<Vec<MemberProject>, ControlError> {
        let dir = self.dir.join(PROJECTS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ControlError::Io { path: dir, source }),
        };
        let mut projects = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ControlError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_project_id(&name) && home_of(&entry.path())?.is_some() {
                let root = Root::open_member_dir(self, entry.path())?;
                if let Some(settings) = root.settings()? {
                    projects.push(MemberProject {
                        id: name,
                        dir: entry.path(),
                        settings,
                    });
                }
            }
        }
        projects.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(projects)
    }

    /// Project `id` of this root's organization, opened on this root's KMS, clock and KMS
    /// wrapper: this root itself is not among them.
    pub fn member_project(&self, id: &str) -> Result<Root, ControlError> {
        let unknown = || ControlError::UnknownProject { id: id.to_string() };
        if !is_project_id(id) {
            return Err(unknown());
        }
        let dir = self.dir.join(PROJECTS_DIR).join(id);
        if home_of(&dir)?.is_none() {
            return Err(unknown());
        }
        let root = Root::open_member_dir(self, dir)?;
        match root.settings()? {
            Some(settings) if settings.project.id == id => Ok(root),
            _ => Err(unknown()),
        }
    }

    /// Removes what a creation or deletion that died halfway left under `projects/`: a
    /// directory without settings, or one moved aside to be deleted. The caller holds the
    /// home's lock, which every creation and deletion holds throughout.
    fn remove_unfinished_projects(&self) -> Result<(), ControlError> {
        let dir = self.dir.join(PROJECTS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(ControlError::Io { path: dir, source }),
        };
        for entry in entries {
            let path = entry
                .map_err(|source| ControlError::Io {
                    path: dir.clone(),
                    source,
                })?
                .path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let unfinished = name.starts_with(DELETED_PREFIX)
                || (is_project_id(&name)
                    && Root::open_member_dir(self, path.clone())?
                        .settings()?
                        .is_none());
            if unfinished {
                durable::remove_dir_if_present(&path)
                    .map_err(|source| ControlError::Io { path, source })?;
            }
        }
        Ok(())
    }

    fn open_member_dir(home: &Root, dir: PathBuf) -> Result<Root, ControlError> {
        let root = Root::with_parts(
            dir,
            home.dir.clone(),
            home.clock.clone(),
            home.kms.clone(),
            home.wrap.clone(),
        )?;
        root.wait_for_clusters(home.waits_for_clusters());
        Ok(root)
    }

    /// Creates project `name` in this root's organization: no CMK, no encryption at rest,
    /// no cluster yet (as Atlas creates one), the home's account, region and KMS, and
    /// Atlas's default alert configurations unless `default_alerts` is false. Its owner is
    /// the home's; `acting`, an API key with an organization role that creates projects
    /// (or a Project Owner of the home), is a Project Owner of it too.
    pub fn create_project(
        &self,
        acting: &str,
        name: &str,
        default_alerts: bool,
    ) -> Result<Root, ControlError> {
        self.require_organization_home()?;
        check_project_name(name)?;
        // The home's lock, then the new project's: no two projects of one name.
        let _lock = self.lock()?;
        self.remove_unfinished_projects()?;
        let home = self.require_settings()?;
        let creator = creator_key(&home.project, acting)?;
        let taken = std::iter::once(home.project.name.clone())
            .chain(
                self.member_projects()?
                    .into_iter()
                    .map(|m| m.settings.project.name),
            )
            .any(|n| n == name);
        if taken {
            return Err(ControlError::ProjectExists {
                name: name.to_string(),
            });
        }
        let now = self.clock.now();
        let mut project = ProjectState::new(name, DEFAULT_OWNER, now);
        if !default_alerts {
            project.alert_configs = Some(Vec::new());
        }
        if let Some(key) = creator {
            project.api_keys.push(key.assigned(ProjectRole::Owner, now));
        }
        let dir = self.dir.join(PROJECTS_DIR).join(&project.id);
        durable::create_dir(&dir).map_err(|source| ControlError::Io {
            path: dir.clone(),
            source,
        })?;
        write_json(
            &dir.join(HOME_LINK),
            &HomeLink {
                home: PathBuf::from("../.."),
            },
        )?;
        let settings = Settings {
            format: Settings::FORMAT,
            account: home.account,
            region: home.region,
            principal: home.principal,
            cmk: String::new(),
            kms: home.kms,
            cmk_rotation: None,
            rotation: home.rotation,
            snapshot_retention: Retention::default(),
            snapshots: SnapshotSettings::Local,
            project,
        };
        let root = Root::open_member_dir(self, dir)?;
        // Written last: until it is, the directory is no project.
        root.save(&settings)?;
        Ok(root)
    }

    /// Deletes project `id` of this organization (not the home, which holds the
    /// organization's KMS): one with no clusters and no snapshots left, so nothing is
    /// lost. Only a Project Owner of it may.
    pub fn delete_project(&self, acting: &str, id: &str) -> Result<(), ControlError> {
        self.require_organization_home()?;
        let _lock = self.lock()?;
        self.remove_unfinished_projects()?;
        if self.require_settings()?.project.id == id {
            return Err(ControlError::OrganizationHomeKept {
                path: self.dir.clone(),
            });
        }
        let project = self.member_project(id)?;
        let settings = project.require_settings()?;
        settings
            .project
            .require_owner(acting, "deleting the project")?;
        let clusters: Vec<String> = settings.project.clusters.keys().cloned().collect();
        let snapshots = project.snapshots()?.snapshots.len();
        if !clusters.is_empty() || snapshots > 0 {
            return Err(ControlError::ProjectInUse {
                id: id.to_string(),
                clusters,
                snapshots,
            });
        }
        // One rename takes the project away (a name no project id has); removing what
        // it held can then be interrupted without leaving half a project.
        let dir = project.dir.clone();
        drop(project);
        let gone = self
            .dir
            .join(PROJECTS_DIR)
            .join(format!("{DELETED_PREFIX}{id}"));
        durable::rename_dir(&dir, &gone).map_err(|source| ControlError::Io {
            path: dir.clone(),
            source,
        })?;
        durable::remove_dir_if_present(&gone)
            .map_err(|source| ControlError::Io { path: gone, source })
    }
}

/// The API key `acting` creates a project as (`None` for a member), if it may.
fn creator_key(home: &ProjectState, acting: &str) -> Result<Option<ApiKey>, ControlError> {
    let refused = || ControlError::NotProjectCreator {
        user: acting.to_string(),
    };
    if let Some(key) = home.api_keys.iter().find(|k| k.public_key == acting) {
        return match key.org_role {
            Some(role) if role.creates_projects() => Ok(Some(key.clone())),
            _ => Err(refused()),
        };
    }
    match home.role_of(acting) {
        Ok(ProjectRole::Owner) => Ok(None),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_atlas_pattern() {
        for good in ["p", "Team-A_1.(x),:&@+'", "Überprojekt", &"a".repeat(64)] {
            assert!(check_project_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "x/y", "../z", &"a".repeat(65)] {
            assert!(check_project_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_project_ids_name_project_directories() {
        assert!(is_project_id("0123456789abcdef01234567"));
        assert!(!is_project_id("0123456789ABCDEF01234567"));
        assert!(!is_project_id("../../../etc/passwd/xxxx"));
        assert!(!is_project_id("0123"));
    }
}
