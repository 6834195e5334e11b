//! AwsKms: the [`Kms`] trait over aws-sdk-kms, for AWS KMS itself or any endpoint that
//! speaks its protocol (`atrest kms serve`, moto, LocalStack).
//!
//! Owns the KMS client (its connection, credentials, retries and runtime are
//! [`crate::aws`]'s) and the mapping of every SDK error onto [`KmsError`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use zeroize::Zeroizing;

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ConnectorError, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::DataKeySpec;

use super::{
    Decrypted, Encrypted, EncryptionContext, GeneratedDataKey, KeyMetadata, KeySpec, KeyState,
    KeyUsage, Kms, KmsError,
};
use crate::aws::{error_chain, SdkRuntime};
pub use crate::aws::{AssumeRole, AwsConfig, StaticCredentials};
use crate::clock::Timestamp;

/// Where and as whom AwsKms calls: [`AwsConfig`], whose defaults suit a KMS call.
pub type AwsKmsConfig = AwsConfig;

/// A KMS client over the AWS SDK. Synchronous: it owns a small runtime of its own, so the
/// caller needs none (and may be inside another one).
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    runtime: SdkRuntime,
    description: String,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwsKms({})", self.description)
    }
}

impl AwsKms {
    /// Builds the client and, with [`AssumeRole`], the provider that refreshes the role's
    /// credentials. Nothing is called yet: a wrong endpoint or key shows on first use.
    pub fn connect(config: AwsKmsConfig) -> Result<Self, KmsError> {
        let runtime = SdkRuntime::start("atrest-aws-kms")
            .map_err(|e| KmsError::Internal(format!("cannot start the AWS SDK runtime: {e}")))?;
        let description = config.describe();
        let sdk = runtime
            .load(config)
            .ok_or_else(|| KmsError::Internal("the AWS SDK runtime stopped".into()))?;
        Ok(AwsKms {
            client: aws_sdk_kms::Client::new(&sdk),
            runtime,
            description,
        })
    }

    /// The SDK client underneath, for KMS calls the [`Kms`] trait does not make.
    pub fn sdk(&self) -> &aws_sdk_kms::Client {
        &self.client
    }

    /// Runs an SDK future to completion on the private runtime.
    pub fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, KmsError> {
        self.runtime
            .block_on(future)
            .ok_or_else(|| KmsError::Internal("the AWS SDK task stopped".into()))
    }

    /// CreateKey: a symmetric encryption key with the default policy.
    pub fn create_key(&self, description: &str) -> Result<KeyMetadata, KmsError> {
        let call = self.client.create_key().description(description).send();
        let out = self
            .block_on(call)?
            .map_err(|e| map_error(e, "CreateKey"))?;
        let metadata = out
            .key_metadata
            .ok_or_else(|| missing("CreateKey", "KeyMetadata"))?;
        convert_metadata(metadata)
    }

    /// DisableKey.
    pub fn disable_key(&self, key_id: &str) -> Result<(), KmsError> {
        let call = self.client.disable_key().key_id(key_id).send();
        self.block_on(call)?.map_err(|e| map_error(e, key_id))?;
        Ok(())
    }

    /// ScheduleKeyDeletion after `window_days` (7 to 30).
    pub fn schedule_key_deletion(&self, key_id: &str, window_days: u32) -> Result<(), KmsError> {
        let call = self
            .client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(window_days as i32)
            .send();
        self.block_on(call)?.map_err(|e| map_error(e, key_id))?;
        Ok(())
    }
}

fn context_map(context: &EncryptionContext) -> Option<HashMap<String, String>> {
    (!context.is_empty()).then(|| context.clone().into_iter().collect())
}

fn missing(operation: &str, field: &str) -> KmsError {
    KmsError::Internal(format!("the KMS answered {operation} without {field}"))
}

impl Kms for AwsKms {
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        let call = self.client.describe_key().key_id(key_id).send();
        let out = self.block_on(call)?.map_err(|e| map_error(e, key_id))?;
        convert_metadata(
            out.key_metadata
                .ok_or_else(|| missing("DescribeKey", "KeyMetadata"))?,
        )
    }

    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError> {
        let call = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(context_map(context))
            .send();
        let out = self.block_on(call)?.map_err(|e| map_error(e, key_id))?;
        Ok(Encrypted {
            ciphertext_blob: out
                .ciphertext_blob
                .ok_or_else(|| missing("Encrypt", "CiphertextBlob"))?
                .into_inner(),
            key_arn: out.key_id.unwrap_or_else(|| key_id.to_string()),
        })
    }

    fn decrypt(
        &self,
        key_id: &str,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError> {
        let call = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(ciphertext_blob))
            .set_encryption_context(context_map(context))
            .send();
        let out = self.block_on(call)?.map_err(|e| map_error(e, key_id))?;
        let plaintext = Zeroizing::new(
            out.plaintext
                .ok_or_else(|| missing("Decrypt", "Plaintext"))?
                .into_inner(),
        );
        Ok(Decrypted {
            plaintext,
            key_arn: out.key_id.unwrap_or_else(|| key_id.to_string()),
            key_material_id: out.key_material_id,
        })
    }

    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let call = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(context_map(context))
            .send();
        let out = self.block_on(call)?.map_err(|e| map_error(e, key_id))?;
        let plaintext = Zeroizing::new(
            out.plaintext
                .ok_or_else(|| missing("GenerateDataKey", "Plaintext"))?
                .into_inner(),
        );
        Ok(GeneratedDataKey {
            plaintext,
            ciphertext_blob: out
                .ciphertext_blob
                .ok_or_else(|| missing("GenerateDataKey", "CiphertextBlob"))?
                .into_inner(),
            key_arn: out.key_id.unwrap_or_else(|| key_id.to_string()),
            key_material_id: out.key_material_id,
        })
    }
}

/// Maps an SDK error, after its retries, onto atrest's vocabulary. Services answer by
/// code (some, like moto, only with the code), so the code decides, not the SDK's type.
fn map_error<E>(error: SdkError<E, HttpResponse>, subject: &str) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = error_chain(&error);
    // STS refused the role's AssumeRole while fetching credentials: its verdict, in its
    // own words.
    if let Some((code, message)) = assume_role_refusal(&error) {
        return from_code(
            &code,
            format!("assuming the role for {subject}: {message}"),
            403,
        );
    }
    match &error {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("UnknownError");
            let message = context
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{code} for {subject}"));
            from_code(code, message, context.raw().status().as_u16())
        }
        SdkError::TimeoutError(_) => KmsError::Unavailable(format!(
            "the KMS did not answer in time for {subject}: {detail}"
        )),
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            KmsError::Unavailable(format!("the KMS cannot be reached for {subject}: {detail}"))
        }
        // Credentials that could not be fetched because STS (or another provider) is
        // unreachable: an outage, not a refusal.
        _ if cause_is_unreachable(&error) => KmsError::Unavailable(format!(
            "the credentials for {subject} could not be fetched, their provider cannot be reached: {detail}"
        )),
        SdkError::ResponseError(_) => KmsError::Unavailable(format!(
            "the KMS answered {subject} with something that is not an AWS response: {detail}"
        )),
        // No credentials to sign with, a request that could not be built, a TLS failure:
        // atrest's configuration or environment, not the key's.
        _ => KmsError::unrecognized(
            "RequestNotSent",
            format!(
                "the call for {subject} could not be signed or sent; check the AWS credentials and configuration: {detail}"
            ),
            false,
        ),
    }
}

/// The code and message of an AssumeRole refusal somewhere in `error`'s causes (the
/// credentials provider's failure to assume the role), if any.
fn assume_role_refusal(error: &(dyn std::error::Error + 'static)) -> Option<(String, String)> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(refusal) =
            e.downcast_ref::<aws_sdk_sts::operation::assume_role::AssumeRoleError>()
        {
            let code = refusal.code()?;
            let code = match code {
                // STS's names for what KMS calls AccessDenied and bad credentials.
                "AccessDenied" => "AccessDeniedException",
                "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" => {
                    "UnrecognizedClientException"
                }
                other => other,
            };
            return Some((
                code.to_string(),
                refusal.message().unwrap_or_default().to_string(),
            ));
        }
        source = e.source();
    }
    None
}

fn cause_is_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(c) = e.downcast_ref::<ConnectorError>() {
            if c.is_io() || c.is_timeout() {
                return true;
            }
        }
        source = e.source();
    }
    false
}

fn from_code(code: &str, message: String, status: u16) -> KmsError {
    match code {
        "NotFoundException" => KmsError::NotFound(message),
        "DisabledException" => KmsError::Disabled(message),
        "KMSInvalidStateException" => KmsError::InvalidState(message),
        "InvalidCiphertextException" => KmsError::InvalidCiphertext(message),
        "IncorrectKeyException" => KmsError::IncorrectKey(message),
        "IncorrectKeyMaterialException" => KmsError::IncorrectKeyMaterial(message),
        "InvalidImportTokenException" => KmsError::InvalidImportToken(message),
        "ExpiredImportTokenException" => KmsError::ExpiredImportToken(message),
        "KMSInvalidSignatureException" => KmsError::InvalidSignature(message),
        "KMSInvalidMacException" => KmsError::InvalidMac(message),
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId" => KmsError::AccessDenied(format!("{code}: {message}")),
        "InvalidKeyUsageException" => KmsError::InvalidKeyUsage(message),
        "ValidationException" | "InvalidAliasNameException" | "SerializationException" => {
            KmsError::Validation(message)
        }
        "AlreadyExistsException" => KmsError::AlreadyExists(message),
        "LimitExceededException" => KmsError::LimitExceeded(message),
        "TagException" => KmsError::Tag(message),
        "InvalidGrantTokenException" => KmsError::InvalidGrantToken(message),
        "InvalidGrantIdException" => KmsError::InvalidGrantId(message),
        "InvalidArnException" => KmsError::InvalidArn(message),
        "UnsupportedOperationException" => KmsError::UnsupportedOperation(message),
        "MalformedPolicyDocumentException" => KmsError::MalformedPolicyDocument(message),
        "KMSInternalException" => KmsError::Internal(message),
        "ThrottlingException"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => KmsError::Throttled(message),
        "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ServiceUnavailableException"
        | "InternalFailure" => KmsError::Unavailable(format!("{code}: {message}")),
        _ if status == 429 => KmsError::Throttled(format!("{code}: {message}")),
        _ => KmsError::unrecognized(code, format!("{message} (HTTP {status})"), status >= 500),
    }
}

fn timestamp(t: Option<&DateTime>) -> Timestamp {
    let millis = t.and_then(|t| t.to_millis().ok()).unwrap_or(0);
    Timestamp::from_millis(u64::try_from(millis).unwrap_or(0))
}

fn convert_metadata(m: aws_sdk_kms::types::KeyMetadata) -> Result<KeyMetadata, KmsError> {
    let arn = m
        .arn
        .clone()
        .ok_or_else(|| missing("DescribeKey", "KeyMetadata.Arn"))?;
    let key_state = match m.key_state.as_ref().map(|s| s.as_str()) {
        Some("Enabled") => KeyState::Enabled,
        Some("Disabled") => KeyState::Disabled,
        Some("PendingDeletion") => KeyState::PendingDeletion,
        Some("PendingImport") => KeyState::PendingImport,
        Some("PendingReplicaDeletion") => KeyState::PendingReplicaDeletion,
        other => {
            return Err(KmsError::InvalidState(format!(
                "{arn} is in state {}; atrest can use only an Enabled key",
                other.unwrap_or("(none)")
            )))
        }
    };
    let spec_name = m
        .key_spec
        .as_ref()
        .map(|s| s.as_str())
        .unwrap_or("SYMMETRIC_DEFAULT");
    let key_spec = KeySpec::parse(spec_name).map_err(|_| {
        KmsError::InvalidKeyUsage(format!(
            "{arn} has key spec {spec_name}; atrest needs a SYMMETRIC_DEFAULT key"
        ))
    })?;
    let key_usage = match m.key_usage.as_ref() {
        Some(u) => KeyUsage::parse(u.as_str())?,
        None => key_spec.default_usage(),
    };
    let names = |list: Option<Vec<String>>| list.unwrap_or_default();
    let static_optional = |value: Option<&str>, known: &[&'static str]| {
        value.and_then(|v| known.iter().find(|k| **k == v).copied())
    };
    let static_name = |value: Option<&str>, known: &[&'static str], fallback: &'static str| {
        value
            .and_then(|v| known.iter().find(|k| **k == v).copied())
            .unwrap_or(fallback)
    };
    Ok(KeyMetadata {
        account: m.aws_account_id.clone().unwrap_or_default(),
        region: arn.split(':').nth(3).unwrap_or_default().to_string(),
        key_id: m.key_id.clone(),
        creation_date: timestamp(m.creation_date.as_ref()),
        enabled: m.enabled,
        description: m.description.clone().unwrap_or_default(),
        key_usage,
        key_state,
        deletion_date: m.deletion_date.as_ref().map(|d| timestamp(Some(d))),
        key_spec,
        origin: static_name(
            m.origin.as_ref().map(|o| o.as_str()),
            &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"],
            "AWS_KMS",
        ),
        key_manager: static_name(
            m.key_manager.as_ref().map(|k| k.as_str()),
            &["AWS", "CUSTOMER"],
            "CUSTOMER",
        ),
        expiration_model: static_optional(
            m.expiration_model.as_ref().map(|e| e.as_str()),
            &["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"],
        ),
        valid_to: m.valid_to.as_ref().map(|d| timestamp(Some(d))),
        multi_region: m.multi_region.unwrap_or(false),
        multi_region_configuration: None,
        pending_deletion_window_in_days: m
            .pending_deletion_window_in_days
            .and_then(|d| u32::try_from(d).ok()),
        current_key_material_id: m.current_key_material_id.clone(),
        customer_master_key_spec: key_spec.customer_master_key_spec(),
        encryption_algorithms: names(
            m.encryption_algorithms
                .map(|l| l.iter().map(|a| a.as_str().to_string()).collect()),
        ),
        signing_algorithms: names(
            m.signing_algorithms
                .map(|l| l.iter().map(|a| a.as_str().to_string()).collect()),
        ),
        mac_algorithms: names(
            m.mac_algorithms
                .map(|l| l.iter().map(|a| a.as_str().to_string()).collect()),
        ),
        key_agreement_algorithms: names(
            m.key_agreement_algorithms
                .map(|l| l.iter().map(|a| a.as_str().to_string()).collect()),
        ),
        encapsulation_algorithms: names(
            m.encapsulation_algorithms
                .map(|l| l.iter().map(|a| a.as_str().to_string()).collect()),
        ),
        arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_vocabulary() {
        let m = || "m".to_string();
        assert_eq!(
            from_code("DisabledException", m(), 400).aws_name(),
            "DisabledException"
        );
        assert_eq!(
            from_code("AccessDeniedException", m(), 400).aws_name(),
            "AccessDeniedException"
        );
        assert!(from_code("ThrottlingException", m(), 400).is_retryable());
        assert!(from_code("SomethingNew", m(), 503).is_retryable());
        assert!(!from_code("SomethingNew", m(), 400).is_retryable());
        for unknown in [
            from_code("SomethingNew", m(), 400),
            from_code("SomethingNew", m(), 503),
        ] {
            assert_eq!(unknown.aws_name(), "SomethingNew");
            assert!(!unknown.is_verdict_on_key(), "{unknown}");
        }
        assert!(from_code("AccessDeniedException", m(), 400).is_verdict_on_key());
        assert!(!from_code("KMSInternalException", m(), 500).is_verdict_on_key());
    }

    #[test]
    fn credentials_never_print() {
        let c = StaticCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: Zeroizing::new("s3cr3t".into()),
            session_token: Some(Zeroizing::new("t0k3n".into())),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t") && !shown.contains("t0k3n"));
    }
}
