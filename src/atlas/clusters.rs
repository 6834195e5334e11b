//! `clusters` (a replica set in the project's AWS region: instance size, node count, Cloud
//! Backup, `encryptionAtRestProvider` NONE or AWS) in each version's shape
//! (`cluster_shapes`), created, read, updated and deleted. Switching the provider is atrest's rolling
//! rewrite; the cluster is UPDATING until it is done.

use super::cluster_shapes::{asked, view, Asked};
use super::error::ApiError;
use super::routes::{Call, Outcome};
use super::wire::page;
use crate::control::project::{Backup, ClusterSpec, QueuedChange, DEFAULT_NODES};
use crate::control::{Applied, ControlError, Settings};

/// Where a cluster is in its life, from the project's state.
pub(super) fn state_name(settings: &Settings, name: &str) -> &'static str {
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

/// Every cluster, made or waiting to be made.
fn all_specs(settings: &Settings) -> Vec<ClusterSpec> {
    let made = settings.project.clusters.values().map(|c| c.spec.clone());
    let queued = settings.project.queue.iter().filter_map(|c| match c {
        QueuedChange::CreateCluster { spec } => Some(spec.clone()),
        _ => None,
    });
    made.chain(queued).collect()
}

pub(super) fn find(settings: &Settings, name: &str) -> Result<ClusterSpec, ApiError> {
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
        .map(|s| view(&settings, s, call.version))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn get(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let spec = find(&settings, call.param(1))?;
    Ok((200, Some(view(&settings, &spec, call.version))))
}

pub(super) fn create(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let asked = asked(&call.json_object()?, call.version, &settings)?;
    let Some(name) = asked.name else {
        return Err(ApiError::validation("name is required.").with_parameters(&["name"]));
    };
    let Some(tier) = asked.shape.tier else {
        return Err(ApiError::validation(
            "The instance size is required (replicationSpecs[0].regionConfigs[0].electableSpecs.instanceSize; providerSettings.instanceSizeName in the 2023-01-01 shape).",
        )
        .with_parameters(&["replicationSpecs"]));
    };
    let spec = ClusterSpec {
        name,
        tier,
        nodes: asked.shape.nodes.unwrap_or(DEFAULT_NODES),
        backup: asked.backup.unwrap_or(Backup::None),
        serverless: false,
        encrypt: asked.encrypt.unwrap_or(false),
    };
    call.root.create_cluster(call.acting, spec.clone())?;
    Ok((201, Some(view(&call.settings()?, &spec, call.version))))
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
    let name = call.param(1);
    let settings = call.settings()?;
    let Asked {
        name: asked_name,
        shape,
        backup,
        encrypt,
    } = asked(&call.json_object()?, call.version, &settings)?;
    let current = find(&settings, name)?;
    if let Some(renamed) = asked_name.filter(|n| *n != name) {
        return Err(ApiError::validation(format!(
            "A cluster cannot be renamed ({name} to {renamed})."
        ))
        .with_parameters(&["name"]));
    }
    if let Some(asked) = shape.nodes.filter(|n| *n != current.nodes) {
        return Err(ControlError::NodeCountFixed {
            cluster: name.to_string(),
            nodes: current.nodes,
            asked,
        }
        .into());
    }
    let encrypt = encrypt.filter(|e| *e != current.encrypt);
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
    Ok((
        200,
        Some(view(&settings, &find(&settings, name)?, call.version)),
    ))
}

fn set_encryption(call: &Call<'_>, name: &str, encrypt: bool) -> Result<(), ApiError> {
    match call
        .root
        .set_cluster_encryption(call.acting, name, encrypt, &mut |_, _| {})?
    {
        Applied::Done(()) | Applied::Queued => Ok(()),
    }
}
