//! Atlas's error body (`error`, `errorCode`, `detail`, `reason`, `parameters`) and which
//! one each control-plane error is, in Atlas's status codes and error codes.

use serde_json::{json, Value};

use crate::control::{ControlError, ALERT_NEEDS_ROTATION};
use crate::kms::KmsError;
use crate::store::SnapshotError;

/// An error as Atlas answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Atlas's error code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub detail: String,
    /// The values the detail names.
    pub parameters: Vec<String>,
}

impl ApiError {
    /// An error of `status` and `code`.
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            parameters: Vec::new(),
        }
    }

    /// The same, naming `values` in `parameters`.
    pub fn with_parameters(mut self, values: &[&str]) -> Self {
        self.parameters = values.iter().map(|v| v.to_string()).collect();
        self
    }

    /// 400 for a request the API's shapes do not allow.
    pub fn validation(detail: impl Into<String>) -> Self {
        ApiError::new(400, "VALIDATION_ERROR", detail)
    }

    /// 400 for an attribute Atlas does not take.
    pub fn invalid_attribute(name: &str) -> Self {
        ApiError::new(
            400,
            "INVALID_ATTRIBUTE",
            format!("Invalid attribute {name} specified."),
        )
        .with_parameters(&[name])
    }

    /// 400 for a required attribute the request lacks.
    pub fn missing(name: &str) -> Self {
        ApiError::new(
            400,
            "MISSING_ATTRIBUTE",
            format!("The required attribute {name} was not specified."),
        )
        .with_parameters(&[name])
    }

    /// 400 for a read-only attribute in a request.
    pub fn read_only(name: &str) -> Self {
        ApiError::new(
            400,
            "ATTRIBUTE_READ_ONLY",
            format!("The attribute {name} is read-only and cannot be changed by the user."),
        )
        .with_parameters(&[name])
    }

    /// 404 for a path that names nothing.
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(404, "RESOURCE_NOT_FOUND", what)
    }

    /// The body Atlas sends.
    pub fn body(&self) -> Value {
        json!({
            "error": self.status,
            "errorCode": self.code,
            "detail": self.detail,
            "reason": reason(self.status),
            "parameters": self.parameters,
        })
    }
}

/// The HTTP reason phrase.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        use ControlError as C;
        let detail = e.to_string();
        let named = |status, code, values: &[&str]| {
            ApiError::new(status, code, detail.clone()).with_parameters(values)
        };
        let (status, code) = match &e {
            C::NotProjectOwner { .. } | C::ReadOnlyRole { .. } | C::UnknownUser { .. } => {
                (401, "USER_UNAUTHORIZED")
            }
            C::NotProjectCreator { .. } => (401, "NOT_ORG_GROUP_CREATOR"),
            C::UnknownCluster { name, .. } => return named(404, "CLUSTER_NOT_FOUND", &[name]),
            C::UnknownAccessRole { role_id } => {
                return named(404, "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND", &[role_id])
            }
            C::ClusterExists { name } => return named(400, "DUPLICATE_CLUSTER_NAME", &[name]),
            C::BadClusterName { name } => return named(400, "CLUSTER_NAME_INVALID", &[name]),
            C::ProjectExists { name } => return named(409, "GROUP_ALREADY_EXISTS", &[name]),
            C::BadProjectName { name } => return named(400, "INVALID_GROUP_NAME", &[name]),
            C::UnknownProject { id } => {
                return ApiError::new(
                    404,
                    "GROUP_NOT_FOUND",
                    format!("No group with ID {id} exists."),
                )
                .with_parameters(&[id])
            }
            C::ProjectInUse { clusters, .. } if !clusters.is_empty() => {
                (409, "CANNOT_CLOSE_GROUP_ACTIVE_ATLAS_CLUSTERS")
            }
            C::ProjectInUse { .. } => (409, "CANNOT_CLOSE_GROUP_ACTIVE_BACKUP"),
            C::OrganizationHomeKept { .. } => (400, "VALIDATION_ERROR"),
            C::UnknownAlert { .. } => (404, "ALERT_NOT_FOUND"),
            C::UnknownAlertConfig { id } => return named(404, "ALERT_CONFIG_NOT_FOUND", &[id]),
            C::UnsupportedAlertEvent { event } => {
                return named(400, "INVALID_EVENT_TYPE_FOR_ALERT", &[event])
            }
            C::AlertThreshold { event } if event == ALERT_NEEDS_ROTATION => {
                (400, "MISSING_THRESHOLD")
            }
            C::AlertThreshold { .. } => (400, "THRESHOLD_PRESENT"),
            C::BadTier { .. } | C::BadNodeCount { .. } => (400, "INVALID_ATTRIBUTE"),
            C::TierTooSmall { tier, .. } if is_tenant(tier) => {
                (400, "CANNOT_USE_ENCRYPTION_AT_REST_TENANT")
            }
            C::TierTooSmall { .. } => (400, "INSUFFICIENT_INSTANCE_SIZE"),
            C::ServerlessUnsupported { .. } => (400, "ENCRYPTION_AT_REST_PROVIDER_NOT_SUPPORTED"),
            C::LegacyBackup { .. } => (400, "CANNOT_USE_ENCRYPTION_AT_REST_BACKUP_TYPE"),
            C::ProjectNotConfigured => (400, "ENCRYPTION_AT_REST_NOT_ENABLED"),
            C::MissingPermission { .. } => (400, "NO_PERMISSION_TO_ENCRYPT_DECRYPT"),
            C::NotSymmetric { .. }
            | C::NeedsFullArn { .. }
            | C::CredentialsAfterRole
            | C::IncompleteCredentials
            | C::NotEncrypted { .. }
            | C::NodeCountFixed { .. }
            | C::PrivateNetworkingOff
            | C::WrongEndpointRegion { .. }
            | C::AccessRoleInUse { .. } => (400, "VALIDATION_ERROR"),
            C::UnknownSnapshot { .. } | C::Snapshot(SnapshotError::NotFound { .. }) => {
                (404, "SNAPSHOT_NOT_FOUND")
            }
            C::UnknownPrivateEndpoint { .. } | C::UnknownApiKey { .. } => {
                (404, "RESOURCE_NOT_FOUND")
            }
            C::EncryptionInUse { .. } => (409, "CANNOT_DISABLE_ENCRYPTION_AT_REST"),
            C::ShutDown { .. } => (400, "ENCRYPTION_AT_REST_SETTINGS_INVALID"),
            // Atlas documents no code for these: atrest's own.
            C::NotProjectKey { .. }
            | C::ApiKeyExists { .. }
            | C::RotationInProgress { .. }
            | C::ConcurrentChange { .. } => (409, "CONFLICT"),
            C::Snapshot(SnapshotError::CmkDisabled { .. }) => {
                (400, "AWS_KMS_CUSTOMER_MASTER_KEY_NOT_ENABLED")
            }
            C::Snapshot(
                SnapshotError::CredentialsNotPresent { .. } | SnapshotError::WrongRegion { .. },
            ) => (400, "VALIDATION_ERROR"),
            _ => match e.kms_error() {
                Some(k) => return kms_error(k, detail),
                None => (500, "UNEXPECTED_ERROR"),
            },
        };
        ApiError::new(status, code, detail)
    }
}

/// Atlas's shared-tier (tenant) instance sizes.
fn is_tenant(tier: &str) -> bool {
    matches!(tier, "M0" | "M2" | "M5") || tier.starts_with("FLEX")
}

/// A KMS error met on the customer's behalf: the customer's key or permissions (400), or
/// the KMS out of reach (503).
fn kms_error(e: &KmsError, detail: String) -> ApiError {
    if e.is_retryable() {
        return ApiError::new(503, "SERVICE_UNAVAILABLE", detail);
    }
    let code = match e {
        KmsError::Disabled(_) => "AWS_KMS_CUSTOMER_MASTER_KEY_NOT_ENABLED",
        KmsError::InvalidState(m) if m.contains("pending deletion") => {
            "AWS_KMS_CUSTOMER_MASTER_KEY_PENDING_DELETION"
        }
        KmsError::InvalidState(m) if m.contains("pending import") => {
            "AWS_KMS_CUSTOMER_MASTER_KEY_PENDING_IMPORT"
        }
        KmsError::AccessDenied(_) => "NO_PERMISSION_TO_ENCRYPT_DECRYPT",
        _ => "VALIDATION_ERROR",
    };
    ApiError::new(400, code, detail)
}
