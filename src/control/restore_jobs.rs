//! Restore jobs as Atlas's API keeps them: an automated restore of a snapshot into a
//! cluster of this project or of another project of its organization, recorded (with the
//! snapshot it came from) in the project the snapshot was taken in, once it is done.

use serde::{Deserialize, Serialize};

use super::events::EVENT_RESTORE_SUCCESSFUL;
use super::ids::atlas_id;
use super::{ControlError, Root, Settings};
use crate::clock::{Clock, Timestamp};

/// A finished restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJob {
    /// Atlas's id (24 hex digits).
    pub id: String,
    /// The snapshot restored.
    pub snapshot_id: String,
    /// The cluster the snapshot was taken of.
    pub source_cluster: String,
    /// The cluster restored into.
    pub target_cluster: String,
    /// The project restored into, when it is not the snapshot's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_project: Option<String>,
    /// When it was asked for.
    pub created: Timestamp,
    /// When it finished.
    pub finished: Timestamp,
}

impl Root {
    /// Restores snapshot `snapshot_id`, taken of `source_cluster`, into every node of
    /// `target_cluster` of `target` (this project, or another of its organization), and
    /// records the job here. Only a Project Owner of both projects may.
    pub fn run_restore_job(
        &self,
        acting: &str,
        source_cluster: &str,
        snapshot_id: &str,
        target: &Root,
        target_cluster: &str,
    ) -> Result<RestoreJob, ControlError> {
        let settings = self.require_settings()?;
        settings
            .project
            .require_owner(acting, "restoring a snapshot")?;
        let target_settings = target.require_settings()?;
        let target_project = &target_settings.project;
        target_project.require_owner(acting, "restoring a snapshot into the project")?;
        target_project.cluster(target_cluster)?;
        let created = self.clock.now();
        self.restore_snapshot_into(snapshot_id, target, target_cluster)?;
        let finished = self.clock.now();
        let job = RestoreJob {
            id: atlas_id(),
            snapshot_id: snapshot_id.to_string(),
            source_cluster: source_cluster.to_string(),
            target_cluster: target_cluster.to_string(),
            target_project: (target_project.id != settings.project.id)
                .then(|| target_project.id.clone()),
            created,
            finished,
        };
        let record = |s: &mut Settings| {
            s.project.record(
                EVENT_RESTORE_SUCCESSFUL,
                finished,
                Some(target_cluster),
                Some(acting),
            )
        };
        if job.target_project.is_some() {
            target.transact(|s| {
                record(s);
                Ok(())
            })?;
        }
        self.transact(|s| {
            s.project.restore_jobs.push(job.clone());
            if job.target_project.is_none() {
                record(s);
            }
            Ok(job.clone())
        })
    }

    /// The restore jobs of snapshots taken of `cluster`, oldest first.
    pub fn restore_jobs(&self, cluster: &str) -> Result<Vec<RestoreJob>, ControlError> {
        let settings = self.require_settings()?;
        Ok(settings
            .project
            .restore_jobs
            .into_iter()
            .filter(|j| j.source_cluster == cluster)
            .collect())
    }
}
