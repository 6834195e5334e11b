//! Who a request is from: the access key id in its SigV4 credential scope, mapped to an
//! IAM principal.

use std::collections::BTreeMap;

use super::sts::SESSION_KEY_PREFIX;
use super::{decode_hex, WireError};
use crate::kms::{Caller, KmsError};

/// Who a request's access key id stands for. Signatures are not verified: this is a
/// test endpoint, and the mapping is what makes policies testable from any SDK.
///
/// 1. An access key id given to [`Identities::map`] is that principal.
/// 2. An access key id issued by this endpoint's AssumeRole is the assumed role.
/// 3. Any other is the default principal (the root's principal, usually the account root).
#[derive(Clone, Debug)]
pub struct Identities {
    explicit: BTreeMap<String, String>,
    default_principal: String,
}

impl Identities {
    /// Unknown access keys call as `default_principal` (an IAM ARN).
    pub fn new(default_principal: &str) -> Result<Self, KmsError> {
        Caller::new(default_principal, "us-east-1")?;
        Ok(Identities {
            explicit: BTreeMap::new(),
            default_principal: default_principal.to_string(),
        })
    }

    /// Requests signed with `access_key_id` call as `principal` (an IAM ARN).
    pub fn map(&mut self, access_key_id: &str, principal: &str) -> Result<(), KmsError> {
        Caller::new(principal, "us-east-1")?;
        self.explicit
            .insert(access_key_id.to_string(), principal.to_string());
        Ok(())
    }

    pub(super) fn principal(&self, access_key_id: &str) -> String {
        if let Some(p) = self.explicit.get(access_key_id) {
            return p.clone();
        }
        access_key_id
            .strip_prefix(SESSION_KEY_PREFIX)
            .and_then(decode_hex)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|role| Caller::new(role, "us-east-1").is_ok())
            .unwrap_or_else(|| self.default_principal.clone())
    }

    pub(super) fn caller(&self, authorization: Option<&str>) -> Result<Caller, WireError> {
        let scope = authorization.and_then(credential_scope).ok_or_else(|| {
            WireError::new(
                403,
                "MissingAuthenticationTokenException",
                "Request is missing a SigV4 Authorization header (Credential=KEY/DATE/REGION/SERVICE/aws4_request); any AWS SDK sends one",
            )
        })?;
        Caller::new(&self.principal(scope.access_key_id), scope.region).map_err(WireError::from)
    }
}

/// The parts of a SigV4 `Credential=` scope atrest uses.
#[derive(Debug, PartialEq, Eq)]
pub struct CredentialScope<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The region the request was signed for.
    pub region: &'a str,
    /// The service it was signed for (`kms`, `sts`).
    pub service: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
pub fn credential_scope(authorization: &str) -> Option<CredentialScope<'_>> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let (access_key_id, _date, region, service, terminator) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (parts.next().is_none() && terminator == "aws4_request" && !access_key_id.is_empty()).then_some(
        CredentialScope {
            access_key_id,
            region,
            service,
        },
    )
}
