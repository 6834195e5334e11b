//! The AWS KMS wire protocol (JSON 1.1) in front of LocalKms, and just enough of STS.
//!
//! Owns the translation between requests as AWS SDKs send them and
//! [`LocalKmsClient`](super::LocalKmsClient) calls. No sockets here (`kms::server` has
//! them), so every request body can be fuzzed.
//!
//! | file | owns |
//! |---|---|
//! | `operation` | [`Operation`]: every KMS operation served, from which dispatch and the list come |
//! | `json` | the KMS JSON 1.1 protocol: `X-Amz-Target`, AWS's field names, base64 blobs |
//! | `sts` | STS AssumeRole / GetCallerIdentity (query protocol, XML answers) |
//! | `identity` | who a request is from, the keys and roles an endpoint knows: [`Identities`] |
//! | `page` | pagination of the List operations: `Limit`, `Marker`, `NextMarker`, `Truncated` |
//! | `params` | a request's members, read and checked as AWS reads them |
//! | `sigv4` | AWS Signature Version 4: the `Authorization` header, and checking a signature |

mod asymmetric;
mod identity;
mod import;
mod json;
mod operation;
#[cfg(test)]
mod operation_tests;
mod page;
mod params;
mod sigv4;
mod sts;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::json;
use zeroize::Zeroizing;

use super::{KmsError, LocalKms};

pub use crate::http::{Request, Response};
pub use identity::Identities;
pub use operation::Operation;
pub use sigv4::{parse_authorization, Authorization};

/// Requests larger than this are refused (KMS's largest field, a key policy, is 32 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A protocol-level refusal (before any KMS call), in AWS's words.
#[derive(Debug)]
pub(crate) struct WireError {
    status: u16,
    name: String,
    message: String,
}

impl WireError {
    pub(crate) fn new(status: u16, name: &str, message: impl Into<String>) -> Self {
        WireError {
            status,
            name: name.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }

    pub(crate) fn missing(field: &str) -> Self {
        crate::kms::validation::missing(field).into()
    }
}

impl From<KmsError> for WireError {
    fn from(e: KmsError) -> Self {
        let status = match &e {
            KmsError::Internal(_) => 500,
            KmsError::Unavailable(_) => 503,
            _ => 400,
        };
        WireError::new(status, e.aws_name(), e.message())
    }
}

/// LocalKms as an AWS endpoint: one call per HTTP request.
#[derive(Debug)]
pub struct Endpoint {
    kms: Arc<LocalKms>,
    identities: Identities,
}

impl Endpoint {
    /// Serves `kms`, naming callers by `identities`.
    pub fn new(kms: Arc<LocalKms>, identities: Identities) -> Self {
        Endpoint { kms, identities }
    }

    /// Answers one request. Never panics, whatever the bytes.
    pub fn handle(&self, request: &Request<'_>) -> Response {
        if request.body.len() > MAX_BODY_BYTES {
            return too_large();
        }
        let is_form = request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        match request.header("x-amz-target") {
            None if is_form => self.sts(request),
            target => match self.kms(target, request) {
                Ok(body) => Response {
                    status: 200,
                    content_type: JSON_CONTENT_TYPE,
                    headers: vec![("x-amzn-RequestId", request_id())],
                    body,
                },
                Err(e) => json_error(e),
            },
        }
    }
}

/// The answer to a body over [`MAX_BODY_BYTES`].
pub fn too_large() -> Response {
    json_error(WireError::new(
        413,
        "RequestEntityTooLargeException",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    ))
}

/// The answer to anything but POST.
pub fn method_not_allowed(method: &str) -> Response {
    json_error(WireError::new(
        405,
        "MethodNotAllowedException",
        format!("{method} is not allowed: AWS KMS requests are POST /"),
    ))
}

fn json_error(e: WireError) -> Response {
    let body = json!({ "__type": e.name, "message": e.message });
    Response {
        status: e.status,
        content_type: JSON_CONTENT_TYPE,
        body: Zeroizing::new(body.to_string().into_bytes()),
        headers: vec![
            ("x-amzn-RequestId", request_id()),
            ("x-amzn-ErrorType", e.name),
        ],
    }
}

pub(crate) fn request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    crate::kms::hex::encode(&bytes)
}
