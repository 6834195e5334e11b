//! The key management service: where the customer master key (CMK) lives.
//!
//! Owns the [`Kms`] trait (the four calls the storage layer makes: DescribeKey, Encrypt,
//! Decrypt, GenerateDataKey), the error vocabulary of AWS KMS ([`KmsError`]), the shapes
//! AWS returns ([`KeyMetadata`]), and [`LocalKms`], the embedded, strict emulator that is
//! atrest's default. Network backends (aws-sdk-kms) implement the same trait.

mod blob;
mod keyref;
mod local;
mod policy;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::clock::Timestamp;

pub use blob::CiphertextBlob;
pub use keyref::KeyRef;
pub use local::{
    AliasEntry, CreateKeyRequest, KeyListEntry, LocalKms, LocalKmsClient, RotationKind,
    RotationRecord, RotationStatus, DEFAULT_ROTATION_PERIOD_DAYS,
};
pub use policy::KeyPolicy;

/// Key-value pairs bound to a ciphertext: Decrypt must be given the same ones.
pub type EncryptionContext = BTreeMap<String, String>;

/// Errors in AWS KMS's own vocabulary, so a test written against atrest fails the same
/// way it would against AWS. The message says which key and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    #[error("NotFoundException: {0}")]
    NotFound(String),
    #[error("DisabledException: {0}")]
    Disabled(String),
    #[error("KMSInvalidStateException: {0}")]
    InvalidState(String),
    #[error("InvalidCiphertextException: {0}")]
    InvalidCiphertext(String),
    #[error("IncorrectKeyException: {0}")]
    IncorrectKey(String),
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("InvalidKeyUsageException: {0}")]
    InvalidKeyUsage(String),
    #[error("ValidationException: {0}")]
    Validation(String),
    #[error("AlreadyExistsException: {0}")]
    AlreadyExists(String),
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    #[error("UnsupportedOperationException: {0}")]
    UnsupportedOperation(String),
    #[error("MalformedPolicyDocumentException: {0}")]
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
}

impl KmsError {
    /// The exception name AWS KMS would return.
    pub fn aws_name(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::Internal(_) => "KMSInternalException",
            KmsError::Unavailable(_) => "ServiceUnavailableException",
            KmsError::Throttled(_) => "ThrottlingException",
        }
    }

    /// True where the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, KmsError::Unavailable(_) | KmsError::Throttled(_))
    }

    /// What a user can do about it, in one sentence.
    pub fn hint(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "check the key id, alias or ARN, and that the caller's account and region are the key's",
            KmsError::Disabled(_) => "enable the key (kms enable-key) and try again",
            KmsError::InvalidState(_) => "a key pending deletion can be used again only after cancel-key-deletion and enable-key",
            KmsError::InvalidCiphertext(_) => "the ciphertext or its encryption context is not the one the key produced",
            KmsError::IncorrectKey(_) => "pass the key that encrypted this ciphertext as --key-id",
            KmsError::AccessDenied(_) => "grant the caller this action in the key policy (kms put-key-policy)",
            KmsError::InvalidKeyUsage(_) => "use a SYMMETRIC_DEFAULT key with key usage ENCRYPT_DECRYPT",
            KmsError::Validation(_) => "correct the request's parameters",
            KmsError::AlreadyExists(_) => "choose another name or delete the existing one",
            KmsError::LimitExceeded(_) => "wait for the limit to reset or use another key",
            KmsError::UnsupportedOperation(_) => "this operation needs a symmetric encryption key",
            KmsError::MalformedPolicyDocument(_) => "fix the policy document; it must keep allowing you kms:PutKeyPolicy",
            KmsError::Internal(_) => "restore the KMS state file from a backup; atrest never resets it",
            KmsError::Unavailable(_) => "check that the KMS is reachable; the call can be retried",
            KmsError::Throttled(_) => "slow down; the call can be retried",
        }
    }
}

/// The state of a KMS key, as AWS names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The kind of key material, as AWS names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum KeySpec {
    #[serde(rename = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_4096")]
    Rsa4096,
    #[serde(rename = "ECC_NIST_P256")]
    EccNistP256,
    #[serde(rename = "HMAC_256")]
    Hmac256,
}

impl KeySpec {
    pub const ALL: [KeySpec; 5] = [
        KeySpec::SymmetricDefault,
        KeySpec::Rsa2048,
        KeySpec::Rsa4096,
        KeySpec::EccNistP256,
        KeySpec::Hmac256,
    ];

    pub fn aws_name(self) -> &'static str {
        match self {
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::Hmac256 => "HMAC_256",
        }
    }

    pub fn parse(name: &str) -> Result<Self, KmsError> {
        Self::ALL
            .into_iter()
            .find(|s| s.aws_name() == name)
            .ok_or_else(|| {
                KmsError::Validation(format!(
                    "KeySpec {name:?} is not one of {}",
                    Self::ALL.map(|s| s.aws_name()).join(", ")
                ))
            })
    }

    /// The key usage AWS gives a key of this spec when none is asked for.
    pub fn default_usage(self) -> KeyUsage {
        match self {
            KeySpec::SymmetricDefault | KeySpec::Rsa2048 | KeySpec::Rsa4096 => {
                KeyUsage::EncryptDecrypt
            }
            KeySpec::EccNistP256 => KeyUsage::SignVerify,
            KeySpec::Hmac256 => KeyUsage::GenerateVerifyMac,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.aws_name())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum KeyUsage {
    #[serde(rename = "ENCRYPT_DECRYPT")]
    EncryptDecrypt,
    #[serde(rename = "SIGN_VERIFY")]
    SignVerify,
    #[serde(rename = "GENERATE_VERIFY_MAC")]
    GenerateVerifyMac,
}

impl KeyUsage {
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        match name {
            "ENCRYPT_DECRYPT" => Ok(KeyUsage::EncryptDecrypt),
            "SIGN_VERIFY" => Ok(KeyUsage::SignVerify),
            "GENERATE_VERIFY_MAC" => Ok(KeyUsage::GenerateVerifyMac),
            _ => Err(KmsError::Validation(format!(
                "KeyUsage {name:?} is not one of ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC"
            ))),
        }
    }
}

/// What DescribeKey returns, serialized with AWS's field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub account: String,
    pub key_id: String,
    pub arn: String,
    #[serde(skip)]
    pub region: String,
    #[serde(serialize_with = "epoch_seconds")]
    pub creation_date: Timestamp,
    pub enabled: bool,
    pub description: String,
    pub key_usage: KeyUsage,
    pub key_state: KeyState,
    #[serde(
        serialize_with = "optional_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub deletion_date: Option<Timestamp>,
    pub key_spec: KeySpec,
    pub origin: &'static str,
    pub key_manager: &'static str,
    pub multi_region: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_deletion_window_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_key_material_id: Option<String>,
}

/// AWS's JSON protocol sends dates as seconds since the epoch.
fn epoch_seconds<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.as_millis() as f64 / 1000.0)
}

fn optional_epoch_seconds<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => epoch_seconds(t, s),
        None => s.serialize_none(),
    }
}

/// The result of Encrypt: the blob, and the ARN of the key that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    pub ciphertext_blob: Vec<u8>,
    pub key_arn: String,
}

/// The result of Decrypt. The plaintext is zeroized when dropped.
pub struct Decrypted {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub key_arn: String,
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
    pub plaintext: Zeroizing<Vec<u8>>,
    pub ciphertext_blob: Vec<u8>,
    pub key_arn: String,
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
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError>;

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

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn region(&self) -> &str {
        &self.region
    }

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
