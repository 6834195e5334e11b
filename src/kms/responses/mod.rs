//! AWS KMS's response shapes, with AWS's member names: what `kms serve` answers and what
//! `atrest kms --json` prints, built once from the library's results.
//!
//! Blobs are base64 as in AWS's JSON protocol; a plaintext is base64 in a zeroizing string.
//! The answers of the asymmetric, MAC and key agreement operations are in `asymmetric`.

mod asymmetric;

pub use asymmetric::{
    DataKeyPairResponse, DecapsulateResponse, DeriveSharedSecretResponse, EncapsulateResponse,
    GenerateMacResponse, GetPublicKeyResponse, SignResponse, VerifyMacResponse, VerifyResponse,
};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{
    epoch_seconds, AliasEntry, Decrypted, Encrypted, EncryptionAlgorithm, GeneratedDataKey,
    GrantListEntry, KeyListEntry, KeyMetadata, KeyState, ReEncrypted, RotationRecord, Tag,
    WrappedDataKey,
};
use crate::clock::Timestamp;

/// The one encryption algorithm of symmetric keys.
const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
/// The one key policy name.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// CreateKey and DescribeKey.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadataResponse {
    /// The key.
    pub key_metadata: KeyMetadata,
}

/// ListKeys.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    /// The keys.
    pub keys: Vec<KeyListEntry>,
    /// Whether more keys follow.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// ListAliases.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesResponse {
    /// The aliases.
    pub aliases: Vec<AliasEntry>,
    /// Whether more aliases follow.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// ListKeyRotations.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsResponse {
    /// The rotations, oldest first.
    pub rotations: Vec<RotationRecord>,
    /// Whether more rotations follow.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// ListKeyPolicies.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesResponse {
    /// The key's policy names: `default`.
    pub policy_names: Vec<String>,
    /// Whether more names follow.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// GenerateDataKeyWithoutPlaintext.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyWithoutPlaintextResponse {
    /// The data key wrapped by the KMS key, base64.
    pub ciphertext_blob: String,
    /// The ARN of the KMS key.
    pub key_id: String,
    /// The key material version that wrapped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

impl From<WrappedDataKey> for GenerateDataKeyWithoutPlaintextResponse {
    fn from(k: WrappedDataKey) -> Self {
        GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: BASE64.encode(&k.ciphertext_blob),
            key_id: k.key_arn,
            key_material_id: k.key_material_id,
        }
    }
}

/// ReEncrypt.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptResponse {
    /// The new blob, base64.
    pub ciphertext_blob: String,
    /// The ARN of the key that made the old blob.
    pub source_key_id: String,
    /// The ARN of the key that made the new blob.
    pub key_id: String,
    /// SYMMETRIC_DEFAULT.
    pub source_encryption_algorithm: &'static str,
    /// SYMMETRIC_DEFAULT.
    pub destination_encryption_algorithm: &'static str,
    /// The key material version that opened the old blob.
    pub source_key_material_id: String,
    /// The key material version that sealed the new blob.
    pub destination_key_material_id: String,
}

impl From<ReEncrypted> for ReEncryptResponse {
    fn from(r: ReEncrypted) -> Self {
        ReEncryptResponse {
            ciphertext_blob: BASE64.encode(&r.ciphertext_blob),
            source_key_id: r.source_key_arn,
            key_id: r.key_arn,
            source_encryption_algorithm: SYMMETRIC_DEFAULT,
            destination_encryption_algorithm: SYMMETRIC_DEFAULT,
            source_key_material_id: r.source_key_material_id,
            destination_key_material_id: r.destination_key_material_id,
        }
    }
}

/// ListGrants and ListRetirableGrants.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ListGrantsResponse {
    /// The grants.
    pub grants: Vec<GrantListEntry>,
    /// Whether more grants follow.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// ListResourceTags.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsResponse {
    /// The tags.
    pub tags: Vec<Tag>,
    /// Whether more tags follow.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// GenerateRandom.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomResponse {
    /// The random bytes, base64.
    #[serde(serialize_with = "zeroizing_str")]
    pub plaintext: Zeroizing<String>,
}

/// ScheduleKeyDeletion.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionResponse {
    /// The key's ARN.
    pub key_id: String,
    /// When the key will be deleted.
    #[serde(serialize_with = "epoch_seconds")]
    pub deletion_date: Timestamp,
    /// PendingDeletion.
    pub key_state: KeyState,
    /// The waiting period.
    pub pending_window_in_days: Option<u32>,
}

impl ScheduleKeyDeletionResponse {
    /// The answer for `metadata`, to be deleted at `deletion_date`.
    pub fn new(metadata: KeyMetadata, deletion_date: Timestamp) -> Self {
        ScheduleKeyDeletionResponse {
            key_id: metadata.arn,
            deletion_date,
            key_state: metadata.key_state,
            pending_window_in_days: metadata.pending_deletion_window_in_days,
        }
    }
}

/// CancelKeyDeletion and RotateKeyOnDemand: the key.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdResponse {
    /// The key's id or ARN.
    pub key_id: String,
}

/// GetKeyPolicy.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyResponse {
    /// The policy document.
    pub policy: String,
    /// Always `default`.
    pub policy_name: &'static str,
}

impl GetKeyPolicyResponse {
    /// The answer for `policy`.
    pub fn new(policy: String) -> Self {
        GetKeyPolicyResponse {
            policy,
            policy_name: DEFAULT_POLICY_NAME,
        }
    }
}

/// Encrypt.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptResponse {
    /// The blob, base64.
    pub ciphertext_blob: String,
    /// The ARN of the key that made it.
    pub key_id: String,
    /// The algorithm that made it.
    pub encryption_algorithm: EncryptionAlgorithm,
}

impl EncryptResponse {
    /// The answer for a ciphertext `algorithm` made.
    pub fn new(e: Encrypted, algorithm: EncryptionAlgorithm) -> Self {
        EncryptResponse {
            ciphertext_blob: BASE64.encode(&e.ciphertext_blob),
            key_id: e.key_arn,
            encryption_algorithm: algorithm,
        }
    }
}

/// Decrypt. The base64 plaintext is zeroized on drop.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptResponse {
    /// The ARN of the key that decrypted it.
    pub key_id: String,
    /// The plaintext, base64.
    #[serde(serialize_with = "zeroizing_str")]
    pub plaintext: Zeroizing<String>,
    /// The algorithm that opened it.
    pub encryption_algorithm: EncryptionAlgorithm,
    /// The key material version that decrypted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

impl DecryptResponse {
    /// The answer for a plaintext `algorithm` opened.
    pub fn new(d: Decrypted, algorithm: EncryptionAlgorithm) -> Self {
        DecryptResponse {
            key_id: d.key_arn,
            plaintext: Zeroizing::new(BASE64.encode(&d.plaintext)),
            encryption_algorithm: algorithm,
            key_material_id: d.key_material_id,
        }
    }
}

/// GenerateDataKey. The base64 plaintext is zeroized on drop.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyResponse {
    /// The data key wrapped by the KMS key, base64.
    pub ciphertext_blob: String,
    /// The data key, base64.
    #[serde(serialize_with = "zeroizing_str")]
    pub plaintext: Zeroizing<String>,
    /// The ARN of the KMS key.
    pub key_id: String,
    /// The key material version that wrapped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

impl From<GeneratedDataKey> for GenerateDataKeyResponse {
    fn from(k: GeneratedDataKey) -> Self {
        GenerateDataKeyResponse {
            ciphertext_blob: BASE64.encode(&k.ciphertext_blob),
            plaintext: Zeroizing::new(BASE64.encode(&k.plaintext)),
            key_id: k.key_arn,
            key_material_id: k.key_material_id,
        }
    }
}

/// ReplicateKey.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateKeyResponse {
    /// The new replica.
    pub replica_key_metadata: KeyMetadata,
    /// Its key policy.
    pub replica_policy: String,
    /// Its tags.
    pub replica_tags: Vec<Tag>,
}

/// GetParametersForImport.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportResponse {
    /// The key's ARN.
    pub key_id: String,
    /// The import token, base64.
    pub import_token: String,
    /// The RSA wrapping key, SubjectPublicKeyInfo DER in base64.
    pub public_key: String,
    /// When token and wrapping key expire.
    #[serde(serialize_with = "epoch_seconds")]
    pub parameters_valid_to: Timestamp,
}

/// ImportKeyMaterial.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyMaterialResponse {
    /// The key's ARN.
    pub key_id: String,
    /// The imported material's id.
    pub key_material_id: String,
}

/// DeleteImportedKeyMaterial.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteImportedKeyMaterialResponse {
    /// The key's ARN.
    pub key_id: String,
    /// The deleted material's id, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

/// A secret response member, shown only where it is serialized.
impl std::fmt::Debug for DecryptResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptResponse")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GenerateDataKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateDataKeyResponse")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn zeroizing_str<S: serde::Serializer>(value: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}
