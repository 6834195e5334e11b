//! The cluster resource's three shapes, by the version a request names: 2024-08-05 and
//! 2024-10-23 (ClusterDescription20240805), 2023-02-01 (AdvancedClusterDescription: the
//! same with `numShards` per replication spec and `diskSizeGB` at the top) and 2023-01-01
//! (LegacyAtlasCluster: `providerSettings`, `replicationFactor`, `regionsConfig`). Each is
//! read into what atrest acts on (name, instance size, node count, backup, provider) and
//! written from a cluster's spec.

use serde_json::{json, Map, Value};

use super::body::{boolean, check_members, string};
use super::clusters::state_name;
use super::error::ApiError;
use super::project::derived_id;
use crate::control::ids::atlas_region;
use crate::control::project::{Backup, ClusterSpec};
use crate::control::Settings;

/// The MongoDB version atrest's clusters report: the store is not MongoDB, so a fixed one.
pub(super) const MONGODB_MAJOR_VERSION: &str = "8.0";
pub(super) const MONGODB_VERSION: &str = "8.0.0";

/// The legacy shape's version.
const LEGACY: &str = "2023-01-01";
/// AdvancedClusterDescription's version.
const ADVANCED: &str = "2023-02-01";
/// The disk size atrest's clusters report: storage is the root's directory, not a volume.
const DISK_SIZE_GB: u32 = 10;

/// Members every version lets a client send; atrest acts on `name`, `clusterType`,
/// `backupEnabled`, `encryptionAtRestProvider`, `paused` and the instance size and node
/// count (in `replicationSpecs`, or the legacy shape's own members), and accepts the rest
/// without acting on them.
const WRITABLE: &[&str] = &[
    "acceptDataRisksAndForceReplicaSetReconfig",
    "advancedConfiguration",
    "backupEnabled",
    "biConnector",
    "clusterType",
    "configServerManagementMode",
    "diskWarmingMode",
    "encryptionAtRestProvider",
    "globalClusterSelfManagedSharding",
    "labels",
    "mongoDBEmployeeAccessGrant",
    "mongoDBMajorVersion",
    "name",
    "paused",
    "pitEnabled",
    "replicaSetScalingStrategy",
    "replicationSpecs",
    "rootCertType",
    "tags",
    "terminationProtectionEnabled",
    "versionReleaseSystem",
];
/// Members a client may send in ClusterDescription20240805 only.
const WRITABLE_SINCE_2024: &[&str] = &[
    "adaptiveCapacity",
    "redactClientLogData",
    "retainBackups",
    "useAwsTimeBasedSnapshotCopyForFastInitialSync",
];
/// Members a client may send in the legacy shape only (`diskSizeGB` in 2023-02-01 too).
const WRITABLE_LEGACY: &[&str] = &[
    "autoScaling",
    "numShards",
    "providerBackupEnabled",
    "providerSettings",
    "replicationFactor",
    "replicationSpec",
];
/// Members every version keeps to itself.
const READ_ONLY: &[&str] = &[
    "configServerType",
    "createDate",
    "featureCompatibilityVersion",
    "featureCompatibilityVersionExpirationDate",
    "groupId",
    "id",
    "links",
    "mongoDBVersion",
    "stateName",
];
/// Members the legacy shape keeps to itself: its connection strings.
const READ_ONLY_LEGACY: &[&str] = &[
    "connectionStrings",
    "mongoURI",
    "mongoURIUpdated",
    "mongoURIWithOptions",
    "srvAddress",
];
/// Members the later shapes keep to themselves.
const READ_ONLY_SINCE_2023_02: &[&str] = &["effectiveReplicationSpecs", "internalClusterRole"];

/// The members a client may send in `version`'s shape, and those it may not.
fn members(version: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    let (writable, read_only): (&[&[&str]], &[&[&str]]) = match version {
        LEGACY => (
            &[WRITABLE, WRITABLE_LEGACY, &["diskSizeGB"]],
            &[READ_ONLY, READ_ONLY_LEGACY],
        ),
        ADVANCED => (
            &[WRITABLE, &["connectionStrings", "diskSizeGB"]],
            &[READ_ONLY, READ_ONLY_SINCE_2023_02],
        ),
        _ => (
            &[WRITABLE, WRITABLE_SINCE_2024, &["connectionStrings"]],
            &[READ_ONLY, READ_ONLY_SINCE_2023_02],
        ),
    };
    (writable.concat(), read_only.concat())
}

/// The members every shape shows alike, and the replication spec's id.
fn shared_view(settings: &Settings, spec: &ClusterSpec) -> (Map<String, Value>, String) {
    let project = &settings.project.id;
    let name = &spec.name;
    let shared = json!({
        "id": derived_id(&format!("cluster {name} of {project}")),
        "groupId": project,
        "name": name,
        "clusterType": "REPLICASET",
        "encryptionAtRestProvider": if spec.encrypt { "AWS" } else { "NONE" },
        "stateName": state_name(settings, name),
        "paused": false,
        "mongoDBMajorVersion": MONGODB_MAJOR_VERSION,
        "mongoDBVersion": MONGODB_VERSION,
        "links": [],
    });
    let replication = derived_id(&format!("replication spec of {name} of {project}"));
    match shared {
        Value::Object(members) => (members, replication),
        _ => (Map::new(), replication),
    }
}

/// ClusterDescription20240805.
fn current_view(settings: &Settings, spec: &ClusterSpec) -> Value {
    let (mut view, replication) = shared_view(settings, spec);
    let zone = derived_id(&format!("zone of {} of {}", spec.name, settings.project.id));
    view.insert("backupEnabled".into(), json!(spec.backup == Backup::Cloud));
    view.insert(
        "replicationSpecs".into(),
        json!([{
            "id": replication,
            "zoneId": zone,
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
        }]),
    );
    Value::Object(view)
}

/// What a cluster request asks, whatever the shape it came in.
#[derive(Debug, Default)]
pub(super) struct Asked {
    pub name: Option<String>,
    pub shape: Shape,
    pub backup: Option<Backup>,
    pub encrypt: Option<bool>,
}

/// Reads `body`, sent in `version`'s shape, for a project in `settings`.
pub(super) fn asked(
    body: &Map<String, Value>,
    version: &str,
    settings: &Settings,
) -> Result<Asked, ApiError> {
    let region = atlas_region(&settings.region);
    let (writable, read_only) = members(version);
    check_members(body, &writable, &read_only)?;
    check_common(body)?;
    let (shape, backup) = match version {
        LEGACY => (legacy_shape(body, &region)?, legacy_backup(body)?),
        _ => (shape(body, &region)?, backup_of(body)?),
    };
    Ok(Asked {
        name: string(body, "name")?.map(str::to_string),
        shape,
        backup,
        encrypt: provider(body)?,
    })
}

/// `spec` in `version`'s shape.
pub(super) fn view(settings: &Settings, spec: &ClusterSpec, version: &str) -> Value {
    let mut view = match version {
        LEGACY => return legacy_view(settings, spec),
        _ => current_view(settings, spec),
    };
    if version == ADVANCED {
        if let Some(fields) = view.as_object_mut() {
            fields.insert("diskSizeGB".into(), json!(DISK_SIZE_GB));
        }
        if let Some(replication) = view.pointer_mut("/replicationSpecs/0") {
            replication["numShards"] = json!(1);
        }
    }
    view
}

/// LegacyAtlasCluster.
fn legacy_view(settings: &Settings, spec: &ClusterSpec) -> Value {
    let (mut view, replication) = shared_view(settings, spec);
    let region = atlas_region(&settings.region);
    let legacy = json!({
        "backupEnabled": false,
        "providerBackupEnabled": spec.backup == Backup::Cloud,
        "diskSizeGB": DISK_SIZE_GB,
        "numShards": 1,
        "replicationFactor": spec.nodes,
        "providerSettings": {
            "providerName": "AWS",
            "instanceSizeName": spec.tier,
            "regionName": region,
        },
        "replicationSpecs": [{
            "id": replication,
            "numShards": 1,
            "zoneName": "Zone 1",
            "regionsConfig": { region.clone(): {
                "electableNodes": spec.nodes,
                "priority": 7,
                "readOnlyNodes": 0,
                "analyticsNodes": 0,
            }},
        }],
    });
    if let Value::Object(members) = legacy {
        view.extend(members);
    }
    Value::Object(view)
}

/// LegacyAtlasCluster's instance size (`providerSettings`) and node count
/// (`replicationSpecs[0].regionsConfig`, `replicationSpec` or `replicationFactor`).
fn legacy_shape(body: &Map<String, Value>, region: &str) -> Result<Shape, ApiError> {
    let unsupported = |what: &str, member: &str| {
        ApiError::validation(format!(
            "atrest clusters are one replica set in one AWS region: {what}."
        ))
        .with_parameters(&[member])
    };
    if body.get("numShards").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(unsupported("numShards must be 1", "numShards"));
    }
    let mut shape = Shape::default();
    if let Some(settings) = body.get("providerSettings") {
        if settings.get("providerName").and_then(Value::as_str) != Some("AWS") {
            return Err(unsupported("providerName must be AWS", "providerSettings"));
        }
        let asked_region = settings.get("regionName").and_then(Value::as_str);
        if asked_region.is_some_and(|r| r != region) {
            return Err(unsupported(
                &format!("regionName must be the project's region, {region}"),
                "providerSettings",
            ));
        }
        shape.tier = settings
            .get("instanceSizeName")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let regions = match body.get("replicationSpecs") {
        Some(specs) => match specs.as_array().map(Vec::as_slice).unwrap_or_default() {
            [spec] => {
                if spec.get("numShards").is_some_and(|n| n.as_u64() != Some(1)) {
                    return Err(unsupported("numShards must be 1", "replicationSpecs"));
                }
                spec.get("regionsConfig")
            }
            _ => {
                return Err(unsupported(
                    "give exactly one replication spec",
                    "replicationSpecs",
                ))
            }
        },
        None => body.get("replicationSpec"),
    };
    let count = |value: &Value, member: &str| -> Result<u32, ApiError> {
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::validation(format!("{member} must be a whole number."))
                    .with_parameters(&[member])
            })
    };
    if let Some(regions) = regions.and_then(Value::as_object) {
        let [(name, config)] = regions.iter().collect::<Vec<_>>()[..] else {
            return Err(unsupported("give exactly one region", "replicationSpecs"));
        };
        if name != region {
            return Err(unsupported(
                &format!("the region must be the project's, {region}"),
                "replicationSpecs",
            ));
        }
        for other in ["readOnlyNodes", "analyticsNodes"] {
            if config.get(other).and_then(Value::as_u64).unwrap_or(0) > 0 {
                return Err(unsupported(
                    &format!("{other} are not emulated"),
                    "replicationSpecs",
                ));
            }
        }
        if let Some(nodes) = config.get("electableNodes") {
            shape.nodes = Some(count(nodes, "electableNodes")?);
        }
    }
    if let Some(factor) = body.get("replicationFactor") {
        let factor = count(factor, "replicationFactor")?;
        if shape.nodes.is_some_and(|n| n != factor) {
            return Err(ApiError::validation(
                "replicationFactor and the region's electableNodes disagree.",
            )
            .with_parameters(&["replicationFactor"]));
        }
        shape.nodes = Some(factor);
    }
    Ok(shape)
}

/// LegacyAtlasCluster's backup: `providerBackupEnabled` (Cloud Backups) or, as its
/// document now says of dedicated clusters, `backupEnabled`.
fn legacy_backup(body: &Map<String, Value>) -> Result<Option<Backup>, ApiError> {
    let cloud = boolean(body, "providerBackupEnabled")?;
    let backup = boolean(body, "backupEnabled")?;
    Ok(match (cloud, backup) {
        (None, None) => None,
        (c, b) => Some(match c.unwrap_or(false) || b.unwrap_or(false) {
            true => Backup::Cloud,
            false => Backup::None,
        }),
    })
}

/// What a request asks of a cluster's hardware: the instance size and electable nodes of
/// its one region.
#[derive(Debug, Default)]
pub(super) struct Shape {
    pub tier: Option<String>,
    pub nodes: Option<u32>,
}

/// `replicationSpecs` of ClusterDescription20240805 and AdvancedClusterDescription.
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
    if spec.get("numShards").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(unsupported("numShards must be 1"));
    }
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
