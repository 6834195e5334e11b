//! The project's own resources: `groups` (the organization's projects), `cloudProviderAccess`
//! (AWS IAM roles set up, authorized and deauthorized), `encryptionAtRest` (GET and PATCH
//! of `awsKms`; Azure and Google Cloud answered as unsupported) and its AWS private
//! endpoints.

use aws_lc_rs::digest;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::body::{boolean, check_members, string};
use super::error::ApiError;
use super::routes::{Call, Outcome};
use super::wire::page;
use crate::control::ids::atlas_region;
use crate::control::project::{AccessRole, KmsAccess, PendingAccessRole};
use crate::control::{AccessRequest, EndpointStatus, PrivateEndpoint, Settings};

/// A 24-hex-digit id for something atrest keeps no id of (the organization, a cluster, a
/// zone), derived from what names it, so every call shows the same.
pub(super) fn derived_id(what: &str) -> String {
    let d = digest::digest(&digest::SHA256, what.as_bytes());
    d.as_ref()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The organization a project belongs to: atrest keeps no organization id, so one
/// derived from the organization's home project.
pub(super) fn org_id(call: &Call<'_>) -> Result<String, ApiError> {
    let home = call.api.root().require_settings()?;
    Ok(derived_id(&format!("organization of {}", home.project.id)))
}

fn group_view(settings: &Settings, org: &str) -> Value {
    let p = &settings.project;
    json!({
        "id": p.id,
        "name": p.name,
        "orgId": org,
        "clusterCount": p.clusters.len(),
        "created": p.created.unwrap_or(p.encryption.cmk_set_at).to_string(),
        "links": [],
    })
}

/// The organization's projects the key has a role in: its home first, then the others
/// in the order of their ids.
pub(super) fn list_groups(call: &Call<'_>) -> Outcome {
    let org = org_id(call)?;
    let home = call.api.root();
    let mut projects = vec![home.require_settings()?];
    projects.extend(home.member_projects()?.into_iter().map(|m| m.settings));
    let views = projects
        .iter()
        .filter(|s| s.project.role_of(call.acting).is_ok())
        .map(|s| group_view(s, &org))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn get_group(call: &Call<'_>) -> Outcome {
    Ok((200, Some(group_view(&call.settings()?, &org_id(call)?))))
}

/// Deletes a project of the organization with nothing left in it.
pub(super) fn delete_group(call: &Call<'_>) -> Outcome {
    call.api.root().delete_project(call.acting, call.param(0))?;
    Ok((204, None))
}

/// Creates a project in the organization, with the requesting key as a Project Owner.
pub(super) fn create_group(call: &Call<'_>) -> Outcome {
    let body = call.object(
        &["name", "orgId", "withDefaultAlertsSettings", "tags"],
        &["id", "created", "clusterCount", "links"],
    )?;
    let org = org_id(call)?;
    let required = |member: &str| -> Result<String, ApiError> {
        string(&body, member)?
            .map(str::to_string)
            .ok_or_else(|| ApiError::missing(member))
    };
    let (name, org_given) = (required("name")?, required("orgId")?);
    if org_given != org {
        return Err(ApiError::new(
            404,
            "ORG_NOT_FOUND",
            format!("No organization with ID {org_given} exists."),
        )
        .with_parameters(&[&org_given]));
    }
    let default_alerts = boolean(&body, "withDefaultAlertsSettings")?.unwrap_or(true);
    if body
        .get("tags")
        .is_some_and(|tags| tags.as_array().is_none_or(|t| !t.is_empty()))
    {
        return Err(
            ApiError::validation("atrest keeps no project tags: give none.")
                .with_parameters(&["tags"]),
        );
    }
    let created = call
        .api
        .root()
        .create_project(call.acting, &name, default_alerts)?;
    Ok((200, Some(group_view(&created.require_settings()?, &org))))
}

/// A role as `cloudProviderAccess` shows it, authorized or only set up.
enum RoleView<'a> {
    Authorized(&'a AccessRole),
    SetUp(&'a PendingAccessRole),
}

fn role_view(settings: &Settings, role: RoleView<'_>) -> Value {
    let mut view = Map::new();
    view.insert("providerName".into(), json!("AWS"));
    view.insert("atlasAWSAccountArn".into(), json!(settings.principal));
    match role {
        RoleView::Authorized(r) => {
            let in_use = settings.project.encryption.enabled
                && matches!(&settings.project.encryption.access,
                    Some(KmsAccess::Role { role_id }) if *role_id == r.role_id);
            let usages = match in_use {
                true => json!([{ "featureType": "ENCRYPTION_AT_REST" }]),
                false => json!([]),
            };
            view.insert("roleId".into(), json!(r.role_id));
            view.insert("iamAssumedRoleArn".into(), json!(r.iam_assumed_role_arn));
            view.insert(
                "atlasAssumedRoleExternalId".into(),
                json!(r.atlas_assumed_role_external_id),
            );
            view.insert(
                "authorizedDate".into(),
                json!(r.authorized_date.to_string()),
            );
            let created = r.created_date.unwrap_or(r.authorized_date);
            view.insert("createdDate".into(), json!(created.to_string()));
            view.insert("featureUsages".into(), usages);
        }
        RoleView::SetUp(r) => {
            view.insert("roleId".into(), json!(r.role_id));
            view.insert(
                "atlasAssumedRoleExternalId".into(),
                json!(r.atlas_assumed_role_external_id),
            );
            view.insert("createdDate".into(), json!(r.created_date.to_string()));
            view.insert("featureUsages".into(), json!([]));
        }
    }
    Value::Object(view)
}

fn find_role(settings: &Settings, role_id: &str) -> Result<Value, ApiError> {
    let p = &settings.project;
    if let Some(r) = p.access_roles.iter().find(|r| r.role_id == role_id) {
        return Ok(role_view(settings, RoleView::Authorized(r)));
    }
    if let Some(r) = p.pending_roles.iter().find(|r| r.role_id == role_id) {
        return Ok(role_view(settings, RoleView::SetUp(r)));
    }
    Err(ApiError::new(
        404,
        "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND",
        format!("No cloud provider access role with ID {role_id} exists."),
    )
    .with_parameters(&[role_id]))
}

/// `providerName` of a role request: AWS, the one provider atrest has.
fn require_aws(object: &Map<String, Value>) -> Result<(), ApiError> {
    match string(object, "providerName")? {
        Some("AWS") => Ok(()),
        Some(other @ ("AZURE" | "GCP")) => Err(unsupported_provider(other)),
        Some(other) => Err(ApiError::validation(format!("No provider {other} exists."))
            .with_parameters(&["providerName"])),
        None => {
            Err(ApiError::validation("providerName is required.")
                .with_parameters(&["providerName"]))
        }
    }
}

fn unsupported_provider(provider: &str) -> ApiError {
    ApiError::validation(format!(
        "atrest emulates encryption at rest with AWS KMS only; {provider} is not supported."
    ))
    .with_parameters(&[provider])
}

const ROLE_READ_ONLY: &[&str] = &[
    "atlasAWSAccountArn",
    "atlasAssumedRoleExternalId",
    "authorizedDate",
    "createdDate",
    "featureUsages",
    "roleId",
    "_id",
    "lastUpdatedDate",
    "gcpServiceAccountForAtlas",
    "status",
];

pub(super) fn list_roles(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let p = &settings.project;
    let authorized = p.access_roles.iter().map(RoleView::Authorized);
    let set_up = p.pending_roles.iter().map(RoleView::SetUp);
    let roles: Vec<Value> = authorized
        .chain(set_up)
        .map(|r| role_view(&settings, r))
        .collect();
    Ok((
        200,
        Some(json!({
            "awsIamRoles": roles,
            "azureServicePrincipals": [],
            "gcpServiceAccounts": [],
        })),
    ))
}

pub(super) fn create_role(call: &Call<'_>) -> Outcome {
    let body = call.object(&["providerName"], ROLE_READ_ONLY)?;
    require_aws(&body)?;
    let role = call.root.set_up_access_role(call.acting)?;
    Ok((
        200,
        Some(role_view(&call.settings()?, RoleView::SetUp(&role))),
    ))
}

pub(super) fn get_role(call: &Call<'_>) -> Outcome {
    Ok((200, Some(find_role(&call.settings()?, call.param(1))?)))
}

pub(super) fn authorize_role(call: &Call<'_>) -> Outcome {
    let body = call.object(&["providerName", "iamAssumedRoleArn"], ROLE_READ_ONLY)?;
    require_aws(&body)?;
    let Some(arn) = string(&body, "iamAssumedRoleArn")? else {
        return Err(ApiError::validation("iamAssumedRoleArn is required.")
            .with_parameters(&["iamAssumedRoleArn"]));
    };
    let role = call
        .root
        .authorize_access_role(call.acting, call.param(1), arn)?;
    Ok((
        200,
        Some(role_view(&call.settings()?, RoleView::Authorized(&role))),
    ))
}

pub(super) fn deauthorize_role(call: &Call<'_>) -> Outcome {
    match call.param(1) {
        "AWS" => {}
        other @ ("AZURE" | "GCP") => return Err(unsupported_provider(other)),
        other => return Err(ApiError::validation(format!("No provider {other} exists."))),
    }
    call.root
        .deauthorize_access_role(call.acting, call.param(2))?;
    Ok((204, None))
}

fn encryption_view(call: &Call<'_>) -> Result<Value, ApiError> {
    let settings = call.settings()?;
    let encryption = &settings.project.encryption;
    let mut aws = Map::new();
    aws.insert("enabled".into(), json!(encryption.enabled));
    if !settings.cmk.is_empty() {
        aws.insert("customerMasterKeyID".into(), json!(settings.cmk));
        aws.insert("region".into(), json!(atlas_region(&settings.region)));
    }
    if let Some(KmsAccess::Credentials { access_key_id }) = &encryption.access {
        aws.insert("accessKeyID".into(), json!(access_key_id));
    }
    aws.insert(
        "requirePrivateNetworking".into(),
        json!(encryption.require_private_networking),
    );
    aws.insert("valid".into(), json!(call.root.key_is_valid()?));
    Ok(json!({
        "awsKms": aws,
        "azureKeyVault": { "enabled": false },
        "googleCloudKms": { "enabled": false },
        "enabledForSearchNodes": false,
    }))
}

pub(super) fn get_encryption(call: &Call<'_>) -> Outcome {
    Ok((200, Some(encryption_view(call)?)))
}

const AWS_KMS_WRITABLE: &[&str] = &[
    "enabled",
    "customerMasterKeyID",
    "region",
    "roleId",
    "accessKeyID",
    "secretAccessKey",
    "requirePrivateNetworking",
];

pub(super) fn update_encryption(call: &Call<'_>) -> Outcome {
    let body = call.object(
        &[
            "awsKms",
            "azureKeyVault",
            "googleCloudKms",
            "enabledForSearchNodes",
        ],
        &[],
    )?;
    for (member, provider) in [
        ("azureKeyVault", "Azure Key Vault"),
        ("googleCloudKms", "Google Cloud KMS"),
    ] {
        if let Some(config) = body.get(member) {
            let enabled = config
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if enabled {
                return Err(unsupported_provider(provider));
            }
        }
    }
    if boolean(&body, "enabledForSearchNodes")? == Some(true) {
        return Err(ApiError::validation(
            "atrest has no search nodes: enabledForSearchNodes cannot be true.",
        )
        .with_parameters(&["enabledForSearchNodes"]));
    }
    if let Some(aws) = body.get("awsKms") {
        let Value::Object(aws) = aws else {
            return Err(ApiError::validation("awsKms must be an object."));
        };
        check_members(aws, AWS_KMS_WRITABLE, &["valid"])?;
        configure_aws(call, aws)?;
    }
    Ok((200, Some(encryption_view(call)?)))
}

/// Applies a PATCH of `awsKms`: turn it off, rotate the CMK, change access or private
/// networking, each with the rules the CLI's commands apply.
fn configure_aws(call: &Call<'_>, aws: &Map<String, Value>) -> Result<(), ApiError> {
    let settings = call.settings()?;
    let encryption = &settings.project.encryption;
    if boolean(aws, "enabled")? == Some(false) {
        call.root.disable_project_encryption(call.acting)?;
        return Ok(());
    }
    let project_region = atlas_region(&settings.region);
    if let Some(region) = string(aws, "region")? {
        if region != project_region {
            return Err(ApiError::validation(format!(
                "The project's KMS is in region {project_region}; a key in {region} cannot be used."
            ))
            .with_parameters(&["region"]));
        }
    }
    let cmk = match string(aws, "customerMasterKeyID")? {
        Some(cmk) => cmk.to_string(),
        None if !settings.cmk.is_empty() => settings.cmk.clone(),
        None => {
            return Err(ApiError::validation("customerMasterKeyID is required.")
                .with_parameters(&["customerMasterKeyID"]))
        }
    };
    let private_networking =
        boolean(aws, "requirePrivateNetworking")?.unwrap_or(encryption.require_private_networking);
    let secret = string(aws, "secretAccessKey")?.map(|s| Zeroizing::new(s.to_string()));
    let asked = match (string(aws, "roleId")?, string(aws, "accessKeyID")?, secret) {
        (Some(role), _, _) => Some(AccessRequest::Role(role.to_string())),
        (None, Some(id), Some(secret)) => Some(AccessRequest::Credentials {
            access_key_id: id.to_string(),
            secret_access_key: secret,
        }),
        (None, None, None) => None,
        _ => return Err(crate::control::ControlError::IncompleteCredentials.into()),
    };
    let current = match &encryption.access {
        Some(KmsAccess::Role { role_id }) => Some(AccessRequest::Role(role_id.clone())),
        _ => None,
    };
    let rotating = encryption.enabled
        && !settings.cmk.is_empty()
        && !settings.project.encrypted_clusters().is_empty()
        && call
            .root
            .kms()?
            .describe_key(&cmk)
            .map(|m| m.arn)
            .unwrap_or_else(|_| cmk.clone())
            != settings.cmk;
    if rotating {
        // A new key under encrypted clusters is a CMK rotation: every master key is
        // re-wrapped under it, node by node.
        call.root.set_key(&cmk)?;
    }
    let changes_config = asked.is_some()
        || !encryption.enabled
        || private_networking != encryption.require_private_networking
        || (!rotating && cmk != settings.cmk);
    if !changes_config {
        return Ok(());
    }
    let Some(access) = asked.or(current) else {
        return Err(ApiError::validation(
            "Give roleId (or accessKeyID with secretAccessKey): the project has no access to reuse without them.",
        )
        .with_parameters(&["roleId"]));
    };
    call.root
        .configure_encryption(call.acting, &cmk, access, private_networking)?;
    Ok(())
}

fn endpoint_view(endpoint: &PrivateEndpoint, status: EndpointStatus) -> Value {
    json!({
        "id": endpoint.id,
        "cloudProvider": "AWS",
        "regionName": endpoint.region_name,
        "status": status.atlas_name(),
    })
}

fn require_aws_endpoint(call: &Call<'_>) -> Result<(), ApiError> {
    match call.param(1) {
        "AWS" => Ok(()),
        "AZURE" => Err(unsupported_provider("AZURE")),
        other => Err(ApiError::validation(format!("No provider {other} exists."))),
    }
}

fn find_endpoint(call: &Call<'_>) -> Result<Value, ApiError> {
    let id = call.param(2);
    call.root
        .private_endpoints()?
        .iter()
        .find(|(e, _)| e.id == id)
        .map(|(e, status)| endpoint_view(e, *status))
        .ok_or_else(|| {
            ApiError::not_found(format!("No private endpoint with ID {id} exists."))
                .with_parameters(&[id])
        })
}

pub(super) fn list_endpoints(call: &Call<'_>) -> Outcome {
    require_aws_endpoint(call)?;
    let endpoints = call.root.private_endpoints()?;
    let views = endpoints
        .iter()
        .map(|(e, s)| endpoint_view(e, *s))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn create_endpoint(call: &Call<'_>) -> Outcome {
    require_aws_endpoint(call)?;
    let body = call.object(
        &["regionName"],
        &[
            "cloudProvider",
            "errorMessage",
            "id",
            "status",
            "privateEndpointConnectionName",
        ],
    )?;
    let Some(region) = string(&body, "regionName")? else {
        return Err(
            ApiError::validation("regionName is required.").with_parameters(&["regionName"])
        );
    };
    let endpoint = call.root.request_private_endpoint(call.acting, region)?;
    Ok((
        202,
        Some(endpoint_view(&endpoint, EndpointStatus::Initiating)),
    ))
}

pub(super) fn get_endpoint(call: &Call<'_>) -> Outcome {
    require_aws_endpoint(call)?;
    Ok((200, Some(find_endpoint(call)?)))
}

pub(super) fn delete_endpoint(call: &Call<'_>) -> Outcome {
    require_aws_endpoint(call)?;
    call.root
        .delete_private_endpoint(call.acting, call.param(2))?;
    Ok((204, None))
}
