//! Atlas's error body (`error`, `errorCode`, `detail`, `reason`, `parameters`) and which
//! one each control-plane error is, in Atlas's status codes and error codes.

use serde_json::{json, Value};

use crate::control::ControlError;
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
        let (status, code) = match &e {
            C::NotProjectOwner { .. } | C::ReadOnlyRole { .. } | C::UnknownUser { .. } => {
                (403, "USER_UNAUTHORIZED")
            }
            C::UnknownCluster { name, .. } => {
                return ApiError::new(404, "CLUSTER_NOT_FOUND", detail).with_parameters(&[name])
            }
            C::UnknownAccessRole { role_id } => {
                return ApiError::new(404, "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND", detail)
                    .with_parameters(&[role_id])
            }
            C::ClusterExists { name } => {
                return ApiError::new(400, "DUPLICATE_CLUSTER_NAME", detail)
                    .with_parameters(&[name])
            }
            C::BadClusterName { .. } | C::BadTier { .. } | C::BadNodeCount { .. } => {
                (400, "INVALID_ATTRIBUTE")
            }
            C::TierTooSmall { .. }
            | C::ServerlessUnsupported { .. }
            | C::LegacyBackup { .. }
            | C::ProjectNotConfigured
            | C::NotSymmetric { .. }
            | C::MissingPermission { .. }
            | C::NeedsFullArn { .. }
            | C::CredentialsAfterRole
            | C::IncompleteCredentials
            | C::NotEncrypted { .. }
            | C::NodeCountFixed { .. }
            | C::PrivateNetworkingOff
            | C::WrongEndpointRegion { .. }
            | C::AccessRoleInUse { .. } => (400, "VALIDATION_ERROR"),
            C::UnknownSnapshot { .. }
            | C::UnknownPrivateEndpoint { .. }
            | C::UnknownApiKey { .. } => (404, "RESOURCE_NOT_FOUND"),
            C::NotProjectKey { .. }
            | C::EncryptionInUse { .. }
            | C::ApiKeyExists { .. }
            | C::RotationInProgress { .. }
            | C::ConcurrentChange { .. }
            | C::ShutDown { .. } => (409, "CONFLICT"),
            C::Snapshot(SnapshotError::NotFound { .. }) => (404, "RESOURCE_NOT_FOUND"),
            C::Snapshot(
                SnapshotError::CmkDisabled { .. }
                | SnapshotError::CredentialsNotPresent { .. }
                | SnapshotError::WrongRegion { .. },
            ) => (400, "VALIDATION_ERROR"),
            _ => match e.kms_error() {
                Some(k) => return kms_error(k, detail),
                None => (500, "UNEXPECTED_ERROR"),
            },
        };
        ApiError::new(status, code, detail)
    }
}

/// A KMS error met on the customer's behalf: the customer's key or permissions (400), or
/// the KMS out of reach (503).
fn kms_error(e: &KmsError, detail: String) -> ApiError {
    if e.is_retryable() {
        ApiError::new(503, "SERVICE_UNAVAILABLE", detail)
    } else {
        ApiError::validation(detail)
    }
}
