//! The key management service: where the customer master key (CMK) lives.
//!
//! Owns the [`Kms`] trait (the four calls the storage layer makes: DescribeKey, Encrypt,
//! Decrypt, GenerateDataKey), the error vocabulary of AWS KMS ([`KmsError`]), the shapes
//! AWS returns ([`KeyMetadata`]), and [`LocalKms`], the embedded, strict emulator that is
//! atrest's default. `AwsKms` (feature `aws`) implements the same trait over the AWS SDK;
//! [`wire`] speaks AWS's protocol in front of LocalKms and `KmsServer` (feature `server`)
//! serves it over HTTP; [`FaultyKms`] wraps any backend to fail on a schedule, for outage
//! tests.

#[cfg(feature = "aws")]
mod aws;
mod blob;
mod fault;
mod hex;
mod key_spec;
mod keyref;
mod local;
mod policy;
pub mod responses;
#[cfg(feature = "server")]
mod server;
mod validation;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::clock::Timestamp;

#[cfg(feature = "aws")]
pub use aws::{AssumeRole, AwsKms, AwsKmsConfig, StaticCredentials};
pub use blob::CiphertextBlob;
pub use fault::{Fault, FaultyKms};
pub use key_spec::{
    parse_wrapping_key_spec, Algorithms, EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm,
    MessageType, SigningAlgorithm, WrappingAlgorithm,
};
pub use keyref::KeyRef;
pub use local::{
    check_grant_tokens, parse_key_pair_spec, AccessKeyIdentity, AliasEntry, CreateGrantRequest,
    CreateKeyRequest, DataKeyPair, Encapsulated, Entropy, GrantConstraints, GrantListEntry,
    GrantOperation, GrantRef, ImportKeyMaterialRequest, ImportParameters, ImportType, KeyLastUsage,
    KeyLastUsageReport, KeyListEntry, LocalKms, LocalKmsClient, MultiRegionConfiguration,
    MultiRegionKey, NewAccessKey, NewGrant, Origin, PublicKeyInfo, Replica, ReplicateKeyRequest,
    RotationKind, RotationRecord, RotationStatus, Seeded, SharedSecret, Signed, Tag,
    DEFAULT_ROTATION_PERIOD_DAYS,
};
pub use policy::{KeyPolicy, RequestFacts};
#[cfg(feature = "server")]
pub use server::KmsServer;

/// Key-value pairs bound to a ciphertext: Decrypt must be given the same ones.
pub type EncryptionContext = BTreeMap<String, String>;

/// Errors in AWS KMS's own vocabulary, so a test written against atrest fails the same
/// way it would against AWS. The message says which key and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    #[error("NotFoundException: {0}")]
    /// The key, alias or ARN names nothing the caller can see.
    NotFound(String),
    #[error("DisabledException: {0}")]
    /// The key is disabled.
    Disabled(String),
    #[error("KMSInvalidStateException: {0}")]
    /// The key's state forbids the operation (pending deletion, mostly).
    InvalidState(String),
    #[error("InvalidCiphertextException: {0}")]
    /// The ciphertext or its encryption context is not what the key made.
    InvalidCiphertext(String),
    #[error("KMSInvalidSignatureException: {0}")]
    /// Verify: the signature is not one the key made over the message.
    InvalidSignature(String),
    #[error("KMSInvalidMacException: {0}")]
    /// VerifyMac: the MAC is not the key's over the message.
    InvalidMac(String),
    #[error("IncorrectKeyMaterialException: {0}")]
    /// ImportKeyMaterial: the material is not valid for the key, or not the material it
    /// had before.
    IncorrectKeyMaterial(String),
    #[error("InvalidImportTokenException: {0}")]
    /// ImportKeyMaterial: a token GetParametersForImport did not make for this key.
    InvalidImportToken(String),
    #[error("ExpiredImportTokenException: {0}")]
    /// ImportKeyMaterial: the import token's 24 hours have passed.
    ExpiredImportToken(String),
    #[error("IncorrectKeyException: {0}")]
    /// Decrypt named a key other than the one that made the ciphertext.
    IncorrectKey(String),
    #[error("AccessDeniedException: {0}")]
    /// The key policy does not grant the caller the action.
    AccessDenied(String),
    #[error("InvalidKeyUsageException: {0}")]
    /// The key's spec or usage does not allow the operation.
    InvalidKeyUsage(String),
    #[error("ValidationException: {0}")]
    /// A parameter is out of range or malformed.
    Validation(String),
    #[error("AlreadyExistsException: {0}")]
    /// The alias exists already.
    AlreadyExists(String),
    #[error("LimitExceededException: {0}")]
    /// A per-key limit is reached.
    LimitExceeded(String),
    #[error("InvalidGrantTokenException: {0}")]
    /// A grant token that no CreateGrant made.
    InvalidGrantToken(String),
    #[error("InvalidGrantIdException: {0}")]
    /// A grant id that is not one.
    InvalidGrantId(String),
    #[error("InvalidArnException: {0}")]
    /// An ARN that is not valid where it was given.
    InvalidArn(String),
    #[error("TagException: {0}")]
    /// A tag is not one AWS allows (a reserved prefix, a character outside the set).
    Tag(String),
    #[error("UnsupportedOperationException: {0}")]
    /// The operation needs another kind of key.
    UnsupportedOperation(String),
    #[error("MalformedPolicyDocumentException: {0}")]
    /// The policy document cannot be used.
    MalformedPolicyDocument(String),
    /// The KMS's own state is unusable (a corrupt or unreadable state file).
    #[error("KMSInternalException: {0}")]
    Internal(String),
    /// The KMS could not be reached or did not answer; worth a retry.
    #[error("ServiceUnavailableException: {0}")]
    Unavailable(String),
    /// The KMS refused the rate of calls; worth a retry after a pause.
    #[error("ThrottlingException: {0}")]
    Throttled(String),
    /// An answer or failure atrest has no name for (an AWS error code it does not know, a
    /// request that could not be signed or sent): an error of that call, never a verdict on
    /// a key.
    #[error("{}: {}", .0.code, .0.message)]
    Unrecognized(Box<UnrecognizedError>),
}

/// What [`KmsError::Unrecognized`] knows of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnrecognizedError {
    /// AWS's error code, or what failed when there was no answer.
    pub code: String,
    /// What was said.
    pub message: String,
    /// Whether the same call may succeed later unchanged (a server-side failure).
    pub retryable: bool,
}

/// A KMS call atrest's simulated crash stopped before it was made (see [`crate::crash`]):
/// unreachable, as the KMS is to a dead process.
impl From<crate::crash::Crashed> for KmsError {
    fn from(crashed: crate::crash::Crashed) -> Self {
        KmsError::Unavailable(crashed.to_string())
    }
}

impl KmsError {
    /// An error atrest has no name for.
    pub fn unrecognized(
        code: impl Into<String>,
        message: impl Into<String>,
        retryable: bool,
    ) -> Self {
        KmsError::Unrecognized(Box::new(UnrecognizedError {
            code: code.into(),
            message: message.into(),
            retryable,
        }))
    }

    /// The exception name AWS KMS would return.
    pub fn aws_name(&self) -> &str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::InvalidSignature(_) => "KMSInvalidSignatureException",
            KmsError::InvalidMac(_) => "KMSInvalidMacException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            KmsError::InvalidImportToken(_) => "InvalidImportTokenException",
            KmsError::ExpiredImportToken(_) => "ExpiredImportTokenException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::Tag(_) => "TagException",
            KmsError::InvalidGrantToken(_) => "InvalidGrantTokenException",
            KmsError::InvalidGrantId(_) => "InvalidGrantIdException",
            KmsError::InvalidArn(_) => "InvalidArnException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::Internal(_) => "KMSInternalException",
            KmsError::Unavailable(_) => "ServiceUnavailableException",
            KmsError::Throttled(_) => "ThrottlingException",
            KmsError::Unrecognized(e) => &e.code,
        }
    }

    /// AWS's message, without the exception name.
    pub fn message(&self) -> &str {
        match self {
            KmsError::NotFound(m)
            | KmsError::Disabled(m)
            | KmsError::InvalidState(m)
            | KmsError::InvalidCiphertext(m)
            | KmsError::IncorrectKey(m)
            | KmsError::IncorrectKeyMaterial(m)
            | KmsError::InvalidImportToken(m)
            | KmsError::ExpiredImportToken(m)
            | KmsError::InvalidSignature(m)
            | KmsError::InvalidMac(m)
            | KmsError::AccessDenied(m)
            | KmsError::InvalidKeyUsage(m)
            | KmsError::Validation(m)
            | KmsError::AlreadyExists(m)
            | KmsError::LimitExceeded(m)
            | KmsError::Tag(m)
            | KmsError::InvalidGrantToken(m)
            | KmsError::InvalidGrantId(m)
            | KmsError::InvalidArn(m)
            | KmsError::UnsupportedOperation(m)
            | KmsError::MalformedPolicyDocument(m)
            | KmsError::Internal(m)
            | KmsError::Unavailable(m)
            | KmsError::Throttled(m) => m,
            KmsError::Unrecognized(e) => &e.message,
        }
    }

    /// True where the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            KmsError::Unavailable(_) | KmsError::Throttled(_) => true,
            KmsError::Unrecognized(e) => e.retryable,
            _ => false,
        }
    }

    /// True when the error says something about the key itself or the caller's right to
    /// use it (gone, disabled, pending deletion, not allowed, not an encryption key, not
    /// the key that made a ciphertext), as opposed to the KMS or the request failing.
    pub fn is_verdict_on_key(&self) -> bool {
        matches!(
            self,
            KmsError::NotFound(_)
                | KmsError::Disabled(_)
                | KmsError::InvalidState(_)
                | KmsError::AccessDenied(_)
                | KmsError::InvalidKeyUsage(_)
                | KmsError::UnsupportedOperation(_)
                | KmsError::InvalidCiphertext(_)
                | KmsError::IncorrectKey(_)
        )
    }
}

/// The state of a KMS key, as AWS names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Refuses cryptographic operations until enabled.
    Disabled,
    /// Scheduled for deletion; destroyed when the window ends.
    PendingDeletion,
    /// A key for imported material (origin EXTERNAL) without its material: made so, or
    /// its material deleted or expired. Refuses cryptographic operations until imported.
    PendingImport,
    /// A multi-Region primary key scheduled for deletion while it has replicas: its
    /// waiting period starts once they are deleted.
    PendingReplicaDeletion,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What DescribeKey returns, serialized with AWS's field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    /// The key's account.
    pub account: String,
    /// The key's id (a UUID).
    pub key_id: String,
    /// The key's ARN.
    pub arn: String,
    #[serde(skip)]
    /// The key's region.
    pub region: String,
    #[serde(serialize_with = "epoch_seconds")]
    /// When the key was made.
    pub creation_date: Timestamp,
    /// Whether the key state is Enabled.
    pub enabled: bool,
    /// Free text.
    pub description: String,
    /// What the key may do.
    pub key_usage: KeyUsage,
    /// Enabled, Disabled or PendingDeletion.
    pub key_state: KeyState,
    #[serde(
        serialize_with = "optional_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    /// When a key pending deletion will be destroyed.
    pub deletion_date: Option<Timestamp>,
    /// The kind of key material.
    pub key_spec: KeySpec,
    /// The same as `key_spec`, under the name AWS used first and still returns for the
    /// specs that name knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_master_key_spec: Option<KeySpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The encryption algorithms the key supports (encryption keys only).
    pub encryption_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The signing algorithms the key supports (signing keys only).
    pub signing_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The MAC algorithms the key supports (HMAC keys only).
    pub mac_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The key agreement algorithms the key supports (KEY_AGREEMENT keys only).
    pub key_agreement_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The encapsulation algorithms the key supports (ML-KEM keys only).
    pub encapsulation_algorithms: Vec<String>,
    /// Where the material came from: AWS_KMS, or EXTERNAL (imported).
    pub origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// For imported material: whether it expires (KEY_MATERIAL_EXPIRES or
    /// KEY_MATERIAL_DOES_NOT_EXPIRE), once imported.
    pub expiration_model: Option<&'static str>,
    #[serde(
        serialize_with = "optional_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    /// For imported material that expires: when.
    pub valid_to: Option<Timestamp>,
    /// Who manages the key: always CUSTOMER here.
    pub key_manager: &'static str,
    /// Whether the key is a multi-Region key.
    pub multi_region: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A multi-Region key's primary and replicas.
    pub multi_region_configuration: Option<MultiRegionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The deletion window, while pending deletion.
    pub pending_deletion_window_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The version of the key material in use.
    pub current_key_material_id: Option<String>,
}

/// AWS's JSON protocol sends dates as seconds since the epoch.
pub(crate) fn epoch_seconds<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.as_millis() as f64 / 1000.0)
}

pub(crate) fn optional_epoch_seconds<S: Serializer>(
    t: &Option<Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => epoch_seconds(t, s),
        None => s.serialize_none(),
    }
}

/// The result of Encrypt: the blob, and the ARN of the key that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    /// The blob to store.
    pub ciphertext_blob: Vec<u8>,
    /// The ARN of the key that made it.
    pub key_arn: String,
}

/// The result of Decrypt. The plaintext is zeroized when dropped.
pub struct Decrypted {
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The ARN of the key that decrypted it.
    pub key_arn: String,
    /// The key material version that decrypted it, where the KMS says.
    pub key_material_id: Option<String>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

/// The result of GenerateDataKey: a fresh key in the clear and wrapped by the CMK.
pub struct GeneratedDataKey {
    /// The data key in the clear, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The data key wrapped by the KMS key.
    pub ciphertext_blob: Vec<u8>,
    /// The ARN of the KMS key.
    pub key_arn: String,
    /// The key material version that wrapped it, where the KMS says.
    pub key_material_id: Option<String>,
}

/// The result of GenerateDataKeyWithoutPlaintext: a data key only the KMS can unwrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// The data key wrapped by the KMS key.
    pub ciphertext_blob: Vec<u8>,
    /// The ARN of the KMS key.
    pub key_arn: String,
    /// The key material version that wrapped it.
    pub key_material_id: Option<String>,
}

/// The result of ReEncrypt: a ciphertext moved from one key (or context) to another
/// without its plaintext leaving the KMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReEncrypted {
    /// The new blob.
    pub ciphertext_blob: Vec<u8>,
    /// The ARN of the key that made the old blob.
    pub source_key_arn: String,
    /// The ARN of the key that made the new blob.
    pub key_arn: String,
    /// The key material version that opened the old blob.
    pub source_key_material_id: String,
    /// The key material version that sealed the new blob.
    pub destination_key_material_id: String,
}

impl fmt::Debug for GeneratedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedDataKey")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

/// The calls atrest makes on a customer master key: the three permissions Atlas asks
/// for, plus GenerateDataKey. `key_id` is a key id, key ARN, alias name or alias ARN.
///
/// Implementations are bound to one caller (an account and an IAM principal), as an AWS
/// SDK client is bound to its credentials.
pub trait Kms: Send + Sync + fmt::Debug {
    /// DescribeKey: the key's metadata and its full ARN.
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError>;

    /// Encrypt: `plaintext` (1 to 4096 bytes) bound to `context`.
    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError>;

    /// Always names the key: a ciphertext made by another key fails with
    /// [`KmsError::IncorrectKey`] instead of silently decrypting.
    fn decrypt(
        &self,
        key_id: &str,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError>;

    /// A 256-bit data key.
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError>;
}

/// Who is calling: an account, the region of the KMS endpoint, and an IAM principal
/// (the account root, a role or a user).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    account: String,
    region: String,
    principal: String,
}

impl Caller {
    /// The account's root principal, which AWS's default key policy trusts with kms:*.
    pub fn account_root(account: &str, region: &str) -> Result<Self, KmsError> {
        Self::new(&format!("arn:aws:iam::{account}:root"), region)
    }

    /// A caller from a principal ARN: `arn:aws:iam::ACCOUNT:root`, `...:role/NAME` or
    /// `...:user/NAME`. The account is the ARN's.
    pub fn new(principal_arn: &str, region: &str) -> Result<Self, KmsError> {
        let account = parse_principal_arn(principal_arn)?;
        keyref::validate_region(region)?;
        Ok(Caller {
            account: account.to_string(),
            region: region.to_string(),
            principal: principal_arn.to_string(),
        })
    }

    /// The caller's AWS account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The region of the KMS endpoint called.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The caller's IAM principal ARN.
    pub fn principal(&self) -> &str {
        &self.principal
    }
}

/// Returns the account of an IAM principal ARN.
fn parse_principal_arn(arn: &str) -> Result<&str, KmsError> {
    let bad = || {
        KmsError::Validation(format!(
            "principal {arn:?} is not an IAM ARN like arn:aws:iam::111122223333:root or arn:aws:iam::111122223333:role/NAME"
        ))
    };
    let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(bad)?;
    let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
    keyref::validate_account(account).map_err(|_| bad())?;
    let named = |prefix: &str| resource.strip_prefix(prefix).is_some_and(|n| !n.is_empty());
    if resource == "root" || named("role/") || named("user/") {
        Ok(account)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_come_from_iam_arns() {
        let c = Caller::new("arn:aws:iam::111122223333:role/atlas", "us-east-1").unwrap();
        assert_eq!(c.account(), "111122223333");
        assert!(Caller::new("arn:aws:iam::1111:role/atlas", "us-east-1").is_err());
        assert!(Caller::new("arn:aws:iam::111122223333:group/x", "us-east-1").is_err());
        assert!(Caller::new("arn:aws:iam::111122223333:role/", "us-east-1").is_err());
        assert!(Caller::account_root("111122223333", "not a region").is_err());
    }

    #[test]
    fn errors_carry_aws_names() {
        let e = KmsError::Disabled("key x is disabled".into());
        assert_eq!(e.to_string(), "DisabledException: key x is disabled");
        assert_eq!(e.aws_name(), "DisabledException");
        assert!(!e.is_retryable());
        assert!(KmsError::Throttled(String::new()).is_retryable());
    }
}
