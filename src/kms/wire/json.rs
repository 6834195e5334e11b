//! The KMS JSON 1.1 protocol: `X-Amz-Target: TrentService.<Operation>`, AWS's member
//! names and base64 blobs in, the typed responses of [`crate::kms::responses`] out.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::identity::Protocol;
use super::page::{page, Page, PageRules};
use super::{Endpoint, Operation, Request, WireError};
use crate::kms::responses::{
    DecryptResponse, EncryptResponse, GenerateDataKeyResponse,
    GenerateDataKeyWithoutPlaintextResponse, GenerateRandomResponse, GetKeyPolicyResponse,
    KeyIdResponse, KeyMetadataResponse, ListAliasesResponse, ListGrantsResponse,
    ListKeyPoliciesResponse, ListKeyRotationsResponse, ListKeysResponse, ListResourceTagsResponse,
    ReEncryptResponse, ScheduleKeyDeletionResponse, DEFAULT_POLICY_NAME,
};
use crate::kms::validation;
use crate::kms::{
    check_grant_tokens, CreateGrantRequest, CreateKeyRequest, EncryptionContext, GrantConstraints,
    GrantOperation, GrantRef, KeySpec, KeyUsage, KmsError, LocalKmsClient, Tag,
};

/// The body of an operation that returns nothing: `{}`.
#[derive(Serialize)]
struct Empty {}

const EMPTY: Empty = Empty {};

impl Endpoint {
    /// One KMS call: the response body, or AWS's error.
    pub(super) fn kms(
        &self,
        target: Option<&str>,
        request: &Request<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, WireError> {
        let operation = target
            .and_then(|t| t.strip_prefix("TrentService."))
            .and_then(Operation::from_name)
            .ok_or_else(|| unknown_operation(target))?;
        let caller = self
            .identities
            .caller(request, Protocol::Kms, self.kms.clock().now())?;
        let mut params = Params::parse(request.body)?;
        let dry_run = operation.takes_dry_run() && params.opt_bool("DryRun")? == Some(true);
        let mut client = self.kms.client(caller);
        if dry_run {
            client = client.dry_run();
        }
        let answer = Self::answer(operation, &client, &mut params)?;
        if dry_run {
            // Every check ran and the call would have succeeded (changing nothing): AWS
            // says so, and nothing (no ciphertext, no plaintext, no grant) is returned.
            return Err(WireError::new(
                412,
                "DryRunOperationException",
                "The request would have succeeded, but the DryRun option is set.",
            ));
        }
        Ok(answer)
    }

    /// The operation's answer, as `client`.
    fn answer(
        operation: Operation,
        client: &LocalKmsClient,
        params: &mut Params,
    ) -> Result<Zeroizing<Vec<u8>>, WireError> {
        match operation {
            Operation::CreateKey => {
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
                    tags: params.tags()?.unwrap_or_default(),
                    bypass_policy_lockout_safety_check: params
                        .opt_bool("BypassPolicyLockoutSafetyCheck")?
                        .unwrap_or(false),
                };
                body(&KeyMetadataResponse {
                    key_metadata: client.create_key(request)?,
                })
            }
            Operation::DescribeKey => body(&KeyMetadataResponse {
                key_metadata: client.describe_key(&params.str("KeyId")?)?,
            }),
            Operation::ListKeys => {
                let page = params.page(client.list_keys()?, LIST_KEYS)?;
                body(&ListKeysResponse {
                    keys: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
            Operation::EnableKey => {
                client.enable_key(&params.str("KeyId")?)?;
                body(&EMPTY)
            }
            Operation::DisableKey => {
                client.disable_key(&params.str("KeyId")?)?;
                body(&EMPTY)
            }
            Operation::ScheduleKeyDeletion => {
                let key = params.str("KeyId")?;
                let window = params.opt_u32("PendingWindowInDays")?;
                let date = client.schedule_key_deletion(&key, window)?;
                body(&ScheduleKeyDeletionResponse::new(
                    client.describe_key(&key)?,
                    date,
                ))
            }
            Operation::CancelKeyDeletion => {
                let key = params.str("KeyId")?;
                client.cancel_key_deletion(&key)?;
                body(&KeyIdResponse {
                    key_id: client.describe_key(&key)?.arn,
                })
            }
            Operation::EnableKeyRotation => {
                let period = params.opt_u32("RotationPeriodInDays")?;
                client.enable_key_rotation(&params.str("KeyId")?, period)?;
                body(&EMPTY)
            }
            Operation::DisableKeyRotation => {
                client.disable_key_rotation(&params.str("KeyId")?)?;
                body(&EMPTY)
            }
            Operation::GetKeyRotationStatus => {
                body(&client.get_key_rotation_status(&params.str("KeyId")?)?)
            }
            Operation::RotateKeyOnDemand => body(&KeyIdResponse {
                key_id: client.rotate_key_on_demand(&params.str("KeyId")?)?,
            }),
            Operation::ListKeyRotations => {
                let rotations = client.list_key_rotations(&params.str("KeyId")?)?;
                let page = params.page(rotations, LIST_KEY_ROTATIONS)?;
                body(&ListKeyRotationsResponse {
                    rotations: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
            Operation::CreateAlias => {
                client.create_alias(&params.str("AliasName")?, &params.str("TargetKeyId")?)?;
                body(&EMPTY)
            }
            Operation::DeleteAlias => {
                client.delete_alias(&params.str("AliasName")?)?;
                body(&EMPTY)
            }
            Operation::ListAliases => {
                let mut aliases = client.list_aliases()?;
                if let Some(key) = params.opt_str("KeyId")? {
                    let id = client.describe_key(&key)?.key_id;
                    aliases.retain(|a| a.target_key_id == id);
                }
                let page = params.page(aliases, LIST_ALIASES)?;
                body(&ListAliasesResponse {
                    aliases: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
            Operation::PutKeyPolicy => {
                params.policy_name()?;
                let bypass = params
                    .opt_bool("BypassPolicyLockoutSafetyCheck")?
                    .unwrap_or(false);
                client.put_key_policy_with(
                    &params.str("KeyId")?,
                    &params.str("Policy")?,
                    bypass,
                )?;
                body(&EMPTY)
            }
            Operation::GetKeyPolicy => {
                params.policy_name()?;
                body(&GetKeyPolicyResponse::new(
                    client.get_key_policy(&params.str("KeyId")?)?,
                ))
            }
            Operation::Encrypt => {
                params.symmetric_algorithm("EncryptionAlgorithm")?;
                params.grant_tokens()?;
                let plaintext = params.blob("Plaintext")?;
                let context = params.context("EncryptionContext")?;
                let encrypted = client.encrypt(&params.str("KeyId")?, &plaintext, &context)?;
                body(&EncryptResponse::from(encrypted))
            }
            Operation::Decrypt => {
                params.symmetric_algorithm("EncryptionAlgorithm")?;
                params.grant_tokens()?;
                let blob = params.blob("CiphertextBlob")?;
                let context = params.context("EncryptionContext")?;
                let key = params.opt_str("KeyId")?;
                let decrypted = client.decrypt(key.as_deref(), &blob, &context)?;
                body(&DecryptResponse::from(decrypted))
            }
            Operation::GenerateDataKey => {
                params.grant_tokens()?;
                let bytes = params.data_key_bytes()?;
                let context = params.context("EncryptionContext")?;
                let key = client.generate_data_key(&params.str("KeyId")?, bytes, &context)?;
                body(&GenerateDataKeyResponse::from(key))
            }
            Operation::GenerateDataKeyWithoutPlaintext => {
                params.grant_tokens()?;
                let bytes = params.data_key_bytes()?;
                let context = params.context("EncryptionContext")?;
                let key = client.generate_data_key_without_plaintext(
                    &params.str("KeyId")?,
                    bytes,
                    &context,
                )?;
                body(&GenerateDataKeyWithoutPlaintextResponse::from(key))
            }
            Operation::GenerateRandom => {
                if params.opt_str("CustomKeyStoreId")?.is_some() {
                    return Err(KmsError::UnsupportedOperation(
                        "custom key stores are not emulated".into(),
                    )
                    .into());
                }
                let bytes = params.opt_u32("NumberOfBytes")?.unwrap_or(0);
                let random = client.generate_random(bytes as usize)?;
                body(&GenerateRandomResponse {
                    plaintext: Zeroizing::new(BASE64.encode(&random)),
                })
            }
            Operation::UpdateKeyDescription => {
                let key = params.str("KeyId")?;
                client.update_key_description(&key, &params.str("Description")?)?;
                body(&EMPTY)
            }
            Operation::UpdateAlias => {
                let alias = params.str("AliasName")?;
                client.update_alias(&alias, &params.str("TargetKeyId")?)?;
                body(&EMPTY)
            }
            Operation::ReEncrypt => {
                params.symmetric_algorithm("SourceEncryptionAlgorithm")?;
                params.symmetric_algorithm("DestinationEncryptionAlgorithm")?;
                params.grant_tokens()?;
                let blob = params.blob("CiphertextBlob")?;
                let source_context = params.context("SourceEncryptionContext")?;
                let destination_context = params.context("DestinationEncryptionContext")?;
                let source = params.opt_str("SourceKeyId")?;
                let destination = params.str("DestinationKeyId")?;
                let moved = client.re_encrypt(
                    source.as_deref(),
                    &blob,
                    &source_context,
                    &destination,
                    &destination_context,
                )?;
                body(&ReEncryptResponse::from(moved))
            }
            Operation::TagResource => {
                let key = params.str("KeyId")?;
                let tags = params.tags()?.ok_or_else(|| WireError::missing("tags"))?;
                client.tag_resource(&key, &tags)?;
                body(&EMPTY)
            }
            Operation::UntagResource => {
                let key = params.str("KeyId")?;
                let keys = params
                    .strings("TagKeys")?
                    .ok_or_else(|| WireError::missing("tagKeys"))?;
                client.untag_resource(&key, &keys)?;
                body(&EMPTY)
            }
            Operation::ListResourceTags => {
                let tags = client.list_resource_tags(&params.str("KeyId")?)?;
                let page = params.page(tags, LIST_RESOURCE_TAGS)?;
                body(&ListResourceTagsResponse {
                    tags: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
            Operation::CreateGrant => {
                params.grant_tokens()?;
                params.not_emulated(&["GranteeServicePrincipal", "RetiringServicePrincipal"])?;
                let key = params.str("KeyId")?;
                let request = CreateGrantRequest {
                    grantee_principal: params.str("GranteePrincipal")?,
                    retiring_principal: params.opt_str("RetiringPrincipal")?,
                    operations: params
                        .strings("Operations")?
                        .ok_or_else(|| WireError::missing("operations"))?
                        .iter()
                        .map(|op| GrantOperation::parse(op))
                        .collect::<Result<_, _>>()?,
                    constraints: params.constraints()?,
                    name: params.opt_str("Name")?,
                };
                body(&client.create_grant(&key, request)?)
            }
            Operation::ListGrants => {
                let key = params.str("KeyId")?;
                let grant_id = params.opt_str("GrantId")?;
                let grantee = params.opt_str("GranteePrincipal")?;
                params.not_emulated(&["GranteeServicePrincipal"])?;
                let grants = client.list_grants(&key, grant_id.as_deref(), grantee.as_deref())?;
                let page = params.page(grants, LIST_GRANTS)?;
                body(&ListGrantsResponse {
                    grants: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
            Operation::ListRetirableGrants => {
                params.not_emulated(&["RetiringServicePrincipal"])?;
                let principal = params.str("RetiringPrincipal")?;
                let grants = client.list_retirable_grants(&principal)?;
                let page = params.page(grants, LIST_RETIRABLE_GRANTS)?;
                body(&ListGrantsResponse {
                    grants: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
            Operation::RetireGrant => {
                let token = params.opt_str("GrantToken")?;
                let key = params.opt_str("KeyId")?;
                let grant_id = params.opt_str("GrantId")?;
                let grant = match (&token, &key, &grant_id) {
                    (Some(token), None, None) => GrantRef::Token(token),
                    (None, Some(key_id), Some(grant_id)) => GrantRef::Id { key_id, grant_id },
                    _ => {
                        return Err(KmsError::Validation(
                            "give GrantToken, or KeyId and GrantId".into(),
                        )
                        .into())
                    }
                };
                client.retire_grant(grant)?;
                body(&EMPTY)
            }
            Operation::RevokeGrant => {
                let key = params.str("KeyId")?;
                client.revoke_grant(&key, &params.str("GrantId")?)?;
                body(&EMPTY)
            }
            Operation::ListKeyPolicies => {
                let names = client.list_key_policies(&params.str("KeyId")?)?;
                let page = params.page(names, LIST_KEY_POLICIES)?;
                body(&ListKeyPoliciesResponse {
                    policy_names: page.items,
                    truncated: page.truncated,
                    next_marker: page.next_marker,
                })
            }
        }
    }
}

/// A response serialized into a body that is zeroized when dropped (it may hold a
/// plaintext).
fn body(response: &impl Serialize) -> Result<Zeroizing<Vec<u8>>, WireError> {
    serde_json::to_vec(response)
        .map(Zeroizing::new)
        .map_err(|e| KmsError::Internal(format!("the response could not be encoded: {e}")).into())
}

fn unknown_operation(target: Option<&str>) -> WireError {
    WireError::new(
        400,
        "UnknownOperationException",
        format!(
            "X-Amz-Target {:?} is not TrentService.<Operation> for an operation LocalKms emulates: {}",
            target.unwrap_or(""),
            Operation::list()
        ),
    )
}

const LIST_KEYS: PageRules = PageRules::new("ListKeys", 1000, 100);
const LIST_ALIASES: PageRules = PageRules::new("ListAliases", 100, 50);
const LIST_KEY_POLICIES: PageRules = PageRules::new("ListKeyPolicies", 1000, 100);
const LIST_GRANTS: PageRules = PageRules::new("ListGrants", 100, 50);
const LIST_RETIRABLE_GRANTS: PageRules = PageRules::new("ListRetirableGrants", 100, 50);
const LIST_RESOURCE_TAGS: PageRules = PageRules::new("ListResourceTags", 50, 50);
const LIST_KEY_ROTATIONS: PageRules = PageRules::new("ListKeyRotations", 1000, 100);

/// A member as AWS's validation messages name it: `KeyId` is `keyId`.
fn member_name(field: &str) -> String {
    let mut chars = field.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
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
            .ok_or_else(|| WireError::missing(&member_name(field)))
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

    /// The size of a data key: `KeySpec` (AES_256, AES_128) or `NumberOfBytes`, one of them.
    fn data_key_bytes(&mut self) -> Result<usize, WireError> {
        match (self.opt_str("KeySpec")?, self.opt_u32("NumberOfBytes")?) {
            (Some(_), Some(_)) => {
                Err(KmsError::Validation("give KeySpec or NumberOfBytes, not both".into()).into())
            }
            (Some(spec), None) => match spec.as_str() {
                "AES_256" => Ok(32),
                "AES_128" => Ok(16),
                other => {
                    Err(validation::not_in_enum("keySpec", other, &["AES_256", "AES_128"]).into())
                }
            },
            (None, Some(n)) => Ok(n as usize),
            (None, None) => Err(KmsError::Validation(
                "give KeySpec (AES_256, AES_128) or NumberOfBytes".into(),
            )
            .into()),
        }
    }

    /// The page of `items` the request's `Limit` and `Marker` ask for.
    fn page<T>(&mut self, items: Vec<T>, rules: PageRules) -> Result<Page<T>, WireError> {
        let limit = self.opt_u32("Limit")?;
        let marker = self.opt_str("Marker")?;
        page(items, rules, limit, marker.as_deref())
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

    /// A list of strings, if sent.
    fn strings(&mut self, field: &str) -> Result<Option<Vec<String>>, WireError> {
        let bad = || WireError::serialization(format!("{field} must be a list of strings"));
        match self.take(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(bad()),
        }
    }

    /// `Tags`: a list of `{"TagKey", "TagValue"}`, both required.
    fn tags(&mut self) -> Result<Option<Vec<Tag>>, WireError> {
        let Some(value) = self.take("Tags") else {
            return Ok(None);
        };
        let bad = || WireError::serialization("Tags must be a list of {TagKey, TagValue}");
        let Value::Array(items) = value else {
            return Err(bad());
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let member = |name: &str, path: &str| match item.get(name) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    None | Some(Value::Null) => {
                        Err(WireError::missing(&format!("tags.{}.member.{path}", i + 1)))
                    }
                    Some(_) => Err(bad()),
                };
                Ok(Tag {
                    key: member("TagKey", "tagKey")?,
                    value: member("TagValue", "tagValue")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `GrantTokens`: each one CreateGrant made, at most 10 (grants are in effect at once
    /// here, so they change nothing else).
    fn grant_tokens(&mut self) -> Result<(), WireError> {
        Ok(check_grant_tokens(
            &self.strings("GrantTokens")?.unwrap_or_default(),
        )?)
    }

    /// Members LocalKms does not emulate: refused when sent, never ignored.
    fn not_emulated(&mut self, fields: &[&str]) -> Result<(), WireError> {
        match fields.iter().find(|f| self.take(f).is_some()) {
            Some(field) => Err(KmsError::Validation(format!(
                "{field} is not emulated by LocalKms (AWS service principals)"
            ))
            .into()),
            None => Ok(()),
        }
    }

    /// CreateGrant's `Constraints`.
    fn constraints(&mut self) -> Result<Option<GrantConstraints>, WireError> {
        let Some(value) = self.take("Constraints") else {
            return Ok(None);
        };
        let Value::Object(map) = value else {
            return Err(WireError::serialization("Constraints must be an object"));
        };
        let mut inner = Params(map);
        inner.not_emulated(&["SourceArn"])?;
        let constraints = GrantConstraints {
            encryption_context_subset: inner.opt_context("EncryptionContextSubset")?,
            encryption_context_equals: inner.opt_context("EncryptionContextEquals")?,
        };
        if let Some(unknown) = inner.0.keys().next() {
            return Err(WireError::serialization(format!(
                "{unknown} is not a member of Constraints"
            )));
        }
        Ok(Some(constraints))
    }

    fn context(&mut self, field: &str) -> Result<EncryptionContext, WireError> {
        Ok(self.opt_context(field)?.unwrap_or_default())
    }

    fn opt_context(&mut self, field: &str) -> Result<Option<EncryptionContext>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k, v)),
                    _ => Err(WireError::serialization(format!(
                        "{field} values must be strings"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(WireError::serialization(format!(
                "{field} must be an object of strings"
            ))),
        }
    }

    fn symmetric_algorithm(&mut self, field: &str) -> Result<(), WireError> {
        match self.opt_str(field)? {
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
            Some(n) if n == DEFAULT_POLICY_NAME => Ok(()),
            Some(n) => Err(KmsError::Validation(format!(
                "PolicyName {n:?}: the only valid policy name is default"
            ))
            .into()),
        }
    }
}
