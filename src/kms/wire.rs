//! The AWS KMS wire protocol (JSON 1.1) in front of LocalKms, and just enough of STS.
//!
//! Owns the translation between requests as AWS SDKs send them and [`LocalKmsClient`](super::LocalKmsClient)
//! calls: `X-Amz-Target: TrentService.<Operation>`, AWS's JSON field names and base64
//! blobs, error bodies with `__type`; the caller named by the SigV4 credential scope; and
//! STS AssumeRole / GetCallerIdentity (query protocol, XML answers) so that a client can
//! take on a role as Atlas does. No sockets here (`kms::server` has them), so every
//! request body can be fuzzed.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::{Caller, CreateKeyRequest, EncryptionContext, KeySpec, KeyUsage, KmsError, LocalKms};
use crate::clock::Timestamp;

/// Requests larger than this are refused (KMS's largest field, a key policy, is 32 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The prefix of access key ids issued by [`Endpoint::handle`]'s AssumeRole.
const SESSION_KEY_PREFIX: &str = "ASIA";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const XML_CONTENT_TYPE: &str = "text/xml";
const SESSION_SECONDS: u64 = 3600;
/// Every operation LocalKms emulates, by its AWS name.
pub const OPERATIONS: [&str; 20] = [
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "ListKeyRotations",
    "CreateAlias",
    "DeleteAlias",
    "ListAliases",
    "PutKeyPolicy",
    "GetKeyPolicy",
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
];

/// An HTTP answer: status, content type, the error name for `x-amzn-ErrorType`, and the
/// body, zeroized when dropped because it may hold a plaintext.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// The AWS error name, sent as `x-amzn-ErrorType` too.
    pub error_type: Option<String>,
    /// The body.
    pub body: Zeroizing<Vec<u8>>,
}

/// The parts of an HTTP request the protocol reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request<'a> {
    /// The `X-Amz-Target` header.
    pub target: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

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

    fn principal(&self, access_key_id: &str) -> String {
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

    fn caller(&self, authorization: Option<&str>) -> Result<Caller, WireError> {
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

/// A protocol-level refusal (before any KMS call), in AWS's words.
#[derive(Debug)]
struct WireError {
    status: u16,
    name: String,
    message: String,
}

impl WireError {
    fn new(status: u16, name: &str, message: impl Into<String>) -> Self {
        WireError {
            status,
            name: name.to_string(),
            message: message.into(),
        }
    }

    fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }

    fn missing(field: &str) -> Self {
        KmsError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
        .into()
    }
}

impl From<KmsError> for WireError {
    fn from(e: KmsError) -> Self {
        let status = match &e {
            KmsError::Internal(_) => 500,
            KmsError::Unavailable(_) => 503,
            _ => 400,
        };
        let message = match &e {
            KmsError::NotFound(m)
            | KmsError::Disabled(m)
            | KmsError::InvalidState(m)
            | KmsError::InvalidCiphertext(m)
            | KmsError::IncorrectKey(m)
            | KmsError::AccessDenied(m)
            | KmsError::InvalidKeyUsage(m)
            | KmsError::Validation(m)
            | KmsError::AlreadyExists(m)
            | KmsError::LimitExceeded(m)
            | KmsError::UnsupportedOperation(m)
            | KmsError::MalformedPolicyDocument(m)
            | KmsError::Internal(m)
            | KmsError::Unavailable(m)
            | KmsError::Throttled(m) => m.clone(),
        };
        WireError::new(status, e.aws_name(), message)
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
            .content_type
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        match request.target {
            None if is_form => self.sts(request),
            target => match self.kms(target, request) {
                Ok(mut value) => {
                    let body = Zeroizing::new(value.to_string().into_bytes());
                    if let Some(Value::String(plaintext)) = value.get_mut("Plaintext") {
                        plaintext.zeroize();
                    }
                    Response {
                        status: 200,
                        content_type: JSON_CONTENT_TYPE,
                        error_type: None,
                        body,
                    }
                }
                Err(e) => json_error(e),
            },
        }
    }

    fn kms(&self, target: Option<&str>, request: &Request<'_>) -> Result<Value, WireError> {
        let operation = target
            .and_then(|t| t.strip_prefix("TrentService."))
            .filter(|op| OPERATIONS.contains(op))
            .ok_or_else(|| unknown_operation(target))?;
        let caller = self.identities.caller(request.authorization)?;
        let mut params = Params::parse(request.body)?;
        let client = self.kms.client(caller);
        let value = match operation {
            "CreateKey" => {
                if let Some(origin) = params.opt_str("Origin")? {
                    if origin != "AWS_KMS" {
                        return Err(KmsError::UnsupportedOperation(format!(
                            "Origin {origin} is not emulated; only AWS_KMS"
                        ))
                        .into());
                    }
                }
                if params.opt_bool("MultiRegion")? == Some(true) {
                    return Err(KmsError::UnsupportedOperation(
                        "multi-Region keys are not emulated".into(),
                    )
                    .into());
                }
                let spec = match params.opt_str("KeySpec")? {
                    Some(s) => Some(s),
                    None => params.opt_str("CustomerMasterKeySpec")?,
                };
                let request = CreateKeyRequest {
                    description: params.opt_str("Description")?.unwrap_or_default(),
                    key_spec: spec
                        .map(|s| KeySpec::parse(&s))
                        .transpose()?
                        .unwrap_or(KeySpec::SymmetricDefault),
                    key_usage: params
                        .opt_str("KeyUsage")?
                        .map(|u| KeyUsage::parse(&u))
                        .transpose()?,
                    policy: params.opt_str("Policy")?,
                };
                json!({ "KeyMetadata": client.create_key(request)? })
            }
            "DescribeKey" => json!({ "KeyMetadata": client.describe_key(&params.str("KeyId")?)? }),
            "ListKeys" => json!({ "Keys": client.list_keys()?, "Truncated": false }),
            "EnableKey" => {
                client.enable_key(&params.str("KeyId")?)?;
                json!({})
            }
            "DisableKey" => {
                client.disable_key(&params.str("KeyId")?)?;
                json!({})
            }
            "ScheduleKeyDeletion" => {
                let key = params.str("KeyId")?;
                let window = params.opt_u32("PendingWindowInDays")?;
                let date = client.schedule_key_deletion(&key, window)?;
                let metadata = client.describe_key(&key)?;
                json!({
                    "KeyId": metadata.arn,
                    "DeletionDate": seconds(date),
                    "KeyState": metadata.key_state,
                    "PendingWindowInDays": metadata.pending_deletion_window_in_days,
                })
            }
            "CancelKeyDeletion" => {
                let key = params.str("KeyId")?;
                client.cancel_key_deletion(&key)?;
                json!({ "KeyId": client.describe_key(&key)?.arn })
            }
            "EnableKeyRotation" => {
                let period = params.opt_u32("RotationPeriodInDays")?;
                client.enable_key_rotation(&params.str("KeyId")?, period)?;
                json!({})
            }
            "DisableKeyRotation" => {
                client.disable_key_rotation(&params.str("KeyId")?)?;
                json!({})
            }
            "GetKeyRotationStatus" => {
                to_json(client.get_key_rotation_status(&params.str("KeyId")?)?)
            }
            "RotateKeyOnDemand" => {
                json!({ "KeyId": client.rotate_key_on_demand(&params.str("KeyId")?)? })
            }
            "ListKeyRotations" => json!({
                "Rotations": client.list_key_rotations(&params.str("KeyId")?)?,
                "Truncated": false,
            }),
            "CreateAlias" => {
                client.create_alias(&params.str("AliasName")?, &params.str("TargetKeyId")?)?;
                json!({})
            }
            "DeleteAlias" => {
                client.delete_alias(&params.str("AliasName")?)?;
                json!({})
            }
            "ListAliases" => {
                let mut aliases = client.list_aliases()?;
                if let Some(key) = params.opt_str("KeyId")? {
                    let id = client.describe_key(&key)?.key_id;
                    aliases.retain(|a| a.target_key_id == id);
                }
                json!({ "Aliases": aliases, "Truncated": false })
            }
            "PutKeyPolicy" => {
                params.policy_name()?;
                client.put_key_policy(&params.str("KeyId")?, &params.str("Policy")?)?;
                json!({})
            }
            "GetKeyPolicy" => {
                params.policy_name()?;
                json!({
                    "Policy": client.get_key_policy(&params.str("KeyId")?)?,
                    "PolicyName": "default",
                })
            }
            "Encrypt" => {
                params.symmetric_algorithm()?;
                let plaintext = params.blob("Plaintext")?;
                let context = params.context()?;
                let encrypted = client.encrypt(&params.str("KeyId")?, &plaintext, &context)?;
                json!({
                    "CiphertextBlob": BASE64.encode(&encrypted.ciphertext_blob),
                    "KeyId": encrypted.key_arn,
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                })
            }
            "Decrypt" => {
                params.symmetric_algorithm()?;
                let blob = params.blob("CiphertextBlob")?;
                let context = params.context()?;
                let key = params.opt_str("KeyId")?;
                let decrypted = client.decrypt(key.as_deref(), &blob, &context)?;
                json!({
                    "KeyId": decrypted.key_arn,
                    "Plaintext": *Zeroizing::new(BASE64.encode(&decrypted.plaintext)),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                })
            }
            "GenerateDataKey" => {
                let bytes = match (params.opt_str("KeySpec")?, params.opt_u32("NumberOfBytes")?) {
                    (Some(_), Some(_)) => {
                        return Err(KmsError::Validation(
                            "give KeySpec or NumberOfBytes, not both".into(),
                        )
                        .into())
                    }
                    (Some(spec), None) => match spec.as_str() {
                        "AES_256" => 32,
                        "AES_128" => 16,
                        other => {
                            return Err(KmsError::Validation(format!(
                                "KeySpec {other:?} is not AES_256 or AES_128"
                            ))
                            .into())
                        }
                    },
                    (None, Some(n)) => n as usize,
                    (None, None) => {
                        return Err(KmsError::Validation(
                            "give KeySpec (AES_256, AES_128) or NumberOfBytes".into(),
                        )
                        .into())
                    }
                };
                let context = params.context()?;
                let key = client.generate_data_key(&params.str("KeyId")?, bytes, &context)?;
                json!({
                    "CiphertextBlob": BASE64.encode(&key.ciphertext_blob),
                    "Plaintext": *Zeroizing::new(BASE64.encode(&key.plaintext)),
                    "KeyId": key.key_arn,
                })
            }
            _ => return Err(unknown_operation(target)),
        };
        Ok(value)
    }

    fn sts(&self, request: &Request<'_>) -> Response {
        let result = (|| {
            let form = parse_form(request.body)?;
            let field = |name: &str| form.get(name).map(String::as_str);
            let caller = self.identities.caller(request.authorization)?;
            match field("Action") {
                Some("AssumeRole") => {
                    let role = field("RoleArn").ok_or_else(|| sts_validation("RoleArn"))?;
                    let session = field("RoleSessionName")
                        .ok_or_else(|| sts_validation("RoleSessionName"))?;
                    let role_caller = Caller::new(role, caller.region())?;
                    let Some(role_name) = role.split_once(":role/").map(|(_, n)| n) else {
                        return Err(WireError::new(
                            400,
                            "ValidationError",
                            format!("{role} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                        ));
                    };
                    let expires = self
                        .kms
                        .clock()
                        .now()
                        .saturating_add(std::time::Duration::from_secs(SESSION_SECONDS));
                    let assumed = format!(
                        "arn:aws:sts::{}:assumed-role/{role_name}/{session}",
                        role_caller.account()
                    );
                    Ok(format!(
                        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
                         <AssumedRoleUser><AssumedRoleId>AROA{role_id}:{session_x}</AssumedRoleId><Arn>{assumed}</Arn></AssumedRoleUser>\
                         <Credentials><AccessKeyId>{SESSION_KEY_PREFIX}{key}</AccessKeyId><SecretAccessKey>atrest-not-verified</SecretAccessKey>\
                         <SessionToken>atrest-session</SessionToken><Expiration>{expires}</Expiration></Credentials>\
                         </AssumeRoleResult><ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></AssumeRoleResponse>",
                        role_id = encode_hex(role_name.as_bytes()),
                        session_x = xml_escape(session),
                        assumed = xml_escape(&assumed),
                        key = encode_hex(role.as_bytes()),
                        id = request_id(),
                    ))
                }
                Some("GetCallerIdentity") => Ok(format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                     <Arn>{arn}</Arn><UserId>{arn}</UserId><Account>{account}</Account></GetCallerIdentityResult>\
                     <ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                    arn = xml_escape(caller.principal()),
                    account = caller.account(),
                    id = request_id(),
                )),
                other => Err(WireError::new(
                    400,
                    "InvalidAction",
                    format!(
                        "STS action {:?} is not served: only AssumeRole and GetCallerIdentity",
                        other.unwrap_or("")
                    ),
                )),
            }
        })();
        match result {
            Ok(xml) => Response {
                status: 200,
                content_type: XML_CONTENT_TYPE,
                error_type: None,
                body: Zeroizing::new(xml.into_bytes()),
            },
            Err(e) => Response {
                status: e.status,
                content_type: XML_CONTENT_TYPE,
                body: Zeroizing::new(
                    format!(
                        "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                        xml_escape(&e.name),
                        xml_escape(&e.message),
                        request_id()
                    )
                    .into_bytes(),
                ),
                error_type: Some(e.name),
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

fn unknown_operation(target: Option<&str>) -> WireError {
    WireError::new(
        400,
        "UnknownOperationException",
        format!(
            "X-Amz-Target {:?} is not TrentService.<Operation> for an operation LocalKms emulates: {}",
            target.unwrap_or(""),
            OPERATIONS.join(", ")
        ),
    )
}

fn sts_validation(field: &str) -> WireError {
    WireError::new(
        400,
        "ValidationError",
        format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"),
    )
}

fn json_error(e: WireError) -> Response {
    let body = json!({ "__type": e.name, "message": e.message });
    Response {
        status: e.status,
        content_type: JSON_CONTENT_TYPE,
        body: Zeroizing::new(body.to_string().into_bytes()),
        error_type: Some(e.name),
    }
}

fn to_json(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millis() as f64 / 1000.0
}

pub(crate) fn request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    encode_hex(&bytes)
}

/// A request's JSON object, read field by field with AWS's validation errors.
struct Params(Map<String, Value>);

impl Params {
    fn parse(body: &[u8]) -> Result<Self, WireError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Params(map)),
            Ok(_) => Err(WireError::serialization(
                "the request body must be a JSON object",
            )),
            Err(e) => Err(WireError::serialization(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    fn take(&mut self, field: &str) -> Option<Value> {
        self.0.remove(field).filter(|v| !v.is_null())
    }

    fn opt_str(&mut self, field: &str) -> Result<Option<String>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(WireError::serialization(format!(
                "{field} must be a string"
            ))),
        }
    }

    fn str(&mut self, field: &str) -> Result<String, WireError> {
        self.opt_str(field)?
            .ok_or_else(|| WireError::missing(field))
    }

    fn opt_u32(&mut self, field: &str) -> Result<Option<u32>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    WireError::serialization(format!("{field} must be a non-negative integer"))
                }),
        }
    }

    fn opt_bool(&mut self, field: &str) -> Result<Option<bool>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(WireError::serialization(format!(
                "{field} must be a boolean"
            ))),
        }
    }

    /// A base64 field, decoded; the encoded text is zeroized too.
    fn blob(&mut self, field: &str) -> Result<Zeroizing<Vec<u8>>, WireError> {
        let encoded = Zeroizing::new(self.str(field)?);
        BASE64
            .decode(encoded.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| WireError::serialization(format!("{field} is not valid base64")))
    }

    fn context(&mut self) -> Result<EncryptionContext, WireError> {
        match self.take("EncryptionContext") {
            None => Ok(EncryptionContext::new()),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k, v)),
                    _ => Err(WireError::serialization(
                        "EncryptionContext values must be strings",
                    )),
                })
                .collect(),
            Some(_) => Err(WireError::serialization(
                "EncryptionContext must be an object of strings",
            )),
        }
    }

    fn symmetric_algorithm(&mut self) -> Result<(), WireError> {
        match self.opt_str("EncryptionAlgorithm")? {
            None => Ok(()),
            Some(a) if a == "SYMMETRIC_DEFAULT" => Ok(()),
            Some(a) => Err(KmsError::InvalidKeyUsage(format!(
                "EncryptionAlgorithm {a} needs an asymmetric key, which LocalKms does not encrypt with"
            ))
            .into()),
        }
    }

    fn policy_name(&mut self) -> Result<(), WireError> {
        match self.opt_str("PolicyName")? {
            None => Ok(()),
            Some(n) if n == "default" => Ok(()),
            Some(n) => Err(KmsError::Validation(format!(
                "PolicyName {n:?}: the only valid policy name is default"
            ))
            .into()),
        }
    }
}

/// `application/x-www-form-urlencoded`, as STS's query protocol sends it.
fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>, WireError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| WireError::new(400, "MalformedInput", "the form body is not UTF-8"))?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, WireError> {
    let bad = || {
        WireError::new(
            400,
            "MalformedInput",
            format!("bad percent-encoding in {s:?}"),
        )
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                out.extend(
                    decode_hex(std::str::from_utf8(hex).map_err(|_| bad())?).ok_or_else(bad)?,
                );
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

    fn endpoint() -> Endpoint {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        Endpoint::new(
            LocalKms::in_memory(clock),
            Identities::new("arn:aws:iam::111122223333:root").unwrap(),
        )
    }

    fn call(endpoint: &Endpoint, op: &str, body: &str) -> (u16, Value) {
        let target = format!("TrentService.{op}");
        let r = endpoint.handle(&Request {
            target: Some(&target),
            content_type: Some(JSON_CONTENT_TYPE),
            authorization: Some(AUTH),
            body: body.as_bytes(),
        });
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    #[test]
    fn credential_scopes_parse() {
        let scope = credential_scope(AUTH).unwrap();
        assert_eq!(
            (scope.access_key_id, scope.region, scope.service),
            ("AKIDEXAMPLE", "us-east-1", "kms")
        );
        assert!(credential_scope("AWS4-HMAC-SHA256 Credential=A/B/C").is_none());
        assert!(credential_scope("Basic abc").is_none());
    }

    #[test]
    fn a_round_trip_and_aws_shaped_errors() {
        let e = endpoint();
        let (status, created) = call(&e, "CreateKey", r#"{"Description":"wire"}"#);
        assert_eq!(status, 200);
        let key = created["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, enc) = call(
            &e,
            "Encrypt",
            &json!({"KeyId": key, "Plaintext": "aGVsbG8=", "EncryptionContext": {"a": "b"}})
                .to_string(),
        );
        assert_eq!(status, 200);
        let (status, dec) = call(
            &e,
            "Decrypt",
            &json!({"KeyId": key, "CiphertextBlob": enc["CiphertextBlob"], "EncryptionContext": {"a": "b"}})
                .to_string(),
        );
        assert_eq!((status, dec["Plaintext"].as_str()), (200, Some("aGVsbG8=")));
        call(&e, "DisableKey", &json!({ "KeyId": key }).to_string());
        let (status, err) = call(
            &e,
            "Encrypt",
            &json!({"KeyId": key, "Plaintext": "aGVsbG8="}).to_string(),
        );
        assert_eq!(
            (status, err["__type"].as_str()),
            (400, Some("DisabledException"))
        );
        for (op, body, expected) in [
            ("Encrypt", "{not json", "SerializationException"),
            ("Encrypt", "[1]", "SerializationException"),
            (
                "Encrypt",
                r#"{"KeyId": 7, "Plaintext": "eA=="}"#,
                "SerializationException",
            ),
            ("DescribeKey", "{}", "ValidationException"),
            ("Nope", "{", "UnknownOperationException"),
        ] {
            assert_eq!(
                call(&e, op, body).1["__type"].as_str(),
                Some(expected),
                "{op} {body}"
            );
        }
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let r = e.handle(&Request {
            target: Some("TrentService.ListKeys"),
            authorization: Some(AUTH),
            body: &big,
            ..Request::default()
        });
        assert_eq!(r.status, 413);
        let unsigned = e.handle(&Request {
            target: Some("TrentService.ListKeys"),
            ..Request::default()
        });
        assert_eq!(
            unsigned.error_type.as_deref(),
            Some("MissingAuthenticationTokenException")
        );
    }

    #[test]
    fn assumed_roles_call_as_the_role() {
        let e = endpoint();
        let r = e.handle(&Request {
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
            authorization: Some(AUTH),
            body: b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fatlas&RoleSessionName=s1&ExternalId=x",
            ..Request::default()
        });
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let xml = String::from_utf8(r.body.to_vec()).unwrap();
        let key = xml
            .split("<AccessKeyId>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap();
        let ids = Identities::new("arn:aws:iam::111122223333:root").unwrap();
        assert_eq!(ids.principal(key), "arn:aws:iam::111122223333:role/atlas");
        assert_eq!(ids.principal("ASIAzz"), "arn:aws:iam::111122223333:root");
    }
}
