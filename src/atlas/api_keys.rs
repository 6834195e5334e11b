//! A project's programmatic API keys (`/groups/{groupId}/apiKeys`): listed, created (the
//! private half shown once, in the answer), their role or description changed, and
//! removed from the project. atrest keys hold one project role each.

use serde_json::{json, Map, Value};

use super::body::string;
use super::create_api_key;
use super::error::ApiError;
use super::project::org_id;
use super::routes::{Call, Outcome};
use super::wire::page;
use crate::control::project::ProjectRole;
use crate::control::{ApiKey, Settings};

/// What a listing shows of a private half atrest never keeps.
const REDACTED: &str = "********-****-****-************";

fn view(settings: &Settings, org: &str, key: &ApiKey, private: &str) -> Value {
    let mut roles =
        vec![json!({ "groupId": settings.project.id, "roleName": key.role.atlas_name() })];
    if let Some(role) = key.org_role {
        roles.push(json!({ "orgId": org, "roleName": role.atlas_name() }));
    }
    json!({
        "id": key.id,
        "desc": key.description,
        "publicKey": key.public_key,
        "privateKey": private,
        "roles": roles,
        "links": [],
    })
}

/// `roles`: the one project role atrest keys hold, by Atlas's name.
fn role(body: &Map<String, Value>, settings: &Settings) -> Result<Option<ProjectRole>, ApiError> {
    let Some(roles) = body.get("roles") else {
        return Ok(None);
    };
    let names: Vec<&str> = roles
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let [name] = names[..] else {
        return Err(ApiError::validation(
            "atrest API keys hold one project role: give exactly one of GROUP_OWNER, GROUP_CLUSTER_MANAGER, GROUP_READ_ONLY.",
        )
        .with_parameters(&["roles"]));
    };
    let role = [
        ProjectRole::Owner,
        ProjectRole::ClusterManager,
        ProjectRole::ReadOnly,
    ]
    .into_iter()
    .find(|r| r.atlas_name() == name);
    match role {
        Some(role) => Ok(Some(role)),
        None => Err(ApiError::new(
            400,
            "INVALID_ROLE_FOR_GROUP",
            format!("Role {name} is invalid for group {}.", settings.project.id),
        )
        .with_parameters(&[name, &settings.project.id])),
    }
}

/// The project's key `id` (Atlas's `apiUserId`).
fn find(settings: &Settings, id: &str) -> Result<ApiKey, ApiError> {
    settings
        .project
        .api_keys
        .iter()
        .find(|k| k.id == id)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                400,
                "API_KEY_NOT_FOUND",
                format!("No API key with ID {id} exists."),
            )
            .with_parameters(&[id])
        })
}

pub(super) fn list(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let org = org_id(call)?;
    let views = settings
        .project
        .api_keys
        .iter()
        .map(|k| view(&settings, &org, k, REDACTED))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn create(call: &Call<'_>) -> Outcome {
    let body = call.object(
        &["desc", "roles"],
        &["id", "links", "privateKey", "publicKey"],
    )?;
    let settings = call.settings()?;
    let description = string(&body, "desc")?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "API_KEY_REQUIRES_DESCRIPTION",
                "All API keys require a non-empty description.",
            )
        })?;
    let role = role(&body, &settings)?.ok_or_else(|| {
        ApiError::new(
            400,
            "MISSING_API_KEY_ROLES",
            "API keys must have at least one role.",
        )
    })?;
    let (key, private) = create_api_key(call.root, call.acting, (role, None), description)?;
    let org = org_id(call)?;
    Ok((200, Some(view(&settings, &org, &key, &private))))
}

pub(super) fn update(call: &Call<'_>) -> Outcome {
    let body = call.object(
        &["desc", "roles"],
        &["id", "links", "privateKey", "publicKey"],
    )?;
    let settings = call.settings()?;
    let key = find(&settings, call.param(1))?;
    let role = role(&body, &settings)?;
    let description = string(&body, "desc")?;
    let key = call
        .root
        .update_api_key(call.acting, &key.public_key, role, description)?;
    let org = org_id(call)?;
    Ok((200, Some(view(&call.settings()?, &org, &key, REDACTED))))
}

pub(super) fn remove(call: &Call<'_>) -> Outcome {
    let key = find(&call.settings()?, call.param(1))?;
    call.root.delete_api_key(call.acting, &key.public_key)?;
    Ok((204, None))
}
