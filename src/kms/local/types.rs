//! What LocalKms takes and answers beyond the `Kms` trait's types: CreateKey's request,
//! rotation records and status, alias and key list entries.

use super::*;

/// One key material of a key, as ListKeyRotations reports it: made by a rotation (with its
/// date and kind), or the first material (without).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRecord {
    /// The ARN of the rotated key.
    pub key_id: String,
    #[serde(
        serialize_with = "optional_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    /// When the rotation made this material; absent for the first material.
    pub rotation_date: Option<Timestamp>,
    /// Automatic or on demand; absent for the first material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_type: Option<RotationKind>,
    /// The material the rotation made.
    pub key_material_id: String,
    /// `CURRENT` for the material in use, `NON_CURRENT` for older ones,
    /// `PENDING_ROTATION` for imported material RotateKeyOnDemand has yet to make current.
    pub key_material_state: &'static str,
    /// Imported material: `IMPORTED`, or `PENDING_IMPORT` once deleted or expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_state: Option<&'static str>,
    /// Imported material: whether it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<&'static str>,
    /// Imported material that expires: when.
    #[serde(
        serialize_with = "optional_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_to: Option<Timestamp>,
    /// Imported material: the description it was imported with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_description: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
/// How a key's material came to rotate.
pub enum RotationKind {
    #[serde(rename = "AUTOMATIC")]
    /// On the key's rotation schedule.
    Automatic,
    #[serde(rename = "ON_DEMAND")]
    /// By RotateKeyOnDemand.
    OnDemand,
}

/// What GetKeyRotationStatus returns.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationStatus {
    /// The key's ARN.
    pub key_id: String,
    /// Whether automatic rotation is on.
    pub key_rotation_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The automatic rotation period.
    pub rotation_period_in_days: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_epoch_seconds"
    )]
    /// When automatic rotation next happens.
    pub next_rotation_date: Option<Timestamp>,
}

/// An alias, as ListAliases reports it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AliasEntry {
    /// `alias/NAME`.
    pub alias_name: String,
    /// The alias's ARN.
    pub alias_arn: String,
    /// The id of the key it points to.
    pub target_key_id: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_epoch_seconds"
    )]
    /// When the alias was made.
    pub creation_date: Option<Timestamp>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_epoch_seconds"
    )]
    /// When the alias was last pointed at a key.
    pub last_updated_date: Option<Timestamp>,
}

/// A key's tag, as AWS names its members.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    #[serde(rename = "TagKey")]
    /// 1 to 128 characters, not starting with `aws:`.
    pub key: String,
    #[serde(rename = "TagValue")]
    /// 0 to 256 characters.
    pub value: String,
}

/// One row of ListKeys.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyListEntry {
    #[serde(rename = "KeyId")]
    /// The key's id.
    pub key_id: String,
    #[serde(rename = "KeyArn")]
    /// The key's ARN.
    pub key_arn: String,
}

/// CreateKey's parameters. `Default` is a symmetric encryption key with AWS's default policy.
#[derive(Clone, Debug)]
pub struct CreateKeyRequest {
    /// Free text shown by DescribeKey.
    pub description: String,
    /// The kind of key material.
    pub key_spec: KeySpec,
    /// What the key may do; `None` gives the spec's default.
    pub key_usage: Option<KeyUsage>,
    /// A key policy document (AWS JSON); `None` gives AWS's default policy.
    pub policy: Option<String>,
    /// Tags to put on the key.
    pub tags: Vec<Tag>,
    /// AWS's `BypassPolicyLockoutSafetyCheck`: accept a policy that does not let the
    /// caller change it again.
    pub bypass_policy_lockout_safety_check: bool,
    /// EXTERNAL for a key whose material its owner imports (it starts PendingImport).
    pub origin: Origin,
    /// A multi-Region primary key (`mrk-` id), which ReplicateKey copies to other regions.
    pub multi_region: bool,
}

impl Default for CreateKeyRequest {
    fn default() -> Self {
        CreateKeyRequest {
            description: String::new(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: None,
            policy: None,
            tags: Vec::new(),
            bypass_policy_lockout_safety_check: false,
            origin: Origin::AwsKms,
            multi_region: false,
        }
    }
}
