//! Who a request is from: the access key id in its SigV4 `Authorization` header, checked
//! against the credentials this endpoint knows, and the roles callers may assume.
//!
//! Two modes. With no access key registered, any signed request is accepted as the
//! default principal (what users of moto and LocalStack expect). Once one is registered,
//! every request must be signed by a registered key, or by session credentials this
//! endpoint issued, and the signature is verified. In both modes an `ASIA` key the
//! endpoint never issued is refused, session credentials are verified and expire, and
//! AssumeRole hands out only registered roles, to principals their trust allows, with
//! the external id they require.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use zeroize::Zeroizing;

use super::sigv4::{parse_authorization, verify};
use super::{Request, WireError};
use crate::clock::Timestamp;
use crate::kms::{Caller, KmsError};

/// The prefix of access key ids issued by AssumeRole, as AWS's temporary credentials.
pub(super) const SESSION_KEY_PREFIX: &str = "ASIA";
/// How long AssumeRole's credentials last (AWS's default DurationSeconds).
pub(super) const SESSION_LIFETIME: Duration = Duration::from_secs(3600);

/// Which protocol a refusal is spelled for: KMS's JSON and STS's XML name the same
/// failures differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Kms,
    Sts,
}

/// A registered long-term access key.
struct AccessKey {
    secret: Zeroizing<String>,
    principal: String,
}

/// A role callers may assume, and whom it trusts.
#[derive(Clone, Debug)]
struct Role {
    /// Principals (ARNs, or an account's root ARN for every principal of the account).
    trusted: Vec<String>,
    /// The `sts:ExternalId` the trust requires, if any.
    external_id: Option<String>,
}

/// Credentials AssumeRole issued.
struct Session {
    secret: Zeroizing<String>,
    token: Zeroizing<String>,
    role: String,
    expires: Timestamp,
}

/// What AssumeRole hands out.
pub(super) struct IssuedSession {
    pub access_key_id: String,
    pub secret: Zeroizing<String>,
    pub token: Zeroizing<String>,
    pub expires: Timestamp,
}

/// The identities of an endpoint: its access keys, its roles, the sessions it issued.
pub struct Identities {
    keys: BTreeMap<String, AccessKey>,
    roles: BTreeMap<String, Role>,
    sessions: Mutex<BTreeMap<String, Session>>,
    default_principal: String,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("access_keys", &self.keys.keys().collect::<Vec<_>>())
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .field("default_principal", &self.default_principal)
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// No access key registered: any signed request calls as `default_principal` (an IAM
    /// ARN).
    pub fn new(default_principal: &str) -> Result<Self, KmsError> {
        Caller::new(default_principal, "us-east-1")?;
        Ok(Identities {
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            sessions: Mutex::new(BTreeMap::new()),
            default_principal: default_principal.to_string(),
        })
    }

    /// Registers an access key: requests it signs (with `secret`) call as `principal` (an
    /// IAM ARN). From the first one on, unregistered keys are refused and every signature
    /// is verified.
    pub fn add_access_key(
        &mut self,
        access_key_id: &str,
        secret: &str,
        principal: &str,
    ) -> Result<(), KmsError> {
        Caller::new(principal, "us-east-1")?;
        if access_key_id.len() < 16
            || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
            || access_key_id.starts_with(SESSION_KEY_PREFIX)
        {
            return Err(KmsError::Validation(format!(
                "{access_key_id:?} is not a long-term access key id (16 or more letters and digits, not starting with {SESSION_KEY_PREFIX}, which AssumeRole's keys start with)"
            )));
        }
        if secret.is_empty() {
            return Err(KmsError::Validation(format!(
                "the secret access key of {access_key_id} is empty"
            )));
        }
        self.keys.insert(
            access_key_id.to_string(),
            AccessKey {
                secret: Zeroizing::new(secret.to_string()),
                principal: principal.to_string(),
            },
        );
        Ok(())
    }

    /// Registers a role that every principal of its own account may assume (as a trust
    /// policy naming the account's root does), with `external_id` when given.
    pub fn add_role(&mut self, role_arn: &str, external_id: Option<&str>) -> Result<(), KmsError> {
        let role = Caller::new(role_arn, "us-east-1")?;
        if !role_arn.contains(":role/") {
            return Err(KmsError::Validation(format!(
                "{role_arn} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            )));
        }
        self.roles.insert(
            role_arn.to_string(),
            Role {
                trusted: vec![format!("arn:aws:iam::{}:root", role.account())],
                external_id: external_id.map(str::to_string),
            },
        );
        Ok(())
    }

    /// Whether signatures are verified for every request (some access key is registered).
    pub fn verifies_signatures(&self) -> bool {
        !self.keys.is_empty()
    }

    /// What the endpoint accepts, in a sentence for its operator.
    pub fn describe(&self) -> String {
        let roles = if self.roles.is_empty() {
            "no role can be assumed".to_string()
        } else {
            format!(
                "roles that can be assumed: {}",
                self.roles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        if self.verifies_signatures() {
            format!(
                "signatures verified; {} access key(s) registered, any other refused; {roles}",
                self.keys.len()
            )
        } else {
            format!(
                "identities NOT verified: any signed request with any access key calls as {}; {roles}",
                self.default_principal
            )
        }
    }

    /// Who `request` is from, its signature checked where the secret is known.
    pub(super) fn caller(
        &self,
        request: &Request<'_>,
        protocol: Protocol,
        now: Timestamp,
    ) -> Result<Caller, WireError> {
        let refuse = |failure: Failure, message: String| failure.error(protocol, message);
        let authorization = request
            .header("authorization")
            .and_then(parse_authorization)
            .ok_or_else(|| {
                refuse(
                    Failure::Missing,
                    "Request is missing a SigV4 Authorization header (Credential=KEY/DATE/REGION/SERVICE/aws4_request); any AWS SDK sends one".into(),
                )
            })?;
        let key_id = authorization.access_key_id;
        let checked = |secret: &str| {
            verify(request, &authorization, secret)
                .map_err(|mismatch| refuse(Failure::BadSignature, mismatch.0))
        };
        let principal = if key_id.starts_with(SESSION_KEY_PREFIX) {
            let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            let session = sessions.get(key_id).ok_or_else(|| {
                refuse(
                    Failure::UnknownKey,
                    "The security token included in the request is invalid.".into(),
                )
            })?;
            if request.header("x-amz-security-token") != Some(session.token.as_str()) {
                return Err(refuse(
                    Failure::UnknownKey,
                    "The security token included in the request is invalid.".into(),
                ));
            }
            if now >= session.expires {
                return Err(refuse(
                    Failure::Expired,
                    "The security token included in the request is expired".into(),
                ));
            }
            checked(&session.secret)?;
            session.role.clone()
        } else if let Some(key) = self.keys.get(key_id) {
            checked(&key.secret)?;
            key.principal.clone()
        } else if self.verifies_signatures() {
            return Err(refuse(
                Failure::UnknownKey,
                "The security token included in the request is invalid.".into(),
            ));
        } else {
            self.default_principal.clone()
        };
        Caller::new(&principal, authorization.region).map_err(WireError::from)
    }

    /// AssumeRole: `caller` takes on `role_arn` if the role is registered, trusts the
    /// caller and, where it requires one, is given its external id. The credentials are
    /// random and held here until they expire.
    pub(super) fn assume_role(
        &self,
        caller: &Caller,
        role_arn: &str,
        external_id: Option<&str>,
        now: Timestamp,
    ) -> Result<IssuedSession, WireError> {
        let denied = || {
            WireError::new(
                403,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                    caller.principal()
                ),
            )
        };
        let role = self.roles.get(role_arn).ok_or_else(denied)?;
        let trusted = role.trusted.iter().any(|p| {
            p == caller.principal()
                || p.strip_suffix(":root")
                    .and_then(|a| a.strip_prefix("arn:aws:iam::"))
                    == Some(caller.account())
        });
        if !trusted
            || role
                .external_id
                .as_deref()
                .is_some_and(|id| Some(id) != external_id)
        {
            return Err(denied());
        }
        let random = |n| Alphanumeric.sample_string(&mut rand::rng(), n);
        let access_key_id = format!("{SESSION_KEY_PREFIX}{}", random(16).to_uppercase());
        let issued = IssuedSession {
            access_key_id: access_key_id.clone(),
            secret: Zeroizing::new(random(40)),
            token: Zeroizing::new(random(64)),
            expires: now.saturating_add(SESSION_LIFETIME),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            access_key_id,
            Session {
                secret: issued.secret.clone(),
                token: issued.token.clone(),
                role: role_arn.to_string(),
                expires: issued.expires,
            },
        );
        Ok(issued)
    }
}

/// The ways a request's identity fails.
#[derive(Clone, Copy)]
enum Failure {
    Missing,
    UnknownKey,
    BadSignature,
    Expired,
}

impl Failure {
    /// The refusal as the protocol's service sends it.
    fn error(self, protocol: Protocol, message: String) -> WireError {
        let (status, name) = match (self, protocol) {
            (Failure::Missing, Protocol::Kms) => (400, "MissingAuthenticationTokenException"),
            (Failure::Missing, Protocol::Sts) => (403, "MissingAuthenticationToken"),
            (Failure::UnknownKey, Protocol::Kms) => (400, "UnrecognizedClientException"),
            (Failure::UnknownKey, Protocol::Sts) => (403, "InvalidClientTokenId"),
            (Failure::BadSignature, Protocol::Kms) => (400, "InvalidSignatureException"),
            (Failure::BadSignature, Protocol::Sts) => (403, "SignatureDoesNotMatch"),
            (Failure::Expired, Protocol::Kms) => (400, "ExpiredTokenException"),
            (Failure::Expired, Protocol::Sts) => (400, "ExpiredToken"),
        };
        WireError::new(status, name, message)
    }
}
