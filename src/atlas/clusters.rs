//! `clusters` in the ClusterDescription20240805 shape (a replica set in the project's AWS
//! region: instance size, node count, Cloud Backup, `encryptionAtRestProvider` NONE or
//! AWS), and each cluster's `backup/snapshots` and `backup/restoreJobs`. Switching the
//! provider is atrest's rolling rewrite; the cluster is UPDATING until it is done.

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::routes::{boolean, cannot_access, string, Call, Outcome};
use super::wire::page;
use crate::control::project::{
    atlas_region, derived_id, Backup, ClusterSpec, QueuedChange, DEFAULT_NODES,
};
use crate::control::{Applied, ControlError, RestoreJob, Settings};
use crate::store::SnapshotInfo;

/// The members of ClusterDescription20240805 a client may send; atrest acts on `name`,
/// `clusterType`, `backupEnabled`, `encryptionAtRestProvider`, `paused` and the instance
/// size and node count in `replicationSpecs`, and accepts the rest without acting on them.
const WRITABLE: &[&str] = &[
    "acceptDataRisksAndForceReplicaSetReconfig",
    "adaptiveCapacity",
    "advancedConfiguration",
    "backupEnabled",
    "biConnector",
    "clusterType",
    "configServerManagementMode",
    "connectionStrings",
    "diskWarmingMode",
    "encryptionAtRestProvider",
    "globalClusterSelfManagedSharding",
    "labels",
    "mongoDBEmployeeAccessGrant",
    "mongoDBMajorVersion",
    "name",
    "paused",
    "pitEnabled",
    "redactClientLogData",
    "replicaSetScalingStrategy",
    "replicationSpecs",
    "retainBackups",
    "rootCertType",
    "tags",
    "terminationProtectionEnabled",
    "useAwsTimeBasedSnapshotCopyForFastInitialSync",
    "versionReleaseSystem",
];
const READ_ONLY: &[&str] = &[
    "configServerType",
    "createDate",
    "effectiveReplicationSpecs",
    "featureCompatibilityVersion",
    "featureCompatibilityVersionExpirationDate",
    "groupId",
    "id",
    "internalClusterRole",
    "links",
    "mongoDBVersion",
    "stateName",
];

/// The MongoDB version atrest's clusters report: the store is not MongoDB, so a fixed one.
const MONGODB_MAJOR_VERSION: &str = "8.0";
const MONGODB_VERSION: &str = "8.0.0";

/// Where a cluster is in its life, from the project's state.
fn state_name(settings: &Settings, name: &str) -> &'static str {
    let queued = settings.project.queue.iter().find_map(|c| match c {
        QueuedChange::CreateCluster { spec } if spec.name == name => Some("CREATING"),
        QueuedChange::EnableEncryption { cluster }
        | QueuedChange::DisableEncryption { cluster }
            if cluster == name =>
        {
            Some("UPDATING")
        }
        _ => None,
    });
    if let Some(state) = queued {
        return state;
    }
    match settings.project.clusters.get(name) {
        Some(c) if c.rewrite_to_encrypted.is_some() => "UPDATING",
        _ => "IDLE",
    }
}

fn cluster_view(settings: &Settings, spec: &ClusterSpec) -> Value {
    let project = &settings.project.id;
    let name = &spec.name;
    json!({
        "id": derived_id(&format!("cluster {name} of {project}")),
        "groupId": project,
        "name": name,
        "clusterType": "REPLICASET",
        "backupEnabled": spec.backup == Backup::Cloud,
        "encryptionAtRestProvider": if spec.encrypt { "AWS" } else { "NONE" },
        "stateName": state_name(settings, name),
        "paused": false,
        "mongoDBMajorVersion": MONGODB_MAJOR_VERSION,
        "mongoDBVersion": MONGODB_VERSION,
        "replicationSpecs": [{
            "id": derived_id(&format!("replication spec of {name} of {project}")),
            "zoneId": derived_id(&format!("zone of {name} of {project}")),
            "zoneName": "Zone 1",
            "regionConfigs": [{
                "providerName": "AWS",
                "regionName": atlas_region(&settings.region),
                "priority": 7,
                "electableSpecs": {
                    "instanceSize": spec.tier,
                    "nodeCount": spec.nodes,
                },
            }],
        }],
        "links": [],
    })
}

/// Every cluster, made or waiting to be made.
fn all_specs(settings: &Settings) -> Vec<ClusterSpec> {
    let made = settings.project.clusters.values().map(|c| c.spec.clone());
    let queued = settings.project.queue.iter().filter_map(|c| match c {
        QueuedChange::CreateCluster { spec } => Some(spec.clone()),
        _ => None,
    });
    made.chain(queued).collect()
}

fn find(settings: &Settings, name: &str) -> Result<ClusterSpec, ApiError> {
    all_specs(settings)
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "CLUSTER_NOT_FOUND",
                format!(
                    "No cluster named {name} exists in group {}.",
                    settings.project.id
                ),
            )
            .with_parameters(&[name, &settings.project.id])
        })
}

pub(super) fn list(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let views = all_specs(&settings)
        .iter()
        .map(|s| cluster_view(&settings, s))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn get(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let spec = find(&settings, call.param(1))?;
    Ok((200, Some(cluster_view(&settings, &spec))))
}

/// What a request asks of a cluster's hardware: the instance size and electable nodes of
/// its one region.
#[derive(Debug, Default)]
struct Shape {
    tier: Option<String>,
    nodes: Option<u32>,
}

fn shape(body: &Map<String, Value>, region: &str) -> Result<Shape, ApiError> {
    let Some(specs) = body.get("replicationSpecs") else {
        return Ok(Shape::default());
    };
    let unsupported = |what: &str| {
        ApiError::validation(format!(
            "atrest clusters are one replica set in one AWS region: {what}."
        ))
        .with_parameters(&["replicationSpecs"])
    };
    let [spec] = specs.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(unsupported("give exactly one replication spec"));
    };
    let configs = spec.get("regionConfigs").and_then(Value::as_array);
    let [config] = configs.map(Vec::as_slice).unwrap_or_default() else {
        return Err(unsupported("give exactly one region config"));
    };
    if config.get("providerName").and_then(Value::as_str) != Some("AWS") {
        return Err(unsupported("providerName must be AWS"));
    }
    if config.get("regionName").and_then(Value::as_str) != Some(region) {
        return Err(unsupported(&format!(
            "regionName must be the project's region, {region}"
        )));
    }
    for other in ["readOnlySpecs", "analyticsSpecs"] {
        let nodes = config
            .pointer(&format!("/{other}/nodeCount"))
            .and_then(Value::as_u64);
        if nodes.unwrap_or(0) > 0 {
            return Err(unsupported(&format!("{other} nodes are not emulated")));
        }
    }
    let electable = config.get("electableSpecs");
    let tier = electable
        .and_then(|e| e.get("instanceSize"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let nodes = match electable.and_then(|e| e.get("nodeCount")) {
        None => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::validation("nodeCount must be a whole number."))?,
        ),
    };
    Ok(Shape { tier, nodes })
}

/// `encryptionAtRestProvider` as atrest's switch: AWS on, NONE off.
fn provider(body: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    match string(body, "encryptionAtRestProvider")? {
        None => Ok(None),
        Some("AWS") => Ok(Some(true)),
        Some("NONE") => Ok(Some(false)),
        Some(other @ ("AZURE" | "GCP")) => Err(ApiError::validation(format!(
            "atrest emulates encryption at rest with AWS KMS only; {other} is not supported."
        ))
        .with_parameters(&["encryptionAtRestProvider"])),
        Some(other) => Err(ApiError::validation(format!(
            "No encryption at rest provider {other}."
        ))
        .with_parameters(&["encryptionAtRestProvider"])),
    }
}

/// The members every cluster request is checked for, whatever it changes.
fn check_common(body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(kind) = string(body, "clusterType")? {
        if kind != "REPLICASET" {
            return Err(ApiError::validation(format!(
                "atrest clusters are replica sets; clusterType {kind} is not emulated."
            ))
            .with_parameters(&["clusterType"]));
        }
    }
    if boolean(body, "paused")? == Some(true) {
        return Err(
            ApiError::validation("atrest clusters cannot be paused.").with_parameters(&["paused"])
        );
    }
    if boolean(body, "terminationProtectionEnabled")? == Some(true) {
        return Err(ApiError::validation(
            "atrest does not emulate termination protection: a cluster is deleted when asked.",
        )
        .with_parameters(&["terminationProtectionEnabled"]));
    }
    Ok(())
}

fn backup_of(body: &Map<String, Value>) -> Result<Option<Backup>, ApiError> {
    Ok(boolean(body, "backupEnabled")?.map(|on| if on { Backup::Cloud } else { Backup::None }))
}

pub(super) fn create(call: &Call<'_>) -> Outcome {
    let body = call.object(WRITABLE, READ_ONLY)?;
    check_common(&body)?;
    let settings = call.settings()?;
    let Some(name) = string(&body, "name")? else {
        return Err(ApiError::validation("name is required.").with_parameters(&["name"]));
    };
    let shape = shape(&body, &atlas_region(&settings.region))?;
    let Some(tier) = shape.tier else {
        return Err(ApiError::validation(
            "replicationSpecs[0].regionConfigs[0].electableSpecs.instanceSize is required.",
        )
        .with_parameters(&["replicationSpecs"]));
    };
    let spec = ClusterSpec {
        name: name.to_string(),
        tier,
        nodes: shape.nodes.unwrap_or(DEFAULT_NODES),
        backup: backup_of(&body)?.unwrap_or(Backup::None),
        serverless: false,
        encrypt: provider(&body)?.unwrap_or(false),
    };
    call.root.create_cluster(call.acting, spec.clone())?;
    Ok((201, Some(cluster_view(&call.settings()?, &spec))))
}

/// Deletes a cluster at once (Atlas answers 202 and takes a while); its snapshots too
/// unless `retainBackups=true`.
pub(super) fn delete(call: &Call<'_>) -> Outcome {
    let retain = call.query.flag("retainBackups", false)?;
    call.root
        .delete_cluster(call.acting, call.param(1), retain)?;
    Ok((202, None))
}

pub(super) fn update(call: &Call<'_>) -> Outcome {
    let body = call.object(WRITABLE, READ_ONLY)?;
    check_common(&body)?;
    let name = call.param(1);
    let settings = call.settings()?;
    let current = find(&settings, name)?;
    if let Some(renamed) = string(&body, "name")?.filter(|n| *n != name) {
        return Err(ApiError::validation(format!(
            "A cluster cannot be renamed ({name} to {renamed})."
        ))
        .with_parameters(&["name"]));
    }
    let shape = shape(&body, &atlas_region(&settings.region))?;
    if let Some(asked) = shape.nodes.filter(|n| *n != current.nodes) {
        return Err(ControlError::NodeCountFixed {
            cluster: name.to_string(),
            nodes: current.nodes,
            asked,
        }
        .into());
    }
    let backup = backup_of(&body)?;
    let encrypt = provider(&body)?.filter(|e| *e != current.encrypt);
    let reshaped = shape.tier.as_deref().is_some_and(|t| t != current.tier)
        || backup.is_some_and(|b| b != current.backup);
    let reshape = || -> Result<(), ApiError> {
        if reshaped {
            call.root
                .update_cluster(call.acting, name, shape.tier.as_deref(), backup)?;
        }
        Ok(())
    };
    // Raise the tier before encrypting, drop encryption before lowering it: each step
    // keeps to the rules on its own.
    match encrypt {
        Some(true) => {
            reshape()?;
            set_encryption(call, name, true)?;
        }
        Some(false) => {
            set_encryption(call, name, false)?;
            reshape()?;
        }
        None => reshape()?,
    }
    let settings = call.settings()?;
    Ok((200, Some(cluster_view(&settings, &find(&settings, name)?))))
}

fn set_encryption(call: &Call<'_>, name: &str, encrypt: bool) -> Result<(), ApiError> {
    match call
        .root
        .set_cluster_encryption(call.acting, name, encrypt, &mut |_, _| {})?
    {
        Applied::Done(()) | Applied::Queued => Ok(()),
    }
}

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
