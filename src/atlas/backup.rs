//! A cluster's `backup/snapshots` (taken on demand under the current CMK, whose key id
//! Atlas shows as `masterKeyUUID`) and `backup/restoreJobs` (automated restores into a
//! cluster of this project or another of the organization).

use serde_json::{json, Value};

use super::body::string;
use super::cluster_shapes::MONGODB_VERSION;
use super::clusters::find;
use super::error::ApiError;
use super::routes::{cannot_access, Call, Outcome};
use super::wire::page;
use crate::control::{ControlError, RestoreJob, Settings};
use crate::store::SnapshotInfo;

/// A snapshot's id in Atlas's 24-hex-digit form: the first 24 of atrest's 32.
fn snapshot_id(info: &SnapshotInfo) -> &str {
    info.id.get(..24).unwrap_or(&info.id)
}

/// The CMK's key id, what Atlas's `masterKeyUUID` names.
fn key_uuid(arn: &str) -> &str {
    arn.rsplit_once("key/").map_or(arn, |(_, id)| id)
}

fn snapshot_view(info: &SnapshotInfo) -> Value {
    json!({
        "id": snapshot_id(info),
        "cloudProvider": "AWS",
        "createdAt": info.created.to_string(),
        "masterKeyUUID": key_uuid(&info.cmk_arn),
        "mongodVersion": MONGODB_VERSION,
        "replicaSetName": info.cluster,
        "snapshotType": "onDemand",
        "status": "completed",
        "storageSizeBytes": info.size,
        "type": "replicaSet",
        "links": [],
    })
}

/// The snapshots of the path's cluster, oldest first.
fn snapshots_of(call: &Call<'_>) -> Result<Vec<SnapshotInfo>, ApiError> {
    let name = call.param(1);
    find(&call.settings()?, name)?;
    let listing = call.root.snapshots()?;
    Ok(listing
        .snapshots
        .into_iter()
        .filter(|s| s.cluster == name)
        .collect())
}

fn find_snapshot(call: &Call<'_>, id: &str) -> Result<SnapshotInfo, ApiError> {
    snapshots_of(call)?
        .into_iter()
        .find(|s| snapshot_id(s) == id)
        .ok_or_else(|| {
            ControlError::UnknownSnapshot {
                id: id.to_string(),
                cluster: call.param(1).to_string(),
            }
            .into()
        })
}

pub(super) fn list_snapshots(call: &Call<'_>) -> Outcome {
    let views = snapshots_of(call)?.iter().map(snapshot_view).collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn take_snapshot(call: &Call<'_>) -> Outcome {
    let body = call.object(&["description", "retentionInDays"], &["links"])?;
    string(&body, "description")?;
    let name = call.param(1);
    find(&call.settings()?, name)?;
    let info = call.root.create_snapshot(Some(name), &mut |_| {})?;
    Ok((200, Some(snapshot_view(&info))))
}

pub(super) fn get_snapshot(call: &Call<'_>) -> Outcome {
    Ok((
        200,
        Some(snapshot_view(&find_snapshot(call, call.param(2))?)),
    ))
}

pub(super) fn delete_snapshot(call: &Call<'_>) -> Outcome {
    let info = find_snapshot(call, call.param(2))?;
    call.root.delete_snapshot(&info.id)?;
    Ok((204, None))
}

fn job_view(settings: &Settings, job: &RestoreJob) -> Value {
    json!({
        "id": job.id,
        "snapshotId": job.snapshot_id.get(..24).unwrap_or(&job.snapshot_id),
        "deliveryType": "automated",
        "targetClusterName": job.target_cluster,
        "targetGroupId": job.target_project.as_ref().unwrap_or(&settings.project.id),
        "cancelled": false,
        "expired": false,
        "failed": false,
        "timestamp": job.created.to_string(),
        "finishedAt": job.finished.to_string(),
        "links": [],
    })
}

pub(super) fn create_restore_job(call: &Call<'_>) -> Outcome {
    let body = call.object(
        &[
            "deliveryType",
            "snapshotId",
            "targetClusterName",
            "targetGroupId",
            "oplogTs",
            "oplogInc",
            "pointInTimeUTCSeconds",
            "desiredTimestamp",
        ],
        &[
            "cancelled",
            "components",
            "deliveryUrl",
            "expired",
            "expiresAt",
            "failed",
            "finishedAt",
            "id",
            "links",
            "privateDownloadDeliveryUrls",
            "timestamp",
        ],
    )?;
    let settings = call.settings()?;
    match string(&body, "deliveryType")? {
        Some("automated") => {}
        Some(other) => {
            return Err(ApiError::validation(format!(
                "atrest restores snapshots into clusters (deliveryType automated); {other} is not emulated."
            ))
            .with_parameters(&["deliveryType"]))
        }
        None => return Err(ApiError::validation("deliveryType is required.").with_parameters(&["deliveryType"])),
    }
    let required = |member: &str| -> Result<String, ApiError> {
        string(&body, member)?.map(str::to_string).ok_or_else(|| {
            ApiError::validation(format!("{member} is required.")).with_parameters(&[member])
        })
    };
    let (snapshot, target, group) = (
        required("snapshotId")?,
        required("targetClusterName")?,
        required("targetGroupId")?,
    );
    let target_project = match group == settings.project.id {
        true => None,
        false => Some(call.api.project(&group)?),
    };
    let target_root = target_project.as_deref().unwrap_or(call.root);
    if target_root
        .require_settings()?
        .project
        .role_of(call.acting)
        .is_err()
    {
        return Err(cannot_access(&group));
    }
    let info = find_snapshot(call, &snapshot)?;
    let job =
        call.root
            .run_restore_job(call.acting, call.param(1), &info.id, target_root, &target)?;
    Ok((200, Some(job_view(&call.settings()?, &job))))
}

pub(super) fn list_restore_jobs(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    find(&settings, call.param(1))?;
    let jobs = call.root.restore_jobs(call.param(1))?;
    let views = jobs.iter().map(|j| job_view(&settings, j)).collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn get_restore_job(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let id = call.param(2);
    let jobs = call.root.restore_jobs(call.param(1))?;
    let job = jobs.iter().find(|j| j.id == id).ok_or_else(|| {
        ApiError::new(
            404,
            "RESTORE_JOB_NOT_FOUND",
            format!(
                "No restore job with ID {id} exists for cluster {}.",
                call.param(1)
            ),
        )
        .with_parameters(&[id, call.param(1)])
    })?;
    Ok((200, Some(job_view(&settings, job))))
}
