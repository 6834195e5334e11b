//! The KMS JSON 1.1 protocol: `X-Amz-Target: TrentService.<Operation>`, AWS's member
//! names and base64 blobs in, the typed responses of [`crate::kms::responses`] out.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use zeroize::Zeroizing;

use super::identity::Protocol;
use super::page::PageRules;
use super::params::Params;
use super::{asymmetric, import};
use super::{Endpoint, Operation, Request, WireError};
use crate::kms::responses::{
    DecryptResponse, EncryptResponse, GenerateDataKeyResponse,
    GenerateDataKeyWithoutPlaintextResponse, GenerateRandomResponse, GetKeyPolicyResponse,
    KeyIdResponse, KeyMetadataResponse, ListAliasesResponse, ListGrantsResponse,
    ListKeyPoliciesResponse, ListKeyRotationsResponse, ListKeysResponse, ListResourceTagsResponse,
    ReEncryptResponse, ReplicateKeyResponse, ScheduleKeyDeletionResponse,
};
use crate::kms::validation;
use crate::kms::{
    CreateGrantRequest, CreateKeyRequest, GrantOperation, GrantRef, KeySpec, KeyUsage, KmsError,
    LocalKmsClient, Origin, ReplicateKeyRequest,
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
                let origin = match params.opt_str("Origin")? {
                    Some(name) => Origin::parse(&name)?,
                    None => Origin::AwsKms,
                };
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
                    origin,
                    multi_region: params.opt_bool("MultiRegion")?.unwrap_or(false),
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
                let key = params.str("KeyId")?;
                let rotations = match params.opt_str("IncludeKeyMaterial")?.as_deref() {
                    None | Some("ROTATIONS_ONLY") => client.list_key_rotations(&key)?,
                    Some("ALL_KEY_MATERIAL") => client.list_key_materials(&key)?,
                    Some(other) => {
                        return Err(validation::not_in_enum(
                            "includeKeyMaterial",
                            other,
                            &["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"],
                        )
                        .into())
                    }
                };
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
                let algorithm = params.encryption_algorithm("EncryptionAlgorithm")?;
                params.grant_tokens()?;
                let plaintext = params.blob("Plaintext")?;
                let context = params.context("EncryptionContext")?;
                let key = params.str("KeyId")?;
                let encrypted = client.encrypt_with(&key, &plaintext, &context, algorithm)?;
                body(&EncryptResponse::new(encrypted, algorithm))
            }
            Operation::Decrypt => {
                let algorithm = params.encryption_algorithm("EncryptionAlgorithm")?;
                params.grant_tokens()?;
                params.not_emulated(&["Recipient"])?;
                let blob = params.blob("CiphertextBlob")?;
                let context = params.context("EncryptionContext")?;
                let key = params.opt_str("KeyId")?;
                let decrypted = client.decrypt_with(key.as_deref(), &blob, &context, algorithm)?;
                body(&DecryptResponse::new(decrypted, algorithm))
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
            Operation::GetKeyLastUsage => body(&client.get_key_last_usage(&params.str("KeyId")?)?),
            Operation::Sign
            | Operation::Verify
            | Operation::GetPublicKey
            | Operation::GenerateDataKeyPair
            | Operation::GenerateDataKeyPairWithoutPlaintext
            | Operation::GenerateMac
            | Operation::VerifyMac
            | Operation::DeriveSharedSecret
            | Operation::Encapsulate
            | Operation::Decapsulate => asymmetric::answer(operation, client, params),
            Operation::GetParametersForImport
            | Operation::ImportKeyMaterial
            | Operation::DeleteImportedKeyMaterial => import::answer(operation, client, params),
            Operation::ReplicateKey => {
                let key = params.str("KeyId")?;
                let region = params.str("ReplicaRegion")?;
                let request = ReplicateKeyRequest {
                    policy: params.opt_str("Policy")?,
                    bypass_policy_lockout_safety_check: params
                        .opt_bool("BypassPolicyLockoutSafetyCheck")?
                        .unwrap_or(false),
                    description: params.opt_str("Description")?.unwrap_or_default(),
                    tags: params.tags()?.unwrap_or_default(),
                };
                let replica = client.replicate_key(&key, &region, request)?;
                body(&ReplicateKeyResponse {
                    replica_key_metadata: replica.metadata,
                    replica_policy: replica.policy,
                    replica_tags: replica.tags,
                })
            }
            Operation::UpdatePrimaryRegion => {
                let key = params.str("KeyId")?;
                client.update_primary_region(&key, &params.str("PrimaryRegion")?)?;
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
pub(super) fn body(response: &impl Serialize) -> Result<Zeroizing<Vec<u8>>, WireError> {
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
